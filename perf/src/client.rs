//! `bandwidth_perf client`: connect, transfer on one or more streams,
//! print progress and the result.

use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use protocols::identify::{Identify, IdentifyConfig};
use protocols::perf::{self, PerfClient, PerfReport, Run, mib_per_sec};
use protocols::test_data::{self, TestDataClient};
use swarm::address::{quic_multiaddr, tcp_multiaddr};
use swarm::identity::{generate_keypair, peer_id_to_cid};
use swarm::multiaddr::Protocol as AddrPart;
use swarm::{ConnId, DialError, HandleError, PeerId, PluginId, Runtime, SwarmConfig, SwarmHandle};
use tracing::{info, warn};

use crate::env::{ClientMode, ClientSettings, ClientTransport, TransferProtocol};
use crate::measure;
use crate::output::JsonLine;

/// How long to wait for the connection. The swarm's handshake timeout
/// (10 s) answers first; this only guards against a stuck swarm.
const DIAL_TIMEOUT: Duration = Duration::from_secs(30);
/// How often progress lines are printed.
const PROGRESS_INTERVAL: Duration = Duration::from_secs(1);

/// Run the transfer or measurement the settings describe; an error is the
/// exit reason.
pub fn run(settings: &ClientSettings) -> anyhow::Result<()> {
    let start = Instant::now();
    let key = generate_keypair();
    let identify = IdentifyConfig::new(key.public());
    let mut rt = Runtime::new(SwarmConfig::new(key)).context("cannot start the swarm")?;
    let clients = Clients {
        perf: rt.add_protocol(Box::new(PerfClient::new())),
        test_data: rt.add_protocol(Box::new(TestDataClient::new())),
    };
    // Answer the responder's identify request, as any libp2p peer would.
    rt.add_protocol(Box::new(Identify::new(identify)));
    let measure = (settings.mode != ClientMode::Transfer)
        .then(|| rt.add_protocol(Box::new(measure::Measure::new())));
    let (handle, thread) = rt.spawn().context("cannot start the swarm thread")?;

    let result = match measure {
        None => connect_and_transfer(&handle, clients, settings, start),
        Some(measure) => measure::run(&handle, measure, settings),
    };
    // Close the connection politely either way; the thread ends after it.
    let _ = handle.shutdown(0);
    let _ = thread.join();
    result
}

/// The transfer plugins' ids, which requests are addressed to.
#[derive(Clone, Copy)]
struct Clients {
    perf: PluginId,
    test_data: PluginId,
}

fn connect_and_transfer(
    handle: &SwarmHandle,
    clients: Clients,
    settings: &ClientSettings,
    start: Instant,
) -> anyhow::Result<()> {
    let conn = connect(handle, settings)?;
    let transfer_start = Instant::now();
    let runs = start_runs(handle, clients, conn, settings)?;
    let reports = wait_with_progress(&runs, transfer_start)?;
    let transfer = transfer_start.elapsed();
    let up: u64 = reports.iter().map(|r| r.bytes_up).sum();
    let down: u64 = reports.iter().map(|r| r.bytes_down).sum();
    if (up, down) != (settings.upload, settings.download) {
        // Each run checks its own count; this guards the sum of the split.
        bail!(
            "short byte count: uploaded {up} of {} bytes, downloaded {down} of {} bytes",
            settings.upload,
            settings.download
        );
    }
    eprintln!("Transfer took {} nanoseconds", transfer.as_nanos());
    eprintln!("Speed {:.2} MiB/s", mib_per_sec(up + down, transfer));
    JsonLine::final_(start.elapsed(), up, down)
        .print()
        .context("cannot write to stdout")?;
    Ok(())
}

/// Dial the responder, checking its PeerId when we know it, and warning
/// when we do not.
pub(crate) fn connect(handle: &SwarmHandle, settings: &ClientSettings) -> anyhow::Result<ConnId> {
    let conn = dial(handle, settings)?;
    if settings.responder.is_none() {
        let peer = connection_peer(handle, conn)?;
        warn!(%peer, "no RESPONDER_KEY or RESPONDER_KEY_HEX: the responder's identity was not checked");
        eprintln!(
            "Warning: responder identity not checked (set RESPONDER_KEY); connected to {} ({peer})",
            peer_id_to_cid(&peer)
        );
    }
    info!(server = %settings.server, "connected");
    Ok(conn)
}

