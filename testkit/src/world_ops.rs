//! What each call does to the fake's world, in each state, with oned's refusals (codes and
//! messages from RequestManagerVirtualMachine.cc, RequestManagerHost.cc, DispatchManager,
//! Request.cc and AuthManager.cc of OpenNebula 6.10/7.0). Pure: no I/O, times are arguments.

use super::world::{History, Pending, World, host_state, new_history};
use oneha::opennebula::states::{lcm_state_name, vm_state_name};

/// oned error codes (Request.h).
pub mod code {
    /// AUTHORIZATION (also a locked object).
    pub const AUTHORIZATION: i64 = 0x0200;
    /// NO_EXISTS.
    pub const NO_EXISTS: i64 = 0x0400;
    /// ACTION (wrong state, bad argument).
    pub const ACTION: i64 = 0x0800;
    /// XML_RPC_API.
    pub const XML_RPC_API: i64 = 0x1000;
    /// INTERNAL.
    pub const INTERNAL: i64 = 0x2000;
}

/// VMActions numbers written to HISTORY/ACTION.
mod action {
    pub const MIGRATE: i64 = 1;
    pub const LIVE_MIGRATE: i64 = 2;
    pub const DELETE: i64 = 13;
    pub const DELETE_RECREATE: i64 = 14;
    pub const POFF_MIGRATE: i64 = 48;
    pub const POFF_HARD_MIGRATE: i64 = 49;
}

/// A refused call: error code, message (without the `[method] ` prefix) and `resp_id`.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Refusal {
    /// oned's error code.
    pub code: i64,
    /// The message after `[method] `.
    pub msg: String,
    /// The reply's 4th element.
    pub resp_id: i64,
}

fn refuse(code: i64, msg: impl Into<String>) -> Refusal {
    Refusal {
        code,
        msg: msg.into(),
        resp_id: -1,
    }
}

fn no_vm(id: i64) -> Refusal {
    no_object("virtual machine", id)
}

/// NO_EXISTS for object `what` (oned's object name) `id`.
pub fn no_object(what: &str, id: i64) -> Refusal {
    Refusal {
        code: code::NO_EXISTS,
        msg: format!("Error getting {what} [{id}]."),
        resp_id: id,
    }
}

/// oned's `state_str()`: the LCM state name when ACTIVE, else the state name.
pub fn state_str(state: i64, lcm: i64) -> String {
    if state == 3 {
        lcm_state_name(lcm)
    } else {
        vm_state_name(state)
    }
}

/// The lock check oned makes for an operation of level `op` (1 USE, 2 MANAGE, 4 ADMIN) by
/// oneadmin (uid 0): a lock at level `1..=op` refuses with AUTHORIZATION.
fn lock_check(w: &World, id: i64, op: i64, uid: i64) -> Result<(), Refusal> {
    let vm = w.vm(id).ok_or_else(|| no_vm(id))?;
    match &vm.lock {
        Some(l) if l.locked > 0 && l.locked <= op => Err(refuse(
            code::AUTHORIZATION,
            format!("User [{uid}] : VM is locked. [{id}]."),
        )),
        _ => Ok(()),
    }
}

const ADMIN: i64 = 4;
const MANAGE: i64 = 2;

/// `one.vm.action(action, id)`. Models `resched` and `unresched`.
pub fn vm_action(w: &mut World, act: &str, id: i64, uid: i64, now_ms: u64) -> Result<i64, Refusal> {
    let known = [
        "terminate",
        "terminate-hard",
        "undeploy",
        "undeploy-hard",
        "hold",
        "release",
        "stop",
        "suspend",
        "resume",
        "reboot",
        "reboot-hard",
        "poweroff",
        "poweroff-hard",
    ];
    let op = if matches!(act, "resched" | "unresched") {
        ADMIN
    } else {
        MANAGE
    };
    lock_check(w, id, op, uid)?;
    let delay = w.settings.sched_delay_ms;
    let vm = w.vm_mut(id).ok_or_else(|| no_vm(id))?;
    match act {
        "resched" | "unresched" => {
            let ok = vm.state == 8 || (vm.state == 3 && matches!(vm.lcm(), 3 | 16));
            if !ok {
                return Err(refuse(
                    code::ACTION,
                    format!(
                        "Error performing action \"{act}\": This action is not available for state {}",
                        state_str(vm.state, vm.lcm())
                    ),
                ));
            }
            vm.resched = act == "resched";
            vm.sched_due_ms = vm.resched.then_some(now_ms + delay);
            Ok(id)
        }
        a if known.contains(&a) => Err(refuse(
            code::INTERNAL,
            format!("the fake oned does not model action \"{a}\" (oneha testkit)"),
        )),
        a => Err(refuse(
            code::ACTION,
            format!("Action \"{a}\" is not supported"),
        )),
    }
}

