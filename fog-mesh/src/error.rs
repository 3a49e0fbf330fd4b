//! Typed errors of fog-mesh.

use thiserror::Error;

/// A bundle could not be built, encoded or decoded.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum BundleError {
    /// The bytes are not well-formed CBOR.
    #[error("malformed cbor: {0}")]
    Cbor(String),
    /// Well-formed CBOR that is not a BPv7 bundle.
    #[error("not a bpv7 bundle: {0}")]
    Structure(String),
    /// A block's CRC does not match its contents.
    #[error("crc mismatch in block {block}")]
    Crc {
        /// The block number (0 for the primary block).
        block: u64,
    },
    /// A bad endpoint identifier.
    #[error("bad endpoint: {0}")]
    Eid(String),
    /// The bundle is larger than allowed.
    #[error("bundle of {size} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The size seen.
        size: usize,
        /// The limit.
        limit: usize,
    },
    /// The hop limit is reached: the bundle must not be forwarded again.
    #[error("hop limit {limit} reached")]
    HopLimit {
        /// The hop limit of the bundle.
        limit: u64,
    },
}

/// The bundle store failed.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum StoreError {
    /// SQLite reported an error.
    #[error("bundle store: {0}")]
    Sqlite(#[from] rusqlite::Error),
    /// A stored bundle no longer decodes (the file was damaged outside fog).
    #[error("stored bundle {id} is damaged: {source}")]
    Damaged {
        /// The bundle id.
        id: String,
        /// Why it does not decode.
        source: BundleError,
    },
    /// The bundle does not fit even after eviction (larger than the whole store).
    #[error("bundle of {size} bytes does not fit a store of {capacity} bytes")]
    DoesNotFit {
        /// Its size.
        size: usize,
        /// The store's byte capacity.
        capacity: usize,
    },
}

/// A link-level frame could not be decoded or reassembled.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum FrameError {
    /// The frame is shorter than its header or has a bad header.
    #[error("malformed frame: {0}")]
    Malformed(&'static str),
    /// The message would exceed the reassembly size bound.
    #[error("message of {size} bytes exceeds the reassembly limit of {limit} bytes")]
    TooLarge {
        /// Announced size.
        size: usize,
        /// Limit.
        limit: usize,
    },
    /// The MTU is too small to carry any data.
    #[error("mtu {0} is smaller than the fragment header")]
    MtuTooSmall(usize),
}

/// A bearer failed to send or to start.
#[derive(Debug, Error)]
#[non_exhaustive]
pub enum BearerError {
    /// An I/O error from the socket or adapter.
    #[error("bearer i/o: {0}")]
    Io(#[from] std::io::Error),
    /// The frame is larger than the bearer's MTU.
    #[error("frame of {size} bytes exceeds the mtu of {mtu}")]
    FrameTooLarge {
        /// Frame size.
        size: usize,
        /// Bearer MTU.
        mtu: usize,
    },
    /// The neighbour is not known to this bearer.
    #[error("unknown neighbour {0}")]
    UnknownNeighbour(String),
    /// The bearer is closed.
    #[error("bearer closed")]
    Closed,
    /// The bearer is not available on this machine (no adapter, no feature).
    #[error("bearer unavailable: {0}")]
    Unavailable(String),
}

/// A trace or simulation input is invalid.
#[derive(Debug, Error, Clone, PartialEq, Eq)]
#[non_exhaustive]
pub enum SimError {
    /// A line of a contact trace does not parse.
    #[error("trace line {line}: {reason}")]
    Trace {
        /// 1-based line number.
        line: usize,
        /// What is wrong.
        reason: String,
    },
    /// A configuration value is out of range.
    #[error("invalid simulation setting: {0}")]
    Config(String),
}
