//! A VM as `one.vm.info` describes it (`vm.xsd`), and the system datastores
//! (`one.datastorepool.info`, `datastore.xsd`): the facts the hook decides on.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::xml_tree::{self, Element};

/// VM STATE values the hook cares about (`VirtualMachine::VmState`).
pub mod vm_state {
    /// PENDING: waiting for the scheduler (where a recreated VM goes).
    pub const PENDING: i64 = 1;
    /// ACTIVE: see LCM_STATE.
    pub const ACTIVE: i64 = 3;
    /// SUSPENDED.
    pub const SUSPENDED: i64 = 5;
    /// DONE: deleted.
    pub const DONE: i64 = 6;
    /// POWEROFF.
    pub const POWEROFF: i64 = 8;
}

/// LCM_STATE values the hook names.
pub mod lcm_state {
    /// RUNNING.
    pub const RUNNING: i64 = 3;
    /// CLEANUP_RESUBMIT: a delete-recreate in progress.
    pub const CLEANUP_RESUBMIT: i64 = 15;
    /// UNKNOWN: the host stopped answering.
    pub const UNKNOWN: i64 = 16;
    /// CLEANUP_DELETE: a delete in progress.
    pub const CLEANUP_DELETE: i64 = 23;
    /// PROLOG_MIGRATE_UNKNOWN: a cold move off a failed host in progress.
    pub const PROLOG_MIGRATE_UNKNOWN: i64 = 60;
}

/// What the hook knows of one VM.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct VmFacts {
    /// VM id.
    pub id: i64,
    /// VM name.
    pub name: String,
    /// STATE.
    pub state: i64,
    /// LCM_STATE.
    pub lcm_state: i64,
    /// LOCK/LOCKED level (0: not locked).
    pub locked: i64,
    /// RESCHED flag.
    pub resched: bool,
    /// Last history record: host id.
    pub host_id: Option<i64>,
    /// Last history record: host name.
    pub host_name: Option<String>,
    /// Last history record: system datastore id.
    pub ds_id: Option<i64>,
    /// USER_TEMPLATE attributes with a single text value (`HA`, `HA_PRIORITY`...).
    pub user_template: BTreeMap<String, String>,
}

impl VmFacts {
    /// Reads a `<VM>` element.
    pub fn from_element(e: &Element) -> Result<VmFacts, String> {
        if e.name != "VM" {
            return Err(format!("expected a <VM> document, found <{}>", e.name));
        }
        let last = e
            .child("HISTORY_RECORDS")
            .and_then(|h| h.children_named("HISTORY").last());
        let hist_int = |path: &str| match last {
            Some(h) if h.child(path).is_some() => h.int_at(path).map(Some),
            _ => Ok(None),
        };
        let mut user_template = BTreeMap::new();
        if let Some(t) = e.child("USER_TEMPLATE") {
            for c in t.children.iter().filter(|c| c.children.is_empty()) {
                user_template.insert(c.name.clone(), c.text.clone());
            }
        }
        let locked = match e.at("LOCK/LOCKED") {
            Some(_) => e.int_at("LOCK/LOCKED")?,
            None => 0,
        };
        Ok(VmFacts {
            id: e.int_at("ID")?,
            name: e.text_at("NAME").unwrap_or_default().to_string(),
            state: e.int_at("STATE")?,
            lcm_state: e.int_at("LCM_STATE")?,
            locked,
            resched: e.text_at("RESCHED") == Some("1"),
            host_id: hist_int("HID")?,
            host_name: last.and_then(|h| h.text_at("HOSTNAME")).map(str::to_string),
            ds_id: hist_int("DS_ID")?,
            user_template,
        })
    }

    /// Parses a `<VM>` document.
    pub fn parse(xml: &str) -> Result<VmFacts, String> {
        VmFacts::from_element(&xml_tree::parse(xml)?)
    }

    /// The VM opted out of VM HA (`HA = "no"` in its user template; the attribute name is
    /// configurable).
    pub fn opted_out(&self, attribute: &str) -> bool {
        self.user_template.get(attribute).is_some_and(|v| {
            matches!(
                v.trim().to_ascii_lowercase().as_str(),
                "no" | "false" | "0" | "off"
            )
        })
    }

    /// `HA_PRIORITY` (higher first; 0 when unset or not a number).
    pub fn priority(&self, attribute: &str) -> i64 {
        self.user_template
            .get(attribute)
            .and_then(|v| v.trim().parse().ok())
            .unwrap_or(0)
    }

    /// "STATE/LCM" as oned names them (for messages).
    pub fn state_name(&self) -> String {
        use crate::opennebula::states::{lcm_state_name, vm_state_name};
        if self.state == vm_state::ACTIVE {
            format!("ACTIVE/{}", lcm_state_name(self.lcm_state))
        } else {
            vm_state_name(self.state)
        }
    }
}

/// System datastores by id: true when SHARED (`TEMPLATE/SHARED = YES`).
pub fn parse_datastores(xml: &str) -> Result<BTreeMap<i64, bool>, String> {
    let root = xml_tree::parse(xml)?;
    if root.name != "DATASTORE_POOL" {
        return Err(format!("expected <DATASTORE_POOL>, found <{}>", root.name));
    }
    let mut out = BTreeMap::new();
    for d in root.children_named("DATASTORE") {
        let id = d.int_at("ID")?;
        let shared = d
            .text_at("TEMPLATE/SHARED")
            .is_some_and(|s| s.eq_ignore_ascii_case("yes"));
        out.insert(id, shared);
    }
    Ok(out)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn reads_a_vm() {
        let v = VmFacts::parse(
            "<VM><ID>10</ID><NAME>web</NAME><STATE>3</STATE><LCM_STATE>16</LCM_STATE>\
             <LOCK><LOCKED>2</LOCKED><OWNER>0</OWNER></LOCK><RESCHED>0</RESCHED>\
             <USER_TEMPLATE><HA>no</HA><HA_PRIORITY>7</HA_PRIORITY></USER_TEMPLATE>\
             <HISTORY_RECORDS><HISTORY><HID>1</HID><HOSTNAME>a</HOSTNAME><DS_ID>0</DS_ID>\
             </HISTORY><HISTORY><HID>4</HID><HOSTNAME>kvm4</HOSTNAME><DS_ID>100</DS_ID>\
             </HISTORY></HISTORY_RECORDS></VM>",
        )
        .unwrap();
        assert_eq!((v.id, v.state, v.lcm_state, v.locked), (10, 3, 16, 2));
        assert_eq!((v.host_id, v.ds_id), (Some(4), Some(100)));
        assert_eq!(v.host_name.as_deref(), Some("kvm4"));
        assert!(v.opted_out("HA"));
        assert_eq!(v.priority("HA_PRIORITY"), 7);
        assert!(!v.resched);
    }

    #[test]
    fn reads_datastores() {
        let d = parse_datastores(
            "<DATASTORE_POOL><DATASTORE><ID>0</ID><TEMPLATE><SHARED><![CDATA[YES]]></SHARED>\
             </TEMPLATE></DATASTORE><DATASTORE><ID>100</ID><TEMPLATE><SHARED>NO</SHARED>\
             </TEMPLATE></DATASTORE></DATASTORE_POOL>",
        )
        .unwrap();
        assert!(d[&0]);
        assert!(!d[&100]);
    }
}
