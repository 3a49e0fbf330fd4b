//! Bundle Protocol version 7 (RFC 9171) bundles in CBOR.
//!
//! A bundle is an indefinite-length CBOR array: the primary block, then the
//! canonical blocks, the payload block (number 1) last. Blocks carry a CRC-16
//! (X.25) or CRC-32C over their own encoding. fog writes CRC-32C on every
//! block; it reads all three CRC types. The extension blocks fog understands
//! are previous node (6), bundle age (7) and hop count (10); others are kept
//! and forwarded unchanged.

use std::fmt::Write as _;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use ciborium::value::{Integer, Value};

use crate::eid::{EndpointId, dtn_from_ssp};
use crate::error::BundleError;

/// Block type code of the payload block.
pub const PAYLOAD_BLOCK: u64 = 1;
/// Block type code of the previous node block.
pub const PREVIOUS_NODE_BLOCK: u64 = 6;
/// Block type code of the bundle age block.
pub const BUNDLE_AGE_BLOCK: u64 = 7;
/// Block type code of the hop count block.
pub const HOP_COUNT_BLOCK: u64 = 10;

/// The largest encoded bundle [`Bundle::decode`] accepts by default (16 MiB).
pub const MAX_BUNDLE_SIZE: usize = 16 * 1024 * 1024;
/// The most blocks a bundle may have.
pub const MAX_BLOCKS: usize = 64;
/// Hop limit written by [`BundleBuilder`] unless told otherwise.
pub const DEFAULT_HOP_LIMIT: u64 = 32;

/// Milliseconds between the Unix epoch and the DTN epoch (2000-01-01T00:00:00Z).
const DTN_EPOCH_UNIX_MS: u64 = 946_684_800_000;

/// Milliseconds since the DTN epoch, now.
pub fn dtn_now_ms() -> u64 {
    let unix_ms = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| u64::try_from(d.as_millis()).unwrap_or(u64::MAX));
    unix_ms.saturating_sub(DTN_EPOCH_UNIX_MS)
}

/// The CRC a block carries.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
#[non_exhaustive]
pub enum CrcType {
    /// No CRC.
    None,
    /// CRC-16 X.25.
    Crc16,
    /// CRC-32C (Castagnoli).
    Crc32c,
}

impl CrcType {
    fn code(self) -> u64 {
        match self {
            CrcType::None => 0,
            CrcType::Crc16 => 1,
            CrcType::Crc32c => 2,
        }
    }

    fn from_code(code: u64) -> Result<Self, BundleError> {
        match code {
            0 => Ok(CrcType::None),
            1 => Ok(CrcType::Crc16),
            2 => Ok(CrcType::Crc32c),
            other => Err(BundleError::Structure(format!("unknown crc type {other}"))),
        }
    }

    fn len(self) -> usize {
        match self {
            CrcType::None => 0,
            CrcType::Crc16 => 2,
            CrcType::Crc32c => 4,
        }
    }

    fn compute(self, bytes: &[u8]) -> Vec<u8> {
        const X25: crc::Crc<u16> = crc::Crc::<u16>::new(&crc::CRC_16_IBM_SDLC);
        const C32: crc::Crc<u32> = crc::Crc::<u32>::new(&crc::CRC_32_ISCSI);
        match self {
            CrcType::None => Vec::new(),
            CrcType::Crc16 => X25.checksum(bytes).to_be_bytes().to_vec(),
            CrcType::Crc32c => C32.checksum(bytes).to_be_bytes().to_vec(),
        }
    }
}

/// A bundle's creation timestamp: DTN time in milliseconds and a sequence
/// number that tells apart bundles created in the same millisecond.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct CreationTimestamp {
    /// Milliseconds since 2000-01-01T00:00:00Z (0 if the source has no clock).
    pub dtn_ms: u64,
    /// Sequence number.
    pub seq: u64,
}

