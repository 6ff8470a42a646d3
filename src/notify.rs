//! systemd's notify protocol (sd_notify(3)) for `Type=notify` units: `READY=1` once the
//! agent has joined, `WATCHDOG=1` from the main loop, `STATUS=...` for `systemctl status`,
//! `STOPPING=1` on shutdown. No libsystemd: one datagram to `$NOTIFY_SOCKET`.

use std::ffi::OsStr;
use std::io;
use std::os::unix::net::{SocketAddr, UnixDatagram};
use std::time::Duration;

/// Sends `state` (e.g. `"READY=1\nSTATUS=joined"`) to the socket in `$NOTIFY_SOCKET`.
/// `Ok(false)` when the variable is unset (not started by systemd, or `Type=simple`).
pub fn notify(state: &str) -> io::Result<bool> {
    notify_to(std::env::var_os("NOTIFY_SOCKET").as_deref(), state)
}

/// [`notify`] to an explicit socket address: a path, or `@name` for an abstract socket.
pub fn notify_to(socket: Option<&OsStr>, state: &str) -> io::Result<bool> {
    let Some(socket) = socket.filter(|s| !s.is_empty()) else {
        return Ok(false);
    };
    let addr = socket_addr(socket)?;
    let sock = UnixDatagram::unbound()?;
    let sent = sock.send_to_addr(state.as_bytes(), &addr)?;
    if sent != state.len() {
        return Err(io::Error::other(format!(
            "sent {sent} of {} bytes to the notify socket",
            state.len()
        )));
    }
    Ok(true)
}

fn socket_addr(socket: &OsStr) -> io::Result<SocketAddr> {
    use std::os::unix::ffi::OsStrExt;
    let bytes = socket.as_bytes();
    match bytes.first() {
        Some(b'@') => {
            use std::os::linux::net::SocketAddrExt;
            SocketAddr::from_abstract_name(&bytes[1..])
        }
        Some(b'/') => SocketAddr::from_pathname(socket),
        _ => Err(io::Error::new(
            io::ErrorKind::Unsupported,
            format!(
                "NOTIFY_SOCKET={} is neither a path nor an abstract socket (@name); this \
                 systemd's vsock notification is not supported",
                socket.to_string_lossy()
            ),
        )),
    }
}

/// The watchdog timeout systemd expects pings within (`WatchdogSec=`), from
/// `$WATCHDOG_USEC`; `None` when unset, zero, unparsable, or meant for another process
/// (`$WATCHDOG_PID`). Ping (`notify("WATCHDOG=1")`) at half of it.
pub fn watchdog_interval() -> Option<Duration> {
    let usec = std::env::var("WATCHDOG_USEC").ok();
    let pid = std::env::var("WATCHDOG_PID").ok();
    watchdog_from(usec.as_deref(), pid.as_deref(), std::process::id())
}

/// [`watchdog_interval`] from explicit values.
pub fn watchdog_from(usec: Option<&str>, pid: Option<&str>, my_pid: u32) -> Option<Duration> {
    let usec: u64 = usec?.trim().parse().ok()?;
    if usec == 0 {
        return None;
    }
    if let Some(pid) = pid {
        let pid: u32 = pid.trim().parse().ok()?;
        if pid != my_pid {
            return None;
        }
    }
    Some(Duration::from_micros(usec))
}

#[cfg(test)]
mod tests {
    use super::*;
    use std::ffi::OsString;

    fn recv(sock: &UnixDatagram) -> String {
        sock.set_read_timeout(Some(Duration::from_secs(5))).unwrap();
        let mut buf = [0u8; 512];
        let n = sock.recv(&mut buf).unwrap();
        String::from_utf8_lossy(&buf[..n]).into_owned()
    }

    #[test]
    fn sends_to_a_path_socket() {
        let dir = tempfile::tempdir().unwrap();
        let path = dir.path().join("notify");
        let server = UnixDatagram::bind(&path).unwrap();
        let sent = notify_to(Some(path.as_os_str()), "READY=1\nSTATUS=joined").unwrap();
        assert!(sent);
        assert_eq!(recv(&server), "READY=1\nSTATUS=joined");
        notify_to(Some(path.as_os_str()), "WATCHDOG=1").unwrap();
        assert_eq!(recv(&server), "WATCHDOG=1");
    }

    #[test]
    fn sends_to_an_abstract_socket() {
        use std::os::linux::net::SocketAddrExt;
        let name = format!("oneha-notify-test-{}", std::process::id());
        let addr = SocketAddr::from_abstract_name(name.as_bytes()).unwrap();
        let server = UnixDatagram::bind_addr(&addr).unwrap();
        let env = OsString::from(format!("@{name}"));
        assert!(notify_to(Some(&env), "READY=1").unwrap());
        assert_eq!(recv(&server), "READY=1");
    }

    #[test]
    fn unset_is_not_an_error_and_bad_values_are() {
        assert!(!notify_to(None, "READY=1").unwrap());
        assert!(!notify_to(Some(OsStr::new("")), "READY=1").unwrap());
        let e = notify_to(Some(OsStr::new("vsock:2:1234")), "READY=1").unwrap_err();
        assert!(e.to_string().contains("neither a path"), "{e}");
        let dir = tempfile::tempdir().unwrap();
        let gone = dir.path().join("no-such-socket");
        assert!(notify_to(Some(gone.as_os_str()), "READY=1").is_err());
    }

    #[test]
    fn watchdog_interval_from_the_environment_values() {
        assert_eq!(
            watchdog_from(Some("10000000"), None, 7),
            Some(Duration::from_secs(10))
        );
        assert_eq!(
            watchdog_from(Some("500000"), Some("7"), 7),
            Some(Duration::from_millis(500))
        );
        assert_eq!(watchdog_from(Some("500000"), Some("8"), 7), None);
        assert_eq!(watchdog_from(Some("0"), None, 7), None);
        assert_eq!(watchdog_from(Some("ten"), None, 7), None);
        assert_eq!(watchdog_from(None, Some("7"), 7), None);
        assert_eq!(watchdog_from(Some("500000"), Some("x"), 7), None);
    }
}
