//! The control loop: gathers observations, asks the pure [`policy`](crate::policy) what to
//! do, and carries the actions out through the [`Executor`] and Raft proposals. It wakes on
//! every Raft view change, every executor outcome, every operator message and every tick.

use std::collections::{HashMap, HashSet, VecDeque};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use serde::Serialize;
use tokio::sync::{mpsc, oneshot, watch};

mod context;
mod fencing;
mod leave;
mod observe;
mod outcomes;

pub use context::{Context, survivor_marker};

use crate::cluster::gossip::Gossip;
use crate::cluster::node::{Event, RaftRole};
use crate::cluster::state::{Command, NodeId, ReplicatedState};
use crate::config::Role;
use crate::executor::{Done, Executor};
use crate::fence::{Action as FenceAction, Fencer};
use crate::policy::timing::{PowerHint, retry_backoff};
use crate::policy::{self, Action, Held, PolicyConfig, RestartCause};
use crate::resources::Group;

/// Requests from the admin API that need the control loop.
pub enum ControlMsg {
    /// `oneha fence NODE --action A`.
    Fence {
        /// Target.
        target: NodeId,
        /// off, reboot or on.
        action: FenceAction,
        /// Outcome text.
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// `oneha fence-ack NODE`: an operator verified the node is off.
    FenceAck {
        /// Target.
        target: NodeId,
        /// Outcome text.
        reply: oneshot::Sender<Result<String, String>>,
    },
    /// `oneha override-wait-for-all --force`.
    ForceWaitForAll {
        /// Outcome text.
        reply: oneshot::Sender<Result<String, String>>,
    },
}

/// What this node reports about itself (status and gossip).
#[derive(Debug, Clone, Default, Serialize)]
pub struct LocalStatus {
    /// What the executor holds.
    pub held: String,
    /// Each resource's last known state here.
    pub resources: Vec<(String, String)>,
    /// Fencing this node is doing or waiting on.
    pub fencing: Option<String>,
    /// What the policy says it cannot do now, and why.
    pub notices: Vec<String>,
    /// wait-for-all overridden by an operator.
    pub forced_wait_for_all: bool,
}

/// Shared handle on the local status.
pub type SharedLocal = Arc<Mutex<LocalStatus>>;

struct Loop {
    ctx: Context,
    pcfg: PolicyConfig,
    ex: Executor,
    held: Held,
    busy: bool,
    fencing: Option<NodeId>,
    /// When the current (or last) fence operation began.
    fence_began: Instant,
    monitor_failed: Vec<(String, String)>,
    /// Resources among `monitor_failed` whose link has no carrier, and since when.
    link_down: HashMap<String, Instant>,
    /// Since when the peer, heard directly, has said without a break that it lost this node.
    lost_me_since: Option<Instant>,
    restarts: VecDeque<Instant>,
    restarts_served: Option<u64>,
    waiting_since: HashMap<(u64, NodeId), Instant>,
    fence_retry: HashMap<NodeId, (Instant, u32, String)>,
    /// After a failed stop: when the next stop may be tried, and how many were tried since.
    stop_retry: Option<(Instant, u32)>,
    forced_wfa: bool,
    /// Nodes confirmed off in the last seconds.
    recently_fenced: HashMap<NodeId, Instant>,
    /// An in-place restart (recovery) is running.
    restarting: bool,
    /// This agent is exiting for a restart of its unit and leaves the group running
    /// (gossiped as `restarting`).
    exit_restart: bool,
    /// When nothing is pending, the loop sleeps until the next liveness deadline instead of
    /// waking every tick (see `observations`).
    next_wake: Duration,
    /// Generations this node took over after a loss, and since when.
    takeover_since: HashMap<u64, Instant>,
    /// Members this node hears itself (gossiped to the others).
    direct_live: Vec<NodeId>,
    /// Members this node heard since it started and has lost now (gossiped).
    lost_now: Vec<NodeId>,
    in_flight: HashSet<String>,
    prop_done: mpsc::UnboundedSender<String>,
    claims: mpsc::UnboundedSender<(u64, Result<(), String>)>,
    hints: mpsc::UnboundedSender<(NodeId, Option<bool>)>,
    sync_tx: mpsc::UnboundedSender<bool>,
    /// The start-up barrier (a `Sync` command) was applied here.
    synced: bool,
    /// The barrier is in flight.
    syncing: bool,
    /// When this control loop started (the barrier's wait counts from here).
    started_at: Instant,
    /// A start of this generation failed here and its `StartFailed` is not applied yet.
    failed_start: Option<(u64, Instant)>,
    /// Two-node: the lost peer's power state as its fence device reported it during this
    /// loss.
    peer_hint: PowerHint,
    /// What was held before a claim, to return to if the claim fails.
    claim_prev: Held,
    states: Vec<(String, String)>,
    notices: Vec<String>,
    local: SharedLocal,
    pending_replies: Vec<(NodeId, oneshot::Sender<Result<String, String>>)>,
}

/// Runs until shutdown; on shutdown hands the group over cleanly when this node runs it.
pub async fn run(
    ctx: Context,
    mut msgs: mpsc::Receiver<ControlMsg>,
    local: SharedLocal,
    mut shutdown: watch::Receiver<bool>,
) {
    let tick = ctx.cfg.timers().tick;
    let group = Group::from_config(&ctx.cfg.resources).unwrap_or_else(|e| {
        tracing::error!("resources: {e}; running with an empty group");
        Group::new(Vec::new())
    });
    let fencer = match Fencer::new(&ctx.cfg, &ctx.name) {
        Ok(f) => Some(f),
        Err(e) => {
            tracing::warn!("fencing is not available on this node: {e}");
            None
        }
    };
    let (done_tx, mut done_rx) = mpsc::channel(256);
    let (prop_tx, mut prop_rx) = mpsc::unbounded_channel();
    let (claim_tx, mut claim_rx) = mpsc::unbounded_channel();
    let (hint_tx, mut hint_rx) = mpsc::unbounded_channel();
    let (sync_tx, mut sync_rx) = mpsc::unbounded_channel();
    let mut l = Loop {
        pcfg: policy_config(&ctx),
        ex: Executor::new(group, fencer, done_tx),
        ctx,
        held: Held::Unknown,
        busy: true,
        fencing: None,
        fence_began: Instant::now(),
        monitor_failed: Vec::new(),
        link_down: HashMap::new(),
        lost_me_since: None,
        restarts: VecDeque::new(),
        restarts_served: None,
        waiting_since: HashMap::new(),
        fence_retry: HashMap::new(),
        stop_retry: None,
        forced_wfa: false,
        recently_fenced: HashMap::new(),
        takeover_since: HashMap::new(),
        restarting: false,
        exit_restart: false,
        next_wake: Duration::ZERO,
        direct_live: Vec::new(),
        lost_now: Vec::new(),
        in_flight: HashSet::new(),
        prop_done: prop_tx,
        claims: claim_tx,
        hints: hint_tx,
        sync_tx,
        synced: false,
        syncing: false,
        started_at: Instant::now(),
        failed_start: None,
        peer_hint: PowerHint::NotAsked,
        claim_prev: Held::Stopped,
        states: Vec::new(),
        notices: Vec::new(),
        local,
        pending_replies: Vec::new(),
    };
    let is_witness = l
        .ctx
        .cfg
        .node(&l.ctx.name)
        .is_some_and(|n| n.role == Role::Witness);
    if is_witness {
        // A witness runs nothing and never probes resources that do not exist here. Nor has
        // it local state to catch up on before acting (the start-up barrier is for nodes
        // that may hold the group), so it counts as synced: when nothing happens it sleeps
        // until a member could turn lost, as front-ends do, instead of waking every tick.
        l.held = Held::Stopped;
        l.busy = false;
        l.synced = true;
    } else {
        l.ex.probe();
    }
    let mut views = l.ctx.node.watch();
    let watchdog = crate::notify::watchdog_interval().map(|d| d / 2);
    let mut last_ping = Instant::now();
    let mut raft_turns = l.ctx.node.turns();
    let mut carrier = l.ctx.carrier.clone();
    loop {
        let wake_in = l.next_wake.max(tick);
        let wake = tokio::select! {
            _ = views.changed() => Wake::Tick,
            Ok(()) = carrier.changed() => Wake::Tick,
            _ = tokio::time::sleep(wake_in) => Wake::Tick,
            Some(d) = done_rx.recv() => Wake::Done(d),
            Some(m) = msgs.recv() => Wake::Msg(m),
            Some(k) = prop_rx.recv() => Wake::Proposed(k),
            Some((g, r)) = claim_rx.recv() => Wake::Claimed(g, r),
            Some((n, h)) = hint_rx.recv() => Wake::PowerHint(n, h),
            Some(ok) = sync_rx.recv() => Wake::Synced(ok),
            _ = leaving(&mut shutdown) => break,
        };
        match wake {
            Wake::Tick => {}
            Wake::Done(d) => l.on_done(d).await,
            Wake::Msg(m) => l.on_msg(m).await,
            Wake::Proposed(k) => {
                l.in_flight.remove(&k);
            }
            Wake::Claimed(generation, r) => l.on_claimed(generation, r),
            Wake::Synced(ok) => {
                l.syncing = false;
                if ok && !l.synced {
                    tracing::info!("caught up with the cluster's state");
                    l.synced = true;
                }
            }
            Wake::PowerHint(node, hint) => {
                if hint == Some(false) {
                    tracing::warn!(node, "the lost peer's fence device reports it powered off");
                }
                if l.peer_hint != PowerHint::NotAsked {
                    l.peer_hint = hint.map_or(PowerHint::Unknown, PowerHint::Powered);
                }
            }
        }
        while let Ok(d) = done_rx.try_recv() {
            l.on_done(d).await;
        }
        if !is_witness {
            l.turn();
        } else {
            l.witness_turn();
        }
        l.publish();
        // Feed systemd's watchdog only while both this loop and the Raft thread turn.
        if let Some(every) = watchdog
            && last_ping.elapsed() >= every
        {
            let turns = l.ctx.node.turns();
            if turns != raft_turns {
                let _ = crate::notify::notify("WATCHDOG=1");
                raft_turns = turns;
                last_ping = Instant::now();
            }
        }
    }
    l.leave(&mut done_rx).await;
}

enum Wake {
    Tick,
    Synced(bool),
    PowerHint(NodeId, Option<bool>),
    Done(Done),
    Msg(ControlMsg),
    Proposed(String),
    Claimed(u64, Result<(), String>),
}

async fn leaving(rx: &mut watch::Receiver<bool>) {
    let _ = rx.wait_for(|s| *s).await;
}

fn policy_config(ctx: &Context) -> PolicyConfig {
    let cfg = &ctx.cfg;
    let domain = &cfg.resources.failover_domain;
    let stop_total: Duration = cfg
        .resources
        .group
        .iter()
        .map(|r| r.stop_timeout.get())
        .sum();
    let timers = cfg.timers();
    PolicyConfig {
        me: ctx.me,
        eligible: cfg.eligible_hosts(),
        members: cfg.nodes.iter().map(|n| n.id).collect(),
        two_node: cfg.two_node,
        wait_for_all: cfg.wait_for_all,
        failback: domain.failback,
        recovery: cfg.resources.recovery,
        max_restarts: cfg.resources.max_restarts,
        restart_window: cfg.resources.restart_expire_time.get(),
        release_timeout: stop_total + timers.lost_after() + Duration::from_secs(2),
        lease: timers.lease(),
        link_down_grace: timers.lost_after() * 2,
        // A blip shorter than this is not worth a move; a longer cut costs clients more.
        link_move_after: timers.lost_after() / 2,
        one_way_confirm: timers.lost_after(),
        witness: cfg.node(&ctx.name).is_some_and(|n| n.role == Role::Witness),
    }
}

impl Loop {
    fn witness_turn(&mut self) {
        let view = self.ctx.node.view();
        // Always observe: the liveness this node sees is gossiped to the others.
        let obs = self.observations(&view.state, view.role == RaftRole::Leader);
        if view.role != RaftRole::Leader {
            return;
        }
        // A witness leads like anyone else; the policy never has it run, stop or fence.
        let actions = policy::decide(&self.pcfg, &view.state, &obs);
        self.notices.clear();
        for a in actions {
            self.act(a, &view.state);
        }
    }

