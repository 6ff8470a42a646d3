//! Liveness: which members count as up, derived from raw facts (when this node last heard
//! from each member, and which members each of them says it hears). The control loop and
//! `oneha status` both use this, so what status shows as up is what failover acts on.

use std::collections::BTreeSet;
use std::time::Duration;

use crate::cluster::node::MemberView;
use crate::cluster::state::NodeId;

/// Who is up, as seen from this node.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Liveness {
    /// Heard directly within the loss timeout (this node included).
    pub direct: BTreeSet<NodeId>,
    /// Up: heard directly, or heard within the loss timeout by a member this node hears
    /// directly (a partition between two nodes that both reach a third).
    pub live: BTreeSet<NodeId>,
    /// Heard directly within the lease (this node included): S4's quorum count. A member
    /// not heard since this agent started counts as heard at the start, so a restarted
    /// owner gets one lease to hear its peers before S4 stops what it adopted (the others
    /// cannot take over before they fence it, S3; it still stops one lease after starting
    /// if no quorum answers).
    pub within_lease: BTreeSet<NodeId>,
}

impl Liveness {
    /// Derives liveness from the other members' contact times and gossip; `up_for` is how
    /// long this agent has been running.
    pub fn derive(
        me: NodeId,
        members: &[MemberView],
        lost_after: Duration,
        lease: Duration,
        up_for: Duration,
    ) -> Liveness {
        let lost_after = lost_after.as_millis() as u64;
        let lease = lease.as_millis() as u64;
        let up_for = u64::try_from(up_for.as_millis()).unwrap_or(u64::MAX);
        let mut direct = BTreeSet::from([me]);
        let mut within_lease = BTreeSet::from([me]);
        for m in members {
            if let Some(ms) = m.last_contact_ms
                && ms <= lost_after
            {
                direct.insert(m.id);
            }
            if m.last_contact_ms.unwrap_or(up_for) <= lease {
                within_lease.insert(m.id);
            }
        }
        let mut live = direct.clone();
        for m in members.iter().filter(|m| direct.contains(&m.id)) {
            if let Some(g) = &m.gossip {
                live.extend(g.live.iter().copied());
            }
        }
        Liveness {
            direct,
            live,
            within_lease,
        }
    }
}

/// How long a member has been lost beyond the loss timeout (`None`: in touch; never heard
/// since this agent started counts as lost forever).
pub fn lost_for(last_contact_ms: Option<u64>, lost_after: Duration) -> Option<Duration> {
    let lost_after = lost_after.as_millis() as u64;
    match last_contact_ms {
        Some(ms) if ms <= lost_after => None,
        Some(ms) => Some(Duration::from_millis(ms - lost_after)),
        None => Some(Duration::MAX),
    }
}

/// Two-node: how long the peer has been lost, not counting a silence that this node's own
/// cables explain. `links_back_ms`: how long ago this node's links came back after every
/// one of them had lost its carrier. If that was after the peer was last heard, the peer
/// could not be heard meanwhile whatever its state: count its silence from the links'
/// return instead (it gets a whole loss timeout to be heard again). A peer never heard since
/// start stays lost forever, as in [`lost_for`].
pub fn lost_for_since_links_back(
    last_contact_ms: Option<u64>,
    links_back_ms: Option<u64>,
    lost_after: Duration,
) -> Option<Duration> {
    let last = match (last_contact_ms, links_back_ms) {
        (Some(heard), Some(back)) => Some(heard.min(back)),
        (heard, _) => heard,
    };
    lost_for(last, lost_after)
}

#[cfg(test)]
mod tests {
    use super::*;
    use crate::cluster::gossip::Gossip;

    fn member(id: NodeId, last: Option<u64>, hears: &[NodeId]) -> MemberView {
        MemberView {
            id,
            last_contact_ms: last,
            gossip: Some(Gossip {
                live: hears.to_vec(),
                ..Gossip::default()
            }),
            matched: None,
        }
    }

    fn set(ids: &[NodeId]) -> BTreeSet<NodeId> {
        ids.iter().copied().collect()
    }

