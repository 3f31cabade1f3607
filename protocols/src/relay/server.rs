//! The circuit relay v2 server (the hop protocol's relay side): grant
//! reservations, and connect a source to a reserved target by opening a
//! stop stream to it and splicing the two streams together.
//!
//! Everything is bounded and configurable ([`RelayServerConfig`]):
//! reservations in total and per IP, their duration; circuits in total and
//! per peer, bytes and duration per circuit. A refusal carries the spec's
//! status code. The splice moves bytes on the swarm thread with
//! back-pressure: when one side's send queue passes a high-water mark the
//! relay stops reading the other side, so the relay buffers at most that
//! much per direction and the sender is flow-controlled by its transport.

use std::collections::HashMap;
use std::net::IpAddr;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use bytes::Bytes;
use swarm::multiaddr::Protocol as P;
use swarm::{ConnId, Context, PeerId, Protocol, StreamError, StreamRef, StreamTarget};
use tracing::debug;

use super::proto::{self, Status, hop_message, stop_message};
use super::{HOP, MAX_MESSAGE, STOP, voucher};
use crate::autonat::ip_of;
use crate::framing::{FrameReader, encode};

/// Bytes queued toward one side of a circuit before the relay stops
/// reading the other side.
const SPLICE_HIGH_WATER: usize = 64 * 1024;

/// How the relay behaves.
#[derive(Clone, Debug)]
pub struct RelayServerConfig {
    /// Reservations held at once. Default 128.
    pub max_reservations: usize,
    /// Reservations from one IP address. Default 4.
    pub max_reservations_per_ip: usize,
    /// How long a reservation lasts (the client renews). Default 1 h.
    pub reservation_duration: Duration,
    /// Circuits open at once. Default 16.
    pub max_circuits: usize,
    /// Circuits one peer may be part of (as source or target). Default 4.
    pub max_circuits_per_peer: usize,
    /// How long a circuit may last. Default 2 min.
    pub circuit_duration: Duration,
    /// Bytes a circuit may carry in each direction. Default 128 KiB
    /// (enough for the handshakes and DCUtR; a relay is not for bulk).
    pub circuit_bytes: u64,
}

impl Default for RelayServerConfig {
    fn default() -> Self {
        Self {
            max_reservations: 128,
            max_reservations_per_ip: 4,
            reservation_duration: Duration::from_secs(3600),
            max_circuits: 16,
            max_circuits_per_peer: 4,
            circuit_duration: Duration::from_secs(120),
            circuit_bytes: 128 * 1024,
        }
    }
}

/// What the relay did, emitted as protocol events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum RelayServerEvent {
    /// `peer` holds a reservation (`renewed`: it had one).
    ReservationAccepted {
        /// The reserving peer.
        peer: PeerId,
        /// It renewed an existing reservation.
        renewed: bool,
    },
    /// A reservation was refused with `status`.
    ReservationRefused {
        /// The peer.
        peer: PeerId,
        /// Why.
        status: Status,
    },
    /// A reservation ended (expired, or its peer disconnected).
    ReservationEnded {
        /// The peer.
        peer: PeerId,
    },
    /// `src` reaches `dst` through us.
    CircuitOpened {
        /// The source.
        src: PeerId,
        /// The target.
        dst: PeerId,
    },
    /// A CONNECT was refused with `status`.
    CircuitRefused {
        /// The source.
        src: PeerId,
        /// The target, if the request named one.
        dst: Option<PeerId>,
        /// Why.
        status: Status,
    },
    /// A circuit ended.
    CircuitClosed {
        /// The source.
        src: PeerId,
        /// The target.
        dst: PeerId,
        /// Why (both ends finished, a limit, a reset).
        reason: String,
        /// Bytes carried from source to target, and back.
        bytes: (u64, u64),
    },
}

struct Reservation {
    expires: Instant,
    ip: Option<IpAddr>,
}

/// A CONNECT waiting for the target's answer on the stop stream.
struct Pending {
    src: PeerId,
    dst: PeerId,
    hop: StreamRef,
    reader: FrameReader,
}

