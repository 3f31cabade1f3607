//! Test support: a real [rust-libp2p](https://github.com/libp2p/rust-libp2p) node
//! (libp2p 0.57 from crates.io) running over QUIC v1 on a background thread,
//! driven through a blocking `std` API.
//!
//! It is meant for interoperability tests of a separate (non-async) libp2p
//! implementation: spawn a [`RustPeer`], dial it or let it dial you, and
//! observe what it sees through [`PeerEvent`]s.
//!
//! The node runs these behaviours:
//! * ping (`/ipfs/ping/1.0.0`), interval [`PeerConfig::ping_interval`];
//! * identify (`/ipfs/id/1.0.0`, `/ipfs/id/push/1.0.0`), protocol version
//!   `"/ipfs/0.1.0"`, agent [`PeerConfig::agent_version`];
//! * `libp2p-stream`, used for the echo protocols
//!   ([`PeerConfig::echo_protocols`]), for [`RustPeer::request`], and for the
//!   `/perf/1.0.0` client ([`RustPeer::perf`]) and server
//!   ([`PeerConfig::perf_server`]);
//! * optionally Kademlia (libp2p-kad 0.49, [`PeerConfig::kad`]), driven by
//!   the blocking `kad_*` methods of [`RustPeer`]; see [`KadConfig`] and the
//!   notes in the `kad` module on how libp2p-kad fills its routing table;
//! * optionally gossipsub (libp2p-gossipsub 0.50.1, [`PeerConfig::gossipsub`]),
//!   driven by the blocking `gossip_*` methods; see [`GossipConfig`] and the
//!   notes in the `gossip` module on what libp2p-gossipsub does on the wire.
//!
//! # Multistream-select on outbound streams
//!
//! libp2p-swarm 0.48 negotiates every substream itself with
//! `multistream_select::dialer_select_proto`, using `Version::V1` unless the
//! swarm-wide override `Config::with_substream_upgrade_protocol_override` is
//! set; there is no per-stream choice (libp2p-stream's upgrade only passes
//! the negotiated stream through). [`PeerConfig::multistream_version`] sets
//! that override, so it applies to *all* streams this node opens (ping,
//! identify, identify push, [`RustPeer::request`], [`RustPeer::perf`]). The
//! listener side behaves the same with either value.
//!
//! On the wire (QUIC STREAM frames; `H` = `0x13 "/multistream/1.0.0\n"`,
//! `P` = varint length + `"<protocol>\n"`):
//!
//! * [`MultistreamVersion::V1`] (stock rust-libp2p 0.57 behaviour): the
//!   dialer sends `H P` in one flush (no FIN), waits for the listener's
//!   `H P`, and only then writes application data.
//! * [`MultistreamVersion::V1Lazy`] (this crate's default): the dialer
//!   buffers `H P` and reports the stream as negotiated at once; the first
//!   write, flush, close or read sends it, back to back with the data. A
//!   [`RustPeer::request`] of `d` bytes is one STREAM frame `H P d` with FIN
//!   before anything is received; a ping stream starts with `H P` + 32 bytes.
//!   The listener's `H P` is checked on the dialer's first read.
//!
//! Pitfall of `V1Lazy` with write-only streams (identify push): the dialer
//! writes `H P msg`, finishes the stream and drops it at once, so the first
//! flight is `STREAM(H P msg, FIN)` plus `STOP_SENDING` for the same stream.
//! A rust-libp2p listener then fails to write its confirmation, resets the
//! stream and never delivers the message. Use `V1` on a peer whose pushes
//! must reach a rust-libp2p listener.

#![warn(missing_docs)]

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, mpsc as std_mpsc},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use futures::{AsyncReadExt, AsyncWriteExt, StreamExt};
use libp2p::{
    StreamProtocol, Swarm, SwarmBuilder, identify,
    multiaddr::Protocol,
    ping,
    swarm::{
        ConnectionId, NetworkBehaviour, SwarmEvent,
        behaviour::toggle::Toggle,
        dial_opts::{DialOpts, PeerCondition},
    },
};
use tokio::sync::mpsc as tokio_mpsc;

mod autonat;
mod gossip;
mod kad;

pub use gossip::{
    GossipAcceptance, GossipConfig, GossipMessage, GossipMessageIdFn, GossipSigning,
    GossipValidation, GossipValidator, GossipVersions, content_hash_id, metric_total,
};
use gossip::{GossipCommand, GossipState};
use kad::KadCommand;
pub use kad::{KAD_PROTOCOL, KadConfig, KadError, KadMode, KadPeerInfo, KadRecord};

pub use libp2p::core::upgrade::Version as MultistreamVersion;
pub use libp2p::gossipsub::{MessageId, ValidationMode};
pub use libp2p::identity::PublicKey;
pub use libp2p::{Multiaddr, PeerId, identity};

/// Protocol id of the libp2p perf protocol served and spoken by this peer.
pub const PERF_PROTOCOL: &str = "/perf/1.0.0";

/// Protocol version advertised through identify.
pub const IDENTIFY_PROTOCOL_VERSION: &str = "/ipfs/0.1.0";

/// How long [`RustPeer::spawn`] waits for the listen address.
const SPAWN_TIMEOUT: Duration = Duration::from_secs(10);

/// How long [`Drop`] waits for the background thread to finish.
const SHUTDOWN_TIMEOUT: Duration = Duration::from_secs(5);

/// Extra time granted to the blocking side on top of a background task's own
/// timeout, so that the task's precise error wins over a generic one.
const REPLY_GRACE: Duration = Duration::from_secs(2);

/// Bound on kad calls that only touch local state (routing table, mode).
const KAD_LOCAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Bound on gossip calls, which only touch local state.
const GOSSIP_LOCAL_TIMEOUT: Duration = Duration::from_secs(5);

/// Size of the chunks written by the perf client and server.
const PERF_CHUNK: usize = 64 * 1024;

/// Configuration of a [`RustPeer`].
#[derive(Debug, Clone)]
pub struct PeerConfig {
    /// Node identity; `None` generates a fresh ed25519 key.
    pub keypair: Option<identity::Keypair>,
    /// Listen on [`PeerConfig::quic_listen_addr`].
    pub listen: bool,
    /// The QUIC address to listen on. Default `/ip4/127.0.0.1/udp/0/quic-v1`.
    pub quic_listen_addr: Multiaddr,
    /// Also listen on `/ip4/127.0.0.1/tcp/0` (TCP with Noise or TLS, then
    /// Yamux, as rust-libp2p's `with_tcp` sets it up). Dialing a `/tcp/`
    /// address works whatever this says. Default: false.
    pub listen_tcp: bool,
    /// Over TCP, propose (and prefer) `/tls/1.0.0` before `/noise` when
    /// dialing. Default: false (Noise first, as rust-libp2p examples do).
    pub tcp_tls_first: bool,
    /// Interval of the ping behaviour (which is always enabled).
    pub ping_interval: Duration,
    /// Agent version advertised through identify.
    pub agent_version: String,
    /// Inbound streams on these protocol ids are echoed: read to EOF, then
    /// everything read is written back and the stream is closed. Each one
    /// produces a [`PeerEvent::InboundStream`].
    pub echo_protocols: Vec<String>,
    /// Serve `/perf/1.0.0` (see [`PERF_PROTOCOL`]).
    pub perf_server: bool,
    /// Multistream-select variant used by this node on every stream it opens
    /// (see the crate documentation). Default: [`MultistreamVersion::V1Lazy`].
    pub multistream_version: MultistreamVersion,
    /// Swarm idle connection timeout: a connection with no open streams is
    /// closed after this long. Default: 30 s.
    pub idle_connection_timeout: Duration,
    /// Run Kademlia with these settings; `None` (the default) leaves it out,
    /// so identify does not list a DHT protocol.
    pub kad: Option<KadConfig>,
    /// Run gossipsub with these settings; `None` (the default) leaves it
    /// out, so identify lists no meshsub protocol.
    pub gossipsub: Option<GossipConfig>,
    /// Run the AutoNAT v2 client (it tests the address candidates
    /// identify reports with servers it dialed). Default false.
    pub autonat_client: bool,
    /// Run the AutoNAT v2 server. Default false.
    pub autonat_server: bool,
    /// Serve circuit relay v2 (hop) with libp2p-relay's default limits.
    /// Default false. (The relay client and DCUtR are always on: listening
    /// on, and dialing, `/p2p-circuit` addresses works, and relayed
    /// connections are upgraded when a direct path is found.)
    pub relay_server: bool,
}

