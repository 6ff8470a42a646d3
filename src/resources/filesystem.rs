//! A filesystem mounted on the node that runs the group: a SAN LUN, an LVM volume or an NFS
//! export. Mounted with the system `mount` (fstab option syntax, NFS helpers), unmounted with
//! `umount2`, checked in `/proc/self/mountinfo` by device number. A stop that cannot unmount
//! is a failed stop: the node is fenced before the group starts elsewhere (S8).

use std::os::unix::fs::{FileTypeExt, MetadataExt};
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use nix::errno::Errno;
use nix::mount::MntFlags;
use nix::sys::signal::Signal;

use super::fs_commands::{describe, fsck_command, mount_command, resolve, run};
use super::mount_users::{self, User};
use super::mountinfo::{self, MountEntry};
use super::{Fault, ResourceState};
use crate::config::filesystem::FsSpec;

/// How long processes using a busy mount get after TERM before KILL.
const TERM_GRACE: Duration = Duration::from_secs(5);
/// How long a check waits for a device that is briefly in use (just released).
const FSCK_BUSY_WAIT: Duration = Duration::from_secs(3);
/// How long killed processes get to vanish.
const KILL_GRACE: Duration = Duration::from_secs(3);

/// A filesystem resource.
pub struct Filesystem {
    spec: FsSpec,
    /// When the I/O probe still running started (a hung probe is not started again).
    probe_since: Arc<Mutex<Option<Instant>>>,
}

/// What is at the mountpoint, compared with what should be.
#[derive(Debug, PartialEq, Eq)]
enum Found {
    /// Our filesystem, as mount `entry`.
    Ours(MountEntry),
    /// Nothing mounted there.
    Nothing,
    /// Something else.
    Other(MountEntry),
}

impl Filesystem {
    /// The filesystem `spec` describes.
    pub fn new(spec: FsSpec) -> Filesystem {
        Filesystem {
            spec,
            probe_since: Arc::default(),
        }
    }

    fn what(&self) -> String {
        format!("{} on {}", self.spec.device, self.spec.mountpoint.display())
    }

    /// Mounts it (after a check when `fsck` is on). Succeeds at once if it is mounted.
    pub async fn start(&self) -> Result<(), Fault> {
        same_mount_namespace_as_init()?;
        let device = self.device().await?;
        match self.find(device.as_ref())? {
            Found::Ours(_) => return Ok(()),
            Found::Other(e) => {
                return Err(format!(
                    "{} already has {} ({}) mounted, so {} cannot be mounted there: unmount it \
                     or fix `mountpoint`",
                    self.spec.mountpoint.display(),
                    e.source,
                    e.fstype,
                    self.spec.device
                )
                .into());
            }
            Found::Nothing => {}
        }
        let elsewhere = mounts_of(&self.spec, device.as_ref(), &mountinfo::read("self")?);
        if !elsewhere.is_empty() {
            return Err(format!(
                "{} is already mounted on this node at {}: unmount it there (or stop what \
                 mounted it) before the group mounts it on {}",
                self.spec.device,
                paths(&elsewhere),
                self.spec.mountpoint.display()
            )
            .into());
        }
        let source = match &device {
            Some(d) => d.path.display().to_string(),
            None => self.spec.device.clone(),
        };
        tokio::fs::create_dir_all(&self.spec.mountpoint)
            .await
            .map_err(|e| {
                format!(
                    "cannot create mountpoint {}: {e}",
                    self.spec.mountpoint.display()
                )
            })?;
        if let Some(argv) = self.fsck_command(&source) {
            self.fsck(&argv).await?;
        }
        let argv = mount_command(&self.spec, &source);
        let out = run(&argv).await?;
        if !out.status.success() {
            return Err(format!(
                "cannot mount {}: {}: {}; check the device, `fstype` and `options`",
                self.what(),
                argv.join(" "),
                describe(&out)
            )
            .into());
        }
        match self.find(device.as_ref())? {
            Found::Ours(_) => Ok(()),
            other => Err(format!(
                "`{}` succeeded but {} is not mounted from {} (found: {other:?})",
                argv.join(" "),
                self.spec.mountpoint.display(),
                self.spec.device
            )
            .into()),
        }
    }

