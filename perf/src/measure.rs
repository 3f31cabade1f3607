//! The client's measuring modes (`MODE=latency|connections|requests`):
//! latency of a fresh connection plus a 1-byte round trip, handshakes per
//! second, and 1-byte perf requests per second on one connection.
//!
//! The main thread connects once through the [`SwarmHandle`] (checking the
//! responder's PeerId, as a transfer does), then hands the loop to the
//! [`Measure`] plugin, which runs every iteration on the swarm thread:
//! each step starts from the callback that ended the previous one, with no
//! thread hand-off in between. Each mode first runs one untimed iteration
//! (a warm-up), then `ITERATIONS` timed ones, one after the other.
//!
//! A "1-byte perf run" is a `/perf/1.0.0` stream asking for 1 byte with
//! nothing uploaded: after multistream-select (a full round trip, as
//! rust-libp2p's perf does) the 8-byte header and our end of stream go out,
//! one byte and the server's end of stream come back.

use std::sync::Arc;
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::mpsc::{self, RecvTimeoutError, Sender};
use std::time::{Duration, Instant};

use anyhow::Context as _;
use serde_json::json;
use swarm::address::quic_multiaddr;
use swarm::multiaddr::Protocol as AddrPart;
use swarm::{
    Bytes, ConnId, Context, DialError, Message, Multiaddr, PeerId, PluginId, Protocol, StreamError,
    StreamRef, SwarmHandle,
};

use crate::client::{close, connect};
use crate::env::{ClientMode, ClientSettings};

/// Longest one iteration may take before the mode fails.
const ITERATION_TIMEOUT: Duration = Duration::from_secs(30);

/// Run the measuring mode of `settings` through `handle`, whose swarm has
/// the [`Measure`] plugin with id `measure`, and print its result.
pub fn run(
    handle: &SwarmHandle,
    measure: PluginId,
    settings: &ClientSettings,
) -> anyhow::Result<()> {
    let conn = connect(handle, settings)?;
    let kept = if settings.mode == ClientMode::Requests {
        Some(conn)
    } else {
        close(handle, conn)?;
        None
    };
    let (reply, outcome) = mpsc::channel();
    let progress = Arc::new(AtomicU32::new(0));
    let job = Job {
        mode: settings.mode,
        target: target(settings),
        iterations: settings.iterations,
        conn: kept,
        progress: progress.clone(),
        reply,
    };
    handle
        .send_message(measure, job)
        .context("the swarm has stopped")?;
    // A watchdog: fail when an iteration takes longer than ITERATION_TIMEOUT.
    let mut seen = (0, Instant::now());
    let result = loop {
        match outcome.recv_timeout(Duration::from_secs(1)) {
            Ok(result) => break result,
            Err(RecvTimeoutError::Disconnected) => anyhow::bail!("the swarm has stopped"),
            Err(RecvTimeoutError::Timeout) => {
                let done = progress.load(Ordering::Relaxed);
                if done != seen.0 {
                    seen = (done, Instant::now());
                } else if seen.1.elapsed() > ITERATION_TIMEOUT {
                    anyhow::bail!("iteration {done} took more than {ITERATION_TIMEOUT:?}");
                }
            }
        }
    };
    let Finished {
        elapsed,
        mut samples,
    } = result.map_err(|e| anyhow::anyhow!(e))?;
    if let Some(conn) = kept {
        close(handle, conn)?;
    }
    match settings.mode {
        ClientMode::Latency => report_latency(settings, &mut samples),
        ClientMode::Connections => report_rate(settings, "Handshakes", elapsed),
        ClientMode::Requests => report_rate(settings, "1-byte perf requests", elapsed),
        ClientMode::Transfer => unreachable!("transfers are not measured here"),
    }
}

/// The responder's address, with its PeerId when we know it.
fn target(settings: &ClientSettings) -> Multiaddr {
    let mut addr = quic_multiaddr(settings.server);
    if let Some(peer) = settings.responder {
        addr.push(AddrPart::P2p(peer));
    }
    addr
}

/// What the plugin is asked to do: a message to it, which it takes over.
struct Job {
    mode: ClientMode,
    target: Multiaddr,
    iterations: u32,
    /// The connection for the requests mode.
    conn: Option<ConnId>,
    /// Iterations done, for the main thread's watchdog.
    progress: Arc<AtomicU32>,
    reply: Sender<Result<Finished, String>>,
}

/// The result of a measuring run.
struct Finished {
    /// From the first timed iteration's start to the last one's end.
    elapsed: Duration,
    /// Per timed iteration (latency mode only).
    samples: Vec<Duration>,
}

/// Runs a measuring mode on the swarm thread; idle until a [`Job`] message.
#[derive(Default)]
pub struct Measure {
    job: Option<Job>,
    /// Iterations finished, the warm-up included.
    done: u32,
    /// The connection being dialed or used.
    conn: Option<ConnId>,
    /// The perf stream in flight, and the bytes it brought.
    stream: Option<(StreamRef, u64)>,
    /// When the current iteration, and the first timed one, started.
    iteration_start: Option<Instant>,
    timed_start: Option<Instant>,
    samples: Vec<Duration>,
}

