//! # fog-dao: money and votes for fog
//!
//! An event-sourced ledger, off-chain but tamper-evident. Every state change
//! is an [`Event`] signed with sr25519 (schnorrkel, a signing context per
//! event kind) and appended to an RFC 6962 Merkle log kept in SQLite (WAL,
//! one transaction per append, a signed tree head with every append). The
//! [`State`] — balances, stakes, delegations, proposals, votes, parameters —
//! is a deterministic replay of the log; time is logical (carried in the
//! events), so a replay always gives the same state.
//!
//! On top of the log: tokens minted by earning rules, transfers, burns and a
//! treasury; staking with an unbonding period (still slashable), per-epoch
//! rewards and jailing; automated slashing from double-sign, quorum-mismatch
//! and downtime evidence with a tombstone; and governance with roles, vote
//! weights, snapshot voting power, single-hop delegation with override,
//! quorum, threshold, veto, late-quorum extension and a timelock per type.
//!
//! ## Rules in brief
//!
//! - **Signatures and replay protection.** Each event carries its signer's
//!   next nonce (one counter per account), its logical time (never before
//!   the previous event's) and is signed over the ledger id (the genesis
//!   leaf hash), so it cannot be replayed in this ledger or another one. A
//!   ballot also names its proposal, so it counts for that proposal only.
//! - **Tokens.** `Mint` (authority only) pays `units × rate × multiplier` of
//!   an [`EarningRule`], a share going to the treasury. Tokens leave supply
//!   only by `Burn` and by slashing, so balances + bonded + unbonding +
//!   treasury = minted − burned − slashed at every step.
//! - **Staking.** `Unbond` starts an entry released by `Withdraw` after the
//!   unbonding period; until then it can be slashed. `DistributeRewards`
//!   pays one epoch's reward pro rata to unjailed bonded stake.
//! - **Slashing.** Double-sign evidence (two different results signed by one
//!   node for one task) slashes and tombstones the node: one such slash per
//!   node, ever. A quorum-mismatch record (the node's signed result against a
//!   majority result signed by enough bonded verifiers) and a downtime
//!   report (authority) slash once per (node, task) or (node, epoch);
//!   downtime also jails. Slashes take bonded stake first, then unbonding
//!   entries, and never more than the stake.
//! - **Voting power** is bonded stake at the last checkpoint *before* the
//!   proposal's start (proposal time + voting delay), plus that of accounts
//!   delegating to the voter at that checkpoint (one hop), times the voter's
//!   role weight. A delegator who votes takes its stake back from its
//!   delegate's ballot. Quorum is measured against all bonded stake at the
//!   same checkpoint.
//! - **Proposals** move Pending → Active → Succeeded/Defeated → Queued →
//!   Executed/Expired (or Canceled). Passing needs quorum, For/(For+Against)
//!   above the threshold and vetoes below the veto fraction. A quorum first
//!   reached within the late-quorum window extends voting. Every kind has a
//!   timelock of at least 1 (emergency the shortest); a guardian may cancel
//!   anything not final, the proposer only while pending.
//!
//! ```
//! use fog_dao::{Body, Choice, EarningRule, Ledger, Params, ProposalKind, Action, ParamKey, SigningKey, VerifyOptions};
//!
//! # fn main() -> Result<(), fog_dao::DaoError> {
//! let dir = std::env::temp_dir().join(format!("fog-dao-doc-{}", std::process::id()));
//! std::fs::create_dir_all(&dir)?;
//! let path = dir.join("ledger.db");
//! # let _ = std::fs::remove_file(&path);
//! let king = SigningKey::from_seed([1; 32]);
//! let alice = SigningKey::from_seed([2; 32]);
//! let params = Params::default().with(ParamKey::VotingDelay, 1)?.with(ParamKey::VotingPeriod, 10)?;
//! let mut ledger = Ledger::create(&path, &king, SigningKey::from_seed([9; 32]), params, 0)?;
//!
//! // The authority pays Alice for 100 units of verified compute; she stakes.
//! ledger.submit(&king, 1, Body::Mint { to: alice.account(), rule: EarningRule::Compute, units: 100 })?;
//! ledger.submit(&alice, 2, Body::Bond { amount: 500 })?;
//!
//! // She proposes a change and votes for it once voting opens.
//! let change = Action::SetParam { key: ParamKey::VotingPeriod, value: 20 };
//! ledger.submit(&alice, 3, Body::Propose { kind: ProposalKind::Parameter, action: change, description: "longer votes".into() })?;
//! ledger.submit(&alice, 4, Body::Vote { proposal: 0, choice: Choice::For })?;
//!
//! // Every receipt carries a signed tree head; any event has an inclusion proof.
//! let head = ledger.head().unwrap().clone();
//! let proof = ledger.inclusion_proof(2, head.size())?;
//! assert!(fog_dao::merkle::verify_inclusion(&ledger.leaf(2).unwrap(), 2, head.size(), &proof, head.root()));
//!
//! // Verification from the file alone: signatures, hashes, replay.
//! let report = Ledger::verify_file(&path, VerifyOptions::default())?;
//! assert!(report.is_ok());
//! # std::fs::remove_dir_all(&dir)?;
//! # Ok(())
//! # }
//! ```

mod codec;
mod error;
mod event;
pub mod merkle;
mod state;
mod store;
mod types;

pub use error::{DaoError, DecodeError};
pub use event::{
    Body, DoubleSignEvidence, EVENT_VERSION, Event, MAX_ATTESTATIONS, MAX_DESCRIPTION,
    MismatchEvidence, RESERVED_CONTEXT_PREFIX, SignedResult, SigningKey, TASK_RESULT_CONTEXT,
    verify_batch, verify_statement, verify_task_result,
};
pub use state::{Account, Ballot, MAX_UNBONDING, Proposal, State, Unbonding};
pub use store::{
    Durability, Ledger, Problem, Receipt, TreeHead, VERIFY_BATCH, VerifyOptions, VerifyReport,
};
pub use types::{
    AccountId, Action, Choice, EarningRule, ParamKey, Params, ProposalKind, ProposalState, Role,
};