    fn turn(&mut self) {
        let view = self.ctx.node.view();
        if view.fatal.is_some() {
            return;
        }
        self.start_up_barrier();
        self.ctx
            .counters
            .observe_leader(view.leader.map(|l| self.ctx.node_name(l)).as_deref());
        // Failover timing: from the moment this node sees the group assigned to it after
        // the previous owner was lost, to the group started here.
        let g = &view.state.group;
        if g.owner == Some(self.ctx.me) && g.reason.contains("lost") {
            self.takeover_since
                .entry(g.generation)
                .or_insert_with(Instant::now);
        }
        let obs = self.observations(&view.state, view.role == RaftRole::Leader);
        crate::events::quorum_seen(self.ctx.cfg.two_node, &view.state.voters, |v| {
            obs.within_lease.contains(v)
        });
        let actions = policy::decide(&self.pcfg, &view.state, &obs);
        self.notices.clear();
        for a in actions {
            self.act(a, &view.state);
        }
    }

    /// Until a `Sync` proposed by this agent is applied here, the state may lack what was
    /// committed before the agent started: keep proposing one (each try bounded).
    fn start_up_barrier(&mut self) {
        if self.synced || self.syncing {
            return;
        }
        self.syncing = true;
        let node = self.ctx.node.clone();
        let me = self.ctx.me;
        let timeout = self.ctx.cfg.timers().election() * 2 + Duration::from_secs(1);
        let tx = self.sync_tx.clone();
        tokio::spawn(async move {
            let ok = node
                .propose_idempotent(Command::Sync { node: me }, timeout)
                .await
                .is_ok();
            let _ = tx.send(ok);
        });
    }

