//! The `alerts:` list: scripts run on events (docs/alerts.md), and the event names an entry
//! may filter on. The runner is `alerts`; the events are `events::Kind`, whose names are
//! checked against [`EVENT_NAMES`] by a test there.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::Dur;

/// Every event name (`ONEHA_EVENT`), in the order `events::ALL` lists the kinds.
pub const EVENT_NAMES: [&str; 12] = [
    "failover",
    "group-started",
    "fence-succeeded",
    "fence-failed",
    "quorum-lost",
    "quorum-regained",
    "group-failed",
    "stuck-vms",
    "vm-ha-case-opened",
    "vm-ha-host-fenced",
    "vm-ha-fence-failed",
    "vm-ha-case-closed",
];

/// One entry of the `alerts:` list.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct AlertConfig {
    /// The executable to run (absolute path), with no arguments.
    pub path: PathBuf,
    /// How long a run may take before its process group is killed.
    #[serde(default = "default_timeout")]
    pub timeout: Dur,
    /// Event names this script wants (`failover`, `fence-failed`...); empty: all.
    #[serde(default, skip_serializing_if = "Vec::is_empty")]
    pub events: Vec<String>,
}

fn default_timeout() -> Dur {
    Dur::secs(30)
}

impl AlertConfig {
    /// Problems with this entry (`alerts[i]` is `key`), reported by `check-config`.
    pub fn check(&self, key: &str, push: &mut dyn FnMut(String, String)) {
        use std::os::unix::fs::PermissionsExt as _;
        let path = &self.path;
        if !path.is_absolute() {
            push(
                format!("{key}.path"),
                format!(
                    "expected an absolute path, found `{}`",
                    path.display().to_string().escape_debug()
                ),
            );
        } else {
            match std::fs::metadata(path) {
                Err(e) => push(
                    format!("{key}.path"),
                    format!(
                        "cannot use {}: {e}; install the script there",
                        path.display()
                    ),
                ),
                Ok(m) if !m.is_file() || m.permissions().mode() & 0o111 == 0 => push(
                    format!("{key}.path"),
                    format!(
                        "{} is not an executable file; chmod +x it or fix the path",
                        path.display()
                    ),
                ),
                Ok(_) => {}
            }
        }
        if self.timeout.get().is_zero() {
            push(
                format!("{key}.timeout"),
                "expected a timeout longer than 0".into(),
            );
        }
        for (i, e) in self.events.iter().enumerate() {
            if !EVENT_NAMES.contains(&e.as_str()) {
                push(
                    format!("{key}.events[{i}]"),
                    format!(
                        "unknown event `{}`; expected one of: {}",
                        e.escape_debug(),
                        EVENT_NAMES.join(", ")
                    ),
                );
            }
        }
    }
}

/// Checks the `alerts:` list for `check-config`.
pub fn check_all(alerts: &[AlertConfig], push: &mut dyn FnMut(String, String)) {
    for (i, a) in alerts.iter().enumerate() {
        a.check(&format!("alerts[{i}]"), push);
    }
}

#[cfg(test)]
mod tests {
    use std::os::unix::fs::PermissionsExt as _;

    use super::*;

    fn problems(a: &AlertConfig) -> Vec<(String, String)> {
        let mut out = Vec::new();
        check_all(std::slice::from_ref(a), &mut |k, m| out.push((k, m)));
        out
    }

    #[test]
    fn check_config_names_what_is_wrong_with_an_alert() {
        let dir = tempfile::tempdir().expect("tempdir");
        let script = dir.path().join("alert.sh");
        std::fs::write(&script, "#!/bin/sh\n").expect("write");
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o644)).expect("chmod");
        let mut a = AlertConfig {
            path: script.clone(),
            timeout: Dur::secs(0),
            events: vec!["failover".into(), "failovr".into()],
        };
        let p = problems(&a);
        let keys: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(
            keys,
            ["alerts[0].path", "alerts[0].timeout", "alerts[0].events[1]"],
            "{p:?}"
        );
        assert!(p[0].1.contains("not an executable"), "{p:?}");
        assert!(
            p[2].1.contains("fence-failed"),
            "the message lists the names: {p:?}"
        );
        std::fs::set_permissions(&script, std::fs::Permissions::from_mode(0o755)).expect("chmod");
        a.timeout = Dur::secs(5);
        a.events.pop();
        assert!(problems(&a).is_empty(), "{:?}", problems(&a));
        a.path = "relative.sh".into();
        assert!(problems(&a)[0].1.contains("absolute"));
    }
}
