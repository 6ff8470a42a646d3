//! VM bodies as oned writes them: the extended body (`vm.xsd`, `one.vmpool.infoextended`) and
//! the short one (`vm_pool.xsd`, `one.vmpool.info`), for generated VMs and fixtures.

use std::fmt::Write as _;

use oneha::opennebula::pool::{History, VmRecord, parse_pool};

/// One VM of the fake's pool.
#[derive(Debug, Clone)]
pub struct FakeVm {
    /// What the pool says about it (id, state, history...).
    pub rec: VmRecord,
    /// The full extended body as loaded from a fixture; `None`: rendered from `rec`.
    pub raw: Option<String>,
}

/// XML text escaping for element content. Copies the runs between special characters whole:
/// the fake escapes whole pages of VM_POOL with it, and must stay far cheaper than the
/// report it serves.
pub fn escape_into(out: &mut String, s: &str) {
    let mut start = 0;
    for (i, b) in s.bytes().enumerate() {
        let with = match b {
            b'&' => "&amp;",
            b'<' => "&lt;",
            b'>' => "&gt;",
            _ => continue,
        };
        out.push_str(s.get(start..i).unwrap_or_default());
        out.push_str(with);
        start = i + 1;
    }
    out.push_str(s.get(start..).unwrap_or_default());
}

/// What each byte becomes when escaped: up to 5 bytes (padded to 8), and how many.
const ESCAPED: [([u8; 8], usize); 256] = {
    let mut t = [([0u8; 8], 1usize); 256];
    let mut i = 0;
    while i < 256 {
        t[i].0[0] = i as u8;
        i += 1;
    }
    t[b'<' as usize] = (*b"&lt;\0\0\0\0", 4);
    t[b'>' as usize] = (*b"&gt;\0\0\0\0", 4);
    t[b'&' as usize] = (*b"&amp;\0\0\0", 5);
    t
};

/// [`escape_into`] for whole pages, into bytes, without a branch per byte (in markup a special
/// byte comes every few bytes, and mispredicted branches cost most): each byte writes its
/// padded replacement through a small buffer. The fake must stay far cheaper than the report
/// it serves.
pub fn escape_bytes_into(out: &mut Vec<u8>, s: &str) {
    const BLOCK: usize = 1024;
    let mut buf = [0u8; BLOCK * 5 + 8];
    for block in s.as_bytes().chunks(BLOCK) {
        let mut w = 0;
        for &c in block {
            let (with, n) = &ESCAPED[usize::from(c)];
            if let Some(to) = buf.get_mut(w..w + 8) {
                to.copy_from_slice(with);
            }
            w += n;
        }
        out.extend_from_slice(buf.get(..w).unwrap_or_default());
    }
}

/// A generated VM: mostly RUNNING, with POWEROFF, PENDING, STOPPED, UNDEPLOYED and DONE ones,
/// deterministic in `id`.
pub fn generated(id: i64, now: i64) -> VmRecord {
    let (state, lcm) = match id % 20 {
        0..=11 => (3, 3),
        12 | 13 => (8, 0),
        14 => (1, 0),
        15 => (4, 0),
        16 => (9, 0),
        17 => (2, 0),
        18 => (5, 0),
        _ => (6, 0),
    };
    with_state(id, state, lcm, 0, now)
}

/// A VM in the given state whose last history record says `action` on host `node{N}`.
pub fn with_state(id: i64, state: i64, lcm: i64, action: i64, now: i64) -> VmRecord {
    let start = now - 3600 - id % 86_400;
    let deployed = !matches!(state, 1 | 2 | 10 | 11);
    VmRecord {
        id,
        name: format!("vm-{id}"),
        owner: if id % 3 == 0 { "oneadmin" } else { "alice" }.to_string(),
        state,
        lcm_state: lcm,
        deploy_id: if deployed {
            format!("one-{id}")
        } else {
            String::new()
        },
        stime: start - 60,
        history: deployed.then(|| History {
            seq: 0,
            hostname: format!("node{}", id % 8 + 1),
            hid: id % 8,
            ds_id: 0,
            action,
            stime: start,
            etime: 0,
            pstime: start,
            petime: start + 20,
            rstime: start + 20,
            retime: 0,
            estime: 0,
            eetime: 0,
        }),
    }
}

