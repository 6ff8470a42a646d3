//! A oneha cluster on the real-host harness: front-end nodes with systemd, the stand-in
//! `opennebula` units and the agent as `oneha.service`; an optional witness node; a
//! hypervisor host running the test fence daemon whose `off` really powers a node off; a
//! client. Used by the end-to-end test files with `mod harness; mod e2e;`.

#![allow(dead_code)]

pub mod admin;
pub mod failover;
pub mod keepalived;
pub mod oned;

use std::net::IpAddr;
use std::time::Duration;

use crate::harness::{Host, Node, NodeSpec, Proc, Topology, crossover_ip, testkit, wait_until};
use oneha::status::StatusReport;

/// The floating IP of every e2e cluster.
pub const VIP: &str = "192.0.2.100";
/// Hypervisor host number (192.0.2.20).
pub const HV: u8 = 20;
/// Client host number (192.0.2.10).
pub const CLIENT: u8 = 10;

/// What kind of cluster to build.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Kind {
    /// Two front-ends and a witness (ordinary quorum).
    Witness,
    /// Two front-ends alone, fencing as the tie-breaker.
    TwoNode,
}

/// Knobs for a test.
#[derive(Clone, Debug)]
pub struct Opts {
    /// Topology.
    pub kind: Kind,
    /// `timers.profile`.
    pub profile: &'static str,
    /// More keys of the `timers:` section (flow style), e.g. `", election_ticks: 20"`.
    pub timers: &'static str,
    /// Extra YAML under `resources:` (indented by two spaces), e.g. `max_restarts: 1`.
    pub resources_extra: String,
    /// Monitor interval of every resource.
    pub monitor: &'static str,
    /// Fence delay of node1 (the usual active node) and node2.
    pub delays: (&'static str, &'static str),
    /// Extra top-level YAML.
    pub extra: String,
    /// The `opennebula:` section (flow style).
    pub opennebula: String,
    /// Extra keys of the floating IP resource, e.g. `, garp_refresh: 1s`.
    pub vip_extra: String,
    /// Replacement unit files for the front-ends (name, text).
    pub units: Vec<(String, String)>,
    /// `Some(report_delay)`: the `opennebula` unit runs the fake oned with a few stuck VMs
    /// (see [`oned`]) and the agent reports stuck VMs after each start with that delay.
    /// `None`: the plain stand-in, no report.
    pub fake_oned: Option<&'static str>,
    /// The fence daemon logs to `TOPO_DIR/fence-daemon.log` instead of the test's stderr.
    pub quiet: bool,
    /// Links between the front-ends: 1 (the LAN) or 2 (two-node only: the LAN and a
    /// back-to-back cable, `addresses: [192.0.2.N:7400, "[2001:db8:2::N]:7400"]`).
    pub links: u8,
    /// Resources put before the floating IP (YAML list items indented by four spaces).
    /// When it names `{{disk}}` or `{{disk_label}}`, the topology gets a shared disk
    /// (`topo.shared_disks()`) and they become its device and its label.
    pub group_head: String,
    /// More fence devices (YAML map entries indented by four spaces), e.g. hypervisors' BMCs.
    pub fence_devices: String,
}

impl Default for Opts {
    fn default() -> Self {
        Opts {
            kind: Kind::Witness,
            profile: "default",
            timers: "",
            resources_extra: String::new(),
            monitor: "1s",
            delays: ("0s", "0s"),
            extra: String::new(),
            opennebula: "{report_on_takeover: false}".into(),
            vip_extra: String::new(),
            units: Vec::new(),
            fake_oned: None,
            quiet: false,
            links: 1,
            group_head: String::new(),
            fence_devices: String::new(),
        }
    }
}

/// The cluster under test.
pub struct Cluster {
    pub topo: Topology,
    pub client: Host,
    pub hv: Host,
    pub fence: Option<Proc>,
    pub nodes: Vec<Node>,
    pub opts: Opts,
}

const AGENT_UNIT: &str = "[Unit]\nDescription=oneha agent (test)\n\
[Service]\nType=simple\nExecStart={{oneha}} agent --config /etc/oneha/oneha.yaml\n\
Environment=RUST_LOG=info,raft=info,oneha=debug\n\
StandardError=append:/var/log/oneha/agent.log\nStandardOutput=append:/var/log/oneha/agent.log\n\
Restart=no\n";

