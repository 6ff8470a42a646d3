//! Keeps secrets and file contents out of config error messages.
//!
//! An error names the file, line and key, and may show the value found, but never:
//! - the value of a secret option (passwords, key material: [`is_secret_option`]), also when
//!   it reached the message some other way (a wrong type, a stray quote that swallowed the
//!   following lines into another value): every secret value written in the file is
//!   replaced by [`REDACTED`] in every message;
//! - a found value under `fencing.devices` (options may be secret, and serde's path may stop
//!   at the device), at the top of the file (the file may not be a config at all), or one
//!   that is long or spans lines (a stray quote swallowed what follows);
//! - a key that does not look like a key (the first line of a file that is not YAML).

use super::fencing::{REDACTED, is_secret_option};

/// Longest value or key shown in a message.
const MAX_SHOWN: usize = 64;

/// The secret values written in one config file, and the lines swallowed by quoted values
/// that continue past their line.
#[derive(Debug, Default)]
pub struct Redactor {
    secrets: Vec<String>,
    swallowed: Vec<String>,
}

/// Where a quoted value opened with `quote` ends in `text`: the byte after its closing quote.
fn closing_quote(text: &str, quote: char) -> Option<usize> {
    let mut chars = text.char_indices().peekable();
    while let Some((i, c)) = chars.next() {
        match c {
            '\\' if quote == '"' => {
                chars.next();
            }
            '\'' if quote == '\'' && chars.peek().is_some_and(|(_, n)| *n == '\'') => {
                chars.next();
            }
            c if c == quote => return Some(i + 1),
            _ => {}
        }
    }
    None
}

/// The lines after the first of every quoted value that does not end on its own line (a
/// stray quote swallows what follows), trimmed.
fn swallowed_lines(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut open: Option<char> = None;
    for line in text.lines() {
        if let Some(q) = open {
            let end = closing_quote(line, q);
            let part = end.map_or(line, |e| &line[..e - 1]).trim();
            if part.len() >= 3 {
                out.push(part.to_string());
            }
            if end.is_some() {
                open = None;
            }
            continue;
        }
        let body = line.trim_start().trim_start_matches("- ");
        let value = match body.split_once(": ") {
            Some((_, v)) => v.trim_start(),
            None => body,
        };
        if let Some(q) = value.chars().next().filter(|c| matches!(c, '"' | '\''))
            && closing_quote(&value[1..], q).is_none()
        {
            open = Some(q);
        }
    }
    out
}

impl Redactor {
    /// Collects the value of every `KEY: VALUE` (block or flow style) whose key is secret.
    pub fn new(text: &str) -> Redactor {
        let mut secrets = Vec::new();
        for line in text.lines() {
            // Flow style (`{a: x, b: y}`) holds several pairs; a block line holds one, whose
            // value may contain commas.
            let pieces: Vec<&str> = if line.contains('{') {
                line.split([',', '{', '}']).collect()
            } else {
                vec![line]
            };
            for piece in pieces {
                let piece = piece.trim_start().trim_start_matches("- ");
                let Some((key, value)) = piece.split_once(':') else {
                    continue;
                };
                let key = key.trim().trim_matches(['"', '\'']);
                let value = value.trim().trim_matches(['"', '\'']).trim();
                if is_secret_option(key) && !value.is_empty() {
                    secrets.push(value.to_string());
                }
            }
        }
        // Longest first, so that a secret containing another is replaced whole.
        secrets.sort_by_key(|s| std::cmp::Reverse(s.len()));
        secrets.dedup();
        Redactor {
            secrets,
            swallowed: swallowed_lines(text),
        }
    }

    /// `message` with every secret value replaced and long or multi-line quoted values cut.
    pub fn scrub(&self, message: &str) -> String {
        let swallowed = |v: &str| self.swallowed.iter().any(|s| v.contains(s.as_str()));
        let mut out = shorten_quoted(message, &swallowed);
        for s in &self.secrets {
            out = out.replace(s.as_str(), REDACTED);
        }
        for s in &self.swallowed {
            out = out.replace(s.as_str(), "<not shown>");
        }
        out
    }
}

/// True for a key as people write them: short, letters, digits and `_-.@`.
pub fn plausible_key(key: &str) -> bool {
    !key.is_empty()
        && key.len() <= MAX_SHOWN
        && key
            .chars()
            .all(|c| c.is_ascii_alphanumeric() || matches!(c, '_' | '-' | '.' | '@'))
}

/// A key path segment for messages: as written when plausible, else `?`.
pub fn shown_key(key: &str) -> &str {
    if plausible_key(key) { key } else { "?" }
}

/// A validation key path for messages: segments with control characters or longer than a
/// key shown as `?`.
pub fn shown_path(path: &str) -> String {
    if path.chars().all(|c| !c.is_control()) && path.split('.').all(|s| s.len() <= MAX_SHOWN) {
        return path.to_string();
    }
    path.split('.')
        .map(|s| {
            if s.len() > MAX_SHOWN || s.chars().any(char::is_control) {
                "?"
            } else {
                s
            }
        })
        .collect::<Vec<_>>()
        .join(".")
}

/// serde's key path for messages: map keys that do not look like keys shown as `?`; empty
/// for the whole document.
pub fn serde_path(path: &serde_path_to_error::Path) -> String {
    use serde_path_to_error::Segment;
    let mut out = String::new();
    for seg in path.iter() {
        match seg {
            Segment::Seq { index } => out.push_str(&format!("[{index}]")),
            Segment::Map { key } | Segment::Enum { variant: key } => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push_str(shown_key(key));
            }
            Segment::Unknown => {
                if !out.is_empty() {
                    out.push('.');
                }
                out.push('?');
            }
        }
    }
    if out.chars().all(|c| c == '?' || c == '.') {
        out.clear();
    }
    out
}

