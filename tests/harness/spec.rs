//! What a node gets installed before it boots: unit files, units started at boot, files
//! in /etc/oneha and init scripts.

use super::units;

/// What to install on a node before it boots.
#[derive(Clone, Default)]
pub struct NodeSpec {
    pub(super) units: Vec<(String, String)>,
    pub(super) wants: Vec<String>,
    pub(super) etc: Vec<(String, String)>,
    pub(super) init: Vec<(String, String)>,
}

impl NodeSpec {
    /// Nothing but the boot target and D-Bus.
    pub fn new() -> NodeSpec {
        NodeSpec::default()
    }

    /// With the test `opennebula.service` (TCP 2633) and `opennebula-sunstone.service`
    /// (TCP 9869) installed (not started): each answers a connection with the node's name.
    pub fn opennebula() -> NodeSpec {
        let mut spec = NodeSpec::new();
        spec.units = units::opennebula_units();
        spec
    }

    /// Installs a unit file. In `text`, `{{node}}` becomes the node name, `{{ip}}` its
    /// address, `{{oneha}}` and `{{testkit}}` the binaries of this build.
    pub fn unit(mut self, name: &str, text: &str) -> NodeSpec {
        self.units.retain(|(n, _)| n != name);
        self.units.push((name.to_string(), text.to_string()));
        self
    }

    /// Starts `unit` at boot (a `Wants=` of the boot target).
    pub fn wants(mut self, unit: &str) -> NodeSpec {
        self.wants.push(unit.to_string());
        self
    }

    /// Writes `/etc/oneha/NAME`, mode 0600 (placeholders as in [`NodeSpec::unit`]).
    pub fn etc_file(mut self, name: &str, text: &str) -> NodeSpec {
        self.etc.push((name.to_string(), text.to_string()));
        self
    }

    /// Installs an executable `/etc/init.d/NAME` (placeholders as in [`NodeSpec::unit`]).
    pub fn init_script(mut self, name: &str, text: &str) -> NodeSpec {
        self.init.push((name.to_string(), text.to_string()));
        self
    }
}
