//! Signed contribution records and the [`ContributionSink`] seam that
//! fog-cli connects to fog-dao for rewards.
//!
//! A record is signed with sr25519 (schnorrkel) under the signing context
//! [`SIGNING_CONTEXT`], over a canonical byte encoding, so a signature made
//! for a contribution can never be replayed as any other fog message.

use std::collections::VecDeque;

use schnorrkel::{ExpansionMode, Keypair, MiniSecretKey, PublicKey, Signature, signing_context};
use serde::Serialize;

/// The domain-separation context of contribution signatures.
pub const SIGNING_CONTEXT: &[u8] = b"fog-harvest/contribution/v1";

/// Encoding version byte.
const VERSION: u8 = 1;
/// At most this many task ids in one record.
pub const MAX_TASKS: usize = 1024;
/// At most this many bytes in one task id.
pub const MAX_TASK_ID_BYTES: usize = 128;

/// Whether the work in a record has been verified (by redundant execution).
#[derive(Debug, Clone, Copy, PartialEq, Eq, Serialize)]
#[serde(rename_all = "snake_case")]
#[non_exhaustive]
pub enum Verification {
    /// Not verified yet.
    Pending,
    /// Results agreed with other runs.
    Verified,
    /// Results disagreed.
    Rejected,
}

impl Verification {
    fn to_byte(self) -> u8 {
        match self {
            Verification::Pending => 0,
            Verification::Verified => 1,
            Verification::Rejected => 2,
        }
    }

    fn from_byte(b: u8) -> Option<Self> {
        match b {
            0 => Some(Verification::Pending),
            1 => Some(Verification::Verified),
            2 => Some(Verification::Rejected),
            _ => None,
        }
    }
}

/// Why a record could not be built, decoded or verified.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum ContributionError {
    /// A field is out of range.
    #[error("invalid contribution record: {0}")]
    Invalid(String),
    /// The bytes are not a signed record.
    #[error("malformed contribution bytes: {0}")]
    Malformed(&'static str),
    /// The signature does not verify.
    #[error("bad contribution signature")]
    BadSignature,
}

/// What a device contributed over a period.
#[derive(Debug, Clone, PartialEq, Serialize)]
pub struct ContributionRecord {
    sequence: u64,
    period_start_unix: u64,
    period_end_unix: u64,
    task_ids: Vec<String>,
    cpu_seconds: f64,
    energy_joules: f64,
    verification: Verification,
}

impl ContributionRecord {
    /// A record; `sequence` numbers a device's records so duplicates show.
    pub fn new(
        sequence: u64,
        period_start_unix: u64,
        period_end_unix: u64,
        task_ids: Vec<String>,
        cpu_seconds: f64,
        energy_joules: f64,
        verification: Verification,
    ) -> Result<Self, ContributionError> {
        let invalid = |m: &str| Err(ContributionError::Invalid(m.to_owned()));
        if period_end_unix < period_start_unix {
            return invalid("period ends before it starts");
        }
        if task_ids.len() > MAX_TASKS {
            return invalid("too many task ids");
        }
        if task_ids
            .iter()
            .any(|t| t.is_empty() || t.len() > MAX_TASK_ID_BYTES)
        {
            return invalid("task id empty or too long");
        }
        if !(cpu_seconds.is_finite() && cpu_seconds >= 0.0) {
            return invalid("cpu seconds must be finite and >= 0");
        }
        if !(energy_joules.is_finite() && energy_joules >= 0.0) {
            return invalid("energy must be finite and >= 0");
        }
        Ok(Self {
            sequence,
            period_start_unix,
            period_end_unix,
            task_ids,
            cpu_seconds,
            energy_joules,
            verification,
        })
    }

    /// Sequence number.
    pub fn sequence(&self) -> u64 {
        self.sequence
    }

    /// Period start, Unix seconds.
    pub fn period_start_unix(&self) -> u64 {
        self.period_start_unix
    }

    /// Period end, Unix seconds.
    pub fn period_end_unix(&self) -> u64 {
        self.period_end_unix
    }

