//! Which processes use a filesystem (what `fuser -m` answers), found without touching the
//! filesystem itself, so a hung NFS server or a dead LUN cannot block the search:
//!
//! - open files: `mnt_id` in `/proc/PID/fdinfo/FD`, against the IDs of every mount of the
//!   filesystem (read from each mount namespace's `/proc/PID/mountinfo`);
//! - working directory, root, executable: the link opened with `O_PATH` (no filesystem
//!   call), then the `mnt_id` of that descriptor;
//! - mapped files: the device column of `/proc/PID/maps`.

use std::collections::HashSet;
use std::fs;
use std::os::fd::AsRawFd;

use nix::fcntl::{OFlag, open};
use nix::sys::signal::{Signal, kill};
use nix::sys::stat::Mode;
use nix::unistd::Pid;

use super::mountinfo;

/// A process using the filesystem.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct User {
    /// Process ID (in this pid namespace).
    pub pid: i32,
    /// Its command name.
    pub comm: String,
    /// How it uses it: `open file`, `working directory`, `root`, `executable`, `mapped file`.
    pub how: &'static str,
}

impl std::fmt::Display for User {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "pid {} ({}, {})", self.pid, self.comm, self.how)
    }
}

/// Lists `users` for a message: `pid 12 (sleep, working directory), ...`.
pub fn describe(users: &[User]) -> String {
    users
        .iter()
        .map(User::to_string)
        .collect::<Vec<_>>()
        .join(", ")
}

/// Every process (but this one) using the filesystem with device number `dev`.
pub fn find(dev: (u32, u32)) -> Vec<User> {
    let me = std::process::id() as i32;
    let pids: Vec<i32> = fs::read_dir("/proc")
        .map(|d| {
            d.flatten()
                .filter_map(|e| e.file_name().to_str()?.parse().ok())
                .filter(|p| *p != me)
                .collect()
        })
        .unwrap_or_default();
    let mounts = mount_ids(&pids, dev);
    pids.into_iter()
        .filter_map(|pid| {
            let how = how_used(pid, dev, &mounts)?;
            let comm = fs::read_to_string(format!("/proc/{pid}/comm")).unwrap_or_default();
            Some(User {
                pid,
                comm: comm.trim().to_string(),
                how,
            })
        })
        .collect()
}

/// Sends `signal` to each of `users`, except PID 1 (which is never signalled); processes
/// that are gone already are fine.
pub fn signal(users: &[User], signal: Signal) {
    for u in users.iter().filter(|u| u.pid != 1) {
        let _ = kill(Pid::from_raw(u.pid), signal);
    }
}

/// IDs of every mount of the filesystem `dev`, in every mount namespace the processes are in.
fn mount_ids(pids: &[i32], dev: (u32, u32)) -> HashSet<u64> {
    let mut seen: HashSet<String> = HashSet::new();
    let mut ids = HashSet::new();
    for pid in std::iter::once("self".to_string()).chain(pids.iter().map(i32::to_string)) {
        let Ok(ns) = fs::read_link(format!("/proc/{pid}/ns/mnt")) else {
            continue;
        };
        if !seen.insert(ns.to_string_lossy().into_owned()) {
            continue;
        }
        if let Ok(entries) = mountinfo::read(&pid) {
            ids.extend(entries.iter().filter(|e| e.dev == dev).map(|e| e.id));
        }
    }
    ids
}

fn how_used(pid: i32, dev: (u32, u32), mounts: &HashSet<u64>) -> Option<&'static str> {
    for (link, how) in [
        ("cwd", "working directory"),
        ("root", "root"),
        ("exe", "executable"),
    ] {
        if link_mount_id(&format!("/proc/{pid}/{link}")).is_some_and(|id| mounts.contains(&id)) {
            return Some(how);
        }
    }
    if let Ok(fds) = fs::read_dir(format!("/proc/{pid}/fdinfo")) {
        for fd in fds.flatten() {
            let text = fs::read_to_string(fd.path()).unwrap_or_default();
            if fdinfo_mount_id(&text).is_some_and(|id| mounts.contains(&id)) {
                return Some("open file");
            }
        }
    }
    let maps = fs::read_to_string(format!("/proc/{pid}/maps")).unwrap_or_default();
    maps.lines()
        .any(|l| maps_dev(l) == Some(dev))
        .then_some("mapped file")
}

/// Mount ID of what the magic link `path` points to, without calling into its filesystem.
fn link_mount_id(path: &str) -> Option<u64> {
    let fd = open(path, OFlag::O_PATH | OFlag::O_CLOEXEC, Mode::empty()).ok()?;
    let text = fs::read_to_string(format!("/proc/self/fdinfo/{}", fd.as_raw_fd())).ok()?;
    fdinfo_mount_id(&text)
}

fn fdinfo_mount_id(text: &str) -> Option<u64> {
    text.lines()
        .find_map(|l| l.strip_prefix("mnt_id:"))
        .and_then(|v| v.trim().parse().ok())
}

/// The device of a file mapping (`ADDR PERMS OFFSET MAJ:MIN INODE PATH`, hex numbers);
/// `None` for anonymous mappings (inode 0).
fn maps_dev(line: &str) -> Option<(u32, u32)> {
    let mut f = line.split_whitespace();
    let (_, _, _, dev, inode) = (f.next()?, f.next()?, f.next()?, f.next()?, f.next()?);
    if inode == "0" {
        return None;
    }
    let (maj, min) = dev.split_once(':')?;
    Some((
        u32::from_str_radix(maj, 16).ok()?,
        u32::from_str_radix(min, 16).ok()?,
    ))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_fdinfo_and_maps() {
        assert_eq!(
            fdinfo_mount_id("pos:\t0\nflags:\t02\nmnt_id:\t36\nino:\t12\n"),
            Some(36)
        );
        assert_eq!(fdinfo_mount_id("pos:\t0\n"), None);
        assert_eq!(
            maps_dev("7f00-7f10 r-xp 00000000 fe:01 1234 /srv/one/lib.so"),
            Some((254, 1))
        );
        assert_eq!(maps_dev("7f00-7f10 rw-p 00000000 00:00 0 "), None);
    }

    /// This test process uses the filesystem of its working directory; a child whose
    /// working directory is a temp dir is found as its user.
    #[test]
    fn finds_a_process_by_its_working_directory() {
        let dir = tempfile::tempdir().unwrap_or_else(|e| panic!("temp dir: {e}"));
        let Ok(mut child) = std::process::Command::new("sleep")
            .arg("30")
            .current_dir(dir.path())
            .spawn()
        else {
            panic!("cannot run sleep");
        };
        let dev = fs::metadata(dir.path()).map(|m| {
            let d = std::os::unix::fs::MetadataExt::dev(&m);
            (
                nix::sys::stat::major(d) as u32,
                nix::sys::stat::minor(d) as u32,
            )
        });
        let found = dev.map(find).unwrap_or_default();
        let _ = child.kill();
        let _ = child.wait();
        let pid = child.id() as i32;
        assert!(
            found.iter().any(|u| u.pid == pid && u.comm == "sleep"),
            "{found:?}"
        );
    }
}