    /// Unmounts it. Processes using it are killed first when `force_unmount` is on; when
    /// off, or when they cannot be killed, the stop fails naming them.
    pub async fn stop(&self) -> Result<(), Fault> {
        let device = match self.device().await {
            Ok(d) => d,
            // The device is gone (a LUN that vanished): whatever is mounted at the
            // mountpoint is taken as ours, and unmounted.
            Err(e) => {
                tracing::warn!("{}: {e}; unmounting what is at the mountpoint", self.what());
                None
            }
        };
        // Every mount of it on this node, the last mounted first: a filesystem mounted by
        // hand elsewhere is as dangerous as the one at the mountpoint.
        let mounts = mounts_of(&self.spec, device.as_ref(), &mountinfo::read("self")?);
        for m in mounts.iter().rev() {
            self.unmount(m).await?;
        }
        Ok(())
    }

    async fn unmount(&self, m: &MountEntry) -> Result<(), Fault> {
        let target = m.mount_point.clone();
        let what = format!("{} on {}", self.spec.device, target.display());
        match umount(&target, MntFlags::empty()).await {
            Ok(()) => return Ok(()),
            Err(Errno::EBUSY) => {}
            Err(e) => return Err(format!("cannot unmount {what}: {e}").into()),
        }
        let users = find_users(m.dev).await;
        if !self.spec.force_unmount {
            return Err(self
                .busy(&what, &target, &users, "force_unmount is off")
                .into());
        }
        self.kill_users(&what, m.dev, users).await;
        let flags = if self.spec.is_network() {
            MntFlags::MNT_FORCE
        } else {
            MntFlags::empty()
        };
        match umount(&target, flags).await {
            Ok(()) => Ok(()),
            Err(Errno::EBUSY) => {
                let users = find_users(m.dev).await;
                Err(self
                    .busy(&what, &target, &users, "still busy after TERM and KILL")
                    .into())
            }
            Err(e) => Err(format!("cannot unmount {what}: {e}").into()),
        }
    }

    /// Running when the device is mounted at the mountpoint; with `monitor_io`, also a
    /// write, sync and read of a small file there within `io_timeout`.
    pub async fn monitor(&self) -> Result<ResourceState, Fault> {
        let device = match self.device().await {
            Ok(d) => d,
            Err(e) => {
                return Ok(match self.find(None)? {
                    Found::Nothing => ResourceState::Stopped,
                    _ => ResourceState::Failed(e.to_string()),
                });
            }
        };
        let entries = mountinfo::read("self")?;
        match classify(&self.spec, device.as_ref(), &entries) {
            Found::Ours(_) if self.spec.monitor_io => Ok(self.probe_io().await),
            Found::Ours(_) => Ok(ResourceState::Running),
            Found::Nothing | Found::Other(_) => {
                let elsewhere = mounts_of(&self.spec, device.as_ref(), &entries);
                Ok(if elsewhere.is_empty() {
                    ResourceState::Stopped
                } else {
                    ResourceState::Failed(format!(
                        "{} is mounted at {}, not at {}",
                        self.spec.device,
                        paths(&elsewhere),
                        self.spec.mountpoint.display()
                    ))
                })
            }
        }
    }

    /// The block device (resolved, with its number); `None` for network filesystems.
    async fn device(&self) -> Result<Option<Device>, Fault> {
        if self.spec.is_network() {
            return Ok(None);
        }
        let path = resolve(&self.spec.device, &self.spec.mountpoint).await?;
        let meta = std::fs::metadata(&path).map_err(|e| {
            format!(
                "device {} ({}) for {} not found on this node: {e}; check that the LUN or \
                 volume is visible here (multipath, LVM activation, SAN zoning)",
                self.spec.device,
                path.display(),
                self.spec.mountpoint.display()
            )
        })?;
        if !meta.file_type().is_block_device() {
            return Err(format!(
                "{} is not a block device; `device` must name a disk, partition or volume",
                path.display()
            )
            .into());
        }
        let rdev = meta.rdev();
        Ok(Some(Device {
            path,
            dev: (
                nix::sys::stat::major(rdev) as u32,
                nix::sys::stat::minor(rdev) as u32,
            ),
        }))
    }

    fn find(&self, device: Option<&Device>) -> Result<Found, Fault> {
        let entries = mountinfo::read("self")?;
        Ok(classify(&self.spec, device, &entries))
    }

    /// The check to run before mounting, if any: `e2fsck -p` for ext2/3/4 (checks only an
    /// unclean filesystem), `fsck -a` for other types; none for xfs and btrfs (their
    /// journals are replayed by the mount; their repair tools are for an operator) and
    /// network filesystems.
    fn fsck_command(&self, source: &str) -> Option<Vec<String>> {
        if !self.spec.fsck {
            return None;
        }
        fsck_command(self.spec.fstype.as_deref(), source)
    }

