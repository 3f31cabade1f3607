//! Shared helpers for the ping and identify tests: nodes on loopback with
//! our plugins, and bounded waits for their events.
#![allow(dead_code)]

use std::cell::RefCell;
use std::collections::VecDeque;
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use protocols::identify::{Identify, IdentifyConfig};
use protocols::ping::{Ping, PingConfig};
use swarm::{
    ConnId, Keypair, Multiaddr, PeerId, Protocol, Runtime, SwarmConfig, SwarmEvent, SwarmHandle,
};

/// A bound on every wait; generous for debug builds on a busy machine.
pub const TIMEOUT: Duration = Duration::from_secs(30);

/// A ping interval short enough for tests to see several pings.
pub const FAST_PING: Duration = Duration::from_millis(200);

/// A running node on loopback. Shuts down when dropped.
pub struct Node {
    pub handle: SwarmHandle,
    pub keypair: Keypair,
    pub peer: PeerId,
    pub addr: Multiaddr,
    events: Receiver<SwarmEvent>,
    /// Events received but not yet waited for.
    backlog: RefCell<VecDeque<SwarmEvent>>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

/// The deterministic key for `seed`.
pub fn keypair(seed: u8) -> Keypair {
    Keypair::ed25519_from_bytes([seed; 32]).expect("32 bytes")
}

/// Ping with a short interval, pinging on connect.
pub fn fast_ping() -> Box<dyn Protocol> {
    Box::new(Ping::new(PingConfig {
        interval: FAST_PING,
        ..PingConfig::default()
    }))
}

/// Identify for `keypair` announcing `agent`.
pub fn identify(keypair: &Keypair, agent: &str) -> Box<dyn Protocol> {
    let mut config = IdentifyConfig::new(keypair.public());
    config.agent_version = agent.into();
    Box::new(Identify::new(config))
}

impl Node {
    /// Start a node with key `seed` listening on 127.0.0.1, with `plugins`
    /// built from its key.
    pub fn start(seed: u8, plugins: impl FnOnce(&Keypair) -> Vec<Box<dyn Protocol>>) -> Node {
        Self::start_on(seed, &["/ip4/127.0.0.1/udp/0/quic-v1"], plugins)
    }

    /// [`Node::start`] listening on each of `listen` (port 0); `addr` is
    /// the first.
    pub fn start_on(
        seed: u8,
        listen: &[&str],
        plugins: impl FnOnce(&Keypair) -> Vec<Box<dyn Protocol>>,
    ) -> Node {
        log_once();
        let keypair = keypair(seed);
        let mut rt = Runtime::new(SwarmConfig::new(keypair.clone())).expect("runtime");
        for p in plugins(&keypair) {
            rt.add_protocol(p);
        }
        let addrs: Vec<Multiaddr> = listen
            .iter()
            .map(|a| rt.listen(&a.parse().unwrap()).expect("listen"))
            .collect();
        let addr = addrs[0].clone();
        let peer = rt.swarm().local_peer_id();
        let (handle, thread) = rt.spawn().expect("spawn");
        let events = handle.subscribe(4096).expect("subscribe");
        // In place once a call behind it on the command queue returns, so
        // that no event of what the test does next is missed.
        handle.call(TIMEOUT, |_| ()).expect("the swarm thread runs");
        Node {
            handle,
            keypair,
            peer,
            addr,
            events,
            backlog: RefCell::default(),
            thread: Some(thread),
        }
    }

    /// The listen address with `/p2p/<peer id>`.
    pub fn p2p_addr(&self) -> Multiaddr {
        self.addr
            .clone()
            .with(swarm::multiaddr::Protocol::P2p(self.peer))
    }

    /// Dial `addr` and wait for the connection.
    pub fn dial(&self, addr: Multiaddr) -> ConnId {
        self.handle
            .dial(&addr, false, TIMEOUT)
            .expect("dial succeeds")
    }

    /// Established connections to `peer`.
    pub fn connections_to(&self, peer: PeerId) -> usize {
        self.handle
            .call(TIMEOUT, move |s| s.connections_to(&peer).len())
            .expect("swarm answers")
    }

    /// Run `f` on the swarm thread with the peer store.
    pub fn peer_store<R: Send + 'static>(
        &self,
        f: impl FnOnce(&swarm::peer_store::PeerStore) -> R + Send + 'static,
    ) -> R {
        self.handle
            .call(TIMEOUT, move |s| f(s.peer_store()))
            .expect("swarm answers")
    }

    /// The first swarm event `f` maps to `Some`, consuming it; panics after
    /// [`TIMEOUT`]. Events `f` passes over are kept for later waits, so
    /// tests may wait for events in any order.
    pub fn wait_for_swarm<R>(&self, what: &str, mut f: impl FnMut(&SwarmEvent) -> Option<R>) -> R {
        let mut backlog = self.backlog.borrow_mut();
        for i in 0..backlog.len() {
            if let Some(r) = f(&backlog[i]) {
                backlog.remove(i);
                return r;
            }
        }
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(event) => match f(&event) {
                    Some(r) => return r,
                    None => backlog.push_back(event),
                },
                Err(e) => panic!("waited {TIMEOUT:?} for {what}: {e}"),
            }
        }
    }

    /// The first plugin event of type `T` that `f` maps to `Some`.
    pub fn wait_for<T: 'static, R>(&self, what: &str, mut f: impl FnMut(&T) -> Option<R>) -> R {
        self.wait_for_swarm(what, |event| match event {
            SwarmEvent::Protocol(e) => e.downcast_ref::<T>().and_then(&mut f),
            _ => None,
        })
    }
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.handle.shutdown(0);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Logs to the test's output when `RUST_LOG` is set.
fn log_once() {
    static ONCE: std::sync::Once = std::sync::Once::new();
    ONCE.call_once(|| {
        let _ = tracing_subscriber::fmt()
            .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
            .with_test_writer()
            .try_init();
    });
}
