//! The world's objects as oned writes them: `<HOST>` (host.xsd, Host::to_xml), `<DATASTORE>`
//! (datastore.xsd), `<VM>` (vm.xsd / vm_pool.xsd: LOCK, RESCHED, USER_TEMPLATE and the
//! history records of the world's VMs), and `one.system.config`'s
//! `<OPENNEBULA_CONFIGURATION>`.

use std::collections::BTreeMap;
use std::fmt::Write as _;

use super::vm_xml::{self, Placement, tag, tag_text};
use super::world::{Datastore, History, Host, Vm, World};
use oneha::opennebula::pool::{History as PoolHistory, VmRecord};

/// `<TEMPLATE>` as Template::to_xml writes it: attributes sorted, values in CDATA.
fn template(out: &mut String, root: &str, attrs: &BTreeMap<String, String>) {
    let _ = write!(out, "<{root}>");
    for (k, v) in attrs {
        let _ = write!(
            out,
            "<{k}><![CDATA[{}]]></{k}>",
            v.replace("]]>", "]]]]><![CDATA[>")
        );
    }
    let _ = write!(out, "</{root}>");
}

fn ids(out: &mut String, root: &str, list: &[i64]) {
    let _ = write!(out, "<{root}>");
    for id in list {
        tag(out, "ID", id);
    }
    let _ = write!(out, "</{root}>");
}

/// The `<HOST>` element of `h` as `one.host.info` returns it.
pub fn host_into(out: &mut String, w: &World, h: &Host) {
    let vms = w.vms_on(h.id);
    let monitored = h.last_monitored > 0 && h.state != super::world::host_state::OFFLINE;
    let (cpu, mem) = if monitored { (400, 8_388_608) } else { (0, 0) };
    let used_cpu = 100 * vms.len() as i64;
    let used_mem = 524_288 * vms.len() as i64;
    out.push_str("<HOST>");
    tag(out, "ID", h.id);
    tag_text(out, "NAME", &h.name);
    tag(out, "STATE", h.state);
    tag(out, "PREV_STATE", h.prev_state.unwrap_or(h.state));
    tag_text(out, "IM_MAD", &h.im_mad);
    tag_text(out, "VM_MAD", &h.vm_mad);
    tag(out, "CLUSTER_ID", h.cluster_id);
    tag_text(out, "CLUSTER", &h.cluster);
    out.push_str("<HOST_SHARE>");
    tag(out, "MEM_USAGE", used_mem);
    tag(out, "CPU_USAGE", used_cpu);
    tag(out, "TOTAL_MEM", mem);
    tag(out, "TOTAL_CPU", cpu);
    tag(out, "MAX_MEM", mem);
    tag(out, "MAX_CPU", cpu);
    tag(out, "RUNNING_VMS", vms.len());
    tag(out, "VMS_THREAD", 1);
    let disk = if monitored { 102_400 } else { 0 };
    let _ = write!(
        out,
        "<DATASTORES><DISK_USAGE>0</DISK_USAGE><FREE_DISK>{disk}</FREE_DISK>\
         <MAX_DISK>{disk}</MAX_DISK><USED_DISK>0</USED_DISK></DATASTORES>\
         <PCI_DEVICES></PCI_DEVICES><NUMA_NODES></NUMA_NODES></HOST_SHARE>"
    );
    ids(out, "VMS", &vms);
    let mut attrs: BTreeMap<String, String> = BTreeMap::new();
    if monitored {
        for (k, v) in [
            ("ARCH", "x86_64"),
            ("CPUSPEED", "2400"),
            ("HYPERVISOR", "kvm"),
            ("KVM_MACHINES", "pc q35"),
        ] {
            attrs.insert(k.into(), v.into());
        }
        attrs.insert("HOSTNAME".into(), h.name.clone());
    }
    attrs.insert("IM_MAD".into(), h.im_mad.clone());
    attrs.insert("VM_MAD".into(), h.vm_mad.clone());
    attrs.insert("RESERVED_CPU".into(), String::new());
    attrs.insert("RESERVED_MEM".into(), String::new());
    if let Some(e) = &h.error {
        attrs.insert("ERROR".into(), e.clone());
    }
    attrs.extend(h.template.iter().map(|(k, v)| (k.clone(), v.clone())));
    template(out, "TEMPLATE", &attrs);
    if h.last_monitored > 0 {
        let _ = write!(
            out,
            "<MONITORING><TIMESTAMP>{}</TIMESTAMP><ID>{}</ID><CAPACITY>\
             <FREE_CPU>{}</FREE_CPU><FREE_MEMORY>{}</FREE_MEMORY><USED_CPU>{}</USED_CPU>\
             <USED_MEMORY>{}</USED_MEMORY></CAPACITY><SYSTEM><NETRX>0</NETRX><NETTX>0</NETTX>\
             </SYSTEM></MONITORING>",
            h.last_monitored,
            h.id,
            (cpu - used_cpu).max(0),
            (mem - used_mem).max(0),
            used_cpu,
            used_mem
        );
    } else {
        out.push_str("<MONITORING></MONITORING>");
    }
    out.push_str("</HOST>");
}

