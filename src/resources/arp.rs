//! ARP frames from an `AF_PACKET` socket: gratuitous ARP (announcing that a floating IP
//! moved here) and duplicate address detection (is another host answering for it?).
//!
//! A client that has the old holder's MAC in its neighbour table keeps sending there until it
//! hears otherwise; one unsolicited ARP request or reply updates it at once. Both are sent,
//! because some stacks only honour one of them (as IPaddr2 and keepalived do).

use std::fmt;
use std::io;
use std::net::{IpAddr, Ipv4Addr};
use std::os::fd::{AsRawFd, FromRawFd, OwnedFd};
use std::time::Duration;

use tokio::io::Interest;
use tokio::io::unix::AsyncFd;
use tokio::time::Instant;

use super::ndp;

/// EtherType of ARP.
const ETH_P_ARP: u16 = 0x0806;
/// Length of an Ethernet frame carrying an IPv4 ARP packet (without padding or FCS).
pub const FRAME_LEN: usize = 42;

/// An Ethernet hardware address.
#[derive(Clone, Copy, PartialEq, Eq, Debug, Hash)]
pub struct Mac(pub [u8; 6]);

impl Mac {
    /// `ff:ff:ff:ff:ff:ff`.
    pub const BROADCAST: Mac = Mac([0xff; 6]);
    /// `00:00:00:00:00:00`.
    pub const ZERO: Mac = Mac([0; 6]);

    /// The address from the first six bytes of `bytes`, if there are six.
    pub fn from_slice(bytes: &[u8]) -> Option<Mac> {
        let six: [u8; 6] = bytes.get(..6)?.try_into().ok()?;
        Some(Mac(six))
    }
}

impl fmt::Display for Mac {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let m = self.0;
        write!(
            f,
            "{:02x}:{:02x}:{:02x}:{:02x}:{:02x}:{:02x}",
            m[0], m[1], m[2], m[3], m[4], m[5]
        )
    }
}

/// The ARP operation.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub enum ArpOp {
    /// Who has TARGET_IP? (1)
    Request,
    /// SENDER_IP is at SENDER_MAC. (2)
    Reply,
}

/// An Ethernet/IPv4 ARP packet.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct ArpPacket {
    /// Request or reply.
    pub op: ArpOp,
    /// Sender hardware address.
    pub sender_mac: Mac,
    /// Sender protocol address (0.0.0.0 in a probe).
    pub sender_ip: Ipv4Addr,
    /// Target hardware address.
    pub target_mac: Mac,
    /// Target protocol address.
    pub target_ip: Ipv4Addr,
}

impl ArpPacket {
    /// Unsolicited ARP request for `ip` from its new holder (what `arping -U` sends).
    pub fn announcement(mac: Mac, ip: Ipv4Addr) -> ArpPacket {
        ArpPacket {
            op: ArpOp::Request,
            sender_mac: mac,
            sender_ip: ip,
            target_mac: Mac::BROADCAST,
            target_ip: ip,
        }
    }

    /// Unsolicited ARP reply for `ip` from its new holder (what `arping -A` sends).
    pub fn gratuitous_reply(mac: Mac, ip: Ipv4Addr) -> ArpPacket {
        ArpPacket {
            op: ArpOp::Reply,
            sender_mac: mac,
            sender_ip: ip,
            target_mac: mac,
            target_ip: ip,
        }
    }

    /// Duplicate address probe (RFC 5227, `arping -D`): sender IP 0.0.0.0, so no listener
    /// learns anything from it, while a holder of `ip` answers.
    pub fn probe(mac: Mac, ip: Ipv4Addr) -> ArpPacket {
        ArpPacket {
            op: ArpOp::Request,
            sender_mac: mac,
            sender_ip: Ipv4Addr::UNSPECIFIED,
            target_mac: Mac::ZERO,
            target_ip: ip,
        }
    }

