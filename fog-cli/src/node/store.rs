//! The node's own registry in SQLite (`<data>/node.db`, WAL): the jobs
//! submitted at this node with their replicas, and the tasks it runs for
//! others. One row per job, rewritten in one transaction per change, so a
//! crash leaves either the old or the new record. Module bytes are kept
//! once per content hash.

use std::path::Path;

use anyhow::Context;
use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};

use super::api::SubmitRequest;

/// A job submitted at this node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct JobRecord {
    /// Job id (`j-<unix ms>-<n>`).
    pub(crate) id: String,
    /// The submission, minus the module bytes (kept by hash).
    pub(crate) request: SubmitRequest,
    /// SHA-256 of the module bytes, hex (WASM jobs).
    pub(crate) module_hash: Option<String>,
    /// Lifecycle state.
    pub(crate) state: JobState,
    /// Replicas placed so far (current and past).
    pub(crate) replicas: Vec<ReplicaRecord>,
    /// Times a replica of it was preempted.
    pub(crate) preemptions: u32,
    /// Placement attempts that found no node.
    pub(crate) unplaced_rounds: u32,
    /// Unix ms of submission.
    pub(crate) submitted_ms: u64,
    /// Unix ms when it ended.
    pub(crate) finished_ms: Option<u64>,
    /// The agreed result once verified.
    pub(crate) result: Option<ResultRecord>,
    /// Why it failed.
    pub(crate) error: Option<String>,
    /// Evidence records its verification produced.
    pub(crate) evidence: u32,
    /// Replicas that failed without a result (refused by an executor,
    /// lost with their node, silent past their timeout), preemptions and
    /// harvest refusals aside; past a budget the job fails.
    #[serde(default)]
    pub(crate) failures: u32,
    /// Why the last of those replicas failed.
    #[serde(default)]
    pub(crate) last_failure: Option<String>,
    /// Agreeing replicas its verdict required (replicated jobs, once
    /// decided): a majority, raised by the ledger's `min_quorum_signers`.
    #[serde(default)]
    pub(crate) quorum: Option<u32>,
}

impl JobRecord {
    /// A job just submitted: pending, with no replica yet.
    pub(crate) fn new(
        id: String,
        request: SubmitRequest,
        module_hash: Option<String>,
        submitted_ms: u64,
    ) -> Self {
        Self {
            id,
            request,
            module_hash,
            state: JobState::Pending,
            replicas: Vec::new(),
            preemptions: 0,
            unplaced_rounds: 0,
            submitted_ms,
            finished_ms: None,
            result: None,
            error: None,
            evidence: 0,
            failures: 0,
            last_failure: None,
            quorum: None,
        }
    }
}

/// Where a job is in its life.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum JobState {
    /// Waiting for dependencies, its gang or a node.
    Pending,
    /// Replicas placed; waiting for their results.
    Running,
    /// Enough replicas agreed.
    Verified,
    /// It failed (no quorum, a task error, no node for too long).
    Failed,
    /// Cancelled by its submitter.
    Cancelled,
}

impl JobState {
    /// Lowercase name.
    pub(crate) fn as_str(self) -> &'static str {
        match self {
            JobState::Pending => "pending",
            JobState::Running => "running",
            JobState::Verified => "verified",
            JobState::Failed => "failed",
            JobState::Cancelled => "cancelled",
        }
    }

    /// Whether nothing more happens to the job.
    pub(crate) fn is_final(self) -> bool {
        matches!(
            self,
            JobState::Verified | JobState::Failed | JobState::Cancelled
        )
    }
}

/// One replica of a job: a task on one node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ReplicaRecord {
    /// Task id on the executor (`<job>.<n>`).
    pub(crate) task: String,
    /// Executor peer id.
    pub(crate) peer: String,
    /// Executor name.
    pub(crate) node: String,
    /// Replica state.
    pub(crate) state: ReplicaState,
    /// Unix ms when it was sent.
    pub(crate) sent_ms: u64,
    /// What it reported.
    pub(crate) result: Option<ResultRecord>,
    /// The number of the latest checkpoint its executor shipped (the bytes
    /// are in the `checkpoints` table under its task id).
    #[serde(default)]
    pub(crate) checkpoint_seq: Option<u64>,
    /// The replica whose checkpoint it started from: it continues that
    /// replica's run, so verification compares its output only (its fuel
    /// covers part of the work) and neither pays nor blames it on a
    /// mismatch of fuel.
    #[serde(default)]
    pub(crate) resumed_from: Option<String>,
}

