//! `/proc/PID/mountinfo`: what the kernel has mounted, as the kernel says it (never `df`).
//!
//! One line per mount: `ID PARENT MAJOR:MINOR ROOT MOUNT_POINT OPTIONS [OPTIONAL...] - FSTYPE
//! SOURCE SUPER_OPTIONS`, with space, tab, newline and backslash in paths escaped as octal
//! (`\040`).

use std::path::{Path, PathBuf};

/// One mount.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MountEntry {
    /// Mount ID (unique across mount namespaces; `mnt_id` in `/proc/PID/fdinfo/FD`).
    pub id: u64,
    /// Device number of the filesystem (for a block device, the device's own number).
    pub dev: (u32, u32),
    /// Where it is mounted.
    pub mount_point: PathBuf,
    /// Filesystem type, e.g. `ext4`, `nfs4`.
    pub fstype: String,
    /// What was mounted, e.g. `/dev/sdb1`, `server:/export`.
    pub source: String,
}

/// Parses mountinfo text; lines that do not parse are skipped.
pub fn parse(text: &str) -> Vec<MountEntry> {
    text.lines().filter_map(parse_line).collect()
}

/// The mount table of `pid` (`self` for this process). An error names the file.
pub fn read(pid: &str) -> Result<Vec<MountEntry>, String> {
    let path = format!("/proc/{pid}/mountinfo");
    std::fs::read_to_string(&path)
        .map(|t| parse(&t))
        .map_err(|e| format!("cannot read {path}: {e}"))
}

/// The mount visible at `mount_point` (the last one mounted there: it hides the others).
pub fn at<'a>(entries: &'a [MountEntry], mount_point: &Path) -> Option<&'a MountEntry> {
    entries.iter().rev().find(|e| e.mount_point == mount_point)
}

fn parse_line(line: &str) -> Option<MountEntry> {
    let (left, right) = line.split_once(" - ")?;
    let mut l = left.split(' ');
    let id = l.next()?.parse().ok()?;
    let _parent = l.next()?;
    let (major, minor) = l.next()?.split_once(':')?;
    let _root = l.next()?;
    let mount_point = PathBuf::from(unescape(l.next()?));
    let mut r = right.split(' ');
    let fstype = unescape(r.next()?);
    let source = unescape(r.next()?);
    Some(MountEntry {
        id,
        dev: (major.parse().ok()?, minor.parse().ok()?),
        mount_point,
        fstype,
        source,
    })
}

/// Undoes the kernel's octal escapes (`\040` is a space).
fn unescape(s: &str) -> String {
    let b = s.as_bytes();
    let mut out = Vec::with_capacity(b.len());
    let mut i = 0;
    while i < b.len() {
        if b[i] == b'\\'
            && i + 4 <= b.len()
            && let Some(oct) = s.get(i + 1..i + 4)
            && oct.bytes().all(|c| (b'0'..=b'7').contains(&c))
            && let Ok(v) = u8::from_str_radix(oct, 8)
        {
            out.push(v);
            i += 4;
            continue;
        }
        out.push(b[i]);
        i += 1;
    }
    String::from_utf8_lossy(&out).into_owned()
}

#[cfg(test)]
mod tests {
    use super::*;

    const SAMPLE: &str = "\
22 1 0:21 / /run rw,nosuid,nodev shared:5 - tmpfs tmpfs rw,mode=755
36 22 7:3 / /srv/one\\040data rw,relatime shared:40 - ext4 /dev/loop3 rw
37 22 0:52 / /var/lib/one rw,relatime - nfs4 192.0.2.5:/export/one rw,vers=4.2
38 36 7:4 / /srv/one\\040data rw,relatime - xfs /dev/loop4 rw
garbage line
";

    #[test]
    fn reads_ids_devices_paths_types_and_sources() {
        let m = parse(SAMPLE);
        assert_eq!(m.len(), 4, "{m:?}");
        assert_eq!(m[1].id, 36);
        assert_eq!(m[1].dev, (7, 3));
        assert_eq!(m[1].mount_point, Path::new("/srv/one data"));
        assert_eq!(m[1].fstype, "ext4");
        assert_eq!(m[1].source, "/dev/loop3");
        assert_eq!(m[2].source, "192.0.2.5:/export/one");
        assert_eq!(m[2].fstype, "nfs4");
    }

    #[test]
    fn the_last_mount_on_a_path_is_the_visible_one() {
        let m = parse(SAMPLE);
        let top = at(&m, Path::new("/srv/one data"));
        assert_eq!(top.map(|e| e.dev), Some((7, 4)));
        assert!(at(&m, Path::new("/srv")).is_none());
    }

    #[test]
    fn unescapes_octal_and_keeps_other_backslashes() {
        assert_eq!(unescape("a\\040b\\011c\\134d"), "a b\tc\\d");
        assert_eq!(unescape("a\\x"), "a\\x");
        assert_eq!(unescape("end\\04"), "end\\04");
    }
}
