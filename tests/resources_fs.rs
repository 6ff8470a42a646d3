//! The filesystem driver on real hosts: a shared disk (a loop device every node sees, like
//! a SAN LUN) mounted and unmounted inside nodes with `oneha-testkit resource` (the code of
//! `oneha resource`), checked from the outside (each node's mount table, the image).
//! NFS cannot be mounted here (no NFS server in the kernel of these machines): its
//! commands are unit-tested in `src/resources/filesystem_tests.rs`.

mod harness;

use std::time::Duration;

use harness::{CmdOutput, Node, NodeSpec, SharedDisk, Topology, testkit, wait_until};

const MOUNTPOINT: &str = "/run/shared";

/// A two-node config whose group is one filesystem `data` with `extra` keys.
fn config(device: &str, extra: &str) -> String {
    format!(
        "cluster: test\n\
         two_node: true\n\
         key_file: /etc/oneha/cluster.key\n\
         nodes:\n\
         \x20 - {{name: node1, id: 1, address: \"192.0.2.1:7000\"}}\n\
         \x20 - {{name: node2, id: 2, address: \"192.0.2.2:7000\"}}\n\
         resources:\n\
         \x20 group:\n\
         \x20   - {{name: data, type: filesystem, device: \"{device}\", mountpoint: {MOUNTPOINT}, \
         fstype: ext4, stop_timeout: 30s{extra}}}\n"
    )
}

fn spec(disk: &SharedDisk) -> NodeSpec {
    let label = format!("LABEL={}", disk.label());
    let dev = disk.device().display().to_string();
    NodeSpec::opennebula()
        .etc_file("cluster.key", "test key\n")
        .etc_file("data.yaml", &config(&label, ""))
        .etc_file("noforce.yaml", &config(&dev, ", force_unmount: false"))
        .etc_file("nofsck.yaml", &config(&dev, ", fsck: false"))
        .etc_file("ghost.yaml", &config("LABEL=no-such-disk", ""))
}

/// Adds node `name` (192.0.2.`n`) with the configs, its cluster key private.
fn add_node(topo: &Topology, name: &str, n: u8, disk: &SharedDisk) -> Node {
    use std::os::unix::fs::PermissionsExt;
    let node = topo.add_node(name, n, spec(disk));
    let key = node.etc_dir().join("cluster.key");
    std::fs::set_permissions(&key, std::fs::Permissions::from_mode(0o600))
        .unwrap_or_else(|e| panic!("chmod {}: {e}", key.display()));
    node
}

/// `oneha-testkit resource ACTION data --config /etc/oneha/CONFIG.yaml` inside `node`.
fn fs(node: &Node, config: &str, action: &str) -> CmdOutput {
    let path = format!("/etc/oneha/{config}.yaml");
    node.run(&[testkit(), "resource", action, "data", "--config", &path])
}

/// A process on `node` whose working directory is the mountpoint.
fn hold(node: &Node) {
    harness::hold_busy(node, MOUNTPOINT);
}

