//! The task store: every lifecycle transition, checkpoint and evidence record
//! in SQLite (WAL). One writer thread applies queued operations in group
//! commits (one transaction per batch); readers use their own connection.

use std::collections::HashSet;
use std::path::{Path, PathBuf};
use std::sync::mpsc::{Receiver, SyncSender, TrySendError};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use rusqlite::{Connection, OptionalExtension, params};
use serde::{Deserialize, Serialize};
use tokio::sync::oneshot;

use crate::ExecError;
use crate::spec::{ContainerWorkload, Limits, ModuleHash, TaskId, TaskResult, TaskState};

/// Most operations one transaction applies.
const BATCH: usize = 1024;
/// Operations queued for the writer; a full queue makes callers wait.
const QUEUE: usize = 8192;

/// The persisted form of a task spec (a WASM module is stored once, by hash).
#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) enum StoredWorkload {
    Wasm {
        module: String,
        args: Vec<String>,
        env: Vec<(String, String)>,
        stdin: Vec<u8>,
    },
    Container(ContainerWorkload),
}

#[derive(Debug, Clone, Serialize, Deserialize)]
pub(crate) struct StoredSpec {
    pub(crate) workload: StoredWorkload,
    pub(crate) limits: Limits,
}

/// One row of the tasks table.
#[derive(Debug, Clone)]
pub(crate) struct TaskRow {
    pub(crate) id: TaskId,
    pub(crate) spec: StoredSpec,
    pub(crate) state: TaskState,
    pub(crate) attempt: u32,
    pub(crate) result: Option<TaskResult>,
}

/// One persisted disagreement.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub(crate) struct EvidenceRow {
    pub(crate) task: String,
    pub(crate) node: String,
    pub(crate) claimed: String,
    pub(crate) majority: String,
}

enum Op {
    Insert {
        id: TaskId,
        spec: String,
        module: Option<(ModuleHash, Arc<[u8]>)>,
        checkpoint: Option<Vec<u8>>,
        ack: oneshot::Sender<Result<bool, ExecError>>,
    },
    Transition {
        id: TaskId,
        to: TaskState,
        attempt_bump: bool,
        result: Option<String>,
        detail: Option<String>,
        ack: oneshot::Sender<Result<u32, ExecError>>,
    },
    Checkpoint {
        id: TaskId,
        data: Vec<u8>,
        ack: oneshot::Sender<Result<u64, ExecError>>,
    },
    Evidence {
        row: EvidenceRow,
        ack: oneshot::Sender<Result<(), ExecError>>,
    },
}

/// Handle to the store. Cheap to clone.
#[derive(Clone)]
pub(crate) struct TaskStore {
    tx: SyncSender<Op>,
    reader: Arc<Mutex<Connection>>,
    known_modules: Arc<Mutex<HashSet<ModuleHash>>>,
}

fn now_ms() -> i64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| i64::try_from(d.as_millis()).unwrap_or(i64::MAX))
}

fn db(e: &rusqlite::Error) -> ExecError {
    ExecError::Store(e.to_string())
}

fn open(path: &Path) -> Result<Connection, ExecError> {
    let conn = Connection::open(path).map_err(|e| db(&e))?;
    conn.execute_batch(
        "PRAGMA journal_mode=WAL;
         PRAGMA synchronous=NORMAL;
         PRAGMA busy_timeout=5000;
         PRAGMA foreign_keys=ON;",
    )
    .map_err(|e| db(&e))?;
    Ok(conn)
}

