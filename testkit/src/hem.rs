//! The fake HEM (OpenNebula's hook execution manager) for HOST state hooks: on each
//! transition of a host into the hook's STATE, runs COMMAND with ARGUMENTS, where `$TEMPLATE`
//! is the base64 (strict) of the `<HOST>` element (as `one.host.info` writes it, empty
//! elements as Nokogiri re-serializes them), on stdin when ARGUMENTS_STDIN=yes (the
//! argument string, words joined by one space, no newline, as onehem-server.rb sends it) or
//! as argv otherwise. Each run is logged (exit code, stdout, stderr).

use std::io::Write as _;
use std::path::PathBuf;
use std::process::{Command, Stdio};
use std::sync::{Arc, Mutex};
use std::time::{SystemTime, UNIX_EPOCH};

use base64::Engine as _;
use serde::Serialize;

use super::world::Hook;

/// One finished hook run.
#[derive(Debug, Clone, Serialize, PartialEq, Eq)]
pub struct HookRun {
    /// The hook's NAME.
    pub hook: String,
    /// The host that changed state.
    pub host_id: i64,
    /// The state it entered.
    pub state: i64,
    /// The argument string (stdin or argv, `$TEMPLATE` replaced).
    pub arguments: String,
    /// Exit code; -1 when killed by a signal or not started.
    pub exit: i32,
    /// Its stdout.
    pub stdout: String,
    /// Its stderr (or why it could not start).
    pub stderr: String,
    /// Start and end (epoch milliseconds).
    pub started_ms: u64,
    /// End (epoch milliseconds).
    pub ended_ms: u64,
}

/// Runs hooks and keeps their results.
#[derive(Debug, Clone, Default)]
pub struct Hem {
    runs: Arc<Mutex<Vec<HookRun>>>,
    running: Arc<Mutex<usize>>,
    log: Option<PathBuf>,
}

fn now_ms() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .map_or(0, |d| d.as_millis() as u64)
}

/// `xml` as onehem-server.rb passes it on: it takes the `<HOST>` element out of the hook
/// message with Nokogiri (`xpath("//HOST")[0].to_s`), whose libxml2 serializer writes empty
/// elements as `<NAME/>`.
pub fn reserialized(xml: &str) -> String {
    let mut out = String::with_capacity(xml.len());
    let mut rest = xml;
    while let Some(at) = rest.find("></") {
        let (head, tail) = rest.split_at(at);
        let open = head.rfind('<').map(|i| &head[i + 1..]);
        let after_close = tail[3..]
            .find('>')
            .map(|i| (&tail[3..3 + i], &tail[3 + i + 1..]));
        match (open, after_close) {
            (Some(name), Some((closing, next)))
                if name == closing && !name.is_empty() && !name.contains([' ', '/', '!']) =>
            {
                out.push_str(head);
                out.push_str("/>");
                rest = next;
            }
            _ => {
                out.push_str(head);
                out.push('>');
                rest = &tail[1..];
            }
        }
    }
    out.push_str(rest);
    out
}

/// The argument string of `hook` for a host whose `<HOST>` element is `host_xml`.
pub fn arguments(hook: &Hook, host_xml: &str) -> String {
    let template = base64::engine::general_purpose::STANDARD.encode(reserialized(host_xml));
    hook.arguments
        .split_whitespace()
        .map(|a| {
            if a == "$TEMPLATE" {
                template.as_str()
            } else {
                a
            }
        })
        .collect::<Vec<_>>()
        .join(" ")
}

impl Hem {
    /// A HEM logging runs to `log` (JSON lines), if given.
    pub fn new(log: Option<PathBuf>) -> Hem {
        Hem {
            log,
            ..Hem::default()
        }
    }

    /// Finished runs so far.
    pub fn runs(&self) -> Vec<HookRun> {
        self.runs.lock().map(|r| r.clone()).unwrap_or_default()
    }

    /// Runs in progress.
    pub fn running(&self) -> usize {
        self.running.lock().map(|r| *r).unwrap_or(0)
    }

