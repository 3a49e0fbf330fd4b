//! The persistent bundle store (SQLite, WAL).
//!
//! Bundles wait here until a path appears. The store is bounded by a bundle
//! count and a byte total. When a new bundle does not fit, expired bundles go
//! first, then the lowest-priority bundles that expire soonest, but never a
//! bundle of higher priority than the newcomer: then the newcomer is refused
//! ([`Insert::Refused`]). Every change is one transaction, so a crash leaves
//! either the old or the new state. Ids of bundles that left the store are
//! remembered until their bundle would have expired (bounded), so a copy that
//! comes back is recognised as a duplicate.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::NodeId;
use crate::bundle::{Bundle, BundleId};
use crate::error::StoreError;

/// Bundle priority in the store (BPv6's classes; BPv7 leaves it local).
#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord, Hash, Default)]
#[non_exhaustive]
pub enum Priority {
    /// Evicted first.
    Bulk,
    /// The default.
    #[default]
    Normal,
    /// Evicted last.
    Expedited,
}

impl Priority {
    fn code(self) -> i64 {
        match self {
            Priority::Bulk => 0,
            Priority::Normal => 1,
            Priority::Expedited => 2,
        }
    }

    fn from_code(code: i64) -> Self {
        match code {
            i64::MIN..=0 => Priority::Bulk,
            1 => Priority::Normal,
            _ => Priority::Expedited,
        }
    }
}

/// Limits of a [`BundleStore`].
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
#[non_exhaustive]
pub struct StoreConfig {
    /// Most bundles held.
    pub max_bundles: usize,
    /// Most payload bytes (encoded bundle sizes) held.
    pub max_bytes: usize,
    /// Most ids remembered for duplicate detection after a bundle left.
    pub max_seen: usize,
}

impl Default for StoreConfig {
    fn default() -> Self {
        StoreConfig {
            max_bundles: 10_000,
            max_bytes: 256 * 1024 * 1024,
            max_seen: 100_000,
        }
    }
}

impl StoreConfig {
    /// A config with the given bundle and byte limits.
    pub fn new(max_bundles: usize, max_bytes: usize) -> Self {
        StoreConfig {
            max_bundles,
            max_bytes,
            ..StoreConfig::default()
        }
    }
}

/// What [`BundleStore::insert`] did.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Insert {
    /// Stored; these bundles were evicted to make room.
    Stored {
        /// Ids evicted, in eviction order.
        evicted: Vec<BundleId>,
    },
    /// The store holds or held this bundle already; nothing changed.
    Duplicate,
    /// The store is full of bundles that outrank this one; nothing changed.
    Refused,
}

/// What the store knows about a bundle without decoding it.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StoredMeta {
    /// The bundle id.
    pub id: BundleId,
    /// Encoded size in bytes.
    pub size: usize,
    /// Store priority.
    pub priority: Priority,
    /// DTN time (ms) at which it expires.
    pub expires_at_ms: u64,
    /// DTN time (ms) at which it arrived here.
    pub received_at_ms: u64,
    /// Routing copies this node holds (spray-and-wait), 1 otherwise.
    pub copies: u32,
    /// The destination's routing key, if it has one.
    pub destination: Option<NodeId>,
}

/// A persistent, bounded, deduplicating bundle store.
#[derive(Debug)]
pub struct BundleStore {
    conn: Connection,
    config: StoreConfig,
}

const SCHEMA: &str = "
CREATE TABLE IF NOT EXISTS bundles (
    id TEXT PRIMARY KEY,
    data BLOB NOT NULL,
    size INTEGER NOT NULL,
    priority INTEGER NOT NULL,
    expires_at INTEGER NOT NULL,
    received_at INTEGER NOT NULL,
    copies INTEGER NOT NULL,
    destination INTEGER
);
CREATE INDEX IF NOT EXISTS bundles_eviction ON bundles (priority, expires_at);
CREATE TABLE IF NOT EXISTS seen (
    id TEXT PRIMARY KEY,
    expires_at INTEGER NOT NULL
);
CREATE INDEX IF NOT EXISTS seen_expiry ON seen (expires_at);
PRAGMA user_version = 1;
";

fn to_sql(value: u64) -> i64 {
    i64::try_from(value).unwrap_or(i64::MAX)
}

fn from_sql(value: i64) -> u64 {
    u64::try_from(value).unwrap_or(0)
}

