//! A cluster node: a host whose PID 1 is systemd, in pid+mount namespaces of its own, in
//! a cgroup of its own, with private directories that survive power cycles.

use std::fs;
use std::ops::Deref;
use std::os::unix::process::CommandExt;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex, MutexGuard};
use std::time::Duration;

use super::cmd::{CmdOutput, run_cmd, run_with_input, try_run};
use super::host::Host;
use super::units;
use super::wait_until;

/// How long a boot may take before the test fails (about 0.3 s normally).
const BOOT_TIMEOUT: Duration = Duration::from_secs(20);
/// How long a powered-off node's processes may take to vanish.
const POWER_OFF_TIMEOUT: Duration = Duration::from_secs(10);

/// What to install on a node before it boots.
#[derive(Clone, Default)]
pub struct NodeSpec {
    units: Vec<(String, String)>,
    wants: Vec<String>,
    etc: Vec<(String, String)>,
    init: Vec<(String, String)>,
}

impl NodeSpec {
    /// Nothing but the boot target and D-Bus.
    pub fn new() -> NodeSpec {
        NodeSpec::default()
    }

    /// With the test `opennebula.service` (TCP 2633) and `opennebula-sunstone.service`
    /// (TCP 9869) installed (not started): each answers a connection with the node's name.
    pub fn opennebula() -> NodeSpec {
        let mut spec = NodeSpec::new();
        spec.units = units::opennebula_units();
        spec
    }

    /// Installs a unit file. In `text`, `{{node}}` becomes the node name, `{{ip}}` its
    /// address, `{{oneha}}` and `{{testkit}}` the binaries of this build.
    pub fn unit(mut self, name: &str, text: &str) -> NodeSpec {
        self.units.retain(|(n, _)| n != name);
        self.units.push((name.to_string(), text.to_string()));
        self
    }

    /// Starts `unit` at boot (a `Wants=` of the boot target).
    pub fn wants(mut self, unit: &str) -> NodeSpec {
        self.wants.push(unit.to_string());
        self
    }

    /// Writes `/etc/oneha/NAME` (placeholders as in [`NodeSpec::unit`]).
    pub fn etc_file(mut self, name: &str, text: &str) -> NodeSpec {
        self.etc.push((name.to_string(), text.to_string()));
        self
    }

