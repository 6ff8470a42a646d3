//! Agent tests.
