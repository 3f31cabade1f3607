//! The AutoNAT v2 client: asks connected servers to dial our candidate
//! addresses back, one address per request, and decides each address
//! reachable or not after [`ClientConfig::confirmations`] agreeing
//! answers. A reachable address becomes a confirmed external address of
//! the swarm ([`Context::add_external_address`]); an unreachable one is
//! withdrawn. A success counts only if the server's nonce really arrived
//! on a dial-back stream: a server cannot claim a dial it did not make.
//!
//! Candidates are the configured ones, our listen addresses and the
//! addresses peers observed us at (identify), filtered as the server would
//! ([`ClientConfig::allowed_networks`] admits private ones, e.g. in tests).

use std::collections::{HashMap, HashSet};
use std::time::{Duration, Instant};

use bytes::Bytes;
use swarm::{ConnId, Context, Multiaddr, PeerId, Protocol, StreamError, StreamRef};
use tracing::debug;

use super::addresses::{IpNetwork, testable};
use super::proto::{self, DialStatus, ResponseStatus, message::Msg};
use super::{DIAL_BACK, DIAL_REQUEST, MAX_MESSAGE};
use crate::framing::{FrameReader, encode};

/// Bytes of dial data per message (the spec's limit).
const DIAL_DATA_CHUNK: usize = 4096;
/// Nonces of dial-backs kept until their request's answer (bounded by the
/// probes in flight; this caps what stray dial-backs can add).
const MAX_RECEIVED_NONCES: usize = 256;

/// How the client behaves.
#[derive(Clone, Debug)]
pub struct ClientConfig {
    /// Time between probing rounds. Default 15 s.
    pub probe_interval: Duration,
    /// Agreeing answers (from any servers) that decide an address.
    /// Default 3, the spec's suggestion.
    pub confirmations: usize,
    /// After a decision, time before the address is tested again.
    /// Default 10 min.
    pub recheck_interval: Duration,
    /// Most dial data we pay for one request; a server asking more gets
    /// its request reset. Default 100,000 (the spec's upper bound).
    pub max_dial_data: u64,
    /// Addresses to test besides the listen and observed ones.
    pub candidates: Vec<Multiaddr>,
    /// Test our listen addresses (default true).
    pub probe_listen_addrs: bool,
    /// Networks tested though not public (a LAN, a test's namespaces).
    /// Default none.
    pub allowed_networks: Vec<IpNetwork>,
}

impl Default for ClientConfig {
    fn default() -> Self {
        Self {
            probe_interval: Duration::from_secs(15),
            confirmations: 3,
            recheck_interval: Duration::from_secs(600),
            max_dial_data: 100_000,
            candidates: Vec::new(),
            probe_listen_addrs: true,
            allowed_networks: Vec::new(),
        }
    }
}

/// Whether others can reach us, as far as the client knows.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Reachability {
    /// Nothing decided yet.
    Unknown,
    /// At least one address was confirmed reachable.
    Public,
    /// Every decided address is unreachable.
    Private,
}

/// What the client learned, emitted as protocol events.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ClientEvent {
    /// `addr` is reachable: servers dialed it and delivered their nonce.
    Reachable {
        /// The address.
        addr: Multiaddr,
        /// The server whose answer decided it.
        server: PeerId,
        /// Where the deciding dial-back came from, as we saw it.
        dial_back_from: Option<Multiaddr>,
    },
    /// `addr` is not reachable: servers could not dial it.
    Unreachable {
        /// The address.
        addr: Multiaddr,
    },
    /// A probe gave no answer about `addr` (refused, rejected, dial-back
    /// error, a claim without a nonce, or we would not pay).
    ProbeFailed {
        /// The address asked about.
        addr: Multiaddr,
        /// The server asked.
        server: PeerId,
        /// Why.
        reason: String,
    },
    /// The overall reachability changed.
    ReachabilityChanged(Reachability),
}

/// One address's votes and verdict.
#[derive(Default)]
struct Candidate {
    successes: usize,
    failures: usize,
    verdict: Option<bool>,
    last_probe: Option<Instant>,
    /// Servers asked for this verdict (each counts once).
    asked: HashSet<PeerId>,
}

