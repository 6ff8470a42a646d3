//! The resource drivers on real hosts: each test drives them inside nodes with
//! `oneha-testkit resource` (the code of `oneha resource`) and checks the outcome from the
//! outside (addresses, the client's neighbour table, systemd, processes).

mod harness;

use std::net::IpAddr;
use std::time::Duration;

use harness::{CmdOutput, Node, NodeSpec, ONED_PORT, Topology, serve_name_unit, testkit};

const VIP: &str = "192.0.2.100";
const CONFIG: &str = "/etc/oneha/oneha.yaml";

fn vip() -> IpAddr {
    VIP.parse().expect("VIP constant parses")
}

/// A valid two-node config whose group is `group` (YAML list items, indented 4).
fn config(group: &str) -> String {
    format!(
        "cluster: test\n\
         two_node: true\n\
         key_file: /etc/oneha/cluster.key\n\
         nodes:\n\
         \x20 - {{name: node1, id: 1, address: \"192.0.2.1:7000\"}}\n\
         \x20 - {{name: node2, id: 2, address: \"192.0.2.2:7000\"}}\n\
         resources:\n\
         \x20 group:\n{group}"
    )
}

/// The floating IP resource, with short timings for tests.
const VIP_RESOURCE: &str = "    - name: vip
      type: ip
      address: 192.0.2.100/24
      interface: eth0
      garp_repeat_after: 200ms
      conflict_wait: 200ms
";

/// A node spec with `group` as its config, plus the test OpenNebula units.
fn spec(group: &str) -> NodeSpec {
    NodeSpec::opennebula()
        .etc_file("oneha.yaml", &config(group))
        .etc_file("cluster.key", "test key\n")
}

/// `oneha-testkit resource ARGS --config /etc/oneha/oneha.yaml` inside `node`.
fn resource(node: &Node, args: &[&str]) -> CmdOutput {
    resource_with(node, CONFIG, args)
}

fn resource_with(node: &Node, config: &str, args: &[&str]) -> CmdOutput {
    let mut argv = vec![testkit(), "resource"];
    argv.extend_from_slice(args);
    argv.extend_from_slice(&["--config", config]);
    node.run(&argv)
}

#[test]
fn floating_ip_moves_and_the_clients_neighbour_entry_follows_the_garp() {
    let topo = Topology::new("vip_move");
    let client = topo.add_host("client", 10);
    let spec = spec(VIP_RESOURCE).wants("opennebula.service");
    let n1 = topo.add_node("node1", 1, spec.clone());
    let n2 = topo.add_node("node2", 2, spec);

    let stopped = resource(&n1, &["monitor", "vip"]);
    assert_eq!(stopped.code, Some(3), "{stopped:?}");
    assert_eq!(stopped.stdout, "vip: stopped\n");

    resource(&n1, &["start", "vip"]).expect_ok();
    assert_eq!(topo.addr_holders(vip()), ["node1"]);
    assert_eq!(resource(&n1, &["monitor", "vip"]).stdout, "vip: running\n");
    assert_eq!(client.tcp_get(vip(), ONED_PORT).as_deref(), Ok("node1"));
    assert_eq!(client.neigh_mac(vip()), Some(n1.mac()));

    resource(&n1, &["stop", "vip"]).expect_ok();
    assert!(topo.addr_holders(vip()).is_empty());
    assert_eq!(resource(&n1, &["monitor", "vip"]).code, Some(3));

    // The client has not sent anything since: only node2's gratuitous ARP can have
    // changed its entry from node1's MAC.
    resource(&n2, &["start", "vip"]).expect_ok();
    assert_eq!(client.neigh_mac(vip()), Some(n2.mac()));
    assert_eq!(topo.addr_holders(vip()), ["node2"]);
    assert_eq!(client.tcp_get(vip(), ONED_PORT).as_deref(), Ok("node2"));
    assert_eq!(client.arp_dad(vip()), Some(n2.mac()), "arping agrees");

    // Starting what runs succeeds and changes nothing.
    resource(&n2, &["start", "vip"]).expect_ok();
    assert_eq!(topo.addr_holders(vip()), ["node2"]);

    // A pulled cable is a failed floating IP, not a running one.
    n2.link_down();
    resource(&n2, &["monitor", "vip"]).expect_failure(1, "link is down");
}