impl TaskStore {
    pub(crate) fn open(path: &Path) -> Result<Self, ExecError> {
        let writer = open(path)?;
        writer
            .execute_batch(
                "CREATE TABLE IF NOT EXISTS modules(
                    hash TEXT PRIMARY KEY, bytes BLOB NOT NULL);
                 CREATE TABLE IF NOT EXISTS tasks(
                    id TEXT PRIMARY KEY, spec TEXT NOT NULL, state TEXT NOT NULL,
                    attempt INTEGER NOT NULL, result TEXT,
                    created_ms INTEGER NOT NULL, updated_ms INTEGER NOT NULL);
                 CREATE INDEX IF NOT EXISTS tasks_state ON tasks(state);
                 CREATE TABLE IF NOT EXISTS transitions(
                    seq INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT NOT NULL,
                    state TEXT NOT NULL, attempt INTEGER NOT NULL,
                    at_ms INTEGER NOT NULL, detail TEXT);
                 CREATE INDEX IF NOT EXISTS transitions_task ON transitions(task_id);
                 CREATE TABLE IF NOT EXISTS checkpoints(
                    task_id TEXT PRIMARY KEY, seq INTEGER NOT NULL,
                    data BLOB NOT NULL, at_ms INTEGER NOT NULL);
                 CREATE TABLE IF NOT EXISTS evidence(
                    id INTEGER PRIMARY KEY AUTOINCREMENT, task_id TEXT NOT NULL,
                    node TEXT NOT NULL, claimed TEXT NOT NULL, majority TEXT NOT NULL,
                    at_ms INTEGER NOT NULL);",
            )
            .map_err(|e| db(&e))?;
        let reader = open(path)?;
        let (tx, rx) = std::sync::mpsc::sync_channel(QUEUE);
        let path_owned: PathBuf = path.to_owned();
        std::thread::Builder::new()
            .name("fog-exec-store".into())
            .spawn(move || writer_loop(&writer, &rx, &path_owned))
            .map_err(|e| ExecError::Store(format!("writer thread: {e}")))?;
        Ok(Self {
            tx,
            reader: Arc::new(Mutex::new(reader)),
            known_modules: Arc::new(Mutex::new(HashSet::new())),
        })
    }

    async fn send<T>(
        &self,
        op: Op,
        rx: oneshot::Receiver<Result<T, ExecError>>,
    ) -> Result<T, ExecError> {
        let mut op = op;
        loop {
            match self.tx.try_send(op) {
                Ok(()) => break,
                Err(TrySendError::Full(back)) => {
                    op = back;
                    tokio::time::sleep(std::time::Duration::from_micros(200)).await;
                }
                Err(TrySendError::Disconnected(_)) => return Err(ExecError::Closed),
            }
        }
        rx.await.map_err(|_| ExecError::Closed)?
    }

    /// Persists a new task in state Pending, with its initial checkpoint
    /// (seq 1) in the same transaction when it has one; `false` if the id
    /// existed (nothing is written then).
    pub(crate) async fn insert(
        &self,
        id: &TaskId,
        spec: &StoredSpec,
        module: Option<(ModuleHash, Arc<[u8]>)>,
        checkpoint: Option<Vec<u8>>,
    ) -> Result<bool, ExecError> {
        let module = module.filter(|(hash, _)| {
            !self
                .known_modules
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .contains(hash)
        });
        let remember = module.as_ref().map(|(h, _)| *h);
        let spec = serde_json::to_string(spec).map_err(|e| ExecError::Store(e.to_string()))?;
        let (ack, rx) = oneshot::channel();
        let created = self
            .send(
                Op::Insert {
                    id: id.clone(),
                    spec,
                    module,
                    checkpoint,
                    ack,
                },
                rx,
            )
            .await?;
        if let Some(hash) = remember {
            self.known_modules
                .lock()
                .unwrap_or_else(std::sync::PoisonError::into_inner)
                .insert(hash);
        }
        Ok(created)
    }

    /// Persists a lifecycle transition; returns the attempt number.
    pub(crate) async fn transition(
        &self,
        id: &TaskId,
        to: TaskState,
        attempt_bump: bool,
        result: Option<&TaskResult>,
        detail: Option<String>,
    ) -> Result<u32, ExecError> {
        let result = result
            .map(serde_json::to_string)
            .transpose()
            .map_err(|e| ExecError::Store(e.to_string()))?;
        let (ack, rx) = oneshot::channel();
        self.send(
            Op::Transition {
                id: id.clone(),
                to,
                attempt_bump,
                result,
                detail,
                ack,
            },
            rx,
        )
        .await
    }

    /// Persists a checkpoint; returns its sequence number.
    pub(crate) async fn save_checkpoint(
        &self,
        id: &TaskId,
        data: Vec<u8>,
    ) -> Result<u64, ExecError> {
        let (ack, rx) = oneshot::channel();
        self.send(
            Op::Checkpoint {
                id: id.clone(),
                data,
                ack,
            },
            rx,
        )
        .await
    }

    pub(crate) async fn record_evidence(&self, row: EvidenceRow) -> Result<(), ExecError> {
        let (ack, rx) = oneshot::channel();
        self.send(Op::Evidence { row, ack }, rx).await
    }

    fn read<T>(&self, f: impl FnOnce(&Connection) -> rusqlite::Result<T>) -> Result<T, ExecError> {
        let conn = self
            .reader
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        f(&conn).map_err(|e| db(&e))
    }

    pub(crate) fn checkpoint(&self, id: &TaskId) -> Result<Option<(u64, Vec<u8>)>, ExecError> {
        self.read(|c| {
            c.prepare_cached("SELECT seq, data FROM checkpoints WHERE task_id = ?1")?
                .query_row([id.as_str()], |r| {
                    Ok((r.get::<_, i64>(0)? as u64, r.get::<_, Vec<u8>>(1)?))
                })
                .optional()
        })
    }

    pub(crate) fn module(&self, hash: &str) -> Result<Option<Vec<u8>>, ExecError> {
        self.read(|c| {
            c.query_row("SELECT bytes FROM modules WHERE hash = ?1", [hash], |r| {
                r.get(0)
            })
            .optional()
        })
    }

    pub(crate) fn task(&self, id: &TaskId) -> Result<Option<TaskRow>, ExecError> {
        let raw = self.read(|c| {
            c.prepare_cached("SELECT id, spec, state, attempt, result FROM tasks WHERE id = ?1")?
                .query_row([id.as_str()], raw_row)
                .optional()
        })?;
        raw.map(parse_row).transpose()
    }

    /// Tasks in any of `states`.
    pub(crate) fn tasks_in(&self, states: &[TaskState]) -> Result<Vec<TaskRow>, ExecError> {
        let mut out = Vec::new();
        for state in states {
            let raws = self.read(|c| {
                let mut stmt = c.prepare(
                    "SELECT id, spec, state, attempt, result FROM tasks WHERE state = ?1 ORDER BY created_ms",
                )?;
                stmt.query_map([state.as_str()], raw_row)?
                    .collect::<rusqlite::Result<Vec<_>>>()
            })?;
            for raw in raws {
                out.push(parse_row(raw)?);
            }
        }
        Ok(out)
    }

    /// The task's transitions, oldest first.
    pub(crate) fn history(&self, id: &TaskId) -> Result<Vec<TaskState>, ExecError> {
        let names = self.read(|c| {
            let mut stmt =
                c.prepare("SELECT state FROM transitions WHERE task_id = ?1 ORDER BY seq")?;
            stmt.query_map([id.as_str()], |r| r.get::<_, String>(0))?
                .collect::<rusqlite::Result<Vec<_>>>()
        })?;
        Ok(names.iter().filter_map(|n| TaskState::parse(n)).collect())
    }

    pub(crate) fn evidence(&self) -> Result<Vec<EvidenceRow>, ExecError> {
        self.read(|c| {
            let mut stmt =
                c.prepare("SELECT task_id, node, claimed, majority FROM evidence ORDER BY id")?;
            stmt.query_map([], |r| {
                Ok(EvidenceRow {
                    task: r.get(0)?,
                    node: r.get(1)?,
                    claimed: r.get(2)?,
                    majority: r.get(3)?,
                })
            })?
            .collect()
        })
    }
}

