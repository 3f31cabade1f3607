//! AutoNAT v2 between our nodes on loopback (127.0.0.0/8 allowed as a
//! "public" network by configuration): a reachable address is confirmed
//! through a dial-back from another port and becomes an external address;
//! an address nobody listens on is found unreachable; a server refuses
//! addresses it may not dial; dialing another IP than the client's costs
//! dial data first, and a client that will not pay gets no dial; the
//! per-client rate limit answers with a rejection.

mod common;

use std::io::Read;
use std::time::Duration;

use common::*;
use protocols::autonat::proto::{self, DialStatus, ResponseStatus, message::Msg};
use protocols::autonat::{
    AutonatClient, AutonatServer, ClientConfig, ClientEvent, DIAL_REQUEST, IpNetwork, Reachability,
    ServerConfig, ServerEvent,
};
use protocols::framing::{FrameReader, encode};
use swarm::multiaddr::Protocol as P;
use swarm::{DetachedStream, Multiaddr, SwarmEvent};

fn loopback() -> Vec<IpNetwork> {
    vec![IpNetwork::new("127.0.0.0".parse().unwrap(), 8)]
}

fn server_with(seed: u8, config: ServerConfig) -> Node {
    Node::start(seed, |k| {
        vec![identify(k, "server"), Box::new(AutonatServer::new(config))]
    })
}

fn server(seed: u8) -> Node {
    server_with(
        seed,
        ServerConfig {
            allowed_networks: loopback(),
            dial_back_timeout: Duration::from_secs(3),
            ..ServerConfig::default()
        },
    )
}

fn client_config() -> ClientConfig {
    ClientConfig {
        probe_interval: Duration::from_millis(100),
        confirmations: 1,
        allowed_networks: loopback(),
        ..ClientConfig::default()
    }
}

fn client_on(seed: u8, listen: &[&str], config: ClientConfig) -> Node {
    Node::start_on(seed, listen, |k| {
        vec![identify(k, "client"), Box::new(AutonatClient::new(config))]
    })
}

fn udp_port(addr: &Multiaddr) -> Option<u16> {
    addr.iter().find_map(|p| match p {
        P::Udp(port) => Some(port),
        _ => None,
    })
}

#[test]
fn a_reachable_address_is_confirmed_through_a_dial_back_from_another_port() {
    let s = server(60);
    let c = client_on(61, &["/ip4/127.0.0.1/udp/0/quic-v1"], client_config());
    c.dial(s.p2p_addr());
    let (server, from) = c.wait_for::<ClientEvent, _>("a verdict", |e| match e {
        ClientEvent::Reachable {
            addr,
            server,
            dial_back_from,
        } if *addr == c.addr => Some((*server, dial_back_from.clone())),
        ClientEvent::Unreachable { addr } => panic!("{addr} found unreachable"),
        _ => None,
    });
    assert_eq!(server, s.peer);
    let from = from.expect("the dial-back's address");
    assert_ne!(
        udp_port(&from),
        udp_port(&s.addr),
        "the dial-back came from the server's listen port: {from}"
    );
    let confirmed = c.wait_for_swarm("the external address", |e| match e {
        SwarmEvent::ExternalAddrConfirmed(a) => Some(a.clone()),
        _ => None,
    });
    assert_eq!(confirmed, c.addr);
    let overall = c.wait_for::<ClientEvent, _>("reachability", |e| match e {
        ClientEvent::ReachabilityChanged(r) => Some(*r),
        _ => None,
    });
    assert_eq!(overall, Reachability::Public);
    let tested = s.wait_for::<ServerEvent, _>("the server's report", |e| match e {
        ServerEvent::Tested {
            addr, status, paid, ..
        } => Some((addr.clone(), *status, *paid)),
        _ => None,
    });
    assert_eq!(tested, (c.addr.clone(), DialStatus::Ok, false));
}

#[test]
fn an_address_nobody_listens_on_is_found_unreachable() {
    let s = server(62);
    // A TCP port that was just free: the dial is refused at once.
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap();
    let c = client_on(
        63,
        &["/ip4/127.0.0.1/udp/0/quic-v1"],
        ClientConfig {
            probe_listen_addrs: false,
            candidates: vec![dead.clone()],
            ..client_config()
        },
    );
    c.dial(s.p2p_addr());
    let addr = c.wait_for::<ClientEvent, _>("a verdict", |e| match e {
        ClientEvent::Unreachable { addr } => Some(addr.clone()),
        ClientEvent::Reachable { addr, .. } if *addr == dead => panic!("{addr} reachable"),
        _ => None,
    });
    assert_eq!(addr, dead);
    let overall = c.wait_for::<ClientEvent, _>("reachability", |e| match e {
        ClientEvent::ReachabilityChanged(r) => Some(*r),
        _ => None,
    });
    assert_eq!(overall, Reachability::Private);
}

#[test]
fn a_server_refuses_addresses_it_may_not_dial() {
    // Default config: public addresses only.
    let s = server_with(64, ServerConfig::default());
    let c = client_on(65, &["/ip4/127.0.0.1/udp/0/quic-v1"], client_config());
    c.dial(s.p2p_addr());
    let reason = c.wait_for::<ClientEvent, _>("a failed probe", |e| match e {
        ClientEvent::ProbeFailed { reason, .. } => Some(reason.clone()),
        ClientEvent::Reachable { addr, .. } => panic!("{addr} confirmed"),
        _ => None,
    });
    assert!(reason.contains("EDialRefused"), "{reason}");
    let refused = s.wait_for::<ServerEvent, _>("the refusal", |e| match e {
        ServerEvent::Refused { status, .. } => Some(*status),
        ServerEvent::Tested { addr, .. } => panic!("dialed {addr}"),
        _ => None,
    });
    assert_eq!(refused, ResponseStatus::EDialRefused);
}

