//! Membership and consensus: the Raft node, its durable storage, the peer transport and the
//! replicated state machine.

pub mod auth;
pub mod gossip;
pub mod logger;
pub mod node;
pub mod state;
pub mod storage;
pub mod transport;