    #[test]
    fn liveness_table() {
        let lost = Duration::from_millis(1000);
        let lease = Duration::from_millis(3000);
        struct Row {
            name: &'static str,
            members: Vec<MemberView>,
            direct: &'static [NodeId],
            live: &'static [NodeId],
            lease: &'static [NodeId],
            /// How long this agent has run (an hour unless the row is about a start).
            up_for: Duration,
        }
        let hour = Duration::from_secs(3600);
        let rows = [
            Row {
                name: "everyone heard",
                members: vec![member(2, Some(10), &[1, 2, 3]), member(3, Some(900), &[])],
                direct: &[1, 2, 3],
                live: &[1, 2, 3],
                lease: &[1, 2, 3],
                up_for: hour,
            },
            Row {
                name: "the timeout itself still counts as heard",
                members: vec![member(2, Some(1000), &[])],
                direct: &[1, 2],
                live: &[1, 2],
                lease: &[1, 2],
                up_for: hour,
            },
            Row {
                name: "lost but within the lease",
                members: vec![member(2, Some(1001), &[])],
                direct: &[1],
                live: &[1],
                lease: &[1, 2],
                up_for: hour,
            },
            Row {
                name: "never heard since start",
                members: vec![member(2, None, &[2])],
                direct: &[1],
                live: &[1],
                lease: &[1],
                up_for: hour,
            },
            Row {
                name: "a partition between 1 and 3, both reaching 2: 3 is up through 2",
                members: vec![member(2, Some(5), &[2, 3]), member(3, Some(5000), &[])],
                direct: &[1, 2],
                live: &[1, 2, 3],
                lease: &[1, 2],
                up_for: hour,
            },
            Row {
                name: "the word of a lost member counts for nothing",
                members: vec![member(2, Some(5000), &[2, 3]), member(3, None, &[])],
                direct: &[1],
                live: &[1],
                lease: &[1],
                up_for: hour,
            },
        ];
        // Found by CI under load: a restarted owner (restart in place, witness topology)
        // probed its running group 50 ms after starting, before any peer was heard, and S4
        // stopped it as "1 of 3 voters in touch".
        let rows = rows.into_iter().chain([
            Row {
                name: "just started, nobody heard yet: in the lease, not up",
                members: vec![member(2, None, &[]), member(3, None, &[])],
                direct: &[1],
                live: &[1],
                lease: &[1, 2, 3],
                up_for: Duration::from_millis(50),
            },
            Row {
                name: "started a lease ago and still nobody heard: out of the lease",
                members: vec![member(2, None, &[]), member(3, None, &[])],
                direct: &[1],
                live: &[1],
                lease: &[1],
                up_for: Duration::from_millis(3001),
            },
            Row {
                name: "just started, one peer heard already: it is up, the other in the lease",
                members: vec![member(2, Some(10), &[]), member(3, None, &[])],
                direct: &[1, 2],
                live: &[1, 2],
                lease: &[1, 2, 3],
                up_for: Duration::from_millis(50),
            },
        ]);
        for r in rows {
            let l = Liveness::derive(1, &r.members, lost, lease, r.up_for);
            assert_eq!(l.direct, set(r.direct), "{}: direct", r.name);
            assert_eq!(l.live, set(r.live), "{}: live", r.name);
            assert_eq!(l.within_lease, set(r.lease), "{}: lease", r.name);
        }
    }

    #[test]
    fn silence_while_this_nodes_cables_were_out_does_not_count() {
        let t = Duration::from_millis(1000);
        let ms = |v| Some(Duration::from_millis(v));
        // (last heard, links back, lost for, why)
        type Row = (Option<u64>, Option<u64>, Option<Duration>, &'static str);
        let rows: &[Row] = &[
            (Some(1500), None, ms(500), "links never down: as lost_for"),
            (
                Some(1500),
                Some(600),
                None,
                "links back 600 ms ago: in touch for now",
            ),
            (
                Some(2500),
                Some(1200),
                ms(200),
                "back 1.2 s ago and still silent: lost",
            ),
            (
                Some(300),
                Some(2000),
                None,
                "heard since the links came back: as lost_for",
            ),
            (
                Some(3000),
                Some(2000),
                ms(1000),
                "heard since: counts from the contact",
            ),
            (
                None,
                Some(100),
                Some(Duration::MAX),
                "never heard: lost forever",
            ),
        ];
        for (heard, back, want, why) in rows {
            assert_eq!(lost_for_since_links_back(*heard, *back, t), *want, "{why}");
        }
    }

    #[test]
    fn lost_for_counts_from_the_timeout() {
        let t = Duration::from_millis(1000);
        assert_eq!(lost_for(Some(999), t), None);
        assert_eq!(lost_for(Some(1000), t), None);
        assert_eq!(lost_for(Some(1500), t), Some(Duration::from_millis(500)));
        assert_eq!(lost_for(None, t), Some(Duration::MAX));
    }
}