/// `<HOST_POOL>` of every host, by id.
pub fn host_pool(w: &World) -> String {
    let mut out = String::from("<HOST_POOL>");
    for h in &w.hosts {
        host_into(&mut out, w, h);
    }
    out.push_str("</HOST_POOL>");
    out
}

const PERMISSIONS: &str = "<PERMISSIONS><OWNER_U>1</OWNER_U><OWNER_M>1</OWNER_M>\
<OWNER_A>0</OWNER_A><GROUP_U>1</GROUP_U><GROUP_M>0</GROUP_M><GROUP_A>0</GROUP_A>\
<OTHER_U>0</OTHER_U><OTHER_M>0</OTHER_M><OTHER_A>0</OTHER_A></PERMISSIONS>";

/// The `<DATASTORE>` element of `d`.
pub fn datastore_into(out: &mut String, d: &Datastore) {
    out.push_str("<DATASTORE>");
    tag(out, "ID", d.id);
    out.push_str("<UID>0</UID><GID>0</GID><UNAME>oneadmin</UNAME><GNAME>oneadmin</GNAME>");
    tag_text(out, "NAME", &d.name);
    out.push_str(PERMISSIONS);
    let ds_mad = if d.ds_type == 1 { "-" } else { "fs" };
    let _ = write!(
        out,
        "<DS_MAD><![CDATA[{ds_mad}]]></DS_MAD><TM_MAD><![CDATA[{}]]></TM_MAD>\
         <BASE_PATH><![CDATA[/var/lib/one//datastores/{}]]></BASE_PATH>",
        d.tm_mad, d.id
    );
    tag(out, "TYPE", d.ds_type);
    tag(out, "DISK_TYPE", 0);
    tag(out, "STATE", 0);
    ids(out, "CLUSTERS", &d.clusters);
    out.push_str("<TOTAL_MB>102400</TOTAL_MB><FREE_MB>81920</FREE_MB><USED_MB>20480</USED_MB>");
    out.push_str("<IMAGES></IMAGES>");
    let mut attrs: BTreeMap<String, String> = BTreeMap::new();
    let type_name = match d.ds_type {
        0 => "IMAGE_DS",
        1 => "SYSTEM_DS",
        _ => "FILE_DS",
    };
    for (k, v) in [
        ("ALLOW_ORPHANS", "NO"),
        ("DISK_TYPE", "FILE"),
        ("DS_MIGRATE", "YES"),
        ("RESTRICTED_DIRS", "/"),
        ("SAFE_DIRS", "/var/tmp"),
        ("TYPE", type_name),
    ] {
        attrs.insert(k.into(), v.into());
    }
    attrs.insert("SHARED".into(), if d.shared { "YES" } else { "NO" }.into());
    attrs.insert("TM_MAD".into(), d.tm_mad.clone());
    attrs.extend(d.template.iter().map(|(k, v)| (k.clone(), v.clone())));
    template(out, "TEMPLATE", &attrs);
    out.push_str("</DATASTORE>");
}