impl Default for PeerConfig {
    fn default() -> Self {
        PeerConfig {
            keypair: None,
            listen: true,
            quic_listen_addr: "/ip4/127.0.0.1/udp/0/quic-v1"
                .parse()
                .expect("static multiaddr"),
            listen_tcp: false,
            tcp_tls_first: false,
            ping_interval: Duration::from_secs(1),
            agent_version: "rust-libp2p-peer/0.1".to_string(),
            echo_protocols: Vec::new(),
            perf_server: false,
            multistream_version: MultistreamVersion::V1Lazy,
            idle_connection_timeout: Duration::from_secs(30),
            kad: None,
            gossipsub: None,
            autonat_client: false,
            autonat_server: false,
            relay_server: false,
        }
    }
}

/// Identify information received from a remote peer.
#[derive(Debug, Clone, PartialEq)]
pub struct IdentifyInfo {
    /// The remote's public key.
    pub public_key: PublicKey,
    /// Protocol version string, e.g. `"/ipfs/0.1.0"`.
    pub protocol_version: String,
    /// Agent version string.
    pub agent_version: String,
    /// Addresses the remote says it listens on.
    pub listen_addrs: Vec<Multiaddr>,
    /// Protocols the remote says it supports.
    pub protocols: Vec<String>,
    /// Our address as observed by the remote.
    pub observed_addr: Multiaddr,
}

impl From<identify::Info> for IdentifyInfo {
    fn from(info: identify::Info) -> Self {
        IdentifyInfo {
            public_key: info.public_key,
            protocol_version: info.protocol_version,
            agent_version: info.agent_version,
            listen_addrs: info.listen_addrs,
            protocols: info.protocols.iter().map(|p| p.to_string()).collect(),
            observed_addr: info.observed_addr,
        }
    }
}

/// Something the background node observed.
// `IdentifyReceived` is large; events are few, so it is not boxed to keep
// matching simple.
#[allow(clippy::large_enum_variant)]
#[derive(Debug, Clone)]
pub enum PeerEvent {
    /// The node listens on this address.
    Listening(Multiaddr),
    /// A connection was established (`dialer`: this node dialed it).
    ConnectionEstablished {
        /// The remote peer.
        peer: PeerId,
        /// The remote's address (dialed address, or the send-back address).
        remote_addr: Multiaddr,
        /// Whether this node was the dialer.
        dialer: bool,
    },
    /// A connection was closed.
    ConnectionClosed {
        /// The remote peer.
        peer: PeerId,
        /// Why, if it was not an orderly local close.
        cause: Option<String>,
    },
    /// A dial failed.
    OutgoingConnectionError {
        /// The peer that was dialed, if known.
        peer: Option<PeerId>,
        /// The error.
        error: String,
    },
    /// A ping round trip completed (or failed).
    Ping {
        /// The remote peer.
        peer: PeerId,
        /// Round-trip time, or the failure.
        result: Result<Duration, String>,
    },
    /// Identify information was received from a peer (in reply to our
    /// request, or pushed by it).
    IdentifyReceived {
        /// The remote peer.
        peer: PeerId,
        /// What it told us.
        info: IdentifyInfo,
    },
    /// Our identify information was sent in reply to a peer's request.
    IdentifySent {
        /// The remote peer.
        peer: PeerId,
    },
    /// Our identify information was pushed to a peer.
    IdentifyPushed {
        /// The remote peer.
        peer: PeerId,
    },
    /// An identify exchange failed.
    IdentifyError {
        /// The remote peer.
        peer: PeerId,
        /// The error.
        error: String,
    },
    /// An inbound stream on an echo protocol (or on `/perf/1.0.0`) finished
    /// successfully. For echo protocols `bytes_read` is everything read (and
    /// echoed back); for perf it is the uploaded payload, excluding the
    /// 8-byte length prefix.
    InboundStream {
        /// The remote peer.
        peer: PeerId,
        /// The protocol id.
        protocol: String,
        /// Bytes read from the stream.
        bytes_read: usize,
    },
    /// Kademlia added a peer to its routing table or learnt a new address
    /// for one.
    KadRoutingUpdated {
        /// The peer.
        peer: PeerId,
        /// Whether the peer was not in the table before.
        is_new_peer: bool,
        /// All its addresses in the table now.
        addresses: Vec<Multiaddr>,
    },
    /// Kademlia answered an inbound request; `request` is libp2p-kad's
    /// `InboundRequest` in `Debug` form without record contents, e.g.
    /// `FindNode { num_closer_peers: 3 }`, `GetRecord { .. }`,
    /// `PutRecord { source: <peer> }`, `AddProvider`, `GetProvider { .. }`.
    KadInboundRequest {
        /// The kind of request and its counts.
        request: String,
    },
    /// Kademlia switched between client and server mode.
    KadModeChanged(KadMode),
    /// A peer told us it subscribed to a topic (gossipsub).
    GossipSubscribed {
        /// The remote peer.
        peer: PeerId,
        /// The topic.
        topic: String,
    },
    /// A peer told us it unsubscribed from a topic (or disconnected).
    GossipUnsubscribed {
        /// The remote peer.
        peer: PeerId,
        /// The topic.
        topic: String,
    },
    /// A connected peer does not speak any gossipsub protocol we offer.
    GossipNotSupported {
        /// The remote peer.
        peer: PeerId,
    },
    /// libp2p-gossipsub could not hand messages to a peer in time (its send
    /// queue was full or messages expired in it); reported at a heartbeat.
    GossipSlowPeer {
        /// The slow peer.
        peer: PeerId,
        /// libp2p-gossipsub's `FailedMessages` counts in `Debug` form.
        failed: String,
    },
    /// The AutoNAT v2 client tested one of our addresses with a server.
    AutonatTested {
        /// The address tested.
        addr: Multiaddr,
        /// The server asked.
        server: PeerId,
        /// Dial data paid (0 when the server asked none).
        bytes_sent: usize,
        /// `Ok` when the server dialed it back.
        result: Result<(), String>,
    },
    /// The AutoNAT v2 server tested an address for a client.
    AutonatServed {
        /// The client.
        client: PeerId,
        /// The address dialed.
        addr: Multiaddr,
        /// Dial data the client paid.
        data_amount: usize,
        /// `Ok` when the dial-back reached the client.
        result: Result<(), String>,
    },
    /// A DCUtR attempt over a relayed connection to `peer` ended: `Ok` with
    /// a direct connection, or the failure.
    Dcutr {
        /// The remote peer.
        peer: PeerId,
        /// The outcome.
        result: Result<(), String>,
    },
    /// A circuit relay event (server or client), in libp2p-relay's
    /// `Debug` form, e.g. `ReservationReqAccepted { .. }`,
    /// `CircuitReqAccepted { .. }`, `ReservationReqAccepted` (client).
    Relay(String),
    /// Anything else worth logging (listener errors, incoming connection
    /// errors, failed inbound streams, address candidates, ...).
    Other(String),
}

