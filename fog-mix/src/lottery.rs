//! The verifiable relay lottery: which mixes are active in an epoch, and in
//! which layer, from a schnorrkel VRF over the epoch's public randomness.

use schnorrkel::vrf::{VRFPreOut, VRFProof};
use schnorrkel::{PublicKey, signing_context};

use crate::descriptor::{NodeDescriptor, NodeIdentity};
use crate::packet::NodeAddress;

const CONTEXT: &[u8] = b"fog-mix relay lottery v1";
const SCORE_CONTEXT: &[u8] = b"fog-mix lottery score";
/// Bytes of an encoded [`Ticket`].
pub const TICKET_LEN: usize = 8 + 32 + 32 + 64;

/// Why a ticket was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LotteryError {
    /// The bytes are not a ticket.
    #[error("malformed ticket")]
    Malformed,
    /// The ticket is for another epoch.
    #[error("ticket is for epoch {got}, expected {expected}")]
    WrongEpoch {
        /// The lottery's epoch.
        expected: u64,
        /// The ticket's epoch.
        got: u64,
    },
    /// The ticket was drawn by another identity than the descriptor's.
    #[error("ticket was drawn by another identity")]
    WrongIdentity,
    /// The VRF proof does not verify for this identity, epoch and
    /// randomness (forged, or replayed from another epoch).
    #[error("VRF proof does not verify")]
    BadProof,
    /// The candidate has no stake.
    #[error("candidate has no stake")]
    NoStake,
}

/// A node's lottery ticket for one epoch: the VRF output and its proof over
/// (epoch, the epoch's public randomness), made with the node's sr25519
/// identity. Published next to the descriptor.
#[derive(Clone, PartialEq, Eq)]
pub struct Ticket {
    epoch: u64,
    identity: [u8; 32],
    output: [u8; 32],
    proof: [u8; 64],
}

impl std::fmt::Debug for Ticket {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Ticket")
            .field("epoch", &self.epoch)
            .finish_non_exhaustive()
    }
}

fn transcript(epoch: u64, randomness: &[u8; 32]) -> impl schnorrkel::context::SigningTranscript {
    let mut message = Vec::with_capacity(40);
    message.extend_from_slice(&epoch.to_be_bytes());
    message.extend_from_slice(randomness);
    signing_context(CONTEXT).bytes(&message)
}

impl Ticket {
    /// Draws `identity`'s ticket for `epoch` under the epoch's public
    /// `randomness`.
    pub fn draw(identity: &NodeIdentity, epoch: u64, randomness: &[u8; 32]) -> Ticket {
        let keypair = identity.keypair();
        let (inout, proof, _) = keypair.vrf_sign(transcript(epoch, randomness));
        Ticket {
            epoch,
            identity: keypair.public.to_bytes(),
            output: inout.to_preout().to_bytes(),
            proof: proof.to_bytes(),
        }
    }

    /// The epoch the ticket is for.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The encoding ([`TICKET_LEN`] bytes).
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(TICKET_LEN);
        b.extend_from_slice(&self.epoch.to_be_bytes());
        b.extend_from_slice(&self.identity);
        b.extend_from_slice(&self.output);
        b.extend_from_slice(&self.proof);
        b
    }

    /// Decodes a ticket (shape only; [`verify`](Self::verify) checks it).
    pub fn from_bytes(bytes: &[u8]) -> Result<Ticket, LotteryError> {
        if bytes.len() != TICKET_LEN {
            return Err(LotteryError::Malformed);
        }
        let mut epoch = [0u8; 8];
        epoch.copy_from_slice(&bytes[..8]);
        let mut t = Ticket {
            epoch: u64::from_be_bytes(epoch),
            identity: [0; 32],
            output: [0; 32],
            proof: [0; 64],
        };
        t.identity.copy_from_slice(&bytes[8..40]);
        t.output.copy_from_slice(&bytes[40..72]);
        t.proof.copy_from_slice(&bytes[72..]);
        Ok(t)
    }

    /// Verifies the ticket against the candidate's descriptor and the
    /// epoch's randomness, and returns its score: `-ln(u) / stake`, where
    /// `u` in (0, 1) comes from the VRF output. Lower scores win. Among
    /// candidates the lowest score falls to each with probability
    /// proportional to its stake (the minimum of exponential variables).
    pub fn verify(
        &self,
        descriptor: &NodeDescriptor,
        epoch: u64,
        randomness: &[u8; 32],
    ) -> Result<f64, LotteryError> {
        if self.epoch != epoch {
            return Err(LotteryError::WrongEpoch {
                expected: epoch,
                got: self.epoch,
            });
        }
        if self.identity != descriptor.identity() {
            return Err(LotteryError::WrongIdentity);
        }
        if descriptor.stake() == 0 {
            return Err(LotteryError::NoStake);
        }
        let public = PublicKey::from_bytes(&self.identity).map_err(|_| LotteryError::BadProof)?;
        let preout = VRFPreOut::from_bytes(&self.output).map_err(|_| LotteryError::BadProof)?;
        let proof = VRFProof::from_bytes(&self.proof).map_err(|_| LotteryError::BadProof)?;
        let (inout, _) = public
            .vrf_verify(transcript(epoch, randomness), &preout, &proof)
            .map_err(|_| LotteryError::BadProof)?;
        let bytes: [u8; 8] = inout.make_bytes(SCORE_CONTEXT);
        // u in (0, 1): 53 random bits, never 0.
        let u = ((u64::from_be_bytes(bytes) >> 11) as f64 + 0.5) / (1u64 << 53) as f64;
        Ok(-u.ln() / descriptor.stake() as f64)
    }
}

