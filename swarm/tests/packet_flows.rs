//! Packet flows: authenticated QUIC datagrams for plugins, several flows per
//! connection, size limits, closing, and a peer without datagram support.

mod common;

use std::sync::mpsc;
use std::time::Duration;

use common::*;
use rust_libp2p_peer::{PeerConfig, RustPeer};
use swarm::{Bytes, ConnId, Context, PacketError, PacketFlow, PeerId, Protocol};

/// What a flow plugin saw, tagged with the plugin's protocol.
#[derive(Debug, PartialEq)]
enum Seen {
    Ready(&'static str),
    Inbound(&'static str),
    Data(&'static str, Vec<u8>),
    Closed(&'static str, PacketError),
    SendResult(&'static str, Result<(), PacketError>),
}

/// Opens a flow for `protocol` on each new connection (when `opener`),
/// sends `hello` once ready, and echoes every packet on inbound flows.
struct FlowPlugin {
    protocol: &'static str,
    opener: bool,
    seen: mpsc::Sender<Seen>,
}

impl Protocol for FlowPlugin {
    fn name(&self) -> &'static str {
        self.protocol
    }
    fn packet_protocol_ids(&self) -> Vec<String> {
        vec![self.protocol.into()]
    }
    fn handle_new_connection(&mut self, ctx: &mut Context<'_>, conn: ConnId, _: PeerId) {
        if self.opener {
            ctx.open_packet_flow(conn, self.protocol)
                .expect("open flow");
        }
    }
    fn handle_packet_flow_ready(&mut self, ctx: &mut Context<'_>, flow: PacketFlow, _: &str) {
        let _ = self.seen.send(Seen::Ready(self.protocol));
        let r = ctx.send_packet(flow, self.protocol.as_bytes());
        let _ = self.seen.send(Seen::SendResult(self.protocol, r));
    }
    fn accept_inbound_packet_flow(&mut self, _: &mut Context<'_>, _: PacketFlow, protocol: &str) {
        assert_eq!(protocol, self.protocol, "a flow reached the wrong plugin");
        let _ = self.seen.send(Seen::Inbound(self.protocol));
    }
    fn handle_packet_data(&mut self, ctx: &mut Context<'_>, flow: PacketFlow, data: Bytes) {
        let _ = self.seen.send(Seen::Data(self.protocol, data.to_vec()));
        if !self.opener {
            let _ = ctx.send_packet(flow, &data);
        }
    }
    fn handle_packet_flow_closed(
        &mut self,
        _: &mut Context<'_>,
        _: ConnId,
        _: Option<PacketFlow>,
        reason: &PacketError,
    ) {
        let _ = self.seen.send(Seen::Closed(self.protocol, reason.clone()));
    }
}

fn flow_plugins(opener: bool, seen: &mpsc::Sender<Seen>) -> Vec<Box<dyn Protocol>> {
    ["/test/pos/1.0.0", "/test/tick/1.0.0"]
        .into_iter()
        .map(|protocol| {
            Box::new(FlowPlugin {
                protocol,
                opener,
                seen: seen.clone(),
            }) as Box<dyn Protocol>
        })
        .collect()
}

fn collect(rx: &mpsc::Receiver<Seen>, n: usize) -> Vec<Seen> {
    (0..n)
        .map(|_| rx.recv_timeout(TIMEOUT).expect("flow event"))
        .collect()
}

#[test]
fn two_plugins_exchange_datagrams_on_their_own_flows_over_one_connection() {
    let (a_tx, a_rx) = mpsc::channel();
    let (b_tx, b_rx) = mpsc::channel();
    let a = node(config(50), flow_plugins(true, &a_tx));
    let b = node(config(51), flow_plugins(false, &b_tx));
    a.handle.dial(&b.p2p_addr(), false, TIMEOUT).unwrap();
    // b: each plugin gets its own inbound flow and exactly its own packet.
    let mut seen_b = collect(&b_rx, 4);
    seen_b.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(
        seen_b,
        vec![
            Seen::Data("/test/pos/1.0.0", b"/test/pos/1.0.0".to_vec()),
            Seen::Data("/test/tick/1.0.0", b"/test/tick/1.0.0".to_vec()),
            Seen::Inbound("/test/pos/1.0.0"),
            Seen::Inbound("/test/tick/1.0.0"),
        ]
    );
    // a: both flows ready, sends accepted, and each echo came back to the
    // plugin that sent it.
    let mut seen_a = collect(&a_rx, 6);
    seen_a.sort_by_key(|s| format!("{s:?}"));
    assert_eq!(
        seen_a,
        vec![
            Seen::Data("/test/pos/1.0.0", b"/test/pos/1.0.0".to_vec()),
            Seen::Data("/test/tick/1.0.0", b"/test/tick/1.0.0".to_vec()),
            Seen::Ready("/test/pos/1.0.0"),
            Seen::Ready("/test/tick/1.0.0"),
            Seen::SendResult("/test/pos/1.0.0", Ok(())),
            Seen::SendResult("/test/tick/1.0.0", Ok(())),
        ]
    );
}

/// Opens one flow and hands it to the test through a channel.
struct FlowOpener(mpsc::Sender<PacketFlow>);

impl Protocol for FlowOpener {
    fn handle_new_connection(&mut self, ctx: &mut Context<'_>, conn: ConnId, _: PeerId) {
        if let Err(e) = ctx.open_packet_flow(conn, "/test/pos/1.0.0") {
            panic!("open flow: {e}");
        }
    }
    fn handle_packet_flow_ready(&mut self, _: &mut Context<'_>, flow: PacketFlow, _: &str) {
        let _ = self.0.send(flow);
    }
}

fn with_ctx<R: Send + 'static>(
    n: &Node,
    f: impl FnOnce(&mut Context<'_>) -> R + Send + 'static,
) -> R {
    n.handle
        .call(TIMEOUT, move |s| {
            s.with_context(swarm::PluginId::external(), f)
        })
        .unwrap()
}

#[test]
fn oversized_packets_are_refused_with_the_current_maximum() {
    let (tx, rx) = mpsc::channel();
    let (b_tx, _b_rx) = mpsc::channel();
    let a = node(config(52), vec![Box::new(FlowOpener(tx))]);
    let b = node(config(53), flow_plugins(false, &b_tx));
    a.handle.dial(&b.p2p_addr(), false, TIMEOUT).unwrap();
    let flow = rx.recv_timeout(TIMEOUT).expect("flow ready");
    let (max, too_big, fits) = with_ctx(&a, move |ctx| {
        let max = ctx.max_packet_size(flow).expect("max");
        (
            max,
            ctx.send_packet(flow, &vec![0u8; max + 1]),
            ctx.send_packet(flow, &vec![0u8; max]),
        )
    });
    assert!(
        max > 0 && max <= 1200,
        "max {max} follows the config (1200)"
    );
    assert_eq!(too_big, Err(PacketError::TooLarge { size: max + 1, max }));
    assert_eq!(fits, Ok(()));
}

#[test]
fn a_flow_closes_when_its_control_stream_closes() {
    let (tx, rx) = mpsc::channel();
    let (b_tx, b_rx) = mpsc::channel();
    let a = node(config(54), vec![Box::new(FlowOpener(tx))]);
    let b = node(config(55), flow_plugins(false, &b_tx));
    a.handle.dial(&b.p2p_addr(), false, TIMEOUT).unwrap();
    let flow = rx.recv_timeout(TIMEOUT).expect("flow ready");
    assert_eq!(
        b_rx.recv_timeout(TIMEOUT).unwrap(),
        Seen::Inbound("/test/pos/1.0.0")
    );
    with_ctx(&a, move |ctx| ctx.close_packet_flow(flow)).expect("close");
    // The remote plugin hears the flow end; we can no longer send on it.
    let closed = b_rx.recv_timeout(TIMEOUT).expect("closed event");
    assert_eq!(
        closed,
        Seen::Closed("/test/pos/1.0.0", PacketError::FlowClosed)
    );
    let after = with_ctx(&a, move |ctx| ctx.send_packet(flow, b"late"));
    assert_eq!(after, Err(PacketError::FlowClosed));
}

#[test]
fn datagrams_for_unknown_flows_are_dropped_and_counted() {
    let (tx, rx) = mpsc::channel();
    let (b_tx, b_rx) = mpsc::channel();
    let a = node(config(56), vec![Box::new(FlowOpener(tx))]);
    let b = node(config(57), flow_plugins(false, &b_tx));
    let conn = a.handle.dial(&b.p2p_addr(), false, TIMEOUT).unwrap();
    let flow = rx.recv_timeout(TIMEOUT).expect("flow ready");
    assert_eq!(
        b_rx.recv_timeout(TIMEOUT).unwrap(),
        Seen::Inbound("/test/pos/1.0.0")
    );
    // Stream id 1000 (varint 0x43e8) was never opened; an empty datagram
    // has no id at all. Then a real packet, which must still arrive.
    with_ctx(&a, move |ctx| {
        ctx.send_raw_datagram(conn, Bytes::from_static(&[0x43, 0xe8, 1, 2, 3]))
            .unwrap();
        ctx.send_raw_datagram(conn, Bytes::new()).unwrap();
        ctx.send_packet(flow, b"real").unwrap();
    });
    assert_eq!(
        b_rx.recv_timeout(TIMEOUT).unwrap(),
        Seen::Data("/test/pos/1.0.0", b"real".to_vec())
    );
    let mut dropped = 0;
    for _ in 0..50 {
        dropped = b.handle.call(TIMEOUT, |s| s.dropped_datagrams()).unwrap();
        if dropped >= 2 {
            break;
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    assert_eq!(dropped, 2, "both stray datagrams were counted");
    assert!(b_rx.try_recv().is_err(), "nothing stray reached a plugin");
}

#[test]
fn rust_libp2p_peer_without_datagrams_gets_a_plain_error_and_streams_still_work() {
    let rust = RustPeer::spawn(PeerConfig {
        echo_protocols: vec![ECHO.into()],
        ..PeerConfig::default()
    });
    let ours = node(config(58), vec![]);
    let conn = ours
        .handle
        .dial(&rust.dial_addr().unwrap(), false, TIMEOUT)
        .unwrap();
    let r = with_ctx(&ours, move |ctx| {
        ctx.open_packet_flow(conn, "/test/pos/1.0.0").map(|_| ())
    });
    assert_eq!(r, Err(PacketError::PeerUnsupported));
    assert_eq!(
        PacketError::PeerUnsupported.to_string(),
        "peer does not support datagrams"
    );
    assert_eq!(
        echo_roundtrip(&ours.handle, rust.peer_id(), b"streams still work"),
        b"streams still work"
    );
}

/// Hands its flow to the test as a thread handle once ready.
struct Detacher(mpsc::Sender<swarm::DetachedPacketFlow>);

impl Protocol for Detacher {
    fn handle_new_connection(&mut self, ctx: &mut Context<'_>, conn: ConnId, _: PeerId) {
        ctx.open_packet_flow(conn, "/test/pos/1.0.0")
            .expect("open flow");
    }
    fn handle_packet_flow_ready(&mut self, ctx: &mut Context<'_>, flow: PacketFlow, _: &str) {
        let _ = self.0.send(ctx.detach_packet_flow(flow).expect("detach"));
    }
}

#[test]
fn a_flow_handed_to_a_thread_sends_and_receives() {
    let (tx, rx) = mpsc::channel();
    let (b_tx, _b_rx) = mpsc::channel();
    let a = node(config(59), vec![Box::new(Detacher(tx))]);
    let b = node(config(60), flow_plugins(false, &b_tx));
    a.handle.dial(&b.p2p_addr(), false, TIMEOUT).unwrap();
    let handle = rx.recv_timeout(TIMEOUT).expect("handle");
    let worker = std::thread::spawn(move || {
        let mut echoed = Vec::new();
        for i in 0..20u8 {
            handle.send(&[i; 100]).expect("send");
            // Loopback rarely drops; resend until this one comes back.
            for _ in 0..50 {
                match handle
                    .recv_timeout(Duration::from_millis(100))
                    .expect("open")
                {
                    Some(p) if p[0] == i => {
                        echoed.push(i);
                        break;
                    }
                    Some(_) => {}
                    None => handle.send(&[i; 100]).expect("resend"),
                }
            }
        }
        let too_big = handle.send(&vec![0; 5000]);
        (echoed, too_big)
    });
    let (echoed, too_big) = worker.join().unwrap();
    assert_eq!(echoed, (0..20).collect::<Vec<u8>>());
    assert!(matches!(
        too_big,
        Err(PacketError::TooLarge { size: 5000, .. })
    ));
}

/// Opens a flow on each new connection and reports what stream calls on
/// its control stream return (they must be refused).
struct FlowStreamCaller(mpsc::Sender<Result<usize, swarm::StreamError>>);

impl Protocol for FlowStreamCaller {
    fn name(&self) -> &'static str {
        "caller"
    }
    fn handle_new_connection(&mut self, ctx: &mut Context<'_>, conn: ConnId, _: PeerId) {
        let flow = ctx
            .open_packet_flow(conn, "/test/pos/1.0.0")
            .expect("open flow");
        let _ = self.0.send(ctx.write(flow.0, b"not for the plugin"));
        let _ = self.0.send(ctx.finish(flow.0).map(|()| 0));
        let _ = self.0.send(ctx.detach_stream(flow.0).map(|_| 0));
    }
}

#[test]
fn stream_calls_on_a_flows_control_stream_are_refused() {
    let (tx, rx) = mpsc::channel();
    let a = node(config(54), vec![Box::new(FlowStreamCaller(tx))]);
    let b = node(config(55), flow_plugins(false, &mpsc::channel().0));
    a.handle.dial(&b.p2p_addr(), false, TIMEOUT).unwrap();
    for call in ["write", "finish", "detach_stream"] {
        match rx.recv_timeout(TIMEOUT).expect("call result") {
            Err(swarm::StreamError::PacketFlow(_)) => {}
            other => panic!("{call} on a control stream: {other:?}"),
        }
    }
}

/// Reports inbound flows, and any stream data (which must never come).
struct FlowListener(mpsc::Sender<String>);

impl Protocol for FlowListener {
    fn name(&self) -> &'static str {
        "listener"
    }
    fn packet_protocol_ids(&self) -> Vec<String> {
        vec!["/test/pos/1.0.0".into()]
    }
    fn accept_inbound_packet_flow(&mut self, _: &mut Context<'_>, _: PacketFlow, protocol: &str) {
        let _ = self.0.send(format!("flow {protocol}"));
    }
    fn handle_stream_data(&mut self, _: &mut Context<'_>, _: swarm::StreamRef, data: Bytes) {
        let _ = self.0.send(format!("stream data {data:?}"));
    }
}

#[test]
fn bytes_sent_with_a_flows_negotiation_never_reach_the_plugin_as_stream_data() {
    let (tx, rx) = mpsc::channel();
    let ours = node(config(57), vec![Box::new(FlowListener(tx))]);
    // rust-libp2p knows nothing of packet flows, but its optimistic
    // (V1Lazy) first flight puts header, proposal, data and FIN in one
    // chunk: what a peer may put on a control stream with the negotiation.
    let rust = RustPeer::spawn(PeerConfig::default());
    rust.connect(ours.p2p_addr(), TIMEOUT).expect("connect");
    let _ = rust.request(
        ours.peer,
        "/test/pos/1.0.0",
        b"not for the plugin".to_vec(),
        Duration::from_secs(2),
    );
    assert_eq!(
        rx.recv_timeout(TIMEOUT).expect("inbound flow"),
        "flow /test/pos/1.0.0"
    );
    // The bytes arrived with the proposal; they are dropped, as any later
    // data on a control stream is.
    match rx.recv_timeout(Duration::from_millis(300)) {
        Err(mpsc::RecvTimeoutError::Timeout) => {}
        other => panic!("the listener got more than the flow: {other:?}"),
    }
}
