//! A hypervisor host with a BMC: a host whose "machine" runs while its BMC (`ipmi_sim`, see
//! [`super::bmc`]) says it is powered on, so a real fence agent can power it off over
//! real IPMI.
//!
//! Power is one process: the BMC runs the power script (`power.sh`, its `startcmd`) on a
//! power-on, and the host is on exactly while that process lives, as `ipmi_sim` reports.
//! The script brings eth0 up and starts the host's processes in the host's cgroup and
//! network namespace: `serve-name` on [`HYPERVISOR_PORT`] (the host's SSH daemon, which
//! OpenNebula's drivers and monitoring reach; it answers with the host name), plus the VM
//! stand-ins a test starts. A power-off from the BMC (SIGTERM to the script) takes eth0
//! down, kills every process of the host (`cgroup.kill`), flushes its addresses and ends
//! the script: nothing answers any more, not even ARP. [`Hypervisor::crash`] does the same
//! behind the BMC's back: the host is dead but the BMC still says on, as after a kernel
//! panic.

use std::fs;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use super::bmc::{Bmc, BmcSpec};
use super::cmd::try_run;
use super::host::Host;
use super::wait_until;

/// TCP port where a powered-on hypervisor answers with its name (its SSH daemon).
pub const HYPERVISOR_PORT: u16 = 22;
/// How long a power-on may take until the host answers, and a power-off until it is off.
const POWER_TIMEOUT: Duration = Duration::from_secs(30);

/// A hypervisor host and its BMC. Dereferences to the [`Host`] (namespace, address, cable,
/// `tcp_get`...). Cheap to clone. Processes a test starts with `Host::spawn`/`exec` in
/// its namespace are not part of the machine; [`Hypervisor::start_vm`] starts processes
/// that are.
#[derive(Clone)]
pub struct Hypervisor {
    inner: Arc<HvInner>,
}

struct HvInner {
    host: Host,
    bmc: Bmc,
    dir: PathBuf,
    cgroup: PathBuf,
    started: Mutex<Vec<Child>>,
}

impl Deref for Hypervisor {
    type Target = Host;
    fn deref(&self) -> &Host {
        &self.inner.host
    }
}

impl Hypervisor {
    /// Writes the scripts under `dir` and the BMC's files under `dir/bmc`; starts nothing
    /// (see [`Hypervisor::start`]). `cgroup_root`/`prefix` place the two cgroups,
    /// `PREFIX-NAME` (the machine) and `PREFIX-NAME-bmc` (`ipmi_sim` and the power script).
    pub(super) fn create(
        host: Host,
        bmc_host: Host,
        spec: &BmcSpec,
        dir: &Path,
        cgroup_root: &Path,
        prefix: &str,
    ) -> Hypervisor {
        fs::create_dir_all(dir).unwrap_or_else(|e| panic!("mkdir {}: {e}", dir.display()));
        let cgroup = cgroup_root.join(format!("{prefix}-{}", host.name()));
        let bmc_cgroup = cgroup_root.join(format!("{prefix}-{}", bmc_host.name()));
        let run_in = dir.join("run-in-host.sh");
        write_script(&run_in, &run_in_host_script(&host, &cgroup));
        let power = dir.join("power.sh");
        write_script(
            &power,
            &power_script(&host, &cgroup, &run_in, dir, &dir.join("power.log")),
        );
        let bmc = Bmc::create(
            bmc_host,
            spec,
            host.name(),
            &dir.join("bmc"),
            bmc_cgroup,
            &power,
        );
        Hypervisor {
            inner: Arc::new(HvInner {
                host,
                bmc,
                dir: dir.to_path_buf(),
                cgroup,
                started: Mutex::new(Vec::new()),
            }),
        }
    }

    /// Starts the BMC, which powers the machine on, and waits until the host answers.
    pub(super) fn start(&self) {
        let cg = &self.inner.cgroup;
        fs::create_dir_all(cg).unwrap_or_else(|e| panic!("mkdir {}: {e}", cg.display()));
        self.inner.bmc.start();
        assert!(
            self.wait_serving(POWER_TIMEOUT),
            "{} did not come up; power log:\n{}",
            self.name(),
            self.power_log()
        );
    }

    /// Its BMC (address, credentials, agent options, its own cable).
    pub fn bmc(&self) -> &Bmc {
        &self.inner.bmc
    }

    /// The machine's cgroup (host path): every process of the running host.
    pub fn cgroup(&self) -> &Path {
        &self.inner.cgroup
    }

    /// Host pids of the machine's processes (empty when it is off or crashed).
    pub fn processes(&self) -> Vec<u32> {
        fs::read_to_string(self.inner.cgroup.join("cgroup.procs"))
            .unwrap_or_default()
            .split_whitespace()
            .filter_map(|p| p.parse().ok())
            .collect()
    }

    /// True while the machine has processes (it runs: on, and not crashed).
    pub fn is_running(&self) -> bool {
        fs::read_to_string(self.inner.cgroup.join("cgroup.events"))
            .map(|e| e.contains("populated 1"))
            .unwrap_or(false)
    }

