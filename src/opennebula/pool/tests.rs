//! VM_POOL parsing: CDATA, empty and unknown elements, nesting, and every malformed case.

use super::*;

fn parse(xml: &str) -> Result<Vec<VmRecord>, OnedError> {
    let mut out = Vec::new();
    let n = parse_pool(xml, &mut |vm| out.push(vm))?;
    assert_eq!(n, out.len());
    Ok(out)
}

fn err(xml: &str) -> String {
    parse(xml).unwrap_err().to_string()
}

const POOL: &str = r#"<?xml version="1.0"?>
<VM_POOL>
  <VM>
    <ID>7</ID><UID>0</UID><GID>0</GID><UNAME><![CDATA[oneadmin]]></UNAME><GNAME>oneadmin</GNAME>
    <NAME>web &amp; db &#x263A;</NAME>
    <LAST_POLL>0</LAST_POLL><STATE>3</STATE><LCM_STATE><![CDATA[1]]></LCM_STATE>
    <STIME>1700000000</STIME><ETIME>0</ETIME><DEPLOY_ID/>
    <TEMPLATE><DISK><ID>99</ID><STATE>8</STATE></DISK><NEW_THING a="1"><X/></NEW_THING></TEMPLATE>
    <USER_TEMPLATE><ID>42</ID><NAME>not me</NAME><HISTORY><HOSTNAME>evil</HOSTNAME></HISTORY></USER_TEMPLATE>
    <UNKNOWN_TOP>whatever<deep><LCM_STATE>3</LCM_STATE></deep></UNKNOWN_TOP>
    <HISTORY_RECORDS>
      <HISTORY><OID>7</OID><SEQ>0</SEQ><HOSTNAME>old</HOSTNAME><HID>1</HID><ACTION>0</ACTION></HISTORY>
      <HISTORY><OID>7</OID><SEQ>1</SEQ><HOSTNAME> <![CDATA[node2]]> </HOSTNAME><HID>2</HID>
        <CID>0</CID><STIME>1700000100</STIME><ETIME>0</ETIME><DS_ID>0</DS_ID>
        <PSTIME>1700000100</PSTIME><PETIME>0</PETIME><RSTIME>0</RSTIME><RETIME>0</RETIME>
        <ESTIME>0</ESTIME><EETIME>0</EETIME><ACTION>30</ACTION><NEWER_FIELD>1</NEWER_FIELD></HISTORY>
    </HISTORY_RECORDS>
  </VM>
  <VM><ID>8</ID><NAME></NAME><UNAME/><STATE>8</STATE><LCM_STATE>0</LCM_STATE>
    <DEPLOY_ID>one-8</DEPLOY_ID><HISTORY_RECORDS/></VM>
  <!-- a comment --><?pi x?>
</VM_POOL>"#;

#[test]
fn parses_what_the_report_needs() {
    let vms = parse(POOL).unwrap();
    assert_eq!(vms.len(), 2);
    let a = &vms[0];
    assert_eq!((a.id, a.state, a.lcm_state), (7, 3, 1));
    assert_eq!(a.name, "web & db \u{263A}");
    assert_eq!(a.owner, "oneadmin");
    assert_eq!(a.deploy_id, "");
    assert_eq!(a.stime, 1_700_000_000);
    let h = a.history.as_ref().unwrap();
    assert_eq!(
        (h.seq, h.hostname.as_str(), h.hid, h.action),
        (1, "node2", 2, 30)
    );
    assert_eq!((h.stime, h.pstime), (1_700_000_100, 1_700_000_100));
    let b = &vms[1];
    assert_eq!(
        (b.id, b.state, b.name.as_str(), b.owner.as_str()),
        (8, 8, "", "")
    );
    assert_eq!(b.deploy_id, "one-8");
    assert!(b.history.is_none());
}

#[test]
fn empty_pool_and_self_closing_root() {
    assert!(parse("<VM_POOL></VM_POOL>").unwrap().is_empty());
    assert!(parse("<VM_POOL/>").unwrap().is_empty());
}

