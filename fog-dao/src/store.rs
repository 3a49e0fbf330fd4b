//! The ledger on SQLite: one table of events (with their leaf hashes) and
//! one signed tree head, written together in one transaction per append.

use std::path::{Path, PathBuf};
use std::time::Instant;

use rusqlite::types::ValueRef;
use rusqlite::{Connection, OpenFlags, OptionalExtension, TransactionBehavior, params};
use schnorrkel::{PublicKey, Signature, signing_context};

use crate::codec::{Reader, Writer};
use crate::error::DaoError;
use crate::event::{
    Body, Event, SigningKey, TREE_HEAD_CONTEXT, signing_message, split_encoded, verify_raw,
};
use crate::merkle::{self, Frontier, Hash, leaf_hash};
use crate::state::State;
use crate::types::{AccountId, Params};

const SCHEMA_VERSION: i64 = 1;
/// Signatures checked per `verify_batch` call in [`Ledger::verify_file`].
pub const VERIFY_BATCH: usize = 1024;

/// A signed tree head: the log's size and root at one point, signed by the
/// log key named in the genesis event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct TreeHead {
    size: u64,
    time: u64,
    root: Hash,
    signature: [u8; 64],
}

impl TreeHead {
    fn message(ledger_id: &[u8; 32], size: u64, time: u64, root: &Hash) -> Vec<u8> {
        let mut w = Writer::new();
        w.bytes(ledger_id);
        w.u64(size);
        w.u64(time);
        w.bytes(root);
        w.into_bytes()
    }

    fn sign(key: &SigningKey, ledger_id: &[u8; 32], size: u64, time: u64, root: Hash) -> Self {
        let signature = key.sign_raw(
            TREE_HEAD_CONTEXT,
            &Self::message(ledger_id, size, time, &root),
        );
        TreeHead {
            size,
            time,
            root,
            signature,
        }
    }

    /// Number of events.
    pub fn size(&self) -> u64 {
        self.size
    }
    /// Logical time of the last event.
    pub fn time(&self) -> u64 {
        self.time
    }
    /// The Merkle tree hash.
    pub fn root(&self) -> &Hash {
        &self.root
    }
    /// The log key's signature.
    pub fn signature(&self) -> &[u8; 64] {
        &self.signature
    }

    /// Whether `log_key` signed this head for ledger `ledger_id`.
    pub fn verify(&self, ledger_id: &[u8; 32], log_key: &AccountId) -> bool {
        verify_raw(
            log_key,
            TREE_HEAD_CONTEXT,
            &Self::message(ledger_id, self.size, self.time, &self.root),
            &self.signature,
        )
    }

    /// Canonical bytes: `size:u64 | time:u64 | root:[32] | signature:[64]`.
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        w.u64(self.size);
        w.u64(self.time);
        w.bytes(&self.root);
        w.bytes(&self.signature);
        w.into_bytes()
    }

    /// Decodes [`TreeHead::encode`] output; never panics.
    pub fn decode(bytes: &[u8]) -> Result<Self, crate::DecodeError> {
        let mut r = Reader::new(bytes);
        let head = TreeHead {
            size: r.u64("size")?,
            time: r.u64("time")?,
            root: r.array("root")?,
            signature: r.array("signature")?,
        };
        r.finish()?;
        Ok(head)
    }
}

/// What an append returns.
#[derive(Debug, Clone)]
pub struct Receipt {
    /// The event's sequence number (0-based; the genesis is 0).
    pub seq: u64,
    /// Its leaf hash.
    pub leaf: Hash,
    /// The new signed tree head.
    pub head: TreeHead,
}

/// How hard SQLite pushes each commit to disk.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default)]
#[non_exhaustive]
pub enum Durability {
    /// `synchronous=FULL`: a committed append survives power loss.
    #[default]
    Full,
    /// `synchronous=NORMAL` (WAL): survives a process crash; a power loss
    /// may drop the last commits but never corrupts the log.
    Normal,
}

/// What [`Ledger::verify_file`] checks.
#[derive(Debug, Clone, Copy)]
#[non_exhaustive]
pub struct VerifyOptions {
    /// Re-verify every event signature (batched).
    pub signatures: bool,
    /// Replay the events into a fresh state.
    pub replay: bool,
    /// Threads for signature checking (default: the available cores).
    pub threads: usize,
}

