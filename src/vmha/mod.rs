//! VM HA: `oneha host-error`, a drop-in for OpenNebula's host-failure hook
//! (`ft/host_error.rb`) with real fencing, a mass-failure guard, and a journal.
//!
//! Layers: [`input`] (the hook's stdin and flags) and [`host`]/[`vm`] (oned's documents,
//! read by [`xml_tree`]) -> [`case`] (the journaled record and its events) -> [`decide`]
//! (the pure policy: facts in, steps out).

pub mod case;
pub mod cases;
pub mod config;
pub mod decide;
pub mod fencing;
pub mod host;
pub mod id_keys;
pub mod input;
pub mod journal;
pub mod log;
pub mod oned;
pub mod run;
pub mod vm;
pub mod xml_tree;

/// Makes text from outside printable: control characters (terminal escapes, line breaks)
/// become `\u{..}` escapes, and the result is cut at `max` characters.
pub fn sanitize(text: &str, max: usize) -> String {
    let mut out = String::new();
    for (i, c) in text.chars().enumerate() {
        if i == max {
            out.push('…');
            break;
        }
        if c.is_control() || matches!(c, '\u{2028}' | '\u{2029}') {
            out.extend(c.escape_unicode());
        } else {
            out.push(c);
        }
    }
    out
}
