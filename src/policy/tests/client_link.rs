//! Tables for the clients' side (issue 16, link flaps of the owner on two networks): the
//! owner whose floating IP's interface lost its carrier hands the group to a peer that
//! has it, and placement avoids nodes without it.

use super::*;

fn ms(n: u64) -> Duration {
    Duration::from_millis(n)
}

fn give_up(reason_has: &str, out: &[Action]) -> bool {
    out.iter().any(|a| {
        matches!(a, Action::Propose(Command::GiveUp { node: ME, generation: 4, reason })
            if reason.contains(reason_has))
    })
}

/// Found by the two-network campaign: the owner's LAN cable out, the crossover up. The
/// owner kept the group (its monitor sees the cable every 10 s, then a 2 s grace, then a
/// restart that cannot fix a cable) while clients got nothing; a power-off moved it in 1.6 s.
#[test]
fn the_owner_hands_over_when_its_client_link_loses_carrier() {
    let owner = st(Some(ME), &[(ME, 3)], Phase::Started);
    let mut relocating = owner.clone();
    relocating.group.relocate = Some(None);
    let standby = st(Some(2), &[(2, 3)], Phase::Started);
    // (name, state, held, down for (ms), link peers, gives up, notices)
    type Row<'a> = (
        &'a str,
        &'a ReplicatedState,
        Held,
        Option<u64>,
        &'a [NodeId],
        bool,
        bool,
    );
    let rows: [Row; 7] = [
        (
            "links up",
            &owner,
            Held::Running(4),
            None,
            &[2],
            false,
            false,
        ),
        (
            "a blip: waits",
            &owner,
            Held::Running(4),
            Some(300),
            &[2],
            false,
            true,
        ),
        (
            "down long enough, a peer has its link: moves",
            &owner,
            Held::Running(4),
            Some(500),
            &[2],
            true,
            false,
        ),
        (
            "no peer heard since, or every peer's link down too: stays",
            &owner,
            Held::Running(4),
            Some(5000),
            &[],
            false,
            true,
        ),
        (
            "only the witness heard: stays",
            &owner,
            Held::Running(4),
            Some(5000),
            &[3],
            false,
            true,
        ),
        (
            "already relocating: no second give-up",
            &relocating,
            Held::Running(4),
            Some(900),
            &[2],
            false,
            false,
        ),
        (
            "not the owner: nothing",
            &standby,
            Held::Stopped,
            Some(900),
            &[2],
            false,
            false,
        ),
    ];
    for (name, state, held, down, peers, moves, notices) in rows {
        let o = Observations {
            held,
            client_link_down_for: down.map(ms),
            link_peers: set(peers),
            ..obs()
        };
        let out = decide(&cfg(), state, &o);
        assert_eq!(give_up("no carrier", &out), moves, "{name}: {out:?}");
        let noticed = out
            .iter()
            .any(|a| matches!(a, Action::Notice(n) if n.contains("carrier")));
        assert_eq!(noticed, notices, "{name}: {out:?}");
    }
}

/// The give-up wins over a monitor failure of the same cable (no restart first).
#[test]
fn a_move_for_the_cable_comes_before_a_restart() {
    let owner = st(Some(ME), &[(ME, 3)], Phase::Started);
    let o = Observations {
        held: Held::Running(4),
        client_link_down_for: Some(ms(2500)),
        link_peers: set(&[2]),
        monitor_failed: vec![("vip".into(), "eth0 is down".into())],
        link_down_for: Some(ms(2500)),
        ..obs()
    };
    let out = decide(&cfg(), &owner, &o);
    assert!(give_up("no carrier", &out), "{out:?}");
    assert!(
        !out.iter().any(|a| matches!(a, Action::Restart(_))),
        "{out:?}"
    );
}

/// Found by `e2e_client_link::the_whole_lan_down_moves_nothing`: both LAN cables out, the
/// owner restarted the group after the link grace, the start failed (no carrier) and the
/// group went to the peer, whose cable was out too.
#[test]
fn a_cable_confirmed_by_the_carrier_watch_is_waited_for_not_restarted() {
    let owner = st(Some(ME), &[(ME, 3)], Phase::Started);
    // (name, link down per monitor (s), carrier watch: down for (s), restarts)
    let rows = [
        ("within the grace", 1, Some(1), false),
        ("beyond the grace, carrier confirms", 30, Some(30), false),
        ("beyond the grace, carrier unknown", 30, None, true),
    ];
    for (name, monitor_down, carrier_down, restarts) in rows {
        let o = Observations {
            held: Held::Running(4),
            monitor_failed: vec![("vip".into(), "eth0 is down".into())],
            link_down_for: Some(Duration::from_secs(monitor_down)),
            client_link_down_for: carrier_down.map(Duration::from_secs),
            ..obs()
        };
        let out = decide(&cfg(), &owner, &o);
        let restarted = out.iter().any(|a| matches!(a, Action::Restart(_)));
        assert_eq!(restarted, restarts, "{name}: {out:?}");
    }
}