impl Default for VerifyOptions {
    fn default() -> Self {
        Self {
            signatures: true,
            replay: true,
            threads: std::thread::available_parallelism().map_or(1, usize::from),
        }
    }
}

impl VerifyOptions {
    /// Leaf hashes, the Merkle root and the tree head only: no signatures,
    /// no replay (what a log monitor checks cheaply).
    pub fn hashes_only() -> Self {
        Self {
            signatures: false,
            replay: false,
            ..Self::default()
        }
    }

    /// Sets the number of signature-checking threads (at least 1).
    pub fn with_threads(mut self, threads: usize) -> Self {
        self.threads = threads.max(1);
        self
    }

    /// Sets whether signatures are re-verified.
    pub fn with_signatures(mut self, on: bool) -> Self {
        self.signatures = on;
        self
    }

    /// Sets whether the state is replayed.
    pub fn with_replay(mut self, on: bool) -> Self {
        self.replay = on;
        self
    }
}

/// The first problem [`Ledger::verify_file`] found.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub struct Problem {
    /// The first bad event (0-based), or `None` for a tree-head problem.
    pub seq: Option<u64>,
    /// What is wrong.
    pub reason: String,
}

/// The outcome of [`Ledger::verify_file`].
#[derive(Debug, Clone)]
#[non_exhaustive]
pub struct VerifyReport {
    /// Events read.
    pub events: u64,
    /// The recomputed tree hash.
    pub root: Hash,
    /// The first problem, if any.
    pub problem: Option<Problem>,
    /// Seconds spent opening the file and reading the tree head.
    pub read_seconds: f64,
    /// Seconds spent on the pass over the rows: reading each event,
    /// recomputing its leaf hash, comparing it and building the root.
    pub hash_seconds: f64,
    /// Seconds spent decoding and verifying signatures.
    pub signature_seconds: f64,
    /// Seconds spent replaying the state.
    pub replay_seconds: f64,
}

impl VerifyReport {
    /// Whether everything checked out.
    pub fn is_ok(&self) -> bool {
        self.problem.is_none()
    }
}

/// An open ledger: the SQLite file, the replayed state and the leaf hashes.
pub struct Ledger {
    conn: Connection,
    path: PathBuf,
    state: State,
    leaves: Vec<Hash>,
    frontier: Frontier,
    head: Option<TreeHead>,
    log_key: Option<SigningKey>,
}

impl std::fmt::Debug for Ledger {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ledger")
            .field("path", &self.path)
            .field("events", &self.leaves.len())
            .finish_non_exhaustive()
    }
}

fn connect(path: &Path, create: bool) -> Result<Connection, DaoError> {
    let mut flags = OpenFlags::SQLITE_OPEN_READ_WRITE | OpenFlags::SQLITE_OPEN_NO_MUTEX;
    if create {
        flags |= OpenFlags::SQLITE_OPEN_CREATE;
    }
    let conn = Connection::open_with_flags(path, flags)?;
    conn.busy_timeout(std::time::Duration::from_secs(5))?;
    let _mode: String = conn.query_row("PRAGMA journal_mode=WAL", [], |r| r.get(0))?;
    conn.pragma_update(None, "synchronous", "FULL")?;
    Ok(conn)
}

fn init_schema(conn: &Connection) -> Result<(), DaoError> {
    let version: i64 = conn.query_row("PRAGMA user_version", [], |r| r.get(0))?;
    if version == 0 {
        conn.execute_batch(
            "BEGIN;
             CREATE TABLE IF NOT EXISTS events (
                 seq INTEGER PRIMARY KEY,
                 data BLOB NOT NULL,
                 leaf BLOB NOT NULL
             ) STRICT;
             CREATE TABLE IF NOT EXISTS head (
                 id INTEGER PRIMARY KEY CHECK (id = 1),
                 data BLOB NOT NULL
             ) STRICT;
             PRAGMA user_version = 1;
             COMMIT;",
        )?;
    } else if version != SCHEMA_VERSION {
        return Err(DaoError::Corrupt {
            seq: 0,
            reason: format!("unknown schema version {version}"),
        });
    }
    Ok(())
}

