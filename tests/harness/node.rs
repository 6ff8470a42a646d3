//! A cluster node: a host whose PID 1 is systemd, in pid+mount namespaces of its own, in
//! a cgroup of its own, with private directories that survive power cycles.

use std::fs;
use std::ops::Deref;
use std::path::{Path, PathBuf};
use std::process::Child;
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::cmd::{CmdOutput, run_cmd, run_with_input, try_run};
use super::host::Host;
use super::spec::NodeSpec;
use super::units;
use super::wait_until;

/// How long a boot may take before the test fails (about 0.3 s normally).
const BOOT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a powered-off node's processes may take to vanish.
const POWER_OFF_TIMEOUT: Duration = Duration::from_secs(10);

/// Host-side directories of a node, kept across power cycles.
pub struct NodeDirs {
    /// Bound over /etc/systemd/system.
    pub units: PathBuf,
    /// Bound over /usr/lib/systemd/system (hides the distribution's units).
    pub empty: PathBuf,
    /// Bound over /etc/oneha.
    pub etc: PathBuf,
    /// Bound over /var/lib/oneha.
    pub state: PathBuf,
    /// Bound over /etc/init.d.
    pub initd: PathBuf,
    /// Bound over /var/log/oneha; also holds `console.log` (systemd's own output).
    pub log: PathBuf,
    /// The boot script.
    pub boot: PathBuf,
    /// Bound over /etc/hostname (systemd sets the hostname from it).
    pub hostname: PathBuf,
    /// Powers the node off (see [`Node::poweroff_script`]).
    pub poweroff: PathBuf,
    /// Host pid of PID 1 while the node runs (for the power-off script).
    pub pid1: PathBuf,
    /// Held (flock) by a boot until PID 1 is known and by the power-off script.
    pub power_lock: PathBuf,
}

impl NodeDirs {
    fn create(root: &Path) -> NodeDirs {
        let dirs = NodeDirs {
            units: root.join("units"),
            empty: root.join("empty"),
            etc: root.join("etc-oneha"),
            state: root.join("var-lib-oneha"),
            initd: root.join("init.d"),
            log: root.join("log"),
            boot: root.join("boot.sh"),
            hostname: root.join("hostname"),
            poweroff: root.join("poweroff.sh"),
            pid1: root.join("pid1"),
            power_lock: root.join("power.lock"),
        };
        for d in [
            &dirs.units,
            &dirs.empty,
            &dirs.etc,
            &dirs.state,
            &dirs.initd,
            &dirs.log,
        ] {
            fs::create_dir_all(d).unwrap_or_else(|e| panic!("mkdir {}: {e}", d.display()));
        }
        dirs
    }
}

/// A node. Dereferences to its [`Host`] (namespace, address, faults, `exec`).
/// Cheap to clone: clones control the same node.
#[derive(Clone)]
pub struct Node {
    inner: Arc<NodeInner>,
}

struct NodeInner {
    host: Host,
    dirs: NodeDirs,
    cgroup: PathBuf,
    power: Mutex<Power>,
}

enum Power {
    Off,
    On { unshare: Child, pid1: u32 },
}

impl Deref for Node {
    type Target = Host;
    fn deref(&self) -> &Host {
        &self.inner.host
    }
}

impl Node {
    /// Installs `spec` under `root` and wraps `host`; does not boot.
    pub(super) fn create(host: Host, root: &Path, cgroup: PathBuf, spec: &NodeSpec) -> Node {
        let dirs = NodeDirs::create(root);
        let fill = |text: &str| {
            let text = text
                .replace("{{node}}", host.name())
                .replace("{{ip}}", &host.ip().to_string())
                .replace("{{oneha}}", super::ONEHA);
            if text.contains("{{testkit}}") {
                text.replace("{{testkit}}", super::testkit())
            } else {
                text
            }
        };
        let write = |path: PathBuf, text: &str| {
            fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
            path
        };
        for (name, text) in units::stub_targets() {
            write(dirs.units.join(name), &text);
        }
        write(
            dirs.units.join("test.target"),
            &units::test_target(&spec.wants),
        );
        for name in units::COPIED_UNITS {
            let src = Path::new("/lib/systemd/system").join(name);
            fs::copy(&src, dirs.units.join(name)).unwrap_or_else(|e| {
                panic!("copy {}: {e}; install dbus (make deps)", src.display())
            });
        }
        for (name, text) in &spec.units {
            write(dirs.units.join(name), &fill(text));
        }
        for (name, text) in &spec.etc {
            // /etc/oneha holds keys: private, as the agent and check-config require.
            let path = dirs.etc.join(name);
            write(path.clone(), &fill(text));
            let _ = std::fs::set_permissions(
                &path,
                std::os::unix::fs::PermissionsExt::from_mode(0o600),
            );
        }
        for (name, text) in &spec.init {
            set_executable(&write(dirs.initd.join(name), &fill(text)));
        }
        write(dirs.hostname.clone(), &format!("{}\n", host.name()));
        set_executable(&write(
            dirs.boot.clone(),
            &units::boot_script(host.name(), &dirs),
        ));
        set_executable(&write(
            dirs.poweroff.clone(),
            &units::poweroff_script(
                &host,
                &cgroup,
                &dirs.pid1,
                &dirs.log.join("power.log"),
                &dirs.power_lock,
            ),
        ));
        Node {
            inner: Arc::new(NodeInner {
                host,
                dirs,
                cgroup,
                power: Mutex::new(Power::Off),
            }),
        }
    }

