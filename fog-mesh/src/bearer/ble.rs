//! The Bluetooth LE bearer (feature `ble`).
//!
//! Every fog device plays two GATT roles at once:
//!
//! - **Central** (btleplug, any platform): scans for peripherals advertising
//!   [`BLE_SERVICE_UUID`], connects, discovers the service, subscribes to
//!   notifications on the TX characteristic ([`BLE_TX_UUID`]) for incoming
//!   frames and writes outgoing frames to the RX characteristic
//!   ([`BLE_RX_UUID`]) with write-without-response.
//! - **Peripheral** (bluer, Linux only, since btleplug cannot advertise):
//!   advertises the service and serves a GATT application whose RX
//!   characteristic takes writes (frames in) and whose TX characteristic
//!   notifies subscribers (frames out).
//!
//! A neighbour `ble:AA:BB:CC:DD:EE:FF` is up from the first link to it
//! (we connected to it as a central, or it subscribed to our TX
//! characteristic) until the last one is gone. Frames go over the central
//! link when there is one, otherwise as a notification. A link carries frames
//! up to its negotiated ATT MTU minus 3 (20 bytes if unknown); the bearer's
//! [`Bearer::mtu`] is a configured, conservative figure (180 by default, what
//! every BLE 4.2+ stack negotiates) and a frame larger than a link's payload
//! is refused on that link with [`BearerError::FrameTooLarge`].

use std::collections::{BTreeMap, HashMap, HashSet};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use tokio::sync::mpsc;
use tokio::task::JoinHandle;
use uuid::Uuid;

use super::{Bearer, BearerEvent, EVENT_CHANNEL, LinkAddr};
use crate::error::BearerError;

/// The fog mesh GATT service, advertised by every fog peripheral
/// (`4f1ca001-6d1e-4b57-9c3a-2b9e5d7f0f6d`, a fixed random UUID).
pub const BLE_SERVICE_UUID: Uuid = Uuid::from_u128(0x4f1c_a001_6d1e_4b57_9c3a_2b9e_5d7f_0f6d);
/// The RX characteristic: centrals write frames to it
/// (`4f1ca002-6d1e-4b57-9c3a-2b9e5d7f0f6d`).
pub const BLE_RX_UUID: Uuid = Uuid::from_u128(0x4f1c_a002_6d1e_4b57_9c3a_2b9e_5d7f_0f6d);
/// The TX characteristic: the peripheral notifies frames on it
/// (`4f1ca003-6d1e-4b57-9c3a-2b9e5d7f0f6d`).
pub const BLE_TX_UUID: Uuid = Uuid::from_u128(0x4f1c_a003_6d1e_4b57_9c3a_2b9e_5d7f_0f6d);

/// Payload of a link whose ATT MTU is unknown (the BLE minimum, 23, minus 3).
pub const BLE_DEFAULT_PAYLOAD: usize = 20;
/// Largest value of a GATT attribute, hence the largest configurable MTU.
pub const BLE_MAX_FRAME: usize = 512;

/// Settings of a [`BleBearer`].
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct BleConfig {
    /// Play the central role (scan and connect, btleplug).
    pub central: bool,
    /// Play the peripheral role (advertise and serve GATT, bluer, Linux only).
    pub peripheral: bool,
    /// Adapter to use (`hci0`, ...); `None` takes the first one.
    pub adapter: Option<String>,
    /// Largest frame the bearer accepts ([`Bearer::mtu`]), 20 to 512 bytes.
    pub mtu: usize,
    /// Most neighbours linked at once; further devices are not connected
    /// (as a central) or not served (as a peripheral) until one goes.
    pub max_links: usize,
    /// Time allowed to connect to a peripheral and discover its service.
    pub connect_timeout: Duration,
    /// Local name in the advertisement (peripheral role).
    pub local_name: String,
}

impl BleConfig {
    /// Both roles where the platform has them (the peripheral only on Linux),
    /// the first adapter, a 180-byte MTU, 8 links, a 10 s connect timeout and
    /// the local name `fog`.
    pub fn new() -> Self {
        BleConfig {
            central: true,
            peripheral: cfg!(target_os = "linux"),
            adapter: None,
            mtu: 180,
            max_links: 8,
            connect_timeout: Duration::from_secs(10),
            local_name: "fog".to_owned(),
        }
    }

    fn validate(&self) -> Result<(), BearerError> {
        if !(BLE_DEFAULT_PAYLOAD..=BLE_MAX_FRAME).contains(&self.mtu) {
            return Err(BearerError::Unavailable(format!(
                "ble mtu must be {BLE_DEFAULT_PAYLOAD} to {BLE_MAX_FRAME} bytes"
            )));
        }
        if self.max_links == 0 {
            return Err(BearerError::Unavailable(
                "ble max_links must be at least 1".to_owned(),
            ));
        }
        if !self.central && !self.peripheral {
            return Err(BearerError::Unavailable(
                "ble needs the central or the peripheral role".to_owned(),
            ));
        }
        if self.peripheral && !cfg!(target_os = "linux") {
            return Err(BearerError::Unavailable(
                "the ble peripheral role needs linux (bluer)".to_owned(),
            ));
        }
        Ok(())
    }
}

