//! The store-and-forward queue: direct messages for peers that cannot be
//! reached now, kept in SQLite until the peer comes back or they expire.
//!
//! Invariants:
//! - The queue never holds more than its capacity. When full, a new message
//!   evicts the least urgent, oldest queued message only if that one is
//!   strictly less urgent; otherwise the new message is refused
//!   ([`PushOutcome::Refused`]) and nothing changes.
//! - Expired messages are never handed out; they are purged on every push
//!   and every take.
//! - Every write is one SQLite transaction (WAL), so a crash leaves either
//!   the old or the new state and the queue survives restarts.
//! - A row decodes or is dropped: a damaged row is deleted and logged, never
//!   a panic.

use std::path::Path;

use libp2p::PeerId;
use rusqlite::{Connection, OptionalExtension, params};

use crate::envelope::Envelope;

/// Errors of the queue.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum QueueError {
    /// The SQLite database failed.
    #[error("store-and-forward database: {0}")]
    Sql(#[from] rusqlite::Error),
    /// The envelope's payload is too large to store.
    #[error(transparent)]
    TooLarge(#[from] crate::envelope::TooLarge),
}

/// What happened to a pushed message.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub enum PushOutcome {
    /// Stored under this sequence number.
    Queued(i64),
    /// Stored after evicting a less urgent message.
    QueuedAfterEviction(i64),
    /// The queue is full of messages at least as urgent: not stored.
    Refused,
    /// The message had already expired: not stored.
    Expired,
}

/// One queued message.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Queued {
    /// Position in the queue (monotonic).
    pub seq: i64,
    /// The peer it is for.
    pub peer: PeerId,
    /// The message.
    pub envelope: Envelope,
}

/// A bounded, persistent store-and-forward queue.
#[derive(Debug)]
pub struct Queue {
    conn: Connection,
    capacity: usize,
}

impl Queue {
    /// Opens (or creates) the queue at `path`, bounded to `capacity` messages.
    pub fn open(path: &Path, capacity: usize) -> Result<Self, QueueError> {
        Self::with_connection(Connection::open(path)?, capacity)
    }

    /// An in-memory queue (lost on drop; for nodes without a data directory).
    pub fn in_memory(capacity: usize) -> Result<Self, QueueError> {
        Self::with_connection(Connection::open_in_memory()?, capacity)
    }

