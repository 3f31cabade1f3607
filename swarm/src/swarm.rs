//! The facade: [`Swarm`] holds the engine and the plugins, takes the
//! driver's feed calls, runs commands from handles, and makes the plugin
//! calls the engine queued. No I/O of its own.
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
//! 5. **TCP** (drivers with TCP sockets; see [`SocketBinder::bind_tcp`]):
//!    connect what [`Swarm::poll_tcp_connect`] asks for and report it with
//!    [`Swarm::feed_tcp_connected`]; feed accepted sockets with
//!    [`Swarm::feed_tcp_accepted`] and received bytes with
//!    [`Swarm::feed_tcp_data`] (a driver should cap a turn's reads per
//!    socket, as for datagrams); for each connection
//!    [`Swarm::poll_tcp_ready`] names, write what
//!    [`Swarm::poll_tcp_outbound`] yields, asking only when the previous
//!    bytes are written (that keeps the write buffer bounded) and again
//!    after a short write completes; report every closed socket with
//!    [`Swarm::feed_tcp_closed`].
//! 6. **Sleep** until the next datagram, wake-up or [`Swarm::poll_timeout`].
//!
//! Each feed call runs, before it returns, every plugin callback it causes,
//! in order; plugins call back into the swarm through their
//! [`Context`], which acts at once (a write goes straight into QUIC's send
//! buffer) or queues further callbacks. Sockets are bound synchronously
//! through the driver's [`SocketBinder`].

use std::net::{IpAddr, SocketAddr};
use std::sync::Arc;
use std::sync::mpsc::{self, Receiver, Sender, SyncSender};
use std::time::Instant;

use bytes::BytesMut;
use libp2p_identity::PeerId;
use multiaddr::Multiaddr;
use quinn_proto::{EcnCodepoint, Transmit};

use crate::config::SwarmConfig;
use crate::connection::{Requester, SocketIndex};
use crate::detached_stream::DetachedStream;
use crate::engine::{Callback, Core, ReceivedDatagram};
use crate::error::OpenStreamError;
use crate::error::{DialError, ListenError};
use crate::events::{Message, ProtocolEvent, StreamTarget, SwarmEvent};
use crate::ids::{ConnId, PluginId};
use crate::peer_store::PeerStore;
use crate::protocol::{Context, Protocol};
use crate::stream::Owner;
use crate::transport::quic::SocketBinder;
use crate::wake::{Notifier, Wake};

/// Datagrams a driver should feed per socket per turn before it runs timers
/// and transmits (fairness between sockets and peers).
pub const MAX_DATAGRAMS_PER_TURN: usize = 256;

/// A closure run on the swarm thread with the whole swarm.
pub(crate) type SwarmCall = Box<dyn FnOnce(&mut Swarm) + Send>;

/// Work for the swarm thread.
pub(crate) enum Command {
    Dial {
        addr: Multiaddr,
        force_new: bool,
        reply: Sender<Result<ConnId, DialError>>,
    },
    DialWithId {
        peer: PeerId,
        force_new: bool,
        reply: Sender<Result<ConnId, DialError>>,
    },
    Listen {
        addr: Multiaddr,
        reply: Sender<Result<Multiaddr, ListenError>>,
    },
    OpenStream {
        target: StreamTarget,
        protocol: String,
        reply: Sender<Result<DetachedStream, OpenStreamError>>,
    },
    Event(ProtocolEvent),
    Message {
        to: PluginId,
        message: Message,
    },
    Subscribe(SyncSender<SwarmEvent>),
    Shutdown {
        code: u32,
    },
    Call(SwarmCall),
}

