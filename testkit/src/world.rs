//! The fake oned's world: hosts, datastores, VMs and hooks, as a world file describes them and
//! as the state file keeps them (the same format: a state file is a world file with the
//! runtime fields filled in).
//!
//! Two fake oned processes started one after another with the same `--state FILE` continue
//! the same world, like two oned front-ends sharing one database.

use std::collections::BTreeMap;
use std::path::{Path, PathBuf};

use serde::{Deserialize, Serialize};

/// Host STATE numbers (include/Host.h).
pub mod host_state {
    /// INIT: enabled, not monitored yet.
    pub const INIT: i64 = 0;
    /// MONITORED.
    pub const MONITORED: i64 = 2;
    /// ERROR: monitoring failed.
    pub const ERROR: i64 = 3;
    /// DISABLED by an admin.
    pub const DISABLED: i64 = 4;
    /// OFFLINE by an admin.
    pub const OFFLINE: i64 = 8;
}

/// Timings and behaviour of the fake's monitord, scheduler and drivers.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields, default)]
pub struct Settings {
    /// A probed host goes to ERROR after this long without a successful probe
    /// (monitord's `MONITORING_INTERVAL_HOST`).
    pub monitoring_interval_ms: u64,
    /// How often probes run (monitord's `BEACON_HOST`); also the tick of the scheduler.
    pub beacon_interval_ms: u64,
    /// A VM to schedule (PENDING, or RESCHED=1) is placed after this long.
    pub sched_delay_ms: u64,
    /// Driver operations (cleanup, migration, deployment) take this long; 0: at once.
    pub driver_delay_ms: u64,
    /// When a host leaves ERROR, its UNKNOWN VMs are seen running again (RUNNING), as
    /// monitoring does when they survived.
    pub vms_survive: bool,
    /// Where hook runs are logged (JSON lines); none: not logged to a file.
    pub hook_log: Option<PathBuf>,
    /// Answers to VM actions (`one.vm.action`, `one.vm.recover`, `one.vm.migrate`) come
    /// this long after the change is applied (and saved): a slow oned, so a test can cut a
    /// client off between oned's change and its answer. 0: at once.
    pub action_delay_ms: u64,
}

impl Default for Settings {
    fn default() -> Settings {
        Settings {
            monitoring_interval_ms: 30_000,
            beacon_interval_ms: 1_000,
            sched_delay_ms: 1_000,
            driver_delay_ms: 0,
            vms_survive: true,
            hook_log: None,
            action_delay_ms: 0,
        }
    }
}

fn kvm() -> String {
    "kvm".into()
}
fn default_cluster() -> String {
    "default".into()
}
fn monitored() -> i64 {
    host_state::MONITORED
}
fn oneadmin() -> String {
    "oneadmin".into()
}
fn active() -> i64 {
    3
}
fn system_ds() -> i64 {
    1
}
fn shared_tm() -> String {
    "shared".into()
}
fn yes() -> bool {
    true
}
fn cluster_zero() -> Vec<i64> {
    vec![0]
}

/// A hypervisor host.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Host {
    /// ID.
    pub id: i64,
    /// NAME (the hostname VMs' history records name).
    pub name: String,
    /// STATE (see [`host_state`]); default MONITORED.
    #[serde(default = "monitored")]
    pub state: i64,
    /// PREV_STATE; default: the state.
    #[serde(default)]
    pub prev_state: Option<i64>,
    /// IM_MAD.
    #[serde(default = "kvm")]
    pub im_mad: String,
    /// VM_MAD.
    #[serde(default = "kvm")]
    pub vm_mad: String,
    /// CLUSTER_ID.
    #[serde(default)]
    pub cluster_id: i64,
    /// CLUSTER (name).
    #[serde(default = "default_cluster")]
    pub cluster: String,
    /// TEMPLATE attributes an operator set (e.g. `FENCE_IP`).
    #[serde(default)]
    pub template: BTreeMap<String, String>,
    /// `ADDR:PORT` the fake monitord connects to every beacon; none: never probed (the
    /// state changes only by `one.host.status` or the test-only `testkit.host.state`).
    #[serde(default)]
    pub probe: Option<String>,
    /// Last successful monitoring (epoch seconds), MONITORING/TIMESTAMP.
    #[serde(default)]
    pub last_monitored: i64,
    /// The monitoring error (TEMPLATE/ERROR) while in ERROR.
    #[serde(default)]
    pub error: Option<String>,
}

