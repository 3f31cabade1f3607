//! The circuit relay v2 client: reserve a slot on relays (and keep it
//! renewed) so that others reach us at `<relay addr>/p2p/<relay>/p2p-circuit`,
//! answer the relay's STOP for inbound circuits, and connect to a peer
//! through a relay with CONNECT. Either way the hop or stop stream then
//! carries a relayed connection ([`Context::relay_connection`]): Noise or
//! TLS and Yamux inside, a connection like any other for plugins, marked
//! relayed.
//!
//! The relayed addresses become confirmed external addresses of the swarm,
//! so identify announces them; they are withdrawn when the reservation is
//! lost.

use std::collections::HashMap;
use std::time::{Duration, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use swarm::multiaddr::Protocol as P;
use swarm::{
    ConnId, Context, Message, Multiaddr, PeerId, Protocol, ProtocolEvent, RelayedRole, StreamError,
    StreamRef, StreamTarget,
};
use tracing::debug;

use super::proto::{self, Status, hop_message, stop_message};
use super::{HOP, MAX_MESSAGE, STOP, circuit_addr, split_circuit_addr};
use crate::framing::{FrameReader, encode};

/// How the client behaves.
#[derive(Clone, Debug, Default)]
pub struct RelayClientConfig {
    /// Relays to reserve a slot on, each `…/p2p/<relay id>`.
    pub reserve_on: Vec<Multiaddr>,
}

/// Ask the client to connect to `target` through the relay at `relay`
/// (`…/p2p/<relay id>`): send it to the client's plugin id
/// ([`SwarmHandle::send_message`], [`Context::send_message`]), or emit it
/// for whichever relay client runs ([`SwarmHandle::send_event`],
/// [`Context::emit`]). The outcome is a [`RelayClientEvent`].
///
/// [`SwarmHandle::send_message`]: swarm::SwarmHandle::send_message
/// [`SwarmHandle::send_event`]: swarm::SwarmHandle::send_event
#[derive(Clone, Debug)]
pub struct ConnectVia {
    /// The relay's address, ending in `/p2p/<relay id>`.
    pub relay: Multiaddr,
    /// Whom to reach.
    pub target: PeerId,
}

impl ConnectVia {
    /// The request for a circuit address
    /// `…/p2p/<relay>/p2p-circuit/p2p/<target>`.
    pub fn from_circuit_addr(addr: &Multiaddr) -> Option<ConnectVia> {
        let (relay, target) = split_circuit_addr(addr)?;
        Some(ConnectVia {
            relay,
            target: target?,
        })
    }
}

/// What the client did, emitted as protocol events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayClientEvent {
    /// A relay granted (or renewed) our reservation.
    Reserved {
        /// The relay.
        relay: PeerId,
        /// Where others reach us through it.
        addrs: Vec<Multiaddr>,
        /// How long the reservation lasts.
        expires_in: Duration,
    },
    /// A reservation was refused, or lost with the relay's connection.
    ReservationFailed {
        /// The relay.
        relay: PeerId,
        /// Why.
        reason: String,
    },
    /// A peer reached us through a relay: `conn` is the relayed
    /// connection.
    InboundCircuit {
        /// The relay.
        relay: PeerId,
        /// The peer at the other end.
        src: PeerId,
        /// The relayed connection (it reports itself established soon).
        conn: ConnId,
    },
    /// Our CONNECT through a relay succeeded.
    OutboundCircuit {
        /// The relay.
        relay: PeerId,
        /// The peer reached.
        target: PeerId,
        /// The relayed connection.
        conn: ConnId,
    },
    /// Our CONNECT through a relay failed.
    CircuitFailed {
        /// The relay.
        relay: PeerId,
        /// The peer we wanted.
        target: PeerId,
        /// The relay's status, or what else went wrong.
        reason: String,
    },
}

/// A CONNECT of ours: to whom, and the swarm dial it completes (a dial of
/// a `/p2p-circuit` address), if any.
#[derive(Clone, Copy)]
struct Outbound {
    target: PeerId,
    dial: Option<ConnId>,
}

/// What a hop stream of ours is for.
#[derive(Clone, Copy)]
enum HopKind {
    Reserve,
    Connect(Outbound),
}

struct Hop {
    relay: PeerId,
    kind: HopKind,
    reader: FrameReader,
}

/// One relay we reserve on.
struct Relay {
    addr: Multiaddr,
    /// The relayed addresses of the current reservation.
    reserved: Vec<Multiaddr>,
    /// A RESERVE is in flight.
    reserving: bool,
}

