//! What the rest of the agent sees of the Raft thread: the [`NodeHandle`] it talks through,
//! the [`RaftView`] the thread publishes, and the [`PeerTable`] of member liveness and gossip
//! that the transport updates without waking the thread.

use std::collections::{BTreeMap, HashMap};
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc::{SyncSender, TrySendError};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{oneshot, watch};

use super::{Event, LEADER_CHANGED};
use crate::cluster::gossip::Gossip;
use crate::cluster::state::{Applied, Command, NodeId, ReplicatedState};
use crate::cluster::transport::Inbound;

/// Liveness and gossip of the other members, updated by the transport as frames arrive
/// (keep-alives included) without waking the Raft thread. A frame on any link refreshes the
/// member's contact, so it is the most recent contact over all links (per-link times are in
/// the transport's `LinkTable`): a member is lost only when every link is silent.
#[derive(Default)]
pub struct PeerTable {
    contact: HashMap<NodeId, Instant>,
    gossip: HashMap<NodeId, Gossip>,
    raw: HashMap<NodeId, Vec<u8>>,
}

impl PeerTable {
    /// Records a frame from `from` (gossip is parsed only when it changed).
    pub fn heard(&mut self, from: NodeId, gossip: &[u8]) {
        self.contact.insert(from, Instant::now());
        if self.raw.get(&from).is_some_and(|g| g == gossip) {
            return;
        }
        if let Some(g) = Gossip::decode(gossip) {
            self.gossip.insert(from, g);
            self.raw.insert(from, gossip.to_vec());
        }
    }
}

/// A member as seen from this node.
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct MemberView {
    /// Node id.
    pub id: NodeId,
    /// Milliseconds since this node last heard from it (None: never since start).
    pub last_contact_ms: Option<u64>,
    /// Its last gossip (its own view of itself).
    pub gossip: Option<Gossip>,
    /// Leader only: the highest log index known to be on it.
    pub matched: Option<u64>,
}

/// This node's role in Raft, as the view reports it.
#[derive(Debug, Clone, Copy, Serialize, PartialEq, Eq)]
#[serde(rename_all = "kebab-case")]
pub enum RaftRole {
    /// Leads the current term.
    Leader,
    /// Follows a leader (or waits for one).
    Follower,
    /// Campaigns for a term.
    Candidate,
    /// Probes whether a campaign could win (pre-vote).
    PreCandidate,
}

impl RaftRole {
    /// The name shown in status and metrics: `leader`, `follower`, `candidate`,
    /// `pre-candidate`.
    pub fn as_str(self) -> &'static str {
        match self {
            RaftRole::Leader => "leader",
            RaftRole::Follower => "follower",
            RaftRole::Candidate => "candidate",
            RaftRole::PreCandidate => "pre-candidate",
        }
    }
}

/// What the Raft thread publishes when Raft state changes (not on every tick).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RaftView {
    /// This node.
    pub id: NodeId,
    /// This node's Raft role.
    pub role: RaftRole,
    /// Current term.
    pub term: u64,
    /// Known leader.
    pub leader: Option<NodeId>,
    /// Commit index.
    pub commit: u64,
    /// Last index in the log.
    pub last_index: u64,
    /// Entries kept in the log (bounded by compaction).
    pub log_entries: usize,
    /// Leader only: the highest log index known to be on each follower.
    pub matched: BTreeMap<NodeId, u64>,
    /// The replicated state as applied here.
    pub state: ReplicatedState,
    /// Set when the node stopped on an unrecoverable error.
    pub fatal: Option<String>,
}

impl RaftView {
    /// The view before the thread's first turn.
    pub(super) fn placeholder(id: NodeId) -> RaftView {
        RaftView {
            id,
            role: RaftRole::Follower,
            term: 0,
            leader: None,
            commit: 0,
            last_index: 0,
            log_entries: 0,
            matched: BTreeMap::new(),
            state: ReplicatedState::default(),
            fatal: None,
        }
    }
}

