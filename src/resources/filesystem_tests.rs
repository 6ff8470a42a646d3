//! Command construction and mount classification (the mounting itself is tested on real
//! loop devices in tests/e2e_storage.rs and tests/resources_fs.rs; NFS cannot be mounted
//! here, so its commands and classification are tested only here).

use super::*;
use crate::config::Dur;
use crate::resources::{ResourceConfig, ResourceType};

fn fs(device: &str, fstype: Option<&str>, options: Option<&str>) -> FsSpec {
    let mut c = ResourceConfig::systemd("data", "x.service");
    c.kind = ResourceType::Filesystem;
    c.unit = None;
    c.device = Some(device.into());
    c.mountpoint = Some("/var/lib/one".into());
    c.fstype = fstype.map(str::to_string);
    c.options = options.map(str::to_string);
    c.monitor_timeout = Dur::secs(4);
    FsSpec::from_config(&c).unwrap_or_else(|e| panic!("{e}"))
}

fn entry(id: u64, dev: (u32, u32), mp: &str, fstype: &str, source: &str) -> MountEntry {
    MountEntry {
        id,
        dev,
        mount_point: PathBuf::from(mp),
        fstype: fstype.into(),
        source: source.into(),
    }
}

#[test]
fn mount_commands() {
    let s = fs("UUID=1-2", Some("ext4"), Some("noatime,nodev"));
    assert_eq!(
        mount_command(&s, "/dev/sdb1").join(" "),
        "mount -t ext4 -o noatime,nodev /dev/sdb1 /var/lib/one"
    );
    let s = fs("/dev/sdb1", None, None);
    assert_eq!(
        mount_command(&s, "/dev/sdb1").join(" "),
        "mount /dev/sdb1 /var/lib/one"
    );
    let s = fs("nfs1:/export/one", Some("nfs4"), Some("hard,timeo=600"));
    assert_eq!(
        mount_command(&s, &s.device).join(" "),
        "mount -t nfs4 -o hard,timeo=600 nfs1:/export/one /var/lib/one"
    );
    assert_eq!(s.io_timeout, Duration::from_secs(3));
}

#[test]
fn fsck_commands_by_type() {
    let cmd = |t: Option<&str>| fsck_command(t, "/dev/sdb1").map(|v| v.join(" "));
    assert_eq!(cmd(Some("ext4")).as_deref(), Some("e2fsck -p /dev/sdb1"));
    assert_eq!(cmd(Some("ext3")).as_deref(), Some("e2fsck -p /dev/sdb1"));
    assert_eq!(
        cmd(Some("vfat")).as_deref(),
        Some("fsck -t vfat -a /dev/sdb1")
    );
    assert_eq!(cmd(None).as_deref(), Some("fsck -a /dev/sdb1"));
    assert_eq!(cmd(Some("xfs")), None);
    assert_eq!(cmd(Some("nfs4")), None);
    // A network filesystem never gets one: fsck is off for it.
    let f = Filesystem::new(fs("nfs1:/export/one", Some("nfs"), None));
    assert_eq!(f.fsck_command("nfs1:/export/one"), None);
}

#[test]
fn mounts_are_ours_by_device_number_or_export() {
    let s = fs("UUID=1-2", Some("ext4"), None);
    let dev = Device {
        path: "/dev/sdb1".into(),
        dev: (8, 17),
    };
    let ours = entry(40, (8, 17), "/var/lib/one", "ext4", "/dev/sdb1");
    let other = entry(41, (8, 33), "/var/lib/one", "ext4", "/dev/sdc1");
    let elsewhere = entry(42, (8, 17), "/mnt", "ext4", "/dev/sdb1");
    assert_eq!(classify(&s, Some(&dev), &[]), Found::Nothing);
    assert_eq!(
        classify(&s, Some(&dev), std::slice::from_ref(&elsewhere)),
        Found::Nothing
    );
    assert_eq!(
        classify(&s, Some(&dev), std::slice::from_ref(&ours)),
        Found::Ours(ours.clone())
    );
    assert_eq!(
        classify(&s, Some(&dev), &[ours.clone(), other.clone()]),
        Found::Other(other.clone())
    );
    // The device vanished: what is at the mountpoint is taken as ours (stop unmounts it).
    assert_eq!(
        classify(&s, None, std::slice::from_ref(&other)),
        Found::Ours(other)
    );

    let n = fs("nfs1:/export/one", Some("nfs4"), None);
    let nfs = entry(50, (0, 52), "/var/lib/one", "nfs4", "nfs1:/export/one/");
    assert_eq!(
        classify(&n, None, std::slice::from_ref(&nfs)),
        Found::Ours(nfs)
    );
    let wrong = entry(51, (0, 53), "/var/lib/one", "nfs4", "nfs2:/export/one");
    assert_eq!(
        classify(&n, None, std::slice::from_ref(&wrong)),
        Found::Other(wrong)
    );
}

