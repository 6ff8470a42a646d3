//! A topology: one bridge, the hosts and nodes plugged into it, and their teardown.

use std::collections::hash_map::DefaultHasher;
use std::fs;
use std::hash::{Hash, Hasher};
use std::net::IpAddr;
use std::path::{Path, PathBuf};
use std::sync::{Mutex, MutexGuard};
use std::time::SystemTime;

use super::bmc::BmcSpec;
use super::cmd::{run_cmd, run_with_input, try_run};
use super::disk::SharedDisk;
use super::host::Host;
use super::hypervisor::Hypervisor;
use super::node::Node;
use super::sampler::Sampler;
use super::spec::NodeSpec;

/// Every name a topology creates starts with this (namespaces, cgroups, temp dirs), followed by four hex digits: `tools/harness-cleanup.sh` looks for it.
pub const NAME_PREFIX: &str = "oht";
/// One file per live topology, `PREFIX` containing `PID TEST_NAME`, so the cleanup
/// script can tell a crashed run's leftovers from a running test's.
pub const REGISTRY_DIR: &str = "/run/oneha-harness";

/// A test network: a switch (a bridge with multicast flooded, in a namespace of its own,
/// so the machine's own addresses never answer on it) and the hosts and nodes plugged into
/// it. Dropping it removes everything it created.
pub struct Topology {
    test: String,
    prefix: String,
    switch_ns: String,
    dir: tempfile::TempDir,
    cgroup_root: PathBuf,
    registry: PathBuf,
    hosts: Mutex<Vec<Host>>,
    nodes: Mutex<Vec<Node>>,
    hypervisors: Mutex<Vec<Hypervisor>>,
    disks: Mutex<Vec<SharedDisk>>,
}

impl Topology {
    /// Creates the bridge for test `test_name` under a fresh unique prefix.
    pub fn new(test_name: &str) -> Topology {
        assert!(
            nix::unistd::geteuid().is_root(),
            "the real-host tests need root (network namespaces, systemd as PID 1)"
        );
        let (prefix, registry) = claim_prefix(test_name);
        let switch_ns = format!("{prefix}-switch");
        let made = run_cmd(&["ip", "netns", "add", &switch_ns]);
        if !made.ok() {
            let _ = fs::remove_file(&registry);
            panic!("cannot create namespace {switch_ns}: {}", made.stderr);
        }
        let topo = Topology {
            test: test_name.to_string(),
            dir: tempfile::Builder::new()
                .prefix(&format!("{prefix}-"))
                .tempdir()
                .unwrap_or_else(|e| panic!("temp dir: {e}")),
            cgroup_root: cgroup_root(),
            registry,
            prefix,
            switch_ns,
            hosts: Mutex::new(Vec::new()),
            nodes: Mutex::new(Vec::new()),
            hypervisors: Mutex::new(Vec::new()),
            disks: Mutex::new(Vec::new()),
        };
        topo.write_fence_hook();
        let bridge = "link add br0 type bridge mcast_snooping 0\nlink set br0 up\n";
        run_with_input(&["ip", "-n", &topo.switch_ns, "-batch", "-"], bridge).expect_ok();
        eprintln!(
            "harness: {} uses prefix {} (files in {})",
            topo.test,
            topo.prefix,
            topo.dir.path().display()
        );
        topo
    }

    /// The unique name prefix (e.g. `oht3fa9`).
    pub fn prefix(&self) -> &str {
        &self.prefix
    }

    /// The namespace holding the bridge `br0` and the hosts' cables `vN`.
    pub fn switch_ns(&self) -> &str {
        &self.switch_ns
    }

    /// Host directory holding the nodes' private directories.
    pub fn dir(&self) -> &Path {
        self.dir.path()
    }

    /// A script for the test fence daemon's `--hook`, called as `HOOK ACTION DOMAIN`:
    /// `off` and `reboot` power off the node named DOMAIN (it stays off until the test
    /// calls [`Node::boot`]); `status` exits 0 while the node's PID 1 lives, 2 when it is
    /// off (however it was powered off, as libvirt would report); `on` and unknown names
    /// fail.
    pub fn fence_hook(&self) -> PathBuf {
        self.dir.path().join("fence-hook.sh")
    }

    fn write_fence_hook(&self) {
        let text = format!(
            "#!/bin/sh\n\
             # Test fence daemon hook: ACTION DOMAIN (DOMAIN = node name).\n\
             case \"$1\" in\n\
             off|reboot) ;;\n\
             status)\n\
             \x20 [ -d \"{dir}/$2\" ] || {{ echo \"fence hook: no node named $2\" >&2; exit 1; }}\n\
             \x20 pid=$(cat \"{dir}/$2/pid1\" 2>/dev/null) || exit 2\n\
             \x20 state=$(sed 's/^.*) //' \"/proc/$pid/stat\" 2>/dev/null | cut -c1)\n\
             \x20 [ -n \"$state\" ] && [ \"$state\" != Z ] && exit 0\n\
             \x20 exit 2 ;;\n\
             *) echo \"fence hook: $1 is not supported; the test boots nodes itself\" >&2; exit 1 ;;\n\
             esac\n\
             script=\"{dir}/$2/poweroff.sh\"\n\
             [ -x \"$script\" ] || {{ echo \"fence hook: no node named $2\" >&2; exit 1; }}\n\
             exec \"$script\"\n",
            dir = self.dir.path().display()
        );
        let path = self.fence_hook();
        fs::write(&path, text).unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
        let mode = std::os::unix::fs::PermissionsExt::from_mode(0o755);
        fs::set_permissions(&path, mode)
            .unwrap_or_else(|e| panic!("chmod {}: {e}", path.display()));
    }

