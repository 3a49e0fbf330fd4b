//! Fixed-size frames for the node transport.

use crate::packet::PacketConfig;

/// Bytes of a frame header.
pub const FRAME_HEADER_LEN: usize = 8;

const MAGIC: [u8; 2] = *b"FM";
/// The frame format version this crate reads and writes.
pub const FRAME_VERSION: u8 = 1;
/// Frame kind: a Sphinx packet.
const KIND_PACKET: u8 = 0;

/// Why a frame was rejected. Decoding reads nothing beyond the frame and
/// never panics.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[non_exhaustive]
pub enum FrameError {
    /// The frame is not exactly [`FrameCodec::frame_len`] bytes.
    #[error("frame has {got} bytes, expected {expected}")]
    Length {
        /// The fixed frame length.
        expected: usize,
        /// The length received.
        got: usize,
    },
    /// The frame does not start with the magic bytes `FM`.
    #[error("bad frame magic")]
    Magic,
    /// The frame's version is not [`FRAME_VERSION`].
    #[error("unsupported frame version {0}")]
    Version(u8),
    /// The frame's kind is unknown.
    #[error("unknown frame kind {0}")]
    Kind(u8),
    /// The header's length field disagrees with the configured packet length.
    #[error("frame announces a {got}-byte packet, expected {expected}")]
    PacketLength {
        /// The configured packet length.
        expected: usize,
        /// The announced length.
        got: u32,
    },
}

/// Encodes and decodes the fixed-size frames mixes exchange.
///
/// A frame is an 8-byte header followed by exactly one packet:
///
/// | bytes | field |
/// |---|---|
/// | 0..2 | magic `FM` |
/// | 2 | version (1) |
/// | 3 | kind (0 = Sphinx packet) |
/// | 4..8 | packet length, big-endian `u32`; must equal the configured length |
/// | 8.. | the packet |
///
/// Every frame of a network has the same length, so frames reveal nothing
/// about the packet's level or kind.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct FrameCodec {
    packet_len: usize,
}

impl FrameCodec {
    /// A codec for packets of `config.packet_len()` bytes.
    pub fn new(config: &PacketConfig) -> Self {
        FrameCodec::for_packet_len(config.packet_len())
    }

    /// A codec for packets of `packet_len` bytes.
    pub const fn for_packet_len(packet_len: usize) -> Self {
        FrameCodec { packet_len }
    }

    /// The length of every frame: header plus packet.
    pub const fn frame_len(&self) -> usize {
        FRAME_HEADER_LEN + self.packet_len
    }

    /// The length of the packet in every frame.
    pub const fn packet_len(&self) -> usize {
        self.packet_len
    }

    /// Frames `packet`. Fails, writing nothing, unless the packet has the
    /// configured length.
    pub fn encode(&self, packet: &[u8]) -> Result<Vec<u8>, FrameError> {
        if packet.len() != self.packet_len {
            return Err(FrameError::Length {
                expected: self.packet_len,
                got: packet.len(),
            });
        }
        let len = u32::try_from(packet.len()).map_err(|_| FrameError::Length {
            expected: self.packet_len,
            got: packet.len(),
        })?;
        let mut out = Vec::with_capacity(self.frame_len());
        out.extend_from_slice(&MAGIC);
        out.push(FRAME_VERSION);
        out.push(KIND_PACKET);
        out.extend_from_slice(&len.to_be_bytes());
        out.extend_from_slice(packet);
        Ok(out)
    }

    /// Checks a frame and returns the packet bytes inside it.
    pub fn decode<'a>(&self, frame: &'a [u8]) -> Result<&'a [u8], FrameError> {
        if frame.len() != self.frame_len() {
            return Err(FrameError::Length {
                expected: self.frame_len(),
                got: frame.len(),
            });
        }
        let (header, packet) = frame.split_at(FRAME_HEADER_LEN);
        if header[..2] != MAGIC {
            return Err(FrameError::Magic);
        }
        if header[2] != FRAME_VERSION {
            return Err(FrameError::Version(header[2]));
        }
        if header[3] != KIND_PACKET {
            return Err(FrameError::Kind(header[3]));
        }
        let announced = u32::from_be_bytes([header[4], header[5], header[6], header[7]]);
        if usize::try_from(announced).ok() != Some(self.packet_len) {
            return Err(FrameError::PacketLength {
                expected: self.packet_len,
                got: announced,
            });
        }
        Ok(packet)
    }
}
