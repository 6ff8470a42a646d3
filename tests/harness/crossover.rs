//! A second network between two hosts: a back-to-back cable (a veth pair, `x0` at both
//! ends, no switch), as two-node clusters use next to the LAN so that one cable cannot
//! split them. Addresses are IPv6 documentation addresses, `2001:db8:2::N/64` (N = the
//! host number), so nothing on it can collide with the LAN's 192.0.2.0/24 (floating IP
//! tests included) and the transport's IPv6 `[addr]:port` is exercised.
//!
//! Faults on it: [`Host::set_crossover`] (the cable pulled at one end: both ends lose
//! carrier), and [`Host::drop_crossover`] / [`Host::set_crossover_loss`] (nftables on
//! `x0`'s ingress, like the LAN faults in `faults.rs`; healed by [`Host::heal`]).

use std::net::Ipv6Addr;

use super::cmd::run_with_input;
use super::faults::loss_rule;
use super::host::Host;
use super::topology::Topology;

/// The crossover's interface name at both ends.
pub const CROSSOVER_DEV: &str = "x0";

/// Host number `n`'s address on the crossover.
pub fn crossover_ip(n: u8) -> Ipv6Addr {
    Ipv6Addr::new(0x2001, 0xdb8, 2, 0, 0, 0, 0, u16::from(n))
}

impl Topology {
    /// Connects `a` and `b` with a back-to-back cable, up, with their crossover addresses
    /// (no duplicate address detection: usable at once). A node's power-off takes its end
    /// down (the NIC loses power), its boot brings it up again.
    pub fn add_crossover(&self, a: &Host, b: &Host) {
        let pair = format!(
            "link add {CROSSOVER_DEV} type veth peer name {CROSSOVER_DEV} netns {}\n",
            b.ns()
        );
        run_with_input(&["ip", "-n", a.ns(), "-batch", "-"], &pair).expect_ok();
        for h in [a, b] {
            // A pulled cable (or a powered-off peer) must not take the address with it.
            h.exec_ok(&[
                "sysctl",
                "-qw",
                &format!("net.ipv6.conf.{CROSSOVER_DEV}.keep_addr_on_down=1"),
            ]);
            let net = format!(
                "addr add {}/64 dev {CROSSOVER_DEV} nodad\nlink set {CROSSOVER_DEV} up\n",
                h.crossover_ip()
            );
            run_with_input(&["ip", "-n", h.ns(), "-batch", "-"], &net).expect_ok();
        }
    }
}

impl Host {
    /// This host's address on the crossover.
    pub fn crossover_ip(&self) -> Ipv6Addr {
        crossover_ip(self.ip().octets()[3])
    }

    /// Pulls (`false`) or plugs back (`true`) the crossover at this end.
    pub fn set_crossover(&self, up: bool) {
        let state = if up { "up" } else { "down" };
        self.exec_ok(&["ip", "link", "set", CROSSOVER_DEV, state]);
    }

    /// From now on this host receives nothing on the crossover (one way).
    pub fn drop_crossover(&self) {
        self.add_fault_rule_on(CROSSOVER_DEV, "drop");
    }

    /// Drops `percent`% of the frames arriving on the crossover, at random.
    pub fn set_crossover_loss(&self, percent: u8) {
        self.add_fault_rule_on(CROSSOVER_DEV, &loss_rule(percent));
    }
}
