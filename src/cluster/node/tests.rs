//! The Raft thread against messages a peer could send.

// Protobuf types are built field by field, as in raft-rs's own examples.
#![allow(clippy::field_reassign_with_default)]

use std::collections::HashMap;
use std::time::Duration;

use raft::eraftpb::{Message as RaftMessage, MessageType, Snapshot};

use super::*;

fn settings(dir: &std::path::Path) -> NodeSettings {
    NodeSettings {
        me: 1,
        members: vec![1, 2],
        dir: dir.to_path_buf(),
        tick: Duration::from_millis(100),
        heartbeat_ticks: 1,
        election_ticks: 10,
        autostart: true,
        restore_voters: false,
        relearn_commit: false,
    }
}

/// A snapshot message from leader 2 at term 1 carrying `data` as the state at `index`.
fn snapshot_from_leader(index: u64, data: &[u8]) -> RaftMessage {
    let mut snap = Snapshot::default();
    snap.data = data.to_vec().into();
    let meta = snap.mut_metadata();
    meta.index = index;
    meta.term = 1;
    meta.mut_conf_state().voters = vec![1, 2];
    let mut m = RaftMessage::default();
    m.set_msg_type(MessageType::MsgSnapshot);
    m.from = 2;
    m.to = 1;
    m.term = 1;
    m.set_snapshot(snap);
    m
}

/// Before: the decode error was logged, `applied` moved to the snapshot's index and the
/// snapshot was stored, so the node ran on with a state missing every command up to it.
#[test]
fn an_undecodable_snapshot_stops_the_node_and_is_not_kept() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (handle, thread) = start(settings(dir.path()), HashMap::new()).expect("node starts");
    let mut view = handle.watch();
    handle
        .send(Event::Inbound(Inbound {
            from: 2,
            link: 0,
            msgs: vec![snapshot_from_leader(40, b"not a state")],
            gossip: Vec::new(),
        }))
        .expect("queued");
    let rt = tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
        .expect("runtime");
    let stopped = rt.block_on(async {
        tokio::time::timeout(
            Duration::from_secs(30),
            view.wait_for(|v| v.fatal.is_some()),
        )
        .await
        .map(|r| r.map(|v| v.clone()))
    });
    let v = stopped
        .expect("the node stops within 30 s")
        .expect("view channel open");
    let fatal = v.fatal.as_deref().unwrap_or_default();
    assert!(
        fatal.contains("snapshot (log index 40)") && fatal.contains("cannot read"),
        "{fatal}"
    );
    assert_eq!(
        v.state.applied, 0,
        "applied must not move past unapplied commands"
    );
    thread.join().expect("the Raft thread ends");
    // Nothing of it was kept: the node opens again on its old state.
    let node = Node::open(settings(dir.path()), HashMap::new()).expect("reopens");
    assert_eq!(node.raw.store().last_snapshot().get_metadata().index, 0);
    assert_eq!(node.state.applied, 0);
}

/// The same snapshot, readable, is taken: the state and `applied` come from it.
#[test]
fn a_readable_snapshot_replaces_the_state() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut node = Node::open(settings(dir.path()), HashMap::new()).expect("opens");
    let mut state = ReplicatedState::new(false, vec![1, 2]);
    state.applied = 40;
    let msg = snapshot_from_leader(40, &state.to_snapshot());
    node.raw.step(msg).expect("stepped");
    assert!(node.on_ready().expect("no fatal error"));
    assert_eq!(node.state.applied, 40);
    assert!(!node.state.group.enabled);
    assert_eq!(node.raw.store().last_snapshot().get_metadata().index, 40);
}

/// A member's last contact is the most recent frame on any of its links: keep-alives on the
/// second link alone keep it live (liveness, which feeds fencing, sees no loss).
#[test]
fn a_frame_on_any_link_refreshes_the_members_contact() {
    let dir = tempfile::tempdir().expect("tempdir");
    let (handle, thread) = start(settings(dir.path()), HashMap::new()).expect("node starts");
    assert_eq!(handle.members()[0].last_contact_ms, None);
    let sink = handle.inbound_sink();
    sink(Inbound {
        from: 2,
        link: 0,
        msgs: Vec::new(),
        gossip: b"{}".to_vec(),
    });
    std::thread::sleep(Duration::from_millis(300));
    let before = handle.members()[0].last_contact_ms.expect("heard");
    assert!(before >= 300, "{before}");
    // Link 1 (the first) falls silent; link 2 still delivers.
    sink(Inbound {
        from: 2,
        link: 1,
        msgs: Vec::new(),
        gossip: b"{}".to_vec(),
    });
    let after = handle.members()[0].last_contact_ms.expect("heard");
    assert!(after < before, "contact {after} ms ago, was {before}");
    assert!(handle.seen_all());
    handle.send(Event::Shutdown).expect("queued");
    thread.join().expect("joined");
}
