//! Peer frames: the bytes a peer connection carries, decoded as the agent decodes them.
//!
//! Before anything is authenticated, tonic decodes a `ClientFrame` (prost) and the server
//! answers its Noise handshake (`frames::accept`: Noise NNpsk0 message 1 with the PSK derived
//! from the cluster key, then the `Hello` inside); both face anyone who can reach the peer
//! port, so both get the input here (as a frame, and as the handshake bytes of a frame).
//! After the handshake, frames are `Content` (prost) holding raft messages decoded by
//! rust-protobuf 2 (raft 0.7's codec) and gossip (JSON): reachable only by a key holder, and
//! fed too (the sealed bytes themselves are AEAD-checked by snow: random bytes never get
//! through, so fuzzing the cipher adds nothing). The version-1 frame fields (`mac`) are
//! refused without being checked.
#![no_main]

use std::sync::LazyLock;

use libfuzzer_sys::fuzz_target;
use oneha::cluster::auth::ClusterKey;
use oneha::cluster::frames;
use oneha::cluster::gossip::Gossip;
use oneha::cluster::keyring::derive_psk;
use oneha::cluster::secure::Psk;
use oneha::cluster::transport::raw::{ClientFrame, Content, Hello, ServerFrame};
use prost::Message as _;
use protobuf::Message as _;
use raft_proto::eraftpb::Message as RaftMessage;

/// The PSK the handshake expects, derived once (not per input: the fuzzer's hot loop).
static PSKS: LazyLock<[Psk; 1]> = LazyLock::new(|| {
    [derive_psk(
        &ClusterKey::from_bytes(b"fuzz cluster key".to_vec()),
        "fuzz",
    )]
});

fuzz_target!(|data: &[u8]| {
    let psks = &*PSKS;
    if let Ok(frame) = ClientFrame::decode(data) {
        let _ = frames::accept("fuzz", 1, &[1, 2, 3], psks, &frame);
    }
    // The same bytes as the handshake of a first frame (the common case of a scan).
    let first = ClientFrame {
        handshake: data.to_vec(),
        ..Default::default()
    };
    let _ = frames::accept("fuzz", 1, &[1, 2, 3], psks, &first);
    let _ = ServerFrame::decode(data);
    let _ = Hello::decode(data);
    if let Ok(content) = Content::decode(data) {
        for raft in &content.raft {
            let _ = RaftMessage::parse_from_bytes(raft);
        }
        let _ = Gossip::decode(&content.gossip);
    }
    let _ = RaftMessage::parse_from_bytes(data);
});
