//! A shared disk, like a SAN LUN seen by every front-end: an ext4 (or xfs) image in the
//! topology's directory behind one loop device. Nodes see the machine's `/dev`, so every node can
//! mount it; whether one does is read from its PID 1's `/proc/PID/mountinfo`.

use std::fs;
use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::Arc;

use super::cmd::{run_cmd, try_run};
use super::node::Node;

/// A loop device over an ext4 or xfs image. Cheap to clone; the topology detaches it at teardown
/// (after powering the nodes off, so nothing holds it).
#[derive(Clone)]
pub struct SharedDisk {
    inner: Arc<DiskInner>,
}

struct DiskInner {
    name: String,
    image: PathBuf,
    device: PathBuf,
    dev: (u32, u32),
    label: String,
    fstype: String,
}

impl SharedDisk {
    /// Creates `DIR/NAME.img` (`mib` MiB, sparse), makes a filesystem of type `fstype`
    /// (`ext4` or `xfs`; xfs needs at least 300 MiB) with label `label` on it and attaches it
    /// to a free loop device.
    pub(super) fn create(
        dir: &Path,
        name: &str,
        mib: u32,
        label: &str,
        fstype: &str,
    ) -> SharedDisk {
        let image = dir.join(format!("{name}.img"));
        let f =
            fs::File::create(&image).unwrap_or_else(|e| panic!("create {}: {e}", image.display()));
        f.set_len(u64::from(mib) << 20)
            .unwrap_or_else(|e| panic!("size {}: {e}", image.display()));
        drop(f);
        let img = image.display().to_string();
        match fstype {
            "ext4" => run_cmd(&["mkfs.ext4", "-q", "-F", "-L", label, &img]).expect_ok(),
            "xfs" => run_cmd(&["mkfs.xfs", "-q", "-f", "-L", label, &img]).expect_ok(),
            other => panic!("shared disk {name}: no mkfs for `{other}` (ext4 or xfs)"),
        };
        let device = run_cmd(&["losetup", "--find", "--show", &img]).expect_ok();
        let device = PathBuf::from(device.trim());
        let meta = fs::metadata(&device).unwrap_or_else(|e| panic!("{}: {e}", device.display()));
        assert!(
            meta.file_type().is_block_device(),
            "{} is no block device",
            device.display()
        );
        let rdev = meta.rdev();
        SharedDisk {
            inner: Arc::new(DiskInner {
                name: name.to_string(),
                image,
                dev: (
                    nix::sys::stat::major(rdev) as u32,
                    nix::sys::stat::minor(rdev) as u32,
                ),
                device,
                label: label.to_string(),
                fstype: fstype.to_string(),
            }),
        }
    }

    /// The name given at creation.
    pub fn name(&self) -> &str {
        &self.inner.name
    }

    /// The loop device, e.g. `/dev/loop3` (the same path inside every node).
    pub fn device(&self) -> &Path {
        &self.inner.device
    }

    /// Its device number (major, minor), as `/proc/PID/mountinfo` shows it.
    pub fn dev(&self) -> (u32, u32) {
        self.inner.dev
    }

    /// The filesystem label (`LABEL=` in a config).
    pub fn label(&self) -> &str {
        &self.inner.label
    }

    /// The filesystem type made on it (`ext4`, `xfs`).
    pub fn fstype(&self) -> &str {
        &self.inner.fstype
    }

    /// The image file on the machine.
    pub fn image(&self) -> &Path {
        &self.inner.image
    }

    /// Where `node` has it mounted (empty when it is off or has not mounted it).
    pub fn mounts_on(&self, node: &Node) -> Vec<String> {
        let Some(pid) = node.pid1() else {
            return Vec::new();
        };
        let text = fs::read_to_string(format!("/proc/{pid}/mountinfo")).unwrap_or_default();
        let dev = format!("{}:{}", self.inner.dev.0, self.inner.dev.1);
        text.lines()
            .filter_map(|l| {
                let f: Vec<&str> = l.split(' ').collect();
                (f.get(2) == Some(&dev.as_str())).then(|| f.get(4).map(|s| s.to_string()))?
            })
            .collect()
    }

    /// Names of the nodes that have it mounted (the storage invariant: at most one).
    pub fn mounted_on(&self, nodes: &[Node]) -> Vec<String> {
        nodes
            .iter()
            .filter(|n| !self.mounts_on(n).is_empty())
            .map(|n| n.name().to_string())
            .collect()
    }

    /// Runs `e2fsck -fn` on the image (read-only, forced): Ok when the filesystem is clean.
    /// ext4 only, as are [`SharedDisk::mark_unclean`] and [`SharedDisk::state`].
    pub fn check(&self) -> Result<(), String> {
        let out = run_cmd(&["e2fsck", "-fn", &self.inner.device.display().to_string()]);
        if out.ok() {
            Ok(())
        } else {
            Err(format!("{}{}", out.stdout, out.stderr))
        }
    }

    /// Marks the filesystem as having errors (as the kernel does after an I/O error), so
    /// the next `e2fsck -p` checks it in full. Only while nobody has it mounted.
    pub fn mark_unclean(&self) {
        run_cmd(&[
            "tune2fs",
            "-E",
            "force_fsck",
            &self.inner.device.display().to_string(),
        ])
        .expect_ok();
    }

    /// The superblock's state line (`clean`, `not clean`, `clean with errors`).
    pub fn state(&self) -> String {
        let out = run_cmd(&["dumpe2fs", "-h", &self.inner.device.display().to_string()]);
        out.stdout
            .lines()
            .find_map(|l| l.strip_prefix("Filesystem state:"))
            .map(|s| s.trim().to_string())
            .unwrap_or_default()
    }

    /// Detaches the loop device (teardown; never panics).
    pub(super) fn detach(&self) {
        if let Err(e) = try_run(&["losetup", "-d", &self.inner.device.display().to_string()]) {
            eprintln!(
                "harness teardown: losetup -d {}: {e}",
                self.inner.device.display()
            );
        }
    }
}

/// Starts transient unit `holder.service` on `node`: a `sleep` whose working directory is
/// `dir` (a process keeping a mount busy); returns when it runs.
pub fn hold_busy(node: &Node, dir: &str) {
    node.run_ok(&[
        "systemd-run",
        "--unit=holder",
        "-p",
        &format!("WorkingDirectory={dir}"),
        "sleep",
        "300",
    ]);
    let running = super::wait_until(std::time::Duration::from_secs(20), || {
        node.unit_has_processes("holder.service")
    });
    assert!(running, "{}: holder.service did not start", node.name());
}

/// Loop devices whose image lies in a directory of topology `prefix` (leftovers).
pub fn loop_devices_of(prefix: &str) -> Vec<String> {
    let out = try_run(&[
        "losetup",
        "--list",
        "--noheadings",
        "--output",
        "NAME,BACK-FILE",
    ])
    .map(|o| o.stdout)
    .unwrap_or_default();
    let dir = std::env::temp_dir().join(format!("{prefix}-"));
    let dir = dir.display().to_string();
    out.lines()
        .filter_map(|l| l.split_once(' '))
        .filter(|(_, back)| back.trim().starts_with(&dir))
        .map(|(name, _)| name.trim().to_string())
        .collect()
}