impl Default for BleConfig {
    fn default() -> Self {
        BleConfig::new()
    }
}

// ---------------------------------------------------------------------------
// Protocol-independent logic (tested without hardware)
// ---------------------------------------------------------------------------

/// The link address of a Bluetooth device: `ble:AA:BB:CC:DD:EE:FF`.
fn ble_link(addr: [u8; 6]) -> LinkAddr {
    let [a, b, c, d, e, f] = addr;
    LinkAddr::new(format!(
        "ble:{a:02X}:{b:02X}:{c:02X}:{d:02X}:{e:02X}:{f:02X}"
    ))
}

/// The device address in a `ble:` link address (either case of hex).
fn parse_ble_link(addr: &LinkAddr) -> Result<[u8; 6], BearerError> {
    let unknown = || BearerError::UnknownNeighbour(addr.to_string());
    let text = addr.as_str().strip_prefix("ble:").ok_or_else(unknown)?;
    let mut out = [0u8; 6];
    let mut parts = text.split(':');
    for byte in &mut out {
        let part = parts.next().ok_or_else(unknown)?;
        if part.len() != 2 || !part.bytes().all(|b| b.is_ascii_hexdigit()) {
            return Err(unknown());
        }
        *byte = u8::from_str_radix(part, 16).map_err(|_| unknown())?;
    }
    if parts.next().is_some() {
        return Err(unknown());
    }
    Ok(out)
}

/// Frame payload of a link from its ATT MTU: the MTU minus the 3-byte ATT
/// header, 20 bytes if unknown or below the BLE minimum of 23, at most 512.
fn payload_from_att_mtu(att_mtu: Option<u16>) -> usize {
    match att_mtu {
        Some(mtu) if mtu >= 23 => (usize::from(mtu) - 3).min(BLE_MAX_FRAME),
        _ => BLE_DEFAULT_PAYLOAD,
    }
}

/// Whether a frame fits the bearer's MTU and the link's payload.
fn check_frame(len: usize, bearer_mtu: usize, link_payload: usize) -> Result<(), BearerError> {
    let mtu = bearer_mtu.min(link_payload);
    if len > mtu {
        return Err(BearerError::FrameTooLarge { size: len, mtu });
    }
    Ok(())
}

/// The two ways a neighbour can be linked.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
enum Path {
    /// We are its central: we write to its RX characteristic.
    Central,
    /// It is our central: we notify it on our TX characteristic.
    Peripheral,
}

#[derive(Debug, Clone)]
struct Entry<L> {
    central: Option<(L, usize)>,
    peripheral: Option<(L, usize)>,
}

/// Why a link was not added.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum AddError {
    /// The table holds `max_links` neighbours already.
    Full,
}

/// The neighbour table: per device, its central and peripheral links (a
/// handle `L` to send with and the link's payload size). Bounded by
/// `max_links` devices.
#[derive(Debug)]
struct LinkTable<L> {
    entries: BTreeMap<[u8; 6], Entry<L>>,
    max_links: usize,
}

impl<L: Clone> LinkTable<L> {
    fn new(max_links: usize) -> Self {
        LinkTable {
            entries: BTreeMap::new(),
            max_links,
        }
    }

    /// Adds (or replaces) one link of `addr`. Returns `Up` when the device
    /// was not a neighbour before.
    fn add(
        &mut self,
        addr: [u8; 6],
        path: Path,
        link: L,
        payload: usize,
    ) -> Result<Option<BearerEvent>, AddError> {
        let is_new = !self.entries.contains_key(&addr);
        if is_new && self.entries.len() >= self.max_links {
            return Err(AddError::Full);
        }
        let entry = self.entries.entry(addr).or_insert(Entry {
            central: None,
            peripheral: None,
        });
        let slot = match path {
            Path::Central => &mut entry.central,
            Path::Peripheral => &mut entry.peripheral,
        };
        *slot = Some((link, payload));
        Ok(is_new.then(|| BearerEvent::Up(ble_link(addr))))
    }

    /// Removes one link of `addr`. Returns `Down` when it was the last.
    fn remove(&mut self, addr: [u8; 6], path: Path) -> Option<BearerEvent> {
        let entry = self.entries.get_mut(&addr)?;
        let slot = match path {
            Path::Central => &mut entry.central,
            Path::Peripheral => &mut entry.peripheral,
        };
        slot.take()?;
        if entry.central.is_none() && entry.peripheral.is_none() {
            self.entries.remove(&addr);
            return Some(BearerEvent::Down(ble_link(addr)));
        }
        None
    }

    /// Whether `addr` is linked over `path`.
    fn has(&self, addr: [u8; 6], path: Path) -> bool {
        self.entries.get(&addr).is_some_and(|e| match path {
            Path::Central => e.central.is_some(),
            Path::Peripheral => e.peripheral.is_some(),
        })
    }

    /// Whether one more device fits.
    fn has_room(&self) -> bool {
        self.entries.len() < self.max_links
    }