/// A datastore.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Datastore {
    /// ID.
    pub id: i64,
    /// NAME.
    pub name: String,
    /// TYPE: 0 IMAGE, 1 SYSTEM (default), 2 FILE.
    #[serde(rename = "type", default = "system_ds")]
    pub ds_type: i64,
    /// TM_MAD (`shared`, `ssh`, `ceph`, ...).
    #[serde(default = "shared_tm")]
    pub tm_mad: String,
    /// TEMPLATE/SHARED: YES (default) or NO.
    #[serde(default = "yes")]
    pub shared: bool,
    /// CLUSTERS/ID.
    #[serde(default = "cluster_zero")]
    pub clusters: Vec<i64>,
    /// More TEMPLATE attributes.
    #[serde(default)]
    pub template: BTreeMap<String, String>,
}

/// A VM's LOCK element.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Lock {
    /// LOCKED: 1 USE, 2 MANAGE, 3 ADMIN (4 ALL is stored as 1, as oned does).
    pub locked: i64,
    /// OWNER (user id).
    #[serde(default)]
    pub owner: i64,
    /// TIME (epoch seconds).
    #[serde(default)]
    pub time: i64,
    /// REQ_ID.
    #[serde(default)]
    pub req_id: i64,
}

/// One HISTORY record of a VM.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields, default)]
pub struct History {
    /// SEQ.
    pub seq: i64,
    /// HOSTNAME.
    pub hostname: String,
    /// HID.
    pub hid: i64,
    /// CID.
    pub cid: i64,
    /// DS_ID (system datastore).
    pub ds_id: i64,
    /// VM_MAD.
    pub vm_mad: String,
    /// TM_MAD.
    pub tm_mad: String,
    /// STIME.
    pub stime: i64,
    /// ETIME.
    pub etime: i64,
    /// PSTIME.
    pub pstime: i64,
    /// PETIME.
    pub petime: i64,
    /// RSTIME.
    pub rstime: i64,
    /// RETIME.
    pub retime: i64,
    /// ESTIME.
    pub estime: i64,
    /// EETIME.
    pub eetime: i64,
    /// ACTION (VMActions number of the action that closed the record; 0 none).
    pub action: i64,
}

/// A driver operation in flight: the VM is in a transient state until `due_ms`.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Pending {
    /// When it completes (epoch milliseconds).
    pub due_ms: u64,
    /// STATE afterwards.
    pub state: i64,
    /// LCM_STATE afterwards.
    pub lcm_state: i64,
}

/// A virtual machine.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Vm {
    /// ID.
    pub id: i64,
    /// NAME; default `vm-ID`.
    #[serde(default)]
    pub name: String,
    /// UNAME (owner); UID is 0 for oneadmin, else 1.
    #[serde(default = "oneadmin")]
    pub uname: String,
    /// STATE; default ACTIVE.
    #[serde(default = "active")]
    pub state: i64,
    /// LCM_STATE; default RUNNING when ACTIVE, else LCM_INIT.
    #[serde(default)]
    pub lcm_state: Option<i64>,
    /// PREV_STATE.
    #[serde(default)]
    pub prev_state: i64,
    /// PREV_LCM_STATE.
    #[serde(default)]
    pub prev_lcm_state: i64,
    /// RESCHED flag.
    #[serde(default)]
    pub resched: bool,
    /// STIME; default: when the world was created.
    #[serde(default)]
    pub stime: i64,
    /// ETIME.
    #[serde(default)]
    pub etime: i64,
    /// World file only: the host the VM was deployed on (makes the first history record).
    #[serde(default, skip_serializing)]
    pub host: Option<i64>,
    /// World file only: its system datastore (default: the first system datastore).
    #[serde(default, skip_serializing)]
    pub ds_id: Option<i64>,
    /// USER_TEMPLATE attributes (e.g. `HA: "no"`, `HA_PRIORITY: "10"`).
    #[serde(default)]
    pub user_template: BTreeMap<String, String>,
    /// LOCK, when locked.
    #[serde(default)]
    pub lock: Option<Lock>,
    /// HISTORY_RECORDS, oldest first.
    #[serde(default)]
    pub history: Vec<History>,
    /// A driver operation in flight.
    #[serde(default)]
    pub pending: Option<Pending>,
    /// When the scheduler places or moves this VM (epoch milliseconds).
    #[serde(default)]
    pub sched_due_ms: Option<u64>,
}

