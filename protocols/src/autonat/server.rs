//! The AutoNAT v2 server: on a client's `DialRequest`, dial the first
//! address it is willing to dial, on a new connection from a port it does
//! not listen on ([`Context::dial_back`]), deliver the nonce on a
//! `/libp2p/autonat/2/dial-back` stream, and report the outcome.
//!
//! Before dialing an IP other than the one the client connects from, it
//! asks for [`ServerConfig::dial_data_bytes`] of data (the spec's
//! amplification protection): an attacker cannot make us dial a victim
//! for less than that. Requests are rate-limited per client and in total.

use std::collections::{HashMap, VecDeque};
use std::time::{Duration, Instant};

use bytes::Bytes;
use swarm::{ConnId, Context, DialError, Multiaddr, PeerId, Protocol, StreamError, StreamRef};
use tracing::debug;

use super::addresses::{IpNetwork, ip_of, testable};
use super::proto::{self, DialStatus, ResponseStatus, message::Msg};
use super::{DIAL_BACK, DIAL_REQUEST, MAX_MESSAGE};
use crate::framing::{FrameReader, encode};

/// How the server behaves.
#[derive(Clone, Debug)]
pub struct ServerConfig {
    /// Bytes a client pays before we dial an IP it does not connect from.
    /// Default 30,000 (the spec asks for 30k–100k; a handshake costs under
    /// 10k).
    pub dial_data_bytes: u64,
    /// Networks dialed even though not public (a LAN, a test's network
    /// namespaces, loopback). Default none: only public addresses.
    pub allowed_networks: Vec<IpNetwork>,
    /// Requests served at once, all clients together. Default 16.
    pub max_concurrent: usize,
    /// Requests one client may make per minute. Default 12.
    pub max_per_client_per_minute: usize,
    /// Longest a request may take from the dial to the dial-back's answer.
    /// Default 15 s.
    pub dial_back_timeout: Duration,
}

impl Default for ServerConfig {
    fn default() -> Self {
        Self {
            dial_data_bytes: 30_000,
            allowed_networks: Vec::new(),
            max_concurrent: 16,
            max_per_client_per_minute: 12,
            dial_back_timeout: Duration::from_secs(15),
        }
    }
}

/// What the server did with a request, emitted as a protocol event.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum ServerEvent {
    /// We dialed `addr` for `client`; `status` is what we reported.
    Tested {
        /// Who asked.
        client: PeerId,
        /// The address dialed.
        addr: Multiaddr,
        /// The dial's outcome.
        status: DialStatus,
        /// Whether the client had to pay dial data first.
        paid: bool,
    },
    /// We did not dial, with the status we answered.
    Refused {
        /// Who asked.
        client: PeerId,
        /// Rejected (rate limits) or refused (no address we would dial).
        status: ResponseStatus,
    },
    /// The client went away (or reset the stream, e.g. refusing to pay)
    /// before we dialed.
    Abandoned {
        /// Who asked.
        client: PeerId,
    },
}

/// Where one request stands.
enum Stage {
    /// Waiting for the `DialRequest`.
    Reading,
    /// Waiting for `left` more bytes of dial data.
    Paying {
        addr: Multiaddr,
        idx: u32,
        left: u64,
    },
    /// Dialing `conn` (`None`: the dial could not start); then the
    /// dial-back stream on it.
    Dialing {
        addr: Multiaddr,
        idx: u32,
        conn: Option<ConnId>,
    },
}

struct Request {
    client: PeerId,
    nonce: u64,
    /// The client paid dial data for this request.
    paid: bool,
    reader: FrameReader,
    stage: Stage,
    /// When the dial started (for the timeout).
    deadline: Option<Instant>,
}

/// The AutoNAT v2 server plugin.
pub struct AutonatServer {
    config: ServerConfig,
    requests: HashMap<StreamRef, Request>,
    /// Dial-back connections, to their request.
    dialing: HashMap<ConnId, StreamRef>,
    /// Dial-back streams, to their request, with what they read.
    dial_backs: HashMap<StreamRef, (StreamRef, FrameReader)>,
    /// Each client's recent request times (at most a minute old).
    recent: HashMap<PeerId, VecDeque<Instant>>,
    timer_armed: bool,
}

