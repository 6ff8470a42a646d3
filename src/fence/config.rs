//! The `fencing:` section: fence devices and per-node fence levels.

use serde::{Deserialize, Serialize};

use crate::config::{Config, Problems};

/// Fence devices and how each node is fenced. (Filled in by the fencing work.)
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct FencingConfig {}

impl FencingConfig {
    pub(crate) fn validate(&self, _c: &Config, _p: &mut Problems) {}
}