struct Circuit {
    src: PeerId,
    dst: PeerId,
    /// The source's hop stream and the target's stop stream.
    ends: [StreamRef; 2],
    /// Bytes read from each end.
    bytes: [u64; 2],
    /// Each end finished its sending.
    finished: [bool; 2],
    /// Reading of each end paused for back-pressure.
    paused: [bool; 2],
    deadline: Instant,
}

/// The circuit relay v2 server plugin.
pub struct RelayServer {
    config: RelayServerConfig,
    reservations: HashMap<PeerId, Reservation>,
    /// Inbound hop streams waiting for their message.
    hops: HashMap<StreamRef, FrameReader>,
    pending: HashMap<StreamRef, Pending>,
    circuits: HashMap<u64, Circuit>,
    /// Each circuit stream: its circuit and which end it is.
    ends: HashMap<StreamRef, (u64, usize)>,
    next_circuit: u64,
    timer_armed: bool,
}

/// Timer token of the periodic expiry sweep.
const SWEEP: u64 = 0;

fn unix_now() -> u64 {
    SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs()
}

impl RelayServer {
    /// A relay with `config`.
    pub fn new(config: RelayServerConfig) -> Self {
        Self {
            config,
            reservations: HashMap::new(),
            hops: HashMap::new(),
            pending: HashMap::new(),
            circuits: HashMap::new(),
            ends: HashMap::new(),
            next_circuit: 0,
            timer_armed: false,
        }
    }

    fn limit(&self) -> proto::Limit {
        proto::Limit {
            duration: Some(self.config.circuit_duration.as_secs() as u32),
            data: Some(self.config.circuit_bytes),
        }
    }

    fn answer(ctx: &mut Context<'_>, stream: StreamRef, status: Status, msg: proto::HopMessage) {
        let msg = proto::HopMessage {
            r#type: Some(hop_message::Type::Status as i32),
            status: Some(status as i32),
            ..msg
        };
        let _ = ctx.send(stream, encode(&msg));
    }

    /// Answer a hop stream with a refusal and finish it.
    fn refuse(ctx: &mut Context<'_>, stream: StreamRef, status: Status) {
        Self::answer(ctx, stream, status, proto::HopMessage::default());
        let _ = ctx.finish(stream);
    }

    fn arm_sweep(&mut self, ctx: &mut Context<'_>) {
        if !self.timer_armed {
            self.timer_armed = true;
            ctx.set_timer(Duration::from_secs(1), SWEEP);
        }
    }

    fn on_reserve(&mut self, ctx: &mut Context<'_>, stream: StreamRef, peer: PeerId) {
        let ip = ctx
            .connection_remote_addr(stream.conn)
            .and_then(|a| ip_of(&a));
        let renewed = self.reservations.contains_key(&peer);
        let refusal = if ctx.connection_is_relayed(stream.conn) {
            Some(Status::PermissionDenied)
        } else if renewed {
            None
        } else if self.reservations.len() >= self.config.max_reservations
            || (ip.is_some()
                && self.reservations.values().filter(|r| r.ip == ip).count()
                    >= self.config.max_reservations_per_ip)
        {
            Some(Status::ResourceLimitExceeded)
        } else {
            None
        };
        if let Some(status) = refusal {
            Self::refuse(ctx, stream, status);
            ctx.emit(RelayServerEvent::ReservationRefused { peer, status });
            return;
        }
        let expire = unix_now() + self.config.reservation_duration.as_secs();
        let me = ctx.local_peer_id();
        let addrs: Vec<Vec<u8>> = ctx
            .external_addresses()
            .into_iter()
            .chain(ctx.listen_addrs())
            .filter(|a| ip_of(a).is_some_and(|ip| !ip.is_unspecified()))
            .map(|a| a.with(P::P2p(me)).to_vec())
            .collect();
        let key = ctx.local_public_key();
        let voucher = voucher::encode(me, peer, expire, &key, |d| ctx.sign_with_host_key(d).ok());
        let reservation = proto::Reservation {
            expire: Some(expire),
            addrs,
            voucher,
        };
        let msg = proto::HopMessage {
            reservation: Some(reservation),
            limit: Some(self.limit()),
            ..Default::default()
        };
        Self::answer(ctx, stream, Status::Ok, msg);
        let _ = ctx.finish(stream);
        self.reservations.insert(
            peer,
            Reservation {
                expires: ctx.now() + self.config.reservation_duration,
                ip,
            },
        );
        self.arm_sweep(ctx);
        ctx.emit(RelayServerEvent::ReservationAccepted { peer, renewed });
    }

