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
    if memchr::memchr2(b'<', b'\r', raw).is_some() {
        return None;
    }
    // The text never grows (a reference is at least as long as its UTF-8), so it is written
    // into a buffer of the input's size (plus one word of slack), then cut to what was
    // written.
    let base = out.len();
    out.resize(base + raw.len() + 8, 0);
    let dst = out.get_mut(base..)?;
    let mut w = 0;
    let mut i = 0;
    while i < raw.len() {
        if let Some(&[a, b, c, d]) = raw.get(i..i + 4) {
            let quad = u32::from_le_bytes([a, b, c, d]);
            if quad == LT || quad == GT {
                *dst.get_mut(w)? = if quad == LT { b'<' } else { b'>' };
                w += 1;
                i += 4;
                continue;
            }
        }
        if raw.get(i) == Some(&b'&') {
            let (c, used) = reference(raw.get(i + 1..)?)?;
            let mut buf = [0u8; 4];
            let utf8 = c.encode_utf8(&mut buf).as_bytes();
            dst.get_mut(w..w + utf8.len())?.copy_from_slice(utf8);
            w += utf8.len();
            i += 1 + used;
        } else if let Some(chunk) = raw.get(i..i + 8) {
            // Plain text: copy a word, keep the bytes before its first `&`.
            let word = u64::from_le_bytes(<[u8; 8]>::try_from(chunk).ok()?);
            let to: &mut [u8; 8] = dst.get_mut(w..w + 8)?.try_into().ok()?;
            *to = word.to_le_bytes();
            let x = word ^ AMPS;
            let amps = x.wrapping_sub(ONES) & !x & HIGHS;
            // The lowest flagged byte is a real `&` (false flags only follow a real one).
            let k = if amps == 0 {
                8
            } else {
                (amps.trailing_zeros() / 8) as usize
            };
            w += k;
            i += k;
        } else {
            *dst.get_mut(w)? = *raw.get(i)?;
            w += 1;
            i += 1;
        }
    }
    out.truncate(base + w);
    Some(())
}

const LT: u32 = u32::from_le_bytes(*b"&lt;");
const GT: u32 = u32::from_le_bytes(*b"&gt;");
const ONES: u64 = 0x0101_0101_0101_0101;
const HIGHS: u64 = 0x8080_8080_8080_8080;
const AMPS: u64 = ONES * b'&' as u64;

/// A reference after its `&`, other than `&lt;` and `&gt;` in full: the character and the
/// bytes used (through the `;`).
fn reference(rest: &[u8]) -> Option<(char, usize)> {
    let named: [(&[u8], char); 5] = [
        (b"amp;", '&'),
        (b"quot;", '"'),
        (b"apos;", '\''),
        (b"lt;", '<'),
        (b"gt;", '>'),
    ];
    for (name, c) in named {
        if rest.starts_with(name) {
            return Some((c, name.len()));
        }
    }
    char_ref(rest)
}

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