/// Timer tokens: renew (or retry) the reservation of the relay with this
/// index in the config.
const RETRY_AFTER: Duration = Duration::from_secs(5);

/// The circuit relay v2 client plugin.
pub struct RelayClient {
    config: RelayClientConfig,
    relays: HashMap<PeerId, Relay>,
    /// Timer token (index into `order`) per relay.
    order: Vec<PeerId>,
    hops: HashMap<StreamRef, Hop>,
    /// Inbound stop streams and what they read.
    stops: HashMap<StreamRef, FrameReader>,
    /// CONNECTs waiting for a connection to their relay.
    waiting: Vec<(PeerId, Outbound)>,
}

impl RelayClient {
    /// A client with `config`.
    pub fn new(config: RelayClientConfig) -> Self {
        let mut client = Self {
            config: config.clone(),
            relays: HashMap::new(),
            order: Vec::new(),
            hops: HashMap::new(),
            stops: HashMap::new(),
            waiting: Vec::new(),
        };
        for addr in &config.reserve_on {
            if client.add_relay(addr).is_none() {
                tracing::warn!(%addr, "relay address without /p2p/: ignored");
            }
        }
        client
    }

    /// Keep a reservation on the relay at `addr` (`…/p2p/<relay id>`);
    /// its id, or `None` without one.
    fn add_relay(&mut self, addr: &Multiaddr) -> Option<PeerId> {
        let Some(P::P2p(peer)) = addr.iter().last() else {
            return None;
        };
        if !self.relays.contains_key(&peer) {
            self.order.push(peer);
            self.relays.insert(
                peer,
                Relay {
                    addr: addr.clone(),
                    reserved: Vec::new(),
                    reserving: false,
                },
            );
        }
        Some(peer)
    }

    /// The configuration.
    pub fn config(&self) -> &RelayClientConfig {
        &self.config
    }

    /// Reserve on `relay` now: on a connection if there is one, else dial.
    fn reserve(&mut self, ctx: &mut Context<'_>, relay: PeerId) {
        let Some(r) = self.relays.get_mut(&relay) else {
            return;
        };
        if r.reserving {
            return;
        }
        if let Some(conn) = ctx.connections_to(&relay).first().copied() {
            match ctx.open_stream(StreamTarget::Conn(conn), HOP) {
                Ok(stream) => {
                    r.reserving = true;
                    let _ = ctx.keep_alive(conn, true);
                    self.hops.insert(
                        stream,
                        Hop {
                            relay,
                            kind: HopKind::Reserve,
                            reader: FrameReader::new(MAX_MESSAGE),
                        },
                    );
                }
                Err(e) => self.reservation_failed(ctx, relay, e.to_string()),
            }
        } else if let Err(e) = ctx.dial(&r.addr.clone(), false) {
            self.reservation_failed(ctx, relay, e.to_string());
        }
    }

    fn reservation_failed(&mut self, ctx: &mut Context<'_>, relay: PeerId, reason: String) {
        if let Some(r) = self.relays.get_mut(&relay) {
            r.reserving = false;
            for addr in r.reserved.drain(..) {
                ctx.remove_external_address(&addr);
            }
        }
        debug!(%relay, %reason, "relay reservation failed");
        ctx.emit(RelayClientEvent::ReservationFailed { relay, reason });
        if let Some(i) = self.order.iter().position(|p| *p == relay) {
            ctx.set_timer(RETRY_AFTER, i as u64);
        }
    }

    /// Send CONNECT for `out` on a new hop stream to `relay`.
    fn connect(&mut self, ctx: &mut Context<'_>, relay: PeerId, out: Outbound) {
        match ctx.open_stream(relay, HOP) {
            Ok(stream) => {
                self.hops.insert(
                    stream,
                    Hop {
                        relay,
                        kind: HopKind::Connect(out),
                        reader: FrameReader::new(MAX_MESSAGE),
                    },
                );
            }
            Err(e) => circuit_failed(ctx, relay, out, e.to_string()),
        }
    }

