//! Typed errors.

use crate::types::{AccountId, ProposalState};

/// Why a byte string is not a valid encoding.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DecodeError {
    /// The input ended inside a field.
    #[error("truncated input while reading {what}")]
    Truncated {
        /// The field being read.
        what: &'static str,
    },
    /// A length prefix exceeds its bound.
    #[error("{what} longer than {max} bytes")]
    TooLong {
        /// The field being read.
        what: &'static str,
        /// The bound.
        max: usize,
    },
    /// Bytes left over after a complete value.
    #[error("{count} trailing bytes after a complete value")]
    TrailingBytes {
        /// How many.
        count: usize,
    },
    /// A tag byte with no meaning.
    #[error("unknown {what} tag {value}")]
    UnknownTag {
        /// The field being read.
        what: &'static str,
        /// The tag found.
        value: u8,
    },
    /// A field that decodes but is not valid (for example a bad public key).
    #[error("invalid {what}")]
    Invalid {
        /// The field being read.
        what: &'static str,
    },
}

/// Everything the ledger can refuse or fail at. A refused event changes
/// nothing and is not appended.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum DaoError {
    /// Bytes that are not a valid event.
    #[error("malformed event: {0}")]
    Decode(#[from] DecodeError),
    /// The signature does not verify for the signer and the event.
    #[error("invalid signature from {signer}")]
    BadSignature {
        /// Who claims to have signed.
        signer: AccountId,
    },
    /// The signer's nonce is not the next one (a replay or a gap).
    #[error("bad nonce for {signer}: expected {expected}, got {got}")]
    BadNonce {
        /// The signer.
        signer: AccountId,
        /// The nonce the ledger expects.
        expected: u64,
        /// The nonce in the event.
        got: u64,
    },
    /// The event's logical time is before the last event's.
    #[error("event time {got} is before the ledger time {last}")]
    TimeWentBackwards {
        /// The ledger's time.
        last: u64,
        /// The event's time.
        got: u64,
    },
    /// The signer may not do this.
    #[error("{signer} is not allowed to {action}")]
    NotAuthorized {
        /// The signer.
        signer: AccountId,
        /// What it tried.
        action: &'static str,
    },
    /// Not enough tokens.
    #[error("insufficient funds: need {needed}, have {available}")]
    InsufficientFunds {
        /// The amount asked for.
        needed: u64,
        /// The amount available.
        available: u64,
    },
    /// An amount of zero, or one that would overflow.
    #[error("invalid amount {0}")]
    InvalidAmount(u64),
    /// No proposal with this id.
    #[error("unknown proposal {0}")]
    UnknownProposal(u64),
    /// This account already voted on this proposal.
    #[error("{voter} already voted on proposal {proposal}")]
    DoubleVote {
        /// The proposal.
        proposal: u64,
        /// The voter.
        voter: AccountId,
    },
    /// The proposal is not in the state the action needs (a vote outside the
    /// voting window, a queue before success, ...).
    #[error("proposal {proposal} is {state}, cannot {action}")]
    WrongState {
        /// The proposal.
        proposal: u64,
        /// Its state at the event's time.
        state: ProposalState,
        /// What was attempted.
        action: &'static str,
    },
    /// The timelock has not elapsed.
    #[error("proposal {proposal} is timelocked until {eta}")]
    Timelocked {
        /// The proposal.
        proposal: u64,
        /// The earliest execution time.
        eta: u64,
    },
    /// The voter has no voting power at the proposal's snapshot.
    #[error("{voter} has no voting power at the snapshot of proposal {proposal}")]
    NoVotingPower {
        /// The proposal.
        proposal: u64,
        /// The voter.
        voter: AccountId,
    },
    /// The proposer's bonded stake is below the proposal threshold.
    #[error("bonded stake {bonded} is below the proposal threshold {threshold}")]
    BelowProposalThreshold {
        /// The proposer's bonded stake.
        bonded: u64,
        /// The threshold.
        threshold: u64,
    },
    /// A parameter value out of its range.
    #[error("invalid value {value} for parameter {name}")]
    InvalidParameter {
        /// The parameter.
        name: &'static str,
        /// The value.
        value: u64,
    },
    /// A proposal whose kind and action do not fit together.
    #[error("invalid proposal: {0}")]
    InvalidProposal(&'static str),
    /// Slashing evidence that does not prove an offence.
    #[error("invalid evidence: {0}")]
    InvalidEvidence(&'static str),
    /// This offence was already punished (tombstone).
    #[error("offence already punished for {node}")]
    DuplicateOffence {
        /// The offender.
        node: AccountId,
    },
    /// Delegation to oneself, jailed-state errors and similar rule breaks.
    #[error("rule violated: {0}")]
    Rule(&'static str),
    /// The first event must be a genesis, and only the first.
    #[error("genesis must be the first event and only the first")]
    Genesis,
    /// The ledger was opened without the log key, so it cannot append.
    #[error("ledger opened read-only (no log key)")]
    ReadOnly,
    /// The log key does not match the one named in the genesis event.
    #[error("log key does not match the ledger's genesis")]
    WrongLogKey,
    /// No event with this sequence number.
    #[error("no event {0}")]
    UnknownEvent(u64),
    /// A bad tree size for a proof.
    #[error("bad tree size {0}")]
    BadTreeSize(u64),
    /// The database content is not a valid ledger.
    #[error("corrupt ledger at event {seq}: {reason}")]
    Corrupt {
        /// The first bad event (0-based sequence number).
        seq: u64,
        /// What is wrong.
        reason: String,
    },
    /// A key file could not be read or is malformed.
    #[error("bad key: {0}")]
    Key(String),
    /// SQLite failed.
    #[error("storage: {0}")]
    Storage(#[from] rusqlite::Error),
    /// A file operation failed.
    #[error("io: {0}")]
    Io(#[from] std::io::Error),
}