/// A request in flight.
struct Probe {
    server: PeerId,
    addr: Multiaddr,
    nonce: u64,
    reader: FrameReader,
}

/// The AutoNAT v2 client plugin.
pub struct AutonatClient {
    config: ClientConfig,
    candidates: HashMap<Multiaddr, Candidate>,
    probes: HashMap<StreamRef, Probe>,
    /// Nonces delivered by dial-backs, with where the dial-back came from.
    received: HashMap<u64, Option<Multiaddr>>,
    /// Inbound dial-back streams and what they read so far.
    dial_backs: HashMap<StreamRef, FrameReader>,
    /// Connected peers (connection count), the server candidates.
    connected: HashMap<PeerId, usize>,
    reachability: Reachability,
}

impl AutonatClient {
    /// A client with `config`.
    pub fn new(config: ClientConfig) -> Self {
        Self {
            config,
            candidates: HashMap::new(),
            probes: HashMap::new(),
            received: HashMap::new(),
            dial_backs: HashMap::new(),
            connected: HashMap::new(),
            reachability: Reachability::Unknown,
        }
    }

    /// Every address worth testing now.
    fn gather_candidates(&mut self, ctx: &Context<'_>) {
        let mut found: Vec<Multiaddr> = self.config.candidates.clone();
        if self.config.probe_listen_addrs {
            found.extend(ctx.listen_addrs());
        }
        for peer in self.connected.keys() {
            if let Some(observed) = ctx
                .metadata_for_peer(peer)
                .and_then(|r| r.observed_addr().cloned())
            {
                found.push(observed);
            }
        }
        for addr in found {
            if testable(&addr, &self.config.allowed_networks) {
                self.candidates.entry(addr).or_default();
            }
        }
    }

    /// One probing round: each address due for a test goes to a server
    /// that has not answered about it yet.
    fn probe_round(&mut self, ctx: &mut Context<'_>) {
        self.gather_candidates(ctx);
        let now = ctx.now();
        // Only servers we reach directly: one behind a relay is likely
        // behind a NAT itself, and its dial-back can ride a hole punched
        // between us (DCUtR), which says nothing of our reachability.
        let servers: Vec<PeerId> = self
            .connected
            .keys()
            .filter(|p| {
                ctx.metadata_for_peer(p)
                    .is_some_and(|r| r.supports(DIAL_REQUEST))
                    && ctx
                        .connections_to(p)
                        .iter()
                        .any(|c| !ctx.connection_is_relayed(*c))
            })
            .copied()
            .collect();
        let in_flight: HashSet<Multiaddr> = self.probes.values().map(|p| p.addr.clone()).collect();
        let due: Vec<Multiaddr> = self
            .candidates
            .iter()
            .filter(|(addr, c)| {
                !in_flight.contains(*addr)
                    && (c.verdict.is_none()
                        || c.last_probe
                            .is_none_or(|t| now.duration_since(t) >= self.config.recheck_interval))
            })
            .map(|(a, _)| a.clone())
            .collect();
        for addr in due {
            let Some(c) = self.candidates.get_mut(&addr) else {
                continue;
            };
            if c.verdict.is_some() {
                // A recheck starts a fresh count.
                *c = Candidate::default();
            }
            let Some(server) = servers.iter().find(|s| !c.asked.contains(s)).copied() else {
                continue;
            };
            match ctx.open_stream(server, DIAL_REQUEST) {
                Ok(stream) => {
                    c.asked.insert(server);
                    c.last_probe = Some(now);
                    let nonce = rand::random();
                    self.probes.insert(
                        stream,
                        Probe {
                            server,
                            addr,
                            nonce,
                            reader: FrameReader::new(MAX_MESSAGE),
                        },
                    );
                }
                Err(e) => debug!(%server, error = %e, "cannot open an autonat request"),
            }
        }
    }

