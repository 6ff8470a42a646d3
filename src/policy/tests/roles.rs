//! Tables for the witness's restrictions and the two-node single-voter continuation.

use super::*;

/// A witness, whatever it observes, never starts, stops, restarts or fences: as leader it
/// places the group and re-admits voters, nothing else.
#[test]
fn witness_never_runs_stops_or_fences() {
    let witness = PolicyConfig {
        me: 3,
        witness: true,
        ..cfg()
    };
    let cases: Vec<(&str, ReplicatedState, Observations)> = vec![
        (
            "owner lost: the witness leader reassigns, fences nothing",
            st(Some(1), &[(1, 7)], Phase::Started),
            Observations {
                leader: true,
                live: set(&[2, 3]),
                within_lease: set(&[2, 3]),
                ..obs()
            },
        ),
        (
            "quorum lost while something looks held",
            st(Some(1), &[(1, 7)], Phase::Started),
            Observations {
                held: Held::Running(4),
                within_lease: set(&[3]),
                live: set(&[3]),
                ..obs()
            },
        ),
        (
            "marked dirty and owned by the witness's own id in a corrupt view",
            st(Some(3), &[(3, 7), (1, 5)], Phase::Starting),
            Observations {
                held: Held::Stopped,
                live: set(&[2, 3]),
                ..obs()
            },
        ),
        (
            "not synced, something unknown held",
            st(Some(1), &[], Phase::Started),
            Observations {
                synced: false,
                held: Held::Unknown,
                unsynced_for: Duration::from_secs(60),
                ..obs()
            },
        ),
    ];
    for (name, state, o) in cases {
        let out = decide(&witness, &state, &o);
        assert!(
            out.iter().all(|a| matches!(
                a,
                Action::Propose(Command::Assign { .. }) | Action::AddVoter(_) | Action::Notice(_)
            )),
            "{name}: {out:?}"
        );
    }
    // The same leader facts on the witness still move the group (it is not inert).
    let out = decide(
        &witness,
        &st(Some(1), &[(1, 7)], Phase::Started),
        &Observations {
            leader: true,
            live: set(&[2, 3]),
            ..obs()
        },
    );
    assert_eq!(
        without_notices(out),
        vec![assign(Some(2), "owner 1 lost")],
        "witness leader"
    );
}

type Row<'a> = (
    &'a str,
    &'a PolicyConfig,
    &'a ReplicatedState,
    NodeId,
    Option<u64>,
    Option<bool>,
);

/// After a confirmed fence, two-node: continue as the single voter unless the peer was
/// heard since the fence began.
#[test]
fn continue_alone_table() {
    let two = two_node_cfg();
    let three = cfg();
    let both = ReplicatedState {
        voters: vec![1, 2],
        ..ReplicatedState::default()
    };
    let alone = ReplicatedState {
        voters: vec![1],
        ..ReplicatedState::default()
    };
    let within = Duration::from_millis(800);
    // (name, cfg, state, target, last contact, expected: None / Some(true)=force /
    // Some(false)=notice)
    let rows: Vec<Row> = vec![
        (
            "peer silent since the fence began",
            &two,
            &both,
            2,
            Some(5000),
            Some(true),
        ),
        (
            "peer never heard since start",
            &two,
            &both,
            2,
            None,
            Some(true),
        ),
        (
            "peer heard during the fence: it runs",
            &two,
            &both,
            2,
            Some(100),
            Some(false),
        ),
        (
            "heard exactly at the bound counts as silent",
            &two,
            &both,
            2,
            Some(800),
            Some(true),
        ),
        ("already the single voter", &two, &alone, 2, None, None),
        ("not two-node", &three, &both, 2, None, None),
        (
            "never alone because of fencing itself",
            &two,
            &both,
            1,
            None,
            None,
        ),
    ];
    for (name, c, s, target, last, want) in rows {
        let got = continue_alone(c, s, target, last, within);
        let kind = got.as_ref().map(|a| match a {
            Action::ForceSingleVoter => true,
            Action::Notice(_) => false,
            other => panic!("{name}: unexpected {other:?}"),
        });
        assert_eq!(kind, want, "{name}: {got:?}");
    }
}

/// Two-node splits: who fences, and when (issue 16: the active side wins every split).
/// Rows: (name, owner in this node's view, held here, peer lost for, for how long the peer
/// has said it lost us (ms; the confirmation is 1 s), fence now).
#[test]
fn two_node_split_table() {
    type Split = (
        &'static str,
        Option<NodeId>,
        Held,
        Option<u64>,
        Option<u64>,
        bool,
    );
    let rows: Vec<Split> = vec![
        (
            "symmetric, running here: fence at once",
            Some(1),
            Held::Running(4),
            Some(0),
            None,
            true,
        ),
        (
            "symmetric, passive within its delay: wait",
            Some(2),
            Held::Stopped,
            Some(2),
            None,
            false,
        ),
        (
            "symmetric, passive past its delay: fence",
            Some(2),
            Held::Stopped,
            Some(6),
            None,
            true,
        ),
        (
            "agent just restarted on the owner, group found running: active, fence at once",
            Some(1),
            Held::Unknown,
            Some(0),
            None,
            true,
        ),
        (
            "agent just restarted, found something running, not the owner: passive",
            Some(2),
            Held::Unknown,
            Some(0),
            None,
            false,
        ),
        (
            "one-way: the peer lost us, we hear it, running here: fence first",
            Some(1),
            Held::Running(4),
            None,
            Some(1000),
            true,
        ),
        (
            "one-way: the peer lost us, we hear it, passive: let it fence us",
            Some(2),
            Held::Stopped,
            None,
            Some(1000),
            false,
        ),
        (
            "in touch both ways: nothing",
            Some(1),
            Held::Running(4),
            None,
            None,
            false,
        ),
        (
            "the peer still says it lost us, heard again just now (a flap): wait",
            Some(1),
            Held::Running(4),
            None,
            Some(0),
            false,
        ),
        (
            "the peer has said it lost us for 0.9 s: not yet",
            Some(1),
            Held::Running(4),
            None,
            Some(900),
            false,
        ),
    ];
    for (name, owner, held, lost_s, lost_me, want) in rows {
        let mut s = st(owner, &[], Phase::Started);
        s.voters = vec![1, 2];
        let o = Observations {
            held,
            live: if lost_s.is_some() {
                set(&[1])
            } else {
                set(&[1, 2])
            },
            within_lease: set(&[1]),
            peer_lost_for: lost_s.map(Duration::from_secs),
            peer_lost_me_for: lost_me.map(Duration::from_millis),
            ..obs()
        };
        let out = decide(&two_node_cfg(), &s, &o);
        let fenced = out
            .iter()
            .any(|a| matches!(a, Action::Fence { target: 2, .. }));
        assert_eq!(fenced, want, "{name}: {out:?}");
    }
}
