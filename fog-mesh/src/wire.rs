//! Messages between neighbours (CBOR), carried in frames.

use serde::{Deserialize, Serialize};

use crate::NodeId;
use crate::router::RoutingInfo;

/// Most bundle ids a summary vector carries; the rest are not announced
/// (the peer may then offer a few bundles we already have, which we drop
/// as duplicates).
pub const MAX_SUMMARY: usize = 20_000;
/// Largest link message accepted (a bundle plus framing).
pub const MAX_LINK_MESSAGE: usize = 4 * 1024 * 1024;

/// One message between neighbours.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[non_exhaustive]
pub enum LinkMessage {
    /// Who I am; sent when a link comes up.
    Hello {
        /// The sender's routing key.
        node: NodeId,
        /// The sender's node endpoint, as text.
        eid: String,
    },
    /// The sender's routing state.
    Routing(RoutingInfo),
    /// The ids of the bundles the sender holds (summary vector).
    Summary {
        /// Bundle ids.
        ids: Vec<String>,
    },
    /// A bundle, with the routing copies handed over.
    Bundle {
        /// Copies (spray-and-wait), 1 otherwise.
        copies: u32,
        /// The encoded BPv7 bundle.
        #[serde(with = "serde_bytes")]
        data: Vec<u8>,
    },
}

impl LinkMessage {
    /// Encodes the message.
    pub fn encode(&self) -> Vec<u8> {
        let mut out = Vec::new();
        // Serializing plain data into a Vec cannot fail.
        ciborium::ser::into_writer(self, &mut out).expect("cbor into a vec");
        out
    }

    /// Decodes a message. Never panics; refuses over [`MAX_LINK_MESSAGE`].
    pub fn decode(bytes: &[u8]) -> Result<Self, String> {
        if bytes.len() > MAX_LINK_MESSAGE {
            return Err(format!(
                "link message of {} bytes is too large",
                bytes.len()
            ));
        }
        ciborium::de::from_reader(bytes).map_err(|e| format!("malformed link message: {e}"))
    }
}