    async fn fsck(&self, argv: &[String]) -> Result<(), Fault> {
        let mut out = run(argv).await?;
        // e2fsck refuses a device another holder has open exclusively ("is in use"); right
        // after another node (or this one) released it, that can last a moment.
        let end = Instant::now() + FSCK_BUSY_WAIT;
        while out.status.code() == Some(8)
            && describe(&out).contains("is in use")
            && Instant::now() < end
        {
            tokio::time::sleep(Duration::from_millis(100)).await;
            out = run(argv).await?;
        }
        // fsck exit codes: 0 clean, 1 errors corrected, 2 corrected and reboot advised
        // (root filesystems only); 4 and up: errors left, or the check could not run.
        match out.status.code() {
            Some(0) => {
                tracing::info!("{}: `{}`: {}", self.what(), argv.join(" "), describe(&out));
                Ok(())
            }
            Some(c @ (1 | 2)) => {
                tracing::warn!(
                    "{}: `{}` corrected errors (exit code {c}): {}",
                    self.what(),
                    argv.join(" "),
                    describe(&out)
                );
                Ok(())
            }
            _ => Err(format!(
                "the filesystem check of {} failed: `{}`: {}; repair it by hand (without -p) \
                 before starting the group, or set `fsck: false` to mount without a check",
                self.what(),
                argv.join(" "),
                describe(&out)
            )
            .into()),
        }
    }

    async fn kill_users(&self, what: &str, dev: (u32, u32), users: Vec<User>) {
        if users.is_empty() {
            return;
        }
        tracing::warn!(
            "{what} is busy; sending TERM to {}",
            mount_users::describe(&users)
        );
        mount_users::signal(&users, Signal::SIGTERM);
        if wait_free(dev, TERM_GRACE).await {
            return;
        }
        let left = find_users(dev).await;
        tracing::warn!(
            "{what}: still used after TERM; sending KILL to {}",
            mount_users::describe(&left)
        );
        mount_users::signal(&left, Signal::SIGKILL);
        wait_free(dev, KILL_GRACE).await;
    }

    fn busy(&self, what: &str, target: &Path, users: &[User], why: &str) -> String {
        let held = if users.is_empty() {
            format!(
                "no process holds it: look for mounts below {} or loop devices on it",
                target.display()
            )
        } else {
            format!("used by {}", mount_users::describe(users))
        };
        format!(
            "cannot unmount {what}: busy ({why}), {held}; stop those processes (or set \
             `force_unmount: true`). The node must be fenced before the group starts \
             elsewhere"
        )
    }

    async fn probe_io(&self) -> ResourceState {
        if let Some(since) = self.probe_since.lock().map(|g| *g).unwrap_or(None) {
            return ResourceState::Failed(format!(
                "the I/O probe on {} started {}s ago has not returned: the storage hangs",
                self.spec.mountpoint.display(),
                since.elapsed().as_secs()
            ));
        }
        if let Ok(mut g) = self.probe_since.lock() {
            *g = Some(Instant::now());
        }
        let (tx, rx) = tokio::sync::oneshot::channel();
        let dir = self.spec.mountpoint.clone();
        let read_only = self.spec.read_only();
        let marker = self.probe_since.clone();
        // A thread of its own: I/O on a hung NFS server or a dead LUN blocks in the kernel
        // and cannot be cancelled; the agent must not wait on it.
        let spawned = std::thread::Builder::new()
            .name("fs-io-probe".into())
            .spawn(move || {
                let result = io_probe(&dir, read_only);
                if let Ok(mut g) = marker.lock() {
                    *g = None;
                }
                let _ = tx.send(result);
            });
        if let Err(e) = spawned {
            if let Ok(mut g) = self.probe_since.lock() {
                *g = None;
            }
            return ResourceState::Failed(format!("cannot start the I/O probe: {e}"));
        }
        match tokio::time::timeout(self.spec.io_timeout, rx).await {
            Ok(Ok(Ok(()))) => ResourceState::Running,
            Ok(Ok(Err(e))) => ResourceState::Failed(format!(
                "I/O probe on {} failed: {e}",
                self.spec.mountpoint.display()
            )),
            Ok(Err(_)) => {
                ResourceState::Failed("the I/O probe thread ended without an answer".into())
            }
            Err(_) => ResourceState::Failed(format!(
                "the I/O probe on {} did not finish within {}ms: the storage hangs",
                self.spec.mountpoint.display(),
                self.spec.io_timeout.as_millis()
            )),
        }
    }
}

/// A resolved block device.
#[derive(Debug, Clone, PartialEq, Eq)]
struct Device {
    path: PathBuf,
    dev: (u32, u32),
}

