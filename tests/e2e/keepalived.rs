//! The baseline: Debian's keepalived on the same topology as an e2e cluster (two front-ends
//! with the same stand-in units, a client), the way people run it for an OpenNebula
//! front-end: VRRP moves the floating IP, `notify_master` starts the units and
//! `notify_backup`/`notify_fault`/`notify_stop` stop them. VRRP goes unicast between the two
//! node addresses, so no traffic leaves 192.0.2.0/24. No quorum and no fencing: that is
//! keepalived's design, not a setting left out.

use std::os::unix::fs::PermissionsExt;

use crate::harness::{Host, Node, Topology, wait_until};

use super::{CLIENT, VIP, oned};

/// Which VRRP flavour.
#[derive(Clone, Copy, Debug, PartialEq)]
pub struct KaOpts {
    /// VRRP version (2 or 3).
    pub version: u8,
    /// `advert_int` as written in the config (`1`, `0.1`).
    pub advert_int: &'static str,
}

impl KaOpts {
    /// keepalived's default: VRRPv2, one advert per second.
    pub const V2_DEFAULT: KaOpts = KaOpts {
        version: 2,
        advert_int: "1",
    };
    /// VRRPv3 with its shortest sensible interval, 100 ms.
    pub const V3_FAST: KaOpts = KaOpts {
        version: 3,
        advert_int: "0.1",
    };

    /// A short label, e.g. `keepalived VRRPv2 advert_int 1`.
    pub fn label(&self) -> String {
        format!(
            "keepalived VRRPv{} advert {}s",
            self.version, self.advert_int
        )
    }
}

/// A keepalived pair and a client.
pub struct KaCluster {
    /// The topology (dropping it tears everything down).
    pub topo: Topology,
    /// The client host (192.0.2.10).
    pub client: Host,
    /// node1 (priority 150, starts as master) and node2 (priority 100).
    pub nodes: Vec<Node>,
    /// The flavour.
    pub opts: KaOpts,
}

const UNIT: &str = "[Unit]\nDescription=keepalived (VRRP baseline)\n\
[Service]\nType=simple\n\
ExecStart=/usr/sbin/keepalived --dont-fork --vrrp --log-console --log-detail --no-syslog \
--use-file=/etc/oneha/keepalived.conf --pid=/run/keepalived.pid --vrrp_pid=/run/keepalived-vrrp.pid\n\
StandardOutput=append:/var/log/oneha/keepalived.log\nStandardError=inherit\nRestart=no\n";

const NOTIFY: &str = "#!/bin/sh\n\
# keepalived notify: start the units on becoming master, stop them otherwise.\n\
case \"$1\" in\n\
master) exec systemctl start opennebula.service opennebula-sunstone.service ;;\n\
*) exec systemctl stop opennebula-sunstone.service opennebula.service ;;\n\
esac\n";

fn config(o: &KaOpts, me: &Node, peer: &str, priority: u8) -> String {
    let state = if priority > 100 { "MASTER" } else { "BACKUP" };
    format!(
        "global_defs {{\n\
         \x20   router_id {name}\n\
         \x20   script_user root\n\
         \x20   enable_script_security\n\
         \x20   vrrp_version {version}\n\
         }}\n\
         vrrp_instance one {{\n\
         \x20   state {state}\n\
         \x20   interface eth0\n\
         \x20   virtual_router_id 51\n\
         \x20   priority {priority}\n\
         \x20   advert_int {advert}\n\
         \x20   unicast_src_ip {ip}\n\
         \x20   unicast_peer {{\n\
         \x20       {peer}\n\
         \x20   }}\n\
         \x20   virtual_ipaddress {{\n\
         \x20       {VIP}/24 dev eth0\n\
         \x20   }}\n\
         \x20   notify_master \"/etc/oneha/ka-notify.sh master\"\n\
         \x20   notify_backup \"/etc/oneha/ka-notify.sh backup\"\n\
         \x20   notify_fault \"/etc/oneha/ka-notify.sh fault\"\n\
         \x20   notify_stop \"/etc/oneha/ka-notify.sh stop\"\n\
         }}\n",
        name = me.name(),
        version = o.version,
        advert = o.advert_int,
        ip = me.ip(),
    )
}

impl KaCluster {
    /// Builds the pair, starts keepalived on both and returns once node1 serves the client
    /// through the floating IP (panics after 30 s).
    pub fn start(name: &str, opts: KaOpts) -> KaCluster {
        let topo = Topology::new(name);
        let client = topo.add_host("client", CLIENT);
        let spec = oned::frontend_spec().unit("keepalived.service", UNIT);
        let nodes: Vec<Node> = ["node1", "node2"]
            .iter()
            .enumerate()
            .map(|(i, n)| topo.add_node(n, i as u8 + 1, spec.clone()))
            .collect();
        for (i, n) in nodes.iter().enumerate() {
            let peer = nodes[1 - i].ip().to_string();
            let priority = if i == 0 { 150 } else { 100 };
            oned::allow_nonlocal_bind(n);
            let write = |file: &str, text: &str, mode: u32| {
                let path = n.etc_dir().join(file);
                std::fs::write(&path, text).expect("write keepalived file");
                std::fs::set_permissions(&path, std::fs::Permissions::from_mode(mode))
                    .expect("chmod keepalived file");
            };
            write("keepalived.conf", &config(&opts, n, &peer, priority), 0o644);
            write("ka-notify.sh", NOTIFY, 0o755);
        }
        for n in &nodes {
            n.systemctl(&["start", "keepalived.service"]).expect_ok();
        }
        let c = KaCluster {
            topo,
            client,
            nodes,
            opts,
        };
        let vip = VIP.parse().expect("VIP parses");
        let up = wait_until(std::time::Duration::from_secs(30), || {
            c.client.tcp_get(vip, crate::harness::ONED_PORT).as_deref() == Ok("node1")
        });
        assert!(
            up,
            "keepalived: node1 does not serve through {VIP}:\n{}",
            c.nodes[0].log("keepalived.log")
        );
        c
    }
}
