//! Beta reputation (Jøsang and Ismail 2002) with a forgetting factor,
//! persisted in SQLite.
//!
//! Each node carries positive evidence `r` and negative evidence `s`. An
//! observation first multiplies both by the forgetting factor λ and then adds
//! its own weight, so old behaviour fades: with λ = 0.9 the last ~10
//! observations dominate. The trust is the expected value of
//! Beta(r + 1, s + 1); the uncertainty is Jøsang's `u = 2 / (r + s + 2)`.

use std::path::Path;

use rusqlite::{Connection, OptionalExtension, params};

use crate::error::{Result, SchedError};
use crate::model::NodeId;

/// What happened to a task a node ran.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum TaskOutcome {
    /// Finished and verified.
    Success,
    /// Failed (crash, error exit).
    Failure,
    /// Did not answer in time.
    Timeout,
    /// Its result disagreed with the redundant runs.
    VerificationMismatch,
}

/// Reputation settings.
#[derive(Debug, Clone, Copy, PartialEq)]
#[non_exhaustive]
pub struct ReputationConfig {
    /// Forgetting factor λ in `(0, 1]` (1 = never forget).
    pub forgetting: f64,
    /// Negative weight of a timeout (a failure weighs 1).
    pub timeout_weight: f64,
    /// Negative weight of a verification mismatch (evidence of a wrong
    /// result weighs more than a crash).
    pub mismatch_weight: f64,
}

impl Default for ReputationConfig {
    fn default() -> Self {
        Self {
            forgetting: 0.9,
            timeout_weight: 0.5,
            mismatch_weight: 2.0,
        }
    }
}

impl ReputationConfig {
    fn validate(&self) -> Result<()> {
        let ok = self.forgetting > 0.0
            && self.forgetting <= 1.0
            && self.timeout_weight.is_finite()
            && self.timeout_weight >= 0.0
            && self.mismatch_weight.is_finite()
            && self.mismatch_weight >= 0.0;
        if ok {
            Ok(())
        } else {
            Err(SchedError::InvalidConfig(
                "forgetting must be in (0, 1] and weights non-negative".into(),
            ))
        }
    }
}

/// One node's Beta reputation.
#[derive(Debug, Clone, Copy, PartialEq, Default)]
pub struct BetaReputation {
    positive: f64,
    negative: f64,
    observations: u64,
}

impl BetaReputation {
    /// No evidence yet (expected value 0.5, uncertainty 1).
    pub const fn new() -> Self {
        Self {
            positive: 0.0,
            negative: 0.0,
            observations: 0,
        }
    }

    /// Adds one observation under `config`.
    pub fn observe(&mut self, outcome: TaskOutcome, config: &ReputationConfig) {
        let (r, s) = match outcome {
            TaskOutcome::Success => (1.0, 0.0),
            TaskOutcome::Failure => (0.0, 1.0),
            TaskOutcome::Timeout => (0.0, config.timeout_weight),
            TaskOutcome::VerificationMismatch => (0.0, config.mismatch_weight),
        };
        self.positive = self.positive * config.forgetting + r;
        self.negative = self.negative * config.forgetting + s;
        self.observations = self.observations.saturating_add(1);
    }

    /// The expected trust, `(r + 1) / (r + s + 2)`.
    pub fn expected(&self) -> f64 {
        (self.positive + 1.0) / (self.positive + self.negative + 2.0)
    }

    /// Jøsang's uncertainty `2 / (r + s + 2)`: 1 without evidence, towards 0
    /// with much of it.
    pub fn uncertainty(&self) -> f64 {
        2.0 / (self.positive + self.negative + 2.0)
    }

    /// The variance of Beta(r + 1, s + 1).
    pub fn variance(&self) -> f64 {
        let a = self.positive + 1.0;
        let b = self.negative + 1.0;
        a * b / ((a + b) * (a + b) * (a + b + 1.0))
    }

    /// Positive evidence `r` (after forgetting).
    pub fn positive(&self) -> f64 {
        self.positive
    }

    /// Negative evidence `s` (after forgetting).
    pub fn negative(&self) -> f64 {
        self.negative
    }

    /// Number of observations ever recorded.
    pub fn observations(&self) -> u64 {
        self.observations
    }
}

/// Where task outcomes go: the seam through which the node runtime (fog-cli)
/// feeds results from the executor (fog-exec) into reputation, without
/// fog-sched knowing the executor.
pub trait OutcomeSink {
    /// Records that `node` produced `outcome`.
    fn record_outcome(&mut self, node: NodeId, outcome: TaskOutcome) -> Result<()>;
}