/// `one.vm.recover(id, op)`: 0 failure, 1 success, 2 retry, 3 delete, 4 delete-recreate,
/// 5 delete-db.
pub fn vm_recover(w: &mut World, id: i64, op: i64, uid: i64, now_ms: u64) -> Result<i64, Refusal> {
    if !(0..=5).contains(&op) {
        return Err(refuse(code::ACTION, "Wrong recovery operation code"));
    }
    lock_check(w, id, ADMIN, uid)?;
    let driver = w.settings.driver_delay_ms;
    let sched = w.settings.sched_delay_ms;
    let now = (now_ms / 1000) as i64;
    let vm = w.vm_mut(id).ok_or_else(|| no_vm(id))?;
    let wrong = |what: &str, st: i64, lcm: i64| {
        refuse(
            code::ACTION,
            format!(
                "Could not perform a {what} on VM {id}, wrong state {}.",
                state_str(st, lcm)
            ),
        )
    };
    match op {
        0 | 1 => {
            if vm.state == 11 {
                // CLONING_FAILURE: the image lock is retried; nothing to model.
                return Ok(id);
            }
            if vm.state != 3 {
                return Err(wrong("recover operation", vm.state, vm.lcm()));
            }
            if let Some(p) = vm.pending.take() {
                set_state(vm, p.state, p.lcm_state);
            } else if vm.lcm() == 16 {
                set_state(vm, 3, 3);
            }
            Ok(id)
        }
        2 => {
            if vm.state != 3 {
                return Err(wrong("retry", vm.state, vm.lcm()));
            }
            Ok(id)
        }
        3 | 5 => {
            if vm.state == 6 {
                return Ok(id);
            }
            close_history(vm, now, action::DELETE);
            vm.resched = false;
            vm.sched_due_ms = None;
            if vm.state == 3 && op == 3 && driver > 0 {
                set_state(vm, 3, 23);
                vm.pending = Some(Pending {
                    due_ms: now_ms + driver,
                    state: 6,
                    lcm_state: 0,
                });
            } else {
                vm.pending = None;
                set_state(vm, 6, 0);
                vm.etime = now;
            }
            Ok(id)
        }
        _ => {
            match vm.state {
                0 | 1 | 10 | 11 => {}
                4 | 9 | 2 => {
                    close_history(vm, now, action::DELETE_RECREATE);
                    set_state(vm, 1, 0);
                    vm.sched_due_ms = Some(now_ms + sched);
                }
                3 | 5 | 8 => {
                    close_history(vm, now, action::DELETE_RECREATE);
                    vm.resched = false;
                    let timing = (now_ms, driver, sched);
                    start_driver(vm, 15, (1, 0), timing);
                }
                _ => {
                    return Err(refuse(
                        code::ACTION,
                        "Cannot delete-recreate a VM already in DONE state",
                    ));
                }
            }
            Ok(id)
        }
    }
}

