//! Config loading and validation: every rejected case checks its message.

use super::*;

/// A valid three-node config; `{KEY}` is replaced by a key file that exists.
const BASE: &str = "\
cluster: opennebula
key_file: {KEY}
nodes:
  - name: one-server1
    id: 1
    address: 192.0.2.11:7400
  - name: one-server2
    id: 2
    address: 192.0.2.12:7400
  - name: witness
    id: 3
    address: 192.0.2.13:7400
    role: witness
";

fn key_file() -> tempfile::NamedTempFile {
    tempfile::NamedTempFile::new().expect("temp file")
}

fn with_key(text: &str, key: &tempfile::NamedTempFile) -> String {
    text.replace("{KEY}", &key.path().display().to_string())
}

fn errors(text: &str) -> Vec<ConfigError> {
    let key = key_file();
    match parse(Path::new("/etc/oneha/oneha.yaml"), &with_key(text, &key)) {
        Ok(c) => panic!("expected errors, got a config: {c:?}"),
        Err(ConfigErrors(v)) => v,
    }
}

fn one_error(text: &str) -> ConfigError {
    let v = errors(text);
    assert_eq!(v.len(), 1, "expected one error, got {v:#?}");
    v.into_iter().next().expect("one error")
}

#[test]
fn base_config_loads_with_defaults() {
    let key = key_file();
    let c = parse(Path::new("x.yaml"), &with_key(BASE, &key)).expect("valid");
    assert_eq!(c.cluster, "opennebula");
    assert_eq!(c.nodes.len(), 3);
    assert!(c.wait_for_all);
    assert!(!c.two_node);
    assert_eq!(c.nodes[1].priority, Some(2));
    let t = c.timers();
    assert_eq!(t.tick, std::time::Duration::from_millis(100));
    assert!(t.election_ticks > t.heartbeat_ticks);
    assert_eq!(c.frontends().len(), 2);
    // The effective config names every default and parses again.
    let yaml = c.to_yaml();
    assert!(yaml.contains("election_ticks: 5"), "{yaml}");
    assert!(yaml.contains("heartbeat_ticks: 2"), "{yaml}");
    assert!(yaml.contains("opennebula-sunstone.service"), "{yaml}");
    let again = parse(Path::new("x.yaml"), &yaml).expect("effective config parses");
    assert_eq!(again.timers(), c.timers());
}

#[test]
fn fast_profile_and_overrides() {
    let text = format!("{BASE}timers:\n  profile: fast\n  election_ticks: 8\n");
    let key = key_file();
    let c = parse(Path::new("x.yaml"), &with_key(&text, &key)).expect("valid");
    let t = c.timers();
    assert_eq!(t.tick, std::time::Duration::from_millis(25));
    assert_eq!(t.election_ticks, 8);
}

#[test]
fn unknown_key_names_file_line_and_key() {
    let text = BASE.replace("    role: witness\n", "    role: witness\n    prio: 3\n");
    let e = one_error(&text);
    assert_eq!(e.file, Path::new("/etc/oneha/oneha.yaml"));
    assert_eq!(e.line, Some(14));
    assert_eq!(e.key, "nodes[2].prio");
    assert!(e.message.contains("unknown field `prio`"), "{e}");
    assert!(e.message.contains("expected one of"), "{e}");
    let shown = e.to_string();
    assert!(
        shown.starts_with("/etc/oneha/oneha.yaml:14: nodes[2].prio: "),
        "{shown}"
    );
}

#[test]
fn wrong_type_names_expected_and_found() {
    let e = one_error(&BASE.replace("id: 2", "id: two"));
    assert_eq!(e.key, "nodes[1].id");
    assert_eq!(e.line, Some(8));
    assert!(e.message.contains("two"), "{e}");
}

#[test]
fn bad_role_lists_the_choices() {
    let e = one_error(&BASE.replace("role: witness", "role: arbiter"));
    assert_eq!(e.key, "nodes[2].role");
    assert!(
        e.message.contains("frontend") && e.message.contains("witness"),
        "{e}"
    );
}

#[test]
fn bad_address_is_rejected() {
    let e = one_error(&BASE.replace("192.0.2.12:7400", "one-server2"));
    assert_eq!(e.key, "nodes[1].address");
    assert!(e.message.contains("invalid socket address"), "{e}");
}