/// Commands sent from the blocking API to the background thread.
enum Command {
    Dial {
        addr: Multiaddr,
        reply: Option<std_mpsc::Sender<Result<PeerId, String>>>,
    },
    AddPeerAddress {
        peer: PeerId,
        addr: Multiaddr,
    },
    Request {
        peer: PeerId,
        protocol: StreamProtocol,
        data: Vec<u8>,
        timeout: Duration,
        reply: std_mpsc::Sender<Result<Vec<u8>, String>>,
    },
    Perf {
        peer: PeerId,
        up: u64,
        down: u64,
        timeout: Duration,
        reply: std_mpsc::Sender<Result<(u64, u64), String>>,
    },
    PushIdentify {
        peers: Vec<PeerId>,
    },
    AddExternalAddress(Multiaddr),
    Listen(Multiaddr, std_mpsc::Sender<Result<(), String>>),
    Disconnect(PeerId),
    ConnectedPeers(std_mpsc::Sender<Vec<PeerId>>),
    Kad(KadCommand),
    Gossip(GossipCommand),
    /// Stop (`true`) or resume (`false`) polling the swarm.
    PauseSwarm(bool),
    Shutdown,
}

/// A rust-libp2p node running on its own thread (current-thread tokio
/// runtime). Dropping it shuts the node down.
pub struct RustPeer {
    peer_id: PeerId,
    listen_addrs: Arc<Mutex<Vec<Multiaddr>>>,
    commands: tokio_mpsc::UnboundedSender<Command>,
    events: Mutex<std_mpsc::Receiver<PeerEvent>>,
    gossip_messages: Mutex<std_mpsc::Receiver<GossipMessage>>,
    done: Mutex<std_mpsc::Receiver<()>>,
    thread: Option<JoinHandle<()>>,
}

impl std::fmt::Debug for RustPeer {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("RustPeer")
            .field("peer_id", &self.peer_id)
            .field("listen_addrs", &self.listen_addrs())
            .finish_non_exhaustive()
    }
}

impl RustPeer {
    /// Start the node on a new thread. If `cfg.listen`, waits (at most 10 s)
    /// until the QUIC listen address is known.
    ///
    /// # Panics
    /// Panics (in the calling thread) if the node cannot be started; use
    /// [`RustPeer::try_spawn`] to get the error instead.
    pub fn spawn(cfg: PeerConfig) -> RustPeer {
        match Self::try_spawn(cfg) {
            Ok(peer) => peer,
            Err(e) => panic!("rust-libp2p-peer: failed to start: {e}"),
        }
    }

