//! One page of `one.vmpool.infoextended`: from the reply's bytes to the VMs it holds, using
//! several cores.
//!
//! A page is one XML-RPC string: the VM_POOL document, escaped (`&lt;VM&gt;...`). Decoding
//! and parsing it is all the report's CPU time, so a large page is cut into pieces at VM
//! boundaries (`&lt;/VM&gt;&lt;VM&gt;` in the escaped text), and each piece is decoded and
//! parsed on its own thread: the first as the start of the document, the others behind a
//! `<VM_POOL>` of their own. A cut is trusted only when the piece before it parses cleanly
//! to exactly that point (inside the root, between two VMs): XML is read left to right, so
//! then the piece after it starts where a whole-document parse would be. If any piece fails
//! (a cut inside CDATA or a comment, or a page that is really malformed), the page is decoded
//! and parsed again in one piece, which gives the same VMs or the same error as always.

use std::ops::Range;

use bytes::Bytes;
use dxr::Value;

use super::envelope;
use super::error::OnedError;
use super::parse::parse_pool_part;
use super::pool::{VmRecord, parse_pool};
use super::reply::{decode_reply, kind};
use super::unescape::unescape_into;

/// Pages smaller than this (escaped bytes) are read in one piece.
pub const MIN_SPLIT_BYTES: usize = 256 * 1024;

/// A VM boundary in the escaped text; a cut goes after the `</VM>`.
const BOUNDARY: &[u8] = b"&lt;/VM&gt;&lt;VM&gt;";
const BOUNDARY_CUT: usize = b"&lt;/VM&gt;".len();

/// The root every piece after the first is read inside.
const ROOT: &[u8] = b"<VM_POOL>";

/// A page as received.
#[derive(Debug, Clone)]
pub enum PageBody {
    /// The reply in oned's exact shape: the escaped VM_POOL is `body[text]`, not yet decoded.
    Escaped {
        /// The whole reply.
        body: Bytes,
        /// Where the escaped VM_POOL string is.
        text: Range<usize>,
    },
    /// The VM_POOL document, already decoded (any other reply shape dxr read).
    Decoded(String),
}

/// What one page held.
#[derive(Debug, Default, PartialEq, Eq)]
pub struct PageScan {
    /// VMs in the page.
    pub count: usize,
    /// Their ids, in page order.
    pub ids: Vec<i64>,
    /// The VMs `keep` accepted, in page order.
    pub kept: Vec<VmRecord>,
}

impl PageScan {
    fn append(&mut self, other: PageScan) {
        self.count += other.count;
        self.ids.extend(other.ids);
        self.kept.extend(other.kept);
    }
}

/// Reads a page reply: locates the escaped pool in oned's exact shape (cheap), else decodes
/// the reply in full. Errors: oned's error replies, faults, and a payload that is not a
/// string.
pub fn decode_page(body: Bytes, method: &str) -> Result<PageBody, OnedError> {
    if let Some(text) = envelope::success_string(&body) {
        return Ok(PageBody::Escaped { body, text });
    }
    decoded_string(&body, method).map(PageBody::Decoded)
}

fn decoded_string(body: &[u8], method: &str) -> Result<String, OnedError> {
    match decode_reply(body, method)? {
        Value::String(s) => Ok(s),
        other => Err(OnedError::Protocol {
            endpoint: String::new(),
            method: method.to_string(),
            detail: format!("expected the VM pool as a string, found {}", kind(&other)),
        }),
    }
}

/// Parses a page with up to `threads` threads, keeping the VMs `keep` accepts.
pub fn parse_page(
    page: &PageBody,
    method: &str,
    keep: fn(&VmRecord) -> bool,
    threads: usize,
) -> Result<PageScan, OnedError> {
    let (body, text) = match page {
        PageBody::Decoded(xml) => return parse_whole(xml, keep),
        PageBody::Escaped { body, text } => (body, text.clone()),
    };
    let escaped = body.get(text.clone()).unwrap_or_default();
    let cuts = cuts(escaped, threads);
    if cuts.len() > 1
        && let Some(scan) = parse_pieces(escaped, &cuts, keep)
    {
        return Ok(scan);
    }
    // One piece: decode the string; if the fast decoding refuses it, let dxr read the reply.
    let mut xml = Vec::new();
    let xml = match unescape_into(escaped, &mut xml).map(|()| String::from_utf8(xml)) {
        Some(Ok(xml)) => xml,
        _ => decoded_string(body, method)?,
    };
    parse_whole(&xml, keep)
}

fn parse_whole(xml: &str, keep: fn(&VmRecord) -> bool) -> Result<PageScan, OnedError> {
    let mut scan = PageScan::default();
    scan.count = parse_pool(xml, &mut |vm| collect(&mut scan, vm, keep))?;
    Ok(scan)
}

fn collect(scan: &mut PageScan, vm: VmRecord, keep: fn(&VmRecord) -> bool) {
    scan.ids.push(vm.id);
    if keep(&vm) {
        scan.kept.push(vm);
    }
}

/// Where to cut `escaped` into at most `pieces` pieces of similar size: the ranges, in order,
/// covering it all. One range when it is small or has no VM boundary.
fn cuts(escaped: &[u8], pieces: usize) -> Vec<Range<usize>> {
    let len = escaped.len();
    let pieces = pieces.clamp(1, (len / (MIN_SPLIT_BYTES / 2)).max(1));
    let mut out = Vec::with_capacity(pieces);
    let mut start = 0;
    for i in 1..pieces {
        let target = (len / pieces * i).max(start);
        let Some(found) = escaped
            .get(target..)
            .and_then(|rest| memchr::memmem::find(rest, BOUNDARY))
        else {
            break;
        };
        let cut = target + found + BOUNDARY_CUT;
        out.push(start..cut);
        start = cut;
    }
    out.push(start..len);
    out
}

/// Decodes and parses each piece on its own thread; `None` when any piece fails, for the
/// caller to read the page in one piece.
fn parse_pieces(
    escaped: &[u8],
    cuts: &[Range<usize>],
    keep: fn(&VmRecord) -> bool,
) -> Option<PageScan> {
    let last = cuts.len().saturating_sub(1);
    let piece = |i: usize, r: &Range<usize>| -> Option<PageScan> {
        let raw = escaped.get(r.clone())?;
        // unescape_into needs one word of room past the text.
        let mut xml = Vec::with_capacity(ROOT.len() + raw.len() + 8);
        if i > 0 {
            xml.extend_from_slice(ROOT);
        }
        unescape_into(raw, &mut xml)?;
        let xml = String::from_utf8(xml).ok()?;
        let mut scan = PageScan::default();
        scan.count =
            parse_pool_part(&xml, &mut |vm| collect(&mut scan, vm, keep), i < last).ok()?;
        Some(scan)
    };
    std::thread::scope(|s| {
        let mut handles = Vec::with_capacity(cuts.len());
        for (i, r) in cuts.iter().enumerate().skip(1) {
            let spawned = std::thread::Builder::new()
                .name("oneha-page".into())
                .spawn_scoped(s, move || piece(i, r));
            handles.push(spawned.ok());
        }
        let mut scan = piece(0, cuts.first()?);
        for (i, h) in handles.into_iter().enumerate() {
            // A thread that could not start: do its piece here.
            let result = match h {
                Some(h) => h.join().ok().flatten(),
                None => cuts.get(i + 1).and_then(|r| piece(i + 1, r)),
            };
            match (&mut scan, result) {
                (Some(all), Some(part)) => all.append(part),
                _ => scan = None,
            }
        }
        scan
    })
}

#[cfg(test)]
mod tests;
