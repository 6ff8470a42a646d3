//! What the importer asks the machine it runs on: does a node name resolve, and which local
//! interface holds an address in the floating IP's subnet (rgmanager's ip agent picks the
//! interface that way). Behind a trait so tests are deterministic.

use std::net::{IpAddr, ToSocketAddrs};

/// One address configured on a local interface.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct LocalAddr {
    /// Interface name, e.g. `eth0`.
    pub interface: String,
    /// The address.
    pub address: IpAddr,
    /// Its prefix length.
    pub prefix: u8,
}

/// Name resolution and local interfaces.
pub trait Host {
    /// The address `name` resolves to (IPv4 preferred); `None` when it does not resolve or
    /// only to a loopback address (Debian maps the host's own name to 127.0.1.1).
    fn resolve(&self, name: &str) -> Option<IpAddr>;
    /// Addresses configured on this machine's interfaces.
    fn addresses(&self) -> Vec<LocalAddr>;
}

/// The real machine: the system resolver and getifaddrs(3).
#[derive(Debug, Default, Clone, Copy)]
pub struct SystemHost;

impl Host for SystemHost {
    fn resolve(&self, name: &str) -> Option<IpAddr> {
        let addrs: Vec<IpAddr> = (name, 0u16)
            .to_socket_addrs()
            .ok()?
            .map(|a| a.ip())
            .filter(|ip| !ip.is_loopback() && !ip.is_unspecified())
            .collect();
        addrs
            .iter()
            .find(|ip| ip.is_ipv4())
            .or(addrs.first())
            .copied()
    }

    fn addresses(&self) -> Vec<LocalAddr> {
        let Ok(list) = nix::ifaddrs::getifaddrs() else {
            return Vec::new();
        };
        list.filter_map(|ifa| {
            let addr = ifa.address?;
            let mask = ifa.netmask?;
            let (address, prefix) = if let (Some(a), Some(m)) =
                (addr.as_sockaddr_in(), mask.as_sockaddr_in())
            {
                (IpAddr::V4(a.ip()), u32::from(m.ip()).count_ones() as u8)
            } else if let (Some(a), Some(m)) = (addr.as_sockaddr_in6(), mask.as_sockaddr_in6()) {
                let ones: u32 = m.ip().octets().iter().map(|b| b.count_ones()).sum();
                (IpAddr::V6(a.ip()), ones as u8)
            } else {
                return None;
            };
            Some(LocalAddr {
                interface: ifa.interface_name,
                address,
                prefix,
            })
        })
        .collect()
    }
}

/// True when `a` and `b` are in the same `prefix`-bit network.
pub fn same_subnet(a: IpAddr, b: IpAddr, prefix: u8) -> bool {
    match (a, b) {
        (IpAddr::V4(a), IpAddr::V4(b)) => {
            let p = u32::from(prefix.min(32));
            let mask = if p == 0 { 0 } else { u32::MAX << (32 - p) };
            u32::from(a) & mask == u32::from(b) & mask
        }
        (IpAddr::V6(a), IpAddr::V6(b)) => {
            let p = u32::from(prefix.min(128));
            let mask = if p == 0 { 0 } else { u128::MAX << (128 - p) };
            u128::from(a) & mask == u128::from(b) & mask
        }
        _ => false,
    }
}

/// The local interface and prefix for a floating IP given without one: an address in the
/// same subnet on an interface (not the floating IP itself, not a host route).
pub fn interface_for(host: &dyn Host, vip: IpAddr) -> Option<LocalAddr> {
    host.addresses().into_iter().find(|l| {
        let host_route = (l.address.is_ipv4() && l.prefix >= 32) || l.prefix >= 128;
        l.address != vip
            && !l.address.is_loopback()
            && !host_route
            && same_subnet(l.address, vip, l.prefix)
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    struct Fixed(Vec<LocalAddr>);
    impl Host for Fixed {
        fn resolve(&self, _: &str) -> Option<IpAddr> {
            None
        }
        fn addresses(&self) -> Vec<LocalAddr> {
            self.0.clone()
        }
    }

    fn la(i: &str, a: &str, p: u8) -> LocalAddr {
        LocalAddr {
            interface: i.into(),
            address: a.parse().unwrap(),
            prefix: p,
        }
    }

    #[test]
    fn finds_the_interface_in_the_vips_subnet() {
        let h = Fixed(vec![
            la("lo", "127.0.0.1", 8),
            la("eth0", "192.0.2.11", 32),
            la("eth1", "192.0.2.130", 25),
            la("eth2", "192.0.2.11", 25),
        ]);
        let vip: IpAddr = "192.0.2.100".parse().unwrap();
        assert_eq!(interface_for(&h, vip), Some(la("eth2", "192.0.2.11", 25)));
        assert_eq!(
            interface_for(&h, "192.0.2.200".parse().unwrap())
                .unwrap()
                .interface,
            "eth1"
        );
        assert_eq!(interface_for(&h, "198.51.100.1".parse().unwrap()), None);
        assert!(same_subnet(
            "2001:db8::1".parse().unwrap(),
            "2001:db8::ff".parse().unwrap(),
            64
        ));
        assert!(!same_subnet(
            "2001:db8::1".parse().unwrap(),
            "192.0.2.1".parse().unwrap(),
            0
        ));
    }
}