    /// The Ethernet frame carrying this packet from `sender_mac` to `dst`.
    pub fn frame(&self, dst: Mac) -> [u8; FRAME_LEN] {
        let mut f = [0u8; FRAME_LEN];
        f[0..6].copy_from_slice(&dst.0);
        f[6..12].copy_from_slice(&self.sender_mac.0);
        f[12..14].copy_from_slice(&ETH_P_ARP.to_be_bytes());
        f[14..16].copy_from_slice(&1u16.to_be_bytes()); // hardware type: Ethernet
        f[16..18].copy_from_slice(&0x0800u16.to_be_bytes()); // protocol type: IPv4
        f[18] = 6;
        f[19] = 4;
        let op: u16 = match self.op {
            ArpOp::Request => 1,
            ArpOp::Reply => 2,
        };
        f[20..22].copy_from_slice(&op.to_be_bytes());
        f[22..28].copy_from_slice(&self.sender_mac.0);
        f[28..32].copy_from_slice(&self.sender_ip.octets());
        f[32..38].copy_from_slice(&self.target_mac.0);
        f[38..42].copy_from_slice(&self.target_ip.octets());
        f
    }

    /// Parses an Ethernet frame; `None` for anything but an Ethernet/IPv4 ARP request or reply.
    pub fn parse(frame: &[u8]) -> Option<ArpPacket> {
        let f: &[u8; FRAME_LEN] = frame.get(..FRAME_LEN)?.try_into().ok()?;
        let be16 = |i: usize| u16::from_be_bytes([f[i], f[i + 1]]);
        let ip = |i: usize| Ipv4Addr::new(f[i], f[i + 1], f[i + 2], f[i + 3]);
        if be16(12) != ETH_P_ARP || be16(14) != 1 || be16(16) != 0x0800 || f[18] != 6 || f[19] != 4
        {
            return None;
        }
        let op = match be16(20) {
            1 => ArpOp::Request,
            2 => ArpOp::Reply,
            _ => return None,
        };
        Some(ArpPacket {
            op,
            sender_mac: Mac::from_slice(&f[22..28])?,
            sender_ip: ip(28),
            target_mac: Mac::from_slice(&f[32..38])?,
            target_ip: ip(38),
        })
    }
}

/// An interface to send ARP frames on: its index and hardware address.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Port {
    /// Interface index.
    pub ifindex: u32,
    /// The interface's hardware address (sender of every frame).
    pub mac: Mac,
}

/// A raw `AF_PACKET` socket for ARP frames and IPv6 neighbour discovery frames.
///
/// Closing a packet socket waits for an RCU grace period in the kernel (about 10 ms), so
/// keep a [`LinkSocket::sender`] for as long as it is useful, and close a
/// [`LinkSocket::listener`] off the hot path ([`LinkSocket::close_in_background`]).
pub struct LinkSocket {
    fd: AsyncFd<OwnedFd>,
}

impl LinkSocket {
    /// A socket that only sends, on any interface. It has no protocol hook, so it receives
    /// nothing and costs nothing to keep open. Needs CAP_NET_RAW and a tokio runtime.
    pub fn sender() -> io::Result<LinkSocket> {
        Self::raw()
    }

    /// A socket that also receives the frames of interface `ifindex` that can answer for
    /// `ip`: every ARP frame for IPv4, every IPv6 frame for IPv6.
    pub fn listener(ifindex: u32, ip: IpAddr) -> io::Result<LinkSocket> {
        let sock = Self::raw()?;
        let addr = link_addr(ifindex_i32(ifindex)?, Mac::ZERO, ethertype(ip));
        // SAFETY: `addr` is a valid sockaddr_ll and the length passed is its size. The
        // socket was created without a protocol, so this bind registers the hook once
        // (no re-registration, which would wait for a grace period).
        let rc = unsafe {
            libc::bind(
                sock.fd.as_raw_fd(),
                (&addr as *const libc::sockaddr_ll).cast(),
                sockaddr_ll_len(),
            )
        };
        if rc < 0 {
            return Err(io::Error::last_os_error());
        }
        Ok(sock)
    }

    fn raw() -> io::Result<LinkSocket> {
        // SAFETY: plain socket(2) call; the result is checked before use.
        let raw = unsafe {
            libc::socket(
                libc::AF_PACKET,
                libc::SOCK_RAW | libc::SOCK_NONBLOCK | libc::SOCK_CLOEXEC,
                0,
            )
        };
        if raw < 0 {
            return Err(io::Error::last_os_error());
        }
        // SAFETY: `raw` is a fresh descriptor that nothing else owns.
        let fd = unsafe { OwnedFd::from_raw_fd(raw) };
        // SAFETY: the AsyncFd owns the OwnedFd, which stays open as long as it does.
        let fd = unsafe { AsyncFd::register(fd) }?;
        Ok(LinkSocket { fd })
    }

