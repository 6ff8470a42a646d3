//! The `opennebula:` section: how to reach oned for the stuck-VM report.

use serde::{Deserialize, Serialize};

use crate::config::{Config, Problems};

/// How to reach oned. (Filled in by the stuck-VM report work.)
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
#[serde(deny_unknown_fields)]
pub struct OpennebulaConfig {}

impl OpennebulaConfig {
    pub(crate) fn validate(&self, _c: &Config, _p: &mut Problems) {}
}
