//! Doing things inside a network namespace from the test process: a short-lived thread
//! joins the namespace (`setns` affects only the calling thread), and a netlink socket
//! opened there keeps answering for that namespace from any thread.

use std::net::IpAddr;
use std::os::fd::AsRawFd;

use rtnetlink::packet_core::{NLM_F_DUMP, NLM_F_REQUEST, NetlinkMessage, NetlinkPayload};
use rtnetlink::packet_route::RouteNetlinkMessage;
use rtnetlink::packet_route::address::{AddressAttribute, AddressMessage};
use rtnetlink::sys::{Socket, protocols::NETLINK_ROUTE};

/// Runs `f` on a thread that has joined network namespace `ns` (a name under /run/netns).
pub fn in_netns<T: Send>(ns: &str, f: impl FnOnce() -> T + Send) -> T {
    std::thread::scope(|s| {
        s.spawn(|| {
            enter_netns(ns);
            f()
        })
        .join()
        .unwrap_or_else(|e| std::panic::resume_unwind(e))
    })
}

/// Moves the calling thread into network namespace `ns` (a name under /run/netns). Only for
/// threads that exist for that purpose: the thread never comes back.
pub fn enter_netns(ns: &str) {
    let path = format!("/run/netns/{ns}");
    let file = std::fs::File::open(&path)
        .unwrap_or_else(|e| panic!("cannot open network namespace {path}: {e}"));
    // SAFETY: setns(2) on a namespace file descriptor we hold open; it changes only this
    // thread (threads it starts later inherit it).
    let rc = unsafe { libc::setns(file.as_raw_fd(), libc::CLONE_NEWNET) };
    assert_eq!(rc, 0, "setns({path}): {}", std::io::Error::last_os_error());
}

/// A route netlink socket bound inside one namespace, for listing its addresses.
pub struct AddrDump {
    sock: Socket,
}

impl AddrDump {
    /// Opens the socket in namespace `ns`.
    pub fn open(ns: &str) -> AddrDump {
        let sock = in_netns(ns, || {
            let mut s = Socket::new(NETLINK_ROUTE)
                .unwrap_or_else(|e| panic!("netlink socket in {ns}: {e}"));
            s.bind_auto()
                .unwrap_or_else(|e| panic!("netlink bind in {ns}: {e}"));
            s
        });
        AddrDump { sock }
    }

    /// Every address in the namespace except loopback ones.
    pub fn addresses(&self) -> std::io::Result<Vec<IpAddr>> {
        let mut req =
            NetlinkMessage::from(RouteNetlinkMessage::GetAddress(AddressMessage::default()));
        req.header.flags = NLM_F_REQUEST | NLM_F_DUMP;
        req.finalize();
        let mut buf = vec![0u8; req.buffer_len()];
        req.serialize(&mut buf);
        self.sock.send(&buf, 0)?;
        let mut found = Vec::new();
        loop {
            let (data, _) = self.sock.recv_from_full()?;
            let mut offset = 0;
            while offset < data.len() {
                let msg = NetlinkMessage::<RouteNetlinkMessage>::deserialize(&data[offset..])
                    .map_err(|e| std::io::Error::other(format!("netlink: {e}")))?;
                let len = msg.header.length as usize;
                match msg.payload {
                    NetlinkPayload::Done(_) => return Ok(found),
                    NetlinkPayload::Error(e) => return Err(e.to_io()),
                    NetlinkPayload::InnerMessage(RouteNetlinkMessage::NewAddress(a)) => {
                        found.extend(a.attributes.iter().filter_map(|attr| match attr {
                            AddressAttribute::Address(ip) if !ip.is_loopback() => Some(*ip),
                            _ => None,
                        }));
                    }
                    _ => {}
                }
                if len == 0 {
                    break;
                }
                offset += len;
            }
        }
    }
}
