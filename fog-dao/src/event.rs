//! Signed events and their canonical encoding.
//!
//! Layout (version 1), all integers big-endian:
//! `version:u8 | kind:u8 | signer:[32] | nonce:u64 | time:u64 | body | signature:[64]`.
//! The signature is sr25519 (schnorrkel) over `ledger_id | everything before
//! the signature`, in a signing context named after the event kind
//! (`fog-dao/v1/event/<kind>`), so a signature for one kind of event can never
//! be passed off as another, nor replayed into another ledger.

use std::fmt;
use std::path::Path;

use schnorrkel::{ExpansionMode, Keypair, MiniSecretKey, PublicKey, Signature};

use crate::codec::{Reader, Writer};
use crate::error::{DaoError, DecodeError};
use crate::types::{
    AccountId, Action, Choice, EarningRule, PARAM_COUNT, ParamKey, Params, ProposalKind, Role,
};

/// The encoding version written by this crate.
pub const EVENT_VERSION: u8 = 1;
/// Longest proposal description, in bytes.
pub const MAX_DESCRIPTION: usize = 1024;
/// Most attestations in a quorum-mismatch record.
pub const MAX_ATTESTATIONS: usize = 64;
/// Signing context of task results (the evidence that slashing consumes).
pub const TASK_RESULT_CONTEXT: &[u8] = b"fog-dao/v1/task-result";
/// Signing context of signed tree heads.
pub(crate) const TREE_HEAD_CONTEXT: &[u8] = b"fog-dao/v1/tree-head";
/// Every signing context the ledger uses starts with this prefix;
/// [`SigningKey::sign_statement`] refuses it.
pub const RESERVED_CONTEXT_PREFIX: &[u8] = b"fog-dao/";

/// A secret signing key (sr25519), kept as its 32-byte seed.
pub struct SigningKey {
    seed: [u8; 32],
    keypair: Keypair,
}

impl fmt::Debug for SigningKey {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("SigningKey")
            .field("account", &self.account())
            .finish_non_exhaustive()
    }
}

impl SigningKey {
    /// A fresh random key (from the operating system's generator).
    pub fn generate() -> Self {
        Self::from_seed(MiniSecretKey::generate().to_bytes())
    }

    /// The key derived from a 32-byte seed (deterministic).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        // A 32-byte slice is always a valid mini secret key.
        let mini = MiniSecretKey::from_bytes(&seed).expect("32-byte seed");
        Self {
            seed,
            keypair: mini.expand_to_keypair(ExpansionMode::Ed25519),
        }
    }

    /// The seed (keep it secret).
    pub fn seed(&self) -> [u8; 32] {
        self.seed
    }

    /// The account this key controls.
    pub fn account(&self) -> AccountId {
        AccountId::from_bytes(self.keypair.public.to_bytes())
    }

    /// Writes the seed as hex to `path` (created new, mode 0600 on Unix).
    pub fn save(&self, path: &Path) -> Result<(), DaoError> {
        use std::io::Write;
        let mut options = std::fs::OpenOptions::new();
        options.write(true).create_new(true);
        #[cfg(unix)]
        {
            use std::os::unix::fs::OpenOptionsExt;
            options.mode(0o600);
        }
        let mut file = options.open(path)?;
        file.write_all(format!("{}\n", hex::encode(self.seed)).as_bytes())?;
        file.sync_all()?;
        Ok(())
    }

    /// Reads a key written by [`SigningKey::save`].
    pub fn load(path: &Path) -> Result<Self, DaoError> {
        let text = std::fs::read_to_string(path)?;
        let mut seed = [0u8; 32];
        hex::decode_to_slice(text.trim(), &mut seed)
            .map_err(|_| DaoError::Key(format!("{} does not hold a hex seed", path.display())))?;
        Ok(Self::from_seed(seed))
    }

    /// Signs a task result, as an executor does when it reports one. Two such
    /// signatures on different results for one task are double-sign evidence.
    pub fn sign_task_result(&self, task: &[u8; 32], result: &[u8; 32]) -> SignedResult {
        let signature = self
            .keypair
            .sign_simple(TASK_RESULT_CONTEXT, &task_message(task, result))
            .to_bytes();
        SignedResult {
            result: *result,
            signature,
        }
    }

    /// Signs `message` in a signing context of the caller's own, for
    /// statements other than the ledger's (a node vouching for a checkpoint
    /// it ships, say). Contexts starting with [`RESERVED_CONTEXT_PREFIX`]
    /// are the ledger's and refused (`None`), so such a signature never
    /// passes for a task result, an event or a tree head.
    pub fn sign_statement(&self, context: &[u8], message: &[u8]) -> Option<[u8; 64]> {
        (!context.starts_with(RESERVED_CONTEXT_PREFIX)).then(|| self.sign_raw(context, message))
    }

    pub(crate) fn sign_raw(&self, context: &[u8], message: &[u8]) -> [u8; 64] {
        self.keypair.sign_simple(context, message).to_bytes()
    }
}