/// Fragment information of the primary block.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Hash)]
pub struct FragmentInfo {
    /// Offset of this fragment's payload in the original payload.
    pub offset: u64,
    /// Total length of the original payload.
    pub total_len: u64,
}

/// The identity of a bundle: source, creation timestamp and fragment.
#[derive(Debug, Clone, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct BundleId(String);

impl BundleId {
    /// The id as text, stable across restarts (`source-ms-seq[-offset-len]`).
    pub fn as_str(&self) -> &str {
        &self.0
    }

    /// Wraps an id received from a peer (summary vectors carry ids as text).
    pub fn from_wire(text: String) -> Self {
        BundleId(text)
    }
}

impl std::fmt::Display for BundleId {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str(&self.0)
    }
}

/// A canonical (non-primary) block.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Block {
    kind: u64,
    number: u64,
    flags: u64,
    crc: CrcType,
    data: Vec<u8>,
}

impl Block {
    /// A block of `kind` with number `number` and type-specific `data`.
    pub fn new(kind: u64, number: u64, data: Vec<u8>) -> Self {
        Block {
            kind,
            number,
            flags: 0,
            crc: CrcType::Crc32c,
            data,
        }
    }

    /// The block type code.
    pub fn kind(&self) -> u64 {
        self.kind
    }

    /// The block number, unique within the bundle (the payload is 1).
    pub fn number(&self) -> u64 {
        self.number
    }

    /// Block processing control flags.
    pub fn flags(&self) -> u64 {
        self.flags
    }

    /// The block-type-specific data.
    pub fn data(&self) -> &[u8] {
        &self.data
    }
}

/// A hop count extension block's contents.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct HopCount {
    /// The most hops the bundle may take.
    pub limit: u64,
    /// Hops taken so far.
    pub count: u64,
}

/// A BPv7 bundle.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Bundle {
    flags: u64,
    crc: CrcType,
    destination: EndpointId,
    source: EndpointId,
    report_to: EndpointId,
    created: CreationTimestamp,
    lifetime_ms: u64,
    fragment: Option<FragmentInfo>,
    /// Canonical blocks in wire order; the payload block is last.
    blocks: Vec<Block>,
}

/// Builds a new bundle with a payload, a hop count and a bundle age block.
#[derive(Debug, Clone)]
pub struct BundleBuilder {
    source: EndpointId,
    destination: EndpointId,
    report_to: Option<EndpointId>,
    created: Option<CreationTimestamp>,
    lifetime: Duration,
    hop_limit: u64,
    payload: Vec<u8>,
    flags: u64,
}

impl BundleBuilder {
    /// A bundle from `source` to `destination`; lifetime one hour, hop limit
    /// [`DEFAULT_HOP_LIMIT`], created now with sequence number 0.
    pub fn new(source: EndpointId, destination: EndpointId) -> Self {
        BundleBuilder {
            source,
            destination,
            report_to: None,
            created: None,
            lifetime: Duration::from_hours(1),
            hop_limit: DEFAULT_HOP_LIMIT,
            payload: Vec::new(),
            flags: 0,
        }
    }

    /// The payload (application data).
    pub fn payload(mut self, payload: impl Into<Vec<u8>>) -> Self {
        self.payload = payload.into();
        self
    }

    /// How long the bundle lives after its creation.
    pub fn lifetime(mut self, lifetime: Duration) -> Self {
        self.lifetime = lifetime;
        self
    }

    /// The most hops the bundle may take.
    pub fn hop_limit(mut self, limit: u64) -> Self {
        self.hop_limit = limit;
        self
    }

    /// An explicit creation timestamp (default: now, sequence 0).
    pub fn created(mut self, created: CreationTimestamp) -> Self {
        self.created = Some(created);
        self
    }

    /// Where status reports go (default: the source).
    pub fn report_to(mut self, report_to: EndpointId) -> Self {
        self.report_to = Some(report_to);
        self
    }

