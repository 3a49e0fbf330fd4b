//! End-to-end protection of bundle payloads: sealed to the recipient, signed
//! by the sender.
//!
//! A sealed payload is HPKE (RFC 9180, base mode, X25519-HKDF-SHA256 with
//! ChaCha20-Poly1305) to the recipient's X25519 key, with the bundle's source,
//! destination and creation timestamp as associated data, and an sr25519
//! signature by the sender over that binding, the encapsulated key and the
//! ciphertext. Relays see only ciphertext; a relay that knows the sender's
//! key can check the signature and drop forgeries early; the recipient checks
//! both. Moving a sealed payload into another bundle (a replay with a new id)
//! breaks the binding and fails.

use std::collections::HashMap;
use std::fmt;
use std::str::FromStr;

use hpke::aead::ChaCha20Poly1305;
use hpke::kdf::HkdfSha256;
use hpke::kem::X25519HkdfSha256;
use hpke::{Deserializable, Kem as _, OpModeR, OpModeS, Serializable};
use serde::{Deserialize, Serialize};

use crate::NodeId;
use crate::bundle::CreationTimestamp;
use crate::eid::EndpointId;

/// The signing context of sealed payloads.
pub const SEAL_CONTEXT: &[u8] = b"fog-mesh/seal/v1";
/// Most peers a [`Keyring`] holds.
pub const MAX_KEYRING: usize = 100_000;

type Kem = X25519HkdfSha256;

/// Why sealing or opening failed.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SealError {
    /// The sealed payload does not decode.
    #[error("malformed sealed payload: {0}")]
    Malformed(String),
    /// The signature does not verify: forged, or altered in transit.
    #[error("bad signature: forged or altered payload")]
    BadSignature,
    /// Decryption failed: corrupted, or not sealed to this node.
    #[error("cannot decrypt: corrupted or sealed to another node")]
    Decrypt,
    /// A key is not a valid key.
    #[error("bad key: {0}")]
    BadKey(String),
    /// No key is known for this node.
    #[error("no key known for node {0}")]
    UnknownPeer(String),
    /// The operating system gave no randomness.
    #[error("no randomness: {0}")]
    Random(String),
    /// The keyring is full.
    #[error("the keyring is full ({MAX_KEYRING} peers)")]
    KeyringFull,
}

/// A node's public keys: sr25519 for signatures, X25519 for sealing.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, Serialize, Deserialize)]
pub struct PeerKeys {
    /// sr25519 public key.
    pub signing: [u8; 32],
    /// X25519 public key.
    pub agreement: [u8; 32],
}

impl fmt::Display for PeerKeys {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        for byte in self.signing {
            write!(f, "{byte:02x}")?;
        }
        f.write_str(":")?;
        for byte in self.agreement {
            write!(f, "{byte:02x}")?;
        }
        Ok(())
    }
}

fn hex32(text: &str) -> Result<[u8; 32], SealError> {
    if text.len() != 64 || !text.is_ascii() {
        return Err(SealError::BadKey("a key is 64 hex digits".to_owned()));
    }
    let mut out = [0u8; 32];
    for (i, byte) in out.iter_mut().enumerate() {
        *byte = u8::from_str_radix(&text[2 * i..2 * i + 2], 16)
            .map_err(|_| SealError::BadKey("a key is 64 hex digits".to_owned()))?;
    }
    Ok(out)
}

impl FromStr for PeerKeys {
    type Err = SealError;

    /// Parses `SIGNING_HEX:AGREEMENT_HEX`, as [`PeerKeys`] displays.
    fn from_str(text: &str) -> Result<Self, Self::Err> {
        let (signing, agreement) = text
            .split_once(':')
            .ok_or_else(|| SealError::BadKey("expected SIGNING:AGREEMENT".to_owned()))?;
        Ok(PeerKeys {
            signing: hex32(signing)?,
            agreement: hex32(agreement)?,
        })
    }
}

/// A node's secret keys.
pub struct MeshIdentity {
    seed: [u8; 32],
    signing: schnorrkel::Keypair,
    secret: <Kem as hpke::Kem>::PrivateKey,
    public: PeerKeys,
}

impl fmt::Debug for MeshIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("MeshIdentity")
            .field("public", &self.public)
            .finish_non_exhaustive()
    }
}

impl MeshIdentity {
    /// A new identity from the operating system's randomness.
    pub fn generate() -> Result<Self, SealError> {
        let mut seed = [0u8; 32];
        getrandom::fill(&mut seed).map_err(|e| SealError::Random(e.to_string()))?;
        Ok(Self::from_seed(seed))
    }

