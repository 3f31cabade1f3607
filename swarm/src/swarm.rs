//! The swarm core: QUIC endpoints, the connection and stream tables, the peer
//! store, timers and the plugins, with no I/O of its own.
//!
//! # Driving contract
//!
//! A driver (the mio [`Runtime`](crate::Runtime), or a test with a virtual
//! clock) owns the UDP sockets and the clock, and runs turns:
//!
//! 1. **Feed datagrams**: [`Swarm::feed_datagram`] for each received
//!    datagram. A driver should cap a turn at [`MAX_DATAGRAMS_PER_TURN`] per
//!    socket so one busy peer cannot starve timers and other sockets.
//! 2. **Feed wake-ups**: [`Swarm::feed_wakeup`] after the [`Wake`](crate::Wake)
//!    fired: commands from [`SwarmHandle`](crate::SwarmHandle)s and streams
//!    touched by other threads.
//! 3. **Feed time**: [`Swarm::feed_timeout`] once `now` has reached
//!    [`Swarm::poll_timeout`].
//! 4. **Drain datagrams**: [`Swarm::poll_transmit`] until it returns `None`,
//!    sending each on the socket it names. If a socket would block, keep the
//!    datagram and retry it before polling more.
//! 5. **Sleep** until the next datagram, wake-up or [`Swarm::poll_timeout`].
//!
//! Each feed call runs, before it returns, every plugin callback it causes,
//! in order; plugins call back into the swarm through their
//! [`Context`], which acts at once (a write goes straight into QUIC's send
//! buffer) or queues further callbacks. Sockets are bound synchronously
//! through the driver's [`SocketBinder`].

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::io;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr, SocketAddr};
use std::sync::mpsc::{Receiver, Sender, SyncSender, TrySendError};
use std::sync::{Arc, mpsc};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use quinn_proto::{
    ConnectionHandle, DatagramEvent, Dir, EcnCodepoint, Endpoint, EndpointConfig, Event, ReadError,
    ReadableError, ServerConfig, StreamEvent, StreamId, Transmit, VarInt, WriteError,
};
use rustc_hash::FxHashMap;
use slab::Slab;
use tracing::{debug, info, trace, warn};

use crate::address::{canonical, parse_quic_addr, quic_multiaddr};
use crate::config::SwarmConfig;
use crate::connection::{Connection, Origin, Requester, SocketIndex};
use crate::error::{
    ConnectionError, DialError, ListenError, OpenStreamError, PacketError, StreamError, cause,
};
use crate::handle::{Command, SwarmHandle};
use crate::ids::{ConnId, PluginId, StreamRef, TimerId};
use crate::limits::ConnectionLimit;
use crate::multistream::{Negotiation, Progress};
use crate::packet_handle::{DetachedPacketFlow, FlowShared};
use crate::peer_store::PeerStore;
use crate::protocol::{Context, Message, PacketFlow, Protocol, ProtocolEvent, StreamTarget};
use crate::stream::{HandleWaiter, Owner, Stream};
use crate::threaded::{DetachedStream, Shared};
use crate::tls::TlsIdentity;
use crate::transport;
use crate::wake::{Notifier, Wake};

/// Datagrams a driver should feed per socket per turn before it runs timers
/// and transmits (fairness between sockets and peers).
pub const MAX_DATAGRAMS_PER_TURN: usize = 256;

/// How long addresses learned by dialing stay in the peer store.
const DIALED_ADDRESS_TTL: Duration = Duration::from_secs(3600);

/// Application error code sent when a limit refuses a connection.
pub const CLOSE_CODE_LIMIT: u32 = 0x10;
/// Application error code sent when an idle connection is closed.
pub const CLOSE_CODE_IDLE: u32 = 0;
/// Stream error code used when multistream-select fails or times out.
pub const RESET_CODE_NEGOTIATION: u32 = 0x1;

/// Binds UDP sockets for the swarm. The mio runtime binds real sockets; a
/// test driver may hand out virtual addresses.
pub trait SocketBinder: Send {
    /// Bind a UDP socket to `addr` and return the bound address (the real
    /// port when `addr`'s port is 0). Sockets are numbered in bind order
    /// from 0; [`Swarm::poll_transmit`] names them by that number.
    fn bind(&mut self, addr: SocketAddr) -> io::Result<SocketAddr>;
}

/// What the swarm tells applications (see [`SwarmHandle::subscribe`]).
#[derive(Clone, Debug)]
pub enum SwarmEvent {
    /// We listen on this address (resolved; no port 0).
    ListenAddr(Multiaddr),
    /// A connection finished its handshake.
    ConnectionEstablished {
        /// The connection.
        conn: ConnId,
        /// The remote's PeerId, from its certificate.
        peer: PeerId,
        /// The remote's address as we see it.
        remote_addr: Multiaddr,
        /// Whether we dialed it.
        dialer: bool,
    },
    /// An established connection closed.
    ConnectionClosed {
        /// The connection.
        conn: ConnId,
        /// The remote's PeerId.
        peer: PeerId,
        /// Why it closed.
        reason: String,
    },
    /// A dial failed.
    DialFailed {
        /// The connection that was being set up.
        conn: ConnId,
        /// Why.
        error: DialError,
    },
    /// An inbound connection failed before its handshake completed (a bad
    /// certificate, a timeout, a limit).
    IncomingConnectionFailed {
        /// The remote's address.
        remote_addr: Multiaddr,
        /// Why.
        reason: String,
    },
    /// An event a plugin emitted (ping RTTs, identify results, …).
    Protocol(ProtocolEvent),
}

/// One UDP socket and its QUIC endpoint.
struct Socket {
    endpoint: Endpoint,
    local: SocketAddr,
    listening: bool,
}

/// A plugin call waiting to be made.
enum Callback {
    Start(PluginId),
    ListenAddr(Multiaddr),
    NewConnection(ConnId, PeerId),
    ClosedConnection(ConnId, PeerId),
    DialFailure(PluginId, ConnId, DialError),
    Inbound(PluginId, StreamRef, String),
    Negotiated(PluginId, StreamRef, String),
    Data(PluginId, StreamRef, Bytes),
    Writable(PluginId, StreamRef),
    Finished(PluginId, StreamRef),
    Closed(PluginId, StreamRef, StreamError),
    Stopped(PluginId, StreamRef, u64),
    Timer(PluginId, u64),
    Event(Option<PluginId>, ProtocolEvent),
    Message(PluginId, Message),
    InboundFlow(PluginId, PacketFlow, String),
    FlowReady(PluginId, PacketFlow, String),
    PacketData(PluginId, PacketFlow, Bytes),
    FlowClosed(PluginId, ConnId, Option<PacketFlow>, PacketError),
}

/// Something due at an instant. Entries are checked when popped, so stale
/// ones (a connection gone, a timer cancelled) are simply skipped.
#[derive(Clone, Copy, Debug, PartialEq, Eq, PartialOrd, Ord)]
enum Deadline {
    Quic(ConnId),
    Timer(u64),
    Negotiation(ConnId),
    Handshake(ConnId),
    Idle(ConnId),
}

/// Everything but the plugins; a plugin's [`Context`] borrows this.
pub(crate) struct Core {
    config: SwarmConfig,
    local_peer: PeerId,
    tls: TlsIdentity,
    endpoint_config: Arc<EndpointConfig>,
    server_config: Arc<ServerConfig>,
    transport: Arc<quinn_proto::TransportConfig>,
    binder: Box<dyn SocketBinder>,
    sockets: Vec<Socket>,
    connections: Slab<Connection>,
    next_generation: u32,
    by_handle: FxHashMap<(SocketIndex, ConnectionHandle), usize>,
    protocols: HashMap<String, PluginId>,
    packet_protocols: HashMap<String, PluginId>,
    /// Datagrams for no open flow (unknown id, closed flow, malformed).
    dropped_datagrams: u64,
    plugin_names: Vec<&'static str>,
    peer_store: PeerStore,
    deadlines: BinaryHeap<Reverse<(Instant, Deadline)>>,
    timers: HashMap<u64, (PluginId, u64)>,
    next_timer: u64,
    callbacks: VecDeque<Callback>,
    /// Connections whose quinn-proto events must be drained.
    touched: Vec<usize>,
    /// Connections to ask for datagrams in `poll_transmit`.
    transmit_queue: VecDeque<usize>,
    /// Datagrams an endpoint produced itself (refusals, stateless resets).
    endpoint_transmits: VecDeque<(SocketIndex, Transmit, Vec<u8>)>,
    notifier: Notifier,
    commands: Receiver<Command>,
    command_sender: Sender<Command>,
    subscribers: Vec<SyncSender<SwarmEvent>>,
    dropped_events: u64,
    now: Instant,
    shutting_down: bool,
    scratch: Vec<u8>,
}

/// The swarm: QUIC endpoints, connections, streams, peer store and timers,
/// plus the plugins it calls. See the module docs for the driving contract.
pub struct Swarm {
    core: Core,
    plugins: Vec<Option<Box<dyn Protocol>>>,
    started: bool,
}

impl Swarm {
    /// Build a swarm. `binder` binds its sockets; `waker` wakes the driver
    /// when another thread needs the swarm. No socket is bound yet: call
    /// [`Swarm::listen`] or dial.
    pub fn new(
        config: SwarmConfig,
        binder: Box<dyn SocketBinder>,
        waker: Arc<dyn Wake>,
        now: Instant,
    ) -> Result<Self, crate::tls::TlsError> {
        let local_peer = config.keypair.public().to_peer_id();
        let tls = TlsIdentity::new(&config.keypair)?;
        let transport = Arc::new(transport::transport_config(&config));
        let server_config = Arc::new(transport::server_config(&tls, transport.clone())?);
        let (command_sender, commands) = mpsc::channel();
        Ok(Self {
            core: Core {
                config,
                local_peer,
                tls,
                endpoint_config: Arc::new(EndpointConfig::default()),
                server_config,
                transport,
                binder,
                sockets: Vec::new(),
                connections: Slab::new(),
                next_generation: 0,
                by_handle: FxHashMap::default(),
                protocols: HashMap::new(),
                packet_protocols: HashMap::new(),
                dropped_datagrams: 0,
                plugin_names: Vec::new(),
                peer_store: PeerStore::new(),
                deadlines: BinaryHeap::new(),
                timers: HashMap::new(),
                next_timer: 0,
                callbacks: VecDeque::new(),
                touched: Vec::new(),
                transmit_queue: VecDeque::new(),
                endpoint_transmits: VecDeque::new(),
                notifier: Notifier::new(waker),
                commands,
                command_sender,
                subscribers: Vec::new(),
                dropped_events: 0,
                now,
                shutting_down: false,
                scratch: Vec::new(),
            },
            plugins: Vec::new(),
            started: false,
        })
    }

    /// Register a plugin. Its [`Protocol::protocol_ids`] are claimed now; an
    /// id already claimed by an earlier plugin stays with the earlier one.
    pub fn add_protocol(&mut self, plugin: Box<dyn Protocol>) -> PluginId {
        let id = PluginId(self.plugins.len());
        for pid in plugin.protocol_ids() {
            self.core.protocols.entry(pid).or_insert(id);
        }
        for pid in plugin.packet_protocol_ids() {
            self.core.packet_protocols.entry(pid).or_insert(id);
        }
        self.core.plugin_names.push(plugin.name());
        self.plugins.push(Some(plugin));
        if self.started {
            self.core.callbacks.push_back(Callback::Start(id));
            self.dispatch();
        }
        id
    }

