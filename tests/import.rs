//! `oneha import-cluster-conf` on real-world-shaped cluster.conf files: the generated YAML
//! equals the expected file, the stderr report lists what was not translated, and the output
//! passes the same validation as `oneha check-config` once the key files and fence agents it
//! names exist.
//!
//! To regenerate the expected files after an intended change, run with
//! `ONEHA_UPDATE_FIXTURES=1` and review the diff.

use std::collections::HashMap;
use std::net::IpAddr;
use std::path::{Path, PathBuf};

use oneha::config::{Config, Role};
use oneha::fence::DeviceConfig;
use oneha::import::{self, Host, ImportArgs, ImportError, LocalAddr, OpenNebulaVersion, Options};
use oneha::resources::{Recovery, ResourceKind};

mod ops;

const DIR: &str = concat!(env!("CARGO_MANIFEST_DIR"), "/tests/fixtures/cluster-conf");

/// Fixed name resolution and interfaces, so the output does not depend on this machine.
#[derive(Default)]
struct FixedHost {
    names: HashMap<String, IpAddr>,
    addrs: Vec<LocalAddr>,
}

impl Host for FixedHost {
    fn resolve(&self, name: &str) -> Option<IpAddr> {
        self.names.get(name).copied()
    }
    fn addresses(&self) -> Vec<LocalAddr> {
        self.addrs.clone()
    }
}

fn host_for(case: &str) -> FixedHost {
    let mut h = FixedHost::default();
    if case == "ipmilan" {
        // Both names resolve, and this machine holds 192.0.2.11/24 on bond0.
        h.names
            .insert("fe1.example.org".into(), "192.0.2.11".parse().unwrap());
        h.names
            .insert("fe2.example.org".into(), "192.0.2.12".parse().unwrap());
        h.addrs = vec![
            LocalAddr {
                interface: "lo".into(),
                address: "127.0.0.1".parse().unwrap(),
                prefix: 8,
            },
            LocalAddr {
                interface: "bond0".into(),
                address: "192.0.2.11".parse().unwrap(),
                prefix: 24,
            },
        ];
    }
    if case == "altname" {
        for (n, ip) in [
            ("fe1.example.org", "192.0.2.11"),
            ("fe2.example.org", "192.0.2.12"),
            ("fe1-cross", "198.51.100.1"),
        ] {
            h.names.insert(n.into(), ip.parse().unwrap());
        }
    }
    h
}

fn opts(case: &str, lsb: bool) -> Options {
    Options {
        lsb,
        source: format!("/etc/cluster/{case}.conf"),
        ..Options::default()
    }
}

fn fixture(name: &str) -> String {
    std::fs::read_to_string(Path::new(DIR).join(name)).unwrap()
}

fn check_expected(name: &str, actual: &str) {
    let path = Path::new(DIR).join(name);
    if std::env::var_os("ONEHA_UPDATE_FIXTURES").is_some() {
        std::fs::write(&path, actual).unwrap();
        return;
    }
    let expected = std::fs::read_to_string(&path).unwrap_or_else(|e| {
        panic!(
            "{}: {e} (ONEHA_UPDATE_FIXTURES=1 writes it)",
            path.display()
        )
    });
    if expected != actual {
        panic!(
            "{} differs from the generated text.\n--- generated ---\n{actual}\n--- end ---",
            path.display()
        );
    }
}

fn run_case(case: &str, lsb: bool) -> (Config, import::Imported) {
    let out = import::import(
        &fixture(&format!("{case}.conf")),
        &opts(case, lsb),
        &host_for(case),
    )
    .unwrap_or_else(|e| panic!("{case}: {e}"));
    let suffix = if lsb { "-lsb" } else { "" };
    check_expected(&format!("{case}{suffix}.yaml"), &out.yaml);
    let report = import::report(&format!("/etc/cluster/{case}.conf"), &out.notes);
    check_expected(&format!("{case}{suffix}.report.txt"), &report);
    let dir = tempfile::tempdir().unwrap();
    let cfg = ops::validate(&out.yaml, dir.path());
    (cfg, out)
}

