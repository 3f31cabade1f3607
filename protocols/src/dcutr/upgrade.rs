//! The DCUtR plugin: on a relayed connection, try to get a direct one.
//!
//! The side the relayed connection came in to (the *initiator*, `B` in
//! the spec) opens `/libp2p/dcutr`, sends CONNECT with its observed
//! addresses and times the answer; the other side (the *responder*, `A`)
//! answers CONNECT with its own. The initiator sends SYNC and, half a
//! round trip later, when the responder's dial leaves:
//! - QUIC: sends hole-punching datagrams to the responder's QUIC
//!   addresses ([`Context::send_hole_punch`]);
//! - TCP: dials the responder's TCP addresses from its listen port as the
//!   listener of the upgrade ([`Context::dial_as_listener`]), the spec's
//!   "A is the client, B the server" of a TCP simultaneous open;
//!
//! while the responder, on SYNC, dials the initiator's addresses (TCP from
//! its listen port): the packets cross in the NATs, each opening the way
//! for the other. A direct connection to the peer ends the attempt with
//! success; the initiator retries on the same stream up to
//! [`DcutrConfig::max_attempts`] times.
//!
//! New streams to the peer then take the direct connection (the swarm
//! prefers it); the relayed one stays until it idles out or its relay's
//! limits end it.

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::Bytes;
use swarm::multiaddr::Protocol as P;
use swarm::{ConnId, Context, Multiaddr, PeerId, Protocol, StreamError, StreamRef, StreamTarget};
use tracing::debug;

use super::proto::{HolePunch, hole_punch};
use super::{MAX_MESSAGE, PROTOCOL};
use crate::framing::{FrameReader, encode};

/// How DCUtR behaves.
#[derive(Clone, Debug)]
pub struct DcutrConfig {
    /// Attempts (CONNECT, SYNC, punch) before the initiator gives up.
    /// Default 3, as the spec asks.
    pub max_attempts: u8,
    /// How long an attempt waits for the direct connection. Default 5 s.
    pub attempt_timeout: Duration,
    /// Hole-punching datagrams per QUIC address per attempt (a TCP
    /// address gets one dial, with the first; 0 punches nothing). Default
    /// 10.
    pub punches: u32,
    /// Time between them. Default 20 ms.
    pub punch_interval: Duration,
    /// Once a direct connection stands, close the relayed one after this
    /// grace period (streams still on it may finish), which frees the
    /// relay's circuit; `None` keeps it. Default 10 s.
    pub close_relayed_after: Option<Duration>,
}

impl Default for DcutrConfig {
    fn default() -> Self {
        Self {
            max_attempts: 3,
            attempt_timeout: Duration::from_secs(5),
            punches: 10,
            punch_interval: Duration::from_millis(20),
            close_relayed_after: Some(Duration::from_secs(10)),
        }
    }
}

/// What DCUtR achieved, emitted as protocol events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum DcutrEvent {
    /// A direct connection to `peer` replaced the relayed one for new
    /// streams.
    DirectConnectionUpgraded {
        /// The peer.
        peer: PeerId,
        /// The relayed connection the attempt started on.
        relayed: ConnId,
        /// The direct connection.
        direct: ConnId,
        /// Attempts it took (1 = the first).
        attempts: u8,
    },
    /// No direct connection (after all attempts, or the attempt could not
    /// start).
    UpgradeFailed {
        /// The peer.
        peer: PeerId,
        /// Why.
        reason: String,
    },
}

/// Which side of the exchange we are.
#[derive(Clone, Copy, PartialEq, Eq)]
enum Role {
    Initiator,
    Responder,
}