    /// True while the power script lives: what the BMC reports as "Chassis Power is on"
    /// (also after [`Hypervisor::crash`]). Read from the host, no IPMI involved.
    pub fn powered(&self) -> bool {
        self.power_pid().is_some()
    }

    /// Waits up to `timeout` for the host to answer with its name on
    /// [`HYPERVISOR_PORT`] (asked from its own namespace).
    pub fn wait_serving(&self, timeout: Duration) -> bool {
        let ip = self.ip().into();
        wait_until(timeout, || {
            self.tcp_get(ip, HYPERVISOR_PORT).as_deref() == Ok(self.name())
        })
    }

    /// Powers on through the BMC (as an operator would with `ipmitool`) and waits until
    /// the host answers. Panics if it is powered on already (a crashed host too: the BMC
    /// would do nothing) or the BMC refuses.
    pub fn power_on(&self) {
        assert!(
            !self.powered(),
            "{} is already powered on (after crash(), power it off first)",
            self.name()
        );
        self.bmc().chassis_power("on").expect_ok();
        assert!(
            self.wait_serving(POWER_TIMEOUT),
            "{} did not come up; power log:\n{}",
            self.name(),
            self.power_log()
        );
    }

    /// Powers off through the BMC and waits until the BMC reports it off and nothing of
    /// the machine runs. Panics if the BMC refuses.
    pub fn power_off(&self) {
        self.bmc().chassis_power("off").expect_ok();
        assert!(
            wait_until(POWER_TIMEOUT, || !self.powered() && !self.is_running()),
            "{} did not go off; power log:\n{}",
            self.name(),
            self.power_log()
        );
    }

    /// The host dies while its BMC still says on (a kernel panic, a hung machine): eth0
    /// down, every process killed, addresses flushed; the power script lives on. Only a
    /// power-off and power-on through the BMC (a fence) brings it back.
    pub fn crash(&self) {
        assert!(
            self.powered(),
            "{} is powered off: nothing to crash",
            self.name()
        );
        let ns = self.ns();
        try_run(&["ip", "-n", ns, "link", "set", "eth0", "down"])
            .unwrap_or_else(|e| panic!("{e}"))
            .expect_ok();
        assert!(
            kill_cgroup(&self.inner.cgroup),
            "{}: processes survive in {}",
            self.name(),
            self.inner.cgroup.display()
        );
        let _ = try_run(&["ip", "-n", ns, "addr", "flush", "dev", "eth0"]);
        super::node::note_power(&self.inner.dir, "crash (the BMC still says on)");
        self.reap();
    }

    /// Starts a VM stand-in on the running host: `serve-name` answering `name` on TCP
    /// `port` of the host's address, part of the machine (a power-off or crash kills it;
    /// it does not come back at the next power-on, as OpenNebula VMs do not).
    pub fn start_vm(&self, name: &str, port: u16) {
        assert!(self.is_running(), "{} is not running", self.name());
        let run_in = self.inner.dir.join("run-in-host.sh");
        let port_s = port.to_string();
        let argv = [
            run_in.as_os_str(),
            super::testkit().as_ref(),
            "serve-name".as_ref(),
            "--port".as_ref(),
            port_s.as_ref(),
            "--name".as_ref(),
            name.as_ref(),
        ];
        let child = super::cmd::spawn_detached(&argv, &self.inner.dir.join("host.log"))
            .unwrap_or_else(|e| panic!("cannot start VM {name} on {}: {e}", self.name()));
        self.reap();
        super::topology::lock(&self.inner.started).push(child);
        let ip = self.ip().into();
        assert!(
            wait_until(POWER_TIMEOUT, || self.tcp_get(ip, port).as_deref()
                == Ok(name)),
            "VM {name} does not answer on {}:{port}; host log:\n{}",
            self.name(),
            self.host_log()
        );
    }

    /// The power history: `HH:MM:SS.mmm power on|power off (SIGTERM)|crash ...` (UTC).
    pub fn power_log(&self) -> String {
        fs::read_to_string(self.inner.dir.join("power.log")).unwrap_or_default()
    }

    /// What the machine's processes printed.
    pub fn host_log(&self) -> String {
        fs::read_to_string(self.inner.dir.join("host.log")).unwrap_or_default()
    }

    /// Powers off through the power script (SIGTERM, as the BMC would: it reaps its own
    /// children and its parent `ipmi_sim` reaps it, so no zombie is left to the machine's
    /// init), stops the BMC, kills whatever is left of the machine, removes both cgroups;
    /// never panics.
    pub(super) fn teardown(&self) {
        if let Some(pid) = self.power_pid() {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGTERM,
            );
            // Gone from /proc: finished and reaped (killing ipmi_sim earlier would leave
            // the script's last children or the script itself as zombies).
            wait_until(Duration::from_secs(10), || {
                !Path::new(&format!("/proc/{pid}")).exists()
            });
        }
        self.inner.bmc.teardown();
        kill_cgroup(&self.inner.cgroup);
        super::node::remove_cgroup(&self.inner.cgroup);
        for mut c in super::topology::lock(&self.inner.started).drain(..) {
            let _ = c.kill();
            let _ = c.wait();
        }
    }

    /// Pid of the power script while it runs (it is in the BMC's cgroup).
    fn power_pid(&self) -> Option<i32> {
        let pid = fs::read_to_string(self.inner.dir.join("power.pid")).ok()?;
        let pid = pid.trim();
        let procs = fs::read_to_string(self.bmc().cgroup().join("cgroup.procs")).ok()?;
        procs
            .split_whitespace()
            .any(|p| p == pid)
            .then(|| pid.parse().ok())
            .flatten()
    }

    /// Collects VM stand-ins that ended.
    fn reap(&self) {
        super::topology::lock(&self.inner.started).retain_mut(|c| matches!(c.try_wait(), Ok(None)));
    }
}

