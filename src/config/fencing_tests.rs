//! The `fencing:` section: parsing, defaults, every validation message, redaction.

use std::path::Path;

use super::DeviceConfig;
use crate::config::{self, Config, ConfigErrors};

/// A valid two-node config with `fencing` appended; key files live in `dir`.
pub(crate) fn config_text(dir: &Path, fencing: &str) -> String {
    let key = dir.join("cluster.key");
    std::fs::write(&key, b"k").unwrap();
    // The agent and check-config refuse a cluster key others can read.
    let private = std::os::unix::fs::PermissionsExt::from_mode(0o600);
    std::fs::set_permissions(&key, private).unwrap();
    std::fs::write(dir.join("fence_xvm.key"), b"fence key").unwrap();
    format!(
        "cluster: opennebula\n\
         key_file: {}\n\
         two_node: true\n\
         nodes:\n\
         \x20 - name: one-server1\n\
         \x20   id: 1\n\
         \x20   address: 192.0.2.11:7788\n\
         \x20 - name: one-server2\n\
         \x20   id: 2\n\
         \x20   address: 192.0.2.12:7788\n\
         {fencing}",
        key.display()
    )
    .replace("KEYDIR", &dir.display().to_string())
}

fn parse(fencing: &str) -> Result<Config, ConfigErrors> {
    let dir = tempfile::tempdir().unwrap();
    let text = config_text(dir.path(), fencing);
    config::parse(Path::new("oneha.yaml"), &text)
}

fn errors(fencing: &str) -> String {
    parse(fencing).expect_err("expected errors").to_string()
}

const GOOD: &str = "\
fencing:
  devices:
    kvm-host:
      type: xvm
      key_file: KEYDIR/fence_xvm.key
      hash: sha512
      source_addresses:
        one-server2: 192.0.2.22
    ipmi1:
      type: agent
      agent: /bin/true
      options:
        ip: 192.0.2.50
        username: admin
        password: s3cret-pw
        password_script: /etc/oneha/ipmipw
    lab:
      type: ssh
      strict_host_key_checking: false
  nodes:
    one-server1:
      delay: 15s
      levels:
        - device: kvm-host
          plug: one1
        - device: ipmi1
          retries: 0
    one-server2:
      levels:
        - device: lab
";

#[test]
fn parses_devices_levels_and_defaults() {
    let c = parse(GOOD).unwrap();
    let f = &c.fencing;
    let DeviceConfig::Xvm(x) = &f.devices["kvm-host"] else {
        panic!("xvm expected");
    };
    assert_eq!(x.multicast_address.to_string(), "225.0.0.12");
    assert_eq!(
        (x.port, x.hash.name(), x.auth.name()),
        (1229, "sha512", "sha256")
    );
    assert_eq!(x.timeout.to_string(), "30s");
    assert_eq!(x.retransmit.to_string(), "2s");
    assert_eq!(
        super::xvm_source(&c, x, "one-server1").unwrap().to_string(),
        "192.0.2.11"
    );
    assert_eq!(
        super::xvm_source(&c, x, "one-server2").unwrap().to_string(),
        "192.0.2.22"
    );
    let n1 = &f.nodes["one-server1"];
    assert_eq!(n1.delay.to_string(), "15s");
    assert_eq!(
        (n1.levels[0].retries, n1.levels[0].retry_sleep.to_string()),
        (2, "5s".into())
    );
    assert_eq!(n1.levels[1].retries, 0);
    assert!(matches!(f.devices["lab"], DeviceConfig::Ssh(ref s) if s.user == "root"));
}

#[test]
fn printed_config_redacts_passwords_but_keeps_the_rest() {
    let c = parse(GOOD).unwrap();
    let yaml = c.to_yaml();
    assert!(!yaml.contains("s3cret-pw"), "{yaml}");
    assert!(yaml.contains("password: <redacted>"), "{yaml}");
    assert!(
        yaml.contains("password_script: /etc/oneha/ipmipw"),
        "{yaml}"
    );
    assert!(yaml.contains("username: admin"));
    let debug = format!("{:?}", c.fencing);
    assert!(
        !debug.contains("s3cret-pw") && debug.contains("<redacted>"),
        "{debug}"
    );
}

#[test]
fn unknown_device_and_node_are_named() {
    let e = errors(
        "fencing:\n  devices:\n    lab: {type: ssh}\n  nodes:\n    one-server9:\n      levels:\n        - device: nope\n",
    );
    assert!(
        e.contains("fencing.nodes.one-server9: `one-server9` is not a member"),
        "{e}"
    );
    assert!(e.contains("members: one-server1, one-server2"), "{e}");
    assert!(e.contains("levels[0].device: unknown device `nope`"), "{e}");
    assert!(e.contains("(defined: lab)"), "{e}");
}

#[test]
fn xvm_problems_are_reported_with_keys_and_lines() {
    let e = errors(
        "fencing:
  devices:
    kvm:
      type: xvm
      key_file: /nonexistent/fence_xvm.key
      multicast_address: 192.0.2.99
      retransmit: 40s
      source_addresses:
        one-server1: 127.0.0.1
        ghost: 192.0.2.30
  nodes:
    one-server1:
      levels:
        - device: kvm
        - device: kvm
          plug: AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA
        - device: kvm
          plug: one1
          uuid: true
",
    );
    assert!(e.contains("oneha.yaml:15: fencing.devices.kvm.key_file: the key file /nonexistent/fence_xvm.key does not exist"), "{e}");
    assert!(
        e.contains("multicast_address: expected an IPv4 multicast group"),
        "{e}"
    );
    assert!(
        e.contains("retransmit (40s) is longer than timeout (30s)"),
        "{e}"
    );
    assert!(e.contains("source_addresses.one-server1: node one-server1 would send fence requests from 127.0.0.1, which is a loopback"), "{e}");
    assert!(
        e.contains("source_addresses.ghost: `ghost` is not a member"),
        "{e}"
    );
    assert!(
        e.contains("levels[0].plug: an xvm level needs `plug`"),
        "{e}"
    );
    assert!(
        e.contains("levels[1].plug: expected a name of 1 to 63 bytes on one line, found 74 bytes"),
        "{e}"
    );
    assert!(
        e.contains("levels[2].plug: uuid: true needs plug to be a domain UUID"),
        "{e}"
    );
}