/// Appends `<name>value</name>`.
pub(crate) fn tag(out: &mut String, name: &str, value: impl std::fmt::Display) {
    let _ = write!(out, "<{name}>{value}</{name}>");
}

/// Appends `<name>value</name>` with `value` escaped.
pub(crate) fn tag_text(out: &mut String, name: &str, value: &str) {
    let _ = write!(out, "<{name}>");
    escape_into(out, value);
    let _ = write!(out, "</{name}>");
}

fn cdata(out: &mut String, name: &str, value: &str) {
    let _ = write!(out, "<{name}><![CDATA[{value}]]></{name}>");
}

fn uid(r: &VmRecord) -> i64 {
    i64::from(r.owner != "oneadmin")
}

/// ID, UID, GID, UNAME, GNAME, NAME: the first elements of both bodies.
fn owner_and_name(out: &mut String, r: &VmRecord) {
    tag(out, "ID", r.id);
    tag(out, "UID", uid(r));
    tag(out, "GID", 0);
    tag_text(out, "UNAME", &r.owner);
    tag_text(out, "GNAME", "oneadmin");
    tag_text(out, "NAME", &r.name);
}

/// Appends the extended body of `r` (valid against `vm.xsd`), about 3 KB per VM like a small
/// real VM: template with context, a disk and a NIC, monitoring, one history record.
pub fn extended_into(out: &mut String, r: &VmRecord) {
    let id = r.id;
    out.push_str("<VM>");
    owner_and_name(out, r);
    out.push_str(
        "<PERMISSIONS><OWNER_U>1</OWNER_U><OWNER_M>1</OWNER_M><OWNER_A>0</OWNER_A>\
         <GROUP_U>0</GROUP_U><GROUP_M>0</GROUP_M><GROUP_A>0</GROUP_A><OTHER_U>0</OTHER_U>\
         <OTHER_M>0</OTHER_M><OTHER_A>0</OTHER_A></PERMISSIONS>",
    );
    let h = r.history.as_ref();
    tag(out, "LAST_POLL", h.map_or(0, |h| h.stime + 30));
    tag(out, "STATE", r.state);
    tag(out, "LCM_STATE", r.lcm_state);
    tag(out, "PREV_STATE", r.state);
    tag(out, "PREV_LCM_STATE", r.lcm_state);
    tag(out, "RESCHED", 0);
    tag(out, "STIME", r.stime);
    tag(out, "ETIME", 0);
    tag_text(out, "DEPLOY_ID", &r.deploy_id);
    let _ = write!(
        out,
        "<MONITORING><CPU>{}.5</CPU><DISKRDBYTES>{}</DISKRDBYTES><DISKRDIOPS>{}</DISKRDIOPS>\
         <DISKWRBYTES>{}</DISKWRBYTES><DISKWRIOPS>{}</DISKWRIOPS><ID>{id}</ID>\
         <MEMORY>{}</MEMORY><NETRX>{}</NETRX><NETTX>{}</NETTX><TIMESTAMP>{}</TIMESTAMP>\
         </MONITORING>",
        id % 4,
        id * 4096 + 1_000_000,
        id * 7 + 1000,
        id * 2048 + 500_000,
        id * 3 + 400,
        524_288 + id % 1024,
        id * 1500,
        id * 1300,
        h.map_or(0, |h| h.stime + 30)
    );
    out.push_str("<SCHED_ACTIONS/><TEMPLATE>");
    cdata(out, "AUTOMATIC_DS_REQUIREMENTS", "(\"CLUSTERS/ID\" @> 0)");
    cdata(out, "AUTOMATIC_NIC_REQUIREMENTS", "(\"CLUSTERS/ID\" @> 0)");
    cdata(
        out,
        "AUTOMATIC_REQUIREMENTS",
        "(CLUSTER_ID = 0) & !(PUBLIC_CLOUD = YES) & !(PIN_POLICY = PINNED)",
    );
    let _ = write!(
        out,
        "<CONTEXT><DISK_ID><![CDATA[1]]></DISK_ID><ETH0_IP><![CDATA[192.0.2.{ip}]]></ETH0_IP>\
         <ETH0_MAC><![CDATA[02:00:c0:00:02:{ip:02x}]]></ETH0_MAC><NETWORK><![CDATA[YES]]></NETWORK>\
         <SSH_PUBLIC_KEY><![CDATA[ssh-ed25519 AAAAC3NzaC1lZDI1NTE5AAAAIOneHaTestKeyOnly{id} ops@example]]></SSH_PUBLIC_KEY>\
         <TARGET><![CDATA[hda]]></TARGET></CONTEXT>",
        ip = id % 250 + 2
    );
    cdata(out, "CPU", "1");
    let _ = write!(
        out,
        "<DISK><ALLOW_ORPHANS><![CDATA[YES]]></ALLOW_ORPHANS><CLONE><![CDATA[YES]]></CLONE>\
         <CLONE_TARGET><![CDATA[SYSTEM]]></CLONE_TARGET><CLUSTER_ID><![CDATA[0]]></CLUSTER_ID>\
         <DATASTORE><![CDATA[default]]></DATASTORE><DATASTORE_ID><![CDATA[1]]></DATASTORE_ID>\
         <DEV_PREFIX><![CDATA[vd]]></DEV_PREFIX><DISK_ID><![CDATA[0]]></DISK_ID>\
         <DISK_SNAPSHOT_TOTAL_SIZE><![CDATA[0]]></DISK_SNAPSHOT_TOTAL_SIZE>\
         <DISK_TYPE><![CDATA[FILE]]></DISK_TYPE><DRIVER><![CDATA[qcow2]]></DRIVER>\
         <FORMAT><![CDATA[qcow2]]></FORMAT><IMAGE><![CDATA[debian12]]></IMAGE>\
         <IMAGE_ID><![CDATA[0]]></IMAGE_ID><IMAGE_STATE><![CDATA[2]]></IMAGE_STATE>\
         <LN_TARGET><![CDATA[NONE]]></LN_TARGET><ORIGINAL_SIZE><![CDATA[2252]]></ORIGINAL_SIZE>\
         <READONLY><![CDATA[NO]]></READONLY><SAVE><![CDATA[NO]]></SAVE>\
         <SIZE><![CDATA[2252]]></SIZE><SOURCE><![CDATA[/var/lib/one//datastores/1/5b1c{id:x}]]></SOURCE>\
         <TARGET><![CDATA[vda]]></TARGET><TM_MAD><![CDATA[ssh]]></TM_MAD>\
         <TYPE><![CDATA[FILE]]></TYPE></DISK>"
    );
    out.push_str(
        "<GRAPHICS><LISTEN><![CDATA[0.0.0.0]]></LISTEN><TYPE><![CDATA[VNC]]></TYPE></GRAPHICS>",
    );
    cdata(out, "MEMORY", "512");
    let _ = write!(
        out,
        "<NIC><AR_ID><![CDATA[0]]></AR_ID><BRIDGE><![CDATA[br0]]></BRIDGE>\
         <BRIDGE_TYPE><![CDATA[linux]]></BRIDGE_TYPE><CLUSTER_ID><![CDATA[0]]></CLUSTER_ID>\
         <IP><![CDATA[192.0.2.{ip}]]></IP><MAC><![CDATA[02:00:c0:00:02:{ip:02x}]]></MAC>\
         <MODEL><![CDATA[virtio]]></MODEL><NAME><![CDATA[NIC0]]></NAME>\
         <NETWORK><![CDATA[private]]></NETWORK><NETWORK_ID><![CDATA[0]]></NETWORK_ID>\
         <NIC_ID><![CDATA[0]]></NIC_ID><SECURITY_GROUPS><![CDATA[0]]></SECURITY_GROUPS>\
         <TARGET><![CDATA[one-{id}-0]]></TARGET><VN_MAD><![CDATA[bridge]]></VN_MAD></NIC>",
        ip = id % 250 + 2
    );
    out.push_str("<OS><ARCH><![CDATA[x86_64]]></ARCH><UUID><![CDATA[6f0a5c2e-0000-4000-8000-000000000000]]></UUID></OS>");
    cdata(out, "TEMPLATE_ID", "0");
    cdata(out, "TM_MAD_SYSTEM", "ssh");
    let _ = write!(out, "<VMID><![CDATA[{id}]]></VMID></TEMPLATE>");
    out.push_str("<USER_TEMPLATE><LOGO><![CDATA[images/logos/debian.png]]></LOGO></USER_TEMPLATE>");
    match h {
        None => out.push_str("<HISTORY_RECORDS/>"),
        Some(h) => {
            out.push_str("<HISTORY_RECORDS>");
            history_into(out, id, h, &Placement::default(), false);
            out.push_str("</HISTORY_RECORDS>");
        }
    }
    out.push_str(
        "<BACKUPS><BACKUP_CONFIG><BACKUP_VOLATILE><![CDATA[NO]]></BACKUP_VOLATILE>\
         <FS_FREEZE><![CDATA[NONE]]></FS_FREEZE><KEEP_LAST><![CDATA[]]></KEEP_LAST>\
         <MODE><![CDATA[]]></MODE></BACKUP_CONFIG><BACKUP_IDS/></BACKUPS>",
    );
    out.push_str("</VM>");
}