fn group(cfg: &Config) -> Vec<(String, ResourceKind)> {
    cfg.resources
        .group
        .iter()
        .map(|r| (r.name.clone(), r.spec().unwrap()))
        .collect()
}

#[test]
fn seed_two_node_guide_config() {
    let (cfg, out) = run_case("seed", false);
    assert_eq!(cfg.cluster, "opennebula");
    assert!(cfg.two_node);
    let names: Vec<(&str, u64)> = cfg.nodes.iter().map(|n| (n.name.as_str(), n.id)).collect();
    assert_eq!(names, [("one-server1", 1), ("one-server2", 2)]);
    // Names do not resolve here: placeholders, listed to fill in.
    assert_eq!(cfg.nodes[0].address.to_string(), "192.0.2.1:7400");
    assert!(
        out.notes
            .fill_in
            .iter()
            .any(|n| n.contains("nodes[1].address"))
    );
    assert!(out.yaml.contains("FILL IN"));
    let d = &cfg.resources.failover_domain;
    assert_eq!(d.nodes, ["one-server1", "one-server2"]);
    assert!(d.failback && !d.restricted);
    assert_eq!(cfg.resources.recovery, Recovery::Restart);
    let g = group(&cfg);
    let kinds: Vec<&str> = g.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(kinds, ["vip", "opennebula", "opennebula-hem", "fireedge"]);
    match &g[0].1 {
        ResourceKind::Ip(ip) => {
            assert_eq!(ip.address.to_string(), "10.10.11.12");
            assert_eq!(ip.prefix, 24);
            assert_eq!(ip.interface, "eth0");
        }
        other => panic!("{other:?}"),
    }
    // OpenNebula 7 by default: oned, its hook manager (the VM-HA hook runs there) and
    // FireEdge in place of Ruby Sunstone; the report says which set was used.
    assert_eq!(g[1].1, ResourceKind::Systemd("opennebula.service".into()));
    assert_eq!(
        g[2].1,
        ResourceKind::Systemd("opennebula-hem.service".into())
    );
    assert_eq!(
        g[3].1,
        ResourceKind::Systemd("opennebula-fireedge.service".into())
    );
    assert!(
        out.notes
            .info
            .iter()
            .any(|n| n.starts_with("OpenNebula 7 units (--opennebula-version 7)")),
        "{:?}",
        out.notes.info
    );
    // No fencing at all in the guide's file: said loudly.
    assert!(cfg.fencing.nodes.is_empty());
    assert!(
        out.notes
            .fill_in
            .iter()
            .any(|n| n.contains("no fence method for one-server1"))
    );
    assert!(
        out.notes
            .untranslated
            .iter()
            .any(|n| n.contains("sleeptime=\"10\""))
    );
}

/// The seed's group for `--opennebula-version version`, as (name, unit), after validation.
fn seed_units(version: OpenNebulaVersion) -> (Vec<(String, String)>, import::Imported) {
    let o = Options {
        opennebula_version: version,
        ..opts("seed", false)
    };
    let out = import::import(&fixture("seed.conf"), &o, &host_for("seed")).unwrap();
    let dir = tempfile::tempdir().unwrap();
    let cfg = ops::validate(&out.yaml, dir.path());
    let units = group(&cfg)
        .into_iter()
        .filter_map(|(n, k)| match k {
            ResourceKind::Systemd(u) => Some((n, u)),
            _ => None,
        })
        .collect();
    (units, out)
}

