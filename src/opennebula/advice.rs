//! For one stuck VM: what to check on the host, which `onevm recover` to run and why.
//!
//! Facts from OpenNebula's `LifeCycleActions.cc` (`recover`, `retry`), summarised in
//! `shared/reference/opennebula.md`. `--retry` is suggested only for `*_FAILURE` states: on a
//! transient state it re-runs a driver action that may already have finished before the old
//! front-end died.

use serde::{Deserialize, Serialize};

use super::pool::VmRecord;
use super::states::{self, ACTIVE, Class};

/// One suggested command.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct Suggestion {
    /// The command to type, e.g. `onevm recover --success 42`.
    pub command: String,
    /// When to choose it and what it does.
    pub why: String,
}

/// Which history timestamp the time in state comes from.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum SinceBasis {
    /// The start of the current phase is recorded (e.g. PSTIME for PROLOG).
    Exact(i64),
    /// Only an earlier event is recorded: the VM has been in this state at most since then.
    AtMost(i64),
    /// No timestamp at all.
    None,
}

/// What the report says about one VM.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Advice {
    /// What to look at before choosing.
    pub check: String,
    /// Commands, most likely first.
    pub suggestions: Vec<Suggestion>,
    /// Extra remark (e.g. "may resolve by itself at the next monitoring cycle").
    pub note: Option<String>,
    /// When the VM entered this state, as far as the history says.
    pub since: SinceBasis,
}

const MONITORING_NOTE: &str = "May resolve by itself at the next monitoring cycle, once the new \
     front-end's monitoring sees the domain; wait a cycle (monitord SYNC_STATE_VM, 180s by \
     default) and run `oneha stuck-vms` again before acting.";

fn cmd(flag: &str, id: i64, why: String) -> Suggestion {
    Suggestion {
        command: format!("onevm recover --{flag} {id}"),
        why,
    }
}

/// Builds the advice for a VM the classification marked stuck.
pub fn advise(vm: &VmRecord) -> Advice {
    let id = vm.id;
    let host = vm
        .history
        .as_ref()
        .map(|h| h.hostname.as_str())
        .filter(|h| !h.is_empty())
        .unwrap_or("(no host recorded)")
        .to_string();
    let ds = vm
        .history
        .as_ref()
        .map_or_else(|| "?".to_string(), |h| h.ds_id.to_string());
    let dom = if vm.deploy_id.is_empty() {
        format!("one-{id}")
    } else {
        vm.deploy_id.clone()
    };
    let ctx = Ctx { id, host, ds, dom };
    let mut advice = if vm.state == ACTIVE {
        lcm_advice(vm, &ctx)
    } else {
        state_advice(vm, &ctx)
    };
    advice.since = since(vm);
    advice
}

struct Ctx {
    id: i64,
    host: String,
    ds: String,
    dom: String,
}

fn state_advice(vm: &VmRecord, c: &Ctx) -> Advice {
    let id = c.id;
    let (check, suggestions, note) = match vm.state {
        10 => (
            format!(
                "`onevm show {id}` names the images being cloned; `oneimage list`: are they LOCKED? \
                 The datastore driver's answer for the copy was lost with the old front-end. The \
                 VM moves on by itself (to PENDING) once every image is READY."
            ),
            vec![cmd(
                "delete",
                id,
                "if the images will never become READY: removes the VM; delete the LOCKED \
                 images (`oneimage delete`) and instantiate again"
                    .into(),
            )],
            None,
        ),
        11 => (
            format!(
                "`onevm show {id}` and `oneimage list`: which image is in ERROR \
                 (`oneimage show` gives the datastore driver's message)?"
            ),
            vec![cmd(
                "delete",
                id,
                "removes the VM; fix or delete the failed image and instantiate again".into(),
            )],
            None,
        ),
        n => (
            format!(
                "`onevm show {id}`: STATE {n} ({}) is not one OpenNebula sends today; this VM \
                 needs a look by hand",
                states::vm_state_name(n)
            ),
            Vec::new(),
            Some("No command suggested for a state this version of oneha does not know.".into()),
        ),
    };
    Advice {
        check,
        suggestions,
        note,
        since: SinceBasis::None,
    }
}