/// Appends the short body of `r` (valid against `vm_pool.xsd`), as `one.vmpool.info` sends.
pub fn short_into(out: &mut String, r: &VmRecord) {
    out.push_str("<VM>");
    owner_and_name(out, r);
    tag(out, "LAST_POLL", 0);
    tag(out, "STATE", r.state);
    tag(out, "LCM_STATE", r.lcm_state);
    tag(out, "RESCHED", 0);
    tag(out, "STIME", r.stime);
    tag(out, "ETIME", 0);
    tag_text(out, "DEPLOY_ID", &r.deploy_id);
    out.push_str("<TEMPLATE><CPU><![CDATA[1]]></CPU><MEMORY><![CDATA[512]]></MEMORY></TEMPLATE>");
    out.push_str("<MONITORING/><USER_TEMPLATE/>");
    match &r.history {
        None => out.push_str("<HISTORY_RECORDS/>"),
        Some(h) => {
            out.push_str("<HISTORY_RECORDS>");
            history_into(out, r.id, h, &Placement::default(), true);
            out.push_str("</HISTORY_RECORDS>");
        }
    }
    out.push_str("</VM>");
}

/// Where a history record ran: its cluster and drivers.
#[derive(Debug, Clone, Copy)]
pub struct Placement<'a> {
    /// CID.
    pub cid: i64,
    /// VM_MAD.
    pub vm_mad: &'a str,
    /// TM_MAD.
    pub tm_mad: &'a str,
}