    /// The link to send to `addr` over: the central one if any.
    fn route(&self, addr: [u8; 6]) -> Option<(L, usize)> {
        let entry = self.entries.get(&addr)?;
        entry.central.clone().or_else(|| entry.peripheral.clone())
    }

    /// Every neighbour.
    fn neighbours(&self) -> Vec<[u8; 6]> {
        self.entries.keys().copied().collect()
    }
}

/// The task serving each link, by device and path.
type LinkTasks = HashMap<([u8; 6], Path), JoinHandle<()>>;

/// State shared by the bearer and its background tasks.
#[derive(Debug)]
struct Shared {
    table: Mutex<LinkTable<Link>>,
    /// Devices a central connection is being set up to.
    connecting: Mutex<HashSet<[u8; 6]>>,
    /// The task serving each link (forwarding notifications, or waiting
    /// for the subscription to end); aborted when the link goes down.
    link_tasks: Mutex<LinkTasks>,
    tx: mpsc::Sender<BearerEvent>,
    dropped: AtomicU64,
}

impl Shared {
    fn new(max_links: usize) -> (Arc<Self>, mpsc::Receiver<BearerEvent>) {
        let (tx, rx) = mpsc::channel(EVENT_CHANNEL);
        let shared = Arc::new(Shared {
            table: Mutex::new(LinkTable::new(max_links)),
            connecting: Mutex::new(HashSet::new()),
            link_tasks: Mutex::new(HashMap::new()),
            tx,
            dropped: AtomicU64::new(0),
        });
        (shared, rx)
    }

    fn table(&self) -> std::sync::MutexGuard<'_, LinkTable<Link>> {
        // A panic elsewhere while holding the lock leaves plain data behind.
        self.table
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn connecting(&self) -> std::sync::MutexGuard<'_, HashSet<[u8; 6]>> {
        self.connecting
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    fn link_tasks(&self) -> std::sync::MutexGuard<'_, LinkTasks> {
        self.link_tasks
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }

    /// Records the task serving a link; a task left from an earlier link
    /// to the same device over the same path is aborted.
    fn set_link_task(&self, addr: [u8; 6], path: Path, task: JoinHandle<()>) {
        if let Some(old) = self.link_tasks().insert((addr, path), task) {
            old.abort();
        }
    }

    /// Stops every link task (the bearer is going away).
    fn abort_link_tasks(&self) {
        for (_, task) in self.link_tasks().drain() {
            task.abort();
        }
    }

    /// A frame arrived from `from`: queued as an event, or dropped and
    /// counted when the channel is full. Frames over [`BLE_MAX_FRAME`] or
    /// empty ones are ignored.
    fn frame(&self, from: [u8; 6], data: Vec<u8>) {
        if data.is_empty() || data.len() > BLE_MAX_FRAME {
            tracing::debug!(len = data.len(), "ble: ignoring a frame of bad size");
            return;
        }
        let event = BearerEvent::Frame {
            from: ble_link(from),
            data,
        };
        if self.tx.try_send(event).is_err() && !self.tx.is_closed() {
            self.dropped.fetch_add(1, Ordering::Relaxed);
        }
    }

    /// Adds a link; `false` (and nothing changed) when the table is full.
    async fn link_up(&self, addr: [u8; 6], path: Path, link: Link, payload: usize) -> bool {
        let added = self.table().add(addr, path, link, payload);
        match added {
            Ok(Some(event)) => {
                tracing::info!(peer = %ble_link(addr), ?path, payload, "ble neighbour up");
                let _ = self.tx.send(event).await;
                true
            }
            Ok(None) => true,
            Err(AddError::Full) => {
                tracing::debug!(peer = %ble_link(addr), "ble: link table full");
                false
            }
        }
    }

    /// Removes a link (sending `Down` if it was the device's last) and
    /// stops the task serving it. Called from that task too: the abort then
    /// comes after its last await and changes nothing.
    async fn link_down(&self, addr: [u8; 6], path: Path) {
        let event = self.table().remove(addr, path);
        let task = self.link_tasks().remove(&(addr, path));
        if let Some(event) = event {
            tracing::info!(peer = %ble_link(addr), ?path, "ble neighbour down");
            let _ = self.tx.send(event).await;
        }
        if let Some(task) = task {
            task.abort();
        }
    }
}

// ---------------------------------------------------------------------------
// Links: how a frame leaves on each path
// ---------------------------------------------------------------------------

/// A handle to send frames over one link.
#[derive(Clone)]
enum Link {
    /// We are the central: write to the peripheral's RX characteristic.
    Central {
        peripheral: btleplug::platform::Peripheral,
        rx: btleplug::api::Characteristic,
    },
    /// We are the peripheral: notify on our TX characteristic.
    #[cfg(target_os = "linux")]
    Notify(Arc<bluer::gatt::CharacteristicWriter>),
    /// A test link: frames go to a channel.
    #[cfg(test)]
    Test(mpsc::Sender<Vec<u8>>),
}

impl std::fmt::Debug for Link {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            Link::Central { .. } => f.write_str("Link::Central"),
            #[cfg(target_os = "linux")]
            Link::Notify(_) => f.write_str("Link::Notify"),
            #[cfg(test)]
            Link::Test(_) => f.write_str("Link::Test"),
        }
    }
}

