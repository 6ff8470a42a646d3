//! How a hypervisor host is fenced: its levels from `vm_ha.hosts`, or `vm_ha.host_template`
//! filled from the host's own template (`{FENCE_IP}`), run by the same [`Fencer`] as the
//! front-ends (levels, retries, timeouts; S5: only an `off`/`reboot` success counts).

use std::collections::BTreeMap;

use super::config::VmHaConfig;
use super::host::HostInfo;
use crate::config::Config;
use crate::fence::{DeviceConfig, Fencer, NodeFencing};

/// Longest value taken from a host template into a fence option.
const MAX_VALUE: usize = 255;

/// Replaces each `{ATTR}` in `text` by the host template's `ATTR`. Values must be plain
/// (letters, digits, `.:_@/-`): a template is written by any oneadmin-group user, and fence
/// options travel as `key=value` lines.
pub fn fill(text: &str, host: &HostInfo) -> Result<String, String> {
    let mut out = String::new();
    let mut rest = text;
    while let Some(i) = rest.find('{') {
        out.push_str(&rest[..i]);
        let after = &rest[i + 1..];
        let Some(j) = after.find('}') else {
            return Err(format!("unclosed `{{` in `{text}`"));
        };
        let attr = &after[..j];
        let value = host.template.get(attr).ok_or_else(|| {
            format!(
                "host {} (id {}) has no {attr} in its template: add it with `onehost update {}` \
                 (e.g. {attr}=\"192.0.2.50\")",
                host.name, host.id, host.id
            )
        })?;
        let ok = !value.is_empty()
            && value.len() <= MAX_VALUE
            && value
                .chars()
                .all(|c| c.is_ascii_alphanumeric() || ".:_@/-".contains(c));
        if !ok {
            return Err(format!(
                "host {}'s {attr} is not a plain address or name (letters, digits, `.:_@/-`, \
                 at most {MAX_VALUE}): fix it with `onehost update {}`",
                host.name, host.id
            ));
        }
        out.push_str(value);
        rest = &after[j + 1..];
    }
    out.push_str(rest);
    Ok(out)
}

/// The fencer for `host`, run from `local` (this front-end's node name, for xvm's source
/// address). Errors say what to configure.
pub fn host_fencer(
    cfg: &Config,
    vmha: &VmHaConfig,
    local: &str,
    host: &HostInfo,
) -> Result<Fencer, String> {
    let (cfg, nf) = if let Some(nf) = vmha.hosts.get(&host.name) {
        (cfg.clone(), nf.clone())
    } else if let Some(t) = &vmha.host_template {
        let mut cfg = cfg.clone();
        let mut nf = t.clone();
        for l in &mut nf.levels {
            if let Some(p) = &l.plug {
                l.plug = Some(fill(p, host)?);
            }
            if let Some(DeviceConfig::Agent(a)) = cfg.fencing.devices.get_mut(&l.device) {
                for v in a.options.values_mut() {
                    *v = fill(v, host)?;
                }
            }
        }
        (cfg, nf)
    } else {
        return Err(format!(
            "no fence levels for host {}: add vm_ha.hosts.{} (or vm_ha.host_template) to the \
             config, or acknowledge a manual power-off with `oneha fence-ack {} --yes`",
            host.name, host.name, host.name
        ));
    };
    let targets = BTreeMap::from([(host.name.clone(), nf)]);
    Fencer::for_targets(&cfg, local, "vm_ha.hosts", &targets).map_err(|e| e.to_string())
}

/// The levels `host` would be fenced with, for `--dry-run`: `device (plug)` per level.
pub fn describe(vmha: &VmHaConfig, host: &HostInfo) -> Result<Vec<String>, String> {
    let nf: &NodeFencing = match vmha.hosts.get(&host.name) {
        Some(nf) => nf,
        None => vmha
            .host_template
            .as_ref()
            .ok_or_else(|| format!("no fence levels for host {}", host.name))?,
    };
    nf.levels
        .iter()
        .map(|l| {
            let plug = match &l.plug {
                Some(p) => format!(" (plug {})", fill(p, host)?),
                None => String::new(),
            };
            Ok(format!("{}{plug}", l.device))
        })
        .collect()
}

#[cfg(test)]
mod tests {
    use super::*;

    fn host(attrs: &[(&str, &str)]) -> HostInfo {
        HostInfo {
            id: 4,
            name: "kvm4".into(),
            state: 3,
            prev_state: None,
            vms: vec![],
            template: attrs
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
        }
    }

    #[test]
    fn fills_attributes_and_refuses_injection() {
        let h = host(&[
            ("FENCE_IP", "192.0.2.54"),
            ("BAD", "1.2.3.4\nusername=x"),
            ("E", ""),
        ]);
        assert_eq!(fill("{FENCE_IP}", &h).unwrap(), "192.0.2.54");
        assert_eq!(
            fill("ipmi-{FENCE_IP}:623", &h).unwrap(),
            "ipmi-192.0.2.54:623"
        );
        assert_eq!(fill("plain", &h).unwrap(), "plain");
        let e = fill("{NOPE}", &h).unwrap_err();
        assert!(
            e.contains("no NOPE in its template") && e.contains("onehost update 4"),
            "{e}"
        );
        assert!(fill("{BAD}", &h).unwrap_err().contains("not a plain"));
        assert!(fill("{E}", &h).unwrap_err().contains("not a plain"));
        assert!(fill("{FENCE_IP", &h).unwrap_err().contains("unclosed"));
    }
}
