//! The `vm_ha:` section, read by `oneha host-error` and the agent's VM-HA service. Its
//! schema and checks live in [`crate::config::vm_ha`]; the rules the policy takes from it
//! are made here, next to the policy.

pub use crate::config::vm_ha::{DEFAULT_LOG, VmHaConfig};

use super::decide::Rules;

impl VmHaConfig {
    /// The policy's rules.
    pub fn rules(&self) -> Rules {
        Rules {
            poll_every: self.poll_interval.get(),
            guard_limit: self.guard.max_failed_hosts,
            max_parallel: self.max_parallel.max(1),
            fence_backoff_first: self.fence_backoff.get(),
            fence_backoff_max: self.fence_backoff_max.get(),
            max_tries: 3,
            ha_attribute: self.ha_attribute.clone(),
            priority_attribute: self.priority_attribute.clone(),
            ..Rules::default()
        }
    }
}
