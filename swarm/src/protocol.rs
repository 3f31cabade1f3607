//! The plugin API: the [`Protocol`] trait the swarm calls, and the
//! [`Context`] a plugin uses to call back.
//!
//! Every method runs on the swarm thread, one at a time, and must not block:
//! a plugin that needs to block (disk, a long computation) hands the stream
//! to a thread with [`Context::detach_stream`].

use std::any::Any;
use std::time::{Duration, Instant};

use bytes::Bytes;
use libp2p_identity::{PeerId, PublicKey, SigningError};
use multiaddr::Multiaddr;

use crate::detached_packet_flow::DetachedPacketFlow;
use crate::detached_stream::DetachedStream;
use crate::engine::Core;
use crate::error::{
    ConnectionError, DialError, ListenError, OpenStreamError, PacketError, RelayConnectionError,
    StreamError,
};
use crate::events::{Message, PacketFlow, ProtocolEvent, RelayedRole, StreamTarget};
use crate::ids::{ConnId, PluginId, StreamRef, TimerId};
use crate::peer_store::{PeerRecord, PeerStore};

/// A protocol plugin. Implement the methods you need; the rest do nothing.
///
/// Call order for a stream: `accept_inbound_stream` (inbound) or
/// `handle_stream_negotiated` (outbound), then any number of
/// `handle_stream_data` / `handle_stream_writable`, then
/// `handle_stream_finished` when the remote ends its side, or
/// `handle_stream_closed` if the stream dies (reset, stopped, connection lost).
/// A connection's `handle_closed_connection` comes after the
/// `handle_stream_closed` of each of its streams.
pub trait Protocol: Send {
    /// A short name for logs and for [`ProtocolEvent::source`].
    fn name(&self) -> &'static str {
        std::any::type_name::<Self>()
    }

    /// The protocol ids whose inbound streams this plugin accepts.
    fn protocol_ids(&self) -> Vec<String> {
        Vec::new()
    }

    /// The protocol ids whose packet flows (QUIC datagrams) this plugin
    /// accepts; see [`Protocol::accept_inbound_packet_flow`].
    fn packet_protocol_ids(&self) -> Vec<String> {
        Vec::new()
    }

    /// Called once when the swarm starts, before any connection.
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        let _ = ctx;
    }

    /// The swarm started listening on a new address (resolved, no port 0).
    fn handle_new_listen_addr(&mut self, ctx: &mut Context<'_>, addr: &Multiaddr) {
        let _ = (ctx, addr);
    }

    /// A connection finished its handshake (either direction).
    fn handle_new_connection(&mut self, ctx: &mut Context<'_>, conn: ConnId, peer: PeerId) {
        let _ = (ctx, conn, peer);
    }

    /// An established connection closed.
    fn handle_closed_connection(&mut self, ctx: &mut Context<'_>, conn: ConnId, peer: PeerId) {
        let _ = (ctx, conn, peer);
    }

    /// A dial this plugin started failed.
    fn handle_dial_failure(&mut self, ctx: &mut Context<'_>, conn: ConnId, error: &DialError) {
        let _ = (ctx, conn, error);
    }

    /// A plugin advertised or withdrew a protocol id
    /// ([`Context::advertise_protocol`], [`Context::withdraw_protocol`]):
    /// [`Context::supported_protocols`] changed.
    fn handle_local_protocols_changed(&mut self, ctx: &mut Context<'_>) {
        let _ = ctx;
    }

    /// Called on the peer router (see [`Context::register_peer_router`]):
    /// a `dial_with_id` found no address for `peer`. Search, add what is
    /// found to the peer store, then call [`Context::peer_routing_done`]
    /// (now or later; the swarm gives up after
    /// [`Limits::peer_routing_timeout`](crate::Limits::peer_routing_timeout)).
    /// Asked once per peer however many dials wait.
    fn handle_find_peer(&mut self, ctx: &mut Context<'_>, peer: PeerId) {
        let _ = (ctx, peer);
    }

    /// Called on the circuit transport (see
    /// [`Context::register_circuit_transport`]): someone dialed `addr`, a
    /// relayed address (`…/p2p/<relay>/p2p-circuit/p2p/<peer>`), known as
    /// `dial` until it completes. Reach the peer through the relay, then
    /// call [`Context::complete_circuit_dial`] with the carrying stream,
    /// or [`Context::fail_circuit_dial`] (the swarm fails the dial itself
    /// after the handshake timeout).
    fn handle_dial_circuit(&mut self, ctx: &mut Context<'_>, dial: ConnId, addr: &Multiaddr) {
        let _ = (ctx, dial, addr);
    }

    /// Called on the circuit transport: someone asked the swarm to listen
    /// on `addr`, `…/p2p/<relay>/p2p-circuit`. Reserve a slot on that relay
    /// and accept the circuits it brings (a relay client confirms the
    /// relayed addresses as external ones once reserved).
    fn handle_listen_circuit(&mut self, ctx: &mut Context<'_>, addr: &Multiaddr) {
        let _ = (ctx, addr);
    }

    /// A remote opened a stream and multistream-select matched `protocol`,
    /// one of [`Protocol::protocol_ids`]. The plugin now owns the stream.
    fn accept_inbound_stream(&mut self, ctx: &mut Context<'_>, stream: StreamRef, protocol: &str) {
        let _ = (ctx, stream, protocol);
    }

    /// A stream this plugin opened was accepted by the remote for `protocol`.
    fn handle_stream_negotiated(
        &mut self,
        ctx: &mut Context<'_>,
        stream: StreamRef,
        protocol: &str,
    ) {
        let _ = (ctx, stream, protocol);
    }

    /// Bytes arrived on a stream this plugin owns (straight from QUIC, no copy).
    fn handle_stream_data(&mut self, ctx: &mut Context<'_>, stream: StreamRef, data: Bytes) {
        let _ = (ctx, stream, data);
    }

    /// A stream whose last write was short has room again, or whose
    /// [`Context::send`] queue has drained.
    fn handle_stream_writable(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        let _ = (ctx, stream);
    }

    /// The remote finished its send side: no more data will come.
    fn handle_stream_finished(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        let _ = (ctx, stream);
    }

    /// The stream died: reset by the remote, negotiation failed (for streams
    /// this plugin opened), or the connection closed.
    ///
    /// After this call the stream handle is stale.
    fn handle_stream_closed(
        &mut self,
        ctx: &mut Context<'_>,
        stream: StreamRef,
        reason: &StreamError,
    ) {
        let _ = (ctx, stream, reason);
    }

    /// The remote sent STOP_SENDING with `code`: our send side is over (what
    /// was queued with [`Context::send`] is dropped, writes fail), but the
    /// receive side goes on: data and `handle_stream_finished` may still
    /// arrive. The stream is not closed yet.
    fn handle_stream_stopped(&mut self, ctx: &mut Context<'_>, stream: StreamRef, code: u64) {
        let _ = (ctx, stream, code);
    }

    /// A remote opened a packet flow for `protocol`, one of
    /// [`Protocol::packet_protocol_ids`]. Keep `flow` to send and receive.
    fn accept_inbound_packet_flow(
        &mut self,
        ctx: &mut Context<'_>,
        flow: PacketFlow,
        protocol: &str,
    ) {
        let _ = (ctx, flow, protocol);
    }

    /// A packet flow this plugin opened is ready: the remote accepted it.
    fn handle_packet_flow_ready(
        &mut self,
        ctx: &mut Context<'_>,
        flow: PacketFlow,
        protocol: &str,
    ) {
        let _ = (ctx, flow, protocol);
    }

    /// A packet arrived on one of this plugin's flows (no copy).
    fn handle_packet_data(&mut self, ctx: &mut Context<'_>, flow: PacketFlow, data: Bytes) {
        let _ = (ctx, flow, data);
    }

    /// A packet flow ended (its control stream closed), or one requested
    /// with `packet_handler_for*` could not be opened (`flow` is `None`).
    fn handle_packet_flow_closed(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        flow: Option<PacketFlow>,
        reason: &PacketError,
    ) {
        let _ = (ctx, conn, flow, reason);
    }

    /// A timer set with [`Context::set_timer`] fired.
    fn handle_timer(&mut self, ctx: &mut Context<'_>, token: u64) {
        let _ = (ctx, token);
    }

    /// An event emitted by another plugin or sent from another thread.
    fn handle_protocol_event(&mut self, ctx: &mut Context<'_>, event: &ProtocolEvent) {
        let _ = (ctx, event);
    }

    /// A message addressed to this plugin alone, from another plugin
    /// ([`Context::send_message`]) or another thread
    /// ([`SwarmHandle::send_message`](crate::SwarmHandle::send_message)).
    /// The plugin owns it: take what is inside (a request, a reply channel).
    fn handle_message(&mut self, ctx: &mut Context<'_>, message: Message) {
        let _ = (ctx, message);
    }
}