type RawRow = (String, String, String, i64, Option<String>);

fn raw_row(r: &rusqlite::Row<'_>) -> rusqlite::Result<RawRow> {
    Ok((r.get(0)?, r.get(1)?, r.get(2)?, r.get(3)?, r.get(4)?))
}

fn parse_row((id, spec, state, attempt, result): RawRow) -> Result<TaskRow, ExecError> {
    let corrupt = |what: &str| ExecError::Store(format!("corrupt task row {id:?}: {what}"));
    Ok(TaskRow {
        id: TaskId::parse(id.clone()).map_err(|_| corrupt("id"))?,
        spec: serde_json::from_str(&spec).map_err(|_| corrupt("spec"))?,
        state: TaskState::parse(&state).ok_or_else(|| corrupt("state"))?,
        attempt: u32::try_from(attempt).map_err(|_| corrupt("attempt"))?,
        result: result
            .map(|r| serde_json::from_str(&r))
            .transpose()
            .map_err(|_| corrupt("result"))?,
    })
}

fn writer_loop(conn: &Connection, rx: &Receiver<Op>, path: &Path) {
    while let Ok(first) = rx.recv() {
        let mut batch = vec![first];
        while batch.len() < BATCH {
            match rx.try_recv() {
                Ok(op) => batch.push(op),
                Err(_) => break,
            }
        }
        // BEGIN/COMMIT as cached statements: a batch can be a handful of
        // operations, so their parse cost would show.
        let run = |sql: &str| {
            conn.prepare_cached(sql)
                .and_then(|mut st| st.execute([]))
                .map(|_| ())
                .map_err(|e| db(&e))
        };
        if let Err(e) = run("BEGIN IMMEDIATE") {
            fail_all(batch, &e);
            continue;
        }
        // Every operation validates before it writes, so a refused one (an
        // illegal transition) leaves nothing behind while the batch commits.
        let mut replies = Vec::with_capacity(batch.len());
        for op in batch {
            let outcome = apply(conn, &op);
            replies.push((op, outcome));
        }
        let committed = run("COMMIT");
        if committed.is_err() {
            let _ = run("ROLLBACK");
        }
        for (op, outcome) in replies {
            let outcome = match (&committed, outcome) {
                (Err(e), _) => Err(e.clone()),
                (Ok(()), o) => o,
            };
            reply(op, outcome);
        }
    }
    tracing::debug!(path = %path.display(), "task store writer stopped");
}

