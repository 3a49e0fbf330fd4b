//! The request-response codec of fog's direct-message protocol: one
//! length-prefixed [`Envelope`] per request, one length-prefixed [`Reply`]
//! per response.
//!
//! A frame is a 4-byte big-endian length followed by that many bytes. A
//! length above the envelope header plus [`MAX_PAYLOAD`] is refused before
//! anything is allocated, so a peer cannot make a node buffer more than one
//! bounded frame per stream.

use std::io;

use libp2p::StreamProtocol;
use libp2p::futures::{AsyncRead, AsyncReadExt, AsyncWrite, AsyncWriteExt};

use crate::envelope::{ENVELOPE_HEADER, Envelope, MAX_PAYLOAD, REPLY_HEADER, Reply};

/// Largest frame body accepted on a stream.
pub const MAX_FRAME: usize = ENVELOPE_HEADER + MAX_PAYLOAD;

/// Splits a length-prefixed frame off `bytes`: the body and the rest.
///
/// This is the pure half of the stream decoder (the fuzz target drives it).
pub fn split_frame(bytes: &[u8]) -> Result<(&[u8], &[u8]), io::Error> {
    let Some((len, rest)) = bytes.split_first_chunk::<4>() else {
        return Err(io::ErrorKind::UnexpectedEof.into());
    };
    let len = u32::from_be_bytes(*len) as usize;
    if len > MAX_FRAME {
        return Err(invalid(format!("frame of {len} bytes exceeds the limit")));
    }
    if rest.len() < len {
        return Err(io::ErrorKind::UnexpectedEof.into());
    }
    Ok(rest.split_at(len))
}

/// Decodes one complete frame holding an envelope (header, body, nothing else).
pub fn decode_envelope_frame(bytes: &[u8]) -> io::Result<Envelope> {
    let (body, rest) = split_frame(bytes)?;
    if !rest.is_empty() {
        return Err(invalid("bytes after the frame"));
    }
    Envelope::decode(body).map_err(invalid)
}

#[allow(clippy::needless_pass_by_value)] // Reason: used as `map_err(invalid)` on owned errors.
fn invalid(e: impl ToString) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidData, e.to_string())
}

async fn read_frame<T: AsyncRead + Unpin + Send>(io: &mut T, max: usize) -> io::Result<Vec<u8>> {
    let mut len = [0u8; 4];
    io.read_exact(&mut len).await?;
    let len = u32::from_be_bytes(len) as usize;
    if len > max {
        return Err(invalid(format!("frame of {len} bytes exceeds the limit")));
    }
    let mut body = vec![0u8; len];
    io.read_exact(&mut body).await?;
    Ok(body)
}

async fn write_frame<T: AsyncWrite + Unpin + Send>(io: &mut T, body: &[u8]) -> io::Result<()> {
    io.write_all(&(body.len() as u32).to_be_bytes()).await?;
    io.write_all(body).await?;
    io.close().await
}

/// The [`libp2p::request_response::Codec`] for [`Envelope`] and [`Reply`].
#[derive(Debug, Clone, Copy, Default)]
pub struct DirectCodec;

impl libp2p::request_response::Codec for DirectCodec {
    type Protocol = StreamProtocol;
    type Request = Envelope;
    type Response = Reply;

    async fn read_request<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Envelope>
    where
        T: AsyncRead + Unpin + Send,
    {
        let body = read_frame(io, MAX_FRAME).await?;
        Envelope::decode(&body).map_err(invalid)
    }

    async fn read_response<T>(&mut self, _: &StreamProtocol, io: &mut T) -> io::Result<Reply>
    where
        T: AsyncRead + Unpin + Send,
    {
        let body = read_frame(io, REPLY_HEADER + MAX_PAYLOAD).await?;
        Reply::decode(&body).map_err(invalid)
    }

    async fn write_request<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        req: Envelope,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let body = req.encode().map_err(invalid)?;
        write_frame(io, &body).await
    }

    async fn write_response<T>(
        &mut self,
        _: &StreamProtocol,
        io: &mut T,
        res: Reply,
    ) -> io::Result<()>
    where
        T: AsyncWrite + Unpin + Send,
    {
        let body = res.encode().map_err(invalid)?;
        write_frame(io, &body).await
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::envelope::{Kind, Priority};
    use libp2p::request_response::Codec;
    use proptest::prelude::*;

    proptest! {
        #[test]
        fn arbitrary_frames_never_panic(bytes in proptest::collection::vec(any::<u8>(), 0..300)) {
            let _ = decode_envelope_frame(&bytes);
            let _ = split_frame(&bytes);
        }
    }

    #[test]
    fn codec_round_trips_over_a_stream() {
        let e = Envelope {
            id: 7,
            kind: Kind::Request,
            priority: Priority::High,
            expires_at_ms: 99,
            payload: b"hello".to_vec(),
        };
        let proto = StreamProtocol::new("/test");
        let mut buf = libp2p::futures::io::Cursor::new(Vec::new());
        libp2p::futures::executor::block_on(DirectCodec.write_request(&proto, &mut buf, e.clone()))
            .unwrap();
        let bytes = buf.into_inner();
        assert_eq!(decode_envelope_frame(&bytes).unwrap(), e);
        let mut rd = libp2p::futures::io::Cursor::new(bytes);
        let back =
            libp2p::futures::executor::block_on(DirectCodec.read_request(&proto, &mut rd)).unwrap();
        assert_eq!(back, e);
    }

    #[test]
    fn huge_length_prefix_is_refused_without_allocating() {
        let bytes = u32::MAX.to_be_bytes();
        let err = split_frame(&bytes).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::InvalidData);
    }
}