type Rows = (Vec<(i64, Vec<u8>, Vec<u8>)>, Option<Vec<u8>>);

fn read_rows(conn: &Connection) -> Result<Rows, DaoError> {
    // One read transaction: the rows and the head come from one snapshot.
    let tx = conn.unchecked_transaction()?;
    let conn: &Connection = &tx;
    let mut stmt = conn.prepare("SELECT seq, data, leaf FROM events ORDER BY seq")?;
    let rows = stmt
        .query_map([], |r| Ok((r.get(0)?, r.get(1)?, r.get(2)?)))?
        .collect::<Result<Vec<_>, _>>()?;
    let head = conn
        .query_row("SELECT data FROM head WHERE id = 1", [], |r| r.get(0))
        .optional()?;
    drop(stmt);
    tx.commit()?;
    Ok((rows, head))
}

fn corrupt(seq: u64, reason: impl Into<String>) -> DaoError {
    DaoError::Corrupt {
        seq,
        reason: reason.into(),
    }
}

impl Ledger {
    /// Creates a ledger at `path` with a genesis event signed by `authority`
    /// (who becomes KING) naming `log_key` as the tree-head signer.
    pub fn create(
        path: &Path,
        authority: &SigningKey,
        log_key: SigningKey,
        params: Params,
        time: u64,
    ) -> Result<Ledger, DaoError> {
        let conn = connect(path, true)?;
        init_schema(&conn)?;
        let count: i64 = conn.query_row("SELECT count(*) FROM events", [], |r| r.get(0))?;
        if count != 0 {
            return Err(DaoError::Rule("a ledger already exists at this path"));
        }
        let mut ledger = Ledger {
            conn,
            path: path.to_path_buf(),
            state: State::default(),
            leaves: Vec::new(),
            frontier: Frontier::new(),
            head: None,
            log_key: None,
        };
        let genesis = Event::sign(
            authority,
            &[0; 32],
            0,
            time,
            Body::Genesis {
                params,
                log_key: log_key.account(),
            },
        );
        ledger.log_key = Some(log_key);
        ledger.append(&genesis)?;
        tracing::info!(path = %path.display(), "created ledger");
        Ok(ledger)
    }

    /// Opens an existing ledger and replays it. With `log_key` (which must
    /// be the genesis's log key) it can append; without, it is read-only.
    /// Opening checks leaf hashes, the root against the tree head and the
    /// rules of every event; [`Ledger::verify_file`] also re-verifies
    /// signatures.
    pub fn open(path: &Path, log_key: Option<SigningKey>) -> Result<Ledger, DaoError> {
        if !path.exists() {
            return Err(DaoError::Io(std::io::Error::new(
                std::io::ErrorKind::NotFound,
                format!("no ledger at {}", path.display()),
            )));
        }
        let conn = connect(path, false)?;
        init_schema(&conn)?;
        let mut ledger = Ledger {
            conn,
            path: path.to_path_buf(),
            state: State::default(),
            leaves: Vec::new(),
            frontier: Frontier::new(),
            head: None,
            log_key: None,
        };
        ledger.reload()?;
        if let Some(key) = &log_key
            && Some(key.account()) != ledger.state.log_key()
        {
            return Err(DaoError::WrongLogKey);
        }
        ledger.log_key = log_key;
        Ok(ledger)
    }

    /// Re-reads the file and replays it into a fresh state.
    fn reload(&mut self) -> Result<(), DaoError> {
        let (rows, head) = read_rows(&self.conn)?;
        let mut state = State::default();
        let mut leaves = Vec::with_capacity(rows.len());
        let mut frontier = Frontier::new();
        for (i, (seq, data, leaf)) in rows.iter().enumerate() {
            let i = i as u64;
            if *seq != i as i64 {
                return Err(corrupt(i, "sequence gap"));
            }
            let computed = leaf_hash(data);
            if leaf.as_slice() != computed {
                return Err(corrupt(i, "leaf hash does not match the event"));
            }
            let event = Event::decode(data).map_err(|e| corrupt(i, e.to_string()))?;
            state
                .apply(&event, i == 0)
                .map_err(|e| corrupt(i, e.to_string()))?;
            leaves.push(computed);
            frontier.push(computed);
        }
        let head = match head {
            None if rows.is_empty() => None,
            None => return Err(corrupt(rows.len() as u64, "missing tree head")),
            Some(bytes) => {
                let head = TreeHead::decode(&bytes)
                    .map_err(|e| corrupt(rows.len() as u64, format!("tree head: {e}")))?;
                if head.size != rows.len() as u64 || head.root != frontier.root() {
                    return Err(corrupt(
                        rows.len() as u64,
                        "tree head does not match the events",
                    ));
                }
                let signed = state
                    .log_key()
                    .is_some_and(|key| head.verify(state.ledger_id(), &key));
                if !signed {
                    return Err(corrupt(
                        rows.len() as u64,
                        "tree head signature does not verify",
                    ));
                }
                Some(head)
            }
        };
        self.state = state;
        self.leaves = leaves;
        self.frontier = frontier;
        self.head = head;
        Ok(())
    }

