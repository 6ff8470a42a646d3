//! A small element tree for oned's small documents (`<HOST>`, `<VM>`, `<DATASTORE_POOL>`,
//! `<HOST_POOL>`), read with quick-xml. Depth and size are bounded: these documents come
//! from outside (the hook's stdin, oned's replies).

use quick_xml::Reader;
use quick_xml::events::Event;

/// Deepest nesting accepted. OpenNebula's documents nest a few levels (`VM/TEMPLATE/DISK/..`).
pub const MAX_DEPTH: usize = 64;

/// One element: its name, its text (concatenated text and CDATA, trimmed) and its children.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Element {
    /// Tag name.
    pub name: String,
    /// Text content, trimmed.
    pub text: String,
    /// Child elements in document order.
    pub children: Vec<Element>,
}

impl Element {
    /// The first child named `name`.
    pub fn child(&self, name: &str) -> Option<&Element> {
        self.children.iter().find(|c| c.name == name)
    }

    /// Every child named `name`.
    pub fn children_named<'a>(&'a self, name: &'a str) -> impl Iterator<Item = &'a Element> {
        self.children.iter().filter(move |c| c.name == name)
    }

    /// The element at a `/`-separated path of child names (`"TEMPLATE/FENCE_IP"`).
    pub fn at(&self, path: &str) -> Option<&Element> {
        path.split('/').try_fold(self, |e, name| e.child(name))
    }

    /// The text at `path`, if the element exists.
    pub fn text_at(&self, path: &str) -> Option<&str> {
        self.at(path).map(|e| e.text.as_str())
    }

    /// The integer at `path`: `Err` names the path and what was found.
    pub fn int_at(&self, path: &str) -> Result<i64, String> {
        let t = self
            .text_at(path)
            .ok_or_else(|| format!("<{}> has no {path}", self.name))?;
        t.parse::<i64>().map_err(|_| {
            format!(
                "<{}>/{path} is not an integer (found {} characters of text)",
                self.name,
                t.chars().count()
            )
        })
    }
}

/// Parses `text` into its root element. Errors say what is wrong and where (byte offset), never
/// echo the document.
pub fn parse(text: &str) -> Result<Element, String> {
    let mut reader = Reader::from_str(text);
    let mut stack: Vec<Element> = Vec::new();
    let mut root: Option<Element> = None;
    loop {
        let pos = reader.buffer_position();
        let ev = reader
            .read_event()
            .map_err(|e| format!("malformed XML near byte {pos}: {e}"))?;
        match ev {
            Event::Start(s) => {
                if root.is_some() {
                    return Err(format!("content after the root element (byte {pos})"));
                }
                if stack.len() >= MAX_DEPTH {
                    return Err(format!(
                        "elements nested deeper than {MAX_DEPTH} levels (byte {pos})"
                    ));
                }
                stack.push(Element {
                    name: s.name().as_ref().to_string(),
                    ..Element::default()
                });
            }
            Event::Empty(s) => {
                let e = Element {
                    name: s.name().as_ref().to_string(),
                    ..Element::default()
                };
                match stack.last_mut() {
                    Some(parent) => parent.children.push(e),
                    None if root.is_none() => root = Some(e),
                    None => return Err(format!("content after the root element (byte {pos})")),
                }
            }
            Event::End(_) => {
                let Some(mut e) = stack.pop() else {
                    return Err(format!("unexpected end tag (byte {pos})"));
                };
                e.text = e.text.trim().to_string();
                match stack.last_mut() {
                    Some(parent) => parent.children.push(e),
                    None => root = Some(e),
                }
            }
            Event::Text(t) => {
                let content = t.xml10_content();
                if let Some(cur) = stack.last_mut() {
                    cur.text.push_str(&content);
                } else if !content.trim().is_empty() {
                    return Err(format!("text outside the root element (byte {pos})"));
                }
            }
            Event::GeneralRef(r) => {
                if let Some(cur) = stack.last_mut() {
                    let c = crate::opennebula::parse::resolve_ref(&r)
                        .map_err(|e| format!("{e} near byte {pos}"))?;
                    cur.text.push(c);
                }
            }
            Event::CData(c) => {
                if let Some(cur) = stack.last_mut() {
                    cur.text.push_str(&c.xml10_content());
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    if !stack.is_empty() {
        return Err(format!(
            "the document ends inside <{}> (truncated?)",
            stack.last().map(|e| e.name.as_str()).unwrap_or_default()
        ));
    }
    root.ok_or_else(|| "no XML element found".to_string())
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_text_cdata_and_paths() {
        let e = parse(
            "<HOST><ID>7</ID><NAME>kvm1</NAME><TEMPLATE><FENCE_IP><![CDATA[192.0.2.50]]>\
             </FENCE_IP><NOTE>a &amp; b</NOTE></TEMPLATE><VMS><ID>1</ID><ID>2</ID></VMS></HOST>",
        )
        .unwrap();
        assert_eq!(e.int_at("ID"), Ok(7));
        assert_eq!(e.text_at("TEMPLATE/FENCE_IP"), Some("192.0.2.50"));
        assert_eq!(e.text_at("TEMPLATE/NOTE"), Some("a & b"));
        let ids: Vec<&str> = e
            .at("VMS")
            .unwrap()
            .children_named("ID")
            .map(|c| c.text.as_str())
            .collect();
        assert_eq!(ids, ["1", "2"]);
    }

    #[test]
    fn refuses_bad_documents_without_echoing_them() {
        for (doc, want) in [
            ("<HOST><ID>1</ID>", "ends inside <HOST>"),
            ("", "no XML element"),
            ("<A></B>", "malformed"),
            ("<A/><B/>", "after the root"),
            ("secret-text", "outside the root"),
        ] {
            let err = parse(doc).unwrap_err();
            assert!(err.contains(want), "{doc:?}: {err}");
            assert!(!err.contains("secret-text"), "{err}");
        }
        let deep = "<A>".repeat(MAX_DEPTH + 1);
        assert!(parse(&deep).unwrap_err().contains("nested deeper"));
        assert!(parse("<H><ID>x1</ID></H>").unwrap().int_at("ID").is_err());
    }
}