impl Link {
    async fn send(&self, frame: &[u8]) -> Result<(), BearerError> {
        match self {
            Link::Central { peripheral, rx } => {
                use btleplug::api::{Peripheral as _, WriteType};
                peripheral
                    .write(rx, frame, WriteType::WithoutResponse)
                    .await
                    .map_err(|e| BearerError::Io(std::io::Error::other(e)))
            }
            #[cfg(target_os = "linux")]
            Link::Notify(writer) => Ok(writer.send(frame).await?),
            #[cfg(test)]
            Link::Test(tx) => tx
                .send(frame.to_vec())
                .await
                .map_err(|_| BearerError::Closed),
        }
    }
}

// ---------------------------------------------------------------------------
// The bearer
// ---------------------------------------------------------------------------

/// A bearer over Bluetooth LE GATT (see the module docs for the roles).
#[derive(Debug)]
pub struct BleBearer {
    mtu: usize,
    events: Option<mpsc::Receiver<BearerEvent>>,
    shared: Arc<Shared>,
    tasks: Vec<JoinHandle<()>>,
    #[cfg(target_os = "linux")]
    _peripheral: Option<peripheral::Registration>,
}

impl BleBearer {
    /// Opens the adapter and starts the configured roles: scanning and
    /// connecting (central), advertising and serving GATT (peripheral).
    ///
    /// Fails with [`BearerError::Unavailable`] when there is no Bluetooth
    /// adapter (or no BlueZ / D-Bus to reach one), when the configuration is
    /// invalid, or when a role cannot start.
    pub async fn new(config: BleConfig) -> Result<Self, BearerError> {
        config.validate()?;
        let (shared, rx) = Shared::new(config.max_links);
        let mut tasks = Vec::new();
        #[cfg(target_os = "linux")]
        let registration = if config.peripheral {
            Some(peripheral::start(&config, &shared, &mut tasks).await?)
        } else {
            None
        };
        if config.central {
            match central::start(&config, &shared).await {
                Ok(task) => tasks.push(task),
                Err(error) => {
                    for task in &tasks {
                        task.abort();
                    }
                    shared.abort_link_tasks();
                    return Err(error);
                }
            }
        }
        tracing::info!(
            central = config.central,
            peripheral = config.peripheral,
            mtu = config.mtu,
            "ble bearer up"
        );
        Ok(BleBearer {
            mtu: config.mtu,
            events: Some(rx),
            shared,
            tasks,
            #[cfg(target_os = "linux")]
            _peripheral: registration,
        })
    }

    /// The link address of the device with Bluetooth address `addr`.
    pub fn link_addr(addr: [u8; 6]) -> LinkAddr {
        ble_link(addr)
    }

    /// A bearer with no radio behind it, for tests of the shared logic.
    #[cfg(test)]
    fn detached(mtu: usize, max_links: usize) -> Self {
        let (shared, rx) = Shared::new(max_links);
        BleBearer {
            mtu,
            events: Some(rx),
            shared,
            tasks: Vec::new(),
            #[cfg(target_os = "linux")]
            _peripheral: None,
        }
    }
}

impl Bearer for BleBearer {
    fn mtu(&self) -> usize {
        self.mtu
    }

    fn events(&mut self) -> Option<mpsc::Receiver<BearerEvent>> {
        self.events.take()
    }

    async fn send(&self, to: &LinkAddr, frame: &[u8]) -> Result<(), BearerError> {
        check_frame(frame.len(), self.mtu, usize::MAX)?;
        let addr = parse_ble_link(to)?;
        let (link, payload) = self
            .shared
            .table()
            .route(addr)
            .ok_or_else(|| BearerError::UnknownNeighbour(to.to_string()))?;
        check_frame(frame.len(), self.mtu, payload)?;
        link.send(frame).await
    }

    /// Sends to every neighbour in turn. A neighbour whose link is too small
    /// for the frame, or that went away meanwhile, is skipped; another
    /// failure is returned after every neighbour was tried.
    async fn broadcast(&self, frame: &[u8]) -> Result<(), BearerError> {
        check_frame(frame.len(), self.mtu, usize::MAX)?;
        let peers = self.shared.table().neighbours();
        let mut first_error = None;
        for peer in peers {
            // One neighbour's failure (a small link MTU, a link going away)
            // must not keep the frame from the others.
            if let Err(error) = self.send(&ble_link(peer), frame).await {
                tracing::debug!(peer = %ble_link(peer), %error, "ble broadcast: send failed");
                first_error.get_or_insert(error);
            }
        }
        match first_error {
            Some(BearerError::FrameTooLarge { .. } | BearerError::UnknownNeighbour(_)) | None => {
                Ok(())
            }
            Some(error) => Err(error),
        }
    }

    fn dropped_frames(&self) -> u64 {
        self.shared.dropped.load(Ordering::Relaxed)
    }
}

impl Drop for BleBearer {
    fn drop(&mut self) {
        for task in &self.tasks {
            task.abort();
        }
        self.shared.abort_link_tasks();
    }
}