/// Kills every process of cgroup `cg` (`cgroup.kill`) and waits (10 s at most) until it
/// is empty; true when it is (or does not exist).
pub(super) fn kill_cgroup(cg: &Path) -> bool {
    if fs::write(cg.join("cgroup.kill"), "1").is_err() {
        return !cg.join("cgroup.events").exists();
    }
    wait_until(Duration::from_secs(10), || {
        fs::read_to_string(cg.join("cgroup.events"))
            .map(|e| e.contains("populated 0"))
            .unwrap_or(true)
    })
}

fn write_script(path: &Path, text: &str) {
    use std::os::unix::fs::PermissionsExt;
    fs::write(path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// `run-in-host.sh PROG ARGS...`: runs PROG as part of the machine (its cgroup, its
/// network namespace).
fn run_in_host_script(host: &Host, cgroup: &Path) -> String {
    format!(
        "#!/bin/sh\n\
         # Runs a program as part of test hypervisor {name}: in its cgroup (a power-off\n\
         # kills it) and its network namespace.\n\
         echo $$ > {cg}/cgroup.procs || exit 1\n\
         exec nsenter --net=/run/netns/{ns} \"$@\"\n",
        name = host.name(),
        cg = cgroup.display(),
        ns = host.ns(),
    )
}

/// The power script: the BMC's `startcmd`. Runs in the BMC's namespace and cgroup (so
/// it outlives a crash of the machine); while it lives the machine is on.
fn power_script(host: &Host, cgroup: &Path, run_in: &Path, dir: &Path, log: &Path) -> String {
    format!(
        "#!/bin/sh\n\
         # Power of test hypervisor {name}, run by its BMC (ipmi_sim's startcmd) on a\n\
         # power-on: the machine is on while this process lives. SIGTERM (the BMC's\n\
         # power-off) takes eth0 down, kills every process of the machine, reaps its own\n\
         # children (nobody else would: no zombie may linger), flushes the addresses and\n\
         # ends it.\n\
         NS={ns}\n\
         CG={cg}\n\
         LOG={log}\n\
         PIDFILE={dir}/power.pid\n\
         note() {{ echo \"$(date -u +%H:%M:%S.%N | cut -c1-12) $*\" >> \"$LOG\"; }}\n\
         off() {{\n\
         \x20   trap '' TERM INT\n\
         \x20   ip -n \"$NS\" link set eth0 down\n\
         \x20   [ -n \"$SLEEPER\" ] && kill \"$SLEEPER\" 2>/dev/null\n\
         \x20   echo 1 > \"$CG/cgroup.kill\"\n\
         \x20   i=0\n\
         \x20   while ! grep -q 'populated 0' \"$CG/cgroup.events\"; do\n\
         \x20       i=$((i + 1))\n\
         \x20       [ $i -gt 1000 ] && {{ note \"power off ($1): processes survive in $CG\"; exit 1; }}\n\
         \x20       sleep 0.01\n\
         \x20   done\n\
         \x20   wait\n\
         \x20   ip -n \"$NS\" addr flush dev eth0\n\
         \x20   rm -f \"$PIDFILE\"\n\
         \x20   note \"power off ($1)\"\n\
         \x20   exit 0\n\
         }}\n\
         SLEEPER=\n\
         trap 'off SIGTERM' TERM\n\
         trap 'off SIGINT' INT\n\
         echo $$ > \"$PIDFILE\"\n\
         printf 'addr replace {ip}/24 dev eth0\\nlink set eth0 up\\nroute replace 224.0.0.0/4 dev eth0\\n' \\\n\
         \x20   | ip -n \"$NS\" -batch - || {{ note 'power on failed: eth0'; exit 1; }}\n\
         {run_in} {testkit} serve-name --port {port} --name {name} >> {dir}/host.log 2>&1 &\n\
         note 'power on'\n\
         while :; do\n\
         \x20   sleep 1 &\n\
         \x20   SLEEPER=$!\n\
         \x20   wait $SLEEPER\n\
         done\n",
        name = host.name(),
        ns = host.ns(),
        cg = cgroup.display(),
        log = log.display(),
        dir = dir.display(),
        ip = host.ip(),
        run_in = run_in.display(),
        testkit = super::testkit(),
        port = HYPERVISOR_PORT,
    )
}
