//! The compact view's text pieces: how long ago, shortened errors, a member's resources on
//! one line, times as RFC 3339.

/// How long ago `ms` milliseconds was, for a human (`never` when unknown).
pub(super) fn ago(ms: Option<u64>) -> String {
    match ms {
        None => "never".to_string(),
        Some(ms) if ms < 1000 => format!("{ms}ms ago"),
        Some(ms) if ms < 120_000 => format!("{:.1}s ago", ms as f64 / 1000.0),
        Some(ms) => format!("{}m ago", ms / 60_000),
    }
}

/// Width the compact view keeps each line within.
pub const WIDTH: usize = 100;

/// `text` cut to `max` characters, the cut marked with `…`.
pub fn shorten(text: &str, max: usize) -> String {
    if text.chars().count() <= max {
        return text.to_string();
    }
    let mut out: String = text.chars().take(max.saturating_sub(1)).collect();
    out.push('…');
    out
}

/// A member's resources on one line: resources in the same state share one entry
/// (`vip,oned=running`), each state cut at its first `:`, and a pointer to `--verbose` when
/// a state carries more (an error).
pub(super) fn resources_line(resources: &[(String, String)], max: usize) -> String {
    let mut detail = false;
    let mut groups: Vec<(&str, Vec<&str>)> = Vec::new();
    for (n, s) in resources {
        let word = match s.split_once(':') {
            Some((w, _)) => {
                detail = true;
                w.trim()
            }
            None => s.as_str(),
        };
        match groups.iter_mut().find(|(w, _)| *w == word) {
            Some((_, names)) => names.push(n),
            None => groups.push((word, vec![n])),
        }
    }
    let parts: Vec<String> = groups
        .iter()
        .map(|(w, names)| format!("{}={w}", names.join(",")))
        .collect();
    let hint = if detail { " (more: -v)" } else { "" };
    let room = max.saturating_sub(hint.chars().count());
    let mut line = parts.join(" ");
    if line.chars().count() > room {
        // Too long with names: how many resources are in each state.
        let counts: Vec<String> = groups
            .iter()
            .map(|(w, names)| format!("{} {w}", names.len()))
            .collect();
        line = counts.join(", ");
    }
    format!("{}{hint}", shorten(&line, room))
}

/// Formats ms since the epoch as UTC RFC 3339 (`2026-11-21T23:34:56Z`).
pub fn fmt_time(ms: u64) -> String {
    crate::opennebula::rfc3339((ms / 1000) as i64)
}
