//! End to end with shared storage: a filesystem on a shared disk (a loop device every node
//! sees, like a SAN LUN) first in the group. The sampler checks throughout that the disk is
//! never mounted on two nodes (besides S1 and S2).

mod e2e;
mod harness;

use std::time::Duration;

use e2e::{Cluster, Opts};
use harness::{Node, SharedDisk, wait_until};

const T: Duration = Duration::from_secs(30);
const MOUNTPOINT: &str = "/run/shared";

/// Options with the filesystem `data` (with `extra` keys) first in the group.
fn opts(device: &str, extra: &str) -> Opts {
    Opts {
        group_head: format!(
            "    - {{name: data, type: filesystem, device: \"{device}\", mountpoint: {MOUNTPOINT}, \
             fstype: ext4, monitor_interval: 1s, stop_timeout: 20s{extra}}}\n"
        ),
        ..Opts::default()
    }
}

fn disk(c: &Cluster) -> SharedDisk {
    c.topo
        .shared_disks()
        .into_iter()
        .next()
        .expect("a shared disk")
}

fn other(name: &str) -> &'static str {
    if name == "node1" { "node2" } else { "node1" }
}

/// A process on `node` whose working directory is the mountpoint.
fn hold(node: &Node) {
    harness::hold_busy(node, MOUNTPOINT);
}

/// True while PID 1 of `node` lives (the fence hook powers nodes off behind the harness's
/// back, so `is_on` may not know yet).
fn alive(node: &Node) -> bool {
    node.pid1().is_some_and(harness::process_alive)
}

#[test]
fn data_follows_the_group_through_relocation_and_failover() {
    let c = Cluster::start("st_move", opts("{{disk}}", ""));
    let disk = disk(&c);
    let sampler = c.topo.sampler(c.vip());
    let first = c.wait_started(T).expect("group started");
    assert_eq!(disk.mounted_on(&c.nodes), [first.as_str()]);
    c.node(&first)
        .run_ok(&["sh", "-c", &format!("echo from-{first} > {MOUNTPOINT}/one")]);

    // Relocation with a process holding the mount (force_unmount: true by default): it is
    // killed, the disk unmounted, and nobody is fenced.
    hold(c.node(&first));
    let second = other(&first);
    let (code, _, err) = c.oneha("node3", &["relocate", "--to", second]);
    assert_eq!(code, 0, "relocate: {err}");
    assert!(
        c.client_reaches(second, T),
        "no relocation:\n{}",
        c.agent_log(&first)
    );
    assert!(!c.node(&first).unit_has_processes("holder.service"));
    assert_eq!(disk.mounted_on(&c.nodes), [second]);
    let n2 = c.node(second);
    let text = n2.run_ok(&["cat", &format!("{MOUNTPOINT}/one")]);
    assert_eq!(text, format!("from-{first}\n"));
    let s = c.status(second).expect("status");
    assert!(s.fencing.journal.is_empty(), "{:?}", s.fencing.journal);
    n2.run_ok(&[
        "sh",
        "-c",
        &format!("echo from-{second} > {MOUNTPOINT}/two && sync"),
    ]);

    // Failover: the owner is powered off; the survivor fences it, mounts and reads.
    n2.power_off();
    assert!(
        c.client_reaches(&first, T),
        "no failover:\n{}",
        c.agent_log(&first)
    );
    assert_eq!(disk.mounted_on(&c.nodes), [first.as_str()]);
    let text = c
        .node(&first)
        .run_ok(&["cat", &format!("{MOUNTPOINT}/two")]);
    assert_eq!(text, format!("from-{second}\n"));

    sampler.stop().assert_clean();
}

