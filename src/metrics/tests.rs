use std::collections::{BTreeMap, HashSet};
use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::sync::Arc;
use std::time::Duration;

use super::*;
use crate::status::{
    FenceLine, FencingStatus, GroupStatus, LinkStatus, MemberStatus, RaftStatus, StatusReport,
    TransportCounters,
};

fn member(name: &str, id: u64, role: &str, local: bool, up: bool) -> MemberStatus {
    MemberStatus {
        name: name.into(),
        id,
        role: role.into(),
        local,
        up,
        direct: up,
        last_contact_ms: if local { None } else { Some(1500) },
        voter: true,
        resources: vec![],
        links: vec![],
    }
}

fn report() -> StatusReport {
    let mut n1 = member("node1", 1, "frontend", true, true);
    n1.resources = vec![
        ("vip".into(), "running".into()),
        ("oned".into(), "failed: \"exit 1\"\nsee C:\\log".into()),
    ];
    StatusReport {
        cluster: "one \"prod\"".into(),
        node: "node1".into(),
        topology: "2 front-ends + 1 witness".into(),
        quorum: "quorate (2 of 3 voters up)".into(),
        raft: RaftStatus {
            role: "leader".into(),
            term: 7,
            leader: Some("node1".into()),
            commit: 42,
            applied: 41,
            last_index: 42,
            log_entries: 12,
            voters: vec!["node1".into(), "node2".into(), "w".into()],
        },
        members: vec![
            n1,
            member("node2", 2, "frontend", false, false),
            MemberStatus {
                links: vec![
                    LinkStatus {
                        link: 1,
                        address: "192.0.2.3:7400".into(),
                        up: false,
                        last_heard_ms: None,
                    },
                    LinkStatus {
                        link: 2,
                        address: "[2001:db8:2::3]:7400".into(),
                        up: true,
                        last_heard_ms: Some(250),
                    },
                ],
                ..member("w", 3, "witness", false, true)
            },
        ],
        group: GroupStatus {
            state: "started".into(),
            owner: Some("node1".into()),
            generation: 5,
            reason: "node2 lost".into(),
            waiting_for: vec![],
            relocating_to: None,
            enabled: true,
            frozen: false,
            failures: vec![("node2".into(), "stop failed".into())],
            restarts_requested: 2,
        },
        fencing: FencingStatus {
            journal: vec![
                fence_line("node2", false, 1_000_000),
                fence_line("node2", true, 1_005_000),
            ],
            in_progress: None,
        },
        notices: vec!["x".into()],
        stuck_vms: Some(serde_json::json!({"stuck": 3, "summary": "3 stuck"})),
        transport: TransportCounters {
            frames_in: 100,
            frames_out: 90,
            rejected: 4,
            dropped: 1,
            handshakes_refused: 2,
            unauth_refused: 3,
        },
        vm_ha: vec![],
    }
}

fn fence_line(target: &str, success: bool, at_ms: u64) -> FenceLine {
    FenceLine {
        target: target.into(),
        by: "node1".into(),
        method: "xvm".into(),
        action: "off".into(),
        success,
        detail: String::new(),
        at_ms,
    }
}

