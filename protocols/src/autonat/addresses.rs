//! Which addresses AutoNAT tests: public-looking ones, or those in
//! networks the configuration allows (a test's namespaces, a LAN).

use std::net::IpAddr;

use swarm::Multiaddr;
use swarm::address::{parse_quic_addr, parse_tcp_addr};
use swarm::multiaddr::Protocol;

/// An IP network: an address and a prefix length.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpNetwork {
    /// The network's address.
    pub addr: IpAddr,
    /// Leading bits that must match.
    pub prefix: u8,
}

impl IpNetwork {
    /// `addr/prefix`.
    pub const fn new(addr: IpAddr, prefix: u8) -> Self {
        Self { addr, prefix }
    }

    /// Whether `ip` is in this network.
    pub fn contains(&self, ip: IpAddr) -> bool {
        fn leading_equal(a: &[u8], b: &[u8], bits: u8) -> bool {
            let bits = usize::from(bits).min(a.len() * 8);
            let (bytes, rest) = (bits / 8, bits % 8);
            if a[..bytes] != b[..bytes] {
                return false;
            }
            rest == 0 || {
                let mask = 0xffu8 << (8 - rest);
                a[bytes] & mask == b[bytes] & mask
            }
        }
        match (self.addr, ip) {
            (IpAddr::V4(n), IpAddr::V4(a)) => leading_equal(&n.octets(), &a.octets(), self.prefix),
            (IpAddr::V6(n), IpAddr::V6(a)) => leading_equal(&n.octets(), &a.octets(), self.prefix),
            _ => false,
        }
    }
}

/// Whether `ip` could be reached from the public internet: not private,
/// loopback, link-local, shared (CGNAT), documentation or unspecified.
pub fn is_public(ip: IpAddr) -> bool {
    match ip {
        IpAddr::V4(v4) => {
            let [a, b, ..] = v4.octets();
            !(v4.is_private()
                || v4.is_loopback()
                || v4.is_link_local()
                || v4.is_unspecified()
                || v4.is_broadcast()
                || v4.is_documentation()
                || (a == 100 && (64..128).contains(&b)))
        }
        IpAddr::V6(v6) => {
            let first = v6.segments()[0];
            !(v6.is_loopback()
                || v6.is_unspecified()
                || (first & 0xfe00) == 0xfc00
                || (first & 0xffc0) == 0xfe80
                || (first == 0x2001 && v6.segments()[1] == 0x0db8))
        }
    }
}

/// The IP of an address's first component, if it is one.
pub fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    match addr.iter().next()? {
        Protocol::Ip4(ip) => Some(ip.into()),
        Protocol::Ip6(ip) => Some(ip.into()),
        _ => None,
    }
}

/// Whether we could dial `addr` to test it: a QUIC or TCP address with a
/// real port, whose IP is public or in `allowed`.
pub fn testable(addr: &Multiaddr, allowed: &[IpNetwork]) -> bool {
    let socket = match (parse_quic_addr(addr), parse_tcp_addr(addr)) {
        (Some(q), _) => q.socket,
        (None, Some(t)) => t.socket,
        (None, None) => return false,
    };
    let ip = socket.ip();
    socket.port() != 0
        && !ip.is_unspecified()
        && (is_public(ip) || allowed.iter().any(|n| n.contains(ip)))
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn networks_match_by_prefix() {
        let lan = IpNetwork::new("192.168.1.0".parse().unwrap(), 23);
        assert!(lan.contains("192.168.0.7".parse().unwrap()));
        assert!(!lan.contains("192.168.2.1".parse().unwrap()));
        assert!(!lan.contains("::1".parse().unwrap()));
        let all = IpNetwork::new("0.0.0.0".parse().unwrap(), 0);
        assert!(all.contains("8.8.8.8".parse().unwrap()));
    }

    #[test]
    fn only_public_or_allowed_addresses_with_a_port_are_testable() {
        let a = |s: &str| s.parse::<Multiaddr>().unwrap();
        assert!(testable(&a("/ip4/1.2.3.4/udp/4001/quic-v1"), &[]));
        assert!(testable(&a("/ip6/2600::1/tcp/4001"), &[]));
        assert!(!testable(&a("/ip4/127.0.0.1/udp/4001/quic-v1"), &[]));
        assert!(!testable(&a("/ip4/10.0.0.1/tcp/4001"), &[]));
        assert!(!testable(&a("/ip4/100.64.0.1/tcp/4001"), &[]));
        assert!(!testable(&a("/ip4/1.2.3.4/udp/0/quic-v1"), &[]));
        assert!(!testable(&a("/ip6/fd00::1/tcp/1"), &[]));
        assert!(!testable(&a("/dns4/example.com/tcp/1"), &[]));
        let loopback = [IpNetwork::new("127.0.0.0".parse().unwrap(), 8)];
        assert!(testable(&a("/ip4/127.0.0.2/udp/4001/quic-v1"), &loopback));
    }
}
