//! The reply keys on disk: a node restarted mid-job still opens the replies
//! (reports, checkpoints) to the messages it sent before.
//!
//! `reply-keys.db` (SQLite, WAL) in the plane's directory holds one row per
//! key: its identifier, its encoding ([`ReplyKey::to_bytes`]) and when it
//! expires (Unix ms). Writes go through a bounded queue to a thread of their
//! own, which commits whatever has queued up in one transaction; when the
//! queue is full a write is dropped and counted, and those keys live in
//! memory only. A key used or evicted is deleted; expired rows go at start
//! and once a minute. Rows that do not decode are skipped and deleted.

use std::path::Path;
use std::sync::mpsc::{Receiver, SyncSender, TrySendError, sync_channel};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use anyhow::Context as _;
use fog_mix::ReplyKey;
use rusqlite::{Connection, params};

/// Writes waiting for the journal's thread.
const QUEUE: usize = 4096;
/// Most writes one transaction takes.
const BATCH: usize = 512;
/// How often expired rows are deleted.
const SWEEP: Duration = Duration::from_mins(1);

/// A write for the journal's thread.
enum Op {
    /// Keys and when they expire (Unix ms).
    Put(Vec<([u8; 16], Vec<u8>, u64)>),
    /// Keys used or evicted.
    Delete(Vec<[u8; 16]>),
    /// Answers once everything queued before it is committed.
    Sync(SyncSender<()>),
}

/// The journal's writing end. Dropping it lets the thread finish what is
/// queued and stop.
pub(super) struct KeyJournal {
    tx: SyncSender<Op>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX))
}

impl KeyJournal {
    /// Opens (or creates) the journal at `path` and returns it with the
    /// keys still valid, oldest first, each with how long it has left (at
    /// most `limit` keys: the newest).
    pub(super) fn open(
        path: &Path,
        limit: usize,
    ) -> anyhow::Result<(KeyJournal, Vec<(ReplyKey, Duration)>)> {
        let conn = Connection::open(path)
            .with_context(|| format!("cannot open the reply key journal {}", path.display()))?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS reply_keys(
                 id BLOB PRIMARY KEY,
                 key BLOB NOT NULL,
                 expires_ms INTEGER NOT NULL)",
        )?;
        let now = now_ms();
        conn.execute(
            "DELETE FROM reply_keys WHERE expires_ms <= ?1",
            params![now as i64],
        )?;
        let mut keys = Vec::new();
        let mut bad = Vec::new();
        {
            let mut stmt = conn.prepare(
                "SELECT id, key, expires_ms FROM
                   (SELECT id, key, expires_ms FROM reply_keys ORDER BY expires_ms DESC LIMIT ?1)
                 ORDER BY expires_ms ASC",
            )?;
            let rows = stmt.query_map(params![limit as i64], |r| {
                Ok((
                    r.get::<_, Vec<u8>>(0)?,
                    r.get::<_, Vec<u8>>(1)?,
                    r.get::<_, i64>(2)?,
                ))
            })?;
            for row in rows {
                let (id, bytes, expires) = row?;
                match ReplyKey::from_bytes(&bytes) {
                    Ok(key) if key.identifier().as_slice() == id.as_slice() => {
                        let left = u64::try_from(expires).unwrap_or(0).saturating_sub(now);
                        keys.push((key, Duration::from_millis(left)));
                    }
                    _ => bad.push(id),
                }
            }
        }
        if !bad.is_empty() {
            tracing::warn!(
                rows = bad.len(),
                "reply key rows that do not decode deleted"
            );
            for id in bad {
                conn.execute("DELETE FROM reply_keys WHERE id = ?1", params![id])?;
            }
        }
        let (tx, rx) = sync_channel(QUEUE);
        std::thread::Builder::new()
            .name("fog-reply-keys".into())
            .spawn(move || write_loop(&conn, &rx))
            .context("cannot start the reply key journal's thread")?;
        Ok((KeyJournal { tx }, keys))
    }

    /// Queues keys that expire after `lifetime`; `false` when the queue
    /// was full and they were not written.
    pub(super) fn put(&self, keys: &[ReplyKey], lifetime: Duration) -> bool {
        let expires = now_ms().saturating_add(u64::try_from(lifetime.as_millis()).unwrap_or(0));
        let rows = keys
            .iter()
            .map(|k| (k.identifier(), k.to_bytes(), expires))
            .collect();
        self.send(Op::Put(rows))
    }

    /// Queues the deletion of keys used or evicted.
    pub(super) fn delete(&self, ids: Vec<[u8; 16]>) -> bool {
        ids.is_empty() || self.send(Op::Delete(ids))
    }

    fn send(&self, op: Op) -> bool {
        match self.tx.try_send(op) {
            Ok(()) => true,
            Err(TrySendError::Full(_)) => false,
            Err(TrySendError::Disconnected(_)) => {
                tracing::warn!("the reply key journal's thread is gone");
                false
            }
        }
    }

    /// Waits (at most `timeout`, blocking) until everything queued so far
    /// is committed.
    pub(super) fn sync(&self, timeout: Duration) -> bool {
        let (ack, done) = sync_channel(1);
        if self.tx.send(Op::Sync(ack)).is_err() {
            return false;
        }
        done.recv_timeout(timeout).is_ok()
    }
}

