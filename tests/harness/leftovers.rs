//! What a topology may leave behind if its teardown failed, checked after the fact: the
//! demo and the campaigns end with this check, like a test.

use std::fs;
use std::path::Path;

use super::cmd::try_run;
use super::topology::{REGISTRY_DIR, cgroup_root};

/// Everything still present from the topology with name prefix `prefix` (e.g. `oht3fa9`):
/// network namespaces (the bridge and the veths live in them), node cgroups, processes in
/// those cgroups, loop devices over images in its temp directory, the temp directory, the
/// registry entry. Empty when the teardown was complete.
pub fn leftovers(prefix: &str) -> Vec<String> {
    let start = format!("{prefix}-");
    let mut found = Vec::new();
    let netns = try_run(&["ip", "netns", "list"])
        .map(|o| o.stdout)
        .unwrap_or_default();
    found.extend(
        netns
            .lines()
            .filter_map(|l| l.split_whitespace().next())
            .filter(|n| n.starts_with(&start))
            .map(|n| format!("network namespace {n}")),
    );
    let root = cgroup_root();
    if let Ok(entries) = fs::read_dir(&root) {
        found.extend(
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&start))
                .map(|e| format!("cgroup {}", e.path().display())),
        );
    }
    let marker = format!("/{start}");
    if let Ok(procs) = fs::read_dir("/proc") {
        for p in procs.flatten() {
            let name = p.file_name().to_string_lossy().into_owned();
            if !name.bytes().all(|b| b.is_ascii_digit()) {
                continue;
            }
            let cg = fs::read_to_string(p.path().join("cgroup")).unwrap_or_default();
            if cg.contains(&marker) {
                let comm = fs::read_to_string(p.path().join("comm")).unwrap_or_default();
                found.push(format!("process {name} ({})", comm.trim()));
            }
        }
    }
    if let Ok(entries) = fs::read_dir(std::env::temp_dir()) {
        found.extend(
            entries
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&start))
                .map(|e| format!("directory {}", e.path().display())),
        );
    }
    found.extend(
        super::disk::loop_devices_of(prefix)
            .into_iter()
            .map(|d| format!("loop device {d}")),
    );
    let reg = Path::new(REGISTRY_DIR).join(prefix);
    if reg.exists() {
        found.push(format!("registry entry {}", reg.display()));
    }
    found
}