/// `one.vm.migrate(id, hid, live, enforce, ds_id, type)`.
#[allow(clippy::too_many_arguments)]
pub fn vm_migrate(
    w: &mut World,
    id: i64,
    hid: i64,
    live: bool,
    ds_id: i64,
    kind: i64,
    uid: i64,
    now_ms: u64,
) -> Result<i64, Refusal> {
    let host = w.host(hid).ok_or_else(|| no_object("host", hid))?.clone();
    if host.state == host_state::OFFLINE {
        return Err(refuse(
            code::ACTION,
            "Host is offline, cannot use it to deploy VM",
        ));
    }
    if ds_id != -1 && w.datastore(ds_id).is_none() {
        return Err(no_object("datastore", ds_id));
    }
    lock_check(w, id, ADMIN, uid)?;
    let vm = w.vm(id).ok_or_else(|| no_vm(id))?;
    let ok = matches!(vm.state, 5 | 8) || (vm.state == 3 && matches!(vm.lcm(), 3 | 16));
    let Some(last) = vm.last().filter(|_| ok) else {
        return Err(refuse(
            code::ACTION,
            format!(
                "Migrate action is not available for state {}",
                state_str(vm.state, vm.lcm())
            ),
        ));
    };
    if last.hid == hid && (ds_id == -1 || ds_id == last.ds_id) {
        return Err(refuse(
            code::ACTION,
            format!(
                "VM is already running on host [{}] and datastore [{}]",
                last.hid, last.ds_id
            ),
        ));
    }
    let ds_id = if ds_id == -1 { last.ds_id } else { ds_id };
    let ds = w
        .datastore(ds_id)
        .ok_or_else(|| no_object("datastore", ds_id))?
        .clone();
    if ds.tm_mad != last.tm_mad {
        return Err(refuse(
            code::ACTION,
            "Cannot migrate to a system datastore with a different driver",
        ));
    }
    if !ds.clusters.is_empty() && !ds.clusters.contains(&host.cluster_id) {
        return Err(refuse(
            code::ACTION,
            format!(
                "Cannot migrate VM [{id}] to host [{hid}] and system datastore [{ds_id}]. Host is in cluster [{}], and the datastore is in cluster [{}]",
                host.cluster_id,
                ds.clusters
                    .iter()
                    .map(i64::to_string)
                    .collect::<Vec<_>>()
                    .join(",")
            ),
        ));
    }
    // Disks on a local (not shared) system datastore must be copied from the source host:
    // when it is down, the transfer fails (PROLOG_MIGRATE_*_FAILURE), as with a real dead host.
    let source_down = w
        .host(last.hid)
        .is_some_and(|h| h.state == host_state::ERROR);
    let local = w.datastore(last.ds_id).is_some_and(|d| !d.shared);
    let driver = w.settings.driver_delay_ms;
    let sched = w.settings.sched_delay_ms;
    let vm = w.vm_mut(id).ok_or_else(|| no_vm(id))?;
    let (closing, transient, mut after) = match (vm.state, vm.lcm()) {
        (3, 3) if live => (action::LIVE_MIGRATE, 4, (3, 3)),
        (3, 3) => (migrate_action(kind), 7, (3, 3)),
        (3, _) => (migrate_action(kind), 60, (3, 3)),
        (8, _) => (action::MIGRATE, 43, (8, 0)),
        _ => (action::MIGRATE, 45, (5, 0)),
    };
    if source_down && local && matches!(transient, 60 | 43 | 45) {
        after = (3, transient + 1);
    }
    let now = (now_ms / 1000) as i64;
    close_history(vm, now, closing);
    let seq = vm.history.len() as i64;
    vm.history.push(new_history(seq, &host, &ds, now));
    vm.resched = false;
    vm.sched_due_ms = None;
    start_driver(vm, transient, after, (now_ms, driver, sched));
    Ok(id)
}

fn migrate_action(kind: i64) -> i64 {
    match kind {
        1 => action::POFF_MIGRATE,
        2 => action::POFF_HARD_MIGRATE,
        _ => action::MIGRATE,
    }
}

/// `one.vm.lock(id, level, test)`.
pub fn vm_lock(w: &mut World, id: i64, level: i64, uid: i64, now: i64) -> Result<i64, Refusal> {
    w.vm(id).ok_or_else(|| no_vm(id))?;
    let level = match level {
        1 | 4 => 1,
        2 | 3 => level,
        _ => return Err(refuse(code::ACTION, "Wrong lock level specified")),
    };
    w.req_id += 1;
    let req_id = w.req_id;
    let vm = w.vm_mut(id).ok_or_else(|| no_vm(id))?;
    if vm.lock.is_some() {
        return Err(refuse(code::ACTION, "Error trying to lock the resource."));
    }
    vm.lock = Some(super::world::Lock {
        locked: level,
        owner: uid,
        time: now,
        req_id,
    });
    Ok(id)
}

