//! The `holepunch` example's `listen` and `dial` roles played by
//! rust-libp2p 0.57 (relay client, DCUtR, identify over QUIC), with the
//! same output, so that `perf/netns/nat.sh` can put a rust-libp2p node on
//! either side of the NATs (`HPNAT_A=rust`, `HPNAT_B=rust`). With a TCP
//! `--listen` address it also listens on TCP (rust-libp2p's TCP dials
//! leave from the listen port, and its DCUtR dials as listener for the
//! simultaneous open).
//!
//! ```text
//! rust_holepunch listen --relay <relay addr>/p2p/<relay id>
//! Listening on <relay addr>/p2p/<relay id>/p2p-circuit/p2p/<peer id>
//! rust_holepunch dial --relay <relay addr>/p2p/<relay id> <peer id> [--timeout S]
//! {"event":"relayed"}
//! {"event":"direct","addr":"/ip4/…/udp/…/quic-v1"}
//! ```
//! `dial` exits 0 with a direct connection, 1 when the punch failed, 3 on
//! any other failure (one line on stderr).

use std::process::ExitCode;
use std::time::{Duration, Instant};

use clap::{Parser, Subcommand};
use libp2p::multiaddr::Protocol;
use rust_libp2p_peer::{Multiaddr, PeerConfig, PeerEvent, PeerId, RustPeer};

/// The command line.
#[derive(Parser)]
#[command(about = "holepunch's listen and dial roles, played by rust-libp2p")]
struct Cli {
    #[command(subcommand)]
    command: Command,
    /// The QUIC address to listen on, or a TCP one to listen on besides.
    #[arg(long, global = true, default_value = "/ip4/0.0.0.0/udp/0/quic-v1")]
    listen: Multiaddr,
    /// Seconds `dial` may take.
    #[arg(long, global = true, default_value = "60")]
    timeout: u64,
}

#[derive(Subcommand)]
enum Command {
    /// Reserve on the relay and serve until stopped.
    Listen {
        /// The relay, with /p2p/PEER_ID.
        #[arg(long)]
        relay: Multiaddr,
    },
    /// Reach PEER_ID through the relay and wait for DCUtR's direct
    /// connection.
    Dial {
        /// The relay, with /p2p/PEER_ID.
        #[arg(long)]
        relay: Multiaddr,
        /// The peer to reach.
        peer: PeerId,
    },
}

fn main() -> ExitCode {
    let cli = Cli::parse();
    let timeout = Duration::from_secs(cli.timeout);
    let tcp = cli.listen.iter().any(|p| matches!(p, Protocol::Tcp(_)));
    let peer = RustPeer::spawn(PeerConfig {
        quic_listen_addr: if tcp {
            PeerConfig::default().quic_listen_addr
        } else {
            cli.listen.clone()
        },
        // The relay client's and DCUtR's protocols run on connections that
        // would otherwise idle out while the punch is under way.
        idle_connection_timeout: Duration::from_secs(60),
        // `holepunch dial --perf` runs perf over the direct connection.
        perf_server: true,
        ..PeerConfig::default()
    });
    if tcp && let Err(e) = peer.listen_on(cli.listen.clone()) {
        return fail(3, format!("cannot listen on {}: {e}", cli.listen));
    }
    match cli.command {
        Command::Listen { relay } => listen(&peer, relay, timeout),
        Command::Dial {
            relay,
            peer: target,
        } => dial(&peer, relay, target, timeout),
    }
}

fn fail(code: u8, why: impl std::fmt::Display) -> ExitCode {
    eprintln!("rust_holepunch: {why}");
    ExitCode::from(code)
}

fn listen(node: &RustPeer, relay: Multiaddr, timeout: Duration) -> ExitCode {
    if let Err(e) = node.connect(relay.clone(), timeout) {
        return fail(3, format!("cannot reach the relay: {e}"));
    }
    if let Err(e) = node.listen_on(relay.clone().with(Protocol::P2pCircuit)) {
        return fail(3, format!("cannot listen via the relay: {e}"));
    }
    let reserved = node.wait_for(timeout, |e| match e {
        PeerEvent::Relay(text) if text.contains("ReservationReqAccepted") => Some(()),
        _ => None,
    });
    if reserved.is_none() {
        return fail(3, "no reservation on the relay");
    }
    let addr = relay
        .with(Protocol::P2pCircuit)
        .with(Protocol::P2p(node.peer_id()));
    println!("Listening on {addr}");
    loop {
        match node.next_event(Duration::from_secs(3600)) {
            Some(PeerEvent::Dcutr { peer, result }) => match result {
                Ok(()) => println!("{{\"event\":\"direct\",\"peer\":\"{peer}\"}}"),
                Err(e) => println!(
                    "{{\"event\":\"punch_failed\",\"peer\":\"{peer}\",\"reason\":{:?}}}",
                    e
                ),
            },
            Some(_) => {}
            None => return ExitCode::SUCCESS,
        }
    }
}

fn dial(node: &RustPeer, relay: Multiaddr, target: PeerId, timeout: Duration) -> ExitCode {
    let deadline = Instant::now() + timeout;
    // The relay first: identify reports our observed address, DCUtR's
    // candidate.
    if let Err(e) = node.connect(relay.clone(), timeout) {
        return fail(3, format!("cannot reach the relay: {e}"));
    }
    let circuit = relay.with(Protocol::P2pCircuit).with(Protocol::P2p(target));
    if let Err(e) = node.connect(circuit, timeout) {
        return fail(3, format!("no circuit to {target}: {e}"));
    }
    println!("{{\"event\":\"relayed\"}}");
    let mut direct_addr: Option<Multiaddr> = None;
    loop {
        let left = deadline.saturating_duration_since(Instant::now());
        let Some(event) = node.next_event(left) else {
            return fail(3, "timed out");
        };
        match event {
            PeerEvent::ConnectionEstablished {
                peer, remote_addr, ..
            } if peer == target && !remote_addr.iter().any(|p| p == Protocol::P2pCircuit) => {
                direct_addr = Some(remote_addr);
            }
            PeerEvent::Dcutr { peer, result } if peer == target => match result {
                Ok(()) => {
                    let addr = direct_addr.map(|a| a.to_string()).unwrap_or_default();
                    println!("{{\"event\":\"direct\",\"addr\":\"{addr}\"}}");
                    leave(node);
                    return ExitCode::SUCCESS;
                }
                Err(e) => {
                    println!("{{\"event\":\"punch_failed\",\"reason\":{e:?}}}");
                    leave(node);
                    return fail(1, format!("hole punch failed: {e}"));
                }
            },
            _ => {}
        }
    }
}

/// Close every connection before exiting, so that the relay frees the
/// circuit now rather than when the connection times out.
fn leave(node: &RustPeer) {
    for peer in node.connected_peers() {
        node.disconnect(peer);
    }
    let deadline = Instant::now() + Duration::from_secs(2);
    while !node.connected_peers().is_empty() && Instant::now() < deadline {
        std::thread::sleep(Duration::from_millis(20));
    }
}