    /// Count an answer about `addr` and decide when enough agree.
    fn vote(
        &mut self,
        ctx: &mut Context<'_>,
        addr: &Multiaddr,
        server: PeerId,
        reachable: bool,
        from: Option<Multiaddr>,
    ) {
        let confirmations = self.config.confirmations.max(1);
        let Some(c) = self.candidates.get_mut(addr) else {
            return;
        };
        if reachable {
            c.successes += 1;
        } else {
            c.failures += 1;
        }
        let verdict = if c.successes >= confirmations {
            Some(true)
        } else if c.failures >= confirmations {
            Some(false)
        } else {
            None
        };
        let Some(verdict) = verdict else {
            return;
        };
        c.verdict = Some(verdict);
        c.successes = 0;
        c.failures = 0;
        if verdict {
            ctx.add_external_address(addr.clone());
            ctx.emit(ClientEvent::Reachable {
                addr: addr.clone(),
                server,
                dial_back_from: from,
            });
        } else {
            ctx.remove_external_address(addr);
            ctx.emit(ClientEvent::Unreachable { addr: addr.clone() });
        }
        let overall = if self.candidates.values().any(|c| c.verdict == Some(true)) {
            Reachability::Public
        } else if self.candidates.values().any(|c| c.verdict.is_some()) {
            Reachability::Private
        } else {
            Reachability::Unknown
        };
        if overall != self.reachability {
            self.reachability = overall;
            ctx.emit(ClientEvent::ReachabilityChanged(overall));
        }
    }

    fn fail(&mut self, ctx: &mut Context<'_>, stream: StreamRef, reason: String) {
        if let Some(p) = self.probes.remove(&stream) {
            self.received.remove(&p.nonce);
            debug!(server = %p.server, addr = %p.addr, %reason, "autonat probe failed");
            ctx.emit(ClientEvent::ProbeFailed {
                addr: p.addr,
                server: p.server,
                reason,
            });
        }
    }

    /// A message from a server on a request stream.
    fn on_message(&mut self, ctx: &mut Context<'_>, stream: StreamRef, msg: Option<Msg>) {
        match msg {
            Some(Msg::DialDataRequest(ask)) => {
                if ask.addr_idx != 0 || ask.num_bytes > self.config.max_dial_data {
                    let _ = ctx.abort(stream, 0);
                    let reason = format!("server asked {} bytes of dial data", ask.num_bytes);
                    self.fail(ctx, stream, reason);
                    return;
                }
                // Paid in chunks of at most 4 KiB, as the spec asks.
                let mut left = ask.num_bytes as usize;
                while left > 0 {
                    let n = left.min(DIAL_DATA_CHUNK);
                    let chunk = proto::Message {
                        msg: Some(Msg::DialDataResponse(proto::DialDataResponse {
                            data: vec![0; n],
                        })),
                    };
                    let _ = ctx.send(stream, encode(&chunk));
                    left -= n;
                }
            }
            Some(Msg::DialResponse(r)) => {
                let _ = ctx.finish(stream);
                let Some(p) = self.probes.remove(&stream) else {
                    return;
                };
                let delivered = self.received.remove(&p.nonce);
                let dial_status = DialStatus::try_from(r.dial_status).ok();
                match (ResponseStatus::try_from(r.status).ok(), dial_status) {
                    (Some(ResponseStatus::Ok), Some(DialStatus::Ok)) => match delivered {
                        Some(from) => self.vote(ctx, &p.addr, p.server, true, from),
                        None => self.probes_failed(ctx, p, "OK without a dial-back".into()),
                    },
                    (Some(ResponseStatus::Ok), Some(DialStatus::EDialError)) => {
                        self.vote(ctx, &p.addr, p.server, false, None)
                    }
                    (status, dial) => {
                        let reason = format!("server answered {status:?} / {dial:?}");
                        self.probes_failed(ctx, p, reason);
                    }
                }
            }
            _ => {
                let _ = ctx.abort(stream, 0);
                self.fail(ctx, stream, "unexpected message".into());
            }
        }
    }

