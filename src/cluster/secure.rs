//! The peer transport's cryptography: a Noise handshake (`Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s`,
//! the `snow` crate) keyed with a pre-shared key derived from the cluster key, and the sealing
//! of frames with the session it yields.
//!
//! The client (initiator) sends message 1 (`-> psk, e` + an encrypted payload), the server
//! (responder) answers with message 2 (`<- e, ee` + an encrypted payload). Both payloads can
//! only be produced by a holder of the PSK, so each side authenticates the other; the session
//! keys also depend on both ephemeral keys (forward secrecy: a key stolen later does not open
//! recorded traffic). This file works on bytes only: what the payloads and frames contain is
//! `frames.rs`'s business.
//!
//! During a key rotation a node holds two keys: a responder tries each on message 1, an
//! initiator uses one per attempt (`keyring.rs` keeps them).

use snow::{HandshakeState, TransportState};

/// Protocol version announced in the server's hello; 0 (absent) is the HMAC transport of
/// oneha before the Noise transport.
pub const PROTOCOL_VERSION: u32 = 2;
/// The Noise protocol name.
pub const NOISE_PARAMS: &str = "Noise_NNpsk0_25519_ChaChaPoly_BLAKE2s";
/// Bound into every handshake (Noise prologue): an agent of another protocol version fails
/// the handshake instead of misreading it.
const PROLOGUE: &[u8] = b"oneha peer transport v2";
/// Noise's limit on one message.
const MAX_MESSAGE: usize = 65535;
/// AEAD tag added to every sealed message.
const TAG: usize = 16;
/// Plaintext bytes per sealed chunk.
pub const MAX_CHUNK: usize = MAX_MESSAGE - TAG;
/// Largest handshake payload accepted (the payloads are a few dozen bytes).
const MAX_PAYLOAD: usize = 1024;

/// A 32-byte pre-shared key derived from the cluster key (never printed).
#[derive(Clone, PartialEq, Eq)]
pub struct Psk(pub(crate) [u8; 32]);

impl std::fmt::Debug for Psk {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.write_str("Psk(<redacted>)")
    }
}

/// Why a handshake or a sealed frame failed. The messages never contain key material.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum SecureError {
    /// Message 1 opened under none of our keys, or message 2 not under the key we used.
    #[error("handshake failed: wrong or old cluster key (or not a oneha peer)")]
    WrongKey,
    /// Malformed handshake bytes.
    #[error("malformed handshake message")]
    Malformed,
    /// A sealed chunk did not open: tampered, replayed, reordered or truncated.
    #[error("sealed frame did not open (tampered, replayed or out of order)")]
    Tampered,
    /// More sealed data than allowed in one frame.
    #[error("sealed frame larger than {0} bytes")]
    TooLarge(usize),
    /// snow refused an operation it should not (a bug).
    #[error("noise: {0}")]
    Internal(String),
}

fn builder<'a>(psk: &'a Psk) -> Result<snow::Builder<'a>, SecureError> {
    let params = NOISE_PARAMS
        .parse()
        .map_err(|e: snow::Error| SecureError::Internal(e.to_string()))?;
    snow::Builder::new(params)
        .prologue(PROLOGUE)
        .and_then(|b| b.psk(0, &psk.0))
        .map_err(|e| SecureError::Internal(e.to_string()))
}

/// The initiator between message 1 and message 2.
pub struct Initiator {
    hs: HandshakeState,
}

/// Starts a handshake under `psk` with `payload` (encrypted); returns the state and message 1.
pub fn initiate(psk: &Psk, payload: &[u8]) -> Result<(Initiator, Vec<u8>), SecureError> {
    let mut hs = builder(psk)?
        .build_initiator()
        .map_err(|e| SecureError::Internal(e.to_string()))?;
    let mut msg = vec![0u8; MAX_MESSAGE];
    let n = hs
        .write_message(payload, &mut msg)
        .map_err(|e| SecureError::Internal(e.to_string()))?;
    msg.truncate(n);
    Ok((Initiator { hs }, msg))
}

impl Initiator {
    /// Reads message 2: returns the session and the responder's payload.
    pub fn finish(mut self, msg2: &[u8]) -> Result<(Session, Vec<u8>), SecureError> {
        if msg2.len() > MAX_MESSAGE {
            return Err(SecureError::Malformed);
        }
        let mut payload = vec![0u8; MAX_MESSAGE];
        let n = self
            .hs
            .read_message(msg2, &mut payload)
            .map_err(|_| SecureError::WrongKey)?;
        payload.truncate(n);
        let ts = self
            .hs
            .into_transport_mode()
            .map_err(|e| SecureError::Internal(e.to_string()))?;
        Ok((Session { ts }, payload))
    }
}

