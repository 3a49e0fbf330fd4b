//! Signed mix node descriptors: what the directory publishes about a mix.

use std::fmt;

use schnorrkel::{ExpansionMode, Keypair, MiniSecretKey, PublicKey, Signature, signing_context};
use sha2::{Digest, Sha256};
use x25519_dalek::PublicKey as SphinxKey;

use crate::packet::{NodeAddress, RouteNode};

/// The schnorrkel signing context of descriptors.
const SIGNING_CONTEXT: &[u8] = b"fog-mix node descriptor v1";
const MAGIC: &[u8; 4] = b"FMND";
const FORMAT_VERSION: u8 = 1;
/// The longest operator family name, in bytes.
pub const MAX_FAMILY_LEN: usize = 64;
/// The longest network address, in bytes.
pub const MAX_ADDRESS_LEN: usize = 255;
/// The shortest possible encoded descriptor.
const MIN_LEN: usize = 4 + 1 + 32 + 32 + 8 + 1 + 8 + 1 + 1 + 64;

/// Why a descriptor was refused. Nothing is half-decoded.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum DescriptorError {
    /// The bytes are not a well-formed descriptor.
    #[error("malformed descriptor: {0}")]
    Malformed(&'static str),
    /// A field is out of range.
    #[error("invalid descriptor field: {0}")]
    Invalid(&'static str),
    /// The signature does not verify under the descriptor's identity key.
    #[error("descriptor signature does not verify")]
    BadSignature,
}

/// A mix node's long-term sr25519 identity (schnorrkel), which signs its
/// descriptors.
pub struct NodeIdentity {
    keypair: Keypair,
}

impl fmt::Debug for NodeIdentity {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeIdentity")
            .field("public", &self.public_key())
            .finish_non_exhaustive()
    }
}

impl NodeIdentity {
    /// The identity derived from a 32-byte seed (keep the seed secret).
    pub fn from_seed(seed: &[u8; 32]) -> Self {
        // 32 bytes are always a mini secret key.
        let Ok(mini) = MiniSecretKey::from_bytes(seed) else {
            unreachable!("a 32-byte seed is a valid mini secret key")
        };
        NodeIdentity {
            keypair: mini.expand_to_keypair(ExpansionMode::Ed25519),
        }
    }

    /// A fresh random identity and the seed it comes from (keep the seed
    /// secret: it is the node's long-term key).
    pub fn generate() -> ([u8; 32], NodeIdentity) {
        let mut seed = [0u8; 32];
        rand::Rng::fill_bytes(&mut rand::rng(), &mut seed);
        (seed, NodeIdentity::from_seed(&seed))
    }

    /// The node's X25519 Sphinx key for `epoch`, derived from the identity's
    /// secret key (SHA-256 over a context, the secret and the epoch), so a
    /// node that restarts finds its epoch's key again without storing it,
    /// and keys of different epochs are unrelated to anyone without the
    /// secret.
    pub fn sphinx_secret(&self, epoch: u64) -> x25519_dalek::StaticSecret {
        let mut h = Sha256::new();
        h.update(b"fog-mix sphinx key v1");
        h.update(self.keypair.secret.to_bytes());
        h.update(epoch.to_be_bytes());
        let mut k = [0u8; 32];
        k.copy_from_slice(&h.finalize());
        x25519_dalek::StaticSecret::from(k)
    }

    /// The node's Sphinx address: SHA-256 of its identity key, as in its
    /// descriptors ([`NodeDescriptor::node_address`]).
    pub fn node_address(&self) -> NodeAddress {
        let digest = Sha256::digest(self.public_key());
        let mut a = [0u8; 32];
        a.copy_from_slice(&digest);
        NodeAddress::from_bytes(a)
    }

    /// The keypair (the relay lottery signs with it too).
    pub(crate) fn keypair(&self) -> &Keypair {
        &self.keypair
    }

    /// The 32-byte sr25519 public key.
    pub fn public_key(&self) -> [u8; 32] {
        self.keypair.public.to_bytes()
    }
}

