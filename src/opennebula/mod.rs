//! OpenNebula's XML-RPC API and the stuck-VM report.

mod config;

pub use config::OpennebulaConfig;
