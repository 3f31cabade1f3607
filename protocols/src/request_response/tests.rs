//! The plugin and the blocking call between real nodes, and the message
//! reader.

use std::sync::mpsc;
use std::thread::JoinHandle;

use swarm::{ConnId, Keypair, Multiaddr, Runtime, SwarmConfig};

use std::io;
use std::time::{Duration, Instant};

use bytes::Bytes;
use swarm::{Context, PeerId, Protocol, ProtocolEvent, SwarmHandle};

use super::message::{MessageReader, length_prefix};
use super::*;

const PROTOCOL: &str = "/test/upper/1.0.0";
const WAIT: Duration = Duration::from_secs(20);

/// A node on loopback; shut down when dropped.
struct Node {
    handle: SwarmHandle,
    peer: PeerId,
    addr: Multiaddr,
    thread: Option<JoinHandle<io::Result<()>>>,
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.handle.shutdown(0);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}

fn node(seed: u8, plugins: Vec<Box<dyn Protocol>>) -> Node {
    let key = Keypair::ed25519_from_bytes([seed; 32]).unwrap();
    let mut runtime = Runtime::new(SwarmConfig::new(key)).unwrap();
    for plugin in plugins {
        runtime.add_protocol(plugin);
    }
    let addr = runtime
        .listen(&"/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap())
        .unwrap();
    let peer = runtime.swarm().local_peer_id();
    let (handle, thread) = runtime.spawn().unwrap();
    Node {
        handle,
        peer,
        addr,
        thread: Some(thread),
    }
}

fn connect(from: &Node, to: &Node) -> ConnId {
    let addr = to
        .addr
        .clone()
        .with(swarm::multiaddr::Protocol::P2p(to.peer));
    from.handle.dial(&addr, false, WAIT).unwrap()
}

/// Upper-cases requests; declines `"no"`.
fn upper(config: RequestResponseConfig) -> Box<dyn Protocol> {
    Box::new(
        RequestResponse::new(PROTOCOL, config).with_handler(|_, request: Bytes| {
            (&request[..] != b"no").then(|| request.to_ascii_uppercase())
        }),
    )
}

fn ask(from: &Node, to: &Node, request: &[u8]) -> Result<Bytes, RequestError> {
    super::request(&from.handle, to.peer, PROTOCOL, request, WAIT)
}

#[test]
fn reader_reassembles_a_message_split_anywhere() {
    let message = b"hello, world".repeat(20);
    let mut wire = length_prefix(message.len());
    wire.extend_from_slice(&message);
    for split in 0..wire.len() {
        let mut reader = MessageReader::new(1000);
        let first = reader.push(&wire[..split]).unwrap();
        assert_eq!(first, None, "split at {split}");
        let second = reader.push(&wire[split..]).unwrap();
        assert_eq!(second.as_deref(), Some(&message[..]), "split at {split}");
    }
}

#[test]
fn reader_enforces_limit_and_rejects_garbage() {
    let mut reader = MessageReader::new(10);
    assert_eq!(
        reader.push(&length_prefix(11)),
        Err(RequestError::TooLarge { len: 11, limit: 10 })
    );
    let mut reader = MessageReader::new(10);
    assert!(matches!(
        reader.push(&[3, b'a', b'b', b'c', b'd']),
        Err(RequestError::Malformed(_))
    ));
    let mut reader = MessageReader::new(10);
    assert!(matches!(
        reader.push(&[0x80; 11]),
        Err(RequestError::Malformed(_))
    ));
    let mut reader = MessageReader::new(10);
    assert_eq!(reader.push(&[0]), Ok(Some(Bytes::new())));
}

#[test]
fn blocking_request_gets_the_handlers_response() {
    let server = node(1, vec![upper(RequestResponseConfig::default())]);
    let client = node(2, vec![]);
    connect(&client, &server);
    assert_eq!(ask(&client, &server, b"hello").unwrap(), "HELLO");
    // Large messages cross several send windows.
    let big = vec![b'x'; 900_000];
    assert_eq!(
        ask(&client, &server, &big).unwrap(),
        big.to_ascii_uppercase()
    );
    assert_eq!(ask(&client, &server, b"").unwrap(), "");
}

#[test]
fn blocking_request_errors_are_typed() {
    let small = RequestResponseConfig {
        max_request_size: 100,
        ..RequestResponseConfig::default()
    };
    let server = node(3, vec![upper(small)]);
    let client = node(4, vec![]);
    assert_eq!(
        ask(&client, &server, b"x"),
        Err(RequestError::NotConnected(server.peer))
    );
    connect(&client, &server);
    assert_eq!(ask(&client, &server, b"no"), Err(RequestError::Declined));
    assert_eq!(
        ask(&client, &server, &[b'x'; 101]),
        Err(RequestError::RemoteTooLarge)
    );
    assert_eq!(
        super::request(&client.handle, server.peer, "/nobody/1.0.0", b"x", WAIT),
        Err(RequestError::Refused("/nobody/1.0.0".into()))
    );
    let tiny_response = RequestResponseConfig {
        max_response_size: 3,
        ..RequestResponseConfig::default()
    };
    assert_eq!(
        request_with_config(
            &client.handle,
            server.peer,
            PROTOCOL,
            b"four",
            &tiny_response
        ),
        Err(RequestError::TooLarge { len: 4, limit: 3 })
    );
    // The connection survives every refusal.
    assert_eq!(ask(&client, &server, b"ok").unwrap(), "OK");
}

/// Accepts streams for PROTOCOL and never answers.
struct Silent;

impl Protocol for Silent {
    fn protocol_ids(&self) -> Vec<String> {
        vec![PROTOCOL.into()]
    }
}

#[test]
fn silent_responder_times_out_on_both_paths() {
    let server = node(5, vec![Box::new(Silent)]);
    let (client, rx) = asking_client(
        6,
        RequestResponseConfig {
            timeout: Duration::from_millis(300),
            ..RequestResponseConfig::default()
        },
    );
    connect(&client, &server);
    let timeout = Duration::from_millis(300);
    let started = Instant::now();
    assert_eq!(
        super::request(&client.handle, server.peer, PROTOCOL, b"x", timeout),
        Err(RequestError::Timeout(timeout))
    );
    assert!(started.elapsed() < Duration::from_secs(5));
    // The plugin path: the asker's request times out too.
    let (_, result) = rx.recv_timeout(WAIT).expect("asker reports");
    assert_eq!(result, Err(RequestError::Timeout(timeout)));
}

/// A node whose [`Asker`] asks every peer it connects to, over a
/// request-response plugin with `config`; returns it and the asker's
/// outcomes.
fn asking_client(seed: u8, config: RequestResponseConfig) -> (Node, mpsc::Receiver<Outcome>) {
    let (results, rx) = mpsc::channel();
    let client = node(
        seed,
        vec![
            Box::new(RequestResponse::new(PROTOCOL, config)),
            Box::new(Asker { results }),
        ],
    );
    (client, rx)
}

/// Sends `"hello"` on every new connection with `send_request` and
/// reports each outcome.
struct Asker {
    results: mpsc::Sender<Outcome>,
}

/// A request the [`Asker`] made, and how it ended.
type Outcome = (RequestId, Result<Bytes, RequestError>);

impl Protocol for Asker {
    fn handle_new_connection(&mut self, ctx: &mut Context<'_>, _: ConnId, peer: PeerId) {
        send_request(ctx, peer, PROTOCOL, "hello");
        send_request(ctx, peer, PROTOCOL, "no");
    }

    fn handle_protocol_event(&mut self, _: &mut Context<'_>, event: &ProtocolEvent) {
        if let Some(response) = event.downcast_ref::<ResponseEvent>() {
            let _ = self.results.send((response.id, response.result.clone()));
        }
    }
}

#[test]
fn plugin_requests_get_response_events() {
    let server = node(7, vec![upper(RequestResponseConfig::default())]);
    let (client, rx) = asking_client(8, RequestResponseConfig::default());
    connect(&client, &server);
    let mut results: Vec<_> = (0..2).map(|_| rx.recv_timeout(WAIT).unwrap()).collect();
    results.sort_by_key(|(id, _)| *id);
    assert_eq!(results[0].1, Ok(Bytes::from("HELLO")));
    assert_eq!(results[1].1, Err(RequestError::Declined));
}

#[test]
fn plugin_request_to_a_peer_without_the_protocol_is_refused() {
    let server = node(9, vec![]);
    let (client, rx) = asking_client(10, RequestResponseConfig::default());
    connect(&client, &server);
    for _ in 0..2 {
        let (_, result) = rx.recv_timeout(WAIT).unwrap();
        assert_eq!(result, Err(RequestError::Refused(PROTOCOL.into())));
    }
}
