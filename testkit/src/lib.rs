//! Test-only programs and helpers behind `oneha-testkit` (fake oned, fence daemon, test
//! services). Not part of the product.

pub mod fake_oned;
pub mod fake_oned_cli;
pub mod fence_server;
pub mod hem;
pub mod monitord;
pub mod notify_probe;
pub mod resource_cycle;
pub mod serve;
pub mod vm_xml;
pub mod world;
pub mod world_cli;
pub mod world_handle;
pub mod world_ops;
pub mod world_rpc;
pub mod world_xml;
