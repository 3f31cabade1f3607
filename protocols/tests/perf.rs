//! perf and test-data between two of our swarms on loopback: exact byte
//! counts on both sides, broken headers, refused protocols, and a test-data
//! run that ends without an error on the server.

use std::io::{Read, Write};
use std::sync::mpsc::Receiver;
use std::sync::{Arc, Mutex, OnceLock};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use protocols::perf::{self, PerfClient, PerfError, PerfServer, PerfServerEvent};
use protocols::test_data::{self, TestDataClient, TestDataServed, TestDataServer};
use rust_libp2p_peer::{PeerConfig, PeerEvent, RustPeer};
use swarm::{
    ConnId, Keypair, Multiaddr, PeerId, PluginId, Protocol, Runtime, SwarmConfig, SwarmEvent,
    SwarmHandle,
};

/// A bound on every wait; generous for debug builds on a busy machine.
const TIMEOUT: Duration = Duration::from_secs(60);
const MIB: u64 = 1024 * 1024;

/// A running node on loopback.
struct Node {
    handle: SwarmHandle,
    peer: PeerId,
    addr: Multiaddr,
    events: Receiver<SwarmEvent>,
    /// The ids of its plugins, in the order given.
    plugins: Vec<PluginId>,
    thread: Option<JoinHandle<std::io::Result<()>>>,
}

impl Node {
    fn start(seed: u8, plugins: Vec<Box<dyn Protocol>>) -> Node {
        Self::start_with(config(seed), plugins)
    }

    fn start_with(config: SwarmConfig, plugins: Vec<Box<dyn Protocol>>) -> Node {
        log_capture();
        let mut rt = Runtime::new(config).expect("runtime");
        let plugins = plugins.into_iter().map(|p| rt.add_protocol(p)).collect();
        let addr = rt
            .listen(&"/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap())
            .expect("listen");
        let peer = rt.swarm().local_peer_id();
        let (handle, thread) = rt.spawn().expect("spawn");
        let events = handle.subscribe(4096).expect("subscribe");
        Node {
            handle,
            peer,
            addr,
            events,
            plugins,
            thread: Some(thread),
        }
    }

    /// The id of its first plugin: the client that requests go to.
    fn client(&self) -> PluginId {
        self.plugins[0]
    }

    fn dial(&self, other: &Node) -> ConnId {
        let addr = other
            .addr
            .clone()
            .with(swarm::multiaddr::Protocol::P2p(other.peer));
        self.handle
            .dial(&addr, false, TIMEOUT)
            .expect("dial succeeds")
    }

    fn connections_to(&self, peer: PeerId) -> usize {
        self.handle
            .call(TIMEOUT, move |s| s.connections_to(&peer).len())
            .expect("swarm answers")
    }

    /// The first plugin event of type `T` that `f` accepts.
    fn wait_for<T: 'static, R>(&self, mut f: impl FnMut(&T) -> Option<R>) -> R {
        let deadline = Instant::now() + TIMEOUT;
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            match self.events.recv_timeout(left) {
                Ok(SwarmEvent::Protocol(e)) => {
                    if let Some(r) = e.downcast_ref::<T>().and_then(&mut f) {
                        return r;
                    }
                }
                Ok(_) => {}
                Err(e) => panic!("no {} event: {e}", std::any::type_name::<T>()),
            }
        }
    }
}

fn config(seed: u8) -> SwarmConfig {
    SwarmConfig::new(Keypair::ed25519_from_bytes([seed; 32]).expect("32 bytes"))
}

impl Drop for Node {
    fn drop(&mut self) {
        let _ = self.handle.shutdown(0);
        if let Some(t) = self.thread.take() {
            let _ = t.join();
        }
    }
}

/// Everything logged in this test binary, to check what was (not) logged.
fn log_capture() -> Arc<Mutex<Vec<u8>>> {
    static LOGS: OnceLock<Arc<Mutex<Vec<u8>>>> = OnceLock::new();
    LOGS.get_or_init(|| {
        let logs = Arc::new(Mutex::new(Vec::new()));
        let sink = logs.clone();
        let _ = tracing_subscriber::fmt()
            .with_ansi(false)
            .with_max_level(tracing::Level::DEBUG)
            .with_writer(move || LogWriter(sink.clone()))
            .try_init();
        logs
    })
    .clone()
}

struct LogWriter(Arc<Mutex<Vec<u8>>>);

impl Write for LogWriter {
    fn write(&mut self, buf: &[u8]) -> std::io::Result<usize> {
        self.0.lock().unwrap().extend_from_slice(buf);
        Ok(buf.len())
    }
    fn flush(&mut self) -> std::io::Result<()> {
        Ok(())
    }
}