/// Dial the responder, checking its PeerId when we know it.
fn dial(handle: &SwarmHandle, settings: &ClientSettings) -> anyhow::Result<ConnId> {
    let mut addr = match settings.transport {
        ClientTransport::Quic => quic_multiaddr(settings.server),
        ClientTransport::Tcp => tcp_multiaddr(settings.server),
    };
    if let Some(peer) = settings.responder {
        addr.push(AddrPart::P2p(peer));
    }
    match handle.dial(&addr, false, DIAL_TIMEOUT) {
        Ok(conn) => Ok(conn),
        Err(HandleError::Failed(DialError::WrongPeerId { expected, actual })) => bail!(
            "peer id mismatch: expected {expected}, but the responder at {} is {actual}",
            settings.server
        ),
        Err(e) => bail!("cannot reach the responder at {}: {e}", settings.server),
    }
}

/// Close a connection (politely, without waiting for the peer).
pub(crate) fn close(handle: &SwarmHandle, conn: ConnId) -> anyhow::Result<()> {
    handle
        .call(DIAL_TIMEOUT, move |s| {
            s.with_context(PluginId::external(), |ctx| ctx.close_connection(conn, 0))
        })
        .context("the swarm did not answer")?
        .context("cannot close the connection")
}

fn connection_peer(handle: &SwarmHandle, conn: ConnId) -> anyhow::Result<PeerId> {
    handle
        .call(DIAL_TIMEOUT, move |s| {
            s.with_context(PluginId::external(), |ctx| ctx.connection_peer(conn))
        })
        .context("the swarm did not answer")?
        .context("the connection closed right after it opened")
}

/// Start one run per stream, the byte counts split evenly among them.
fn start_runs(
    handle: &SwarmHandle,
    clients: Clients,
    conn: ConnId,
    settings: &ClientSettings,
) -> anyhow::Result<Vec<Run>> {
    let n = settings.streams;
    (0..n)
        .map(|i| {
            let up = share(settings.upload, n, i);
            let down = share(settings.download, n, i);
            let run = match settings.protocol {
                TransferProtocol::Perf => perf::start(handle, clients.perf, conn, up, down),
                TransferProtocol::TestData => {
                    test_data::start(handle, clients.test_data, conn, down)
                }
            };
            run.context("cannot start the transfer")
        })
        .collect()
}

/// Stream `i`'s part of `total` split `n` ways (the first ones get the remainder).
fn share(total: u64, n: u32, i: u32) -> u64 {
    let (n, i) = (u64::from(n), u64::from(i));
    total / n + u64::from(i < total % n)
}

/// Wait for every run, printing a progress line each interval. The first
/// failed run ends the wait with its error.
fn wait_with_progress(runs: &[Run], since: Instant) -> anyhow::Result<Vec<PerfReport>> {
    let mut results: Vec<Option<PerfReport>> = runs.iter().map(|_| None).collect();
    let mut last = (since, 0u64, 0u64);
    let mut next_tick = since + PROGRESS_INTERVAL;
    while results.iter().any(Option::is_none) {
        for (run, result) in runs.iter().zip(results.iter_mut()) {
            if result.is_some() {
                continue;
            }
            let wait = next_tick.saturating_duration_since(Instant::now());
            if let Some(r) = run.wait_timeout(wait) {
                *result = Some(r.map_err(|e| describe(e, runs.len()))?);
            }
        }
        let now = Instant::now();
        if now >= next_tick {
            let up: u64 = runs.iter().map(|r| r.progress().uploaded()).sum();
            let down: u64 = runs.iter().map(|r| r.progress().downloaded()).sum();
            JsonLine::intermediary(now - last.0, up - last.1, down - last.2)
                .print()
                .context("cannot write to stdout")?;
            last = (now, up, down);
            next_tick = now + PROGRESS_INTERVAL;
        }
    }
    Ok(results.into_iter().flatten().collect())
}

/// A run's error as the one-line exit reason.
fn describe(error: perf::PerfError, streams: usize) -> anyhow::Error {
    let what = if streams > 1 {
        "a transfer stream"
    } else {
        "the transfer"
    };
    match error {
        perf::PerfError::WrongByteCount { expected, received } if received < expected => {
            anyhow::anyhow!("short byte count: {what} received {received} of {expected} bytes")
        }
        e => anyhow::anyhow!("{what} failed: {e}"),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn shares_add_up_and_differ_by_at_most_one() {
        for (total, n) in [(0, 1), (10, 3), (7, 7), (5, 8), (u64::MAX, 256)] {
            let parts: Vec<u64> = (0..n).map(|i| share(total, n, i)).collect();
            assert_eq!(
                parts.iter().map(|&p| u128::from(p)).sum::<u128>(),
                u128::from(total)
            );
            let (min, max) = (parts.iter().min().unwrap(), parts.iter().max().unwrap());
            assert!(max - min <= 1, "{parts:?}");
        }
    }
}