    /// The network side.
    pub fn host(&self) -> &Host {
        &self.inner.host
    }

    /// Host path of the node's /etc/oneha.
    pub fn etc_dir(&self) -> &Path {
        &self.inner.dirs.etc
    }

    /// Host path of the node's /var/lib/oneha.
    pub fn state_dir(&self) -> &Path {
        &self.inner.dirs.state
    }

    /// Host path of the node's /etc/init.d.
    pub fn initd_dir(&self) -> &Path {
        &self.inner.dirs.initd
    }

    /// Host path of the node's /var/log/oneha (units log there as `UNIT.log`).
    pub fn log_dir(&self) -> &Path {
        &self.inner.dirs.log
    }

    /// The node's cgroup (cgroup2, host path).
    pub fn cgroup(&self) -> &Path {
        &self.inner.cgroup
    }

    /// Contents of `/var/log/oneha/FILE` ("" if missing).
    pub fn log(&self, file: &str) -> String {
        fs::read_to_string(self.log_dir().join(file)).unwrap_or_default()
    }

    /// What `unit` wrote (units log to `/var/log/oneha/UNIT.log`).
    pub fn unit_log(&self, unit: &str) -> String {
        self.log(&format!("{unit}.log"))
    }

    /// True while PID 1 runs.
    pub fn is_on(&self) -> bool {
        matches!(*self.power(), Power::On { .. })
    }

    /// Host pid of the node's PID 1 (systemd); `None` when off.
    pub fn pid1(&self) -> Option<u32> {
        match *self.power() {
            Power::On { pid1, .. } => Some(pid1),
            Power::Off => None,
        }
    }

    /// Boots: network configured as after a real boot (base address, link up, multicast
    /// route), then systemd as PID 1; returns when systemd reports the boot finished, or when
    /// the node is powered off meanwhile (a power-off waits until PID 1 is known).
    pub fn boot(&self) {
        self.boot_with_cable(true);
    }

    /// Boots with the cable still pulled (the node sees its link down from the start).
    pub fn boot_unplugged(&self) {
        self.boot_with_cable(false);
    }

