//! Storage: what is written survives reopening; torn tails and snapshots reconcile.

// Protobuf types are built field by field, as in raft-rs's own examples.
#![allow(clippy::field_reassign_with_default)]

use super::*;

fn entry(index: u64, term: u64) -> Entry {
    let mut e = Entry::default();
    e.index = index;
    e.term = term;
    e.data = format!("cmd-{index}-{term}").into_bytes().into();
    e
}

fn indexes_terms(s: &DiskStorage) -> Vec<(u64, u64)> {
    let (first, last) = (s.first(), s.last());
    s.entries(first, last + 1, None, GetEntriesContext::empty(false))
        .expect("entries")
        .iter()
        .map(|e| (e.index, e.term))
        .collect()
}

#[test]
fn fresh_storage_has_the_configured_voters() {
    let dir = tempfile::tempdir().expect("tempdir");
    let s = DiskStorage::open(dir.path(), &[1, 2, 3]).expect("open");
    assert_eq!(
        s.initial_state().expect("state").conf_state.voters,
        [1, 2, 3]
    );
    assert_eq!(s.first_index().expect("first"), 1);
    assert_eq!(s.last_index().expect("last"), 0);
    // Voters given at a later open do not override the persisted ones.
    drop(s);
    let s = DiskStorage::open(dir.path(), &[9]).expect("reopen");
    assert_eq!(s.conf_state().voters, [1, 2, 3]);
}

#[test]
fn entries_and_hard_state_survive_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = DiskStorage::open(dir.path(), &[1]).expect("open");
    s.append(&[entry(1, 1), entry(2, 1), entry(3, 2)])
        .expect("append");
    let mut hs = HardState::default();
    hs.term = 2;
    hs.vote = 1;
    hs.commit = 3;
    s.set_hard_state(&hs).expect("hs");
    drop(s);
    let s = DiskStorage::open(dir.path(), &[1]).expect("reopen");
    assert_eq!(indexes_terms(&s), [(1, 1), (2, 1), (3, 2)]);
    assert_eq!(s.hard_state(), &hs);
    assert_eq!(s.term(3).expect("term"), 2);
}

#[test]
fn conflicting_append_truncates_and_survives_reopen() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = DiskStorage::open(dir.path(), &[1]).expect("open");
    s.append(&[entry(1, 1), entry(2, 1), entry(3, 1), entry(4, 1)])
        .expect("append");
    s.append(&[entry(3, 2)]).expect("overwrite");
    assert_eq!(indexes_terms(&s), [(1, 1), (2, 1), (3, 2)]);
    drop(s);
    let s = DiskStorage::open(dir.path(), &[1]).expect("reopen");
    assert_eq!(indexes_terms(&s), [(1, 1), (2, 1), (3, 2)]);
}

#[test]
fn append_with_a_gap_is_refused() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = DiskStorage::open(dir.path(), &[1]).expect("open");
    s.append(&[entry(1, 1)]).expect("append");
    let err = s.append(&[entry(5, 1)]).expect_err("gap");
    assert!(
        err.to_string()
            .contains("append at index 5 outside the log"),
        "{err}"
    );
}

#[test]
fn torn_tail_is_cut_and_appends_continue() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = DiskStorage::open(dir.path(), &[1]).expect("open");
    s.append(&[entry(1, 1), entry(2, 1)]).expect("append");
    drop(s);
    // Simulate a crash in the middle of writing record 3: half a record at the tail.
    let mut rec = Vec::new();
    frame_record(&entry(3, 1).write_to_bytes().expect("encode"), &mut rec);
    let mut f = OpenOptions::new()
        .append(true)
        .open(dir.path().join(LOG))
        .expect("log");
    f.write_all(&rec[..rec.len() / 2]).expect("torn write");
    drop(f);
    let mut s = DiskStorage::open(dir.path(), &[1]).expect("reopen");
    assert_eq!(indexes_terms(&s), [(1, 1), (2, 1)]);
    s.append(&[entry(3, 1)]).expect("append after torn tail");
    drop(s);
    let s = DiskStorage::open(dir.path(), &[1]).expect("reopen again");
    assert_eq!(indexes_terms(&s), [(1, 1), (2, 1), (3, 1)]);
}

