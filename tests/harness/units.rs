//! Unit files every node gets: the minimal boot target, stub targets, D-Bus, and the test
//! stand-ins for `opennebula.service` and `opennebula-sunstone.service`.

/// TCP port of the test `opennebula.service` (oned's XML-RPC port).
pub const ONED_PORT: u16 = 2633;
/// TCP port of the test `opennebula-sunstone.service`.
pub const SUNSTONE_PORT: u16 = 9869;

/// Targets systemd or ordinary units refer to; empty stubs, so nothing of the distribution
/// is pulled in.
const STUB_TARGETS: &[&str] = &[
    "sysinit",
    "basic",
    "sockets",
    "timers",
    "paths",
    "slices",
    "local-fs",
    "remote-fs",
    "network",
    "network-online",
    "network-pre",
    "nss-lookup",
    "multi-user",
    "shutdown",
    "umount",
    "final",
    "emergency",
    "rescue",
];

/// Units copied from the machine (Debian's dbus), started at boot.
pub const COPIED_UNITS: &[&str] = &["dbus.socket", "dbus.service"];

/// `(file name, text)` of the stub targets.
pub fn stub_targets() -> Vec<(String, String)> {
    STUB_TARGETS
        .iter()
        .map(|t| {
            (
                format!("{t}.target"),
                "[Unit]\nDefaultDependencies=no\n".to_string(),
            )
        })
        .collect()
}

/// `test.target`, the boot target: D-Bus plus `wants`.
pub fn test_target(wants: &[String]) -> String {
    let mut all: Vec<&str> = COPIED_UNITS.to_vec();
    all.extend(wants.iter().map(String::as_str));
    format!(
        "[Unit]\nDescription=oneha test node\nDefaultDependencies=no\nWants={}\nAfter=dbus.socket\n",
        all.join(" ")
    )
}

/// A unit running `oneha-testkit serve-name` on `port`, answering with the node's name.
/// Placeholders are filled in by the node (see [`super::NodeSpec::unit`]).
pub fn serve_name_unit(description: &str, port: u16) -> String {
    format!(
        "[Unit]\n\
         Description={description} (test stand-in: serves the node name on TCP {port})\n\
         \n\
         [Service]\n\
         Type=notify\n\
         NotifyAccess=main\n\
         ExecStart={{{{testkit}}}} serve-name --port {port} --name {{{{node}}}}\n\
         StandardOutput=append:/var/log/oneha/%n.log\n\
         StandardError=inherit\n"
    )
}

/// The default `opennebula.service` and `opennebula-sunstone.service`.
pub fn opennebula_units() -> Vec<(String, String)> {
    vec![
        (
            "opennebula.service".to_string(),
            serve_name_unit("OpenNebula oned", ONED_PORT),
        ),
        (
            "opennebula-sunstone.service".to_string(),
            serve_name_unit("OpenNebula Sunstone", SUNSTONE_PORT),
        ),
    ]
}

/// The script that runs as PID 1 of a node's new pid+mount namespaces: private /run and
/// cgroup2, only the test's units, the node's private directories, then systemd.
pub fn boot_script(node: &str, dirs: &super::node::NodeDirs) -> String {
    format!(
        "#!/bin/sh\n\
         set -e\n\
         mount --make-rprivate /\n\
         mount -t tmpfs -o mode=755 tmpfs /run\n\
         mount -t tmpfs -o mode=755 tmpfs /sys/fs/cgroup\n\
         mount -t cgroup2 cgroup2 /sys/fs/cgroup\n\
         mount --bind {units} /etc/systemd/system\n\
         mount --bind {empty} /usr/lib/systemd/system\n\
         mkdir -p /etc/oneha /var/lib/oneha /var/log/oneha\n\
         mount --bind {etc} /etc/oneha\n\
         mount --bind {state} /var/lib/oneha\n\
         mount --bind {initd} /etc/init.d\n\
         mount --bind {log} /var/log/oneha\n\
         mount --bind {hostname} /etc/hostname\n\
         hostname {node}\n\
         export container=oneha-test\n\
         exec /lib/systemd/systemd --system --unit=test.target --log-target=console --show-status=no\n",
        units = dirs.units.display(),
        empty = dirs.empty.display(),
        etc = dirs.etc.display(),
        state = dirs.state.display(),
        initd = dirs.initd.display(),
        log = dirs.log.display(),
        hostname = dirs.hostname.display(),
    )
}

/// The power-off script of a node: cable pulled, SIGKILL to PID 1 (found through
/// `pid_file`, checked to be in the node's cgroup so a reused pid is never hit), waited dead
/// (10 s at most), eth0's addresses flushed. It holds `lock` (flock) throughout, as a boot
/// does until PID 1 is known, so a power-off during a boot kills the booting node. Uses neither /sys nor the node's cgroup, so it
/// also works under `ip netns exec` (which mounts a /sys of its own).
pub fn poweroff_script(
    host: &super::Host,
    cgroup: &std::path::Path,
    pid_file: &std::path::Path,
    log: &std::path::Path,
    lock: &std::path::Path,
) -> String {
    let cg_name = cgroup
        .file_name()
        .map(|n| n.to_string_lossy().into_owned())
        .unwrap_or_default();
    format!(
        "#!/bin/sh\n\
         # Powers off test node {name}; notes what it did in {log}.\n\
         # A boot in progress holds the lock until PID 1 is known: wait for it, then kill.\n\
         exec 9>>{lock}\n\
         flock 9\n\
         ip -n {switch} link set {veth} down || exit 1\n\
         ip -n {ns} link set x0 down 2>/dev/null\n\
         PIDFILE={pid_file}\n\
         WHAT=\"was already off\"\n\
         if [ -f $PIDFILE ]; then\n\
         \x20   PID=$(cat $PIDFILE)\n\
         \x20   WHAT=\"PID 1 ($PID) is not in the node's cgroup: not killed\"\n\
         \x20   if grep -qE '/{cg_name}(/|$)' /proc/$PID/cgroup 2>/dev/null; then\n\
         \x20       WHAT=\"killed PID 1 ($PID)\"\n\
         \x20       kill -KILL $PID\n\
         \x20       i=0\n\
         \x20       while [ -d /proc/$PID ] && [ \"$(cut -d' ' -f3 /proc/$PID/stat 2>/dev/null)\" != Z ]; do\n\
         \x20           i=$((i + 1)); [ $i -gt 1000 ] && {{ echo \"PID 1 ($PID) survives\" >&2; exit 1; }}\n\
         \x20           sleep 0.01\n\
         \x20       done\n\
         \x20   fi\n\
         \x20   rm -f $PIDFILE\n\
         fi\n\
         ip -n {ns} addr flush dev eth0\n\
         echo \"$(date -u +%H:%M:%S.%N | cut -c1-12) power off: $WHAT\" >> {log}\n",
        log = log.display(),
        lock = lock.display(),
        name = host.name(),
        switch = host.switch_ns(),
        veth = host.veth(),
        pid_file = pid_file.display(),
        ns = host.ns(),
    )
}