    /// The relay's answer on a hop stream of ours.
    fn on_hop_answer(&mut self, ctx: &mut Context<'_>, stream: StreamRef, msg: proto::HopMessage) {
        let Some(mut hop) = self.hops.remove(&stream) else {
            return;
        };
        let status = Status::from_wire(msg.status);
        let is_status = msg.r#type == Some(hop_message::Type::Status as i32);
        match hop.kind {
            HopKind::Reserve => {
                let _ = ctx.finish(stream);
                let relay = hop.relay;
                let granted = match (is_status, status, msg.reservation) {
                    (true, Some(Status::Ok), Some(r)) => r,
                    (_, status, _) => {
                        let reason = format!("relay answered {status:?}");
                        self.reservation_failed(ctx, relay, reason);
                        return;
                    }
                };
                self.on_reserved(ctx, relay, granted);
            }
            HopKind::Connect(out) => {
                if !(is_status && status == Some(Status::Ok)) {
                    let _ = ctx.abort(stream, 0);
                    circuit_failed(ctx, hop.relay, out, format!("relay answered {status:?}"));
                    return;
                }
                let target = out.target;
                let addr = circuit_addr(ctx.connection_remote_addr(stream.conn), hop.relay)
                    .with(P::P2p(target));
                let initial = hop.reader.take_rest();
                let made = match out.dial {
                    Some(dial) => ctx.complete_circuit_dial(dial, stream, target, addr, initial),
                    None => {
                        let role = RelayedRole::Dialer { expected: target };
                        ctx.relay_connection(stream, role, addr, initial)
                    }
                };
                match made {
                    Ok(conn) => ctx.emit(RelayClientEvent::OutboundCircuit {
                        relay: hop.relay,
                        target,
                        conn,
                    }),
                    Err(e) => {
                        let _ = ctx.abort(stream, 0);
                        circuit_failed(ctx, hop.relay, out, e.to_string());
                    }
                }
            }
        }
    }

    fn on_reserved(&mut self, ctx: &mut Context<'_>, relay: PeerId, granted: proto::Reservation) {
        let now_unix = SystemTime::now()
            .duration_since(UNIX_EPOCH)
            .unwrap_or_default()
            .as_secs();
        let expires_in =
            Duration::from_secs(granted.expire.unwrap_or(now_unix).saturating_sub(now_unix));
        // The voucher is optional (rust-libp2p's relay sends none); one that
        // is there must be the relay's, for us.
        if let Some(voucher) = &granted.voucher
            && let Err(e) = super::voucher::check(voucher, relay, ctx.local_peer_id())
        {
            self.reservation_failed(ctx, relay, format!("bad voucher: {e}"));
            return;
        }
        let Some(r) = self.relays.get_mut(&relay) else {
            return;
        };
        r.reserving = false;
        let mut addrs: Vec<Multiaddr> = granted
            .addrs
            .into_iter()
            .filter_map(|a| Multiaddr::try_from(a).ok())
            .map(|a| circuit_addr(Some(a), relay))
            .collect();
        if addrs.is_empty() {
            addrs.push(circuit_addr(Some(r.addr.clone()), relay));
        }
        for old in r.reserved.drain(..) {
            if !addrs.contains(&old) {
                ctx.remove_external_address(&old);
            }
        }
        for addr in &addrs {
            ctx.add_external_address(addr.clone());
        }
        r.reserved = addrs.clone();
        // Renew at three quarters of the reservation's life.
        if let Some(i) = self.order.iter().position(|p| *p == relay) {
            let renew = (expires_in * 3 / 4).max(Duration::from_secs(1));
            ctx.set_timer(renew, i as u64);
        }
        debug!(%relay, ?addrs, ?expires_in, "relay reservation granted");
        ctx.emit(RelayClientEvent::Reserved {
            relay,
            addrs,
            expires_in,
        });
    }

    /// The relay's CONNECT on an inbound stop stream.
    fn on_stop(&mut self, ctx: &mut Context<'_>, stream: StreamRef, msg: proto::StopMessage) {
        let Some(mut reader) = self.stops.remove(&stream) else {
            return;
        };
        let relay = ctx.connection_peer(stream.conn);
        let src = msg
            .peer
            .and_then(|p| p.id)
            .and_then(|id| PeerId::from_bytes(&id).ok());
        let answer = |status: Status| proto::StopMessage {
            r#type: Some(stop_message::Type::Status as i32),
            status: Some(status as i32),
            ..Default::default()
        };
        let (Some(relay), Some(src), true) = (
            relay,
            src,
            msg.r#type == Some(stop_message::Type::Connect as i32),
        ) else {
            let _ = ctx.send(stream, encode(&answer(Status::MalformedMessage)));
            let _ = ctx.finish(stream);
            return;
        };
        let reserved_here = self
            .relays
            .get(&relay)
            .is_some_and(|r| !r.reserved.is_empty());
        if !reserved_here {
            // Circuits only through relays we reserved on.
            let _ = ctx.send(stream, encode(&answer(Status::PermissionDenied)));
            let _ = ctx.finish(stream);
            return;
        }
        let _ = ctx.send(stream, encode(&answer(Status::Ok)));
        let addr = circuit_addr(ctx.connection_remote_addr(stream.conn), relay).with(P::P2p(src));
        let initial = reader.take_rest();
        match ctx.relay_connection(stream, RelayedRole::Listener, addr, initial) {
            Ok(conn) => ctx.emit(RelayClientEvent::InboundCircuit { relay, src, conn }),
            Err(e) => {
                debug!(%relay, %src, error = %e, "cannot take the relayed connection");
                let _ = ctx.abort(stream, 0);
            }
        }
    }
}

