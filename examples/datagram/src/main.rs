//! `datagram`: position updates over authenticated QUIC datagrams.
//!
//! ```text
//! datagram listen [MULTIADDR]              # echo every packet of /demo/position/1.0.0
//! datagram send MULTIADDR COUNT SIZE       # send COUNT packets of SIZE bytes, report echoes and RTTs
//! ```
//!
//! Packets are unreliable (a lost one is not resent) but every one is
//! authenticated to the remote PeerId by the connection's TLS session. The
//! sender is self-clocked: it keeps a window of packets in flight and sends
//! one more for each echo, so it measures the rate the path sustains.

use std::collections::HashMap;
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::{Parser, Subcommand};
use swarm::{
    Bytes, ConnId, Context, DialError, Multiaddr, PacketError, PacketFlow, Protocol, Runtime,
    SwarmConfig,
};

const PROTOCOL: &str = "/demo/position/1.0.0";
/// Packets in flight before the sender waits for echoes.
const WINDOW: u32 = 256;
/// A packet not echoed within this long counts as lost.
const LOSS_AFTER: Duration = Duration::from_secs(1);
const TICK: u64 = 1;
/// How long a first packet may wait for MTU discovery to allow its size.
const MTU_GRACE: Duration = Duration::from_secs(2);

#[derive(Parser)]
#[command(about = "Game-tick style packets over authenticated QUIC datagrams")]
struct Cli {
    #[command(subcommand)]
    command: Command,
}

#[derive(Subcommand)]
enum Command {
    /// Listen and echo every packet on /demo/position/1.0.0 flows.
    Listen {
        /// Where to listen.
        #[arg(default_value = "/ip4/127.0.0.1/udp/0/quic-v1")]
        addr: Multiaddr,
    },
    /// Send COUNT packets of SIZE bytes and report echoes and RTT percentiles.
    Send {
        /// The listener, ending in /p2p/<peer id>.
        addr: Multiaddr,
        /// Packets to send.
        count: u32,
        /// Payload bytes per packet (at least 4: the sequence number).
        size: usize,
        /// Give up after this many seconds.
        #[arg(long, default_value_t = 30)]
        timeout: u64,
    },
}

/// Listener side: echo every packet back on the flow it came in on.
struct Echo;

impl Protocol for Echo {
    fn packet_protocol_ids(&self) -> Vec<String> {
        vec![PROTOCOL.into()]
    }
    fn handle_packet_data(&mut self, ctx: &mut Context<'_>, flow: PacketFlow, data: Bytes) {
        // A full send buffer drops the packet, as the network could have.
        let _ = ctx.send_packet(flow, &data);
    }
}

/// What the sender reports when it is done.
struct Report {
    sent: u32,
    echoed: u32,
    rtts: hdrhistogram::Histogram<u64>,
    elapsed: Duration,
}

/// Sender side: open a flow once connected, keep `WINDOW` packets in flight.
struct Sender {
    addr: Multiaddr,
    count: u32,
    size: usize,
    flow: Option<PacketFlow>,
    next_seq: u32,
    in_flight: HashMap<u32, Instant>,
    report: Report,
    started: Option<Instant>,
    done: mpsc::Sender<anyhow::Result<Report>>,
}

impl Sender {
    fn send_more(&mut self, ctx: &mut Context<'_>) {
        let Some(flow) = self.flow else { return };
        let now = ctx.now();
        // Expire packets that will not come back, so the window reopens.
        self.in_flight
            .retain(|_, sent| now.duration_since(*sent) < LOSS_AFTER);
        let mut payload = vec![0u8; self.size];
        while self.next_seq < self.count && (self.in_flight.len() as u32) < WINDOW {
            payload[..4].copy_from_slice(&self.next_seq.to_be_bytes());
            match ctx.send_packet(flow, &payload) {
                Ok(()) => {
                    if self.report.sent == 0 {
                        // Time the run from the first packet, not the MTU wait.
                        self.started = Some(Instant::now());
                    }
                    self.in_flight.insert(self.next_seq, now);
                    self.next_seq += 1;
                    self.report.sent += 1;
                }
                // A new path starts at QUIC's safe 1200-byte MTU; MTU
                // discovery raises the maximum within a few round trips, so
                // wait a little before calling a size too large.
                Err(PacketError::TooLarge { .. })
                    if self.report.sent == 0
                        && self.started.is_some_and(|t| t.elapsed() < MTU_GRACE) =>
                {
                    return;
                }
                Err(e) => return self.finish(Err(e.into())),
            }
        }
        if self.next_seq == self.count && self.in_flight.is_empty() {
            self.finish(Ok(()));
        }
    }

