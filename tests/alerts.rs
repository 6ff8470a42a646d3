//! Alert scripts on real agents over loopback: a failover runs the operator's scripts with
//! the event in their environment, a script that hangs is killed at its timeout while the
//! agent keeps working, and a script that never ends does not hold up the failover.
//!
//! The group is one LSB script whose state file is keyed by the agent's pid (its parent), so
//! three agents on one machine each run their own copy; the fence device is a fence agent
//! script that reports success and then "off".

mod local;

use std::collections::BTreeMap;
use std::os::unix::fs::PermissionsExt as _;
use std::path::PathBuf;
use std::time::Duration;

use local::{LocalCluster, wait_for};

const LONG: Duration = Duration::from_secs(40);

struct Scripts {
    dir: tempfile::TempDir,
}

impl Scripts {
    fn new() -> Scripts {
        let s = Scripts {
            dir: tempfile::tempdir().expect("tempdir"),
        };
        let d = s.dir.path().display().to_string();
        s.write(
            "svc.sh",
            &format!(
                "#!/bin/sh\nf={d}/running.$PPID\ncase \"$1\" in\nstart) touch \"$f\";;\n\
                 stop) rm -f \"$f\";;\nstatus) [ -e \"$f\" ] && exit 0; exit 3;;\nesac\nexit 0\n"
            ),
        );
        s.write(
            "fence.sh",
            "#!/bin/sh\naction=\nwhile IFS= read -r l; do case \"$l\" in action=*) \
             action=${l#action=};; esac; done\n[ \"$action\" = status ] && exit 2\nexit 0\n",
        );
        // One file per event and node, written whole.
        s.write(
            "record.sh",
            &format!(
                "#!/bin/sh\nf={d}/alert.$ONEHA_NODE.$ONEHA_EVENT.$ONEHA_SEQUENCE\n\
                 env | grep '^ONEHA_' | sort > \"$f.tmp\" && mv \"$f.tmp\" \"$f\"\n"
            ),
        );
        s.write(
            "hang.sh",
            &format!("#!/bin/sh\necho $$ > {d}/hang.$ONEHA_NODE.$ONEHA_EVENT\nexec sleep 1000\n"),
        );
        s
    }

    fn path(&self, name: &str) -> PathBuf {
        self.dir.path().join(name)
    }

    fn write(&self, name: &str, text: &str) {
        let p = self.path(name);
        std::fs::write(&p, text).expect("write script");
        std::fs::set_permissions(&p, std::fs::Permissions::from_mode(0o755)).expect("chmod");
    }

    /// The config section: the group, fencing of every node, and `alerts`.
    fn config(&self, alerts: &str) -> String {
        let mut nodes = String::new();
        for n in ["n1", "n2", "n3"] {
            nodes.push_str(&format!(
                "    {n}: {{levels: [{{device: pdu, plug: {n}}}]}}\n"
            ));
        }
        format!(
            "resources:\n  group:\n    - {{name: svc, type: lsb, script: {svc}}}\n\
             fencing:\n  devices:\n    pdu: {{type: agent, agent: {fence}, timeout: 10s}}\n  \
             nodes:\n{nodes}alerts:\n{alerts}",
            svc = self.path("svc.sh").display(),
            fence = self.path("fence.sh").display(),
        )
    }

    /// The environment `record.sh` saw for `event` on `node` (the first such run).
    fn recorded(&self, node: &str, event: &str) -> Option<BTreeMap<String, String>> {
        let prefix = format!("alert.{node}.{event}.");
        let mut files: Vec<PathBuf> = std::fs::read_dir(self.dir.path())
            .ok()?
            .filter_map(|e| e.ok().map(|e| e.path()))
            .filter(|p| {
                p.file_name()
                    .and_then(|n| n.to_str())
                    .is_some_and(|n| n.starts_with(&prefix) && !n.ends_with(".tmp"))
            })
            .collect();
        files.sort();
        let text = std::fs::read_to_string(files.first()?).ok()?;
        Some(
            text.lines()
                .filter_map(|l| l.split_once('='))
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        )
    }

    /// The pid `hang.sh` wrote for `event` on `node`.
    fn hang_pid(&self, node: &str, event: &str) -> Option<i32> {
        std::fs::read_to_string(self.path(&format!("hang.{node}.{event}")))
            .ok()?
            .trim()
            .parse()
            .ok()
    }
}

impl Drop for Scripts {
    /// Scripts of killed agents outlive them: end every `hang.sh` still running.
    fn drop(&mut self) {
        let Ok(entries) = std::fs::read_dir(self.dir.path()) else {
            return;
        };
        for e in entries.flatten() {
            let is_hang = e
                .file_name()
                .to_str()
                .is_some_and(|n| n.starts_with("hang."));
            let pid = std::fs::read_to_string(e.path())
                .ok()
                .and_then(|t| t.trim().parse().ok());
            if let (true, Some(pid)) = (is_hang, pid) {
                let _ = nix::sys::signal::kill(
                    nix::unistd::Pid::from_raw(pid),
                    nix::sys::signal::Signal::SIGKILL,
                );
            }
        }
    }
}

