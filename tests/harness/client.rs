//! What a client sees: TCP answers, its neighbour table, who answers ARP for an address.

use std::io::Read;
use std::net::{IpAddr, SocketAddr, TcpStream};
use std::time::Duration;

use super::host::Host;
use super::netns::in_netns;

/// Connect timeout of [`Host::tcp_get`] (includes ARP resolution).
pub const CONNECT_TIMEOUT: Duration = Duration::from_millis(500);
/// Read timeout of [`Host::tcp_get`].
pub const READ_TIMEOUT: Duration = Duration::from_secs(1);

impl Host {
    /// Connects from this host to `addr:port` and returns what the server wrote before
    /// closing (trimmed), or why that failed.
    pub fn tcp_get(&self, addr: IpAddr, port: u16) -> Result<String, String> {
        in_netns(self.ns(), move || {
            let sa = SocketAddr::new(addr, port);
            let mut s = TcpStream::connect_timeout(&sa, CONNECT_TIMEOUT)
                .map_err(|e| format!("connect {sa}: {e}"))?;
            s.set_read_timeout(Some(READ_TIMEOUT))
                .map_err(|e| e.to_string())?;
            let mut text = String::new();
            s.read_to_string(&mut text)
                .map_err(|e| format!("read from {sa}: {e}"))?;
            Ok(text.trim().to_string())
        })
    }

    /// The MAC this host's neighbour table has for `ip` on eth0 (lowercase), if any.
    pub fn neigh_mac(&self, ip: IpAddr) -> Option<String> {
        let ip = ip.to_string();
        let out = self.exec(&["ip", "neigh", "show", &ip, "dev", "eth0"]);
        let words: Vec<&str> = out.stdout.split_whitespace().collect();
        let at = words.iter().position(|w| *w == "lladdr")?;
        words.get(at + 1).map(|m| m.to_lowercase())
    }

    /// Duplicate address detection from this host (`arping -D`, 1 s): the MAC of the
    /// host answering for `ip` (lowercase), or `None` if nobody does.
    pub fn arp_dad(&self, ip: IpAddr) -> Option<String> {
        let ip = ip.to_string();
        let out = self.exec(&["arping", "-D", "-c", "1", "-w", "1", "-I", "eth0", &ip]);
        let open = out.stdout.find('[')?;
        let close = out.stdout[open..].find(']')? + open;
        Some(out.stdout[open + 1..close].to_lowercase())
    }
}