/// A replica's state.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize, Deserialize)]
#[serde(rename_all = "snake_case")]
pub(crate) enum ReplicaState {
    /// Sent to its executor.
    Sent,
    /// The executor reported a result.
    Reported,
    /// Refused, preempted, lost with its node or cancelled: it no longer counts.
    Dropped,
}

/// A result as an executor reports it.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct ResultRecord {
    /// Exit code.
    pub(crate) exit_code: Option<i32>,
    /// Failure reason from the sandbox, if any.
    pub(crate) failure: Option<String>,
    /// Output hash (what replicas compare).
    pub(crate) output_hash: String,
    /// Fuel consumed.
    pub(crate) fuel: u64,
    /// Stdout (capped by the executor).
    #[serde(with = "serde_bytes_vec")]
    pub(crate) stdout: Vec<u8>,
    /// Stderr (capped).
    #[serde(with = "serde_bytes_vec")]
    pub(crate) stderr: Vec<u8>,
    /// The executor's sr25519 account, hex.
    pub(crate) account: String,
    /// Its signature over (task, result digest), hex.
    pub(crate) signature: String,
}

/// Bytes as base64 in JSON.
mod serde_bytes_vec {
    use base64::Engine as _;
    use serde::{Deserialize, Deserializer, Serializer};

    pub(crate) fn serialize<S: Serializer>(bytes: &[u8], s: S) -> Result<S::Ok, S::Error> {
        s.serialize_str(&base64::engine::general_purpose::STANDARD.encode(bytes))
    }

    pub(crate) fn deserialize<'de, D: Deserializer<'de>>(d: D) -> Result<Vec<u8>, D::Error> {
        let text = String::deserialize(d)?;
        base64::engine::general_purpose::STANDARD
            .decode(text)
            .map_err(serde::de::Error::custom)
    }
}

/// A task this node runs for another node.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
pub(crate) struct ExecutionRecord {
    /// Task id.
    pub(crate) task: String,
    /// Peer id to answer over fog-p2p, when the task came that way
    /// (tasks that came through the mixnet answer by reply block).
    pub(crate) reply_peer: Option<String>,
    /// Unix ms when it arrived.
    pub(crate) received_ms: u64,
    /// Whether its result was sent.
    pub(crate) reported: bool,
    /// The reply blocks its report goes back on, when it came through the
    /// mixnet (base64 of `ReplyHandle::to_bytes`), until it is sent: a
    /// node restarted mid-task still answers.
    #[serde(default)]
    pub(crate) reply_blocks: Option<String>,
}

/// The node registry.
#[derive(Debug)]
pub(crate) struct Store {
    db: Connection,
}