fn task_message(task: &[u8; 32], result: &[u8; 32]) -> [u8; 64] {
    let mut m = [0u8; 64];
    m[..32].copy_from_slice(task);
    m[32..].copy_from_slice(result);
    m
}

/// Verifies a schnorrkel signature given as raw bytes.
pub(crate) fn verify_raw(
    signer: &AccountId,
    context: &[u8],
    message: &[u8],
    signature: &[u8; 64],
) -> bool {
    let Ok(public) = PublicKey::from_bytes(signer.as_bytes()) else {
        return false;
    };
    let Ok(signature) = Signature::from_bytes(signature) else {
        return false;
    };
    public.verify_simple(context, message, &signature).is_ok()
}

/// Whether `signer` signed `message` in `context` with
/// [`SigningKey::sign_statement`]; false for a reserved context.
pub fn verify_statement(
    signer: &AccountId,
    context: &[u8],
    message: &[u8],
    signature: &[u8; 64],
) -> bool {
    !context.starts_with(RESERVED_CONTEXT_PREFIX) && verify_raw(signer, context, message, signature)
}

/// Whether `node` signed `result` for `task`.
pub fn verify_task_result(node: &AccountId, task: &[u8; 32], signed: &SignedResult) -> bool {
    verify_raw(
        node,
        TASK_RESULT_CONTEXT,
        &task_message(task, &signed.result),
        &signed.signature,
    )
}

/// A task result (its 32-byte digest) signed by the node that computed it.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct SignedResult {
    /// The result digest.
    pub result: [u8; 32],
    /// The node's signature in [`TASK_RESULT_CONTEXT`] over `task | result`.
    pub signature: [u8; 64],
}

/// Two conflicting signed results from one node for one task.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DoubleSignEvidence {
    /// The offender.
    pub node: AccountId,
    /// The task id.
    pub task: [u8; 32],
    /// One signed result.
    pub first: SignedResult,
    /// A different signed result.
    pub second: SignedResult,
}

/// A verification-quorum mismatch record: the node signed one result, a
/// quorum of bonded verifiers signed another.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MismatchEvidence {
    /// The offender.
    pub node: AccountId,
    /// The task id.
    pub task: [u8; 32],
    /// What the node signed.
    pub node_result: SignedResult,
    /// The result the quorum agreed on.
    pub majority: [u8; 32],
    /// Verifiers' signatures over `task | majority`.
    pub attestations: Vec<(AccountId, [u8; 64])>,
}

