//! Log setup: tracing to stderr, every line prefixed with the node name.

use tracing_subscriber::fmt::format::{DefaultFields, Format, Writer};
use tracing_subscriber::fmt::{FmtContext, FormatEvent, FormatFields};
use tracing_subscriber::registry::LookupSpan;

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

/// Installs the global subscriber. `RUST_LOG` overrides the default level (`info`, with
/// raft-rs's chatter at `warn`). Safe to call more than once (later calls do nothing).
pub fn init(node: Option<&str>) {
    let filter = tracing_subscriber::EnvFilter::try_from_default_env().unwrap_or_else(|_| {
        tracing_subscriber::EnvFilter::new("info,raft=warn,h2=warn,tower=warn")
    });
    let builder = tracing_subscriber::fmt()
        .with_env_filter(filter)
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