/// One peer's upgrade attempt.
struct Attempt {
    role: Role,
    relayed: ConnId,
    stream: Option<StreamRef>,
    reader: FrameReader,
    attempt: u8,
    /// When our CONNECT went out (initiator).
    sent_at: Option<Instant>,
    /// The remote's direct (QUIC and TCP) addresses from its CONNECT.
    remote: Vec<Multiaddr>,
    /// Punches still to send in this attempt.
    punches_left: u32,
    /// SYNC went (initiator) or came (responder): the stream has done its
    /// part of this attempt, and the peer may close it (rust-libp2p does).
    synced: bool,
    /// Responder: the attempt's wait ran out while the initiator still
    /// held the stream (it may retry); its end then ends the attempt.
    waited_out: bool,
    /// The direct dials it made (the responder's; the initiator's TCP
    /// ones). Only these, and for the initiator an inbound connection,
    /// count as the upgrade (another direct connection, e.g. an AutoNAT
    /// dial-back, is not the punched path).
    dials: Vec<ConnId>,
}

/// What a timer is for.
#[derive(Clone, Copy)]
enum Due {
    /// Send the next round of punches.
    Punch(PeerId),
    /// The attempt waited long enough.
    Timeout(PeerId, u8),
    /// The grace period of a relayed connection a direct one replaced.
    CloseRelayed(ConnId),
}

/// The DCUtR plugin.
pub struct Dcutr {
    config: DcutrConfig,
    attempts: HashMap<PeerId, Attempt>,
    timers: HashMap<u64, Due>,
    next_token: u64,
    /// Connected peers (connection count): whose observations of our
    /// address we announce.
    connected: HashMap<PeerId, usize>,
}

impl Dcutr {
    /// DCUtR with `config`.
    pub fn new(config: DcutrConfig) -> Self {
        Self {
            config,
            attempts: HashMap::new(),
            timers: HashMap::new(),
            next_token: 0,
            connected: HashMap::new(),
        }
    }

    fn timer(&mut self, ctx: &mut Context<'_>, delay: Duration, due: Due) {
        self.next_token += 1;
        self.timers.insert(self.next_token, due);
        ctx.set_timer(delay, self.next_token);
    }

    /// Our addresses worth punching to: confirmed external ones and those
    /// peers observed (identify), direct QUIC and TCP, never relayed.
    fn our_addrs(ctx: &Context<'_>, peers: impl Iterator<Item = PeerId>) -> Vec<Multiaddr> {
        let mut addrs = ctx.external_addresses();
        for peer in peers {
            if let Some(a) = ctx
                .metadata_for_peer(&peer)
                .and_then(|r| r.observed_addr().cloned())
            {
                addrs.push(a);
            }
        }
        let mut usable: Vec<Multiaddr> = addrs.into_iter().filter(is_direct).collect();
        usable.sort_by_key(|a| a.to_vec());
        usable.dedup();
        usable
    }

    fn send_connect(&mut self, ctx: &mut Context<'_>, peer: PeerId) {
        let addrs = Self::our_addrs(ctx, self.connected.keys().copied());
        if addrs.is_empty() {
            // The spec's peers refuse a CONNECT without addresses.
            self.fail(ctx, peer, "no observed address of ours to offer".into());
            return;
        }
        let Some(a) = self.attempts.get_mut(&peer) else {
            return;
        };
        let Some(stream) = a.stream else {
            return;
        };
        debug!(%peer, ?addrs, "dcutr: our addresses");
        let msg = HolePunch {
            r#type: Some(hole_punch::Type::Connect as i32),
            obs_addrs: addrs.iter().map(|a| a.to_vec()).collect(),
        };
        if a.role == Role::Initiator {
            a.sent_at = Some(ctx.now());
        }
        let _ = ctx.send(stream, encode(&msg));
    }

    /// The initiator got the responder's CONNECT: SYNC, then punch half a
    /// round trip later, when the responder's dial leaves.
    fn on_connect_answer(&mut self, ctx: &mut Context<'_>, peer: PeerId) {
        let now = ctx.now();
        let punches = self.config.punches;
        let Some(a) = self.attempts.get_mut(&peer) else {
            return;
        };
        let rtt = a.sent_at.map(|t| now.duration_since(t)).unwrap_or_default();
        if let Some(stream) = a.stream {
            let sync = HolePunch {
                r#type: Some(hole_punch::Type::Sync as i32),
                obs_addrs: Vec::new(),
            };
            let _ = ctx.send(stream, encode(&sync));
        }
        a.punches_left = punches;
        a.synced = true;
        let attempt = a.attempt;
        debug!(%peer, ?rtt, attempt, "dcutr: sync sent");
        self.timer(ctx, rtt / 2, Due::Punch(peer));
        let timeout = self.config.attempt_timeout;
        self.timer(ctx, rtt / 2 + timeout, Due::Timeout(peer, attempt));
    }