#[test]
fn second_garp_burst_repairs_a_neighbour_entry_spoiled_after_the_first() {
    let group = "    - name: vip
      type: ip
      address: 192.0.2.100/24
      interface: eth0
      garp_count: 1
      garp_repeat_after: 1500ms
";
    let topo = Topology::new("vip_garp2");
    let client = topo.add_host("client", 10);
    let node = topo.add_node("node1", 1, spec(group));
    let starter = {
        let node = node.clone();
        std::thread::spawn(move || resource(&node, &["start", "vip"]))
    };
    assert!(harness::wait_until(Duration::from_secs(5), || topo
        .addr_holders(vip())
        .len()
        == 1));
    std::thread::sleep(Duration::from_millis(300)); // the first burst (one pair) is out
    let bogus = "02:00:00:00:00:99";
    client.exec_ok(&[
        "ip", "neigh", "replace", VIP, "lladdr", bogus, "dev", "eth0", "nud", "stale",
    ]);
    assert_eq!(client.neigh_mac(vip()).as_deref(), Some(bogus));
    starter.join().expect("start thread").expect_ok(); // returns after the second burst
    assert_eq!(client.neigh_mac(vip()), Some(node.mac()));
}

#[test]
fn duplicate_address_detection_refuses_to_add_a_held_address() {
    let topo = Topology::new("vip_dad");
    let rogue = topo.add_host("rogue", 9);
    let n1 = topo.add_node("node1", 1, spec(VIP_RESOURCE));
    rogue.exec_ok(&["ip", "addr", "add", &format!("{VIP}/24"), "dev", "eth0"]);

    let alarm = format!(
        "split-brain alarm: MAC {} answers for VIP {VIP}",
        rogue.mac()
    );
    resource(&n1, &["start", "vip"]).expect_failure(1, &alarm);
    assert_eq!(topo.addr_holders(vip()), ["rogue"], "not added");

    rogue.exec_ok(&["ip", "addr", "del", &format!("{VIP}/24"), "dev", "eth0"]);
    resource(&n1, &["start", "vip"]).expect_ok();
    assert_eq!(topo.addr_holders(vip()), ["node1"]);
}

/// A floating IPv6 address (documentation prefix, inside the test's bridge only).
const VIP6: &str = "2001:db8::100";

const VIP6_RESOURCE: &str = "    - name: vip
      type: ip
      address: 2001:db8::100/64
      interface: eth0
      garp_repeat_after: 200ms
      conflict_wait: 200ms
";

fn vip6() -> IpAddr {
    VIP6.parse().expect("VIP6 constant parses")
}

#[test]
fn ipv6_floating_ip_moves_and_the_clients_neighbour_entry_follows_the_advertisement() {
    let topo = Topology::new("vip6_move");
    let client = topo.add_host("client", 10);
    let n1 = topo.add_node("node1", 1, spec(VIP6_RESOURCE));
    let n2 = topo.add_node("node2", 2, spec(VIP6_RESOURCE));
    client.exec_ok(&[
        "ip",
        "addr",
        "add",
        "2001:db8::10/64",
        "dev",
        "eth0",
        "nodad",
    ]);

    resource(&n1, &["start", "vip"]).expect_ok();
    assert_eq!(topo.addr_holders(vip6()), ["node1"]);
    assert_eq!(resource(&n1, &["monitor", "vip"]).stdout, "vip: running\n");
    // Usable at once (added without the kernel's DAD wait): the client resolves and
    // reaches it.
    client.exec_ok(&["ping", "-6", "-c", "1", "-W", "2", VIP6]);
    assert_eq!(client.neigh_mac(vip6()), Some(n1.mac()));

    resource(&n1, &["stop", "vip"]).expect_ok();
    assert!(topo.addr_holders(vip6()).is_empty());

    // The client has not sent anything since: only node2's unsolicited advertisement can
    // have changed its entry from node1's MAC.
    resource(&n2, &["start", "vip"]).expect_ok();
    assert_eq!(client.neigh_mac(vip6()), Some(n2.mac()));
    client.exec_ok(&["ping", "-6", "-c", "1", "-W", "2", VIP6]);
    assert_eq!(topo.addr_holders(vip6()), ["node2"]);
}

#[test]
fn ipv6_duplicate_address_detection_refuses_to_add_a_held_address() {
    let topo = Topology::new("vip6_dad");
    let rogue = topo.add_host("rogue", 9);
    let n1 = topo.add_node("node1", 1, spec(VIP6_RESOURCE));
    rogue.exec_ok(&[
        "ip",
        "addr",
        "add",
        "2001:db8::100/64",
        "dev",
        "eth0",
        "nodad",
    ]);

    let alarm = format!(
        "split-brain alarm: MAC {} answers for VIP {VIP6}",
        rogue.mac()
    );
    resource(&n1, &["start", "vip"]).expect_failure(1, &alarm);
    assert_eq!(topo.addr_holders(vip6()), ["rogue"], "not added");

    rogue.exec_ok(&["ip", "addr", "del", "2001:db8::100/64", "dev", "eth0"]);
    resource(&n1, &["start", "vip"]).expect_ok();
    assert_eq!(topo.addr_holders(vip6()), ["node1"]);
}

