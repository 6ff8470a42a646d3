//! A hypervisor host as oned describes it (`<HOST>` of `host.xsd`): what the hook needs.

use std::collections::BTreeMap;

use serde::{Deserialize, Serialize};

use super::xml_tree::{self, Element};

/// Host STATE values (`Host::HostState`).
pub mod state {
    /// INIT.
    pub const INIT: i64 = 0;
    /// MONITORING_MONITORED.
    pub const MONITORING_MONITORED: i64 = 1;
    /// MONITORED.
    pub const MONITORED: i64 = 2;
    /// ERROR: monitoring failed; the hook runs on the transition into it.
    pub const ERROR: i64 = 3;
    /// DISABLED by an admin.
    pub const DISABLED: i64 = 4;
    /// MONITORING_ERROR (gone since 5.x, still in the XSD).
    pub const MONITORING_ERROR: i64 = 5;
    /// MONITORING_INIT.
    pub const MONITORING_INIT: i64 = 6;
    /// MONITORING_DISABLED.
    pub const MONITORING_DISABLED: i64 = 7;
    /// OFFLINE, set by an admin.
    pub const OFFLINE: i64 = 8;

    /// The name oned prints for a state number.
    pub fn name(n: i64) -> &'static str {
        match n {
            INIT => "INIT",
            MONITORING_MONITORED => "MONITORING_MONITORED",
            MONITORED => "MONITORED",
            ERROR => "ERROR",
            DISABLED => "DISABLED",
            MONITORING_ERROR => "MONITORING_ERROR",
            MONITORING_INIT => "MONITORING_INIT",
            MONITORING_DISABLED => "MONITORING_DISABLED",
            OFFLINE => "OFFLINE",
            _ => "UNKNOWN_STATE",
        }
    }
}

/// The facts of one host.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostInfo {
    /// Host id.
    pub id: i64,
    /// Host name (as VMs' history records name it).
    pub name: String,
    /// STATE number (see [`state`]).
    pub state: i64,
    /// PREV_STATE, when present.
    pub prev_state: Option<i64>,
    /// VMs oned places on this host (`VMS/ID`).
    pub vms: Vec<i64>,
    /// The host's TEMPLATE attributes with a single text value (`FENCE_IP`...).
    pub template: BTreeMap<String, String>,
}

impl HostInfo {
    /// Reads a `<HOST>` element (from the hook's template or `one.host.info`).
    pub fn from_element(e: &Element) -> Result<HostInfo, String> {
        if e.name != "HOST" {
            return Err(format!("expected a <HOST> document, found <{}>", e.name));
        }
        let id = e.int_at("ID")?;
        let name = e.text_at("NAME").ok_or("<HOST> has no NAME")?.to_string();
        if name.is_empty() {
            return Err("<HOST> has an empty NAME".into());
        }
        let state = e.int_at("STATE")?;
        let prev_state = match e.text_at("PREV_STATE") {
            Some(_) => Some(e.int_at("PREV_STATE")?),
            None => None,
        };
        let mut vms = Vec::new();
        if let Some(v) = e.child("VMS") {
            for id in v.children_named("ID") {
                vms.push(
                    id.text
                        .parse::<i64>()
                        .map_err(|_| "<HOST>/VMS/ID is not an integer".to_string())?,
                );
            }
        }
        let mut template = BTreeMap::new();
        if let Some(t) = e.child("TEMPLATE") {
            for c in &t.children {
                if c.children.is_empty() {
                    template.insert(c.name.clone(), c.text.clone());
                }
            }
        }
        Ok(HostInfo {
            id,
            name,
            state,
            prev_state,
            vms,
            template,
        })
    }

    /// Parses a `<HOST>` document.
    pub fn parse(xml: &str) -> Result<HostInfo, String> {
        HostInfo::from_element(&xml_tree::parse(xml)?)
    }
}

/// One host of `one.hostpool.info`: id, name, state.
#[derive(Debug, Clone, PartialEq, Eq, Serialize, Deserialize)]
pub struct HostSummary {
    /// Host id.
    pub id: i64,
    /// Host name.
    pub name: String,
    /// STATE number.
    pub state: i64,
}

/// Reads a `<HOST_POOL>` document.
pub fn parse_pool(xml: &str) -> Result<Vec<HostSummary>, String> {
    let root = xml_tree::parse(xml)?;
    if root.name != "HOST_POOL" {
        return Err(format!("expected <HOST_POOL>, found <{}>", root.name));
    }
    root.children_named("HOST")
        .map(|h| {
            Ok(HostSummary {
                id: h.int_at("ID")?,
                name: h.text_at("NAME").unwrap_or_default().to_string(),
                state: h.int_at("STATE")?,
            })
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    /// A `<HOST>` as oned 7 writes it for the hook (trimmed to what host.xsd requires and
    /// the hook reads).
    pub const HOST_XML: &str = "<HOST><ID>4</ID><NAME>kvm4</NAME><STATE>3</STATE>\
        <PREV_STATE>2</PREV_STATE><IM_MAD><![CDATA[kvm]]></IM_MAD><VM_MAD><![CDATA[kvm]]></VM_MAD>\
        <CLUSTER_ID>0</CLUSTER_ID><CLUSTER>default</CLUSTER><HOST_SHARE></HOST_SHARE>\
        <VMS><ID>10</ID><ID>11</ID></VMS><TEMPLATE><FENCE_IP><![CDATA[192.0.2.54]]></FENCE_IP>\
        <HYPERVISOR><![CDATA[kvm]]></HYPERVISOR></TEMPLATE></HOST>";

    #[test]
    fn reads_a_host() {
        let h = HostInfo::parse(HOST_XML).unwrap();
        assert_eq!((h.id, h.name.as_str(), h.state), (4, "kvm4", state::ERROR));
        assert_eq!(h.prev_state, Some(2));
        assert_eq!(h.vms, [10, 11]);
        assert_eq!(h.template["FENCE_IP"], "192.0.2.54");
    }

    #[test]
    fn refuses_what_is_not_a_host() {
        assert!(
            HostInfo::parse("<VM><ID>1</ID></VM>")
                .unwrap_err()
                .contains("<HOST>")
        );
        assert!(
            HostInfo::parse("<HOST><ID>1</ID></HOST>")
                .unwrap_err()
                .contains("NAME")
        );
        assert!(
            HostInfo::parse("<HOST><ID>1</ID><NAME>a</NAME><STATE>x</STATE></HOST>")
                .unwrap_err()
                .contains("STATE")
        );
        let bad_vm = "<HOST><ID>1</ID><NAME>a</NAME><STATE>3</STATE><VMS><ID>z</ID></VMS></HOST>";
        assert!(HostInfo::parse(bad_vm).unwrap_err().contains("VMS/ID"));
    }

    #[test]
    fn reads_a_host_pool() {
        let p = parse_pool(&format!("<HOST_POOL>{HOST_XML}</HOST_POOL>")).unwrap();
        assert_eq!(p[0].state, state::ERROR);
        assert!(parse_pool("<VM_POOL/>").is_err());
    }
}