impl Default for Placement<'_> {
    fn default() -> Self {
        Placement {
            cid: 0,
            vm_mad: "kvm",
            tm_mad: "ssh",
        }
    }
}

/// Appends one `<HISTORY>` record of VM `oid`: the full one (vm.xsd) or, if `short`, the
/// short pool's (vm_pool.xsd).
pub fn history_into(out: &mut String, oid: i64, h: &History, at: &Placement<'_>, short: bool) {
    out.push_str("<HISTORY>");
    tag(out, "OID", oid);
    tag(out, "SEQ", h.seq);
    tag_text(out, "HOSTNAME", &h.hostname);
    tag(out, "HID", h.hid);
    tag(out, "CID", at.cid);
    if short {
        tag(out, "DS_ID", h.ds_id);
        tag_text(out, "VM_MAD", at.vm_mad);
        tag_text(out, "TM_MAD", at.tm_mad);
        tag(out, "ACTION", h.action);
        out.push_str("</HISTORY>");
        return;
    }
    tag(out, "STIME", h.stime);
    tag(out, "ETIME", h.etime);
    tag_text(out, "VM_MAD", at.vm_mad);
    tag_text(out, "TM_MAD", at.tm_mad);
    tag(out, "DS_ID", h.ds_id);
    tag(out, "PLAN_ID", -1);
    tag(out, "ACTION_ID", -1);
    tag(out, "PSTIME", h.pstime);
    tag(out, "PETIME", h.petime);
    tag(out, "RSTIME", h.rstime);
    tag(out, "RETIME", h.retime);
    tag(out, "ESTIME", h.estime);
    tag(out, "EETIME", h.eetime);
    tag(out, "ACTION", h.action);
    out.push_str("<UID>-1</UID><GID>-1</GID><REQUEST_ID>-1</REQUEST_ID></HISTORY>");
}

