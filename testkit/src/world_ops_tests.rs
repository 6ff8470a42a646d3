//! What each call does in each state (world_ops), against oned's rules.

use super::*;
use crate::world::{Datastore, Host, Lock, Vm, World};

const T0: u64 = 1_700_000_000_000;

fn host(id: i64) -> Host {
    Host {
        id,
        name: format!("node{id}"),
        state: host_state::MONITORED,
        prev_state: None,
        im_mad: "kvm".into(),
        vm_mad: "kvm".into(),
        cluster_id: 0,
        cluster: "default".into(),
        template: Default::default(),
        probe: None,
        last_monitored: 0,
        error: None,
    }
}

fn ds(id: i64, tm: &str, shared: bool) -> Datastore {
    Datastore {
        id,
        name: format!("system{id}"),
        ds_type: 1,
        tm_mad: tm.into(),
        shared,
        clusters: vec![0],
        template: Default::default(),
    }
}

fn vm(id: i64, state: i64, lcm: i64, host: Option<i64>) -> Vm {
    Vm {
        id,
        name: String::new(),
        uname: "oneadmin".into(),
        state,
        lcm_state: Some(lcm),
        prev_state: 0,
        prev_lcm_state: 0,
        resched: false,
        stime: 0,
        etime: 0,
        host,
        ds_id: None,
        user_template: Default::default(),
        lock: None,
        history: Vec::new(),
        pending: None,
        sched_due_ms: None,
    }
}

/// Hosts 1-3 MONITORED; shared system DS 0 and local DS 1; VMs on host 1 in various states.
fn world() -> World {
    let mut locked = vm(14, 3, 3, Some(1));
    locked.lock = Some(Lock {
        locked: 1,
        owner: 0,
        time: 0,
        req_id: 1,
    });
    let mut admin_locked = vm(18, 3, 3, Some(1));
    admin_locked.lock = Some(Lock {
        locked: 3,
        owner: 0,
        time: 0,
        req_id: 2,
    });
    let mut local = vm(17, 3, 3, Some(1));
    local.ds_id = Some(1);
    let mut w = World {
        hosts: vec![host(1), host(2), host(3)],
        datastores: vec![ds(0, "shared", true), ds(1, "ssh", false)],
        vms: vec![
            vm(10, 3, 3, Some(1)),
            vm(11, 3, 16, Some(1)),
            vm(12, 8, 0, Some(1)),
            vm(13, 5, 0, Some(1)),
            locked,
            vm(15, 1, 0, None),
            vm(16, 6, 0, Some(1)),
            local,
            admin_locked,
            vm(19, 3, 1, Some(1)),
        ],
        ..World::default()
    };
    w.settings.sched_delay_ms = 1000;
    w.settings.driver_delay_ms = 0;
    w.complete((T0 / 1000) as i64).unwrap();
    w
}

fn st(w: &World, id: i64) -> (i64, i64) {
    let v = w.vm(id).unwrap();
    (v.state, v.lcm())
}

#[test]
fn resched_is_accepted_for_running_unknown_and_poweroff_only() {
    let mut w = world();
    for id in [10, 11, 12] {
        assert_eq!(vm_action(&mut w, "resched", id, 0, T0), Ok(id));
        let v = w.vm(id).unwrap();
        assert!(v.resched);
        assert_eq!(v.sched_due_ms, Some(T0 + 1000));
    }
    for (id, name) in [
        (13, "SUSPENDED"),
        (15, "PENDING"),
        (16, "DONE"),
        (19, "PROLOG"),
    ] {
        let e = vm_action(&mut w, "resched", id, 0, T0).unwrap_err();
        assert_eq!(e.code, code::ACTION);
        assert_eq!(
            e.msg,
            format!(
                "Error performing action \"resched\": This action is not available for state {name}"
            )
        );
    }
    assert_eq!(vm_action(&mut w, "unresched", 10, 0, T0), Ok(10));
    assert!(!w.vm(10).unwrap().resched);
    let e = vm_action(&mut w, "dance", 10, 0, T0).unwrap_err();
    assert_eq!(
        (e.code, e.msg.as_str()),
        (code::ACTION, "Action \"dance\" is not supported")
    );
}