#[test]
fn opennebula_version_chooses_the_units() {
    let pairs = |v: &[(&str, &str)]| -> Vec<(String, String)> {
        v.iter()
            .map(|(n, u)| (n.to_string(), u.to_string()))
            .collect()
    };
    let (units, out) = seed_units(OpenNebulaVersion::V6_10);
    assert_eq!(
        units,
        pairs(&[
            ("opennebula", "opennebula.service"),
            ("opennebula-scheduler", "opennebula-scheduler.service"),
            ("opennebula-hem", "opennebula-hem.service"),
            ("sunstone", "opennebula-sunstone.service"),
        ])
    );
    assert!(out.yaml.contains("(OpenNebula 6.10 units;"), "{}", out.yaml);
    let report = import::report("seed.conf", &out.notes);
    assert!(
        report.contains("Notes:\n  - OpenNebula 6.10 units (--opennebula-version 6.10)"),
        "{report}"
    );
    let (units, out) = seed_units(OpenNebulaVersion::V4);
    assert_eq!(
        units,
        pairs(&[
            ("opennebula", "opennebula.service"),
            ("sunstone", "opennebula-sunstone.service"),
        ])
    );
    assert!(
        out.notes
            .info
            .iter()
            .any(|n| n.starts_with("OpenNebula 4 units"))
    );
    // --lsb keeps the scripts: no unit set to report.
    let lsb = import::import(
        &fixture("seed.conf"),
        &opts("seed", true),
        &host_for("seed"),
    )
    .unwrap();
    assert!(lsb.notes.info.is_empty(), "{:?}", lsb.notes.info);
}

#[test]
fn seed_with_fence_xvm() {
    let (cfg, _) = run_case("seed-fence-xvm", false);
    match cfg.fencing.devices.get("libvirt-kvm") {
        Some(DeviceConfig::Xvm(x)) => {
            assert_eq!(x.port, 1229);
            assert_eq!(x.multicast_address.to_string(), "225.0.0.12");
        }
        other => panic!("{other:?}"),
    }
    let plugs: Vec<(&str, Option<&str>)> = cfg
        .fencing
        .nodes
        .iter()
        .map(|(n, f)| (n.as_str(), f.levels[0].plug.as_deref()))
        .collect();
    assert_eq!(
        plugs,
        [("one-server1", Some("one1")), ("one-server2", Some("one2"))]
    );
}

/// CMAN's redundant ring (`<altname>`) becomes the second link; names resolve as the
/// clusternode names do, an unresolvable one is a placeholder to fill in.
#[test]
fn altname_becomes_the_second_link() {
    let (cfg, out) = run_case("altname", false);
    let links: Vec<Vec<String>> = cfg
        .nodes
        .iter()
        .map(|n| n.addresses.iter().map(ToString::to_string).collect())
        .collect();
    assert_eq!(
        links,
        [
            vec!["192.0.2.11:7400", "198.51.100.1:7400"],
            vec!["192.0.2.12:7400", "192.0.2.1:7400"]
        ]
    );
    let fill = out.notes.fill_in.join("\n");
    assert!(
        fill.contains("nodes[1].addresses[1]: fe2-cross does not resolve here"),
        "{fill}"
    );
    let skipped = out.notes.untranslated.join("\n");
    assert!(
        skipped.contains("<altname port=\"5406\"> is corosync's ring setting"),
        "{skipped}"
    );
    assert!(!skipped.contains("<altname> of clusternode"), "{skipped}");
    // An address written as the altname is taken as it is.
    let text = fixture("altname.conf").replace("fe2-cross", "198.51.100.2");
    let out =
        import::import(&text, &opts("altname", false), &host_for("altname")).expect("imports");
    assert!(
        out.yaml
            .contains("      - \"198.51.100.2:7400\"  # 198.51.100.2 resolved here"),
        "{}",
        out.yaml
    );
}

#[test]
fn seed_with_lsb_keeps_the_init_scripts() {
    let (cfg, _) = run_case("seed", true);
    let g = group(&cfg);
    assert_eq!(g[1].1, ResourceKind::Lsb("/etc/init.d/opennebula".into()));
    assert_eq!(
        g[2].1,
        ResourceKind::Lsb("/etc/init.d/opennebula-sunstone".into())
    );
}