impl Vm {
    /// LCM_STATE as a number.
    pub fn lcm(&self) -> i64 {
        self.lcm_state.unwrap_or(0)
    }
    /// The last history record.
    pub fn last(&self) -> Option<&History> {
        self.history.last()
    }
    /// Whether the VM holds capacity on its last host (is in the host's `VMS`).
    pub fn on_host(&self) -> bool {
        let cleanup = self.state == 3 && matches!(self.lcm(), 15 | 23);
        matches!(self.state, 3 | 5 | 8) && !cleanup && !self.history.is_empty()
    }
}

/// A HOST state hook, run by the fake HEM.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq)]
#[serde(deny_unknown_fields)]
pub struct Hook {
    /// NAME.
    #[serde(default)]
    pub name: String,
    /// STATE that triggers it (`ERROR`, `DISABLED`, ...); default ERROR.
    #[serde(default = "error_state")]
    pub state: String,
    /// COMMAND (a path; run directly, no shell).
    pub command: PathBuf,
    /// ARGUMENTS; `$TEMPLATE` becomes the base64 of the `<HOST>` element.
    #[serde(default)]
    pub arguments: String,
    /// ARGUMENTS_STDIN: the arguments go to stdin instead of argv (default yes).
    #[serde(default = "yes")]
    pub arguments_stdin: bool,
}

fn error_state() -> String {
    "ERROR".into()
}

/// The whole world (world file and state file format).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct World {
    /// Timings and behaviour.
    #[serde(default)]
    pub settings: Settings,
    /// Hosts.
    #[serde(default)]
    pub hosts: Vec<Host>,
    /// Datastores.
    #[serde(default)]
    pub datastores: Vec<Datastore>,
    /// VMs.
    #[serde(default)]
    pub vms: Vec<Vm>,
    /// HOST state hooks.
    #[serde(default)]
    pub hooks: Vec<Hook>,
    /// Last request id handed out (LOCK/REQ_ID).
    #[serde(default)]
    pub req_id: i64,
    /// Every VM action call received (accepted or refused), in order: what a test counts
    /// to tell that each VM was acted on once, across fakes sharing a state file.
    #[serde(default)]
    pub actions: Vec<ActionCall>,
}

/// One VM action call as the fake received it (`one.vm.action`, `one.vm.recover`,
/// `one.vm.migrate`).
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Default)]
#[serde(deny_unknown_fields)]
pub struct ActionCall {
    /// The method.
    pub method: String,
    /// The VM id.
    pub vm: i64,
    /// The action name (`resched`), the recover operation (`4`) or the target host id.
    pub what: String,
    /// Accepted (true) or refused.
    pub ok: bool,
    /// When (ms since the epoch).
    pub at_ms: u64,
}

/// Host state number from a hook's STATE name.
pub fn host_state_number(name: &str) -> Option<i64> {
    Some(match name.to_ascii_uppercase().as_str() {
        "INIT" => host_state::INIT,
        "MONITORED" => host_state::MONITORED,
        "ERROR" => host_state::ERROR,
        "DISABLED" => host_state::DISABLED,
        "OFFLINE" => host_state::OFFLINE,
        _ => return None,
    })
}