    /// The identity derived from a 32-byte seed (keep it secret).
    pub fn from_seed(seed: [u8; 32]) -> Self {
        let mini =
            schnorrkel::MiniSecretKey::from_bytes(&seed).expect("32 bytes is a mini secret key");
        let signing = mini.expand_to_keypair(schnorrkel::ExpansionMode::Ed25519);
        let mut ikm = b"fog-mesh/x25519/v1".to_vec();
        ikm.extend_from_slice(&seed);
        let (secret, public) = Kem::derive_keypair(&ikm);
        let mut agreement = [0u8; 32];
        agreement.copy_from_slice(&public.to_bytes());
        let public = PeerKeys {
            signing: signing.public.to_bytes(),
            agreement,
        };
        MeshIdentity {
            seed,
            signing,
            secret,
            public,
        }
    }

    /// The seed, for storing the identity.
    pub fn seed(&self) -> [u8; 32] {
        self.seed
    }

    /// The X25519 secret, which is also the node's Noise static key.
    pub(crate) fn agreement_secret(&self) -> [u8; 32] {
        let mut out = [0u8; 32];
        out.copy_from_slice(&self.secret.to_bytes());
        out
    }

    /// The public keys to give to peers.
    pub fn public(&self) -> PeerKeys {
        self.public
    }
}

/// Known peers' public keys, by node.
#[derive(Debug, Clone, Default)]
pub struct Keyring {
    peers: HashMap<NodeId, PeerKeys>,
}

impl Keyring {
    /// An empty keyring.
    pub fn new() -> Self {
        Keyring::default()
    }

    /// Trusts `keys` for `node` (replacing earlier keys).
    pub fn insert(&mut self, node: NodeId, keys: PeerKeys) -> Result<(), SealError> {
        if self.peers.len() >= MAX_KEYRING && !self.peers.contains_key(&node) {
            return Err(SealError::KeyringFull);
        }
        self.peers.insert(node, keys);
        Ok(())
    }

    /// The keys trusted for `node`.
    pub fn get(&self, node: NodeId) -> Option<&PeerKeys> {
        self.peers.get(&node)
    }

    /// Number of peers.
    pub fn len(&self) -> usize {
        self.peers.len()
    }

    /// Whether no peer is known.
    pub fn is_empty(&self) -> bool {
        self.peers.is_empty()
    }
}

#[derive(Serialize, Deserialize)]
struct Sealed {
    v: u8,
    #[serde(with = "serde_bytes")]
    enc: Vec<u8>,
    #[serde(with = "serde_bytes")]
    ct: Vec<u8>,
    #[serde(with = "serde_bytes")]
    sig: Vec<u8>,
}

/// What a sealed payload is bound to: the bundle's source, destination and
/// creation timestamp.
fn binding(source: &EndpointId, destination: &EndpointId, created: CreationTimestamp) -> Vec<u8> {
    let mut out = Vec::new();
    for part in [source.to_string(), destination.to_string()] {
        out.extend_from_slice(&(part.len() as u32).to_be_bytes());
        out.extend_from_slice(part.as_bytes());
    }
    out.extend_from_slice(&created.dtn_ms.to_be_bytes());
    out.extend_from_slice(&created.seq.to_be_bytes());
    out
}

fn signed_message(binding: &[u8], enc: &[u8], ct: &[u8]) -> Vec<u8> {
    let mut message = binding.to_vec();
    message.extend_from_slice(enc);
    message.extend_from_slice(ct);
    message
}

/// Seals `plaintext` from `sender` to `recipient` for the bundle described by
/// `source`, `destination` and `created`.
pub fn seal(
    sender: &MeshIdentity,
    recipient: &PeerKeys,
    source: &EndpointId,
    destination: &EndpointId,
    created: CreationTimestamp,
    plaintext: &[u8],
) -> Result<Vec<u8>, SealError> {
    let recipient_key = <Kem as hpke::Kem>::PublicKey::from_bytes(&recipient.agreement)
        .map_err(|e| SealError::BadKey(e.to_string()))?;
    let aad = binding(source, destination, created);
    let (enc, ct) = hpke::single_shot_seal::<ChaCha20Poly1305, HkdfSha256, Kem>(
        &OpModeS::Base,
        &recipient_key,
        SEAL_CONTEXT,
        plaintext,
        &aad,
    )
    .map_err(|e| SealError::Random(e.to_string()))?;
    let enc = enc.to_bytes().to_vec();
    let signature = sender
        .signing
        .sign(schnorrkel::signing_context(SEAL_CONTEXT).bytes(&signed_message(&aad, &enc, &ct)));
    let sealed = Sealed {
        v: 1,
        enc,
        ct,
        sig: signature.to_bytes().to_vec(),
    };
    let mut out = Vec::new();
    ciborium::ser::into_writer(&sealed, &mut out).expect("cbor into a vec");
    Ok(out)
}

fn decode(sealed: &[u8]) -> Result<Sealed, SealError> {
    let sealed: Sealed =
        ciborium::de::from_reader(sealed).map_err(|e| SealError::Malformed(e.to_string()))?;
    if sealed.v != 1 {
        return Err(SealError::Malformed(format!("version {}", sealed.v)));
    }
    Ok(sealed)
}

