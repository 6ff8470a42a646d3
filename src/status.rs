//! `oneha status`: the cluster as one node sees it, as data (`--json`) and as a table in
//! the spirit of rgmanager's `clustat`.

use std::fmt::Write as _;

use serde::{Deserialize, Serialize};

mod links;
mod text;
pub use links::LinkStatus;
pub use text::{WIDTH, fmt_time, shorten};
use text::{ago, resources_line};

/// The whole status report.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct StatusReport {
    /// Cluster name.
    pub cluster: String,
    /// The node that answered.
    pub node: String,
    /// Topology in words.
    pub topology: String,
    /// Quorum as this node sees it.
    pub quorum: String,
    /// Raft state on this node.
    pub raft: RaftStatus,
    /// Every member.
    pub members: Vec<MemberStatus>,
    /// The resource group.
    pub group: GroupStatus,
    /// Fencing: journal and what is in progress.
    pub fencing: FencingStatus,
    /// Free-form warnings an operator should read (wait-for-all, split, fencing failing...).
    pub notices: Vec<String>,
    /// Summary of the last stuck-VM report, if any.
    #[serde(default, skip_serializing_if = "Option::is_none")]
    pub stuck_vms: Option<serde_json::Value>,
    /// Peer transport counters.
    pub transport: TransportCounters,
    /// Open VM-HA cases (`oneha host-error`).
    #[serde(default)]
    pub vm_ha: Vec<VmHaCaseStatus>,
}

/// One open VM-HA case, for status and metrics.
#[derive(Debug, Clone, Serialize, Deserialize, PartialEq, Eq)]
pub struct VmHaCaseStatus {
    /// Case id.
    pub id: u64,
    /// Host name.
    pub host: String,
    /// Its state in a few words.
    pub state: String,
    /// Failed fence rounds so far (the host's VMs are untouched until one succeeds).
    pub fence_failures: u32,
}

/// Raft state on the answering node.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct RaftStatus {
    /// `leader`, `follower`, `candidate`, `pre-candidate`.
    pub role: String,
    /// Current term.
    pub term: u64,
    /// Leader name, if known.
    pub leader: Option<String>,
    /// Commit index.
    pub commit: u64,
    /// Applied index.
    pub applied: u64,
    /// Last log index.
    pub last_index: u64,
    /// Entries kept in the log.
    pub log_entries: usize,
    /// Voter names.
    pub voters: Vec<String>,
}

/// One member.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct MemberStatus {
    /// Name.
    pub name: String,
    /// Raft id.
    pub id: u64,
    /// `frontend` or `witness`.
    pub role: String,
    /// Whether this is the answering node.
    pub local: bool,
    /// Up, as failover counts it (`policy::liveness`): heard directly within the peer
    /// timeout, or heard by a member this node hears (always true for the local node).
    pub up: bool,
    /// Heard directly within the peer timeout (false while up only through another member:
    /// a partition between this node and it).
    #[serde(default)]
    pub direct: bool,
    /// Milliseconds since last heard from (None: never since the agent started).
    pub last_contact_ms: Option<u64>,
    /// Whether it votes in Raft now.
    pub voter: bool,
    /// Its own report of its resources (name -> state), from gossip.
    pub resources: Vec<(String, String)>,
    /// Each link towards it (empty for the local node).
    #[serde(default)]
    pub links: Vec<LinkStatus>,
}

/// The group.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct GroupStatus {
    /// started, starting, stopping, stopped, disabled, frozen, recovering, failed.
    pub state: String,
    /// Owner name.
    pub owner: Option<String>,
    /// Owner generation.
    pub generation: u64,
    /// Why the owner is what it is.
    pub reason: String,
    /// Nodes that must release or be fenced before the owner may start.
    pub waiting_for: Vec<String>,
    /// Pending relocation target (`*` = any).
    pub relocating_to: Option<String>,
    /// Enabled by the operator.
    pub enabled: bool,
    /// Maintenance mode.
    pub frozen: bool,
    /// Failed stops and starts, by node.
    pub failures: Vec<(String, String)>,
    /// In-place restarts requested so far (`oneha restart`).
    pub restarts_requested: u64,
}

