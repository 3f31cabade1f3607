//! Shared helpers for the swarm's integration tests: nodes on loopback and
//! small test plugins.
#![allow(dead_code)]

use std::io::{Read, Write};
use std::sync::mpsc::Receiver;
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use swarm::{
    Bytes, Context, Keypair, Multiaddr, PeerId, Protocol, Runtime, StreamRef, SwarmConfig,
    SwarmEvent, SwarmHandle,
};

/// A bounded wait for every blocking call in tests.
pub const TIMEOUT: Duration = Duration::from_secs(20);

pub const ECHO: &str = "/test/echo/1.0.0";

/// A running node on loopback.
pub struct Node {
    pub handle: SwarmHandle,
    pub peer: PeerId,
    pub addr: Multiaddr,
    pub events: Receiver<SwarmEvent>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl Node {
    /// A node from a runtime started by the caller (e.g. one that listens
    /// on more than one address).
    pub fn from_parts(
        handle: SwarmHandle,
        peer: PeerId,
        addr: Multiaddr,
        events: Receiver<SwarmEvent>,
        thread: JoinHandle<std::io::Result<()>>,
    ) -> Node {
        Node {
            handle,
            peer,
            addr,
            events,
            thread: Some(thread),
        }
    }

    /// The listen address with `/p2p/<peer id>`.
    pub fn p2p_addr(&self) -> Multiaddr {
        self.addr
            .clone()
            .with(swarm::multiaddr::Protocol::P2p(self.peer))
    }

    /// Wait for the first event `f` maps to `Some`.
    pub fn wait_for<T>(&self, mut f: impl FnMut(&SwarmEvent) -> Option<T>) -> Option<T> {
        let deadline = Instant::now() + TIMEOUT;
        while let Some(left) = deadline.checked_duration_since(Instant::now()) {
            match self.events.recv_timeout(left) {
                Ok(e) => {
                    if let Some(t) = f(&e) {
                        return Some(t);
                    }
                }
                Err(_) => return None,
            }
        }
        None
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

pub fn config(seed: u8) -> SwarmConfig {
    let key = Keypair::ed25519_from_bytes([seed; 32]).expect("32 bytes");
    SwarmConfig::new(key)
}

/// Start a node listening on 127.0.0.1 port 0 with the given plugins.
pub fn node(config: SwarmConfig, plugins: Vec<Box<dyn Protocol>>) -> Node {
    let mut rt = Runtime::new(config).expect("runtime");
    for p in plugins {
        rt.add_protocol(p);
    }
    let addr = rt
        .listen(&"/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap())
        .expect("listen");
    let peer = rt.swarm().local_peer_id();
    let (handle, thread) = rt.spawn().expect("spawn");
    let events = subscribed(&handle);
    Node {
        handle,
        peer,
        addr,
        events,
        thread: Some(thread),
    }
}

/// Echoes every byte of an inbound stream, then finishes when the remote does.
pub struct EchoPlugin;

impl Protocol for EchoPlugin {
    fn name(&self) -> &'static str {
        "echo"
    }
    fn protocol_ids(&self) -> Vec<String> {
        vec![ECHO.into()]
    }
    fn handle_stream_data(&mut self, ctx: &mut Context<'_>, stream: StreamRef, mut data: Bytes) {
        // Test plugin: the window is large enough for what the tests send
        // between two writable events; anything not taken is a test failure.
        let n = ctx.write_bytes(stream, &mut data).expect("echo write");
        assert!(data.is_empty(), "echo wrote only {n} bytes");
    }
    fn handle_stream_finished(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        let _ = ctx.finish(stream);
    }
}

/// Open an echo stream from `from` to `to`, send `data`, finish, and read
/// everything back. Sequential, so keep `data` under the stream window.
pub fn echo_roundtrip(from: &SwarmHandle, to: PeerId, data: &[u8]) -> Vec<u8> {
    let mut s = from.open_stream(to, ECHO, TIMEOUT).expect("stream opens");
    s.set_timeout(Some(TIMEOUT));
    s.write_all(data).expect("write");
    s.finish().expect("finish");
    let mut out = Vec::new();
    s.read_to_end(&mut out).expect("read");
    out
}

/// The events of the swarm behind `handle`, from the moment this returns:
/// the subscription is a command the swarm thread takes when it gets to
/// it, possibly after a connection the test makes next (a test that then
/// waits for that connection's event would miss it); a call behind it on
/// the same command queue returns only once the subscription is in place.
pub fn subscribed(handle: &SwarmHandle) -> Receiver<SwarmEvent> {
    let events = handle.subscribe(1024).expect("subscribe");
    handle.call(TIMEOUT, |_| ()).expect("the swarm thread runs");
    events
}

/// A byte pattern whose every position is checkable.
pub fn pattern(len: usize) -> Vec<u8> {
    (0..len).map(|i| (i % 251) as u8).collect()
}

/// A node serving [`EchoPlugin`], listening on QUIC and on TCP (both on
/// loopback, port 0); returns it with its TCP address.
pub fn dual_node(seed: u8) -> (Node, Multiaddr) {
    dual_node_with(config(seed))
}

/// [`dual_node`] with the caller's config (e.g. tighter limits).
pub fn dual_node_with(config: SwarmConfig) -> (Node, Multiaddr) {
    let mut rt = Runtime::new(config).expect("runtime");
    rt.add_protocol(Box::new(EchoPlugin));
    let quic = rt
        .listen(&"/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap())
        .expect("quic listen");
    let tcp = rt
        .listen(&"/ip4/127.0.0.1/tcp/0".parse().unwrap())
        .expect("tcp listen");
    assert!(
        tcp.iter()
            .any(|p| matches!(p, swarm::multiaddr::Protocol::Tcp(port) if port != 0))
    );
    let peer = rt.swarm().local_peer_id();
    let (handle, thread) = rt.spawn().expect("spawn");
    let events = subscribed(&handle);
    (Node::from_parts(handle, peer, quic, events, thread), tcp)
}
