//! IPv6 neighbour discovery frames (RFC 4861): the unsolicited neighbour advertisement that
//! announces a floating IPv6 address moved here (the IPv6 counterpart of gratuitous ARP),
//! and the duplicate address probe (RFC 4862: a neighbour solicitation from `::`) with the
//! parser for the advertisement a holder answers it with.
//!
//! The frames are built whole (Ethernet, IPv6, ICMPv6 with its checksum) and go out of the
//! same `AF_PACKET` socket as ARP, so the probe can run before the address is on the
//! interface and the announcement does not depend on the kernel's own DAD timers.

use std::net::Ipv6Addr;

use super::arp::Mac;

/// EtherType of IPv6.
pub const ETH_P_IPV6: u16 = 0x86dd;
/// IPv6 next header: ICMPv6.
const NEXT_ICMPV6: u8 = 58;
/// ICMPv6 type: neighbour solicitation.
const NEIGHBOR_SOLICIT: u8 = 135;
/// ICMPv6 type: neighbour advertisement.
const NEIGHBOR_ADVERT: u8 = 136;
/// Neighbour advertisement flag: override (replace the cached link-layer address).
const FLAG_OVERRIDE: u8 = 0x20;
/// Option type: target link-layer address.
const OPT_TARGET_LLADDR: u8 = 2;
/// Ethernet + IPv6 header lengths.
const ETH_LEN: usize = 14;
const IP6_LEN: usize = 40;
/// `ff02::1`, all nodes on the link.
const ALL_NODES: Ipv6Addr = Ipv6Addr::new(0xff02, 0, 0, 0, 0, 0, 0, 1);

/// An advertisement seen on the link: who sent it, for which address.
#[derive(Clone, Copy, PartialEq, Eq, Debug)]
pub struct Advert {
    /// Ethernet source of the frame.
    pub sender_mac: Mac,
    /// The address advertised.
    pub target: Ipv6Addr,
}

/// The multicast MAC of an IPv6 multicast address (`33:33` and its last four bytes).
pub fn multicast_mac(group: Ipv6Addr) -> Mac {
    let o = group.octets();
    Mac([0x33, 0x33, o[12], o[13], o[14], o[15]])
}

/// The solicited-node multicast group of `ip` (`ff02::1:ffXX:XXXX`).
pub fn solicited_node(ip: Ipv6Addr) -> Ipv6Addr {
    let o = ip.octets();
    Ipv6Addr::new(
        0xff02,
        0,
        0,
        0,
        0,
        1,
        0xff00 | u16::from(o[13]),
        u16::from_be_bytes([o[14], o[15]]),
    )
}

/// Unsolicited neighbour advertisement of `ip` at `mac`, from `ip` to all nodes, with the
/// override flag and the target link-layer address option: a neighbour that has `ip` in its
/// cache takes the new address at once (what keepalived and `ndsend` send).
pub fn unsolicited_advert(mac: Mac, ip: Ipv6Addr) -> (Vec<u8>, Mac) {
    let mut icmp = vec![NEIGHBOR_ADVERT, 0, 0, 0, FLAG_OVERRIDE, 0, 0, 0];
    icmp.extend_from_slice(&ip.octets());
    icmp.extend_from_slice(&[OPT_TARGET_LLADDR, 1]);
    icmp.extend_from_slice(&mac.0);
    (frame(mac, ip, ALL_NODES, icmp), multicast_mac(ALL_NODES))
}

/// Duplicate address probe for `ip`: a neighbour solicitation from the unspecified address
/// to `ip`'s solicited-node group, without a source link-layer option (RFC 4862 5.4.2), so
/// nobody learns anything from it while a holder of `ip` answers with an advertisement.
pub fn dad_probe(mac: Mac, ip: Ipv6Addr) -> (Vec<u8>, Mac) {
    let group = solicited_node(ip);
    let mut icmp = vec![NEIGHBOR_SOLICIT, 0, 0, 0, 0, 0, 0, 0];
    icmp.extend_from_slice(&ip.octets());
    (
        frame(mac, Ipv6Addr::UNSPECIFIED, group, icmp),
        multicast_mac(group),
    )
}