    /// This node's PeerId.
    pub fn local_peer_id(&self) -> PeerId {
        self.core.local_peer
    }

    /// A handle other threads can use to command this swarm.
    pub fn handle(&self) -> SwarmHandle {
        SwarmHandle::new(self.core.command_sender.clone(), self.core.notifier.clone())
    }

    /// Listen on a QUIC multiaddr (port 0 picks a port); returns the
    /// resolved address.
    pub fn listen(&mut self, addr: &Multiaddr) -> Result<Multiaddr, ListenError> {
        let r = self.core.listen(addr);
        self.dispatch();
        r
    }

    /// The addresses we listen on.
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.core.listen_addrs()
    }

    /// Dial from outside any plugin (tests, embedding applications).
    pub fn dial(&mut self, addr: &Multiaddr, force_new_conn: bool) -> Result<ConnId, DialError> {
        let r = self.core.dial(addr, force_new_conn, Requester::Internal);
        self.dispatch();
        r
    }

    /// The peer store.
    pub fn peer_store(&self) -> &PeerStore {
        &self.core.peer_store
    }

    /// Number of connections in the table (handshaking, established, closing).
    pub fn connection_count(&self) -> usize {
        self.core.connections.len()
    }

    /// Datagrams dropped because they named no open packet flow.
    pub fn dropped_datagrams(&self) -> u64 {
        self.core.dropped_datagrams
    }

    /// Number of streams in the table across all connections.
    pub fn stream_count(&self) -> usize {
        self.core
            .connections
            .iter()
            .map(|(_, c)| c.streams.len())
            .sum()
    }

    /// Established connections to a peer.
    pub fn connections_to(&self, peer: &PeerId) -> Vec<ConnId> {
        self.core.connections_to(peer)
    }

    /// Bytes the swarm holds for streams handed to threads, both directions
    /// (each stream is bounded by [`Limits::threaded_stream_buffer`](crate::Limits)).
    pub fn threaded_buffered_bytes(&self) -> usize {
        self.core
            .connections
            .iter()
            .flat_map(|(_, c)| c.streams.values())
            .filter_map(|s| match &s.owner {
                Owner::Thread(shared) => {
                    let st = shared.lock();
                    Some(st.recv_len + st.send_len)
                }
                _ => None,
            })
            .sum()
    }

    /// Whether a shutdown was requested and every connection has drained.
    pub fn is_shut_down(&self) -> bool {
        self.core.shutting_down && self.core.connections.is_empty()
    }

    /// Whether a shutdown was requested (connections may still be draining).
    pub fn shutting_down(&self) -> bool {
        self.core.shutting_down
    }

    /// Start closing every connection with `code`; new work is refused.
    pub fn shutdown(&mut self, code: u32) {
        self.core.shutdown(code);
        self.dispatch();
    }

    /// Run a closure with a plugin's [`Context`], as if that plugin were
    /// being called. Lets tests and applications act on the swarm directly.
    pub fn with_context<R>(
        &mut self,
        plugin: PluginId,
        f: impl FnOnce(&mut Context<'_>) -> R,
    ) -> R {
        let name = self
            .core
            .plugin_names
            .get(plugin.0)
            .copied()
            .unwrap_or("external");
        let r = f(&mut Context {
            core: &mut self.core,
            plugin,
            name,
        });
        self.dispatch();
        r
    }

    /// Feed one received UDP datagram (see the driving contract).
    pub fn feed_datagram(
        &mut self,
        now: Instant,
        socket: usize,
        remote: SocketAddr,
        local_ip: Option<IpAddr>,
        ecn: Option<EcnCodepoint>,
        data: BytesMut,
    ) {
        let datagram = ReceivedDatagram {
            remote,
            local_ip,
            ecn,
            data,
        };
        self.feed_datagrams(now, socket, [datagram]);
    }

    /// Feed datagrams received together on one socket (a `recvmmsg` batch,
    /// GRO segments split apart), then run the plugins once: quinn-proto
    /// sees every packet of the batch before the swarm reads its streams,
    /// so a burst costs one pass over the touched connections, not one per
    /// datagram.
    pub fn feed_datagrams(
        &mut self,
        now: Instant,
        socket: usize,
        datagrams: impl IntoIterator<Item = ReceivedDatagram>,
    ) {
        self.core.now = now;
        self.start();
        for d in datagrams {
            self.core
                .handle_datagram(SocketIndex(socket), d.remote, d.local_ip, d.ecn, d.data);
        }
        self.dispatch();
    }

    /// Process commands from handles and streams touched by other threads.
    pub fn feed_wakeup(&mut self, now: Instant) {
        self.core.now = now;
        self.start();
        while let Ok(cmd) = self.core.commands.try_recv() {
            self.run_command(cmd);
        }
        for stream in self.core.notifier.take_ready() {
            self.core.pump_thread_stream(stream);
        }
        self.dispatch();
    }

    /// Fire everything due at or before `now`.
    pub fn feed_timeout(&mut self, now: Instant) {
        self.core.now = now;
        self.start();
        self.core.fire_deadlines();
        self.dispatch();
    }

    /// When the driver must call [`Swarm::feed_timeout`] next.
    pub fn poll_timeout(&self) -> Option<Instant> {
        self.core.deadlines.peek().map(|Reverse((at, _))| *at)
    }

    /// The next datagram to send, and the socket index to send it from.
    /// `max_datagrams` > 1 lets quinn-proto batch segments for GSO.
    pub fn poll_transmit(
        &mut self,
        now: Instant,
        max_datagrams: usize,
        buf: &mut Vec<u8>,
    ) -> Option<(usize, Transmit)> {
        self.core.now = now;
        self.core.poll_transmit(max_datagrams, buf)
    }

    /// Call `on_start` on every plugin once, before the first event.
    fn start(&mut self) {
        if !self.started {
            self.started = true;
            for i in 0..self.plugins.len() {
                self.core.callbacks.push_back(Callback::Start(PluginId(i)));
            }
        }
    }

    fn run_command(&mut self, cmd: Command) {
        match cmd {
            Command::Dial {
                addr,
                force_new,
                reply,
            } => {
                if let Err(e) = self
                    .core
                    .dial(&addr, force_new, Requester::Handle(reply.clone()))
                {
                    let _ = reply.send(Err(e));
                }
            }
            Command::DialWithId {
                peer,
                force_new,
                reply,
            } => {
                if let Err(e) =
                    self.core
                        .dial_with_id(peer, force_new, Requester::Handle(reply.clone()))
                {
                    let _ = reply.send(Err(e));
                }
            }
            Command::Listen { addr, reply } => {
                let _ = reply.send(self.core.listen(&addr));
            }
            Command::OpenStream {
                target,
                protocol,
                reply,
            } => self.core.open_stream_for_handle(target, &protocol, reply),
            Command::Event(event) => self.core.emit(None, event),
            Command::Message { to, message } => self.core.send_message(to, message),
            Command::Subscribe(sender) => self.core.subscribers.push(sender),
            Command::Shutdown { code } => self.core.shutdown(code),
            Command::Call(f) => f(self),
        }
    }

    /// Make every queued plugin call, including calls those calls queue.
    fn dispatch(&mut self) {
        loop {
            self.core.drain_touched();
            let Some(cb) = self.core.callbacks.pop_front() else {
                break;
            };
            match cb {
                Callback::ListenAddr(addr) => {
                    self.each_plugin(|p, ctx| p.handle_new_listen_addr(ctx, &addr))
                }
                Callback::NewConnection(conn, peer) => {
                    self.each_plugin(|p, ctx| p.handle_new_connection(ctx, conn, peer))
                }
                Callback::ClosedConnection(conn, peer) => {
                    self.each_plugin(|p, ctx| p.handle_closed_connection(ctx, conn, peer))
                }
                Callback::Event(from, event) => self.each_plugin(|p, ctx| {
                    if Some(ctx.plugin) != from {
                        p.handle_protocol_event(ctx, &event)
                    }
                }),
                Callback::Start(id) => self.call(id, |p, ctx| p.on_start(ctx)),
                Callback::DialFailure(id, conn, e) => {
                    self.call(id, |p, ctx| p.handle_dial_failure(ctx, conn, &e))
                }
                Callback::Inbound(id, s, proto) => {
                    self.call(id, |p, ctx| p.accept_inbound_stream(ctx, s, &proto))
                }
                Callback::Negotiated(id, s, proto) => {
                    self.call(id, |p, ctx| p.handle_stream_negotiated(ctx, s, &proto))
                }
                Callback::Data(id, s, data) => {
                    self.call(id, |p, ctx| p.handle_stream_data(ctx, s, data))
                }
                Callback::Writable(id, s) => {
                    self.call(id, |p, ctx| p.handle_stream_writable(ctx, s))
                }
                Callback::Finished(id, s) => {
                    self.call(id, |p, ctx| p.handle_stream_finished(ctx, s))
                }
                Callback::Closed(id, s, e) => {
                    self.call(id, |p, ctx| p.handle_stream_closed(ctx, s, &e))
                }
                Callback::Stopped(id, s, code) => {
                    self.call(id, |p, ctx| p.handle_stream_stopped(ctx, s, code))
                }
                Callback::Message(id, message) => {
                    self.call(id, |p, ctx| p.handle_message(ctx, message))
                }
                Callback::Timer(id, token) => self.call(id, |p, ctx| p.handle_timer(ctx, token)),
                Callback::InboundFlow(id, flow, proto) => {
                    self.call(id, |p, ctx| p.accept_inbound_packet_flow(ctx, flow, &proto))
                }
                Callback::FlowReady(id, flow, proto) => {
                    self.call(id, |p, ctx| p.handle_packet_flow_ready(ctx, flow, &proto))
                }
                Callback::PacketData(id, flow, data) => {
                    self.call(id, |p, ctx| p.handle_packet_data(ctx, flow, data))
                }
                Callback::FlowClosed(id, conn, flow, e) => self.call(id, |p, ctx| {
                    p.handle_packet_flow_closed(ctx, conn, flow, &e)
                }),
            }
        }
    }

    fn each_plugin(&mut self, mut f: impl FnMut(&mut dyn Protocol, &mut Context<'_>)) {
        for i in 0..self.plugins.len() {
            self.call(PluginId(i), &mut f);
        }
    }

    /// Call one plugin. The plugin is taken out of its slot for the call, so
    /// its `Context` can borrow the core mutably.
    fn call(&mut self, id: PluginId, f: impl FnOnce(&mut dyn Protocol, &mut Context<'_>)) {
        let Some(mut plugin) = self.plugins.get_mut(id.0).and_then(Option::take) else {
            return;
        };
        let mut ctx = Context {
            core: &mut self.core,
            plugin: id,
            name: plugin.name(),
        };
        f(plugin.as_mut(), &mut ctx);
        self.plugins[id.0] = Some(plugin);
    }
}

impl Core {
    pub(crate) fn local_peer_id(&self) -> PeerId {
        self.local_peer
    }

    pub(crate) fn now(&self) -> Instant {
        self.now
    }

    pub(crate) fn peer_store(&self) -> &PeerStore {
        &self.peer_store
    }

    pub(crate) fn peer_store_mut(&mut self) -> &mut PeerStore {
        &mut self.peer_store
    }

    pub(crate) fn supported_protocols(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.protocols.keys().cloned().collect();
        ids.sort();
        ids
    }

    pub(crate) fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.sockets
            .iter()
            .filter(|s| s.listening)
            .map(|s| quic_multiaddr(s.local))
            .collect()
    }

    // ----- sockets and listening -----

    fn bind_socket(&mut self, addr: SocketAddr, listening: bool) -> io::Result<SocketIndex> {
        let local = self.binder.bind(addr)?;
        let endpoint = Endpoint::new(
            self.endpoint_config.clone(),
            Some(self.server_config.clone()),
            true,
            None,
        );
        self.sockets.push(Socket {
            endpoint,
            local,
            listening,
        });
        Ok(SocketIndex(self.sockets.len() - 1))
    }

    pub(crate) fn listen(&mut self, addr: &Multiaddr) -> Result<Multiaddr, ListenError> {
        if self.shutting_down {
            return Err(ListenError::ShuttingDown);
        }
        let quic = parse_quic_addr(addr)
            .filter(|q| q.peer.is_none())
            .ok_or_else(|| ListenError::UnsupportedAddress(addr.clone()))?;
        let index = self
            .bind_socket(quic.socket, true)
            .map_err(|source| ListenError::Bind {
                addr: addr.clone(),
                source,
            })?;
        let resolved = quic_multiaddr(self.sockets[index.0].local);
        info!(addr = %resolved, "listening");
        self.publish(SwarmEvent::ListenAddr(resolved.clone()));
        self.callbacks
            .push_back(Callback::ListenAddr(resolved.clone()));
        Ok(resolved)
    }

    /// A socket to dial `remote` from: a listening one of the same family
    /// (so the peer sees our listen port), else a fresh ephemeral one.
    fn socket_for(&mut self, remote: SocketAddr) -> Result<SocketIndex, DialError> {
        let same_family = |s: &Socket| s.local.is_ipv4() == remote.is_ipv4();
        let loopback_ok = |s: &Socket| !s.local.ip().is_loopback() || remote.ip().is_loopback();
        if let Some(i) = self
            .sockets
            .iter()
            .position(|s| same_family(s) && loopback_ok(s))
        {
            return Ok(SocketIndex(i));
        }
        let any: IpAddr = if remote.is_ipv4() {
            Ipv4Addr::UNSPECIFIED.into()
        } else {
            Ipv6Addr::UNSPECIFIED.into()
        };
        self.bind_socket(SocketAddr::new(any, 0), false)
            .map_err(|e| DialError::NoSocket(Arc::new(e)))
    }

    // ----- connection table -----

    fn conn(&self, id: ConnId) -> Option<&Connection> {
        self.connections
            .get(id.index as usize)
            .filter(|c| c.generation == id.generation && !c.closing)
    }

    fn conn_mut(&mut self, id: ConnId) -> Option<&mut Connection> {
        self.connections
            .get_mut(id.index as usize)
            .filter(|c| c.generation == id.generation && !c.closing)
    }

    fn conn_id(&self, index: usize) -> ConnId {
        ConnId {
            index: index as u32,
            generation: self.connections[index].generation,
        }
    }

    pub(crate) fn connection_peer(&self, conn: ConnId) -> Option<PeerId> {
        self.conn(conn)
            .filter(|c| c.established)
            .and_then(|c| c.peer)
    }

    pub(crate) fn connection_remote_addr(&self, conn: ConnId) -> Option<Multiaddr> {
        self.conn(conn).map(|c| c.remote_addr.clone())
    }

    pub(crate) fn connections_to(&self, peer: &PeerId) -> Vec<ConnId> {
        self.connections
            .iter()
            .filter(|(_, c)| c.established && !c.closing && c.peer.as_ref() == Some(peer))
            .map(|(i, c)| ConnId {
                index: i as u32,
                generation: c.generation,
            })
            .collect()
    }

    fn insert_connection(
        &mut self,
        socket: SocketIndex,
        handle: ConnectionHandle,
        quic: quinn_proto::Connection,
        origin: Origin,
    ) -> ConnId {
        let remote = canonical(quic.remote_address());
        let generation = self.next_generation;
        self.next_generation = self.next_generation.wrapping_add(1);
        let index = self.connections.insert(Connection {
            generation,
            quic,
            handle,
            socket,
            origin,
            peer: None,
            remote,
            remote_addr: quic_multiaddr(remote),
            established: false,
            streams: FxHashMap::default(),
            kept_by: Vec::new(),
            idle_since: None,
            closing: false,
            quic_deadline: None,
            queued_for_transmit: false,
            pending_flows: Vec::new(),
            idle_deadline_queued: false,
            negotiation_deadline_queued: None,
        });
        self.by_handle.insert((socket, handle), index);
        let id = self.conn_id(index);
        self.push_deadline(
            self.now + self.config.limits.handshake_timeout,
            Deadline::Handshake(id),
        );
        self.touch(index);
        id
    }

    /// Note that a connection's quinn-proto state changed: drain its events
    /// and transmits soon.
    fn touch(&mut self, index: usize) {
        self.touched.push(index);
        if let Some(c) = self.connections.get_mut(index)
            && !c.queued_for_transmit
        {
            c.queued_for_transmit = true;
            self.transmit_queue.push_back(index);
        }
    }

    fn push_deadline(&mut self, at: Instant, what: Deadline) {
        self.deadlines.push(Reverse((at, what)));
    }

    // ----- dialing -----

    pub(crate) fn dial(
        &mut self,
        addr: &Multiaddr,
        force_new: bool,
        requester: Requester,
    ) -> Result<ConnId, DialError> {
        if self.shutting_down {
            return Err(DialError::ShuttingDown);
        }
        let quic =
            parse_quic_addr(addr).ok_or_else(|| DialError::UnsupportedAddress(addr.clone()))?;
        if let Some(peer) = quic.peer
            && !force_new
            && let Some(existing) = self.connections_to(&peer).first().copied()
        {
            if let Requester::Handle(reply) = &requester {
                let _ = reply.send(Ok(existing));
            }
            return Ok(existing);
        }
        self.check_connection_limits(quic.peer, None)?;
        let socket = self.socket_for(quic.socket)?;
        let (client_config, observed) =
            transport::client_config(&self.tls, quic.peer, self.transport.clone())
                .map_err(|e| DialError::Connect(Arc::new(e)))?;
        let endpoint = &mut self.sockets[socket.0].endpoint;
        let (handle, conn) = endpoint
            .connect(self.now, client_config, quic.socket, "l")
            .map_err(|e| DialError::Connect(Arc::new(e)))?;
        let id = self.insert_connection(
            socket,
            handle,
            conn,
            Origin::Dialed {
                expected: quic.peer,
                observed,
                requester,
            },
        );
        debug!(%id, %addr, "dialing");
        Ok(id)
    }

    pub(crate) fn dial_with_id(
        &mut self,
        peer: PeerId,
        force_new: bool,
        requester: Requester,
    ) -> Result<ConnId, DialError> {
        if !force_new && let Some(existing) = self.connections_to(&peer).first().copied() {
            if let Requester::Handle(reply) = &requester {
                let _ = reply.send(Ok(existing));
            }
            return Ok(existing);
        }
        let addr = self
            .peer_store
            .addresses(&peer, self.now)
            .into_iter()
            .find(|a| parse_quic_addr(a).is_some())
            .ok_or(DialError::NoAddresses(peer))?;
        let addr = addr.with(multiaddr::Protocol::P2p(peer));
        self.dial(&addr, force_new, requester)
    }

    fn check_connection_limits(
        &self,
        peer: Option<PeerId>,
        ip: Option<IpAddr>,
    ) -> Result<(), ConnectionLimit> {
        let limits = &self.config.limits;
        // Connections draining after a close no longer count: a client that
        // reconnects quickly must not be refused for its own old ones.
        let live = self.connections.iter().filter(|(_, c)| !c.closing);
        if live.clone().count() >= limits.max_connections {
            return Err(ConnectionLimit::Total(limits.max_connections));
        }
        if let Some(peer) = peer
            && self.connections_to(&peer).len() >= limits.max_connections_per_peer
        {
            return Err(ConnectionLimit::PerPeer(limits.max_connections_per_peer));
        }
        if let Some(ip) = ip {
            let from_ip = live
                .clone()
                .filter(|(_, c)| matches!(c.origin, Origin::Accepted) && c.remote.ip() == ip)
                .count();
            if from_ip >= limits.max_connections_per_ip {
                return Err(ConnectionLimit::PerIp(limits.max_connections_per_ip));
            }
            let pending = live
                .filter(|(_, c)| matches!(c.origin, Origin::Accepted) && !c.established)
                .count();
            if pending >= limits.max_pending_handshakes {
                return Err(ConnectionLimit::PendingHandshakes(
                    limits.max_pending_handshakes,
                ));
            }
        }
        Ok(())
    }

    // ----- datagrams in -----

    fn handle_datagram(
        &mut self,
        socket: SocketIndex,
        remote: SocketAddr,
        local_ip: Option<IpAddr>,
        ecn: Option<EcnCodepoint>,
        data: BytesMut,
    ) {
        let Some(s) = self.sockets.get_mut(socket.0) else {
            return;
        };
        let mut buf = std::mem::take(&mut self.scratch);
        buf.clear();
        let event = s
            .endpoint
            .handle(self.now, remote, local_ip, ecn, data, &mut buf);
        match event {
            None => {}
            Some(DatagramEvent::ConnectionEvent(handle, event)) => {
                if let Some(&index) = self.by_handle.get(&(socket, handle)) {
                    self.connections[index].quic.handle_event(event);
                    self.touch(index);
                }
            }
            Some(DatagramEvent::NewConnection(incoming)) => {
                let remote = canonical(incoming.remote_address());
                let refusal = if self.shutting_down {
                    Some("shutting down".to_string())
                } else {
                    self.check_connection_limits(None, Some(remote.ip()))
                        .err()
                        .map(|e| e.to_string())
                };
                // Under handshake pressure, make unvalidated senders prove
                // their address with a Retry first, so spoofed Initials
                // cannot hold the pending-handshake slots.
                let pending = self
                    .connections
                    .iter()
                    .filter(|(_, c)| matches!(c.origin, Origin::Accepted) && !c.established)
                    .count();
                let pressure = pending * 2 >= self.config.limits.max_pending_handshakes;
                let endpoint = &mut self.sockets[socket.0].endpoint;
                if refusal.is_none()
                    && pressure
                    && !incoming.remote_address_validated()
                    && incoming.may_retry()
                {
                    match endpoint.retry(incoming, &mut buf) {
                        Ok(t) => self.endpoint_transmits.push_back((socket, t, buf)),
                        Err(e) => endpoint.ignore(e.into_incoming()),
                    }
                    return;
                }
                if let Some(reason) = refusal {
                    debug!(%remote, %reason, "refusing inbound connection");
                    let t = endpoint.refuse(incoming, &mut buf);
                    self.endpoint_transmits.push_back((socket, t, buf));
                    return;
                }
                match endpoint.accept(incoming, self.now, &mut buf, None) {
                    Ok((handle, conn)) => {
                        let id = self.insert_connection(socket, handle, conn, Origin::Accepted);
                        debug!(%id, %remote, "accepted inbound connection");
                    }
                    Err(e) => {
                        debug!(%remote, error = %e.cause, "inbound connection failed");
                        if let Some(t) = e.response {
                            self.endpoint_transmits.push_back((socket, t, buf));
                            return;
                        }
                    }
                }
            }
            Some(DatagramEvent::Response(t)) => {
                self.endpoint_transmits.push_back((socket, t, buf));
                return;
            }
        }
        self.scratch = buf;
    }

    // ----- datagrams out -----

    fn poll_transmit(
        &mut self,
        max_datagrams: usize,
        buf: &mut Vec<u8>,
    ) -> Option<(usize, Transmit)> {
        if let Some((socket, t, data)) = self.endpoint_transmits.pop_front() {
            buf.clear();
            buf.extend_from_slice(&data[..t.size]);
            return Some((socket.0, t));
        }
        while let Some(&index) = self.transmit_queue.front() {
            let Some(conn) = self.connections.get_mut(index) else {
                self.transmit_queue.pop_front();
                continue;
            };
            buf.clear();
            if let Some(t) = conn.quic.poll_transmit(self.now, max_datagrams.max(1), buf) {
                // Sending changes quinn-proto's timers (loss detection).
                self.touched.push(index);
                let socket = conn.socket.0;
                // Rotate so that one busy connection shares the socket.
                self.transmit_queue.rotate_left(1);
                return Some((socket, t));
            }
            conn.queued_for_transmit = false;
            self.transmit_queue.pop_front();
            // Polling can produce events (e.g. a handshake timing out).
            self.touched.push(index);
        }
        self.drain_touched();
        None
    }

    // ----- timers and deadlines -----

    pub(crate) fn set_timer(&mut self, plugin: PluginId, delay: Duration, token: u64) -> TimerId {
        let id = self.next_timer;
        self.next_timer += 1;
        self.timers.insert(id, (plugin, token));
        self.push_deadline(self.now + delay, Deadline::Timer(id));
        TimerId(id)
    }

    pub(crate) fn cancel_timer(&mut self, timer: TimerId) {
        self.timers.remove(&timer.0);
    }

    fn fire_deadlines(&mut self) {
        while let Some(Reverse((at, what))) = self.deadlines.peek().copied() {
            if at > self.now {
                break;
            }
            self.deadlines.pop();
            match what {
                Deadline::Timer(id) => {
                    if let Some((plugin, token)) = self.timers.remove(&id) {
                        self.callbacks.push_back(Callback::Timer(plugin, token));
                    }
                }
                Deadline::Quic(id) => {
                    let now = self.now;
                    if let Some(c) = self.connections.get_mut(id.index as usize)
                        && c.generation == id.generation
                        && c.quic_deadline == Some(at)
                    {
                        c.quic_deadline = None;
                        c.quic.handle_timeout(now);
                        self.touch(id.index as usize);
                    }
                }
                Deadline::Handshake(id) => {
                    if let Some(c) = self.conn(id)
                        && !c.established
                    {
                        debug!(%id, "handshake timed out");
                        self.end_connection(id.index as usize, EndReason::HandshakeTimeout);
                    }
                }
                Deadline::Negotiation(id) => {
                    let now = self.now;
                    let Some(c) = self.conn_mut(id) else {
                        continue;
                    };
                    c.negotiation_deadline_queued = None;
                    let late: Vec<StreamId> = c
                        .streams
                        .iter()
                        .filter(|(_, s)| s.negotiation_deadline().is_some_and(|d| d <= now))
                        .map(|(sid, _)| *sid)
                        .collect();
                    for sid in late {
                        let stream = StreamRef { conn: id, id: sid };
                        debug!(%stream, "multistream negotiation timed out");
                        self.fail_stream(stream, StreamError::NegotiationTimeout);
                    }
                    self.arm_negotiation_deadline(id.index as usize);
                }
                Deadline::Idle(id) => {
                    let idle_after = self.config.idle_connection_timeout;
                    let now = self.now;
                    let Some(c) = self.conn_mut(id) else {
                        continue;
                    };
                    c.idle_deadline_queued = false;
                    let Some(since) = c.idle_since.filter(|_| c.is_idle()) else {
                        continue;
                    };
                    if since + idle_after <= now {
                        debug!(%id, "closing idle connection");
                        let _ = self.close_connection(id, CLOSE_CODE_IDLE, b"idle");
                    } else {
                        // Idle again since an earlier entry was queued.
                        c.idle_deadline_queued = true;
                        self.push_deadline(since + idle_after, Deadline::Idle(id));
                    }
                }
            }
        }
        // Popped entries leave capacity behind; give it back after a burst.
        let cap = self.deadlines.capacity();
        if cap > 4096 && self.deadlines.len() * 4 < cap {
            self.deadlines.shrink_to(self.deadlines.len() * 2);
        }
    }

    /// Queue the earliest negotiation deadline of a connection's streams,
    /// unless an entry at or before it is already queued.
    fn arm_negotiation_deadline(&mut self, index: usize) {
        let Some(conn) = self.connections.get_mut(index) else {
            return;
        };
        let Some(next) = conn
            .streams
            .values()
            .filter_map(Stream::negotiation_deadline)
            .min()
        else {
            return;
        };
        if conn.negotiation_deadline_queued.is_none_or(|q| next < q) {
            conn.negotiation_deadline_queued = Some(next);
            let id = self.conn_id(index);
            self.push_deadline(next, Deadline::Negotiation(id));
        }
    }

    // ----- quinn-proto events -----

    /// Drain events of every touched connection, until none is left.
    fn drain_touched(&mut self) {
        // Bounded: each pass handles what the previous one touched; events
        // cannot cascade forever because quinn-proto's queues are finite.
        for _ in 0..64 {
            if self.touched.is_empty() {
                return;
            }
            let mut touched = std::mem::take(&mut self.touched);
            touched.sort_unstable();
            touched.dedup();
            for index in touched {
                self.process_connection(index);
            }
        }
    }

    fn process_connection(&mut self, index: usize) {
        let Some(conn) = self.connections.get_mut(index) else {
            return;
        };
        // Endpoint <-> connection bookkeeping (CIDs, drain).
        while let Some(ev) = conn.quic.poll_endpoint_events() {
            let socket = conn.socket;
            let handle = conn.handle;
            if let Some(back) = self.sockets[socket.0].endpoint.handle_event(handle, ev) {
                conn.quic.handle_event(back);
            }
        }
        while let Some(ev) = self.connections[index].quic.poll() {
            self.handle_event(index, ev);
            if !self.connections.contains(index) {
                return;
            }
        }
        let conn = &mut self.connections[index];
        if conn.quic.is_drained() {
            let id = ConnId {
                index: index as u32,
                generation: conn.generation,
            };
            if !conn.closing {
                self.end_connection(index, EndReason::Lost("drained".into()));
            }
            let conn = self.connections.remove(index);
            self.by_handle.remove(&(conn.socket, conn.handle));
            trace!(%id, "connection drained and removed");
            return;
        }
        let next = conn.quic.poll_timeout();
        let id = ConnId {
            index: index as u32,
            generation: conn.generation,
        };
        // Queue a heap entry only when the deadline moves earlier (or none is
        // queued). A later deadline is found when the queued entry fires:
        // `quic_deadline` then no longer matches and is re-queued from here.
        match (next, conn.quic_deadline) {
            (Some(at), queued) if queued.is_none_or(|q| at < q) => {
                conn.quic_deadline = Some(at);
                self.push_deadline(at, Deadline::Quic(id));
            }
            (None, _) => conn.quic_deadline = None,
            _ => {}
        }
    }

    fn handle_event(&mut self, index: usize, ev: Event) {
        match ev {
            Event::HandshakeDataReady | Event::DatagramsUnblocked => {}
            Event::DatagramReceived => self.receive_datagrams(index),
            Event::Connected => self.on_connected(index),
            Event::ConnectionLost { reason } => {
                self.end_connection(index, EndReason::Quic(reason));
            }
            Event::Stream(StreamEvent::Opened { dir: Dir::Bi }) => self.accept_streams(index),
            Event::Stream(StreamEvent::Opened { dir: Dir::Uni }) => {
                // libp2p uses bidirectional streams only; refuse the rest.
                let conn = &mut self.connections[index];
                while let Some(id) = conn.quic.streams().accept(Dir::Uni) {
                    let _ = conn.quic.recv_stream(id).stop(VarInt::from_u32(0));
                }
            }
            Event::Stream(StreamEvent::Readable { id }) => self.read_stream(index, id),
            Event::Stream(StreamEvent::Writable { id }) => self.on_writable(index, id),
            Event::Stream(StreamEvent::Finished { id }) => {
                if let Some(s) = self.connections[index].streams.get_mut(&id) {
                    s.send_done = true;
                }
                self.maybe_remove_stream(index, id);
            }
            Event::Stream(StreamEvent::Stopped { id, error_code }) => {
                self.on_stopped(index, id, error_code.into_inner())
            }
            Event::Stream(StreamEvent::Available { .. }) => {}
        }
    }

    fn on_connected(&mut self, index: usize) {
        let id = self.conn_id(index);
        let conn = &mut self.connections[index];
        let peer = conn
            .quic
            .crypto_session()
            .peer_identity()
            .and_then(|any| {
                any.downcast::<Vec<rustls::pki_types::CertificateDer<'static>>>()
                    .ok()
            })
            .and_then(|chain| self.tls.verified_peer_id(&chain).ok());
        let Some(peer) = peer else {
            // The verifiers already checked the certificate; this would be a bug.
            warn!(%id, "handshake finished without a usable libp2p certificate");
            self.end_connection(
                index,
                EndReason::Refused(DialError::Handshake(cause("no libp2p certificate"))),
            );
            return;
        };
        conn.peer = Some(peer);
        let dialer = matches!(conn.origin, Origin::Dialed { .. });
        let per_peer = self.config.limits.max_connections_per_peer;
        if self.connections_to(&peer).len() >= per_peer {
            let limit = ConnectionLimit::PerPeer(per_peer);
            debug!(%id, %peer, %limit, "closing connection over the per-peer limit");
            self.end_connection(index, EndReason::Refused(DialError::Limit(limit)));
            return;
        }
        let conn = &mut self.connections[index];
        conn.established = true;
        let remote_addr = conn.remote_addr.clone();
        self.peer_store.add_connection(peer, id);
        if dialer {
            self.peer_store
                .add_address(peer, remote_addr.clone(), DIALED_ADDRESS_TTL, self.now);
        }
        info!(%id, %peer, remote = %remote_addr, dialer, "connection established");
        if let Origin::Dialed {
            requester: Requester::Handle(reply),
            ..
        } = &self.connections[index].origin
        {
            let _ = reply.send(Ok(id));
        }
        self.callbacks.push_back(Callback::NewConnection(id, peer));
        for (plugin, protocol) in std::mem::take(&mut self.connections[index].pending_flows) {
            if let Err(e) = self.open_packet_flow(StreamTarget::Conn(id), &protocol, plugin) {
                self.callbacks
                    .push_back(Callback::FlowClosed(plugin, id, None, e));
            }
        }
        self.publish(SwarmEvent::ConnectionEstablished {
            conn: id,
            peer,
            remote_addr,
            dialer,
        });
        self.update_idle(index);
    }

    /// Run the end-of-connection callbacks once, and make handles stale.
    fn end_connection(&mut self, index: usize, reason: EndReason) {
        let id = self.conn_id(index);
        let conn = &mut self.connections[index];
        if conn.closing {
            return;
        }
        conn.closing = true;
        if !conn.quic.is_closed() {
            let (code, why): (u32, &[u8]) = match &reason {
                EndReason::Refused(DialError::Limit(_)) => (CLOSE_CODE_LIMIT, b"limit"),
                _ => (0, b""),
            };
            conn.quic.close(
                self.now,
                VarInt::from_u32(code),
                Bytes::copy_from_slice(why),
            );
        }
        let text = reason.to_string();
        // Every stream dies with the connection.
        let streams: Vec<(StreamId, Stream)> = conn.streams.drain().collect();
        for (sid, stream) in streams {
            let sref = StreamRef { conn: id, id: sid };
            self.stream_died(sref, stream, StreamError::ConnectionClosed(text.clone()));
        }
        let conn = &self.connections[index];
        if conn.established {
            let peer = conn.peer.expect("established connections have a peer");
            self.peer_store.remove_connection(peer, id);
            info!(%id, %peer, reason = %text, "connection closed");
            self.callbacks
                .push_back(Callback::ClosedConnection(id, peer));
            self.publish(SwarmEvent::ConnectionClosed {
                conn: id,
                peer,
                reason: text,
            });
        } else if let Origin::Dialed {
            expected,
            observed,
            requester,
        } = &conn.origin
        {
            let error = reason.into_dial_error(*expected, observed.get());
            info!(%id, %error, "dial failed");
            match requester {
                Requester::Plugin(p) => {
                    self.callbacks
                        .push_back(Callback::DialFailure(*p, id, error.clone()));
                }
                Requester::Handle(reply) => {
                    let _ = reply.send(Err(error.clone()));
                }
                Requester::Internal => {}
            }
            self.publish(SwarmEvent::DialFailed { conn: id, error });
        } else {
            debug!(%id, reason = %text, "inbound connection failed");
            self.publish(SwarmEvent::IncomingConnectionFailed {
                remote_addr: conn.remote_addr.clone(),
                reason: text,
            });
        }
        self.touch(index);
    }

    pub(crate) fn close_connection(
        &mut self,
        id: ConnId,
        code: u32,
        reason: &[u8],
    ) -> Result<(), ConnectionError> {
        let now = self.now;
        let conn = self
            .conn_mut(id)
            .ok_or(ConnectionError::UnknownConnection(id))?;
        conn.quic
            .close(now, VarInt::from_u32(code), Bytes::copy_from_slice(reason));
        self.end_connection(id.index as usize, EndReason::Local(code));
        Ok(())
    }

    fn shutdown(&mut self, code: u32) {
        if self.shutting_down {
            return;
        }
        info!("shutting down");
        self.shutting_down = true;
        let ids: Vec<ConnId> = self
            .connections
            .iter()
            .filter(|(_, c)| !c.closing)
            .map(|(i, c)| ConnId {
                index: i as u32,
                generation: c.generation,
            })
            .collect();
        for id in ids {
            let _ = self.close_connection(id, code, b"shutdown");
        }
    }

    pub(crate) fn keep_alive(
        &mut self,
        id: ConnId,
        plugin: PluginId,
        keep: bool,
    ) -> Result<(), ConnectionError> {
        let conn = self
            .conn_mut(id)
            .ok_or(ConnectionError::UnknownConnection(id))?;
        conn.kept_by.retain(|p| *p != plugin);
        if keep {
            conn.kept_by.push(plugin);
        }
        self.update_idle(id.index as usize);
        Ok(())
    }

    /// Start or stop the idle clock after streams or keepers changed.
    fn update_idle(&mut self, index: usize) {
        let idle_after = self.config.idle_connection_timeout;
        let now = self.now;
        let Some(conn) = self.connections.get_mut(index) else {
            return;
        };
        if conn.closing || !conn.is_idle() {
            conn.idle_since = None;
            return;
        }
        if conn.idle_since.is_none() {
            conn.idle_since = Some(now);
            // One queued entry per connection: when it fires it re-queues
            // itself if the connection went busy and idle again meanwhile.
            if !conn.idle_deadline_queued {
                conn.idle_deadline_queued = true;
                let id = self.conn_id(index);
                self.push_deadline(now + idle_after, Deadline::Idle(id));
            }
        }
    }

    // ----- streams -----

    fn accept_streams(&mut self, index: usize) {
        let id = self.conn_id(index);
        let max_negotiating = self.config.limits.max_negotiating_streams;
        let deadline = self.now + self.config.limits.negotiation_timeout;
        loop {
            let conn = &mut self.connections[index];
            let Some(sid) = conn.quic.streams().accept(Dir::Bi) else {
                break;
            };
            if conn.closing {
                continue;
            }
            if conn.negotiating_streams() >= max_negotiating {
                debug!(conn = %id, "too many negotiating streams; resetting a new one");
                let code = VarInt::from_u32(RESET_CODE_NEGOTIATION);
                let _ = conn.quic.recv_stream(sid).stop(code);
                let _ = conn.quic.send_stream(sid).reset(code);
                continue;
            }
            let negotiation = Negotiation::listener(self.config.multistream);
            conn.streams.insert(
                sid,
                Stream::new(Owner::Negotiating {
                    negotiation: Box::new(negotiation),
                    plugin: None,
                    waiter: None,
                    deadline,
                }),
            );
            self.arm_negotiation_deadline(index);
            self.flush_negotiation(index, sid);
            self.update_idle(index);
            self.read_stream(index, sid);
        }
    }

    /// Write what multistream-select queued (header, echo, `na`).
    fn flush_negotiation(&mut self, index: usize, sid: StreamId) {
        let conn = &mut self.connections[index];
        let Some(stream) = conn.streams.get_mut(&sid) else {
            return;
        };
        let Owner::Negotiating { negotiation, .. } = &mut stream.owner else {
            return;
        };
        let out = negotiation.take_outbound();
        if out.is_empty() {
            return;
        }
        // Behind whatever is still waiting, so the messages keep their order.
        stream.queue(out);
        // Other streams may have used up the connection's send window: what
        // does not fit waits for `Writable`, ahead of the owner's data.
        match write_unsent(&mut conn.quic, sid, stream) {
            Ok(_) => {}
            Err(WriteError::Stopped(_)) => {
                // A write-only optimistic dialer (rust-libp2p's identify
                // push) sends its message, FIN and STOP_SENDING at once: our
                // echo cannot go out, but its data must still be delivered.
                stream.send_done = true;
            }
            Err(_) => {
                let sref = StreamRef {
                    conn: self.conn_id(index),
                    id: sid,
                };
                self.fail_stream(sref, StreamError::SendClosed);
            }
        }
        self.touch(index);
    }

    pub(crate) fn open_stream(
        &mut self,
        target: StreamTarget,
        protocol: &str,
        plugin: Option<PluginId>,
    ) -> Result<StreamRef, OpenStreamError> {
        self.open_stream_inner(target, protocol, plugin, None)
    }

    fn open_stream_for_handle(
        &mut self,
        target: StreamTarget,
        protocol: &str,
        reply: HandleWaiter,
    ) {
        if let Err(e) = self.open_stream_inner(target, protocol, None, Some(reply.clone())) {
            let _ = reply.send(Err(e));
        }
    }

    fn open_stream_inner(
        &mut self,
        target: StreamTarget,
        protocol: &str,
        plugin: Option<PluginId>,
        waiter: Option<HandleWaiter>,
    ) -> Result<StreamRef, OpenStreamError> {
        if self.shutting_down {
            return Err(OpenStreamError::ShuttingDown);
        }
        let conn_id = match target {
            StreamTarget::Conn(c) => c,
            StreamTarget::Peer(p) => *self
                .connections_to(&p)
                .first()
                .ok_or(OpenStreamError::NotConnected(p))?,
        };
        let deadline = self.now + self.config.limits.negotiation_timeout;
        let limits = self.config.multistream;
        let conn = self
            .conn_mut(conn_id)
            .ok_or(OpenStreamError::UnknownConnection(conn_id))?;
        if !conn.established {
            return Err(OpenStreamError::NotEstablished(conn_id));
        }
        let sid = conn
            .quic
            .streams()
            .open(Dir::Bi)
            .ok_or(OpenStreamError::TooManyStreams)?;
        conn.streams.insert(
            sid,
            Stream::new(Owner::Negotiating {
                negotiation: Box::new(Negotiation::dialer(protocol, limits)),
                plugin,
                waiter,
                deadline,
            }),
        );
        let index = conn_id.index as usize;
        self.arm_negotiation_deadline(index);
        self.flush_negotiation(index, sid);
        self.update_idle(index);
        trace!(stream = %StreamRef { conn: conn_id, id: sid }, protocol, "opened stream");
        Ok(StreamRef {
            conn: conn_id,
            id: sid,
        })
    }

    /// Move what QUIC has received on a stream to its owner, as far as the
    /// owner accepts it.
    fn read_stream(&mut self, index: usize, sid: StreamId) {
        let conn_id = self.conn_id(index);
        let sref = StreamRef {
            conn: conn_id,
            id: sid,
        };
        let Core {
            connections,
            callbacks,
            protocols,
            packet_protocols,
            ..
        } = self;
        let conn = &mut connections[index];
        let Connection { quic, streams, .. } = conn;
        let Some(stream) = streams.get_mut(&sid) else {
            return;
        };
        if stream.recv_done || stream.read_paused || stream.queue_paused {
            return;
        }
        let mut recv = quic.recv_stream(sid);
        let mut chunks = match recv.read(true) {
            Ok(c) => c,
            Err(ReadableError::ClosedStream) => {
                stream.recv_done = true;
                return;
            }
            Err(ReadableError::IllegalOrderedRead) => return,
        };
        let mut failure: Option<StreamError> = None;
        let mut negotiated: Option<(String, Bytes)> = None;
        loop {
            let max = match &stream.owner {
                Owner::Thread(shared) => {
                    let mut st = shared.lock();
                    let room = shared.recv_room(&st);
                    if room == 0 {
                        st.recv_paused = true;
                        break;
                    }
                    room
                }
                _ if stream.read_paused || stream.queue_paused => break,
                _ => usize::MAX,
            };
            match chunks.next(max) {
                Ok(Some(chunk)) => match &mut stream.owner {
                    Owner::Negotiating {
                        negotiation,
                        plugin,
                        ..
                    } => {
                        let _ = plugin;
                        let supported =
                            |p: &str| protocols.contains_key(p) || packet_protocols.contains_key(p);
                        match negotiation.feed(chunk.bytes, &supported) {
                            Ok(Progress::Pending) => {}
                            Ok(Progress::Done {
                                protocol,
                                remainder,
                            }) => {
                                negotiated = Some((protocol, remainder));
                                break;
                            }
                            Err(e) => {
                                failure = Some(StreamError::Negotiation(e));
                                break;
                            }
                        }
                    }
                    // A flow's control stream carries nothing after negotiation.
                    Owner::Plugin(_) if stream.packet_flow => {}
                    Owner::Plugin(p) => callbacks.push_back(Callback::Data(*p, sref, chunk.bytes)),
                    Owner::Thread(shared) => {
                        let mut st = shared.lock();
                        st.recv_len += chunk.bytes.len();
                        st.recv.push_back(chunk.bytes);
                        drop(st);
                        shared.notify_thread();
                    }
                },
                Ok(None) => {
                    stream.recv_done = true;
                    match &stream.owner {
                        Owner::Negotiating { .. } => {
                            failure = Some(StreamError::EndedDuringNegotiation);
                        }
                        Owner::Plugin(_) if stream.packet_flow => {
                            failure = Some(StreamError::ConnectionClosed("flow closed".into()));
                        }
                        Owner::Plugin(p) => callbacks.push_back(Callback::Finished(*p, sref)),
                        Owner::Thread(shared) => {
                            shared.lock().recv_fin = true;
                            shared.notify_thread();
                        }
                    }
                    break;
                }
                Err(ReadError::Blocked) => break,
                Err(ReadError::Reset(code)) => {
                    stream.recv_done = true;
                    failure = Some(StreamError::Reset(code.into_inner()));
                    break;
                }
            }
        }
        let _ = chunks.finalize();
        self.touch(index);
        if let Some((protocol, remainder)) = negotiated {
            self.on_negotiated(index, sid, protocol, remainder);
            // More may be readable for the new owner.
            self.read_stream(index, sid);
        } else if let Some(Stream {
            owner: Owner::Negotiating { .. },
            ..
        }) = self.connections[index].streams.get(&sid)
        {
            self.flush_negotiation(index, sid);
        }
        if let Some(e) = failure {
            self.fail_stream(sref, e);
        } else {
            self.maybe_remove_stream(index, sid);
        }
    }

    fn on_negotiated(&mut self, index: usize, sid: StreamId, protocol: String, remainder: Bytes) {
        let sref = StreamRef {
            conn: self.conn_id(index),
            id: sid,
        };
        self.flush_negotiation(index, sid);
        let notifier = self.notifier.clone();
        let limit = self.config.limits.threaded_stream_buffer;
        let Some(stream) = self.connections[index].streams.get_mut(&sid) else {
            return;
        };
        let Owner::Negotiating { plugin, waiter, .. } =
            std::mem::replace(&mut stream.owner, Owner::Plugin(PluginId(usize::MAX)))
        else {
            return;
        };
        stream.protocol = Some(protocol.clone());
        trace!(stream = %sref, %protocol, "negotiated");
        if let Some(reply) = waiter {
            let shared = Shared::new(sref, limit, notifier);
            if !remainder.is_empty() {
                let mut st = shared.lock();
                st.recv_len += remainder.len();
                st.recv.push_back(remainder);
            }
            stream.owner = Owner::Thread(shared.clone());
            if reply.send(Ok(DetachedStream::new(shared))).is_err() {
                // The requester gave up; the handle was dropped with the
                // message, which already asked to close the stream.
            }
            self.pump_thread_stream(sref);
            return;
        }
        let flow = PacketFlow(sref);
        let owner = match plugin {
            Some(p) if stream.packet_flow => {
                self.callbacks
                    .push_back(Callback::FlowReady(p, flow, protocol));
                p
            }
            Some(p) => {
                self.callbacks
                    .push_back(Callback::Negotiated(p, sref, protocol));
                p
            }
            None => match self.protocols.get(&protocol) {
                Some(&p) => {
                    self.callbacks
                        .push_back(Callback::Inbound(p, sref, protocol));
                    p
                }
                None if self.packet_protocols.contains_key(&protocol) => {
                    let p = self.packet_protocols[&protocol];
                    stream.packet_flow = true;
                    self.callbacks
                        .push_back(Callback::InboundFlow(p, flow, protocol));
                    p
                }
                None => {
                    // multistream only accepts protocols in the table.
                    warn!(stream = %sref, %protocol, "negotiated a protocol no plugin owns");
                    self.fail_stream(sref, StreamError::EndedDuringNegotiation);
                    return;
                }
            },
        };
        if let Some(stream) = self.connections[index].streams.get_mut(&sid) {
            stream.owner = Owner::Plugin(owner);
        }
        let packet_flow = self.connections[index]
            .streams
            .get(&sid)
            .is_some_and(|s| s.packet_flow);
        if packet_flow && !remainder.is_empty() {
            // A flow's control stream carries no data (as in `read_stream`).
            debug!(stream = %sref, bytes = remainder.len(), "dropped data on a packet flow's control stream");
        } else if !remainder.is_empty() {
            self.callbacks
                .push_back(Callback::Data(owner, sref, remainder));
        }
    }

    fn on_writable(&mut self, index: usize, sid: StreamId) {
        let sref = StreamRef {
            conn: self.conn_id(index),
            id: sid,
        };
        let conn = &mut self.connections[index];
        let Some(stream) = conn.streams.get_mut(&sid) else {
            return;
        };
        match write_unsent(&mut conn.quic, sid, stream) {
            Ok(true) => {}
            Ok(false) => return,
            Err(WriteError::Stopped(_)) => {
                stream.send_done = true;
                stream.clear_queue();
            }
            Err(_) => {
                self.fail_stream(sref, StreamError::SendClosed);
                return;
            }
        }
        self.touch(index);
        let Some(stream) = self.connections[index].streams.get_mut(&sid) else {
            return;
        };
        match &stream.owner {
            Owner::Thread(_) => self.pump_thread_stream(sref),
            _ => {
                if stream.wants_writable {
                    stream.wants_writable = false;
                    if let Some(p) = stream.plugin() {
                        self.callbacks.push_back(Callback::Writable(p, sref));
                    }
                }
                // The queue drained: read again what the owner answers.
                if std::mem::take(&mut stream.queue_paused) {
                    self.read_stream(index, sid);
                }
            }
        }
    }

    fn on_stopped(&mut self, index: usize, sid: StreamId, code: u64) {
        let sref = StreamRef {
            conn: self.conn_id(index),
            id: sid,
        };
        let Some(stream) = self.connections[index].streams.get_mut(&sid) else {
            return;
        };
        stream.send_done = true;
        match &stream.owner {
            Owner::Thread(shared) => {
                let mut st = shared.lock();
                st.error.get_or_insert(StreamError::Stopped(code));
                st.send.clear();
                st.send_len = 0;
                drop(st);
                shared.notify_thread();
            }
            _ if stream.packet_flow => {
                self.fail_stream(sref, StreamError::Stopped(code));
                return;
            }
            _ => {
                stream.clear_queue();
                if let Some(p) = stream.plugin() {
                    self.callbacks.push_back(Callback::Stopped(p, sref, code));
                }
            }
        }
        self.maybe_remove_stream(index, sid);
    }

    /// Move bytes between a thread's handle and QUIC, both ways, and apply
    /// `finish` and drop.
    pub(crate) fn pump_thread_stream(&mut self, sref: StreamRef) {
        let index = sref.conn.index as usize;
        let Some(conn) = self.conn(sref.conn) else {
            return;
        };
        if let Some(shared) = conn
            .streams
            .get(&sref.id)
            .and_then(|s| s.packet_thread.clone())
        {
            self.pump_packet_thread(PacketFlow(sref), shared);
            return;
        }
        let conn = &mut self.connections[index];
        let Some(stream) = conn.streams.get_mut(&sref.id) else {
            return;
        };
        let Owner::Thread(shared) = &stream.owner else {
            return;
        };
        let shared = shared.clone();
        let mut st = shared.lock();
        let negotiation_sent = match write_unsent(&mut conn.quic, sref.id, stream) {
            Ok(sent) => sent,
            Err(e) => {
                if let WriteError::Stopped(code) = e {
                    st.error
                        .get_or_insert(StreamError::Stopped(code.into_inner()));
                }
                st.send.clear();
                st.send_len = 0;
                false
            }
        };
        let mut send = conn.quic.send_stream(sref.id);
        while let Some(front) = st.send.front_mut().filter(|_| negotiation_sent) {
            let before = front.len();
            match send.write_chunks(std::slice::from_mut(front)) {
                Ok(_) => {
                    let left = front.len();
                    st.send_len -= before - left;
                    // A partial write is retried at once: only `Blocked`
                    // registers the stream for a `Writable` event.
                    if left == 0 {
                        st.send.pop_front();
                    }
                }
                Err(WriteError::Blocked) => break,
                Err(WriteError::Stopped(code)) => {
                    st.error
                        .get_or_insert(StreamError::Stopped(code.into_inner()));
                    st.send.clear();
                    st.send_len = 0;
                    break;
                }
                Err(_) => {
                    st.send.clear();
                    st.send_len = 0;
                    break;
                }
            }
        }
        if negotiation_sent
            && st.send.is_empty()
            && st.send_fin
            && !stream.send_finishing
            && !stream.send_done
        {
            stream.send_finishing = true;
            if send.finish().is_err() {
                stream.send_done = true;
            }
        }
        let dropped = st.handle_dropped;
        drop(st);
        shared.notify_thread();
        if dropped && !stream.recv_done {
            let _ = conn.quic.recv_stream(sref.id).stop(VarInt::from_u32(0));
            stream.recv_done = true;
        }
        self.touch(index);
        self.read_stream(index, sref.id);
    }

    pub(crate) fn detach_stream(&mut self, sref: StreamRef) -> Result<DetachedStream, StreamError> {
        let notifier = self.notifier.clone();
        let limit = self.config.limits.threaded_stream_buffer;
        let stream = self.stream_mut(sref)?;
        if stream.packet_flow {
            return Err(StreamError::PacketFlow(sref));
        }
        if !matches!(stream.owner, Owner::Plugin(_)) {
            return Err(StreamError::Detached(sref));
        }
        let shared = Shared::new(sref, limit, notifier);
        stream.owner = Owner::Thread(shared.clone());
        stream.read_paused = false;
        if stream.recv_done {
            // The plugin already saw the end; keep the handle consistent.
            shared.lock().recv_fin = true;
        }
        // Data may already wait in QUIC for the new owner.
        self.notifier.notify(sref);
        Ok(DetachedStream::new(shared))
    }

    fn stream_mut(&mut self, sref: StreamRef) -> Result<&mut Stream, StreamError> {
        self.conn_mut(sref.conn)
            .and_then(|c| c.streams.get_mut(&sref.id))
            .ok_or(StreamError::UnknownStream(sref))
    }

    /// The connection and stream for a plugin's stream call, refusing
    /// threads' streams and packet flows' control streams (whose data the
    /// plugin never sees, and whose `Writable` it must not be told about).
    fn plugin_stream(
        &mut self,
        sref: StreamRef,
    ) -> Result<(&mut quinn_proto::Connection, &mut Stream), StreamError> {
        let (quic, stream) = self.owned_stream(sref)?;
        if stream.packet_flow {
            return Err(StreamError::PacketFlow(sref));
        }
        Ok((quic, stream))
    }

    /// The connection and stream for an operation on the swarm thread's
    /// side (a plugin's stream or a flow's control stream), refusing threads.
    fn owned_stream(
        &mut self,
        sref: StreamRef,
    ) -> Result<(&mut quinn_proto::Connection, &mut Stream), StreamError> {
        let conn = self
            .connections
            .get_mut(sref.conn.index as usize)
            .filter(|c| c.generation == sref.conn.generation && !c.closing)
            .ok_or(StreamError::UnknownStream(sref))?;
        let stream = conn
            .streams
            .get_mut(&sref.id)
            .ok_or(StreamError::UnknownStream(sref))?;
        if matches!(stream.owner, Owner::Thread(_)) {
            return Err(StreamError::Detached(sref));
        }
        Ok((&mut conn.quic, stream))
    }

    pub(crate) fn write(&mut self, sref: StreamRef, data: &[u8]) -> Result<usize, StreamError> {
        let (quic, stream) = self.plugin_stream(sref)?;
        if !queue_sent_for_write(quic, sref.id, stream)? {
            return Ok(0);
        }
        let mut send = quic.send_stream(sref.id);
        let mut written = 0;
        // Write until everything is taken or quinn says `Blocked`: only a
        // refused write registers the stream for a `Writable` event; a
        // partial one does not, and the stream would never be woken.
        let r = loop {
            match send.write(&data[written..]) {
                Ok(n) => {
                    written += n;
                    if written == data.len() {
                        break Ok(written);
                    }
                }
                Err(WriteError::Blocked) => {
                    stream.wants_writable = true;
                    break Ok(written);
                }
                Err(WriteError::Stopped(code)) => {
                    break Err(StreamError::Stopped(code.into_inner()));
                }
                Err(_) => break Err(StreamError::SendClosed),
            }
        };
        self.touch(sref.conn.index as usize);
        r
    }

    pub(crate) fn write_bytes(
        &mut self,
        sref: StreamRef,
        data: &mut Bytes,
    ) -> Result<usize, StreamError> {
        let (quic, stream) = self.plugin_stream(sref)?;
        if !queue_sent_for_write(quic, sref.id, stream)? {
            return Ok(0);
        }
        let mut send = quic.send_stream(sref.id);
        let before = data.len();
        // As in `write`: keep going until `Blocked` registers the stream.
        let r = loop {
            match send.write_chunks(std::slice::from_mut(data)) {
                Ok(_) if data.is_empty() => break Ok(before),
                Ok(_) => {}
                Err(WriteError::Blocked) => {
                    stream.wants_writable = true;
                    break Ok(before - data.len());
                }
                Err(WriteError::Stopped(code)) => {
                    break Err(StreamError::Stopped(code.into_inner()));
                }
                Err(_) => break Err(StreamError::SendClosed),
            }
        };
        self.touch(sref.conn.index as usize);
        r
    }

    pub(crate) fn finish(&mut self, sref: StreamRef) -> Result<(), StreamError> {
        self.plugin_stream(sref)?;
        self.finish_owned(sref)
    }

    /// `finish` for a plugin's stream or a flow's control stream.
    fn finish_owned(&mut self, sref: StreamRef) -> Result<(), StreamError> {
        let (quic, stream) = self.owned_stream(sref)?;
        if stream.send_finishing || stream.send_done {
            return Err(StreamError::SendClosed);
        }
        if !stream.unsent.is_empty() {
            // The FIN goes out after the queued bytes.
            stream.send_finishing = true;
            stream.finish_when_drained = true;
            return Ok(());
        }
        let r = match quic.send_stream(sref.id).finish() {
            Ok(()) => {
                stream.send_finishing = true;
                Ok(())
            }
            Err(quinn_proto::FinishError::Stopped(code)) => {
                Err(StreamError::Stopped(code.into_inner()))
            }
            Err(quinn_proto::FinishError::ClosedStream) => Err(StreamError::SendClosed),
        };
        self.touch(sref.conn.index as usize);
        r
    }

    pub(crate) fn reset(&mut self, sref: StreamRef, code: u64) -> Result<(), StreamError> {
        let (quic, stream) = self.plugin_stream(sref)?;
        let code = VarInt::from_u64(code).unwrap_or(VarInt::MAX);
        let _ = quic.send_stream(sref.id).reset(code);
        stream.send_done = true;
        stream.clear_queue();
        self.touch(sref.conn.index as usize);
        self.maybe_remove_stream(sref.conn.index as usize, sref.id);
        Ok(())
    }

    pub(crate) fn stop_sending(&mut self, sref: StreamRef, code: u64) -> Result<(), StreamError> {
        self.plugin_stream(sref)?;
        self.stop_sending_owned(sref, code)
    }

    /// `stop_sending` for a plugin's stream or a flow's control stream.
    fn stop_sending_owned(&mut self, sref: StreamRef, code: u64) -> Result<(), StreamError> {
        let (quic, stream) = self.owned_stream(sref)?;
        let code = VarInt::from_u64(code).unwrap_or(VarInt::MAX);
        let _ = quic.recv_stream(sref.id).stop(code);
        stream.recv_done = true;
        self.touch(sref.conn.index as usize);
        self.maybe_remove_stream(sref.conn.index as usize, sref.id);
        Ok(())
    }

    /// Reset our side and stop the remote's, whatever is still open.
    pub(crate) fn abort(&mut self, sref: StreamRef, code: u64) -> Result<(), StreamError> {
        let (quic, stream) = self.plugin_stream(sref)?;
        let code = VarInt::from_u64(code).unwrap_or(VarInt::MAX);
        if !stream.send_done {
            let _ = quic.send_stream(sref.id).reset(code);
            stream.send_done = true;
            stream.clear_queue();
        }
        if !stream.recv_done {
            let _ = quic.recv_stream(sref.id).stop(code);
            stream.recv_done = true;
        }
        self.touch(sref.conn.index as usize);
        self.maybe_remove_stream(sref.conn.index as usize, sref.id);
        Ok(())
    }

    /// Queue `data` behind what waits and write what the window takes.
    pub(crate) fn send(&mut self, sref: StreamRef, data: Bytes) -> Result<usize, StreamError> {
        let high_water = self.config.limits.send_queue_high_water;
        let (quic, stream) = self.plugin_stream(sref)?;
        if stream.send_finishing || stream.send_done {
            return Err(StreamError::SendClosed);
        }
        stream.queue(data);
        let r = match write_unsent(quic, sref.id, stream) {
            Ok(_) => {
                if stream.unsent_len > high_water {
                    stream.queue_paused = true;
                }
                Ok(stream.unsent_len)
            }
            Err(e) => {
                stream.clear_queue();
                Err(match e {
                    WriteError::Stopped(code) => StreamError::Stopped(code.into_inner()),
                    _ => StreamError::SendClosed,
                })
            }
        };
        self.touch(sref.conn.index as usize);
        r
    }

    pub(crate) fn queued(&self, sref: StreamRef) -> usize {
        self.conn(sref.conn)
            .and_then(|c| c.streams.get(&sref.id))
            .map_or(0, |s| s.unsent_len)
    }

    pub(crate) fn send_message(&mut self, to: PluginId, message: Message) {
        self.callbacks.push_back(Callback::Message(to, message));
    }

    pub(crate) fn set_stream_keep_alive(
        &mut self,
        sref: StreamRef,
        keep: bool,
    ) -> Result<(), StreamError> {
        self.stream_mut(sref)?.keeps_alive = keep;
        self.update_idle(sref.conn.index as usize);
        Ok(())
    }

    pub(crate) fn local_public_key(&self) -> libp2p_identity::PublicKey {
        self.config.keypair.public()
    }

    pub(crate) fn set_reading(
        &mut self,
        sref: StreamRef,
        reading: bool,
    ) -> Result<(), StreamError> {
        let (_, stream) = self.plugin_stream(sref)?;
        let resume = stream.read_paused && reading;
        stream.read_paused = !reading;
        if resume {
            self.read_stream(sref.conn.index as usize, sref.id);
        }
        Ok(())
    }

    /// Kill a stream both ways and tell its owner why.
    fn fail_stream(&mut self, sref: StreamRef, error: StreamError) {
        let index = sref.conn.index as usize;
        let Some(conn) = self.connections.get_mut(index) else {
            return;
        };
        let Some(stream) = conn.streams.remove(&sref.id) else {
            return;
        };
        let code = VarInt::from_u32(RESET_CODE_NEGOTIATION);
        if !stream.recv_done {
            let _ = conn.quic.recv_stream(sref.id).stop(code);
        }
        if !stream.send_done {
            let _ = conn.quic.send_stream(sref.id).reset(code);
        }
        debug!(stream = %sref, %error, "stream failed");
        self.stream_died(sref, stream, error);
        self.touch(index);
        self.update_idle(index);
    }

    /// Tell a removed stream's owner that it died.
    fn stream_died(&mut self, sref: StreamRef, stream: Stream, error: StreamError) {
        match stream.owner {
            Owner::Thread(shared) => {
                shared.lock().error.get_or_insert(error);
                shared.notify_thread();
            }
            Owner::Negotiating {
                waiter: Some(reply),
                ..
            } => {
                let e = match error {
                    StreamError::Negotiation(m) => OpenStreamError::Negotiation(m),
                    other => OpenStreamError::Stream(other),
                };
                let _ = reply.send(Err(e));
            }
            Owner::Negotiating {
                plugin: Some(p), ..
            }
            | Owner::Plugin(p)
                if stream.packet_flow =>
            {
                if let Some(shared) = &stream.packet_thread {
                    shared.close(PacketError::FlowClosed);
                }
                let reason = match error {
                    StreamError::Negotiation(m) => {
                        PacketError::Open(OpenStreamError::Negotiation(m))
                    }
                    _ => PacketError::FlowClosed,
                };
                self.callbacks.push_back(Callback::FlowClosed(
                    p,
                    sref.conn,
                    Some(PacketFlow(sref)),
                    reason,
                ));
            }
            Owner::Negotiating {
                plugin: Some(p), ..
            }
            | Owner::Plugin(p) => {
                self.callbacks.push_back(Callback::Closed(p, sref, error));
            }
            Owner::Negotiating { .. } => {}
        }
    }

    fn maybe_remove_stream(&mut self, index: usize, sid: StreamId) {
        let Some(conn) = self.connections.get_mut(index) else {
            return;
        };
        if conn.streams.get(&sid).is_some_and(Stream::is_done) {
            let stream = conn.streams.remove(&sid);
            // A detached flow's thread must hear that the flow is over.
            if let Some(shared) = stream.and_then(|s| s.packet_thread) {
                shared.close(PacketError::FlowClosed);
            }
            self.update_idle(index);
        }
    }

    // ----- packet flows (QUIC datagrams) -----

    pub(crate) fn request_packet_flow(&mut self, conn: ConnId, protocol: &str, plugin: PluginId) {
        let established = self.conn(conn).is_some_and(|c| c.established);
        if established {
            if let Err(e) = self.open_packet_flow(StreamTarget::Conn(conn), protocol, plugin) {
                self.callbacks
                    .push_back(Callback::FlowClosed(plugin, conn, None, e));
            }
        } else if let Some(c) = self.conn_mut(conn) {
            c.pending_flows.push((plugin, protocol.to_string()));
        }
    }

    pub(crate) fn open_packet_flow(
        &mut self,
        target: StreamTarget,
        protocol: &str,
        plugin: PluginId,
    ) -> Result<PacketFlow, PacketError> {
        let conn_id = match target {
            StreamTarget::Conn(c) => c,
            StreamTarget::Peer(p) => *self
                .connections_to(&p)
                .first()
                .ok_or(OpenStreamError::NotConnected(p))?,
        };
        let conn = self
            .conn_mut(conn_id)
            .ok_or(OpenStreamError::UnknownConnection(conn_id))?;
        if conn.established && conn.quic.datagrams().max_size().is_none() {
            return Err(PacketError::PeerUnsupported);
        }
        let sref = self.open_stream(StreamTarget::Conn(conn_id), protocol, Some(plugin))?;
        if let Some(s) = self.connections[conn_id.index as usize]
            .streams
            .get_mut(&sref.id)
        {
            s.packet_flow = true;
        }
        Ok(PacketFlow(sref))
    }

    /// The connection of an open flow whose control stream can still send.
    fn flow_conn(&mut self, flow: PacketFlow) -> Result<&mut Connection, PacketError> {
        let conn = self.conn_mut(flow.0.conn).ok_or(PacketError::FlowClosed)?;
        match conn.streams.get(&flow.0.id) {
            Some(s)
                if s.packet_flow
                    && matches!(s.owner, Owner::Plugin(_))
                    && !s.send_done
                    && !s.send_finishing => {}
            _ => return Err(PacketError::FlowClosed),
        }
        Ok(conn)
    }

    pub(crate) fn max_packet_size(&mut self, flow: PacketFlow) -> Result<usize, PacketError> {
        let limit = self.config.max_packet_size;
        let conn = self.flow_conn(flow)?;
        let header = quic_varint_len(u64::from(flow.0.id));
        let max = conn
            .quic
            .datagrams()
            .max_size()
            .ok_or(PacketError::PeerUnsupported)?;
        Ok(max.saturating_sub(header).min(limit))
    }

    pub(crate) fn send_packet(&mut self, flow: PacketFlow, data: &[u8]) -> Result<(), PacketError> {
        let max = self.max_packet_size(flow)?;
        if data.len() > max {
            return Err(PacketError::TooLarge {
                size: data.len(),
                max,
            });
        }
        let conn = self.flow_conn(flow)?;
        let id = u64::from(flow.0.id);
        let mut buf = BytesMut::with_capacity(quic_varint_len(id) + data.len());
        quic_varint_encode(id, &mut buf);
        buf.extend_from_slice(data);
        // `drop = true`: under pressure the oldest queued datagram goes; a
        // game tick or position update is stale by then anyway.
        match conn.quic.datagrams().send(buf.freeze(), true) {
            Ok(()) => {}
            Err(quinn_proto::SendDatagramError::TooLarge) => {
                return Err(PacketError::TooLarge {
                    size: data.len(),
                    max,
                });
            }
            Err(_) => return Err(PacketError::PeerUnsupported),
        }
        self.touch(flow.0.conn.index as usize);
        Ok(())
    }

    pub(crate) fn send_raw_datagram(
        &mut self,
        conn: ConnId,
        data: Bytes,
    ) -> Result<(), PacketError> {
        let c = self.conn_mut(conn).ok_or(PacketError::FlowClosed)?;
        c.quic
            .datagrams()
            .send(data, true)
            .map_err(|_| PacketError::PeerUnsupported)?;
        self.touch(conn.index as usize);
        Ok(())
    }

    pub(crate) fn close_packet_flow(&mut self, flow: PacketFlow) -> Result<(), PacketError> {
        self.flow_conn(flow)?;
        // FIN says "no more packets from us"; STOP_SENDING says "none
        // wanted": the peer's flow closes either way, and packets still in
        // flight to us are dropped and counted.
        self.finish_owned(flow.0)
            .map_err(|_| PacketError::FlowClosed)?;
        let _ = self.stop_sending_owned(flow.0, 0);
        Ok(())
    }

    pub(crate) fn detach_packet_flow(
        &mut self,
        flow: PacketFlow,
    ) -> Result<DetachedPacketFlow, PacketError> {
        let max = self.max_packet_size(flow)?;
        let notifier = self.notifier.clone();
        let conn = self.flow_conn(flow)?;
        let stream = conn
            .streams
            .get_mut(&flow.0.id)
            .ok_or(PacketError::FlowClosed)?;
        if stream.packet_thread.is_some() {
            return Err(PacketError::FlowClosed);
        }
        let shared = FlowShared::new(flow, max, notifier);
        stream.packet_thread = Some(shared.clone());
        Ok(DetachedPacketFlow::new(shared))
    }

    /// Send what a flow's thread queued, refresh its size limit, and close
    /// the flow when the handle is gone.
    fn pump_packet_thread(&mut self, flow: PacketFlow, shared: Arc<FlowShared>) {
        let max = self.max_packet_size(flow);
        let (outbox, dropped_handle) = {
            let mut st = shared.lock();
            if let Ok(max) = max {
                st.max_size = max;
            }
            (std::mem::take(&mut st.outbox), st.handle_dropped)
        };
        for packet in outbox {
            if let Err(e) = self.send_packet(flow, &packet) {
                shared.close(e);
                break;
            }
        }
        if dropped_handle {
            let _ = self.close_packet_flow(flow);
        }
    }

    /// Hand received datagrams to their flows' plugins; drop and count the rest.
    fn receive_datagrams(&mut self, index: usize) {
        let conn_id = self.conn_id(index);
        let conn = &mut self.connections[index];
        while let Some(mut datagram) = conn.quic.datagrams().recv() {
            let target = quic_varint_decode(&mut datagram).and_then(|id| {
                let sid = StreamId::from(VarInt::from_u64(id).ok()?);
                let stream = conn.streams.get(&sid)?;
                match stream.owner {
                    Owner::Plugin(p) if stream.packet_flow && !stream.recv_done => {
                        Some((p, sid, stream.packet_thread.clone()))
                    }
                    _ => None,
                }
            });
            match target {
                Some((_, _, Some(thread))) => thread.deliver(datagram),
                Some((plugin, sid, None)) => {
                    let flow = PacketFlow(StreamRef {
                        conn: conn_id,
                        id: sid,
                    });
                    self.callbacks
                        .push_back(Callback::PacketData(plugin, flow, datagram));
                }
                None => {
                    self.dropped_datagrams += 1;
                    trace!(conn = %conn_id, "dropped a datagram for no open flow");
                }
            }
        }
    }

    // ----- events to applications -----

    pub(crate) fn emit(&mut self, from: Option<PluginId>, event: ProtocolEvent) {
        self.publish(SwarmEvent::Protocol(event.clone()));
        self.callbacks.push_back(Callback::Event(from, event));
    }

    /// Send an event to subscribers without ever blocking the swarm thread:
    /// a full subscriber loses the event (counted and logged).
    fn publish(&mut self, event: SwarmEvent) {
        self.subscribers
            .retain(|s| match s.try_send(event.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    self.dropped_events += 1;
                    warn!(
                        dropped = self.dropped_events,
                        "event subscriber is full; event dropped"
                    );
                    true
                }
                Err(TrySendError::Disconnected(_)) => false,
            });
    }
}