    fn circuits_of(&self, peer: PeerId) -> usize {
        let busy = |src: PeerId, dst: PeerId| src == peer || dst == peer;
        self.circuits
            .values()
            .filter(|c| busy(c.src, c.dst))
            .count()
            + self.pending.values().filter(|p| busy(p.src, p.dst)).count()
    }

    fn on_connect(
        &mut self,
        ctx: &mut Context<'_>,
        hop: StreamRef,
        src: PeerId,
        msg: proto::HopMessage,
    ) {
        let dst = msg
            .peer
            .and_then(|p| p.id)
            .and_then(|id| PeerId::from_bytes(&id).ok());
        let Some(dst) = dst else {
            self.refuse_circuit(ctx, hop, src, None, Status::MalformedMessage);
            return;
        };
        let status = if ctx.connection_is_relayed(hop.conn) {
            Some(Status::PermissionDenied)
        } else if !self.reservations.contains_key(&dst) || ctx.connections_to(&dst).is_empty() {
            Some(Status::NoReservation)
        } else if self.circuits.len() + self.pending.len() >= self.config.max_circuits
            || self.circuits_of(src) >= self.config.max_circuits_per_peer
            || self.circuits_of(dst) >= self.config.max_circuits_per_peer
        {
            Some(Status::ResourceLimitExceeded)
        } else {
            None
        };
        if let Some(status) = status {
            self.refuse_circuit(ctx, hop, src, Some(dst), status);
            return;
        }
        match ctx.open_stream(StreamTarget::Peer(dst), STOP) {
            Ok(stop) => {
                // Nothing more is read from the source until the circuit
                // stands (it must wait for our answer anyway).
                let _ = ctx.set_reading(hop, false);
                self.pending.insert(
                    stop,
                    Pending {
                        src,
                        dst,
                        hop,
                        reader: FrameReader::new(MAX_MESSAGE),
                    },
                );
            }
            Err(_) => self.refuse_circuit(ctx, hop, src, Some(dst), Status::ConnectionFailed),
        }
    }

    fn refuse_circuit(
        &mut self,
        ctx: &mut Context<'_>,
        hop: StreamRef,
        src: PeerId,
        dst: Option<PeerId>,
        status: Status,
    ) {
        Self::refuse(ctx, hop, status);
        debug!(%src, ?dst, ?status, "relay: circuit refused");
        ctx.emit(RelayServerEvent::CircuitRefused { src, dst, status });
    }

    /// The target's answer on a stop stream.
    fn on_stop_answer(&mut self, ctx: &mut Context<'_>, stop: StreamRef, msg: proto::StopMessage) {
        let Some(mut p) = self.pending.remove(&stop) else {
            return;
        };
        let ok = msg.r#type == Some(stop_message::Type::Status as i32)
            && Status::from_wire(msg.status) == Some(Status::Ok);
        if !ok {
            let _ = ctx.abort(stop, 0);
            self.refuse_circuit(ctx, p.hop, p.src, Some(p.dst), Status::ConnectionFailed);
            return;
        }
        let answer = proto::HopMessage {
            limit: Some(self.limit()),
            ..Default::default()
        };
        Self::answer(ctx, p.hop, Status::Ok, answer);
        // The target's first bytes may have come with its answer.
        let rest = p.reader.take_rest();
        if !rest.is_empty() {
            let _ = ctx.send(p.hop, rest.clone());
        }
        let _ = ctx.set_reading(p.hop, true);
        self.next_circuit += 1;
        let id = self.next_circuit;
        self.circuits.insert(
            id,
            Circuit {
                src: p.src,
                dst: p.dst,
                ends: [p.hop, stop],
                bytes: [0, rest.len() as u64],
                finished: [false, false],
                paused: [false, false],
                deadline: ctx.now() + self.config.circuit_duration,
            },
        );
        self.ends.insert(p.hop, (id, 0));
        self.ends.insert(stop, (id, 1));
        self.arm_sweep(ctx);
        ctx.emit(RelayServerEvent::CircuitOpened {
            src: p.src,
            dst: p.dst,
        });
    }