    fn probes_failed(&mut self, ctx: &mut Context<'_>, p: Probe, reason: String) {
        ctx.emit(ClientEvent::ProbeFailed {
            addr: p.addr,
            server: p.server,
            reason,
        });
    }
}

/// Timer token of the probing rounds.
const PROBE: u64 = 1;

impl Protocol for AutonatClient {
    fn name(&self) -> &'static str {
        "autonat-v2-client"
    }

    fn protocol_ids(&self) -> Vec<String> {
        vec![DIAL_BACK.to_string()]
    }

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        ctx.set_timer(self.config.probe_interval, PROBE);
    }

    fn handle_new_connection(&mut self, _ctx: &mut Context<'_>, _conn: ConnId, peer: PeerId) {
        *self.connected.entry(peer).or_default() += 1;
    }

    fn handle_closed_connection(&mut self, _ctx: &mut Context<'_>, _conn: ConnId, peer: PeerId) {
        if let Some(n) = self.connected.get_mut(&peer) {
            *n -= 1;
            if *n == 0 {
                self.connected.remove(&peer);
            }
        }
    }

    fn handle_timer(&mut self, ctx: &mut Context<'_>, _token: u64) {
        self.probe_round(ctx);
        ctx.set_timer(self.config.probe_interval, PROBE);
    }

    fn handle_stream_negotiated(&mut self, ctx: &mut Context<'_>, stream: StreamRef, _p: &str) {
        let Some(p) = self.probes.get(&stream) else {
            let _ = ctx.abort(stream, 0);
            return;
        };
        let request = proto::Message {
            msg: Some(Msg::DialRequest(proto::DialRequest {
                addrs: vec![p.addr.to_vec()],
                nonce: p.nonce,
            })),
        };
        let _ = ctx.send(stream, encode(&request));
    }

    fn accept_inbound_stream(&mut self, ctx: &mut Context<'_>, stream: StreamRef, _p: &str) {
        if self.dial_backs.len() >= MAX_RECEIVED_NONCES {
            let _ = ctx.abort(stream, 0);
            return;
        }
        self.dial_backs
            .insert(stream, FrameReader::new(MAX_MESSAGE));
    }

    fn handle_stream_data(&mut self, ctx: &mut Context<'_>, stream: StreamRef, data: Bytes) {
        if let Some(reader) = self.dial_backs.get_mut(&stream) {
            reader.push(&data);
            match reader.next_message::<proto::DialBack>() {
                Ok(None) => {}
                Ok(Some(back)) => {
                    self.dial_backs.remove(&stream);
                    // Only a nonce we are waiting for counts.
                    if self.probes.values().any(|p| p.nonce == back.nonce)
                        && self.received.len() < MAX_RECEIVED_NONCES
                    {
                        let from = ctx.connection_remote_addr(stream.conn);
                        self.received.insert(back.nonce, from);
                    }
                    let ok = proto::DialBackResponse { status: 0 };
                    let _ = ctx.send(stream, encode(&ok));
                    let _ = ctx.finish(stream);
                }
                Err(_) => {
                    self.dial_backs.remove(&stream);
                    let _ = ctx.abort(stream, 0);
                }
            }
            return;
        }
        let Some(p) = self.probes.get_mut(&stream) else {
            return;
        };
        p.reader.push(&data);
        loop {
            let Some(p) = self.probes.get_mut(&stream) else {
                return;
            };
            match p.reader.next_message::<proto::Message>() {
                Ok(Some(m)) => self.on_message(ctx, stream, m.msg),
                Ok(None) => return,
                Err(e) => {
                    let _ = ctx.abort(stream, 0);
                    self.fail(ctx, stream, e.to_string());
                    return;
                }
            }
        }
    }

    fn handle_stream_finished(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        if self.probes.contains_key(&stream) {
            self.fail(ctx, stream, "the server ended the stream".into());
        }
    }

    fn handle_stream_closed(&mut self, ctx: &mut Context<'_>, stream: StreamRef, e: &StreamError) {
        self.dial_backs.remove(&stream);
        if self.probes.contains_key(&stream) {
            self.fail(ctx, stream, e.to_string());
        }
    }
}
