//! The clients' side of a node: the interfaces of the group's floating IPs. A node whose
//! interface has lost its carrier (its LAN cable out, its switch port down) cannot serve
//! clients, whatever else works. Two rules:
//! - placement (failover, relocation, failback) prefers a node whose client links have
//!   their carrier (`best` in the policy);
//! - the owner whose client link has been without carrier for `link_move_after` hands the
//!   group over to a node that reports the link up and that it still hears (over another
//!   link: the peers' frames prove the other path works). A restart could not fix a cable,
//!   and waiting costs the clients the whole outage.
//!
//! On one network there is no such peer (the cable that carries the clients also carries
//! the peers): the rule does nothing and the loss of the owner is handled as a silence.

use std::collections::BTreeSet;
use std::time::Duration;

use super::{Action, Observations, PolicyConfig};
use crate::cluster::state::{Command, NodeId, ReplicatedState};

/// A peer's gossip must have been sent this long after this node's client link went down
/// to count: its own carrier is in its gossip by then.
const GOSSIP_SETTLE: Duration = Duration::from_millis(50);

/// What this node knows of a peer for [`link_peers`].
#[derive(Debug, Clone, Copy)]
pub struct PeerLinkFacts {
    /// The peer.
    pub id: NodeId,
    /// Milliseconds since it was last heard (None: never).
    pub last_contact_ms: Option<u64>,
    /// Its gossip has been received.
    pub has_gossip: bool,
    /// Its gossip lists a client interface without carrier.
    pub no_carrier: bool,
}

/// While this node's client link has been down for `down`: the peers heard since (over
/// another link, [`GOSSIP_SETTLE`] after the loss) whose own client links are up.
pub fn link_peers(down: Duration, peers: &[PeerLinkFacts]) -> BTreeSet<NodeId> {
    let heard_after = down.saturating_sub(GOSSIP_SETTLE);
    peers
        .iter()
        .filter(|p| p.has_gossip && !p.no_carrier)
        .filter(|p| {
            p.last_contact_ms
                .is_some_and(|ms| u128::from(ms) < heard_after.as_millis())
        })
        .map(|p| p.id)
        .collect()
}

/// Among `candidates` (in preference order), the first whose client links have their
/// carrier; if every one lacks it, the first (a group placed on a node without carrier
/// waits there as it would anywhere).
pub(super) fn prefer_links_up(
    obs: &Observations,
    mut candidates: impl Iterator<Item = NodeId> + Clone,
) -> Option<NodeId> {
    candidates
        .clone()
        .find(|n| !obs.client_links_down.contains(n))
        .or_else(|| candidates.next())
}

/// The owner running the group: hand it over if its client link has been without carrier
/// for `link_move_after` and a peer can take it (see the module comment).
pub(super) fn owner_link_move(
    cfg: &PolicyConfig,
    st: &ReplicatedState,
    obs: &Observations,
) -> Option<Action> {
    let down = obs.client_link_down_for?;
    let g = &st.group;
    if g.owner != Some(cfg.me) || g.relocate.is_some() {
        return None;
    }
    if down < cfg.link_move_after {
        return Some(Action::Notice(format!(
            "a client link of this node has no carrier: moving the group in {:.1}s unless it \
             comes back",
            (cfg.link_move_after - down).as_secs_f64()
        )));
    }
    let Some(to) = cfg
        .eligible
        .iter()
        .copied()
        .find(|n| *n != cfg.me && obs.link_peers.contains(n))
    else {
        return Some(Action::Notice(
            "a client link of this node has no carrier, and no other front-end both hears \
             this node and has its own client link up: the group stays (it cannot serve \
             clients until the link is back)"
                .into(),
        ));
    };
    Some(Action::Propose(Command::GiveUp {
        node: cfg.me,
        generation: g.generation,
        reason: format!(
            "a client link of node {} has no carrier; moving the group to node {to}, whose \
             link is up",
            cfg.me
        ),
    }))
}
