//! Skipping an element the report does not need (TEMPLATE, MONITORING, ...) without reading it
//! event by event.
//!
//! Most of a VM's body is its template, monitoring and other elements the report ignores.
//! quick-xml's `read_to_end` skips them too, but builds and checks an event for every tag,
//! which costs most of the parse. [`content_end`] only follows the nesting: plain start tags,
//! end tags, empty tags, CDATA sections and text. For anything else (attributes with quotes,
//! comments, processing instructions, references in text, a mismatched end tag, the end of
//! the input) it gives up, and the caller lets quick-xml skip the element the usual way, so
//! every error is still quick-xml's.

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

/// Bytes that end the name in a start tag.
const NAME_END: [bool; 256] = {
    let mut t = [false; 256];
    let mut i = 0;
    while i < 256 {
        t[i] = matches!(
            i as u8,
            b'>' | b'/' | b'"' | b'\'' | b' ' | b'\t' | b'\n' | b'\r'
        );
        i += 1;
    }
    t
};

/// The first byte of `s` that `hit` accepts. A plain loop: between the tags of a template the
/// distances are a few bytes, shorter than a vectorised search needs to pay off.
fn find(s: &[u8], hit: impl Fn(u8) -> bool) -> Option<usize> {
    s.iter().position(|b| hit(*b))
}

/// Where `]]>` starts in `s`.
fn cdata_end(s: &[u8]) -> Option<usize> {
    let mut from = 0;
    loop {
        let i = from + find(s.get(from..)?, |b| b == b']')?;
        if s.get(i..i + 3) == Some(b"]]>") {
            return Some(i);
        }
        from = i + 1;
    }
}

/// After a start tag `<name>`: the length of `<![CDATA[...]]></name>` if that is what
/// follows (the usual shape of a template attribute), read in one go.
fn cdata_element(rest: &[u8], name: &[u8]) -> Option<usize> {
    let body = rest.strip_prefix(b"<![CDATA[")?;
    let end = cdata_end(body)?;
    let tail = body.get(end + 3..)?.strip_prefix(b"</")?;
    let after = tail.strip_prefix(name)?.strip_prefix(b">")?;
    Some(rest.len() - after.len())
}

/// In `rest`, the content of an element named `name` (just after its start tag): where its end
/// tag `</name>` starts. `None` when the content holds anything but plain tags, CDATA and text
/// without references, or does not nest exactly as quick-xml checks it.
pub fn content_end(rest: &[u8], name: &[u8]) -> Option<usize> {
    let mut open: Vec<&[u8]> = Vec::new();
    let mut pos = 0;
    loop {
        let lt = pos + find(rest.get(pos..)?, |b| b == b'<' || b == b'&')?;
        if rest.get(lt) == Some(&b'&') {
            return None;
        }
        let tag = rest.get(lt + 1..)?;
        match *tag.first()? {
            b'/' => {
                let close = find(tag, |b| b == b'>')?;
                let mut end = tag.get(1..close)?;
                while let Some((last, init)) = end.split_last()
                    && is_ws(*last)
                {
                    end = init;
                }
                match open.pop() {
                    Some(o) if o == end => {}
                    Some(_) => return None,
                    None => return (end == name).then_some(lt),
                }
                pos = lt + 1 + close + 1;
            }
            b'!' => {
                let body = tag.strip_prefix(b"![CDATA[")?;
                pos = lt + 1 + 8 + cdata_end(body)? + 3;
            }
            b'?' => return None,
            _ => {
                let len = find(tag, |b| NAME_END[usize::from(b)])?;
                let start = tag.get(..len)?;
                if start.is_empty() {
                    return None;
                }
                if tag.get(len) == Some(&b'>') {
                    pos = lt + 1 + len + 1;
                    match cdata_element(rest.get(pos..)?, start) {
                        Some(used) => pos += used,
                        None => open.push(start),
                    }
                    continue;
                }
                // Something after the name: `/>`, or attributes (declined when quoted).
                let close = len + find(tag.get(len..)?, |b| matches!(b, b'>' | b'"' | b'\''))?;
                if tag.get(close) != Some(&b'>') {
                    return None;
                }
                if tag.get(close - 1) != Some(&b'/') {
                    open.push(start);
                }
                pos = lt + 1 + close + 1;
            }
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn end(content: &str) -> Option<usize> {
        content_end(content.as_bytes(), b"TEMPLATE")
    }

    #[test]
    fn finds_the_matching_end_tag() {
        let c = "<CPU><![CDATA[1]]></CPU><DISK><ID>0</ID><X/><Y a/></DISK>text > more\
                 <CONTEXT><![CDATA[</TEMPLATE> & <]]></CONTEXT></TEMPLATE ><VM>";
        assert_eq!(end(c), c.find("</TEMPLATE >"));
        assert_eq!(end("</TEMPLATE>"), Some(0));
        let nested = "<TEMPLATE><A/></TEMPLATE></TEMPLATE>";
        assert_eq!(end(nested), Some(25));
        for c in [
            "<A><![CDATA[x]]></A ></TEMPLATE>",
            "<A><![CDATA[x]]>y</A></TEMPLATE>",
            "<A><![CDATA[x]]><![CDATA[y]]></A></TEMPLATE>",
            "<A><![CDATA[]]></A><AB><![CDATA[]]]]></AB></TEMPLATE>",
        ] {
            assert_eq!(end(c), c.find("</TEMPLATE>"), "{c}");
        }
    }

    #[test]
    fn gives_up_on_anything_else() {
        for c in [
            "<A b=\"1\">x</A></TEMPLATE>",
            "<A b='>'/></TEMPLATE>",
            "<!-- c --></TEMPLATE>",
            "<?pi x?></TEMPLATE>",
            "a &amp; b</TEMPLATE>",
            "<!DOCTYPE x></TEMPLATE>",
            "<A></B></TEMPLATE>",
            "<A><![CDATA[x]]></B></TEMPLATE>",
            "<AB><![CDATA[x]]></A></TEMPLATE>",
            "<A></TEMPLATE>",
            "</OTHER>",
            "<A><![CDATA[x]]",
            "<A>",
            "< A></A></TEMPLATE>",
            "<></TEMPLATE>",
            "",
            "<",
        ] {
            assert_eq!(end(c), None, "{c}");
        }
    }
}
