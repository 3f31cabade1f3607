//! The identify plugin: per-connection requests, answers, pushes, and
//! the bookkeeping of their streams and timers.

use std::collections::HashMap;

use bytes::Bytes;
use swarm::multiaddr::Protocol as AddrPart;
use swarm::{
    ConnId, Context, Multiaddr, PeerId, Protocol, ProtocolEvent, StreamError, StreamRef, TimerId,
};
use tracing::{debug, info, warn};

use super::codec::{self, MessageReader};
use super::info::Update;
use super::proto;
use super::{
    IdentifyConfig, IdentifyError, IdentifyEvent, IdentifyInfo, IdentifyPush, PROTOCOL,
    PUSH_PROTOCOL,
};

/// rust-libp2p refuses identify messages over this size; ours should fit.
const RUST_LIBP2P_MAX_MESSAGE_SIZE: usize = 4096;
/// Error code for streams we abort (limit, garbage, timeout).
const RESET_CODE: u64 = 0;

/// The identify and identify-push plugin.
pub struct Identify {
    config: IdentifyConfig,
    /// Established connections and what we know about their peer.
    conns: HashMap<ConnId, Remote>,
    /// Exchanges in progress, one per stream.
    exchanges: HashMap<StreamRef, Exchange>,
    /// Timer token -> the stream whose exchange it bounds.
    timers: HashMap<u64, StreamRef>,
    next_token: u64,
    /// The protocols we last announced, to push when they change.
    announced_protocols: Vec<String>,
}

/// A connected peer.
struct Remote {
    peer: PeerId,
    /// The last information received on this connection (pushes merge
    /// into it).
    info: Option<IdentifyInfo>,
}

/// One identify stream.
struct Exchange {
    peer: PeerId,
    kind: Kind,
    timer: TimerId,
    token: u64,
}

/// What an exchange does on its stream.
enum Kind {
    /// We asked (stream we opened): read the answer.
    Request(MessageReader),
    /// The remote pushes (stream it opened): read it.
    PushIn(MessageReader),
    /// We answer or push: send our information, then finish.
    Send {
        push: bool,
        /// Our information and FIN are handed to the swarm (`Context::send`
        /// and `finish`); pushes wait for negotiation first.
        sent: bool,
        remote_finished: bool,
    },
}

impl Identify {
    /// A plugin with this configuration.
    pub fn new(config: IdentifyConfig) -> Self {
        Self {
            config,
            conns: HashMap::new(),
            exchanges: HashMap::new(),
            timers: HashMap::new(),
            next_token: 0,
            announced_protocols: Vec::new(),
        }
    }

    /// Our information as seen from `conn`.
    fn local_info(&mut self, ctx: &Context<'_>, conn: ConnId) -> IdentifyInfo {
        let mut listen_addrs: Vec<Multiaddr> = ctx
            .listen_addrs()
            .into_iter()
            .filter(|a| !is_unspecified(a))
            .collect();
        // Configured external addresses, then those the swarm confirmed
        // (AutoNAT).
        for addr in self
            .config
            .external_addrs
            .iter()
            .cloned()
            .chain(ctx.external_addresses())
        {
            if !listen_addrs.contains(&addr) {
                listen_addrs.push(addr);
            }
        }
        let protocols = ctx.supported_protocols();
        self.announced_protocols = protocols.clone();
        IdentifyInfo {
            public_key: self.config.public_key.clone(),
            protocol_version: self.config.protocol_version.clone(),
            agent_version: self.config.agent_version.clone(),
            listen_addrs,
            protocols,
            observed_addr: ctx.connection_remote_addr(conn),
        }
    }

    /// Our information as seen from `conn`, framed for the wire.
    fn encoded_local_info(&mut self, ctx: &Context<'_>, conn: ConnId) -> Bytes {
        let data = codec::encode(&self.local_info(ctx, conn).to_proto());
        if data.len() > RUST_LIBP2P_MAX_MESSAGE_SIZE {
            warn!(
                size = data.len(),
                "our identify message is larger than rust-libp2p accepts"
            );
        }
        data
    }

    /// Track a new exchange on `stream`, bounded by the timeout.
    fn track(&mut self, ctx: &mut Context<'_>, stream: StreamRef, peer: PeerId, kind: Kind) {
        let token = self.next_token;
        self.next_token += 1;
        let timer = ctx.set_timer(self.config.timeout, token);
        self.timers.insert(token, stream);
        self.exchanges.insert(
            stream,
            Exchange {
                peer,
                kind,
                timer,
                token,
            },
        );
    }

    /// Stop tracking an exchange and cancel its timer.
    fn untrack(&mut self, ctx: &mut Context<'_>, stream: StreamRef) -> Option<Exchange> {
        let exchange = self.exchanges.remove(&stream)?;
        ctx.cancel_timer(exchange.timer);
        self.timers.remove(&exchange.token);
        Some(exchange)
    }