#[test]
fn malformed_documents_name_the_vm() {
    let cut = &POOL[..POOL.find("<DEPLOY_ID>one-8").unwrap()];
    let e = err(cut);
    assert!(e.contains("VM 8") && e.contains("cut short"), "{e}");

    let e = err(&POOL.replace("<LCM_STATE>0</LCM_STATE>", "<LCM_STATE>zero</LCM_STATE>"));
    assert!(
        e.contains("VM 8 element LCM_STATE") && e.contains("`zero`"),
        "{e}"
    );

    let e = err(&POOL.replace("<HID>2</HID>", "<HID>2.5</HID>"));
    assert!(e.contains("VM 7 element HISTORY/HID"), "{e}");

    let e = err(&POOL.replace("<STATE>8</STATE><LCM", "<LCM"));
    assert!(
        e.contains("VM 8") && e.contains("missing element(s) STATE"),
        "{e}"
    );

    let e = err(&POOL.replace("<ID>8</ID>", "<ID>x</ID>"));
    assert!(
        e.contains("the VM after VM 7") && e.contains("element ID"),
        "{e}"
    );

    let e = err(&POOL.replace("</NAME>\n    <LAST_POLL>", "</NAMEX>\n    <LAST_POLL>"));
    assert!(e.contains("VM 7") && e.contains("malformed XML"), "{e}");

    let e = err(&POOL.replace("&amp;", "&nbsp;"));
    assert!(e.contains("unknown entity"), "{e}");

    assert!(err("<HOST_POOL/>").contains("expected <VM_POOL>"));
    assert!(err("").contains("no <VM_POOL>"));
    assert!(err("not xml at all").contains("no <VM_POOL>"));
    assert!(err("<VM_POOL/><VM_POOL/>").contains("expected <VM_POOL>"));
    let e = err("<VM_POOL><VM><ID>1</ID><STATE>3</STATE><LCM_STATE>3</LCM_STATE></VM>");
    assert!(e.contains("cut short"), "{e}");
}

#[test]
fn huge_numbers_are_errors_not_panics() {
    let e = err(&POOL.replace("<ID>7</ID>", "<ID>99999999999999999999999</ID>"));
    assert!(e.contains("element ID"), "{e}");
}

/// Found by fuzzing: an endpoint answering every offset with the same full page was read
/// forever. Pages must bring new VMs beyond the previous page's last, in oned's order.
#[test]
fn pages_must_advance_in_either_order() {
    let seen = |ids: &[i64]| ids.iter().copied().collect::<HashSet<i64>>();
    let mut p = Progress::default();
    p.note(&[30, 29, 28]);
    // The next page of a descending pool, and one that overlaps after VMs were created.
    assert!(p.check(&[27, 26, 25], &seen(&[30, 29, 28]), 3).is_ok());
    assert!(p.check(&[28, 27, 26], &seen(&[30, 29, 28]), 3).is_ok());
    let e = p.check(&[30, 29, 28], &seen(&[30, 29, 28]), 3).unwrap_err();
    assert!(
        e.contains("offset 3 does not advance") && e.contains("repeats only"),
        "{e}"
    );
    // New ids, but going back up: not oned's paging either.
    assert!(p.check(&[40, 41, 42], &seen(&[30, 29, 28]), 3).is_err());
    let mut up = Progress::default();
    up.note(&[1, 2, 3]);
    assert!(up.check(&[4, 5, 6], &seen(&[1, 2, 3]), 3).is_ok());
    assert!(up.check(&[1, 2, 3], &seen(&[1, 2, 3]), 3).is_err());
    // One VM per page: the order is not known, new ids are enough.
    let mut one = Progress::default();
    one.note(&[7]);
    assert!(one.check(&[6], &seen(&[7]), 1).is_ok());
    assert!(one.check(&[7], &seen(&[7]), 1).is_err());
}
