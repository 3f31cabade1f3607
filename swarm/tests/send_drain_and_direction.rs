//! Two plugin-API facts: `Context::connection_is_outbound` says who dialed
//! a connection, and a `Context::send` that left bytes queued is followed by
//! `handle_stream_writable` once the queue has drained (a send that fit is
//! not).

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use bytes::Bytes;
use swarm::virtual_net::{LinkConfig, Outcome, VirtualNet};
use swarm::{ConnId, Context, Keypair, PeerId, Protocol, StreamRef, SwarmConfig};

const PROTOCOL: &str = "/test/drain/1.0.0";

fn config(i: u8) -> SwarmConfig {
    let mut config = SwarmConfig::new(Keypair::ed25519_from_bytes([i; 32]).unwrap());
    config.seed = Some(u64::from(i));
    config
}

#[derive(Default)]
struct Seen {
    /// `connection_is_outbound` in `handle_new_connection`.
    outbound: Option<bool>,
    /// The connection, to ask again after it closed.
    conn: Option<ConnId>,
    /// Bytes still queued right after each `send`.
    queued_after_send: Vec<usize>,
    /// `ctx.queued` at each writable callback.
    queued_at_writable: Vec<usize>,
    /// Bytes received.
    received: usize,
}

/// Sends `sizes` one after another on one stream, each after the previous
/// one drained; records what the API says.
struct Sender {
    seen: Arc<Mutex<Seen>>,
    sizes: Vec<usize>,
}

impl Sender {
    fn send_next(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        if self.sizes.is_empty() {
            return;
        }
        let size = self.sizes.remove(0);
        let queued = ctx
            .send(stream, Bytes::from(vec![7u8; size]))
            .expect("send");
        self.seen.lock().unwrap().queued_after_send.push(queued);
        if queued == 0 {
            // It fit: no callback will come, go on now.
            self.send_next(ctx, stream);
        }
    }
}

impl Protocol for Sender {
    fn name(&self) -> &'static str {
        "sender"
    }

    fn handle_new_connection(&mut self, ctx: &mut Context<'_>, conn: ConnId, _: PeerId) {
        let mut seen = self.seen.lock().unwrap();
        seen.outbound = ctx.connection_is_outbound(conn);
        seen.conn = Some(conn);
        drop(seen);
        ctx.open_stream(conn, PROTOCOL).expect("open");
    }

    fn handle_stream_negotiated(&mut self, ctx: &mut Context<'_>, s: StreamRef, _: &str) {
        self.send_next(ctx, s);
    }

    fn handle_stream_writable(&mut self, ctx: &mut Context<'_>, s: StreamRef) {
        let queued = ctx.queued(s);
        self.seen.lock().unwrap().queued_at_writable.push(queued);
        self.send_next(ctx, s);
    }
}

/// Accepts the stream and counts what arrives.
struct Receiver {
    seen: Arc<Mutex<Seen>>,
}

impl Protocol for Receiver {
    fn name(&self) -> &'static str {
        "receiver"
    }

    fn protocol_ids(&self) -> Vec<String> {
        vec![PROTOCOL.into()]
    }

    fn handle_new_connection(&mut self, ctx: &mut Context<'_>, conn: ConnId, _: PeerId) {
        let mut seen = self.seen.lock().unwrap();
        seen.outbound = ctx.connection_is_outbound(conn);
        seen.conn = Some(conn);
    }

    fn handle_stream_data(&mut self, _: &mut Context<'_>, _: StreamRef, data: Bytes) {
        self.seen.lock().unwrap().received += data.len();
    }
}

#[test]
fn connection_direction_and_writable_after_a_queued_send_drains() {
    let mut net = VirtualNet::new(4, LinkConfig::clean());
    let sender_seen = Arc::new(Mutex::new(Seen::default()));
    let receiver_seen = Arc::new(Mutex::new(Seen::default()));
    // 100 bytes on a fresh stream fit; 4 MiB outgrows the send window and
    // queues (and what follows it may queue behind a full window too).
    let sizes = vec![100, 4 << 20, 100, 4 << 20];
    let total: usize = sizes.iter().sum();
    let mut sender_plugin = None;
    // A small send window, so that a large send really waits in the queue.
    let mut sender_config = config(1);
    sender_config.send_window = 256 * 1024;
    let a = net.add_swarm_with(sender_config, Ipv4Addr::new(10, 0, 0, 1), |s| {
        sender_plugin = Some(s.add_protocol(Box::new(Sender {
            seen: sender_seen.clone(),
            sizes,
        })));
    });
    let b = net.add_swarm_with(config(2), Ipv4Addr::new(10, 0, 0, 2), |s| {
        s.add_protocol(Box::new(Receiver {
            seen: receiver_seen.clone(),
        }));
    });
    let to_b = net.dial_addr(b);
    net.swarm(a).dial(&to_b, false).expect("dial");
    let outcome = net.run_until(Duration::from_secs(60), |_| {
        receiver_seen.lock().unwrap().received >= total
    });
    assert_eq!(outcome, Outcome::Done);
    net.run_for(Duration::from_millis(200));

    let sender = sender_seen.lock().unwrap();
    let receiver = receiver_seen.lock().unwrap();
    assert_eq!(sender.outbound, Some(true), "the dialer dialed");
    assert_eq!(receiver.outbound, Some(false), "the listener did not");
    assert_eq!(receiver.received, total);
    assert_eq!(sender.queued_after_send.len(), 4);
    assert_eq!(sender.queued_after_send[0], 0, "the first send fit");
    assert!(sender.queued_after_send[1] > 0, "4 MiB did not queue");
    assert!(sender.queued_after_send[3] > 0, "4 MiB did not queue");
    // One callback per send that left bytes queued (none for one that
    // fit), each with the queue empty.
    let queued_sends = sender.queued_after_send.iter().filter(|q| **q > 0).count();
    assert_eq!(
        sender.queued_at_writable,
        vec![0; queued_sends],
        "after sends leaving {:?} queued",
        sender.queued_after_send
    );
    let conn = sender.conn.expect("connected");
    drop(sender);
    drop(receiver);
    // A stale id says nothing.
    net.swarm(a).with_context(sender_plugin.unwrap(), |ctx| {
        ctx.close_connection(conn, 0).expect("close");
    });
    net.run_for(Duration::from_millis(200));
    let after = net.swarm(a).with_context(sender_plugin.unwrap(), |ctx| {
        ctx.connection_is_outbound(conn)
    });
    assert_eq!(after, None);
}