    /// Sets how each commit reaches the disk (default [`Durability::Full`]).
    pub fn set_durability(&mut self, durability: Durability) -> Result<(), DaoError> {
        let mode = match durability {
            Durability::Full => "FULL",
            Durability::Normal => "NORMAL",
        };
        self.conn.pragma_update(None, "synchronous", mode)?;
        Ok(())
    }

    /// The file.
    pub fn path(&self) -> &Path {
        &self.path
    }

    /// The materialised state.
    pub fn state(&self) -> &State {
        &self.state
    }

    /// The latest signed tree head.
    pub fn head(&self) -> Option<&TreeHead> {
        self.head.as_ref()
    }

    /// Number of events.
    pub fn len(&self) -> u64 {
        self.leaves.len() as u64
    }

    /// Whether the ledger has no events (never true after `create`).
    pub fn is_empty(&self) -> bool {
        self.leaves.is_empty()
    }

    /// The leaf hash of event `seq`.
    pub fn leaf(&self, seq: u64) -> Option<Hash> {
        self.leaves.get(usize::try_from(seq).ok()?).copied()
    }

    /// Reads event `seq` back from the file.
    pub fn event(&self, seq: u64) -> Result<Event, DaoError> {
        let data: Vec<u8> = self
            .conn
            .query_row(
                "SELECT data FROM events WHERE seq = ?1",
                [i64::try_from(seq).unwrap_or(i64::MAX)],
                |r| r.get(0),
            )
            .optional()?
            .ok_or(DaoError::UnknownEvent(seq))?;
        Ok(Event::decode(&data)?)
    }

    /// Signs `body` with `key` at logical time `time`, using the key's next
    /// nonce, and appends it.
    pub fn submit(&mut self, key: &SigningKey, time: u64, body: Body) -> Result<Receipt, DaoError> {
        let nonce = self.state.next_nonce(&key.account());
        let event = Event::sign(key, self.state.ledger_id(), nonce, time, body);
        self.append(&event)
    }

    /// Validates `event` against the state (signature, nonce, time, rules)
    /// and appends it with a new signed tree head in one transaction. A
    /// refused event changes nothing.
    pub fn append(&mut self, event: &Event) -> Result<Receipt, DaoError> {
        self.append_batch(std::slice::from_ref(event))
    }

    /// Appends several events in one transaction: all or none.
    pub fn append_batch(&mut self, events: &[Event]) -> Result<Receipt, DaoError> {
        let Some(log_key) = &self.log_key else {
            return Err(DaoError::ReadOnly);
        };
        if events.is_empty() {
            return Err(DaoError::Rule("nothing to append"));
        }
        let single = events.len() == 1;
        let backup = if single {
            None
        } else {
            Some(self.state.clone())
        };
        let mut encoded = Vec::with_capacity(events.len());
        for event in events {
            if let Err(e) = self.state.apply(event, true) {
                if let Some(backup) = backup {
                    self.state = backup;
                }
                return Err(e);
            }
            let bytes = event.encode();
            let leaf = leaf_hash(&bytes);
            encoded.push((bytes, leaf));
        }
        let start = self.leaves.len() as u64;
        let mut frontier = self.frontier.clone();
        for (_, leaf) in &encoded {
            frontier.push(*leaf);
        }
        let size = frontier.size();
        let head = TreeHead::sign(
            log_key,
            self.state.ledger_id(),
            size,
            self.state.time(),
            frontier.root(),
        );
        if let Err(e) = self.write(start, &encoded, &head) {
            tracing::warn!(error = %e, "append failed; reloading the ledger");
            match backup {
                Some(backup) => self.state = backup,
                None => self.reload()?,
            }
            return Err(e);
        }
        let leaf = encoded.last().map(|(_, l)| *l).unwrap_or_default();
        self.leaves.extend(encoded.iter().map(|(_, l)| *l));
        self.frontier = frontier;
        self.head = Some(head.clone());
        tracing::debug!(seq = size - 1, "appended");
        Ok(Receipt {
            seq: size - 1,
            leaf,
            head,
        })
    }