/// Handle to the running Raft thread.
#[derive(Clone)]
pub struct NodeHandle {
    pub(super) tx: SyncSender<Event>,
    pub(super) turns: Arc<AtomicU64>,
    pub(super) view: watch::Receiver<Arc<RaftView>>,
    pub(super) peers: Arc<std::sync::Mutex<PeerTable>>,
    pub(super) me: NodeId,
    pub(super) members: Vec<NodeId>,
}

impl NodeHandle {
    /// Sends an event; refuses when the queue is full or the thread is gone.
    pub fn send(&self, ev: Event) -> Result<(), String> {
        self.tx.try_send(ev).map_err(|e| match e {
            TrySendError::Full(_) => "the Raft loop is overloaded; retry".to_string(),
            TrySendError::Disconnected(_) => "the Raft loop has stopped".to_string(),
        })
    }

    /// Proposes a command and waits until it is applied on this node.
    pub async fn propose(&self, cmd: Command, timeout: Duration) -> Result<Applied, String> {
        let (reply, rx) = oneshot::channel();
        self.send(Event::Propose { cmd, reply })?;
        match tokio::time::timeout(timeout, rx).await {
            Ok(Ok(r)) => r,
            Ok(Err(_)) => Err("the Raft loop dropped the proposal".to_string()),
            Err(_) => Err(format!(
                "not committed within {timeout:?}: is a quorum of nodes up and connected?"
            )),
        }
    }

    /// Proposes an idempotent command, retrying through leader changes until `timeout`.
    pub async fn propose_idempotent(
        &self,
        cmd: Command,
        timeout: Duration,
    ) -> Result<Applied, String> {
        let deadline = tokio::time::Instant::now() + timeout;
        loop {
            let left = deadline.saturating_duration_since(tokio::time::Instant::now());
            match self.propose(cmd.clone(), left).await {
                Err(e)
                    if (e.starts_with(LEADER_CHANGED) || e.starts_with("no leader"))
                        && tokio::time::Instant::now() < deadline =>
                {
                    tokio::time::sleep(Duration::from_millis(50)).await;
                }
                r => return r,
            }
        }
    }

    /// How many turns the Raft thread has made (it turns at least every tick); the systemd
    /// watchdog is fed only while this advances.
    pub fn turns(&self) -> u64 {
        self.turns.load(Ordering::Relaxed)
    }

    /// The latest published view.
    pub fn view(&self) -> Arc<RaftView> {
        self.view.borrow().clone()
    }

    /// A receiver that wakes on every new view.
    pub fn watch(&self) -> watch::Receiver<Arc<RaftView>> {
        self.view.clone()
    }

    /// A sender for inbound frames (the transport's delivery callback). Keep-alives only
    /// update the peer table; frames with raft messages go to the Raft thread.
    pub fn inbound_sink(&self) -> Arc<dyn Fn(Inbound) + Send + Sync> {
        let tx = self.tx.clone();
        let peers = self.peers.clone();
        Arc::new(move |m: Inbound| {
            if let Ok(mut t) = peers.lock() {
                t.heard(m.from, &m.gossip);
            }
            if !m.msgs.is_empty() {
                let _ = tx.try_send(Event::Inbound(m));
            }
        })
    }

    /// Every other configured member: last contact and gossip, now.
    pub fn members(&self) -> Vec<MemberView> {
        let now = Instant::now();
        let view = self.view();
        let Ok(t) = self.peers.lock() else {
            return Vec::new();
        };
        self.members
            .iter()
            .filter(|&&id| id != self.me)
            .map(|&id| MemberView {
                id,
                last_contact_ms: t
                    .contact
                    .get(&id)
                    .map(|at| now.duration_since(*at).as_millis() as u64),
                gossip: t.gossip.get(&id).cloned(),
                matched: view.matched.get(&id).copied(),
            })
            .collect()
    }

    /// True once this node has heard from every other member since it started (S6).
    pub fn seen_all(&self) -> bool {
        let Ok(t) = self.peers.lock() else {
            return false;
        };
        self.members
            .iter()
            .all(|id| *id == self.me || t.contact.contains_key(id))
    }
}
