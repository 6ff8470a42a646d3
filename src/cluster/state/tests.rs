//! The state machine: ownership, dirty marks (S3), releases, fences and operator commands.

use super::*;

fn prop(cmd: Command) -> Proposal {
    Proposal {
        request: 1,
        by: 1,
        at_ms: 1_700_000_000_000,
        cmd,
    }
}

fn assign(s: &mut ReplicatedState, index: u64, owner: Option<NodeId>) -> Applied {
    let g = s.group.generation;
    s.apply(
        index,
        &prop(Command::Assign {
            owner,
            expected_generation: g,
            reason: "test".into(),
        }),
    )
}

fn fence(target: NodeId, epoch: u64, success: bool) -> Command {
    Command::Fenced(FenceRecord {
        target,
        by: 2,
        method: "kvm (xvm)".into(),
        action: "off".into(),
        success,
        detail: String::new(),
        at_ms: 1,
        epoch,
    })
}

#[test]
fn first_assignment_may_start_at_once() {
    let mut s = ReplicatedState::new(true, vec![1, 2, 3]);
    assert_eq!(assign(&mut s, 5, Some(1)), Applied::Done);
    assert_eq!(s.group.owner, Some(1));
    assert_eq!(s.group.generation, 1);
    assert_eq!(s.group.phase, Phase::Starting);
    assert_eq!(s.group.dirty.get(&1), Some(&5));
    assert!(s.group.may_start(1));
    assert!(!s.group.may_start(2));
    assert_eq!(s.applied, 5);
}

#[test]
fn disabled_group_never_may_start() {
    let mut s = ReplicatedState::new(false, vec![1, 2]);
    assign(&mut s, 1, Some(1));
    assert!(!s.group.may_start(1));
    s.apply(2, &prop(Command::Enable { on: None }));
    assert!(s.group.may_start(1));
}

#[test]
fn new_owner_waits_for_the_old_owners_release() {
    let mut s = ReplicatedState::new(true, vec![1, 2, 3]);
    assign(&mut s, 1, Some(1));
    assign(&mut s, 2, Some(2));
    assert!(!s.group.may_start(2), "node 1 still dirty");
    assert_eq!(s.group.blockers(2), [1]);
    // A release naming another epoch is refused.
    let stale = s.apply(3, &prop(Command::Released { node: 1, epoch: 99 }));
    assert!(matches!(stale, Applied::Ignored(_)));
    assert!(!s.group.may_start(2));
    s.apply(4, &prop(Command::Released { node: 1, epoch: 1 }));
    assert!(s.group.may_start(2));
}

#[test]
fn only_a_successful_fence_for_the_current_epoch_clears_the_mark() {
    let mut s = ReplicatedState::new(true, vec![1, 2, 3]);
    assign(&mut s, 7, Some(1));
    assign(&mut s, 8, Some(2));
    s.apply(9, &prop(fence(1, 7, false)));
    assert!(!s.group.may_start(2), "a failed fence proves nothing (S5)");
    s.apply(10, &prop(fence(1, 3, true)));
    assert!(!s.group.may_start(2), "a fence for an older epoch is stale");
    s.apply(11, &prop(fence(1, 7, true)));
    assert!(s.group.may_start(2));
    assert_eq!(s.fence_journal.len(), 3);
    assert!(s.fence_journal.iter().all(|r| r.target == 1));
}

#[test]
fn stale_assignment_is_ignored() {
    let mut s = ReplicatedState::new(true, vec![1, 2, 3]);
    assign(&mut s, 1, Some(1));
    let r = s.apply(
        2,
        &prop(Command::Assign {
            owner: Some(3),
            expected_generation: 0,
            reason: "late".into(),
        }),
    );
    assert!(matches!(r, Applied::Ignored(ref why) if why.contains("stale")));
    assert_eq!(s.group.owner, Some(1));
}

#[test]
fn failed_stop_blocks_everyone_until_fenced() {
    let mut s = ReplicatedState::new(true, vec![1, 2, 3]);
    assign(&mut s, 1, Some(1));
    assign(&mut s, 2, Some(2));
    s.apply(
        3,
        &prop(Command::StopFailed {
            node: 1,
            reason: "opennebula.service: stop timed out".into(),
        }),
    );
    assert_eq!(s.group.phase, Phase::Failed);
    // Even a (wrong) release cannot let the group start while the stop failure stands.
    s.apply(4, &prop(Command::Released { node: 1, epoch: 1 }));
    assert!(!s.group.may_start(2), "S8: a failed stop is never ignored");
    s.apply(5, &prop(fence(1, 0, true)));
    assert!(s.group.stop_failed.is_empty());
    assert!(s.group.may_start(2));
    assert_eq!(s.group.phase, Phase::Starting);
}

