//! The `opennebula:` section: how to reach oned for the stuck-VM report, and the endpoint
//! URL's syntax (checked here, used by `opennebula::auth`).

use std::fmt;
use std::path::PathBuf;

use serde::{Deserialize, Serialize};

use super::{Config, Dur, Problems};

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
            && let Err(e) = parse_endpoint(ep)
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

/// A parsed `http://host:port/path` endpoint.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Endpoint {
    /// The URL as given (after trimming), for messages and the report.
    pub url: String,
    /// Host name or address (IPv6 without brackets).
    pub host: String,
    /// TCP port (80 when the URL names none).
    pub port: u16,
    /// Path and query sent in the request line, e.g. `/RPC2`.
    pub path: String,
    /// `host:port` as sent in the `Host` header.
    pub authority: String,
}

impl fmt::Display for Endpoint {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.write_str(&self.url)
    }
}

/// Parses an endpoint URL; the error says what is wrong and what to write instead.
pub fn parse_endpoint(text: &str) -> Result<Endpoint, String> {
    let url = text.trim();
    let example = "write it as e.g. `http://localhost:2633/RPC2`";
    if url.is_empty() {
        return Err(format!("expected an XML-RPC URL, found nothing; {example}"));
    }
    let uri: hyper::Uri = url
        .parse()
        .map_err(|e| format!("`{url}` is not a URL ({e}); {example}"))?;
    match uri.scheme_str() {
        Some("http") => {}
        Some("https") => {
            return Err(format!(
                "`{url}` uses https, which this client does not speak; oned itself serves plain \
                 http: point at it directly (e.g. `http://localhost:2633/RPC2`) rather than at a \
                 TLS proxy"
            ));
        }
        Some(other) => {
            return Err(format!(
                "`{url}` has scheme `{other}`; expected an http:// URL; {example}"
            ));
        }
        None => return Err(format!("`{url}` has no http:// scheme; {example}")),
    }
    if url.contains('@') {
        return Err(format!(
            "`{url}` carries credentials; put the session in the auth file instead"
        ));
    }
    let authority = uri
        .authority()
        .ok_or_else(|| format!("`{url}` names no host; {example}"))?;
    let host = authority
        .host()
        .trim_start_matches('[')
        .trim_end_matches(']')
        .to_string();
    if host.is_empty() {
        return Err(format!("`{url}` names no host; {example}"));
    }
    let port = authority.port_u16().unwrap_or(80);
    if port == 0 {
        return Err(format!(
            "`{url}` has port 0; oned listens on 2633 by default"
        ));
    }
    let path = uri
        .path_and_query()
        .map(|p| p.as_str().to_string())
        .filter(|p| !p.is_empty())
        .unwrap_or_else(|| "/".to_string());
    Ok(Endpoint {
        url: url.to_string(),
        host,
        port,
        path,
        authority: authority.as_str().to_string(),
    })
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
    fn parses_endpoints() {
        let e = parse_endpoint(" http://127.0.0.1:2633/RPC2\n").unwrap();
        assert_eq!(
            (e.host.as_str(), e.port, e.path.as_str()),
            ("127.0.0.1", 2633, "/RPC2")
        );
        assert_eq!(e.authority, "127.0.0.1:2633");
        let e = parse_endpoint("http://[::1]:9/x").unwrap();
        assert_eq!((e.host.as_str(), e.port), ("::1", 9));
        assert_eq!(parse_endpoint("http://one").unwrap().port, 80);
        assert!(
            parse_endpoint("https://one:2633/RPC2")
                .unwrap_err()
                .contains("https")
        );
        assert!(parse_endpoint("one:2633").unwrap_err().contains("http://"));
        assert!(parse_endpoint("").unwrap_err().contains("found nothing"));
        assert!(
            parse_endpoint("http://u:p@one/RPC2")
                .unwrap_err()
                .contains("credentials")
        );
    }

    #[test]
    fn unknown_keys_are_refused() {
        let err = serde_norway::from_str::<OpennebulaConfig>("endpiont: http://x:2633/RPC2")
            .unwrap_err()
            .to_string();
        assert!(err.contains("endpiont"), "{err}");
    }
}