#[test]
fn locked_vms_are_refused_with_authorization() {
    let mut w = world();
    let before = w.clone();
    for id in [14, 18] {
        let expect = format!("User [0] : VM is locked. [{id}].");
        let e = vm_action(&mut w, "resched", id, 0, T0).unwrap_err();
        assert_eq!(
            (e.code, e.msg.as_str()),
            (code::AUTHORIZATION, expect.as_str())
        );
        for op in [0, 1, 2, 3, 4, 5] {
            let e = vm_recover(&mut w, id, op, 0, T0).unwrap_err();
            assert_eq!(e.code, code::AUTHORIZATION, "op {op}");
        }
        let e = vm_migrate(&mut w, id, 2, false, -1, 0, 0, T0).unwrap_err();
        assert_eq!(e.code, code::AUTHORIZATION);
    }
    assert_eq!(w, before, "a refused call changes nothing");
    assert_eq!(vm_unlock(&mut w, 14), Ok(14));
    assert_eq!(vm_action(&mut w, "resched", 14, 0, T0), Ok(14));
}

#[test]
fn missing_objects_are_no_exists_with_their_id() {
    let mut w = world();
    let e = vm_recover(&mut w, 99, 3, 0, T0).unwrap_err();
    assert_eq!(
        e,
        Refusal {
            code: code::NO_EXISTS,
            msg: "Error getting virtual machine [99].".into(),
            resp_id: 99
        }
    );
    let e = vm_migrate(&mut w, 10, 42, false, -1, 0, 0, T0).unwrap_err();
    assert_eq!(
        (e.msg.as_str(), e.resp_id),
        ("Error getting host [42].", 42)
    );
    let e = host_status(&mut w, 9, 1).unwrap_err();
    assert_eq!(
        (e.code, e.msg.as_str()),
        (code::NO_EXISTS, "Error getting host [9].")
    );
}

#[test]
fn delete_ends_in_done_and_leaves_the_host() {
    let mut w = world();
    assert!(w.vms_on(1).contains(&10));
    assert_eq!(vm_recover(&mut w, 10, 3, 0, T0), Ok(10));
    let v = w.vm(10).unwrap();
    assert_eq!((v.state, v.lcm()), (6, 0));
    assert_eq!(v.etime, (T0 / 1000) as i64);
    assert_eq!(v.last().unwrap().action, 13);
    assert!(!w.vms_on(1).contains(&10));
    // Deleting a DONE VM succeeds and changes nothing.
    let before = w.clone();
    assert_eq!(vm_recover(&mut w, 16, 3, 0, T0), Ok(16));
    assert_eq!(w, before);
    // PENDING and POWEROFF VMs are deleted too.
    assert_eq!(vm_recover(&mut w, 15, 3, 0, T0), Ok(15));
    assert_eq!(vm_recover(&mut w, 12, 5, 0, T0), Ok(12));
    assert_eq!((st(&w, 15), st(&w, 12)), ((6, 0), (6, 0)));
}

#[test]
fn delete_with_a_driver_delay_goes_through_cleanup() {
    let mut w = world();
    w.settings.driver_delay_ms = 500;
    assert_eq!(vm_recover(&mut w, 10, 3, 0, T0), Ok(10));
    assert_eq!(st(&w, 10), (3, 23), "CLEANUP_DELETE");
    assert!(!w.vms_on(1).contains(&10));
    assert!(!drivers_tick(&mut w, T0 + 499));
    assert!(drivers_tick(&mut w, T0 + 500));
    assert_eq!(st(&w, 10), (6, 0));
}

#[test]
fn delete_recreate_makes_the_vm_pending_and_the_scheduler_places_it_elsewhere() {
    let mut w = world();
    assert!(monitor_host_state(&mut w, 1, host_state::ERROR, "down", 0));
    assert_eq!(st(&w, 10), (3, 16));
    assert_eq!(vm_recover(&mut w, 10, 4, 0, T0), Ok(10));
    let v = w.vm(10).unwrap();
    assert_eq!((v.state, v.lcm()), (1, 0));
    assert_eq!(v.history.len(), 1, "oned keeps the history");
    assert_eq!(v.last().unwrap().action, 14);
    assert!(v.last().unwrap().etime > 0);
    assert!(!w.vms_on(1).contains(&10));
    sched_tick(&mut w, T0 + 999);
    assert_eq!(st(&w, 10), (1, 0), "not before the scheduler's delay");
    sched_tick(&mut w, T0 + 1000);
    let v = w.vm(10).unwrap();
    assert_eq!((v.state, v.lcm()), (3, 3));
    assert_eq!(v.history.len(), 2);
    let last = v.last().unwrap();
    assert_eq!((last.seq, last.ds_id), (1, 0));
    assert!(last.hid == 2 || last.hid == 3, "placed on a MONITORED host");
    // Already DONE: refused.
    let e = vm_recover(&mut w, 16, 4, 0, T0).unwrap_err();
    assert_eq!(
        (e.code, e.msg.as_str()),
        (
            code::ACTION,
            "Cannot delete-recreate a VM already in DONE state"
        )
    );
}

