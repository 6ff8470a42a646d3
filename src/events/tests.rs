use std::collections::HashSet;

use super::*;

#[test]
fn every_kind_has_its_own_name_and_a_valid_stable_message_id() {
    let names: HashSet<&str> = ALL.iter().map(|k| k.name()).collect();
    let ids: HashSet<&str> = ALL.iter().map(|k| k.message_id()).collect();
    assert_eq!((names.len(), ids.len()), (ALL.len(), ALL.len()));
    for k in ALL {
        let id = k.message_id();
        assert_eq!(id.len(), 32, "{id}");
        assert!(
            id.bytes()
                .all(|b| b.is_ascii_hexdigit() && !b.is_ascii_uppercase())
        );
        assert_eq!(Kind::from_name(k.name()), Some(k));
    }
    // Published in docs/alerts.md: changing one breaks operators' journal queries.
    assert_eq!(
        Kind::Failover.message_id(),
        "3f2b6c1e9a0d4b7c8e5f1a2b3c4d5e01"
    );
    assert_eq!(Kind::from_name("no-such-event"), None);
}

/// `check-config` accepts the names in `config::alerts::EVENT_NAMES` (config imports nothing
/// of events): they must be the kinds' names, in the order of [`ALL`].
#[test]
fn the_config_knows_every_event_name_in_order() {
    let names: Vec<&str> = ALL.iter().map(|k| k.name()).collect();
    assert_eq!(names, crate::config::alerts::EVENT_NAMES);
}

#[test]
fn quorum_is_reported_on_changes_only() {
    struct Collect(Mutex<Vec<Kind>>);
    // The sink is process-wide: this is the only test that installs one.
    static SEEN: OnceLock<&'static Collect> = OnceLock::new();
    impl Sink for &'static Collect {
        fn offer(&self, ev: &Event) -> bool {
            self.0.lock().map(|mut v| v.push(ev.kind)).is_ok()
        }
    }
    let c: &'static Collect = SEEN.get_or_init(|| Box::leak(Box::new(Collect(Mutex::default()))));
    install(Box::new(c));
    let voters = [1, 2, 3];
    quorum_seen(false, &voters, |_| true); // first look: nothing
    quorum_seen(false, &voters, |v| *v != 3); // 2 of 3: still quorate
    quorum_seen(false, &voters, |v| *v == 1); // 1 of 3: lost
    quorum_seen(false, &voters, |v| *v == 1);
    quorum_seen(true, &voters, |_| true); // two-node: never reported
    quorum_seen(false, &voters, |_| true); // regained
    let seen: Vec<Kind> = c.0.lock().map(|v| v.clone()).unwrap_or_default();
    assert_eq!(seen, vec![Kind::QuorumLost, Kind::QuorumRegained]);
}

#[test]
fn fence_events_name_their_target_as_the_fence_target() {
    assert!(Kind::FenceFailed.fences() && Kind::CaseFenced.fences());
    assert!(!Kind::Failover.fences());
    let ev = Event::new(Kind::Failover, "x").target("n2").group(7);
    assert_eq!((ev.target.as_deref(), ev.group), (Some("n2"), Some(7)));
}
