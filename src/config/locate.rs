//! Finds the line of a key path (`nodes[1].address`) in block-style YAML text, so that
//! validation errors, which are found after parsing, can still name a line.
//!
//! This is a small indentation walker, not a YAML parser: it understands the block style
//! that configs are written in (`key: value`, `- item`). When it cannot follow the path
//! (flow style, anchors), it returns the line of the deepest part it found.

/// One step of a key path.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Step {
    /// A mapping key.
    Key(String),
    /// A sequence index.
    Index(usize),
}

/// Splits `nodes[1].fence.levels[0]` into steps.
pub fn parse_path(path: &str) -> Vec<Step> {
    let mut steps = Vec::new();
    for part in path.split('.') {
        let mut rest = part;
        if let Some(open) = rest.find('[') {
            let key = &rest[..open];
            if !key.is_empty() {
                steps.push(Step::Key(key.to_string()));
            }
            rest = &rest[open..];
            while let Some(stripped) = rest.strip_prefix('[') {
                let Some(close) = stripped.find(']') else {
                    break;
                };
                if let Ok(i) = stripped[..close].parse() {
                    steps.push(Step::Index(i));
                }
                rest = &stripped[close + 1..];
            }
        } else if !rest.is_empty() {
            steps.push(Step::Key(rest.to_string()));
        }
    }
    steps
}

struct Line<'a> {
    number: usize,
    indent: usize,
    text: &'a str,
}

/// The lines that carry content (not blank, comments or `---`), with their numbers.
fn content_lines(text: &str) -> Vec<Line<'_>> {
    text.lines()
        .enumerate()
        .filter_map(|(i, raw)| {
            let trimmed = raw.trim_start();
            if trimmed.is_empty() || trimmed.starts_with('#') || trimmed == "---" {
                return None;
            }
            Some(Line {
                number: i + 1,
                indent: raw.len() - trimmed.len(),
                text: trimmed,
            })
        })
        .collect()
}

fn key_of(text: &str) -> Option<&str> {
    let colon = text.find(':')?;
    let after = &text[colon + 1..];
    if !(after.is_empty() || after.starts_with(' ')) {
        return None;
    }
    Some(text[..colon].trim().trim_matches(|c| c == '"' || c == '\''))
}