#[test]
fn recover_checks_its_operation_and_state() {
    let mut w = world();
    let e = vm_recover(&mut w, 10, 9, 0, T0).unwrap_err();
    assert_eq!(
        (e.code, e.msg.as_str()),
        (code::ACTION, "Wrong recovery operation code")
    );
    let e = vm_recover(&mut w, 12, 1, 0, T0).unwrap_err();
    assert_eq!(
        e.msg,
        "Could not perform a recover operation on VM 12, wrong state POWEROFF."
    );
    let e = vm_recover(&mut w, 15, 2, 0, T0).unwrap_err();
    assert_eq!(
        e.msg,
        "Could not perform a retry on VM 15, wrong state PENDING."
    );
    assert_eq!(vm_recover(&mut w, 11, 1, 0, T0), Ok(11));
    assert_eq!(st(&w, 11), (3, 3), "recover success of UNKNOWN: RUNNING");
}

#[test]
fn host_error_puts_running_vms_in_unknown_and_recovery_brings_them_back() {
    let mut w = world();
    assert!(monitor_host_state(
        &mut w,
        1,
        host_state::ERROR,
        "no beacon",
        5
    ));
    let h = w.host(1).unwrap();
    assert_eq!(h.state, host_state::ERROR);
    assert_eq!(
        h.error.as_deref(),
        Some("Thu Jan  1 00:00:05 1970 : Error monitoring Host node1 (1): no beacon")
    );
    assert_eq!(st(&w, 10), (3, 16));
    assert_eq!(st(&w, 17), (3, 16));
    assert_eq!(st(&w, 12), (8, 0), "POWEROFF stays");
    assert_eq!(st(&w, 19), (3, 1), "transient states stay");
    assert!(!monitor_host_state(
        &mut w,
        1,
        host_state::ERROR,
        "again",
        6
    ));
    assert!(monitor_host_state(&mut w, 1, host_state::MONITORED, "", 7));
    assert_eq!(w.host(1).unwrap().state, host_state::MONITORED);
    assert_eq!(st(&w, 10), (3, 3));
    let mut w2 = world();
    w2.settings.vms_survive = false;
    monitor_host_state(&mut w2, 1, host_state::ERROR, "x", 5);
    monitor_host_state(&mut w2, 1, host_state::MONITORED, "", 6);
    assert_eq!(st(&w2, 10), (3, 16), "dead VMs stay UNKNOWN");
}

#[test]
fn disabled_and_offline_hosts_do_not_go_to_error() {
    let mut w = world();
    assert_eq!(host_status(&mut w, 1, 1), Ok(1));
    monitor_host_state(&mut w, 1, host_state::ERROR, "down", 5);
    assert_eq!(w.host(1).unwrap().state, host_state::DISABLED);
    assert_eq!(st(&w, 10), (3, 16), "its VMs still go UNKNOWN");
    assert_eq!(host_status(&mut w, 2, 2), Ok(2));
    assert!(!monitor_host_state(&mut w, 2, host_state::ERROR, "down", 5));
    assert_eq!(w.host(2).unwrap().state, host_state::OFFLINE);
    assert_eq!(host_status(&mut w, 1, 0), Ok(1));
    assert_eq!(w.host(1).unwrap().state, host_state::MONITORED);
    assert_eq!(host_status(&mut w, 2, 0), Ok(2));
    assert_eq!(w.host(2).unwrap().state, host_state::INIT);
    let e = host_status(&mut w, 2, 7).unwrap_err();
    assert_eq!(
        (e.code, e.msg.as_str()),
        (code::INTERNAL, "Wrong status code")
    );
}

