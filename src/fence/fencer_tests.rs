//! Fencer tests.