/// The 1-based line where `path` is written in `lines` (with `- key:` items already split
/// onto two lines by [`Locator::new`]).
fn line_of(lines: &[Line<'_>], path: &str) -> Option<usize> {
    let steps = parse_path(path);
    // The current block: a range of lines whose children sit at its first line's indent.
    let (mut start, mut end) = (0usize, lines.len());
    let mut found: Option<usize> = None;
    for step in steps {
        // Children of this block are at the indentation of its first line.
        let Some(first) = lines.get(start..end).and_then(|b| b.first()) else {
            break;
        };
        let indent = first.indent;
        let matched = match &step {
            Step::Key(k) => (start..end)
                .find(|&i| lines[i].indent == indent && key_of(lines[i].text) == Some(k.as_str())),
            Step::Index(n) => (start..end)
                .filter(|&i| lines[i].indent == indent && lines[i].text.starts_with('-'))
                .nth(*n),
        };
        let Some(i) = matched else { break };
        found = Some(lines[i].number);
        // The child block: following lines indented deeper than this one (a sequence under
        // a key may also sit at the key's own indentation: `key:` then `- item`).
        let is_key = matches!(step, Step::Key(_));
        let child_end = (i + 1..end)
            .find(|&j| {
                lines[j].indent < indent
                    || (lines[j].indent == indent && !(is_key && lines[j].text.starts_with('-')))
            })
            .unwrap_or(end);
        start = i + 1;
        end = child_end;
    }
    found
}

/// Finds the lines of key paths in one text: the text is prepared once for all lookups.
pub struct Locator {
    /// The text with `- key: v` rewritten into two lines (`-` and `  key: v`), so the walker
    /// sees the key at its real indentation.
    rewritten: String,
    /// The original line of each rewritten line.
    origin: Vec<usize>,
    /// Where each content line of `rewritten` is: (line number, indent, byte range).
    lines: Vec<(usize, usize, std::ops::Range<usize>)>,
}

impl Locator {
    /// Prepares `text`.
    pub fn new(text: &str) -> Locator {
        let mut rewritten = String::new();
        let mut origin = Vec::new();
        for (i, raw) in text.lines().enumerate() {
            let trimmed = raw.trim_start();
            let indent = raw.len() - trimmed.len();
            if let Some(after) = trimmed.strip_prefix("- ") {
                let after_trim = after.trim_start();
                if key_of(after_trim).is_some() {
                    rewritten.push_str(&" ".repeat(indent));
                    rewritten.push_str("-\n");
                    origin.push(i + 1);
                    let inner = indent + (trimmed.len() - after_trim.len());
                    rewritten.push_str(&" ".repeat(inner));
                    rewritten.push_str(after_trim);
                    rewritten.push('\n');
                    origin.push(i + 1);
                    continue;
                }
            }
            rewritten.push_str(raw);
            rewritten.push('\n');
            origin.push(i + 1);
        }
        let base = rewritten.as_ptr() as usize;
        let lines = content_lines(&rewritten)
            .into_iter()
            .map(|l| {
                let start = l.text.as_ptr() as usize - base;
                (l.number, l.indent, start..start + l.text.len())
            })
            .collect();
        Locator {
            rewritten,
            origin,
            lines,
        }
    }

    /// The line of `path` (see [`locate`]).
    pub fn line(&self, path: &str) -> Option<usize> {
        let lines: Vec<Line<'_>> = self
            .lines
            .iter()
            .map(|(number, indent, r)| Line {
                number: *number,
                indent: *indent,
                text: self.rewritten.get(r.clone()).unwrap_or_default(),
            })
            .collect();
        let line = line_of(&lines, path)?;
        self.origin.get(line - 1).copied()
    }
}

/// The 1-based line where `path` (`nodes[1].address`) is written in `text`, or the line of
/// the deepest part of it found; also understands keys written on a `- ` line.
pub fn locate(text: &str, path: &str) -> Option<usize> {
    Locator::new(text).line(path)
}

#[cfg(test)]
mod tests {
    use super::*;

    const DOC: &str = "\
cluster: one
# comment
nodes:
  - name: a
    id: 1
    address: 192.0.2.1:7000
  - name: b
    id: 2
    address: 192.0.2.2:7000
timers:
  profile: fast
  election_ticks: 3
";

    #[test]
    fn finds_top_level_and_nested_keys() {
        assert_eq!(locate(DOC, "cluster"), Some(1));
        assert_eq!(locate(DOC, "nodes"), Some(3));
        assert_eq!(locate(DOC, "nodes[0]"), Some(4));
        assert_eq!(locate(DOC, "nodes[0].name"), Some(4));
        assert_eq!(locate(DOC, "nodes[1].id"), Some(8));
        assert_eq!(locate(DOC, "nodes[1].address"), Some(9));
        assert_eq!(locate(DOC, "timers.election_ticks"), Some(12));
    }

    #[test]
    fn finds_keys_in_unindented_sequences() {
        let doc = "nodes:\n- name: a\n  id: 1\n- name: b\n  id: 2\ntwo_node: true\n";
        assert_eq!(locate(doc, "nodes[1].id"), Some(5));
        assert_eq!(locate(doc, "two_node"), Some(6));
    }

    #[test]
    fn falls_back_to_deepest_found() {
        assert_eq!(locate(DOC, "timers.missing"), Some(10));
        assert_eq!(locate(DOC, "nodes[5].id"), Some(3));
        assert_eq!(locate(DOC, "absent"), None);
    }

    #[test]
    fn parses_paths() {
        assert_eq!(
            parse_path("nodes[1].fence[0].device"),
            vec![
                Step::Key("nodes".into()),
                Step::Index(1),
                Step::Key("fence".into()),
                Step::Index(0),
                Step::Key("device".into())
            ]
        );
    }
}