    /// Closes the socket on a blocking thread, so the kernel's grace period delays nobody.
    pub fn close_in_background(self) {
        drop(tokio::task::spawn_blocking(move || drop(self)));
    }

    /// Sends `packet` out of `port` in a frame to `dst`.
    pub async fn send(&self, port: &Port, packet: &ArpPacket, dst: Mac) -> io::Result<()> {
        self.send_frame(port, &packet.frame(dst), dst, ETH_P_ARP)
            .await
    }

    /// Sends a whole Ethernet `frame` (of EtherType `proto`) out of `port` to `dst`.
    pub async fn send_frame(
        &self,
        port: &Port,
        frame: &[u8],
        dst: Mac,
        proto: u16,
    ) -> io::Result<()> {
        let addr = link_addr(ifindex_i32(port.ifindex)?, dst, proto);
        self.fd
            .async_io(Interest::WRITABLE, |fd| {
                // SAFETY: `frame` and `addr` outlive the call; lengths are theirs.
                let n = unsafe {
                    libc::sendto(
                        fd.as_raw_fd(),
                        frame.as_ptr().cast(),
                        frame.len(),
                        0,
                        (&addr as *const libc::sockaddr_ll).cast(),
                        sockaddr_ll_len(),
                    )
                };
                if n < 0 {
                    Err(io::Error::last_os_error())
                } else {
                    Ok(())
                }
            })
            .await
    }

    /// The hardware address of the next host other than `me` that a listener hears
    /// answering for `ip` (an ARP packet from `ip`, or a neighbour advertisement of it).
    async fn next_answer_for(&self, me: Mac, ip: IpAddr) -> io::Result<Mac> {
        let mut buf = [0u8; 256];
        loop {
            let n = self
                .fd
                .async_io(Interest::READABLE, |fd| {
                    // SAFETY: `buf` is writable for its whole length.
                    let n = unsafe {
                        libc::recv(fd.as_raw_fd(), buf.as_mut_ptr().cast(), buf.len(), 0)
                    };
                    usize::try_from(n).map_err(|_| io::Error::last_os_error())
                })
                .await?;
            let frame = buf.get(..n).unwrap_or_default();
            let from = match ip {
                IpAddr::V4(ip) => ArpPacket::parse(frame)
                    .filter(|p| p.sender_ip == ip)
                    .map(|p| p.sender_mac),
                IpAddr::V6(ip) => ndp::parse_advert(frame)
                    .filter(|a| a.target == ip)
                    .map(|a| a.sender_mac),
            };
            match from {
                Some(mac) if mac != me => return Ok(mac),
                _ => continue, // our own frames, looped back, other traffic, or garbage
            }
        }
    }

    /// Sends one announcement of `ip` out of `port`. IPv4: an unsolicited request and a
    /// gratuitous reply, both to the broadcast address. IPv6: an unsolicited neighbour
    /// advertisement with the override flag, to all nodes.
    pub async fn announce(&self, port: &Port, ip: IpAddr) -> io::Result<()> {
        match ip {
            IpAddr::V4(ip) => {
                let request = ArpPacket::announcement(port.mac, ip);
                self.send(port, &request, Mac::BROADCAST).await?;
                let reply = ArpPacket::gratuitous_reply(port.mac, ip);
                self.send(port, &reply, Mac::BROADCAST).await
            }
            IpAddr::V6(ip) => {
                let (frame, dst) = ndp::unsolicited_advert(port.mac, ip);
                self.send_frame(port, &frame, dst, ndp::ETH_P_IPV6).await
            }
        }
    }

