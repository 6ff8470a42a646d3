//! Membership and consensus: the Raft node, its durable storage, the peer transport and the
//! replicated state machine.

pub mod auth;
pub mod frames;
pub mod gossip;
pub mod keyring;
pub mod limits;
pub mod logger;
pub mod node;
pub mod secure;
pub mod state;
pub mod storage;
pub mod transport;
