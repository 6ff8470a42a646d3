//! The Raft node: one `RawNode` driven by a dedicated thread.
//!
//! Each turn of the loop handles events (peer messages, proposals, operator requests),
//! ticks on time, and then processes a `Ready` strictly in the order
//! **persist -> send -> apply -> advance** (safety rule S7: nothing is sent that depends on
//! state not yet on disk). A storage error stops the node: continuing without durability
//! could lose committed state, so the agent exits and systemd restarts it.
//!
//! The thread publishes a [`RaftView`] after every turn that changed something; readers
//! (the admin API, the policy loop) never block the Raft loop.

// Protobuf types are built field by field, as in raft-rs's own examples.
#![allow(clippy::field_reassign_with_default)]

use std::collections::{BTreeMap, HashMap};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::mpsc::{Receiver, RecvTimeoutError, SyncSender, TrySendError};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use protobuf::Message as _;
use raft::eraftpb::{ConfChange, ConfChangeType, ConfChangeV2, EntryType, Message as RaftMessage};
use raft::{RawNode, StateRole};
use serde::Serialize;
use tokio::sync::{oneshot, watch};

use super::logger::raft_logger;
use super::state::{Applied, Command, NodeId, Proposal, ReplicatedState};
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

/// Liveness and gossip of the other members, updated by the transport as frames arrive
/// (keep-alives included) without waking the Raft thread.
#[derive(Default)]
pub struct PeerTable {
    contact: HashMap<NodeId, Instant>,
    gossip: HashMap<NodeId, serde_json::Value>,
    raw: HashMap<NodeId, Vec<u8>>,
}