/// `<DATASTORE_POOL>` of every datastore, by id.
pub fn datastore_pool(w: &World) -> String {
    let mut out = String::from("<DATASTORE_POOL>");
    for d in &w.datastores {
        datastore_into(&mut out, d);
    }
    out.push_str("</DATASTORE_POOL>");
    out
}

/// Which VM body to write.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum VmBody {
    /// `one.vm.info`: every history record.
    Full,
    /// `one.vmpool.infoextended`: the last history record.
    Extended,
    /// `one.vmpool.info`: the short body, the last record's short form.
    Short,
}

fn record(vm: &Vm) -> VmRecord {
    VmRecord {
        id: vm.id,
        name: vm.name.clone(),
        owner: vm.uname.clone(),
        state: vm.state,
        lcm_state: vm.lcm(),
        deploy_id: if vm.history.is_empty() {
            String::new()
        } else {
            format!("one-{}", vm.id)
        },
        stime: vm.stime,
        history: vm.last().map(pool_history),
    }
}

/// A world history record as the pool parser's record.
fn pool_history(h: &History) -> PoolHistory {
    PoolHistory {
        seq: h.seq,
        hostname: h.hostname.clone(),
        hid: h.hid,
        ds_id: h.ds_id,
        action: h.action,
        stime: h.stime,
        etime: h.etime,
        pstime: h.pstime,
        petime: h.petime,
        rstime: h.rstime,
        retime: h.retime,
        estime: h.estime,
        eetime: h.eetime,
    }
}

/// Replaces the first element `name` (`<NAME>..</NAME>` or `<NAME/>`) at or after `from`.
fn replace_element(xml: &mut String, name: &str, with: &str) {
    let open = format!("<{name}>");
    let empty = format!("<{name}/>");
    let close = format!("</{name}>");
    let at_open = xml.find(&open);
    let at_empty = xml.find(&empty);
    match (at_open, at_empty) {
        (Some(o), e) if e.is_none_or(|e| o < e) => {
            if let Some(c) = xml[o..].find(&close) {
                xml.replace_range(o..o + c + close.len(), with);
            }
        }
        (_, Some(e)) => xml.replace_range(e..e + empty.len(), with),
        _ => {}
    }
}

/// Appends the `<VM>` element of `vm` in the given body.
pub fn vm_into(out: &mut String, vm: &Vm, body: VmBody) {
    let rec = record(vm);
    let mut xml = String::with_capacity(4096);
    if body == VmBody::Short {
        vm_xml::short_into(&mut xml, &rec);
    } else {
        vm_xml::extended_into(&mut xml, &rec);
        replace_element(
            &mut xml,
            "PREV_STATE",
            &format!("<PREV_STATE>{}</PREV_STATE>", vm.prev_state),
        );
        replace_element(
            &mut xml,
            "PREV_LCM_STATE",
            &format!("<PREV_LCM_STATE>{}</PREV_LCM_STATE>", vm.prev_lcm_state),
        );
    }
    replace_element(
        &mut xml,
        "RESCHED",
        &format!("<RESCHED>{}</RESCHED>", i64::from(vm.resched)),
    );
    replace_element(&mut xml, "ETIME", &format!("<ETIME>{}</ETIME>", vm.etime));
    let mut deploy = String::new();
    tag_text(&mut deploy, "DEPLOY_ID", &rec.deploy_id);
    if let Some(l) = &vm.lock {
        let _ = write!(
            deploy,
            "<LOCK><LOCKED>{}</LOCKED><OWNER>{}</OWNER><TIME>{}</TIME><REQ_ID>{}</REQ_ID></LOCK>",
            l.locked, l.owner, l.time, l.req_id
        );
    }
    replace_element(&mut xml, "DEPLOY_ID", &deploy);
    let mut user = String::new();
    template(&mut user, "USER_TEMPLATE", &vm.user_template);
    replace_element(&mut xml, "USER_TEMPLATE", &user);
    let mut hist = String::from("<HISTORY_RECORDS>");
    let records: &[History] = match (body, vm.history.len()) {
        (_, 0) => &[],
        (VmBody::Full, _) => &vm.history,
        (_, n) => &vm.history[n - 1..],
    };
    for h in records {
        let at = Placement {
            cid: h.cid,
            vm_mad: &h.vm_mad,
            tm_mad: &h.tm_mad,
        };
        vm_xml::history_into(
            &mut hist,
            vm.id,
            &pool_history(h),
            &at,
            body == VmBody::Short,
        );
    }
    hist.push_str("</HISTORY_RECORDS>");
    replace_element(&mut xml, "HISTORY_RECORDS", &hist);
    out.push_str(&xml);
}

