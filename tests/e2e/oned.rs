//! The demo's `opennebula.service`: the fake oned (`oneha-testkit fake-oned`, a few VMs stuck
//! in transient states) on 127.0.0.1:2633, where the agent's stuck-VM report finds it as it
//! finds a real oned, plus `serve-name` on the floating IP's port 2633, so a client still
//! sees which node serves. The node's network namespace allows binding the floating IP
//! before it is configured (`net.ipv4.ip_nonlocal_bind`), so the unit starts in any order.

use crate::harness::{Node, NodeSpec, ONED_PORT, SUNSTONE_PORT, serve_name_unit};

use super::VIP;

/// VMs the fake oned serves.
pub const VMS: u32 = 24;
/// Every `STUCK_EVERY`-th VM is stuck (PROLOG, BOOT, HOTPLUG, SHUTDOWN): 4 of 24.
pub const STUCK_EVERY: u32 = 6;
/// The session the fake accepts, written to `/etc/oneha/one_auth`.
pub const SESSION: &str = "oneadmin:opennebula";

/// The `opennebula.service` text (placeholders filled in by the node).
pub fn opennebula_unit() -> String {
    format!(
        "[Unit]\n\
         Description=OpenNebula oned (demo stand-in: fake oned on 127.0.0.1:{ONED_PORT}, node name on {VIP}:{ONED_PORT})\n\
         \n\
         [Service]\n\
         Type=notify\n\
         NotifyAccess=main\n\
         ExecStart=/bin/sh -c '{{{{testkit}}}} fake-oned --listen 127.0.0.1:{ONED_PORT} \
         --generate {VMS} --stuck-every {STUCK_EVERY} >>/var/log/oneha/fake-oned.log 2>&1 & \
         exec {{{{testkit}}}} serve-name --port {ONED_PORT} --bind {VIP} --name {{{{node}}}}'\n\
         StandardOutput=append:/var/log/oneha/%n.log\n\
         StandardError=inherit\n"
    )
}

/// A front-end with the demo units (not started) and the session file.
pub fn frontend_spec() -> NodeSpec {
    NodeSpec::new()
        .unit("opennebula.service", &opennebula_unit())
        .unit(
            "opennebula-sunstone.service",
            &serve_name_unit("OpenNebula Sunstone", SUNSTONE_PORT),
        )
        .etc_file("one_auth", &format!("{SESSION}\n"))
}

/// The config's `opennebula:` line: the fake on loopback, report `delay` after each start.
pub fn opennebula_section(delay: &str) -> String {
    format!(
        "opennebula: {{endpoint: \"http://127.0.0.1:{ONED_PORT}/RPC2\", auth_file: /etc/oneha/one_auth, \
         report_delay: {delay}, wait_for_oned: 60s, timeout: 5s}}"
    )
}

/// Lets `node`'s programs bind the floating IP before it is configured (network namespace
/// state: survives power cycles).
pub fn allow_nonlocal_bind(node: &Node) {
    node.exec_ok(&["sysctl", "-qw", "net.ipv4.ip_nonlocal_bind=1"]);
}

/// The report the agent on `node` wrote last, if any.
pub fn last_report(node: &Node) -> Option<oneha::opennebula::Report> {
    oneha::opennebula::load_last_report(node.state_dir())
}

/// Path of the report file on `node` (host side).
pub fn report_file(node: &Node) -> std::path::PathBuf {
    oneha::opennebula::takeover::report_path(node.state_dir())
}
