//! Test-only programs behind `oneha-testkit` (fake services and daemons the tests run).
//! Not part of the product.

pub mod fence_server;
pub mod serve;