    /// Bundle processing control flags (RFC 9171 section 4.2.3).
    pub fn flags(mut self, flags: u64) -> Self {
        self.flags = flags;
        self
    }

    /// The bundle.
    pub fn build(self) -> Bundle {
        let hop = encode_value(&Value::Array(vec![uint(self.hop_limit), uint(0)]));
        Bundle {
            flags: self.flags,
            crc: CrcType::Crc32c,
            report_to: self.report_to.unwrap_or_else(|| self.source.clone()),
            destination: self.destination,
            source: self.source,
            created: self.created.unwrap_or(CreationTimestamp {
                dtn_ms: dtn_now_ms(),
                seq: 0,
            }),
            lifetime_ms: u64::try_from(self.lifetime.as_millis()).unwrap_or(u64::MAX),
            fragment: None,
            blocks: vec![
                Block::new(HOP_COUNT_BLOCK, 2, hop),
                Block::new(BUNDLE_AGE_BLOCK, 3, encode_value(&uint(0))),
                Block::new(PAYLOAD_BLOCK, 1, self.payload),
            ],
        }
    }
}

impl Bundle {
    /// The destination endpoint.
    pub fn destination(&self) -> &EndpointId {
        &self.destination
    }

    /// The source endpoint.
    pub fn source(&self) -> &EndpointId {
        &self.source
    }

    /// Where status reports go.
    pub fn report_to(&self) -> &EndpointId {
        &self.report_to
    }

    /// The creation timestamp.
    pub fn created(&self) -> CreationTimestamp {
        self.created
    }

    /// The lifetime after creation.
    pub fn lifetime(&self) -> Duration {
        Duration::from_millis(self.lifetime_ms)
    }

    /// Bundle processing control flags.
    pub fn flags(&self) -> u64 {
        self.flags
    }

    /// Fragment information, if this bundle is a fragment.
    pub fn fragment(&self) -> Option<FragmentInfo> {
        self.fragment
    }

    /// The canonical blocks, payload last.
    pub fn blocks(&self) -> &[Block] {
        &self.blocks
    }

    /// The payload.
    pub fn payload(&self) -> &[u8] {
        self.blocks
            .iter()
            .find(|b| b.kind == PAYLOAD_BLOCK)
            .map_or(&[][..], |b| &b.data)
    }

    /// The bundle's identity.
    pub fn id(&self) -> BundleId {
        let mut id = format!(
            "{}-{}-{}",
            self.source, self.created.dtn_ms, self.created.seq
        );
        if let Some(fragment) = self.fragment {
            let _ = write!(id, "-{}-{}", fragment.offset, fragment.total_len);
        }
        BundleId(id)
    }

    /// DTN time (ms) at which the bundle expires, or `None` when the
    /// creation time is unknown (0) and the age must be used instead.
    pub fn expires_at_dtn_ms(&self) -> Option<u64> {
        (self.created.dtn_ms != 0).then(|| self.created.dtn_ms.saturating_add(self.lifetime_ms))
    }

    /// The hop count block, if present and well-formed.
    pub fn hop_count(&self) -> Option<HopCount> {
        let block = self.blocks.iter().find(|b| b.kind == HOP_COUNT_BLOCK)?;
        match decode_value(&block.data).ok()? {
            Value::Array(items) if items.len() == 2 => Some(HopCount {
                limit: as_u64(&items[0]).ok()?,
                count: as_u64(&items[1]).ok()?,
            }),
            _ => None,
        }
    }

    /// The bundle age in milliseconds, if the bundle carries an age block.
    pub fn age_ms(&self) -> Option<u64> {
        let block = self.blocks.iter().find(|b| b.kind == BUNDLE_AGE_BLOCK)?;
        as_u64(&decode_value(&block.data).ok()?).ok()
    }

    /// The node that forwarded this bundle last, if recorded.
    pub fn previous_node(&self) -> Option<EndpointId> {
        let block = self.blocks.iter().find(|b| b.kind == PREVIOUS_NODE_BLOCK)?;
        parse_eid(&decode_value(&block.data).ok()?).ok()
    }