/// serde's message for a value at `path`, without the value where it must not be shown (see
/// the module doc). `unknown field`/`unknown variant` keep the name only when it looks like
/// one.
pub fn serde_message(message: &str, path: &str) -> String {
    // serde_norway may put a path of its own before serde's text (`fencing.devices: ...`).
    for prefix in ["invalid type: ", "invalid value: "] {
        if let Some(at) = message.find(prefix) {
            let (head, rest) = (&message[..at], &message[at + prefix.len()..]);
            let (found, expected) = match rest.rfind(", expected ") {
                Some(i) => (&rest[..i], &rest[i..]),
                None => (rest, ""),
            };
            let hide = path.is_empty()
                || path.starts_with("fencing.devices")
                || path.split(['.', '[']).any(is_secret_option)
                || found.len() > MAX_SHOWN + 16
                || found.contains(['\n', '\\']);
            let found = if hide {
                // The kind only: `integer`, `string`, `map`, ...
                found.split([' ', '`', '"']).next().unwrap_or("value")
            } else {
                found
            };
            return format!("{head}{prefix}{found}{expected}");
        }
    }
    for (prefix, what) in [("unknown field `", "key"), ("unknown variant `", "value")] {
        if let Some(at) = message.find(prefix)
            && let Some((name, tail)) = message[at + prefix.len()..].split_once('`')
            && !plausible_key(name)
        {
            return format!(
                "{}unknown {what} (not shown: it does not look like a oneha setting; is this \
                 file a oneha config?){tail}",
                &message[..at]
            );
        }
    }
    message.to_string()
}

/// `message` with every `quoted` value that is long, spans lines or holds `swallowed` text
/// replaced by its size.
fn shorten_quoted(message: &str, swallowed: &dyn Fn(&str) -> bool) -> String {
    let mut out = String::with_capacity(message.len());
    let mut rest = message;
    while let Some(open) = rest.find('`') {
        let Some(len) = rest[open + 1..].find('`') else {
            break;
        };
        let inner = &rest[open + 1..open + 1 + len];
        out.push_str(&rest[..open]);
        if inner.chars().count() > MAX_SHOWN
            || inner.chars().any(char::is_control)
            || swallowed(inner)
        {
            out.push_str(&format!(
                "<{} characters, not shown: a quote without its end may have swallowed the \
                 lines after it>",
                inner.chars().count()
            ));
        } else {
            out.push('`');
            out.push_str(inner);
            out.push('`');
        }
        rest = &rest[open + len + 2..];
    }
    out.push_str(rest);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn secret_values_are_found_in_block_and_flow_style() {
        let r = Redactor::new(
            "a:\n  password: 987654321\n  - passwd: \"s3 cret\"\n  opts: {login: x, \
             ssh_key: 'k3y'}\n  login: admin\n  secret: \"a,b:c\"\n",
        );
        assert_eq!(
            r.scrub("x 987654321 `s3 cret` k3y admin a,b:c"),
            "x <redacted> `<redacted>` <redacted> admin <redacted>"
        );
    }

    #[test]
    fn serde_values_are_hidden_where_they_may_be_secret() {
        let m = "invalid type: integer `987654321`, expected a string";
        assert_eq!(
            serde_message(m, "fencing.devices.ipmi"),
            "invalid type: integer, expected a string"
        );
        assert_eq!(serde_message(m, "nodes[1].id"), m);
        assert_eq!(
            serde_message(&format!("fencing.devices: {m}"), "fencing.devices.ipmi"),
            "fencing.devices: invalid type: integer, expected a string"
        );
        assert_eq!(
            serde_message(
                "invalid type: string \"root:x:0:0\", expected struct Config",
                ""
            ),
            "invalid type: string, expected struct Config"
        );
        let shadow = "unknown field `root:*:20228:0:99999:7::`, expected one of `cluster`";
        let m = serde_message(shadow, "?");
        assert!(
            !m.contains("root") && m.ends_with(", expected one of `cluster`"),
            "{m}"
        );
        assert_eq!(
            serde_message("unknown field `prio`, expected `a`", "x"),
            "unknown field `prio`, expected `a`"
        );
    }

    #[test]
    fn long_and_multi_line_quoted_values_are_cut() {
        let long = "x".repeat(200);
        let m = shorten_quoted(
            &format!("agent `{long}` not found, `a\nb` and `ok`"),
            &|_| false,
        );
        assert!(m.starts_with("agent <200 characters, not shown"), "{m}");
        assert!(
            m.contains("<3 characters, not shown") && m.ends_with("and `ok`"),
            "{m}"
        );
    }

    #[test]
    fn values_swallowed_by_a_stray_quote_are_not_shown() {
        let text = "devices:\n  x:\n    agent: \"fence_x\n    options:\n      ipaddr: 192.0.2.9\"\n  \
                    y: 'it''s\n  z: a'\nok: \"fine\"\n";
        assert_eq!(
            swallowed_lines(text),
            ["options:", "ipaddr: 192.0.2.9", "z: a"]
        );
        let r = Redactor::new(text);
        let m = r.scrub("agent `fence_x options: ipaddr: 192.0.2.9` not found; `fine`");
        assert!(m.starts_with("agent <34 characters, not shown"), "{m}");
        assert!(m.ends_with("not found; `fine`"), "{m}");
    }
}
