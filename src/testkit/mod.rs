//! Test-only programs behind `oneha-testkit` (not part of the product).

pub mod fence_server;