/// `one.vm.unlock(id)` by an admin.
pub fn vm_unlock(w: &mut World, id: i64) -> Result<i64, Refusal> {
    let vm = w.vm_mut(id).ok_or_else(|| no_vm(id))?;
    vm.lock = None;
    Ok(id)
}

/// `one.host.status(id, status)`: 0 enabled, 1 disabled, 2 offline.
pub fn host_status(w: &mut World, id: i64, status: i64) -> Result<i64, Refusal> {
    let h = w.host_mut(id).ok_or_else(|| no_object("host", id))?;
    h.state = match status {
        0 if h.state == host_state::DISABLED && h.last_monitored > 0 => host_state::MONITORED,
        0 => host_state::INIT,
        1 => host_state::DISABLED,
        2 => host_state::OFFLINE,
        _ => return Err(refuse(code::INTERNAL, "Wrong status code")),
    };
    Ok(id)
}

/// A state reported by monitoring for host `id` (InformationManager::_host_state): ERROR puts
/// the host in ERROR (unless DISABLED) and its RUNNING VMs in UNKNOWN; any other state is
/// taken as is. OFFLINE hosts ignore it.
pub fn monitor_host_state(w: &mut World, id: i64, new: i64, message: &str, now: i64) -> bool {
    let survive = w.settings.vms_survive;
    let Some(h) = w.host_mut(id) else {
        return false;
    };
    if h.state == host_state::OFFLINE || h.state == new {
        if new == host_state::MONITORED {
            h.last_monitored = now;
        }
        return false;
    }
    let name = h.name.clone();
    if new == host_state::ERROR {
        if h.state != host_state::DISABLED {
            h.state = host_state::ERROR;
        }
        h.error = Some(format!(
            "{} : Error monitoring Host {name} ({id}): {message}",
            ctime(now)
        ));
        for vid in w.vms_on(id) {
            if let Some(vm) = w.vm_mut(vid).filter(|v| v.state == 3 && v.lcm() == 3) {
                set_state(vm, 3, 16);
                vm.resched = false;
                vm.sched_due_ms = None;
            }
        }
    } else {
        h.state = new;
        h.error = None;
        if new == host_state::MONITORED {
            h.last_monitored = now;
            if survive {
                for vid in w.vms_on(id) {
                    if let Some(vm) = w.vm_mut(vid).filter(|v| v.state == 3 && v.lcm() == 16) {
                        set_state(vm, 3, 3);
                    }
                }
            }
        }
    }
    true
}

/// `secs` (epoch seconds) as C's `ctime` writes it in UTC, e.g. `Fri Dec  4 16:50:54 2026`
/// (oned's `one_util::log_time`, the prefix of TEMPLATE/ERROR).
pub fn ctime(secs: i64) -> String {
    const DAYS: [&str; 7] = ["Sun", "Mon", "Tue", "Wed", "Thu", "Fri", "Sat"];
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    // `YYYY-MM-DDTHH:MM:SSZ`, the civil date in UTC.
    let iso = oneha::opennebula::report::rfc3339(secs);
    let field = |r: std::ops::Range<usize>| iso.get(r).unwrap_or_default();
    let month: usize = field(5..7).parse().unwrap_or(1);
    let day: u32 = field(8..10).parse().unwrap_or(1);
    format!(
        "{} {} {day:>2} {} {}",
        DAYS[(secs.div_euclid(86_400) + 4).rem_euclid(7) as usize],
        MONTHS[month.clamp(1, 12) - 1],
        field(11..19),
        field(0..4)
    )
}

/// Completes the driver operations due by `now_ms`; returns whether anything changed.
pub fn drivers_tick(w: &mut World, now_ms: u64) -> bool {
    let sched = w.settings.sched_delay_ms;
    let mut changed = false;
    for vm in &mut w.vms {
        if vm.pending.as_ref().is_some_and(|p| p.due_ms <= now_ms) {
            finish_pending(vm, now_ms, sched);
            changed = true;
        }
    }
    changed
}

