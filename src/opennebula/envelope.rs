//! A fast reader for the exact reply envelope oned (xmlrpc-c) writes.
//!
//! `<methodResponse><params><param><value><array><data>` then `<value>`s, each a `boolean`,
//! `i4`/`int`, `i8`, `string` or untyped text. It works on bytes and records where each
//! string's escaped text is, so a page of VMs (megabytes of escaped VM_POOL) is located with a
//! handful of `memchr` calls and decoded later, possibly in pieces on several threads.
//! Anything else (CDATA, comments, structs, doubles, carriage returns) yields `None` and the
//! caller falls back to dxr.

use std::ops::Range;

use dxr::Value;

use super::unescape::unescape;

/// One value of the envelope, not yet decoded.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum RawValue {
    /// A string (typed or untyped): where its escaped text is in the reply.
    Str(Range<usize>),
    /// A scalar: its XML-RPC type and where its escaped text is.
    Scalar(Scalar, Range<usize>),
}

/// The scalar types the fast reader accepts.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Scalar {
    /// `i4` or `int`.
    I4,
    /// `i8`.
    I8,
    /// `boolean`.
    Boolean,
}

/// A cursor over the reply bytes.
struct Scan<'a> {
    buf: &'a [u8],
    pos: usize,
}

fn is_ws(b: u8) -> bool {
    matches!(b, b' ' | b'\t' | b'\n' | b'\r')
}

impl Scan<'_> {
    fn rest(&self) -> &[u8] {
        self.buf.get(self.pos..).unwrap_or_default()
    }
    fn ws(&mut self) {
        self.pos += self.rest().iter().take_while(|b| is_ws(**b)).count();
    }
    /// Consumes `s` if the text continues with it.
    fn eat(&mut self, s: &[u8]) -> bool {
        let found = self.rest().starts_with(s);
        if found {
            self.pos += s.len();
        }
        found
    }
    /// Skips whitespace, then `tag` (exactly).
    fn tag(&mut self, tag: &[u8]) -> Option<()> {
        self.ws();
        self.eat(tag).then_some(())
    }
    /// Text up to the next `<`, which must start `end` (consumed).
    fn text_until(&mut self, end: &[u8]) -> Option<Range<usize>> {
        let len = memchr::memchr(b'<', self.rest())?;
        let text = self.pos..self.pos + len;
        self.pos += len;
        self.eat(end).then_some(text)
    }
    /// One value, after `<value>`, through `</value>`.
    fn value(&mut self) -> Option<RawValue> {
        let start = self.pos;
        self.ws();
        if !self.rest().starts_with(b"<") || self.rest().starts_with(b"</value>") {
            // Untyped: a string, whitespace included.
            self.pos = start;
            return Some(RawValue::Str(self.text_until(b"</value>")?));
        }
        let v = if self.eat(b"<string/>") {
            RawValue::Str(self.pos..self.pos)
        } else {
            let close = memchr::memchr(b'>', self.rest())?;
            let name = self.rest().get(1..close)?;
            if name.is_empty() || !name.iter().all(|b| b.is_ascii_alphanumeric() || *b == b'.') {
                return None;
            }
            let kind = match name {
                b"string" => None,
                b"i4" | b"int" => Some(Scalar::I4),
                b"i8" => Some(Scalar::I8),
                b"boolean" => Some(Scalar::Boolean),
                _ => return None,
            };
            let mut end = Vec::with_capacity(name.len() + 3);
            end.extend_from_slice(b"</");
            end.extend_from_slice(name);
            end.push(b'>');
            self.pos += close + 1;
            let text = self.text_until(&end)?;
            match kind {
                None => RawValue::Str(text),
                Some(k) => RawValue::Scalar(k, text),
            }
        };
        self.tag(b"</value>")?;
        Some(v)
    }
}

