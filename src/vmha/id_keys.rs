//! Serde for VM-id-keyed maps inside the journal's internally tagged events.
//!
//! serde_json writes integer map keys as strings; an internally tagged enum
//! (`#[serde(tag = ...)]`) buffers its fields before decoding them, and the buffered string
//! keys are then refused by the derived `BTreeMap<i64, _>` (serde-rs/serde#1183). Every
//! `Planned` event with a VM in it was undecodable, so no node applied it. This keeps the
//! JSON as it was.

use std::collections::BTreeMap;

use serde::de::Error as _;
use serde::{Deserialize, Deserializer, Serialize, Serializer};

/// Writes the map as the derived form does.
pub fn serialize<S: Serializer, T: Serialize>(
    map: &BTreeMap<i64, T>,
    s: S,
) -> Result<S::Ok, S::Error> {
    map.serialize(s)
}

/// Reads a map whose keys are VM ids written as strings of digits (JSON's way).
pub fn deserialize<'de, D: Deserializer<'de>, T: Deserialize<'de>>(
    d: D,
) -> Result<BTreeMap<i64, T>, D::Error> {
    BTreeMap::<String, T>::deserialize(d)?
        .into_iter()
        .map(|(k, v)| {
            k.parse()
                .map(|n| (n, v))
                .map_err(|_| D::Error::custom(format!("VM id `{k}` is not a number")))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::super::case::{Event, Plan, VmOp};
    use super::*;

    fn planned() -> Event {
        let act = Plan::Act {
            op: VmOp::Resched,
            priority: 0,
        };
        let skip = Plan::Skip {
            reason: "HA=no".into(),
        };
        Event::Planned {
            at: 7,
            vms: BTreeMap::from([(100, ("a".into(), act)), (-1, ("b".into(), skip))]),
        }
    }

    #[test]
    fn a_planned_event_with_vms_decodes_after_encoding() {
        // Failed before the fix: "invalid type: string \"100\", expected i64".
        let json = serde_json::to_string(&planned()).expect("encode");
        assert!(json.contains("\"100\""), "{json}");
        let back: Event = serde_json::from_str(&json).expect("decode");
        assert_eq!(back, planned());
    }

    #[test]
    fn a_key_that_is_not_a_vm_id_is_named() {
        let e = serde_json::from_str::<Event>(
            r#"{"event":"planned","at":7,"vms":{"x1":["a",{"skip":{"reason":""}}]}}"#,
        )
        .expect_err("a bad key");
        assert!(e.to_string().contains("VM id `x1` is not a number"), "{e}");
    }
}