    fn write(
        &mut self,
        start: u64,
        encoded: &[(Vec<u8>, Hash)],
        head: &TreeHead,
    ) -> Result<(), DaoError> {
        let tx = self
            .conn
            .transaction_with_behavior(TransactionBehavior::Immediate)?;
        {
            let mut insert =
                tx.prepare_cached("INSERT INTO events (seq, data, leaf) VALUES (?1, ?2, ?3)")?;
            for (i, (bytes, leaf)) in encoded.iter().enumerate() {
                insert.execute(params![(start + i as u64) as i64, bytes, leaf.as_slice()])?;
            }
            tx.prepare_cached("INSERT OR REPLACE INTO head (id, data) VALUES (1, ?1)")?
                .execute([head.encode()])?;
        }
        tx.commit()?;
        Ok(())
    }

    /// The audit path of event `seq` in the tree of the first `size` events.
    pub fn inclusion_proof(&self, seq: u64, size: u64) -> Result<Vec<Hash>, DaoError> {
        if size == 0 || size > self.len() {
            return Err(DaoError::BadTreeSize(size));
        }
        if seq >= size {
            return Err(DaoError::UnknownEvent(seq));
        }
        Ok(merkle::inclusion_path(&self.leaves[..size as usize], seq as usize).unwrap_or_default())
    }

    /// The consistency proof from the tree of the first `old_size` events to
    /// the tree of the first `new_size`.
    pub fn consistency_proof(&self, old_size: u64, new_size: u64) -> Result<Vec<Hash>, DaoError> {
        if new_size > self.len() || new_size == 0 {
            return Err(DaoError::BadTreeSize(new_size));
        }
        merkle::consistency_proof(&self.leaves[..new_size as usize], old_size as usize)
            .ok_or(DaoError::BadTreeSize(old_size))
    }

    /// The Merkle root of the first `size` events.
    pub fn root_at(&self, size: u64) -> Result<Hash, DaoError> {
        if size > self.len() {
            return Err(DaoError::BadTreeSize(size));
        }
        Ok(merkle::root_of(&self.leaves[..size as usize]))
    }