#[test]
fn ipmilan_pair_with_pdu_and_resolved_names() {
    let (cfg, out) = run_case("ipmilan", false);
    assert_eq!(cfg.nodes[0].address.to_string(), "192.0.2.11:7400");
    assert_eq!(cfg.nodes[1].address.to_string(), "192.0.2.12:7400");
    // Levels in method order; the PDU instance options make a device per node.
    let fe1 = &cfg.fencing.nodes["fe1.example.org"];
    let levels: Vec<(&str, Option<&str>)> = fe1
        .levels
        .iter()
        .map(|l| (l.device.as_str(), l.plug.as_deref()))
        .collect();
    assert_eq!(
        levels,
        [("ipmi-fe1", None), ("apc-fe1.example.org", Some("3"))]
    );
    assert_eq!(fe1.delay.get(), std::time::Duration::from_secs(15));
    assert!(cfg.fencing.nodes["fe2.example.org"].delay.get().is_zero());
    match cfg.fencing.devices.get("ipmi-fe1") {
        Some(DeviceConfig::Agent(a)) => {
            assert!(a.agent.ends_with("fence_ipmilan"));
            assert_eq!(a.options["ipaddr"], "192.0.2.201");
            assert_eq!(a.options["passwd"], "s3cret&more");
            assert_eq!(a.options["lanplus"], "1");
            assert!(!a.options.contains_key("delay"));
        }
        other => panic!("{other:?}"),
    }
    match cfg.fencing.devices.get("apc-fe1.example.org") {
        Some(DeviceConfig::Agent(a)) => assert_eq!(a.options["switch"], "1"),
        other => panic!("{other:?}"),
    }
    // Domain: ordered by priority, restricted, nofailback.
    let d = &cfg.resources.failover_domain;
    assert_eq!(d.nodes, ["fe1.example.org", "fe2.example.org"]);
    assert!(d.restricted && !d.failback);
    assert_eq!(cfg.resources.recovery, Recovery::Relocate);
    assert_eq!(cfg.resources.max_restarts, 2);
    assert_eq!(cfg.resources.restart_expire_time.get().as_secs(), 300);
    // ip before scripts; the VIP's interface and prefix found on this machine.
    let g = group(&cfg);
    let names: Vec<&str> = g.iter().map(|(n, _)| n.as_str()).collect();
    assert_eq!(
        names,
        [
            "vip",
            "oned",
            "opennebula-hem",
            "fireedge",
            "onegate",
            "httpd"
        ]
    );
    match &g[0].1 {
        ResourceKind::Ip(ip) => assert_eq!((ip.interface.as_str(), ip.prefix), ("bond0", 24)),
        other => panic!("{other:?}"),
    }
    assert_eq!(
        g[4].1,
        ResourceKind::Systemd("opennebula-gate.service".into())
    );
    assert_eq!(g[5].1, ResourceKind::Lsb("/etc/init.d/httpd".into()));
    let oned = &cfg.resources.group[1];
    assert_eq!(oned.monitor_interval.get().as_secs(), 20);
    assert_eq!(oned.stop_timeout.get().as_secs(), 180);
    let skipped = out.notes.untranslated.join("\n");
    for what in [
        "<totem>",
        "post_join_delay",
        "transport=\"udpu\"",
        "power_wait",
    ] {
        assert!(
            skipped.contains(what) || out.yaml.contains(what),
            "{what}: {skipped}"
        );
    }
    assert!(
        out.yaml
            .contains("holds a password copied from cluster.conf")
    );
}

