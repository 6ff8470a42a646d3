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

use super::{Action, Observations, PolicyConfig};
use crate::cluster::state::{Command, NodeId, ReplicatedState};

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