/// The responder after message 1 opened.
pub struct Responder {
    hs: HandshakeState,
    /// Which of the offered keys opened it (0: current, 1: next).
    pub key_index: usize,
}

/// Reads message 1 under each key in turn; returns the responder and the initiator's payload.
pub fn respond(psks: &[Psk], msg1: &[u8]) -> Result<(Responder, Vec<u8>), SecureError> {
    if msg1.len() > MAX_PAYLOAD + 64 || msg1.len() < 32 {
        return Err(SecureError::Malformed);
    }
    for (key_index, psk) in psks.iter().enumerate() {
        // A failed read leaves the state unusable: a fresh one per key.
        let mut hs = builder(psk)?
            .build_responder()
            .map_err(|e| SecureError::Internal(e.to_string()))?;
        let mut payload = vec![0u8; MAX_MESSAGE];
        if let Ok(n) = hs.read_message(msg1, &mut payload) {
            payload.truncate(n);
            return Ok((Responder { hs, key_index }, payload));
        }
    }
    Err(SecureError::WrongKey)
}

impl Responder {
    /// Writes message 2 with `payload` (encrypted); returns the session and message 2.
    pub fn reply(mut self, payload: &[u8]) -> Result<(Session, Vec<u8>), SecureError> {
        let mut msg = vec![0u8; MAX_MESSAGE];
        let n = self
            .hs
            .write_message(payload, &mut msg)
            .map_err(|e| SecureError::Internal(e.to_string()))?;
        msg.truncate(n);
        let ts = self
            .hs
            .into_transport_mode()
            .map_err(|e| SecureError::Internal(e.to_string()))?;
        Ok((Session { ts }, msg))
    }
}

/// An established session: seals what this side sends, opens what the other side sends.
/// Noise's per-direction nonces make every sealed chunk usable once, in order.
pub struct Session {
    ts: TransportState,
}

impl Session {
    /// Seals `plain` as one or more chunks of at most Noise's message size.
    pub fn seal(&mut self, plain: &[u8]) -> Result<Vec<Vec<u8>>, SecureError> {
        let mut out = Vec::with_capacity(plain.len() / MAX_CHUNK + 1);
        // An empty plaintext still yields one chunk (its tag authenticates the frame).
        let mut pieces: Vec<&[u8]> = plain.chunks(MAX_CHUNK).collect();
        if pieces.is_empty() {
            pieces.push(&[]);
        }
        for piece in pieces {
            let mut buf = vec![0u8; piece.len() + TAG];
            let n = self
                .ts
                .write_message(piece, &mut buf)
                .map_err(|e| SecureError::Internal(e.to_string()))?;
            buf.truncate(n);
            out.push(buf);
        }
        Ok(out)
    }

