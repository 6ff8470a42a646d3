//! The real-host test harness: network namespaces on a private bridge, systemd as PID 1 of
//! each cluster node, hypervisor hosts with simulated BMCs, shared disks (loop devices),
//! faults, client-side checks and an invariant sampler.
//!
//! Use it from an integration test file with `mod harness;` and start from
//! [`Topology::new`]. Everything a topology creates is removed when it is dropped, even when
//! the test panics. See `docs/testing.md`.
//!
//! Addresses: hosts get `192.0.2.N/24` on `eth0` and MAC `02:00:00:00:00:NN` (N in hex);
//! nothing leaves the bridge, which has no address and no route out. A back-to-back cable
//! between two hosts (`Topology::add_crossover`) carries `2001:db8:2::N/64` on `x0`.
#![allow(dead_code, unused_imports)] // each test file uses a different part of the harness

mod bins;
mod bmc;
mod client;
mod cmd;
mod crossover;
mod disk;
mod faults;
mod host;
mod hypervisor;
mod leftovers;
mod netns;
mod node;
mod probe;
mod sampler;
mod spec;
mod topology;
mod units;
mod usage;

use std::time::{Duration, Instant};

pub use bins::{ONEHA, testkit};
pub use bmc::{Bmc, BmcSpec, CIPHER_SUITE, IPMI_PORT};
pub use cmd::{CmdOutput, run_cmd};
pub use crossover::{CROSSOVER_DEV, crossover_ip};
pub use disk::{SharedDisk, hold_busy, loop_devices_of};
pub use host::{Host, Proc};
pub use hypervisor::{HYPERVISOR_PORT, Hypervisor};
pub use leftovers::leftovers;
pub use node::Node;
pub use probe::{Answer, Probe};
pub use sampler::{Change, Report, Sampler, Violation};
pub use spec::NodeSpec;
pub use topology::{Topology, prefixes_claimed};
pub use units::{ONED_PORT, SUNSTONE_PORT, serve_name_unit};
pub use usage::Usage;

/// True if process `pid` exists and is not a zombie.
pub fn process_alive(pid: u32) -> bool {
    std::fs::read_to_string(format!("/proc/{pid}/stat"))
        .ok()
        .and_then(|s| Some(s.rsplit_once(')')?.1.split_whitespace().next()? != "Z"))
        .unwrap_or(false)
}

/// Polls `cond` every 10 ms until it is true (returns true) or `timeout` passes (false).
pub fn wait_until(timeout: Duration, mut cond: impl FnMut() -> bool) -> bool {
    let end = Instant::now() + timeout;
    loop {
        if cond() {
            return true;
        }
        if Instant::now() >= end {
            return false;
        }
        std::thread::sleep(Duration::from_millis(10));
    }
}