fn perf_server_node(seed: u8) -> Node {
    Node::start(seed, vec![Box::new(PerfServer::new())])
}

fn perf_client_node(seed: u8) -> Node {
    Node::start(seed, vec![Box::new(PerfClient::new())])
}

#[test]
fn perf_10_mib_up_and_down_counts_exactly_on_both_sides() {
    let server = perf_server_node(1);
    let client = perf_client_node(2);
    client.dial(&server);
    let run = perf::start(
        &client.handle,
        client.client(),
        server.peer,
        10 * MIB,
        10 * MIB,
    )
    .unwrap();
    let report = run.wait(TIMEOUT).expect("perf run succeeds");
    assert_eq!(report.bytes_up, 10 * MIB);
    assert_eq!(report.bytes_down, 10 * MIB);
    assert_eq!(report.total_time, report.upload_time + report.download_time);
    assert_eq!(run.progress().uploaded(), 10 * MIB);
    assert_eq!(run.progress().downloaded(), 10 * MIB);
    let (peer, served) = server.wait_for(|e: &PerfServerEvent| match e {
        PerfServerEvent::Finished { peer, report, .. } => Some((*peer, *report)),
        PerfServerEvent::Failed { error, .. } => panic!("server side failed: {error}"),
    });
    assert_eq!(peer, client.peer);
    assert_eq!(served.bytes_up, 10 * MIB);
    assert_eq!(served.bytes_down, 10 * MIB);
}

#[test]
fn perf_runs_in_parallel_and_with_zero_sizes() {
    let server = perf_server_node(3);
    let client = perf_client_node(4);
    client.dial(&server);
    let sizes = [(0, 0), (1, 0), (0, 1), (MIB + 3, 7), (5, 2 * MIB + 1)];
    let runs: Vec<_> = sizes
        .iter()
        .map(|&(up, down)| {
            perf::start(&client.handle, client.client(), server.peer, up, down).unwrap()
        })
        .collect();
    for ((up, down), run) in sizes.iter().zip(runs) {
        let report = run.wait(TIMEOUT).expect("perf run succeeds");
        assert_eq!((report.bytes_up, report.bytes_down), (*up, *down));
    }
    // Optimistic: the upload follows the proposal without waiting.
    let (request, run) = perf::PerfRequest::new(server.peer, 2 * MIB, 3);
    perf::send(&client.handle, client.client(), request.optimistic(true)).unwrap();
    let report = run.wait(TIMEOUT).expect("optimistic run succeeds");
    assert_eq!((report.bytes_up, report.bytes_down), (2 * MIB, 3));
    assert_eq!(client.connections_to(server.peer), 1);
}

#[test]
fn parallel_runs_that_overflow_the_send_window_all_finish() {
    // Small send windows: several streams then compete for the connection's
    // window, and a stream cut short by it must still be woken to go on.
    let mut server_config = config(16);
    server_config.send_window = 1_000_000;
    let mut client_config = config(17);
    client_config.send_window = 1_000_000;
    let server = Node::start_with(server_config, vec![Box::new(PerfServer::new())]);
    let client = Node::start_with(client_config, vec![Box::new(PerfClient::new())]);
    client.dial(&server);
    let runs: Vec<_> = (0..3)
        .map(|_| {
            perf::start(
                &client.handle,
                client.client(),
                server.peer,
                2 * MIB,
                2 * MIB,
            )
            .unwrap()
        })
        .collect();
    for run in runs {
        let report = run.wait(TIMEOUT).expect("perf run succeeds");
        assert_eq!((report.bytes_up, report.bytes_down), (2 * MIB, 2 * MIB));
    }
}

#[test]
fn parallel_threads_that_overflow_the_send_window_all_finish() {
    let mut server_config = config(18);
    server_config.send_window = 1_000_000;
    let mut client_config = config(19);
    client_config.send_window = 1_000_000;
    let server = Node::start_with(server_config, vec![Box::new(PerfServer::new())]);
    let client = Node::start_with(client_config, vec![]);
    client.dial(&server);
    std::thread::scope(|s| {
        for _ in 0..3 {
            let (handle, peer) = (&client.handle, server.peer);
            s.spawn(move || {
                let report = perf::run_blocking(handle, peer, 2 * MIB, 2 * MIB, TIMEOUT).unwrap();
                assert_eq!((report.bytes_up, report.bytes_down), (2 * MIB, 2 * MIB));
            });
        }
    });
}

