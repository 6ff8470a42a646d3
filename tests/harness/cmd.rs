//! Running programs from tests: output captured, failures explained.

use std::path::Path;
use std::process::{Command, Output, Stdio};

/// What a finished command printed and how it exited.
#[derive(Debug, Clone)]
pub struct CmdOutput {
    /// The command line, for messages.
    pub cmdline: String,
    /// Exit code; `None` if a signal ended it.
    pub code: Option<i32>,
    /// Standard output.
    pub stdout: String,
    /// Standard error.
    pub stderr: String,
}

impl CmdOutput {
    /// True for exit code 0.
    pub fn ok(&self) -> bool {
        self.code == Some(0)
    }

    /// Standard output, or a panic quoting the command and its stderr if it failed.
    pub fn expect_ok(self) -> String {
        assert!(
            self.ok(),
            "`{}` failed ({:?}):\n{}{}",
            self.cmdline,
            self.code,
            self.stdout,
            self.stderr
        );
        self.stdout
    }

    /// Panics unless it exited with `code` and printed `needle` (stdout or stderr).
    pub fn expect_failure(&self, code: i32, needle: &str) {
        assert_eq!(self.code, Some(code), "`{}`: {self:?}", self.cmdline);
        assert!(
            self.stdout.contains(needle) || self.stderr.contains(needle),
            "`{}` did not print `{needle}`:\n{}{}",
            self.cmdline,
            self.stdout,
            self.stderr
        );
    }

    fn from_output(cmdline: String, out: Output) -> CmdOutput {
        CmdOutput {
            cmdline,
            code: out.status.code(),
            stdout: String::from_utf8_lossy(&out.stdout).into_owned(),
            stderr: String::from_utf8_lossy(&out.stderr).into_owned(),
        }
    }
}

/// Runs `argv` to completion with stdin closed; panics only if it cannot be started.
pub fn run_cmd<S: AsRef<str>>(argv: &[S]) -> CmdOutput {
    try_run(argv).unwrap_or_else(|e| panic!("{e}"))
}

/// Runs `argv` to completion with stdin closed; never panics (for teardown).
pub fn try_run<S: AsRef<str>>(argv: &[S]) -> Result<CmdOutput, String> {
    let argv: Vec<&str> = argv.iter().map(AsRef::as_ref).collect();
    let (prog, args) = argv.split_first().ok_or("empty command")?;
    let out = Command::new(prog)
        .args(args)
        .stdin(std::process::Stdio::null())
        .output()
        .map_err(|e| {
            format!("cannot run `{prog}`: {e}; install the test dependencies with `make deps`")
        })?;
    Ok(CmdOutput::from_output(argv.join(" "), out))
}

/// Runs `argv` with `input` on stdin.
pub fn run_with_input<S: AsRef<str>>(argv: &[S], input: &str) -> CmdOutput {
    use std::io::Write;
    let argv: Vec<&str> = argv.iter().map(AsRef::as_ref).collect();
    let Some((prog, args)) = argv.split_first() else {
        panic!("run_with_input: empty command");
    };
    let mut child = Command::new(prog)
        .args(args)
        .stdin(std::process::Stdio::piped())
        .stdout(std::process::Stdio::piped())
        .stderr(std::process::Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot run `{prog}`: {e}"));
    if let Some(mut stdin) = child.stdin.take() {
        stdin
            .write_all(input.as_bytes())
            .unwrap_or_else(|e| panic!("writing to `{prog}`: {e}"));
    }
    let out = child
        .wait_with_output()
        .unwrap_or_else(|e| panic!("waiting for `{prog}`: {e}"));
    CmdOutput::from_output(argv.join(" "), out)
}

/// Starts `argv` with stdin closed and its output appended to `log`, in a process group of
/// its own (a Ctrl-C meant for the test does not reach it). The caller reaps it.
pub fn spawn_detached<S: AsRef<std::ffi::OsStr>>(
    argv: &[S],
    log: &Path,
) -> std::io::Result<std::process::Child> {
    use std::os::unix::process::CommandExt;
    let (prog, args) = argv
        .split_first()
        .ok_or_else(|| std::io::Error::other("empty command"))?;
    let (out, err) = log_stdio(log);
    Command::new(prog)
        .args(args)
        .stdin(Stdio::null())
        .stdout(out)
        .stderr(err)
        .process_group(0)
        .spawn()
}

/// Stdout and stderr for a child, both appending to the file `log` (created if missing).
pub fn log_stdio(log: &Path) -> (Stdio, Stdio) {
    let open = || {
        std::fs::File::options()
            .create(true)
            .append(true)
            .open(log)
            .unwrap_or_else(|e| panic!("cannot open {}: {e}", log.display()))
    };
    (open().into(), open().into())
}