    fn finish(&mut self, result: anyhow::Result<()>) {
        let report = Report {
            sent: self.report.sent,
            echoed: self.report.echoed,
            rtts: self.report.rtts.clone(),
            elapsed: self.started.map_or(Duration::ZERO, |t| t.elapsed()),
        };
        let _ = self.done.send(result.map(|()| report));
        self.flow = None;
    }
}

impl Protocol for Sender {
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        if let Err(e) = ctx.packet_handler_for(&self.addr.clone(), false, PROTOCOL) {
            self.finish(Err(e.into()));
        }
        ctx.set_timer(Duration::from_millis(10), TICK);
    }
    fn handle_dial_failure(&mut self, _: &mut Context<'_>, _: ConnId, error: &DialError) {
        self.finish(Err(anyhow::anyhow!("dial failed: {error}")));
    }
    fn handle_packet_flow_ready(&mut self, ctx: &mut Context<'_>, flow: PacketFlow, _: &str) {
        self.flow = Some(flow);
        self.started = Some(Instant::now());
        self.send_more(ctx);
    }
    fn handle_packet_data(&mut self, ctx: &mut Context<'_>, _: PacketFlow, data: Bytes) {
        let Some(seq) = data
            .get(..4)
            .map(|b| u32::from_be_bytes([b[0], b[1], b[2], b[3]]))
        else {
            return;
        };
        if let Some(sent) = self.in_flight.remove(&seq) {
            self.report.echoed += 1;
            let _ = self.report.rtts.record(sent.elapsed().as_micros() as u64);
        }
        self.send_more(ctx);
    }
    fn handle_packet_flow_closed(
        &mut self,
        _: &mut Context<'_>,
        _: ConnId,
        _: Option<PacketFlow>,
        reason: &PacketError,
    ) {
        self.finish(Err(anyhow::anyhow!("packet flow failed: {reason}")));
    }
    fn handle_timer(&mut self, ctx: &mut Context<'_>, _: u64) {
        // Lost packets never trigger an echo; the tick expires them.
        self.send_more(ctx);
        if self.flow.is_some() || self.started.is_none() {
            ctx.set_timer(Duration::from_millis(10), TICK);
        }
    }
}

fn runtime() -> anyhow::Result<Runtime> {
    Ok(Runtime::new(SwarmConfig::new(
        swarm::identity::generate_keypair(),
    ))?)
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    match Cli::parse().command {
        Command::Listen { addr } => {
            let mut rt = runtime()?;
            rt.add_protocol(Box::new(Echo));
            let addr = rt.listen(&addr)?;
            println!("Listening on {addr}/p2p/{}", rt.swarm().local_peer_id());
            rt.run()?;
            Ok(())
        }
        Command::Send {
            addr,
            count,
            size,
            timeout,
        } => {
            if size < 4 {
                bail!("SIZE must be at least 4 bytes (the sequence number)");
            }
            if !addr
                .iter()
                .any(|p| matches!(p, swarm::multiaddr::Protocol::P2p(_)))
            {
                bail!("MULTIADDR must end in /p2p/<peer id>");
            }
            let (tx, rx) = mpsc::channel();
            let mut rt = runtime()?;
            rt.add_protocol(Box::new(Sender {
                addr,
                count,
                size,
                flow: None,
                next_seq: 0,
                in_flight: HashMap::new(),
                report: Report {
                    sent: 0,
                    echoed: 0,
                    rtts: hdrhistogram::Histogram::new(3)?,
                    elapsed: Duration::ZERO,
                },
                started: None,
                done: tx,
            }));
            let (handle, thread) = rt.spawn()?;
            let report = rx
                .recv_timeout(Duration::from_secs(timeout))
                .context("timed out")??;
            let _ = handle.shutdown(0);
            let _ = thread.join();
            let lost = report.sent - report.echoed;
            let secs = report.elapsed.as_secs_f64().max(1e-9);
            println!(
                "sent {} echoed {} lost {} ({:.2}%) in {:.3} s: {:.0} round trips/s",
                report.sent,
                report.echoed,
                lost,
                100.0 * f64::from(lost) / f64::from(report.sent.max(1)),
                secs,
                f64::from(report.echoed) / secs
            );
            let q = |p: f64| report.rtts.value_at_quantile(p);
            println!(
                "rtt us: p50 {} p90 {} p99 {} max {}",
                q(0.5),
                q(0.9),
                q(0.99),
                report.rtts.max()
            );
            Ok(())
        }
    }
}
