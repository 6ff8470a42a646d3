//! Faults done to a live cluster, and the healing that follows each one.

use std::time::Duration;

use nix::sys::signal::{Signal, kill};
use nix::unistd::Pid;

use crate::e2e::{Cluster, Kind};
use crate::harness::Node;

use super::schedule::{Fault, Link, Target};

/// The agent's unit on every node.
pub const AGENT: &str = "oneha.service";

/// Resolves a target to a node: `owner` is the front-end serving now.
pub fn resolve(c: &Cluster, owner: &str, t: Target) -> Node {
    let other = if owner == "node1" { "node2" } else { "node1" };
    let name = match (t, c.opts.kind) {
        (Target::Owner, _) => owner,
        (Target::Passive, _) | (Target::Witness, Kind::TwoNode) => other,
        (Target::Witness, Kind::Witness) => "node3",
    };
    c.node(name).clone()
}

/// Sends `sig` to the agent's main process on `n`, if it has one (never panics).
pub fn signal_agent(n: &Node, sig: Signal) -> bool {
    let Some(pid) = n.pid_of(AGENT) else {
        return false;
    };
    i32::try_from(pid).is_ok_and(|p| kill(Pid::from_raw(p), sig).is_ok())
}

/// Injects `fault`, waits `hold` (steps that are over by themselves ignore it), heals what
/// this fault did. `sleep` returns false when the campaign is interrupted.
pub fn inject(
    c: &mut Cluster,
    owner: &str,
    fault: &Fault,
    hold: Duration,
    sleep: &dyn Fn(Duration) -> bool,
) {
    let node = |t: Target| resolve(c, owner, t);
    match fault {
        Fault::PowerCycle(t) => {
            node(*t).power_off();
            sleep(hold);
        }
        Fault::AgentKill(t) => {
            signal_agent(&node(*t), Signal::SIGKILL);
            sleep(hold);
        }
        Fault::AgentHang(t) => {
            let n = node(*t);
            signal_agent(&n, Signal::SIGSTOP);
            sleep(hold);
            signal_agent(&n, Signal::SIGCONT);
        }
        // On two networks a partition cuts both (one link down is its own fault type).
        Fault::Partition(a, b) => {
            let (a, b) = (node(*a), node(*b));
            c.topo.partition(&a, &b);
            if c.opts.links == 2 {
                a.drop_crossover();
                b.drop_crossover();
            }
            sleep(hold);
        }
        Fault::OneWay(from, to) => {
            let to = node(*to);
            c.topo.partition_one_way(&node(*from), &to);
            if c.opts.links == 2 {
                to.drop_crossover();
            }
            sleep(hold);
        }
        Fault::OneLinkDown(link, t) => {
            set_link(c, owner, *link, *t, false);
            sleep(hold);
        }
        Fault::OneLinkFlap(link, t, flaps) => {
            for (down, up) in flaps {
                set_link(c, owner, *link, *t, false);
                let go_on = sleep(*down);
                set_link(c, owner, *link, *t, true);
                if !go_on || !sleep(*up) {
                    break;
                }
            }
        }
        Fault::OneLinkLossy(link, t, percent) => {
            let n = node(*t);
            match link {
                Link::Lan => n.set_loss_from(&node(other(*t)), *percent),
                Link::Crossover => n.set_crossover_loss(*percent),
            }
            sleep(hold);
        }
        Fault::Loss(t, percent) => {
            node(*t).set_loss(*percent);
            sleep(hold);
        }
        Fault::LinkFlap(t, flaps) => {
            let n = node(*t);
            for (down, up) in flaps {
                n.link_down();
                let go_on = sleep(*down);
                n.link_up();
                if !go_on || !sleep(*up) {
                    break;
                }
            }
        }
        Fault::FenceDown(with_power_off) => {
            let o = node(Target::Owner);
            c.stop_fence_daemon();
            if *with_power_off {
                o.power_off();
            }
            sleep(hold);
            c.start_fence_daemon();
        }
        Fault::WitnessDown => {
            if c.opts.kind == Kind::Witness {
                c.node("node3").power_off();
            }
            sleep(hold);
        }
        Fault::AgentRestart(t) => {
            let _ = node(*t).try_run(&["systemctl", "restart", AGENT]);
        }
    }
    heal_network(c);
}

/// The other front-end.
fn other(t: Target) -> Target {
    if t == Target::Owner {
        Target::Passive
    } else {
        Target::Owner
    }
}

/// Takes one link between the front-ends down (`up` false) or brings it back: the
/// crossover pulled at the target's end, or the LAN's frames between the two dropped.
fn set_link(c: &Cluster, owner: &str, link: Link, t: Target, up: bool) {
    let n = resolve(c, owner, t);
    match (link, up) {
        (Link::Crossover, _) => n.set_crossover(up),
        (Link::Lan, false) => c.topo.partition(&n, &resolve(c, owner, other(t))),
        // Only this fault's rules are in place while it runs.
        (Link::Lan, true) => c.topo.heal_all(),
    }
}

/// Undoes every network fault and brings the fence daemon back.
pub fn heal_network(c: &mut Cluster) {
    c.topo.heal_all();
    for h in c.topo.hosts() {
        h.link_up();
    }
    if c.opts.links == 2 {
        // A powered-off node's end stays down until it boots.
        for n in c.nodes.iter().filter(|n| n.is_on()) {
            n.set_crossover(true);
        }
    }
    if c.fence.as_ref().is_none_or(|p| !p.is_running()) {
        c.start_fence_daemon();
    }
}

/// What [`heal_nodes`] found and did.
#[derive(Debug, Default)]
pub struct Healed {
    /// Nodes found powered off and booted.
    pub booted: Vec<String>,
    /// Nodes whose agent had stopped although the campaign did not kill it (a crash, or
    /// an exit the agent decided by itself), with its last log lines.
    pub agent_exited: Vec<(String, String)>,
}

/// What the operator would do for a node that is down: boot a powered-off node (also one
/// fenced meanwhile), resume a stopped agent, start an agent that is not running. `killed`
/// names the node whose agent the campaign killed (so its absence is expected).
pub fn heal_nodes(c: &Cluster, killed: Option<&str>) -> Healed {
    let mut h = Healed::default();
    for n in &c.nodes {
        if !n.is_on() {
            let at = super::utc_now();
            n.boot();
            h.booted.push(format!("{}@{at}", n.name()));
            continue;
        }
        signal_agent(n, Signal::SIGCONT);
        if n.unit_has_processes(AGENT) {
            continue;
        }
        let Some(out) = n.try_run(&["systemctl", "show", "-p", "ActiveState", "--value", AGENT])
        else {
            continue; // powered off meanwhile: booted next round
        };
        let state = out.stdout.trim().to_string();
        if !out.ok() || matches!(state.as_str(), "activating" | "active" | "reloading") {
            continue;
        }
        if killed != Some(n.name()) {
            let log = n.log("agent.log");
            let tail: Vec<&str> = log.lines().rev().take(15).collect();
            let tail: Vec<&str> = tail.into_iter().rev().collect();
            h.agent_exited.push((
                n.name().to_string(),
                format!("{state}: {}", tail.join("\n")),
            ));
        }
        let _ = n.try_run(&["systemctl", "start", AGENT]);
    }
    h
}
