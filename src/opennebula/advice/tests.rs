//! Table-driven: every STATE and LCM_STATE number gets advice that fits its class.

use super::*;
use crate::opennebula::pool::History;
use crate::opennebula::states::{LCM_STATES, VM_STATES, classify};

fn vm(state: i64, lcm: i64, action: i64) -> VmRecord {
    VmRecord {
        id: 42,
        name: "web".into(),
        owner: "oneadmin".into(),
        state,
        lcm_state: lcm,
        deploy_id: "one-42".into(),
        stime: 100,
        history: Some(History {
            seq: 3,
            hostname: "node7".into(),
            ds_id: 0,
            action,
            stime: 200,
            pstime: 200,
            petime: 300,
            rstime: 300,
            ..History::default()
        }),
    }
}

fn flags(a: &Advice) -> Vec<String> {
    a.suggestions
        .iter()
        .map(|s| {
            let rest = s.command.strip_prefix("onevm recover --").unwrap();
            let (flag, id) = rest.split_once(' ').unwrap();
            assert_eq!(id, "42", "{}", s.command);
            flag.to_string()
        })
        .collect()
}

#[test]
fn every_lcm_state_number() {
    for n in (0..=71i64).chain([72, 99, -1]) {
        let class = classify(ACTIVE, n);
        if !class.is_stuck() {
            assert!(matches!(n, 0 | 3), "LCM {n}");
            continue;
        }
        let name = states::lcm_state_name(n);
        let a = advise(&vm(ACTIVE, n, 0));
        let f = flags(&a);
        assert!(!a.check.is_empty(), "{name}");
        match class {
            Class::Failure => {
                assert_eq!(
                    f.first().map(String::as_str),
                    Some("retry"),
                    "{name}: {f:?}"
                );
                assert!(f.contains(&"success".to_string()), "{name}: {f:?}");
            }
            Class::Transient | Class::Lost => {
                assert!(
                    !f.contains(&"retry".to_string()),
                    "{name}: retry on transient"
                );
                assert!(f.contains(&"success".to_string()), "{name}: {f:?}");
            }
            Class::Removed | Class::Unknown => {
                assert!(f.is_empty(), "{name}: {f:?}");
                assert!(a.note.is_some(), "{name}");
                assert!(
                    a.check.contains(&format!("LCM_STATE {n}")),
                    "{name}: {}",
                    a.check
                );
            }
            Class::Steady => unreachable!(),
        }
        let resolves =
            name.starts_with("BOOT") || name == "UNKNOWN" || name.starts_with("SHUTDOWN");
        let has_note = a
            .note
            .as_deref()
            .is_some_and(|t| t.contains("next monitoring cycle"));
        assert_eq!(has_note, resolves, "{name}: {:?}", a.note);
        for s in &a.suggestions {
            assert!(!s.why.is_empty(), "{name}");
        }
        if !matches!(class, Class::Removed | Class::Unknown) && name != "UNKNOWN" {
            let names_place = a.check.contains("node7")
                || a.check.contains("oneimage")
                || a.check.contains("onevm show");
            assert!(names_place, "{name}: {}", a.check);
        }
    }
}

#[test]
fn every_vm_state_number() {
    for n in (0..=11i64).chain([12, -3]) {
        let class = classify(n, 3);
        if !class.is_stuck() {
            continue;
        }
        let a = advise(&vm(n, 0, 0));
        let f = flags(&a);
        match n {
            10 | 11 => {
                assert_eq!(f, ["delete"], "STATE {n}");
                assert!(a.check.contains("oneimage"), "{}", a.check);
                assert_eq!(a.since, SinceBasis::Exact(100));
            }
            _ => {
                assert!(f.is_empty(), "STATE {n}");
                assert!(a.note.is_some());
            }
        }
    }
    assert_eq!(
        VM_STATES.iter().filter(|(_, c)| c.is_stuck()).count(),
        3,
        "FAILED, CLONING, CLONING_FAILURE"
    );
    assert_eq!(LCM_STATES.len(), 72);
}

#[test]
fn hotplug_detach_inverts_success_and_failure() {
    for (lcm, attach, detach, dev) in [
        (17, 21, 22, "disk"),
        (25, 23, 24, "NIC"),
        (65, 23, 24, "NIC"),
    ] {
        let a = advise(&vm(ACTIVE, lcm, attach));
        assert_eq!(flags(&a), ["success", "failure"]);
        assert!(a.suggestions[0].why.contains("kept"), "{:?}", a.suggestions);
        assert!(a.check.contains(&format!("{dev} attach")), "{}", a.check);

        let d = advise(&vm(ACTIVE, lcm, detach));
        assert_eq!(flags(&d), ["failure", "success"]);
        assert!(
            d.check.contains("DETACH") && d.check.contains("inverted"),
            "{}",
            d.check
        );
        assert!(d.suggestions[0].why.contains("completes the detach"));

        let other = advise(&vm(ACTIVE, lcm, 0));
        assert!(other.check.contains("neither"), "{}", other.check);
    }
}

#[test]
fn migration_failure_aborts_back_to_previous_host() {
    for lcm in [38, 44, 46, 61] {
        let a = advise(&vm(ACTIVE, lcm, 0));
        assert_eq!(flags(&a), ["retry", "success", "failure"], "LCM {lcm}");
        assert!(a.suggestions[2].why.contains("previous host"));
    }
    // Other failures: --failure would change nothing, so it is not suggested.
    assert_eq!(flags(&advise(&vm(ACTIVE, 39, 0))), ["retry", "success"]);
    assert_eq!(flags(&advise(&vm(ACTIVE, 36, 0))), ["retry", "success"]);
}

#[test]
fn time_in_state_basis() {
    assert_eq!(advise(&vm(ACTIVE, 1, 0)).since, SinceBasis::Exact(200)); // PROLOG: PSTIME
    assert_eq!(advise(&vm(ACTIVE, 2, 0)).since, SinceBasis::Exact(300)); // BOOT: PETIME
    assert_eq!(advise(&vm(ACTIVE, 12, 0)).since, SinceBasis::AtMost(300)); // SHUTDOWN
    let mut v = vm(ACTIVE, 11, 0);
    if let Some(h) = v.history.as_mut() {
        h.estime = 400;
    }
    assert_eq!(advise(&v).since, SinceBasis::Exact(400)); // EPILOG: ESTIME
    v.history = None;
    assert_eq!(advise(&v).since, SinceBasis::None);
    assert!(advise(&v).check.contains("(no host recorded)"));
}