impl World {
    /// Parses a world file (YAML or JSON) and checks it; `now` (epoch seconds) fills times.
    pub fn parse(text: &str, what: &str, now: i64) -> Result<World, String> {
        let de = serde_norway::Deserializer::from_str(text);
        let mut w: World = serde_path_to_error::deserialize(de)
            .map_err(|e| format!("{what}: {}: {}", e.path(), e.inner()))?;
        w.complete(now).map_err(|e| format!("{what}: {e}"))?;
        Ok(w)
    }

    /// Reads a world or state file.
    pub fn load(path: &Path, now: i64) -> Result<World, String> {
        let text = std::fs::read_to_string(path)
            .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
        World::parse(&text, &path.display().to_string(), now)
    }

    /// Writes the world to `path` atomically (a temporary file renamed over it).
    pub fn save(&self, path: &Path) -> Result<(), String> {
        let text = serde_json::to_vec(self).map_err(|e| format!("cannot encode the world: {e}"))?;
        let dir = path.parent().filter(|d| !d.as_os_str().is_empty());
        let dir = dir.unwrap_or(Path::new("."));
        let name = path
            .file_name()
            .map_or_else(|| "state".into(), |n| n.to_string_lossy().into_owned());
        let tmp = dir.join(format!(".{name}.{}.tmp", std::process::id()));
        std::fs::write(&tmp, &text)
            .and_then(|()| std::fs::rename(&tmp, path))
            .map_err(|e| format!("cannot write the state file {}: {e}", path.display()))
    }

    /// Checks ids and references, fills defaults (names, LCM states, first history records).
    pub fn complete(&mut self, now: i64) -> Result<(), String> {
        unique(self.hosts.iter().map(|h| h.id), "host")?;
        unique(self.datastores.iter().map(|d| d.id), "datastore")?;
        unique(self.vms.iter().map(|v| v.id), "VM")?;
        self.hosts.sort_by_key(|h| h.id);
        self.datastores.sort_by_key(|d| d.id);
        self.vms.sort_by_key(|v| v.id);
        for h in &mut self.hosts {
            h.prev_state.get_or_insert(h.state);
            if h.state == host_state::MONITORED && h.last_monitored == 0 {
                h.last_monitored = now;
            }
        }
        for hook in &self.hooks {
            if host_state_number(&hook.state).is_none() {
                return Err(format!(
                    "hook `{}`: STATE `{}` is not a host state (INIT, MONITORED, ERROR, DISABLED, OFFLINE)",
                    hook.name, hook.state
                ));
            }
        }
        let first_system = self
            .datastores
            .iter()
            .find(|d| d.ds_type == 1)
            .map(|d| d.id);
        for i in 0..self.vms.len() {
            let vm = &self.vms[i];
            let (id, host, ds) = (vm.id, vm.host, vm.ds_id.or(first_system));
            let vm = &mut self.vms[i];
            if vm.name.is_empty() {
                vm.name = format!("vm-{id}");
            }
            if vm.stime == 0 {
                vm.stime = now - 3600;
            }
            vm.lcm_state
                .get_or_insert(if vm.state == 3 { 3 } else { 0 });
            let Some(hid) = host else { continue };
            vm.host = None;
            if !vm.history.is_empty() {
                continue;
            }
            let ds = ds.ok_or_else(|| format!("VM {id}: no system datastore to place it on"))?;
            let h = self
                .hosts
                .iter()
                .find(|h| h.id == hid)
                .ok_or_else(|| format!("VM {id}: host {hid} does not exist"))?;
            let d = self
                .datastores
                .iter()
                .find(|d| d.id == ds)
                .ok_or_else(|| format!("VM {id}: datastore {ds} does not exist"))?;
            let stime = vm.stime + 10;
            vm.history.push(new_history(0, h, d, stime));
        }
        Ok(())
    }