    fn with_connection(conn: Connection, capacity: usize) -> Result<Self, QueueError> {
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS queue (
                seq INTEGER PRIMARY KEY AUTOINCREMENT,
                peer BLOB NOT NULL,
                priority INTEGER NOT NULL,
                expires_at INTEGER NOT NULL,
                envelope BLOB NOT NULL
            );
            CREATE INDEX IF NOT EXISTS queue_peer ON queue (peer, priority, seq);
            CREATE INDEX IF NOT EXISTS queue_evict ON queue (priority DESC, seq);",
        )?;
        Ok(Self { conn, capacity })
    }

    /// The bound on the number of queued messages.
    pub fn capacity(&self) -> usize {
        self.capacity
    }

    /// Number of queued messages (expired ones included until purged).
    pub fn len(&self) -> Result<usize, QueueError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM queue", [], |r| r.get(0))?;
        Ok(n as usize)
    }

    /// Whether nothing is queued.
    pub fn is_empty(&self) -> Result<bool, QueueError> {
        Ok(self.len()? == 0)
    }

    /// Deletes every message expired at `now_ms`; returns how many.
    pub fn purge_expired(&self, now_ms: u64) -> Result<usize, QueueError> {
        Ok(self.conn.execute(
            "DELETE FROM queue WHERE expires_at != 0 AND expires_at <= ?1",
            params![now_ms as i64],
        )?)
    }

    /// Queues `envelope` for `peer` (see the module invariants for a full queue).
    pub fn push(
        &mut self,
        peer: &PeerId,
        envelope: &Envelope,
        now_ms: u64,
    ) -> Result<PushOutcome, QueueError> {
        if envelope.is_expired(now_ms) {
            return Ok(PushOutcome::Expired);
        }
        let bytes = envelope.encode()?;
        let tx = self.conn.transaction()?;
        tx.execute(
            "DELETE FROM queue WHERE expires_at != 0 AND expires_at <= ?1",
            params![now_ms as i64],
        )?;
        let count: i64 = tx.query_row("SELECT COUNT(*) FROM queue", [], |r| r.get(0))?;
        let mut evicted = false;
        if count as usize >= self.capacity {
            let victim: Option<(i64, i64)> = tx
                .query_row(
                    "SELECT seq, priority FROM queue ORDER BY priority DESC, seq ASC LIMIT 1",
                    [],
                    |r| Ok((r.get(0)?, r.get(1)?)),
                )
                .optional()?;
            match victim {
                Some((seq, prio)) if prio > i64::from(envelope.priority.level()) => {
                    tx.execute("DELETE FROM queue WHERE seq = ?1", params![seq])?;
                    evicted = true;
                }
                _ => return Ok(PushOutcome::Refused),
            }
        }
        tx.execute(
            "INSERT INTO queue (peer, priority, expires_at, envelope) VALUES (?1, ?2, ?3, ?4)",
            params![
                peer.to_bytes(),
                i64::from(envelope.priority.level()),
                envelope.expires_at_ms as i64,
                bytes
            ],
        )?;
        let seq = tx.last_insert_rowid();
        tx.commit()?;
        Ok(if evicted {
            PushOutcome::QueuedAfterEviction(seq)
        } else {
            PushOutcome::Queued(seq)
        })
    }

    /// Up to `limit` unexpired messages for `peer`, most urgent first, then
    /// oldest first. They stay queued until [`Queue::remove`].
    pub fn pending_for(
        &self,
        peer: &PeerId,
        now_ms: u64,
        limit: usize,
    ) -> Result<Vec<Queued>, QueueError> {
        self.purge_expired(now_ms)?;
        let mut stmt = self.conn.prepare_cached(
            "SELECT seq, envelope FROM queue WHERE peer = ?1 ORDER BY priority ASC, seq ASC LIMIT ?2",
        )?;
        let rows = stmt
            .query_map(params![peer.to_bytes(), limit as i64], |r| {
                Ok((r.get::<_, i64>(0)?, r.get::<_, Vec<u8>>(1)?))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for (seq, bytes) in rows {
            match Envelope::decode(&bytes) {
                Ok(envelope) => out.push(Queued {
                    seq,
                    peer: *peer,
                    envelope,
                }),
                Err(e) => {
                    tracing::warn!(seq, error = %e, "dropping a damaged store-and-forward row");
                    self.remove(seq)?;
                }
            }
        }
        Ok(out)
    }

    /// The distinct peers with queued messages (at most `limit`).
    pub fn peers(&self, limit: usize) -> Result<Vec<PeerId>, QueueError> {
        let mut stmt = self
            .conn
            .prepare_cached("SELECT DISTINCT peer FROM queue LIMIT ?1")?;
        let rows = stmt
            .query_map(params![limit as i64], |r| r.get::<_, Vec<u8>>(0))?
            .collect::<Result<Vec<_>, _>>()?;
        Ok(rows
            .into_iter()
            .filter_map(|b| PeerId::from_bytes(&b).ok())
            .collect())
    }

    /// Deletes one message (delivered, or refused by its receiver).
    pub fn remove(&self, seq: i64) -> Result<bool, QueueError> {
        Ok(self
            .conn
            .execute("DELETE FROM queue WHERE seq = ?1", params![seq])?
            > 0)
    }

    /// Number of queued messages per priority level, most urgent first.
    pub fn counts_by_priority(&self) -> Result<[usize; 5], QueueError> {
        let mut out = [0usize; 5];
        let mut stmt = self
            .conn
            .prepare_cached("SELECT priority, COUNT(*) FROM queue GROUP BY priority")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, i64>(0)?, r.get::<_, i64>(1)?)))?;
        for row in rows {
            let (p, n) = row?;
            if let Some(slot) = usize::try_from(p).ok().and_then(|p| out.get_mut(p)) {
                *slot = n as usize;
            }
        }
        Ok(out)
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Kind, Priority};
    use proptest::prelude::*;

    fn env(id: u64, priority: Priority, expires_at_ms: u64) -> Envelope {
        Envelope {
            id,
            kind: Kind::Message,
            priority,
            expires_at_ms,
            payload: id.to_be_bytes().to_vec(),
        }
    }

    #[test]
    fn survives_reopen_and_orders_by_priority() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("q.sqlite");
        let peer = PeerId::random();
        {
            let mut q = Queue::open(&path, 10).unwrap();
            q.push(&peer, &env(1, Priority::Low, 0), 0).unwrap();
            q.push(&peer, &env(2, Priority::Critical, 0), 0).unwrap();
            q.push(&peer, &env(3, Priority::Low, 0), 0).unwrap();
        }
        let q = Queue::open(&path, 10).unwrap();
        let ids: Vec<u64> = q
            .pending_for(&peer, 0, 10)
            .unwrap()
            .iter()
            .map(|m| m.envelope.id)
            .collect();
        assert_eq!(ids, [2, 1, 3]);
        assert_eq!(q.peers(10).unwrap(), [peer]);
    }

    #[test]
    fn expired_messages_are_never_handed_out() {
        let mut q = Queue::in_memory(10).unwrap();
        let peer = PeerId::random();
        assert_eq!(
            q.push(&peer, &env(1, Priority::Normal, 5), 10).unwrap(),
            PushOutcome::Expired
        );
        q.push(&peer, &env(2, Priority::Normal, 50), 10).unwrap();
        assert_eq!(q.pending_for(&peer, 49, 10).unwrap().len(), 1);
        assert!(q.pending_for(&peer, 50, 10).unwrap().is_empty());
        assert!(q.is_empty().unwrap());
    }

    #[derive(Debug, Clone)]
    enum Op {
        Push(u8, u8),
        Take(u8),
        Tick(u8),
    }

    fn op() -> impl Strategy<Value = Op> {
        prop_oneof![
            (0u8..5, 0u8..3).prop_map(|(p, peer)| Op::Push(p, peer)),
            (0u8..3).prop_map(Op::Take),
            any::<u8>().prop_map(Op::Tick),
        ]
    }

    proptest! {
        /// The queue against a plain model: bounded, eviction of the least
        /// urgent oldest, expiry, and per-peer ordering.
        #[test]
        fn queue_matches_model(ops in proptest::collection::vec(op(), 1..60), cap in 1usize..6) {
            let peers = [PeerId::random(), PeerId::random(), PeerId::random()];
            let mut q = Queue::in_memory(cap).unwrap();
            // model: (seq, peer, priority, expires)
            let mut model: Vec<(i64, usize, u8, u64)> = Vec::new();
            let mut now = 1u64;
            let mut next_id = 0u64;
            for op in ops {
                match op {
                    Op::Push(p, peer) => {
                        next_id += 1;
                        let expires = now + 20;
                        let prio = Priority::from_level(p).unwrap();
                        let out = q.push(&peers[peer as usize], &env(next_id, prio, expires), now).unwrap();
                        model.retain(|m| m.3 > now);
                        let stored = match out {
                            PushOutcome::Queued(seq) => { prop_assert!(model.len() < cap); Some(seq) }
                            PushOutcome::QueuedAfterEviction(seq) => {
                                prop_assert_eq!(model.len(), cap);
                                let victim = model.iter().enumerate()
                                    .max_by_key(|(_, m)| (m.2, std::cmp::Reverse(m.0))).map(|(i, _)| i).unwrap();
                                prop_assert!(model[victim].2 > p);
                                model.remove(victim);
                                Some(seq)
                            }
                            PushOutcome::Refused => {
                                prop_assert_eq!(model.len(), cap);
                                prop_assert!(model.iter().all(|m| m.2 <= p));
                                None
                            }
                            PushOutcome::Expired => { prop_assert!(false, "not expired"); None }
                        };
                        if let Some(seq) = stored { model.push((seq, peer as usize, p, expires)); }
                    }
                    Op::Take(peer) => {
                        model.retain(|m| m.3 > now);
                        let got: Vec<i64> = q.pending_for(&peers[peer as usize], now, 100).unwrap().iter().map(|m| m.seq).collect();
                        let mut want: Vec<(u8, i64)> = model.iter().filter(|m| m.1 == peer as usize).map(|m| (m.2, m.0)).collect();
                        want.sort_unstable();
                        prop_assert_eq!(got.clone(), want.iter().map(|w| w.1).collect::<Vec<_>>());
                        if let Some(first) = got.first() {
                            q.remove(*first).unwrap();
                            model.retain(|m| m.0 != *first);
                        }
                    }
                    Op::Tick(d) => now += u64::from(d % 8),
                }
                prop_assert!(q.len().unwrap() <= cap);
            }
        }
    }
}