    /// Opens the chunks of one frame and joins them; refuses more than `max` bytes.
    pub fn open(&mut self, chunks: &[Vec<u8>], max: usize) -> Result<Vec<u8>, SecureError> {
        let total: usize = chunks.iter().map(Vec::len).sum();
        if total > max + chunks.len() * TAG {
            return Err(SecureError::TooLarge(max));
        }
        if chunks.is_empty() {
            return Err(SecureError::Tampered);
        }
        // Opened in place at the end of `plain`: no per-frame scratch buffer.
        let mut plain = Vec::with_capacity(total);
        for c in chunks {
            if c.len() < TAG || c.len() > MAX_MESSAGE {
                return Err(SecureError::Tampered);
            }
            let at = plain.len();
            plain.resize(at + c.len(), 0);
            let n = self
                .ts
                .read_message(c, &mut plain[at..])
                .map_err(|_| SecureError::Tampered)?;
            plain.truncate(at + n);
        }
        Ok(plain)
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn psk(b: u8) -> Psk {
        Psk([b; 32])
    }

    fn pair(client: &Psk, server: &[Psk]) -> Result<(Session, Session, usize), SecureError> {
        let (init, m1) = initiate(client, b"hello from client")?;
        let (resp, p1) = respond(server, &m1)?;
        assert_eq!(p1, b"hello from client");
        let key_index = resp.key_index;
        let (s_sess, m2) = resp.reply(b"hello from server")?;
        let (c_sess, p2) = init.finish(&m2)?;
        assert_eq!(p2, b"hello from server");
        Ok((c_sess, s_sess, key_index))
    }

    #[test]
    fn handshake_and_frames_both_ways() {
        let (mut c, mut s, idx) = pair(&psk(1), &[psk(1)]).expect("handshake");
        assert_eq!(idx, 0);
        let sealed = c.seal(b"raft and gossip").expect("seal");
        assert!(
            !sealed[0].windows(4).any(|w| w == b"raft"),
            "plaintext visible"
        );
        assert_eq!(s.open(&sealed, 1 << 20).expect("open"), b"raft and gossip");
        let back = s.seal(b"error text").expect("seal");
        assert_eq!(c.open(&back, 1 << 20).expect("open"), b"error text");
        // An empty frame is one authenticated chunk.
        let empty = c.seal(b"").expect("seal");
        assert_eq!(empty.len(), 1);
        assert_eq!(s.open(&empty, 10).expect("open"), b"");
    }

    #[test]
    fn wrong_key_is_refused_on_both_sides() {
        let (_, m1) = initiate(&psk(1), b"x").expect("initiate");
        assert_eq!(
            respond(&[psk(2)], &m1).err(),
            Some(SecureError::WrongKey),
            "server without the client's key"
        );
        // A responder that somehow answers under another key: the initiator refuses it.
        let (init, m1) = initiate(&psk(1), b"x").expect("initiate");
        let (_, forged_m1) = initiate(&psk(3), b"x").expect("initiate");
        let (resp, _) = respond(&[psk(3)], &forged_m1).expect("respond");
        let (_, m2) = resp.reply(b"y").expect("reply");
        assert_eq!(init.finish(&m2).err(), Some(SecureError::WrongKey));
        drop(m1);
        assert_eq!(
            respond(&[psk(1)], b"garbage").err(),
            Some(SecureError::Malformed)
        );
        assert_eq!(
            respond(&[psk(1)], &[0u8; 80]).err(),
            Some(SecureError::WrongKey)
        );
    }

    #[test]
    fn either_key_is_accepted_during_rotation() {
        let (old, new) = (psk(1), psk(2));
        // Responder with [current, next] accepts initiators of either key.
        assert_eq!(pair(&old, &[old.clone(), new.clone()]).expect("old").2, 0);
        assert_eq!(pair(&new, &[old.clone(), new.clone()]).expect("new").2, 1);
        // After the swap ([new, old]) too; a third key is refused.
        assert_eq!(pair(&old, &[new.clone(), old.clone()]).expect("old").2, 1);
        assert!(pair(&psk(9), &[new, old]).is_err());
    }

    #[test]
    fn tampered_replayed_and_reordered_chunks_are_refused() {
        let (mut c, mut s, _) = pair(&psk(1), &[psk(1)]).expect("handshake");
        let mut f1 = c.seal(b"frame one").expect("seal");
        f1[0][3] ^= 1;
        assert_eq!(s.open(&f1, 100).err(), Some(SecureError::Tampered));

        let (mut c, mut s, _) = pair(&psk(1), &[psk(1)]).expect("handshake");
        let f1 = c.seal(b"frame one").expect("seal");
        let f2 = c.seal(b"frame two").expect("seal");
        assert_eq!(
            s.open(&f2, 100).err(),
            Some(SecureError::Tampered),
            "reorder"
        );
        let (mut c, mut s, _) = pair(&psk(1), &[psk(1)]).expect("handshake");
        let f1b = c.seal(b"frame one").expect("seal");
        assert_eq!(s.open(&f1b, 100).expect("open"), b"frame one");
        assert_eq!(
            s.open(&f1b, 100).err(),
            Some(SecureError::Tampered),
            "replay"
        );
        // A frame from another session does not open in this one.
        assert_eq!(s.open(&f1, 100).err(), Some(SecureError::Tampered));
        assert_eq!(s.open(&[], 100).err(), Some(SecureError::Tampered));
    }

    #[test]
    fn large_frames_are_chunked_and_round_trip() {
        let (mut c, mut s, _) = pair(&psk(1), &[psk(1)]).expect("handshake");
        let plain: Vec<u8> = (0..200_000u32).map(|i| (i % 251) as u8).collect();
        let sealed = c.seal(&plain).expect("seal");
        assert_eq!(sealed.len(), 200_000usize.div_ceil(MAX_CHUNK));
        assert!(sealed.iter().all(|c| c.len() <= MAX_MESSAGE));
        assert_eq!(s.open(&sealed, 1 << 20).expect("open"), plain);
        // Exactly one chunk's worth, and one byte more.
        for len in [MAX_CHUNK, MAX_CHUNK + 1] {
            let sealed = c.seal(&vec![7u8; len]).expect("seal");
            assert_eq!(s.open(&sealed, 1 << 20).expect("open").len(), len);
        }
        let sealed = c.seal(&plain).expect("seal");
        assert_eq!(
            s.open(&sealed, 1000).err(),
            Some(SecureError::TooLarge(1000))
        );
    }
}
