//! Where oned is and who we are: endpoint and session resolution, as OpenNebula's own tools do.
//!
//! Endpoint: explicit value, `$ONE_XMLRPC`, `~/.one/one_endpoint`,
//! `/var/lib/one/.one/one_endpoint`, then `http://localhost:2633/RPC2`.
//! Session: explicit file, the file named by `$ONE_AUTH`, `~/.one/one_auth`,
//! `/var/lib/one/.one/one_auth`. Trailing whitespace is stripped from both.

use std::fmt;
use std::path::{Path, PathBuf};

use super::error::OnedError;
pub use crate::config::opennebula::{Endpoint, parse_endpoint};

/// oned's default XML-RPC endpoint.
pub const DEFAULT_ENDPOINT: &str = "http://localhost:2633/RPC2";

const SYSTEM_ENDPOINT_FILE: &str = "/var/lib/one/.one/one_endpoint";
const SYSTEM_AUTH_FILE: &str = "/var/lib/one/.one/one_auth";

/// The session string `user:secret`. Its `Debug` and `Display` never show the secret, and it
/// is never logged; only [`Session::expose`] gives the text, for the request body.
#[derive(Clone, PartialEq, Eq)]
pub struct Session(String);

impl Session {
    /// Wraps `user:secret`; refuses text without a `:` (a file of another kind).
    pub fn new(text: &str) -> Result<Session, String> {
        let t = text.trim_end();
        match t.split_once(':') {
            Some((user, _)) if !user.is_empty() && !user.contains(char::is_whitespace) => {
                Ok(Session(t.to_string()))
            }
            _ => Err("expected one line `user:password`".into()),
        }
    }
    /// The user part, safe to show.
    pub fn user(&self) -> &str {
        self.0.split_once(':').map(|(u, _)| u).unwrap_or("")
    }
    /// The full session text, for the first parameter of a call. Never log it.
    pub fn expose(&self) -> &str {
        &self.0
    }
    /// What must never be shown of it: the whole session and its secret part (password or
    /// token), as written and XML-escaped (an error body may echo either).
    pub fn secret_forms(&self) -> Vec<String> {
        let secret = self.0.split_once(':').map_or("", |(_, s)| s);
        let mut forms = Vec::new();
        for s in [self.0.as_str(), secret] {
            if s.is_empty() {
                continue;
            }
            let escaped = s
                .replace('&', "&amp;")
                .replace('<', "&lt;")
                .replace('>', "&gt;")
                .replace('"', "&quot;")
                .replace('\'', "&apos;");
            forms.push(s.to_string());
            if escaped != s {
                forms.push(escaped);
            }
        }
        forms
    }
}

impl fmt::Debug for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "Session({}:<redacted>)", self.user())
    }
}

impl fmt::Display for Session {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "{}:<redacted>", self.user())
    }
}

/// The environment the resolution reads, so tests need not change the process environment.
#[derive(Debug, Clone, Default)]
pub struct Env {
    /// `$ONE_XMLRPC`.
    pub one_xmlrpc: Option<String>,
    /// `$ONE_AUTH`.
    pub one_auth: Option<PathBuf>,
    /// `$HOME`.
    pub home: Option<PathBuf>,
    /// Replaces `/var/lib/one/.one` (tests only).
    pub system_dir: Option<PathBuf>,
}

impl Env {
    /// The real process environment.
    pub fn from_process() -> Env {
        let nonempty = |k: &str| std::env::var_os(k).filter(|v| !v.is_empty());
        Env {
            one_xmlrpc: nonempty("ONE_XMLRPC").map(|v| v.to_string_lossy().into_owned()),
            one_auth: nonempty("ONE_AUTH").map(PathBuf::from),
            home: nonempty("HOME").map(PathBuf::from),
            system_dir: None,
        }
    }

    fn system_file(&self, default: &str, name: &str) -> PathBuf {
        match &self.system_dir {
            Some(d) => d.join(name),
            None => PathBuf::from(default),
        }
    }
}

/// Resolves the endpoint: `explicit`, then the environment and files, then the default.
pub fn resolve_endpoint(explicit: Option<&str>, env: &Env) -> Result<Endpoint, OnedError> {
    let bad = |source: String, e: String| OnedError::Config(format!("endpoint from {source}: {e}"));
    if let Some(e) = explicit {
        return parse_endpoint(e).map_err(|m| bad("the configuration or --endpoint".into(), m));
    }
    if let Some(e) = &env.one_xmlrpc {
        return parse_endpoint(e).map_err(|m| bad("$ONE_XMLRPC".into(), m));
    }
    let mut files = Vec::new();
    if let Some(h) = &env.home {
        files.push(h.join(".one/one_endpoint"));
    }
    files.push(env.system_file(SYSTEM_ENDPOINT_FILE, "one_endpoint"));
    for f in files {
        if let Some(text) = read_if_present(&f)? {
            return parse_endpoint(&text).map_err(|m| bad(f.display().to_string(), m));
        }
    }
    parse_endpoint(DEFAULT_ENDPOINT).map_err(|m| bad("the default".into(), m))
}