/// The Ethernet frame carrying `icmp` (checksum field zero) from `src` to `dst`, hop limit
/// 255 as neighbour discovery requires.
fn frame(mac: Mac, src: Ipv6Addr, dst: Ipv6Addr, mut icmp: Vec<u8>) -> Vec<u8> {
    let sum = checksum(src, dst, &icmp);
    icmp[2..4].copy_from_slice(&sum.to_be_bytes());
    let len = u16::try_from(icmp.len()).unwrap_or(u16::MAX);
    let mut f = Vec::with_capacity(ETH_LEN + IP6_LEN + icmp.len());
    f.extend_from_slice(&multicast_mac(dst).0);
    f.extend_from_slice(&mac.0);
    f.extend_from_slice(&ETH_P_IPV6.to_be_bytes());
    f.extend_from_slice(&[0x60, 0, 0, 0]); // version 6, no traffic class or flow label
    f.extend_from_slice(&len.to_be_bytes());
    f.extend_from_slice(&[NEXT_ICMPV6, 255]);
    f.extend_from_slice(&src.octets());
    f.extend_from_slice(&dst.octets());
    f.extend_from_slice(&icmp);
    f
}

/// The ICMPv6 checksum: one's complement sum over the pseudo-header (source, destination,
/// upper-layer length, next header) and the message.
pub fn checksum(src: Ipv6Addr, dst: Ipv6Addr, icmp: &[u8]) -> u16 {
    let len = u32::try_from(icmp.len()).unwrap_or(u32::MAX);
    let mut pseudo = Vec::with_capacity(40 + icmp.len() + 1);
    pseudo.extend_from_slice(&src.octets());
    pseudo.extend_from_slice(&dst.octets());
    pseudo.extend_from_slice(&len.to_be_bytes());
    pseudo.extend_from_slice(&[0, 0, 0, NEXT_ICMPV6]);
    pseudo.extend_from_slice(icmp);
    if pseudo.len() % 2 == 1 {
        pseudo.push(0);
    }
    let mut sum: u32 = pseudo
        .chunks_exact(2)
        .map(|w| u32::from(u16::from_be_bytes([w[0], w[1]])))
        .sum();
    while sum > 0xffff {
        sum = (sum & 0xffff) + (sum >> 16);
    }
    !(sum as u16)
}