fn check_signature(sealed: &Sealed, sender: &PeerKeys, aad: &[u8]) -> Result<(), SealError> {
    let public = schnorrkel::PublicKey::from_bytes(&sender.signing)
        .map_err(|e| SealError::BadKey(e.to_string()))?;
    let signature =
        schnorrkel::Signature::from_bytes(&sealed.sig).map_err(|_| SealError::BadSignature)?;
    public
        .verify(
            schnorrkel::signing_context(SEAL_CONTEXT).bytes(&signed_message(
                aad,
                &sealed.enc,
                &sealed.ct,
            )),
            &signature,
        )
        .map_err(|_| SealError::BadSignature)
}

/// Checks only the sender's signature (what a relay can do).
pub fn verify_sender(
    sender: &PeerKeys,
    source: &EndpointId,
    destination: &EndpointId,
    created: CreationTimestamp,
    sealed: &[u8],
) -> Result<(), SealError> {
    let sealed = decode(sealed)?;
    check_signature(&sealed, sender, &binding(source, destination, created))
}

/// Checks the signature and decrypts: what the recipient does.
pub fn open(
    recipient: &MeshIdentity,
    sender: &PeerKeys,
    source: &EndpointId,
    destination: &EndpointId,
    created: CreationTimestamp,
    sealed: &[u8],
) -> Result<Vec<u8>, SealError> {
    let sealed = decode(sealed)?;
    let aad = binding(source, destination, created);
    check_signature(&sealed, sender, &aad)?;
    let enc =
        <Kem as hpke::Kem>::EncappedKey::from_bytes(&sealed.enc).map_err(|_| SealError::Decrypt)?;
    hpke::single_shot_open::<ChaCha20Poly1305, HkdfSha256, Kem>(
        &OpModeR::Base,
        &recipient.secret,
        &enc,
        SEAL_CONTEXT,
        &sealed.ct,
        &aad,
    )
    .map_err(|_| SealError::Decrypt)
}

#[cfg(test)]
mod tests {
    use super::*;

    fn setup() -> (
        MeshIdentity,
        MeshIdentity,
        EndpointId,
        EndpointId,
        CreationTimestamp,
    ) {
        (
            MeshIdentity::from_seed([1; 32]),
            MeshIdentity::from_seed([2; 32]),
            EndpointId::dtn("a", "app").unwrap(),
            EndpointId::dtn("c", "app").unwrap(),
            CreationTimestamp { dtn_ms: 10, seq: 1 },
        )
    }

    #[test]
    fn seal_open_round_trip_and_relay_check() {
        let (a, c, src, dst, ts) = setup();
        let sealed = seal(&a, &c.public(), &src, &dst, ts, b"secret job").unwrap();
        assert!(!sealed.windows(10).any(|w| w == b"secret job"));
        verify_sender(&a.public(), &src, &dst, ts, &sealed).unwrap();
        assert_eq!(
            open(&c, &a.public(), &src, &dst, ts, &sealed).unwrap(),
            b"secret job"
        );
    }

    #[test]
    fn forgery_corruption_rebinding_and_wrong_recipient_fail() {
        let (a, c, src, dst, ts) = setup();
        let mallory = MeshIdentity::from_seed([3; 32]);
        let sealed = seal(&a, &c.public(), &src, &dst, ts, b"pay 10").unwrap();
        // A relay forges a payload in a's name with its own key.
        let forged = seal(&mallory, &c.public(), &src, &dst, ts, b"pay 1000").unwrap();
        assert_eq!(
            open(&c, &a.public(), &src, &dst, ts, &forged),
            Err(SealError::BadSignature)
        );
        // Any flipped byte fails.
        for at in 0..sealed.len() {
            let mut damaged = sealed.clone();
            damaged[at] ^= 1;
            assert!(
                open(&c, &a.public(), &src, &dst, ts, &damaged).is_err(),
                "flip at {at}"
            );
        }
        // Moved into a bundle with another timestamp (a replay under a new id).
        let later = CreationTimestamp { dtn_ms: 11, seq: 1 };
        assert_eq!(
            open(&c, &a.public(), &src, &dst, later, &sealed),
            Err(SealError::BadSignature)
        );
        // Another node cannot read it.
        assert_eq!(
            open(&mallory, &a.public(), &src, &dst, ts, &sealed),
            Err(SealError::Decrypt)
        );
    }

    #[test]
    fn keys_print_and_parse() {
        let keys = MeshIdentity::from_seed([9; 32]).public();
        assert_eq!(keys.to_string().parse::<PeerKeys>().unwrap(), keys);
        assert!("zz:00".parse::<PeerKeys>().is_err());
        assert_eq!(
            MeshIdentity::from_seed([9; 32]).public(),
            keys,
            "deterministic from the seed"
        );
    }
}
