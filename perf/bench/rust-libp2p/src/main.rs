//! rust-libp2p 0.57 perf over QUIC (libp2p-quic + libp2p-stream on tokio)
//! or TCP (libp2p-tcp, Noise, Yamux), for perf/bench/compare.sh. The
//! server listens on both, on one port number.
//!
//! The perf protocol as rust-libp2p's `perf` binary speaks it, driven with
//! the same flags, plus bandwidth_perf's measuring modes (see
//! `bench-common`). Application buffers are 256 KiB; the QUIC settings are
//! libp2p-quic's defaults.

use std::net::SocketAddr;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail, ensure};
use bench_common::{CHUNK, Cli, Mode, PERF_PROTOCOL, ZEROS};
use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::multiaddr::Protocol;
use libp2p::swarm::dial_opts::DialOpts;
use libp2p::swarm::{ConnectionId, SwarmEvent};
use libp2p::{Multiaddr, PeerId, Stream, StreamProtocol, Swarm};

const PERF: StreamProtocol = StreamProtocol::new(PERF_PROTOCOL);

type Node = Swarm<libp2p_stream::Behaviour>;

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::get_with(&["quic-v1", "tcp"]);
    if cli.run_server {
        server(cli.server_address).await
    } else {
        client(&cli).await
    }
}

fn node() -> anyhow::Result<Node> {
    Ok(libp2p::SwarmBuilder::with_new_identity()
        .with_tokio()
        .with_tcp(
            libp2p::tcp::Config::default().nodelay(true),
            libp2p::noise::Config::new,
            libp2p::yamux::Config::default,
        )?
        .with_quic()
        .with_behaviour(|_| libp2p_stream::Behaviour::new())?
        // Keep connections between requests; the client closes them.
        .with_swarm_config(|c| c.with_idle_connection_timeout(Duration::from_secs(60)))
        .build())
}

fn tcp_addr(addr: SocketAddr) -> Multiaddr {
    Multiaddr::from(addr.ip()).with(Protocol::Tcp(addr.port()))
}

fn quic_addr(addr: SocketAddr) -> Multiaddr {
    Multiaddr::from(addr.ip())
        .with(Protocol::Udp(addr.port()))
        .with(Protocol::QuicV1)
}

async fn server(addr: SocketAddr) -> anyhow::Result<()> {
    let mut swarm = node()?;
    let mut incoming = swarm.behaviour().new_control().accept(PERF)?;
    tokio::spawn(async move {
        while let Some((_peer, stream)) = incoming.next().await {
            tokio::spawn(async move {
                if let Err(e) = serve(stream).await {
                    eprintln!("perf stream failed: {e}");
                }
            });
        }
    });
    swarm.listen_on(quic_addr(addr))?;
    swarm.listen_on(tcp_addr(addr))?;
    loop {
        if let SwarmEvent::NewListenAddr { address, .. } = swarm.select_next_some().await {
            eprintln!("Listening on {address}/p2p/{}", swarm.local_peer_id());
        }
    }
}

/// Read the header and the upload to its end, then send what was asked.
async fn serve(mut stream: Stream) -> std::io::Result<()> {
    let mut header = [0u8; 8];
    stream.read_exact(&mut header).await?;
    drain(&mut stream).await?;
    send_zeros(&mut stream, u64::from_be_bytes(header)).await?;
    stream.close().await
}

async fn send_zeros(stream: &mut Stream, mut left: u64) -> std::io::Result<()> {
    while left > 0 {
        let n = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
        stream.write_all(&ZEROS[..n]).await?;
        left -= n as u64;
    }
    Ok(())
}

async fn drain(stream: &mut Stream) -> std::io::Result<u64> {
    let mut buf = vec![0u8; CHUNK];
    let mut total = 0;
    loop {
        match stream.read(&mut buf).await? {
            0 => return Ok(total),
            n => total += n as u64,
        }
    }
}

