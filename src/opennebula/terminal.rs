//! Text from oned (VM names, owners, hosts, its version, its error messages) on a terminal:
//! any of it may hold escape sequences that clear the screen, set the window title or hide
//! text. Every table, message and log line that shows such text passes it through
//! [`sanitize`].

use std::borrow::Cow;
use std::fmt::Write as _;

/// True for characters never written raw: C0 and C1 controls (ESC and CSI among them), DEL,
/// the Unicode line and paragraph separators, and the bidirectional controls that reorder
/// what is shown.
fn unsafe_char(c: char) -> bool {
    c.is_control()
        || matches!(
            c,
            '\u{2028}' | '\u{2029}' | '\u{200e}' | '\u{200f}' | '\u{202a}'..='\u{202e}'
                | '\u{2066}'..='\u{2069}'
        )
}

/// `text` with every unsafe character shown as an escape (`\x1b`, `\u{202e}`); unchanged
/// (and not copied) when it has none.
pub fn sanitize(text: &str) -> Cow<'_, str> {
    if !text.chars().any(unsafe_char) {
        return Cow::Borrowed(text);
    }
    let mut out = String::with_capacity(text.len() + 8);
    for c in text.chars() {
        if !unsafe_char(c) {
            out.push(c);
        } else if (c as u32) < 0x100 {
            let _ = write!(out, "\\x{:02x}", c as u32);
        } else {
            let _ = write!(out, "\\u{{{:x}}}", c as u32);
        }
    }
    Cow::Owned(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn escapes_controls_and_keeps_the_rest() {
        assert!(matches!(sanitize("vm-1 ünïcode"), Cow::Borrowed(_)));
        assert_eq!(
            sanitize("a\x1b]0;title\x07b\x1b[2Jc\u{9b}d"),
            "a\\x1b]0;title\\x07b\\x1b[2Jc\\x9bd"
        );
        assert_eq!(sanitize("x\ny\r\tz"), "x\\x0ay\\x0d\\x09z");
        assert_eq!(sanitize("ab\u{202e}cd\u{2028}"), "ab\\u{202e}cd\\u{2028}");
    }
}