    fn boot_with_cable(&self, cable: bool) {
        let mut power = self.power();
        assert!(
            matches!(*power, Power::Off),
            "{} is already running",
            self.name()
        );
        // A power-off (the fence hook) waits until PID 1 is known, then kills the new boot.
        let lock = fs::File::options()
            .create(true)
            .append(true)
            .open(&self.inner.dirs.power_lock)
            .unwrap_or_else(|e| panic!("power lock of {}: {e}", self.name()));
        let lock = nix::fcntl::Flock::lock(lock, nix::fcntl::FlockArg::LockExclusive)
            .unwrap_or_else(|(_, e)| panic!("power lock of {}: {e}", self.name()));
        let net = format!(
            "addr replace {}/24 dev eth0\nlink set eth0 up\nroute replace 224.0.0.0/4 dev eth0\n",
            self.ip()
        );
        run_with_input(&["ip", "-n", self.ns(), "-batch", "-"], &net).expect_ok();
        if cable {
            self.link_up();
            // The back-to-back cable, if the topology has one (see `crossover.rs`).
            let _ = super::cmd::try_run(&["ip", "-n", self.ns(), "link", "set", "x0", "up"]);
        }
        let cg = &self.inner.cgroup;
        fs::create_dir_all(cg).unwrap_or_else(|e| panic!("mkdir {}: {e}", cg.display()));
        let script = format!(
            "echo $$ > {cg}/cgroup.procs && exec nsenter --net=/run/netns/{ns} unshare --pid \
             --fork --kill-child --mount --uts --ipc --cgroup --mount-proc {boot}",
            cg = cg.display(),
            ns = self.ns(),
            boot = self.inner.dirs.boot.display()
        );
        let unshare =
            super::cmd::spawn_detached(&["sh", "-c", &script], &self.log_dir().join("console.log"))
                .unwrap_or_else(|e| panic!("cannot boot {}: {e}", self.name()));
        let children = format!("/proc/{0}/task/{0}/children", unshare.id());
        let mut pid1: Option<u32> = None;
        wait_until(BOOT_TIMEOUT, || {
            pid1 = fs::read_to_string(&children)
                .ok()
                .and_then(|s| s.split_whitespace().next()?.parse().ok());
            pid1.is_some()
        });
        let Some(pid1) = pid1 else {
            panic!(
                "{}: PID 1 did not start; console:\n{}",
                self.name(),
                self.log("console.log")
            );
        };
        let pid_file = &self.inner.dirs.pid1;
        fs::write(pid_file, pid1.to_string())
            .unwrap_or_else(|e| panic!("write {}: {e}", pid_file.display()));
        *power = Power::On { unshare, pid1 };
        drop(lock);
        drop(power);
        note_power(self.log_dir(), &format!("booted, PID 1 is {pid1}"));
        let booted = wait_until(BOOT_TIMEOUT, || {
            if !super::process_alive(pid1) {
                return true;
            }
            let state = self.systemctl(&["is-system-running"]).stdout;
            matches!(state.trim(), "running" | "degraded")
        });
        if !super::process_alive(pid1) {
            // Powered off while booting (e.g. by the fence hook): it is off, like a machine
            // whose power was cut during its boot.
            return;
        }
        assert!(
            booted,
            "{}: systemd did not finish booting; console:\n{}",
            self.name(),
            self.log("console.log")
        );
    }

    /// Powers off: the cable is pulled, every process of the node is killed (SIGKILL to
    /// all of its cgroup, PID 1 included), the cgroup is waited empty and removed, and
    /// eth0's addresses (a floating IP included) are flushed, as a real power-off loses
    /// them. The private directories stay. Does nothing if the node is off.
    pub fn power_off(&self) {
        if let Err(e) = self.try_power_off() {
            panic!("{}: power-off failed: {e}", self.name());
        }
    }

    /// [`Node::power_off`] without panicking (for teardown).
    pub(super) fn try_power_off(&self) -> Result<(), String> {
        let mut power = self.power();
        if matches!(*power, Power::Off) {
            return Ok(());
        }
        let script = self.inner.dirs.poweroff.display().to_string();
        let out = try_run(&[script])?;
        self.reap(&mut power);
        if !out.ok() {
            return Err(format!("`{}`: {}{}", out.cmdline, out.stdout, out.stderr));
        }
        match *power {
            Power::Off => Ok(()),
            Power::On { pid1, .. } => Err(format!("PID 1 ({pid1}) survived")),
        }
    }

    /// The script [`Node::power_off`] runs (cable pulled, SIGKILL to PID 1, which takes
    /// every process of the node's pid namespace with it, eth0 flushed). It works from any
    /// namespace, e.g. as the test fence daemon's hook (see [`super::Topology::fence_hook`]);
    /// the node notices such a power-off by itself.
    pub fn poweroff_script(&self) -> &Path {
        &self.inner.dirs.poweroff
    }

    /// If PID 1 is dead (powered off, from here or from outside), waits for the node's
    /// cgroup to empty, removes it and records the node as off.
    fn reap(&self, power: &mut Power) {
        let Power::On { unshare, pid1 } = power else {
            return;
        };
        if super::process_alive(*pid1) {
            return;
        }
        let _ = unshare.wait();
        let cg = &self.inner.cgroup;
        let emptied = wait_until(POWER_OFF_TIMEOUT, || {
            fs::read_to_string(cg.join("cgroup.events"))
                .map(|e| e.contains("populated 0"))
                .unwrap_or(true)
        });
        if !emptied {
            eprintln!(
                "harness: {}: processes survive in {}",
                self.name(),
                cg.display()
            );
            return;
        }
        remove_cgroup(cg);
        let _ = fs::remove_file(&self.inner.dirs.pid1);
        *power = Power::Off;
    }

    /// Runs `argv` inside the node: its network, mount, pid, uts, ipc and cgroup
    /// namespaces (so it sees the node's /run, D-Bus and private directories).
    pub fn run<S: AsRef<str>>(&self, argv: &[S]) -> CmdOutput {
        self.try_run(argv)
            .unwrap_or_else(|| panic!("{} is powered off", self.name()))
    }

