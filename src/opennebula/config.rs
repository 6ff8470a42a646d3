//! The `opennebula:` section: how to reach oned for the stuck-VM report.

use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use crate::config::{Config, Dur, Problems};

/// How to reach oned, and when to report after a takeover. Every field has a default, so the
/// section may be left out entirely on a front-end where oneadmin's `one_auth` is readable.
#[derive(Debug, Clone, PartialEq, Serialize, Deserialize)]
#[serde(deny_unknown_fields)]
pub struct OpennebulaConfig {
    /// XML-RPC endpoint, e.g. `http://localhost:2633/RPC2`. Unset: `$ONE_XMLRPC`, then
    /// `~/.one/one_endpoint`, then `/var/lib/one/.one/one_endpoint`, then that default.
    #[serde(default)]
    pub endpoint: Option<String>,
    /// File holding the session `user:password`. Unset: the file named by `$ONE_AUTH`, then
    /// `~/.one/one_auth`, then `/var/lib/one/.one/one_auth`.
    #[serde(default)]
    pub auth_file: Option<PathBuf>,
    /// Time allowed for one XML-RPC request, connect included.
    #[serde(default = "default_timeout")]
    pub timeout: Dur,
    /// VMs asked for per `one.vmpool.infoextended` request (the OpenNebula CLI uses 200).
    #[serde(default = "default_page_size")]
    pub page_size: u32,
    /// Wait after oned answers before reporting, so that the new front-end's monitoring can
    /// resolve what it resolves by itself (BOOT*, UNKNOWN, SHUTDOWN*). Default 180s: monitord's
    /// `SYNC_STATE_VM`, the period of the complete VM state report from every host.
    #[serde(default = "default_report_delay")]
    pub report_delay: Dur,
    /// How long to keep retrying while oned is starting (connection refused) or its own Raft is
    /// electing or replicating (INTERNAL errors) before giving up.
    #[serde(default = "default_wait_for_oned")]
    pub wait_for_oned: Dur,
    /// Produce the report after every takeover.
    #[serde(default = "yes")]
    pub report_on_takeover: bool,
}

fn default_timeout() -> Dur {
    Dur::secs(30)
}
fn default_page_size() -> u32 {
    200
}
fn default_report_delay() -> Dur {
    Dur::secs(180)
}
fn default_wait_for_oned() -> Dur {
    Dur::secs(300)
}
fn yes() -> bool {
    true
}

impl Default for OpennebulaConfig {
    fn default() -> Self {
        OpennebulaConfig {
            endpoint: None,
            auth_file: None,
            timeout: default_timeout(),
            page_size: default_page_size(),
            report_delay: default_report_delay(),
            wait_for_oned: default_wait_for_oned(),
            report_on_takeover: true,
        }
    }
}

/// Largest page the report asks for: oned builds each page in memory, and so do we.
pub const MAX_PAGE_SIZE: u32 = 10_000;

impl OpennebulaConfig {
    pub(crate) fn validate(&self, _c: &Config, p: &mut Problems) {
        self.check(&mut |key, msg| p.push(format!("opennebula.{key}"), msg));
    }

    /// Checks every field; `report(key, message)` is called for each problem.
    pub fn check(&self, report: &mut dyn FnMut(&str, String)) {
        if let Some(ep) = &self.endpoint
            && let Err(e) = super::auth::parse_endpoint(ep)
        {
            report("endpoint", e);
        }
        if let Some(f) = &self.auth_file
            && f.as_os_str().is_empty()
        {
            report(
                "auth_file",
                "expected a path to a file holding `user:password`, found an empty string; \
                 leave the key out to use oneadmin's one_auth"
                    .into(),
            );
        }
        if self.timeout.get().is_zero() {
            report(
                "timeout",
                "expected a request timeout longer than 0, e.g. `30s`".into(),
            );
        }
        if self.page_size == 0 || self.page_size > MAX_PAGE_SIZE {
            report(
                "page_size",
                format!(
                    "expected between 1 and {MAX_PAGE_SIZE} VMs per request, found {}; \
                     OpenNebula's own CLI uses 200",
                    self.page_size
                ),
            );
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn problems(cfg: &OpennebulaConfig) -> Vec<(String, String)> {
        let mut out = Vec::new();
        cfg.check(&mut |k, m| out.push((k.to_string(), m)));
        out
    }

    #[test]
    fn defaults_are_valid_and_match_serde_defaults() {
        let d = OpennebulaConfig::default();
        assert!(problems(&d).is_empty());
        let parsed: OpennebulaConfig = serde_norway::from_str("{}").unwrap();
        assert_eq!(parsed, d);
        assert_eq!(d.report_delay, Dur::secs(180));
        assert_eq!(d.page_size, 200);
    }

    #[test]
    fn rejects_bad_values_with_clear_messages() {
        let cfg = OpennebulaConfig {
            endpoint: Some("ftp://x/RPC2".into()),
            auth_file: Some(PathBuf::new()),
            timeout: Dur::ms(0),
            page_size: 0,
            ..OpennebulaConfig::default()
        };
        let p = problems(&cfg);
        let keys: Vec<&str> = p.iter().map(|(k, _)| k.as_str()).collect();
        assert_eq!(keys, ["endpoint", "auth_file", "timeout", "page_size"]);
        assert!(p[0].1.contains("http://"), "{}", p[0].1);
        assert!(p[3].1.contains("found 0"), "{}", p[3].1);
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = serde_norway::from_str::<OpennebulaConfig>("endpiont: http://x:2633/RPC2")
            .unwrap_err()
            .to_string();
        assert!(err.contains("endpiont"), "{err}");
    }
}