    /// Prepares the bundle to leave this node: counts the hop, adds the time
    /// it spent here to its age and records `local` as the previous node.
    /// Fails when the hop limit is reached (the bundle must not be sent).
    pub fn prepare_forward(
        &mut self,
        local: &EndpointId,
        residence_ms: u64,
    ) -> Result<(), BundleError> {
        if let Some(hop) = self.hop_count() {
            if hop.count >= hop.limit {
                return Err(BundleError::HopLimit { limit: hop.limit });
            }
            self.set_block(
                HOP_COUNT_BLOCK,
                encode_value(&Value::Array(vec![uint(hop.limit), uint(hop.count + 1)])),
            );
        }
        if let Some(age) = self.age_ms() {
            self.set_block(
                BUNDLE_AGE_BLOCK,
                encode_value(&uint(age.saturating_add(residence_ms))),
            );
        }
        self.set_block(PREVIOUS_NODE_BLOCK, encode_value(&eid_value(local)));
        Ok(())
    }

    /// Replaces the data of the block of `kind`, adding it before the payload
    /// with a fresh number when absent.
    fn set_block(&mut self, kind: u64, data: Vec<u8>) {
        if let Some(block) = self.blocks.iter_mut().find(|b| b.kind == kind) {
            block.data = data;
            return;
        }
        let number = self
            .blocks
            .iter()
            .map(|b| b.number)
            .max()
            .unwrap_or(1)
            .max(1)
            + 1;
        let at = self.blocks.len().saturating_sub(1);
        self.blocks.insert(at, Block::new(kind, number, data));
    }

    /// Encodes the bundle (canonical CBOR, CRC-32C on every block this
    /// builder made; blocks read from the wire keep their CRC type).
    pub fn encode(&self) -> Vec<u8> {
        let mut out = vec![0x9f];
        let mut primary = vec![
            uint(7),
            uint(self.flags),
            uint(self.crc.code()),
            eid_value(&self.destination),
            eid_value(&self.source),
            eid_value(&self.report_to),
            Value::Array(vec![uint(self.created.dtn_ms), uint(self.created.seq)]),
            uint(self.lifetime_ms),
        ];
        if let Some(fragment) = self.fragment {
            primary.push(uint(fragment.offset));
            primary.push(uint(fragment.total_len));
        }
        out.extend(encode_with_crc(primary, self.crc));
        for block in &self.blocks {
            let fields = vec![
                uint(block.kind),
                uint(block.number),
                uint(block.flags),
                uint(block.crc.code()),
                Value::Bytes(block.data.clone()),
            ];
            out.extend(encode_with_crc(fields, block.crc));
        }
        out.push(0xff);
        out
    }

    /// Decodes and validates a bundle: structure, endpoints, CRCs, unique
    /// block numbers, exactly one payload block and it last. Never panics;
    /// inputs over [`MAX_BUNDLE_SIZE`] are refused.
    pub fn decode(bytes: &[u8]) -> Result<Bundle, BundleError> {
        Self::decode_with_limit(bytes, MAX_BUNDLE_SIZE)
    }

    /// [`Bundle::decode`] with an explicit size limit.
    pub fn decode_with_limit(bytes: &[u8], limit: usize) -> Result<Bundle, BundleError> {
        if bytes.len() > limit {
            return Err(BundleError::TooLarge {
                size: bytes.len(),
                limit,
            });
        }
        let Some((&0x9f, mut input)) = bytes.split_first() else {
            return Err(BundleError::Structure(
                "a bundle is an indefinite-length array".to_owned(),
            ));
        };
        let (primary, raw) = read_item(&mut input)?;
        let mut bundle = parse_primary(primary, raw)?;
        loop {
            match input.first() {
                None => {
                    return Err(BundleError::Structure(
                        "missing break at the end".to_owned(),
                    ));
                }
                Some(0xff) => {
                    if input.len() > 1 {
                        return Err(BundleError::Structure("bytes after the bundle".to_owned()));
                    }
                    break;
                }
                Some(_) => {}
            }
            if bundle.blocks.len() == MAX_BLOCKS {
                return Err(BundleError::Structure(format!(
                    "more than {MAX_BLOCKS} blocks"
                )));
            }
            let (value, raw) = read_item(&mut input)?;
            bundle.blocks.push(parse_block(value, raw)?);
        }
        validate_blocks(&bundle.blocks)?;
        Ok(bundle)
    }
}

