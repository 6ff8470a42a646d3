//! `oneha-testkit notify-probe`: a stand-in for the agent under `deploy/oneha.service`.
//! Opens what the agent needs (a netlink route socket, an AF_PACKET socket, the system
//! D-Bus socket), reports the outcome to systemd with `READY=1` and `STATUS=`, then pings
//! the watchdog through `oneha::notify` a given number of times and stops pinging, so a test
//! can see the unit's sandbox, readiness and watchdog under real systemd.

use std::time::Duration;

use clap::Args;
use nix::sys::socket::{AddressFamily, SockFlag, SockProtocol, SockType, socket};

/// Arguments of `oneha-testkit notify-probe`.
#[derive(Debug, Clone, Args)]
pub struct NotifyProbeArgs {
    /// Watchdog pings to send before going silent (default: ping forever).
    #[arg(long)]
    pub pings: Option<u64>,
    /// System bus socket to connect to.
    #[arg(long, default_value = "/run/dbus/system_bus_socket")]
    pub bus: String,
}

fn check(what: &str, r: Result<(), String>) -> String {
    match r {
        Ok(()) => format!("{what} ok"),
        Err(e) => format!("{what} FAILED ({e})"),
    }
}

/// What the sandbox allowed, as `netlink ok, packet ok, dbus ok`.
pub fn probe(bus: &str) -> String {
    let netlink = socket(
        AddressFamily::Netlink,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::NetlinkRoute,
    )
    .map(drop)
    .map_err(|e| e.to_string());
    let packet = socket(
        AddressFamily::Packet,
        SockType::Raw,
        SockFlag::SOCK_CLOEXEC,
        SockProtocol::EthAll,
    )
    .map(drop)
    .map_err(|e| e.to_string());
    let dbus = std::os::unix::net::UnixStream::connect(bus)
        .map(drop)
        .map_err(|e| e.to_string());
    [
        check("netlink", netlink),
        check("packet", packet),
        check("dbus", dbus),
    ]
    .join(", ")
}

/// Runs the probe; returns only on a notify error.
pub fn run(args: &NotifyProbeArgs) -> i32 {
    let status = probe(&args.bus);
    eprintln!("notify-probe: {status}");
    if let Err(e) = oneha::notify::notify(&format!("READY=1\nSTATUS={status}")) {
        eprintln!("notify-probe: cannot notify systemd: {e}");
        return 1;
    }
    let interval = oneha::notify::watchdog_interval();
    let mut left = args.pings;
    loop {
        let Some(iv) = interval else {
            std::thread::sleep(Duration::from_secs(3600));
            continue;
        };
        std::thread::sleep(iv / 2);
        match left {
            Some(0) => continue,
            Some(n) => left = Some(n - 1),
            None => {}
        }
        if let Err(e) = oneha::notify::notify("WATCHDOG=1") {
            eprintln!("notify-probe: watchdog ping failed: {e}");
        }
    }
}