#[test]
fn floating_ip_is_refused_as_xvm_source() {
    let e = errors(
        "resources:
  group:
    - name: vip
      type: ip
      address: 192.0.2.100/24
      interface: eth0
fencing:
  devices:
    kvm:
      type: xvm
      key_file: KEYDIR/fence_xvm.key
      source_addresses:
        one-server2: 192.0.2.100
",
    );
    assert!(e.contains("192.0.2.100, which is the floating IP"), "{e}");
}

#[test]
fn agent_problems_are_reported() {
    let e = errors(
        "fencing:
  devices:
    ipmi:
      type: agent
      agent: fence_does_not_exist_here
      options:
        action: off
        plug: x
        ip: 192.0.2.50
",
    );
    assert!(
        e.contains("fence agent `fence_does_not_exist_here` not found"),
        "{e}"
    );
    assert!(
        e.contains("options.action: `action` is set by oneha"),
        "{e}"
    );
    assert!(e.contains("options.plug: `plug` is set by oneha"), "{e}");
    assert!(!e.contains("options.ip"), "{e}");
}

#[test]
fn unknown_keys_and_bad_hash_names_are_refused() {
    let e = errors("fencing:\n  devices:\n    kvm:\n      type: xvm\n      hash: md5\n");
    assert!(e.contains("md5"), "{e}");
    let e = errors("fencing:\n  devices:\n    kvm:\n      type: xvm\n      key: /x\n");
    assert!(e.contains("unknown field `key`"), "{e}");
    let e = errors("fencing:\n  devices:\n    kvm:\n      type: ipmi\n");
    assert!(e.contains("ipmi"), "{e}");
    let e = errors(
        "fencing:\n  nodes:\n    one-server1:\n      levels:\n        - device: a\n          tries: 3\n",
    );
    assert!(e.contains("unknown field `tries`"), "{e}");
}

#[test]
fn secret_option_names() {
    use super::is_secret_option;
    for k in [
        "password",
        "passwd",
        "snmp_priv_passwd",
        "community",
        "secret",
        "ssh_key",
    ] {
        assert!(is_secret_option(k), "{k}");
    }
    for k in ["password_script", "ip", "username", "login", "ipport"] {
        assert!(!is_secret_option(k), "{k}");
    }
}

/// A device `ipmi` running /bin/true with one option line.
fn agent_with_option(option: &str) -> String {
    format!(
        "fencing:
  devices:
    ipmi:
      type: agent
      agent: /bin/true
      options:
        {option}
"
    )
}

/// Found by fuzzing: option values with a line break or NUL were accepted, and agents read
/// options as `key=value` lines, so one option could pass others.
#[test]
fn option_values_with_line_breaks_or_nul_are_refused_without_showing_them() {
    for (raw, what) in [
        ("\"pw\\naction=on\"", "LF"),
        ("\"pw\\raction=on\"", "CR"),
        ("\"pw\\0x\"", "NUL"),
        ("\"pw\\u2028ipaddr=x\"", "U+2028"),
        ("\"pw\\Nipaddr=x\"", "NEL"),
    ] {
        let e = errors(&agent_with_option(&format!("password: {raw}")));
        assert!(
            e.contains("fencing.devices.ipmi.options.password: option `password` of device `ipmi` has a line break"),
            "{what}: {e}"
        );
        assert!(!e.contains("pw"), "{what}: the value is shown: {e}");
    }
    let e = errors(&agent_with_option("\"ip\\raction\": x"));
    assert!(e.contains("option names must be one word"), "{e}");
    assert!(crate::config::fencing_check::is_one_line("s3cret pw=x"));
}

/// Paths that exist but are not key files, each with what the refusal says about it: a
/// character device, the folder `dir`, an empty file made in it. `fence::xvm::read_key`'s
/// test uses them too.
pub(crate) fn not_key_files(dir: &Path) -> [(String, &'static str); 3] {
    let empty = dir.join("empty.key");
    std::fs::write(&empty, b"").unwrap();
    [
        (
            "/dev/zero".to_string(),
            "is not a regular file (it is a character device)",
        ),
        (
            dir.display().to_string(),
            "is not a regular file (it is a directory)",
        ),
        (empty.display().to_string(), "is empty"),
    ]
}

/// Found by fuzzing: a key_file of /dev/zero was reported as "does not exist" (and reading it
/// would never end).
#[test]
fn key_file_that_exists_but_is_not_a_key_file_says_what_it_is() {
    let dir = tempfile::tempdir().unwrap();
    for (path, expected) in not_key_files(dir.path()) {
        let e = errors(&format!(
            "fencing:
  devices:
    kvm:
      type: xvm
      key_file: {path}
"
        ));
        assert!(
            e.contains(&format!("the key file {path} {expected}")),
            "{e}"
        );
        assert!(!e.contains("does not exist"), "{e}");
    }
}
