//! Tables for this node's own links (issue 16, link flaps of the owner): a node whose
//! cables are out does not fence its peer, and a floating IP whose link lost its carrier
//! gets a grace before the group is restarted or moved.

use super::*;

fn fences(out: &[Action]) -> bool {
    out.iter().any(|a| matches!(a, Action::Fence { .. }))
}

/// Found by a real-host test: the owner's only cable out for 1.3 s. The owner lost its peer
/// (its own cable's fault), fenced it as soon as the cable was back and the fence device
/// answered: a healthy standby powered off for the owner's flap.
#[test]
fn a_node_whose_cables_are_out_does_not_fence_its_peer() {
    let mut active = st(Some(1), &[(1, 7)], Phase::Started);
    active.voters = vec![1, 2];
    let mut passive = st(Some(2), &[(2, 9)], Phase::Started);
    passive.voters = vec![1, 2];
    // (name, state, held, lost for (s), own links down, fences)
    let rows = [
        (
            "active, links up",
            &active,
            Held::Running(4),
            0,
            false,
            true,
        ),
        (
            "active, links down",
            &active,
            Held::Running(4),
            0,
            true,
            false,
        ),
        (
            "active, links down long",
            &active,
            Held::Running(4),
            600,
            true,
            false,
        ),
        (
            "passive, links up, after its delay",
            &passive,
            Held::Stopped,
            6,
            false,
            true,
        ),
        (
            "passive, links down",
            &passive,
            Held::Stopped,
            6,
            true,
            false,
        ),
    ];
    for (name, s, held, lost_s, down, want) in rows {
        let o = Observations {
            held,
            live: set(&[1]),
            within_lease: set(&[1]),
            peer_lost_for: Some(Duration::from_secs(lost_s)),
            own_links_down: down,
            ..obs()
        };
        let out = decide(&two_node_cfg(), s, &o);
        assert_eq!(fences(&out), want, "{name}: {out:?}");
        if down {
            assert!(
                out.iter()
                    .any(|a| matches!(a, Action::Notice(n) if n.contains("lost its carrier"))),
                "{name}: the operator is told why: {out:?}"
            );
        }
    }
}

/// The owner's floating IP on a link without carrier: wait for the link within the grace
/// (a flap costs no restart), act as on any failure after it; other failures at once.
#[test]
fn a_link_without_carrier_gets_a_grace_before_a_restart() {
    let s = st(Some(1), &[(1, 4)], Phase::Started);
    let failed = |why: &str| vec![("vip".to_string(), why.to_string())];
    let restarts = |out: &[Action]| out.iter().any(|a| matches!(a, Action::Restart(_)));
    // (name, failures, link down for (ms), restarts)
    type Row = (&'static str, Vec<(String, String)>, Option<u64>, bool);
    let rows: [Row; 4] = [
        ("link down 100 ms", failed("link down"), Some(100), false),
        ("link down 1.9 s", failed("link down"), Some(1900), false),
        (
            "link down past the grace",
            failed("link down"),
            Some(2000),
            true,
        ),
        ("an ordinary failure", failed("failed: gone"), None, true),
    ];
    for (name, monitor_failed, down_ms, want) in rows {
        let o = Observations {
            held: Held::Running(4),
            monitor_failed,
            link_down_for: down_ms.map(Duration::from_millis),
            ..obs()
        };
        let out = decide(&cfg(), &s, &o);
        assert_eq!(restarts(&out), want, "{name}: {out:?}");
        if !want {
            assert!(
                out.iter()
                    .any(|a| matches!(a, Action::Notice(n) if n.contains("link to come back"))),
                "{name}: {out:?}"
            );
        }
    }
}