impl Store {
    /// Opens (creating) the registry at `path`.
    pub(crate) fn open(path: &Path) -> anyhow::Result<Self> {
        let db = Connection::open(path).with_context(|| format!("opening {}", path.display()))?;
        db.pragma_update(None, "journal_mode", "WAL")?;
        db.pragma_update(None, "synchronous", "FULL")?;
        db.busy_timeout(std::time::Duration::from_secs(5))?;
        db.execute_batch(
            "CREATE TABLE IF NOT EXISTS jobs (
                 id TEXT PRIMARY KEY,
                 seq INTEGER NOT NULL,
                 final INTEGER NOT NULL,
                 doc TEXT NOT NULL
             );
             CREATE TABLE IF NOT EXISTS modules (hash TEXT PRIMARY KEY, bytes BLOB NOT NULL);
             CREATE TABLE IF NOT EXISTS executions (task TEXT PRIMARY KEY, doc TEXT NOT NULL);
             CREATE TABLE IF NOT EXISTS counters (name TEXT PRIMARY KEY, value INTEGER NOT NULL);
             CREATE TABLE IF NOT EXISTS checkpoints (
                 task TEXT PRIMARY KEY,
                 seq INTEGER NOT NULL,
                 data BLOB NOT NULL
             );",
        )
        .context("creating the node registry tables")?;
        Ok(Self { db })
    }

    /// Saves a module's bytes under their hash (idempotent).
    pub(crate) fn put_module(&self, hash: &str, bytes: &[u8]) -> anyhow::Result<()> {
        self.db.execute(
            "INSERT OR IGNORE INTO modules (hash, bytes) VALUES (?1, ?2)",
            params![hash, bytes],
        )?;
        Ok(())
    }

    /// A module's bytes.
    pub(crate) fn module(&self, hash: &str) -> anyhow::Result<Option<Vec<u8>>> {
        Ok(self
            .db
            .query_row(
                "SELECT bytes FROM modules WHERE hash = ?1",
                params![hash],
                |r| r.get(0),
            )
            .optional()?)
    }

    /// Inserts or replaces a job (one transaction). A job that has ended
    /// loses its replicas' checkpoints in the same transaction.
    pub(crate) fn put_job(&self, job: &JobRecord) -> anyhow::Result<()> {
        let doc = serde_json::to_string(job)?;
        let tx = self.db.unchecked_transaction()?;
        tx.execute(
            "INSERT INTO jobs (id, seq, final, doc) VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(id) DO UPDATE SET final = excluded.final, doc = excluded.doc",
            params![
                job.id,
                job.submitted_ms as i64,
                i64::from(job.state.is_final()),
                doc
            ],
        )?;
        if job.state.is_final() {
            // Task ids are `<job>.<n>`: the range from "<job>." up to
            // "<job>/" ('/' follows '.') holds exactly the job's tasks.
            tx.execute(
                "DELETE FROM checkpoints WHERE task >= ?1 || '.' AND task < ?1 || '/'",
                params![job.id],
            )?;
        }
        tx.commit()?;
        Ok(())
    }

    /// Keeps `data` as checkpoint `seq` of `task`, replacing an older one
    /// of that task. Returns false, keeping nothing, when the task already
    /// has that checkpoint or a later one, or when the checkpoints kept
    /// would pass `budget` bytes in all.
    pub(crate) fn put_checkpoint(
        &self,
        task: &str,
        seq: u64,
        data: &[u8],
        budget: u64,
    ) -> anyhow::Result<bool> {
        let tx = self.db.unchecked_transaction()?;
        let (held, old): (i64, i64) = tx.query_row(
            "SELECT COALESCE(SUM(length(data)), 0),
                    COALESCE(SUM(CASE WHEN task = ?1 THEN length(data) ELSE 0 END), 0)
             FROM checkpoints",
            params![task],
            |r| Ok((r.get(0)?, r.get(1)?)),
        )?;
        if (held - old) as u64 + data.len() as u64 > budget {
            return Ok(false);
        }
        let n = tx.execute(
            "INSERT INTO checkpoints (task, seq, data) VALUES (?1, ?2, ?3)
             ON CONFLICT(task) DO UPDATE SET seq = excluded.seq, data = excluded.data
             WHERE excluded.seq > checkpoints.seq",
            params![task, seq as i64, data],
        )?;
        tx.commit()?;
        Ok(n == 1)
    }

    /// A task's kept checkpoint: its number and bytes.
    pub(crate) fn checkpoint(&self, task: &str) -> anyhow::Result<Option<(u64, Vec<u8>)>> {
        Ok(self
            .db
            .query_row(
                "SELECT seq, data FROM checkpoints WHERE task = ?1",
                params![task],
                |r| Ok((r.get::<_, i64>(0)? as u64, r.get(1)?)),
            )
            .optional()?)
    }

    /// Every job, oldest first. A row that does not decode is skipped with
    /// a warning (it is never silently rewritten).
    pub(crate) fn jobs(&self) -> anyhow::Result<Vec<JobRecord>> {
        let mut stmt = self
            .db
            .prepare("SELECT id, doc FROM jobs ORDER BY seq, id")?;
        let rows = stmt.query_map([], |r| Ok((r.get::<_, String>(0)?, r.get::<_, String>(1)?)))?;
        let mut out = Vec::new();
        for row in rows {
            let (id, doc) = row?;
            match serde_json::from_str(&doc) {
                Ok(job) => out.push(job),
                Err(e) => tracing::warn!(job = %id, error = %e, "skipping an unreadable job row"),
            }
        }
        Ok(out)
    }

    /// Records a task run for someone else.
    pub(crate) fn put_execution(&self, e: &ExecutionRecord) -> anyhow::Result<()> {
        self.db.execute(
            "INSERT OR REPLACE INTO executions (task, doc) VALUES (?1, ?2)",
            params![e.task, serde_json::to_string(e)?],
        )?;
        Ok(())
    }

    /// Tasks run for others whose result was not sent yet.
    pub(crate) fn open_executions(&self) -> anyhow::Result<Vec<ExecutionRecord>> {
        let mut stmt = self.db.prepare("SELECT doc FROM executions")?;
        let rows = stmt.query_map([], |r| r.get::<_, String>(0))?;
        let mut out = Vec::new();
        for row in rows {
            if let Ok(e) = serde_json::from_str::<ExecutionRecord>(&row?)
                && !e.reported
            {
                out.push(e);
            }
        }
        Ok(out)
    }

    /// Adds `by` to a persistent counter and returns the new value.
    pub(crate) fn bump(&self, name: &str, by: u64) -> anyhow::Result<u64> {
        self.db.execute(
            "INSERT INTO counters (name, value) VALUES (?1, ?2)
             ON CONFLICT(name) DO UPDATE SET value = value + excluded.value",
            params![name, by as i64],
        )?;
        self.counter(name)
    }

    /// A persistent counter (0 when never bumped).
    pub(crate) fn counter(&self, name: &str) -> anyhow::Result<u64> {
        Ok(self
            .db
            .query_row(
                "SELECT value FROM counters WHERE name = ?1",
                params![name],
                |r| r.get::<_, i64>(0),
            )
            .optional()?
            .unwrap_or(0) as u64)
    }
}

