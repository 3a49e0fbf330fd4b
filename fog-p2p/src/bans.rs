//! The persistent ban list: one SQLite table next to the store-and-forward
//! queue, so a ban survives a restart of the node.
//!
//! Invariants:
//! - The table holds at most `capacity` peers; banning one more lifts the
//!   oldest ban (the caller is told which, to unblock it).
//! - Every write is one statement or one transaction (WAL).
//! - A row that does not decode to a peer id is deleted and logged, never a
//!   panic.

use std::path::Path;

use libp2p::PeerId;
use rusqlite::{Connection, OptionalExtension, params};

/// The ban table of a node's database.
#[derive(Debug)]
pub(crate) struct BanStore {
    conn: Connection,
    capacity: usize,
}

impl BanStore {
    /// Opens (or creates) the ban table in the SQLite file at `path`.
    pub(crate) fn open(path: &Path, capacity: usize) -> Result<Self, rusqlite::Error> {
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        // The queue may hold a write lock for a moment on the same file.
        conn.busy_timeout(std::time::Duration::from_secs(5))?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS bans (
                peer BLOB PRIMARY KEY,
                since INTEGER NOT NULL
            );
            CREATE INDEX IF NOT EXISTS bans_since ON bans (since);",
        )?;
        Ok(Self {
            conn,
            capacity: capacity.max(1),
        })
    }

    /// Every banned peer with the time of its ban (ms), oldest first.
    /// Undecodable rows are deleted.
    pub(crate) fn load(&self) -> Result<Vec<(PeerId, u64)>, rusqlite::Error> {
        let mut stmt = self
            .conn
            .prepare("SELECT peer, since FROM bans ORDER BY since, rowid")?;
        let rows: Vec<(Vec<u8>, i64)> = stmt
            .query_map([], |r| Ok((r.get(0)?, r.get(1)?)))?
            .collect::<Result<_, _>>()?;
        let mut out = Vec::with_capacity(rows.len());
        for (bytes, since) in rows {
            if let Ok(peer) = PeerId::from_bytes(&bytes) {
                out.push((peer, since.max(0) as u64));
            } else {
                tracing::warn!("dropping an undecodable row of the ban list");
                self.conn
                    .execute("DELETE FROM bans WHERE peer = ?1", params![bytes])?;
            }
        }
        Ok(out)
    }

    /// Records a ban; when the table is full the oldest other ban is lifted
    /// and returned.
    pub(crate) fn insert(
        &mut self,
        peer: &PeerId,
        since_ms: u64,
    ) -> Result<Option<PeerId>, rusqlite::Error> {
        let tx = self.conn.transaction()?;
        tx.execute(
            "INSERT OR REPLACE INTO bans (peer, since) VALUES (?1, ?2)",
            params![peer.to_bytes(), since_ms as i64],
        )?;
        let count: i64 = tx.query_row("SELECT COUNT(*) FROM bans", [], |r| r.get(0))?;
        let mut lifted = None;
        if count as usize > self.capacity {
            let oldest: Option<Vec<u8>> = tx
                .query_row(
                    "SELECT peer FROM bans WHERE peer != ?1 ORDER BY since, rowid LIMIT 1",
                    params![peer.to_bytes()],
                    |r| r.get(0),
                )
                .optional()?;
            if let Some(bytes) = oldest {
                tx.execute("DELETE FROM bans WHERE peer = ?1", params![bytes])?;
                lifted = PeerId::from_bytes(&bytes).ok();
            }
        }
        tx.commit()?;
        Ok(lifted)
    }

    /// Lifts a ban; true when there was one.
    pub(crate) fn remove(&self, peer: &PeerId) -> Result<bool, rusqlite::Error> {
        Ok(self
            .conn
            .execute("DELETE FROM bans WHERE peer = ?1", params![peer.to_bytes()])?
            > 0)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn bans_survive_reopen_and_are_bounded() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.sqlite");
        let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
        {
            let mut store = BanStore::open(&path, 2).unwrap();
            assert_eq!(store.insert(&a, 1).unwrap(), None);
            assert_eq!(store.insert(&b, 2).unwrap(), None);
            assert_eq!(
                store.insert(&c, 3).unwrap(),
                Some(a),
                "the oldest ban is lifted"
            );
            assert!(store.remove(&b).unwrap());
            assert!(!store.remove(&b).unwrap());
        }
        let store = BanStore::open(&path, 2).unwrap();
        assert_eq!(store.load().unwrap(), vec![(c, 3)]);
    }

    #[test]
    fn an_undecodable_row_is_dropped() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.sqlite");
        let store = BanStore::open(&path, 8).unwrap();
        store
            .conn
            .execute(
                "INSERT INTO bans (peer, since) VALUES (?1, 1)",
                params![vec![0xffu8; 7]],
            )
            .unwrap();
        assert!(store.load().unwrap().is_empty());
        let n: i64 = store
            .conn
            .query_row("SELECT COUNT(*) FROM bans", [], |r| r.get(0))
            .unwrap();
        assert_eq!(n, 0);
    }
}
