//! Two-node rules: fencing a lost peer (the active side at once, the passive side after
//! its delay) and continuing as the single voter after a confirmed fence.

use std::time::Duration;

use super::{Action, Held, Observations, PolicyConfig};
use crate::cluster::state::{NodeId, ReplicatedState};

pub(super) fn two_node_actions(
    cfg: &PolicyConfig,
    st: &ReplicatedState,
    obs: &Observations,
    out: &mut Vec<Action>,
) {
    let Some(peer) = cfg.members.iter().copied().find(|&m| m != cfg.me) else {
        return;
    };
    // The active side: the group runs or starts here, or, for an agent just restarted on
    // the owner, was found running here and this node owns it by its own view.
    let active = matches!(obs.held, Held::Running(_) | Held::Starting(_))
        || (obs.held == Held::Unknown && st.group.owner == Some(cfg.me));
    // A one-way split: this node hears the peer, the peer has lost this node and will fence
    // it after its delay. The active side fences first; the passive side lets it happen.
    // The peer must have said so for a while: after a flap its gossip lags behind.
    let one_way = obs.peer_lost_for.is_none()
        && obs
            .peer_lost_me_for
            .is_some_and(|d| d >= cfg.one_way_confirm);
    let lost_for = match obs.peer_lost_for {
        Some(d) => d,
        None if one_way && active => Duration::MAX,
        None => return,
    };
    // Already the confirmed single voter: ordinary leader logic takes it from here.
    if st.voters == [cfg.me] {
        return;
    }
    // No carrier on any link here: the silence is this node's own cable, not the peer's
    // death, and this node is the one clients cannot reach. Fencing the peer would leave
    // nobody serving (with the fence device on another network, it would succeed).
    if obs.own_links_down {
        out.push(Action::Notice(format!(
            "peer {peer} out of touch, but every link of this node has lost its carrier: not \
             fencing it (this node is the one cut off)"
        )));
        return;
    }
    // The peer announced a restart of its agent in place (`systemctl restart oneha`): its
    // group keeps running; fencing it now would turn an upgrade into a failover.
    if obs.restarting.contains(&peer) {
        out.push(Action::Notice(format!(
            "peer {peer} is restarting its agent in place: not fencing it for up to {}s",
            super::exit::RESTART_GRACE.as_secs()
        )));
        return;
    }
    if !obs.seen_all {
        out.push(Action::Notice(format!(
            "peer {peer} is out of touch, but this node has not seen it since it started \
             (wait-for-all): not fencing, not taking over; `oneha override-wait-for-all` \
             forces it"
        )));
        return;
    }
    if obs.fencing || obs.fence_backoff.contains(&peer) {
        return;
    }
    // The active side fences at once; the other waits its delay.
    let delay = if active {
        Duration::ZERO
    } else {
        obs.peer_fence_delay
    };
    if lost_for >= delay {
        let epoch = st.group.dirty.get(&peer).copied().unwrap_or(0);
        out.push(Action::Fence {
            target: peer,
            epoch,
        });
    } else {
        out.push(Action::Notice(format!(
            "peer {peer} out of touch: fencing it in {:.1}s unless it fences us first",
            (delay - lost_for).as_secs_f64()
        )));
    }
}

/// After `target` was confirmed off (a fence success or an operator's acknowledgement):
/// does this node continue as the single voter? Only in two-node mode while both are still
/// voters: [`Action::ForceSingleVoter`]; but never when `target` was heard from within
/// `heard_within` (since the fence operation began): it still runs, whatever its device
/// said, and the answer is a [`Action::Notice`] saying so. Nothing otherwise.
pub fn continue_alone(
    cfg: &PolicyConfig,
    st: &ReplicatedState,
    target: NodeId,
    target_last_contact_ms: Option<u64>,
    heard_within: Duration,
) -> Option<Action> {
    if !cfg.two_node || st.voters == [cfg.me] || target == cfg.me {
        return None;
    }
    if target_last_contact_ms.is_some_and(|ms| u128::from(ms) < heard_within.as_millis()) {
        return Some(Action::Notice(format!(
            "node {target} was heard from within the last {} ms, although confirmed off: not \
             continuing as the single voter",
            heard_within.as_millis()
        )));
    }
    Some(Action::ForceSingleVoter)
}