/// What an event does.
#[derive(Debug, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum Body {
    /// First event: the signer becomes the authority (KING).
    Genesis {
        /// Initial parameters.
        params: Params,
        /// The key that signs tree heads.
        log_key: AccountId,
    },
    /// The authority pays earnings: `units × rate × multiplier`, of which a
    /// share goes to the treasury.
    Mint {
        /// Recipient.
        to: AccountId,
        /// Earning rule.
        rule: EarningRule,
        /// Units of contribution.
        units: u64,
    },
    /// Moves tokens.
    Transfer {
        /// Recipient.
        to: AccountId,
        /// Amount.
        amount: u64,
    },
    /// Destroys tokens.
    Burn {
        /// Amount.
        amount: u64,
    },
    /// Gives tokens to the treasury.
    TreasuryDeposit {
        /// Amount.
        amount: u64,
    },
    /// Bonds (stakes) tokens.
    Bond {
        /// Amount.
        amount: u64,
    },
    /// Starts unbonding; the tokens stay slashable until released.
    Unbond {
        /// Amount.
        amount: u64,
    },
    /// Releases every unbonding entry whose period has passed.
    Withdraw,
    /// Delegates voting power (single hop), or takes it back with `None`.
    Delegate {
        /// The delegate.
        to: Option<AccountId>,
    },
    /// The authority assigns a role.
    SetRole {
        /// Whose role.
        account: AccountId,
        /// The role.
        role: Role,
    },
    /// The authority pays one epoch's staking reward, pro rata to bonded
    /// stake of unjailed stakers.
    DistributeRewards {
        /// The epoch (must have ended and be later than the last one paid).
        epoch: u64,
    },
    /// Leaves jail after the jail period.
    Unjail,
    /// Creates a proposal.
    Propose {
        /// Its type.
        kind: ProposalKind,
        /// What executing it does.
        action: Action,
        /// Free text.
        description: String,
    },
    /// A ballot.
    Vote {
        /// The proposal.
        proposal: u64,
        /// The choice.
        choice: Choice,
    },
    /// Queues a succeeded proposal into its timelock.
    Queue {
        /// The proposal.
        proposal: u64,
    },
    /// Executes a queued proposal after its timelock.
    Execute {
        /// The proposal.
        proposal: u64,
    },
    /// Cancels a proposal.
    Cancel {
        /// The proposal.
        proposal: u64,
    },
    /// Double-sign evidence (anyone may submit).
    DoubleSign(DoubleSignEvidence),
    /// Quorum-mismatch evidence (anyone may submit).
    QuorumMismatch(MismatchEvidence),
    /// The authority reports a node down for an epoch.
    Downtime {
        /// The node.
        node: AccountId,
        /// The epoch.
        epoch: u64,
    },
}

impl Body {
    fn tag(&self) -> u8 {
        match self {
            Body::Genesis { .. } => 0,
            Body::Mint { .. } => 1,
            Body::Transfer { .. } => 2,
            Body::Burn { .. } => 3,
            Body::TreasuryDeposit { .. } => 4,
            Body::Bond { .. } => 5,
            Body::Unbond { .. } => 6,
            Body::Withdraw => 7,
            Body::Delegate { .. } => 8,
            Body::SetRole { .. } => 9,
            Body::DistributeRewards { .. } => 10,
            Body::Unjail => 11,
            Body::Propose { .. } => 12,
            Body::Vote { .. } => 13,
            Body::Queue { .. } => 14,
            Body::Execute { .. } => 15,
            Body::Cancel { .. } => 16,
            Body::DoubleSign(_) => 17,
            Body::QuorumMismatch(_) => 18,
            Body::Downtime { .. } => 19,
        }
    }

    /// The event kind's name (also the last part of its signing context).
    pub fn kind_name(&self) -> &'static str {
        KINDS[usize::from(self.tag())].0
    }
}

/// Kind names and signing contexts, indexed by tag.
const KINDS: [(&str, &[u8]); 20] = [
    ("genesis", b"fog-dao/v1/event/genesis"),
    ("mint", b"fog-dao/v1/event/mint"),
    ("transfer", b"fog-dao/v1/event/transfer"),
    ("burn", b"fog-dao/v1/event/burn"),
    ("treasury-deposit", b"fog-dao/v1/event/treasury-deposit"),
    ("bond", b"fog-dao/v1/event/bond"),
    ("unbond", b"fog-dao/v1/event/unbond"),
    ("withdraw", b"fog-dao/v1/event/withdraw"),
    ("delegate", b"fog-dao/v1/event/delegate"),
    ("set-role", b"fog-dao/v1/event/set-role"),
    ("distribute-rewards", b"fog-dao/v1/event/distribute-rewards"),
    ("unjail", b"fog-dao/v1/event/unjail"),
    ("propose", b"fog-dao/v1/event/propose"),
    ("vote", b"fog-dao/v1/event/vote"),
    ("queue", b"fog-dao/v1/event/queue"),
    ("execute", b"fog-dao/v1/event/execute"),
    ("cancel", b"fog-dao/v1/event/cancel"),
    ("double-sign", b"fog-dao/v1/event/double-sign"),
    ("quorum-mismatch", b"fog-dao/v1/event/quorum-mismatch"),
    ("downtime", b"fog-dao/v1/event/downtime"),
];