    /// The tasks the work belonged to.
    pub fn task_ids(&self) -> &[String] {
        &self.task_ids
    }

    /// CPU-seconds contributed.
    pub fn cpu_seconds(&self) -> f64 {
        self.cpu_seconds
    }

    /// Energy spent, joules.
    pub fn energy_joules(&self) -> f64 {
        self.energy_joules
    }

    /// Verification status.
    pub fn verification(&self) -> Verification {
        self.verification
    }

    /// The same record with another verification status (to be signed again).
    pub fn with_verification(mut self, verification: Verification) -> Self {
        self.verification = verification;
        self
    }

    fn encode(&self, public_key: &[u8; 32]) -> Vec<u8> {
        let mut out =
            Vec::with_capacity(96 + self.task_ids.iter().map(|t| t.len() + 2).sum::<usize>());
        out.push(VERSION);
        out.extend_from_slice(public_key);
        out.extend_from_slice(&self.sequence.to_be_bytes());
        out.extend_from_slice(&self.period_start_unix.to_be_bytes());
        out.extend_from_slice(&self.period_end_unix.to_be_bytes());
        out.extend_from_slice(&self.cpu_seconds.to_bits().to_be_bytes());
        out.extend_from_slice(&self.energy_joules.to_bits().to_be_bytes());
        out.push(self.verification.to_byte());
        out.extend_from_slice(&(self.task_ids.len() as u16).to_be_bytes());
        for t in &self.task_ids {
            out.extend_from_slice(&(t.len() as u16).to_be_bytes());
            out.extend_from_slice(t.as_bytes());
        }
        out
    }
}

/// A device's signing key for contribution records.
pub struct ContributionSigner {
    keypair: Keypair,
}

impl std::fmt::Debug for ContributionSigner {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("ContributionSigner")
            .field("public_key", &self.keypair.public.to_bytes())
            .finish_non_exhaustive()
    }
}

impl ContributionSigner {
    /// The signer for a 32-byte secret seed (keep it secret; the caller stores it).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        // A 32-byte slice always makes a mini secret key.
        let mini = MiniSecretKey::from_bytes(seed).expect("32 bytes are a mini secret key");
        Self {
            keypair: mini.expand_to_keypair(ExpansionMode::Ed25519),
        }
    }

    /// The public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.keypair.public.to_bytes()
    }

    /// Signs `record`.
    pub fn sign(&self, record: ContributionRecord) -> SignedContribution {
        let public_key = self.public_key();
        let message = record.encode(&public_key);
        let signature = self
            .keypair
            .sign(signing_context(SIGNING_CONTEXT).bytes(&message))
            .to_bytes();
        SignedContribution {
            record,
            public_key,
            signature,
        }
    }
}

/// A record with its signer's public key and signature.
#[derive(Debug, Clone, PartialEq)]
pub struct SignedContribution {
    record: ContributionRecord,
    public_key: [u8; 32],
    signature: [u8; 64],
}

impl SignedContribution {
    /// The record.
    pub fn record(&self) -> &ContributionRecord {
        &self.record
    }