    /// The responder got SYNC: dial the initiator's addresses now.
    fn dial_remote(&mut self, ctx: &mut Context<'_>, peer: PeerId) {
        let Some(a) = self.attempts.get_mut(&peer) else {
            return;
        };
        let (attempt, timeout) = (a.attempt, self.config.attempt_timeout);
        for addr in a.remote.clone() {
            let addr = addr.with(P::P2p(peer));
            match ctx.dial(&addr, true) {
                Ok(conn) => a.dials.push(conn),
                Err(e) => debug!(%peer, %addr, error = %e, "dcutr: direct dial did not start"),
            }
        }
        self.timer(ctx, timeout, Due::Timeout(peer, attempt));
    }

    fn on_message(&mut self, ctx: &mut Context<'_>, peer: PeerId, msg: HolePunch) {
        let Some(a) = self.attempts.get_mut(&peer) else {
            return;
        };
        let kind = msg.r#type.and_then(|t| hole_punch::Type::try_from(t).ok());
        debug!(%peer, ?kind, addrs = ?direct_addrs(&msg.obs_addrs), "dcutr: message");
        match (a.role, kind) {
            (Role::Initiator, Some(hole_punch::Type::Connect)) => {
                a.remote = direct_addrs(&msg.obs_addrs);
                if a.remote.is_empty() {
                    self.fail(
                        ctx,
                        peer,
                        "the peer sent no direct QUIC or TCP address".into(),
                    );
                    return;
                }
                self.on_connect_answer(ctx, peer);
            }
            (Role::Responder, Some(hole_punch::Type::Connect)) => {
                a.remote = direct_addrs(&msg.obs_addrs);
                a.attempt += 1;
                a.waited_out = false;
                self.send_connect(ctx, peer);
            }
            (Role::Responder, Some(hole_punch::Type::Sync)) => {
                a.synced = true;
                self.dial_remote(ctx, peer);
            }
            _ => self.fail(ctx, peer, "unexpected dcutr message".into()),
        }
    }

    fn fail(&mut self, ctx: &mut Context<'_>, peer: PeerId, reason: String) {
        if let Some(a) = self.attempts.remove(&peer)
            && let Some(stream) = a.stream
        {
            let _ = ctx.abort(stream, 0);
        }
        debug!(%peer, %reason, "dcutr: no direct connection");
        ctx.emit(DcutrEvent::UpgradeFailed { peer, reason });
    }

    /// The exchange's stream ended. Before SYNC that ends the attempt;
    /// after it the direct dial may still come (the timeout decides), and a
    /// retry opens a new stream.
    fn stream_ended(&mut self, ctx: &mut Context<'_>, stream: StreamRef, reason: String) {
        let Some(peer) = self.peer_of(stream) else {
            return;
        };
        let Some(a) = self.attempts.get_mut(&peer) else {
            return;
        };
        a.stream = None;
        if !a.synced {
            self.fail(ctx, peer, reason);
        } else if a.role == Role::Responder && a.waited_out {
            self.fail(ctx, peer, "no direct connection after the dial".into());
        }
    }

    fn peer_of(&self, stream: StreamRef) -> Option<PeerId> {
        self.attempts
            .iter()
            .find(|(_, a)| a.stream == Some(stream))
            .map(|(p, _)| *p)
    }
}

/// A `/ip4|ip6/…/udp/…/quic-v1` address without relay or peer id parts.
fn is_direct_quic(addr: &Multiaddr) -> bool {
    swarm::address::parse_quic_addr(addr).is_some_and(|q| q.peer.is_none())
        && !swarm::address::is_circuit(addr)
}

/// A `/ip4|ip6/…/tcp/…` address without relay or peer id parts.
fn is_direct_tcp(addr: &Multiaddr) -> bool {
    swarm::address::parse_tcp_addr(addr).is_some_and(|t| t.peer.is_none())
        && !swarm::address::is_circuit(addr)
}