#[test]
fn duplicate_names_ids_and_addresses() {
    let text = BASE
        .replace("name: one-server2", "name: one-server1")
        .replace("id: 3", "id: 1")
        .replace("192.0.2.13:7400", "192.0.2.11:7400");
    let v = errors(&text);
    let keys: Vec<&str> = v.iter().map(|e| e.key.as_str()).collect();
    assert_eq!(
        keys,
        ["nodes[1].name", "nodes[2].id", "nodes[2].address"],
        "{v:#?}"
    );
    assert!(v[0].message.contains("duplicate node name `one-server1`"));
    assert_eq!(v[0].line, Some(7));
    assert!(v[1].message.contains("duplicate node id 1 (also nodes[0])"));
    assert_eq!(v[1].line, Some(11));
    assert!(v[2].message.contains("duplicate address 192.0.2.11:7400"));
}

#[test]
fn fewer_than_two_frontends() {
    let text = BASE.replace(
        "    address: 192.0.2.12:7400\n",
        "    address: 192.0.2.12:7400\n    role: witness\n",
    );
    let e = one_error(&text);
    assert_eq!(e.key, "nodes");
    assert_eq!(e.line, Some(3));
    assert!(
        e.message
            .contains("at least two nodes with role frontend, found 1"),
        "{e}"
    );
}

#[test]
fn witness_in_failover_domain() {
    let text = format!("{BASE}resources:\n  failover_domain:\n    nodes: [one-server1, witness]\n");
    let e = one_error(&text);
    assert_eq!(e.key, "resources.failover_domain.nodes[1]");
    assert!(e.message.contains("is a witness"), "{e}");
}

#[test]
fn election_not_greater_than_heartbeat() {
    let text = format!("{BASE}timers:\n  heartbeat_ticks: 3\n  election_ticks: 3\n");
    let e = one_error(&text);
    assert_eq!(e.key, "timers.election_ticks");
    assert_eq!(e.line, Some(16));
    assert!(
        e.message
            .contains("more election ticks than heartbeat ticks (3), found 3")
    );
}

#[test]
fn lost_after_must_span_heartbeats() {
    let text = format!("{BASE}timers:\n  lost_ticks: 3\n");
    let e = one_error(&text);
    assert_eq!(e.key, "timers.lost_ticks");
    assert_eq!(e.line, Some(15));
    assert!(
        e.message.contains("twice the heartbeat (2 ticks), found 3"),
        "{e}"
    );
}

#[test]
fn missing_key_file_says_how_to_make_one() {
    let text = BASE.replace("{KEY}", "/nonexistent/oneha.key");
    let e = match parse(Path::new("c.yaml"), &text) {
        Err(ConfigErrors(v)) => v.into_iter().next().expect("an error"),
        Ok(_) => panic!("accepted a missing key file"),
    };
    assert_eq!(e.key, "key_file");
    assert_eq!(e.line, Some(2));
    assert!(
        e.message.contains("oneha keygen /nonexistent/oneha.key"),
        "{e}"
    );
}

#[test]
fn two_nodes_need_two_node_mode_or_a_witness() {
    let two = BASE
        .split("  - name: witness")
        .next()
        .expect("prefix")
        .to_string();
    let e = one_error(&two);
    assert_eq!(e.key, "two_node");
    assert!(e.message.contains("set two_node: true"), "{e}");
    let key = key_file();
    let ok = format!("two_node: true\n{two}");
    assert!(parse(Path::new("x"), &with_key(&ok, &key)).is_ok());
    let e = one_error(&format!("two_node: true\n{BASE}"));
    assert!(e.message.contains("exactly two nodes, found 3"), "{e}");
}

#[test]
fn duration_without_unit() {
    let e = one_error(&format!("{BASE}timers:\n  tick: 100\n"));
    assert_eq!(e.key, "timers.tick");
    assert!(e.message.contains("no unit"), "{e}");
}

#[test]
fn resource_keys_of_another_type() {
    let text = format!(
        "{BASE}resources:\n  group:\n    - name: vip\n      type: ip\n      address: 192.0.2.100/24\n      interface: eth0\n      unit: foo.service\n"
    );
    let e = one_error(&text);
    assert_eq!(e.key, "resources.group[0].unit");
    assert_eq!(e.line, Some(20));
    assert!(
        e.message
            .contains("does not apply to a resource of type ip"),
        "{e}"
    );
}

#[test]
fn resource_bad_cidr() {
    let text = format!(
        "{BASE}resources:\n  group:\n    - name: vip\n      type: ip\n      address: 192.0.2.100\n      interface: eth0\n"
    );
    let e = one_error(&text);
    assert_eq!(e.key, "resources.group[0].address");
    assert!(e.message.contains("ADDRESS/PREFIX"), "{e}");
}

#[test]
fn not_yaml_at_all() {
    let e = one_error("cluster: [unclosed\n");
    assert!(e.line.is_some(), "{e}");
}