    /// Bytes from one end of a circuit go to the other.
    fn splice(&mut self, ctx: &mut Context<'_>, stream: StreamRef, data: Bytes) {
        let Some(&(id, side)) = self.ends.get(&stream) else {
            return;
        };
        let limit = self.config.circuit_bytes;
        let Some(c) = self.circuits.get_mut(&id) else {
            return;
        };
        c.bytes[side] += data.len() as u64;
        if c.bytes[side] > limit {
            self.close_circuit(ctx, id, "data limit reached".into(), true);
            return;
        }
        let to = c.ends[1 - side];
        let _ = ctx.send(to, data);
        if ctx.queued(to) > SPLICE_HIGH_WATER {
            c.paused[side] = true;
            let _ = ctx.set_reading(stream, false);
        }
    }

    fn close_circuit(&mut self, ctx: &mut Context<'_>, id: u64, reason: String, reset: bool) {
        let Some(c) = self.circuits.remove(&id) else {
            return;
        };
        for end in c.ends {
            self.ends.remove(&end);
            if reset {
                let _ = ctx.abort(end, 0);
            }
        }
        debug!(src = %c.src, dst = %c.dst, %reason, "relay: circuit closed");
        ctx.emit(RelayServerEvent::CircuitClosed {
            src: c.src,
            dst: c.dst,
            reason,
            bytes: (c.bytes[0], c.bytes[1]),
        });
    }

    fn on_hop_message(&mut self, ctx: &mut Context<'_>, stream: StreamRef, msg: proto::HopMessage) {
        let Some(peer) = ctx.connection_peer(stream.conn) else {
            return;
        };
        let kind = msg.r#type.and_then(|t| hop_message::Type::try_from(t).ok());
        match kind {
            Some(hop_message::Type::Reserve) => self.on_reserve(ctx, stream, peer),
            Some(hop_message::Type::Connect) => self.on_connect(ctx, stream, peer, msg),
            Some(hop_message::Type::Status) => {
                self.refuse_circuit(ctx, stream, peer, None, Status::UnexpectedMessage)
            }
            None => self.refuse_circuit(ctx, stream, peer, None, Status::MalformedMessage),
        }
    }
}