/// A signed event: the unit of the ledger.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Event {
    signer: AccountId,
    nonce: u64,
    time: u64,
    body: Body,
    signature: [u8; 64],
}

impl Event {
    /// Builds and signs an event for the ledger `ledger_id` (all zeroes for
    /// the genesis event). `nonce` is the signer's next nonce; `time` is the
    /// logical time the event carries.
    pub fn sign(
        key: &SigningKey,
        ledger_id: &[u8; 32],
        nonce: u64,
        time: u64,
        body: Body,
    ) -> Event {
        let signer = key.account();
        let mut w = Writer::new();
        encode_unsigned(&mut w, &signer, nonce, time, &body);
        let unsigned = w.into_bytes();
        let signature = key.sign_raw(context(body.tag()), &signing_message(ledger_id, &unsigned));
        Event {
            signer,
            nonce,
            time,
            body,
            signature,
        }
    }

    /// The signer.
    pub fn signer(&self) -> AccountId {
        self.signer
    }

    /// The signer's nonce.
    pub fn nonce(&self) -> u64 {
        self.nonce
    }

    /// The logical time.
    pub fn time(&self) -> u64 {
        self.time
    }

    /// What the event does.
    pub fn body(&self) -> &Body {
        &self.body
    }

    /// The canonical encoding (what the Merkle leaf commits to).
    pub fn encode(&self) -> Vec<u8> {
        let mut w = Writer::new();
        encode_unsigned(&mut w, &self.signer, self.nonce, self.time, &self.body);
        w.bytes(&self.signature);
        w.into_bytes()
    }

    /// Decodes a canonical encoding. Never panics; rejects anything that
    /// does not re-encode to the same bytes.
    pub fn decode(bytes: &[u8]) -> Result<Event, DecodeError> {
        let mut r = Reader::new(bytes);
        let version = r.u8("version")?;
        if version != EVENT_VERSION {
            return Err(DecodeError::UnknownTag {
                what: "version",
                value: version,
            });
        }
        let tag = r.u8("kind")?;
        let signer = account(&mut r, "signer")?;
        let nonce = r.u64("nonce")?;
        let time = r.u64("time")?;
        let body = decode_body(&mut r, tag)?;
        let signature = r.array::<64>("signature")?;
        r.finish()?;
        Ok(Event {
            signer,
            nonce,
            time,
            body,
            signature,
        })
    }

    /// Verifies the signature against the signer for ledger `ledger_id`.
    pub fn verify_signature(&self, ledger_id: &[u8; 32]) -> bool {
        let bytes = self.encode();
        verify_raw(
            &self.signer,
            context(self.body.tag()),
            &signing_message(ledger_id, &bytes[..bytes.len() - 64]),
            &self.signature,
        )
    }
}

/// Verifies the signatures of many non-genesis events of ledger `ledger_id`
/// in one schnorrkel batch (`verify_batch`). True only if every one holds;
/// use [`Event::verify_signature`] to find a bad one.
pub fn verify_batch(ledger_id: &[u8; 32], events: &[Event]) -> bool {
    let mut transcripts = Vec::with_capacity(events.len());
    let mut publics = Vec::with_capacity(events.len());
    let mut signatures = Vec::with_capacity(events.len());
    for event in events {
        let Ok(public) = PublicKey::from_bytes(event.signer.as_bytes()) else {
            return false;
        };
        let Ok(signature) = Signature::from_bytes(&event.signature) else {
            return false;
        };
        let mut w = Writer::new();
        encode_unsigned(&mut w, &event.signer, event.nonce, event.time, &event.body);
        let message = signing_message(ledger_id, &w.into_bytes());
        transcripts.push(schnorrkel::signing_context(context(event.body.tag())).bytes(&message));
        publics.push(public);
        signatures.push(signature);
    }
    schnorrkel::verify_batch(transcripts, &signatures, &publics, false).is_ok()
}

/// Parts of an encoded event that signature checking needs, without a full
/// decode: (signing context, unsigned part, signer, signature).
pub(crate) type Split<'a> = (&'static [u8], &'a [u8], [u8; 32], [u8; 64]);