    /// A reading exchange with a reader bounded by the configured limits.
    fn reader(&self, kind: impl FnOnce(MessageReader) -> Kind) -> Kind {
        kind(MessageReader::new(
            self.config.max_message_size,
            self.config.max_messages,
        ))
    }

    /// Abort an exchange: reset the stream both ways and report why.
    fn fail(&mut self, ctx: &mut Context<'_>, stream: StreamRef, error: IdentifyError) {
        let Some(exchange) = self.untrack(ctx, stream) else {
            return;
        };
        // The stream may already be over (that may be why we fail).
        let _ = ctx.abort(stream, RESET_CODE);
        warn!(peer = %exchange.peer, %stream, %error, "identify exchange failed");
        ctx.emit(IdentifyEvent::Error {
            peer: exchange.peer,
            conn: stream.conn,
            error,
        });
    }

    /// Ask a new connection's peer who it is.
    fn request(&mut self, ctx: &mut Context<'_>, conn: ConnId, peer: PeerId) {
        match ctx.open_stream(conn, PROTOCOL) {
            Ok(stream) => {
                let kind = self.reader(Kind::Request);
                self.track(ctx, stream, peer, kind);
            }
            Err(e) => {
                warn!(%peer, %conn, error = %e, "cannot open identify stream");
                ctx.emit(IdentifyEvent::Error {
                    peer,
                    conn,
                    error: e.into(),
                });
            }
        }
    }

    /// Push our information on every connection except `except`.
    fn push_all(&mut self, ctx: &mut Context<'_>, except: Option<ConnId>) {
        let mut targets: Vec<(ConnId, PeerId)> = self
            .conns
            .iter()
            .filter(|(conn, _)| Some(**conn) != except)
            .map(|(conn, remote)| (*conn, remote.peer))
            .collect();
        targets.sort();
        for (conn, peer) in targets {
            match ctx.open_stream(conn, PUSH_PROTOCOL) {
                Ok(stream) => {
                    // The message is built once negotiation is done.
                    let kind = Kind::Send {
                        push: true,
                        sent: false,
                        remote_finished: false,
                    };
                    self.track(ctx, stream, peer, kind);
                }
                Err(e) => debug!(%peer, %conn, error = %e, "cannot open identify push stream"),
            }
        }
    }

    /// Push if the set of protocols changed since we last announced it.
    fn push_if_protocols_changed(&mut self, ctx: &mut Context<'_>, except: Option<ConnId>) {
        if ctx.supported_protocols() != self.announced_protocols {
            debug!("our protocols changed; pushing identify");
            self.announced_protocols = ctx.supported_protocols();
            self.push_all(ctx, except);
        }
    }

    /// Send our information on a `Send` exchange and finish after it. The
    /// swarm queues what the window does not take and sends the FIN once
    /// the queue is out; the message is a few KiB, so the queue is bounded.
    fn send_info(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        let data = self.encoded_local_info(ctx, stream.conn);
        let Some(exchange) = self.exchanges.get_mut(&stream) else {
            return;
        };
        let peer = exchange.peer;
        let Kind::Send {
            push,
            sent,
            remote_finished,
        } = &mut exchange.kind
        else {
            return;
        };
        let (push, done) = (*push, *remote_finished);
        if let Err(e) = ctx.send(stream, data).and_then(|_| ctx.finish(stream)) {
            return self.fail(ctx, stream, e.into());
        }
        *sent = true;
        let conn = stream.conn;
        ctx.emit(if push {
            IdentifyEvent::Pushed { peer, conn }
        } else {
            IdentifyEvent::Sent { peer, conn }
        });
        if done {
            self.untrack(ctx, stream);
        }
    }

    /// A whole message arrived on a reading exchange.
    fn on_message(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        peer: PeerId,
        message: proto::Identify,
        pushed: bool,
    ) -> Result<(), IdentifyError> {
        let update = Update::from_proto(message, peer)?;
        let known = self.conns.get(&conn).and_then(|r| r.info.clone());
        let info = match known {
            Some(mut info) if pushed => {
                info.merge(update);
                info
            }
            _ => match update.into_info() {
                Ok(info) => info,
                Err(_) if pushed => {
                    // As rust-libp2p: a partial push before any answer has
                    // nothing to merge into and no key to check.
                    debug!(%peer, "ignoring a keyless identify push before the answer");
                    return Ok(());
                }
                Err(e) => return Err(e),
            },
        };
        self.record(ctx, peer, conn, &info);
        if let Some(remote) = self.conns.get_mut(&conn) {
            remote.info = Some(info.clone());
        }
        info!(%peer, agent = %info.agent_version, pushed, "identified peer");
        ctx.emit(IdentifyEvent::Received {
            peer,
            conn,
            info,
            pushed,
        });
        Ok(())
    }

