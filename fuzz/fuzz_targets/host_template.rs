//! The host-error hook's input: `$TEMPLATE -m -p 5` on stdin (base64 of a `<HOST>`
//! document, then flags), and the `<HOST>` and `<HOST_POOL>` documents themselves.
#![no_main]

use libfuzzer_sys::fuzz_target;
use oneha::vmha::host::{HostInfo, parse_pool};
use oneha::vmha::input::{decode_template, encode_template, parse};

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    let _ = parse(text);
    let _ = parse_pool(text);
    if let Ok(host) = HostInfo::parse(text) {
        // The hook's encoding of a document it accepts is accepted the same.
        let again = decode_template(&encode_template(text)).expect("encoded host decodes");
        assert_eq!(again, host);
    }
});