/// One UDP datagram as the driver received it, for [`Swarm::feed_datagrams`].
#[derive(Debug)]
pub struct ReceivedDatagram {
    /// Who sent it.
    pub remote: SocketAddr,
    /// The local address it was sent to, where the socket reports it.
    pub local_ip: Option<IpAddr>,
    /// Its ECN bits.
    pub ecn: Option<EcnCodepoint>,
    /// The payload (one QUIC datagram; GRO batches are split before).
    pub data: BytesMut,
}

/// Why a connection ended, before it is turned into an error for someone.
enum EndReason {
    Quic(quinn_proto::ConnectionError),
    HandshakeTimeout,
    Refused(DialError),
    Local(u32),
    Lost(String),
}

impl std::fmt::Display for EndReason {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            EndReason::Quic(e) => write!(f, "{e}"),
            EndReason::HandshakeTimeout => write!(f, "handshake timed out"),
            EndReason::Refused(e) => write!(f, "{e}"),
            EndReason::Local(code) => write!(f, "closed locally with code {code}"),
            EndReason::Lost(s) => write!(f, "{s}"),
        }
    }
}

impl EndReason {
    fn into_dial_error(self, expected: Option<PeerId>, observed: Option<PeerId>) -> DialError {
        if let (Some(expected), Some(actual)) = (expected, observed)
            && expected != actual
        {
            return DialError::WrongPeerId { expected, actual };
        }
        match self {
            EndReason::Quic(quinn_proto::ConnectionError::TimedOut)
            | EndReason::HandshakeTimeout => DialError::Timeout,
            EndReason::Quic(e) => DialError::Handshake(Arc::new(e)),
            EndReason::Refused(e) => e,
            EndReason::Local(_) => DialError::ShuttingDown,
            EndReason::Lost(s) => DialError::Handshake(cause(&s)),
        }
    }
}