/// The scheduler: deploys PENDING VMs and moves RESCHED ones whose time has come, onto a
/// MONITORED host other than their current one (fewest VMs first). Returns whether anything
/// changed.
pub fn sched_tick(w: &mut World, now_ms: u64) -> bool {
    let delay = w.settings.sched_delay_ms;
    let mut changed = false;
    let ids: Vec<i64> = w.vms.iter().map(|v| v.id).collect();
    for id in ids {
        let Some(vm) = w.vm_mut(id) else { continue };
        if vm.state == 1 && vm.sched_due_ms.is_none() {
            vm.sched_due_ms = Some(now_ms + delay);
            changed = true;
            continue;
        }
        if vm.pending.is_some() || vm.sched_due_ms.is_none_or(|d| d > now_ms) {
            continue;
        }
        let (state, current) = (vm.state, vm.last().map(|h| (h.hid, h.ds_id)));
        let Some(target) = place(w, id, current) else {
            continue;
        };
        let done = if state == 1 {
            deploy(w, id, target, now_ms)
        } else {
            let resched = w.vm(id).is_some_and(|v| v.resched);
            resched && vm_migrate(w, id, target.0, false, target.1, 0, 0, now_ms).is_ok()
        };
        if let Some(vm) = w.vm_mut(id) {
            vm.sched_due_ms = None;
            vm.resched = vm.resched && !done;
        }
        changed = true;
    }
    changed
}

/// A (host, system datastore) for VM `id`, not on `current`'s host.
fn place(w: &World, id: i64, current: Option<(i64, i64)>) -> Option<(i64, i64)> {
    let ds = current
        .and_then(|(_, d)| w.datastore(d))
        .or_else(|| w.datastores.iter().find(|d| d.ds_type == 1))?;
    let _ = id;
    w.hosts
        .iter()
        .filter(|h| h.state == host_state::MONITORED)
        .filter(|h| current.is_none_or(|(hid, _)| hid != h.id))
        .filter(|h| ds.clusters.is_empty() || ds.clusters.contains(&h.cluster_id))
        .min_by_key(|h| (w.vms_on(h.id).len(), h.id))
        .map(|h| (h.id, ds.id))
}

fn deploy(w: &mut World, id: i64, (hid, ds_id): (i64, i64), now_ms: u64) -> bool {
    let (Some(h), Some(d)) = (w.host(hid).cloned(), w.datastore(ds_id).cloned()) else {
        return false;
    };
    let driver = w.settings.driver_delay_ms;
    let sched = w.settings.sched_delay_ms;
    let Some(vm) = w.vm_mut(id) else { return false };
    let seq = vm.history.len() as i64;
    vm.history
        .push(new_history(seq, &h, &d, (now_ms / 1000) as i64));
    start_driver(vm, 1, (3, 3), (now_ms, driver, sched));
    true
}

/// Puts `vm` in ACTIVE/`transient` while a driver works, ending in `after` (STATE,
/// LCM_STATE) `driver` ms after `now_ms` (at once when 0). `timing`: (now_ms, driver, sched).
fn start_driver(
    vm: &mut super::world::Vm,
    transient: i64,
    after: (i64, i64),
    timing: (u64, u64, u64),
) {
    let (now_ms, driver, sched) = timing;
    set_state(vm, 3, transient);
    vm.pending = Some(Pending {
        due_ms: now_ms + driver,
        state: after.0,
        lcm_state: after.1,
    });
    if driver == 0 {
        finish_pending(vm, now_ms, sched);
    }
}

fn finish_pending(vm: &mut super::world::Vm, now_ms: u64, sched: u64) {
    let Some(p) = vm.pending.take() else { return };
    set_state(vm, p.state, p.lcm_state);
    let now = (now_ms / 1000) as i64;
    match p.state {
        6 => vm.etime = now,
        1 => vm.sched_due_ms = Some(now_ms + sched),
        _ => {}
    }
}

fn set_state(vm: &mut super::world::Vm, state: i64, lcm: i64) {
    vm.prev_state = vm.state;
    vm.prev_lcm_state = vm.lcm();
    vm.state = state;
    vm.lcm_state = Some(lcm);
}

fn close_history(vm: &mut super::world::Vm, now: i64, act: i64) {
    if let Some(h) = vm.history.last_mut() {
        close(h, now, act);
    }
}

fn close(h: &mut History, now: i64, act: i64) {
    if h.etime == 0 {
        h.etime = now;
    }
    if h.retime == 0 {
        h.retime = now;
    }
    h.action = act;
}

#[cfg(test)]
#[path = "world_ops_tests.rs"]
mod tests;