enum Reply {
    Bool(bool),
    Attempt(u32),
    Seq(u64),
    Unit,
}

fn apply(conn: &Connection, op: &Op) -> Result<Reply, ExecError> {
    let now = now_ms();
    match op {
        Op::Insert {
            id,
            spec,
            module,
            checkpoint,
            ..
        } => {
            if let Some((hash, bytes)) = module {
                conn.prepare_cached("INSERT OR IGNORE INTO modules(hash, bytes) VALUES (?1, ?2)")
                    .and_then(|mut st| st.execute(params![hash.to_hex(), &bytes[..]]))
                    .map_err(|e| db(&e))?;
            }
            let n = conn
                .prepare_cached(
                    "INSERT OR IGNORE INTO tasks(id, spec, state, attempt, result, created_ms, updated_ms)
                     VALUES (?1, ?2, 'pending', 0, NULL, ?3, ?3)",
                )
                .and_then(|mut st| st.execute(params![id.as_str(), spec, now]))
                .map_err(|e| db(&e))?;
            if n == 1 {
                conn.prepare_cached(
                    "INSERT INTO transitions(task_id, state, attempt, at_ms) VALUES (?1, 'pending', 0, ?2)",
                )
                .and_then(|mut st| st.execute(params![id.as_str(), now]))
                .map_err(|e| db(&e))?;
                if let Some(data) = checkpoint {
                    conn.execute(
                        "INSERT OR REPLACE INTO checkpoints(task_id, seq, data, at_ms) VALUES (?1, 1, ?2, ?3)",
                        params![id.as_str(), data, now],
                    )
                    .map_err(|e| db(&e))?;
                }
            }
            Ok(Reply::Bool(n == 1))
        }
        Op::Transition {
            id,
            to,
            attempt_bump,
            result,
            detail,
            ..
        } => {
            let (state, attempt): (String, i64) = conn
                .prepare_cached("SELECT state, attempt FROM tasks WHERE id = ?1")
                .and_then(|mut st| {
                    st.query_row([id.as_str()], |r| Ok((r.get(0)?, r.get(1)?)))
                        .optional()
                })
                .map_err(|e| db(&e))?
                .ok_or_else(|| ExecError::UnknownTask(id.clone()))?;
            let from = TaskState::parse(&state)
                .ok_or_else(|| ExecError::Store(format!("corrupt state {state:?}")))?;
            if !from.can_move_to(*to) {
                return Err(ExecError::IllegalTransition {
                    id: id.clone(),
                    from,
                    to: *to,
                });
            }
            let attempt = attempt + i64::from(*attempt_bump);
            conn.prepare_cached(
                "UPDATE tasks SET state = ?2, attempt = ?3, result = COALESCE(?4, result), updated_ms = ?5 WHERE id = ?1",
            )
            .and_then(|mut st| st.execute(params![id.as_str(), to.as_str(), attempt, result, now]))
            .map_err(|e| db(&e))?;
            conn.prepare_cached(
                "INSERT INTO transitions(task_id, state, attempt, at_ms, detail) VALUES (?1, ?2, ?3, ?4, ?5)",
            )
            .and_then(|mut st| st.execute(params![id.as_str(), to.as_str(), attempt, now, detail]))
            .map_err(|e| db(&e))?;
            Ok(Reply::Attempt(u32::try_from(attempt).unwrap_or(u32::MAX)))
        }
        Op::Checkpoint { id, data, .. } => {
            let seq: i64 = conn
                .query_row(
                    "INSERT INTO checkpoints(task_id, seq, data, at_ms) VALUES (?1, 1, ?2, ?3)
                     ON CONFLICT(task_id) DO UPDATE SET seq = seq + 1, data = excluded.data, at_ms = excluded.at_ms
                     RETURNING seq",
                    params![id.as_str(), data, now],
                    |r| r.get(0),
                )
                .map_err(|e| db(&e))?;
            Ok(Reply::Seq(seq as u64))
        }
        Op::Evidence { row, .. } => {
            conn.execute(
                "INSERT INTO evidence(task_id, node, claimed, majority, at_ms) VALUES (?1, ?2, ?3, ?4, ?5)",
                params![row.task, row.node, row.claimed, row.majority, now],
            )
            .map_err(|e| db(&e))?;
            Ok(Reply::Unit)
        }
    }
}

fn reply(op: Op, outcome: Result<Reply, ExecError>) {
    match op {
        Op::Insert { ack, .. } => {
            let _ = ack.send(outcome.map(|r| matches!(r, Reply::Bool(true))));
        }
        Op::Transition { ack, .. } => {
            let _ = ack.send(outcome.map(|r| match r {
                Reply::Attempt(a) => a,
                _ => 0,
            }));
        }
        Op::Checkpoint { ack, .. } => {
            let _ = ack.send(outcome.map(|r| match r {
                Reply::Seq(s) => s,
                _ => 0,
            }));
        }
        Op::Evidence { ack, .. } => {
            let _ = ack.send(outcome.map(|_| ()));
        }
    }
}

fn fail_all(batch: Vec<Op>, e: &ExecError) {
    for op in batch {
        reply(op, Err(e.clone()));
    }
}
