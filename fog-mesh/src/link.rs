//! Encrypted link sessions between neighbours: Noise XX (snow).
//!
//! Each direction of a link is its own Noise session: a node is the
//! initiator of the session it sends on and the responder of the one it
//! receives on, so neither side has to pick a role. Bearers may lose or
//! reorder frames (UDP), so transport messages use snow's stateless mode with
//! the nonce carried in the clear; a bounded window drops replayed nonces.
//! A Noise message holds at most 64 KiB, so larger link messages are split
//! into several ciphertexts inside one envelope.
//!
//! Envelopes: `0x00` plaintext (only without an identity), `0x10`/`0x11`/`0x12`
//! the three XX handshake messages, `0x13` transport:
//! `count (u32) | { nonce (u64) | length (u32) | ciphertext } * count`.

use std::collections::{HashSet, VecDeque};

use snow::{Builder, HandshakeState, StatelessTransportState};

/// The Noise protocol fog-mesh links use.
pub const NOISE_PARAMS: &str = "Noise_XX_25519_ChaChaPoly_BLAKE2s";
/// Envelope kind of a plaintext link message.
pub(crate) const PLAIN: u8 = 0x00;
const MSG1: u8 = 0x10;
const MSG2: u8 = 0x11;
const MSG3: u8 = 0x12;
const TRANSPORT: u8 = 0x13;
const MAX_NOISE: usize = 65_535;
const TAG: usize = 16;
const CHUNK: usize = MAX_NOISE - TAG;
/// Link messages waiting for a session to finish its handshake; the oldest
/// is dropped when full (the routing protocol resends on the next contact).
const MAX_QUEUED: usize = 256;
/// Nonces older than this many behind the newest are refused.
const REPLAY_WINDOW: u64 = 4096;
/// Most ciphertext chunks one envelope may carry.
const MAX_CHUNKS: u32 = 128;

/// Why an envelope was refused.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub(crate) enum LinkError {
    #[error("malformed envelope")]
    Malformed,
    #[error("noise: {0}")]
    Noise(String),
    #[error("no session to decrypt with")]
    NoSession,
    #[error("replayed nonce")]
    Replay,
}

#[allow(clippy::needless_pass_by_value)] // used as `map_err(noise)`
fn noise(error: snow::Error) -> LinkError {
    LinkError::Noise(error.to_string())
}

/// What handling an envelope produced.
#[derive(Debug, Default)]
pub(crate) struct Output {
    /// Envelopes to send to the neighbour, in order.
    pub(crate) send: Vec<Vec<u8>>,
    /// A decrypted link message for the node.
    pub(crate) deliver: Option<Vec<u8>>,
    /// Link messages dropped because the queue was full.
    pub(crate) dropped: u64,
}

/// Both directions of one neighbour's link.
pub(crate) struct SecureLink {
    key: [u8; 32],
    out_handshake: Option<HandshakeState>,
    out: Option<StatelessTransportState>,
    next_nonce: u64,
    in_handshake: Option<HandshakeState>,
    inbound: Option<StatelessTransportState>,
    remote_static: Option<[u8; 32]>,
    newest: u64,
    recent: HashSet<u64>,
    queue: VecDeque<Vec<u8>>,
    stalled_ticks: u32,
}

impl SecureLink {
    /// A link whose Noise static key is `key` (the node's X25519 secret).
    pub(crate) fn new(key: [u8; 32]) -> Self {
        SecureLink {
            key,
            out_handshake: None,
            out: None,
            next_nonce: 0,
            in_handshake: None,
            inbound: None,
            remote_static: None,
            newest: 0,
            recent: HashSet::new(),
            queue: VecDeque::new(),
            stalled_ticks: 0,
        }
    }

