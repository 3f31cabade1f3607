//! Multiaddrs the swarm dials and listens on: QUIC
//! (`/ip4|ip6/<ip>/udp/<port>/quic-v1[/p2p/<peer id>]`) and TCP
//! (`/ip4|ip6/<ip>/tcp/<port>[/p2p/<peer id>]`).

use std::net::{IpAddr, SocketAddr};

use libp2p_identity::PeerId;
use multiaddr::{Multiaddr, Protocol};

/// A parsed QUIC multiaddr: the UDP socket address and the optional PeerId.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct QuicAddr {
    /// The UDP address.
    pub socket: SocketAddr,
    /// The `/p2p/…` suffix, if present.
    pub peer: Option<PeerId>,
}

/// Parse a QUIC v1 multiaddr. `None` for anything else (tcp, dns, quic draft-29, …).
pub fn parse_quic_addr(addr: &Multiaddr) -> Option<QuicAddr> {
    let mut iter = addr.iter();
    let ip = leading_ip(&mut iter)?;
    let Protocol::Udp(port) = iter.next()? else {
        return None;
    };
    if iter.next()? != Protocol::QuicV1 {
        return None;
    }
    Some(QuicAddr {
        socket: SocketAddr::new(ip, port),
        peer: trailing_peer(iter)?,
    })
}

/// The QUIC v1 multiaddr of a UDP socket address.
pub fn quic_multiaddr(socket: SocketAddr) -> Multiaddr {
    Multiaddr::empty()
        .with(ip_protocol(socket.ip()))
        .with(Protocol::Udp(socket.port()))
        .with(Protocol::QuicV1)
}

/// A parsed TCP multiaddr: the socket address and the optional PeerId.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct TcpAddr {
    /// The TCP address.
    pub socket: SocketAddr,
    /// The `/p2p/…` suffix, if present.
    pub peer: Option<PeerId>,
}

/// Parse a plain TCP multiaddr. `None` for anything else (QUIC, `/ws`,
/// `/tls/…` suffixes, dns, …).
pub fn parse_tcp_addr(addr: &Multiaddr) -> Option<TcpAddr> {
    let mut iter = addr.iter();
    let ip = leading_ip(&mut iter)?;
    let Protocol::Tcp(port) = iter.next()? else {
        return None;
    };
    Some(TcpAddr {
        socket: SocketAddr::new(ip, port),
        peer: trailing_peer(iter)?,
    })
}

/// The TCP multiaddr of a socket address.
pub fn tcp_multiaddr(socket: SocketAddr) -> Multiaddr {
    Multiaddr::empty()
        .with(ip_protocol(socket.ip()))
        .with(Protocol::Tcp(socket.port()))
}

/// The `/ip4` or `/ip6` component a multiaddr starts with.
fn leading_ip<'a>(iter: &mut impl Iterator<Item = Protocol<'a>>) -> Option<IpAddr> {
    match iter.next()? {
        Protocol::Ip4(ip) => Some(ip.into()),
        Protocol::Ip6(ip) => Some(ip.into()),
        _ => None,
    }
}

/// What follows the transport: nothing (`Some(None)`) or exactly one
/// `/p2p/…` (`Some(Some(peer))`); `None` for anything else.
fn trailing_peer<'a>(mut iter: impl Iterator<Item = Protocol<'a>>) -> Option<Option<PeerId>> {
    let peer = match iter.next() {
        None => None,
        Some(Protocol::P2p(peer)) => Some(peer),
        Some(_) => return None,
    };
    if iter.next().is_some() {
        return None;
    }
    Some(peer)
}

/// The multiaddr component of an IP address.
fn ip_protocol(ip: IpAddr) -> Protocol<'static> {
    match ip {
        IpAddr::V4(ip) => Protocol::Ip4(ip),
        IpAddr::V6(ip) => Protocol::Ip6(ip),
    }
}

/// Whether `addr` is relayed: it has a `/p2p-circuit` part.
pub fn is_circuit(addr: &Multiaddr) -> bool {
    addr.iter().any(|p| matches!(p, Protocol::P2pCircuit))
}

/// An IPv4-mapped IPv6 address (`::ffff:a.b.c.d`) as plain IPv4, so that a
/// dual-stack socket reports the address the peer really used.
pub(crate) fn canonical(addr: SocketAddr) -> SocketAddr {
    match addr.ip() {
        IpAddr::V6(v6) => match v6.to_ipv4_mapped() {
            Some(v4) => SocketAddr::new(v4.into(), addr.port()),
            None => addr,
        },
        IpAddr::V4(_) => addr,
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quic_v1_addresses_parse_with_and_without_peer_id() {
        let peer = PeerId::random();
        let a: Multiaddr = format!("/ip4/127.0.0.1/udp/4001/quic-v1/p2p/{peer}")
            .parse()
            .unwrap();
        let q = parse_quic_addr(&a).unwrap();
        assert_eq!(q.socket, "127.0.0.1:4001".parse().unwrap());
        assert_eq!(q.peer, Some(peer));
        let b: Multiaddr = "/ip6/::1/udp/0/quic-v1".parse().unwrap();
        assert_eq!(parse_quic_addr(&b).unwrap().peer, None);
        assert_eq!(quic_multiaddr("[::1]:0".parse().unwrap()), b);
    }

    #[test]
    fn tcp_addresses_parse_and_round_trip() {
        let peer = PeerId::random();
        let a: Multiaddr = format!("/ip4/127.0.0.1/tcp/4001/p2p/{peer}")
            .parse()
            .unwrap();
        let t = parse_tcp_addr(&a).unwrap();
        assert_eq!(t.socket, "127.0.0.1:4001".parse().unwrap());
        assert_eq!(t.peer, Some(peer));
        assert_eq!(
            tcp_multiaddr("[::1]:7".parse().unwrap()),
            "/ip6/::1/tcp/7".parse().unwrap()
        );
        for s in [
            "/ip4/1.2.3.4/tcp/1/ws",
            "/ip4/1.2.3.4/udp/1/quic-v1",
            "/dns4/a.b/tcp/1",
        ] {
            assert_eq!(parse_tcp_addr(&s.parse().unwrap()), None, "{s}");
        }
    }

    #[test]
    fn non_quic_v1_addresses_are_rejected() {
        for s in [
            "/ip4/127.0.0.1/tcp/4001",
            "/ip4/127.0.0.1/udp/4001/quic",
            "/ip4/127.0.0.1/udp/4001",
            "/dns4/example.com/udp/4001/quic-v1",
            "/ip4/127.0.0.1/udp/4001/quic-v1/webtransport",
        ] {
            assert_eq!(parse_quic_addr(&s.parse().unwrap()), None, "{s}");
        }
    }
}
