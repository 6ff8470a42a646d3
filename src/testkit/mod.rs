//! Test-only programs behind `oneha-testkit` (fake services and daemons the tests run).
//! Not part of the product.

pub mod resource_cycle;
pub mod serve;