impl BundleStore {
    /// Opens (or creates) the store at `path`.
    pub fn open(path: impl AsRef<Path>, config: StoreConfig) -> Result<Self, StoreError> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "FULL")?;
        Self::init(conn, config)
    }

    /// A store that lives in memory only (simulation, tests).
    pub fn open_in_memory(config: StoreConfig) -> Result<Self, StoreError> {
        Self::init(Connection::open_in_memory()?, config)
    }

    fn init(conn: Connection, config: StoreConfig) -> Result<Self, StoreError> {
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(SCHEMA)?;
        Ok(BundleStore { conn, config })
    }

    /// The store's limits.
    pub fn config(&self) -> StoreConfig {
        self.config
    }

    /// Stores `bundle` received at `now_ms` (DTN time), evicting as the
    /// module documentation describes. `copies` is the number of routing
    /// copies this node now holds (1 unless spray-and-wait).
    pub fn insert(
        &mut self,
        bundle: &Bundle,
        priority: Priority,
        copies: u32,
        now_ms: u64,
    ) -> Result<Insert, StoreError> {
        let id = bundle.id();
        let data = bundle.encode();
        if data.len() > self.config.max_bytes {
            return Err(StoreError::DoesNotFit {
                size: data.len(),
                capacity: self.config.max_bytes,
            });
        }
        let expires_at = bundle.expires_at_dtn_ms().unwrap_or_else(|| {
            let lifetime = u64::try_from(bundle.lifetime().as_millis()).unwrap_or(u64::MAX);
            now_ms.saturating_add(lifetime.saturating_sub(bundle.age_ms().unwrap_or(0)))
        });
        let max_bundles = self.config.max_bundles;
        let max_bytes = self.config.max_bytes;
        let tx = self.conn.transaction()?;
        let known: bool = tx.query_row(
            "SELECT EXISTS(SELECT 1 FROM bundles WHERE id = ?1) OR EXISTS(SELECT 1 FROM seen WHERE id = ?1)",
            params![id.as_str()],
            |row| row.get(0),
        )?;
        if known {
            return Ok(Insert::Duplicate);
        }
        let mut evicted = Vec::new();
        // Expired bundles go first.
        {
            let mut stmt = tx.prepare("SELECT id FROM bundles WHERE expires_at <= ?1")?;
            let expired: Vec<String> = stmt
                .query_map(params![to_sql(now_ms)], |row| row.get(0))?
                .collect::<Result<_, _>>()?;
            for old in expired {
                tx.execute("DELETE FROM bundles WHERE id = ?1", params![old])?;
                evicted.push(BundleId::from_wire(old));
            }
        }
        loop {
            let (count, bytes): (i64, i64) = tx.query_row(
                "SELECT COUNT(*), COALESCE(SUM(size), 0) FROM bundles",
                [],
                |row| Ok((row.get(0)?, row.get(1)?)),
            )?;
            let fits = (count as usize) < max_bundles && bytes as usize + data.len() <= max_bytes;
            if fits {
                break;
            }
            let victim: Option<(String, i64)> = tx
                .query_row(
                    "SELECT id, priority FROM bundles ORDER BY priority ASC, expires_at ASC LIMIT 1",
                    [],
                    |row| Ok((row.get(0)?, row.get(1)?)),
                )
                .optional()?;
            match victim {
                Some((victim, victim_priority)) if victim_priority <= priority.code() => {
                    tx.execute("DELETE FROM bundles WHERE id = ?1", params![victim])?;
                    evicted.push(BundleId::from_wire(victim));
                }
                // Everything left outranks the newcomer (or the store is
                // empty and still too small): refuse, roll back evictions.
                _ => return Ok(Insert::Refused),
            }
        }
        tx.execute(
            "INSERT INTO bundles (id, data, size, priority, expires_at, received_at, copies, destination)
             VALUES (?1, ?2, ?3, ?4, ?5, ?6, ?7, ?8)",
            params![
                id.as_str(),
                data,
                data.len() as i64,
                priority.code(),
                to_sql(expires_at),
                to_sql(now_ms),
                i64::from(copies),
                bundle.destination().node_id().map(|n| n.0 as i64),
            ],
        )?;
        tx.commit()?;
        tracing::debug!(bundle = %id, evicted = evicted.len(), "bundle stored");
        Ok(Insert::Stored { evicted })
    }

    /// Whether the store holds `id` now.
    pub fn contains(&self, id: &BundleId) -> Result<bool, StoreError> {
        Ok(self.conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM bundles WHERE id = ?1)",
            params![id.as_str()],
            |row| row.get(0),
        )?)
    }

    /// Whether `id` is held now or was held before (duplicate detection).
    pub fn knows(&self, id: &BundleId) -> Result<bool, StoreError> {
        Ok(self.conn.query_row(
            "SELECT EXISTS(SELECT 1 FROM bundles WHERE id = ?1) OR EXISTS(SELECT 1 FROM seen WHERE id = ?1)",
            params![id.as_str()],
            |row| row.get(0),
        )?)
    }

    /// The bundle `id`, decoded.
    pub fn get(&self, id: &BundleId) -> Result<Option<Bundle>, StoreError> {
        let data: Option<Vec<u8>> = self
            .conn
            .query_row(
                "SELECT data FROM bundles WHERE id = ?1",
                params![id.as_str()],
                |row| row.get(0),
            )
            .optional()?;
        data.map(|bytes| {
            Bundle::decode(&bytes).map_err(|source| StoreError::Damaged {
                id: id.to_string(),
                source,
            })
        })
        .transpose()
    }

    /// Removes `id` (delivered, or handed on for good) and remembers it as
    /// seen. Returns whether it was held.
    pub fn remove(&mut self, id: &BundleId) -> Result<bool, StoreError> {
        let tx = self.conn.transaction()?;
        let expires: Option<i64> = tx
            .query_row(
                "SELECT expires_at FROM bundles WHERE id = ?1",
                params![id.as_str()],
                |row| row.get(0),
            )
            .optional()?;
        let Some(expires) = expires else {
            return Ok(false);
        };
        tx.execute("DELETE FROM bundles WHERE id = ?1", params![id.as_str()])?;
        remember(&tx, id, expires, self.config.max_seen)?;
        tx.commit()?;
        Ok(true)
    }

    /// Records `id` as seen without storing it (for example a bundle that
    /// was delivered to the local application on arrival).
    pub fn mark_seen(&mut self, id: &BundleId, expires_at_ms: u64) -> Result<(), StoreError> {
        let tx = self.conn.transaction()?;
        remember(&tx, id, to_sql(expires_at_ms), self.config.max_seen)?;
        tx.commit()?;
        Ok(())
    }

    /// Sets the routing copies held for `id`.
    pub fn set_copies(&mut self, id: &BundleId, copies: u32) -> Result<(), StoreError> {
        self.conn.execute(
            "UPDATE bundles SET copies = ?2 WHERE id = ?1",
            params![id.as_str(), i64::from(copies)],
        )?;
        Ok(())
    }

    /// Every stored bundle's metadata, oldest first.
    pub fn list(&self) -> Result<Vec<StoredMeta>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {META_COLUMNS} FROM bundles ORDER BY received_at, id"
        ))?;
        let rows = stmt.query_map([], meta_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// The metadata of the stored bundles addressed to `node`, oldest first.
    pub fn list_to(&self, node: NodeId) -> Result<Vec<StoredMeta>, StoreError> {
        let mut stmt = self.conn.prepare(&format!(
            "SELECT {META_COLUMNS} FROM bundles WHERE destination = ?1 ORDER BY received_at, id"
        ))?;
        let rows = stmt.query_map(params![node.0 as i64], meta_from_row)?;
        Ok(rows.collect::<Result<_, _>>()?)
    }

    /// One stored bundle's metadata, by id (a primary-key lookup).
    pub fn meta(&self, id: &BundleId) -> Result<Option<StoredMeta>, StoreError> {
        Ok(self
            .conn
            .query_row(
                &format!("SELECT {META_COLUMNS} FROM bundles WHERE id = ?1"),
                params![id.as_str()],
                meta_from_row,
            )
            .optional()?)
    }

    /// Drops bundles expired at `now_ms` and forgets seen ids past their
    /// expiry. Returns the dropped bundle ids.
    pub fn purge_expired(&mut self, now_ms: u64) -> Result<Vec<BundleId>, StoreError> {
        let tx = self.conn.transaction()?;
        let ids: Vec<String> = {
            let mut stmt = tx.prepare("SELECT id FROM bundles WHERE expires_at <= ?1")?;
            stmt.query_map(params![to_sql(now_ms)], |row| row.get(0))?
                .collect::<Result<_, _>>()?
        };
        tx.execute(
            "DELETE FROM bundles WHERE expires_at <= ?1",
            params![to_sql(now_ms)],
        )?;
        tx.execute(
            "DELETE FROM seen WHERE expires_at <= ?1",
            params![to_sql(now_ms)],
        )?;
        tx.commit()?;
        Ok(ids.into_iter().map(BundleId::from_wire).collect())
    }

    /// Number of bundles held.
    pub fn len(&self) -> Result<usize, StoreError> {
        let n: i64 = self
            .conn
            .query_row("SELECT COUNT(*) FROM bundles", [], |row| row.get(0))?;
        Ok(usize::try_from(n).unwrap_or(0))
    }

    /// Whether the store holds no bundle.
    pub fn is_empty(&self) -> Result<bool, StoreError> {
        Ok(self.len()? == 0)
    }

    /// Total encoded bytes held.
    pub fn bytes(&self) -> Result<usize, StoreError> {
        let n: i64 =
            self.conn
                .query_row("SELECT COALESCE(SUM(size), 0) FROM bundles", [], |row| {
                    row.get(0)
                })?;
        Ok(usize::try_from(n).unwrap_or(0))
    }
}