impl Measure {
    /// The plugin, idle.
    pub fn new() -> Self {
        Self::default()
    }

    /// Start the next iteration, or report once all are done.
    fn next(&mut self, ctx: &mut Context<'_>) {
        let Some(job) = &self.job else { return };
        job.progress.store(self.done, Ordering::Relaxed);
        if self.done == 1 {
            // The warm-up is over: the timed iterations start now.
            self.timed_start = Some(ctx.now());
        }
        if self.done > job.iterations {
            let elapsed = self.timed_start.map_or(Duration::ZERO, |t| ctx.now() - t);
            let samples = std::mem::take(&mut self.samples);
            self.finish(Ok(Finished { elapsed, samples }));
            return;
        }
        self.iteration_start = Some(ctx.now());
        let result = match (job.mode, job.conn) {
            (ClientMode::Requests, Some(conn)) => self.open_perf_stream(ctx, conn),
            _ => ctx
                .dial(&job.target, true)
                .map(|conn| self.conn = Some(conn))
                .map_err(|e| dial_error(&job.target, &e)),
        };
        if let Err(e) = result {
            self.finish(Err(e));
        }
    }

    fn open_perf_stream(&mut self, ctx: &mut Context<'_>, conn: ConnId) -> Result<(), String> {
        let stream = ctx
            .open_stream(conn, protocols::perf::PROTOCOL_ID)
            .map_err(|e| format!("cannot open a perf stream: {e}"))?;
        self.stream = Some((stream, 0));
        Ok(())
    }

    /// One iteration is over.
    fn iteration_done(&mut self, ctx: &mut Context<'_>) {
        if self.done > 0
            && let Some(start) = self.iteration_start
        {
            self.samples.push(ctx.now() - start);
        }
        self.done += 1;
        self.next(ctx);
    }

    fn finish(&mut self, result: Result<Finished, String>) {
        if let Some(job) = self.job.take() {
            let _ = job.reply.send(result);
        }
    }

    fn mode(&self) -> Option<ClientMode> {
        self.job.as_ref().map(|j| j.mode)
    }
}

/// A failed dial as the one-line exit reason, like a transfer's.
fn dial_error(target: &Multiaddr, error: &DialError) -> String {
    match error {
        DialError::WrongPeerId { expected, actual } => {
            format!(
                "peer id mismatch: expected {expected}, but the responder at {target} is {actual}"
            )
        }
        e => format!("cannot reach the responder at {target}: {e}"),
    }
}

impl Protocol for Measure {
    fn name(&self) -> &'static str {
        "measure"
    }

    fn handle_message(&mut self, ctx: &mut Context<'_>, message: Message) {
        let Ok(job) = message.downcast::<Job>() else {
            return;
        };
        self.conn = job.conn;
        self.job = Some(*job);
        self.next(ctx);
    }

    fn handle_new_connection(&mut self, ctx: &mut Context<'_>, conn: ConnId, _: PeerId) {
        if self.conn != Some(conn) || self.stream.is_some() {
            return;
        }
        match self.mode() {
            Some(ClientMode::Connections) => {
                self.conn = None;
                let _ = ctx.close_connection(conn, 0);
                self.iteration_done(ctx);
            }
            Some(ClientMode::Latency) => {
                if let Err(e) = self.open_perf_stream(ctx, conn) {
                    self.finish(Err(e));
                }
            }
            _ => {}
        }
    }

    fn handle_dial_failure(&mut self, _: &mut Context<'_>, conn: ConnId, error: &DialError) {
        if self.conn == Some(conn)
            && let Some(job) = &self.job
        {
            let message = dial_error(&job.target, error);
            self.finish(Err(message));
        }
    }

    fn handle_stream_negotiated(&mut self, ctx: &mut Context<'_>, stream: StreamRef, _: &str) {
        if self.stream.map(|(s, _)| s) != Some(stream) {
            return;
        }
        // Ask for one byte, upload nothing; the FIN follows the header.
        let header = Bytes::copy_from_slice(&1u64.to_be_bytes());
        let result = ctx.send(stream, header).and_then(|_| ctx.finish(stream));
        if let Err(e) = result {
            self.finish(Err(format!("the perf run failed: {e}")));
        }
    }

    fn handle_stream_data(&mut self, _: &mut Context<'_>, stream: StreamRef, data: Bytes) {
        if let Some((s, received)) = &mut self.stream
            && *s == stream
        {
            *received += data.len() as u64;
        }
    }

    fn handle_stream_finished(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        let Some((s, received)) = self.stream else {
            return;
        };
        if s != stream {
            return;
        }
        self.stream = None;
        if received != 1 {
            self.finish(Err(format!(
                "short byte count: received {received} of 1 byte"
            )));
            return;
        }
        if self.mode() == Some(ClientMode::Latency)
            && let Some(conn) = self.conn.take()
        {
            // Record the sample first: closing is not part of it.
            if self.done > 0
                && let Some(start) = self.iteration_start
            {
                self.samples.push(ctx.now() - start);
            }
            let _ = ctx.close_connection(conn, 0);
            self.done += 1;
            self.next(ctx);
            return;
        }
        self.iteration_done(ctx);
    }

    /// Our side holds only the header and FIN; a server that stops it
    /// after reading them may still send its byte, so the run goes on.
    fn handle_stream_stopped(&mut self, _: &mut Context<'_>, stream: StreamRef, code: u64) {
        tracing::debug!(%stream, code, "perf stream stopped; still reading");
    }

    fn handle_stream_closed(
        &mut self,
        _: &mut Context<'_>,
        stream: StreamRef,
        reason: &StreamError,
    ) {
        if self.stream.map(|(s, _)| s) == Some(stream) {
            self.stream = None;
            let reason = match reason {
                StreamError::Negotiation(e) => format!("the perf protocol was refused: {e}"),
                e => format!("the perf run failed: {e}"),
            };
            self.finish(Err(reason));
        }
    }

    fn handle_closed_connection(&mut self, _: &mut Context<'_>, conn: ConnId, _: PeerId) {
        let in_use =
            self.conn == Some(conn) || self.job.as_ref().is_some_and(|j| j.conn == Some(conn));
        if in_use && self.job.is_some() {
            self.finish(Err("the connection closed during the run".into()));
        }
    }
}

