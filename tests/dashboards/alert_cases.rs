//! Scenarios for the alert rules (deploy/prometheus/oneha-alerts.yml): a healthy cluster of
//! three agents (front-ends n1, the owner, and n2, witness w) as Prometheus would scrape it,
//! and for each alert a change of that cluster under which it must fire, or must not. They
//! become a `promtool test rules` file (tests/dashboards/promtool.rs); tests/dashboards.rs also
//! checks each synthetic series against a real agent's `/metrics` (names and label names).

#![allow(dead_code)]

/// The members: (name, role).
pub const MEMBERS: [(&str, &str); 3] = [("n1", "frontend"), ("n2", "frontend"), ("w", "witness")];
/// The cluster name in `oneha_info`.
pub const CLUSTER: &str = "prod";
/// Samples per series (one a minute): long enough for the `for: 1h` alert.
const SAMPLES: usize = 120;

/// One input series: name, labels besides `job`/`instance`, the agent it is scraped from, and
/// its values in promtool's notation (`1x120`, `0 1x120`, `_x3 3x120`).
#[derive(Debug, Clone)]
pub struct Series {
    /// Metric name.
    pub name: String,
    /// The agent (`n1`...): its instance label is `{agent}:9400`.
    pub agent: String,
    /// Labels other than job and instance.
    pub labels: Vec<(String, String)>,
    /// promtool values.
    pub values: String,
}

impl Series {
    /// The series in PromQL notation, with job and instance.
    pub fn selector(&self) -> String {
        let mut l = vec![
            format!("job=\"oneha\""),
            format!("instance=\"{}:9400\"", self.agent),
        ];
        l.extend(self.labels.iter().map(|(k, v)| format!("{k}=\"{v}\"")));
        format!("{}{{{}}}", self.name, l.join(", "))
    }
}

/// The scraped cluster.
#[derive(Debug, Clone, Default)]
pub struct World {
    /// Every series.
    pub series: Vec<Series>,
}

fn constant(v: u64) -> String {
    format!("{v}x{SAMPLES}")
}

/// `from` at the first sample, `to` from the second on.
pub fn step(from: u64, to: u64) -> String {
    format!("{from} {to}x{SAMPLES}")
}

impl World {
    /// A healthy cluster: every agent up, quorate, the group started on n1, no fencing, no
    /// VM-HA case, both links between every pair up.
    pub fn healthy() -> World {
        let mut w = World::default();
        for (agent, _) in MEMBERS {
            let add = |w: &mut World, name: &str, labels: &[(&str, &str)], v: u64| {
                w.add(agent, name, labels, &constant(v));
            };
            add(&mut w, "up", &[], 1);
            add(
                &mut w,
                "oneha_info",
                &[
                    ("cluster", CLUSTER),
                    ("node", agent),
                    ("topology", "2 front-ends + 1 witness"),
                ],
                1,
            );
            add(&mut w, "oneha_voters", &[], 3);
            add(&mut w, "oneha_voters_up", &[], 3);
            add(&mut w, "oneha_raft_has_leader", &[], 1);
            add(&mut w, "oneha_notices", &[], 0);
            for s in oneha::metrics::GROUP_STATES {
                add(
                    &mut w,
                    "oneha_group_state",
                    &[("state", s)],
                    (s == "started") as u64,
                );
            }
            for (m, role) in MEMBERS {
                add(
                    &mut w,
                    "oneha_member_up",
                    &[("member", m), ("role", role)],
                    1,
                );
                if role == "frontend" {
                    add(
                        &mut w,
                        "oneha_group_owner",
                        &[("node", m)],
                        (m == "n1") as u64,
                    );
                }
                if m != agent {
                    for link in ["1", "2"] {
                        add(
                            &mut w,
                            "oneha_peer_link_up",
                            &[("peer", m), ("link", link)],
                            1,
                        );
                    }
                }
            }
            add(&mut w, "oneha_group_generation", &[], 5);
            add(&mut w, "oneha_group_waiting_for", &[], 0);
            add(&mut w, "oneha_fence_in_progress", &[], 0);
            add(&mut w, "oneha_peer_frames_rejected_total", &[], 0);
            add(&mut w, "oneha_peer_handshakes_refused_total", &[], 0);
            add(&mut w, "oneha_vm_ha_cases_open", &[], 0);
            add(&mut w, "oneha_vm_ha_fence_blocked", &[], 0);
        }
        w
    }

    /// Adds a series.
    pub fn add(&mut self, agent: &str, name: &str, labels: &[(&str, &str)], values: &str) {
        self.series.push(Series {
            name: name.into(),
            agent: agent.into(),
            labels: labels
                .iter()
                .map(|(k, v)| (k.to_string(), v.to_string()))
                .collect(),
            values: values.into(),
        });
    }