fn validate_blocks(blocks: &[Block]) -> Result<(), BundleError> {
    let Some(last) = blocks.last() else {
        return Err(BundleError::Structure("no payload block".to_owned()));
    };
    if last.kind != PAYLOAD_BLOCK || last.number != 1 {
        return Err(BundleError::Structure(
            "the last block must be the payload, number 1".to_owned(),
        ));
    }
    let mut numbers: Vec<u64> = blocks.iter().map(|b| b.number).collect();
    numbers.sort_unstable();
    if numbers.windows(2).any(|w| w[0] == w[1]) || numbers.first() == Some(&0) {
        return Err(BundleError::Structure(
            "block numbers must be unique and non-zero".to_owned(),
        ));
    }
    if blocks.iter().filter(|b| b.kind == PAYLOAD_BLOCK).count() != 1 {
        return Err(BundleError::Structure(
            "exactly one payload block".to_owned(),
        ));
    }
    Ok(())
}

fn uint(value: u64) -> Value {
    Value::Integer(Integer::from(value))
}

fn as_u64(value: &Value) -> Result<u64, BundleError> {
    match value {
        Value::Integer(i) => u64::try_from(*i)
            .map_err(|_| BundleError::Structure("expected an unsigned integer".to_owned())),
        _ => Err(BundleError::Structure(
            "expected an unsigned integer".to_owned(),
        )),
    }
}

pub(crate) fn encode_value(value: &Value) -> Vec<u8> {
    let mut out = Vec::new();
    // Writing a Value into a Vec cannot fail.
    ciborium::ser::into_writer(value, &mut out).expect("cbor into a vec");
    out
}

pub(crate) fn decode_value(bytes: &[u8]) -> Result<Value, BundleError> {
    let mut input = bytes;
    let (value, _) = read_item(&mut input)?;
    if input.is_empty() {
        Ok(value)
    } else {
        Err(BundleError::Cbor("trailing bytes".to_owned()))
    }
}

/// Reads one CBOR item, returning it and the raw bytes it was read from.
fn read_item<'a>(input: &mut &'a [u8]) -> Result<(Value, &'a [u8]), BundleError> {
    let before: &'a [u8] = input;
    let value: Value =
        ciborium::de::from_reader(&mut *input).map_err(|e| BundleError::Cbor(e.to_string()))?;
    let consumed = before.len() - input.len();
    Ok((value, &before[..consumed]))
}

/// Encodes `fields` as a definite array, appending the CRC when asked.
fn encode_with_crc(mut fields: Vec<Value>, crc: CrcType) -> Vec<u8> {
    if crc == CrcType::None {
        return encode_value(&Value::Array(fields));
    }
    fields.push(Value::Bytes(vec![0; crc.len()]));
    let mut bytes = encode_value(&Value::Array(fields));
    let sum = crc.compute(&bytes);
    let at = bytes.len() - sum.len();
    bytes[at..].copy_from_slice(&sum);
    bytes
}

/// Checks the CRC of a block whose raw encoding is `raw` (CRC value last).
fn check_crc(raw: &[u8], crc: CrcType, claimed: &[u8], block: u64) -> Result<(), BundleError> {
    if claimed.len() != crc.len() || raw.len() < claimed.len() {
        return Err(BundleError::Structure(format!(
            "crc of block {block} has the wrong length"
        )));
    }
    let mut zeroed = raw.to_vec();
    let at = zeroed.len() - claimed.len();
    zeroed[at..].fill(0);
    if crc.compute(&zeroed) == claimed {
        Ok(())
    } else {
        Err(BundleError::Crc { block })
    }
}

