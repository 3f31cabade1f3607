//! Peer routing: a `dial_with_id` for a peer the peer store knows no
//! address of asks the registered peer router, waits for it, and dials
//! what it found; or fails with a typed error when it found nothing, never
//! answered, or there is no router.

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use swarm::virtual_net::{LinkConfig, Outcome, VirtualNet};
use swarm::{
    ConnId, Context, DialError, Keypair, Multiaddr, PeerId, PluginId, Protocol, SwarmConfig,
};

fn config(i: u8) -> SwarmConfig {
    let mut config = SwarmConfig::new(Keypair::ed25519_from_bytes([i; 32]).unwrap());
    config.seed = Some(u64::from(i));
    config
}

/// How the test router answers.
#[derive(Clone, Copy, PartialEq)]
enum Answer {
    /// Add the address it knows to the peer store, then say done.
    Known,
    /// Say done without adding anything.
    Nothing,
    /// Never say done.
    Silent,
}

/// What the plugin saw, for the test to check.
#[derive(Default)]
struct Seen {
    asked: Vec<PeerId>,
    connected: Vec<(ConnId, PeerId)>,
    failed: Vec<(ConnId, DialError)>,
}

/// A router that looks peers up in a fixed directory, and records the
/// outcomes of the dials made through its context.
struct Directory {
    answer: Answer,
    addrs: HashMap<PeerId, Multiaddr>,
    seen: Arc<Mutex<Seen>>,
}

impl Protocol for Directory {
    fn name(&self) -> &'static str {
        "directory"
    }

    fn protocol_ids(&self) -> Vec<String> {
        Vec::new()
    }

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        ctx.register_peer_router();
    }

    fn handle_find_peer(&mut self, ctx: &mut Context<'_>, peer: PeerId) {
        self.seen.lock().unwrap().asked.push(peer);
        match self.answer {
            Answer::Known => {
                if let Some(addr) = self.addrs.get(&peer) {
                    let now = ctx.now();
                    ctx.peer_store_mut().add_address(
                        peer,
                        addr.clone(),
                        Duration::from_secs(600),
                        now,
                    );
                }
                ctx.peer_routing_done(peer);
            }
            Answer::Nothing => ctx.peer_routing_done(peer),
            Answer::Silent => {}
        }
    }

    fn handle_new_connection(&mut self, _: &mut Context<'_>, conn: ConnId, peer: PeerId) {
        self.seen.lock().unwrap().connected.push((conn, peer));
    }

    fn handle_dial_failure(&mut self, _: &mut Context<'_>, conn: ConnId, error: &DialError) {
        self.seen.lock().unwrap().failed.push((conn, error.clone()));
    }
}

struct Net {
    net: VirtualNet,
    dialer: usize,
    plugin: Option<PluginId>,
    target: PeerId,
    seen: Arc<Mutex<Seen>>,
}

/// A dialer with a router answering `answer` (or none) and a target at
/// `target_ip` that the dialer's peer store does not know.
fn network(answer: Option<Answer>, dialer_ip: IpAddr, target_ip: IpAddr) -> Net {
    let mut net = VirtualNet::new(7, LinkConfig::clean());
    let target = net.add_swarm(config(2), target_ip);
    let target_peer = net.swarm(target).local_peer_id();
    let addrs = HashMap::from([(target_peer, net.multiaddr(target))]);
    let seen = Arc::new(Mutex::new(Seen::default()));
    let mut plugin = None;
    let dialer = net.add_swarm_with(config(1), dialer_ip, |swarm| {
        if let Some(answer) = answer {
            plugin = Some(swarm.add_protocol(Box::new(Directory {
                answer,
                addrs,
                seen: seen.clone(),
            })));
        }
    });
    Net {
        net,
        dialer,
        plugin,
        target: target_peer,
        seen,
    }
}

fn v4(last: u8) -> IpAddr {
    Ipv4Addr::new(10, 0, 0, last).into()
}

#[test]
fn a_dial_by_id_with_no_address_asks_the_router_once_and_connects() {
    let mut t = network(Some(Answer::Known), v4(1), v4(2));
    let plugin = t.plugin.unwrap();
    let target = t.target;
    let (first, second) = t.net.swarm(t.dialer).with_context(plugin, |ctx| {
        (
            ctx.dial_with_id(target, false).expect("first dial"),
            ctx.dial_with_id(target, false).expect("second dial"),
        )
    });
    assert_ne!(first, second, "each waiting dial has its own id");
    let dialer = t.dialer;
    let outcome = t.net.run_until(Duration::from_secs(5), |net| {
        !net.swarm(dialer).connections_to(&target).is_empty()
    });
    assert_eq!(outcome, Outcome::Done, "no connection to the routed peer");
    let seen = t.seen.lock().unwrap();
    assert_eq!(
        seen.asked,
        vec![target],
        "the router is asked once per peer"
    );
    assert!(seen.failed.is_empty(), "failures: {:?}", seen.failed);
    assert!(seen.connected.iter().any(|(_, p)| *p == target));
    // The ids handed out while waiting name no connection.
    let live = t.net.swarm(dialer).connections_to(&target);
    assert!(!live.contains(&first) && !live.contains(&second));
}