/// The swarm: QUIC endpoints, connections, streams, peer store and timers,
/// plus the plugins it calls. See the module docs for the driving contract.
pub struct Swarm {
    core: Core,
    plugins: Vec<Option<Box<dyn Protocol>>>,
    started: bool,
    /// Commands from [`SwarmHandle`](crate::SwarmHandle)s, run on the next wake-up.
    commands: Receiver<Command>,
    command_sender: Sender<Command>,
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
        let (command_sender, commands) = mpsc::channel();
        Ok(Self {
            core: Core::new(config, binder, waker, now)?,
            commands,
            command_sender,
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

    /// Where [`SwarmHandle`](crate::SwarmHandle)s send commands, and the
    /// notifier that wakes the driver for them.
    pub(crate) fn command_sender(&self) -> (Sender<Command>, Notifier) {
        (self.command_sender.clone(), self.core.notifier.clone())
    }

    /// Listen on a QUIC or TCP multiaddr (port 0 picks a port); returns
    /// the resolved address. TCP needs a driver that binds TCP sockets
    /// ([`SocketBinder::bind_tcp`]): the mio [`Runtime`](crate::Runtime) does,
    /// the virtual network does not.
    pub fn listen(&mut self, addr: &Multiaddr) -> Result<Multiaddr, ListenError> {
        if crate::address::is_circuit(addr) {
            // The circuit transport registers in `on_start`.
            self.start();
            self.dispatch();
        }
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

    /// Keep every [`SwarmEvent`] from now on, for
    /// [`Swarm::take_recorded_events`]: what a driver on the swarm's own
    /// thread (the simulator) uses instead of a subscriber channel, so that
    /// no event is dropped and nothing is allocated ahead of time.
    pub fn record_events(&mut self) {
        self.core.recorded_events.get_or_insert_with(Vec::new);
    }

    /// Move the events recorded since the last call onto `out`, oldest
    /// first (nothing unless [`Swarm::record_events`] was called).
    pub fn take_recorded_events(&mut self, out: &mut Vec<SwarmEvent>) {
        if let Some(log) = &mut self.core.recorded_events {
            out.append(log);
        }
    }

    /// How many streams and packet flows this swarm has handed to threads
    /// (detached by a plugin, or opened by a [`SwarmHandle`](crate::SwarmHandle)), ever.
    pub fn handed_to_threads(&self) -> u64 {
        self.core.handed_to_threads
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
                .feed_endpoint(SocketIndex(socket), d.remote, d.local_ip, d.ecn, d.data);
        }
        self.dispatch();
    }

    /// Process commands from handles and streams touched by other threads.
    pub fn feed_wakeup(&mut self, now: Instant) {
        self.core.now = now;
        self.start();
        while let Ok(cmd) = self.commands.try_recv() {
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
        self.core
            .deadlines
            .peek()
            .map(|std::cmp::Reverse((at, _))| *at)
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

    /// TCP: the driver accepted a socket from `remote` on one of its
    /// listeners. `None`: a limit refuses it; close the socket.
    pub fn feed_tcp_accepted(&mut self, now: Instant, remote: SocketAddr) -> Option<ConnId> {
        self.core.now = now;
        self.start();
        let id = self.core.tcp_accepted(remote);
        self.dispatch();
        id
    }

    /// TCP: the socket of a dialed connection connected, from `local`
    /// (its local address: whether it is our listen port matters to
    /// identify and hole punching).
    pub fn feed_tcp_connected(&mut self, now: Instant, conn: ConnId, local: SocketAddr) {
        self.core.now = now;
        self.start();
        self.core.tcp_connected(conn, local);
        self.dispatch();
    }

    /// TCP: bytes received on a connection's socket.
    pub fn feed_tcp_data(&mut self, now: Instant, conn: ConnId, data: &[u8]) {
        self.core.now = now;
        self.start();
        self.core.tcp_data(conn, data);
        self.dispatch();
    }

    /// TCP: a connection's socket is closed (end of file, an error, a failed
    /// connect, or after [`TcpOutbound::close`](crate::TcpOutbound)); the
    /// connection leaves the table.
    pub fn feed_tcp_closed(&mut self, now: Instant, conn: ConnId, error: Option<String>) {
        self.core.now = now;
        self.start();
        self.core.tcp_closed(conn, error);
        self.dispatch();
    }

    /// TCP: the next connection that may have bytes to write or must
    /// close; ask it with [`Swarm::poll_tcp_outbound`]. Only connections
    /// named here (or whose earlier bytes are still being written) need
    /// asking, so a turn costs nothing per idle connection.
    pub fn poll_tcp_ready(&mut self) -> Option<ConnId> {
        self.core.poll_tcp_ready()
    }

    /// TCP: the next socket to connect for a dialed connection.
    pub fn poll_tcp_connect(&mut self) -> Option<crate::TcpConnect> {
        self.core.poll_tcp_connect()
    }

    /// TCP: what to write on `conn`'s socket now, and whether to close it
    /// afterwards. Taking bytes lets blocked writers go on, so plugins may
    /// run.
    pub fn poll_tcp_outbound(&mut self, now: Instant, conn: ConnId) -> crate::TcpOutbound {
        self.core.now = now;
        self.start();
        let out = self.core.tcp_outbound(conn);
        self.dispatch();
        out
    }

    /// Call `on_start` on every plugin once, before the first event or
    /// command (so that what a plugin registers there, such as a peer
    /// router or circuit transport, is in place for the first dial).
    fn start(&mut self) {
        if !self.started {
            self.started = true;
            for i in 0..self.plugins.len() {
                self.core.callbacks.push_back(Callback::Start(PluginId(i)));
            }
            self.dispatch();
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
                Callback::LocalProtocolsChanged => {
                    self.each_plugin(|p, ctx| p.handle_local_protocols_changed(ctx))
                }
                Callback::FindPeer(id, peer) => {
                    self.call(id, |p, ctx| p.handle_find_peer(ctx, peer))
                }
                Callback::DialCircuit(id, dial, addr) => {
                    self.call(id, |p, ctx| p.handle_dial_circuit(ctx, dial, &addr))
                }
                Callback::ListenCircuit(id, addr) => {
                    self.call(id, |p, ctx| p.handle_listen_circuit(ctx, &addr))
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