/// Timer token of the periodic timeout check.
const TIMEOUT_CHECK: u64 = 1;

impl AutonatServer {
    /// A server with `config`.
    pub fn new(config: ServerConfig) -> Self {
        Self {
            config,
            requests: HashMap::new(),
            dialing: HashMap::new(),
            dial_backs: HashMap::new(),
            recent: HashMap::new(),
            timer_armed: false,
        }
    }

    /// Whether `client` may make one more request now (and count it).
    fn admit(&mut self, client: PeerId, now: Instant) -> bool {
        if self.requests.len() >= self.config.max_concurrent {
            return false;
        }
        let minute = Duration::from_secs(60);
        // Forget clients whose requests all aged out, so the table stays
        // as small as the last minute's clients.
        self.recent.retain(|_, times| {
            while times
                .front()
                .is_some_and(|t| now.duration_since(*t) >= minute)
            {
                times.pop_front();
            }
            !times.is_empty()
        });
        let times = self.recent.entry(client).or_default();
        if times.len() >= self.config.max_per_client_per_minute {
            return false;
        }
        times.push_back(now);
        true
    }

    /// Answer `sref` and forget it; closes its dial-back connection.
    fn respond(
        &mut self,
        ctx: &mut Context<'_>,
        sref: StreamRef,
        status: ResponseStatus,
        idx: u32,
        dial_status: DialStatus,
    ) {
        let Some(req) = self.requests.remove(&sref) else {
            return;
        };
        let response = proto::Message {
            msg: Some(Msg::DialResponse(proto::DialResponse {
                status: status as i32,
                addr_idx: idx,
                dial_status: dial_status as i32,
            })),
        };
        let _ = ctx.send(sref, encode(&response));
        let _ = ctx.finish(sref);
        let event = match req.stage {
            Stage::Dialing { addr, conn, .. } => {
                if let Some(conn) = conn {
                    self.dialing.remove(&conn);
                    self.dial_backs.retain(|_, (r, _)| *r != sref);
                    let _ = ctx.close_connection(conn, 0);
                }
                ServerEvent::Tested {
                    client: req.client,
                    addr,
                    status: dial_status,
                    paid: req.paid,
                }
            }
            _ => ServerEvent::Refused {
                client: req.client,
                status,
            },
        };
        debug!(?event, "autonat request served");
        ctx.emit(event);
    }

    /// A request stream broke: forget it (and its dial-back connection).
    fn abandon(&mut self, ctx: &mut Context<'_>, sref: StreamRef) {
        let Some(req) = self.requests.remove(&sref) else {
            return;
        };
        if let Stage::Dialing {
            conn: Some(conn), ..
        } = req.stage
        {
            self.dialing.remove(&conn);
            self.dial_backs.retain(|_, (r, _)| *r != sref);
            let _ = ctx.close_connection(conn, 0);
        }
        ctx.emit(ServerEvent::Abandoned { client: req.client });
    }

    /// Read what arrived on a request stream and act on it.
    fn on_request_data(&mut self, ctx: &mut Context<'_>, sref: StreamRef, data: &[u8]) {
        let Some(req) = self.requests.get_mut(&sref) else {
            return;
        };
        req.reader.push(data);
        loop {
            let Some(req) = self.requests.get_mut(&sref) else {
                return;
            };
            let message = match req.reader.next_message::<proto::Message>() {
                Ok(Some(m)) => m,
                Ok(None) => return,
                Err(e) => {
                    debug!(stream = %sref, error = %e, "bad autonat request");
                    let _ = ctx.abort(sref, 0);
                    self.abandon(ctx, sref);
                    return;
                }
            };
            match (&mut req.stage, message.msg) {
                (Stage::Reading, Some(Msg::DialRequest(r))) => {
                    req.nonce = r.nonce;
                    self.on_dial_request(ctx, sref, r.addrs);
                }
                (Stage::Paying { left, .. }, Some(Msg::DialDataResponse(d))) => {
                    *left = left.saturating_sub(d.data.len() as u64);
                    if *left == 0 {
                        req.paid = true;
                        self.start_dial(ctx, sref);
                    }
                }
                _ => {
                    debug!(stream = %sref, "unexpected autonat message");
                    let _ = ctx.abort(sref, 0);
                    self.abandon(ctx, sref);
                    return;
                }
            }
        }
    }