    /// The host with this id.
    pub fn host(&self, id: i64) -> Option<&Host> {
        self.hosts.iter().find(|h| h.id == id)
    }
    /// The host with this id, to change.
    pub fn host_mut(&mut self, id: i64) -> Option<&mut Host> {
        self.hosts.iter_mut().find(|h| h.id == id)
    }
    /// The datastore with this id.
    pub fn datastore(&self, id: i64) -> Option<&Datastore> {
        self.datastores.iter().find(|d| d.id == id)
    }
    /// The VM with this id.
    pub fn vm(&self, id: i64) -> Option<&Vm> {
        self.vms
            .binary_search_by_key(&id, |v| v.id)
            .ok()
            .and_then(|i| self.vms.get(i))
    }
    /// The VM with this id, to change.
    pub fn vm_mut(&mut self, id: i64) -> Option<&mut Vm> {
        let i = self.vms.binary_search_by_key(&id, |v| v.id).ok()?;
        self.vms.get_mut(i)
    }
    /// IDs of the VMs on host `hid` (its `VMS/ID`).
    pub fn vms_on(&self, hid: i64) -> Vec<i64> {
        self.vms
            .iter()
            .filter(|v| v.on_host() && v.last().is_some_and(|h| h.hid == hid))
            .map(|v| v.id)
            .collect()
    }
}

/// A new history record on host `h` and datastore `d`, opened at `stime`.
pub fn new_history(seq: i64, h: &Host, d: &Datastore, stime: i64) -> History {
    History {
        seq,
        hostname: h.name.clone(),
        hid: h.id,
        cid: h.cluster_id,
        ds_id: d.id,
        vm_mad: h.vm_mad.clone(),
        tm_mad: d.tm_mad.clone(),
        stime,
        pstime: stime,
        petime: stime,
        rstime: stime,
        ..History::default()
    }
}

fn unique(ids: impl Iterator<Item = i64>, what: &str) -> Result<(), String> {
    let mut seen = std::collections::BTreeSet::new();
    for id in ids {
        if !seen.insert(id) {
            return Err(format!("{what} id {id} appears twice"));
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn a_bad_world_file_names_the_key() {
        let e = World::parse("hosts:\n  - {id: 1}\n", "w.yaml", 0).unwrap_err();
        assert!(e.starts_with("w.yaml: hosts[0]"), "{e}");
        assert!(e.contains("name"), "{e}");
        let e = World::parse("vms:\n  - {id: 1, hots: 0}\n", "w.yaml", 0).unwrap_err();
        assert!(e.contains("hots"), "{e}");
        let e = World::parse("vms:\n  - {id: 1, host: 4}\n", "w.yaml", 0).unwrap_err();
        assert!(e.contains("VM 1: no system datastore"), "{e}");
        let e = World::parse(
            "datastores: [{id: 0, name: s}]\nvms:\n  - {id: 1, host: 4}\n",
            "w.yaml",
            0,
        )
        .unwrap_err();
        assert_eq!(e, "w.yaml: VM 1: host 4 does not exist");
        let e = World::parse("hosts: [{id: 1, name: a}, {id: 1, name: b}]", "w", 0).unwrap_err();
        assert_eq!(e, "w: host id 1 appears twice");
    }

    #[test]
    fn the_state_file_reads_back_the_same_world() {
        let text = "hosts: [{id: 0, name: n, template: {FENCE_IP: 192.0.2.1}}]\n\
                    datastores: [{id: 0, name: s}]\n\
                    vms: [{id: 3, host: 0, lock: {locked: 2}, user_template: {HA: \"no\"}}]\n";
        let w = World::parse(text, "w", 1_700_000_000).unwrap();
        assert_eq!(w.vms[0].history.len(), 1);
        assert_eq!(w.vms_on(0), [3]);
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("state.json");
        w.save(&p).unwrap();
        assert_eq!(World::load(&p, 5).unwrap(), w);
    }
}
