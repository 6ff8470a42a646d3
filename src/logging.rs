//! Log setup: straight to the journal when systemd connected stderr to it (priorities and
//! fields kept, so `journalctl -p err -u oneha` shows exactly the errors), text on stderr
//! otherwise, every line prefixed with the node name.

use tracing_journald::{Priority, PriorityMappings};
use tracing_subscriber::fmt::format::{DefaultFields, Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::layer::SubscriberExt as _;
use tracing_subscriber::registry::LookupSpan;
use tracing_subscriber::util::SubscriberInitExt as _;

struct WithNode {
    node: String,
    inner: Format,
}

impl<S, N> FormatEvent<S, N> for WithNode
where
    S: tracing::Subscriber + for<'a> LookupSpan<'a>,
    N: for<'a> FormatFields<'a> + 'static,
{
    fn format_event(
        &self,
        ctx: &FmtContext<'_, S, N>,
        mut writer: Writer<'_>,
        event: &tracing::Event<'_>,
    ) -> std::fmt::Result {
        write!(writer, "node={} ", self.node)?;
        self.inner.format_event(ctx, writer, event)
    }
}

/// The default filter: `info`, with raft-rs's and the RPC stack's chatter at `warn`.
const DEFAULT_FILTER: &str = "info,raft=warn,h2=warn,tower=warn";

/// True when `journal_stream` (`$JOURNAL_STREAM`, `DEVICE:INODE`) names the file stderr is:
/// systemd sets it for a unit whose output goes to the journal, and a process that
/// redirected its stderr elsewhere keeps the variable but not the file.
pub fn is_journal_stream(journal_stream: &str, stderr_dev: u64, stderr_ino: u64) -> bool {
    journal_stream
        .split_once(':')
        .and_then(|(d, i)| Some((d.parse::<u64>().ok()?, i.parse::<u64>().ok()?)))
        .is_some_and(|(d, i)| d == stderr_dev && i == stderr_ino)
}

/// True when this process's stderr is systemd's journal stream.
fn stderr_is_journal() -> bool {
    use std::os::unix::fs::MetadataExt as _;
    let Some(var) = std::env::var_os("JOURNAL_STREAM") else {
        return false;
    };
    let Ok(meta) = std::fs::metadata("/proc/self/fd/2") else {
        return false;
    };
    is_journal_stream(&var.to_string_lossy(), meta.dev(), meta.ino())
}

/// syslog's meaning of each level: error 3, warning 4, info 6, debug and trace 7.
fn priorities() -> PriorityMappings {
    PriorityMappings {
        error: Priority::Error,
        warn: Priority::Warning,
        info: Priority::Informational,
        debug: Priority::Debug,
        trace: Priority::Debug,
    }
}

/// Installs the global subscriber. `RUST_LOG` overrides the default level (`info`, with
/// raft-rs's chatter at `warn`). Under systemd with output to the journal, events go to
/// journald natively: syslog priorities, identifier `oneha`, event fields as journal fields
/// (`VM=12`) and `NODE=` this node. Safe to call more than once (later calls do nothing).
pub fn init(node: Option<&str>) {
    let filter = || {
        tracing_subscriber::EnvFilter::try_from_default_env()
            .unwrap_or_else(|_| tracing_subscriber::EnvFilter::new(DEFAULT_FILTER))
    };
    if stderr_is_journal()
        && let Ok(layer) = tracing_journald::layer()
    {
        let layer = layer
            .with_syslog_identifier("oneha".into())
            .with_field_prefix(None)
            .with_priority_mappings(priorities())
            .with_custom_fields(node.map(|n| ("NODE", n.as_bytes().to_vec())));
        let _ = tracing_subscriber::registry()
            .with(filter())
            .with(layer)
            .try_init();
        return;
    }
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter())
        .with_writer(std::io::stderr)
        .with_ansi(std::io::IsTerminal::is_terminal(&std::io::stderr()))
        .fmt_fields(DefaultFields::new());
    let result = match node {
        Some(n) => builder
            .event_format(WithNode {
                node: n.to_string(),
                inner: Format::default(),
            })
            .try_init(),
        None => builder.try_init(),
    };
    let _ = result;
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn journal_stream_must_name_stderr() {
        assert!(is_journal_stream("8:12345", 8, 12345));
        assert!(!is_journal_stream("8:12345", 8, 12346));
        assert!(!is_journal_stream("9:12345", 8, 12345));
        assert!(!is_journal_stream("", 8, 12345));
        assert!(!is_journal_stream("8-12345", 8, 12345));
        // Under `cargo test` stderr is not a journal stream, whatever the environment says.
        assert!(!stderr_is_journal() || std::env::var_os("JOURNAL_STREAM").is_some());
    }
}