fn eid_value(eid: &EndpointId) -> Value {
    match eid {
        EndpointId::None => Value::Array(vec![uint(1), uint(0)]),
        EndpointId::Dtn(ssp) => Value::Array(vec![uint(1), Value::Text(ssp.clone())]),
        EndpointId::Ipn { node, service } => Value::Array(vec![
            uint(2),
            Value::Array(vec![uint(*node), uint(*service)]),
        ]),
    }
}

fn parse_eid(value: &Value) -> Result<EndpointId, BundleError> {
    let Value::Array(items) = value else {
        return Err(BundleError::Eid(
            "an endpoint is a [scheme, ssp] array".to_owned(),
        ));
    };
    let [scheme, ssp] = items.as_slice() else {
        return Err(BundleError::Eid(
            "an endpoint is a [scheme, ssp] array".to_owned(),
        ));
    };
    match (as_u64(scheme)?, ssp) {
        (1, Value::Integer(i)) if u64::try_from(*i) == Ok(0) => Ok(EndpointId::None),
        (1, Value::Text(text)) => dtn_from_ssp(text),
        (2, Value::Array(parts)) if parts.len() == 2 => Ok(EndpointId::Ipn {
            node: as_u64(&parts[0])?,
            service: as_u64(&parts[1])?,
        }),
        (scheme, _) => Err(BundleError::Eid(format!(
            "unsupported endpoint scheme {scheme}"
        ))),
    }
}

fn parse_primary(value: Value, raw: &[u8]) -> Result<Bundle, BundleError> {
    let Value::Array(items) = value else {
        return Err(BundleError::Structure(
            "the primary block is an array".to_owned(),
        ));
    };
    if !(8..=11).contains(&items.len()) {
        return Err(BundleError::Structure(format!(
            "primary block of {} fields",
            items.len()
        )));
    }
    if as_u64(&items[0])? != 7 {
        return Err(BundleError::Structure(
            "bundle protocol version is not 7".to_owned(),
        ));
    }
    let flags = as_u64(&items[1])?;
    let crc = CrcType::from_code(as_u64(&items[2])?)?;
    let is_fragment = flags & 0x01 != 0;
    let expected = 8 + if is_fragment { 2 } else { 0 } + usize::from(crc != CrcType::None);
    if items.len() != expected {
        return Err(BundleError::Structure(format!(
            "primary block has {} fields, its flags and crc type need {expected}",
            items.len()
        )));
    }
    if crc != CrcType::None {
        let Some(Value::Bytes(claimed)) = items.last() else {
            return Err(BundleError::Structure(
                "the primary block's crc is not a byte string".to_owned(),
            ));
        };
        check_crc(raw, crc, claimed, 0)?;
    }
    let Value::Array(ts) = &items[6] else {
        return Err(BundleError::Structure(
            "creation timestamp is not an array".to_owned(),
        ));
    };
    let [ms, seq] = ts.as_slice() else {
        return Err(BundleError::Structure(
            "creation timestamp is not [time, seq]".to_owned(),
        ));
    };
    let fragment = if is_fragment {
        Some(FragmentInfo {
            offset: as_u64(&items[8])?,
            total_len: as_u64(&items[9])?,
        })
    } else {
        None
    };
    Ok(Bundle {
        flags,
        crc,
        destination: parse_eid(&items[3])?,
        source: parse_eid(&items[4])?,
        report_to: parse_eid(&items[5])?,
        created: CreationTimestamp {
            dtn_ms: as_u64(ms)?,
            seq: as_u64(seq)?,
        },
        lifetime_ms: as_u64(&items[7])?,
        fragment,
        blocks: Vec::new(),
    })
}