    /// A stop asked for while an earlier stop failed is tried again only after a pause,
    /// 1 s doubling up to 32 s (as fence retries). A stop that fails at once (D-Bus down,
    /// a unit refusing) was otherwise retried on every wake-up, hundreds of times a second:
    /// the node burnt its CPU and filled its log, and its Raft thread and admin API starved
    /// (found as the local five-node test timing out under load).
    /// A second stop asked for in the same turn (the quorum-loss and the start-up rules can
    /// both ask) is dropped: one is under way.
    fn may_stop_again(&mut self, reason: &str) -> bool {
        match self.held {
            Held::StopFailed(_) => {}
            Held::Stopping => return false,
            _ => {
                self.stop_retry = None;
                return true;
            }
        }
        let now = Instant::now();
        let (at, tries) = *self.stop_retry.get_or_insert((now + retry_backoff(0), 0));
        if now < at {
            self.notices.push(format!(
                "the group's stop failed; trying again in {:.0}s ({reason})",
                at.saturating_duration_since(now).as_secs_f64().ceil()
            ));
            return false;
        }
        let tries = tries + 1;
        self.stop_retry = Some((now + retry_backoff(tries), tries));
        true
    }

    fn act(&mut self, a: Action, st: &ReplicatedState) {
        match a {
            Action::Propose(cmd) => self.propose(cmd),
            Action::Start(generation) => {
                // Claim through the log first: the start happens only if the claim commits
                // while this node is still the clean owner (S3).
                self.busy = true;
                self.claim_prev = std::mem::replace(&mut self.held, Held::Starting(generation));
                let node = self.ctx.node.clone();
                let me = self.ctx.me;
                let timeout = self.ctx.cfg.timers().election() * 4 + Duration::from_secs(1);
                let tx = self.claims.clone();
                tokio::spawn(async move {
                    let r = match node
                        .propose_idempotent(
                            Command::Claim {
                                node: me,
                                generation,
                            },
                            timeout,
                        )
                        .await
                    {
                        Ok(crate::cluster::state::Applied::Done) => Ok(()),
                        Ok(crate::cluster::state::Applied::Ignored(why)) => Err(why),
                        Err(e) => Err(e),
                    };
                    let _ = tx.send((generation, r));
                });
            }
            Action::Stop { reason } => {
                if !self.may_stop_again(&reason) {
                    return;
                }
                tracing::warn!("stopping the group: {reason}");
                self.ctx.before_stop();
                self.busy = true;
                self.held = Held::Stopping;
                self.ex.stop();
            }
            Action::Restart(cause) => {
                tracing::warn!("restarting the group in place: {cause}");
                match cause {
                    RestartCause::Operator => {
                        self.restarts_served = Some(st.group.restart_requests)
                    }
                    RestartCause::Monitor { .. } => self.restarts.push_back(Instant::now()),
                }
                self.monitor_failed.clear();
                self.busy = true;
                self.held = Held::Stopping;
                self.restarting = true;
                self.ex.restart(st.group.generation);
            }
            Action::Fence { target, epoch } => self.fence(target, epoch, FenceAction::Off),
            // Emitted by `policy::continue_alone` only, which `confirmed_fence` carries out.
            Action::ForceSingleVoter => {}
            Action::AddVoter(id) => {
                tracing::info!(node = id, "re-admitting the fenced peer as a voter");
                let _ = self.ctx.node.send(Event::AddVoter(id));
            }
            Action::Notice(n) => self.notices.push(n),
        }
    }