fn write_loop(conn: &Connection, rx: &Receiver<Op>) {
    let mut swept = Instant::now();
    while let Ok(first) = rx.recv() {
        let mut ops = vec![first];
        while ops.len() < BATCH {
            match rx.try_recv() {
                Ok(op) => ops.push(op),
                Err(_) => break,
            }
        }
        let mut acks = Vec::new();
        if let Err(e) = commit(conn, ops, &mut acks) {
            tracing::warn!(error = %e, "reply keys not written");
        }
        for ack in acks {
            let _ = ack.send(());
        }
        if swept.elapsed() >= SWEEP {
            swept = Instant::now();
            if let Err(e) = conn.execute(
                "DELETE FROM reply_keys WHERE expires_ms <= ?1",
                params![now_ms() as i64],
            ) {
                tracing::warn!(error = %e, "expired reply keys not deleted");
            }
        }
    }
}

fn commit(conn: &Connection, ops: Vec<Op>, acks: &mut Vec<SyncSender<()>>) -> rusqlite::Result<()> {
    let tx = conn.unchecked_transaction()?;
    {
        let mut put = tx.prepare_cached(
            "INSERT OR REPLACE INTO reply_keys(id, key, expires_ms) VALUES (?1, ?2, ?3)",
        )?;
        let mut delete = tx.prepare_cached("DELETE FROM reply_keys WHERE id = ?1")?;
        for op in ops {
            match op {
                Op::Put(rows) => {
                    for (id, key, expires) in rows {
                        put.execute(params![id.as_slice(), key, expires as i64])?;
                    }
                }
                Op::Delete(ids) => {
                    for id in ids {
                        delete.execute(params![id.as_slice()])?;
                    }
                }
                Op::Sync(ack) => acks.push(ack),
            }
        }
    }
    tx.commit()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn keys(n: usize) -> Vec<ReplyKey> {
        (0..n)
            .map(|i| {
                let mut b = vec![i as u8; 16];
                b.extend_from_slice(&[7u8; 48]);
                ReplyKey::from_bytes(&b).expect("key")
            })
            .collect()
    }

    #[test]
    fn keys_survive_a_reopen_and_used_ones_do_not() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("reply-keys.db");
        let (journal, loaded) = KeyJournal::open(&path, 100).expect("open");
        assert!(loaded.is_empty());
        let all = keys(5);
        assert!(journal.put(&all, Duration::from_hours(1)));
        assert!(journal.put(&keys(1)[..0], Duration::from_secs(1)));
        assert!(journal.delete(vec![all[1].identifier()]));
        assert!(journal.sync(Duration::from_secs(10)));
        drop(journal);
        let (_journal, loaded) = KeyJournal::open(&path, 100).expect("reopen");
        let ids: Vec<[u8; 16]> = loaded.iter().map(|(k, _)| k.identifier()).collect();
        assert_eq!(ids.len(), 4);
        assert!(!ids.contains(&all[1].identifier()));
        assert!(
            loaded
                .iter()
                .all(|(_, left)| *left > Duration::from_secs(3500))
        );
    }

    #[test]
    fn expired_and_undecodable_rows_are_dropped_and_the_limit_keeps_the_newest() {
        let dir = tempfile::tempdir().expect("tempdir");
        let path = dir.path().join("reply-keys.db");
        {
            let (journal, _) = KeyJournal::open(&path, 100).expect("open");
            let all = keys(4);
            journal.put(&all[..1], Duration::ZERO);
            journal.put(&all[1..2], Duration::from_secs(100));
            journal.put(&all[2..4], Duration::from_secs(200));
            assert!(journal.sync(Duration::from_secs(10)));
        }
        Connection::open(&path)
            .expect("raw")
            .execute(
                "INSERT INTO reply_keys(id, key, expires_ms) VALUES (?1, ?2, ?3)",
                params![vec![9u8; 16], vec![1u8, 2, 3], i64::MAX],
            )
            .expect("insert junk");
        // The newest three rows: the junk one, then keys 2 and 3.
        let (_journal, loaded) = KeyJournal::open(&path, 3).expect("reopen");
        let ids: Vec<u8> = loaded.iter().map(|(k, _)| k.identifier()[0]).collect();
        assert_eq!(ids.len(), 2);
        assert!(ids.contains(&2) && ids.contains(&3), "{ids:?}");
        let rows: i64 = Connection::open(&path)
            .expect("raw")
            .query_row(
                "SELECT COUNT(*) FROM reply_keys WHERE id = ?1",
                params![vec![9u8; 16]],
                |r| r.get(0),
            )
            .expect("count");
        assert_eq!(rows, 0);
    }
}