    /// Verifies a ledger file from scratch, independently of any open
    /// [`Ledger`]: leaf hashes, the Merkle root against the signed tree head,
    /// every signature (in batches of [`VERIFY_BATCH`]), and a replay of
    /// every event. Names the first bad event. An `Err` means the file could
    /// not be read as a ledger at all.
    pub fn verify_file(path: &Path, options: VerifyOptions) -> Result<VerifyReport, DaoError> {
        let started = Instant::now();
        let conn = connect(path, false)?;
        // Memory-mapped reads for the one big scan (best effort).
        let _ = conn.query_row("PRAGMA mmap_size = 1073741824", [], |r| r.get::<_, i64>(0));
        // One read transaction: the head and the rows come from one snapshot.
        let tx = conn.unchecked_transaction()?;
        let head: Option<Vec<u8>> = tx
            .query_row("SELECT data FROM head WHERE id = 1", [], |r| r.get(0))
            .optional()?;
        let read_seconds = started.elapsed().as_secs_f64();

        let mut first_bad: Option<(u64, String)> = None;
        let bad = |seq: u64, reason: String, first: &mut Option<(u64, String)>| {
            if first.as_ref().is_none_or(|(s, _)| seq < *s) {
                *first = Some((seq, reason));
            }
        };

        // 1. One pass over the rows: leaf hashes and the Merkle root. Event
        //    bytes are kept only when signatures or replay need them.
        let started = Instant::now();
        let keep = options.signatures || options.replay;
        let mut kept: Vec<Vec<u8>> = Vec::new();
        let mut genesis: Option<Vec<u8>> = None;
        let mut frontier = Frontier::new();
        let mut count = 0u64;
        {
            let mut stmt = tx.prepare("SELECT seq, data, leaf FROM events ORDER BY seq")?;
            let mut rows = stmt.query([])?;
            while let Some(row) = rows.next()? {
                let i = count;
                count += 1;
                if first_bad.is_some() {
                    continue;
                }
                let seq = row.get_ref(0)?.as_i64().ok();
                let (ValueRef::Blob(data), ValueRef::Blob(leaf)) =
                    (row.get_ref(1)?, row.get_ref(2)?)
                else {
                    bad(i, "event row is not a pair of blobs".into(), &mut first_bad);
                    continue;
                };
                if seq != Some(i as i64) {
                    bad(i, "sequence gap".into(), &mut first_bad);
                    continue;
                }
                let computed = leaf_hash(data);
                if leaf != computed {
                    bad(
                        i,
                        "leaf hash does not match the event".into(),
                        &mut first_bad,
                    );
                    continue;
                }
                frontier.push(computed);
                if i == 0 {
                    genesis = Some(data.to_vec());
                }
                if keep {
                    kept.push(data.to_vec());
                }
            }
        }
        tx.commit()?;
        drop(conn);
        let root = frontier.root();
        let hash_seconds = started.elapsed().as_secs_f64();

        // 2. Decoding and signatures.
        let started = Instant::now();
        let ledger_id = genesis.as_deref().map(leaf_hash).unwrap_or_default();
        let log_key = match genesis.as_deref().map(Event::decode) {
            Some(Ok(e)) => match e.body() {
                Body::Genesis { log_key, .. } => Some(*log_key),
                _ => None,
            },
            _ => None,
        };
        let mut events = Vec::with_capacity(kept.len());
        if keep {
            for (i, data) in kept.iter().enumerate() {
                match Event::decode(data) {
                    Ok(e) => events.push(e),
                    Err(e) => {
                        bad(i as u64, e.to_string(), &mut first_bad);
                        break;
                    }
                }
            }
        }
        if options.signatures
            && let Some(seq) = first_bad_signature_parallel(
                &kept[..events.len()],
                &ledger_id,
                options.threads,
                VERIFY_BATCH,
            )
        {
            bad(seq, "invalid signature".into(), &mut first_bad);
        }
        let signature_seconds = started.elapsed().as_secs_f64();
        let limit = first_bad
            .as_ref()
            .map_or(events.len(), |(s, _)| (*s as usize).min(events.len()));

        // 3. Replay.
        let started = Instant::now();
        if options.replay {
            let mut state = State::default();
            for (i, event) in events[..limit].iter().enumerate() {
                if let Err(e) = state.apply(event, false) {
                    bad(i as u64, e.to_string(), &mut first_bad);
                    break;
                }
            }
        }
        let replay_seconds = started.elapsed().as_secs_f64();

        // 4. The signed tree head.
        let mut problem = first_bad.map(|(seq, reason)| Problem {
            seq: Some(seq),
            reason,
        });
        if problem.is_none() && count > 0 {
            let head_problem = match head.as_deref().map(TreeHead::decode) {
                None => Some("missing tree head".to_owned()),
                Some(Err(e)) => Some(format!("malformed tree head: {e}")),
                Some(Ok(h)) if h.size != count => Some(format!(
                    "tree head names {} events, the log holds {count}",
                    h.size
                )),
                Some(Ok(h)) if h.root != root => {
                    Some("tree head root does not match the events".to_owned())
                }
                Some(Ok(h)) => match log_key {
                    Some(key) if options.signatures && !h.verify(&ledger_id, &key) => {
                        Some("tree head signature does not verify".to_owned())
                    }
                    None => Some("the first event is not a genesis".to_owned()),
                    _ => None,
                },
            };
            problem = head_problem.map(|reason| Problem { seq: None, reason });
        }
        Ok(VerifyReport {
            events: count,
            root,
            problem,
            read_seconds,
            hash_seconds,
            signature_seconds,
            replay_seconds,
        })
    }
}