#[test]
fn io_probe_writes_and_reads_back() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    assert_eq!(io_probe(dir.path(), false), Ok(()));
    assert!(!dir.path().join(".oneha-io-probe").exists());
    assert_eq!(io_probe(dir.path(), true), Ok(()));
    let gone = dir.path().join("gone");
    assert!(io_probe(&gone, false).is_err_and(|e| e.contains("cannot create")));
}

/// A probe that blocks (here: opening a FIFO nobody reads, as I/O to a dead LUN blocks in
/// the kernel) fails the monitor within `io_timeout`, is not started again while it hangs,
/// and once it returns the next monitor probes afresh.
#[tokio::test]
async fn a_hung_io_probe_fails_the_monitor_without_blocking_it() {
    let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
    let fifo = dir.path().join(".oneha-io-probe");
    nix::unistd::mkfifo(&fifo, nix::sys::stat::Mode::S_IRWXU)
        .unwrap_or_else(|e| panic!("mkfifo: {e}"));
    let mut spec = fs("/dev/sdb1", Some("ext4"), None);
    spec.mountpoint = dir.path().to_path_buf();
    spec.io_timeout = Duration::from_millis(200);
    let f = Filesystem::new(spec);

    let first = tokio::time::timeout(Duration::from_secs(10), f.probe_io()).await;
    let Ok(ResourceState::Failed(why)) = first else {
        panic!("expected a failed probe, got {first:?}");
    };
    assert!(why.contains("did not finish within 200ms"), "{why}");
    let second = f.probe_io().await;
    let ResourceState::Failed(why) = second else {
        panic!("expected a failed probe, got {second:?}");
    };
    assert!(why.contains("has not returned: the storage hangs"), "{why}");

    // The storage answers again: the hung probe returns, the next one runs.
    let reader = std::fs::File::open(&fifo).unwrap_or_else(|e| panic!("open fifo: {e}"));
    let released = tokio::time::timeout(Duration::from_secs(10), async {
        while f.probe_since.lock().map(|g| g.is_some()).unwrap_or(true) {
            tokio::time::sleep(Duration::from_millis(10)).await;
        }
    })
    .await;
    assert!(released.is_ok(), "the probe thread did not return");
    drop(reader);
    let _ = std::fs::remove_file(&fifo);
    assert_eq!(f.probe_io().await, ResourceState::Running);
}

#[test]
fn every_mount_of_the_device_counts_wherever_it_is() {
    let s = fs("/dev/sdb1", Some("ext4"), None);
    let dev = Device {
        path: "/dev/sdb1".into(),
        dev: (8, 17),
    };
    let by_hand = entry(40, (8, 17), "/mnt", "ext4", "/dev/sdb1");
    let other = entry(41, (8, 33), "/var/lib/one", "ext4", "/dev/sdc1");
    let ours = entry(42, (8, 17), "/var/lib/one", "ext4", "/dev/sdb1");
    let all = [by_hand.clone(), other.clone(), ours.clone()];
    assert_eq!(mounts_of(&s, Some(&dev), &all), [by_hand.clone(), ours]);
    assert_eq!(
        classify(&s, Some(&dev), &all[..2]),
        Found::Other(other.clone())
    );
    assert_eq!(
        mounts_of(&s, Some(&dev), &all[..2]),
        std::slice::from_ref(&by_hand)
    );
    assert_eq!(
        paths(&[by_hand.clone(), other.clone()]),
        "/mnt, /var/lib/one"
    );
    // The device unknown: only what is at the mountpoint.
    assert_eq!(mounts_of(&s, None, &all[..2]), [other]);
}