    /// The signer's public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.public_key
    }

    /// Checks the signature.
    pub fn verify(&self) -> Result<(), ContributionError> {
        let key =
            PublicKey::from_bytes(&self.public_key).map_err(|_| ContributionError::BadSignature)?;
        let signature =
            Signature::from_bytes(&self.signature).map_err(|_| ContributionError::BadSignature)?;
        let message = self.record.encode(&self.public_key);
        key.verify(signing_context(SIGNING_CONTEXT).bytes(&message), &signature)
            .map_err(|_| ContributionError::BadSignature)
    }

    /// The canonical bytes: the signed message followed by the 64-byte signature.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut out = self.record.encode(&self.public_key);
        out.extend_from_slice(&self.signature);
        out
    }

    /// Decodes [`SignedContribution::to_bytes`] output (without verifying;
    /// call [`SignedContribution::verify`]). Any byte string gives a record
    /// or an error, never a panic.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, ContributionError> {
        let mut r = Reader(bytes);
        if r.take(1)?[0] != VERSION {
            return Err(ContributionError::Malformed("unknown version"));
        }
        let public_key: [u8; 32] = r.array()?;
        let sequence = u64::from_be_bytes(r.array()?);
        let start = u64::from_be_bytes(r.array()?);
        let end = u64::from_be_bytes(r.array()?);
        let cpu = f64::from_bits(u64::from_be_bytes(r.array()?));
        let energy = f64::from_bits(u64::from_be_bytes(r.array()?));
        let verification = Verification::from_byte(r.take(1)?[0])
            .ok_or(ContributionError::Malformed("bad verification status"))?;
        let count = u16::from_be_bytes(r.array()?) as usize;
        if count > MAX_TASKS {
            return Err(ContributionError::Malformed("too many task ids"));
        }
        let mut tasks = Vec::with_capacity(count);
        for _ in 0..count {
            let len = u16::from_be_bytes(r.array()?) as usize;
            let raw = r.take(len)?;
            let id = std::str::from_utf8(raw)
                .map_err(|_| ContributionError::Malformed("task id is not utf-8"))?;
            tasks.push(id.to_owned());
        }
        let signature: [u8; 64] = r.array()?;
        if !r.0.is_empty() {
            return Err(ContributionError::Malformed("trailing bytes"));
        }
        let record =
            ContributionRecord::new(sequence, start, end, tasks, cpu, energy, verification)
                .map_err(|_| ContributionError::Malformed("field out of range"))?;
        Ok(Self {
            record,
            public_key,
            signature,
        })
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], ContributionError> {
        if self.0.len() < n {
            return Err(ContributionError::Malformed("truncated"));
        }
        let (head, tail) = self.0.split_at(n);
        self.0 = tail;
        Ok(head)
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], ContributionError> {
        let mut out = [0u8; N];
        out.copy_from_slice(self.take(N)?);
        Ok(out)
    }
}

/// Why a sink did not take a record.
#[derive(Debug, thiserror::Error)]
#[non_exhaustive]
pub enum SinkError {
    /// The sink is full. The record is handed back so the caller can keep it
    /// and offer it again later; nothing is dropped silently.
    #[error("contribution sink full ({capacity} records)")]
    Full {
        /// The sink's capacity.
        capacity: usize,
        /// The refused record.
        record: Box<SignedContribution>,
    },
    /// The sink failed for another reason.
    #[error("contribution sink failed: {0}")]
    Failed(String),
}

/// Where signed contribution records go. fog-cli implements it with fog-dao
/// (rewards for verified work).
pub trait ContributionSink {
    /// Delivers one record, or hands it back in the error.
    fn deliver(&mut self, record: SignedContribution) -> Result<(), SinkError>;
}

/// A bounded in-memory [`ContributionSink`]: when it holds `capacity`
/// records, new ones are refused with [`SinkError::Full`] (the oldest are
/// kept, since they are the ones closest to being paid).
#[derive(Debug, Clone)]
pub struct QueueSink {
    queue: VecDeque<SignedContribution>,
    capacity: usize,
}

impl QueueSink {
    /// A sink holding at most `capacity` records.
    pub fn new(capacity: usize) -> Self {
        Self {
            queue: VecDeque::new(),
            capacity: capacity.max(1),
        }
    }

    /// Records held.
    pub fn len(&self) -> usize {
        self.queue.len()
    }

    /// Whether no record is held.
    pub fn is_empty(&self) -> bool {
        self.queue.is_empty()
    }

    /// Removes and returns every record, oldest first.
    pub fn drain(&mut self) -> Vec<SignedContribution> {
        self.queue.drain(..).collect()
    }
}

impl ContributionSink for QueueSink {
    fn deliver(&mut self, record: SignedContribution) -> Result<(), SinkError> {
        if self.queue.len() >= self.capacity {
            return Err(SinkError::Full {
                capacity: self.capacity,
                record: Box::new(record),
            });
        }
        self.queue.push_back(record);
        Ok(())
    }
}