    /// Like [`RustPeer::spawn`] but returns an error instead of panicking.
    pub fn try_spawn(cfg: PeerConfig) -> Result<RustPeer, String> {
        let keypair = cfg
            .keypair
            .clone()
            .unwrap_or_else(identity::Keypair::generate_ed25519);
        let peer_id = keypair.public().to_peer_id();
        let listen_addrs = Arc::new(Mutex::new(Vec::new()));
        let (cmd_tx, cmd_rx) = tokio_mpsc::unbounded_channel();
        let (ev_tx, ev_rx) = std_mpsc::channel();
        let (msg_tx, msg_rx) = std_mpsc::channel();
        let (ready_tx, ready_rx) = std_mpsc::channel();
        let (done_tx, done_rx) = std_mpsc::channel();

        let addrs = listen_addrs.clone();
        let thread = std::thread::Builder::new()
            .name(format!("rust-libp2p-peer-{peer_id}"))
            .spawn(move || {
                run_thread(keypair, cfg, addrs, cmd_rx, (ev_tx, msg_tx), ready_tx);
                let _ = done_tx.send(());
            })
            .map_err(|e| format!("cannot spawn thread: {e}"))?;

        let peer = RustPeer {
            peer_id,
            listen_addrs,
            commands: cmd_tx,
            events: Mutex::new(ev_rx),
            gossip_messages: Mutex::new(msg_rx),
            done: Mutex::new(done_rx),
            thread: Some(thread),
        };
        match ready_rx.recv_timeout(SPAWN_TIMEOUT) {
            Ok(Ok(())) => Ok(peer),
            Ok(Err(e)) => Err(e),
            Err(std_mpsc::RecvTimeoutError::Timeout) => {
                Err("timed out waiting for the listen address".to_string())
            }
            Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                Err("background thread exited during start-up".to_string())
            }
        }
    }

    /// This node's peer id.
    pub fn peer_id(&self) -> PeerId {
        self.peer_id
    }

    /// The addresses this node listens on, e.g.
    /// `/ip4/127.0.0.1/udp/<port>/quic-v1` (without `/p2p/`).
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        lock(&self.listen_addrs).clone()
    }

    /// The first QUIC listen address with `/p2p/<this peer id>` appended, ready to
    /// be dialed. `None` if the node does not listen.
    pub fn dial_addr(&self) -> Option<Multiaddr> {
        self.listen_addrs()
            .into_iter()
            .find(|a| !a.iter().any(|p| matches!(p, Protocol::Tcp(_))))
            .map(|a| a.with(Protocol::P2p(self.peer_id)))
    }

    /// The TCP listen address with `/p2p/<this peer id>` appended, waiting
    /// up to `timeout` for the listener (see [`PeerConfig::listen_tcp`]).
    pub fn tcp_dial_addr(&self, timeout: Duration) -> Option<Multiaddr> {
        let deadline = std::time::Instant::now() + timeout;
        loop {
            let tcp = self
                .listen_addrs()
                .into_iter()
                .find(|a| a.iter().any(|p| matches!(p, Protocol::Tcp(_))));
            if let Some(a) = tcp {
                return Some(a.with(Protocol::P2p(self.peer_id)));
            }
            if std::time::Instant::now() >= deadline {
                return None;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
    }

    /// Dial `addr` (which may end in `/p2p/<id>`) without waiting. The outcome
    /// is reported as [`PeerEvent::ConnectionEstablished`] or
    /// [`PeerEvent::OutgoingConnectionError`]. A `/p2p/` address is also
    /// remembered for later [`RustPeer::request`] / [`RustPeer::perf`] calls.
    pub fn dial(&self, addr: Multiaddr) {
        self.send(Command::Dial { addr, reply: None });
    }

    /// Dial `addr` and wait (bounded by `timeout`) until that connection is
    /// established; returns the remote peer id. Events are still queued.
    pub fn connect(&self, addr: Multiaddr, timeout: Duration) -> Result<PeerId, String> {
        let (tx, rx) = std_mpsc::channel();
        self.send(Command::Dial {
            addr,
            reply: Some(tx),
        });
        recv_reply(&rx, timeout, "connect")
    }

    /// Remember `addr` for `peer`: [`RustPeer::request`] and
    /// [`RustPeer::perf`] dial it when not connected to `peer`.
    pub fn add_peer_address(&self, peer: PeerId, addr: Multiaddr) {
        self.send(Command::AddPeerAddress { peer, addr });
    }

    /// Open an outbound stream with `protocol` to `peer` (dialing a
    /// remembered address first if not connected, see
    /// [`RustPeer::add_peer_address`]), write `data`, close the write side and
    /// read until EOF; returns what was read. Bounded by `timeout` (which
    /// includes connecting and negotiating).
    ///
    /// With the default [`MultistreamVersion::V1Lazy`] the first flight on
    /// the stream is the multistream header, the protocol proposal, `data` and
    /// FIN, sent without waiting for the listener's confirmation.
    pub fn request(
        &self,
        peer: PeerId,
        protocol: &str,
        data: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<u8>, String> {
        let protocol = StreamProtocol::try_from_owned(protocol.to_string())
            .map_err(|e| format!("invalid protocol {protocol:?}: {e}"))?;
        let (tx, rx) = std_mpsc::channel();
        self.send(Command::Request {
            peer,
            protocol,
            data,
            timeout,
            reply: tx,
        });
        recv_reply(&rx, timeout + REPLY_GRACE, "request")
    }

    /// Run a `/perf/1.0.0` client transfer against `peer` on an existing or
    /// new connection: send `down` as a big-endian u64, upload `up` bytes,
    /// close the write side, then read to EOF. Returns
    /// `(bytes_sent, bytes_received)`, both counting payload only (the 8-byte
    /// prefix is not included). Bounded by `timeout`.
    pub fn perf(
        &self,
        peer: PeerId,
        up: u64,
        down: u64,
        timeout: Duration,
    ) -> Result<(u64, u64), String> {
        let (tx, rx) = std_mpsc::channel();
        self.send(Command::Perf {
            peer,
            up,
            down,
            timeout,
            reply: tx,
        });
        recv_reply(&rx, timeout + REPLY_GRACE, "perf")
    }

    /// Push our identify information to `peers` (over their existing
    /// connections); reported as [`PeerEvent::IdentifyPushed`] once written,
    /// whether or not the remote accepted it (see the crate documentation on
    /// `V1Lazy` and write-only streams).
    pub fn push_identify(&self, peers: Vec<PeerId>) {
        self.send(Command::PushIdentify { peers });
    }

    /// Add an external address: it is advertised in identify's
    /// `listen_addrs` from then on (push it with
    /// [`RustPeer::push_identify`]).
    pub fn add_external_listen_addr(&self, addr: Multiaddr) {
        self.send(Command::AddExternalAddress(addr));
    }

    /// Listen on `addr` (e.g. `<relay addr>/p2p-circuit` to reserve on a
    /// relay); the listen address arrives as [`PeerEvent::Listening`].
    pub fn listen_on(&self, addr: Multiaddr) -> Result<(), String> {
        let (reply, rx) = std_mpsc::channel();
        self.send(Command::Listen(addr, reply));
        rx.recv_timeout(Duration::from_secs(10))
            .map_err(|e| e.to_string())?
    }

    /// Close all connections to `peer`.
    pub fn disconnect(&self, peer: PeerId) {
        self.send(Command::Disconnect(peer));
    }

    /// Peers this node currently has at least one connection to (empty if
    /// the node does not answer within 5 s).
    pub fn connected_peers(&self) -> Vec<PeerId> {
        let (tx, rx) = std_mpsc::channel();
        self.send(Command::ConnectedPeers(tx));
        rx.recv_timeout(Duration::from_secs(5)).unwrap_or_default()
    }

    /// Add `addr` for `peer` to the Kademlia routing table (libp2p-kad's
    /// `add_address`: no check that the peer speaks the DHT protocol).
    /// `Ok(true)` if the peer is in the table (or pending insertion) now,
    /// `Ok(false)` if its bucket is full or the address names another peer.
    pub fn kad_add_address(&self, peer: PeerId, addr: Multiaddr) -> Result<bool, KadError> {
        self.kad_call(KAD_LOCAL_TIMEOUT, |reply| KadCommand::AddAddress {
            peer,
            addr,
            reply,
        })
    }

    /// Remove `peer` from the Kademlia routing table; `Ok(true)` if it was
    /// there.
    pub fn kad_remove_peer(&self, peer: PeerId) -> Result<bool, KadError> {
        self.kad_call(KAD_LOCAL_TIMEOUT, |reply| KadCommand::RemovePeer {
            peer,
            reply,
        })
    }

    /// Run one Kademlia bootstrap (a lookup of our own id, then one lookup
    /// of a random key in each bucket farther than the closest non-empty
    /// one) and wait until all its steps are done; returns the number of
    /// routing table entries then. [`KadError::NoKnownPeers`] if the table
    /// is empty. Bounded by `timeout`.
    pub fn kad_bootstrap(&self, timeout: Duration) -> Result<usize, KadError> {
        self.kad_call(timeout, |reply| KadCommand::Bootstrap { timeout, reply })
    }

    /// Store `value` under `key` locally and at the closest peers to `key`
    /// (libp2p-kad `put_record`, the record's publisher is this node).
    /// Returns how many remote peers acknowledged it (this node's own copy
    /// not counted), at most the replication factor;
    /// [`KadError::QuorumFailed`] if none did. An empty routing table gives
    /// `QuorumFailed` too (libp2p-kad does not fail early).
    pub fn kad_put_value(
        &self,
        key: Vec<u8>,
        value: Vec<u8>,
        timeout: Duration,
    ) -> Result<usize, KadError> {
        self.kad_call(timeout, |reply| KadCommand::PutValue {
            key,
            value,
            timeout,
            reply,
        })
    }

    /// Look `key` up and return every record found during the whole lookup
    /// (one per peer that returned it, plus this node's own copy first, with
    /// `from: None`). [`KadError::NotFound`] if none. If `timeout` passes with
    /// some records found, those are returned.
    pub fn kad_get_value(
        &self,
        key: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<KadRecord>, KadError> {
        self.kad_call(timeout, |reply| KadCommand::GetValue {
            key,
            first_only: false,
            timeout,
            reply,
        })
    }

    /// Like [`RustPeer::kad_get_value`] but stops the lookup at the first
    /// record found and returns it.
    pub fn kad_get_first_value(
        &self,
        key: Vec<u8>,
        timeout: Duration,
    ) -> Result<KadRecord, KadError> {
        let mut found = self.kad_call(timeout, |reply| KadCommand::GetValue {
            key,
            first_only: true,
            timeout,
            reply,
        })?;
        found.pop().ok_or(KadError::NotFound)
    }

    /// Announce this node as a provider of `key` (libp2p-kad
    /// `start_providing`): stored locally, then ADD_PROVIDER to the closest
    /// peers found. libp2p-kad reports success without saying how many
    /// peers took it, even when there were none; the provider entry it sends
    /// carries only confirmed external addresses (none on loopback unless
    /// [`RustPeer::add_external_listen_addr`] was called).
    pub fn kad_start_providing(&self, key: Vec<u8>, timeout: Duration) -> Result<(), KadError> {
        self.kad_call(timeout, |reply| KadCommand::StartProviding {
            key,
            timeout,
            reply,
        })
    }

    /// Look up the providers of `key`, collecting them over the whole lookup
    /// (this node itself first if it provides `key`).
    /// [`KadError::NotFound`] if none. If `timeout` passes with some found,
    /// those are returned.
    pub fn kad_get_providers(
        &self,
        key: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<PeerId>, KadError> {
        self.kad_call(timeout, |reply| KadCommand::GetProviders {
            key,
            timeout,
            reply,
        })
    }

    /// Iterative lookup of the peers closest to `key` (libp2p-kad
    /// `get_closest_peers`: the key's SHA-256 is the target; up to the
    /// replication factor peers that answered, closest first, this node not
    /// included). Addresses are those the lookup learnt, or else the routing
    /// table's. [`KadError::Timeout`] if the lookup timed out.
    pub fn kad_get_closest_peers(
        &self,
        key: Vec<u8>,
        timeout: Duration,
    ) -> Result<Vec<KadPeerInfo>, KadError> {
        self.kad_call(timeout, |reply| KadCommand::GetClosestPeers {
            key,
            timeout,
            reply,
        })
    }

    /// Find the addresses of `peer`: a closest-peers lookup of its id that
    /// must return the peer itself. [`KadError::NotFound`] otherwise.
    pub fn kad_find_peer(
        &self,
        peer: PeerId,
        timeout: Duration,
    ) -> Result<Vec<Multiaddr>, KadError> {
        self.kad_call(timeout, |reply| KadCommand::FindPeer {
            peer,
            timeout,
            reply,
        })
    }

    /// Switch Kademlia to client or server mode; `None` gives libp2p-kad's
    /// automatic mode (server once an external address is confirmed). The
    /// change reaches existing connections at once, and identify pushes the
    /// new protocol list to connected peers (a push reaches a rust-libp2p
    /// listener only with [`MultistreamVersion::V1`], see the crate docs).
    pub fn kad_set_mode(&self, mode: Option<KadMode>) {
        self.send(Command::Kad(KadCommand::SetMode(mode)));
    }

    /// The current Kademlia mode; `None` if Kademlia is disabled or the node
    /// does not answer within 5 s.
    pub fn kad_mode(&self) -> Option<KadMode> {
        let (tx, rx) = std_mpsc::channel();
        self.send(Command::Kad(KadCommand::Mode(tx)));
        rx.recv_timeout(KAD_LOCAL_TIMEOUT).ok().flatten()
    }

    /// The Kademlia routing table: every entry with its addresses (empty if
    /// Kademlia is disabled or the node does not answer within 5 s).
    pub fn kad_routing_table(&self) -> Vec<KadPeerInfo> {
        let (tx, rx) = std_mpsc::channel();
        self.send(Command::Kad(KadCommand::RoutingTable(tx)));
        rx.recv_timeout(KAD_LOCAL_TIMEOUT).unwrap_or_default()
    }

    /// Subscribe to `topic` (an `IdentTopic`: the hash is the string
    /// itself). `Ok(false)` if already subscribed; `Err` if gossipsub is not
    /// enabled or the node does not answer within 5 s.
    pub fn gossip_subscribe(&self, topic: &str) -> Result<bool, String> {
        self.gossip_call("subscribe", |r| {
            GossipCommand::Subscribe(topic.to_string(), r)
        })
    }

    /// Unsubscribe from `topic`; `Ok(false)` if not subscribed.
    pub fn gossip_unsubscribe(&self, topic: &str) -> Result<bool, String> {
        self.gossip_call("unsubscribe", |r| {
            GossipCommand::Unsubscribe(topic.to_string(), r)
        })
    }

    /// Publish `data` on `topic`; returns the message id. The error is
    /// libp2p-gossipsub's `PublishError` in `Debug` form, e.g.
    /// `publish: NoPeersSubscribedToTopic`, `publish: Duplicate`,
    /// `publish: MessageTooLarge`, `publish: AllQueuesFull(n)`.
    pub fn gossip_publish(&self, topic: &str, data: Vec<u8>) -> Result<MessageId, String> {
        self.gossip_call("publish", |r| {
            GossipCommand::Publish(topic.to_string(), data, r)
        })
    }

    /// The next message received through gossipsub, waiting at most
    /// `timeout`. Messages are queued separately from [`PeerEvent`]s.
    pub fn gossip_next_message(&self, timeout: Duration) -> Option<GossipMessage> {
        lock(&self.gossip_messages).recv_timeout(timeout).ok()
    }

    /// Report the application's verdict on a message received under
    /// [`GossipValidation::Manual`]; `Ok(false)` if libp2p-gossipsub no
    /// longer has it (already reported, or it left the message cache).
    pub fn gossip_report_validation(
        &self,
        id: &MessageId,
        propagation_source: PeerId,
        acceptance: GossipAcceptance,
    ) -> Result<bool, String> {
        self.gossip_call("report_validation", |reply| {
            GossipCommand::ReportValidation {
                id: id.clone(),
                propagation_source,
                acceptance,
                reply,
            }
        })
    }

    /// Our mesh peers for `topic` (empty if gossipsub is disabled or the
    /// node does not answer within 5 s).
    pub fn gossip_mesh_peers(&self, topic: &str) -> Vec<PeerId> {
        self.gossip_query(|r| GossipCommand::MeshPeers(topic.to_string(), r))
            .unwrap_or_default()
    }

    /// Every peer gossipsub knows, with the topics it is subscribed to.
    pub fn gossip_all_peers(&self) -> Vec<(PeerId, Vec<String>)> {
        self.gossip_query(GossipCommand::AllPeers)
            .unwrap_or_default()
    }

    /// The gossipsub version negotiated with each peer, as
    /// libp2p-gossipsub's `PeerKind` displays it (`"Gossipsub v1.2"`,
    /// `"Gossipsub v1.1"`, `"Not Supported"`, ...).
    pub fn gossip_peer_protocols(&self) -> Vec<(PeerId, String)> {
        self.gossip_query(GossipCommand::PeerProtocols)
            .unwrap_or_default()
    }

    /// libp2p-gossipsub's metrics in OpenMetrics text; `None` unless
    /// [`GossipConfig::metrics`] is on.
    pub fn gossip_metrics(&self) -> Option<String> {
        self.gossip_query(GossipCommand::Metrics).flatten()
    }

    /// How many IDONTWANT control messages this node has received (the
    /// `idontwant_msgs` counter); `None` unless [`GossipConfig::metrics`] is
    /// on.
    pub fn gossip_idontwant_received(&self) -> Option<u64> {
        self.gossip_metrics()
            .map(|text| metric_total(&text, "idontwant_msgs"))
    }

    /// Stop polling the swarm until [`RustPeer::resume_swarm`]: commands
    /// other than resume and shutdown are held, and nothing is read from
    /// the swarm. Its connection tasks keep running (QUIC keeps the
    /// connection alive) until their small event buffers to the swarm are
    /// full; then they stop reading inbound streams, so QUIC flow control
    /// pushes back on the senders. This makes a peer that "stops reading
    /// its gossipsub stream" without closing anything.
    pub fn pause_swarm(&self) {
        self.send(Command::PauseSwarm(true));
    }

    /// Resume polling after [`RustPeer::pause_swarm`].
    pub fn resume_swarm(&self) {
        self.send(Command::PauseSwarm(false));
    }

    fn gossip_call<T>(
        &self,
        what: &str,
        make: impl FnOnce(std_mpsc::Sender<Result<T, String>>) -> GossipCommand,
    ) -> Result<T, String> {
        let (tx, rx) = std_mpsc::channel();
        self.send(Command::Gossip(make(tx)));
        recv_reply(&rx, GOSSIP_LOCAL_TIMEOUT, what)
    }

    fn gossip_query<T>(
        &self,
        make: impl FnOnce(std_mpsc::Sender<T>) -> GossipCommand,
    ) -> Option<T> {
        let (tx, rx) = std_mpsc::channel();
        self.send(Command::Gossip(make(tx)));
        rx.recv_timeout(GOSSIP_LOCAL_TIMEOUT).ok()
    }

    fn kad_call<T>(
        &self,
        timeout: Duration,
        make: impl FnOnce(std_mpsc::Sender<Result<T, KadError>>) -> KadCommand,
    ) -> Result<T, KadError> {
        let (tx, rx) = std_mpsc::channel();
        self.send(Command::Kad(make(tx)));
        match rx.recv_timeout(timeout + REPLY_GRACE) {
            Ok(r) => r,
            Err(std_mpsc::RecvTimeoutError::Timeout) => Err(KadError::Timeout),
            Err(std_mpsc::RecvTimeoutError::Disconnected) => {
                Err(KadError::Other("background thread gone".to_string()))
            }
        }
    }

    /// The next event, waiting at most `timeout`.
    pub fn next_event(&self, timeout: Duration) -> Option<PeerEvent> {
        lock(&self.events).recv_timeout(timeout).ok()
    }

    /// Wait (at most `timeout`) for the first event for which `f` returns
    /// `Some`, discarding the events before it.
    pub fn wait_for<T>(
        &self,
        timeout: Duration,
        mut f: impl FnMut(&PeerEvent) -> Option<T>,
    ) -> Option<T> {
        let deadline = Instant::now() + timeout;
        let events = lock(&self.events);
        loop {
            let left = deadline.saturating_duration_since(Instant::now());
            let event = events.recv_timeout(left).ok()?;
            if let Some(t) = f(&event) {
                return Some(t);
            }
        }
    }

    /// All events queued right now, without waiting.
    pub fn drain_events(&self) -> Vec<PeerEvent> {
        lock(&self.events).try_iter().collect()
    }

    fn send(&self, cmd: Command) {
        // If the thread is gone, the reply channel inside `cmd` is dropped and
        // the caller sees a "background thread gone" error.
        let _ = self.commands.send(cmd);
    }
}

impl Drop for RustPeer {
    /// Stops the node and joins its thread, waiting at most 5 s (the thread
    /// is detached if it does not finish in time).
    fn drop(&mut self) {
        let _ = self.commands.send(Command::Shutdown);
        let finished = lock(&self.done).recv_timeout(SHUTDOWN_TIMEOUT).is_ok();
        if let Some(thread) = self.thread.take()
            && finished
        {
            let _ = thread.join();
        }
    }
}

fn lock<T>(m: &Mutex<T>) -> std::sync::MutexGuard<'_, T> {
    m.lock().unwrap_or_else(|e| e.into_inner())
}

fn recv_reply<T>(
    rx: &std_mpsc::Receiver<Result<T, String>>,
    timeout: Duration,
    what: &str,
) -> Result<T, String> {
    match rx.recv_timeout(timeout) {
        Ok(r) => r,
        Err(std_mpsc::RecvTimeoutError::Timeout) => Err(format!("{what}: timed out")),
        Err(std_mpsc::RecvTimeoutError::Disconnected) => {
            Err(format!("{what}: background thread gone"))
        }
    }
}

// ---------------------------------------------------------------------------
// Background thread
// ---------------------------------------------------------------------------

#[derive(NetworkBehaviour)]
struct Behaviour {
    ping: ping::Behaviour,
    identify: identify::Behaviour,
    stream: libp2p_stream::Behaviour,
    kad: Toggle<libp2p::kad::Behaviour<libp2p::kad::store::MemoryStore>>,
    gossipsub: Toggle<libp2p::gossipsub::Behaviour>,
    autonat_client: Toggle<autonat::Client>,
    autonat_server: Toggle<autonat::Server>,
    relay_server: Toggle<libp2p::relay::Behaviour>,
    relay_client: libp2p::relay::client::Behaviour,
    dcutr: libp2p::dcutr::Behaviour,
}

type EventTx = std_mpsc::Sender<PeerEvent>;
/// The event channel and the gossip message channel.
type EventTxs = (EventTx, std_mpsc::Sender<GossipMessage>);

fn run_thread(
    keypair: identity::Keypair,
    cfg: PeerConfig,
    listen_addrs: Arc<Mutex<Vec<Multiaddr>>>,
    cmd_rx: tokio_mpsc::UnboundedReceiver<Command>,
    events: EventTxs,
    ready: std_mpsc::Sender<Result<(), String>>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot build tokio runtime: {e}")));
            return;
        }
    };
    rt.block_on(async move {
        let mut node = match Node::new(keypair, &cfg, listen_addrs, events, ready) {
            Ok(node) => node,
            Err((e, ready)) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        node.run(cmd_rx).await;
    });
}

struct Node {
    swarm: Swarm<Behaviour>,
    events: EventTx,
    listen_addrs: Arc<Mutex<Vec<Multiaddr>>>,
    /// Sent `Ok` once listening (or at once if not listening).
    ready: Option<std_mpsc::Sender<Result<(), String>>>,
    /// Addresses to dial per peer for `request` / `perf`.
    addresses: HashMap<PeerId, Vec<Multiaddr>>,
    /// Blocking `connect` calls waiting for their connection.
    pending_connects: HashMap<ConnectionId, std_mpsc::Sender<Result<PeerId, String>>>,
    /// Kademlia queries that blocking `kad_*` calls wait for.
    kad_pending: kad::PendingMap,
    /// [`KadConfig::add_identified_peers`].
    kad_add_identified: bool,
    /// [`KadConfig::replication_factor`].
    kad_replication: usize,
    /// Gossipsub's metrics, validator and message channel (`None` when
    /// gossipsub is disabled).
    gossip: Option<GossipState>,
    /// [`RustPeer::pause_swarm`] is in force.
    paused: bool,
}

type StartError = (String, std_mpsc::Sender<Result<(), String>>);

impl Node {
    fn new(
        keypair: identity::Keypair,
        cfg: &PeerConfig,
        listen_addrs: Arc<Mutex<Vec<Multiaddr>>>,
        (events, messages): EventTxs,
        ready: std_mpsc::Sender<Result<(), String>>,
    ) -> Result<Node, StartError> {
        let ping_cfg = ping::Config::new().with_interval(cfg.ping_interval);
        let agent = cfg.agent_version.clone();
        let version = cfg.multistream_version;
        let idle = cfg.idle_connection_timeout;
        let (autonat_client, autonat_server) = (cfg.autonat_client, cfg.autonat_server);
        let relay_server = cfg.relay_server;
        let local = keypair.public().to_peer_id();
        let kad_behaviour = match &cfg.kad {
            Some(k) => match kad::behaviour(local, k) {
                Ok(b) => Some(b),
                Err(e) => return Err((e, ready)),
            },
            None => None,
        };
        let (gossip_behaviour, gossip) = match &cfg.gossipsub {
            Some(g) => match gossip::behaviour(&keypair, g) {
                Ok((b, registry)) => {
                    let validator = match &g.validation {
                        GossipValidation::Callback(f) => Some(f.clone()),
                        _ => None,
                    };
                    let state = GossipState {
                        registry,
                        validator,
                        messages,
                    };
                    (Some(b), Some(state))
                }
                Err(e) => return Err((e, ready)),
            },
            None => (None, None),
        };
        // The security protocols in the order the dialer proposes them; the
        // two orders give two transport types, hence the macro.
        macro_rules! build_swarm {
            ($security:expr) => {
                SwarmBuilder::with_existing_identity(keypair)
                    .with_tokio()
                    .with_tcp(
                        libp2p::tcp::Config::default().nodelay(true),
                        $security,
                        libp2p::yamux::Config::default,
                    )
                    .map_err(|e| e.to_string())
                    .and_then(|b| {
                        b.with_quic()
                            .with_relay_client(
                                libp2p::noise::Config::new,
                                libp2p::yamux::Config::default,
                            )
                            .map_err(|e| e.to_string())
                    })
                    .and_then(|b| {
                        b.with_behaviour(|key, relay_client| Behaviour {
                            ping: ping::Behaviour::new(ping_cfg),
                            identify: identify::Behaviour::new(
                                identify::Config::new(
                                    IDENTIFY_PROTOCOL_VERSION.to_string(),
                                    key.public(),
                                )
                                .with_agent_version(agent),
                            ),
                            stream: libp2p_stream::Behaviour::new(),
                            kad: Toggle::from(kad_behaviour),
                            gossipsub: Toggle::from(gossip_behaviour),
                            autonat_client: Toggle::from(
                                autonat_client.then(autonat::Client::default),
                            ),
                            autonat_server: Toggle::from(
                                autonat_server.then(autonat::Server::default),
                            ),
                            relay_server: Toggle::from(relay_server.then(|| {
                                libp2p::relay::Behaviour::new(
                                    key.public().to_peer_id(),
                                    libp2p::relay::Config::default(),
                                )
                            })),
                            relay_client,
                            dcutr: libp2p::dcutr::Behaviour::new(key.public().to_peer_id()),
                        })
                        .map_err(|e| e.to_string())
                    })
                    .map(|b| {
                        b.with_swarm_config(|c| {
                            c.with_idle_connection_timeout(idle)
                                .with_substream_upgrade_protocol_override(version)
                        })
                        .build()
                    })
            };
        }
        let built = if cfg.tcp_tls_first {
            build_swarm!((libp2p::tls::Config::new, libp2p::noise::Config::new))
        } else {
            build_swarm!((libp2p::noise::Config::new, libp2p::tls::Config::new))
        };
        let mut swarm = match built {
            Ok(swarm) => swarm,
            Err(e) => return Err((format!("cannot build the swarm: {e}"), ready)),
        };

        let mut control = swarm.behaviour().stream.new_control();
        for p in &cfg.echo_protocols {
            let proto = match StreamProtocol::try_from_owned(p.clone()) {
                Ok(proto) => proto,
                Err(e) => return Err((format!("invalid echo protocol {p:?}: {e}"), ready)),
            };
            let incoming = match control.accept(proto) {
                Ok(i) => i,
                Err(e) => return Err((format!("echo protocol {p:?}: {e}"), ready)),
            };
            tokio::spawn(serve(incoming, p.clone(), events.clone(), echo_stream));
        }
        if cfg.perf_server {
            let incoming = match control.accept(StreamProtocol::new(PERF_PROTOCOL)) {
                Ok(i) => i,
                Err(e) => return Err((format!("perf protocol: {e}"), ready)),
            };
            tokio::spawn(serve(
                incoming,
                PERF_PROTOCOL.to_string(),
                events.clone(),
                perf_server_stream,
            ));
        }

        let ready = if cfg.listen {
            if let Err(e) = swarm.listen_on(cfg.quic_listen_addr.clone()) {
                return Err((format!("listen_on failed: {e}"), ready));
            }
            if cfg.listen_tcp {
                let tcp: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().expect("static multiaddr");
                if let Err(e) = swarm.listen_on(tcp) {
                    return Err((format!("listen_on tcp failed: {e}"), ready));
                }
            }
            Some(ready)
        } else {
            let _ = ready.send(Ok(()));
            None
        };

        Ok(Node {
            swarm,
            events,
            listen_addrs,
            ready,
            addresses: HashMap::new(),
            pending_connects: HashMap::new(),
            kad_pending: HashMap::new(),
            kad_add_identified: cfg.kad.as_ref().is_some_and(|k| k.add_identified_peers),
            kad_replication: cfg.kad.as_ref().map_or(0, |k| k.replication_factor.get()),
            gossip,
            paused: false,
        })
    }

    async fn run(&mut self, mut cmd_rx: tokio_mpsc::UnboundedReceiver<Command>) {
        loop {
            // Deadlines of blocking kad calls; far in the future when there
            // are none (the branch is disabled then anyway).
            let deadline = self.kad_next_deadline();
            let wake = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            if self.paused {
                // Paused: only resume and shutdown are acted on; other
                // commands wait (their callers time out) so that nothing
                // touches the swarm.
                match cmd_rx.recv().await {
                    None | Some(Command::Shutdown) => break,
                    Some(Command::PauseSwarm(p)) => self.paused = p,
                    Some(_) => {}
                }
                continue;
            }
            tokio::select! {
                cmd = cmd_rx.recv() => match cmd {
                    None | Some(Command::Shutdown) => break,
                    Some(cmd) => self.on_command(cmd),
                },
                ev = self.swarm.select_next_some() => self.on_swarm_event(ev),
                _ = tokio::time::sleep_until(wake.into()), if deadline.is_some() => {
                    self.kad_expire(Instant::now());
                }
            }
        }
    }

    fn emit(&self, ev: PeerEvent) {
        let _ = self.events.send(ev);
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Dial { addr, reply } => {
                let opts = match addr.iter().last() {
                    Some(Protocol::P2p(peer)) => {
                        self.remember(peer, addr.clone());
                        DialOpts::peer_id(peer)
                            .addresses(vec![addr.clone()])
                            .condition(PeerCondition::Always)
                            .build()
                    }
                    _ => DialOpts::unknown_peer_id().address(addr.clone()).build(),
                };
                let id = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        if let Some(reply) = reply {
                            self.pending_connects.insert(id, reply);
                        }
                    }
                    Err(e) => {
                        let error = format!("dial {addr}: {e}");
                        self.emit(PeerEvent::OutgoingConnectionError {
                            peer: None,
                            error: error.clone(),
                        });
                        if let Some(reply) = reply {
                            let _ = reply.send(Err(error));
                        }
                    }
                }
            }
            Command::AddPeerAddress { peer, addr } => self.remember(peer, addr),
            Command::Request {
                peer,
                protocol,
                data,
                timeout,
                reply,
            } => {
                self.ensure_dialing(peer);
                let control = self.swarm.behaviour().stream.new_control();
                tokio::spawn(async move {
                    let r = tokio::time::timeout(timeout, request(control, peer, protocol, data))
                        .await
                        .unwrap_or_else(|_| Err("request: timed out".to_string()));
                    let _ = reply.send(r);
                });
            }
            Command::Perf {
                peer,
                up,
                down,
                timeout,
                reply,
            } => {
                self.ensure_dialing(peer);
                let control = self.swarm.behaviour().stream.new_control();
                tokio::spawn(async move {
                    let r = tokio::time::timeout(timeout, perf_client(control, peer, up, down))
                        .await
                        .unwrap_or_else(|_| Err("perf: timed out".to_string()));
                    let _ = reply.send(r);
                });
            }
            Command::PushIdentify { peers } => self.swarm.behaviour_mut().identify.push(peers),
            Command::AddExternalAddress(addr) => self.swarm.add_external_address(addr),
            Command::Listen(addr, reply) => {
                let result = self
                    .swarm
                    .listen_on(addr)
                    .map(|_| ())
                    .map_err(|e| e.to_string());
                let _ = reply.send(result);
            }
            Command::Disconnect(peer) => {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Command::ConnectedPeers(reply) => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            Command::Kad(cmd) => self.on_kad_command(cmd),
            Command::Gossip(cmd) => self.on_gossip_command(cmd),
            Command::PauseSwarm(p) => self.paused = p,
            Command::Shutdown => {}
        }
    }

    fn remember(&mut self, peer: PeerId, addr: Multiaddr) {
        let list = self.addresses.entry(peer).or_default();
        if !list.contains(&addr) {
            list.push(addr);
        }
    }

    /// If not connected to `peer` but an address is known, dial it so that
    /// libp2p-stream's pending `open_stream` gets a connection.
    fn ensure_dialing(&mut self, peer: PeerId) {
        if self.swarm.is_connected(&peer) {
            return;
        }
        let Some(addrs) = self.addresses.get(&peer).cloned() else {
            return;
        };
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        if let Err(e) = self.swarm.dial(opts) {
            self.emit(PeerEvent::Other(format!("dial {peer} for a stream: {e}")));
        }
    }

    fn on_swarm_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                lock(&self.listen_addrs).push(address.clone());
                if let Some(ready) = self.ready.take() {
                    let _ = ready.send(Ok(()));
                }
                self.emit(PeerEvent::Listening(address));
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                if let Some(reply) = self.pending_connects.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
                self.emit(PeerEvent::ConnectionEstablished {
                    peer: peer_id,
                    remote_addr: endpoint.get_remote_address().clone(),
                    dialer: endpoint.is_dialer(),
                });
            }
            SwarmEvent::ConnectionClosed { peer_id, cause, .. } => {
                self.emit(PeerEvent::ConnectionClosed {
                    peer: peer_id,
                    cause: cause.map(|c| c.to_string()),
                });
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                let error = error.to_string();
                if let Some(reply) = self.pending_connects.remove(&connection_id) {
                    let _ = reply.send(Err(error.clone()));
                }
                self.emit(PeerEvent::OutgoingConnectionError {
                    peer: peer_id,
                    error,
                });
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                peer_id,
                ..
            } => self.emit(PeerEvent::Other(format!(
                "incoming connection error from {send_back_addr} (peer {peer_id:?}): {error}"
            ))),
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                lock(&self.listen_addrs).retain(|a| a != &address);
                self.emit(PeerEvent::Other(format!(
                    "listen address expired: {address}"
                )));
            }
            SwarmEvent::ListenerClosed { reason, .. } => {
                self.emit(PeerEvent::Other(format!("listener closed: {reason:?}")));
            }
            SwarmEvent::ListenerError { error, .. } => {
                self.emit(PeerEvent::Other(format!("listener error: {error}")));
            }
            SwarmEvent::NewExternalAddrCandidate { address } => {
                self.emit(PeerEvent::Other(format!(
                    "new external address candidate: {address}"
                )));
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event { peer, result, .. })) => {
                self.emit(PeerEvent::Ping {
                    peer,
                    result: result.map_err(|e| e.to_string()),
                });
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(ev)) => self.on_identify(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Stream(())) => {}
            SwarmEvent::Behaviour(BehaviourEvent::Kad(ev)) => self.on_kad_event(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(ev)) => self.on_gossip_event(ev),
            SwarmEvent::Behaviour(BehaviourEvent::AutonatClient(ev)) => {
                self.emit(autonat::client_event(ev))
            }
            SwarmEvent::Behaviour(BehaviourEvent::AutonatServer(ev)) => {
                self.emit(autonat::server_event(ev))
            }
            SwarmEvent::Behaviour(BehaviourEvent::RelayServer(ev)) => {
                self.emit(PeerEvent::Relay(format!("{ev:?}")))
            }
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(ev)) => {
                self.emit(PeerEvent::Relay(format!("{ev:?}")))
            }
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(ev)) => self.emit(PeerEvent::Dcutr {
                peer: ev.remote_peer_id,
                result: ev.result.map(|_| ()).map_err(|e| e.to_string()),
            }),
            // Dialing, IncomingConnection, external address bookkeeping: not
            // interesting for tests.
            _ => {}
        }
    }

    fn on_identify(&mut self, ev: identify::Event) {
        let ev = match ev {
            identify::Event::Received { peer_id, info, .. } => {
                self.kad_on_identify(peer_id, &info.protocols, &info.listen_addrs);
                PeerEvent::IdentifyReceived {
                    peer: peer_id,
                    info: info.into(),
                }
            }
            identify::Event::Sent { peer_id, .. } => PeerEvent::IdentifySent { peer: peer_id },
            identify::Event::Pushed { peer_id, .. } => PeerEvent::IdentifyPushed { peer: peer_id },
            identify::Event::Error { peer_id, error, .. } => PeerEvent::IdentifyError {
                peer: peer_id,
                error: error.to_string(),
            },
        };
        self.emit(ev);
    }
}