/// A mix's place in an epoch's active set.
#[derive(Debug, Clone, PartialEq)]
#[non_exhaustive]
pub struct Assignment {
    /// The mix.
    pub node: NodeAddress,
    /// Its layer.
    pub layer: u8,
    /// Its rank in the draw (0 = lowest score).
    pub rank: usize,
    /// Its score.
    pub score: f64,
}

/// The outcome of one epoch's lottery.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct Draw {
    /// The active mixes, in rank order.
    pub active: Vec<Assignment>,
    /// Candidates whose ticket was refused, and why.
    pub rejected: Vec<(NodeAddress, LotteryError)>,
}

/// Runs an epoch's lottery: every candidate's ticket is verified against
/// its descriptor; the `slots` lowest scores form the active set (when
/// there are more candidates than slots, a candidate's chance to be in it
/// grows with its stake: weighted sampling without replacement); the active
/// mixes are dealt to `layers` layers in rank order (rank mod layers), so
/// every layer gets the same number of mixes and a stake-weighted random
/// share of them. Deterministic: anyone holding the descriptors, the
/// tickets and the randomness computes the same draw. A candidate listed
/// twice counts once.
pub fn run_lottery(
    candidates: &[(NodeDescriptor, Ticket)],
    epoch: u64,
    randomness: &[u8; 32],
    slots: usize,
    layers: u8,
) -> Draw {
    let mut out = Draw::default();
    let mut scored: Vec<(f64, NodeAddress)> = Vec::with_capacity(candidates.len());
    let mut seen = std::collections::HashSet::new();
    for (descriptor, ticket) in candidates {
        let node = descriptor.node_address();
        if !seen.insert(node) {
            continue;
        }
        match ticket.verify(descriptor, epoch, randomness) {
            Ok(score) => scored.push((score, node)),
            Err(e) => out.rejected.push((node, e)),
        }
    }
    scored.sort_by(|a, b| a.0.total_cmp(&b.0).then(a.1.cmp(&b.1)));
    let layers = layers.max(1);
    out.active = scored
        .into_iter()
        .take(slots)
        .enumerate()
        .map(|(rank, (score, node))| Assignment {
            node,
            layer: (rank % usize::from(layers)) as u8,
            rank,
            score,
        })
        .collect();
    out
}

/// Why [`check_layers`] left a descriptor out of the directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum LayerRefusal {
    /// Its ticket was refused.
    #[error(transparent)]
    Ticket(#[from] LotteryError),
    /// Its ticket verified but did not win one of the epoch's slots.
    #[error("not drawn into the active set")]
    NotDrawn,
    /// The descriptor claims another layer than the draw gave it.
    #[error("descriptor claims layer {claimed}, the lottery drew layer {drawn}")]
    WrongLayer {
        /// The descriptor's layer.
        claimed: u8,
        /// The lottery's.
        drawn: u8,
    },
    /// It has no ticket and tickets are required.
    #[error("no lottery ticket")]
    NoTicket,
}

/// What [`check_layers`] kept and refused.
#[derive(Debug, Clone, Default)]
#[non_exhaustive]
pub struct LayerCheck {
    /// Descriptors whose layer the lottery confirms (or that carry no
    /// ticket, when tickets are optional), in input order.
    pub kept: Vec<NodeDescriptor>,
    /// The others, and why.
    pub refused: Vec<(NodeAddress, LayerRefusal)>,
}

/// Checks the layers descriptors claim against `epoch`'s lottery: the
/// candidates that carry a ticket are drawn with [`run_lottery`] (`slots`
/// active mixes dealt to `layers` layers); a ticketed descriptor is kept
/// only if it won a slot and claims the layer the draw gave it. A descriptor
/// without a ticket is kept when `require_tickets` is false (a directory
/// that does not run the lottery) and refused otherwise. Anyone holding the
/// descriptors, the tickets and the randomness gets the same answer.
pub fn check_layers(
    candidates: Vec<(NodeDescriptor, Option<Ticket>)>,
    epoch: u64,
    randomness: &[u8; 32],
    slots: usize,
    layers: u8,
    require_tickets: bool,
) -> LayerCheck {
    let ticketed: Vec<(NodeDescriptor, Ticket)> = candidates
        .iter()
        .filter_map(|(d, t)| t.clone().map(|t| (d.clone(), t)))
        .collect();
    let draw = run_lottery(&ticketed, epoch, randomness, slots, layers);
    let mut out = LayerCheck::default();
    for (descriptor, ticket) in candidates {
        let node = descriptor.node_address();
        let refusal = match ticket {
            None if require_tickets => Some(LayerRefusal::NoTicket),
            None => None,
            Some(_) => {
                if let Some((_, e)) = draw.rejected.iter().find(|(n, _)| *n == node) {
                    Some(LayerRefusal::Ticket(e.clone()))
                } else {
                    match draw.active.iter().find(|a| a.node == node) {
                        None => Some(LayerRefusal::NotDrawn),
                        Some(a) if a.layer != descriptor.layer() => {
                            Some(LayerRefusal::WrongLayer {
                                claimed: descriptor.layer(),
                                drawn: a.layer,
                            })
                        }
                        Some(_) => None,
                    }
                }
            }
        };
        match refusal {
            Some(r) => out.refused.push((node, r)),
            None => out.kept.push(descriptor),
        }
    }
    out
}
