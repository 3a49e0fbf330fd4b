//! One module per command group. Each returns `Result<(), anyhow::Error>`;
//! errors that carry a specific exit code are [`Failure`]s.

pub(crate) mod bench;
pub(crate) mod completions;
pub(crate) mod dao;
pub(crate) mod devnet;
pub(crate) mod harvest;
pub(crate) mod job;
pub(crate) mod job_api;
pub(crate) mod manpages;
pub(crate) mod mesh;
pub(crate) mod mix;
pub(crate) mod node;
pub(crate) mod p2p;
pub(crate) mod sched;

use std::fmt;

/// An error with the exit code and the error kind it should produce.
#[derive(Debug)]
pub(crate) struct Failure {
    /// Process exit code.
    pub(crate) code: u8,
    /// Short machine-readable kind, used in `--json` error documents.
    pub(crate) kind: &'static str,
    /// Human-readable message (lowercase, no trailing period).
    pub(crate) message: String,
}

impl fmt::Display for Failure {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.message)
    }
}

impl std::error::Error for Failure {}

/// A layer's data directory: `given`, else `$FOG_DATA_DIR/LAYER`, else
/// `./.fog/LAYER`.
pub(crate) fn layer_dir(given: Option<&std::path::PathBuf>, layer: &str) -> std::path::PathBuf {
    given.cloned().unwrap_or_else(|| {
        std::env::var_os("FOG_DATA_DIR")
            .map_or_else(
                || std::path::PathBuf::from(".fog"),
                std::path::PathBuf::from,
            )
            .join(layer)
    })
}
