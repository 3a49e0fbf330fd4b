//! An in-memory bearer for simulations and tests: a hub whose links are
//! switched on and off by hand, as contacts in a trace would be.

use std::collections::{BTreeMap, BTreeSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};

use tokio::sync::mpsc;

use super::{Bearer, BearerEvent, EVENT_CHANNEL, LinkAddr};
use crate::error::BearerError;

#[derive(Debug, Default)]
struct HubState {
    endpoints: BTreeMap<u32, mpsc::Sender<BearerEvent>>,
    links: BTreeSet<(u32, u32)>,
}

/// Connects [`MemoryBearer`]s. Cloning gives another handle to the same hub.
#[derive(Debug, Clone, Default)]
pub struct MemoryHub {
    state: Arc<Mutex<HubState>>,
    dropped: Arc<AtomicU64>,
}

fn addr(id: u32) -> LinkAddr {
    LinkAddr::new(format!("mem:{id}"))
}

fn pair(a: u32, b: u32) -> (u32, u32) {
    (a.min(b), a.max(b))
}

impl MemoryHub {
    /// An empty hub.
    pub fn new() -> Self {
        MemoryHub::default()
    }

    /// A bearer for endpoint `id` with the given MTU.
    pub fn bearer(&self, id: u32, mtu: usize) -> MemoryBearer {
        let (tx, rx) = mpsc::channel(EVENT_CHANNEL);
        self.lock().endpoints.insert(id, tx);
        MemoryBearer {
            hub: self.clone(),
            id,
            mtu,
            events: Some(rx),
        }
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, HubState> {
        // A panic elsewhere while holding the lock leaves plain data behind.
        self.state
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Brings the link between `a` and `b` up; both get an `Up` event.
    pub async fn connect(&self, a: u32, b: u32) {
        let senders = {
            let mut state = self.lock();
            if !state.links.insert(pair(a, b)) {
                return;
            }
            (
                state.endpoints.get(&a).cloned(),
                state.endpoints.get(&b).cloned(),
            )
        };
        if let Some(tx) = senders.0 {
            let _ = tx.send(BearerEvent::Up(addr(b))).await;
        }
        if let Some(tx) = senders.1 {
            let _ = tx.send(BearerEvent::Up(addr(a))).await;
        }
    }

    /// Takes the link between `a` and `b` down; both get a `Down` event.
    pub async fn disconnect(&self, a: u32, b: u32) {
        let senders = {
            let mut state = self.lock();
            if !state.links.remove(&pair(a, b)) {
                return;
            }
            (
                state.endpoints.get(&a).cloned(),
                state.endpoints.get(&b).cloned(),
            )
        };
        if let Some(tx) = senders.0 {
            let _ = tx.send(BearerEvent::Down(addr(b))).await;
        }
        if let Some(tx) = senders.1 {
            let _ = tx.send(BearerEvent::Down(addr(a))).await;
        }
    }

    fn deliver(&self, from: u32, to: u32, frame: &[u8]) -> Result<(), BearerError> {
        let tx = {
            let state = self.lock();
            if !state.links.contains(&pair(from, to)) {
                return Err(BearerError::UnknownNeighbour(addr(to).to_string()));
            }
            state.endpoints.get(&to).cloned()
        };
        let Some(tx) = tx else {
            return Err(BearerError::Closed);
        };
        if tx
            .try_send(BearerEvent::Frame {
                from: addr(from),
                data: frame.to_vec(),
            })
            .is_err()
        {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
        Ok(())
    }

    fn neighbours(&self, id: u32) -> Vec<u32> {
        self.lock()
            .links
            .iter()
            .filter_map(|&(a, b)| {
                if a == id {
                    Some(b)
                } else if b == id {
                    Some(a)
                } else {
                    None
                }
            })
            .collect()
    }
}

/// One endpoint of a [`MemoryHub`].
#[derive(Debug)]
pub struct MemoryBearer {
    hub: MemoryHub,
    id: u32,
    mtu: usize,
    events: Option<mpsc::Receiver<BearerEvent>>,
}

impl Bearer for MemoryBearer {
    fn mtu(&self) -> usize {
        self.mtu
    }

    fn events(&mut self) -> Option<mpsc::Receiver<BearerEvent>> {
        self.events.take()
    }

    async fn send(&self, to: &LinkAddr, frame: &[u8]) -> Result<(), BearerError> {
        if frame.len() > self.mtu {
            return Err(BearerError::FrameTooLarge {
                size: frame.len(),
                mtu: self.mtu,
            });
        }
        let id = to
            .as_str()
            .strip_prefix("mem:")
            .and_then(|n| n.parse().ok())
            .ok_or_else(|| BearerError::UnknownNeighbour(to.to_string()))?;
        self.hub.deliver(self.id, id, frame)
    }

    async fn broadcast(&self, frame: &[u8]) -> Result<(), BearerError> {
        if frame.len() > self.mtu {
            return Err(BearerError::FrameTooLarge {
                size: frame.len(),
                mtu: self.mtu,
            });
        }
        for peer in self.hub.neighbours(self.id) {
            self.hub.deliver(self.id, peer, frame)?;
        }
        Ok(())
    }

    fn dropped_frames(&self) -> u64 {
        self.hub.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for MemoryBearer {
    fn drop(&mut self) {
        self.hub.lock().endpoints.remove(&self.id);
    }
}
