//! `oneha-testkit serve-name`: a TCP server that writes its node name and closes, so a
//! client can tell which node answered on the floating IP. Tells systemd when it listens
//! (`Type=notify`), so a started unit accepts connections at once.

use std::io::Write;
use std::net::{SocketAddr, TcpListener};
use std::time::Duration;

use clap::Args;

/// Arguments of `oneha-testkit serve-name`.
#[derive(Debug, Clone, Args)]
pub struct ServeArgs {
    /// TCP port to listen on.
    #[arg(long)]
    pub port: u16,
    /// Text to send to every client (followed by a newline).
    #[arg(long)]
    pub name: String,
    /// Address to listen on.
    #[arg(long, default_value = "0.0.0.0")]
    pub bind: std::net::IpAddr,
}

/// Serves until killed; returns an exit code only on a setup error.
pub fn run(args: &ServeArgs) -> i32 {
    let addr = SocketAddr::new(args.bind, args.port);
    let listener = match TcpListener::bind(addr) {
        Ok(l) => l,
        Err(e) => {
            eprintln!("serve-name: cannot listen on {addr}: {e}");
            return 1;
        }
    };
    if let Err(e) = notify_ready() {
        eprintln!("serve-name: cannot notify systemd: {e}");
    }
    eprintln!("serve-name: {} listening on {addr}", args.name);
    let reply = format!("{}\n", args.name);
    for conn in listener.incoming() {
        let Ok(mut stream) = conn else { continue };
        let _ = stream.set_write_timeout(Some(Duration::from_secs(1)));
        let _ = stream.write_all(reply.as_bytes());
    }
    0
}

/// Sends `READY=1` to `$NOTIFY_SOCKET` when systemd set one.
fn notify_ready() -> std::io::Result<()> {
    use std::os::unix::net::{SocketAddr as UnixAddr, UnixDatagram};
    let Some(path) = std::env::var_os("NOTIFY_SOCKET") else {
        return Ok(());
    };
    let path = path.to_string_lossy().into_owned();
    let addr = match path.strip_prefix('@') {
        Some(name) => {
            use std::os::linux::net::SocketAddrExt;
            UnixAddr::from_abstract_name(name.as_bytes())?
        }
        None => UnixAddr::from_pathname(&path)?,
    };
    UnixDatagram::unbound()?.send_to_addr(b"READY=1", &addr)?;
    Ok(())
}