    /// Fill the peer store with what we learned on `conn`.
    fn record(&self, ctx: &mut Context<'_>, peer: PeerId, conn: ConnId, info: &IdentifyInfo) {
        let now = ctx.now();
        // Only an observation of our listen port says how others reach us
        // (AutoNAT and DCUtR read it); one of a dial-back's port does not.
        let of_listener = ctx.connection_uses_listen_port(conn) == Some(true);
        let ttl = self.config.listen_addr_ttl;
        let store = ctx.peer_store_mut();
        store.set_public_key(peer, info.public_key.clone());
        store.set_protocols(peer, info.protocols.clone());
        for addr in &info.listen_addrs {
            store.add_address(peer, addr.clone(), ttl, now);
        }
        store.set_agent_version(peer, info.agent_version.clone());
        store.set_protocol_version(peer, info.protocol_version.clone());
        if let Some(observed) = info.observed_addr.as_ref().filter(|_| of_listener) {
            store.set_observed_addr(peer, observed.clone());
        }
    }
}

impl Protocol for Identify {
    fn name(&self) -> &'static str {
        "identify"
    }

    fn protocol_ids(&self) -> Vec<String> {
        vec![PROTOCOL.into(), PUSH_PROTOCOL.into()]
    }

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        if self.config.public_key.to_peer_id() != ctx.local_peer_id() {
            // Peers will reject every answer we send; say so loudly.
            warn!(
                configured = %self.config.public_key.to_peer_id(),
                local = %ctx.local_peer_id(),
                "identify is configured with another host's public key"
            );
        }
        self.announced_protocols = ctx.supported_protocols();
    }

    fn handle_new_listen_addr(&mut self, ctx: &mut Context<'_>, addr: &Multiaddr) {
        if self.config.push_listen_addr_updates && !self.conns.is_empty() {
            debug!(%addr, "new listen address; pushing identify");
            self.push_all(ctx, None);
        }
    }

    fn handle_local_protocols_changed(&mut self, ctx: &mut Context<'_>) {
        self.push_if_protocols_changed(ctx, None);
    }

    fn handle_new_connection(&mut self, ctx: &mut Context<'_>, conn: ConnId, peer: PeerId) {
        // The new connection hears our current protocols in its answer.
        self.push_if_protocols_changed(ctx, Some(conn));
        self.conns.insert(conn, Remote { peer, info: None });
        self.request(ctx, conn, peer);
    }

    fn handle_closed_connection(&mut self, _ctx: &mut Context<'_>, conn: ConnId, _peer: PeerId) {
        // Its streams were closed (and untracked) just before.
        self.conns.remove(&conn);
        // A burst of connections must not leave its peak's table behind
        // (a node that met thousands of peers once keeps a few).
        if self.conns.capacity() > 64 && self.conns.len() < self.conns.capacity() / 4 {
            self.conns.shrink_to(self.conns.len() * 2);
        }
    }

    fn accept_inbound_stream(&mut self, ctx: &mut Context<'_>, stream: StreamRef, protocol: &str) {
        let Some(peer) = ctx.connection_peer(stream.conn) else {
            return;
        };
        if protocol == PUSH_PROTOCOL {
            // We send nothing back; ending our side now lets the stream go
            // once the push is read.
            if let Err(e) = ctx.finish(stream) {
                debug!(%peer, %stream, error = %e, "cannot finish identify push stream");
            }
            let kind = self.reader(Kind::PushIn);
            self.track(ctx, stream, peer, kind);
            return;
        }
        let kind = Kind::Send {
            push: false,
            sent: false,
            remote_finished: false,
        };
        self.track(ctx, stream, peer, kind);
        self.send_info(ctx, stream);
    }

    fn handle_stream_negotiated(&mut self, ctx: &mut Context<'_>, stream: StreamRef, _: &str) {
        match self.exchanges.get(&stream).map(|e| &e.kind) {
            // We send nothing with a request: end our side so the answerer
            // sees a clean EOF.
            Some(Kind::Request(_)) => {
                // This fails when the answerer was quick: its answer, FIN and
                // STOP_SENDING may have come with the negotiation and the
                // stream is already gone. The answer is still delivered.
                if let Err(e) = ctx.finish(stream) {
                    debug!(%stream, error = %e, "cannot finish identify request");
                }
            }
            // A push: the message is built now, with what is current.
            Some(Kind::Send { .. }) => self.send_info(ctx, stream),
            Some(Kind::PushIn(_)) | None => {}
        }
    }

    fn handle_stream_data(&mut self, ctx: &mut Context<'_>, stream: StreamRef, data: Bytes) {
        let Some(exchange) = self.exchanges.get_mut(&stream) else {
            return;
        };
        let result = match &mut exchange.kind {
            Kind::Request(reader) | Kind::PushIn(reader) => reader.push(&data),
            // Nothing is expected from an asker or a push receiver; ignore it.
            Kind::Send { .. } => Ok(()),
        };
        if let Err(e) = result {
            self.fail(ctx, stream, e);
        }
    }

    fn handle_stream_finished(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        if let Some(Exchange {
            kind:
                Kind::Send {
                    sent,
                    remote_finished,
                    ..
                },
            ..
        }) = self.exchanges.get_mut(&stream)
        {
            // Done once our side is finished too.
            *remote_finished = true;
            if *sent {
                self.untrack(ctx, stream);
            }
            return;
        }
        let Some(exchange) = self.untrack(ctx, stream) else {
            return;
        };
        let (reader, pushed) = match exchange.kind {
            Kind::Request(reader) => (reader, false),
            Kind::PushIn(reader) => (reader, true),
            Kind::Send { .. } => return,
        };
        let peer = exchange.peer;
        let result = reader
            .finish()
            .and_then(|message| self.on_message(ctx, stream.conn, peer, message, pushed));
        if let Err(error) = result {
            // The stream is over on the remote's side; make sure ours is too.
            let _ = ctx.abort(stream, RESET_CODE);
            warn!(%peer, %stream, %error, "identify exchange failed");
            ctx.emit(IdentifyEvent::Error {
                peer,
                conn: stream.conn,
                error,
            });
        }
    }

    /// The remote stopped our send side. On a reading exchange that side
    /// was already finished (rust-libp2p stops it when it drops a stream it
    /// has answered on) and the message may still be arriving: keep
    /// reading. On a sending exchange nothing more is expected from the
    /// remote: we are done with the stream.
    fn handle_stream_stopped(&mut self, ctx: &mut Context<'_>, stream: StreamRef, code: u64) {
        let Some(exchange) = self.exchanges.get(&stream) else {
            return;
        };
        let Kind::Send { sent, .. } = exchange.kind else {
            debug!(%stream, code, "identify stream stopped; still reading");
            return;
        };
        if !sent {
            // A push stopped before it went out.
            return self.fail(ctx, stream, StreamError::Stopped(code).into());
        }
        // What was still queued of our message is lost; the remote chose
        // not to read it, which is not our failure.
        let peer = self.untrack(ctx, stream).map(|e| e.peer);
        debug!(?peer, %stream, code, "identify stream stopped after sending");
        let _ = ctx.abort(stream, RESET_CODE);
    }

    fn handle_stream_closed(
        &mut self,
        ctx: &mut Context<'_>,
        stream: StreamRef,
        reason: &StreamError,
    ) {
        let Some(exchange) = self.untrack(ctx, stream) else {
            return;
        };
        let peer = exchange.peer;
        match (&exchange.kind, reason) {
            // A closing connection ends its exchanges; nothing to report.
            (_, StreamError::ConnectionClosed(_)) => {
                debug!(%peer, %stream, "identify stream ended with its connection");
            }
            // Our data and FIN were handed over; the remote just left.
            (Kind::Send { sent: true, .. }, _) => {
                debug!(%peer, %stream, %reason, "identify stream closed after sending");
            }
            _ => {
                warn!(%peer, %stream, %reason, "identify stream failed");
                ctx.emit(IdentifyEvent::Error {
                    peer,
                    conn: stream.conn,
                    error: reason.clone().into(),
                });
            }
        }
    }

    fn handle_timer(&mut self, ctx: &mut Context<'_>, token: u64) {
        let Some(&stream) = self.timers.get(&token) else {
            return;
        };
        let sent = matches!(
            self.exchanges.get(&stream).map(|e| &e.kind),
            Some(Kind::Send { sent: true, .. })
        );
        if sent {
            // Everything was sent; the remote never ended its side. Only
            // stop reading: a reset could discard our unacknowledged answer.
            self.untrack(ctx, stream);
            let _ = ctx.stop_sending(stream, RESET_CODE);
            return;
        }
        let timeout = self.config.timeout;
        self.fail(ctx, stream, IdentifyError::Timeout(timeout));
    }

    fn handle_protocol_event(&mut self, ctx: &mut Context<'_>, event: &ProtocolEvent) {
        if event.downcast_ref::<IdentifyPush>().is_some() {
            debug!(source = event.source, "identify push requested");
            self.push_all(ctx, None);
        }
    }
}

/// Whether an address is on `0.0.0.0` or `::`, which no peer can dial.
fn is_unspecified(addr: &Multiaddr) -> bool {
    addr.iter().any(|part| match part {
        AddrPart::Ip4(ip) => ip.is_unspecified(),
        AddrPart::Ip6(ip) => ip.is_unspecified(),
        _ => false,
    })
}