impl PeerTable {
    /// Records a frame from `from` (gossip is parsed only when it changed).
    pub fn heard(&mut self, from: NodeId, gossip: &[u8]) {
        self.contact.insert(from, Instant::now());
        if self.raw.get(&from).is_some_and(|g| g == gossip) {
            return;
        }
        if let Ok(v) = serde_json::from_slice(gossip) {
            self.gossip.insert(from, v);
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
    /// Its last gossip (its own view of itself), as JSON.
    pub gossip: Option<serde_json::Value>,
    /// Leader only: the highest log index known to be on it.
    pub matched: Option<u64>,
}

/// What the Raft thread publishes when Raft state changes (not on every tick).
#[derive(Debug, Clone, Serialize, PartialEq)]
pub struct RaftView {
    /// This node.
    pub id: NodeId,
    /// `leader`, `follower`, `candidate`, `pre-candidate`.
    pub role: String,
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

/// Handle to the running Raft thread.
#[derive(Clone)]
pub struct NodeHandle {
    tx: SyncSender<Event>,
    turns: Arc<std::sync::atomic::AtomicU64>,
    view: watch::Receiver<Arc<RaftView>>,
    peers: Arc<std::sync::Mutex<PeerTable>>,
    me: NodeId,
    members: Vec<NodeId>,
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
        self.turns.load(std::sync::atomic::Ordering::Relaxed)
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

/// Wall clock in ms since the Unix epoch (for command timestamps only).
pub fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map(|d| d.as_millis() as u64)
        .unwrap_or(0)
}

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
    turns: Arc<std::sync::atomic::AtomicU64>,
    /// A node that starts with no Raft state on disk (new, or its data directory was lost)
    /// does not remember its votes: it refuses vote requests until any election it may have
    /// voted in is over (twice the maximum election timeout), so it never votes twice in a
    /// term.
    no_vote_until: Option<Instant>,
}

/// Opens the storage, restores the state machine and starts the Raft thread.
pub fn start(
    s: NodeSettings,
    peers: HashMap<NodeId, PeerSender>,
) -> Result<(NodeHandle, std::thread::JoinHandle<()>), String> {
    let logger = raft_logger();
    let mut store = DiskStorage::open(&s.dir, &s.members).map_err(|e| e.to_string())?;
    if s.restore_voters {
        restore_voters(&mut store, &s).map_err(|e| e.to_string())?;
    }
    if s.relearn_commit {
        relearn_commit(&mut store).map_err(|e| e.to_string())?;
    }
    let (raw, state) = open_raw(&s, store, &logger).map_err(|e| e.to_string())?;
    let (tx, rx) = std::sync::mpsc::sync_channel(EVENT_QUEUE);
    let no_vote_until = raw
        .store()
        .was_fresh()
        .then(|| Instant::now() + s.tick * (4 * s.election_ticks as u32 + 1));
    let mut node = Node {
        no_vote_until,
        raw,
        state,
        peers,
        pending: HashMap::new(),
        next_request: 1,
        view_tx: watch::channel(Arc::new(placeholder_view(s.me))).0,
        logger,
        turns: Arc::default(),
        s,
    };
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

fn placeholder_view(id: NodeId) -> RaftView {
    RaftView {
        id,
        role: "follower".into(),
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

#[derive(Debug, thiserror::Error)]
enum OpenError {
    #[error(transparent)]
    Store(#[from] StoreError),
    #[error("{0}")]
    Other(String),
}

/// Puts every configured member back as a voter if the stored configuration is this node
/// alone (see [`NodeSettings::restore_voters`]).
fn restore_voters(store: &mut DiskStorage, s: &NodeSettings) -> Result<(), StoreError> {
    if store.conf_state().voters == [s.me] && s.members.len() > 1 {
        let mut cs = store.conf_state().clone();
        cs.voters = s.members.clone();
        store.set_conf_state(&cs)?;
        tracing::warn!(
            "two-node: this node was the single voter before it restarted; back to both \
             voters: it acts again only once it has seen its peer (wait-for-all)"
        );
    }
    Ok(())
}

/// Lowers the persisted commit index to the last snapshot (see
/// [`NodeSettings::relearn_commit`]); the state machine is then rebuilt as entries commit.
fn relearn_commit(store: &mut DiskStorage) -> Result<(), StoreError> {
    let floor = store.last_snapshot().get_metadata().index;
    if store.hard_state().commit > floor {
        store.set_commit(floor)?;
    }
    Ok(())
}

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

impl Node {
    fn run(mut self, rx: Receiver<Event>) {
        let mut next_tick = Instant::now() + self.s.tick;
        loop {
            self.turns
                .fetch_add(1, std::sync::atomic::Ordering::Relaxed);
            let wait = next_tick.saturating_duration_since(Instant::now());
            let mut changed = false;
            match rx.recv_timeout(wait) {
                Ok(Event::Shutdown) | Err(RecvTimeoutError::Disconnected) => break,
                Ok(ev) => {
                    changed |= self.handle(ev);
                    // Take what else is queued, bounded so ticks are not starved.
                    for _ in 0..256 {
                        match rx.try_recv() {
                            Ok(Event::Shutdown) => return self.finish(),
                            Ok(ev) => changed |= self.handle(ev),
                            Err(_) => break,
                        }
                    }
                }
                Err(RecvTimeoutError::Timeout) => {}
            }
            let now = Instant::now();
            if now >= next_tick {
                changed |= self.raw.tick();
                next_tick += self.s.tick;
                if next_tick < now {
                    // We fell far behind (suspended?): do not tick in a burst.
                    next_tick = now + self.s.tick;
                }
            }
            match self.on_ready() {
                Ok(did) => changed |= did,
                Err(e) => {
                    tracing::error!("raft storage failed, stopping this node: {e}");
                    self.publish(Some(e.to_string()));
                    return;
                }
            }
            if changed {
                self.publish(None);
            }
        }
        self.finish();
    }

    fn finish(&mut self) {
        for (_, (reply, _)) in self.pending.drain() {
            let _ = reply.send(Err("the agent is shutting down".to_string()));
        }
    }

    /// Handles one event; returns whether the view may have changed.
    fn handle(&mut self, ev: Event) -> bool {
        match ev {
            Event::Inbound(m) => {
                let amnesia = self.no_vote_until.is_some_and(|t| Instant::now() < t);
                for msg in m.msgs {
                    let vote = matches!(
                        msg.get_msg_type(),
                        raft::eraftpb::MessageType::MsgRequestVote
                            | raft::eraftpb::MessageType::MsgRequestPreVote
                    );
                    // No vote for a node outside this node's configuration: above all a
                    // two-node survivor's vote for the peer it fenced, which boots with both
                    // voters and would otherwise lead next to the survivor's single-voter
                    // configuration (two leaders, two histories). The survivor re-admits it
                    // as a voter first; it then follows the survivor.
                    let outsider = || {
                        !self
                            .raw
                            .store()
                            .conf_state()
                            .voters
                            .contains(&msg.get_from())
                    };
                    if vote && (amnesia || outsider()) {
                        continue;
                    }
                    // Errors here are stale or foreign messages; raft logs them.
                    let _ = self.raw.step(msg);
                }
                true
            }
            Event::Propose { cmd, reply } => {
                let request = self.next_request;
                self.next_request += 1;
                let p = Proposal {
                    request,
                    by: self.s.me,
                    at_ms: now_ms(),
                    cmd,
                };
                match self.raw.propose(Vec::new(), p.encode()) {
                    Ok(()) => {
                        self.pending.insert(request, (reply, self.raw.raft.term));
                    }
                    Err(e) => {
                        let why = match self.raw.raft.leader_id {
                            0 => "no leader: this node cannot reach a quorum".to_string(),
                            l => format!("proposal dropped ({e}); leader is node {l}"),
                        };
                        let _ = reply.send(Err(why));
                    }
                }
                self.pending.retain(|_, (r, _)| !r.is_closed());
                false
            }
            Event::AddVoter(id) => {
                let mut cc = ConfChange::default();
                cc.set_change_type(ConfChangeType::AddNode);
                cc.node_id = id;
                if let Err(e) = self.raw.propose_conf_change(Vec::new(), cc) {
                    tracing::warn!("cannot add node {id} back as a voter: {e}");
                }
                false
            }
            Event::ForceSingleVoter { reply } => {
                let r = self.force_single_voter();
                // Readers must see the new membership as soon as the caller hears back.
                if let Err(e) = self.on_ready() {
                    let _ = reply.send(Err(e.to_string()));
                    return true;
                }
                self.publish(None);
                let _ = reply.send(r);
                true
            }
            Event::TransferLeader(to) => {
                self.raw.transfer_leader(to);
                false
            }
            Event::Shutdown => false,
        }
    }

    fn force_single_voter(&mut self) -> Result<(), String> {
        let me = self.s.me;
        let mut cs = self.raw.store().conf_state().clone();
        if cs.voters == [me] {
            return Ok(());
        }
        cs.voters = vec![me];
        cs.voters_outgoing.clear();
        cs.learners.clear();
        cs.learners_next.clear();
        cs.auto_leave = false;
        self.raw
            .mut_store()
            .set_conf_state(&cs)
            .map_err(|e| e.to_string())?;
        tracing::warn!("two-node: continuing as the single voter after a confirmed fence");
        // Rebuild the Raft node from disk with the new membership.
        let store = DiskStorage::open(&self.s.dir, &self.s.members).map_err(|e| e.to_string())?;
        let (raw, _) = open_raw(&self.s, store, &self.logger).map_err(|e| e.to_string())?;
        self.raw = raw;
        self.state.voters = vec![me];
        self.raw.campaign().map_err(|e| e.to_string())
    }

    /// persist -> send -> apply -> advance. Returns whether there was anything to do.
    fn on_ready(&mut self) -> Result<bool, StoreError> {
        if !self.raw.has_ready() {
            return Ok(false);
        }
        let mut rd = self.raw.ready();
        // 1. Persist.
        if !rd.snapshot().is_empty() {
            let snap = rd.snapshot().clone();
            self.raw.mut_store().apply_snapshot(&snap)?;
            match ReplicatedState::from_snapshot(&snap.data) {
                Ok(st) => self.state = st,
                Err(e) => tracing::error!("leader sent an undecodable snapshot: {e}"),
            }
            self.state.applied = snap.get_metadata().index;
        }
        self.raw.mut_store().append(rd.entries())?;
        if let Some(hs) = rd.hs() {
            self.raw.mut_store().set_hard_state(hs)?;
        }
        // 2. Send.
        self.send(rd.take_messages());
        self.send(rd.take_persisted_messages());
        // 3. Apply.
        self.apply(rd.take_committed_entries())?;
        // 4. Advance.
        let mut light = self.raw.advance(rd);
        if let Some(commit) = light.commit_index() {
            self.raw.mut_store().set_commit(commit)?;
        }
        self.send(light.take_messages());
        self.apply(light.take_committed_entries())?;
        self.raw.advance_apply();
        self.fail_stale_proposals();
        self.maybe_compact()?;
        Ok(true)
    }

    /// A proposal made in an older term may have been lost with the old leader. Fail it
    /// now so the caller can retry at once instead of waiting for its timeout.
    fn fail_stale_proposals(&mut self) {
        let term = self.raw.raft.term;
        let stale: Vec<u64> = self
            .pending
            .iter()
            .filter(|(_, (_, t))| *t != term)
            .map(|(id, _)| *id)
            .collect();
        for id in stale {
            if let Some((reply, t)) = self.pending.remove(&id) {
                let _ = reply.send(Err(format!(
                    "{LEADER_CHANGED} (term {t} -> {term}): the command may or may not have \
                     been applied; check `oneha status`"
                )));
            }
        }
    }

    fn send(&mut self, msgs: Vec<RaftMessage>) {
        for m in msgs {
            let Some(peer) = self.peers.get(&m.to) else {
                continue;
            };
            match m.write_to_bytes() {
                Ok(bytes) => peer.send(bytes),
                Err(e) => tracing::error!("cannot encode a raft message: {e}"),
            }
        }
    }

    fn apply(&mut self, entries: Vec<raft::eraftpb::Entry>) -> Result<(), StoreError> {
        for e in entries {
            if e.index <= self.state.applied {
                continue;
            }
            match e.get_entry_type() {
                EntryType::EntryNormal if e.data.is_empty() => {
                    self.state.applied = e.index;
                }
                EntryType::EntryNormal => match Proposal::decode(&e.data) {
                    Ok(p) => {
                        let outcome = self.state.apply(e.index, &p);
                        if let Applied::Ignored(why) = &outcome {
                            tracing::debug!(index = e.index, "command ignored: {why}");
                        } else {
                            tracing::info!(index = e.index, by = p.by, "applied {:?}", p.cmd);
                        }
                        if p.by == self.s.me
                            && let Some((reply, _)) = self.pending.remove(&p.request)
                        {
                            let _ = reply.send(Ok(outcome));
                        }
                    }
                    Err(err) => {
                        tracing::error!(index = e.index, "skipping an undecodable entry: {err}");
                        self.state.applied = e.index;
                    }
                },
                EntryType::EntryConfChange => match ConfChange::parse_from_bytes(&e.data) {
                    Ok(cc) => self.apply_conf_change(e.index, &cc)?,
                    Err(err) => self.skip_entry(e.index, &err.to_string()),
                },
                EntryType::EntryConfChangeV2 => match ConfChangeV2::parse_from_bytes(&e.data) {
                    Ok(cc) => self.apply_conf_change(e.index, &cc)?,
                    Err(err) => self.skip_entry(e.index, &err.to_string()),
                },
            }
        }
        Ok(())
    }

    fn skip_entry(&mut self, index: u64, why: &str) {
        tracing::error!(index, "skipping an undecodable membership change: {why}");
        self.state.applied = index;
    }

    fn apply_conf_change(
        &mut self,
        index: u64,
        cc: &impl raft_proto::ConfChangeI,
    ) -> Result<(), StoreError> {
        match self.raw.apply_conf_change(cc) {
            Ok(cs) => {
                self.raw.mut_store().set_conf_state(&cs)?;
                tracing::info!(index, voters = ?cs.voters, "membership changed");
                self.state.voters = cs.voters.clone();
            }
            Err(e) => tracing::error!(index, "cannot apply membership change: {e}"),
        }
        self.state.applied = index;
        Ok(())
    }

    fn maybe_compact(&mut self) -> Result<(), StoreError> {
        let snap_index = self.raw.store().last_snapshot().get_metadata().index;
        if self.state.applied >= snap_index + COMPACT_EVERY {
            let data = self.state.to_snapshot();
            let applied = self.state.applied;
            self.raw.mut_store().compact(applied, data, COMPACT_KEEP)?;
            tracing::debug!(applied, "compacted the raft log");
        }
        Ok(())
    }

    fn publish(&mut self, fatal: Option<String>) {
        let raft = &self.raw.raft;
        let matched: BTreeMap<NodeId, u64> = if raft.state == StateRole::Leader {
            raft.prs().iter().map(|(id, p)| (*id, p.matched)).collect()
        } else {
            BTreeMap::new()
        };
        let role = match raft.state {
            StateRole::Leader => "leader",
            StateRole::Follower => "follower",
            StateRole::Candidate => "candidate",
            StateRole::PreCandidate => "pre-candidate",
        };
        let view = RaftView {
            id: self.s.me,
            role: role.to_string(),
            term: raft.term,
            leader: (raft.leader_id != 0).then_some(raft.leader_id),
            commit: raft.raft_log.committed,
            last_index: raft.raft_log.last_index(),
            log_entries: self.raw.store().entry_count(),
            matched,
            state: self.state.clone(),
            fatal,
        };
        self.view_tx.send_if_modified(|cur| {
            if **cur == view {
                false
            } else {
                *cur = Arc::new(view);
                true
            }
        });
    }
}