/// Write what is queued on a stream (multistream-select messages, then the
/// owner's `send`s), then the FIN its owner asked for meanwhile. `Ok(true)`
/// once nothing is left, so direct writes may follow; `Ok(false)` while the
/// send window is full (quinn then reports the stream `Writable`).
fn write_unsent(
    quic: &mut quinn_proto::Connection,
    sid: StreamId,
    stream: &mut Stream,
) -> Result<bool, WriteError> {
    if stream.unsent.is_empty() && !stream.finish_when_drained {
        return Ok(true);
    }
    let mut send = quic.send_stream(sid);
    // Until `Blocked`: only a refused write registers for `Writable`.
    while let Some(front) = stream.unsent.front_mut() {
        let before = front.len();
        match send.write_chunks(std::slice::from_mut(front)) {
            Ok(_) => {
                stream.unsent_len -= before - front.len();
                if front.is_empty() {
                    stream.unsent.pop_front();
                }
            }
            Err(WriteError::Blocked) => return Ok(false),
            Err(e) => return Err(e),
        }
    }
    if std::mem::take(&mut stream.finish_when_drained) && send.finish().is_err() {
        stream.send_done = true;
    }
    Ok(true)
}

/// Before a plugin's direct write: `Ok(false)` (nothing may be written yet,
/// and the plugin hears `handle_stream_writable` later) while queued bytes
/// still wait for the send window.
fn queue_sent_for_write(
    quic: &mut quinn_proto::Connection,
    sid: StreamId,
    stream: &mut Stream,
) -> Result<bool, StreamError> {
    match write_unsent(quic, sid, stream) {
        Ok(true) => Ok(true),
        Ok(false) => {
            stream.wants_writable = true;
            Ok(false)
        }
        Err(WriteError::Stopped(code)) => Err(StreamError::Stopped(code.into_inner())),
        Err(_) => Err(StreamError::SendClosed),
    }
}