/// Splits a VM_POOL fixture into its VMs, keeping each one's text as written.
pub fn load_fixture(xml: &str) -> Result<Vec<FakeVm>, String> {
    use quick_xml::Reader;
    use quick_xml::events::Event;
    let mut reader = Reader::from_str(xml);
    let mut depth = 0usize;
    let mut start = None;
    let mut out = Vec::new();
    loop {
        let before = reader.buffer_position() as usize;
        let ev = reader
            .read_event()
            .map_err(|e| format!("fixture is not well-formed XML near byte {before}: {e}"))?;
        let after = reader.buffer_position() as usize;
        match ev {
            Event::Start(e) => {
                if depth == 1 && e.name().as_ref() == "VM" {
                    start = Some(before);
                }
                depth += 1;
            }
            Event::Empty(e) if depth == 1 && e.name().as_ref() == "VM" => {
                return Err(format!(
                    "empty <VM/> at byte {before}: a VM needs ID and STATE"
                ));
            }
            Event::End(_) => {
                depth = depth.saturating_sub(1);
                if depth == 1
                    && let Some(s) = start.take()
                {
                    let text = xml.get(s..after).ok_or("fixture offsets out of range")?;
                    let mut recs = Vec::new();
                    parse_pool(&format!("<VM_POOL>{text}</VM_POOL>"), &mut |r| recs.push(r))
                        .map_err(|e| e.to_string())?;
                    let rec = recs.pop().ok_or("a VM element yielded no VM")?;
                    out.push(FakeVm {
                        rec,
                        raw: Some(text.to_string()),
                    });
                }
            }
            Event::Eof => break,
            _ => {}
        }
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn both_escapes_agree() {
        let mut pool = String::from("<VM_POOL>");
        for id in 0..40 {
            extended_into(&mut pool, &generated(id, 1_700_000_000));
        }
        pool.push_str("</VM_POOL>é & <&&> 😀 tail");
        for text in [
            pool.as_str(),
            "",
            "a",
            "<",
            "&&&&&&&&&&&&",
            "1234567<",
            "😀😀<😀>&",
        ] {
            let mut chars = String::new();
            escape_into(&mut chars, text);
            let mut bytes = b"head".to_vec();
            escape_bytes_into(&mut bytes, text);
            assert_eq!(&bytes[4..], chars.as_bytes(), "{text}");
            assert!(!chars.contains('<') && !chars.contains('>'));
        }
        let many = "&".repeat(5000);
        let mut bytes = Vec::new();
        escape_bytes_into(&mut bytes, &many);
        assert_eq!(bytes, "&amp;".repeat(5000).as_bytes());
    }
}