fn report_latency(settings: &ClientSettings, samples: &mut [Duration]) -> anyhow::Result<()> {
    let stats = LatencyStats::of(samples);
    eprintln!(
        "Connect + 1-byte round trip over {} connections: median {:.1} µs, p99 {:.1} µs (min {:.1}, max {:.1})",
        samples.len(),
        micros(stats.median),
        micros(stats.p99),
        micros(stats.min),
        micros(stats.max),
    );
    print_json(&json!({
        "type": settings.mode.name(),
        "iterations": samples.len(),
        "medianSeconds": stats.median.as_secs_f64(),
        "p99Seconds": stats.p99.as_secs_f64(),
        "minSeconds": stats.min.as_secs_f64(),
        "maxSeconds": stats.max.as_secs_f64(),
    }))
}

fn report_rate(settings: &ClientSettings, what: &str, elapsed: Duration) -> anyhow::Result<()> {
    let iterations = settings.iterations;
    let secs = elapsed.as_secs_f64();
    let rate = if secs > 0.0 {
        f64::from(iterations) / secs
    } else {
        0.0
    };
    eprintln!("{what}: {iterations} in {secs:.3} s, {rate:.1} per second");
    print_json(&json!({
        "type": settings.mode.name(),
        "iterations": iterations,
        "timeSeconds": secs,
        "perSecond": rate,
    }))
}

fn print_json(value: &serde_json::Value) -> anyhow::Result<()> {
    use std::io::Write;
    let mut out = std::io::stdout().lock();
    writeln!(out, "{value}")
        .and_then(|()| out.flush())
        .context("cannot write to stdout")
}

fn micros(d: Duration) -> f64 {
    d.as_secs_f64() * 1e6
}

/// Order statistics of latency samples, by the nearest-rank method (the
/// p-th percentile is the sample at rank ⌈p·n/100⌉), as the bench programs
/// in `perf/bench/` compute them too.
#[derive(Debug, PartialEq, Eq)]
struct LatencyStats {
    median: Duration,
    p99: Duration,
    min: Duration,
    max: Duration,
}

impl LatencyStats {
    /// Sorts `samples`; they must not be empty.
    fn of(samples: &mut [Duration]) -> Self {
        samples.sort_unstable();
        Self {
            median: nearest_rank(samples, 50),
            p99: nearest_rank(samples, 99),
            min: samples[0],
            max: samples[samples.len() - 1],
        }
    }
}

/// The `p`-th percentile of sorted, non-empty `samples` by nearest rank.
fn nearest_rank(samples: &[Duration], p: usize) -> Duration {
    let rank = (p * samples.len()).div_ceil(100).max(1);
    samples[rank - 1]
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn nearest_rank_percentiles() {
        let ms = Duration::from_millis;
        let mut samples: Vec<Duration> = (1..=100).rev().map(ms).collect();
        let stats = LatencyStats::of(&mut samples);
        assert_eq!(
            stats,
            LatencyStats {
                median: ms(50),
                p99: ms(99),
                min: ms(1),
                max: ms(100)
            }
        );
        let one = LatencyStats::of(&mut [ms(7)]);
        assert_eq!((one.median, one.p99), (ms(7), ms(7)));
        let three = LatencyStats::of(&mut [ms(3), ms(1), ms(2)]);
        assert_eq!((three.median, three.p99), (ms(2), ms(3)));
    }
}