#[test]
fn qdisk_becomes_a_witness_and_unsupported_parts_are_listed() {
    let (cfg, out) = run_case("qdisk", false);
    assert!(!cfg.two_node);
    let roles: Vec<(&str, u64, Role)> = cfg
        .nodes
        .iter()
        .map(|n| (n.name.as_str(), n.id, n.role))
        .collect();
    assert_eq!(
        roles,
        [
            ("node-a", 10, Role::Frontend),
            ("node-b", 20, Role::Frontend),
            ("witness", 21, Role::Witness)
        ]
    );
    assert!(out.notes.fill_in.iter().any(|n| n.contains("the witness")));
    let d = &cfg.resources.failover_domain;
    assert_eq!(d.nodes, ["node-b", "node-a"]);
    assert!(d.restricted && !d.failback);
    assert!(!cfg.resources.autostart);
    assert_eq!(cfg.resources.recovery, Recovery::Disable);
    // The fs starts first; what is nested in it after it, in rgmanager's order.
    let names: Vec<String> = group(&cfg).into_iter().map(|(n, _)| n).collect();
    assert_eq!(
        names,
        ["one-datastore", "vip", "oned", "opennebula-hem", "fireedge"]
    );
    let nb = &cfg.fencing.nodes["node-b"];
    assert_eq!(
        nb.levels.len(),
        1,
        "the two-PSU method is not a single level"
    );
    assert!(nb.levels[0].uuid);
    // Device delay 5s applies to node-a; node-b's instance says 0.
    assert_eq!(cfg.fencing.nodes["node-a"].delay.get().as_secs(), 5);
    assert!(nb.delay.get().is_zero());
    match cfg.fencing.devices.get("kvm") {
        Some(DeviceConfig::Xvm(x)) => {
            assert_eq!(x.hash.to_string(), "sha512");
            assert_eq!(x.retransmit.get().as_secs(), 2);
        }
        other => panic!("{other:?}"),
    }
    let skipped = out.notes.untranslated.join("\n");
    for what in [
        "quorum disk",
        "ping -c1 -w1 192.0.2.254",
        "exclusive",
        "depend=\"service:nfs-helper\"",
        "__independent_subtree",
        "monitor_link=\"0\"",
        "service \"nfs-helper\"",
        "has 2 devices",
        "failoverdomain \"unused\"",
    ] {
        assert!(skipped.contains(what), "{what} missing from:\n{skipped}");
    }
}

#[test]
fn broken_file_is_refused_with_its_line() {
    let err = import::import(
        &fixture("broken.conf"),
        &opts("broken", false),
        &FixedHost::default(),
    )
    .unwrap_err();
    match &err {
        ImportError::Xml(e) => assert_eq!(e.line, 6, "{err}"),
        other => panic!("{other:?}"),
    }
    assert!(err.to_string().contains("clusternode"), "{err}");
    // Well-formed but unusable files name the problem too.
    let dup = r#"<cluster name="c"><clusternodes><clusternode name="a" nodeid="1"/>
<clusternode name="b" nodeid="1"/></clusternodes></cluster>"#;
    let e = import::import(dup, &Options::default(), &FixedHost::default()).unwrap_err();
    assert!(
        e.to_string()
            .starts_with("line 2: nodeid 1 of `b` is used twice"),
        "{e}"
    );
    let e = import::import("<html/>", &Options::default(), &FixedHost::default()).unwrap_err();
    assert!(e.to_string().contains("expected <cluster>"), "{e}");
    let one = r#"<cluster name="c"><clusternodes><clusternode name="a" nodeid="1"/></clusternodes></cluster>"#;
    let e = import::import(one, &Options::default(), &FixedHost::default()).unwrap_err();
    assert!(e.to_string().contains("at least two"), "{e}");
}

#[test]
fn output_file_is_private_and_never_overwritten() {
    use std::os::unix::fs::PermissionsExt;
    let dir = tempfile::tempdir().unwrap();
    let out: PathBuf = dir.path().join("oneha.yaml");
    let args = ImportArgs {
        file: Path::new(DIR).join("seed-fence-xvm.conf"),
        lsb: false,
        opennebula_version: OpenNebulaVersion::default(),
        output: Some(out.clone()),
        key_file: "/etc/oneha/cluster.key".into(),
        port: 7400,
    };
    assert_eq!(import::run_with(&args, &FixedHost::default()), 0);
    let text = std::fs::read_to_string(&out).unwrap();
    assert!(text.contains("cluster: opennebula"));
    let mode = std::fs::metadata(&out).unwrap().permissions().mode() & 0o777;
    assert_eq!(mode, 0o600);
    std::fs::write(&out, "keep me").unwrap();
    assert_eq!(import::run_with(&args, &FixedHost::default()), 2);
    assert_eq!(std::fs::read_to_string(&out).unwrap(), "keep me");
    let missing = ImportArgs {
        file: dir.path().join("nope.conf"),
        output: None,
        ..args
    };
    assert_eq!(import::run_with(&missing, &FixedHost::default()), 2);
}

