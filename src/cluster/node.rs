//! The Raft node: one `RawNode` driven by a dedicated thread.
//!
//! Each turn of the loop handles events (peer messages, proposals, operator requests),
//! ticks on time, and then processes a `Ready` strictly in the order
//! **persist -> send -> apply -> advance** (safety rule S7: nothing is sent that depends on
//! state not yet on disk). A storage error, or a snapshot from the leader that this node
//! cannot read, stops the node: continuing could lose committed state, so the node stops
//! turning and the watchdog has systemd restart the agent.
//!
//! The thread publishes a [`RaftView`] after every turn that changed something; readers
//! (the admin API, the policy loop) never block the Raft loop.
//!
//! - `handle.rs`: the [`NodeHandle`], the published [`RaftView`] and the [`PeerTable`];
//! - `ready.rs`: the loop and the `Ready` processing;
//! - `deviations.rs`: every place where this node departs from plain Raft, and why.

// Protobuf types are built field by field, as in raft-rs's own examples.
#![allow(clippy::field_reassign_with_default)]

mod deviations;
mod handle;
mod ready;
#[cfg(test)]
mod tests;

use std::collections::HashMap;
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::AtomicU64;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use raft::RawNode;
use tokio::sync::{oneshot, watch};

pub use handle::{MemberView, NodeHandle, PeerTable, RaftRole, RaftView};

use super::logger::raft_logger;
use super::state::{Applied, Command, NodeId, ReplicatedState};
use super::storage::{DiskStorage, StoreError};
use super::transport::{Inbound, PeerSender};

/// Events the Raft thread handles, in arrival order.
pub enum Event {
    /// A frame from a peer.
    Inbound(Inbound),
    /// Replicate a command; the reply comes when it is applied here (or fails).
    Propose {
        /// The command.
        cmd: Command,
        /// Where the outcome goes.
        reply: oneshot::Sender<Result<Applied, String>>,
    },
    /// Add a configured node back as a voter (two-node rejoin).
    AddVoter(NodeId),
    /// Two-node mode only, after a confirmed fence of every other voter: continue as the
    /// single voter (rgmanager's two_node/expected_votes=1).
    ForceSingleVoter {
        /// Outcome.
        reply: oneshot::Sender<Result<(), String>>,
    },
    /// Hand leadership to another node (graceful shutdown).
    TransferLeader(NodeId),
    /// Stop the thread.
    Shutdown,
}

/// Settings the Raft thread needs.
pub struct NodeSettings {
    /// This node.
    pub me: NodeId,
    /// Every configured member (including this one).
    pub members: Vec<NodeId>,
    /// Raft directory under the data dir.
    pub dir: PathBuf,
    /// Tick length.
    pub tick: Duration,
    /// Heartbeat, in ticks.
    pub heartbeat_ticks: usize,
    /// Election timeout, in ticks.
    pub election_ticks: usize,
    /// Group enabled when the cluster is first created.
    pub autostart: bool,
    /// Two-node mode, first start since boot: a single-voter configuration forced after a
    /// fence in an earlier boot is undone (both voters again), so a rebooted survivor never
    /// acts alone on an old confirmation and two single-voter histories cannot fork.
    pub restore_voters: bool,
    /// Two-node mode: forget the persisted commit index at start (Raft's commit index is
    /// volatile state; persisting it is an optimisation) and re-learn it from the leader. A
    /// node whose log holds entries it committed alone, before its peer fenced it and went on
    /// with its own history, then takes the survivor's history instead of refusing it
    /// forever as "conflicting with committed entries".
    pub relearn_commit: bool,
}

/// Start of the error text for proposals caught in a leader change.
pub const LEADER_CHANGED: &str = "leadership changed while committing";

/// Queue length of the Raft thread's event channel.
pub const EVENT_QUEUE: usize = 4096;
/// Snapshot and compact after this many applied entries.
const COMPACT_EVERY: u64 = 1000;
/// Entries kept behind a compaction for slow followers.
const COMPACT_KEEP: u64 = 200;

/// Wall clock in ms since the Unix epoch (for command timestamps only).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