    /// Starts `hook` for host `host_id` entering `state`, in the background.
    pub fn fire(&self, hook: &Hook, host_id: i64, state: i64, host_xml: &str) {
        let args = arguments(hook, host_xml);
        let hook = hook.clone();
        let me = self.clone();
        if let Ok(mut n) = self.running.lock() {
            *n += 1;
        }
        let spawned = std::thread::Builder::new()
            .name(format!("hem-{}", hook.name))
            .spawn(move || {
                let run = me.execute(&hook, host_id, state, args);
                me.record(run);
            });
        if let Err(e) = spawned {
            tracing::warn!("fake HEM: cannot start a thread for a hook: {e}");
            if let Ok(mut n) = self.running.lock() {
                *n = n.saturating_sub(1);
            }
        }
    }

    fn execute(&self, hook: &Hook, host_id: i64, state: i64, args: String) -> HookRun {
        let started_ms = now_ms();
        let mut cmd = Command::new(&hook.command);
        if !hook.arguments_stdin {
            cmd.args(args.split(' ').filter(|a| !a.is_empty()));
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let result = cmd.spawn().and_then(|mut child| {
            // Closing stdin at once gives EOF; a hook that does not read it is not an error.
            if let Some(mut stdin) = child.stdin.take()
                && hook.arguments_stdin
            {
                let _ = stdin.write_all(args.as_bytes());
            }
            child.wait_with_output()
        });
        let (exit, stdout, stderr) = match result {
            Ok(out) => (
                out.status.code().unwrap_or(-1),
                String::from_utf8_lossy(&out.stdout).into_owned(),
                String::from_utf8_lossy(&out.stderr).into_owned(),
            ),
            Err(e) => (
                -1,
                String::new(),
                format!("cannot run {}: {e}", hook.command.display()),
            ),
        };
        HookRun {
            hook: hook.name.clone(),
            host_id,
            state,
            arguments: args,
            exit,
            stdout,
            stderr,
            started_ms,
            ended_ms: now_ms(),
        }
    }

    fn record(&self, run: HookRun) {
        tracing::info!(
            hook = run.hook,
            host = run.host_id,
            exit = run.exit,
            "fake HEM: hook finished"
        );
        if let Some(path) = &self.log {
            let line = serde_json::to_string(&run).unwrap_or_default();
            let written = std::fs::OpenOptions::new()
                .create(true)
                .append(true)
                .open(path)
                .and_then(|mut f| writeln!(f, "{line}"));
            if let Err(e) = written {
                tracing::warn!("fake HEM: cannot write {}: {e}", path.display());
            }
        }
        if let Ok(mut runs) = self.runs.lock() {
            runs.push(run);
        }
        if let Ok(mut n) = self.running.lock() {
            *n = n.saturating_sub(1);
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn template_is_strict_base64_of_the_host_and_words_are_joined_by_one_space() {
        let hook = Hook {
            name: "error".into(),
            state: "ERROR".into(),
            command: "/bin/true".into(),
            arguments: "  $TEMPLATE   -m -p 5 ".into(),
            arguments_stdin: true,
        };
        let args = arguments(&hook, "<HOST><ID>1</ID></HOST>");
        assert_eq!(args, "PEhPU1Q+PElEPjE8L0lEPjwvSE9TVD4= -m -p 5");
    }

    #[test]
    fn empty_elements_are_written_as_nokogiri_does() {
        let xml = "<HOST><ID>1</ID><VMS></VMS><T><A><![CDATA[]]></A><B></B></T><M></M></HOST>";
        assert_eq!(
            reserialized(xml),
            "<HOST><ID>1</ID><VMS/><T><A><![CDATA[]]></A><B/></T><M/></HOST>"
        );
        for same in [
            "",
            "<A>x</A>",
            "<A><B>1</B></A>",
            "a></b",
            "<A></B>",
            "<A></A",
            "é></",
        ] {
            assert_eq!(reserialized(same), same);
        }
    }
}