// ---------------------------------------------------------------------------
// Stream protocols
// ---------------------------------------------------------------------------

/// Accept inbound streams on one protocol, handling each on its own task.
/// (libp2p-stream drops inbound streams if this loop falls behind, so the
/// per-stream work must not run inline.)
async fn serve<F, Fut>(
    mut incoming: libp2p_stream::IncomingStreams,
    protocol: String,
    events: EventTx,
    handler: F,
) where
    F: Fn(libp2p::Stream) -> Fut,
    Fut: Future<Output = std::io::Result<usize>> + Send + 'static,
{
    while let Some((peer, stream)) = incoming.next().await {
        let fut = handler(stream);
        let events = events.clone();
        let protocol = protocol.clone();
        tokio::spawn(async move {
            let ev = match fut.await {
                Ok(bytes_read) => PeerEvent::InboundStream {
                    peer,
                    protocol,
                    bytes_read,
                },
                Err(e) => PeerEvent::Other(format!("inbound {protocol} stream from {peer}: {e}")),
            };
            let _ = events.send(ev);
        });
    }
}

/// Echo: read to EOF, write everything back, close.
async fn echo_stream(mut stream: libp2p::Stream) -> std::io::Result<usize> {
    let mut buf = Vec::new();
    stream.read_to_end(&mut buf).await?;
    stream.write_all(&buf).await?;
    stream.close().await?;
    Ok(buf.len())
}