/// `one.system.config`: oned.conf as `<OPENNEBULA_CONFIGURATION>` (no
/// MONITORING_INTERVAL_HOST: it moved to monitord.conf in 5.12).
pub fn system_config() -> String {
    let mut attrs: BTreeMap<String, String> = BTreeMap::new();
    for (k, v) in [
        ("API_LIST_ORDER", "DESC"),
        ("CONTEXT_RESTRICTED_DIRS", "/etc"),
        ("DATASTORE_CAPACITY_CHECK", "yes"),
        ("DEFAULT_AUTH", "default"),
        ("DEFAULT_CDROM_DEVICE_PREFIX", "hd"),
        ("DEFAULT_DEVICE_PREFIX", "sd"),
        ("ENABLE_OTHER_PERMISSIONS", "YES"),
        ("HM_MAD", ""),
        ("LISTEN_ADDRESS", "0.0.0.0"),
        ("LOG_CALL_FORMAT", "Req:%i UID:%u IP:%A %m invoked %l"),
        ("MANAGER_TIMER", "15"),
        ("MONITORING_INTERVAL_DATASTORE", "300"),
        ("MONITORING_INTERVAL_DB_UPDATE", "0"),
        ("MONITORING_INTERVAL_MARKET", "600"),
        ("PORT", "2633"),
        ("RPC_LOG", "NO"),
        ("SCRIPTS_REMOTE_DIR", "/var/tmp/one"),
        ("TIMEOUT", "15"),
        (
            "VM_ADMIN_OPERATIONS",
            "migrate, delete, recover, retry, deploy, resched, backup",
        ),
        ("VM_SNAPSHOT_FACTOR", "0"),
        ("VM_SUBMIT_ON_HOLD", "NO"),
    ] {
        attrs.insert(k.into(), v.into());
    }
    let mut out = String::new();
    template(&mut out, "OPENNEBULA_CONFIGURATION", &attrs);
    out
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn replace_element_handles_both_forms() {
        let mut x = "<A><B>1</B><C/><B>2</B></A>".to_string();
        replace_element(&mut x, "B", "<B>9</B>");
        assert_eq!(x, "<A><B>9</B><C/><B>2</B></A>");
        replace_element(&mut x, "C", "<C>x</C>");
        assert_eq!(x, "<A><B>9</B><C>x</C><B>2</B></A>");
        replace_element(&mut x, "D", "<D/>");
        assert_eq!(x, "<A><B>9</B><C>x</C><B>2</B></A>");
    }

    #[test]
    fn cdata_end_in_a_value_stays_text() {
        let mut out = String::new();
        let mut attrs = BTreeMap::new();
        attrs.insert("K".to_string(), "a]]>b".to_string());
        template(&mut out, "T", &attrs);
        assert_eq!(out, "<T><K><![CDATA[a]]]]><![CDATA[>b]]></K></T>");
    }
}