/// Parses an Ethernet frame; `Some` only for a well-formed neighbour advertisement (IPv6
/// without extension headers, hop limit 255, valid checksum), as the kernel would accept it.
pub fn parse_advert(frame: &[u8]) -> Option<Advert> {
    let eth = frame.get(..ETH_LEN)?;
    if u16::from_be_bytes([eth[12], eth[13]]) != ETH_P_IPV6 {
        return None;
    }
    let ip6 = frame.get(ETH_LEN..ETH_LEN + IP6_LEN)?;
    if ip6[0] >> 4 != 6 || ip6[6] != NEXT_ICMPV6 || ip6[7] != 255 {
        return None;
    }
    let len = usize::from(u16::from_be_bytes([ip6[4], ip6[5]]));
    let icmp = frame.get(ETH_LEN + IP6_LEN..ETH_LEN + IP6_LEN + len)?;
    if icmp.len() < 24 || icmp[0] != NEIGHBOR_ADVERT || icmp[1] != 0 {
        return None;
    }
    let addr = |b: &[u8]| -> Option<Ipv6Addr> {
        let o: [u8; 16] = b.try_into().ok()?;
        Some(Ipv6Addr::from(o))
    };
    let (src, dst) = (addr(&ip6[8..24])?, addr(&ip6[24..40])?);
    let mut zeroed = icmp.to_vec();
    zeroed[2..4].copy_from_slice(&[0, 0]);
    if checksum(src, dst, &zeroed) != u16::from_be_bytes([icmp[2], icmp[3]]) {
        return None;
    }
    Some(Advert {
        sender_mac: Mac::from_slice(&eth[6..12])?,
        target: addr(&icmp[8..24])?,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    const MAC: Mac = Mac([2, 0, 0, 0, 0, 7]);
    const VIP: Ipv6Addr = Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 0x100);

    #[test]
    fn solicited_node_group_and_its_mac() {
        let ip: Ipv6Addr = "2001:db8::12:3456:789a".parse().expect("literal");
        assert_eq!(
            solicited_node(ip),
            "ff02::1:ff56:789a".parse::<Ipv6Addr>().expect("literal")
        );
        assert_eq!(
            multicast_mac(solicited_node(ip)).to_string(),
            "33:33:ff:56:78:9a"
        );
    }

    #[test]
    fn unsolicited_advert_layout() {
        let (f, dst) = unsolicited_advert(MAC, VIP);
        assert_eq!(f.len(), 14 + 40 + 32);
        assert_eq!(dst.to_string(), "33:33:00:00:00:01");
        assert_eq!(&f[0..6], &dst.0);
        assert_eq!(&f[6..12], &MAC.0);
        assert_eq!(&f[12..14], &[0x86, 0xdd]);
        assert_eq!(
            &f[18..22],
            &[0, 32, 58, 255],
            "payload length, ICMPv6, hop limit"
        );
        assert_eq!(&f[22..38], &VIP.octets(), "from the address itself");
        assert_eq!(f[54], 136);
        assert_eq!(f[58], 0x20, "override, not solicited, not router");
        assert_eq!(&f[62..78], &VIP.octets());
        assert_eq!(&f[78..80], &[2, 1]);
        assert_eq!(&f[80..86], &MAC.0);
        assert_eq!(
            parse_advert(&f),
            Some(Advert {
                sender_mac: MAC,
                target: VIP
            })
        );
    }

    #[test]
    fn checksum_verifies() {
        // The receiver's check: the sum over pseudo-header and message, checksum included,
        // is all ones (its complement zero). The kernel applies the same check in the
        // end-to-end test, where the client takes the advertisement.
        let (f, _) = unsolicited_advert(MAC, VIP);
        assert_ne!(&f[56..58], &[0, 0]);
        assert_eq!(checksum(VIP, ALL_NODES, &f[54..]), 0);
        let (p, _) = dad_probe(MAC, VIP);
        assert_eq!(
            checksum(Ipv6Addr::UNSPECIFIED, solicited_node(VIP), &p[54..]),
            0
        );
    }

    #[test]
    fn dad_probe_comes_from_the_unspecified_address() {
        let (f, dst) = dad_probe(MAC, VIP);
        assert_eq!(f.len(), 14 + 40 + 24);
        assert_eq!(dst, multicast_mac(solicited_node(VIP)));
        assert_eq!(&f[22..38], &[0; 16]);
        assert_eq!(&f[38..54], &solicited_node(VIP).octets());
        assert_eq!(f[54], 135);
        assert_eq!(parse_advert(&f), None, "a solicitation is no advertisement");
    }

    #[test]
    fn parse_refuses_damaged_or_foreign_frames() {
        let (good, _) = unsolicited_advert(MAC, VIP);
        for cut in 0..good.len() {
            assert_eq!(parse_advert(&good[..cut]), None, "truncated at {cut}");
        }
        let mut bad_sum = good.clone();
        bad_sum[60] ^= 1;
        assert_eq!(parse_advert(&bad_sum), None);
        let mut routed = good.clone();
        routed[21] = 64; // hop limit: came through a router
        assert_eq!(parse_advert(&routed), None);
        let mut v4 = good;
        v4[12..14].copy_from_slice(&[0x08, 0x00]);
        assert_eq!(parse_advert(&v4), None);
    }
}