    /// Sets the values of the series `name` of the agents in `agents` (all when empty) whose
    /// labels include `labels`; panics when none matches (a scenario that changes nothing).
    pub fn set(&mut self, agents: &[&str], name: &str, labels: &[(&str, &str)], values: &str) {
        let mut n = 0;
        for s in &mut self.series {
            let agent_ok = agents.is_empty() || agents.contains(&s.agent.as_str());
            let labels_ok = labels
                .iter()
                .all(|(k, v)| s.labels.iter().any(|(a, b)| a == k && b == v));
            if s.name == name && agent_ok && labels_ok {
                s.values = values.into();
                n += 1;
            }
        }
        assert!(n > 0, "no series {name} {labels:?} on {agents:?}");
    }

    /// Sets one label of every series `name`.
    pub fn relabel(&mut self, name: &str, label: &str, value: &str) {
        for s in self.series.iter_mut().filter(|s| s.name == name) {
            for (k, v) in &mut s.labels {
                if k == label {
                    *v = value.into();
                }
            }
        }
    }

    /// Removes every series `name`.
    pub fn drop(&mut self, name: &str) {
        self.series.retain(|s| s.name != name);
    }
}

/// One scenario: the cluster changed by `edit`, evaluated at `eval`; `alert` fires with
/// exactly `labels` (besides alertname and severity), or does not fire when `labels` is None.
pub struct Case {
    /// What it shows.
    pub what: &'static str,
    /// The alert checked; `*`: every alert of the file (none may fire).
    pub alert: &'static str,
    /// promtool eval_time.
    pub eval: &'static str,
    /// The change from a healthy cluster.
    pub edit: fn(&mut World, &Topologies),
    /// The alert's labels when it fires.
    pub labels: Option<&'static [(&'static str, &'static str)]>,
    /// `{{ $value }}` when the annotations use it.
    pub value: Option<&'static str>,
}

/// Topology names the agent reports (`oneha_info{topology}`), from the real configs.
pub struct Topologies {
    /// Two front-ends without a witness.
    pub two_node: String,
}

const N1: &str = "n1:9400";
const N2: &str = "n2:9400";