impl Protocol for RelayClient {
    fn name(&self) -> &'static str {
        "relay-client"
    }

    fn protocol_ids(&self) -> Vec<String> {
        vec![STOP.to_string()]
    }

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        // Dials of `/p2p-circuit` addresses, from anyone, come to us.
        ctx.register_circuit_transport();
        let relays: Vec<PeerId> = self.order.clone();
        for relay in relays {
            self.reserve(ctx, relay);
        }
    }

    /// `listen` on `…/p2p/<relay>/p2p-circuit`: as if the relay were in
    /// [`RelayClientConfig::reserve_on`].
    fn handle_listen_circuit(&mut self, ctx: &mut Context<'_>, addr: &Multiaddr) {
        let relay: Multiaddr = addr
            .iter()
            .take_while(|p| !matches!(p, P::P2pCircuit))
            .collect();
        match self.add_relay(&relay) {
            Some(peer) => self.reserve(ctx, peer),
            None => debug!(%addr, "listen address names no relay: ignored"),
        }
    }

    fn handle_new_connection(&mut self, ctx: &mut Context<'_>, _conn: ConnId, peer: PeerId) {
        if self
            .relays
            .get(&peer)
            .is_some_and(|r| r.reserved.is_empty())
        {
            self.reserve(ctx, peer);
        }
        let ready: Vec<(PeerId, Outbound)> = self
            .waiting
            .iter()
            .filter(|(relay, _)| *relay == peer)
            .copied()
            .collect();
        self.waiting.retain(|(relay, _)| *relay != peer);
        for (relay, out) in ready {
            self.connect(ctx, relay, out);
        }
    }

    fn handle_closed_connection(&mut self, ctx: &mut Context<'_>, _conn: ConnId, peer: PeerId) {
        let reserved = self
            .relays
            .get(&peer)
            .is_some_and(|r| !r.reserved.is_empty() || r.reserving);
        if reserved && ctx.connections_to(&peer).is_empty() {
            self.reservation_failed(ctx, peer, "the relay connection closed".into());
        }
    }

    fn handle_dial_failure(&mut self, ctx: &mut Context<'_>, _c: ConnId, e: &swarm::DialError) {
        // Which relay failed is not told; retry those without a connection.
        let idle: Vec<PeerId> = self
            .relays
            .iter()
            .filter(|(p, r)| r.reserved.is_empty() && ctx.connections_to(p).is_empty())
            .map(|(p, _)| *p)
            .collect();
        for relay in idle {
            self.reservation_failed(ctx, relay, e.to_string());
        }
    }

    fn handle_timer(&mut self, ctx: &mut Context<'_>, token: u64) {
        if let Some(relay) = self.order.get(token as usize).copied() {
            self.reserve(ctx, relay);
        }
    }

    fn handle_message(&mut self, ctx: &mut Context<'_>, message: Message) {
        if let Ok(request) = message.downcast::<ConnectVia>() {
            self.on_connect_via(ctx, &request, None);
        }
    }

    fn handle_protocol_event(&mut self, ctx: &mut Context<'_>, event: &ProtocolEvent) {
        if let Some(request) = event.downcast_ref::<ConnectVia>() {
            self.on_connect_via(ctx, request, None);
        }
    }

    fn handle_dial_circuit(&mut self, ctx: &mut Context<'_>, dial: ConnId, addr: &Multiaddr) {
        match ConnectVia::from_circuit_addr(addr) {
            Some(request) => self.on_connect_via(ctx, &request, Some(dial)),
            None => ctx.fail_circuit_dial(dial, swarm::DialError::UnsupportedAddress(addr.clone())),
        }
    }

    fn handle_stream_negotiated(&mut self, ctx: &mut Context<'_>, stream: StreamRef, _p: &str) {
        let Some(hop) = self.hops.get(&stream) else {
            let _ = ctx.abort(stream, 0);
            return;
        };
        let msg = match hop.kind {
            HopKind::Reserve => proto::HopMessage {
                r#type: Some(hop_message::Type::Reserve as i32),
                ..Default::default()
            },
            HopKind::Connect(Outbound { target, .. }) => proto::HopMessage {
                r#type: Some(hop_message::Type::Connect as i32),
                peer: Some(proto::Peer {
                    id: Some(target.to_bytes()),
                    addrs: Vec::new(),
                }),
                ..Default::default()
            },
        };
        let _ = ctx.send(stream, encode(&msg));
    }

    fn accept_inbound_stream(&mut self, _ctx: &mut Context<'_>, stream: StreamRef, _p: &str) {
        self.stops.insert(stream, FrameReader::new(MAX_MESSAGE));
    }

    fn handle_stream_data(&mut self, ctx: &mut Context<'_>, stream: StreamRef, data: Bytes) {
        if let Some(reader) = self.stops.get_mut(&stream) {
            reader.push(&data);
            match reader.next_message::<proto::StopMessage>() {
                Ok(None) => {}
                Ok(Some(msg)) => self.on_stop(ctx, stream, msg),
                Err(e) => {
                    debug!(%stream, error = %e, "bad stop message");
                    self.stops.remove(&stream);
                    let _ = ctx.abort(stream, 0);
                }
            }
            return;
        }
        let Some(hop) = self.hops.get_mut(&stream) else {
            return;
        };
        hop.reader.push(&data);
        match hop.reader.next_message::<proto::HopMessage>() {
            Ok(None) => {}
            Ok(Some(msg)) => self.on_hop_answer(ctx, stream, msg),
            Err(e) => {
                let reason = format!("bad answer from the relay: {e}");
                self.fail_hop(ctx, stream, reason);
            }
        }
    }

    fn handle_stream_finished(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        self.stops.remove(&stream);
        if self.hops.contains_key(&stream) {
            self.fail_hop(ctx, stream, "the relay ended the stream".into());
        }
    }

    fn handle_stream_closed(&mut self, ctx: &mut Context<'_>, stream: StreamRef, e: &StreamError) {
        self.stops.remove(&stream);
        if self.hops.contains_key(&stream) {
            self.fail_hop(ctx, stream, e.to_string());
        }
    }
}

