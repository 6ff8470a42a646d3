//! fence_xvm's wire format: a request datagram (what a fence_virtd or our test daemon
//! reads), a host-list record and a challenge answer (what the client reads back).
#![no_main]

use libfuzzer_sys::fuzz_target;
use oneha::fence::xvm::{
    CHALLENGE_LEN, DOMAIN_MAX, HashType, Request, check_response, decode_host_record,
    encode_host_record, verify_request,
};

const KEY: &[u8] = b"fuzz key for fence_xvm";

fuzz_target!(|data: &[u8]| {
    if let Ok(req) = Request::decode(data) {
        // What decodes must encode back to something that decodes to the same request.
        let again = Request::decode(&req.encode()).expect("an encoded request decodes");
        assert_eq!(again, req);
    }
    let _ = verify_request(data, KEY);
    if let Ok(Some(entry)) = decode_host_record(data) {
        // Names that fit a record come back the same; longer ones (non-UTF-8 bytes decode
        // to 3-byte U+FFFD) are cut at a character boundary, and that cut is stable.
        let again = decode_host_record(&encode_host_record(&entry)).expect("record decodes");
        let again = again.expect("an entry");
        if entry.domain.len() <= DOMAIN_MAX && entry.uuid.len() <= DOMAIN_MAX {
            assert_eq!(again, entry);
        }
        assert!(entry.domain.starts_with(&again.domain) && entry.uuid.starts_with(&again.uuid));
        let third = decode_host_record(&encode_host_record(&again)).expect("record decodes");
        assert_eq!(third, Some(again));
    }
    let challenge = [7u8; CHALLENGE_LEN];
    for auth in [
        HashType::None,
        HashType::Sha1,
        HashType::Sha256,
        HashType::Sha512,
    ] {
        let _ = check_response(auth, KEY, &challenge, data);
    }
});