/// Checks the text against the exposition format rules the scrapers enforce, and returns
/// every sample as (name, labels text, value).
fn parse(text: &str) -> Vec<(String, String, String)> {
    let mut typed: BTreeMap<String, String> = BTreeMap::new();
    let mut helped = HashSet::new();
    let mut samples = Vec::new();
    for line in text.lines() {
        if let Some(rest) = line.strip_prefix("# HELP ") {
            let name = rest.split(' ').next().unwrap().to_string();
            assert!(helped.insert(name.clone()), "HELP twice for {name}");
            continue;
        }
        if let Some(rest) = line.strip_prefix("# TYPE ") {
            let mut p = rest.split(' ');
            let name = p.next().unwrap().to_string();
            let kind = p.next().unwrap().to_string();
            assert!(
                ["gauge", "counter", "histogram"].contains(&kind.as_str()),
                "{line}"
            );
            assert!(helped.contains(&name), "TYPE before HELP: {line}");
            assert!(typed.insert(name, kind).is_none(), "TYPE twice: {line}");
            continue;
        }
        assert!(!line.starts_with('#'), "{line}");
        let (name, rest) = match line.find(['{', ' ']) {
            Some(i) => line.split_at(i),
            None => panic!("no value: {line}"),
        };
        assert!(
            name.chars()
                .all(|c| c.is_ascii_alphanumeric() || c == '_' || c == ':'),
            "bad name {name}"
        );
        let family = ["_bucket", "_sum", "_count"]
            .iter()
            .find_map(|s| {
                name.strip_suffix(s)
                    .filter(|f| typed.get(*f).map(String::as_str) == Some("histogram"))
            })
            .unwrap_or(name);
        let kind = typed
            .get(family)
            .unwrap_or_else(|| panic!("sample before TYPE: {line}"));
        if kind == "counter" {
            assert!(name.ends_with("_total"), "counter {name} without _total");
        }
        let (labels, value) = match rest.strip_prefix('{') {
            Some(r) => {
                let end = r
                    .rfind("} ")
                    .unwrap_or_else(|| panic!("unclosed labels: {line}"));
                (r[..end].to_string(), r[end + 2..].to_string())
            }
            None => (String::new(), rest.trim().to_string()),
        };
        assert!(
            value.parse::<f64>().is_ok() || ["+Inf", "-Inf", "NaN"].contains(&value.as_str()),
            "bad value {value}"
        );
        samples.push((name.to_string(), labels, value));
    }
    samples
}

fn value(samples: &[(String, String, String)], name: &str, labels: &str) -> String {
    samples
        .iter()
        .find(|(n, l, _)| n == name && l == labels)
        .map(|(_, _, v)| v.clone())
        .unwrap_or_else(|| panic!("no sample {name}{{{labels}}}"))
}

