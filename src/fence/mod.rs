//! Fencing: power off a lost node before anyone takes its resources over.

mod config;

pub use config::FencingConfig;