/// The message for a missing adapter.
fn no_adapter(detail: impl std::fmt::Display) -> BearerError {
    BearerError::Unavailable(format!("no bluetooth adapter: {detail}"))
}

// ---------------------------------------------------------------------------
// Central role (btleplug)
// ---------------------------------------------------------------------------

mod central {
    use std::sync::Arc;
    use std::time::Duration;

    use btleplug::api::{
        Central as _, CentralEvent, CharPropFlags, Manager as _, Peripheral as _, ScanFilter,
    };
    use btleplug::platform::{Manager, Peripheral};
    use futures_util::StreamExt as _;
    use tokio::task::{JoinHandle, JoinSet};

    use super::{
        BLE_RX_UUID, BLE_SERVICE_UUID, BLE_TX_UUID, BleConfig, Link, Path, Shared, ble_link,
        no_adapter, payload_from_att_mtu,
    };
    use crate::error::BearerError;

    /// Finds the adapter and starts scanning; the returned task connects to
    /// fog peripherals as they are found.
    pub(super) async fn start(
        config: &BleConfig,
        shared: &Arc<Shared>,
    ) -> Result<JoinHandle<()>, BearerError> {
        let manager = Manager::new().await.map_err(no_adapter)?;
        let adapters = manager.adapters().await.map_err(no_adapter)?;
        let mut chosen = None;
        for adapter in adapters {
            let info = adapter.adapter_info().await.unwrap_or_default();
            let wanted = config
                .adapter
                .as_ref()
                .is_none_or(|name| info.starts_with(name.as_str()));
            if wanted {
                chosen = Some(adapter);
                break;
            }
        }
        let adapter = chosen.ok_or_else(|| {
            no_adapter(match &config.adapter {
                Some(name) => format!("{name} not found"),
                None => "none found".to_owned(),
            })
        })?;
        let events = adapter.events().await.map_err(no_adapter)?;
        adapter
            .start_scan(ScanFilter {
                services: vec![BLE_SERVICE_UUID],
            })
            .await
            .map_err(|e| BearerError::Unavailable(format!("ble scan: {e}")))?;
        let shared = Arc::clone(shared);
        let timeout = config.connect_timeout;
        Ok(tokio::spawn(async move {
            let mut events = events;
            // Connection attempts in progress; dropping the set (when this
            // task is aborted) aborts them.
            let mut children = JoinSet::new();
            while let Some(event) = events.next().await {
                while children.try_join_next().is_some() {}
                match event {
                    CentralEvent::DeviceDiscovered(id)
                    | CentralEvent::DeviceUpdated(id)
                    | CentralEvent::ServicesAdvertisement { id, .. } => {
                        let Ok(peripheral) = adapter.peripheral(&id).await else {
                            continue;
                        };
                        let addr = peripheral.address().into_inner();
                        let linked = {
                            let table = shared.table();
                            table.has(addr, Path::Central) || !table.has_room()
                        };
                        if linked || !shared.connecting().insert(addr) {
                            continue;
                        }
                        let shared = Arc::clone(&shared);
                        children.spawn(async move {
                            if let Err(error) = connect(&shared, &peripheral, timeout).await {
                                tracing::debug!(peer = %ble_link(addr), %error, "ble connect failed");
                                let _ = peripheral.disconnect().await;
                            }
                            shared.connecting().remove(&addr);
                        });
                    }
                    CentralEvent::DeviceDisconnected(id) => {
                        if let Ok(peripheral) = adapter.peripheral(&id).await {
                            let addr = peripheral.address().into_inner();
                            shared.link_down(addr, Path::Central).await;
                        }
                    }
                    _ => {}
                }
            }
            children.abort_all();
            let _ = adapter.stop_scan().await;
        }))
    }

    /// Connects to one peripheral, checks it serves fog, subscribes to TX and
    /// registers the link. Incoming notifications are forwarded by a task
    /// that lives as long as the notification stream.
    async fn connect(
        shared: &Arc<Shared>,
        peripheral: &Peripheral,
        timeout: Duration,
    ) -> Result<(), btleplug::Error> {
        let advertised = peripheral
            .properties()
            .await?
            .is_some_and(|p| p.services.contains(&BLE_SERVICE_UUID));
        if !advertised {
            return Ok(());
        }
        let addr = peripheral.address().into_inner();
        if !peripheral.is_connected().await? {
            peripheral.connect_with_timeout(timeout).await?;
        }
        peripheral.discover_services_with_timeout(timeout).await?;
        let characteristics = peripheral.characteristics();
        let find = |uuid, flag| {
            characteristics
                .iter()
                .find(|c| c.service_uuid == BLE_SERVICE_UUID && c.uuid == uuid)
                .filter(|c| c.properties.intersects(flag))
                .cloned()
        };
        let (Some(rx), Some(tx)) = (
            find(BLE_RX_UUID, CharPropFlags::WRITE_WITHOUT_RESPONSE),
            find(BLE_TX_UUID, CharPropFlags::NOTIFY),
        ) else {
            return Err(btleplug::Error::NoSuchCharacteristic);
        };
        let mut notifications = peripheral.notifications().await?;
        peripheral.subscribe(&tx).await?;
        let payload = payload_from_att_mtu(Some(peripheral.mtu()));
        let link = Link::Central {
            peripheral: peripheral.clone(),
            rx,
        };
        if !shared.link_up(addr, Path::Central, link, payload).await {
            return Err(btleplug::Error::Other("ble link table full".into()));
        }
        let reader_shared = Arc::clone(shared);
        let reader = tokio::spawn(async move {
            while let Some(note) = notifications.next().await {
                if note.uuid == BLE_TX_UUID {
                    reader_shared.frame(addr, note.value);
                }
            }
            reader_shared.link_down(addr, Path::Central).await;
        });
        shared.set_link_task(addr, Path::Central, reader);
        Ok(())
    }
}