    /// Duplicate address detection on a listener (opened for `ip`): probes for `ip` twice
    /// (at once and after half of `wait`) and returns the hardware address of the first
    /// other host that answers for it within `wait`, or `None` if nobody does.
    pub async fn find_holder(
        &self,
        port: &Port,
        ip: IpAddr,
        wait: Duration,
    ) -> io::Result<Option<Mac>> {
        let (probe, dst) = match ip {
            IpAddr::V4(v4) => (
                ArpPacket::probe(port.mac, v4)
                    .frame(Mac::BROADCAST)
                    .to_vec(),
                Mac::BROADCAST,
            ),
            IpAddr::V6(v6) => ndp::dad_probe(port.mac, v6),
        };
        let proto = ethertype(ip);
        let start = Instant::now();
        let deadline = start + wait;
        let mut second_probe = Some(start + wait / 2);
        self.send_frame(port, &probe, dst, proto).await?;
        loop {
            let until = second_probe.unwrap_or(deadline);
            match tokio::time::timeout_at(until, self.next_answer_for(port.mac, ip)).await {
                Ok(Ok(mac)) => return Ok(Some(mac)),
                Ok(Err(e)) => return Err(e),
                Err(_) if second_probe.take().is_some() => {
                    self.send_frame(port, &probe, dst, proto).await?
                }
                Err(_) => return Ok(None),
            }
        }
    }
}

/// The EtherType of the frames that announce or defend `ip`.
fn ethertype(ip: IpAddr) -> u16 {
    match ip {
        IpAddr::V4(_) => ETH_P_ARP,
        IpAddr::V6(_) => ndp::ETH_P_IPV6,
    }
}

fn ifindex_i32(ifindex: u32) -> io::Result<i32> {
    i32::try_from(ifindex)
        .map_err(|_| io::Error::new(io::ErrorKind::InvalidInput, "interface index too large"))
}

fn link_addr(ifindex: i32, dst: Mac, proto: u16) -> libc::sockaddr_ll {
    let mut sll_addr = [0u8; 8];
    sll_addr[..6].copy_from_slice(&dst.0);
    libc::sockaddr_ll {
        sll_family: libc::AF_PACKET as u16,
        sll_protocol: proto.to_be(),
        sll_ifindex: ifindex,
        sll_hatype: 0,
        sll_pkttype: 0,
        sll_halen: 6,
        sll_addr,
    }
}

fn sockaddr_ll_len() -> libc::socklen_t {
    std::mem::size_of::<libc::sockaddr_ll>() as libc::socklen_t
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: Mac = Mac([2, 0, 0, 0, 0, 7]);
    const VIP: Ipv4Addr = Ipv4Addr::new(192, 0, 2, 100);

    #[test]
    fn frames_round_trip() {
        for p in [
            ArpPacket::announcement(MAC, VIP),
            ArpPacket::gratuitous_reply(MAC, VIP),
            ArpPacket::probe(MAC, VIP),
        ] {
            let f = p.frame(Mac::BROADCAST);
            assert_eq!(ArpPacket::parse(&f), Some(p));
        }
    }

    #[test]
    fn announcement_matches_arping_u_layout() {
        let f = ArpPacket::announcement(MAC, VIP).frame(Mac::BROADCAST);
        assert_eq!(&f[0..6], &[0xff; 6], "broadcast destination");
        assert_eq!(&f[6..12], &MAC.0, "source is the holder");
        assert_eq!(&f[12..14], &[0x08, 0x06]);
        assert_eq!(&f[20..22], &[0, 1], "request");
        assert_eq!(&f[28..32], &VIP.octets(), "sender IP is the VIP");
        assert_eq!(&f[38..42], &VIP.octets(), "target IP is the VIP");
    }

    #[test]
    fn probe_has_no_sender_ip() {
        let f = ArpPacket::probe(MAC, VIP).frame(Mac::BROADCAST);
        assert_eq!(&f[28..32], &[0, 0, 0, 0]);
        assert_eq!(&f[32..38], &[0; 6]);
    }

    #[test]
    fn parse_refuses_other_frames() {
        let mut f = ArpPacket::announcement(MAC, VIP).frame(Mac::BROADCAST);
        assert!(ArpPacket::parse(&f[..41]).is_none(), "short frame");
        f[12] = 0x08;
        f[13] = 0x00;
        assert!(ArpPacket::parse(&f).is_none(), "IPv4 ethertype");
        let mut g = ArpPacket::announcement(MAC, VIP).frame(Mac::BROADCAST);
        g[21] = 9;
        assert!(ArpPacket::parse(&g).is_none(), "unknown op");
    }

    #[test]
    fn mac_displays_lowercase_colon_separated() {
        assert_eq!(
            Mac([0x02, 0xab, 0, 0, 0, 0x0c]).to_string(),
            "02:ab:00:00:00:0c"
        );
        assert_eq!(Mac::from_slice(&[1, 2, 3]), None);
    }
}
