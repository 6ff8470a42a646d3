//! The Raft thread's loop: take events, tick on time, then process a `Ready` strictly as
//! **persist -> send -> apply -> advance** (S7), and publish the view when it changed.

use std::collections::BTreeMap;
use std::sync::Arc;
use std::sync::atomic::Ordering;
use std::sync::mpsc::{Receiver, RecvTimeoutError};
use std::time::Instant;

use protobuf::Message as _;
use raft::StateRole;
use raft::eraftpb::{ConfChange, ConfChangeType, ConfChangeV2, EntryType, Message as RaftMessage};

use super::handle::{RaftRole, RaftView};
use super::{COMPACT_EVERY, COMPACT_KEEP, Event, LEADER_CHANGED, Node, now_ms};
use crate::cluster::state::{Applied, NodeId, Proposal, ReplicatedState};
use crate::cluster::storage::StoreError;

/// Why the Raft thread stopped for good. Continuing would risk committed state: the node
/// publishes the error (`oneha status` shows it) and stops turning, so the watchdog restarts
/// the agent.
#[derive(Debug, thiserror::Error)]
pub(super) enum Fatal {
    /// The durable store failed.
    #[error("raft storage failed: {0}")]
    Store(#[from] StoreError),
    /// The leader sent a snapshot this node cannot read.
    #[error(
        "the leader sent a state snapshot (log index {index}) that this node cannot read \
         ({why}); without it this node would run on a state it does not have. Run the same \
         oneha version on every node"
    )]
    Snapshot {
        /// The snapshot's log index.
        index: u64,
        /// The decoder's error.
        why: String,
    },
}

impl Node {
    /// Runs until shutdown, or until a fatal error (published in the view).
    pub(super) fn run(mut self, rx: Receiver<Event>) {
        let mut next_tick = Instant::now() + self.s.tick;
        loop {
            self.turns.fetch_add(1, Ordering::Relaxed);
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
            let outcome = match self.failed.take() {
                Some(e) => Err(e),
                None => self.on_ready(),
            };
            match outcome {
                Ok(did) => changed |= did,
                Err(e) => {
                    tracing::error!("stopping this node: {e}");
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
                for msg in m.msgs {
                    if self.refuses_vote(&msg) {
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
                    // The loop stops on it at the end of this turn.
                    self.failed = Some(e);
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

    /// persist -> send -> apply -> advance. Returns whether there was anything to do.
    pub(super) fn on_ready(&mut self) -> Result<bool, Fatal> {
        if !self.raw.has_ready() {
            return Ok(false);
        }
        let mut rd = self.raw.ready();
        // 1. Persist.
        if !rd.snapshot().is_empty() {
            let snap = rd.snapshot().clone();
            let index = snap.get_metadata().index;
            // Read it before keeping it: a state this node cannot decode is neither stored
            // nor skipped (`applied` would move past commands it never applied).
            let state = ReplicatedState::from_snapshot(&snap.data)
                .map_err(|why| Fatal::Snapshot { index, why })?;
            self.raw.mut_store().apply_snapshot(&snap)?;
            self.state = state;
            self.state.applied = index;
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

    /// Publishes the view if it differs from the last one.
    pub(super) fn publish(&mut self, fatal: Option<String>) {
        let raft = &self.raw.raft;
        let matched: BTreeMap<NodeId, u64> = if raft.state == StateRole::Leader {
            raft.prs().iter().map(|(id, p)| (*id, p.matched)).collect()
        } else {
            BTreeMap::new()
        };
        let role = match raft.state {
            StateRole::Leader => RaftRole::Leader,
            StateRole::Follower => RaftRole::Follower,
            StateRole::Candidate => RaftRole::Candidate,
            StateRole::PreCandidate => RaftRole::PreCandidate,
        };
        let view = RaftView {
            id: self.s.me,
            role,
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