impl OutcomeSink for ReputationStore {
    fn record_outcome(&mut self, node: NodeId, outcome: TaskOutcome) -> Result<()> {
        self.record(node, outcome).map(|_| ())
    }
}

/// Reputations of all nodes, in a SQLite file (WAL journal). Every update
/// is one transaction: a crash leaves the previous value, never half of one.
#[derive(Debug)]
pub struct ReputationStore {
    conn: Connection,
    config: ReputationConfig,
}

impl ReputationStore {
    /// Opens (creating if needed) the store at `path`.
    pub fn open(path: impl AsRef<Path>, config: ReputationConfig) -> Result<Self> {
        config.validate()?;
        let conn = Connection::open(path)?;
        conn.pragma_update(None, "journal_mode", "WAL")?;
        conn.pragma_update(None, "synchronous", "NORMAL")?;
        Self::init(conn, config)
    }

    /// A store that lives in memory only (for tests and simulations).
    pub fn in_memory(config: ReputationConfig) -> Result<Self> {
        config.validate()?;
        Self::init(Connection::open_in_memory()?, config)
    }

    fn init(conn: Connection, config: ReputationConfig) -> Result<Self> {
        conn.execute_batch(
            "CREATE TABLE IF NOT EXISTS reputation (
                node INTEGER PRIMARY KEY,
                positive REAL NOT NULL CHECK (positive >= 0),
                negative REAL NOT NULL CHECK (negative >= 0),
                observations INTEGER NOT NULL CHECK (observations >= 0)
            );",
        )?;
        Ok(Self { conn, config })
    }

    /// The settings.
    pub fn config(&self) -> &ReputationConfig {
        &self.config
    }

    /// A node's reputation (no evidence when the node is unknown).
    pub fn get(&self, node: NodeId) -> Result<BetaReputation> {
        let row = self
            .conn
            .query_row(
                "SELECT positive, negative, observations FROM reputation WHERE node = ?1",
                params![node.get() as i64],
                |r| {
                    Ok(BetaReputation {
                        positive: r.get(0)?,
                        negative: r.get(1)?,
                        observations: r.get::<_, i64>(2)?.max(0) as u64,
                    })
                },
            )
            .optional()?;
        Ok(row.unwrap_or_default())
    }

    /// Records an outcome for `node` and returns its new reputation.
    pub fn record(&mut self, node: NodeId, outcome: TaskOutcome) -> Result<BetaReputation> {
        let tx = self.conn.transaction()?;
        let current = tx
            .query_row(
                "SELECT positive, negative, observations FROM reputation WHERE node = ?1",
                params![node.get() as i64],
                |r| {
                    Ok(BetaReputation {
                        positive: r.get(0)?,
                        negative: r.get(1)?,
                        observations: r.get::<_, i64>(2)?.max(0) as u64,
                    })
                },
            )
            .optional()?;
        let mut rep = current.unwrap_or_default();
        rep.observe(outcome, &self.config);
        tx.execute(
            "INSERT INTO reputation (node, positive, negative, observations)
             VALUES (?1, ?2, ?3, ?4)
             ON CONFLICT(node) DO UPDATE SET positive = ?2, negative = ?3, observations = ?4",
            params![
                node.get() as i64,
                rep.positive,
                rep.negative,
                rep.observations.min(i64::MAX as u64) as i64
            ],
        )?;
        tx.commit()?;
        tracing::debug!(%node, ?outcome, trust = rep.expected(), "reputation updated");
        Ok(rep)
    }

    /// Every known node, most trusted first (ties by node id).
    pub fn ranking(&self) -> Result<Vec<(NodeId, BetaReputation)>> {
        let mut stmt = self
            .conn
            .prepare("SELECT node, positive, negative, observations FROM reputation")?;
        let mut all = stmt
            .query_map([], |r| {
                Ok((
                    NodeId::new(r.get::<_, i64>(0)? as u64),
                    BetaReputation {
                        positive: r.get(1)?,
                        negative: r.get(2)?,
                        observations: r.get::<_, i64>(3)?.max(0) as u64,
                    },
                ))
            })?
            .collect::<Result<Vec<_>, _>>()?;
        all.sort_by(|a, b| {
            b.1.expected()
                .total_cmp(&a.1.expected())
                .then(a.0.cmp(&b.0))
        });
        Ok(all)
    }
}