#[test]
fn dialing_another_ip_than_the_clients_costs_dial_data_first() {
    let s = server(66);
    // The client connects from 127.0.0.1 (its first listener); its second
    // address is on 127.0.0.2.
    let c = client_on(
        67,
        &[
            "/ip4/127.0.0.1/udp/0/quic-v1",
            "/ip4/127.0.0.2/udp/0/quic-v1",
        ],
        client_config(),
    );
    let other: Multiaddr = c
        .handle
        .call(TIMEOUT, |s| s.listen_addrs())
        .expect("addrs")
        .into_iter()
        .find(|a| a.to_string().starts_with("/ip4/127.0.0.2/"))
        .expect("the second address");
    c.dial(s.p2p_addr());
    let mut paid_for = Vec::new();
    while paid_for.len() < 2 {
        let tested = s.wait_for::<ServerEvent, _>("reports", |e| match e {
            ServerEvent::Tested {
                addr, status, paid, ..
            } => Some((addr.clone(), *status, *paid)),
            _ => None,
        });
        assert_eq!(tested.1, DialStatus::Ok, "{tested:?}");
        paid_for.push((tested.0, tested.2));
    }
    paid_for.sort_by_key(|(a, _)| a.to_string());
    assert_eq!(
        paid_for,
        vec![(c.addr.clone(), false), (other.clone(), true)]
    );
    c.wait_for::<ClientEvent, _>("the second address confirmed", |e| match e {
        ClientEvent::Reachable { addr, .. } if *addr == other => Some(()),
        _ => None,
    });
}

/// Send `msg` on a new dial-request stream to `server`.
fn raw_request(node: &Node, server: swarm::PeerId, msg: &proto::Message) -> DetachedStream {
    let mut s = node
        .handle
        .open_stream(server, DIAL_REQUEST, TIMEOUT)
        .expect("request stream");
    s.set_timeout(Some(TIMEOUT));
    std::io::Write::write_all(&mut s, &encode(msg)).expect("write");
    s
}

fn read_message(s: &mut DetachedStream) -> proto::Message {
    let mut reader = FrameReader::new(16 * 1024);
    let mut buf = [0u8; 4096];
    loop {
        if let Some(m) = reader.next_message().expect("framing") {
            return m;
        }
        let n = s.read(&mut buf).expect("read");
        assert!(n > 0, "the stream ended before a message");
        reader.push(&buf[..n]);
    }
}

fn dial_request(addr: &Multiaddr, nonce: u64) -> proto::Message {
    proto::Message {
        msg: Some(Msg::DialRequest(proto::DialRequest {
            addrs: vec![addr.to_vec()],
            nonce,
        })),
    }
}

#[test]
fn a_client_that_will_not_pay_gets_no_dial_to_a_third_party() {
    let s = server(68);
    let victim = Node::start_on(69, &["/ip4/127.0.0.2/udp/0/quic-v1"], |_| vec![]);
    let asker = Node::start(70, |_| vec![]);
    asker.dial(s.p2p_addr());
    let mut stream = raw_request(&asker, s.peer, &dial_request(&victim.addr, 7));
    match read_message(&mut stream).msg {
        Some(Msg::DialDataRequest(ask)) => {
            assert_eq!(ask.addr_idx, 0);
            assert!(ask.num_bytes >= 30_000, "{ask:?}");
        }
        other => panic!("expected a dial-data request, got {other:?}"),
    }
    // Walk away without paying.
    drop(stream);
    s.wait_for::<ServerEvent, _>("the abandoned request", |e| match e {
        ServerEvent::Abandoned { client } if *client == asker.peer => Some(()),
        ServerEvent::Tested { addr, .. } => panic!("dialed {addr}"),
        _ => None,
    });
    assert_eq!(victim.connections_to(s.peer), 0, "the victim was dialed");
}

#[test]
fn requests_beyond_the_per_client_rate_are_rejected() {
    let s = server_with(
        71,
        ServerConfig {
            allowed_networks: loopback(),
            max_per_client_per_minute: 1,
            ..ServerConfig::default()
        },
    );
    let asker = Node::start(72, |_| vec![]);
    asker.dial(s.p2p_addr());
    let port = std::net::TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port();
    let dead: Multiaddr = format!("/ip4/127.0.0.1/tcp/{port}").parse().unwrap();
    let mut first = raw_request(&asker, s.peer, &dial_request(&dead, 1));
    let mut second = raw_request(&asker, s.peer, &dial_request(&dead, 2));
    let status = |m: proto::Message| match m.msg {
        Some(Msg::DialResponse(r)) => (r.status, r.dial_status),
        other => panic!("expected a response, got {other:?}"),
    };
    let answers = [
        status(read_message(&mut first)),
        status(read_message(&mut second)),
    ];
    assert!(
        answers.contains(&(ResponseStatus::ERequestRejected as i32, 0)),
        "{answers:?}"
    );
    assert!(
        answers.contains(&(ResponseStatus::Ok as i32, DialStatus::EDialError as i32)),
        "{answers:?}"
    );
}