#[test]
fn placement_prefers_nodes_whose_client_links_have_carrier() {
    let mut relocating = st(Some(1), &[(1, 3)], Phase::Started);
    relocating.group.relocate = Some(None);
    let mut to_2 = st(Some(1), &[(1, 3)], Phase::Started);
    to_2.group.relocate = Some(Some(2));
    let c = PolicyConfig {
        eligible: vec![1, 2, 4],
        members: vec![1, 2, 3, 4],
        ..cfg()
    };
    // (name, state, live, links down, expected)
    type Row = (
        &'static str,
        ReplicatedState,
        &'static [NodeId],
        &'static [NodeId],
        Vec<Action>,
    );
    let rows: [Row; 6] = [
        (
            "placement skips the preferred node without carrier",
            st(None, &[], Phase::Stopped),
            &[1, 2, 3, 4],
            &[1],
            vec![assign(Some(2), "placement")],
        ),
        (
            "every node without carrier: the preferred one anyway",
            st(None, &[], Phase::Stopped),
            &[1, 2, 3, 4],
            &[1, 2, 4],
            vec![assign(Some(1), "placement")],
        ),
        (
            "failover skips a node without carrier",
            st(Some(4), &[(4, 3)], Phase::Started),
            &[1, 2, 3],
            &[1],
            vec![assign(Some(2), "owner 4 lost")],
        ),
        (
            "a give-up goes to a node with carrier",
            relocating,
            &[1, 2, 3, 4],
            &[1, 2],
            vec![assign(Some(4), "relocation requested")],
        ),
        (
            "an operator's target is honoured, carrier or not",
            to_2,
            &[1, 2, 3, 4],
            &[2],
            vec![assign(Some(2), "relocation requested")],
        ),
        (
            "nothing to place elsewhere when the owner runs it",
            st(Some(2), &[(2, 3)], Phase::Started),
            &[1, 2, 3, 4],
            &[2],
            vec![],
        ),
    ];
    for (name, state, live, down, want) in rows {
        let o = Observations {
            leader: true,
            live: set(live),
            client_links_down: set(down),
            ..obs()
        };
        let mut out = Vec::new();
        leader_actions(&c, &state, &o, &mut out);
        assert_eq!(without_notices(out), want, "{name}");
    }
}

#[test]
fn failback_does_not_return_the_group_to_a_node_without_carrier() {
    let c = PolicyConfig {
        failback: true,
        ..cfg()
    };
    let s = st(Some(2), &[(2, 3)], Phase::Started);
    for (down, want) in [
        (&[][..], vec![assign(Some(1), "failback")]),
        (&[1][..], vec![]),
    ] {
        let o = Observations {
            leader: true,
            client_links_down: set(down),
            ..obs()
        };
        let mut out = Vec::new();
        leader_actions(&c, &s, &o, &mut out);
        assert_eq!(out, want, "links down on {down:?}");
    }
}

/// Who may take the group when this node's client link is down: heard after the loss (plus
/// the gossip's settling time), gossiping, and with its own link up.
#[test]
fn link_peers_table() {
    use crate::policy::client_link::{PeerLinkFacts, link_peers};
    let p = |id, ms: Option<u64>, gossip, no_carrier| PeerLinkFacts {
        id,
        last_contact_ms: ms,
        has_gossip: gossip,
        no_carrier,
    };
    // (name, peer, qualifies) with the link down for 600 ms
    let rows = [
        ("heard 100 ms ago", p(2, Some(100), true, false), true),
        (
            "heard 549 ms ago (after the loss + 50 ms)",
            p(2, Some(549), true, false),
            true,
        ),
        (
            "heard 550 ms ago: gossip may predate its own loss",
            p(2, Some(550), true, false),
            false,
        ),
        ("heard before the loss", p(2, Some(700), true, false), false),
        ("never heard", p(2, None, true, false), false),
        ("no gossip yet", p(2, Some(100), false, false), false),
        ("its own link is down", p(2, Some(100), true, true), false),
    ];
    for (name, peer, want) in rows {
        assert_eq!(link_peers(ms(600), &[peer]).contains(&2), want, "{name}");
    }
}
