//! VM HA for operators: `oneha host-error` ([`cli`]) and `oneha vm-ha` ([`cases_cli`]). The
//! agent's side (working the cluster's cases on the group's owner) is `agent/vm_ha.rs`; the
//! hook's logic is [`crate::vmha`].

pub mod cases_cli;
pub mod cli;