// ---------------------------------------------------------------------------
// Peripheral role (bluer, Linux)
// ---------------------------------------------------------------------------

#[cfg(target_os = "linux")]
mod peripheral {
    use std::sync::Arc;

    use bluer::adv::{Advertisement, AdvertisementHandle};
    use bluer::gatt::local::{
        Application, ApplicationHandle, Characteristic, CharacteristicControlEvent,
        CharacteristicNotify, CharacteristicNotifyMethod, CharacteristicWrite,
        CharacteristicWriteMethod, ReqError, Service, characteristic_control,
    };
    use futures_util::StreamExt as _;
    use tokio::task::JoinHandle;

    use super::{
        BLE_RX_UUID, BLE_SERVICE_UUID, BLE_TX_UUID, BleConfig, Link, Path, Shared, no_adapter,
    };
    use crate::error::BearerError;

    /// Keeps the GATT application and the advertisement registered; dropping
    /// it unregisters both.
    pub(super) struct Registration {
        _app: ApplicationHandle,
        _adv: AdvertisementHandle,
        _session: bluer::Session,
    }

    impl std::fmt::Debug for Registration {
        fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
            f.write_str("Registration")
        }
    }

    /// Serves the fog GATT service and advertises it.
    pub(super) async fn start(
        config: &BleConfig,
        shared: &Arc<Shared>,
        tasks: &mut Vec<JoinHandle<()>>,
    ) -> Result<Registration, BearerError> {
        let session = bluer::Session::new().await.map_err(no_adapter)?;
        let adapter = match &config.adapter {
            Some(name) => session.adapter(name).map_err(no_adapter)?,
            None => session.default_adapter().await.map_err(no_adapter)?,
        };
        // Fails here when the named adapter does not exist.
        adapter.address().await.map_err(no_adapter)?;

        let write_shared = Arc::clone(shared);
        let rx = Characteristic {
            uuid: BLE_RX_UUID,
            write: Some(CharacteristicWrite {
                write: true,
                write_without_response: true,
                method: CharacteristicWriteMethod::Fun(Box::new(move |value, request| {
                    let shared = Arc::clone(&write_shared);
                    Box::pin(async move {
                        // A frame is one whole write; fog centrals never
                        // send long (offset) writes.
                        if request.offset != 0 {
                            return Err(ReqError::InvalidOffset);
                        }
                        shared.frame(request.device_address.0, value);
                        Ok(())
                    })
                })),
                ..Default::default()
            }),
            ..Default::default()
        };
        let (control, control_handle) = characteristic_control();
        let tx = Characteristic {
            uuid: BLE_TX_UUID,
            notify: Some(CharacteristicNotify {
                notify: true,
                method: CharacteristicNotifyMethod::Io,
                ..Default::default()
            }),
            control_handle,
            ..Default::default()
        };
        let app = Application {
            services: vec![Service {
                uuid: BLE_SERVICE_UUID,
                primary: true,
                characteristics: vec![rx, tx],
                ..Default::default()
            }],
            ..Default::default()
        };
        let app = adapter
            .serve_gatt_application(app)
            .await
            .map_err(|e| BearerError::Unavailable(format!("ble gatt server: {e}")))?;
        let adv = Advertisement {
            service_uuids: [BLE_SERVICE_UUID].into_iter().collect(),
            local_name: Some(config.local_name.clone()),
            discoverable: Some(true),
            ..Default::default()
        };
        let adv = adapter
            .advertise(adv)
            .await
            .map_err(|e| BearerError::Unavailable(format!("ble advertising: {e}")))?;

        let shared = Arc::clone(shared);
        tasks.push(tokio::spawn(async move {
            let mut control = control;
            while let Some(event) = control.next().await {
                let CharacteristicControlEvent::Notify(writer) = event else {
                    continue;
                };
                let addr = writer.device_address().0;
                // bluer reports what one notification carries.
                let payload = writer.mtu().min(super::BLE_MAX_FRAME);
                let writer = Arc::new(writer);
                let link = Link::Notify(Arc::clone(&writer));
                if !shared.link_up(addr, Path::Peripheral, link, payload).await {
                    continue;
                }
                let waiter_shared = Arc::clone(&shared);
                let waiter = tokio::spawn(async move {
                    let _ = writer.closed().await;
                    waiter_shared.link_down(addr, Path::Peripheral).await;
                });
                shared.set_link_task(addr, Path::Peripheral, waiter);
            }
        }));
        Ok(Registration {
            _app: app,
            _adv: adv,
            _session: session,
        })
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    const A: [u8; 6] = [0xAA, 0xBB, 0xCC, 0x00, 0x11, 0x22];
    const B: [u8; 6] = [0x01, 0x02, 0x03, 0x04, 0x05, 0x06];

    #[test]
    fn addresses_round_trip() {
        let link = ble_link(A);
        assert_eq!(link.as_str(), "ble:AA:BB:CC:00:11:22");
        assert_eq!(parse_ble_link(&link).unwrap(), A);
        assert_eq!(
            parse_ble_link(&LinkAddr::new("ble:aa:bb:cc:00:11:22")).unwrap(),
            A
        );
        assert_eq!(BleBearer::link_addr(B).as_str(), "ble:01:02:03:04:05:06");
    }

    #[test]
    fn bad_addresses_are_unknown_neighbours() {
        for text in [
            "",
            "ble:",
            "udp:127.0.0.1:1",
            "ble:AA:BB:CC:00:11",
            "ble:AA:BB:CC:00:11:22:33",
            "ble:AA:BB:CC:00:11:2",
            "ble:AA:BB:CC:00:11:ZZ",
            "ble:AA:BB:CC:00:11:+2",
            "ble:AABBCC001122",
        ] {
            assert!(
                matches!(
                    parse_ble_link(&LinkAddr::new(text)),
                    Err(BearerError::UnknownNeighbour(_))
                ),
                "{text:?}"
            );
        }
    }

    #[test]
    fn payload_is_att_mtu_minus_three() {
        assert_eq!(payload_from_att_mtu(None), 20);
        assert_eq!(payload_from_att_mtu(Some(0)), 20);
        assert_eq!(payload_from_att_mtu(Some(22)), 20);
        assert_eq!(payload_from_att_mtu(Some(23)), 20);
        assert_eq!(payload_from_att_mtu(Some(185)), 182);
        assert_eq!(payload_from_att_mtu(Some(247)), 244);
        assert_eq!(payload_from_att_mtu(Some(517)), 512);
        assert_eq!(payload_from_att_mtu(Some(u16::MAX)), 512);
    }

    #[test]
    fn frames_are_checked_against_bearer_and_link() {
        assert!(check_frame(180, 180, 244).is_ok());
        assert!(matches!(
            check_frame(181, 180, 244),
            Err(BearerError::FrameTooLarge {
                size: 181,
                mtu: 180
            })
        ));
        assert!(matches!(
            check_frame(100, 180, 20),
            Err(BearerError::FrameTooLarge { size: 100, mtu: 20 })
        ));
    }

    #[test]
    fn config_is_validated() {
        assert!(BleConfig::new().validate().is_ok());
        let mut config = BleConfig::new();
        config.mtu = 19;
        assert!(config.validate().is_err());
        config.mtu = 513;
        assert!(config.validate().is_err());
        let mut config = BleConfig::new();
        config.max_links = 0;
        assert!(config.validate().is_err());
        let mut config = BleConfig::new();
        config.central = false;
        config.peripheral = false;
        assert!(config.validate().is_err());
    }

    #[test]
    fn table_reports_up_on_first_link_and_down_on_last() {
        let mut table = LinkTable::new(4);
        assert_eq!(
            table.add(A, Path::Peripheral, 'p', 100),
            Ok(Some(BearerEvent::Up(ble_link(A))))
        );
        assert_eq!(table.add(A, Path::Central, 'c', 200), Ok(None));
        // The central link is preferred.
        assert_eq!(table.route(A), Some(('c', 200)));
        assert_eq!(table.remove(A, Path::Central), None);
        assert_eq!(table.route(A), Some(('p', 100)));
        assert_eq!(table.remove(A, Path::Central), None, "already gone");
        assert_eq!(
            table.remove(A, Path::Peripheral),
            Some(BearerEvent::Down(ble_link(A)))
        );
        assert_eq!(table.route(A), None);
        assert_eq!(table.remove(A, Path::Peripheral), None);
        assert!(table.neighbours().is_empty());
    }

    #[test]
    fn table_is_bounded() {
        let mut table = LinkTable::new(1);
        assert!(table.add(A, Path::Central, (), 20).unwrap().is_some());
        assert!(!table.has_room());
        assert_eq!(table.add(B, Path::Central, (), 20), Err(AddError::Full));
        // Another path of a known device still fits.
        assert_eq!(table.add(A, Path::Peripheral, (), 20), Ok(None));
        assert!(table.has(A, Path::Peripheral));
        assert!(!table.has(B, Path::Central));
        table.remove(A, Path::Central);
        table.remove(A, Path::Peripheral);
        assert!(table.has_room());
        assert!(table.add(B, Path::Central, (), 20).unwrap().is_some());
        assert_eq!(table.neighbours(), vec![B]);
    }

    /// Adds a test link to `addr` whose frames arrive on the returned channel.
    async fn test_link(
        bearer: &BleBearer,
        addr: [u8; 6],
        path: Path,
        payload: usize,
    ) -> mpsc::Receiver<Vec<u8>> {
        let (tx, rx) = mpsc::channel(16);
        assert!(
            bearer
                .shared
                .link_up(addr, path, Link::Test(tx), payload)
                .await
        );
        rx
    }

    #[tokio::test]
    async fn bearer_sends_over_the_preferred_link() {
        let mut bearer = BleBearer::detached(180, 8);
        assert_eq!(bearer.mtu(), 180);
        let mut events = bearer.events().unwrap();
        assert!(bearer.events().is_none());

        let mut notify = test_link(&bearer, A, Path::Peripheral, 244).await;
        assert_eq!(events.recv().await, Some(BearerEvent::Up(ble_link(A))));
        bearer.send(&ble_link(A), b"hello").await.unwrap();
        assert_eq!(notify.recv().await.unwrap(), b"hello");

        let mut write = test_link(&bearer, A, Path::Central, 244).await;
        bearer.send(&ble_link(A), b"again").await.unwrap();
        assert_eq!(write.recv().await.unwrap(), b"again");
        assert!(notify.try_recv().is_err());

        bearer.shared.link_down(A, Path::Central).await;
        bearer.shared.link_down(A, Path::Peripheral).await;
        assert_eq!(events.recv().await, Some(BearerEvent::Down(ble_link(A))));
        assert!(matches!(
            bearer.send(&ble_link(A), b"gone").await,
            Err(BearerError::UnknownNeighbour(_))
        ));
    }

    #[tokio::test]
    async fn bearer_refuses_oversized_frames_and_bad_addresses() {
        let bearer = BleBearer::detached(180, 8);
        let _small = test_link(&bearer, A, Path::Central, 20).await;
        assert!(matches!(
            bearer.send(&ble_link(A), &[0; 181]).await,
            Err(BearerError::FrameTooLarge {
                size: 181,
                mtu: 180
            })
        ));
        assert!(matches!(
            bearer.send(&ble_link(A), &[0; 21]).await,
            Err(BearerError::FrameTooLarge { size: 21, mtu: 20 })
        ));
        assert!(matches!(
            bearer.send(&LinkAddr::new("udp:1.2.3.4:5"), b"x").await,
            Err(BearerError::UnknownNeighbour(_))
        ));
        assert!(matches!(
            bearer.broadcast(&[0; 181]).await,
            Err(BearerError::FrameTooLarge { .. })
        ));
    }

    #[tokio::test]
    async fn broadcast_reaches_every_neighbour_that_fits() {
        let bearer = BleBearer::detached(180, 8);
        let mut a = test_link(&bearer, A, Path::Central, 244).await;
        let mut b = test_link(&bearer, B, Path::Peripheral, 20).await;
        // B's link is too small for this frame: A still gets it.
        bearer.broadcast(&[7; 100]).await.unwrap();
        assert_eq!(a.recv().await.unwrap(), vec![7; 100]);
        assert!(b.try_recv().is_err());
        bearer.broadcast(b"tiny").await.unwrap();
        assert_eq!(a.recv().await.unwrap(), b"tiny");
        assert_eq!(b.recv().await.unwrap(), b"tiny");
    }

    #[tokio::test]
    async fn incoming_frames_are_bounded_and_counted() {
        let mut bearer = BleBearer::detached(180, 8);
        let mut events = bearer.events().unwrap();
        bearer.shared.frame(B, b"one".to_vec());
        bearer.shared.frame(B, Vec::new());
        bearer.shared.frame(B, vec![0; BLE_MAX_FRAME + 1]);
        assert_eq!(
            events.recv().await,
            Some(BearerEvent::Frame {
                from: ble_link(B),
                data: b"one".to_vec()
            })
        );
        assert!(events.try_recv().is_err(), "bad sizes are ignored");
        for _ in 0..EVENT_CHANNEL + 5 {
            bearer.shared.frame(B, b"x".to_vec());
        }
        assert_eq!(bearer.dropped_frames(), 5);
    }

    #[tokio::test]
    async fn link_down_stops_the_task_serving_the_link() {
        let bearer = BleBearer::detached(180, 8);
        let _a = test_link(&bearer, A, Path::Central, 244).await;
        let (alive, mut gone) = tokio::sync::oneshot::channel::<()>();
        let task = tokio::spawn(async move {
            let _alive = alive;
            std::future::pending::<()>().await;
        });
        bearer.shared.set_link_task(A, Path::Central, task);
        bearer.shared.link_down(A, Path::Central).await;
        // The task was aborted, so its sender is dropped.
        assert!((&mut gone).await.is_err());
        assert!(bearer.shared.link_tasks().is_empty());
    }

    #[tokio::test]
    async fn link_table_full_refuses_new_devices() {
        let bearer = BleBearer::detached(180, 1);
        let _a = test_link(&bearer, A, Path::Central, 244).await;
        let (tx, _rx) = mpsc::channel(1);
        assert!(
            !bearer
                .shared
                .link_up(B, Path::Central, Link::Test(tx), 244)
                .await
        );
    }
}