#[test]
fn start_reports_for_old_generations_are_ignored() {
    let mut s = ReplicatedState::new(true, vec![1, 2]);
    assign(&mut s, 1, Some(1));
    assign(&mut s, 2, Some(2));
    let r = s.apply(
        3,
        &prop(Command::Started {
            node: 1,
            generation: 1,
        }),
    );
    assert!(matches!(r, Applied::Ignored(_)));
    assert_eq!(s.group.phase, Phase::Starting);
    s.apply(
        4,
        &prop(Command::Started {
            node: 2,
            generation: 2,
        }),
    );
    assert_eq!(s.group.phase, Phase::Started);
}

#[test]
fn operator_commands() {
    let mut s = ReplicatedState::new(true, vec![1, 2]);
    let r = s.apply(1, &prop(Command::Relocate { to: Some(2) }));
    assert!(matches!(r, Applied::Ignored(ref why) if why.contains("no owner")));
    assign(&mut s, 2, Some(1));
    s.apply(3, &prop(Command::Relocate { to: Some(2) }));
    assert_eq!(s.group.relocate, Some(Some(2)));
    s.apply(4, &prop(Command::Freeze));
    assert!(s.group.frozen);
    s.apply(5, &prop(Command::Unfreeze));
    assert!(!s.group.frozen);
    s.apply(6, &prop(Command::Restart));
    assert_eq!(s.group.restart_requests, 1);
    s.apply(7, &prop(Command::Disable));
    assert!(!s.group.enabled);
    assert_eq!(s.group.relocate, None);
    s.apply(8, &prop(Command::Enable { on: Some(2) }));
    assert_eq!(s.group.preferred, Some(2));
    assert_eq!(
        s.group.relocate,
        Some(Some(2)),
        "enable --on moves a running group"
    );
}

#[test]
fn fence_journal_is_bounded() {
    let mut s = ReplicatedState::new(true, vec![1, 2]);
    for i in 0..(FENCE_JOURNAL_LEN as u64 + 10) {
        s.apply(i + 1, &prop(fence(2, 0, false)));
    }
    assert_eq!(s.fence_journal.len(), FENCE_JOURNAL_LEN);
}

#[test]
fn snapshot_and_proposal_round_trip() {
    let mut s = ReplicatedState::new(true, vec![1, 2, 3]);
    assign(&mut s, 1, Some(3));
    s.apply(2, &prop(fence(1, 0, true)));
    let back = ReplicatedState::from_snapshot(&s.to_snapshot()).expect("decode");
    assert_eq!(back, s);
    let p = prop(Command::Relocate { to: None });
    assert_eq!(Proposal::decode(&p.encode()).expect("decode"), p);
    assert!(Proposal::decode(b"{\"cmd\":\"nope\"}").is_err());
    assert!(ReplicatedState::from_snapshot(b"garbage").is_err());
}

#[test]
fn same_commands_same_state_on_every_node() {
    let cmds = [
        Command::Assign {
            owner: Some(1),
            expected_generation: 0,
            reason: "a".into(),
        },
        Command::Started {
            node: 1,
            generation: 1,
        },
        Command::Relocate { to: Some(2) },
        Command::Assign {
            owner: Some(2),
            expected_generation: 1,
            reason: "b".into(),
        },
        Command::Released { node: 1, epoch: 1 },
        Command::Started {
            node: 2,
            generation: 2,
        },
    ];
    let run = || {
        let mut s = ReplicatedState::new(true, vec![1, 2, 3]);
        for (i, c) in cmds.iter().enumerate() {
            s.apply(i as u64 + 1, &prop(c.clone()));
        }
        s
    };
    let (a, b) = (run(), run());
    assert_eq!(a, b);
    assert_eq!(a.group.owner, Some(2));
    assert_eq!(a.group.phase, Phase::Started);
    assert_eq!(a.group.dirty.keys().collect::<Vec<_>>(), [&2]);
}