/// `opennebula.service` with `Restart=always`, which oneha's drop-in must override.
fn restarting_unit() -> String {
    serve_name_unit("OpenNebula oned", ONED_PORT) + "Restart=always\nRestartSec=100ms\n"
}

const SYSTEMD_RESOURCE: &str = "    - name: oned
      type: systemd
      unit: opennebula.service
      start_timeout: 10s
      stop_timeout: 10s
";

#[test]
fn systemd_unit_start_stop_monitor_with_the_runtime_dropin() {
    const UNIT: &str = "opennebula.service";
    const DROPIN: &str = "/run/systemd/system/opennebula.service.d/50-oneha.conf";
    let topo = Topology::new("systemd");
    let client = topo.add_host("client", 10);
    let node = topo.add_node(
        "node1",
        1,
        spec(SYSTEMD_RESOURCE).unit(UNIT, &restarting_unit()),
    );
    let ip: IpAddr = node.ip().into();
    assert_eq!(resource(&node, &["monitor", "oned"]).code, Some(3));
    assert_eq!(node.unit_property(UNIT, "Restart"), "always");

    resource(&node, &["start", "oned"]).expect_ok();
    assert!(node.is_active(UNIT));
    assert_eq!(client.tcp_get(ip, ONED_PORT).as_deref(), Ok("node1"));
    let dropin = node.run_ok(&["cat", DROPIN]);
    assert!(dropin.contains("Restart=no") && dropin.contains("Before=oneha.service"));
    assert_eq!(node.unit_property(UNIT, "Restart"), "no", "drop-in loaded");
    assert_eq!(
        resource(&node, &["monitor", "oned"]).stdout,
        "oned: running\n"
    );

    node.kill_unit(UNIT);
    std::thread::sleep(Duration::from_millis(500)); // > RestartSec: no restart may come
    resource(&node, &["monitor", "oned"]).expect_failure(1, "oned: failed");
    assert!(
        !node.is_active(UNIT),
        "systemd did not restart it behind oneha's back"
    );

    resource(&node, &["stop", "oned"]).expect_ok();
    assert_eq!(
        resource(&node, &["monitor", "oned"]).code,
        Some(3),
        "clean after stop"
    );
    assert!(!node.run(&["test", "-e", DROPIN]).ok(), "drop-in removed");
    assert_eq!(node.unit_property(UNIT, "Restart"), "always", "reloaded");

    resource(&node, &["start", "oned"]).expect_ok();
    resource(&node, &["stop", "oned"]).expect_ok();
    assert!(!node.is_active(UNIT));
    resource(&node, &["stop", "oned"]).expect_ok(); // stopping a stopped unit is fine
    assert!(client.tcp_get(ip, ONED_PORT).is_err());
}

/// An init script managing `serve-name` through a pid file, LSB style.
const LSB_DAEMON: &str = r#"#!/bin/sh
PIDFILE=/run/testd.pid
running() { [ -f $PIDFILE ] && kill -0 "$(cat $PIDFILE)" 2>/dev/null; }
case "$1" in
start)
    running && exit 0
    {{testkit}} serve-name --port 2633 --name lsb-{{node}} >/dev/null 2>&1 &
    echo $! > $PIDFILE
    ;;
stop)
    running && kill "$(cat $PIDFILE)"
    rm -f $PIDFILE
    ;;
status)
    running && exit 0
    [ -f $PIDFILE ] && exit 1
    exit 3
    ;;
*)
    exit 2
    ;;
esac
"#;

/// An init script whose start never ends.
const LSB_HANG: &str = "#!/bin/sh\n\
case \"$1\" in\n\
start) echo $$ > /run/hang.pid; sleep 1000 ;;\n\
status) exit 3 ;;\n\
esac\n";

const LSB_RESOURCES: &str = "    - name: testd
      type: lsb
      script: /etc/init.d/testd
    - name: hang
      type: lsb
      script: /etc/init.d/hang
      start_timeout: 500ms
";