/// Bytes a QUIC variable-length integer takes.
fn quic_varint_len(v: u64) -> usize {
    match v {
        0..0x40 => 1,
        0x40..0x4000 => 2,
        0x4000..0x4000_0000 => 4,
        _ => 8,
    }
}

/// Append `v` as a QUIC variable-length integer (RFC 9000 §16).
fn quic_varint_encode(v: u64, out: &mut BytesMut) {
    use bytes::BufMut;
    if v < 1 << 6 {
        out.put_u8(v as u8);
    } else if v < 1 << 14 {
        out.put_u16(0x4000 | v as u16);
    } else if v < 1 << 30 {
        out.put_u32(0x8000_0000 | v as u32);
    } else {
        out.put_u64(0xc000_0000_0000_0000 | v);
    }
}

/// Split a QUIC variable-length integer off the front of `data`.
fn quic_varint_decode(data: &mut Bytes) -> Option<u64> {
    let first = *data.first()?;
    let len = 1usize << (first >> 6);
    if data.len() < len {
        return None;
    }
    let mut v = u64::from(first & 0x3f);
    for b in &data[1..len] {
        v = (v << 8) | u64::from(*b);
    }
    let _ = data.split_to(len);
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quic_varints_round_trip_at_every_length() {
        for v in [
            0,
            63,
            64,
            16_383,
            16_384,
            (1 << 30) - 1,
            1 << 30,
            (1 << 62) - 1,
        ] {
            let mut buf = BytesMut::new();
            quic_varint_encode(v, &mut buf);
            buf.extend_from_slice(b"tail");
            let mut bytes = buf.freeze();
            assert_eq!(quic_varint_decode(&mut bytes), Some(v));
            assert_eq!(&bytes[..], b"tail");
        }
        assert_eq!(quic_varint_decode(&mut Bytes::new()), None);
        assert_eq!(
            quic_varint_decode(&mut Bytes::from_static(&[0x80, 1])),
            None
        );
    }
}