pub(crate) fn split_encoded(bytes: &[u8]) -> Option<Split<'_>> {
    if bytes.len() < 2 + 32 + 16 + 64 {
        return None;
    }
    let ctx = KINDS.get(usize::from(bytes[1]))?.1;
    let (unsigned, sig) = bytes.split_at(bytes.len() - 64);
    let mut signer = [0u8; 32];
    signer.copy_from_slice(&bytes[2..34]);
    let mut signature = [0u8; 64];
    signature.copy_from_slice(sig);
    Some((ctx, unsigned, signer, signature))
}

pub(crate) fn signing_message(ledger_id: &[u8; 32], unsigned: &[u8]) -> Vec<u8> {
    let mut m = Vec::with_capacity(32 + unsigned.len());
    m.extend_from_slice(ledger_id);
    m.extend_from_slice(unsigned);
    m
}

fn context(tag: u8) -> &'static [u8] {
    KINDS[usize::from(tag)].1
}

fn account(r: &mut Reader<'_>, what: &'static str) -> Result<AccountId, DecodeError> {
    Ok(AccountId::from_bytes(r.array::<32>(what)?))
}

fn encode_unsigned(w: &mut Writer, signer: &AccountId, nonce: u64, time: u64, body: &Body) {
    w.u8(EVENT_VERSION);
    w.u8(body.tag());
    w.bytes(signer.as_bytes());
    w.u64(nonce);
    w.u64(time);
    encode_body(w, body);
}

fn encode_signed_result(w: &mut Writer, s: &SignedResult) {
    w.bytes(&s.result);
    w.bytes(&s.signature);
}

fn decode_signed_result(r: &mut Reader<'_>) -> Result<SignedResult, DecodeError> {
    Ok(SignedResult {
        result: r.array("result")?,
        signature: r.array("result signature")?,
    })
}

fn encode_body(w: &mut Writer, body: &Body) {
    match body {
        Body::Genesis { params, log_key } => {
            w.u8(PARAM_COUNT as u8);
            for v in params.raw() {
                w.u64(*v);
            }
            w.bytes(log_key.as_bytes());
        }
        Body::Mint { to, rule, units } => {
            w.bytes(to.as_bytes());
            w.u8(rule.tag());
            w.u64(*units);
        }
        Body::Transfer { to, amount } => {
            w.bytes(to.as_bytes());
            w.u64(*amount);
        }
        Body::Burn { amount }
        | Body::TreasuryDeposit { amount }
        | Body::Bond { amount }
        | Body::Unbond { amount } => w.u64(*amount),
        Body::Withdraw | Body::Unjail => {}
        Body::Delegate { to } => match to {
            None => w.u8(0),
            Some(to) => {
                w.u8(1);
                w.bytes(to.as_bytes());
            }
        },
        Body::SetRole { account, role } => {
            w.bytes(account.as_bytes());
            w.u8(role.tag());
        }
        Body::DistributeRewards { epoch } => w.u64(*epoch),
        Body::Propose {
            kind,
            action,
            description,
        } => {
            w.u8(kind.tag());
            match action {
                Action::None => w.u8(0),
                Action::SetParam { key, value } => {
                    w.u8(1);
                    w.u8(key.tag());
                    w.u64(*value);
                }
                Action::TreasuryTransfer { to, amount } => {
                    w.u8(2);
                    w.bytes(to.as_bytes());
                    w.u64(*amount);
                }
                Action::Upgrade { release } => {
                    w.u8(3);
                    w.bytes(release);
                }
            }
            w.var(description.as_bytes());
        }
        Body::Vote { proposal, choice } => {
            w.u64(*proposal);
            w.u8(choice.tag());
        }
        Body::Queue { proposal } | Body::Execute { proposal } | Body::Cancel { proposal } => {
            w.u64(*proposal);
        }
        Body::DoubleSign(e) => {
            w.bytes(e.node.as_bytes());
            w.bytes(&e.task);
            encode_signed_result(w, &e.first);
            encode_signed_result(w, &e.second);
        }
        Body::QuorumMismatch(e) => {
            w.bytes(e.node.as_bytes());
            w.bytes(&e.task);
            encode_signed_result(w, &e.node_result);
            w.bytes(&e.majority);
            w.u8(e.attestations.len() as u8);
            for (who, sig) in &e.attestations {
                w.bytes(who.as_bytes());
                w.bytes(sig);
            }
        }
        Body::Downtime { node, epoch } => {
            w.bytes(node.as_bytes());
            w.u64(*epoch);
        }
    }
}

