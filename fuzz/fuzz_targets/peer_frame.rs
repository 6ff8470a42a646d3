//! Peer frames: the bytes a peer connection carries, decoded as the agent decodes them.
//!
//! tonic decodes a `ClientFrame` (prost) before anything is authenticated, so that decode
//! faces anyone who can reach the peer port; the raft messages inside are decoded by
//! rust-protobuf 2 (raft 0.7's codec) after the frame's MAC is checked. Both are fed the
//! input here, and the raft decoder also each `raft` field of a frame that decodes. The MAC
//! check itself is HMAC-SHA256 (the `hmac` crate): random bytes never get past it, so
//! fuzzing it adds nothing.
#![no_main]

use libfuzzer_sys::fuzz_target;
use prost::Message as _;
use protobuf::Message as _;
use raft_proto::eraftpb::Message as RaftMessage;

#[allow(dead_code, missing_docs, clippy::all)]
mod pb {
    include!(concat!(env!("OUT_DIR"), "/oneha.peer.v1.rs"));
}

fuzz_target!(|data: &[u8]| {
    if let Ok(frame) = pb::ClientFrame::decode(data) {
        for raft in &frame.raft {
            let _ = RaftMessage::parse_from_bytes(raft);
        }
    }
    let _ = pb::ServerFrame::decode(data);
    let _ = RaftMessage::parse_from_bytes(data);
});