#[test]
fn missing_file_is_one_clear_error() {
    let Err(ConfigErrors(v)) = load(Path::new("/nonexistent/oneha.yaml")) else {
        panic!("loaded a missing file")
    };
    assert!(v[0].message.contains("--config"), "{}", v[0]);
}

#[test]
fn missing_sections_get_the_same_defaults_as_empty_ones() {
    let key = key_file();
    let c = parse(Path::new("x"), &with_key(BASE, &key)).expect("valid");
    let text = format!("{BASE}resources: {{}}\n");
    let d = parse(Path::new("x"), &with_key(&text, &key)).expect("valid");
    assert!(c.resources.autostart && d.resources.autostart);
    assert!(c.resources.failover_domain.restricted);
    assert_eq!(c.resources.max_restarts, d.resources.max_restarts);
    assert_eq!(c.to_yaml(), d.to_yaml());
}

#[test]
fn the_owner_lease_is_shorter_than_loss_detection_in_every_profile() {
    for profile in ["default", "fast"] {
        let text = format!("{BASE}timers:\n  profile: {profile}\n");
        let key = key_file();
        let c = parse(Path::new("x"), &with_key(&text, &key)).expect("valid");
        let t = c.timers();
        assert!(t.lease() < t.lost_after(), "{profile}: {t:?}");
        assert!(t.lease() <= t.election(), "{profile}: {t:?}");
    }
}

/// Found by fuzzing: a secret of the wrong type was shown (``invalid type: integer
/// `987654321` ``), and so was what a stray quote swallowed into another value.
#[test]
fn secrets_never_reach_error_messages() {
    let device = |agent: &str, password: &str| {
        format!(
            "{BASE}fencing:\n  devices:\n    ipmi:\n      type: agent\n      agent: {agent}\n      \
             options:\n        ipaddr: 192.0.2.9\n        password: {password}\n        \
             login: admin\"\n"
        )
    };
    let e = errors(&device("/bin/true", "987654321")).remove(0);
    assert!(e.message.contains("invalid type: integer"), "{e}");
    assert!(!e.to_string().contains("987654321"), "{e}");
    // A stray quote: the agent's value swallows the options, password included.
    let v = errors(&device("\"fence_nowhere", "hunter2pw"));
    let all: Vec<String> = v.iter().map(ToString::to_string).collect();
    let all = all.join("\n");
    assert!(all.contains("fence agent <"), "{all}");
    assert!(
        !all.contains("hunter2pw") && !all.contains("192.0.2.9"),
        "{all}"
    );
}

/// Found by fuzzing: pointed at a file that is not a config, check-config showed its first
/// line.
#[test]
fn other_files_are_not_shown() {
    for text in [
        "root:x:0:0:root:/root:/bin/bash\ndaemon:x:1:1::/:/sbin/nologin\n",
        "root:$6$salt$hash:20228:0:99999:7:::\n",
        "s3cret-token-line\n",
        "[section]\npassword = x\n",
    ] {
        let e = one_error(text);
        let shown = e.to_string();
        for word in ["root", "s3cret", "$6$", "section", "password"] {
            assert!(!shown.contains(word), "{shown}");
        }
    }
}

/// Found by fuzzing: 20,000 duplicate addresses took over 10 s (the line of every error was
/// searched from the start). Past 100, the rest are counted.
#[test]
fn many_problems_are_listed_up_to_a_limit() {
    let mut text = String::from("cluster: c\nkey_file: {KEY}\nnodes:\n");
    for i in 0..20_000 {
        text.push_str(&format!(
            "  - name: n{i}\n    id: {}\n    address: 192.0.2.1:7400\n",
            i + 1
        ));
    }
    let v = errors(&text);
    assert_eq!(v.len(), MAX_ERRORS + 1);
    assert_eq!(v[0].key, "nodes[1].address");
    assert_eq!(v[0].line, Some(9));
    assert!(
        v[MAX_ERRORS].message.starts_with("and 19899 more problems"),
        "{}",
        v[MAX_ERRORS]
    );
}

/// check-config accepts what the agent accepts: a cluster key others can read is refused.
#[test]
fn readable_cluster_key_is_refused() {
    use std::os::unix::fs::PermissionsExt;
    let key = key_file();
    std::fs::set_permissions(key.path(), std::fs::Permissions::from_mode(0o644)).unwrap();
    let e = parse(Path::new("c.yaml"), &with_key(BASE, &key)).unwrap_err();
    assert_eq!(e.0[0].key, "key_file");
    assert!(e.0[0].message.contains("chmod 600"), "{e}");
}