    /// Adds a plain namespace host `name` with 192.0.2.`n`/24 on eth0.
    pub fn add_host(&self, name: &str, n: u8) -> Host {
        assert!(
            !name.is_empty()
                && name.len() <= 32
                && name.chars().all(|c| c.is_ascii_alphanumeric() || c == '-'),
            "host name `{name}`: use 1-32 letters, digits or dashes"
        );
        assert!((1..=254).contains(&n), "host number {n}: use 1..=254");
        let mut hosts = lock(&self.hosts);
        assert!(
            hosts
                .iter()
                .all(|h| h.name() != name && h.ip().octets()[3] != n),
            "host name `{name}` or number {n} used twice"
        );
        let ns = format!("{}-{name}", self.prefix);
        let host = Host::create(name, n, &ns, &self.switch_ns);
        hosts.push(host.clone());
        host
    }

    /// Adds a node (a host whose PID 1 is systemd) and boots it.
    pub fn add_node(&self, name: &str, n: u8, spec: NodeSpec) -> Node {
        let host = self.add_host(name, n);
        let cgroup = self.cgroup_root.join(format!("{}-{name}", self.prefix));
        let node = Node::create(host, &self.dir.path().join(name), cgroup, &spec);
        lock(&self.nodes).push(node.clone());
        node.boot();
        node
    }

    /// Adds hypervisor host `name` (192.0.2.`n`) and its BMC, host `NAME-bmc` at
    /// 192.0.2.`bmc.number` (`ipmi_sim`, real IPMI over LAN on UDP 623), and powers it on
    /// through the BMC; returns when the host answers on
    /// [`super::HYPERVISOR_PORT`]. See [`Hypervisor`].
    pub fn add_hypervisor(&self, name: &str, n: u8, bmc: BmcSpec) -> Hypervisor {
        let host = self.add_host(name, n);
        let bmc_host = self.add_host(&format!("{name}-bmc"), bmc.number);
        let hv = Hypervisor::create(
            host,
            bmc_host,
            &bmc,
            &self.dir.path().join(name),
            &self.cgroup_root,
            &self.prefix,
        );
        lock(&self.hypervisors).push(hv.clone());
        hv.start();
        hv
    }

    /// Adds a shared disk `name` of `mib` MiB: an ext4 image in [`Topology::dir`] behind a
    /// loop device that every node sees (a SAN LUN). Its label is the prefix plus a digit
    /// (unique on the machine), for `LABEL=` configs. Detached at teardown.
    pub fn add_shared_disk(&self, name: &str, mib: u32) -> SharedDisk {
        self.add_shared_disk_of(name, mib, "ext4")
    }

    /// [`Topology::add_shared_disk`] with a filesystem of type `fstype`: `ext4` or `xfs`
    /// (xfs needs `mib` >= 300; the image stays sparse, about 65 MiB written).
    pub fn add_shared_disk_of(&self, name: &str, mib: u32, fstype: &str) -> SharedDisk {
        let mut disks = lock(&self.disks);
        let label = format!("{}{}", self.prefix, disks.len());
        let disk = SharedDisk::create(self.dir.path(), name, mib, &label, fstype);
        disks.push(disk.clone());
        disk
    }

    /// Every shared disk, in creation order.
    pub fn shared_disks(&self) -> Vec<SharedDisk> {
        lock(&self.disks).clone()
    }

    /// Every hypervisor, in creation order.
    pub fn hypervisors(&self) -> Vec<Hypervisor> {
        lock(&self.hypervisors).clone()
    }

    /// Every host, nodes included, in creation order.
    pub fn hosts(&self) -> Vec<Host> {
        lock(&self.hosts).clone()
    }

    /// Every node, in creation order.
    pub fn nodes(&self) -> Vec<Node> {
        lock(&self.nodes).clone()
    }

    /// Names of the hosts that have `ip` configured (the split-brain check: at most one).
    pub fn addr_holders(&self, ip: IpAddr) -> Vec<String> {
        self.hosts()
            .iter()
            .filter(|h| h.has_addr(ip))
            .map(|h| h.name().to_string())
            .collect()
    }

    /// Starts sampling every 50 ms, over all hosts and nodes, that at most one holds `vip`,
    /// at most one has `opennebula.service` running and each shared disk is mounted on at
    /// most one node.
    pub fn sampler(&self, vip: IpAddr) -> Sampler {
        Sampler::start(
            vip,
            "opennebula.service",
            self.hosts(),
            self.nodes(),
            self.shared_disks(),
        )
    }