/// Fencing state.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct FencingStatus {
    /// Last journal lines, newest last.
    pub journal: Vec<FenceLine>,
    /// What this node is doing or waiting for (e.g. "fencing node1 with kvm: retry in 4s").
    pub in_progress: Option<String>,
}

/// One journal line, with names.
#[derive(Debug, Clone, Serialize, Deserialize)]
pub struct FenceLine {
    /// Fenced node.
    pub target: String,
    /// Who fenced.
    pub by: String,
    /// Method/device.
    pub method: String,
    /// Action.
    pub action: String,
    /// Outcome.
    pub success: bool,
    /// Detail or error.
    pub detail: String,
    /// When (ms since epoch).
    pub at_ms: u64,
}

/// Transport counters.
#[derive(Debug, Clone, Serialize, Deserialize, Default)]
pub struct TransportCounters {
    /// Frames accepted.
    pub frames_in: u64,
    /// Frames sent.
    pub frames_out: u64,
    /// Frames rejected (bad key, replay...).
    pub rejected: u64,
    /// Raft messages dropped (full queue, peer down).
    pub dropped: u64,
    /// Peer handshakes refused (wrong or old key, older agent, garbage).
    #[serde(default)]
    pub handshakes_refused: u64,
    /// Unauthenticated connections closed (over the limit, or no handshake in time).
    #[serde(default)]
    pub unauth_refused: u64,
}

impl StatusReport {
    /// The clustat-like text: one line per member, each line within about [`WIDTH`]
    /// columns; long errors are shortened (whole in [`StatusReport::render_verbose`] and
    /// `--json`).
    pub fn render(&self) -> String {
        self.render_with(false)
    }

    /// The clustat-like text with every error whole and each member's resources one per line.
    pub fn render_verbose(&self) -> String {
        self.render_with(true)
    }