/// One perf run on a new stream: header, upload, close our side, drain.
async fn perf_run(
    control: &mut libp2p_stream::Control,
    peer: PeerId,
    upload: u64,
    download: u64,
) -> anyhow::Result<()> {
    let mut stream = control
        .open_stream(peer, PERF)
        .await
        .map_err(|e| anyhow::anyhow!("cannot open a perf stream: {e}"))?;
    stream.write_all(&download.to_be_bytes()).await?;
    send_zeros(&mut stream, upload).await?;
    stream.close().await?;
    let received = drain(&mut stream).await?;
    ensure!(
        received == download,
        "short byte count: received {received} of {download} bytes"
    );
    Ok(())
}

/// Poll the swarm while `work` runs (libp2p-stream needs it to open streams).
async fn drive<T>(swarm: &mut Node, work: impl Future<Output = T>) -> T {
    let mut work = std::pin::pin!(work);
    loop {
        tokio::select! {
            out = &mut work => return out,
            _ = swarm.select_next_some() => {}
        }
    }
}

/// Dial a new connection and wait until it is established.
async fn dial(swarm: &mut Node, addr: &Multiaddr) -> anyhow::Result<(PeerId, ConnectionId)> {
    let opts = DialOpts::unknown_peer_id().address(addr.clone()).build();
    let id = opts.connection_id();
    swarm.dial(opts).context("cannot dial")?;
    loop {
        match swarm.select_next_some().await {
            SwarmEvent::ConnectionEstablished {
                connection_id,
                peer_id,
                ..
            } if connection_id == id => return Ok((peer_id, id)),
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                error,
                ..
            } if connection_id == id => bail!("cannot reach {addr}: {error}"),
            _ => {}
        }
    }
}

/// Close a connection and wait until it is gone (libp2p-stream picks any
/// connection to the peer for a new stream, so none may linger).
async fn close_and_wait(swarm: &mut Node, id: ConnectionId) {
    if !swarm.close_connection(id) {
        return;
    }
    loop {
        if let SwarmEvent::ConnectionClosed { connection_id, .. } = swarm.select_next_some().await
            && connection_id == id
        {
            return;
        }
    }
}

async fn client(cli: &Cli) -> anyhow::Result<()> {
    let start = Instant::now();
    let mut swarm = node()?;
    let mut control = swarm.behaviour().new_control();
    let addr = if cli.is_tcp() {
        tcp_addr(cli.server_address)
    } else {
        quic_addr(cli.server_address)
    };
    let iterations = cli.iterations();
    match cli.mode {
        Mode::Transfer => {
            let (peer, _) = dial(&mut swarm, &addr).await?;
            let run = perf_run(&mut control, peer, cli.upload_bytes, cli.download_bytes);
            drive(&mut swarm, run).await?;
            bench_common::print_final(start.elapsed(), cli.upload_bytes, cli.download_bytes);
        }
        Mode::Latency => {
            let (peer, id) = dial(&mut swarm, &addr).await?;
            drive(&mut swarm, perf_run(&mut control, peer, 0, 1)).await?;
            close_and_wait(&mut swarm, id).await;
            let mut samples = Vec::with_capacity(iterations as usize);
            for _ in 0..iterations {
                let t = Instant::now();
                let (peer, id) = dial(&mut swarm, &addr).await?;
                drive(&mut swarm, perf_run(&mut control, peer, 0, 1)).await?;
                samples.push(t.elapsed());
                close_and_wait(&mut swarm, id).await;
            }
            bench_common::print_latency(&mut samples);
        }
        Mode::Connections => {
            let (_, id) = dial(&mut swarm, &addr).await?;
            swarm.close_connection(id);
            let t = Instant::now();
            for _ in 0..iterations {
                let (_, id) = dial(&mut swarm, &addr).await?;
                swarm.close_connection(id);
            }
            bench_common::print_rate(cli.mode, iterations, t.elapsed());
        }
        Mode::Requests => {
            let (peer, id) = dial(&mut swarm, &addr).await?;
            drive(&mut swarm, perf_run(&mut control, peer, 0, 1)).await?;
            let t = Instant::now();
            for _ in 0..iterations {
                drive(&mut swarm, perf_run(&mut control, peer, 0, 1)).await?;
            }
            let elapsed = t.elapsed();
            close_and_wait(&mut swarm, id).await;
            bench_common::print_rate(cli.mode, iterations, elapsed);
        }
    }
    Ok(())
}