#[test]
fn a_busy_mount_without_force_fails_the_stop_and_the_node_is_fenced_first() {
    let c = Cluster::start("st_busy", opts("{{disk}}", ", force_unmount: false"));
    let disk = disk(&c);
    let sampler = c.topo.sampler(c.vip());
    let owner = c.wait_started(T).expect("group started");
    let peer = other(&owner);
    hold(c.node(&owner));

    let (code, _, err) = c.oneha("node3", &["relocate", "--to", peer]);
    assert_eq!(code, 0, "relocate: {err}");
    // The stop fails on the busy mount (S8): the owner is fenced, then the peer starts.
    assert!(
        c.client_reaches(peer, T),
        "no takeover:\n{}",
        c.agent_log(peer)
    );
    assert!(!alive(c.node(&owner)), "{owner} was not fenced");
    let s = c.status(peer).expect("status");
    let last = s.fencing.journal.last().expect("a fence record");
    assert_eq!((last.target.as_str(), last.success), (owner.as_str(), true));
    assert!(
        c.agent_log(&owner).contains("busy (force_unmount is off)"),
        "the failed stop does not say why"
    );
    assert_eq!(disk.mounted_on(&c.nodes), [peer]);
    // Never mounted on both: the peer mounted only after the owner was powered off.
    sampler.stop().assert_clean();
}

#[test]
fn a_node_without_the_device_cannot_start_the_group_and_says_why() {
    let c = Cluster::start("st_nodev", opts("LABEL={{disk_label}}", ""));
    let disk = disk(&c);
    let sampler = c.topo.sampler(c.vip());
    let owner = c.wait_started(T).expect("group started");
    let peer = other(&owner);
    // On the peer, the device node is covered by /dev/null: the label is on no device
    // there, as if the LUN were not zoned to it.
    let dev = disk.device().display().to_string();
    c.node(peer).run_ok(&["mount", "--bind", "/dev/null", &dev]);

    c.node(&owner).power_off();
    let want = format!(
        "no device with LABEL={} for {MOUNTPOINT} on this node",
        disk.label()
    );
    assert!(
        wait_until(T, || c.agent_log(peer).contains(&want)),
        "no clear reason on {peer}:\n{}",
        c.agent_log(peer)
    );
    assert!(disk.mounted_on(&c.nodes).is_empty());
    assert!(!c.node(peer).unit_has_processes("opennebula.service"));
    // The failed start is journaled with its reason, for `oneha status`.
    let mut group = None;
    let journaled = wait_until(T, || {
        group = c.status(peer).map(|s| s.group);
        group
            .as_ref()
            .is_some_and(|g| g.failures.iter().any(|(_, why)| why.contains(&want)))
    });
    assert!(journaled, "{group:?}");
    assert!(disk.mounted_on(&c.nodes).is_empty());
    sampler.stop().assert_clean();
}

#[test]
fn an_unclean_filesystem_is_checked_before_the_group_starts() {
    let mut o = opts("{{disk}}", "");
    o.resources_extra = "  autostart: false\n".into();
    let c = Cluster::start("st_fsck", o);
    let disk = disk(&c);
    // As after an I/O error: the superblock records errors, so e2fsck -p checks it in full.
    disk.mark_unclean();
    assert_eq!(disk.state(), "clean with errors");
    let sampler = c.topo.sampler(c.vip());
    let mut err = String::new();
    let enabled = wait_until(T, || {
        let (code, _, e) = c.oneha("node3", &["enable"]);
        err = e;
        code == 0
    });
    assert!(enabled, "enable: {err}");
    let owner = c.wait_started(T).expect("group started");
    assert!(
        c.agent_log(&owner)
            .contains("contains a file system with errors, check forced"),
        "no check on {owner}:\n{}",
        c.agent_log(&owner)
    );
    let (code, _, err) = c.oneha("node3", &["disable"]);
    assert_eq!(code, 0, "disable: {err}");
    assert!(
        wait_until(T, || disk.mounted_on(&c.nodes).is_empty()),
        "still mounted after disable"
    );
    assert_eq!(disk.state(), "clean");
    sampler.stop().assert_clean();
}
