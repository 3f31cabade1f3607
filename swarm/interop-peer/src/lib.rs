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
    sync::{Arc, Mutex, mpsc as std_mpsc},
    thread::JoinHandle,
    time::{Duration, Instant},
};

use libp2p::{StreamProtocol, identify, multiaddr::Protocol};
use tokio::sync::mpsc as tokio_mpsc;

mod autonat;
mod gossip;
mod kad;
mod kad_api;
mod node;
mod streams;

use node::{Node, run_thread};

use gossip::GossipCommand;
pub use gossip::{
    GossipAcceptance, GossipConfig, GossipMessage, GossipMessageIdFn, GossipSigning,
    GossipValidation, GossipValidator, GossipVersions, content_hash_id, metric_total,
};
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