fn decode_body(r: &mut Reader<'_>, tag: u8) -> Result<Body, DecodeError> {
    Ok(match tag {
        0 => {
            let count = r.u8("parameter count")?;
            if usize::from(count) != PARAM_COUNT {
                return Err(DecodeError::Invalid {
                    what: "parameter count",
                });
            }
            let mut values = [0u64; PARAM_COUNT];
            for v in &mut values {
                *v = r.u64("parameter")?;
            }
            Body::Genesis {
                params: Params::from_raw(&values),
                log_key: account(r, "log key")?,
            }
        }
        1 => Body::Mint {
            to: account(r, "recipient")?,
            rule: EarningRule::from_tag(r.u8("earning rule")?)?,
            units: r.u64("units")?,
        },
        2 => Body::Transfer {
            to: account(r, "recipient")?,
            amount: r.u64("amount")?,
        },
        3 => Body::Burn {
            amount: r.u64("amount")?,
        },
        4 => Body::TreasuryDeposit {
            amount: r.u64("amount")?,
        },
        5 => Body::Bond {
            amount: r.u64("amount")?,
        },
        6 => Body::Unbond {
            amount: r.u64("amount")?,
        },
        7 => Body::Withdraw,
        8 => Body::Delegate {
            to: match r.u8("delegate flag")? {
                0 => None,
                1 => Some(account(r, "delegate")?),
                value => {
                    return Err(DecodeError::UnknownTag {
                        what: "delegate flag",
                        value,
                    });
                }
            },
        },
        9 => Body::SetRole {
            account: account(r, "account")?,
            role: Role::from_tag(r.u8("role")?)?,
        },
        10 => Body::DistributeRewards {
            epoch: r.u64("epoch")?,
        },
        11 => Body::Unjail,
        12 => {
            let kind = ProposalKind::from_tag(r.u8("proposal kind")?)?;
            let action = match r.u8("action")? {
                0 => Action::None,
                1 => Action::SetParam {
                    key: ParamKey::from_tag(r.u8("parameter")?)?,
                    value: r.u64("value")?,
                },
                2 => Action::TreasuryTransfer {
                    to: account(r, "recipient")?,
                    amount: r.u64("amount")?,
                },
                3 => Action::Upgrade {
                    release: r.array("release")?,
                },
                value => {
                    return Err(DecodeError::UnknownTag {
                        what: "action",
                        value,
                    });
                }
            };
            let text = r.var(MAX_DESCRIPTION, "description")?;
            let description = std::str::from_utf8(text)
                .map_err(|_| DecodeError::Invalid {
                    what: "description",
                })?
                .to_owned();
            Body::Propose {
                kind,
                action,
                description,
            }
        }
        13 => Body::Vote {
            proposal: r.u64("proposal")?,
            choice: Choice::from_tag(r.u8("choice")?)?,
        },
        14 => Body::Queue {
            proposal: r.u64("proposal")?,
        },
        15 => Body::Execute {
            proposal: r.u64("proposal")?,
        },
        16 => Body::Cancel {
            proposal: r.u64("proposal")?,
        },
        17 => Body::DoubleSign(DoubleSignEvidence {
            node: account(r, "node")?,
            task: r.array("task")?,
            first: decode_signed_result(r)?,
            second: decode_signed_result(r)?,
        }),
        18 => {
            let node = account(r, "node")?;
            let task = r.array("task")?;
            let node_result = decode_signed_result(r)?;
            let majority = r.array("majority")?;
            let n = usize::from(r.u8("attestation count")?);
            if n > MAX_ATTESTATIONS {
                return Err(DecodeError::TooLong {
                    what: "attestations",
                    max: MAX_ATTESTATIONS,
                });
            }
            let mut attestations = Vec::with_capacity(n);
            for _ in 0..n {
                attestations.push((account(r, "verifier")?, r.array("attestation")?));
            }
            Body::QuorumMismatch(MismatchEvidence {
                node,
                task,
                node_result,
                majority,
                attestations,
            })
        }
        19 => Body::Downtime {
            node: account(r, "node")?,
            epoch: r.u64("epoch")?,
        },
        value => {
            return Err(DecodeError::UnknownTag {
                what: "kind",
                value,
            });
        }
    })
}