fn alive(pid: i32) -> bool {
    // A killed child the agent reaped is gone; /proc/PID/stat of a zombie says `Z`.
    std::fs::read_to_string(format!("/proc/{pid}/stat")).is_ok_and(|s| {
        s.rsplit(')')
            .next()
            .is_some_and(|r| !r.trim_start().starts_with('Z'))
    })
}

/// Waits for an owner running the group; returns its index.
fn running_owner(c: &LocalCluster, from: usize) -> Option<usize> {
    wait_for(LONG, || {
        let s = c.status(from)?;
        (s.group.state == "started").then_some(())?;
        s.group.owner.map(|o| c.index(&o))
    })
}

/// Kills the owner and waits for another node to run the group; returns (old, new) indexes.
fn fail_over(c: &mut LocalCluster) -> (usize, usize) {
    let l = c.wait_leader(LONG).expect("a leader");
    let owner = running_owner(c, l).expect("the group starts");
    c.kill9(owner);
    let other = (0..3).find(|&i| i != owner).expect("another node");
    let new = wait_for(LONG, || {
        let s = c.status(other)?;
        let o = s.group.owner?;
        (o != c.agents[owner].name && s.group.state == "started").then(|| c.index(&o))
    });
    let new = new.unwrap_or_else(|| panic!("no failover:\n{}", c.log(other)));
    (owner, new)
}

#[test]
fn a_failover_runs_the_alert_scripts_and_a_hanging_one_is_killed_at_its_timeout() {
    let s = Scripts::new();
    let alerts = format!(
        "  - {{path: {}}}\n  - {{path: {}, timeout: 1s, events: [fence-succeeded]}}\n",
        s.path("record.sh").display(),
        s.path("hang.sh").display()
    );
    let mut c = LocalCluster::start("alerts-env", &["frontend"; 3], &s.config(&alerts));
    let (old, new) = fail_over(&mut c);
    let (old_name, new_name) = (c.agents[old].name.clone(), c.agents[new].name.clone());
    let env = wait_for(LONG, || s.recorded(&new_name, "failover"))
        .unwrap_or_else(|| panic!("no failover alert:\n{}", c.log(new)));
    assert_eq!(env.get("ONEHA_EVENT").map(String::as_str), Some("failover"));
    assert_eq!(env.get("ONEHA_CLUSTER").map(String::as_str), Some("test"));
    assert_eq!(env.get("ONEHA_NODE"), Some(&new_name));
    assert_eq!(env.get("ONEHA_TARGET"), Some(&new_name));
    let generation = c.status(new).expect("status").group.generation;
    assert_eq!(env.get("ONEHA_GROUP"), Some(&generation.to_string()));
    assert!(
        env.get("ONEHA_DETAIL")
            .is_some_and(|d| d.contains("took over")),
        "{env:?}"
    );
    assert!(
        env.get("ONEHA_TIMESTAMP").is_some_and(|t| t.ends_with('Z')),
        "{env:?}"
    );
    // Some survivor fenced the lost owner and said so, naming it.
    let fencer = wait_for(LONG, || {
        (0..3).filter(|&i| i != old).find_map(|i| {
            s.recorded(&c.agents[i].name, "fence-succeeded")
                .map(|e| (i, e))
        })
    });
    let (fencer, fenv) = fencer.expect("a fence-succeeded alert");
    assert_eq!(fenv.get("ONEHA_TARGET"), Some(&old_name), "{fenv:?}");
    // The hanging script for that event is killed at its timeout, and the agent says so.
    let name = c.agents[fencer].name.clone();
    let pid = wait_for(LONG, || s.hang_pid(&name, "fence-succeeded")).expect("hang.sh ran");
    let killed = wait_for(LONG, || {
        (!alive(pid)
            && c.log(fencer)
                .contains("alert script killed after its timeout"))
        .then_some(())
    });
    assert!(
        killed.is_some(),
        "hang.sh {pid} not killed:\n{}",
        c.log(fencer)
    );
    assert!(
        c.log(fencer).contains("alert script exited 0"),
        "{}",
        c.log(fencer)
    );
    // And the agent keeps working.
    assert!(c.status(fencer).is_some(), "the agent answers");
}

#[test]
fn an_alert_script_that_never_ends_does_not_hold_up_the_failover() {
    let s = Scripts::new();
    let alerts = format!(
        "  - {{path: {}, timeout: 10m}}\n  - {{path: {}}}\n",
        s.path("hang.sh").display(),
        s.path("record.sh").display()
    );
    let mut c = LocalCluster::start("alerts-slow", &["frontend"; 3], &s.config(&alerts));
    let (old, new) = fail_over(&mut c);
    let new_name = c.agents[new].name.clone();
    // The failover completed (above) and was alerted while the scripts of the earlier
    // events still hang: the fence alert on the survivor that fenced.
    let fenced_hang = wait_for(LONG, || {
        (0..3)
            .filter(|&i| i != old)
            .find_map(|i| s.hang_pid(&c.agents[i].name, "fence-succeeded"))
    });
    let pid = fenced_hang.expect("hang.sh ran for the fence event");
    let env = wait_for(LONG, || s.recorded(&new_name, "failover"));
    assert!(env.is_some(), "no failover alert:\n{}", c.log(new));
    assert!(
        alive(pid),
        "hang.sh {pid} should still be running (timeout 10m)"
    );
}