/// Every scenario.
pub fn cases() -> Vec<Case> {
    let c = |what, alert, eval, edit, labels, value| Case {
        what,
        alert,
        eval,
        edit,
        labels,
        value,
    };
    vec![
        c("healthy: nothing fires", "*", "100m", |_, _| {}, None, None),
        c(
            "n2 not scraped",
            "OnehaAgentDown",
            "5m",
            |w, _| w.set(&["n2"], "up", &[], &step(1, 0)),
            Some(&[("job", "oneha"), ("instance", N2)]),
            None,
        ),
        c(
            "no target at all",
            "OnehaNoTargets",
            "15m",
            |w, _| w.drop("up"),
            Some(&[("job", "oneha")]),
            None,
        ),
        c(
            "n1 and w no longer hear n2",
            "OnehaMemberDown",
            "5m",
            |w, _| {
                w.set(
                    &["n1", "w"],
                    "oneha_member_up",
                    &[("member", "n2")],
                    &step(1, 0),
                )
            },
            Some(&[("cluster", CLUSTER), ("member", "n2")]),
            None,
        ),
        c(
            "n1 shows two notices",
            "OnehaNotices",
            "15m",
            |w, _| w.set(&["n1"], "oneha_notices", &[], &step(0, 2)),
            Some(&[("job", "oneha"), ("instance", N1)]),
            Some("2"),
        ),
        c(
            "w hears one voter of three",
            "OnehaQuorumLost",
            "5m",
            |w, _| w.set(&["w"], "oneha_voters_up", &[], &step(3, 1)),
            Some(&[("job", "oneha"), ("instance", "w:9400")]),
            Some("1"),
        ),
        c(
            "two-node: one voter of two is no quorum alert",
            "OnehaQuorumLost",
            "5m",
            |w, t| {
                w.relabel("oneha_info", "topology", &t.two_node);
                w.set(&[], "oneha_voters", &[], &constant(2));
                w.set(&["n1"], "oneha_voters_up", &[], &step(2, 1));
            },
            None,
            None,
        ),
        c(
            "n2 knows no leader",
            "OnehaNoRaftLeader",
            "5m",
            |w, _| w.set(&["n2"], "oneha_raft_has_leader", &[], &step(1, 0)),
            Some(&[("job", "oneha"), ("instance", N2)]),
            None,
        ),
        c(
            "the group failed",
            "OnehaGroupFailed",
            "5m",
            |w, _| {
                w.set(
                    &[],
                    "oneha_group_state",
                    &[("state", "started")],
                    &step(1, 0),
                );
                w.set(
                    &[],
                    "oneha_group_state",
                    &[("state", "failed")],
                    &step(0, 1),
                );
            },
            Some(&[("cluster", CLUSTER)]),
            None,
        ),
        c(
            "the group stopped",
            "OnehaGroupNotRunning",
            "10m",
            |w, _| {
                w.set(
                    &[],
                    "oneha_group_state",
                    &[("state", "started")],
                    &step(1, 0),
                );
                w.set(
                    &[],
                    "oneha_group_state",
                    &[("state", "stopped")],
                    &step(0, 1),
                );
            },
            Some(&[("cluster", CLUSTER), ("state", "stopped")]),
            None,
        ),
        c(
            "frozen for 90 minutes",
            "OnehaGroupInMaintenance",
            "90m",
            |w, _| {
                w.set(
                    &[],
                    "oneha_group_state",
                    &[("state", "started")],
                    &step(1, 0),
                );
                w.set(
                    &[],
                    "oneha_group_state",
                    &[("state", "frozen")],
                    &step(0, 1),
                );
            },
            Some(&[("cluster", CLUSTER), ("state", "frozen")]),
            None,
        ),
        c(
            "n2 waits for n1 to be fenced",
            "OnehaTakeoverBlockedOnFencing",
            "5m",
            |w, _| w.set(&["n2"], "oneha_group_waiting_for", &[], &step(0, 1)),
            Some(&[("cluster", CLUSTER)]),
            Some("1"),
        ),
        c(
            "n2 fails to fence n1",
            "OnehaFenceFailing",
            "10m",
            |w, _| {
                let l = [
                    ("target", "n1"),
                    ("method", "xvm"),
                    ("action", "off"),
                    ("result", "failure"),
                ];
                w.add("n2", "oneha_fence_attempts_total", &l, "0+1x120");
            },
            Some(&[
                ("instance", N2),
                ("target", "n1"),
                ("method", "xvm"),
                ("action", "off"),
            ]),
            None,
        ),
        c(
            "a successful fence is no failure",
            "OnehaFenceFailing",
            "10m",
            |w, _| {
                let l = [
                    ("target", "n1"),
                    ("method", "xvm"),
                    ("action", "off"),
                    ("result", "success"),
                ];
                w.add("n2", "oneha_fence_attempts_total", &l, "0 1x120");
            },
            None,
            None,
        ),
        c(
            "n2 fencing for 10 minutes",
            "OnehaFenceInProgress",
            "10m",
            |w, _| w.set(&["n2"], "oneha_fence_in_progress", &[], &step(0, 1)),
            Some(&[("job", "oneha"), ("instance", N2)]),
            None,
        ),
        c(
            "link 2 from n1 to n2 down, n2 up",
            "OnehaPeerLinkDown",
            "5m",
            |w, _| {
                w.set(
                    &["n1"],
                    "oneha_peer_link_up",
                    &[("peer", "n2"), ("link", "2")],
                    &step(1, 0),
                )
            },
            Some(&[
                ("job", "oneha"),
                ("instance", N1),
                ("peer", "n2"),
                ("link", "2"),
            ]),
            None,
        ),
        c(
            "n2 down: its links are no link alert",
            "OnehaPeerLinkDown",
            "5m",
            |w, _| {
                w.set(
                    &["n1"],
                    "oneha_peer_link_up",
                    &[("peer", "n2")],
                    &step(1, 0),
                );
                w.set(&["n1"], "oneha_member_up", &[("member", "n2")], &step(1, 0));
            },
            None,
            None,
        ),
        c(
            "n1 rejects frames",
            "OnehaPeerFramesRejected",
            "5m",
            |w, _| {
                w.set(
                    &["n1"],
                    "oneha_peer_frames_rejected_total",
                    &[],
                    "0 0 5x120",
                )
            },
            Some(&[("job", "oneha"), ("instance", N1)]),
            None,
        ),
        c(
            "a hypervisor cannot be fenced",
            "OnehaVmHaFenceBlocked",
            "5m",
            |w, _| {
                w.set(&[], "oneha_vm_ha_cases_open", &[], &step(0, 1));
                w.set(&[], "oneha_vm_ha_fence_blocked", &[], &step(0, 1));
            },
            Some(&[("cluster", CLUSTER)]),
            Some("1"),
        ),
        c(
            "a VM-HA case open for 40 minutes",
            "OnehaVmHaCaseOpen",
            "40m",
            |w, _| w.set(&[], "oneha_vm_ha_cases_open", &[], &step(0, 1)),
            Some(&[("cluster", CLUSTER)]),
            Some("1"),
        ),
        c(
            "n1 took over and found 3 stuck VMs",
            "OnehaStuckVms",
            "20m",
            |w, _| {
                w.set(&[], "oneha_group_generation", &[], "4x3 5x120");
                w.add("n1", "oneha_stuck_vms", &[], "_x3 3x120");
            },
            Some(&[("job", "oneha"), ("instance", N1)]),
            Some("3"),
        ),
        c(
            "an old report on a standby is no alert",
            "OnehaStuckVms",
            "20m",
            |w, _| {
                w.set(&[], "oneha_group_generation", &[], "4x3 5x120");
                w.add("n2", "oneha_stuck_vms", &[], &constant(3));
            },
            None,
            None,
        ),
        c(
            "an old report without a takeover is no alert",
            "OnehaStuckVms",
            "20m",
            |w, _| w.add("n1", "oneha_stuck_vms", &[], &constant(3)),
            None,
            None,
        ),
    ]
}