fn is_direct(addr: &Multiaddr) -> bool {
    is_direct_quic(addr) || is_direct_tcp(addr)
}

/// The direct QUIC and TCP addresses among binary multiaddrs (a `/p2p/`
/// suffix is dropped).
fn direct_addrs(raw: &[Vec<u8>]) -> Vec<Multiaddr> {
    raw.iter()
        .filter_map(|b| Multiaddr::try_from(b.clone()).ok())
        .map(|a| {
            a.into_iter()
                .filter(|p| !matches!(p, P::P2p(_)))
                .collect::<Multiaddr>()
        })
        .filter(is_direct)
        .collect()
}

impl Protocol for Dcutr {
    fn name(&self) -> &'static str {
        "dcutr"
    }

    fn protocol_ids(&self) -> Vec<String> {
        vec![PROTOCOL.to_string()]
    }

    fn handle_closed_connection(&mut self, _ctx: &mut Context<'_>, _conn: ConnId, peer: PeerId) {
        if let Some(n) = self.connected.get_mut(&peer) {
            *n -= 1;
            if *n == 0 {
                self.connected.remove(&peer);
            }
        }
    }

    fn handle_new_connection(&mut self, ctx: &mut Context<'_>, conn: ConnId, peer: PeerId) {
        *self.connected.entry(peer).or_default() += 1;
        if !ctx.connection_is_relayed(conn) {
            // The punched connection: the responder's own dial, or a dial
            // the initiator received. Others (an AutoNAT dial-back, say)
            // are not it.
            let punched = self.attempts.get(&peer).is_some_and(|a| {
                a.dials.contains(&conn)
                    || (a.role == Role::Initiator
                        && ctx.connection_is_outbound(conn) == Some(false))
            });
            if let Some(a) = punched.then(|| self.attempts.remove(&peer)).flatten() {
                if let Some(stream) = a.stream {
                    let _ = ctx.finish(stream);
                }
                ctx.emit(DcutrEvent::DirectConnectionUpgraded {
                    peer,
                    relayed: a.relayed,
                    direct: conn,
                    attempts: a.attempt.max(1),
                });
                if let Some(grace) = self.config.close_relayed_after {
                    self.timer(ctx, grace, Due::CloseRelayed(a.relayed));
                }
            }
            return;
        }
        let has_direct = ctx
            .connections_to(&peer)
            .iter()
            .any(|c| !ctx.connection_is_relayed(*c));
        // The relayed connection came in to us: we initiate.
        if has_direct || ctx.connection_is_outbound(conn) != Some(false) {
            return;
        }
        match ctx.open_stream(StreamTarget::Conn(conn), PROTOCOL) {
            Ok(stream) => {
                self.attempts.insert(
                    peer,
                    Attempt {
                        role: Role::Initiator,
                        relayed: conn,
                        stream: Some(stream),
                        reader: FrameReader::new(MAX_MESSAGE),
                        attempt: 1,
                        sent_at: None,
                        remote: Vec::new(),
                        punches_left: 0,
                        synced: false,
                        waited_out: false,
                        dials: Vec::new(),
                    },
                );
            }
            Err(e) => ctx.emit(DcutrEvent::UpgradeFailed {
                peer,
                reason: e.to_string(),
            }),
        }
    }

    fn handle_stream_negotiated(&mut self, ctx: &mut Context<'_>, stream: StreamRef, _p: &str) {
        if let Some(peer) = self.peer_of(stream) {
            self.send_connect(ctx, peer);
        }
    }

    fn accept_inbound_stream(&mut self, ctx: &mut Context<'_>, stream: StreamRef, _p: &str) {
        let Some(peer) = ctx.connection_peer(stream.conn) else {
            let _ = ctx.abort(stream, 0);
            return;
        };
        if !ctx.connection_is_relayed(stream.conn) {
            let _ = ctx.abort(stream, 0);
            return;
        }
        if let Some(a) = self.attempts.get_mut(&peer) {
            // The initiator's retry on a new stream, after it lost the last.
            if a.role == Role::Responder && a.stream.is_none() {
                a.stream = Some(stream);
                a.synced = false;
            } else {
                let _ = ctx.abort(stream, 0);
            }
            return;
        }
        self.attempts.insert(
            peer,
            Attempt {
                role: Role::Responder,
                relayed: stream.conn,
                stream: Some(stream),
                reader: FrameReader::new(MAX_MESSAGE),
                attempt: 0,
                sent_at: None,
                remote: Vec::new(),
                punches_left: 0,
                synced: false,
                waited_out: false,
                dials: Vec::new(),
            },
        );
    }

    fn handle_stream_data(&mut self, ctx: &mut Context<'_>, stream: StreamRef, data: Bytes) {
        let Some(peer) = self.peer_of(stream) else {
            return;
        };
        let Some(a) = self.attempts.get_mut(&peer) else {
            return;
        };
        a.reader.push(&data);
        loop {
            let Some(a) = self.attempts.get_mut(&peer) else {
                return;
            };
            match a.reader.next_message::<HolePunch>() {
                Ok(Some(msg)) => self.on_message(ctx, peer, msg),
                Ok(None) => return,
                Err(e) => {
                    self.fail(ctx, peer, format!("bad dcutr message: {e}"));
                    return;
                }
            }
        }
    }

    fn handle_stream_finished(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        self.stream_ended(ctx, stream, "the peer ended the exchange".into());
    }

    fn handle_stream_closed(&mut self, ctx: &mut Context<'_>, stream: StreamRef, e: &StreamError) {
        self.stream_ended(ctx, stream, e.to_string());
    }

    fn handle_timer(&mut self, ctx: &mut Context<'_>, token: u64) {
        match self.timers.remove(&token) {
            Some(Due::Punch(peer)) => {
                let interval = self.config.punch_interval;
                let punches = self.config.punches;
                let Some(a) = self.attempts.get_mut(&peer) else {
                    return;
                };
                if a.punches_left == 0 {
                    return;
                }
                let first = a.punches_left == punches;
                a.punches_left -= 1;
                for addr in a.remote.clone() {
                    if is_direct_tcp(&addr) {
                        // TCP punches once, with its SYN: a dial that
                        // meets the responder's.
                        if first {
                            match ctx.dial_as_listener(&addr.clone().with(P::P2p(peer))) {
                                Ok(conn) => a.dials.push(conn),
                                Err(e) => debug!(%peer, %addr, error = %e, "dcutr: cannot dial"),
                            }
                        }
                    } else if let Err(e) = ctx.send_hole_punch(&addr) {
                        debug!(%peer, %addr, error = %e, "dcutr: cannot punch");
                    }
                }
                self.timer(ctx, interval, Due::Punch(peer));
            }
            Some(Due::Timeout(peer, attempt)) => {
                let max = self.config.max_attempts;
                let Some(a) = self.attempts.get_mut(&peer) else {
                    return;
                };
                if a.attempt != attempt {
                    return;
                }
                if a.role == Role::Responder {
                    // The initiator drives retries; without a new exchange
                    // under way, this one failed.
                    if a.stream.is_none() {
                        self.fail(ctx, peer, "no direct connection after the dial".into());
                    } else {
                        a.waited_out = true;
                    }
                    return;
                }
                if a.attempt >= max {
                    let reason = format!("no direct connection after {max} attempts");
                    self.fail(ctx, peer, reason);
                    return;
                }
                a.attempt += 1;
                a.synced = false;
                if a.stream.is_none() {
                    // The peer closed the last one: a new exchange.
                    let relayed = a.relayed;
                    match ctx.open_stream(StreamTarget::Conn(relayed), PROTOCOL) {
                        Ok(stream) => a.stream = Some(stream),
                        Err(e) => self.fail(ctx, peer, e.to_string()),
                    }
                    return;
                }
                self.send_connect(ctx, peer);
            }
            Some(Due::CloseRelayed(conn)) => {
                // Already gone is fine: the other side may have closed it.
                let _ = ctx.close_connection(conn, 0);
            }
            None => {}
        }
    }
}
