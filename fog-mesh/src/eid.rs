//! Endpoint identifiers (RFC 9171 section 4.2.5.1): `dtn:none`,
//! `dtn://node/service` and `ipn:node.service`.

use std::fmt;
use std::str::FromStr;

use crate::error::BundleError;

/// The longest endpoint text accepted from the wire or a user.
pub const MAX_EID_LEN: usize = 1024;

/// A bundle endpoint identifier.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
#[non_exhaustive]
pub enum EndpointId {
    /// `dtn:none`, the null endpoint.
    None,
    /// A `dtn` scheme endpoint: the scheme-specific part without `dtn:`,
    /// for example `//node-a/inbox`.
    Dtn(String),
    /// An `ipn` scheme endpoint: node and service numbers.
    Ipn {
        /// The node number.
        node: u64,
        /// The service number.
        service: u64,
    },
}

impl EndpointId {
    /// A `dtn://node/service` endpoint.
    pub fn dtn(node: &str, service: &str) -> Result<Self, BundleError> {
        format!("dtn://{node}/{service}").parse()
    }

    /// An `ipn:node.service` endpoint.
    pub fn ipn(node: u64, service: u64) -> Self {
        EndpointId::Ipn { node, service }
    }

    /// The node this endpoint belongs to, as a routing key: the ipn node
    /// number, or a stable 64-bit hash of the dtn node name. `dtn:none` has none.
    pub fn node_id(&self) -> Option<crate::NodeId> {
        match self {
            EndpointId::None => None,
            EndpointId::Ipn { node, .. } => Some(crate::NodeId(*node)),
            EndpointId::Dtn(ssp) => {
                let name = ssp.trim_start_matches("//");
                let node = name.split('/').next().unwrap_or_default();
                Some(crate::NodeId(fnv1a(node.as_bytes())))
            }
        }
    }
}

/// FNV-1a, 64 bit: stable across builds and platforms.
pub(crate) fn fnv1a(bytes: &[u8]) -> u64 {
    let mut hash: u64 = 0xcbf2_9ce4_8422_2325;
    for byte in bytes {
        hash ^= u64::from(*byte);
        hash = hash.wrapping_mul(0x0100_0000_01b3);
    }
    hash
}

impl fmt::Display for EndpointId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        match self {
            EndpointId::None => f.write_str("dtn:none"),
            EndpointId::Dtn(ssp) => write!(f, "dtn:{ssp}"),
            EndpointId::Ipn { node, service } => write!(f, "ipn:{node}.{service}"),
        }
    }
}

impl FromStr for EndpointId {
    type Err = BundleError;

    fn from_str(text: &str) -> Result<Self, Self::Err> {
        if text.len() > MAX_EID_LEN {
            return Err(BundleError::Eid(format!(
                "endpoint longer than {MAX_EID_LEN} bytes"
            )));
        }
        if text == "dtn:none" {
            return Ok(EndpointId::None);
        }
        if let Some(ssp) = text.strip_prefix("dtn:") {
            return dtn_from_ssp(ssp);
        }
        if let Some(ssp) = text.strip_prefix("ipn:") {
            let (node, service) = ssp
                .split_once('.')
                .ok_or_else(|| BundleError::Eid(format!("`{text}` is not ipn:node.service")))?;
            let parse = |part: &str| {
                part.parse::<u64>()
                    .map_err(|_| BundleError::Eid(format!("`{text}` has a bad ipn number")))
            };
            return Ok(EndpointId::Ipn {
                node: parse(node)?,
                service: parse(service)?,
            });
        }
        Err(BundleError::Eid(format!(
            "`{text}` is neither a dtn nor an ipn endpoint"
        )))
    }
}

/// Checks a dtn scheme-specific part: `//node/...`, printable ASCII.
pub(crate) fn dtn_from_ssp(ssp: &str) -> Result<EndpointId, BundleError> {
    if ssp.len() > MAX_EID_LEN {
        return Err(BundleError::Eid(format!(
            "endpoint longer than {MAX_EID_LEN} bytes"
        )));
    }
    let Some(rest) = ssp.strip_prefix("//") else {
        return Err(BundleError::Eid(format!(
            "dtn endpoint `{ssp}` does not start with //"
        )));
    };
    let node = rest.split('/').next().unwrap_or_default();
    if node.is_empty() {
        return Err(BundleError::Eid(format!(
            "dtn endpoint `{ssp}` has no node name"
        )));
    }
    if !ssp.bytes().all(|b| b.is_ascii_graphic()) {
        return Err(BundleError::Eid(
            "dtn endpoint has non-printable characters".to_owned(),
        ));
    }
    Ok(EndpointId::Dtn(ssp.to_owned()))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn parses_and_prints() {
        for text in ["dtn:none", "dtn://node-a/inbox", "dtn://n/", "ipn:12.3"] {
            let eid: EndpointId = text.parse().unwrap();
            assert_eq!(eid.to_string(), text);
        }
        for bad in [
            "dtn:node",
            "dtn:///x",
            "ipn:1",
            "ipn:a.b",
            "http://x",
            "dtn://a b/",
        ] {
            assert!(bad.parse::<EndpointId>().is_err(), "{bad}");
        }
    }

    #[test]
    fn node_ids_ignore_the_service() {
        let a = EndpointId::dtn("a", "inbox").unwrap();
        let b = EndpointId::dtn("a", "jobs").unwrap();
        assert_eq!(a.node_id(), b.node_id());
        assert_eq!(EndpointId::ipn(7, 1).node_id(), Some(crate::NodeId(7)));
        assert_eq!(EndpointId::None.node_id(), None);
    }
}