/// The tags before the reply's values.
const OPEN: [&[u8]; 6] = [
    b"<methodResponse>",
    b"<params>",
    b"<param>",
    b"<value>",
    b"<array>",
    b"<data>",
];
/// The tags after them (`</data>` ends the values).
const CLOSE: [&[u8]; 5] = [
    b"</array>",
    b"</value>",
    b"</param>",
    b"</params>",
    b"</methodResponse>",
];

/// The values of a reply written exactly as oned writes it, undecoded; `None` for anything
/// else.
pub fn raw_values(body: &[u8]) -> Option<Vec<RawValue>> {
    let mut s = Scan { buf: body, pos: 0 };
    s.ws();
    if s.rest().starts_with(b"<?xml") {
        let end = memchr::memmem::find(s.rest(), b"?>")?;
        // The declaration is not decoded, but must be text like the rest.
        std::str::from_utf8(s.rest().get(..end)?).ok()?;
        s.pos += end + 2;
    }
    for t in OPEN {
        s.tag(t)?;
    }
    let mut values = Vec::with_capacity(5);
    loop {
        s.ws();
        if s.eat(b"</data>") {
            break;
        }
        s.tag(b"<value>")?;
        values.push(s.value()?);
    }
    for t in CLOSE {
        s.tag(t)?;
    }
    s.ws();
    s.rest().is_empty().then_some(values)
}

/// Decodes one raw value of `body`.
pub fn decode_value(body: &[u8], v: &RawValue) -> Option<Value> {
    match v {
        RawValue::Str(r) => Some(Value::String(unescape(body.get(r.clone())?)?)),
        RawValue::Scalar(kind, r) => {
            let text = unescape(body.get(r.clone())?)?;
            let t = text.trim();
            Some(match kind {
                Scalar::I4 => Value::Integer(t.parse().ok()?),
                Scalar::I8 => Value::Long(t.parse().ok()?),
                Scalar::Boolean => match t {
                    "1" => Value::Boolean(true),
                    "0" => Value::Boolean(false),
                    _ => return None,
                },
            })
        }
    }
}

/// The values of a reply written exactly as oned writes it, decoded; `None` for anything
/// else.
pub fn fast_values(body: &[u8]) -> Option<Vec<Value>> {
    raw_values(body)?
        .iter()
        .map(|v| decode_value(body, v))
        .collect()
}

/// For a successful reply written exactly as oned writes it (`[true, string, int]`): where the
/// escaped string is. `None` for anything else (errors, other shapes, other types), which the
/// caller decodes in full. The string itself is not checked here.
pub fn success_string(body: &[u8]) -> Option<Range<usize>> {
    let values = raw_values(body)?;
    let [ok, RawValue::Str(text), code] = values.as_slice() else {
        return None;
    };
    match (decode_value(body, ok)?, decode_value(body, code)?) {
        (Value::Boolean(true), Value::Integer(_) | Value::Long(_)) => Some(text.clone()),
        _ => None,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn locates_the_string_of_a_success_reply() {
        let body =
            b"<?xml version=\"1.0\"?>\r\n<methodResponse><params><param><value><array><data>\
            <value><boolean>1</boolean></value><value><string>&lt;VM_POOL/&gt;</string></value>\
            <value><i4>0</i4></value></data></array></value></param></params></methodResponse>\r\n";
        let r = success_string(body).unwrap();
        assert_eq!(&body[r], b"&lt;VM_POOL/&gt;");
        let err = b"<methodResponse><params><param><value><array><data>\
            <value><boolean>0</boolean></value><value><string>no</string></value>\
            <value><i4>256</i4></value><value><i4>-1</i4></value><value><i8>0</i8></value>\
            </data></array></value></param></params></methodResponse>";
        assert_eq!(success_string(err), None);
        let not_string = b"<methodResponse><params><param><value><array><data>\
            <value><boolean>1</boolean></value><value><i4>42</i4></value>\
            <value><i4>0</i4></value></data></array></value></param></params></methodResponse>";
        assert_eq!(success_string(not_string), None);
        assert_eq!(success_string(b"<?xml \xff?><methodResponse>"), None);
    }
}