#[test]
fn arguments_parse_as_the_cli_will_take_them() {
    use clap::Parser;
    #[derive(Parser)]
    struct Cli {
        #[command(flatten)]
        args: ImportArgs,
    }
    let c = Cli::try_parse_from(["import-cluster-conf"]).unwrap();
    assert_eq!(c.args.file, PathBuf::from("/etc/cluster/cluster.conf"));
    assert!(!c.args.lsb && c.args.output.is_none());
    assert_eq!(c.args.opennebula_version, OpenNebulaVersion::V7);
    assert_eq!(
        (c.args.key_file.as_str(), c.args.port),
        ("/etc/oneha/cluster.key", 7400)
    );
    let c = Cli::try_parse_from([
        "x",
        "/tmp/c.conf",
        "--lsb",
        "-o",
        "/tmp/o.yaml",
        "--port",
        "7500",
        "--opennebula-version",
        "6.10",
    ])
    .unwrap();
    assert!(c.args.lsb);
    assert_eq!(c.args.opennebula_version, OpenNebulaVersion::V6_10);
    assert_eq!(c.args.output, Some(PathBuf::from("/tmp/o.yaml")));
    assert_eq!(c.args.port, 7500);
    let c = Cli::try_parse_from(["x", "--opennebula-version", "4"]).unwrap();
    assert_eq!(c.args.opennebula_version, OpenNebulaVersion::V4);
    assert!(Cli::try_parse_from(["x", "--opennebula-version", "5"]).is_err());
    assert!(Cli::try_parse_from(["x", "--port", "seventy"]).is_err());
}

/// A minimal cluster.conf around `rm` (the `<rm>` section) with cluster attributes `attrs`.
fn conf_with(attrs: &str, fence: &str, rm: &str) -> String {
    format!(
        r#"<?xml version="1.0"?>
<cluster {attrs}>
  <cman two_node="1" expected_votes="1"/>
  <clusternodes>
    <clusternode name="a" nodeid="1"><fence><method name="1"><device name="{fence}" port="a"/></method></fence></clusternode>
    <clusternode name="b" nodeid="2"/>
  </clusternodes>
  <fencedevices>
    <fencedevice name="{fence}" agent="fence_ipmilan" ipaddr="192.0.2.9" login="x{fence}"/>
  </fencedevices>
  <rm>{rm}</rm>
</cluster>
"#
    )
}