#[test]
fn claims_commit_only_for_the_current_clean_owner() {
    let mut s = ReplicatedState::new(true, vec![1, 2, 3]);
    assign(&mut s, 1, Some(1));
    let claim = |node, generation| prop(Command::Claim { node, generation });
    assert_eq!(s.apply(2, &claim(1, 1)), Applied::Done);
    assert!(
        matches!(s.apply(3, &claim(2, 1)), Applied::Ignored(_)),
        "not the owner"
    );
    assign(&mut s, 4, Some(2));
    assert!(
        matches!(s.apply(5, &claim(1, 1)), Applied::Ignored(_)),
        "a stale owner's claim is refused"
    );
    assert!(
        matches!(s.apply(6, &claim(2, 2)), Applied::Ignored(ref w) if w.contains("[1]")),
        "node 1 has not released"
    );
    s.apply(7, &prop(Command::Released { node: 1, epoch: 1 }));
    assert_eq!(s.apply(8, &claim(2, 2)), Applied::Done);
}

/// Found by the fault campaign (two-node, seed 1795309285318299263, fault #198): the owner
/// was fenced (clearing its mark), booted and claimed again while still the owner; it then
/// ran without a mark, so after the group was assigned elsewhere the next owner's claim
/// committed while it still ran.
#[test]
fn a_claim_marks_the_claimant_again_after_its_mark_was_cleared() {
    let mut s = ReplicatedState::new(true, vec![1, 2]);
    assign(&mut s, 1, Some(1));
    let claim = |node, generation| prop(Command::Claim { node, generation });
    assert_eq!(s.apply(2, &claim(1, 1)), Applied::Done);
    s.apply(3, &prop(fence(1, 1, true)));
    assert!(!s.group.dirty.contains_key(&1), "fenced: holds nothing");
    // Booted again, still the owner: it claims and runs the group.
    assert_eq!(s.apply(4, &claim(1, 1)), Applied::Done);
    assert_eq!(s.group.dirty.get(&1), Some(&4));
    assign(&mut s, 5, Some(2));
    assert!(
        matches!(s.apply(6, &claim(2, 2)), Applied::Ignored(ref w) if w.contains("[1]")),
        "node 1 runs the group until it releases or is fenced"
    );
    s.apply(7, &prop(Command::Released { node: 1, epoch: 4 }));
    assert_eq!(s.apply(8, &claim(2, 2)), Applied::Done);
}

/// Found by the fault campaign (two-node, fault #58 of the replay): node 1's start failed
/// during a link flap, the group ran on node 2, whose restart then failed during another
/// flap; node 1's old failure still ruled it out, and the group stayed failed although
/// node 1 was fine again.
#[test]
fn a_successful_start_forgets_earlier_start_failures() {
    let mut s = ReplicatedState::new(true, vec![1, 2]);
    assign(&mut s, 1, Some(1));
    let failed = |node, generation| {
        prop(Command::StartFailed {
            node,
            generation,
            reason: "interface eth0 is down".into(),
        })
    };
    s.apply(2, &failed(1, 1));
    assert_eq!(s.group.phase, Phase::Failed);
    assign(&mut s, 3, Some(2));
    s.apply(4, &prop(Command::Released { node: 1, epoch: 1 }));
    s.apply(
        5,
        &prop(Command::Started {
            node: 2,
            generation: 2,
        }),
    );
    assert!(
        s.group.start_failed.is_empty(),
        "{:?}",
        s.group.start_failed
    );
    s.apply(6, &failed(2, 2));
    assert_eq!(
        s.group.start_failed.keys().copied().collect::<Vec<_>>(),
        [2],
        "only the latest failure rules a node out"
    );
}

#[test]
fn logs_and_snapshots_of_earlier_versions_with_a_survivor_record_still_read() {
    let mut s = ReplicatedState::new(true, vec![1, 2]);
    assign(&mut s, 1, Some(1));
    let mut old = serde_json::to_value(&s).expect("json");
    old["survivor"] = serde_json::json!([1, 2]);
    let bytes = serde_json::to_vec(&old).expect("bytes");
    assert_eq!(ReplicatedState::from_snapshot(&bytes), Ok(s.clone()));
    let before = s.clone();
    let entry = prop(Command::Survivor { node: 1, fenced: 2 }).encode();
    let cmd = Proposal::decode(&entry).expect("a Survivor entry decodes");
    assert_eq!(s.apply(2, &cmd), Applied::Done);
    assert_eq!(s.group, before.group);
    assert_eq!(s.voters, before.voters);
}