/// What the directory publishes about one mix for one key epoch: its sr25519
/// identity, its X25519 Sphinx key, the network address to reach it, its
/// layer, its stake and its operator family. Built with
/// [`DescriptorBuilder`], signed by the identity, checked on decode.
#[derive(Clone, PartialEq, Eq)]
pub struct NodeDescriptor {
    identity: [u8; 32],
    sphinx_key: [u8; 32],
    epoch: u64,
    layer: u8,
    stake: u64,
    family: String,
    address: String,
    signature: [u8; 64],
}

impl fmt::Debug for NodeDescriptor {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("NodeDescriptor")
            .field("node_address", &self.node_address())
            .field("epoch", &self.epoch)
            .field("layer", &self.layer)
            .field("stake", &self.stake)
            .field("family", &self.family)
            .field("address", &self.address)
            .finish_non_exhaustive()
    }
}

/// The fields of a descriptor before it is signed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct DescriptorBuilder {
    sphinx_key: [u8; 32],
    epoch: u64,
    layer: u8,
    stake: u64,
    family: String,
    address: String,
}

impl DescriptorBuilder {
    /// A descriptor for `sphinx_key` in `epoch`, reachable at `address`
    /// (for example `203.0.113.7:1789`), in layer 0 with no stake and an
    /// empty family until set.
    pub fn new(sphinx_key: SphinxKey, epoch: u64, address: impl Into<String>) -> Self {
        DescriptorBuilder {
            sphinx_key: sphinx_key.to_bytes(),
            epoch,
            layer: 0,
            stake: 0,
            family: String::new(),
            address: address.into(),
        }
    }

    /// The mix layer the node serves in.
    pub fn layer(mut self, layer: u8) -> Self {
        self.layer = layer;
        self
    }

    /// The node's stake (weight in path selection).
    pub fn stake(mut self, stake: u64) -> Self {
        self.stake = stake;
        self
    }

    /// The operator family: nodes of one family never share a route.
    pub fn family(mut self, family: impl Into<String>) -> Self {
        self.family = family.into();
        self
    }

    /// Signs the descriptor with `identity`. Fails if the family or address
    /// is too long or the address is empty.
    pub fn sign(self, identity: &NodeIdentity) -> Result<NodeDescriptor, DescriptorError> {
        check_fields(&self.family, &self.address)?;
        let mut d = NodeDescriptor {
            identity: identity.public_key(),
            sphinx_key: self.sphinx_key,
            epoch: self.epoch,
            layer: self.layer,
            stake: self.stake,
            family: self.family,
            address: self.address,
            signature: [0; 64],
        };
        let signature = identity
            .keypair
            .sign(signing_context(SIGNING_CONTEXT).bytes(&d.body()));
        d.signature = signature.to_bytes();
        Ok(d)
    }
}

fn check_fields(family: &str, address: &str) -> Result<(), DescriptorError> {
    if family.len() > MAX_FAMILY_LEN {
        return Err(DescriptorError::Invalid("family longer than 64 bytes"));
    }
    if address.is_empty() || address.len() > MAX_ADDRESS_LEN {
        return Err(DescriptorError::Invalid(
            "address empty or longer than 255 bytes",
        ));
    }
    Ok(())
}

impl NodeDescriptor {
    /// The signed part: everything but the signature.
    fn body(&self) -> Vec<u8> {
        let mut b = Vec::with_capacity(MIN_LEN + self.family.len() + self.address.len());
        b.extend_from_slice(MAGIC);
        b.push(FORMAT_VERSION);
        b.extend_from_slice(&self.identity);
        b.extend_from_slice(&self.sphinx_key);
        b.extend_from_slice(&self.epoch.to_be_bytes());
        b.push(self.layer);
        b.extend_from_slice(&self.stake.to_be_bytes());
        b.push(self.family.len() as u8);
        b.extend_from_slice(self.family.as_bytes());
        b.push(self.address.len() as u8);
        b.extend_from_slice(self.address.as_bytes());
        b
    }

    /// The canonical encoding: body then the 64-byte signature.
    pub fn to_bytes(&self) -> Vec<u8> {
        let mut b = self.body();
        b.extend_from_slice(&self.signature);
        b
    }