/// Resolves the session: the `explicit` file, then `$ONE_AUTH`, `~/.one/one_auth`,
/// `/var/lib/one/.one/one_auth`.
pub fn resolve_session(explicit: Option<&Path>, env: &Env) -> Result<Session, OnedError> {
    let load = |f: &Path| -> Result<Session, OnedError> {
        let text = std::fs::read_to_string(f).map_err(|e| {
            OnedError::Config(format!(
                "cannot read the auth file {}: {e}; give a readable file holding \
                 `user:password` with --auth-file or opennebula.auth_file",
                f.display()
            ))
        })?;
        Session::new(&text).map_err(|m| {
            OnedError::Config(format!(
                "the auth file {} is not a session: {m} (as in oneadmin's ~/.one/one_auth)",
                f.display()
            ))
        })
    };
    if let Some(f) = explicit {
        return load(f);
    }
    if let Some(f) = &env.one_auth {
        return load(f);
    }
    let mut tried = Vec::new();
    if let Some(h) = &env.home {
        tried.push(h.join(".one/one_auth"));
    }
    tried.push(env.system_file(SYSTEM_AUTH_FILE, "one_auth"));
    for f in &tried {
        if f.exists() {
            return load(f);
        }
    }
    let list: Vec<String> = tried.iter().map(|p| p.display().to_string()).collect();
    Err(OnedError::Config(format!(
        "no OpenNebula session found (tried $ONE_AUTH, {}); run as oneadmin, or pass \
         --auth-file FILE (or set opennebula.auth_file) with `user:password`",
        list.join(", ")
    )))
}

/// A client for the configured oned: `endpoint`/`auth_file` override the config's values,
/// which override OpenNebula's own conventions.
pub fn client_for(
    cfg: &super::OpennebulaConfig,
    endpoint: Option<&str>,
    auth_file: Option<&Path>,
    timeout: std::time::Duration,
    env: &Env,
) -> Result<super::xmlrpc::Client, OnedError> {
    let ep = resolve_endpoint(endpoint.or(cfg.endpoint.as_deref()), env)?;
    let session = resolve_session(auth_file.or(cfg.auth_file.as_deref()), env)?;
    tracing::debug!(endpoint = %ep, user = session.user(), "OpenNebula client");
    Ok(super::xmlrpc::Client::new(ep, session, timeout))
}

fn read_if_present(f: &Path) -> Result<Option<String>, OnedError> {
    match std::fs::read_to_string(f) {
        Ok(t) => Ok(Some(t)),
        Err(e) if e.kind() == std::io::ErrorKind::NotFound => Ok(None),
        Err(e) => Err(OnedError::Config(format!(
            "cannot read {}: {e}; fix its permissions or give --endpoint",
            f.display()
        ))),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn session_never_shows_secret() {
        let s = Session::new("oneadmin:s3cr3t\n").unwrap();
        assert_eq!(s.expose(), "oneadmin:s3cr3t");
        assert_eq!(s.user(), "oneadmin");
        for shown in [format!("{s:?}"), format!("{s}")] {
            assert!(!shown.contains("s3cr3t"), "{shown}");
        }
        assert!(Session::new("no-colon").is_err());
        assert!(Session::new(":secret").is_err());
    }

    #[test]
    fn resolution_order() {
        let dir = tempfile::tempdir().unwrap();
        let home = dir.path().join("home");
        let sys = dir.path().join("sys");
        std::fs::create_dir_all(home.join(".one")).unwrap();
        std::fs::create_dir_all(&sys).unwrap();
        let mut env = Env {
            home: Some(home.clone()),
            system_dir: Some(sys.clone()),
            ..Env::default()
        };
        assert_eq!(resolve_endpoint(None, &env).unwrap().url, DEFAULT_ENDPOINT);
        std::fs::write(sys.join("one_endpoint"), "http://sys:1/RPC2\n").unwrap();
        assert_eq!(resolve_endpoint(None, &env).unwrap().host, "sys");
        std::fs::write(home.join(".one/one_endpoint"), "http://home:1/RPC2 \n").unwrap();
        assert_eq!(resolve_endpoint(None, &env).unwrap().host, "home");
        env.one_xmlrpc = Some("http://envhost:1/RPC2".into());
        assert_eq!(resolve_endpoint(None, &env).unwrap().host, "envhost");
        let ex = resolve_endpoint(Some("http://explicit:1/RPC2"), &env).unwrap();
        assert_eq!(ex.host, "explicit");

        let err = resolve_session(None, &env).unwrap_err().to_string();
        assert!(err.contains("no OpenNebula session"), "{err}");
        std::fs::write(sys.join("one_auth"), "sys:pw\n").unwrap();
        assert_eq!(resolve_session(None, &env).unwrap().user(), "sys");
        std::fs::write(home.join(".one/one_auth"), "home:pw").unwrap();
        assert_eq!(resolve_session(None, &env).unwrap().user(), "home");
        let envfile = dir.path().join("envauth");
        std::fs::write(&envfile, "envuser:pw\t\n").unwrap();
        env.one_auth = Some(envfile);
        assert_eq!(resolve_session(None, &env).unwrap().expose(), "envuser:pw");
        let bad = dir.path().join("bad");
        std::fs::write(&bad, "secretwithoutcolon").unwrap();
        let err = resolve_session(Some(&bad), &env).unwrap_err().to_string();
        assert!(
            err.contains("not a session") && !err.contains("secretwithoutcolon"),
            "{err}"
        );
    }
}
