//! A host: one network namespace with `eth0` on the topology's bridge.

use std::net::Ipv4Addr;
use std::process::{Child, Command, Stdio};
use std::sync::{Arc, Mutex};

use super::cmd::{CmdOutput, run_cmd, run_with_input, try_run};
use super::netns::AddrDump;

/// A plain host (client, hypervisor...) or the network side of a [`super::Node`].
/// Cheap to clone: clones share the same namespace.
#[derive(Clone)]
pub struct Host {
    inner: Arc<HostInner>,
}

struct HostInner {
    name: String,
    number: u8,
    ns: String,
    switch_ns: String,
    veth: String,
    addrs: Mutex<AddrDump>,
}

impl Host {
    /// Creates namespace `ns` with `eth0` (192.0.2.N/24, MAC 02:00:00:00:00:NN) plugged
    /// into bridge `br0` of namespace `switch_ns` through veth `vN` there, plus the
    /// multicast route.
    pub(super) fn create(name: &str, number: u8, ns: &str, switch_ns: &str) -> Host {
        let mac = mac_of(number);
        let veth = format!("v{number}");
        run_cmd(&["ip", "netns", "add", ns]).expect_ok();
        let switch_side = format!(
            "link add {veth} type veth peer name eth0 netns {ns} address {mac}\n\
             link set {veth} master br0 up\n"
        );
        run_with_input(&["ip", "-n", switch_ns, "-batch", "-"], &switch_side).expect_ok();
        let inside = format!(
            "link set lo up\n\
             addr add {ip}/24 dev eth0\n\
             link set eth0 up\n\
             route add 224.0.0.0/4 dev eth0\n",
            ip = ip_of(number)
        );
        run_with_input(&["ip", "-n", ns, "-batch", "-"], &inside).expect_ok();
        Host {
            inner: Arc::new(HostInner {
                name: name.to_string(),
                number,
                ns: ns.to_string(),
                switch_ns: switch_ns.to_string(),
                veth,
                addrs: Mutex::new(AddrDump::open(ns)),
            }),
        }
    }

    /// The name given to `add_host`/`add_node`.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// Network namespace name (under /run/netns).
    pub fn ns(&self) -> &str {
        &self.inner.ns
    }

    /// The switch-side veth (a port of the bridge, in the switch namespace).
    pub fn veth(&self) -> &str {
        &self.inner.veth
    }

    /// 192.0.2.N.
    pub fn ip(&self) -> Ipv4Addr {
        ip_of(self.inner.number)
    }

    /// 02:00:00:00:00:NN.
    pub fn mac(&self) -> String {
        mac_of(self.inner.number)
    }

    /// Runs `argv` inside the namespace (`ip netns exec`).
    pub fn exec<S: AsRef<str>>(&self, argv: &[S]) -> CmdOutput {
        run_cmd(&self.netns_argv(argv))
    }

    /// Runs `argv` inside the namespace and returns its stdout; panics if it fails.
    pub fn exec_ok<S: AsRef<str>>(&self, argv: &[S]) -> String {
        self.exec(argv).expect_ok()
    }

    /// Runs `argv` inside the namespace with `input` on its stdin: how a fence agent gets
    /// its options (`key=value` lines, the password among them) without them showing in
    /// `ps`.
    pub fn exec_with_input<S: AsRef<str>>(&self, argv: &[S], input: &str) -> CmdOutput {
        run_with_input(&self.netns_argv(argv), input)
    }

    /// Starts `argv` inside the namespace; it is killed when the [`Proc`] is dropped.
    /// Output goes to the test's stderr.
    pub fn spawn<S: AsRef<str>>(&self, argv: &[S]) -> Proc {
        self.spawn_with(argv, Stdio::inherit(), Stdio::inherit())
    }

    /// Like [`Host::spawn`], with the output appended to the file `log` instead.
    pub fn spawn_logged<S: AsRef<str>>(&self, argv: &[S], log: &std::path::Path) -> Proc {
        let (out, err) = super::cmd::log_stdio(log);
        self.spawn_with(argv, out, err)
    }

