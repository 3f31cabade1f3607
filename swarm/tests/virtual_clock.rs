//! Two swarm cores wired together with no sockets and a virtual clock
//! (`swarm::virtual_net`): the sans-I/O contract at work, with loss and
//! reordering injected by the link.

use std::sync::{Arc, Mutex};
use std::time::Duration;

use swarm::virtual_net::{LinkConfig, Outcome, VirtualNet};
use swarm::{Bytes, ConnId, Context, Keypair, PeerId, Protocol, StreamRef, SwarmConfig};

const PROTO: &str = "/test/bulk/1.0.0";

/// Sends `total` bytes on a new stream as soon as a connection is up.
struct Sender {
    total: usize,
    sent: usize,
    stream: Option<StreamRef>,
}

impl Sender {
    fn pump(&mut self, ctx: &mut Context<'_>) {
        let Some(s) = self.stream else { return };
        while self.sent < self.total {
            let chunk = (self.total - self.sent).min(16 * 1024);
            let data: Vec<u8> = (self.sent..self.sent + chunk)
                .map(|i| (i % 251) as u8)
                .collect();
            let n = ctx.write(s, &data).expect("write");
            self.sent += n;
            if n < chunk {
                return; // wait for handle_stream_writable
            }
        }
        ctx.finish(s).expect("finish");
        self.stream = None;
    }
}

impl Protocol for Sender {
    fn handle_new_connection(&mut self, ctx: &mut Context<'_>, conn: ConnId, _: PeerId) {
        self.stream = Some(ctx.open_stream(conn, PROTO).expect("open"));
        self.pump(ctx);
    }
    fn handle_stream_writable(&mut self, ctx: &mut Context<'_>, _: StreamRef) {
        self.pump(ctx);
    }
}

/// Checks every received byte against the pattern and records completion.
struct Receiver {
    result: Arc<Mutex<(usize, bool, bool)>>, // (bytes, all in order, finished)
}

impl Protocol for Receiver {
    fn protocol_ids(&self) -> Vec<String> {
        vec![PROTO.into()]
    }
    fn handle_stream_data(&mut self, _: &mut Context<'_>, _: StreamRef, data: Bytes) {
        let mut r = self.result.lock().unwrap();
        for (k, b) in data.iter().enumerate() {
            if *b != ((r.0 + k) % 251) as u8 {
                r.1 = false;
            }
        }
        r.0 += data.len();
    }
    fn handle_stream_finished(&mut self, ctx: &mut Context<'_>, s: StreamRef) {
        self.result.lock().unwrap().2 = true;
        let _ = ctx.finish(s);
    }
}

fn transfer(total: usize, loss: f64, seed: u64) -> (usize, bool, bool, Duration) {
    let result = Arc::new(Mutex::new((0usize, true, false)));
    let config = |seed: u8| SwarmConfig::new(Keypair::ed25519_from_bytes([seed; 32]).unwrap());
    let link = LinkConfig {
        loss,
        latency: Duration::from_millis(10),
        jitter: Duration::from_millis(5),
        ..LinkConfig::clean()
    };
    let mut net = VirtualNet::new(seed, link);
    let a = net.add_swarm(config(1), [127, 0, 0, 1]);
    let b = net.add_swarm(config(2), [127, 0, 0, 2]);
    net.swarm(a).add_protocol(Box::new(Sender {
        total,
        sent: 0,
        stream: None,
    }));
    net.swarm(b).add_protocol(Box::new(Receiver {
        result: result.clone(),
    }));
    let target = net.dial_addr(b);
    net.swarm(a).dial(&target, false).unwrap();
    let r2 = result.clone();
    let outcome = net.run_until(Duration::from_secs(600), move |_| r2.lock().unwrap().2);
    assert_ne!(outcome, Outcome::VirtualTimeout, "virtual deadline passed");
    let r = *result.lock().unwrap();
    (r.0, r.1, r.2, net.elapsed())
}

#[test]
fn virtual_link_transfers_every_byte_in_order() {
    let (bytes, in_order, finished, _) = transfer(2 << 20, 0.0, 1);
    assert!(finished);
    assert!(in_order);
    assert_eq!(bytes, 2 << 20);
}

#[test]
fn virtual_link_with_loss_and_reordering_still_delivers_exactly() {
    let (bytes, in_order, finished, took) = transfer(1 << 20, 0.05, 7);
    assert!(finished, "transfer did not finish (virtual time {took:?})");
    assert!(in_order);
    assert_eq!(bytes, 1 << 20);
}