    pub(super) fn propose(&mut self, cmd: Command) {
        let key = format!("{cmd:?}");
        if !self.in_flight.insert(key.clone()) {
            return;
        }
        let node = self.ctx.node.clone();
        let done = self.prop_done.clone();
        tokio::spawn(async move {
            if let Err(e) = node.propose_idempotent(cmd, Duration::from_secs(5)).await {
                tracing::debug!("proposal not committed: {e}");
            }
            let _ = done.send(key);
        });
    }

    fn publish(&mut self) {
        let fencing = match self.fencing {
            Some(t) => Some(match self.fence_retry.get(&t) {
                Some((_, n, why)) => format!(
                    "fencing {} now (attempt {}; {why})",
                    self.ctx.node_name(t),
                    n + 1
                ),
                None => format!("fencing {} now", self.ctx.node_name(t)),
            }),
            None => self.fence_retry.values().next().map(|(at, n, why)| {
                let wait = at.saturating_duration_since(Instant::now());
                format!(
                    "{why} ({n} attempt(s)); next try in {:.0}s",
                    wait.as_secs_f64()
                )
            }),
        };
        let held = match &self.held {
            Held::Stopped => "stopped".to_string(),
            Held::Unknown => "probing".to_string(),
            Held::Starting(g) => format!("starting (generation {g})"),
            Held::Running(g) => format!("running (generation {g})"),
            Held::Stopping if self.restarting => "restarting (recovery)".to_string(),
            Held::Stopping => "stopping".to_string(),
            Held::StopFailed(e) => format!("STOP FAILED: {e}"),
        };
        let status = LocalStatus {
            held,
            resources: self.states.clone(),
            fencing,
            notices: self.notices.clone(),
            forced_wait_for_all: self.forced_wfa,
        };
        let gossip = Gossip {
            name: self.ctx.name.clone(),
            held: status.held.clone(),
            resources: status.resources.clone(),
            live: self.direct_live.clone(),
            lost: self.lost_now.clone(),
            restarting: self.exit_restart,
            no_carrier: self
                .ctx
                .carrier
                .borrow()
                .clients_down
                .keys()
                .cloned()
                .collect(),
        };
        if let Ok(mut l) = self.local.lock() {
            *l = status;
        }
        let bytes = gossip.encode();
        self.ctx.gossip.send_if_modified(|cur| {
            if *cur != bytes {
                *cur = bytes;
                true
            } else {
                false
            }
        });
    }
}