    /// Pick the address to dial: the first we would dial at all. Ask for
    /// dial data if its IP is not the client's.
    fn on_dial_request(&mut self, ctx: &mut Context<'_>, sref: StreamRef, addrs: Vec<Vec<u8>>) {
        let chosen = addrs.into_iter().enumerate().find_map(|(i, bytes)| {
            let addr = Multiaddr::try_from(bytes).ok()?;
            testable(&addr, &self.config.allowed_networks).then_some((i as u32, addr))
        });
        let Some((idx, addr)) = chosen else {
            self.respond(
                ctx,
                sref,
                ResponseStatus::EDialRefused,
                0,
                DialStatus::Unused,
            );
            return;
        };
        let observed = ctx
            .connection_remote_addr(sref.conn)
            .and_then(|a| ip_of(&a));
        let Some(req) = self.requests.get_mut(&sref) else {
            return;
        };
        if observed.is_some() && observed == ip_of(&addr) {
            req.stage = Stage::Paying { addr, idx, left: 0 };
            self.start_dial(ctx, sref);
            return;
        }
        let ask = proto::Message {
            msg: Some(Msg::DialDataRequest(proto::DialDataRequest {
                addr_idx: idx,
                num_bytes: self.config.dial_data_bytes,
            })),
        };
        req.stage = Stage::Paying {
            addr,
            idx,
            left: self.config.dial_data_bytes,
        };
        let _ = ctx.send(sref, encode(&ask));
    }

    /// Dial the chosen address back.
    fn start_dial(&mut self, ctx: &mut Context<'_>, sref: StreamRef) {
        let Some(req) = self.requests.get_mut(&sref) else {
            return;
        };
        let Stage::Paying { addr, idx, .. } = &req.stage else {
            return;
        };
        let (addr, idx) = (addr.clone(), *idx);
        match ctx.dial_back(&addr) {
            Ok(conn) => {
                req.stage = Stage::Dialing {
                    addr,
                    idx,
                    conn: Some(conn),
                };
                req.deadline = Some(ctx.now() + self.config.dial_back_timeout);
                self.dialing.insert(conn, sref);
                if !self.timer_armed {
                    self.timer_armed = true;
                    ctx.set_timer(Duration::from_secs(1), TIMEOUT_CHECK);
                }
            }
            Err(e) => {
                debug!(%addr, error = %e, "autonat dial-back did not start");
                // Report it as a failed dial of that address.
                req.stage = Stage::Dialing {
                    addr,
                    idx,
                    conn: None,
                };
                self.report_dial(ctx, sref, DialStatus::EDialError);
            }
        }
    }

    /// Answer a request whose dial ran: OK, with the dial's outcome.
    fn report_dial(&mut self, ctx: &mut Context<'_>, sref: StreamRef, status: DialStatus) {
        let idx = match self.requests.get(&sref).map(|r| &r.stage) {
            Some(Stage::Dialing { idx, .. }) => *idx,
            _ => 0,
        };
        self.respond(ctx, sref, ResponseStatus::Ok, idx, status);
    }
}

