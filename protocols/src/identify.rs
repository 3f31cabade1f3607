//! identify (`/ipfs/id/1.0.0`) and identify push (`/ipfs/id/push/1.0.0`).
//!
//! On every new connection both sides ask the other who it is: the asker
//! opens an `/ipfs/id/1.0.0` stream and finishes its side at once; the
//! answerer writes one message with all six fields (public key, listen
//! addresses, protocols, the address it sees for the asker, protocol and
//! agent version) and finishes. The asker reads until EOF, merging every
//! message (go-libp2p splits large answers), checks that the public key
//! belongs to the connection's PeerId, records what it learned in the peer
//! store and emits [`IdentifyEvent::Received`].
//!
//! When our listen addresses or protocols change (or on an [`IdentifyPush`]
//! event), we open `/ipfs/id/push/1.0.0` to every connection and send the
//! same message; pushes we receive are merged into what we knew.
//!
//! Every exchange is bounded: a message size limit, a message count limit
//! and a timeout. A stream that breaks one is reset and an
//! [`IdentifyEvent::Error`] is emitted; the connection stays up.
//!
//! ```no_run
//! use protocols::identify::{Identify, IdentifyConfig};
//! # let keypair = swarm::Keypair::generate_ed25519();
//! # let mut runtime = swarm::Runtime::new(swarm::SwarmConfig::new(keypair.clone())).unwrap();
//! let mut config = IdentifyConfig::new(keypair.public());
//! config.agent_version = "my-app/1.0".into();
//! runtime.add_protocol(Box::new(Identify::new(config)));
//! ```

mod codec;
mod info;
mod proto;

use std::collections::HashMap;
use std::time::Duration;

use bytes::Bytes;
use swarm::multiaddr::Protocol as AddrPart;
use swarm::{
    ConnId, Context, Multiaddr, OpenStreamError, PeerId, Protocol, ProtocolEvent, PublicKey,
    StreamError, StreamRef, TimerId,
};
use tracing::{debug, info, warn};

use codec::MessageReader;
pub use info::IdentifyInfo;
use info::Update;

/// The identify protocol id.
pub const PROTOCOL: &str = "/ipfs/id/1.0.0";
/// The identify push protocol id.
pub const PUSH_PROTOCOL: &str = "/ipfs/id/push/1.0.0";
/// The protocol version we announce unless configured otherwise.
pub const DEFAULT_PROTOCOL_VERSION: &str = "/ipfs/0.1.0";
/// The default limit on one message's size.
pub const DEFAULT_MAX_MESSAGE_SIZE: usize = 8 * 1024;

/// rust-libp2p refuses identify messages over this size; ours should fit.
const RUST_LIBP2P_MAX_MESSAGE_SIZE: usize = 4096;
/// Error code for streams we abort (limit, garbage, timeout).
const RESET_CODE: u64 = 0;

/// How the identify plugin behaves.
#[derive(Clone, Debug)]
pub struct IdentifyConfig {
    /// Our host public key (its PeerId must be the swarm's). The plugin API
    /// exposes only the PeerId, which does not always contain the key.
    pub public_key: PublicKey,
    /// The protocol version we announce. Default [`DEFAULT_PROTOCOL_VERSION`].
    pub protocol_version: String,
    /// The agent version we announce. Default `swarm-protocols/<version>`.
    pub agent_version: String,
    /// Largest message we accept, in bytes (not counting its length
    /// prefix). Default [`DEFAULT_MAX_MESSAGE_SIZE`] (8 KiB).
    pub max_message_size: usize,
    /// Most messages we merge from one stream. Default 10 (go-libp2p's).
    pub max_messages: usize,
    /// Longest an exchange (request, answer or push) may take. Default 30 s.
    pub timeout: Duration,
    /// How long listen addresses learned from a peer stay in the peer store.
    /// Default 1 h.
    pub listen_addr_ttl: Duration,
    /// Push to connected peers when we start listening on a new address.
    /// Default `true`.
    pub push_listen_addr_updates: bool,
    /// Addresses to announce besides our listen addresses (e.g. a public
    /// address in front of a NAT). Listen addresses on an unspecified IP
    /// (`0.0.0.0`, `::`) are not announced, since no peer can dial them.
    pub external_addrs: Vec<Multiaddr>,
}