#[allow(clippy::too_many_lines)]
fn lcm_advice(vm: &VmRecord, c: &Ctx) -> Advice {
    let (id, host, ds, dom) = (c.id, c.host.as_str(), c.ds.as_str(), c.dom.as_str());
    let lcm = vm.lcm_state;
    let name = states::lcm_state_name(lcm);
    let class = states::classify(ACTIVE, lcm);
    let is_failure = class == Class::Failure;
    // Removed and unknown numbers get no command, whatever their name looks like.
    let base = match class {
        Class::Removed | Class::Unknown => "",
        _ => name.trim_end_matches("_FAILURE"),
    };
    let retry = || {
        cmd(
            "retry",
            id,
            "once the cause of the failure is fixed: re-runs the failed driver action".into(),
        )
    };
    let mut note = None;
    let mut s = Vec::new();
    let check;
    match base {
        "PROLOG" => {
            check = format!(
                "Are the VM's disks complete in system datastore {ds} on {host} \
                 (/var/lib/one/datastores/{ds}/{id}/ by default)?"
            );
            s.push(cmd(
                "success",
                id,
                "if every disk is there: the deploy starts (BOOT)".into(),
            ));
            if !is_failure {
                s.push(cmd(
                    "failure",
                    id,
                    "if disks are missing or partial: PROLOG_FAILURE, from where --retry copies again".into(),
                ));
            }
        }
        "PROLOG_MIGRATE"
        | "PROLOG_MIGRATE_POWEROFF"
        | "PROLOG_MIGRATE_SUSPEND"
        | "PROLOG_MIGRATE_UNKNOWN" => {
            check = format!(
                "Were the disks fully copied to the target host {host} (system datastore {ds})? \
                 Are they still intact on the previous host?"
            );
            s.push(cmd(
                "success",
                id,
                format!("if the copy to {host} is complete: the migration continues there"),
            ));
            if is_failure {
                s.push(cmd(
                    "failure",
                    id,
                    "to give up: aborts the migration, the VM goes back to the previous host"
                        .into(),
                ));
            } else {
                s.push(cmd(
                    "failure",
                    id,
                    format!("if the copy is incomplete: {base}_FAILURE, from where --retry copies again or --failure aborts the migration"),
                ));
            }
        }
        "PROLOG_RESUME" | "PROLOG_UNDEPLOY" => {
            let next = if base == "PROLOG_RESUME" {
                "restore"
            } else {
                "deploy"
            };
            check = format!(
                "Are the VM's disks{} back on {host} in system datastore {ds}?",
                if base == "PROLOG_RESUME" {
                    " and checkpoint"
                } else {
                    ""
                }
            );
            s.push(cmd(
                "success",
                id,
                format!("if they are: continues with the {next} on {host}"),
            ));
            if !is_failure {
                s.push(cmd(
                    "failure",
                    id,
                    format!("if not: {base}_FAILURE, from where --retry copies again"),
                ));
            }
        }
        "EPILOG" | "EPILOG_STOP" | "EPILOG_UNDEPLOY" => {
            let (done, what) = match base {
                "EPILOG" => ("DONE", "removed from"),
                "EPILOG_STOP" => ("STOPPED", "copied back from"),
                _ => ("UNDEPLOYED", "copied back from"),
            };
            check = format!(
                "Were the VM's disks {what} {host} (system datastore {ds}, /var/lib/one/datastores/{ds}/{id}/)?"
            );
            s.push(cmd(
                "success",
                id,
                format!("if they were: the VM becomes {done}"),
            ));
            if !is_failure {
                s.push(cmd(
                    "failure",
                    id,
                    format!("if not: {base}_FAILURE, from where --retry runs the epilog again"),
                ));
            }
        }
        "BOOT" | "BOOT_UNKNOWN" | "BOOT_POWEROFF" | "BOOT_SUSPENDED" | "BOOT_STOPPED"
        | "BOOT_UNDEPLOY" | "BOOT_MIGRATE" => {
            check = format!(
                "Is domain {dom} running on {host}? (`virsh -c qemu:///system domstate {dom}` there)"
            );
            s.push(cmd("success", id, "if it is running: RUNNING".into()));
            if !is_failure {
                let to = match base {
                    "BOOT_UNKNOWN" => "UNKNOWN".to_string(),
                    "BOOT_POWEROFF" => "POWEROFF".to_string(),
                    "BOOT_SUSPENDED" => "SUSPENDED".to_string(),
                    other => format!("{other}_FAILURE"),
                };
                s.push(cmd("failure", id, format!("if it is not running: {to}")));
            }
            note = Some(MONITORING_NOTE.to_string());
        }
        "MIGRATE" => {
            check = format!(
                "Where does domain {dom} run: on the target {host} or still on the previous \
                 host? (`virsh -c qemu:///system list` on both)"
            );
            s.push(cmd(
                "success",
                id,
                format!("if it runs on {host}: RUNNING there"),
            ));
            s.push(cmd(
                "failure",
                id,
                "if it still runs on the previous host: RUNNING there".into(),
            ));
        }
        "SAVE_STOP" | "SAVE_SUSPEND" | "SAVE_MIGRATE" => {
            let next = match base {
                "SAVE_STOP" => "EPILOG_STOP",
                "SAVE_SUSPEND" => "SUSPENDED",
                _ => "PROLOG_MIGRATE",
            };
            check = format!(
                "On {host}: is the checkpoint complete in /var/lib/one/datastores/{ds}/{id}/ and \
                 is domain {dom} gone?"
            );
            s.push(cmd(
                "success",
                id,
                format!("if the checkpoint is written and the domain gone: {next}"),
            ));
            s.push(cmd(
                "failure",
                id,
                format!("if the domain still runs: back to RUNNING on {host}"),
            ));
        }
        "SHUTDOWN" | "SHUTDOWN_POWEROFF" | "SHUTDOWN_UNDEPLOY" => {
            let next = match base {
                "SHUTDOWN" => "EPILOG (then DONE)",
                "SHUTDOWN_POWEROFF" => "POWEROFF",
                _ => "EPILOG_UNDEPLOY (then UNDEPLOYED)",
            };
            check = format!(
                "Is domain {dom} gone from {host}? (`virsh -c qemu:///system domstate {dom}`)"
            );
            s.push(cmd("success", id, format!("if it is gone: {next}")));
            s.push(cmd(
                "failure",
                id,
                "if it still runs: back to RUNNING".into(),
            ));
            note = Some(MONITORING_NOTE.to_string());
        }
        "CLEANUP_RESUBMIT" | "CLEANUP_DELETE" => {
            let next = if base == "CLEANUP_DELETE" {
                "DONE"
            } else {
                "PENDING (deployed again)"
            };
            check = format!(
                "Are domain {dom} and /var/lib/one/datastores/{ds}/{id}/ gone from {host}? \
                 Remove leftovers by hand if not."
            );
            s.push(cmd(
                "success",
                id,
                format!("finishes the cleanup: {next} (--failure does the same)"),
            ));
        }
        "UNKNOWN" => {
            check = format!(
                "Is {host} up and monitored (`onehost show`), and is domain {dom} running there?"
            );
            s.push(cmd(
                "success",
                id,
                "marks it RUNNING (--failure does the same); if the domain is in fact gone, \
                 monitoring then moves it to POWEROFF"
                    .into(),
            ));
            note = Some(MONITORING_NOTE.to_string());
        }
        "HOTPLUG" | "HOTPLUG_NIC" | "HOTPLUG_NIC_POWEROFF" => {
            let nic = base != "HOTPLUG";
            let (device, tool, attach_action) = if nic {
                ("NIC", "domiflist", 23)
            } else {
                ("disk", "domblklist", 21)
            };
            let action = vm.history.as_ref().map_or(-1, |h| h.action);
            let look = if base == "HOTPLUG_NIC_POWEROFF" {
                format!(
                    "the VM is powered off: compare its {device}s (`onevm show {id}`) with what the network driver set up on {host}"
                )
            } else {
                format!("`virsh -c qemu:///system {tool} {dom}` on {host}")
            };
            if action == attach_action {
                check = format!(
                    "A {device} attach was in flight (history ACTION {action}). Is the {device} attached? ({look})"
                );
                s.push(cmd(
                    "success",
                    id,
                    format!("if the {device} is attached: kept in the VM"),
                ));
                s.push(cmd(
                    "failure",
                    id,
                    "if it is not: removed from the VM".to_string(),
                ));
            } else if action == attach_action + 1 {
                check = format!(
                    "A {device} DETACH was in flight (history ACTION {action}); oned routes it to \
                     the attach callbacks, so success and failure are inverted. Is the {device} \
                     still attached? ({look})"
                );
                s.push(cmd("failure", id, format!("if the {device} is gone from the domain: completes the detach (removes it from the VM)")));
                s.push(cmd("success", id, format!("if the {device} is still attached: keeps it in the VM (the detach did not happen)")));
            } else {
                check = format!(
                    "History ACTION {action} is neither a {device} attach ({attach_action}) nor \
                     detach ({}): compare the VM's {device}s (`onevm show {id}`) with the \
                     domain ({look}) before choosing",
                    attach_action + 1
                );
                s.push(cmd("success", id, format!("if the domain has the {device} the VM template lists as being attached: kept")));
                s.push(cmd(
                    "failure",
                    id,
                    "if the domain lacks it: removed from the VM".to_string(),
                ));
            }
        }
        "HOTPLUG_SNAPSHOT" => {
            check = format!(
                "Did the system snapshot operation finish? (`virsh -c qemu:///system snapshot-list {dom}` on {host})"
            );
            s.push(cmd(
                "success",
                id,
                "if it finished: recorded as done, VM back to RUNNING".into(),
            ));
            s.push(cmd(
                "failure",
                id,
                "if not: recorded as failed, VM back to RUNNING".into(),
            ));
        }
        "HOTPLUG_SAVEAS"
        | "HOTPLUG_SAVEAS_POWEROFF"
        | "HOTPLUG_SAVEAS_SUSPENDED"
        | "HOTPLUG_SAVEAS_UNDEPLOYED"
        | "HOTPLUG_SAVEAS_STOPPED" => {
            check =
                "Is the new image's file complete in its image datastore? (`oneimage list`: the \
                     target image is LOCKED)"
                    .to_string();
            s.push(cmd("success", id, "if the copy is complete: the image becomes READY, the VM returns to its previous state".into()));
            s.push(cmd(
                "failure",
                id,
                "if not: the save-as is dropped, the VM returns to its previous state".into(),
            ));
        }
        "HOTPLUG_PROLOG_POWEROFF" | "HOTPLUG_EPILOG_POWEROFF" => {
            let (op, where_) = if base == "HOTPLUG_PROLOG_POWEROFF" {
                ("attach", "copied to")
            } else {
                ("detach", "removed from")
            };
            check = format!(
                "A disk {op} of a powered-off VM was in flight: was the disk file {where_} \
                 /var/lib/one/datastores/{ds}/{id}/ on {host}?"
            );
            s.push(cmd(
                "success",
                id,
                format!("if it was: the {op} is kept, VM back to POWEROFF"),
            ));
            s.push(cmd(
                "failure",
                id,
                format!("if not: the {op} is undone, VM back to POWEROFF"),
            ));
        }
        "HOTPLUG_RESIZE" => {
            check = format!(
                "Does domain {dom} have the new CPU/memory? (`virsh -c qemu:///system dominfo {dom}` on {host})"
            );
            s.push(cmd("success", id, "if it has: the new size is kept".into()));
            s.push(cmd(
                "failure",
                id,
                "if not: the old size is restored in the VM".into(),
            ));
        }
        b if b.starts_with("DISK_SNAPSHOT") => {
            check = format!(
                "Did the disk snapshot operation finish in /var/lib/one/datastores/{ds}/{id}/ on \
                 {host}? (the disk's .snap directory, or `qemu-img snapshot -l`)"
            );
            s.push(cmd(
                "success",
                id,
                "if it finished: recorded as done, VM back to its previous state".into(),
            ));
            s.push(cmd(
                "failure",
                id,
                "if not: recorded as failed, VM back to its previous state".into(),
            ));
        }
        b if b.starts_with("DISK_RESIZE") => {
            check = format!(
                "Has the disk grown to the new size on {host}? (`qemu-img info` on the disk in /var/lib/one/datastores/{ds}/{id}/)"
            );
            s.push(cmd(
                "success",
                id,
                "if it has: the new size is recorded".into(),
            ));
            s.push(cmd("failure", id, "if not: the old size is kept".into()));
        }
        "BACKUP" | "BACKUP_POWEROFF" => {
            check = format!(
                "Did the backup finish? (the backup datastore, `oneimage list` for the new backup, and the backup files on {host})"
            );
            s.push(cmd(
                "success",
                id,
                "if it finished: the backup is recorded".into(),
            ));
            s.push(cmd(
                "failure",
                id,
                "if not: the backup is discarded, VM back to its previous state".into(),
            ));
        }
        "RESTORE" => {
            check = format!(
                "Were the VM's disks restored from the backup in /var/lib/one/datastores/{ds}/{id}/ on {host}?"
            );
            s.push(cmd(
                "success",
                id,
                "if they were: the restore is recorded".into(),
            ));
            s.push(cmd(
                "failure",
                id,
                "if not: the restore is recorded as failed".into(),
            ));
        }
        _ => {
            let what = if class == Class::Removed {
                format!("LCM_STATE {lcm} ({name}) is no longer used by OpenNebula")
            } else {
                format!("LCM_STATE {lcm} is unknown to this version of oneha (a newer OpenNebula?)")
            };
            check = format!("`onevm show {id}`: {what}; look at the VM by hand");
            note = Some(
                "No command suggested for a state this version of oneha does not know.".into(),
            );
        }
    }
    if is_failure {
        s.insert(0, retry());
    }
    Advice {
        check,
        suggestions: s,
        note,
        since: SinceBasis::None,
    }
}

/// When the VM entered its current phase, from the last history record.
fn since(vm: &VmRecord) -> SinceBasis {
    if vm.state != ACTIVE {
        // CLONING starts when the VM is created.
        return if vm.stime > 0 {
            SinceBasis::Exact(vm.stime)
        } else {
            SinceBasis::None
        };
    }
    let Some(h) = &vm.history else {
        return SinceBasis::None;
    };
    let name = states::lcm_state_name(vm.lcm_state);
    let pos = |t: i64| (t > 0).then_some(t);
    let exact = if name.starts_with("PROLOG") {
        pos(h.pstime)
    } else if name.starts_with("BOOT") {
        pos(h.petime).or(pos(h.rstime))
    } else if name.starts_with("EPILOG") {
        pos(h.estime)
    } else {
        None
    };
    if let Some(t) = exact {
        return SinceBasis::Exact(t);
    }
    let latest = [h.stime, h.pstime, h.petime, h.rstime, h.estime]
        .into_iter()
        .filter(|t| *t > 0)
        .max();
    latest.map_or(SinceBasis::None, SinceBasis::AtMost)
}

#[cfg(test)]
mod tests;