#[test]
fn lsb_script_start_stop_status_and_timeout() {
    let topo = Topology::new("lsb");
    let client = topo.add_host("client", 10);
    let node = topo.add_node(
        "node1",
        1,
        spec(LSB_RESOURCES)
            .init_script("testd", LSB_DAEMON)
            .init_script("hang", LSB_HANG),
    );
    let ip: IpAddr = node.ip().into();
    assert_eq!(resource(&node, &["monitor", "testd"]).code, Some(3));
    resource(&node, &["start", "testd"]).expect_ok();
    // The script returns once the daemon is forked, maybe before it listens.
    assert!(harness::wait_until(Duration::from_secs(5), || {
        client.tcp_get(ip, ONED_PORT).as_deref() == Ok("lsb-node1")
    }));
    assert_eq!(resource(&node, &["monitor", "testd"]).code, Some(0));

    node.run_ok(&["sh", "-c", "kill -9 $(cat /run/testd.pid)"]);
    resource(&node, &["monitor", "testd"]).expect_failure(1, "pid file exists");

    resource(&node, &["stop", "testd"]).expect_ok();
    assert_eq!(resource(&node, &["monitor", "testd"]).code, Some(3));
    resource(&node, &["stop", "testd"]).expect_ok(); // stopping a stopped service is fine

    resource(&node, &["start", "hang"])
        .expect_failure(1, "hang: start did not finish within 500ms");
    let pid = node.run_ok(&["cat", "/run/hang.pid"]);
    assert!(
        !node.run(&["kill", "-0", pid.trim()]).ok(),
        "the script was killed"
    );
    assert!(
        !node.run(&["pgrep", "-f", "sleep 1000"]).ok(),
        "its whole process group was killed"
    );
}

/// An init script that logs its actions to /var/lib/oneha/order.log; `FAIL` is the action
/// it fails (`start`, `stop` or `none`).
fn logging_script(name: &str, fail: &str) -> String {
    format!(
        "#!/bin/sh\n\
         STATE=/run/{name}.running\n\
         case \"$1\" in\n\
         start) echo \"start {name}\" >> /var/lib/oneha/order.log; [ {fail} = start ] && exit 1; touch $STATE ;;\n\
         stop) echo \"stop {name}\" >> /var/lib/oneha/order.log; [ {fail} = stop ] && exit 1; rm -f $STATE ;;\n\
         status) [ -f $STATE ] && exit 0; exit 3 ;;\n\
         esac\n\
         exit 0\n"
    )
}

fn lsb_entry(name: &str) -> String {
    format!("    - name: {name}\n      type: lsb\n      script: /etc/init.d/{name}\n")
}

#[test]
fn group_starts_in_order_stops_in_reverse_and_rolls_back_a_failed_start() {
    let topo = Topology::new("group");
    let ok_group = format!(
        "{VIP_RESOURCE}{}{}{}",
        lsb_entry("a"),
        lsb_entry("b"),
        lsb_entry("c")
    );
    let bad_start = format!(
        "{VIP_RESOURCE}{}{}{}",
        lsb_entry("a"),
        lsb_entry("broken"),
        lsb_entry("c")
    );
    let bad_stop = format!("{}{}{}", lsb_entry("a"), lsb_entry("stuck"), lsb_entry("c"));
    let node = topo.add_node(
        "node1",
        1,
        spec(&ok_group)
            .etc_file("bad-start.yaml", &config(&bad_start))
            .etc_file("bad-stop.yaml", &config(&bad_stop))
            .init_script("a", &logging_script("a", "none"))
            .init_script("b", &logging_script("b", "none"))
            .init_script("c", &logging_script("c", "none"))
            .init_script("broken", &logging_script("broken", "start"))
            .init_script("stuck", &logging_script("stuck", "stop")),
    );
    let order = || {
        let path = node.state_dir().join("order.log");
        let text = std::fs::read_to_string(&path).unwrap_or_default();
        let _ = std::fs::remove_file(&path);
        text.lines().map(String::from).collect::<Vec<_>>()
    };

    resource(&node, &["start", "--all"]).expect_ok();
    assert_eq!(order(), ["start a", "start b", "start c"]);
    assert_eq!(topo.addr_holders(vip()), ["node1"]);
    let all = resource(&node, &["monitor", "--all"]);
    assert_eq!(all.code, Some(0), "{all:?}");
    resource(&node, &["stop", "--all"]).expect_ok();
    assert_eq!(order(), ["stop c", "stop b", "stop a"]);
    assert!(topo.addr_holders(vip()).is_empty());
    assert_eq!(resource(&node, &["monitor", "--all"]).code, Some(3));

    let failed = resource_with(&node, "/etc/oneha/bad-start.yaml", &["start", "--all"]);
    failed.expect_failure(1, "group start failed at broken: start failed");
    failed.expect_failure(1, "stopped again: broken, a, vip");
    assert_eq!(
        order(),
        ["start a", "start broken", "stop broken", "stop a"]
    );
    assert!(topo.addr_holders(vip()).is_empty(), "rolled back");

    let bad_stop = "/etc/oneha/bad-stop.yaml";
    resource_with(&node, bad_stop, &["start", "--all"]).expect_ok();
    order();
    resource_with(&node, bad_stop, &["stop", "--all"]).expect_failure(
        1,
        "still possibly running: a, stuck. This node must be fenced",
    );
    assert_eq!(
        order(),
        ["stop c", "stop stuck"],
        "a is left to the fencing"
    );
}