impl Protocol for AutonatServer {
    fn name(&self) -> &'static str {
        "autonat-v2-server"
    }

    fn protocol_ids(&self) -> Vec<String> {
        vec![DIAL_REQUEST.to_string()]
    }

    fn accept_inbound_stream(&mut self, ctx: &mut Context<'_>, stream: StreamRef, _p: &str) {
        let Some(client) = ctx.connection_peer(stream.conn) else {
            let _ = ctx.abort(stream, 0);
            return;
        };
        let admitted = self.admit(client, ctx.now());
        self.requests.insert(
            stream,
            Request {
                client,
                nonce: 0,
                paid: false,
                reader: FrameReader::new(MAX_MESSAGE),
                stage: Stage::Reading,
                deadline: None,
            },
        );
        if !admitted {
            self.respond(
                ctx,
                stream,
                ResponseStatus::ERequestRejected,
                0,
                DialStatus::Unused,
            );
        }
    }

    fn handle_new_connection(&mut self, ctx: &mut Context<'_>, conn: ConnId, _peer: PeerId) {
        if self.dialing.contains_key(&conn)
            && let Err(e) = ctx.open_stream(conn, DIAL_BACK)
        {
            debug!(%conn, error = %e, "cannot open the dial-back stream");
            if let Some(sref) = self.dialing.get(&conn).copied() {
                self.report_dial(ctx, sref, DialStatus::EDialBackError);
            }
        }
    }

    fn handle_dial_failure(&mut self, ctx: &mut Context<'_>, conn: ConnId, error: &DialError) {
        if let Some(sref) = self.dialing.get(&conn).copied() {
            debug!(%conn, %error, "autonat dial-back failed");
            self.report_dial(ctx, sref, DialStatus::EDialError);
        }
    }

    fn handle_stream_negotiated(&mut self, ctx: &mut Context<'_>, stream: StreamRef, _p: &str) {
        let Some(sref) = self.dialing.get(&stream.conn).copied() else {
            let _ = ctx.abort(stream, 0);
            return;
        };
        let Some(req) = self.requests.get(&sref) else {
            return;
        };
        let back = proto::DialBack { nonce: req.nonce };
        let _ = ctx.send(stream, encode(&back));
        let _ = ctx.finish(stream);
        self.dial_backs
            .insert(stream, (sref, FrameReader::new(MAX_MESSAGE)));
    }

    fn handle_stream_data(&mut self, ctx: &mut Context<'_>, stream: StreamRef, data: Bytes) {
        if self.requests.contains_key(&stream) {
            self.on_request_data(ctx, stream, &data);
            return;
        }
        let Some((sref, reader)) = self.dial_backs.get_mut(&stream) else {
            return;
        };
        let sref = *sref;
        reader.push(&data);
        let status = match reader.next_message::<proto::DialBackResponse>() {
            Ok(None) => return,
            Ok(Some(r)) if r.status == 0 => DialStatus::Ok,
            _ => DialStatus::EDialBackError,
        };
        self.dial_backs.remove(&stream);
        self.report_dial(ctx, sref, status);
    }

    fn handle_stream_finished(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        // A client that ends its request before the answer gets none.
        if self.requests.contains_key(&stream) {
            self.abandon(ctx, stream);
        }
    }

    fn handle_stream_closed(&mut self, ctx: &mut Context<'_>, stream: StreamRef, _e: &StreamError) {
        if self.requests.contains_key(&stream) {
            self.abandon(ctx, stream);
        } else if let Some((sref, _)) = self.dial_backs.remove(&stream) {
            self.report_dial(ctx, sref, DialStatus::EDialBackError);
        }
    }

    fn handle_timer(&mut self, ctx: &mut Context<'_>, _token: u64) {
        let now = ctx.now();
        let late: Vec<StreamRef> = self
            .requests
            .iter()
            .filter(|(_, r)| r.deadline.is_some_and(|d| now >= d))
            .map(|(s, _)| *s)
            .collect();
        for sref in late {
            self.report_dial(ctx, sref, DialStatus::EDialError);
        }
        if self.dialing.is_empty() {
            self.timer_armed = false;
        } else {
            ctx.set_timer(Duration::from_secs(1), TIMEOUT_CHECK);
        }
    }
}
