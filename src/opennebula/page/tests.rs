//! Reading a page in pieces gives exactly what reading it whole gives: the same VMs in the
//! same order, or the same error; false VM boundaries (in CDATA, comments) are not trusted.

use super::*;
use crate::opennebula::report::is_stuck;
use oneha_testkit::vm_xml;

const NOW: i64 = 1_700_000_000;

/// A reply as oned (xmlrpc-c) writes it, carrying `pool` as its string.
fn reply(pool: &str) -> Bytes {
    let mut s = String::from(
        "<?xml version=\"1.0\" encoding=\"UTF-8\"?>\r\n<methodResponse>\r\n<params>\r\n\
         <param><value><array><data>\r\n<value><boolean>1</boolean></value>\r\n<value><string>",
    );
    vm_xml::escape_into(&mut s, pool);
    s.push_str(
        "</string></value>\r\n<value><i4>0</i4></value>\r\n</data></array></value></param>\r\n\
         </params>\r\n</methodResponse>\r\n",
    );
    Bytes::from(s)
}

/// `n` VMs, every 7th stuck in PROLOG; `extra` goes into each VM's USER_TEMPLATE.
fn pool(n: i64, extra: &str) -> String {
    let mut xml = String::from("<VM_POOL>");
    for id in 0..n {
        let rec = if id % 7 == 3 {
            vm_xml::with_state(id, 3, 1, 0, NOW)
        } else {
            vm_xml::generated(id, NOW)
        };
        let mut vm = String::new();
        vm_xml::extended_into(&mut vm, &rec);
        xml.push_str(&vm.replace("<USER_TEMPLATE>", &format!("<USER_TEMPLATE>{extra}")));
    }
    xml.push_str("</VM_POOL>");
    xml
}

fn whole(xml: &str) -> Result<PageScan, OnedError> {
    parse_whole(xml, is_stuck)
}

fn read(body: Bytes, threads: usize) -> Result<PageScan, String> {
    let page = decode_page(body, "one.vmpool.infoextended").map_err(|e| e.to_string())?;
    parse_page(&page, "one.vmpool.infoextended", is_stuck, threads).map_err(|e| e.to_string())
}

fn escaped(body: &Bytes) -> &[u8] {
    let text = envelope::success_string(body).unwrap();
    &body[text]
}

#[test]
fn pieces_give_what_one_piece_gives() {
    let xml = pool(300, "");
    let body = reply(&xml);
    assert!(escaped(&body).len() > 4 * MIN_SPLIT_BYTES);
    let expect = whole(&xml).unwrap();
    assert_eq!(expect.count, 300);
    assert_eq!(expect.kept.len(), 43);
    for threads in [1, 2, 3, 4, 9] {
        let cuts = cuts(escaped(&body), threads);
        assert_eq!(cuts.len(), threads, "{threads}");
        assert!(parse_pieces(escaped(&body), &cuts, is_stuck).is_some() || threads == 1);
        assert_eq!(read(body.clone(), threads).unwrap(), expect, "{threads}");
    }
}

#[test]
fn small_pages_are_read_whole() {
    let body = reply(&pool(10, ""));
    assert_eq!(cuts(escaped(&body), 4).len(), 1);
    assert_eq!(read(body, 4).unwrap().count, 10);
}

#[test]
fn false_boundaries_are_not_trusted() {
    // Every VM carries the boundary text where it is not one: in CDATA, in a comment.
    for (extra, false_one) in [
        (
            "<NOTE><![CDATA[a</VM><VM>b]]></NOTE>",
            "&lt;![CDATA[a&lt;/VM&gt;&lt;VM&gt;",
        ),
        (
            "<!-- </VM><VM> --><NOTE>x</NOTE>",
            "&lt;!-- &lt;/VM&gt;&lt;VM&gt;",
        ),
    ] {
        let xml = pool(200, extra);
        let body = reply(&xml);
        let e = escaped(&body);
        let text = std::str::from_utf8(e).unwrap();
        let at = text[text.len() / 2..].find(false_one).unwrap() + text.len() / 2;
        let cut = at + false_one.len() - "&lt;VM&gt;".len();
        assert_eq!(&text[cut..cut + 10], "&lt;VM&gt;");
        assert_eq!(
            parse_pieces(e, &[0..cut, cut..e.len()], is_stuck),
            None,
            "{extra}"
        );
        // Cuts chosen by the reader are trusted or not: the result is the same.
        for threads in [1, 2, 3, 4] {
            assert_eq!(
                read(body.clone(), threads).unwrap(),
                whole(&xml).unwrap(),
                "{extra}"
            );
        }
    }
}

#[test]
fn errors_are_those_of_the_whole_page() {
    let xml = pool(200, "");
    let late = xml.rfind("<LCM_STATE>").unwrap();
    let mut bad_type = xml.clone();
    bad_type.insert(late + "<LCM_STATE>".len(), 'x');
    let cut = xml[..xml.len() - 5000].to_string();
    let mismatched = xml.replacen("</DISK>", "</DISC>", 150);
    for bad in [bad_type, cut, mismatched] {
        let expect = whole(&bad).unwrap_err().to_string();
        for threads in [1, 2, 4] {
            assert_eq!(read(reply(&bad), threads).unwrap_err(), expect, "{threads}");
        }
    }
}

#[test]
fn unusual_replies_are_read_by_dxr() {
    // A carriage return inside the string: XML normalises it, so the fast path declines.
    let xml = pool(60, "<NOTE>a\r\nb</NOTE>");
    let body = reply(&xml);
    assert!(matches!(
        decode_page(body.clone(), "m").unwrap(),
        PageBody::Escaped { .. }
    ));
    let normalised = xml.replace("\r\n", "\n");
    assert_eq!(read(body, 2).unwrap(), whole(&normalised).unwrap());
}

#[test]
fn error_replies_and_wrong_types_are_errors() {
    let err = Bytes::from_static(
        b"<?xml version=\"1.0\"?><methodResponse><params><param><value><array><data>\
          <value><boolean>0</boolean></value><value><string>[one.vmpool.infoextended] \
          User couldn't be authenticated, aborting call.</string></value>\
          <value><i4>256</i4></value><value><i4>-1</i4></value><value><i8>0</i8></value>\
          </data></array></value></param></params></methodResponse>",
    );
    let e = decode_page(err, "one.vmpool.infoextended").unwrap_err();
    assert!(e.to_string().contains("AUTHENTICATION"), "{e}");
    let i4 = Bytes::from_static(
        b"<?xml version=\"1.0\"?><methodResponse><params><param><value><array><data>\
          <value><boolean>1</boolean></value><value><i4>42</i4></value>\
          <value><i4>0</i4></value></data></array></value></param></params></methodResponse>",
    );
    let e = decode_page(i4, "one.vmpool.infoextended").unwrap_err();
    assert!(
        e.to_string()
            .contains("expected the VM pool as a string, found an i4"),
        "{e}"
    );
}