/// The next key of a rotation: optional (default path `key_file` + `.next`); when present it
/// must be private like the current one.
#[test]
fn next_key_file_defaults_beside_the_key_and_must_be_private() {
    use std::os::unix::fs::PermissionsExt;
    let key = key_file();
    let c = parse(Path::new("c.yaml"), &with_key(BASE, &key)).expect("no next key is fine");
    let next = c.next_key_file();
    assert_eq!(
        next.display().to_string(),
        format!("{}.next", key.path().display())
    );
    std::fs::write(&next, [1u8; 32]).expect("write");
    std::fs::set_permissions(&next, std::fs::Permissions::from_mode(0o644)).expect("chmod");
    let e = parse(Path::new("c.yaml"), &with_key(BASE, &key)).expect_err("readable next key");
    std::fs::remove_file(&next).expect("rm");
    assert_eq!(e.0[0].key, "next_key_file");
    assert!(e.0[0].message.contains("chmod 600"), "{e}");
}

#[test]
fn frontends_without_fence_levels_are_warned_about() {
    let key = key_file();
    let c = parse(Path::new("c.yaml"), &with_key(BASE, &key)).unwrap();
    let w: Vec<String> = warnings(&c)
        .into_iter()
        .filter(|w| w.starts_with("fencing."))
        .collect();
    assert_eq!(w.len(), 2, "{w:?}");
    assert!(
        w[0].contains("front-end one-server1 has no fence level"),
        "{w:?}"
    );
    assert!(w[0].contains("oneha fence-ack one-server1"), "{w:?}");
}

/// The built-in group is OpenNebula 4.x-6.x's pair: check-config says OpenNebula 7 needs
/// another; a named group (here the 7.x one) gets no such warning.
#[test]
fn the_built_in_group_is_warned_about() {
    let key = key_file();
    let c = parse(Path::new("c.yaml"), &with_key(BASE, &key)).unwrap();
    let w = warnings(&c);
    let default: Vec<&String> = w
        .iter()
        .filter(|w| w.contains("built-in default"))
        .collect();
    assert_eq!(default.len(), 1, "{w:?}");
    assert!(default[0].contains("opennebula-hem"), "{w:?}");
    let seven = format!(
        "{BASE}resources:\n  group:\n    - {{name: opennebula, type: systemd, unit: opennebula.service}}\n    \
         - {{name: opennebula-hem, type: systemd, unit: opennebula-hem.service}}\n"
    );
    let c = parse(Path::new("c.yaml"), &with_key(&seven, &key)).unwrap();
    assert!(
        warnings(&c).iter().all(|w| !w.contains("built-in default")),
        "{:?}",
        warnings(&c)
    );
}
/// The failover-domain rule, as placement and `enable --on`/`relocate --to` both read it.
#[test]
fn eligible_hosts_follow_the_failover_domain() {
    let nodes = "\
cluster: opennebula
key_file: {KEY}
nodes:
  - {name: a, id: 1, address: 192.0.2.11:7400, priority: 5}
  - {name: b, id: 2, address: 192.0.2.12:7400}
  - {name: c, id: 3, address: 192.0.2.13:7400}
  - {name: w, id: 4, address: 192.0.2.14:7400, role: witness}
";
    let key = key_file();
    let hosts = |domain: &str| {
        let text = with_key(&format!("{nodes}{domain}"), &key);
        parse(Path::new("x"), &text)
            .expect("valid")
            .eligible_hosts()
    };
    // No domain: every front-end, by priority; never the witness.
    assert_eq!(hosts(""), vec![2, 3, 1]);
    let domain = "resources:\n  failover_domain:\n    nodes: [c, a]\n";
    // Restricted (the default): the domain's nodes alone, in its order.
    assert_eq!(hosts(domain), vec![3, 1]);
    // Unrestricted: the domain first, then the other front-ends.
    assert_eq!(
        hosts(&format!("{domain}    restricted: false\n")),
        vec![3, 1, 2]
    );
}