    fn builder(&self) -> Result<Builder<'_>, LinkError> {
        let params = NOISE_PARAMS.parse().map_err(noise)?;
        Builder::new(params)
            .local_private_key(&self.key)
            .map_err(noise)
    }

    /// Called about once a second: restarts a handshake that has not
    /// finished after three calls (a lost frame), returning its first message.
    pub(crate) fn tick(&mut self) -> Result<Option<Vec<u8>>, LinkError> {
        if self.out.is_none() && self.out_handshake.is_some() {
            self.stalled_ticks += 1;
            if self.stalled_ticks >= 3 {
                self.stalled_ticks = 0;
                return self.start().map(Some);
            }
        } else {
            self.stalled_ticks = 0;
        }
        Ok(None)
    }

    /// The neighbour's static key, once its session to us is up.
    pub(crate) fn remote_static(&self) -> Option<[u8; 32]> {
        self.remote_static
    }

    /// Starts the session we send on (first handshake message).
    pub(crate) fn start(&mut self) -> Result<Vec<u8>, LinkError> {
        let mut handshake = self.builder()?.build_initiator().map_err(noise)?;
        let mut buf = vec![0u8; 1024];
        let n = handshake.write_message(&[], &mut buf).map_err(noise)?;
        self.out = None;
        self.out_handshake = Some(handshake);
        let mut envelope = vec![MSG1];
        envelope.extend_from_slice(&buf[..n]);
        Ok(envelope)
    }

    /// Sends a link message: encrypted now, or queued until the handshake
    /// finishes (starting it if needed).
    pub(crate) fn send(&mut self, message: Vec<u8>) -> Result<Output, LinkError> {
        let mut output = Output::default();
        if self.out.is_some() {
            output.send.push(self.encrypt(&message)?);
            return Ok(output);
        }
        if self.queue.len() >= MAX_QUEUED {
            self.queue.pop_front();
            output.dropped += 1;
        }
        self.queue.push_back(message);
        if self.out_handshake.is_none() {
            output.send.push(self.start()?);
        }
        Ok(output)
    }

    fn encrypt(&mut self, message: &[u8]) -> Result<Vec<u8>, LinkError> {
        let Some(out) = &self.out else {
            return Err(LinkError::NoSession);
        };
        let chunks: Vec<&[u8]> = if message.is_empty() {
            vec![&[][..]]
        } else {
            message.chunks(CHUNK).collect()
        };
        let mut envelope = vec![TRANSPORT];
        envelope.extend_from_slice(&(chunks.len() as u32).to_be_bytes());
        let mut buf = vec![0u8; MAX_NOISE];
        for chunk in chunks {
            let nonce = self.next_nonce;
            self.next_nonce += 1;
            let n = out.write_message(nonce, chunk, &mut buf).map_err(noise)?;
            envelope.extend_from_slice(&nonce.to_be_bytes());
            envelope.extend_from_slice(&(n as u32).to_be_bytes());
            envelope.extend_from_slice(&buf[..n]);
        }
        Ok(envelope)
    }

    /// Handles one envelope from the neighbour.
    pub(crate) fn receive(&mut self, envelope: &[u8]) -> Result<Output, LinkError> {
        let (&kind, body) = envelope.split_first().ok_or(LinkError::Malformed)?;
        let mut output = Output::default();
        let mut buf = vec![0u8; MAX_NOISE];
        match kind {
            MSG1 => {
                // A new session from the neighbour: if it already had one, it
                // restarted and lost ours too, so ours starts over as well.
                let restarted = self.inbound.is_some() || self.in_handshake.is_some();
                let mut handshake = self.builder()?.build_responder().map_err(noise)?;
                handshake.read_message(body, &mut buf).map_err(noise)?;
                let n = handshake.write_message(&[], &mut buf).map_err(noise)?;
                self.in_handshake = Some(handshake);
                self.inbound = None;
                let mut reply = vec![MSG2];
                reply.extend_from_slice(&buf[..n]);
                output.send.push(reply);
                if restarted || (self.out.is_none() && self.out_handshake.is_none()) {
                    output.send.push(self.start()?);
                }
            }
            MSG2 => {
                let Some(mut handshake) = self.out_handshake.take() else {
                    return Err(LinkError::NoSession);
                };
                handshake.read_message(body, &mut buf).map_err(noise)?;
                let n = handshake.write_message(&[], &mut buf).map_err(noise)?;
                let mut reply = vec![MSG3];
                reply.extend_from_slice(&buf[..n]);
                output.send.push(reply);
                self.out = Some(handshake.into_stateless_transport_mode().map_err(noise)?);
                self.next_nonce = 0;
                while let Some(message) = self.queue.pop_front() {
                    output.send.push(self.encrypt(&message)?);
                }
            }
            MSG3 => {
                let Some(mut handshake) = self.in_handshake.take() else {
                    return Err(LinkError::NoSession);
                };
                handshake.read_message(body, &mut buf).map_err(noise)?;
                let remote = handshake.get_remote_static().ok_or(LinkError::Malformed)?;
                self.remote_static = Some(remote.try_into().map_err(|_| LinkError::Malformed)?);
                self.inbound = Some(handshake.into_stateless_transport_mode().map_err(noise)?);
                self.newest = 0;
                self.recent.clear();
            }
            TRANSPORT => {
                if self.inbound.is_none() {
                    // We lost our side (restart): start over so the neighbour does too.
                    if self.out_handshake.is_none() {
                        output.send.push(self.start()?);
                    }
                    return Ok(output);
                }
                output.deliver = Some(self.decrypt(body)?);
            }
            _ => return Err(LinkError::Malformed),
        }
        Ok(output)
    }

    fn decrypt(&mut self, body: &[u8]) -> Result<Vec<u8>, LinkError> {
        let Some(inbound) = &self.inbound else {
            return Err(LinkError::NoSession);
        };
        let take = |input: &mut &[u8], n: usize| -> Result<Vec<u8>, LinkError> {
            if input.len() < n {
                return Err(LinkError::Malformed);
            }
            let (head, tail) = input.split_at(n);
            *input = tail;
            Ok(head.to_vec())
        };
        let mut input = body;
        let count = u32::from_be_bytes(
            take(&mut input, 4)?
                .try_into()
                .map_err(|_| LinkError::Malformed)?,
        );
        if count == 0 || count > MAX_CHUNKS {
            return Err(LinkError::Malformed);
        }
        let mut nonces = Vec::with_capacity(count as usize);
        let mut message = Vec::new();
        let mut buf = vec![0u8; MAX_NOISE];
        for _ in 0..count {
            let nonce = u64::from_be_bytes(
                take(&mut input, 8)?
                    .try_into()
                    .map_err(|_| LinkError::Malformed)?,
            );
            let len = u32::from_be_bytes(
                take(&mut input, 4)?
                    .try_into()
                    .map_err(|_| LinkError::Malformed)?,
            ) as usize;
            if len > MAX_NOISE {
                return Err(LinkError::Malformed);
            }
            let ciphertext = take(&mut input, len)?;
            if self.recent.contains(&nonce)
                || nonce.saturating_add(REPLAY_WINDOW) <= self.newest
                || nonces.contains(&nonce)
            {
                return Err(LinkError::Replay);
            }
            let n = inbound
                .read_message(nonce, &ciphertext, &mut buf)
                .map_err(noise)?;
            message.extend_from_slice(&buf[..n]);
            nonces.push(nonce);
        }
        if !input.is_empty() {
            return Err(LinkError::Malformed);
        }
        // Only an authentic envelope moves the replay window.
        for nonce in nonces {
            self.recent.insert(nonce);
            self.newest = self.newest.max(nonce);
        }
        let floor = self.newest.saturating_sub(REPLAY_WINDOW);
        if self.recent.len() > 2 * REPLAY_WINDOW as usize {
            self.recent.retain(|n| *n > floor);
        }
        Ok(message)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn pump(from: &mut SecureLink, to: &mut SecureLink, envelopes: Vec<Vec<u8>>) -> Vec<Vec<u8>> {
        let mut delivered = Vec::new();
        let mut pending: VecDeque<(bool, Vec<u8>)> =
            envelopes.into_iter().map(|e| (true, e)).collect();
        while let Some((to_b, envelope)) = pending.pop_front() {
            let (receiver, _) = if to_b {
                (&mut *to, &mut *from)
            } else {
                (&mut *from, &mut *to)
            };
            let output = receiver.receive(&envelope).unwrap();
            if to_b {
                delivered.extend(output.deliver);
            }
            pending.extend(output.send.into_iter().map(|e| (!to_b, e)));
        }
        delivered
    }

    #[test]
    fn handshake_then_messages_both_ways_and_large() {
        let mut a = SecureLink::new([1; 32]);
        let mut b = SecureLink::new([2; 32]);
        let first = a.send(b"hello".to_vec()).unwrap();
        assert_eq!(first.send.len(), 1, "only the handshake goes out");
        let delivered = pump(&mut a, &mut b, first.send);
        assert_eq!(delivered, vec![b"hello".to_vec()]);
        let big: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
        let out = a.send(big.clone()).unwrap();
        assert_eq!(pump(&mut a, &mut b, out.send), vec![big]);
        assert!(b.remote_static().is_some());
        // And b to a.
        let out = b.send(b"back".to_vec()).unwrap();
        let mut got = Vec::new();
        for envelope in out.send {
            let o = a.receive(&envelope).unwrap();
            got.extend(o.deliver);
            for reply in o.send {
                let o = b.receive(&reply).unwrap();
                for e in o.send {
                    got.extend(a.receive(&e).unwrap().deliver);
                }
            }
        }
        assert_eq!(got, vec![b"back".to_vec()]);
    }

    #[test]
    fn replays_and_tampering_are_refused() {
        let mut a = SecureLink::new([1; 32]);
        let mut b = SecureLink::new([2; 32]);
        let start = a.send(b"one".to_vec()).unwrap();
        pump(&mut a, &mut b, start.send);
        let envelope = a.send(b"pay".to_vec()).unwrap().send.remove(0);
        assert_eq!(b.receive(&envelope).unwrap().deliver, Some(b"pay".to_vec()));
        assert_eq!(b.receive(&envelope).unwrap_err(), LinkError::Replay);
        let mut tampered = a.send(b"pay".to_vec()).unwrap().send.remove(0);
        let last = tampered.len() - 1;
        tampered[last] ^= 1;
        assert!(matches!(b.receive(&tampered), Err(LinkError::Noise(_))));
        for garbage in [&[][..], &[0x13], &[0x13, 0, 0, 0, 1, 9], &[0x77, 1, 2]] {
            assert!(b.receive(garbage).is_err());
        }
    }

    #[test]
    fn a_restarted_neighbour_gets_a_fresh_session() {
        let mut a = SecureLink::new([1; 32]);
        let mut b = SecureLink::new([2; 32]);
        let start = a.send(b"x".to_vec()).unwrap();
        pump(&mut a, &mut b, start.send);
        let start = b.send(b"y".to_vec()).unwrap();
        pump(&mut b, &mut a, start.send);
        // a restarts: new state, same key.
        let mut a = SecureLink::new([1; 32]);
        let start = a.send(b"after restart".to_vec()).unwrap();
        assert_eq!(
            pump(&mut a, &mut b, start.send),
            vec![b"after restart".to_vec()]
        );
        // b's own session to a was renewed too.
        let out = b.send(b"to the new a".to_vec()).unwrap();
        let mut got = Vec::new();
        for e in out.send {
            got.extend(a.receive(&e).unwrap().deliver);
        }
        assert_eq!(got, vec![b"to the new a".to_vec()]);
    }
}
