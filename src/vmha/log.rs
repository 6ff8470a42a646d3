//! The hook's log: the stock hook's file and format (`[time][HOST id][I|E] message` in
//! `/var/log/one/host_error.log`), and the same lines through tracing (the journal).

use std::fs::{File, OpenOptions};
use std::io::Write as _;
use std::path::Path;
use std::sync::Mutex;

use crate::opennebula::rfc3339;

/// Appends lines for one host.
#[derive(Debug)]
pub struct HookLog {
    host_id: i64,
    file: Option<Mutex<File>>,
}

/// `2024-05-01 12:34:56 +0000`, as Ruby's `Time.now` prints in UTC.
pub fn stamp(unix: i64) -> String {
    rfc3339(unix).replace('T', " ").replace('Z', " +0000")
}

impl HookLog {
    /// Logs for `host_id` to `path`; when the file cannot be opened, to the journal only
    /// (said once there).
    pub fn open(path: &Path, host_id: i64) -> HookLog {
        let file = match OpenOptions::new().create(true).append(true).open(path) {
            Ok(f) => Some(Mutex::new(f)),
            Err(e) => {
                tracing::warn!(
                    "cannot write the hook log {}: {e}; logging to the journal only",
                    path.display()
                );
                None
            }
        };
        HookLog { host_id, file }
    }

    /// A log that writes nowhere but tracing.
    pub fn journal_only(host_id: i64) -> HookLog {
        HookLog {
            host_id,
            file: None,
        }
    }

    /// An information line.
    pub fn info(&self, msg: &str) {
        tracing::info!(host_id = self.host_id, "{msg}");
        self.write('I', msg);
    }

    /// An error line.
    pub fn error(&self, msg: &str) {
        tracing::error!(host_id = self.host_id, "{msg}");
        self.write('E', msg);
    }

    fn write(&self, level: char, msg: &str) {
        let Some(f) = &self.file else { return };
        let now = std::time::SystemTime::now()
            .duration_since(std::time::UNIX_EPOCH)
            .map_or(0, |d| d.as_secs() as i64);
        let t = stamp(now);
        let mut text = String::new();
        for l in msg.lines() {
            text.push_str(&format!("[{t}][HOST {}][{level}] {l}\n", self.host_id));
        }
        if let Ok(mut f) = f.lock() {
            let _ = f.write_all(text.as_bytes());
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn writes_the_stock_format() {
        assert_eq!(stamp(0), "1970-01-01 00:00:00 +0000");
        let dir = tempfile::tempdir().unwrap();
        let p = dir.path().join("host_error.log");
        let log = HookLog::open(&p, 7);
        log.info("Hook launched");
        log.error("two\nlines");
        let text = std::fs::read_to_string(&p).unwrap();
        let lines: Vec<&str> = text.lines().collect();
        assert_eq!(lines.len(), 3);
        assert!(
            lines[0].ends_with("][HOST 7][I] Hook launched"),
            "{}",
            lines[0]
        );
        assert!(lines[2].ends_with("][HOST 7][E] lines"), "{}", lines[2]);
        assert!(lines[0].starts_with('[') && lines[0].contains(" +0000]"));
    }
}