#[test]
fn perf_from_a_thread_with_a_blocking_stream_counts_exactly() {
    let server = perf_server_node(5);
    let client = Node::start(6, vec![]);
    client.dial(&server);
    let report =
        perf::run_blocking(&client.handle, server.peer, 3 * MIB, 2 * MIB + 5, TIMEOUT).unwrap();
    assert_eq!((report.bytes_up, report.bytes_down), (3 * MIB, 2 * MIB + 5));
}

#[test]
fn perf_header_split_across_packets_is_reassembled() {
    let server = perf_server_node(7);
    let client = Node::start(8, vec![]);
    client.dial(&server);
    let mut s = client
        .handle
        .open_stream(server.peer, perf::PROTOCOL_ID, TIMEOUT)
        .unwrap();
    s.set_timeout(Some(TIMEOUT));
    // One header byte per flight: flush hands each to QUIC, and the pause
    // lets it leave before the next one is written.
    for b in 1000u64.to_be_bytes() {
        s.write_all(&[b]).unwrap();
        s.flush().unwrap();
        std::thread::sleep(Duration::from_millis(5));
    }
    s.write_all(&[0u8; 100]).unwrap();
    s.finish().unwrap();
    let mut back = Vec::new();
    s.read_to_end(&mut back).unwrap();
    assert_eq!(back.len(), 1000);
    let served = server.wait_for(|e: &PerfServerEvent| match e {
        PerfServerEvent::Finished { report, .. } => Some(*report),
        PerfServerEvent::Failed { error, .. } => panic!("server side failed: {error}"),
    });
    assert_eq!((served.bytes_up, served.bytes_down), (100, 1000));
}

#[test]
fn perf_header_cut_short_fails_that_stream_and_the_connection_survives() {
    let server = perf_server_node(9);
    let client = Node::start(10, vec![Box::new(PerfClient::new())]);
    client.dial(&server);
    let mut s = client
        .handle
        .open_stream(server.peer, perf::PROTOCOL_ID, TIMEOUT)
        .unwrap();
    s.set_timeout(Some(TIMEOUT));
    s.write_all(&[0, 0, 1]).unwrap();
    s.finish().unwrap();
    let mut back = Vec::new();
    assert!(
        s.read_to_end(&mut back).is_err(),
        "a truncated header must reset the stream, got {} bytes and a clean end",
        back.len()
    );
    let error = server.wait_for(|e: &PerfServerEvent| match e {
        PerfServerEvent::Failed { error, .. } => Some(error.clone()),
        PerfServerEvent::Finished { .. } => panic!("a truncated header was served"),
    });
    assert_eq!(error, PerfError::HeaderTruncated { received: 3 });
    // Same connection, next run: fine.
    let report = perf::start(&client.handle, client.client(), server.peer, 10, 20)
        .unwrap()
        .wait(TIMEOUT)
        .expect("the next run succeeds");
    assert_eq!((report.bytes_up, report.bytes_down), (10, 20));
    assert_eq!(client.connections_to(server.peer), 1);
}

#[test]
fn perf_against_a_peer_without_perf_is_refused() {
    let server = Node::start(11, vec![Box::new(TestDataServer::new())]);
    let client = perf_client_node(12);
    client.dial(&server);
    let error = perf::start(&client.handle, client.client(), server.peer, 10, 10)
        .unwrap()
        .wait(TIMEOUT)
        .expect_err("must be refused");
    assert_eq!(error, PerfError::Refused(perf::PROTOCOL_ID.into()));
    let error = perf::run_blocking(&client.handle, server.peer, 10, 10, TIMEOUT)
        .expect_err("must be refused");
    assert_eq!(error, PerfError::Refused(perf::PROTOCOL_ID.into()));
}

#[test]
fn perf_to_an_unconnected_peer_fails_to_open() {
    let client = perf_client_node(13);
    let stranger = PeerId::random();
    let error = perf::start(&client.handle, client.client(), stranger, 1, 1)
        .unwrap()
        .wait(TIMEOUT)
        .expect_err("not connected");
    assert!(matches!(error, PerfError::Open(_)), "{error:?}");
}