    fn spawn_with<S: AsRef<str>>(&self, argv: &[S], out: Stdio, err: Stdio) -> Proc {
        let full = self.netns_argv(argv);
        let child = Command::new(&full[0])
            .args(&full[1..])
            .stdin(Stdio::null())
            .stdout(out)
            .stderr(err)
            .spawn()
            .unwrap_or_else(|e| panic!("cannot start `{}`: {e}", full.join(" ")));
        Proc {
            child: Mutex::new(child),
        }
    }

    /// Every non-loopback address in the namespace, read over netlink.
    pub fn addresses(&self) -> Vec<std::net::IpAddr> {
        let dump = self
            .inner
            .addrs
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner);
        dump.addresses()
            .unwrap_or_else(|e| panic!("listing addresses in {}: {e}", self.ns()))
    }

    /// True if `ip` is configured in the namespace.
    pub fn has_addr(&self, ip: std::net::IpAddr) -> bool {
        self.addresses().contains(&ip)
    }

    /// Pulls the cable: the switch-side veth goes down (addresses stay; heals with
    /// [`Host::link_up`]).
    pub fn link_down(&self) {
        self.set_cable("down").expect_ok();
    }

    /// Plugs the cable back in.
    pub fn link_up(&self) {
        self.set_cable("up").expect_ok();
    }

    /// The namespace of the switch this host is plugged into.
    pub fn switch_ns(&self) -> &str {
        &self.inner.switch_ns
    }

    /// `ip link set vN up|down` in the switch namespace.
    pub(super) fn set_cable(&self, state: &str) -> CmdOutput {
        try_run(&[
            "ip",
            "-n",
            &self.inner.switch_ns,
            "link",
            "set",
            self.veth(),
            state,
        ])
        .unwrap_or_else(|e| panic!("{e}"))
    }

    /// Kills every process still in the namespace (teardown; never panics).
    pub(super) fn kill_all(&self) {
        let pids = try_run(&["ip", "netns", "pids", self.ns()])
            .map(|o| o.stdout)
            .unwrap_or_default();
        for pid in pids
            .split_whitespace()
            .filter_map(|p| p.parse::<i32>().ok())
        {
            let _ = nix::sys::signal::kill(
                nix::unistd::Pid::from_raw(pid),
                nix::sys::signal::Signal::SIGKILL,
            );
        }
    }

    fn netns_argv<S: AsRef<str>>(&self, argv: &[S]) -> Vec<String> {
        let mut full = vec![
            "ip".to_string(),
            "netns".into(),
            "exec".into(),
            self.ns().into(),
        ];
        full.extend(argv.iter().map(|a| a.as_ref().to_string()));
        full
    }
}

/// 192.0.2.N.
pub fn ip_of(number: u8) -> Ipv4Addr {
    Ipv4Addr::new(192, 0, 2, number)
}

/// 02:00:00:00:00:NN (N in hex).
pub fn mac_of(number: u8) -> String {
    format!("02:00:00:00:00:{number:02x}")
}

/// A process started by [`Host::spawn`]; killed (SIGKILL) and reaped when dropped.
pub struct Proc {
    child: Mutex<Child>,
}

impl Proc {
    /// Its pid (in the test's pid namespace).
    pub fn pid(&self) -> u32 {
        self.lock().id()
    }

    /// True while it runs.
    pub fn is_running(&self) -> bool {
        matches!(self.lock().try_wait(), Ok(None))
    }

    /// Kills it now.
    pub fn kill(&self) {
        let mut c = self.lock();
        let _ = c.kill();
        let _ = c.wait();
    }

    fn lock(&self) -> std::sync::MutexGuard<'_, Child> {
        self.child
            .lock()
            .unwrap_or_else(std::sync::PoisonError::into_inner)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.kill();
    }
}