/// What a plugin can ask of the swarm while it is being called.
pub struct Context<'a> {
    pub(crate) core: &'a mut Core,
    pub(crate) plugin: PluginId,
    pub(crate) name: &'static str,
}

impl Context<'_> {
    /// This node's PeerId.
    pub fn local_peer_id(&self) -> PeerId {
        self.core.local_peer_id()
    }

    /// The swarm's random number generator. Draw plugin randomness (ping
    /// payloads, random lookups, jitter) from here rather than from
    /// `rand::rng()`: a seeded swarm ([`SwarmConfig::seed`]) then replays
    /// the same choices, which a simulation needs.
    ///
    /// [`SwarmConfig::seed`]: crate::SwarmConfig::seed
    pub fn rng(&mut self) -> &mut dyn rand::RngCore {
        &mut self.core.rng
    }

    /// The current time as the swarm sees it (virtual in tests).
    pub fn now(&self) -> Instant {
        self.core.now()
    }

    /// Start listening on a QUIC multiaddr; port 0 picks a free port.
    /// Returns the resolved address.
    pub fn listen(&mut self, addr: &Multiaddr) -> Result<Multiaddr, ListenError> {
        self.core.listen(addr)
    }

    /// The addresses we listen on, resolved (no port 0).
    pub fn listen_addrs(&self) -> Vec<Multiaddr> {
        self.core.listen_addrs()
    }

    /// Dial a QUIC multiaddr, optionally ending in `/p2p/<peer id>` (then the
    /// handshake fails unless the remote proves that identity). Without
    /// `force_new_conn`, an existing connection to that peer is returned.
    /// The outcome arrives as `handle_new_connection` or `handle_dial_failure`.
    pub fn dial(&mut self, addr: &Multiaddr, force_new_conn: bool) -> Result<ConnId, DialError> {
        self.core.dial(
            addr,
            force_new_conn,
            crate::connection::Requester::Plugin(self.plugin),
        )
    }

    /// Send one datagram of random bytes from our listening QUIC socket to
    /// `addr` (`/ip4|ip6/…/udp/…/quic-v1`), which no QUIC endpoint takes
    /// for a packet: it opens our NAT toward `addr` so that the remote's
    /// simultaneous dial gets in (DCUtR's QUIC hole punch; send a few,
    /// some are lost).
    pub fn send_hole_punch(&mut self, addr: &Multiaddr) -> Result<(), DialError> {
        self.core.send_hole_punch(addr)
    }

    /// Record that others reach us at `addr` (AutoNAT confirmed it);
    /// `true` if it is new. Published as
    /// [`SwarmEvent::ExternalAddrConfirmed`](crate::SwarmEvent::ExternalAddrConfirmed);
    /// identify announces it. The swarm keeps at most 16.
    pub fn add_external_address(&mut self, addr: Multiaddr) -> bool {
        self.core.add_external_address(addr)
    }

    /// Withdraw an external address; `true` if it was confirmed.
    pub fn remove_external_address(&mut self, addr: &Multiaddr) -> bool {
        self.core.remove_external_address(addr)
    }

    /// The confirmed external addresses, oldest first.
    pub fn external_addresses(&self) -> Vec<Multiaddr> {
        self.core.external_addrs.clone()
    }

    /// Dial `addr` on a new connection from a local port we do not listen
    /// on (for QUIC; TCP dials never use the listen port). AutoNAT's
    /// dial-back needs this: a NAT in front of the remote must not let the
    /// dial in merely because the remote sent to our listen port before.
    pub fn dial_back(&mut self, addr: &Multiaddr) -> Result<ConnId, DialError> {
        self.core
            .dial_back(addr, crate::connection::Requester::Plugin(self.plugin))
    }

    /// Dial `addr` (`/ip4|ip6/…/tcp/…`) from our TCP listen port and take
    /// the *listener's* part in the upgrade: DCUtR's TCP hole punch, where
    /// both peers dial each other at once and TCP's simultaneous open
    /// makes one connection of the two dials, on which the side that sent
    /// SYNC is the server. Always a new connection; a QUIC address is
    /// refused with [`DialError::UnsupportedAddress`]. Should the remote's
    /// dial arrive at our listener first, it comes in as an accepted
    /// connection instead and this one fails.
    pub fn dial_as_listener(&mut self, addr: &Multiaddr) -> Result<ConnId, DialError> {
        self.core
            .dial_as_listener(addr, crate::connection::Requester::Plugin(self.plugin))
    }

    /// Dial a peer at an address from the peer store. With no address
    /// known, the peer router (if one is registered) is asked to find one
    /// and the dial waits for it: the id returned then names the attempt
    /// until it starts (calls on it are refused as an unknown connection),
    /// a failure is reported under it, and the connection, once made,
    /// arrives with its own id in `handle_new_connection`.
    pub fn dial_with_id(
        &mut self,
        peer: PeerId,
        force_new_conn: bool,
    ) -> Result<ConnId, DialError> {
        self.core.dial_with_id(
            peer,
            force_new_conn,
            crate::connection::Requester::Plugin(self.plugin),
        )
    }

    /// Make this plugin the swarm's peer router: a `dial_with_id` (from any
    /// plugin or [`SwarmHandle`](crate::SwarmHandle)) for a peer with no
    /// known address asks it with [`Protocol::handle_find_peer`]. One router
    /// per swarm; the last to register wins.
    pub fn register_peer_router(&mut self) {
        self.core.register_peer_router(self.plugin);
    }

    /// The router's search for `peer` is over: the dials waiting for it
    /// are made to the addresses now in the peer store, or fail with
    /// [`DialError::NoAddresses`]. Does nothing if no dial waits.
    pub fn peer_routing_done(&mut self, peer: PeerId) {
        self.core.peer_routing_done(peer);
    }

    /// Open a stream for `protocol` on a connection or to a connected peer.
    /// The multistream-select header and protocol go out at once; data
    /// written right away follows them in the same flight (optimistic).
    pub fn open_stream(
        &mut self,
        target: impl Into<StreamTarget>,
        protocol: &str,
    ) -> Result<StreamRef, OpenStreamError> {
        self.core
            .open_stream(target.into(), protocol, Some(self.plugin))
    }

    /// Open a packet flow for `protocol` on a connection (or to a connected
    /// peer): a control stream negotiates the protocol, then packets tagged
    /// with its id travel as QUIC datagrams. Fails at once with
    /// [`PacketError::PeerUnsupported`] if the peer has no DATAGRAM support,
    /// [`PacketError::NotQuic`] on a TCP connection.
    /// `handle_packet_flow_ready` follows once the remote accepts.
    pub fn open_packet_flow(
        &mut self,
        target: impl Into<StreamTarget>,
        protocol: &str,
    ) -> Result<PacketFlow, PacketError> {
        self.core
            .open_packet_flow(target.into(), protocol, self.plugin)
    }

    /// Dial `addr` (or reuse a connection unless `force_new_conn`) and open
    /// a packet flow for `protocol` on it once it is up. The outcome arrives
    /// as `handle_packet_flow_ready` or `handle_packet_flow_closed`.
    pub fn packet_handler_for(
        &mut self,
        addr: &Multiaddr,
        force_new_conn: bool,
        protocol: &str,
    ) -> Result<ConnId, DialError> {
        let conn = self.dial(addr, force_new_conn)?;
        self.core.request_packet_flow(conn, protocol, self.plugin);
        Ok(conn)
    }

    /// Like [`Context::packet_handler_for`], dialing a peer-store address.
    pub fn packet_handler_for_id(
        &mut self,
        peer: PeerId,
        force_new_conn: bool,
        protocol: &str,
    ) -> Result<ConnId, DialError> {
        let conn = self.dial_with_id(peer, force_new_conn)?;
        self.core.request_packet_flow(conn, protocol, self.plugin);
        Ok(conn)
    }

    /// Send one packet on a flow. It may be lost (datagrams are not
    /// retransmitted) but is authenticated to the peer by the QUIC session.
    pub fn send_packet(&mut self, flow: PacketFlow, data: &[u8]) -> Result<(), PacketError> {
        self.core.send_packet(flow, data)
    }

    /// The largest payload `send_packet` accepts on this flow now.
    pub fn max_packet_size(&mut self, flow: PacketFlow) -> Result<usize, PacketError> {
        self.core.max_packet_size(flow)
    }

    /// Hand a packet flow to another thread. The plugin gets no more packet
    /// callbacks for it; the handle receives and sends instead.
    pub fn detach_packet_flow(
        &mut self,
        flow: PacketFlow,
    ) -> Result<DetachedPacketFlow, PacketError> {
        self.core.detach_packet_flow(flow)
    }

    /// Close a flow: finish its control stream. Later packets are dropped.
    pub fn close_packet_flow(&mut self, flow: PacketFlow) -> Result<(), PacketError> {
        self.core.close_packet_flow(flow)
    }

    /// Send a raw QUIC datagram with no flow header: for tests that play a
    /// hostile or buggy peer. Not for protocols.
    #[doc(hidden)]
    pub fn send_raw_datagram(&mut self, conn: ConnId, data: Bytes) -> Result<(), PacketError> {
        self.core.send_raw_datagram(conn, data)
    }

    /// Write as much of `data` as the stream's window allows; returns how much.
    /// A short write is followed by `handle_stream_writable`.
    pub fn write(&mut self, stream: StreamRef, data: &[u8]) -> Result<usize, StreamError> {
        self.core.write(stream, data)
    }

    /// Write a `Bytes` without copying; `data` is advanced past what was
    /// taken. A short write is followed by `handle_stream_writable`.
    pub fn write_bytes(
        &mut self,
        stream: StreamRef,
        data: &mut Bytes,
    ) -> Result<usize, StreamError> {
        self.core.write_bytes(stream, data)
    }

    /// Send `data` on a stream, queueing what the send window does not take
    /// now: the swarm writes the queue as the window opens, in order, with
    /// no copy. While more than [`Limits::send_queue_high_water`] bytes wait,
    /// the swarm stops reading the stream (no more `handle_stream_data`), so
    /// a plugin that answers what it reads is held back by its own remote.
    /// [`Context::finish`] after `send` finishes once the queue has drained.
    /// When `send` left bytes queued, the plugin hears
    /// [`Protocol::handle_stream_writable`] once all of them are written.
    /// Returns the bytes still queued on the stream.
    ///
    /// [`Limits::send_queue_high_water`]: crate::Limits::send_queue_high_water
    pub fn send(&mut self, stream: StreamRef, data: Bytes) -> Result<usize, StreamError> {
        self.core.send(stream, data)
    }

    /// Bytes queued by [`Context::send`] on a stream and not yet written.
    pub fn queued(&self, stream: StreamRef) -> usize {
        self.core.queued(stream)
    }

    /// Finish our send side: the remote reads EOF after the written bytes
    /// (after everything queued with [`Context::send`]).
    pub fn finish(&mut self, stream: StreamRef) -> Result<(), StreamError> {
        self.core.finish(stream)
    }

    /// Abort our send side with an error code; unsent data is discarded.
    pub fn reset(&mut self, stream: StreamRef, code: u64) -> Result<(), StreamError> {
        self.core.reset(stream, code)
    }

    /// Ask the remote to stop sending; we discard what still arrives.
    pub fn stop_sending(&mut self, stream: StreamRef, code: u64) -> Result<(), StreamError> {
        self.core.stop_sending(stream, code)
    }

    /// Abort a stream both ways with `code`: reset our send side (queued
    /// data is dropped) and ask the remote to stop sending. Directions that
    /// are already over are left alone; the stream is gone afterwards, with
    /// no further callbacks. Fails only for a stale or foreign handle.
    pub fn abort(&mut self, stream: StreamRef, code: u64) -> Result<(), StreamError> {
        self.core.abort(stream, code)
    }

    /// Stop (`false`) or resume (`true`) delivering this stream's data. While
    /// paused, QUIC flow control holds the remote back.
    pub fn set_reading(&mut self, stream: StreamRef, reading: bool) -> Result<(), StreamError> {
        self.core.set_reading(stream, reading)
    }

    /// Hand a stream to another thread as a blocking `Read + Write` handle.
    /// The plugin gets no more callbacks for it.
    pub fn detach_stream(&mut self, stream: StreamRef) -> Result<DetachedStream, StreamError> {
        self.core.detach_stream(stream)
    }

    /// Make this plugin the swarm's circuit transport: dials of relayed
    /// addresses (`…/p2p-circuit/…`, from any plugin or
    /// [`SwarmHandle`](crate::SwarmHandle)) go to its
    /// [`Protocol::handle_dial_circuit`]. One per swarm; the last wins.
    /// Without one, such dials fail with
    /// [`DialError::UnsupportedAddress`].
    pub fn register_circuit_transport(&mut self) {
        self.core.register_circuit_transport(self.plugin);
    }

    /// Complete the relayed dial `dial` (see
    /// [`Protocol::handle_dial_circuit`]): as [`Context::relay_connection`]
    /// with the dialer's role, and the connection's outcome goes to whoever
    /// dialed.
    pub fn complete_circuit_dial(
        &mut self,
        dial: ConnId,
        stream: StreamRef,
        expected: PeerId,
        remote_addr: Multiaddr,
        initial: Bytes,
    ) -> Result<ConnId, RelayConnectionError> {
        self.core.complete_circuit_dial(
            self.plugin,
            dial,
            stream,
            RelayedRole::Dialer { expected },
            remote_addr,
            initial,
        )
    }

    /// Fail the relayed dial `dial` with `error` (e.g.
    /// [`DialError::Connect`] with the relay's refusal).
    pub fn fail_circuit_dial(&mut self, dial: ConnId, error: DialError) {
        self.core.fail_circuit_dial(dial, error);
    }

    /// Make a negotiated stream of this plugin carry a new connection: the
    /// stream's bytes are upgraded as a TCP connection's are
    /// (multistream-select, Noise or TLS as [`SwarmConfig::tcp_security`]
    /// says, then Yamux), and the result is a connection like any other
    /// (`handle_new_connection`, streams, identify, ping), reached through
    /// whatever relays the stream. This is how a circuit relay client makes
    /// its relayed connection, on either side: `role` says whether we
    /// dial (and which PeerId the remote must prove) or answer.
    /// `remote_addr` is what the connection reports as the remote's
    /// address (e.g. `…/p2p/<relay>/p2p-circuit/p2p/<peer>`). `initial` is
    /// what the plugin already read from the stream past its own protocol
    /// (the relay's answer may arrive together with the connection's first
    /// bytes): it goes to the connection first.
    ///
    /// The plugin gets no more callbacks for the stream. The relayed
    /// connection ends when the stream ends (and the stream when the
    /// connection closes); [`Context::connection_is_relayed`] tells plugins
    /// that may want to keep bulk data off it.
    ///
    /// [`SwarmConfig::tcp_security`]: crate::SwarmConfig::tcp_security
    pub fn relay_connection(
        &mut self,
        stream: StreamRef,
        role: RelayedRole,
        remote_addr: Multiaddr,
        initial: Bytes,
    ) -> Result<ConnId, RelayConnectionError> {
        self.core
            .relay_connection(self.plugin, stream, role, remote_addr, initial)
    }

    /// Whether `conn` runs on our listen port (`None` for an unknown
    /// connection). Only then is the address the remote observes of it
    /// (identify) a candidate for how others reach our listener: a
    /// dial-back from a non-listening port, a TCP dial from an ephemeral
    /// one or a relayed connection show something else.
    pub fn connection_uses_listen_port(&self, conn: ConnId) -> Option<bool> {
        self.core.uses_listen_port(conn)
    }

    /// Whether `conn` is relayed, carried by a stream of another
    /// connection ([`Context::relay_connection`]); `false` for a direct or
    /// unknown connection.
    pub fn connection_is_relayed(&self, conn: ConnId) -> bool {
        self.core.is_relayed(conn)
    }

    /// Whether a stream counts as activity that keeps its connection open
    /// (default `true`). A background stream such as ping sets `false`, so
    /// that a connection with nothing else to do still idles out.
    pub fn set_stream_keep_alive(
        &mut self,
        stream: StreamRef,
        keep: bool,
    ) -> Result<(), StreamError> {
        self.core.set_stream_keep_alive(stream, keep)
    }

    /// This node's public host key (identify sends it).
    pub fn local_public_key(&self) -> PublicKey {
        self.core.local_public_key()
    }

    /// Sign `data` with this node's host key (for signed records such as
    /// a relay's reservation voucher); the key itself never leaves the
    /// swarm.
    pub fn sign_with_host_key(&self, data: &[u8]) -> Result<Vec<u8>, SigningError> {
        self.core.config.keypair.sign(data)
    }

    /// Keep a connection open (`true`) even without streams, or release it.
    pub fn keep_alive(&mut self, conn: ConnId, keep: bool) -> Result<(), ConnectionError> {
        self.core.keep_alive(conn, self.plugin, keep)
    }

    /// Close a connection with an application error code.
    pub fn close_connection(&mut self, conn: ConnId, code: u32) -> Result<(), ConnectionError> {
        self.core.close_connection(conn, code, b"closed by plugin")
    }

    /// What the peer store knows about a peer.
    pub fn metadata_for_peer(&self, peer: &PeerId) -> Option<&PeerRecord> {
        self.core.peer_store().get(peer)
    }

    /// The peer store, for plugins that record what they learn (identify, ping).
    pub fn peer_store_mut(&mut self) -> &mut PeerStore {
        self.core.peer_store_mut()
    }

    /// The peer of an established connection.
    pub fn connection_peer(&self, conn: ConnId) -> Option<PeerId> {
        self.core.connection_peer(conn)
    }

    /// The remote's address on a connection (as we see it).
    pub fn connection_remote_addr(&self, conn: ConnId) -> Option<Multiaddr> {
        self.core.connection_remote_addr(conn)
    }

    /// Whether we dialed a connection (`Some(true)`) or the remote did
    /// (`Some(false)`); `None` for a stale id. Gossipsub's D_out counts
    /// the peers we dialed, which an attacker cannot fill by dialing us.
    pub fn connection_is_outbound(&self, conn: ConnId) -> Option<bool> {
        self.core.connection_is_outbound(conn)
    }

    /// Established connections to a peer.
    pub fn connections_to(&self, peer: &PeerId) -> Vec<ConnId> {
        self.core.connections_to(peer)
    }

    /// The protocol ids all plugins accept (for identify).
    pub fn supported_protocols(&self) -> Vec<String> {
        self.core.supported_protocols()
    }

    /// Start accepting (and advertising, through
    /// [`Context::supported_protocols`]) inbound streams for `protocol`, as
    /// if this plugin had listed it in [`Protocol::protocol_ids`]. Returns
    /// false if another plugin has it. Every plugin then hears
    /// [`Protocol::handle_local_protocols_changed`] (identify pushes).
    pub fn advertise_protocol(&mut self, protocol: &str) -> bool {
        self.core.advertise_protocol(self.plugin, protocol)
    }

    /// Stop accepting inbound streams for `protocol` (this plugin's):
    /// multistream-select answers `na` from now on; streams already open
    /// stay. Returns false if this plugin did not have it. Every plugin
    /// then hears [`Protocol::handle_local_protocols_changed`].
    pub fn withdraw_protocol(&mut self, protocol: &str) -> bool {
        self.core.withdraw_protocol(self.plugin, protocol)
    }

    /// Call `handle_timer(token)` on this plugin after `delay`.
    pub fn set_timer(&mut self, delay: Duration, token: u64) -> TimerId {
        self.core.set_timer(self.plugin, delay, token)
    }

    /// Cancel a timer that has not fired. Cancelling a fired timer is a no-op.
    pub fn cancel_timer(&mut self, timer: TimerId) {
        self.core.cancel_timer(timer)
    }

    /// This plugin's id (what [`Runtime::add_protocol`](crate::Runtime::add_protocol) returned).
    pub fn plugin_id(&self) -> PluginId {
        self.plugin
    }

    /// Hand `message` to one plugin's [`Protocol::handle_message`], after
    /// the current call returns. The value moves, no broadcast, no claim.
    pub fn send_message<T: Any + Send>(&mut self, to: PluginId, message: T) {
        self.core.send_message(to, Box::new(message))
    }

    /// Emit an event to every other plugin and to application subscribers.
    pub fn emit<T: Any + Send + Sync>(&mut self, payload: T) {
        let event = ProtocolEvent::new(self.name, payload);
        self.core.emit(Some(self.plugin), event)
    }
}