    fn dump_logs(&self) {
        for node in self.nodes() {
            let Ok(entries) = fs::read_dir(node.log_dir()) else {
                continue;
            };
            for e in entries.flatten() {
                let text = fs::read_to_string(e.path()).unwrap_or_default();
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(40)..];
                eprintln!(
                    "----- {} {} (last {} lines)\n{}",
                    node.name(),
                    e.file_name().to_string_lossy(),
                    tail.len(),
                    tail.join("\n")
                );
            }
        }
        for hv in self.hypervisors() {
            for (what, text) in [
                ("power log", hv.power_log()),
                ("host log", hv.host_log()),
                ("ipmi_sim log", hv.bmc().log()),
            ] {
                let lines: Vec<&str> = text.lines().collect();
                let tail = &lines[lines.len().saturating_sub(40)..];
                eprintln!("----- {} {what}\n{}", hv.name(), tail.join("\n"));
            }
        }
    }
}

impl Drop for Topology {
    /// Teardown, never panicking: power nodes off (cgroups emptied and removed), stop the
    /// BMCs and kill the hypervisors' machines (cgroups emptied and removed), detach the
    /// shared disks' loop devices, kill what
    /// is left in the namespaces, delete the namespaces (their veths and the bridge go
    /// with them).
    fn drop(&mut self) {
        if std::thread::panicking() {
            self.dump_logs();
        }
        for node in self.nodes() {
            if let Err(e) = node.try_power_off() {
                eprintln!("harness teardown: {}: {e}", node.name());
            }
        }
        for hv in self.hypervisors() {
            hv.teardown();
        }
        // After the power-offs: no node's mount namespace holds a disk any more.
        for disk in self.shared_disks() {
            disk.detach();
        }
        for host in self.hosts() {
            host.kill_all();
            let _ = try_run(&["ip", "netns", "del", host.ns()]);
        }
        let _ = try_run(&["ip", "netns", "del", &self.switch_ns]);
        let _ = fs::remove_file(&self.registry);
        // ONEHA_HARNESS_KEEP=1 keeps the files (node logs, configs) of a failed test.
        if std::thread::panicking() && std::env::var_os("ONEHA_HARNESS_KEEP").is_some() {
            let dir = std::mem::replace(
                &mut self.dir,
                tempfile::TempDir::new().unwrap_or_else(|e| panic!("tempdir: {e}")),
            );
            eprintln!("harness: kept {}", dir.keep().display());
        }
    }
}

pub(super) fn lock<T>(m: &Mutex<T>) -> MutexGuard<'_, T> {
    m.lock().unwrap_or_else(std::sync::PoisonError::into_inner)
}

/// Where node cgroups go: the cgroup2 hierarchy (`unified` on hybrid machines).
pub(super) fn cgroup_root() -> PathBuf {
    let hybrid = Path::new("/sys/fs/cgroup/unified");
    if hybrid.join("cgroup.procs").exists() {
        hybrid.to_path_buf()
    } else {
        PathBuf::from("/sys/fs/cgroup")
    }
}

/// Every prefix this process claimed, in order (see [`prefixes_claimed`]).
static CLAIMED: Mutex<Vec<String>> = Mutex::new(Vec::new());

/// The name prefixes of every topology this process created, also those whose creation was
/// interrupted: what a program checks with [`super::leftovers`] before it exits.
pub fn prefixes_claimed() -> Vec<String> {
    lock(&CLAIMED).clone()
}

/// Picks an unused prefix and registers it (atomically, by creating its registry file).
fn claim_prefix(test: &str) -> (String, PathBuf) {
    fs::create_dir_all(REGISTRY_DIR).unwrap_or_else(|e| panic!("mkdir {REGISTRY_DIR}: {e}"));
    let now = SystemTime::now()
        .duration_since(SystemTime::UNIX_EPOCH)
        .map(|d| d.as_nanos())
        .unwrap_or(0);
    for attempt in 0u32..10_000 {
        let mut h = DefaultHasher::new();
        (test, std::process::id(), now, attempt).hash(&mut h);
        let prefix = format!("{NAME_PREFIX}{:04x}", h.finish() & 0xffff);
        if netns_taken(&prefix) {
            continue;
        }
        let path = Path::new(REGISTRY_DIR).join(&prefix);
        match fs::File::options().write(true).create_new(true).open(&path) {
            Ok(_) => {
                lock(&CLAIMED).push(prefix.clone());
                fs::write(&path, format!("{} {test}\n", std::process::id()))
                    .unwrap_or_else(|e| panic!("write {}: {e}", path.display()));
                return (prefix, path);
            }
            Err(e) if e.kind() == std::io::ErrorKind::AlreadyExists => continue,
            Err(e) => panic!("create {}: {e}", path.display()),
        }
    }
    panic!("no free name prefix; run tools/harness-cleanup.sh to remove leftovers")
}

fn netns_taken(prefix: &str) -> bool {
    let start = format!("{prefix}-");
    fs::read_dir("/run/netns")
        .map(|d| {
            d.flatten()
                .any(|e| e.file_name().to_string_lossy().starts_with(&start))
        })
        .unwrap_or(false)
}
