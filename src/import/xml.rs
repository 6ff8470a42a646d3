//! A small element tree over quick-xml, with the line of every element, for cluster.conf.

use quick_xml::Reader;
use quick_xml::XmlVersion;
use quick_xml::events::{BytesStart, Event};

/// One XML element: its name, attributes in document order, child elements and line.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Element {
    /// Tag name.
    pub name: String,
    /// Attributes, unescaped, in document order.
    pub attrs: Vec<(String, String)>,
    /// Child elements in document order (text is dropped: cluster.conf has none).
    pub children: Vec<Element>,
    /// 1-based line of the start tag.
    pub line: usize,
}

/// Deepest element nesting accepted. rgmanager's cluster.conf nests a handful of levels
/// (cluster, rm, service, a few resources); the limit keeps every walk of the tree (and its
/// drop) far from the stack's end whatever the file holds.
pub const MAX_DEPTH: usize = 64;

/// A document that is not well-formed XML.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
#[error("line {line}: {message}")]
pub struct XmlError {
    /// 1-based line where the problem was found.
    pub line: usize,
    /// What is wrong.
    pub message: String,
}

impl Element {
    /// The value of attribute `key`.
    pub fn attr(&self, key: &str) -> Option<&str> {
        self.attrs
            .iter()
            .find(|(k, _)| k == key)
            .map(|(_, v)| v.as_str())
    }

    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child named `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }
}

/// 1-based line of byte `offset` in `text`.
fn line_of(text: &str, offset: u64) -> usize {
    Lines::new(text).at(offset)
}

/// Line numbers of increasing offsets, counted once: the parser asks for the line of every
/// element, and counting from the start each time was quadratic in the file's size.
struct Lines<'a> {
    text: &'a [u8],
    offset: usize,
    line: usize,
}

impl<'a> Lines<'a> {
    fn new(text: &'a str) -> Lines<'a> {
        Lines {
            text: text.as_bytes(),
            offset: 0,
            line: 1,
        }
    }

    /// The line of byte `offset`; offsets below an earlier one are counted from the start.
    fn at(&mut self, offset: u64) -> usize {
        let end = usize::try_from(offset)
            .unwrap_or(usize::MAX)
            .min(self.text.len());
        if end < self.offset {
            (self.offset, self.line) = (0, 1);
        }
        self.line += memchr::memchr_iter(b'\n', &self.text[self.offset..end]).count();
        self.offset = end;
        self.line
    }
}

fn element(line: usize, start: &BytesStart<'_>) -> Result<Element, XmlError> {
    let name = String::from_utf8_lossy(start.name().as_ref().as_bytes()).into_owned();
    let mut attrs = Vec::new();
    for a in start.attributes() {
        let a = a.map_err(|e| XmlError {
            line,
            message: format!("bad attribute in <{name}>: {e}"),
        })?;
        let key = String::from_utf8_lossy(a.key.as_ref().as_bytes()).into_owned();
        let value = a
            .normalized_value(XmlVersion::Implicit1_0)
            .map_err(|e| XmlError {
                line,
                message: format!("bad value of {key} in <{name}>: {e}"),
            })?;
        attrs.push((key, value.into_owned()));
    }
    Ok(Element {
        name,
        attrs,
        children: Vec::new(),
        line,
    })
}

/// Parses a whole document into its root element.
pub fn parse(text: &str) -> Result<Element, XmlError> {
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    let mut lines = Lines::new(text);
    loop {
        let offset = reader.buffer_position();
        let event = reader.read_event().map_err(|e| XmlError {
            line: line_of(text, reader.error_position()),
            message: format!("not well-formed XML: {e}"),
        })?;
        match event {
            Event::Start(ref s) | Event::Empty(ref s) => {
                let el = element(lines.at(offset), s)?;
                if root.is_some() {
                    return Err(XmlError {
                        line: el.line,
                        message: format!("<{}> after the end of the root element", el.name),
                    });
                }
                if matches!(event, Event::Start(_)) {
                    if stack.len() >= MAX_DEPTH {
                        return Err(XmlError {
                            line: el.line,
                            message: format!(
                                "<{}> is nested more than {MAX_DEPTH} elements deep (the \
                                 outermost open element is <{}> on line {}); a cluster.conf \
                                 nests only a few levels: is this the right file?",
                                el.name, stack[0].name, stack[0].line
                            ),
                        });
                    }
                    stack.push(el);
                } else {
                    match stack.last_mut() {
                        Some(parent) => parent.children.push(el),
                        None => root = Some(el),
                    }
                }
            }
            Event::End(_) => {
                let Some(done) = stack.pop() else {
                    return Err(XmlError {
                        line: lines.at(offset),
                        message: "closing tag without an opening tag".into(),
                    });
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(done),
                    None => root = Some(done),
                }
            }
            Event::Eof => {
                if let Some(open) = stack.last() {
                    return Err(XmlError {
                        line: line_of(text, offset),
                        message: format!(
                            "the document ends inside <{}> (opened on line {}): the file is cut short",
                            open.name, open.line
                        ),
                    });
                }
                return root.ok_or(XmlError {
                    line: 1,
                    message: "no element at all: the file is empty or not XML".into(),
                });
            }
            _ => {}
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn builds_the_tree_with_lines_and_unescaped_attributes() {
        let doc =
            "<?xml version=\"1.0\"?>\n<a x=\"1 &amp; 2\">\n  <b/>\n  <c><d y='z'/></c>\n</a>\n";
        let a = parse(doc).unwrap();
        assert_eq!(a.name, "a");
        assert_eq!(a.attr("x"), Some("1 & 2"));
        assert_eq!(a.line, 2);
        assert_eq!(a.children.len(), 2);
        assert_eq!(a.child("b").unwrap().line, 3);
        let d = &a.child("c").unwrap().children[0];
        assert_eq!((d.name.as_str(), d.attr("y"), d.line), ("d", Some("z"), 4));
    }

    #[test]
    fn malformed_documents_name_the_line() {
        let e = parse("<a>\n<b>\n</a>\n").unwrap_err();
        assert_eq!(e.line, 3, "{e}");
        let e = parse("<a>\n<b/>\n").unwrap_err();
        assert!(e.message.contains("cut short"), "{e}");
        let e = parse("").unwrap_err();
        assert!(e.message.contains("empty"), "{e}");
        let e = parse("<a x=\"1\" x=\"2\"/>").unwrap_err();
        assert!(e.message.contains("attribute"), "{e}");
    }

    /// Found by fuzzing: ~100,000 nested elements overflowed the stack (SIGABRT).
    #[test]
    fn deep_nesting_is_refused_with_its_line() {
        let n = 100_000;
        let doc = format!(
            "<cluster>\n{}{}</cluster>",
            "<a>\n".repeat(n),
            "</a>".repeat(n)
        );
        let e = parse(&doc).unwrap_err();
        assert_eq!(e.line, MAX_DEPTH + 1, "{e}");
        assert!(e.message.contains("nested more than 64"), "{e}");
        let ok = format!("{}{}", "<a>".repeat(MAX_DEPTH), "</a>".repeat(MAX_DEPTH));
        assert!(parse(&ok).is_ok());
    }
}
