//! Raw swarm throughput on loopback: one node streams zeros to another
//! through plugins (no perf protocol framing), for profiling the data path.
//!
//! Run: `cargo run --release -p swarm --example loopback_throughput -- [MiB]`

use std::sync::mpsc;
use std::time::Instant;

use swarm::{Bytes, ConnId, Context, PeerId, Protocol, Runtime, StreamRef, SwarmConfig};

const PROTO: &str = "/bench/sink/1.0.0";
static ZEROS: [u8; 64 * 1024] = [0; 64 * 1024];

/// Opens one stream per connection and writes `total` zero bytes.
struct Source {
    total: u64,
    sent: u64,
    chunk: Bytes,
}

impl Source {
    fn pump(&mut self, ctx: &mut Context<'_>, s: StreamRef) {
        while self.sent < self.total {
            if self.chunk.is_empty() {
                let n = (self.total - self.sent).min(ZEROS.len() as u64) as usize;
                self.chunk = Bytes::from_static(&ZEROS[..n]);
            }
            let before = self.chunk.len();
            match ctx.write_bytes(s, &mut self.chunk) {
                Ok(n) => self.sent += n as u64,
                Err(e) => panic!("write: {e}"),
            }
            if self.chunk.len() == before || !self.chunk.is_empty() {
                return;
            }
        }
        let _ = ctx.finish(s);
    }
}

impl Protocol for Source {
    fn handle_new_connection(&mut self, ctx: &mut Context<'_>, conn: ConnId, _: PeerId) {
        let s = ctx.open_stream(conn, PROTO).expect("open");
        self.pump(ctx, s);
    }
    fn handle_stream_writable(&mut self, ctx: &mut Context<'_>, s: StreamRef) {
        self.pump(ctx, s);
    }
}

/// Counts bytes and reports when the stream finishes.
struct Sink {
    received: u64,
    done: mpsc::Sender<u64>,
}

impl Protocol for Sink {
    fn protocol_ids(&self) -> Vec<String> {
        vec![PROTO.into()]
    }
    fn handle_stream_data(&mut self, _: &mut Context<'_>, _: StreamRef, data: Bytes) {
        self.received += data.len() as u64;
    }
    fn handle_stream_finished(&mut self, ctx: &mut Context<'_>, s: StreamRef) {
        let _ = ctx.finish(s);
        let _ = self.done.send(self.received);
    }
}

fn main() {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let mib: u64 = std::env::args()
        .nth(1)
        .and_then(|a| a.parse().ok())
        .unwrap_or(1024);
    let total = mib << 20;
    let (tx, rx) = mpsc::channel();
    let mut sink = Runtime::new(SwarmConfig::new(swarm::identity::generate_keypair())).unwrap();
    sink.add_protocol(Box::new(Sink {
        received: 0,
        done: tx,
    }));
    let addr = sink
        .listen(&"/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap())
        .unwrap();
    let sink_peer = sink.swarm().local_peer_id();
    let (sink_handle, sink_thread) = sink.spawn().unwrap();

    let mut source = Runtime::new(SwarmConfig::new(swarm::identity::generate_keypair())).unwrap();
    source.add_protocol(Box::new(Source {
        total,
        sent: 0,
        chunk: Bytes::new(),
    }));
    let (source_handle, source_thread) = source.spawn().unwrap();
    let start = Instant::now();
    source_handle
        .dial(
            &addr.with(swarm::multiaddr::Protocol::P2p(sink_peer)),
            false,
            std::time::Duration::from_secs(10),
        )
        .unwrap();
    let got = rx.recv().unwrap();
    let secs = start.elapsed().as_secs_f64();
    println!(
        "{} MiB in {secs:.3} s = {:.1} MiB/s",
        got >> 20,
        got as f64 / (1 << 20) as f64 / secs
    );
    source_handle.shutdown(0).unwrap();
    sink_handle.shutdown(0).unwrap();
    source_thread.join().unwrap().unwrap();
    sink_thread.join().unwrap().unwrap();
}