/// Writes `bytes` to `path` atomically (temp file, fsync, rename).
pub(crate) fn write_atomic(path: &Path, bytes: &[u8]) -> anyhow::Result<()> {
    use std::io::Write as _;
    if let Some(dir) = path.parent().filter(|d| !d.as_os_str().is_empty()) {
        std::fs::create_dir_all(dir).with_context(|| format!("creating {}", dir.display()))?;
    }
    let tmp = path.with_extension("tmp");
    let mut file =
        std::fs::File::create(&tmp).with_context(|| format!("creating {}", tmp.display()))?;
    file.write_all(bytes)?;
    file.sync_all()?;
    drop(file);
    std::fs::rename(&tmp, path).with_context(|| format!("renaming to {}", path.display()))?;
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    fn job(id: &str) -> JobRecord {
        JobRecord::new(id.into(), SubmitRequest::default(), None, 1)
    }

    #[test]
    fn jobs_survive_reopen_and_updates_replace() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.db");
        {
            let store = Store::open(&path).unwrap();
            store.put_job(&job("a")).unwrap();
            let mut b = job("b");
            store.put_job(&b).unwrap();
            b.state = JobState::Verified;
            store.put_job(&b).unwrap();
            assert_eq!(store.bump("x", 2).unwrap(), 2);
        }
        let store = Store::open(&path).unwrap();
        let jobs = store.jobs().unwrap();
        assert_eq!(jobs.len(), 2);
        assert_eq!(jobs[1].state, JobState::Verified);
        assert_eq!(store.counter("x").unwrap(), 2);
    }

    #[test]
    fn checkpoints_keep_the_latest_within_a_budget_and_go_with_their_job() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("node.db");
        let store = Store::open(&path).unwrap();
        assert!(store.put_checkpoint("j-1.0", 2, b"two", 100).unwrap());
        assert!(!store.put_checkpoint("j-1.0", 1, b"one", 100).unwrap());
        assert!(!store.put_checkpoint("j-1.0", 2, b"again", 100).unwrap());
        assert!(store.put_checkpoint("j-1.0", 5, b"five", 100).unwrap());
        assert_eq!(
            store.checkpoint("j-1.0").unwrap(),
            Some((5, b"five".to_vec()))
        );
        // A job whose id extends another's keeps its own.
        assert!(store.put_checkpoint("j-10.0", 1, b"other", 100).unwrap());
        // Over the budget: refused, the old one stays.
        assert!(!store.put_checkpoint("j-2.0", 1, &[0; 95], 100).unwrap());
        assert_eq!(store.checkpoint("j-2.0").unwrap(), None);
        // Replacing counts only the difference.
        assert!(store.put_checkpoint("j-1.0", 6, &[1; 90], 100).unwrap());
        let mut done = job("j-1");
        store.put_job(&done).unwrap();
        assert!(store.checkpoint("j-1.0").unwrap().is_some());
        done.state = JobState::Verified;
        store.put_job(&done).unwrap();
        assert_eq!(store.checkpoint("j-1.0").unwrap(), None);
        drop(store);
        let store = Store::open(&path).unwrap();
        assert_eq!(
            store.checkpoint("j-10.0").unwrap(),
            Some((1, b"other".to_vec()))
        );
    }
}