impl Protocol for RelayServer {
    fn name(&self) -> &'static str {
        "relay-server"
    }

    fn protocol_ids(&self) -> Vec<String> {
        vec![HOP.to_string()]
    }

    fn accept_inbound_stream(&mut self, _ctx: &mut Context<'_>, stream: StreamRef, _p: &str) {
        self.hops.insert(stream, FrameReader::new(MAX_MESSAGE));
    }

    fn handle_stream_negotiated(&mut self, ctx: &mut Context<'_>, stream: StreamRef, _p: &str) {
        let Some(p) = self.pending.get(&stream) else {
            let _ = ctx.abort(stream, 0);
            return;
        };
        let msg = proto::StopMessage {
            r#type: Some(stop_message::Type::Connect as i32),
            peer: Some(proto::Peer {
                id: Some(p.src.to_bytes()),
                addrs: Vec::new(),
            }),
            limit: Some(self.limit()),
            status: None,
        };
        let _ = ctx.send(stream, encode(&msg));
    }

    fn handle_stream_data(&mut self, ctx: &mut Context<'_>, stream: StreamRef, data: Bytes) {
        if self.ends.contains_key(&stream) {
            self.splice(ctx, stream, data);
            return;
        }
        if let Some(reader) = self.hops.get_mut(&stream) {
            reader.push(&data);
            match reader.next_message::<proto::HopMessage>() {
                Ok(None) => {}
                Ok(Some(msg)) => {
                    self.hops.remove(&stream);
                    self.on_hop_message(ctx, stream, msg);
                }
                Err(e) => {
                    self.hops.remove(&stream);
                    debug!(%stream, error = %e, "relay: bad hop message");
                    let peer = ctx.connection_peer(stream.conn);
                    Self::refuse(ctx, stream, Status::MalformedMessage);
                    if let Some(src) = peer {
                        ctx.emit(RelayServerEvent::CircuitRefused {
                            src,
                            dst: None,
                            status: Status::MalformedMessage,
                        });
                    }
                }
            }
            return;
        }
        if let Some(p) = self.pending.get_mut(&stream) {
            p.reader.push(&data);
            match p.reader.next_message::<proto::StopMessage>() {
                Ok(None) => {}
                Ok(Some(msg)) => self.on_stop_answer(ctx, stream, msg),
                Err(_) => {
                    let p = self.pending.remove(&stream);
                    let _ = ctx.abort(stream, 0);
                    if let Some(p) = p {
                        self.refuse_circuit(
                            ctx,
                            p.hop,
                            p.src,
                            Some(p.dst),
                            Status::ConnectionFailed,
                        );
                    }
                }
            }
        }
    }

    fn handle_stream_writable(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        // A side's queue drained: read the other side again.
        let Some(&(id, side)) = self.ends.get(&stream) else {
            return;
        };
        if let Some(c) = self.circuits.get_mut(&id) {
            let other = 1 - side;
            if c.paused[other] {
                c.paused[other] = false;
                let _ = ctx.set_reading(c.ends[other], true);
            }
        }
    }

    fn handle_stream_finished(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        self.hops.remove(&stream);
        let Some(&(id, side)) = self.ends.get(&stream) else {
            return;
        };
        let Some(c) = self.circuits.get_mut(&id) else {
            return;
        };
        c.finished[side] = true;
        // The other side gets the FIN after what is queued for it.
        let _ = ctx.finish(c.ends[1 - side]);
        if c.finished == [true, true] {
            self.close_circuit(ctx, id, "both ends finished".into(), false);
        }
    }

    fn handle_stream_stopped(&mut self, ctx: &mut Context<'_>, stream: StreamRef, _code: u64) {
        // One end no longer reads: nothing more can cross that way, and
        // the relayed connection inside is over (its owner closed it).
        if let Some(&(id, _)) = self.ends.get(&stream) {
            self.close_circuit(ctx, id, "an end stopped reading".into(), true);
        }
    }

    fn handle_stream_closed(&mut self, ctx: &mut Context<'_>, stream: StreamRef, e: &StreamError) {
        self.hops.remove(&stream);
        if let Some(p) = self.pending.remove(&stream) {
            self.refuse_circuit(ctx, p.hop, p.src, Some(p.dst), Status::ConnectionFailed);
            return;
        }
        if let Some(&(id, _)) = self.ends.get(&stream) {
            self.close_circuit(ctx, id, format!("a stream failed: {e}"), true);
        }
    }

    fn handle_closed_connection(&mut self, ctx: &mut Context<'_>, _conn: ConnId, peer: PeerId) {
        if ctx.connections_to(&peer).is_empty() && self.reservations.remove(&peer).is_some() {
            ctx.emit(RelayServerEvent::ReservationEnded { peer });
        }
    }

    fn handle_timer(&mut self, ctx: &mut Context<'_>, _token: u64) {
        let now = ctx.now();
        let expired: Vec<PeerId> = self
            .reservations
            .iter()
            .filter(|(_, r)| r.expires <= now)
            .map(|(p, _)| *p)
            .collect();
        for peer in expired {
            self.reservations.remove(&peer);
            ctx.emit(RelayServerEvent::ReservationEnded { peer });
        }
        let late: Vec<u64> = self
            .circuits
            .iter()
            .filter(|(_, c)| c.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in late {
            self.close_circuit(ctx, id, "duration limit reached".into(), true);
        }
        if self.reservations.is_empty() && self.circuits.is_empty() {
            self.timer_armed = false;
        } else {
            ctx.set_timer(Duration::from_secs(1), SWEEP);
        }
    }
}