#[test]
fn test_data_download_counts_exactly_and_the_server_logs_no_error() {
    let server = Node::start(14, vec![Box::new(TestDataServer::new())]);
    let client = Node::start(15, vec![Box::new(TestDataClient::new())]);
    client.dial(&server);
    let wanted = 5 * MIB + 7;
    let run = test_data::start(&client.handle, client.client(), server.peer, wanted).unwrap();
    let report = run.wait(TIMEOUT).expect("download succeeds");
    assert_eq!(report.bytes_down, wanted);
    assert_eq!(run.progress().downloaded(), wanted);
    let served = server.wait_for(|e: &TestDataServed| Some(e.clone()));
    assert_eq!(served.peer, client.peer);
    assert!(served.bytes_sent >= wanted, "{served:?}");
    // A second download on the same connection works too.
    let report = test_data::start(&client.handle, client.client(), server.peer, 1)
        .unwrap()
        .wait(TIMEOUT)
        .expect("second download succeeds");
    assert_eq!(report.bytes_down, 1);
    server.wait_for(|e: &TestDataServed| Some(e.clone()));
    let logs = String::from_utf8_lossy(&log_capture().lock().unwrap()).into_owned();
    // The server's lines name the client; other tests' lines do not.
    let client_id = client.peer.to_string();
    let server_lines: Vec<&str> = logs
        .lines()
        .filter(|l| l.contains("test_data") && l.contains(&client_id))
        .collect();
    let complaints: Vec<&&str> = server_lines
        .iter()
        .filter(|l| l.contains("WARN") || l.contains("ERROR"))
        .collect();
    assert!(
        complaints.is_empty(),
        "the server complained: {complaints:#?}"
    );
    let normal_ends = server_lines
        .iter()
        .filter(|l| l.contains("test-data client stopped reading"))
        .count();
    assert_eq!(normal_ends, 2, "each normal end is logged (at debug)");
}

#[test]
fn test_data_of_zero_bytes_succeeds_and_a_refusal_is_reported() {
    let server = Node::start(22, vec![Box::new(TestDataServer::new())]);
    let client = Node::start(23, vec![Box::new(TestDataClient::new())]);
    client.dial(&server);
    let report = test_data::start(&client.handle, client.client(), server.peer, 0)
        .unwrap()
        .wait(TIMEOUT)
        .expect("an empty download succeeds");
    assert_eq!(report.bytes_down, 0);
    let no_test_data = perf_server_node(24);
    client.dial(&no_test_data);
    let error = test_data::start(&client.handle, client.client(), no_test_data.peer, 10)
        .unwrap()
        .wait(TIMEOUT)
        .expect_err("must be refused");
    assert_eq!(error, PerfError::Refused(test_data::PROTOCOL_ID.into()));
}

// ----- interop with rust-libp2p -----

/// A rust-libp2p node serving `/perf/1.0.0`.
fn rust_perf_peer() -> RustPeer {
    RustPeer::spawn(PeerConfig {
        perf_server: true,
        ..PeerConfig::default()
    })
}

#[test]
fn interop_our_client_against_rust_libp2p_server_10_mib_each_way() {
    let rust = rust_perf_peer();
    let client = perf_client_node(20);
    client
        .handle
        .dial(
            &rust.dial_addr().expect("rust-libp2p listens"),
            false,
            TIMEOUT,
        )
        .expect("we connect to rust-libp2p");
    let report = perf::start(
        &client.handle,
        client.client(),
        rust.peer_id(),
        10 * MIB,
        10 * MIB,
    )
    .unwrap()
    .wait(TIMEOUT)
    .expect("perf against rust-libp2p succeeds");
    assert_eq!((report.bytes_up, report.bytes_down), (10 * MIB, 10 * MIB));
    let read = rust
        .wait_for(TIMEOUT, |e| match e {
            PeerEvent::InboundStream {
                protocol,
                bytes_read,
                ..
            } if protocol == perf::PROTOCOL_ID => Some(*bytes_read),
            _ => None,
        })
        .expect("rust-libp2p reports the run");
    assert_eq!(read as u64, 10 * MIB, "bytes rust-libp2p read from us");
}

#[test]
fn interop_rust_libp2p_client_against_our_server_10_mib_each_way() {
    let rust = rust_perf_peer();
    let server = perf_server_node(21);
    rust.connect(
        server
            .addr
            .clone()
            .with(swarm::multiaddr::Protocol::P2p(server.peer)),
        TIMEOUT,
    )
    .expect("rust-libp2p connects to us");
    let (sent, received) = rust
        .perf(server.peer, 10 * MIB, 10 * MIB, TIMEOUT)
        .expect("rust-libp2p's perf run against us succeeds");
    assert_eq!((sent, received), (10 * MIB, 10 * MIB));
    let served = server.wait_for(|e: &PerfServerEvent| match e {
        PerfServerEvent::Finished { peer, report, .. } if *peer == rust.peer_id() => Some(*report),
        PerfServerEvent::Failed { error, .. } => panic!("server side failed: {error}"),
        _ => None,
    });
    assert_eq!((served.bytes_up, served.bytes_down), (10 * MIB, 10 * MIB));
}