#[test]
fn corrupt_record_in_the_middle_stops_the_replay() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = DiskStorage::open(dir.path(), &[1]).expect("open");
    s.append(&[entry(1, 1), entry(2, 1), entry(3, 1)])
        .expect("append");
    drop(s);
    let path = dir.path().join(LOG);
    let mut data = fs::read(&path).expect("read");
    let second = 8 + entry(1, 1).write_to_bytes().expect("encode").len();
    data[second + 9] ^= 0xff; // inside record 2's payload
    fs::write(&path, &data).expect("write");
    let s = DiskStorage::open(dir.path(), &[1]).expect("reopen");
    assert_eq!(indexes_terms(&s), [(1, 1)]);
}

#[test]
fn compaction_keeps_a_tail_and_the_snapshot() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = DiskStorage::open(dir.path(), &[1, 2]).expect("open");
    let ents: Vec<Entry> = (1..=100).map(|i| entry(i, 1 + i / 50)).collect();
    s.append(&ents).expect("append");
    let before = fs::metadata(dir.path().join(LOG)).expect("meta").len();
    s.compact(90, b"state@90".to_vec(), 10).expect("compact");
    assert_eq!(s.first_index().expect("first"), 81);
    assert_eq!(s.last_index().expect("last"), 100);
    assert!(matches!(
        s.entries(50, 60, None, GetEntriesContext::empty(false)),
        Err(raft::Error::Store(StorageError::Compacted))
    ));
    let after = fs::metadata(dir.path().join(LOG)).expect("meta").len();
    assert!(after < before / 3, "log not rewritten: {before} -> {after}");
    drop(s);
    let s = DiskStorage::open(dir.path(), &[1, 2]).expect("reopen");
    assert_eq!(s.first_index().expect("first"), 81);
    let snap = s.snapshot(90, 2).expect("snapshot");
    assert_eq!(snap.get_metadata().index, 90);
    assert_eq!(snap.get_metadata().term, 2);
    assert_eq!(&snap.data[..], b"state@90");
    assert_eq!(snap.get_metadata().get_conf_state().voters, [1, 2]);
}

#[test]
fn installed_snapshot_replaces_the_log() {
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = DiskStorage::open(dir.path(), &[1, 2, 3]).expect("open");
    s.append(&[entry(1, 1), entry(2, 1)]).expect("append");
    let mut snap = Snapshot::default();
    snap.data = b"remote".to_vec().into();
    snap.mut_metadata().index = 50;
    snap.mut_metadata().term = 4;
    snap.mut_metadata().mut_conf_state().voters = vec![1, 2];
    s.apply_snapshot(&snap).expect("apply");
    assert_eq!(s.first_index().expect("first"), 51);
    assert_eq!(s.last_index().expect("last"), 50);
    assert_eq!(s.term(50).expect("term"), 4);
    assert_eq!(s.hard_state().commit, 50);
    s.append(&[entry(51, 4)]).expect("append after snapshot");
    drop(s);
    let s = DiskStorage::open(dir.path(), &[1, 2, 3]).expect("reopen");
    assert_eq!(indexes_terms(&s), [(51, 4)]);
    assert_eq!(s.conf_state().voters, [1, 2]);
}

#[test]
fn stale_log_after_a_snapshot_is_dropped_at_open() {
    // A crash after the snapshot was written but before the log was cut: the log holds
    // entries from another history (term 1 at the snapshot's index 3, which has term 2).
    let dir = tempfile::tempdir().expect("tempdir");
    let mut s = DiskStorage::open(dir.path(), &[1]).expect("open");
    s.append(&[entry(1, 1), entry(2, 1), entry(3, 1), entry(4, 1)])
        .expect("append");
    let mut snap = Snapshot::default();
    snap.mut_metadata().index = 3;
    snap.mut_metadata().term = 2;
    s.write_snapshot(&snap).expect("snapshot only");
    drop(s);
    let s = DiskStorage::open(dir.path(), &[1]).expect("reopen");
    assert_eq!(s.first_index().expect("first"), 4);
    assert_eq!(s.last_index().expect("last"), 3);
}

#[test]
fn damaged_meta_is_an_error_that_says_what_to_do() {
    let dir = tempfile::tempdir().expect("tempdir");
    drop(DiskStorage::open(dir.path(), &[1]).expect("open"));
    let path = dir.path().join(META);
    let mut data = fs::read(&path).expect("read");
    let last = data.len() - 1;
    data[last] ^= 0x55;
    fs::write(&path, &data).expect("write");
    let err = DiskStorage::open(dir.path(), &[1]).err().expect("error");
    let text = err.to_string();
    assert!(
        text.contains("checksum mismatch") && text.contains("rejoin"),
        "{text}"
    );
}