const META_COLUMNS: &str = "id, size, priority, expires_at, received_at, copies, destination";

fn meta_from_row(row: &rusqlite::Row<'_>) -> rusqlite::Result<StoredMeta> {
    Ok(StoredMeta {
        id: BundleId::from_wire(row.get(0)?),
        size: usize::try_from(row.get::<_, i64>(1)?).unwrap_or(0),
        priority: Priority::from_code(row.get(2)?),
        expires_at_ms: from_sql(row.get(3)?),
        received_at_ms: from_sql(row.get(4)?),
        copies: u32::try_from(row.get::<_, i64>(5)?).unwrap_or(1),
        destination: row.get::<_, Option<i64>>(6)?.map(|n| NodeId(n as u64)),
    })
}

/// Adds `id` to the seen set, dropping the soonest-expiring entries beyond `max`.
fn remember(
    tx: &rusqlite::Transaction<'_>,
    id: &BundleId,
    expires: i64,
    max: usize,
) -> Result<(), StoreError> {
    tx.execute(
        "INSERT OR REPLACE INTO seen (id, expires_at) VALUES (?1, ?2)",
        params![id.as_str(), expires],
    )?;
    tx.execute(
        "DELETE FROM seen WHERE id IN (SELECT id FROM seen ORDER BY expires_at DESC LIMIT -1 OFFSET ?1)",
        params![max as i64],
    )?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use std::time::Duration;

    use super::*;
    use crate::{BundleBuilder, CreationTimestamp, EndpointId};

    fn bundle(seq: u64, lifetime_s: u64, size: usize) -> Bundle {
        BundleBuilder::new(EndpointId::ipn(1, 0), EndpointId::ipn(2, 0))
            .created(CreationTimestamp {
                dtn_ms: 1_000_000,
                seq,
            })
            .lifetime(Duration::from_secs(lifetime_s))
            .payload(vec![0; size])
            .build()
    }

    #[test]
    fn deduplicates_also_after_removal() {
        let mut store = BundleStore::open_in_memory(StoreConfig::default()).unwrap();
        let b = bundle(1, 60, 10);
        assert!(matches!(
            store.insert(&b, Priority::Normal, 1, 1_000_000).unwrap(),
            Insert::Stored { .. }
        ));
        assert_eq!(
            store.insert(&b, Priority::Normal, 1, 1_000_000).unwrap(),
            Insert::Duplicate
        );
        assert!(store.remove(&b.id()).unwrap());
        assert_eq!(
            store.insert(&b, Priority::Normal, 1, 1_000_000).unwrap(),
            Insert::Duplicate
        );
        assert!(store.is_empty().unwrap());
    }

    #[test]
    fn evicts_expired_then_lowest_priority() {
        let mut store = BundleStore::open_in_memory(StoreConfig::new(2, 1 << 20)).unwrap();
        let short = bundle(1, 1, 10);
        let bulk = bundle(2, 600, 10);
        store
            .insert(&short, Priority::Expedited, 1, 1_000_000)
            .unwrap();
        store.insert(&bulk, Priority::Bulk, 1, 1_000_000).unwrap();
        // At t+2s the expired expedited bundle goes before the live bulk one.
        let third = bundle(3, 600, 10);
        let Insert::Stored { evicted } = store
            .insert(&third, Priority::Normal, 1, 1_002_000)
            .unwrap()
        else {
            panic!("not stored")
        };
        assert_eq!(evicted, vec![short.id()]);
        let fourth = bundle(4, 600, 10);
        let Insert::Stored { evicted } = store
            .insert(&fourth, Priority::Normal, 1, 1_002_000)
            .unwrap()
        else {
            panic!("not stored")
        };
        assert_eq!(evicted, vec![bulk.id()]);
        // Now both held bundles are Normal: a Bulk newcomer is refused.
        assert_eq!(
            store
                .insert(&bundle(5, 600, 10), Priority::Bulk, 1, 1_002_000)
                .unwrap(),
            Insert::Refused
        );
        assert_eq!(store.len().unwrap(), 2);
    }

    #[test]
    fn byte_limit_holds() {
        let mut store = BundleStore::open_in_memory(StoreConfig::new(100, 400)).unwrap();
        for seq in 0..10 {
            store
                .insert(&bundle(seq, 600, 100), Priority::Normal, 1, 1_000_000)
                .unwrap();
            assert!(store.bytes().unwrap() <= 400);
        }
        assert!(matches!(
            store.insert(&bundle(99, 600, 1000), Priority::Normal, 1, 1_000_000),
            Err(StoreError::DoesNotFit { .. })
        ));
    }
}
