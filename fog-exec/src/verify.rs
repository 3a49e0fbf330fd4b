//! Result verification by redundancy: a quorum of replicas must agree on the
//! output hash *and* the fuel consumed; every replica that disagrees with the
//! majority becomes an [`Evidence`] record. Spot checks re-execute a sample
//! of single-replica tasks locally.

use std::collections::HashMap;
use std::fmt;

use serde::{Deserialize, Serialize};
use sha2::{Digest, Sha256};

use crate::spec::TaskResult;

/// What a replica claims a task produced: the output hash and the fuel it
/// consumed (the verifiable work measure).
#[derive(Debug, Clone, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct Claim {
    /// [`TaskResult::output_hash`].
    pub output_hash: String,
    /// [`TaskResult::fuel_consumed`].
    pub fuel: u64,
}

impl Claim {
    /// A claim from a result.
    pub fn of(result: &TaskResult) -> Self {
        Self {
            output_hash: result.output_hash.clone(),
            fuel: result.fuel_consumed,
        }
    }
}

impl fmt::Display for Claim {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}/fuel={}", self.output_hash, self.fuel)
    }
}

/// One replica's report.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Replica {
    /// The node that ran it.
    pub node: String,
    /// What it claims.
    pub claim: Claim,
}

impl Replica {
    /// A replica report.
    pub fn new(node: impl Into<String>, claim: Claim) -> Self {
        Self {
            node: node.into(),
            claim,
        }
    }
}

/// A replica that disagreed with the agreed result: input for reputation and
/// slashing.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Evidence {
    /// The task.
    pub task: String,
    /// The node whose claim disagreed.
    pub node: String,
    /// What it claimed.
    pub claimed: Claim,
    /// What the majority agreed on.
    pub majority: Claim,
}

/// The outcome of a quorum check.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Verdict {
    /// At least `k` replicas agree.
    Agreed {
        /// The agreed claim.
        claim: Claim,
        /// Nodes that agreed.
        agreeing: Vec<String>,
        /// One record per disagreeing replica.
        evidence: Vec<Evidence>,
    },
    /// No claim reached `k` votes: run more replicas.
    NoQuorum {
        /// The largest number of replicas agreeing on one claim.
        best: usize,
    },
}

/// Checks that at least `k` of `replicas` agree (a node counts once: later
/// duplicate reports of a node are ignored).
pub fn quorum(task: &str, replicas: &[Replica], k: usize) -> Verdict {
    let mut seen = std::collections::HashSet::new();
    let unique: Vec<&Replica> = replicas
        .iter()
        .filter(|r| seen.insert(r.node.as_str()))
        .collect();
    let mut votes: HashMap<&Claim, usize> = HashMap::new();
    for r in &unique {
        *votes.entry(&r.claim).or_default() += 1;
    }
    // Ties break on the claim's text so every verifier picks the same one.
    let best = votes
        .iter()
        .max_by(|a, b| {
            a.1.cmp(b.1)
                .then_with(|| b.0.output_hash.cmp(&a.0.output_hash))
                .then_with(|| b.0.fuel.cmp(&a.0.fuel))
        })
        .map(|(c, n)| ((*c).clone(), *n));
    match best {
        Some((claim, n)) if n >= k.max(1) => {
            let mut agreeing = Vec::new();
            let mut evidence = Vec::new();
            for r in unique {
                if r.claim == claim {
                    agreeing.push(r.node.clone());
                } else {
                    evidence.push(Evidence {
                        task: task.to_owned(),
                        node: r.node.clone(),
                        claimed: r.claim.clone(),
                        majority: claim.clone(),
                    });
                }
            }
            Verdict::Agreed {
                claim,
                agreeing,
                evidence,
            }
        }
        Some((_, n)) => Verdict::NoQuorum { best: n },
        None => Verdict::NoQuorum { best: 0 },
    }
}

/// Whether a task should be spot-checked at `rate` (0.0 to 1.0). The choice
/// is a deterministic function of the task id and a verifier secret, so a
/// node cannot predict it without the secret.
pub fn should_spot_check(task: &str, secret: &[u8], rate: f64) -> bool {
    let mut h = Sha256::new();
    h.update(b"fog-exec/spot-check/v1");
    h.update((secret.len() as u64).to_le_bytes());
    h.update(secret);
    h.update(task.as_bytes());
    let d = h.finalize();
    let x = u64::from_le_bytes(d[..8].try_into().unwrap_or([0; 8]));
    (x as f64 / u64::MAX as f64) < rate.clamp(0.0, 1.0)
}

/// Compares a node's claim with a local re-execution; a mismatch is evidence.
pub fn spot_check(task: &str, replica: &Replica, reference: &TaskResult) -> Option<Evidence> {
    let majority = Claim::of(reference);
    (replica.claim != majority).then(|| Evidence {
        task: task.to_owned(),
        node: replica.node.clone(),
        claimed: replica.claim.clone(),
        majority,
    })
}