/// Perf server: read the u64 length, drain the upload to EOF, send that many
/// bytes, close. Returns the uploaded payload size.
async fn perf_server_stream(mut stream: libp2p::Stream) -> std::io::Result<usize> {
    let mut len = [0u8; 8];
    stream.read_exact(&mut len).await?;
    let to_send = u64::from_be_bytes(len);
    let received = drain(&mut stream).await?;
    send_zeros(&mut stream, to_send).await?;
    stream.close().await?;
    Ok(received as usize)
}

async fn request(
    mut control: libp2p_stream::Control,
    peer: PeerId,
    protocol: StreamProtocol,
    data: Vec<u8>,
) -> Result<Vec<u8>, String> {
    let mut stream = control
        .open_stream(peer, protocol)
        .await
        .map_err(|e| e.to_string())?;
    let io = async {
        stream.write_all(&data).await?;
        stream.close().await?;
        let mut out = Vec::new();
        stream.read_to_end(&mut out).await?;
        Ok::<_, std::io::Error>(out)
    };
    io.await.map_err(|e| format!("request stream: {e}"))
}

async fn perf_client(
    mut control: libp2p_stream::Control,
    peer: PeerId,
    up: u64,
    down: u64,
) -> Result<(u64, u64), String> {
    let mut stream = control
        .open_stream(peer, StreamProtocol::new(PERF_PROTOCOL))
        .await
        .map_err(|e| e.to_string())?;
    let io = async {
        stream.write_all(&down.to_be_bytes()).await?;
        send_zeros(&mut stream, up).await?;
        stream.close().await?;
        let received = drain(&mut stream).await?;
        Ok::<_, std::io::Error>((up, received))
    };
    io.await.map_err(|e| format!("perf stream: {e}"))
}

async fn send_zeros(stream: &mut libp2p::Stream, mut n: u64) -> std::io::Result<()> {
    let chunk = [0u8; PERF_CHUNK];
    while n > 0 {
        let k = n.min(PERF_CHUNK as u64) as usize;
        stream.write_all(&chunk[..k]).await?;
        n -= k as u64;
    }
    Ok(())
}

async fn drain(stream: &mut libp2p::Stream) -> std::io::Result<u64> {
    let mut buf = vec![0u8; PERF_CHUNK];
    let mut total = 0u64;
    loop {
        match stream.read(&mut buf).await? {
            0 => return Ok(total),
            n => total += n as u64,
        }
    }
}