    fn render_with(&self, verbose: bool) -> String {
        let cut = |text: &str, used: usize| {
            if verbose {
                text.to_string()
            } else {
                shorten(text, WIDTH.saturating_sub(used))
            }
        };
        let mut o = String::new();
        let _ = writeln!(
            o,
            "Cluster {} ({}), seen from {}: {}",
            self.cluster, self.topology, self.node, self.quorum
        );
        let r = &self.raft;
        let _ = writeln!(
            o,
            "Raft: {} term {}, leader {}, commit {}, applied {}, log {} entries",
            r.role,
            r.term,
            r.leader.as_deref().unwrap_or("none"),
            r.commit,
            r.applied,
            r.log_entries
        );
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            " {:<16} {:>3}  {:<9} {:<7} {:<14} Resources",
            "Member", "ID", "Role", "Status", "Last contact"
        );
        let _ = writeln!(
            o,
            " {:<16} {:>3}  {:<9} {:<7} {:<14} ---------",
            "------", "--", "----", "------", "------------"
        );
        for m in &self.members {
            let name = if m.local {
                format!("{} (local)", m.name)
            } else {
                m.name.clone()
            };
            let role = if m.voter {
                m.role.clone()
            } else {
                format!("{}*", m.role)
            };
            let status = match (m.up, m.direct || m.local) {
                (true, true) => "Online",
                (true, false) => "Relayed",
                (false, _) => "Offline",
            };
            let contact = if m.local {
                "-".to_string()
            } else {
                ago(m.last_contact_ms)
            };
            let head = format!(
                " {name:<16} {:>3}  {role:<9} {status:<7} {contact:<14} ",
                m.id
            );
            if verbose {
                let _ = writeln!(o, "{}", head.trim_end());
                for l in links::verbose(&m.links) {
                    let _ = writeln!(o, "     {l}");
                }
                for (n, s) in &m.resources {
                    let _ = writeln!(o, "     {n}: {s}");
                }
            } else {
                let room = WIDTH.saturating_sub(head.chars().count());
                let _ = writeln!(o, "{head}{}", resources_line(&m.resources, room));
                let links = links::compact(&m.links);
                if !links.is_empty() {
                    let _ = writeln!(o, "     {links}");
                }
            }
        }
        if self.members.iter().any(|m| !m.voter) {
            let _ = writeln!(o, " (* not a Raft voter now)");
        }
        let g = &self.group;
        let _ = writeln!(o);
        let _ = writeln!(
            o,
            "Group: {}  owner {}  generation {}{}",
            g.state,
            g.owner.as_deref().unwrap_or("(none)"),
            g.generation,
            if g.reason.is_empty() {
                String::new()
            } else {
                format!("  ({})", g.reason)
            }
        );
        if !g.waiting_for.is_empty() {
            let _ = writeln!(
                o,
                "  waiting for {} to release or be fenced",
                g.waiting_for.join(", ")
            );
        }
        if let Some(to) = &g.relocating_to {
            let _ = writeln!(o, "  relocation requested to {to}");
        }
        for (node, why) in &g.failures {
            let head = format!("  failure on {node}: ");
            let _ = writeln!(o, "{head}{}", cut(why, head.chars().count()));
        }
        if let Some(p) = &self.fencing.in_progress {
            let _ = writeln!(o, "Fencing: {p}");
        }
        if !self.fencing.journal.is_empty() {
            let _ = writeln!(o, "Fence journal (newest last):");
            for l in self.fencing.journal.iter().rev().take(5).rev() {
                let line = format!(
                    "  {} {} by {} via {} {}: {}{}",
                    fmt_time(l.at_ms),
                    l.target,
                    l.by,
                    l.method,
                    l.action,
                    if l.success { "success" } else { "FAILED" },
                    if l.detail.is_empty() {
                        String::new()
                    } else {
                        format!(" ({})", l.detail)
                    }
                );
                let _ = writeln!(o, "{}", cut(&line, 0));
            }
        }
        if let Some(s) = &self.stuck_vms {
            let when = s
                .get("generated_at")
                .and_then(|v| v.as_str())
                .unwrap_or("?");
            let what = s.get("summary").and_then(|v| v.as_str()).unwrap_or("?");
            let _ = writeln!(
                o,
                "Stuck-VM report ({when}): {what}; details: `oneha stuck-vms`"
            );
        }
        for c in &self.vm_ha {
            let _ = writeln!(
                o,
                "VM HA case {} host {}: {}",
                c.id,
                crate::vmha::sanitize(&c.host, 40),
                crate::vmha::sanitize(&c.state, 100)
            );
        }
        for n in &self.notices {
            let _ = writeln!(o, "! {n}");
        }
        if self.transport.rejected > 0 {
            let _ = writeln!(
                o,
                "! {} peer frames rejected (wrong key or forged): see the agent's log",
                self.transport.rejected
            );
        }
        if self.transport.handshakes_refused > 0 {
            let _ = writeln!(
                o,
                "! {} peer handshakes refused (wrong or old cluster key, older oneha): see \
                 the agent's log",
                self.transport.handshakes_refused
            );
        }
        o
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn formats_times() {
        assert_eq!(fmt_time(0), "1970-01-01T00:00:00Z");
        assert_eq!(fmt_time(1_795_304_096_000), "2026-11-21T23:34:56Z");
        assert_eq!(fmt_time(951_782_400_000), "2000-02-29T00:00:00Z");
    }

    /// The answering node, id 1, a front-end with `resources`.
    fn local_member(name: &str, resources: Vec<(String, String)>) -> MemberStatus {
        MemberStatus {
            name: name.into(),
            id: 1,
            role: "frontend".into(),
            local: true,
            up: true,
            direct: true,
            last_contact_ms: None,
            voter: true,
            resources,
            links: vec![],
        }
    }