    /// Installs an executable `/etc/init.d/NAME` (placeholders as in [`NodeSpec::unit`]).
    pub fn init_script(mut self, name: &str, text: &str) -> NodeSpec {
        self.init.push((name.to_string(), text.to_string()));
        self
    }
}

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
            text.replace("{{node}}", host.name())
                .replace("{{ip}}", &host.ip().to_string())
                .replace("{{oneha}}", super::ONEHA)
                .replace("{{testkit}}", super::TESTKIT)
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
            write(dirs.etc.join(name), &fill(text));
        }
        for (name, text) in &spec.init {
            set_executable(&write(dirs.initd.join(name), &fill(text)));
        }
        write(dirs.hostname.clone(), &format!("{}\n", host.name()));
        set_executable(&write(
            dirs.boot.clone(),
            &units::boot_script(host.name(), &dirs),
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
    /// route), then systemd as PID 1; returns when systemd reports the boot finished.
    pub fn boot(&self) {
        let mut power = self.power();
        assert!(
            matches!(*power, Power::Off),
            "{} is already running",
            self.name()
        );
        let net = format!(
            "addr replace {}/24 dev eth0\nlink set eth0 up\nroute replace 224.0.0.0/4 dev eth0\n",
            self.ip()
        );
        run_with_input(&["ip", "-n", self.ns(), "-batch", "-"], &net).expect_ok();
        self.link_up();
        let cg = &self.inner.cgroup;
        fs::create_dir_all(cg).unwrap_or_else(|e| panic!("mkdir {}: {e}", cg.display()));
        let console = fs::File::options()
            .create(true)
            .append(true)
            .open(self.log_dir().join("console.log"))
            .unwrap_or_else(|e| panic!("console log: {e}"));
        let console2 = console
            .try_clone()
            .unwrap_or_else(|e| panic!("console log: {e}"));
        let script = format!(
            "echo $$ > {cg}/cgroup.procs && exec nsenter --net=/run/netns/{ns} unshare --pid \
             --fork --kill-child --mount --uts --ipc --cgroup --mount-proc {boot}",
            cg = cg.display(),
            ns = self.ns(),
            boot = self.inner.dirs.boot.display()
        );
        let unshare = Command::new("sh")
            .args(["-c", &script])
            .stdin(Stdio::null())
            .stdout(console)
            .stderr(console2)
            .process_group(0)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot boot {}: {e}", self.name()));
        let children = format!("/proc/{0}/task/{0}/children", unshare.id());
        let mut pid1 = None;
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
        *power = Power::On { unshare, pid1 };
        drop(power);
        let booted = wait_until(BOOT_TIMEOUT, || {
            let state = self.systemctl(&["is-system-running"]).stdout;
            matches!(state.trim(), "running" | "degraded")
        });
        assert!(
            booted,
            "{}: systemd did not finish booting; console:\n{}",
            self.name(),
            self.log("console.log")
        );
    }

    /// Powers off: the cable is pulled, every process of the node is killed (SIGKILL to
    /// PID 1, then `cgroup.kill`), the cgroup is waited empty and removed, and eth0's
    /// addresses (a floating IP included) are flushed, as a real power-off loses them.
    /// The private directories stay. Does nothing if the node is off.
    pub fn power_off(&self) {
        if let Err(e) = self.try_power_off() {
            panic!("{}: power-off failed: {e}", self.name());
        }
    }

    /// [`Node::power_off`] without panicking (for teardown).
    pub(super) fn try_power_off(&self) -> Result<(), String> {
        let mut power = self.power();
        let Power::On { mut unshare, pid1 } = std::mem::replace(&mut *power, Power::Off) else {
            return Ok(());
        };
        let veth_down = self.set_cable("down");
        if let Ok(pid) = i32::try_from(pid1) {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
        let cg = self.inner.cgroup.clone();
        let _ = fs::write(cg.join("cgroup.kill"), "1");
        let _ = unshare.kill();
        let _ = unshare.wait();
        let empty = wait_until(POWER_OFF_TIMEOUT, || {
            fs::read_to_string(cg.join("cgroup.events"))
                .map(|e| e.contains("populated 0"))
                .unwrap_or(true)
        });
        if !empty {
            return Err(format!("processes survived in {}", cg.display()));
        }
        remove_cgroup(&cg);
        let flush = try_run(&["ip", "-n", self.ns(), "addr", "flush", "dev", "eth0"])?;
        for out in [veth_down, flush] {
            if !out.ok() {
                return Err(format!("`{}`: {}", out.cmdline, out.stderr));
            }
        }
        Ok(())
    }

    /// Runs `argv` inside the node: its network, mount, pid, uts, ipc and cgroup
    /// namespaces (so it sees the node's /run, D-Bus and private directories).
    pub fn run<S: AsRef<str>>(&self, argv: &[S]) -> CmdOutput {
        let pid1 = self
            .pid1()
            .unwrap_or_else(|| panic!("{} is powered off", self.name()));
        let mut full: Vec<String> = ["nsenter", "-t", &pid1.to_string()]
            .iter()
            .map(|s| s.to_string())
            .collect();
        full.extend(["-m", "-p", "-n", "-u", "-i", "-C", "--"].map(String::from));
        full.extend(argv.iter().map(|a| a.as_ref().to_string()));
        run_cmd(&full)
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

    /// Host pid of `unit`'s main process; `None` if it has none or the node is off.
    pub fn pid_of(&self, unit: &str) -> Option<u32> {
        if !self.is_on() {
            return None;
        }
        let inner_pid = self.unit_property(unit, "MainPID");
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

    fn unit_cgroup(&self, unit: &str) -> PathBuf {
        self.inner.cgroup.join("system.slice").join(unit)
    }

    fn power(&self) -> MutexGuard<'_, Power> {
        self.inner
            .power
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

fn set_executable(path: &Path) {
    use std::os::unix::fs::PermissionsExt;
    fs::set_permissions(path, fs::Permissions::from_mode(0o755))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
}

/// Removes an (empty) cgroup and its children, deepest first.
fn remove_cgroup(path: &Path) {
    if let Ok(entries) = fs::read_dir(path) {
        for e in entries.flatten() {
            if e.file_type().is_ok_and(|t| t.is_dir()) {
                remove_cgroup(&e.path());
            }
        }
    }
    let _ = fs::remove_dir(path);
}