fn config(o: &Opts) -> String {
    let mut y = vec![
        "cluster: e2e".to_string(),
        "key_file: /etc/oneha/cluster.key".to_string(),
        format!("timers: {{profile: {}{}}}", o.profile, o.timers),
        "nodes:".to_string(),
    ];
    for n in 1..=2u8 {
        y.push(match o.links {
            1 => format!(r#"  - {{name: node{n}, id: {n}, address: "192.0.2.{n}:7400"}}"#),
            2 => format!(
                r#"  - {{name: node{n}, id: {n}, addresses: ["192.0.2.{n}:7400", "[{}]:7400"]}}"#,
                crossover_ip(n)
            ),
            l => panic!("{l} links: the harness builds 1 or 2"),
        });
    }
    match o.kind {
        Kind::Witness => y.push(
            r#"  - {name: node3, id: 3, address: "192.0.2.3:7400", role: witness}"#.to_string(),
        ),
        Kind::TwoNode => y.push("two_node: true".to_string()),
    }
    y.push("resources:".to_string());
    y.extend(o.resources_extra.lines().map(str::to_string));
    let mon = o.monitor;
    y.push("  group:".to_string());
    y.extend(o.group_head.lines().map(str::to_string));
    y.extend([
        format!("    - {{name: vip, type: ip, address: {VIP}/24, interface: eth0, monitor_interval: {mon}{}}}", o.vip_extra),
        format!("    - {{name: opennebula, type: systemd, unit: opennebula.service, monitor_interval: {mon}, stop_timeout: 10s}}"),
        format!("    - {{name: sunstone, type: systemd, unit: opennebula-sunstone.service, monitor_interval: {mon}, stop_timeout: 10s}}"),
        "fencing:".to_string(),
        "  devices:".to_string(),
        "    hv: {type: xvm, key_file: /etc/oneha/fence.key, timeout: 3s, retransmit: 500ms}".to_string(),
    ]);
    y.extend(o.fence_devices.lines().map(str::to_string));
    y.extend([
        "  nodes:".to_string(),
        format!(
            "    node1: {{delay: {}, levels: [{{device: hv, plug: node1, retries: 0}}]}}",
            o.delays.0
        ),
        format!(
            "    node2: {{delay: {}, levels: [{{device: hv, plug: node2, retries: 0}}]}}",
            o.delays.1
        ),
    ]);
    y.push(match o.fake_oned {
        Some(delay) => oned::opennebula_section(delay),
        None => format!("opennebula: {}", o.opennebula),
    });
    y.extend(o.extra.lines().map(str::to_string));
    y.join("\n") + "\n"
}

/// Writes a private key file into a node's /etc/oneha.
fn key_bytes(seed: u8) -> Vec<u8> {
    (0..64u8)
        .map(|i| i.wrapping_mul(31).wrapping_add(seed))
        .collect()
}

impl Cluster {
    /// Builds and boots the cluster; the agents start at boot.
    pub fn start(name: &str, opts: Opts) -> Cluster {
        let topo = Topology::new(name);
        let client = topo.add_host("client", CLIENT);
        let hv = topo.add_host("hv", HV);
        let mut yaml = config(&opts);
        if yaml.contains("{{disk") {
            let disk = topo.add_shared_disk("data", 32);
            yaml = yaml
                .replace("{{disk}}", &disk.device().display().to_string())
                .replace("{{disk_label}}", disk.label());
        }
        let frontend = match opts.fake_oned {
            Some(_) => oned::frontend_spec(),
            None => NodeSpec::opennebula(),
        };
        let mut frontend = frontend
            .etc_file("oneha.yaml", &yaml)
            .unit("oneha.service", AGENT_UNIT)
            .wants("oneha.service");
        for (name, text) in &opts.units {
            frontend = frontend.unit(name, text);
        }
        let mut nodes = Vec::new();
        for (i, name) in ["node1", "node2"].iter().enumerate() {
            let n = topo.add_node(name, i as u8 + 1, frontend.clone());
            if opts.fake_oned.is_some() {
                oned::allow_nonlocal_bind(&n);
            }
            write_keys(&n);
            nodes.push(n);
        }
        if opts.kind == Kind::Witness {
            let spec = NodeSpec::new()
                .etc_file("oneha.yaml", &yaml)
                .unit("oneha.service", AGENT_UNIT)
                .wants("oneha.service");
            let n = topo.add_node("node3", 3, spec);
            write_keys(&n);
            nodes.push(n);
        }
        if opts.links == 2 {
            assert_eq!(
                opts.kind,
                Kind::TwoNode,
                "two links: two-node clusters only"
            );
            topo.add_crossover(&nodes[0], &nodes[1]);
        }
        let mut c = Cluster {
            topo,
            client,
            hv,
            fence: None,
            nodes,
            opts,
        };
        c.start_fence_daemon();
        // Keys were written after boot: (re)start the agents now.
        for n in &c.nodes {
            n.systemctl(&["restart", "oneha.service"]);
        }
        c
    }

    /// Starts the test fence daemon on the hypervisor (its `off` powers the node off).
    pub fn start_fence_daemon(&mut self) {
        let key = self.topo.dir().join("fence.key");
        std::fs::write(&key, key_bytes(7)).expect("fence key");
        let hook = self.topo.fence_hook();
        let argv = [
            testkit(),
            "fence-daemon",
            "--listen",
            "192.0.2.20",
            "--key-file",
            key.to_str().expect("utf8"),
            "--domain",
            "node1",
            "--domain",
            "node2",
            "--hook",
            hook.to_str().expect("utf8"),
            // The test boots fenced nodes again: the hook, not the daemon, knows who is on.
            "--always-run-hook",
        ];
        let p = if self.opts.quiet {
            self.hv
                .spawn_logged(&argv, &self.topo.dir().join("fence-daemon.log"))
        } else {
            self.hv.spawn(&argv)
        };
        self.fence = Some(p);
    }

    /// Stops the fence daemon (the device is "down").
    pub fn stop_fence_daemon(&mut self) {
        self.fence = None;
    }

    /// The floating IP.
    pub fn vip(&self) -> IpAddr {
        VIP.parse().expect("ip")
    }

    /// Node by name.
    pub fn node(&self, name: &str) -> &Node {
        self.nodes
            .iter()
            .find(|n| n.name() == name)
            .expect("known node")
    }

    /// `oneha ARGS` inside `node`; returns (exit code, stdout, stderr).
    pub fn oneha(&self, node: &str, args: &[&str]) -> (i32, String, String) {
        let mut argv = vec![crate::harness::ONEHA];
        argv.extend_from_slice(args);
        let out = self.node(node).run(&argv);
        (out.code.unwrap_or(-1), out.stdout, out.stderr)
    }

    /// `oneha status --json` on `node`.
    pub fn status(&self, node: &str) -> Option<StatusReport> {
        let (code, out, _) = self.oneha(node, &["status", "--json"]);
        if code != 0 {
            return None;
        }
        serde_json::from_str(&out).ok()
    }

    /// The group's owner and state as `node` sees them.
    pub fn group(&self, node: &str) -> Option<(Option<String>, String)> {
        self.status(node).map(|s| (s.group.owner, s.group.state))
    }

    /// Waits until some live node reports the group started on an owner; returns it.
    pub fn wait_started(&self, timeout: Duration) -> Option<String> {
        let mut owner = None;
        wait_until(timeout, || {
            for n in &self.nodes {
                if !n.is_on() {
                    continue;
                }
                if let Some((Some(o), state)) = self.group(n.name())
                    && state == "started"
                {
                    owner = Some(o);
                    return true;
                }
            }
            false
        });
        owner
    }

    /// Waits until the client reaches `name`'s opennebula through the floating IP.
    pub fn client_reaches(&self, name: &str, timeout: Duration) -> bool {
        let vip = self.vip();
        wait_until(timeout, || {
            self.client
                .tcp_get(vip, crate::harness::ONED_PORT)
                .as_deref()
                == Ok(name)
        })
    }

    /// After healing: exactly one front-end runs opennebula, it is the owner, and the
    /// client reaches it through the floating IP. Returns the owner.
    pub fn one_owner_serves(&self, timeout: Duration) -> String {
        // Settled: a live node reports the group started on an owner that is on, and the
        // client reaches that owner (an owner can still change right after a heal).
        let mut owner = String::new();
        let settled = wait_until(timeout, || {
            let Some(o) = self.wait_started(Duration::from_millis(500)) else {
                return false;
            };
            owner = o;
            self.node(&owner).is_on()
                && self
                    .client
                    .tcp_get(self.vip(), crate::harness::ONED_PORT)
                    .as_deref()
                    == Ok(owner.as_str())
        });
        assert!(
            settled,
            "no owner serves through the floating IP (last seen: {owner})"
        );
        let active: Vec<&str> = ["node1", "node2"]
            .into_iter()
            .filter(|n| {
                self.node(n).is_on() && self.node(n).unit_has_processes("opennebula.service")
            })
            .collect();
        assert_eq!(active, vec![owner.as_str()]);
        owner
    }

    /// Each of `nodes` is on and has fenced nobody (its fence journal is empty).
    pub fn assert_nobody_fenced(&self, nodes: &[&str]) {
        for &n in nodes {
            assert!(
                self.node(n).is_on(),
                "{n} was powered off:\n{}",
                self.agent_log(n)
            );
            let s = self.status(n).expect("status");
            assert!(
                s.fencing.journal.is_empty(),
                "{n} fenced: {:#?}",
                s.fencing.journal
            );
        }
    }

    /// The agent's log on `node`.
    pub fn agent_log(&self, node: &str) -> String {
        self.node(node).log("agent.log")
    }
}

fn write_keys(n: &Node) {
    use std::os::unix::fs::PermissionsExt;
    for (file, seed) in [("cluster.key", 3u8), ("fence.key", 7u8)] {
        let path = n.etc_dir().join(file);
        std::fs::write(&path, key_bytes(seed)).expect("key");
        std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o600)).expect("chmod");
    }
}
