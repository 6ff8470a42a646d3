//! Faults: partitions and packet loss (nftables in the receiving namespace, on eth0's
//! ingress, so ARP is dropped too, as on a cut wire; the crossover's in `crossover.rs`),
//! and signals to a unit's main process. Cable pulls are [`Host::link_down`] / [`Host::link_up`]; power cuts are
//! [`Node::power_off`].

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use super::cmd::run_with_input;
use super::host::Host;
use super::node::Node;
use super::topology::Topology;

/// The nftables table holding a host's faults.
const TABLE: &str = "oneha_fault";

impl Host {
    /// From now on this host no longer receives anything `from` sends (one-way).
    pub fn drop_from(&self, from: &Host) {
        self.add_fault_rule_on("eth0", &format!("ether saddr {} drop", from.mac()));
    }

    /// A firewall here that drops TCP to `port` from `from` (other traffic, replies from
    /// this host's own port included, still passes): one side of a link refuses to be
    /// connected to while it still connects out.
    pub fn block_tcp_port_from(&self, from: &Host, port: u16) {
        self.add_fault_rule_on(
            "eth0",
            &format!("ether saddr {} tcp dport {port} drop", from.mac()),
        );
    }

    /// Drops `percent`% of the frames from `from` arriving at this host, at random (a lossy
    /// path between two hosts; others are not hit).
    pub fn set_loss_from(&self, from: &Host, percent: u8) {
        self.add_fault_rule_on(
            "eth0",
            &format!("ether saddr {} {}", from.mac(), loss_rule(percent)),
        );
    }

    /// Drops `percent`% of the frames arriving at this host, at random.
    pub fn set_loss(&self, percent: u8) {
        self.add_fault_rule_on("eth0", &loss_rule(percent));
    }

    /// Removes every partition and loss rule of this host (every interface).
    pub fn heal(&self) {
        // `delete` fails when there is no table: nothing to heal then.
        let _ = self.exec(&["nft", "delete", "table", "netdev", TABLE]);
    }

    /// Adds `rule` to the ingress chain of interface `dev` (one chain per interface).
    pub(super) fn add_fault_rule_on(&self, dev: &str, rule: &str) {
        let script = format!(
            "add table netdev {TABLE}\n\
             add chain netdev {TABLE} in_{dev} {{ type filter hook ingress device \"{dev}\" priority 0 ; policy accept ; }}\n\
             add rule netdev {TABLE} in_{dev} {rule}\n"
        );
        run_with_input(
            &["ip", "netns", "exec", self.ns(), "nft", "-f", "-"],
            &script,
        )
        .expect_ok();
    }
}

/// The nftables statement dropping `percent`% of the frames at random (nftables refuses
/// `< 100`: all of them is a plain drop).
pub(super) fn loss_rule(percent: u8) -> String {
    assert!(percent <= 100, "loss of {percent}%?");
    if percent == 100 {
        "drop".to_string()
    } else {
        format!("numgen random mod 100 < {percent} drop")
    }
}

impl Topology {
    /// `a` and `b` no longer hear each other (both directions); others still hear both.
    pub fn partition(&self, a: &Host, b: &Host) {
        a.drop_from(b);
        b.drop_from(a);
    }

    /// Traffic from `from` no longer reaches `to`; the other direction still works.
    pub fn partition_one_way(&self, from: &Host, to: &Host) {
        to.drop_from(from);
    }

    /// Removes every partition and loss rule on every host.
    pub fn heal_all(&self) {
        for h in self.hosts() {
            h.heal();
        }
    }
}

impl Node {
    /// Sends `signal` to `unit`'s main process; panics if it has none.
    pub fn signal_unit(&self, unit: &str, signal: Signal) {
        let pid = self
            .pid_of(unit)
            .unwrap_or_else(|| panic!("{}: {unit} has no main process", self.name()));
        let pid = i32::try_from(pid).unwrap_or_else(|_| panic!("pid {pid} out of range"));
        kill(Pid::from_raw(pid), signal)
            .unwrap_or_else(|e| panic!("kill -{signal} {unit} on {}: {e}", self.name()));
    }

    /// Hangs `unit` (SIGSTOP): it keeps its sockets, the kernel still accepts
    /// connections, but nothing is read.
    pub fn hang_unit(&self, unit: &str) {
        self.signal_unit(unit, Signal::SIGSTOP);
    }

    /// Resumes a hung `unit` (SIGCONT).
    pub fn resume_unit(&self, unit: &str) {
        self.signal_unit(unit, Signal::SIGCONT);
    }

    /// Crashes `unit` (SIGKILL to its main process).
    pub fn kill_unit(&self, unit: &str) {
        self.signal_unit(unit, Signal::SIGKILL);
    }
}