fn parse_block(value: Value, raw: &[u8]) -> Result<Block, BundleError> {
    let Value::Array(items) = value else {
        return Err(BundleError::Structure(
            "a canonical block is an array".to_owned(),
        ));
    };
    if !(5..=6).contains(&items.len()) {
        return Err(BundleError::Structure(format!(
            "canonical block of {} fields",
            items.len()
        )));
    }
    let number = as_u64(&items[1])?;
    let crc = CrcType::from_code(as_u64(&items[3])?)?;
    if items.len() != 5 + usize::from(crc != CrcType::None) {
        return Err(BundleError::Structure(format!(
            "block {number}: crc type and field count disagree"
        )));
    }
    if crc != CrcType::None {
        let Some(Value::Bytes(claimed)) = items.last() else {
            return Err(BundleError::Structure(format!(
                "block {number}: crc is not a byte string"
            )));
        };
        check_crc(raw, crc, claimed, number)?;
    }
    let mut items = items.into_iter();
    let kind = as_u64(&items.next().unwrap_or(Value::Null))?;
    let _number = items.next();
    let flags = as_u64(&items.next().unwrap_or(Value::Null))?;
    let _crc = items.next();
    let Some(Value::Bytes(data)) = items.next() else {
        return Err(BundleError::Structure(format!(
            "block {number}: data is not a byte string"
        )));
    };
    Ok(Block {
        kind,
        number,
        flags,
        crc,
        data,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn sample() -> Bundle {
        BundleBuilder::new(EndpointId::dtn("a", "x").unwrap(), EndpointId::ipn(9, 1))
            .payload(b"hello".to_vec())
            .created(CreationTimestamp {
                dtn_ms: 1_000,
                seq: 2,
            })
            .build()
    }

    #[test]
    fn round_trip() {
        let bundle = sample();
        let decoded = Bundle::decode(&bundle.encode()).unwrap();
        assert_eq!(decoded, bundle);
        assert_eq!(decoded.payload(), b"hello");
        assert_eq!(
            decoded.hop_count(),
            Some(HopCount {
                limit: DEFAULT_HOP_LIMIT,
                count: 0
            })
        );
        assert_eq!(decoded.id().as_str(), "dtn://a/x-1000-2");
    }

    #[test]
    fn forwarding_updates_extension_blocks() {
        let mut bundle = sample();
        let me = EndpointId::ipn(3, 0);
        bundle.prepare_forward(&me, 250).unwrap();
        let decoded = Bundle::decode(&bundle.encode()).unwrap();
        assert_eq!(decoded.hop_count().unwrap().count, 1);
        assert_eq!(decoded.age_ms(), Some(250));
        assert_eq!(decoded.previous_node(), Some(me));
        assert_eq!(decoded.blocks().last().unwrap().kind(), PAYLOAD_BLOCK);
    }

    #[test]
    fn hop_limit_stops_forwarding() {
        let mut bundle = BundleBuilder::new(EndpointId::ipn(1, 0), EndpointId::ipn(2, 0))
            .hop_limit(1)
            .build();
        bundle.prepare_forward(&EndpointId::ipn(1, 0), 0).unwrap();
        assert_eq!(
            bundle.prepare_forward(&EndpointId::ipn(3, 0), 0),
            Err(BundleError::HopLimit { limit: 1 })
        );
    }

    #[test]
    fn every_flipped_byte_is_caught() {
        let bytes = sample().encode();
        for at in 0..bytes.len() {
            let mut damaged = bytes.clone();
            damaged[at] ^= 0x01;
            assert!(
                Bundle::decode(&damaged).is_err(),
                "flip at {at} went unnoticed"
            );
        }
    }

    #[test]
    fn refuses_oversized_input() {
        let bytes = sample().encode();
        assert!(matches!(
            Bundle::decode_with_limit(&bytes, 10),
            Err(BundleError::TooLarge { .. })
        ));
    }
}