/// Found by fuzzing: strings from cluster.conf (cluster name, config_version, service, device
/// and script names, option values) were written with their line breaks, so a cluster.conf
/// could add keys such as `data_dir` or `key_file` to the generated YAML.
#[test]
fn line_breaks_in_names_cannot_inject_keys() {
    for br in [
        "&#10;",
        "&#13;",
        "&#133;",
        "&#8232;",
        "&#8233;",
        "&#13;&#10;",
    ] {
        let evil = format!("x{br}data_dir: /tmp/evil{br}key_file: /tmp/evil.key{br}y");
        let text = conf_with(
            &format!(r#"name="c{evil}" config_version="1{evil}""#),
            &format!("ipmi{evil}"),
            &format!(
                r#"<service name="s{evil}" domain="d{evil}" recovery="x{evil}">
                   <ip address="192.0.2.100/24" prefer_interface="eth0{evil}"/>
                   <script name="n{evil}" file="/etc/init.d/opennebula{evil}"/>
                   <other name="o{evil}"/>
                 </service>"#
            ),
        );
        let out = import::import(&text, &Options::default(), &FixedHost::default())
            .unwrap_or_else(|e| panic!("{br}: {e}"));
        let v: serde_norway::Value = serde_norway::from_str(&out.yaml)
            .unwrap_or_else(|e| panic!("{br}: the YAML does not parse: {e}\n{}", out.yaml));
        let keys: Vec<&str> = v
            .as_mapping()
            .unwrap()
            .keys()
            .filter_map(|k| k.as_str())
            .collect();
        assert_eq!(
            keys,
            [
                "cluster",
                "two_node",
                "key_file",
                "nodes",
                "resources",
                "fencing"
            ],
            "{br}: {}",
            out.yaml
        );
        assert_eq!(
            v["key_file"].as_str(),
            Some(import::DEFAULT_KEY_FILE),
            "{br}"
        );
        let expected_cluster = format!("c{evil}")
            .replace("&#10;", "\n")
            .replace("&#13;", "\r")
            .replace("&#133;", "\u{85}")
            .replace("&#8232;", "\u{2028}")
            .replace("&#8233;", "\u{2029}");
        assert_eq!(
            v["cluster"].as_str(),
            Some(expected_cluster.as_str()),
            "{br}"
        );
        let devices = v["fencing"]["devices"].as_mapping().unwrap();
        let name = devices.keys().next().and_then(|k| k.as_str()).unwrap();
        assert!(
            name.starts_with("ipmi") && name.ends_with('y'),
            "{br}: {name:?}"
        );
        assert_eq!(
            devices[name]["options"]["login"].as_str(),
            Some(format!("x{name}").as_str()),
            "{br}"
        );
    }
}

/// Found by fuzzing: 4,000 levels of nested `<ip>`/`<script>` in a service took over 30 s and
/// 2.9 GB (each level copied the subtree below it; each name was searched among all before).
/// Deep nesting is now refused by the parser; wide services translate in linear time.
#[test]
fn nested_and_wide_services_are_bounded() {
    let service = |inner: String| {
        conf_with(
            r#"name="c""#,
            "ipmi",
            &format!(r#"<service name="s">{inner}</service>"#),
        )
    };
    let nested = |levels: usize| {
        service(format!(
            "{}{}",
            r#"<ip address="192.0.2.100/24"><script file="/etc/init.d/x">"#.repeat(levels),
            "</script></ip>".repeat(levels)
        ))
    };
    let e = import::import(&nested(2_000), &Options::default(), &FixedHost::default()).unwrap_err();
    assert!(e.to_string().contains("nested more than 64"), "{e}");
    // Within the depth limit, the whole nesting is translated in start order.
    let levels = 28;
    let out = import::import(&nested(levels), &Options::default(), &FixedHost::default()).unwrap();
    let group = out.plan.resources.group.unwrap();
    assert_eq!(group.len(), 2 * levels);
    assert_eq!(
        (group[0].name.as_str(), group[2].name.as_str()),
        ("vip", "vip2")
    );
    // 20,000 resources side by side: each gets its own name (the old search was cubic, and
    // the line of each element was counted from the start of the file).
    let n = 20_000;
    let wide = service(r#"<ip address="192.0.2.100/24"/>"#.repeat(n));
    let out = import::import(&wide, &Options::default(), &FixedHost::default()).unwrap();
    let group = out.plan.resources.group.unwrap();
    assert_eq!(group.len(), n);
    assert_eq!(group[n - 1].name, format!("vip{n}"));
}

/// Names from cluster.conf reach the terminal in the stderr report: control characters are
/// escaped there too.
#[test]
fn the_report_escapes_control_characters() {
    let text = conf_with(
        r#"name="c""#,
        "ipmi",
        r#"<service name="s"><fs name="x&#27;]0;title&#7;&#27;[2J"/></service>"#,
    );
    let out = import::import(&text, &Options::default(), &FixedHost::default()).unwrap();
    let report = import::report("cluster.conf", &out.notes);
    assert!(report.contains(r"x\x1b]0;title\x07\x1b[2J"), "{report}");
    assert!(
        !report.contains('\x1b') && !report.contains('\x07'),
        "{report:?}"
    );
}

#[test]
fn storage_and_databases_are_translated_in_rgmanagers_order() {
    let (cfg, out) = run_case("storage", false);
    let g = group(&cfg);
    let names: Vec<&str> = g.iter().map(|(n, _)| n.as_str()).collect();
    // lvm, fs (and what is nested in it), clusterfs, netfs, ip, script, then the untyped.
    assert_eq!(
        names,
        [
            "one-vg",
            "one-var",
            "onedb",
            "shared-gfs",
            "datastores",
            "vip",
            "oned",
            "opennebula-hem",
            "pg"
        ]
    );
    let fs = |i: usize| match &g[i].1 {
        ResourceKind::Filesystem(s) => s.clone(),
        other => panic!("{other:?}"),
    };
    let var = fs(1);
    assert_eq!(var.device, "UUID=7d1e0b6c-3f7a-4b7e-9c1e-2a7b1e0c9f11");
    assert_eq!(var.mountpoint, Path::new("/var/lib/one"));
    assert_eq!(var.options.as_deref(), Some("noatime"));
    assert!(var.fsck && var.force_unmount);
    let nfs = fs(4);
    assert_eq!(nfs.device, "nfs1.example.org:/export/one");
    assert!(nfs.is_network() && !nfs.fsck && !nfs.force_unmount);
    assert_eq!(
        g[0].1,
        ResourceKind::Lsb("/etc/init.d/oneha-lvm-onevg".into())
    );
    assert_eq!(g[2].1, ResourceKind::Systemd("mariadb.service".into()));
    assert_eq!(g[8].1, ResourceKind::Systemd("postgresql.service".into()));
    let fill = out.notes.fill_in.join("\n");
    for what in [
        "install /etc/init.d/oneha-lvm-onevg",
        "config_file=\"/etc/mysql/my.cnf\" listen_address=\"192.0.2.50\"",
        "GFS2 needs dlm",
    ] {
        assert!(fill.contains(what), "{what} missing from:\n{fill}");
    }
    assert!(
        out.notes
            .untranslated
            .iter()
            .any(|n| n.contains("quick_status=\"1\" not translated")),
        "{:?}",
        out.notes.untranslated
    );
    assert!(
        out.yaml.contains("self_fence: oneha always fences"),
        "{}",
        out.yaml
    );
}

/// Found by `make fuzz` (cluster_conf target): a cluster.conf whose import wrote YAML that
/// does not parse. Whatever the input, the imported text must be one YAML mapping.
#[test]
fn fuzz_found_input_imports_to_yaml_that_parses() {
    let bytes = std::fs::read(Path::new(DIR).join("fuzz-crash-yaml-scanner.bin")).unwrap();
    let text = String::from_utf8(bytes).expect("the fuzzer's input is UTF-8");
    /// As the fuzz target's host: every name resolves, one interface in 192.0.2.0/24.
    struct Any;
    impl Host for Any {
        fn resolve(&self, name: &str) -> Option<IpAddr> {
            (!name.is_empty()).then(|| "192.0.2.10".parse().unwrap())
        }
        fn addresses(&self) -> Vec<LocalAddr> {
            vec![LocalAddr {
                interface: "eth0".into(),
                address: "192.0.2.1".parse().unwrap(),
                prefix: 24,
            }]
        }
    }
    let imported = import::import(&text, &Options::default(), &Any).expect("imports");
    let parsed: Result<serde_norway::Value, _> = serde_norway::from_str(&imported.yaml);
    match parsed {
        Ok(v) => assert!(v.is_mapping(), "{}", imported.yaml),
        Err(e) => panic!("{e}\n{}", imported.yaml),
    }
}
