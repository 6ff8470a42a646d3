//! VM HA for operators and the agent: `oneha host-error` and `oneha vm-ha` ([`cli`]), and
//! the agent's service that works the cluster's cases on the group's owner ([`service`]).
//! Above [`crate::vmha`] (the hook's logic) and [`crate::cluster`] (the journal).

pub mod cases_cli;
pub mod cli;
pub mod service;