#[test]
fn migrate_checks_state_host_and_target() {
    let mut w = world();
    let e = vm_migrate(&mut w, 10, 1, false, -1, 0, 0, T0).unwrap_err();
    assert_eq!(e.msg, "VM is already running on host [1] and datastore [0]");
    let e = vm_migrate(&mut w, 15, 2, false, -1, 0, 0, T0).unwrap_err();
    assert_eq!(e.msg, "Migrate action is not available for state PENDING");
    host_status(&mut w, 3, 2).unwrap();
    let e = vm_migrate(&mut w, 10, 3, false, -1, 0, 0, T0).unwrap_err();
    assert_eq!(e.msg, "Host is offline, cannot use it to deploy VM");
    let e = vm_migrate(&mut w, 10, 2, false, 1, 0, 0, T0).unwrap_err();
    assert_eq!(
        e.msg,
        "Cannot migrate to a system datastore with a different driver"
    );
    for id in [10, 11, 12, 13] {
        let before = st(&w, id);
        assert_eq!(vm_migrate(&mut w, id, 2, id == 10, -1, 0, 0, T0), Ok(id));
        let v = w.vm(id).unwrap();
        assert_eq!(v.history.len(), 2);
        assert_eq!(v.last().unwrap().hid, 2);
        let expect = match before.0 {
            3 => (3, 3),
            s => (s, 0),
        };
        assert_eq!((v.state, v.lcm()), expect);
    }
    assert_eq!(w.vm(10).unwrap().history[0].action, 2, "live migration");
    assert_eq!(w.vm(11).unwrap().history[0].action, 1);
}

#[test]
fn resched_of_an_unknown_vm_migrates_it_through_prolog_migrate_unknown() {
    let mut w = world();
    w.settings.driver_delay_ms = 300;
    monitor_host_state(&mut w, 1, host_state::ERROR, "down", 0);
    vm_action(&mut w, "resched", 10, 0, T0).unwrap();
    sched_tick(&mut w, T0 + 500);
    assert_eq!(st(&w, 10), (3, 16), "the scheduler waits its delay");
    sched_tick(&mut w, T0 + 1000);
    let v = w.vm(10).unwrap();
    assert_eq!((v.state, v.lcm(), v.resched), (3, 60, false));
    assert_ne!(v.last().unwrap().hid, 1);
    drivers_tick(&mut w, T0 + 1300);
    assert_eq!(st(&w, 10), (3, 3));
}

#[test]
fn the_scheduler_waits_when_no_host_is_monitored() {
    let mut w = world();
    for id in [1, 2, 3] {
        monitor_host_state(&mut w, id, host_state::ERROR, "down", 0);
    }
    vm_action(&mut w, "resched", 10, 0, T0).unwrap();
    sched_tick(&mut w, T0 + 5000);
    let v = w.vm(10).unwrap();
    assert_eq!((v.state, v.lcm(), v.resched), (3, 16, true));
    assert_eq!(v.last().unwrap().hid, 1);
}

#[test]
fn lock_levels_follow_oned() {
    let mut w = world();
    assert_eq!(vm_lock(&mut w, 10, 4, 0, 5), Ok(10));
    assert_eq!(
        w.vm(10).unwrap().lock.as_ref().unwrap().locked,
        1,
        "ALL is USE"
    );
    let e = vm_lock(&mut w, 11, 7, 0, 5).unwrap_err();
    assert_eq!(e.msg, "Wrong lock level specified");
    assert_eq!(vm_lock(&mut w, 11, 3, 0, 5), Ok(11));
    let e = vm_recover(&mut w, 11, 3, 0, T0).unwrap_err();
    assert_eq!(
        e.code,
        code::AUTHORIZATION,
        "ADMIN lock blocks admin operations"
    );
}

#[test]
fn ctime_is_c_ctime_in_utc() {
    assert_eq!(ctime(0), "Thu Jan  1 00:00:00 1970");
    assert_eq!(ctime(1_796_402_054), "Fri Dec  4 16:34:14 2026");
    assert_eq!(ctime(951_782_400), "Tue Feb 29 00:00:00 2000");
    assert_eq!(ctime(1_700_000_000), "Tue Nov 14 22:13:20 2023");
}

#[test]
fn a_cold_migration_off_a_dead_host_fails_for_disks_on_a_local_datastore() {
    let mut w = world();
    monitor_host_state(&mut w, 1, host_state::ERROR, "down", 0);
    // VM 17: local (ssh) system datastore; VM 10: shared.
    assert_eq!(vm_migrate(&mut w, 17, 2, false, -1, 0, 0, T0), Ok(17));
    assert_eq!(st(&w, 17), (3, 61), "PROLOG_MIGRATE_UNKNOWN_FAILURE");
    assert_eq!(vm_migrate(&mut w, 10, 2, false, -1, 0, 0, T0), Ok(10));
    assert_eq!(st(&w, 10), (3, 3));
    // A resched VM on the local datastore ends the same way through the scheduler.
    let mut w = world();
    monitor_host_state(&mut w, 1, host_state::ERROR, "down", 0);
    vm_action(&mut w, "resched", 17, 0, T0).unwrap();
    sched_tick(&mut w, T0 + 1000);
    assert_eq!(st(&w, 17), (3, 61));
}
