//! Test-only programs and helpers (fake oned, ...), used by tests/ and `oneha-testkit`.
//! Not part of the product's API.

pub mod fake_oned;
pub mod fake_oned_cli;
pub mod vm_xml;