/// The Raft thread's state.
struct Node {
    s: NodeSettings,
    raw: RawNode<DiskStorage>,
    state: ReplicatedState,
    peers: HashMap<NodeId, PeerSender>,
    /// Proposals waiting to be applied, with the term they were proposed in.
    pending: HashMap<u64, (oneshot::Sender<Result<Applied, String>>, u64)>,
    next_request: u64,
    view_tx: watch::Sender<Arc<RaftView>>,
    logger: slog::Logger,
    turns: Arc<AtomicU64>,
    /// See [`deviations::no_vote_until`].
    no_vote_until: Option<Instant>,
    /// A fatal error met while handling an event; the loop stops on it.
    failed: Option<ready::Fatal>,
}

/// Opens the storage, restores the state machine and starts the Raft thread.
pub fn start(
    s: NodeSettings,
    peers: HashMap<NodeId, PeerSender>,
) -> Result<(NodeHandle, std::thread::JoinHandle<()>), String> {
    let mut node = Node::open(s, peers)?;
    let (tx, rx) = std::sync::mpsc::sync_channel(EVENT_QUEUE);
    let view_rx = node.view_tx.subscribe();
    node.publish(None);
    let handle = NodeHandle {
        tx,
        turns: node.turns.clone(),
        view: view_rx,
        peers: Arc::new(std::sync::Mutex::new(PeerTable::default())),
        me: node.s.me,
        members: node.s.members.clone(),
    };
    let thread = std::thread::Builder::new()
        .name("raft".into())
        .spawn(move || node.run(rx))
        .map_err(|e| format!("cannot start the Raft thread: {e}"))?;
    Ok((handle, thread))
}

impl Node {
    /// Opens the storage (applying the start-up deviations the settings ask for) and the
    /// Raft node on it.
    fn open(s: NodeSettings, peers: HashMap<NodeId, PeerSender>) -> Result<Node, String> {
        let logger = raft_logger();
        let mut store = DiskStorage::open(&s.dir, &s.members).map_err(|e| e.to_string())?;
        if s.restore_voters {
            deviations::restore_voters(&mut store, &s).map_err(|e| e.to_string())?;
        }
        if s.relearn_commit {
            deviations::relearn_commit(&mut store).map_err(|e| e.to_string())?;
        }
        let no_vote_until = deviations::no_vote_until(&store, &s);
        let (raw, state) = open_raw(&s, store, &logger).map_err(|e| e.to_string())?;
        Ok(Node {
            no_vote_until,
            raw,
            state,
            peers,
            pending: HashMap::new(),
            next_request: 1,
            view_tx: watch::channel(Arc::new(RaftView::placeholder(s.me))).0,
            logger,
            turns: Arc::default(),
            failed: None,
            s,
        })
    }
}

#[derive(Debug, thiserror::Error)]
enum OpenError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Other(String),
}

/// The Raft node over `store`, and the state machine restored from its snapshot.
fn open_raw(
    s: &NodeSettings,
    store: DiskStorage,
    logger: &slog::Logger,
) -> Result<(RawNode<DiskStorage>, ReplicatedState), OpenError> {
    let snap = store.last_snapshot();
    let mut state = if snap.data.is_empty() {
        ReplicatedState::new(s.autostart, store.conf_state().voters.clone())
    } else {
        ReplicatedState::from_snapshot(&snap.data).map_err(OpenError::Other)?
    };
    state.applied = state.applied.max(snap.get_metadata().index);
    // The stored configuration is authoritative for who votes.
    state.voters = store.conf_state().voters.clone();
    let cfg = raft::Config {
        id: s.me,
        election_tick: s.election_ticks,
        heartbeat_tick: s.heartbeat_ticks,
        applied: state.applied,
        check_quorum: true,
        pre_vote: true,
        max_size_per_msg: 1 << 20,
        max_inflight_msgs: 256,
        ..Default::default()
    };
    cfg.validate()
        .map_err(|e| OpenError::Other(format!("raft config: {e}")))?;
    let raw = RawNode::new(&cfg, store, logger)
        .map_err(|e| OpenError::Other(format!("cannot start raft: {e}")))?;
    Ok((raw, state))
}