/// Two front-ends with two links each (LAN and a back-to-back cable, IPv6 on the cable).
const TWO_LINKS: &str = "\
cluster: opennebula
key_file: {KEY}
two_node: true
nodes:
  - name: a
    id: 1
    addresses: [192.0.2.11:7400, \"[2001:db8:2::1]:7400\"]
  - name: b
    id: 2
    addresses: [192.0.2.12:7400, \"[2001:db8:2::2]:7400\"]
";

#[test]
fn addresses_give_several_links_and_print_back() {
    let key = key_file();
    let c = parse(Path::new("x.yaml"), &with_key(TWO_LINKS, &key)).expect("valid");
    assert_eq!(c.nodes[0].addresses.len(), 2);
    assert_eq!(c.nodes[0].address, "192.0.2.11:7400".parse().unwrap());
    assert_eq!(
        c.nodes[1].addresses[1],
        "[2001:db8:2::2]:7400".parse().unwrap()
    );
    assert!(warnings(&c).iter().all(|w| !w.contains("links")));
    let yaml = c.to_yaml();
    assert!(yaml.contains("addresses:"), "{yaml}");
    assert!(yaml.contains("'[2001:db8:2::1]:7400'") || yaml.contains("[2001:db8:2::1]:7400"));
    // What check-config prints parses again to the same links.
    let again = parse(Path::new("x.yaml"), &yaml).expect("printed config parses");
    assert_eq!(again.nodes[1].addresses, c.nodes[1].addresses);
    // One link prints as `address`, as before.
    let one = parse(Path::new("x.yaml"), &with_key(BASE, &key)).expect("valid");
    assert_eq!(one.nodes[0].addresses, vec![one.nodes[0].address]);
    let yaml = one.to_yaml();
    assert!(yaml.contains("address: 192.0.2.11:7400") && !yaml.contains("addresses"));
}

#[test]
fn address_and_addresses_together_are_refused() {
    let text = TWO_LINKS.replace("    id: 2\n", "    id: 2\n    address: 192.0.2.12:7400\n");
    let e = one_error(&text);
    assert_eq!(e.key, "nodes[1]");
    assert!(e.message.contains("both `address` and `addresses`"), "{e}");
}

#[test]
fn a_node_without_any_address_or_with_an_empty_list_is_refused() {
    let e = one_error(&TWO_LINKS.replace(
        "    addresses: [192.0.2.12:7400, \"[2001:db8:2::2]:7400\"]\n",
        "",
    ));
    assert!(e.message.contains("node `b` has no peer address"), "{e}");
    let e = one_error(&TWO_LINKS.replace("[192.0.2.12:7400, \"[2001:db8:2::2]:7400\"]", "[]"));
    assert!(e.message.contains("empty `addresses` list"), "{e}");
}

#[test]
fn link_addresses_duplicate_port_zero_and_too_many() {
    // The cable address of b is a's; a lists its LAN address twice; port 0.
    let text = TWO_LINKS
        .replace("\"[2001:db8:2::2]:7400\"", "\"[2001:db8:2::1]:7400\"")
        .replace(
            "[192.0.2.11:7400, \"[2001:db8:2::1]:7400\"]",
            "[192.0.2.11:7400, \"[2001:db8:2::1]:7400\", 192.0.2.11:7400, 192.0.2.31:0]",
        );
    let v = errors(&text);
    let got: Vec<(&str, &str)> = v
        .iter()
        .map(|e| (e.key.as_str(), e.message.as_str()))
        .collect();
    assert_eq!(v.len(), 3, "{got:#?}");
    assert_eq!(v[0].key, "nodes[0].addresses[2]");
    assert!(
        v[0].message.contains("also link 1 of this node"),
        "{got:#?}"
    );
    assert_eq!(v[1].key, "nodes[0].addresses[3]");
    assert!(v[1].message.contains("port other than 0"));
    assert_eq!(v[2].key, "nodes[1].addresses[1]");
    assert!(
        v[2].message
            .contains("duplicate address [2001:db8:2::1]:7400 (also nodes[0])")
    );
    assert_eq!(v[2].line, Some(10));
    let nine: Vec<String> = (1..=9)
        .map(|i| format!("192.0.2.{}:7400", 40 + i))
        .collect();
    let e = one_error(&TWO_LINKS.replace(
        "[192.0.2.11:7400, \"[2001:db8:2::1]:7400\"]",
        &format!("[{}]", nine.join(", ")),
    ));
    assert_eq!(e.key, "nodes[0].addresses");
    assert!(e.message.contains("at most 8 links, found 9"), "{e}");
}

#[test]
fn different_link_counts_are_allowed_with_a_warning() {
    let key = key_file();
    let text = TWO_LINKS.replace(
        "[192.0.2.12:7400, \"[2001:db8:2::2]:7400\"]",
        "[192.0.2.12:7400]",
    );
    let c = parse(Path::new("x.yaml"), &with_key(&text, &key)).expect("valid");
    let w = warnings(&c);
    assert!(
        w.iter()
            .any(|w| w.contains("different numbers of links (a 2, b 1)")),
        "{w:#?}"
    );
}