#[test]
fn a_shared_disk_moves_between_nodes_with_its_data_and_busy_mounts_are_handled() {
    let topo = Topology::new("fs_driver");
    let disk = topo.add_shared_disk("data", 32);
    let n1 = add_node(&topo, "node1", 1, &disk);
    let n2 = add_node(&topo, "node2", 2, &disk);
    let sampler = topo.sampler("192.0.2.100".parse().expect("address"));

    // Mounted on node1 (found by label), a file written there; unmounted.
    let stopped = fs(&n1, "data", "monitor");
    assert_eq!(
        (stopped.code, stopped.stdout.as_str()),
        (Some(3), "data: stopped\n")
    );
    fs(&n1, "data", "start").expect_ok();
    assert_eq!(disk.mounted_on(&topo.nodes()), ["node1"]);
    assert_eq!(disk.mounts_on(&n1), [MOUNTPOINT]);
    assert_eq!(fs(&n1, "data", "monitor").stdout, "data: running\n");
    n1.run_ok(&[
        "sh",
        "-c",
        &format!("echo written-on-node1 > {MOUNTPOINT}/file"),
    ]);
    fs(&n1, "data", "stop").expect_ok();
    assert!(disk.mounted_on(&topo.nodes()).is_empty());

    // An unclean filesystem: without fsck it stays marked; with fsck it is checked.
    disk.mark_unclean();
    assert_eq!(disk.state(), "clean with errors");
    fs(&n1, "nofsck", "start").expect_ok();
    fs(&n1, "nofsck", "stop").expect_ok();
    assert_eq!(disk.state(), "clean with errors");
    fs(&n1, "data", "start").expect_ok();
    fs(&n1, "data", "stop").expect_ok();
    assert_eq!(disk.state(), "clean");
    assert_eq!(disk.check(), Ok(()));

    // node2 reads it.
    fs(&n2, "data", "start").expect_ok();
    let text = n2.run_ok(&["cat", &format!("{MOUNTPOINT}/file")]);
    assert_eq!(text, "written-on-node1\n");

    // Busy, forced (the default): the holder is killed, the disk unmounted.
    hold(&n2);
    fs(&n2, "data", "stop").expect_ok();
    assert!(!n2.unit_has_processes("holder.service"));
    assert!(disk.mounted_on(&topo.nodes()).is_empty());
    let _ = n2.systemctl(&["reset-failed", "holder.service"]);

    // Busy, not forced: the stop fails naming the holder; the mount stays.
    fs(&n2, "noforce", "start").expect_ok();
    hold(&n2);
    let failed = fs(&n2, "noforce", "stop");
    failed.expect_failure(1, "force_unmount is off");
    assert!(
        failed.stderr.contains("(sleep, working directory)"),
        "{failed:?}"
    );
    assert!(failed.stderr.contains("must be fenced"), "{failed:?}");
    assert_eq!(disk.mounted_on(&topo.nodes()), ["node2"]);
    n2.systemctl(&["stop", "holder.service"]);
    fs(&n2, "noforce", "stop").expect_ok();
    assert!(disk.mounted_on(&topo.nodes()).is_empty());

    // Mounted by hand elsewhere on the node: the monitor fails, the start refuses, the
    // stop unmounts it there too.
    n1.run_ok(&["mkdir", "-p", "/run/by-hand"]);
    let dev = disk.device().display().to_string();
    n1.run_ok(&["mount", &dev, "/run/by-hand"]);
    let seen = fs(&n1, "data", "monitor");
    assert_eq!(seen.code, Some(1), "{seen:?}");
    assert!(
        seen.stdout
            .contains("is mounted at /run/by-hand, not at /run/shared"),
        "{seen:?}"
    );
    fs(&n1, "nofsck", "start").expect_failure(1, "is already mounted on this node at /run/by-hand");
    fs(&n1, "data", "stop").expect_ok();
    assert!(disk.mounted_on(&topo.nodes()).is_empty());

    // A device this node does not have: the start fails saying so.
    let ghost = fs(&n1, "ghost", "start");
    ghost.expect_failure(
        1,
        "data: start failed: no device with LABEL=no-such-disk for /run/shared on this node",
    );

    // The sampler: clean so far; a double mount (the driver alone does not prevent it,
    // the cluster does; here only because both nodes share one kernel, e2fsck refuses a
    // device mounted on the other node, so node2 mounts without the check) is seen.
    assert_eq!(
        sampler.violations_so_far(),
        0,
        "double mount before the test made one"
    );
    fs(&n1, "data", "start").expect_ok();
    fs(&n2, "nofsck", "start").expect_ok();
    assert!(wait_until(Duration::from_secs(5), || sampler
        .violations_so_far()
        > 0));
    fs(&n1, "data", "stop").expect_ok();
    fs(&n2, "nofsck", "stop").expect_ok();
    let report = sampler.stop();
    assert!(
        report
            .violations
            .iter()
            .any(|v| v.what.contains("mounted on node1, node2")),
        "{:#?}",
        report.violations
    );
}

/// xfs, the other local filesystem of OpenNebula front-ends: found by label, moves with its
/// data, a busy mount is forced, and no check runs before the mount (the log replay is the
/// check, docs/storage.md).
#[test]
fn an_xfs_shared_disk_moves_between_nodes_with_its_data() {
    let topo = Topology::new("fs_xfs");
    let disk = topo.add_shared_disk_of("data", 300, "xfs");
    let xfs = config(&format!("LABEL={}", disk.label()), "").replace("ext4", "xfs");
    let n1 = add_node(&topo, "node1", 1, &disk);
    let n2 = add_node(&topo, "node2", 2, &disk);
    for n in [&n1, &n2] {
        std::fs::write(n.etc_dir().join("xfs.yaml"), &xfs).expect("write xfs.yaml");
    }

    let started = fs(&n1, "xfs", "start");
    started.expect_ok();
    assert_eq!(disk.mounted_on(&topo.nodes()), ["node1"]);
    let fstype = n1.run_ok(&["findmnt", "-n", "-o", "FSTYPE", MOUNTPOINT]);
    assert_eq!(fstype.trim(), "xfs");
    n1.run_ok(&[
        "sh",
        "-c",
        &format!("echo xfs-on-node1 > {MOUNTPOINT}/file"),
    ]);
    fs(&n1, "xfs", "stop").expect_ok();
    assert!(disk.mounted_on(&topo.nodes()).is_empty());

    fs(&n2, "xfs", "start").expect_ok();
    assert_eq!(fs(&n2, "xfs", "monitor").stdout, "data: running\n");
    let text = n2.run_ok(&["cat", &format!("{MOUNTPOINT}/file")]);
    assert_eq!(text, "xfs-on-node1\n");
    hold(&n2);
    fs(&n2, "xfs", "stop").expect_ok();
    assert!(!n2.unit_has_processes("holder.service"));
    assert!(disk.mounted_on(&topo.nodes()).is_empty());
}

#[test]
fn the_topology_detaches_its_shared_disk() {
    let prefix;
    {
        let topo = Topology::new("fs_teardown");
        let disk = topo.add_shared_disk("data", 16);
        let n1 = add_node(&topo, "node1", 1, &disk);
        fs(&n1, "data", "start").expect_ok();
        prefix = topo.prefix().to_string();
        let device = disk.device().display().to_string();
        assert_eq!(harness::loop_devices_of(&prefix), [device]);
    }
    // Powered off with the disk mounted, then detached: nothing left.
    assert_eq!(harness::leftovers(&prefix), Vec::<String>::new());
}