impl IdentifyConfig {
    /// Defaults for a host with this public key.
    pub fn new(public_key: PublicKey) -> Self {
        Self {
            public_key,
            protocol_version: DEFAULT_PROTOCOL_VERSION.into(),
            agent_version: concat!("swarm-protocols/", env!("CARGO_PKG_VERSION")).into(),
            max_message_size: DEFAULT_MAX_MESSAGE_SIZE,
            max_messages: 10,
            timeout: Duration::from_secs(30),
            listen_addr_ttl: Duration::from_secs(3600),
            push_listen_addr_updates: true,
            external_addrs: Vec::new(),
        }
    }
}

/// What the identify plugin reports (see [`Context::emit`]; applications
/// get it as `SwarmEvent::Protocol` and downcast).
// Events are built once and moved behind the swarm's `Arc`; boxing the big
// variant would only cost an allocation.
#[allow(clippy::large_enum_variant)]
#[derive(Clone, Debug)]
pub enum IdentifyEvent {
    /// We learned (or, by a push, updated) a peer's information, and
    /// recorded it in the peer store.
    Received {
        /// The peer.
        peer: PeerId,
        /// The connection it came on.
        conn: ConnId,
        /// Everything we know, with a push merged into the earlier answer.
        info: IdentifyInfo,
        /// Whether it came by push rather than as an answer.
        pushed: bool,
    },
    /// We answered a peer's request.
    Sent {
        /// The peer.
        peer: PeerId,
        /// The connection.
        conn: ConnId,
    },
    /// We pushed our information to a peer.
    Pushed {
        /// The peer.
        peer: PeerId,
        /// The connection.
        conn: ConnId,
    },
    /// An exchange failed; its stream was reset, the connection is kept.
    Error {
        /// The peer.
        peer: PeerId,
        /// The connection.
        conn: ConnId,
        /// Why.
        error: IdentifyError,
    },
}

/// Ask the identify plugin to push our information to every connected
/// peer: send it with `SwarmHandle::send_event` or [`Context::emit`].
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct IdentifyPush;

