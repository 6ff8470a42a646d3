//! Test-only programs and helpers behind `oneha-testkit` (fake oned, fence daemon, test
//! services). Not part of the product.

pub mod fake_oned;
pub mod fake_oned_cli;
pub mod fence_server;
pub mod notify_probe;
pub mod resource_cycle;
pub mod serve;
pub mod vm_xml;