    /// [`Node::run`], or `None` if the node is off (for code racing a power-off, e.g. a
    /// fence: a command cut short by the power-off returns as failed).
    pub fn try_run<S: AsRef<str>>(&self, argv: &[S]) -> Option<CmdOutput> {
        let pid1 = self.pid1()?;
        let mut full: Vec<String> = ["nsenter", "-t", &pid1.to_string()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        full.extend(["-m", "-p", "-n", "-u", "-i", "-C", "--"].map(String::from));
        full.extend(argv.iter().map(|a| a.as_ref().to_string()));
        Some(run_cmd(&full))
    }

    /// Runs `argv` inside the node and returns its stdout; panics if it fails.
    pub fn run_ok<S: AsRef<str>>(&self, argv: &[S]) -> String {
        self.run(argv).expect_ok()
    }

    /// `systemctl ARGS` inside the node.
    pub fn systemctl(&self, args: &[&str]) -> CmdOutput {
        let mut argv = vec!["systemctl"];
        argv.extend_from_slice(args);
        self.run(&argv)
    }

    /// True if systemd says `unit` is active.
    pub fn is_active(&self, unit: &str) -> bool {
        self.is_on() && self.systemctl(&["is-active", "--quiet", unit]).ok()
    }

    /// Waits up to `timeout` for `unit` to be active.
    pub fn wait_active(&self, unit: &str, timeout: Duration) -> bool {
        wait_until(timeout, || self.is_active(unit))
    }

    /// A systemd property of `unit` (`systemctl show -p NAME --value`).
    pub fn unit_property(&self, unit: &str, name: &str) -> String {
        self.systemctl(&["show", "-p", name, "--value", unit])
            .expect_ok()
            .trim()
            .to_string()
    }

    /// Host pid of `unit`'s main process; `None` if it has none or the node is off (also
    /// when it goes off meanwhile).
    pub fn pid_of(&self, unit: &str) -> Option<u32> {
        let out = self.try_run(&["systemctl", "show", "-p", "MainPID", "--value", unit])?;
        let inner_pid = out.ok().then(|| out.stdout.trim().to_string())?;
        if inner_pid == "0" {
            return None;
        }
        let procs =
            fs::read_to_string(self.unit_cgroup(unit).join("cgroup.procs")).unwrap_or_default();
        procs.split_whitespace().find_map(|host_pid| {
            let status = fs::read_to_string(format!("/proc/{host_pid}/status")).ok()?;
            let nspid = status.lines().find(|l| l.starts_with("NSpid:"))?;
            if nspid.split_whitespace().last()? == inner_pid {
                host_pid.parse().ok()
            } else {
                None
            }
        })
    }

    /// True if `unit` has processes (its cgroup is populated): read from the host, with
    /// no process started, so it is cheap enough to sample often.
    pub fn unit_has_processes(&self, unit: &str) -> bool {
        fs::read_to_string(self.unit_cgroup(unit).join("cgroup.events"))
            .map(|e| e.contains("populated 1"))
            .unwrap_or(false)
    }

    /// Host path of `unit`'s cgroup (it exists while the unit has or had processes).
    pub fn unit_cgroup(&self, unit: &str) -> PathBuf {
        self.inner.cgroup.join("system.slice").join(unit)
    }

    /// The power state, after noticing a power-off from outside.
    fn power(&self) -> MutexGuard<'_, Power> {
        let mut power = self
            .inner
            .power
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        self.reap(&mut power);
        power
    }
}

fn set_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Removes an (empty) cgroup and its children, deepest first.
pub(super) fn remove_cgroup(path: &Path) {
    if let Ok(entries) = fs::read_dir(path) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup(&e.path());
            }
        }
    }
    let _ = fs::remove_dir(path);
}

/// Appends a line with the UTC time to the node's `power.log` (boots here, power-offs in the
/// power-off script), so a test's timeline can be read next to the agents' logs.
pub(super) fn note_power(log_dir: &Path, what: &str) {
    use std::io::Write as _;
    let ms = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
        % 86_400_000;
    let line = format!(
        "{:02}:{:02}:{:02}.{:03} {what}\n",
        ms / 3_600_000,
        ms / 60_000 % 60,
        ms / 1000 % 60,
        ms % 1000
    );
    if let Ok(mut f) = fs::File::options()
        .create(true)
        .append(true)
        .open(log_dir.join("power.log"))
    {
        let _ = f.write_all(line.as_bytes());
    }
}
