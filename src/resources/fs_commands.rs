//! The commands of the filesystem resource: `mount`, the check before mounting, device
//! lookup by UUID or label, and running them with their output kept for error messages.

use std::path::{Path, PathBuf};
use std::process::Stdio;

use tokio::process::Command;

use super::Fault;
use crate::config::filesystem::{FsSpec, NETWORK_TYPES};

/// `mount [-t TYPE] [-o OPTIONS] SOURCE MOUNTPOINT`.
pub(super) fn mount_command(spec: &FsSpec, source: &str) -> Vec<String> {
    let mut argv = vec!["mount".to_string()];
    if let Some(t) = &spec.fstype {
        argv.extend(["-t".to_string(), t.clone()]);
    }
    if let Some(o) = &spec.options {
        argv.extend(["-o".to_string(), o.clone()]);
    }
    argv.extend([source.to_string(), spec.mountpoint.display().to_string()]);
    argv
}

pub(super) fn fsck_command(fstype: Option<&str>, source: &str) -> Option<Vec<String>> {
    let argv: &[&str] = match fstype {
        Some("ext2" | "ext3" | "ext4") => &["e2fsck", "-p"],
        Some("xfs" | "btrfs") => return None,
        Some(t) if NETWORK_TYPES.contains(&t) => return None,
        Some(t) => {
            return Some(vec![
                "fsck".into(),
                "-t".into(),
                t.into(),
                "-a".into(),
                source.into(),
            ]);
        }
        None => &["fsck", "-a"],
    };
    let mut v: Vec<String> = argv.iter().map(|s| s.to_string()).collect();
    v.push(source.to_string());
    Some(v)
}

/// `UUID=...` and `LABEL=...` through udev's links, else `blkid`; paths as they are.
pub(super) async fn resolve(device: &str, mountpoint: &Path) -> Result<PathBuf, Fault> {
    let (dir, flag, value) = if let Some(v) = device.strip_prefix("UUID=") {
        ("/dev/disk/by-uuid", "-U", v)
    } else if let Some(v) = device.strip_prefix("LABEL=") {
        ("/dev/disk/by-label", "-L", v)
    } else {
        return Ok(PathBuf::from(device));
    };
    if let Ok(p) = std::fs::canonicalize(Path::new(dir).join(value)) {
        return Ok(p);
    }
    let argv = ["blkid".to_string(), flag.to_string(), value.to_string()];
    let out = run(&argv).await?;
    let found = String::from_utf8_lossy(&out.stdout).trim().to_string();
    if out.status.success() && !found.is_empty() {
        return Ok(PathBuf::from(found));
    }
    Err(format!(
        "no device with {device} for {} on this node (looked in {dir} and asked `blkid \
         {flag}`): check that the LUN or volume is visible here (multipath, LVM activation, SAN \
         zoning)",
        mountpoint.display()
    )
    .into())
}

/// Runs `argv` (stdin closed, `LC_ALL=C`), killed if the caller gives up.
pub(super) async fn run(argv: &[String]) -> Result<std::process::Output, Fault> {
    let Some((prog, args)) = argv.split_first() else {
        return Err("empty command".to_string().into());
    };
    Command::new(prog)
        .args(args)
        .env("LC_ALL", "C")
        .stdin(Stdio::null())
        .kill_on_drop(true)
        .output()
        .await
        .map_err(|e| format!("cannot run {prog}: {e}; is it installed?").into())
}

/// Exit code and output of a command, for messages.
pub(super) fn describe(out: &std::process::Output) -> String {
    let text = format!(
        "{}{}",
        String::from_utf8_lossy(&out.stderr),
        String::from_utf8_lossy(&out.stdout)
    );
    let text = text.trim();
    let code = out
        .status
        .code()
        .map_or_else(|| out.status.to_string(), |c| format!("exit code {c}"));
    if text.is_empty() {
        code
    } else {
        format!("{code}: {}", text.chars().take(1000).collect::<String>())
    }
}
