//! `oneha import-cluster-conf`: a cluster.conf in, a oneha.yaml and a report out. Whatever
//! the input, the YAML written must be one well-formed YAML mapping (strings from the file
//! cannot inject keys or break the document) and the report must be printable.
#![no_main]

use std::net::{IpAddr, Ipv4Addr};

use libfuzzer_sys::fuzz_target;
use oneha::import::{Host, LocalAddr, Options, import, report};

/// Names resolve to a fixed address; one local interface in 192.0.2.0/24.
struct FixedHost;

impl Host for FixedHost {
    fn resolve(&self, name: &str) -> Option<IpAddr> {
        (!name.is_empty()).then_some(IpAddr::V4(Ipv4Addr::new(192, 0, 2, 10)))
    }
    fn addresses(&self) -> Vec<LocalAddr> {
        vec![LocalAddr {
            interface: "eth0".into(),
            address: IpAddr::V4(Ipv4Addr::new(192, 0, 2, 1)),
            prefix: 24,
        }]
    }
}

fuzz_target!(|data: &[u8]| {
    let Ok(text) = std::str::from_utf8(data) else {
        return;
    };
    if let Ok(imported) = import(text, &Options::default(), &FixedHost) {
        let doc: serde_norway::Value =
            serde_norway::from_str(&imported.yaml).expect("the imported YAML parses");
        assert!(doc.is_mapping(), "the imported YAML is one mapping");
        let shown = report("cluster.conf", &imported.notes);
        assert!(
            !shown
                .chars()
                .any(|c| c.is_control() && c != '\n' && c != '\t')
        );
    }
});