/// The first event (by sequence) whose signature does not verify.
/// Splits the rows into one contiguous range per thread.
fn first_bad_signature_parallel(
    rows: &[Vec<u8>],
    ledger_id: &[u8; 32],
    threads: usize,
    batch: usize,
) -> Option<u64> {
    let threads = threads.clamp(1, 64);
    if threads == 1 || rows.len() < 2 * batch {
        return first_bad_signature(rows, ledger_id, 0, batch);
    }
    let per = rows.len().div_ceil(threads).div_ceil(batch) * batch;
    std::thread::scope(|scope| {
        let handles: Vec<_> = rows
            .chunks(per)
            .enumerate()
            .map(|(i, part)| {
                let offset = i * per;
                (
                    offset,
                    scope.spawn(move || first_bad_signature(part, ledger_id, offset, batch)),
                )
            })
            .collect();
        handles
            .into_iter()
            .filter_map(|(offset, h)| h.join().unwrap_or(Some(offset as u64)))
            .min()
    })
}

/// The first event in `rows` (which start at sequence `offset`) whose
/// signature does not verify.
fn first_bad_signature(
    rows: &[Vec<u8>],
    ledger_id: &[u8; 32],
    offset: usize,
    batch: usize,
) -> Option<u64> {
    let zero = [0u8; 32];
    for (chunk_index, chunk) in rows.chunks(batch).enumerate() {
        let base = offset + chunk_index * batch;
        let mut transcripts = Vec::with_capacity(chunk.len());
        let mut signatures = Vec::with_capacity(chunk.len());
        let mut publics = Vec::with_capacity(chunk.len());
        let mut parse_failed = None;
        for (j, data) in chunk.iter().enumerate() {
            let id = if base + j == 0 { &zero } else { ledger_id };
            let parsed = split_encoded(data).and_then(|(ctx, unsigned, signer, sig)| {
                let public = PublicKey::from_bytes(&signer).ok()?;
                let sig = Signature::from_bytes(&sig).ok()?;
                Some((
                    signing_context(ctx).bytes(&signing_message(id, unsigned)),
                    public,
                    sig,
                ))
            });
            if let Some((t, p, s)) = parsed {
                transcripts.push(t);
                publics.push(p);
                signatures.push(s);
            } else {
                parse_failed = Some(j);
                break;
            }
        }
        if parse_failed.is_none()
            && schnorrkel::verify_batch(transcripts, &signatures, &publics, false).is_ok()
        {
            continue;
        }
        // Find the first bad one in this chunk, one by one.
        let end = parse_failed.map_or(chunk.len(), |j| j + 1);
        for (j, data) in chunk[..end].iter().enumerate() {
            let id = if base + j == 0 { &zero } else { ledger_id };
            let ok = split_encoded(data).is_some_and(|(ctx, unsigned, signer, sig)| {
                verify_raw(
                    &AccountId::from_bytes(signer),
                    ctx,
                    &signing_message(id, unsigned),
                    &sig,
                )
            });
            if !ok {
                return Some((base + j) as u64);
            }
        }
    }
    None
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parallel_signature_check_names_the_first_bad_event() {
        let key = SigningKey::from_seed([4; 32]);
        let id = [3u8; 32];
        let batch = 8;
        let n = 5 * batch + 3;
        let mut rows: Vec<Vec<u8>> = (0..n as u64)
            .map(|i| {
                let ledger = if i == 0 { [0; 32] } else { id };
                Event::sign(&key, &ledger, i, i, Body::Burn { amount: i }).encode()
            })
            .collect();
        assert_eq!(first_bad_signature_parallel(&rows, &id, 2, batch), None);
        let last = rows[n - 2].len() - 1;
        rows[n - 2][last] ^= 1;
        assert_eq!(
            first_bad_signature_parallel(&rows, &id, 2, batch),
            Some(n as u64 - 2)
        );
        rows[13][40] ^= 1;
        for threads in 1..=4 {
            assert_eq!(
                first_bad_signature_parallel(&rows, &id, threads, batch),
                Some(13)
            );
        }
        // The genesis is signed for the all-zero ledger id.
        rows[0][45] ^= 1;
        assert_eq!(first_bad_signature_parallel(&rows, &id, 2, batch), Some(0));
    }
}