#[test]
fn renders_status_in_the_exposition_format() {
    let text = render(&report(), &Counters::new());
    let s = parse(&text);
    assert_eq!(value(&s, "oneha_raft_role", r#"role="leader""#), "1");
    assert_eq!(value(&s, "oneha_raft_role", r#"role="follower""#), "0");
    assert_eq!(value(&s, "oneha_raft_term", ""), "7");
    assert_eq!(value(&s, "oneha_raft_leader", r#"leader="node1""#), "1");
    assert_eq!(value(&s, "oneha_voters", ""), "3");
    assert_eq!(value(&s, "oneha_voters_up", ""), "2");
    assert_eq!(
        value(&s, "oneha_member_up", r#"member="node2",role="frontend""#),
        "0"
    );
    assert_eq!(
        value(&s, "oneha_member_last_contact_seconds", r#"member="node2""#),
        "1.5"
    );
    assert_eq!(value(&s, "oneha_peer_link_up", r#"peer="w",link="1""#), "0");
    assert_eq!(value(&s, "oneha_peer_link_up", r#"peer="w",link="2""#), "1");
    assert_eq!(
        value(
            &s,
            "oneha_peer_link_last_heard_seconds",
            r#"peer="w",link="2""#
        ),
        "0.25"
    );
    assert!(
        !text.contains(r#"oneha_peer_link_last_heard_seconds{peer="w",link="1"}"#),
        "never heard: no sample"
    );
    assert_eq!(value(&s, "oneha_group_state", r#"state="started""#), "1");
    assert_eq!(value(&s, "oneha_group_state", r#"state="failed""#), "0");
    assert_eq!(value(&s, "oneha_group_owner", r#"node="node1""#), "1");
    assert_eq!(value(&s, "oneha_group_owner", r#"node="node2""#), "0");
    assert!(
        !text.contains(r#"oneha_group_owner{node="w"}"#),
        "a witness never owns"
    );
    assert_eq!(value(&s, "oneha_group_generation", ""), "5");
    assert_eq!(value(&s, "oneha_group_failures", ""), "1");
    assert_eq!(value(&s, "oneha_group_restart_requests_total", ""), "2");
    assert_eq!(value(&s, "oneha_stuck_vms", ""), "3");
    assert_eq!(value(&s, "oneha_peer_frames_rejected_total", ""), "4");
    assert_eq!(value(&s, "oneha_peer_handshakes_refused_total", ""), "2");
    assert_eq!(
        value(&s, "oneha_peer_unauthenticated_closed_total", ""),
        "3"
    );
    assert_eq!(value(&s, "oneha_peer_frames_received_total", ""), "100");
    assert_eq!(
        value(
            &s,
            "oneha_fence_last_timestamp_seconds",
            r#"target="node2",result="success""#
        ),
        "1005"
    );
    assert_eq!(
        value(
            &s,
            "oneha_fence_last_timestamp_seconds",
            r#"target="node2",result="failure""#
        ),
        "1000"
    );
    // Label values escaped: quote, backslash, newline.
    assert!(
        text.contains(r#"oneha_info{cluster="one \"prod\"",node="node1""#),
        "{text}"
    );
    assert!(
        text.contains(r#"state="failed: \"exit 1\"\nsee C:\\log"} 1"#),
        "{text}"
    );
    assert!(
        text.contains("# HELP oneha_raft_term Current Raft term.\n# TYPE oneha_raft_term gauge\n")
    );
}

#[test]
fn counters_count_leader_changes_failovers_fences_and_stuck_vms() {
    let c = Counters::new();
    c.observe_leader(None);
    c.observe_leader(Some("node1")); // the first leader is not a change
    c.observe_leader(Some("node1"));
    c.observe_leader(None);
    c.observe_leader(Some("node2"));
    c.observe_leader(Some("node1"));
    c.record_failover(Duration::from_millis(1500));
    c.record_failover(Duration::from_secs(700));
    c.record_fence("node2", "xvm", "off", false);
    c.record_fence("node2", "xvm", "off", false);
    c.record_fence("node2", "xvm", "off", true);
    c.record_stuck_vm_report(4);
    c.record_stuck_vm_report(0);
    let s = parse(&render(&report(), &c));
    assert_eq!(value(&s, "oneha_leader_changes_total", ""), "2");
    assert_eq!(value(&s, "oneha_failovers_total", ""), "2");
    assert_eq!(
        value(&s, "oneha_failover_duration_seconds_bucket", r#"le="1""#),
        "0"
    );
    assert_eq!(
        value(&s, "oneha_failover_duration_seconds_bucket", r#"le="2""#),
        "1"
    );
    assert_eq!(
        value(&s, "oneha_failover_duration_seconds_bucket", r#"le="600""#),
        "1"
    );
    assert_eq!(
        value(&s, "oneha_failover_duration_seconds_bucket", r#"le="+Inf""#),
        "2"
    );
    assert_eq!(
        value(&s, "oneha_failover_duration_seconds_bucket", r#"le="0.5""#),
        "0"
    );
    assert_eq!(
        value(&s, "oneha_failover_duration_seconds_sum", ""),
        "701.5"
    );
    assert_eq!(value(&s, "oneha_failover_duration_seconds_count", ""), "2");
    assert_eq!(value(&s, "oneha_last_failover_duration_seconds", ""), "700");
    let key = r#"target="node2",method="xvm",action="off",result="#;
    assert_eq!(
        value(
            &s,
            "oneha_fence_attempts_total",
            &format!("{key}\"failure\"")
        ),
        "2"
    );
    assert_eq!(
        value(
            &s,
            "oneha_fence_attempts_total",
            &format!("{key}\"success\"")
        ),
        "1"
    );
    assert_eq!(value(&s, "oneha_stuck_vm_reports_total", ""), "2");
    assert_eq!(value(&s, "oneha_stuck_vms_found_total", ""), "4");
    // Buckets are cumulative.
    let buckets: Vec<f64> = s
        .iter()
        .filter(|(n, _, _)| n == "oneha_failover_duration_seconds_bucket")
        .map(|(_, _, v)| v.parse::<f64>().unwrap_or(f64::INFINITY))
        .collect();
    assert!(buckets.windows(2).all(|w| w[0] <= w[1]), "{buckets:?}");
}

#[test]
fn numbers_and_help_are_escaped() {
    assert_eq!(number(3.0), "3");
    assert_eq!(number(0.25), "0.25");
    assert_eq!(number(f64::INFINITY), "+Inf");
    assert_eq!(number(f64::NAN), "NaN");
    assert_eq!(escape_help("a\\b\nc"), "a\\\\b\\nc");
    assert_eq!(escape_label("x\"y\\z\n"), "x\\\"y\\\\z\\n");
}

fn free_port() -> SocketAddr {
    let l = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    l.local_addr().unwrap()
}

fn get(addr: SocketAddr, request: &str) -> String {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
    s.write_all(request.as_bytes()).unwrap();
    let mut out = String::new();
    s.read_to_string(&mut out).unwrap();
    out
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn serves_metrics_on_loopback_and_404_otherwise() {
    let addr = free_port();
    let (tx, rx) = tokio::sync::watch::channel(false);
    let calls = Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let c2 = calls.clone();
    let source: Arc<dyn Fn() -> String + Send + Sync> = Arc::new(move || {
        let n = c2.fetch_add(1, std::sync::atomic::Ordering::SeqCst) + 1;
        format!("# HELP x y\n# TYPE x gauge\nx {n}\n")
    });
    let task = serve(addr, source, rx).await.unwrap();
    let (ok, not_found, post, bad) = tokio::task::spawn_blocking(move || {
        (
            get(
                addr,
                "GET /metrics HTTP/1.1\r\nHost: x\r\nAccept: */*\r\n\r\n",
            ),
            get(addr, "GET / HTTP/1.1\r\nHost: x\r\n\r\n"),
            get(addr, "POST /metrics HTTP/1.1\r\nContent-Length: 0\r\n\r\n"),
            get(addr, "hello\r\n\r\n"),
        )
    })
    .await
    .unwrap();
    assert!(ok.starts_with("HTTP/1.1 200 OK\r\n"), "{ok}");
    assert!(
        ok.contains("Content-Type: text/plain; version=0.0.4; charset=utf-8\r\n"),
        "{ok}"
    );
    assert!(ok.contains("Content-Length: 30\r\n"), "{ok}");
    assert!(
        ok.ends_with("\r\n\r\n# HELP x y\n# TYPE x gauge\nx 1\n"),
        "{ok}"
    );
    assert!(
        not_found.starts_with("HTTP/1.1 404 Not Found\r\n"),
        "{not_found}"
    );
    assert!(post.starts_with("HTTP/1.1 404 Not Found\r\n"), "{post}");
    assert!(bad.starts_with("HTTP/1.1 400 Bad Request\r\n"), "{bad}");
    assert_eq!(
        calls.load(std::sync::atomic::Ordering::SeqCst),
        1,
        "source called per GET /metrics only"
    );
    // A second server on the same address is refused with a clear message.
    let (_tx2, rx2) = tokio::sync::watch::channel(false);
    let err = serve(addr, Arc::new(String::new), rx2).await.unwrap_err();
    assert!(
        err.contains("cannot listen on") && err.contains("metrics.listen"),
        "{err}"
    );
    // Shutdown ends the task and frees the port.
    tx.send(true).unwrap();
    tokio::time::timeout(Duration::from_secs(5), task)
        .await
        .unwrap()
        .unwrap();
    assert!(std::net::TcpListener::bind(addr).is_ok());
}

#[test]
fn routes_by_method_and_path() {
    let src = || "body".to_string();
    assert_eq!(
        route(b"GET /metrics?x=1 HTTP/1.0\r\n\r\n", &src),
        ("200 OK", "body".into())
    );
    assert_eq!(
        route(b"GET /metrics HTTP/2\r\n\r\n", &src).0,
        "400 Bad Request"
    );
    assert_eq!(
        route(b"GET /metricsx HTTP/1.1\r\n\r\n", &src).0,
        "404 Not Found"
    );
    assert_eq!(route(b"\r\n\r\n", &src).0, "400 Bad Request");
}