#[test]
fn routing_over_ipv6_addresses_connects() {
    let ip = |last| IpAddr::from(Ipv6Addr::new(0xfd00, 0, 0, 0, 0, 0, 0, last));
    let mut t = network(Some(Answer::Known), ip(1), ip(2));
    let (plugin, target, dialer) = (t.plugin.unwrap(), t.target, t.dialer);
    t.net.swarm(dialer).with_context(plugin, |ctx| {
        ctx.dial_with_id(target, false).expect("dial");
    });
    let outcome = t.net.run_until(Duration::from_secs(5), |net| {
        !net.swarm(dialer).connections_to(&target).is_empty()
    });
    assert_eq!(outcome, Outcome::Done);
    let conn = t.net.swarm(dialer).connections_to(&target)[0];
    let remote = t
        .net
        .swarm(dialer)
        .with_context(plugin, |ctx| ctx.connection_remote_addr(conn))
        .expect("remote address");
    assert!(remote.to_string().starts_with("/ip6/fd00::2/"), "{remote}");
}

#[test]
fn a_router_that_finds_nothing_fails_the_dial_with_no_addresses() {
    let mut t = network(Some(Answer::Nothing), v4(1), v4(2));
    let (plugin, target) = (t.plugin.unwrap(), t.target);
    let id = t.net.swarm(t.dialer).with_context(plugin, |ctx| {
        ctx.dial_with_id(target, false)
            .expect("dial waits for routing")
    });
    t.net.run_for(Duration::from_millis(10));
    let seen = t.seen.lock().unwrap();
    assert_eq!(seen.failed.len(), 1);
    assert_eq!(seen.failed[0].0, id, "reported under the id handed out");
    assert!(
        matches!(seen.failed[0].1, DialError::NoAddresses(p) if p == target),
        "{:?}",
        seen.failed[0].1
    );
}

#[test]
fn a_silent_router_times_out_after_the_configured_limit() {
    let mut t = network(Some(Answer::Silent), v4(1), v4(2));
    let (plugin, target) = (t.plugin.unwrap(), t.target);
    t.net.swarm(t.dialer).with_context(plugin, |ctx| {
        ctx.dial_with_id(target, false)
            .expect("dial waits for routing")
    });
    t.net.run_for(Duration::from_secs(59));
    assert!(t.seen.lock().unwrap().failed.is_empty(), "failed too early");
    t.net.run_for(Duration::from_secs(2));
    let seen = t.seen.lock().unwrap();
    assert_eq!(seen.failed.len(), 1);
    assert!(
        matches!(seen.failed[0].1, DialError::PeerRoutingTimeout(p) if p == target),
        "{:?}",
        seen.failed[0].1
    );
}

#[test]
fn without_a_router_a_dial_by_unknown_id_fails_at_once() {
    let mut t = network(None, v4(1), v4(2));
    let target = t.target;
    let result = t
        .net
        .swarm(t.dialer)
        .with_context(PluginId::external(), |ctx| ctx.dial_with_id(target, false));
    assert!(
        matches!(result, Err(DialError::NoAddresses(p)) if p == target),
        "{result:?}"
    );
}

#[test]
fn a_swarm_handle_dial_by_id_waits_for_routing_and_gets_the_connection() {
    let mut t = network(Some(Answer::Known), v4(1), v4(2));
    let (target, dialer) = (t.target, t.dialer);
    let handle = t.net.swarm(dialer).handle();
    let caller =
        std::thread::spawn(move || handle.dial_with_id(target, false, Duration::from_secs(20)));
    // The caller's command wakes the node; run until its answer is back
    // (bounded: at most 200 steps of 50 ms virtual time).
    for _ in 0..200 {
        if caller.is_finished() {
            break;
        }
        t.net.run_for(Duration::from_millis(50));
        std::thread::sleep(Duration::from_millis(1));
    }
    let conn = caller
        .join()
        .unwrap()
        .expect("routed dial through the handle");
    assert!(t.net.swarm(dialer).connections_to(&target).contains(&conn));
    assert_eq!(t.seen.lock().unwrap().asked, vec![target]);
}