    #[test]
    fn renders_members_and_group() {
        let r = StatusReport {
            cluster: "one".into(),
            node: "a".into(),
            topology: "two front-ends + witness".into(),
            quorum: "quorate (3 of 3 voters up)".into(),
            raft: RaftStatus {
                role: "leader".into(),
                term: 4,
                leader: Some("a".into()),
                commit: 9,
                applied: 9,
                last_index: 9,
                log_entries: 9,
                voters: vec!["a".into(), "b".into(), "w".into()],
            },
            members: vec![
                local_member("a", vec![("vip".into(), "running".into())]),
                MemberStatus {
                    name: "b".into(),
                    id: 2,
                    role: "frontend".into(),
                    local: false,
                    up: false,
                    direct: false,
                    last_contact_ms: Some(4200),
                    voter: false,
                    resources: vec![],
                    links: vec![
                        LinkStatus {
                            link: 1,
                            address: "192.0.2.2:7400".into(),
                            up: false,
                            last_heard_ms: None,
                        },
                        LinkStatus {
                            link: 2,
                            address: "[2001:db8:2::2]:7400".into(),
                            up: false,
                            last_heard_ms: Some(4200),
                        },
                    ],
                },
            ],
            group: GroupStatus {
                state: "started".into(),
                owner: Some("a".into()),
                generation: 3,
                reason: "b lost".into(),
                waiting_for: vec![],
                relocating_to: None,
                enabled: true,
                frozen: false,
                failures: vec![],
                restarts_requested: 0,
            },
            fencing: FencingStatus::default(),
            notices: vec!["hello".into()],
            stuck_vms: None,
            transport: TransportCounters {
                rejected: 2,
                ..Default::default()
            },
            vm_ha: vec![],
        };
        let text = r.render();
        assert!(text.contains("a (local)"), "{text}");
        assert!(text.contains("vip=running"), "{text}");
        assert!(
            text.contains("Offline") && text.contains("4.2s ago"),
            "{text}"
        );
        assert!(text.contains("frontend*"), "{text}");
        assert!(text.contains("\n     links 1:DOWN 2:DOWN\n"), "{text}");
        let verbose = r.render_verbose();
        assert!(
            verbose.contains("link 1 192.0.2.2:7400  DOWN  last heard never")
                && verbose.contains("link 2 [2001:db8:2::2]:7400  DOWN  last heard 4.2s ago"),
            "{verbose}"
        );
        assert!(
            text.contains("Group: started  owner a  generation 3  (b lost)"),
            "{text}"
        );
        assert!(text.contains("2 peer frames rejected"), "{text}");
        assert!(text.contains("! hello"), "{text}");
        // Up only through another member (what failover counts as up): said as such.
        let mut r = r;
        r.members[1].up = true;
        let text = r.render();
        assert!(
            text.contains("Relayed") && !text.contains("Offline"),
            "{text}"
        );
    }

    /// Long resource errors kept each member's line at about 500 characters, the same error
    /// once per resource and again under the group.
    #[test]
    fn long_errors_are_shortened_in_the_table_and_whole_in_verbose() {
        let error = format!(
            "monitor failed: {}",
            "cannot talk to systemd over D-Bus ".repeat(12)
        );
        let resources: Vec<(String, String)> = ["vip", "oned", "sunstone", "gate", "flow"]
            .iter()
            .map(|n| (n.to_string(), error.clone()))
            .collect();
        let member = local_member("one-server1", resources);
        let r = StatusReport {
            cluster: "one".into(),
            node: "one-server1".into(),
            topology: "two front-ends".into(),
            quorum: "quorate".into(),
            raft: RaftStatus {
                role: "leader".into(),
                term: 1,
                leader: None,
                commit: 1,
                applied: 1,
                last_index: 1,
                log_entries: 1,
                voters: vec![],
            },
            members: vec![member],
            group: GroupStatus {
                state: "failed".into(),
                owner: None,
                generation: 1,
                reason: String::new(),
                waiting_for: vec![],
                relocating_to: None,
                enabled: true,
                frozen: false,
                failures: vec![("one-server1".into(), error.clone())],
                restarts_requested: 0,
            },
            fencing: FencingStatus::default(),
            notices: vec![],
            stuck_vms: None,
            transport: TransportCounters::default(),
            vm_ha: vec![],
        };
        let text = r.render();
        let member_line = text.lines().find(|l| l.contains("one-server1 (local)"));
        let member_line = member_line.unwrap_or_else(|| panic!("no member line: {text}"));
        assert!(
            member_line.ends_with("5 monitor failed (more: -v)"),
            "{member_line}"
        );
        assert!(text.lines().all(|l| l.chars().count() <= WIDTH), "{text}");
        let few = resources_line(&r.members[0].resources[..2], 60);
        assert_eq!(few, "vip,oned=monitor failed (more: -v)");
        let verbose = r.render_verbose();
        assert_eq!(verbose.matches(error.as_str()).count(), 6, "{verbose}");
    }
}
