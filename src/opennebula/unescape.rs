//! Decoding XML character data: the five predefined entities and character references.
//!
//! An XML-RPC string from oned is the whole VM_POOL document escaped (`&lt;VM&gt;...`): an
//! entity every few bytes, hundreds of megabytes for a large pool. This loop copies plain runs
//! byte by byte and recognises the common entities by their bytes, without a call per entity.

/// Appends the decoded text of `raw` to `out`. `None` when `raw` holds anything a plain XML
/// reader would treat differently: a `<` (markup), a carriage return (XML normalises line
/// ends), an unknown entity, a malformed or NUL character reference.
///
/// `out` is bytes: the caller converts it to a `String`, which also checks that the input
/// was UTF-8 (plain bytes are copied unchanged). After `None`, `out` holds partial output.
pub fn unescape_into(raw: &[u8], out: &mut Vec<u8>) -> Option<()> {
    // The text never grows (a reference is at least as long as its UTF-8), so it is written
    // into a buffer of the input's size, then cut to what was written.
    let base = out.len();
    out.resize(base + raw.len(), 0);
    let dst = out.get_mut(base..)?;
    let mut w = 0;
    let mut i = 0;
    while let Some(&b) = raw.get(i) {
        if !SPECIAL[usize::from(b)] {
            *dst.get_mut(w)? = b;
            w += 1;
            i += 1;
            continue;
        }
        let (byte, used) = match raw.get(i..i + 4) {
            Some(b"&lt;") => (b'<', 4),
            Some(b"&gt;") => (b'>', 4),
            _ if b != b'&' => return None,
            _ => {
                let tail = raw.get(i + 1..)?;
                if tail.starts_with(b"amp;") {
                    (b'&', 5)
                } else if tail.starts_with(b"quot;") {
                    (b'"', 6)
                } else if tail.starts_with(b"apos;") {
                    (b'\'', 6)
                } else {
                    let (c, used) = char_ref(tail)?;
                    let mut buf = [0u8; 4];
                    let utf8 = c.encode_utf8(&mut buf).as_bytes();
                    dst.get_mut(w..w + utf8.len())?.copy_from_slice(utf8);
                    w += utf8.len();
                    i += 1 + used;
                    continue;
                }
            }
        };
        *dst.get_mut(w)? = byte;
        w += 1;
        i += used;
    }
    out.truncate(base + w);
    Some(())
}

/// Bytes that end a plain run: `&` (a reference), `<` and carriage return (refused).
const SPECIAL: [bool; 256] = {
    let mut t = [false; 256];
    t[b'&' as usize] = true;
    t[b'<' as usize] = true;
    t[b'\r' as usize] = true;
    t
};

/// A character reference after its `&`: `#233;` or `#xE9;`. Returns the character and the
/// bytes used (through the `;`).
fn char_ref(rest: &[u8]) -> Option<(char, usize)> {
    let semi = rest.iter().take(11).position(|b| *b == b';')?;
    let name = std::str::from_utf8(rest.get(1..semi)?).ok()?;
    if rest.first() != Some(&b'#') {
        return None;
    }
    let n = match name.strip_prefix('x') {
        Some(hex) => u32::from_str_radix(hex, 16).ok()?,
        None => name.parse().ok()?,
    };
    let c = char::from_u32(n).filter(|c| *c != '\0')?;
    Some((c, semi + 1))
}

/// Decodes `raw` into a new string; see [`unescape_into`]. `None` also for invalid UTF-8.
pub fn unescape(raw: &[u8]) -> Option<String> {
    let mut out = Vec::new();
    unescape_into(raw, &mut out)?;
    String::from_utf8(out).ok()
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn entities_and_references() {
        let s = unescape(
            b"&lt;A x=&quot;1&quot;&gt;a &amp; b &apos;c&apos; &#233;&#xE9;&#x1F600;&lt;/A&gt;",
        );
        assert_eq!(s.as_deref(), Some("<A x=\"1\">a & b 'c' éé😀</A>"));
        assert_eq!(unescape(b"").as_deref(), Some(""));
        assert_eq!(unescape("plain é".as_bytes()).as_deref(), Some("plain é"));
        assert_eq!(unescape(b"trailing &amp;").as_deref(), Some("trailing &"));
    }

    #[test]
    fn refuses_what_a_reader_would_read_differently() {
        for bad in [
            &b"a < b"[..],
            b"line\r\nend",
            b"&nbsp;",
            b"&#0;",
            b"&#xD800;",
            b"&#12a;",
            b"&lt",
            b"a & b",
            b"&;",
            b"&#;",
            b"&#x;",
            b"&amp",
            b"\xff\xfe",
        ] {
            assert_eq!(unescape(bad), None, "{:?}", String::from_utf8_lossy(bad));
        }
    }
}
