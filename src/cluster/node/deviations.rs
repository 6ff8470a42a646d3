//! Where this node departs from plain Raft, all in one place for review. Each rule is safe on
//! its own; together they contain two-node mode's forced reconfiguration, which breaks
//! Raft's assumption that a committed entry is on a majority (docs/architecture.md):
//!
//! - **Amnesia** ([`no_vote_until`]): a node that starts with no Raft state on disk does not
//!   remember its votes, so it refuses vote requests until any election it may have voted
//!   in is over; it never votes twice in a term.
//! - **Vote filtering** ([`Node::refuses_vote`]): no vote for a node outside this node's
//!   configuration (above all a two-node survivor's vote for the peer it fenced).
//! - **Forced single voter** ([`Node::force_single_voter`]): two-node mode, after a confirmed
//!   fence of the peer, this node rewrites its configuration to itself alone (durable) and
//!   campaigns (rgmanager's two_node/expected_votes=1).
//! - **Restored voters** ([`restore_voters`]): at the first start after a boot, a forced
//!   single-voter configuration is undone, so a rebooted survivor never acts alone on an old
//!   confirmation.
//! - **Relearned commit** ([`relearn_commit`]): two-node mode drops the persisted commit index
//!   at start and learns it from the leader, so a fenced node can take the survivor's history.

use std::time::Instant;

use raft::eraftpb::{Message as RaftMessage, MessageType};

use super::{Node, NodeSettings, open_raw};
use crate::cluster::storage::{DiskStorage, StoreError};

/// Until when a node that started with no Raft state on disk (new, or its data directory was
/// lost) refuses vote requests: twice the maximum election timeout (and a tick), long enough
/// for any election it may have voted in before to be over. `None`: it has its votes on disk.
pub(super) fn no_vote_until(store: &DiskStorage, s: &NodeSettings) -> Option<Instant> {
    store
        .was_fresh()
        .then(|| Instant::now() + s.tick * (4 * s.election_ticks as u32 + 1))
}

/// Puts every configured member back as a voter if the stored configuration is this node
/// alone (see [`NodeSettings::restore_voters`]).
pub(super) fn restore_voters(store: &mut DiskStorage, s: &NodeSettings) -> Result<(), StoreError> {
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
pub(super) fn relearn_commit(store: &mut DiskStorage) -> Result<(), StoreError> {
    let floor = store.last_snapshot().get_metadata().index;
    if store.hard_state().commit > floor {
        store.set_commit(floor)?;
    }
    Ok(())
}

impl Node {
    /// True if `msg` is a vote (or pre-vote) request this node must not answer: it is still
    /// in its amnesia window ([`no_vote_until`]), or the candidate is not a voter of this
    /// node's configuration. The latter keeps a two-node survivor from voting for the peer
    /// it fenced, which boots with both voters and would otherwise lead next to the
    /// survivor's single-voter configuration (two leaders, two histories); the survivor
    /// re-admits it as a voter first, and it then follows the survivor.
    pub(super) fn refuses_vote(&self, msg: &RaftMessage) -> bool {
        let vote = matches!(
            msg.get_msg_type(),
            MessageType::MsgRequestVote | MessageType::MsgRequestPreVote
        );
        vote && (self.no_vote_until.is_some_and(|t| Instant::now() < t)
            || !self
                .raw
                .store()
                .conf_state()
                .voters
                .contains(&msg.get_from()))
    }

    /// Two-node mode only, after a confirmed fence of every other voter: makes this node the
    /// single voter (durably), rebuilds the Raft node with that configuration and campaigns.
    pub(super) fn force_single_voter(&mut self) -> Result<(), String> {
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
}