/// Why an identify exchange failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum IdentifyError {
    /// A length prefix announced a message over the limit.
    #[error("identify message of {size} bytes exceeds the limit of {limit}")]
    MessageTooLarge {
        /// The announced size.
        size: usize,
        /// The configured limit.
        limit: usize,
    },
    /// The stream carried more messages than the limit.
    #[error("more than {0} identify messages on one stream")]
    TooManyMessages(usize),
    /// A length prefix was not a valid uvarint.
    #[error("malformed length prefix")]
    InvalidLengthPrefix,
    /// A message was not valid protobuf for the identify schema.
    #[error("undecodable identify message: {0}")]
    Decode(#[from] prost::DecodeError),
    /// The stream ended in the middle of a message.
    #[error("stream ended inside a message")]
    Truncated,
    /// The stream ended before any message.
    #[error("stream ended without a message")]
    Empty,
    /// An answer did not carry the public key.
    #[error("the message has no public key")]
    MissingPublicKey,
    /// The public key could not be decoded.
    #[error("invalid public key: {0}")]
    InvalidPublicKey(String),
    /// The public key belongs to another peer than the connection's (the
    /// event's `peer`).
    #[error("the public key belongs to {actual}, not to the connection's peer")]
    WrongPeerId {
        /// The PeerId of the key in the message.
        actual: PeerId,
    },
    /// The exchange did not finish within the timeout.
    #[error("identify exchange timed out after {0:?}")]
    Timeout(Duration),
    /// The stream could not be opened.
    #[error("cannot open stream: {0}")]
    OpenStream(#[from] OpenStreamError),
    /// The stream failed (reset, stopped, protocol refused).
    #[error("stream failed: {0}")]
    Stream(#[from] StreamError),
}

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

enum Kind {
    /// We asked (stream we opened): read the answer.
    Request(MessageReader),
    /// The remote pushes (stream it opened): read it.
    PushIn(MessageReader),
    /// We answer or push: write `data`, then finish.
    Send {
        data: Bytes,
        push: bool,
        finished: bool,
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
        for addr in &self.config.external_addrs {
            if !listen_addrs.contains(addr) {
                listen_addrs.push(addr.clone());
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
        // Either may fail if that side is already over; both are harmless.
        let _ = ctx.reset(stream, RESET_CODE);
        let _ = ctx.stop_sending(stream, RESET_CODE);
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
                        data: Bytes::new(),
                        push: true,
                        finished: false,
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

    /// Write what is left of a `Send` exchange, then finish.
    fn write_pending(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        let Some(exchange) = self.exchanges.get_mut(&stream) else {
            return;
        };
        let peer = exchange.peer;
        let Kind::Send {
            data,
            push,
            finished,
            remote_finished,
        } = &mut exchange.kind
        else {
            return;
        };
        if *finished {
            return;
        }
        let result = ctx.write_bytes(stream, data).and_then(|_| {
            if data.is_empty() {
                ctx.finish(stream).map(|()| true)
            } else {
                // The rest goes out on `handle_stream_writable`.
                Ok(false)
            }
        });
        match result {
            Ok(false) => {}
            Ok(true) => {
                *finished = true;
                let (push, done) = (*push, *remote_finished);
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
            Err(e) => self.fail(ctx, stream, e.into()),
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
        self.record(ctx, peer, &info);
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

    /// Fill the peer store with what we learned.
    fn record(&self, ctx: &mut Context<'_>, peer: PeerId, info: &IdentifyInfo) {
        let now = ctx.now();
        let ttl = self.config.listen_addr_ttl;
        let store = ctx.peer_store_mut();
        store.set_public_key(peer, info.public_key.clone());
        store.set_protocols(peer, info.protocols.clone());
        for addr in &info.listen_addrs {
            store.add_address(peer, addr.clone(), ttl, now);
        }
        store.set_agent_version(peer, info.agent_version.clone());
        store.set_protocol_version(peer, info.protocol_version.clone());
        if let Some(observed) = &info.observed_addr {
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

    fn handle_new_connection(&mut self, ctx: &mut Context<'_>, conn: ConnId, peer: PeerId) {
        // The new connection hears our current protocols in its answer.
        self.push_if_protocols_changed(ctx, Some(conn));
        self.conns.insert(conn, Remote { peer, info: None });
        self.request(ctx, conn, peer);
    }

    fn handle_closed_connection(&mut self, _ctx: &mut Context<'_>, conn: ConnId, _peer: PeerId) {
        // Its streams were closed (and untracked) just before.
        self.conns.remove(&conn);
    }

    fn accept_inbound_stream(&mut self, ctx: &mut Context<'_>, stream: StreamRef, protocol: &str) {
        let Some(peer) = ctx.connection_peer(stream.conn) else {
            return;
        };
        if protocol == PUSH_PROTOCOL {
            let kind = self.reader(Kind::PushIn);
            self.track(ctx, stream, peer, kind);
            return;
        }
        let data = self.encoded_local_info(ctx, stream.conn);
        let kind = Kind::Send {
            data,
            push: false,
            finished: false,
            remote_finished: false,
        };
        self.track(ctx, stream, peer, kind);
        self.write_pending(ctx, stream);
    }

    fn handle_stream_negotiated(&mut self, ctx: &mut Context<'_>, stream: StreamRef, _: &str) {
        let conn = stream.conn;
        match self.exchanges.get(&stream).map(|e| &e.kind) {
            // We send nothing with a request: end our side so the answerer
            // sees a clean EOF.
            Some(Kind::Request(_)) => {
                if let Err(e) = ctx.finish(stream) {
                    self.fail(ctx, stream, e.into());
                }
            }
            Some(Kind::Send { .. }) => {
                let encoded = self.encoded_local_info(ctx, conn);
                if let Some(Exchange {
                    kind: Kind::Send { data, .. },
                    ..
                }) = self.exchanges.get_mut(&stream)
                {
                    *data = encoded;
                }
                self.write_pending(ctx, stream);
            }
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

    fn handle_stream_writable(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        self.write_pending(ctx, stream);
    }

    fn handle_stream_finished(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        if let Some(Exchange {
            kind:
                Kind::Send {
                    finished,
                    remote_finished,
                    ..
                },
            ..
        }) = self.exchanges.get_mut(&stream)
        {
            // Done once our side is finished too.
            *remote_finished = true;
            if *finished {
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
            let _ = ctx.reset(stream, RESET_CODE);
            warn!(%peer, %stream, %error, "identify exchange failed");
            ctx.emit(IdentifyEvent::Error {
                peer,
                conn: stream.conn,
                error,
            });
        }
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
            // Our data and FIN went out; the remote just stopped listening.
            (Kind::Send { finished: true, .. }, _) => {
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
        let finished = matches!(
            self.exchanges.get(&stream).map(|e| &e.kind),
            Some(Kind::Send { finished: true, .. })
        );
        if finished {
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