/// What is at the mountpoint: our filesystem (see [`is_ours`]), nothing, or another one.
fn classify(spec: &FsSpec, device: Option<&Device>, entries: &[MountEntry]) -> Found {
    match mountinfo::at(entries, &spec.mountpoint) {
        None => Found::Nothing,
        Some(e) if is_ours(spec, device, e) => Found::Ours(e.clone()),
        Some(e) => Found::Other(e.clone()),
    }
}

/// A mount of our filesystem: of our block device (by number), of our export (by source
/// and type), or, when the device cannot be found any more (stop only), whatever is
/// mounted at the mountpoint.
fn is_ours(spec: &FsSpec, device: Option<&Device>, e: &MountEntry) -> bool {
    match device {
        Some(d) => e.dev == d.dev,
        None if spec.is_network() => {
            let want = spec.fstype.as_deref().unwrap_or_default();
            e.source.trim_end_matches('/') == spec.device.trim_end_matches('/')
                && (e.fstype == want || (e.fstype.starts_with("nfs") && want.starts_with("nfs")))
        }
        None => e.mount_point == spec.mountpoint,
    }
}

/// Every mount of our filesystem on this node, in mount order (wherever mounted).
fn mounts_of(spec: &FsSpec, device: Option<&Device>, entries: &[MountEntry]) -> Vec<MountEntry> {
    entries
        .iter()
        .filter(|e| is_ours(spec, device, e))
        .cloned()
        .collect()
}

fn paths(mounts: &[MountEntry]) -> String {
    mounts
        .iter()
        .map(|m| m.mount_point.display().to_string())
        .collect::<Vec<_>>()
        .join(", ")
}

/// Mounts made in a private mount namespace (a sandboxed service) are invisible to the rest
/// of the node: refuse rather than start units that would not see their data.
fn same_mount_namespace_as_init() -> Result<(), Fault> {
    let mine = std::fs::read_link("/proc/self/ns/mnt");
    let init = std::fs::read_link("/proc/1/ns/mnt");
    match (mine, init) {
        (Ok(a), Ok(b)) if a == b => Ok(()),
        (Ok(_), Ok(_)) => Err(
            "the agent runs in a private mount namespace (ProtectSystem=, \
             ProtectHome=, PrivateTmp= or similar in oneha.service), so its mounts would be \
             invisible to the units: turn those off with a drop-in (see docs/storage.md)"
                .to_string()
                .into(),
        ),
        (Err(e), _) | (_, Err(e)) => {
            Err(format!("cannot compare mount namespaces with PID 1: {e}").into())
        }
    }
}

async fn umount(target: &Path, flags: MntFlags) -> Result<(), Errno> {
    let target = target.to_path_buf();
    tokio::task::spawn_blocking(move || nix::mount::umount2(&target, flags))
        .await
        .unwrap_or(Err(Errno::EINTR))
}

async fn find_users(dev: (u32, u32)) -> Vec<User> {
    tokio::task::spawn_blocking(move || mount_users::find(dev))
        .await
        .unwrap_or_default()
}

/// Waits up to `limit` until no process uses `dev`; true if none does.
async fn wait_free(dev: (u32, u32), limit: Duration) -> bool {
    let end = Instant::now() + limit;
    loop {
        if find_users(dev).await.is_empty() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        tokio::time::sleep(Duration::from_millis(50)).await;
    }
}

/// Writes, syncs, reads back and removes a small file (read-only mounts: lists the
/// directory).
fn io_probe(dir: &Path, read_only: bool) -> Result<(), String> {
    use std::io::Write;
    if read_only {
        return std::fs::read_dir(dir)
            .map(|_| ())
            .map_err(|e| format!("cannot list {}: {e}", dir.display()));
    }
    let path = dir.join(".oneha-io-probe");
    let text = format!("oneha {} {:?}\n", std::process::id(), Instant::now());
    let mut f = std::fs::File::create(&path)
        .map_err(|e| format!("cannot create {}: {e}", path.display()))?;
    f.write_all(text.as_bytes())
        .and_then(|()| f.sync_all())
        .map_err(|e| format!("cannot write {}: {e}", path.display()))?;
    let back = std::fs::read_to_string(&path)
        .map_err(|e| format!("cannot read {}: {e}", path.display()))?;
    let _ = std::fs::remove_file(&path);
    if back == text {
        Ok(())
    } else {
        Err(format!(
            "{} read back differs from what was written",
            path.display()
        ))
    }
}

#[cfg(test)]
#[path = "filesystem_tests.rs"]
mod tests;