    /// Decodes and verifies a descriptor. Any malformed input, trailing
    /// bytes or a signature that does not verify is an error.
    pub fn from_bytes(bytes: &[u8]) -> Result<Self, DescriptorError> {
        let mut r = Reader(bytes);
        if r.take(4)? != MAGIC {
            return Err(DescriptorError::Malformed("bad magic"));
        }
        if r.u8()? != FORMAT_VERSION {
            return Err(DescriptorError::Malformed("unknown version"));
        }
        let identity = r.array::<32>()?;
        let sphinx_key = r.array::<32>()?;
        let epoch = u64::from_be_bytes(r.array::<8>()?);
        let layer = r.u8()?;
        let stake = u64::from_be_bytes(r.array::<8>()?);
        let family_len = usize::from(r.u8()?);
        let family = std::str::from_utf8(r.take(family_len)?)
            .map_err(|_| DescriptorError::Malformed("family is not UTF-8"))?
            .to_owned();
        let address_len = usize::from(r.u8()?);
        let address = std::str::from_utf8(r.take(address_len)?)
            .map_err(|_| DescriptorError::Malformed("address is not UTF-8"))?
            .to_owned();
        let signature = r.array::<64>()?;
        if !r.0.is_empty() {
            return Err(DescriptorError::Malformed("trailing bytes"));
        }
        check_fields(&family, &address)?;
        let d = NodeDescriptor {
            identity,
            sphinx_key,
            epoch,
            layer,
            stake,
            family,
            address,
            signature,
        };
        d.verify()?;
        Ok(d)
    }

    /// Checks the signature under the descriptor's identity key.
    pub fn verify(&self) -> Result<(), DescriptorError> {
        let key =
            PublicKey::from_bytes(&self.identity).map_err(|_| DescriptorError::BadSignature)?;
        let signature =
            Signature::from_bytes(&self.signature).map_err(|_| DescriptorError::BadSignature)?;
        key.verify(
            signing_context(SIGNING_CONTEXT).bytes(&self.body()),
            &signature,
        )
        .map_err(|_| DescriptorError::BadSignature)
    }

    /// The node's Sphinx address: SHA-256 of its identity key, so an address
    /// names exactly one identity.
    pub fn node_address(&self) -> NodeAddress {
        let digest = Sha256::digest(self.identity);
        let mut a = [0u8; 32];
        a.copy_from_slice(&digest);
        NodeAddress::from_bytes(a)
    }

    /// The node as a route hop.
    pub fn route_node(&self) -> RouteNode {
        RouteNode::new(self.node_address(), self.sphinx_key())
    }

    /// The sr25519 identity public key.
    pub fn identity(&self) -> [u8; 32] {
        self.identity
    }

    /// The X25519 Sphinx public key for [`epoch`](Self::epoch).
    pub fn sphinx_key(&self) -> SphinxKey {
        SphinxKey::from(self.sphinx_key)
    }

    /// The key epoch the descriptor is for.
    pub fn epoch(&self) -> u64 {
        self.epoch
    }

    /// The mix layer.
    pub fn layer(&self) -> u8 {
        self.layer
    }

    /// The stake.
    pub fn stake(&self) -> u64 {
        self.stake
    }

    /// The operator family.
    pub fn family(&self) -> &str {
        &self.family
    }

    /// The network address.
    pub fn address(&self) -> &str {
        &self.address
    }
}

struct Reader<'a>(&'a [u8]);

impl<'a> Reader<'a> {
    fn take(&mut self, n: usize) -> Result<&'a [u8], DescriptorError> {
        if self.0.len() < n {
            return Err(DescriptorError::Malformed("truncated"));
        }
        let (head, rest) = self.0.split_at(n);
        self.0 = rest;
        Ok(head)
    }

    fn u8(&mut self) -> Result<u8, DescriptorError> {
        Ok(self.take(1)?[0])
    }

    fn array<const N: usize>(&mut self) -> Result<[u8; N], DescriptorError> {
        let mut a = [0u8; N];
        a.copy_from_slice(self.take(N)?);
        Ok(a)
    }
}
