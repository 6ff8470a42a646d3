//! oned's XML-RPC replies and the VM pool pages of `one.vmpool.infoextended`: the reply
//! decoder, the page reader (fast path for oned's exact shape, dxr otherwise) and the pool
//! parser, fed the same bytes as a reply and as a pool document.
#![no_main]

use bytes::Bytes;
use libfuzzer_sys::fuzz_target;
use oneha::opennebula::page::{decode_page, parse_page};
use oneha::opennebula::pool::{VmRecord, parse_pool};
use oneha::opennebula::reply::decode_reply;

const METHOD: &str = "one.vmpool.infoextended";

fn keep(_: &VmRecord) -> bool {
    true
}

fuzz_target!(|data: &[u8]| {
    let _ = decode_reply(data, METHOD);
    if let Ok(page) = decode_page(Bytes::copy_from_slice(data), METHOD) {
        let one = parse_page(&page, METHOD, keep, 1);
        let two = parse_page(&page, METHOD, keep, 2);
        // Splitting a page across threads never changes what it holds.
        if let (Ok(one), Ok(two)) = (&one, &two) {
            assert_eq!(one, two);
        }
    }
    if let Ok(text) = std::str::from_utf8(data) {
        let mut n = 0usize;
        if let Ok(count) = parse_pool(text, &mut |_| n += 1) {
            assert_eq!(count, n);
        }
    }
});
