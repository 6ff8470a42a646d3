//! Which systemd units an rgmanager `opennebula*` init script becomes, by the OpenNebula
//! release the new front-ends run (`--opennebula-version`).
//!
//! OpenNebula 4.x shipped one init script per daemon (`opennebula`, `opennebula-sunstone`,
//! ...) and systemd units of the same names. 7.x ships `opennebula` (oned with the
//! scheduler inside; it only *Wants* `opennebula-hem`, so stopping oned leaves the hook
//! manager running), `opennebula-hem`, `opennebula-fireedge` (the web UI; Ruby Sunstone is
//! gone), `opennebula-flow` and `opennebula-gate`. 6.10 adds `opennebula-scheduler` and may
//! still run Ruby Sunstone. The hook manager is named explicitly because the VM-HA hook
//! (`oneha host-error`) runs inside it: it must move with oned.

use clap::ValueEnum;

/// The OpenNebula release whose systemd units the imported group names.
#[derive(Debug, Clone, Copy, PartialEq, Eq, Default, ValueEnum)]
pub enum OpenNebulaVersion {
    /// OpenNebula 7.x: opennebula, opennebula-hem, opennebula-fireedge, ...
    #[default]
    #[value(name = "7")]
    V7,
    /// OpenNebula 6.10: as 7.x plus opennebula-scheduler; Sunstone stays Ruby Sunstone.
    #[value(name = "6.10")]
    V6_10,
    /// OpenNebula 4.x: the unit of the init script's own name.
    #[value(name = "4")]
    V4,
}

impl OpenNebulaVersion {
    /// The release as the option spells it.
    pub fn label(self) -> &'static str {
        match self {
            OpenNebulaVersion::V7 => "7",
            OpenNebulaVersion::V6_10 => "6.10",
            OpenNebulaVersion::V4 => "4",
        }
    }

    /// The units that replace init script `base` (its file name without `.sh`), as
    /// (resource name, unit) pairs in start order. `name` is the script's resource name;
    /// the first unit keeps it unless the daemon changed (Sunstone -> FireEdge).
    pub fn units_for(self, base: &str, name: &str) -> Vec<(String, String)> {
        let unit = |u: &str| format!("{u}.service");
        let own = || vec![(name.to_string(), unit(base))];
        match (self, base) {
            (OpenNebulaVersion::V4, _) => own(),
            (OpenNebulaVersion::V7, "opennebula") => vec![
                (name.to_string(), unit("opennebula")),
                ("opennebula-hem".into(), unit("opennebula-hem")),
            ],
            (OpenNebulaVersion::V6_10, "opennebula") => vec![
                (name.to_string(), unit("opennebula")),
                ("opennebula-scheduler".into(), unit("opennebula-scheduler")),
                ("opennebula-hem".into(), unit("opennebula-hem")),
            ],
            (OpenNebulaVersion::V7, "opennebula-sunstone") => {
                vec![("fireedge".into(), unit("opennebula-fireedge"))]
            }
            _ => own(),
        }
    }

    /// One line for the import's report: the set of units used.
    pub fn note(self) -> String {
        let set = match self {
            OpenNebulaVersion::V7 => {
                "opennebula -> opennebula.service + opennebula-hem.service (the VM-HA hook \
                 runs in HEM, so it moves with oned), opennebula-sunstone -> \
                 opennebula-fireedge.service (Ruby Sunstone is gone)"
            }
            OpenNebulaVersion::V6_10 => {
                "opennebula -> opennebula.service + opennebula-scheduler.service + \
                 opennebula-hem.service (the VM-HA hook runs in HEM, so it moves with oned), \
                 opennebula-sunstone -> opennebula-sunstone.service (add \
                 opennebula-fireedge.service if FireEdge serves the UI)"
            }
            OpenNebulaVersion::V4 => {
                "each /etc/init.d/opennebula* script -> the systemd unit of the same name"
            }
        };
        format!(
            "OpenNebula {} units (--opennebula-version {}): {set}; other opennebula-* \
             scripts keep their own name",
            self.label(),
            self.label()
        )
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn units(v: OpenNebulaVersion, base: &str) -> Vec<String> {
        v.units_for(base, "x").into_iter().map(|(_, u)| u).collect()
    }

    #[test]
    fn oned_brings_the_hook_manager_from_6_10_on() {
        assert_eq!(
            units(OpenNebulaVersion::V7, "opennebula"),
            ["opennebula.service", "opennebula-hem.service"]
        );
        assert_eq!(
            units(OpenNebulaVersion::V6_10, "opennebula"),
            [
                "opennebula.service",
                "opennebula-scheduler.service",
                "opennebula-hem.service"
            ]
        );
        assert_eq!(
            units(OpenNebulaVersion::V4, "opennebula"),
            ["opennebula.service"]
        );
    }

    #[test]
    fn sunstone_becomes_fireedge_only_on_7() {
        assert_eq!(
            OpenNebulaVersion::V7.units_for("opennebula-sunstone", "sunstone"),
            [(
                "fireedge".to_string(),
                "opennebula-fireedge.service".to_string()
            )]
        );
        for v in [OpenNebulaVersion::V6_10, OpenNebulaVersion::V4] {
            assert_eq!(
                units(v, "opennebula-sunstone"),
                ["opennebula-sunstone.service"]
            );
        }
        assert_eq!(
            units(OpenNebulaVersion::V7, "opennebula-gate"),
            ["opennebula-gate.service"]
        );
    }
}
