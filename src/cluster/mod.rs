//! Membership and consensus: the Raft node, its durable storage, the peer transport and the
//! replicated state machine.

pub mod state;
pub mod storage;