impl RelayClient {
    /// A [`ConnectVia`] from a plugin or a thread, or a swarm dial of a
    /// circuit address (`dial`).
    fn on_connect_via(
        &mut self,
        ctx: &mut Context<'_>,
        request: &ConnectVia,
        dial: Option<ConnId>,
    ) {
        let out = Outbound {
            target: request.target,
            dial,
        };
        let Some(P::P2p(relay)) = request.relay.iter().last() else {
            let me = ctx.local_peer_id();
            let reason = format!("relay address without /p2p/: {}", request.relay);
            circuit_failed(ctx, me, out, reason);
            return;
        };
        if ctx.connections_to(&relay).is_empty() {
            if let Err(e) = ctx.dial(&request.relay, false) {
                circuit_failed(ctx, relay, out, e.to_string());
                return;
            }
            self.waiting.push((relay, out));
        } else {
            self.connect(ctx, relay, out);
        }
    }

    fn fail_hop(&mut self, ctx: &mut Context<'_>, stream: StreamRef, reason: String) {
        let Some(hop) = self.hops.remove(&stream) else {
            return;
        };
        let _ = ctx.abort(stream, 0);
        match hop.kind {
            HopKind::Reserve => self.reservation_failed(ctx, hop.relay, reason),
            HopKind::Connect(out) => circuit_failed(ctx, hop.relay, out, reason),
        }
    }
}

/// A CONNECT failed: tell the plugins, and the dialer if it was a dial.
fn circuit_failed(ctx: &mut Context<'_>, relay: PeerId, out: Outbound, reason: String) {
    if let Some(dial) = out.dial {
        let error = std::io::Error::other(format!("through relay {relay}: {reason}"));
        ctx.fail_circuit_dial(dial, swarm::DialError::Connect(std::sync::Arc::new(error)));
    }
    ctx.emit(RelayClientEvent::CircuitFailed {
        relay,
        target: out.target,
        reason,
    });
}
