//! The gossipsub plugin: one outbound stream per peer (protocols tried
//! newest first), inbound streams read until EOF, the heartbeat timer,
//! commands, and the hand-off of each peer's queue to its stream.
//!
//! Back-pressure: the router's per-peer [`OutboundQueue`] is the only
//! place messages wait. Frames go to the stream with `Context::write_bytes`,
//! which takes only what QUIC's send window allows; the unwritten rest of
//! one frame is kept here and the next write waits for
//! `handle_stream_writable`. So a peer that stops reading costs at most its
//! queue bound plus one frame, and the swarm buffers nothing for it.
//!
//! [`OutboundQueue`]: super::OutboundQueue

use std::collections::{BTreeMap, BTreeSet, HashMap};
use std::net::IpAddr;
use std::sync::mpsc;

use bytes::Bytes;
use swarm::multiaddr::Protocol as AddrPart;
use swarm::{ConnId, Context, Message, Multiaddr, PeerId, Protocol, StreamError, StreamRef};
use tracing::{debug, warn};

use super::PROTOCOLS;
use super::api::{GossipCommand, GossipEvent, GossipOutput, GossipRequest, Reply};
use super::codec::RpcReader;
use super::config::GossipsubConfig;
use super::error::WireError;
use super::message::{GossipMessage, MessageId};
use super::peer::PeerKind;
use super::router::Router;

/// Timer token of the heartbeat.
const HEARTBEAT_TOKEN: u64 = 0;
/// Reset code for inbound streams that sent garbage.
const RESET_CODE: u64 = 0;
/// How often we reopen a peer's outbound stream after it died.
const MAX_STREAM_REOPENS: u32 = 3;

/// A message on the bounded channel of
/// [`Gossipsub::with_message_channel`].
#[derive(Clone, Debug)]
pub struct ReceivedMessage {
    /// The peer we got it from.
    pub propagation_source: PeerId,
    /// Its id.
    pub id: MessageId,
    /// The message.
    pub message: GossipMessage,
}

/// Our side of a peer's connections and outbound stream.
#[derive(Default)]
struct PeerLink {
    conns: BTreeSet<ConnId>,
    outbound: Option<StreamRef>,
    negotiated: bool,
    /// Index into [`PROTOCOLS`] of the protocol being tried.
    protocol_index: usize,
    /// The unwritten rest of the frame being written.
    in_flight: Option<Bytes>,
    reopens: u32,
}

/// What one of our streams is.
enum StreamRole {
    Outbound(PeerId),
    Inbound(PeerId, RpcReader),
}

/// The gossipsub plugin.
pub struct Gossipsub {
    config: Option<GossipsubConfig>,
    router: Option<Router>,
    links: BTreeMap<PeerId, PeerLink>,
    streams: HashMap<StreamRef, StreamRole>,
    channel: Option<mpsc::SyncSender<ReceivedMessage>>,
    /// Messages the channel refused (full).
    channel_drops: u64,
    /// Commands that came before `on_start` made the router.
    early: Vec<GossipCommand>,
}

impl Gossipsub {
    /// A plugin with this configuration; messages arrive as
    /// [`GossipEvent::Message`].
    ///
    /// # Panics
    ///
    /// If the configuration is inconsistent ([`GossipsubConfig::validate`]).
    pub fn new(config: GossipsubConfig) -> Self {
        match Self::try_new(config) {
            Ok(plugin) => plugin,
            Err(e) => panic!("invalid gossipsub configuration: {e}"),
        }
    }

    /// A plugin with this configuration, or why the configuration is
    /// inconsistent.
    pub fn try_new(config: GossipsubConfig) -> Result<Self, String> {
        config.validate()?;
        Ok(Self {
            config: Some(config),
            router: None,
            links: BTreeMap::new(),
            streams: HashMap::new(),
            channel: None,
            channel_drops: 0,
            early: Vec::new(),
        })
    }

    /// A plugin that also puts received messages on a bounded channel of
    /// `capacity` (dropped and counted when full, never blocking the swarm).
    pub fn with_message_channel(
        config: GossipsubConfig,
        capacity: usize,
    ) -> (Self, mpsc::Receiver<ReceivedMessage>) {
        let (tx, rx) = mpsc::sync_channel(capacity);
        let mut plugin = Self::new(config);
        plugin.channel = Some(tx);
        (plugin, rx)
    }

    /// Open (or reopen) the outbound stream to `peer` with the protocol
    /// being tried.
    fn open_outbound(&mut self, ctx: &mut Context<'_>, peer: PeerId) {
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        let Some(conn) = link.conns.iter().next().copied() else {
            return;
        };
        let Some(protocol) = PROTOCOLS.get(link.protocol_index) else {
            return;
        };
        match ctx.open_stream(conn, protocol) {
            Ok(stream) => {
                link.outbound = Some(stream);
                link.negotiated = false;
                link.in_flight = None;
                self.streams.insert(stream, StreamRole::Outbound(peer));
            }
            Err(e) => warn!(%peer, error = %e, "cannot open gossipsub stream"),
        }
    }

    /// Move frames from the peer's queue into its stream while the stream
    /// takes them.
    fn flush_peer(&mut self, ctx: &mut Context<'_>, peer: PeerId) {
        let (Some(link), Some(router)) = (self.links.get_mut(&peer), self.router.as_mut()) else {
            return;
        };
        let Some(stream) = link.outbound.filter(|_| link.negotiated) else {
            return;
        };
        loop {
            let mut frame = match link.in_flight.take() {
                Some(f) => f,
                None => match router.pop_frame(&peer) {
                    Some(f) => f,
                    None => return,
                },
            };
            match ctx.write_bytes(stream, &mut frame) {
                Ok(_) if frame.is_empty() => {}
                Ok(_) => {
                    // The window is full: `handle_stream_writable` resumes.
                    link.in_flight = Some(frame);
                    return;
                }
                Err(e) => {
                    debug!(%peer, error = %e, "gossipsub stream write failed");
                    link.outbound = None;
                    link.negotiated = false;
                    self.streams.remove(&stream);
                    let _ = ctx.abort(stream, RESET_CODE);
                    self.reopen(ctx, peer);
                    return;
                }
            }
        }
    }

    fn reopen(&mut self, ctx: &mut Context<'_>, peer: PeerId) {
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        if link.conns.is_empty() || link.reopens >= MAX_STREAM_REOPENS {
            return;
        }
        link.reopens += 1;
        self.open_outbound(ctx, peer);
    }

    /// After any router work: emit its events and write what it queued.
    fn settle(&mut self, ctx: &mut Context<'_>) {
        let Some(router) = self.router.as_mut() else {
            return;
        };
        for event in router.take_events() {
            match &event {
                GossipEvent::Message {
                    propagation_source,
                    id,
                    message,
                } => {
                    if let Some(tx) = &self.channel {
                        let received = ReceivedMessage {
                            propagation_source: *propagation_source,
                            id: id.clone(),
                            message: message.clone(),
                        };
                        if tx.try_send(received).is_err() {
                            self.channel_drops += 1;
                        }
                    }
                }
                GossipEvent::PeerExchange { peers, .. } => {
                    for p in peers {
                        if ctx.connections_to(p).is_empty() && ctx.metadata_for_peer(p).is_some() {
                            let _ = ctx.dial_with_id(*p, false);
                        }
                    }
                }
                GossipEvent::SlowPeer {
                    peer,
                    dropped,
                    queued_bytes,
                } => {
                    warn!(%peer, dropped, queued_bytes, "slow gossipsub peer: frames dropped");
                }
                _ => {}
            }
            ctx.emit(event);
        }
        let waiting: Vec<PeerId> = self
            .links
            .keys()
            .filter(|p| {
                self.links.get(p).is_some_and(|l| l.in_flight.is_none())
                    && router.queue(p).is_some_and(|q| !q.is_empty())
            })
            .copied()
            .collect();
        for peer in waiting {
            self.flush_peer(ctx, peer);
        }
    }

    fn command(&mut self, ctx: &mut Context<'_>, command: GossipCommand) {
        let Some(router) = self.router.as_mut() else {
            self.early.push(command);
            return;
        };
        let now = ctx.now();
        let result = match command.request {
            GossipRequest::Subscribe(topic) => Ok(GossipOutput::Subscribed(router.subscribe(
                &topic,
                now,
                ctx.rng(),
            ))),
            GossipRequest::Unsubscribe(topic) => {
                router.unsubscribe(&topic, now, ctx.rng());
                Ok(GossipOutput::Done)
            }
            GossipRequest::Publish { topic, data } => router
                .publish(&topic, data, now, ctx.rng())
                .map(GossipOutput::Published),
            GossipRequest::ReportValidation {
                id,
                propagation_source,
                validation,
            } => {
                router.report_validation(&id, propagation_source, validation, now);
                Ok(GossipOutput::Done)
            }
            GossipRequest::MeshPeers(topic) => Ok(GossipOutput::Peers(router.mesh_peers(&topic))),
            GossipRequest::TopicPeers(topic) => Ok(GossipOutput::Peers(router.topic_peers(&topic))),
            GossipRequest::PeerScore(peer) => Ok(GossipOutput::Score(router.peer_score(&peer))),
            GossipRequest::SetApplicationScore(peer, score) => {
                router.set_application_score(&peer, score);
                Ok(GossipOutput::Done)
            }
            GossipRequest::Stats => {
                let mut stats = router.stats();
                stats.channel_drops = self.channel_drops;
                Ok(GossipOutput::Stats(Box::new(stats)))
            }
        };
        match command.reply {
            Reply::None => {}
            Reply::Channel(tx) => {
                let _ = tx.try_send(result);
            }
            Reply::Event(tag) => ctx.emit(GossipEvent::CommandDone { tag, result }),
        }
        self.settle(ctx);
    }

    fn wire_error(
        &mut self,
        ctx: &mut Context<'_>,
        stream: StreamRef,
        peer: PeerId,
        error: WireError,
    ) {
        warn!(%peer, %error, "bad gossipsub input; dropping the stream");
        self.streams.remove(&stream);
        let _ = ctx.abort(stream, RESET_CODE);
        if let Some(router) = self.router.as_mut() {
            router.stats.wire_errors += 1;
        }
        ctx.emit(GossipEvent::WireError { peer, error });
    }
}

impl Protocol for Gossipsub {
    fn name(&self) -> &'static str {
        "gossipsub"
    }

    fn protocol_ids(&self) -> Vec<String> {
        PROTOCOLS.iter().map(|p| p.to_string()).collect()
    }

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        let Some(config) = self.config.take() else {
            return;
        };
        let delay = config.heartbeat_initial_delay;
        let first_seqno = ctx.rng().next_u64();
        self.router = Some(Router::new(config, ctx.local_peer_id(), first_seqno));
        ctx.set_timer(delay, HEARTBEAT_TOKEN);
        for command in std::mem::take(&mut self.early) {
            self.command(ctx, command);
        }
    }

    fn handle_new_connection(&mut self, ctx: &mut Context<'_>, conn: ConnId, peer: PeerId) {
        let link = self.links.entry(peer).or_default();
        let first = link.conns.is_empty();
        link.conns.insert(conn);
        if !first {
            return;
        }
        if let Some(router) = self.router.as_mut() {
            // D_out counts peers we dialed: the first connection says.
            let outbound = ctx.connection_is_outbound(conn).unwrap_or(false);
            router.add_peer(peer, outbound);
            if let Some(ip) = ctx.connection_remote_addr(conn).and_then(|a| ip_of(&a)) {
                router.set_peer_ip(&peer, ip);
            }
        }
        self.open_outbound(ctx, peer);
        self.settle(ctx);
    }

    fn handle_closed_connection(&mut self, ctx: &mut Context<'_>, conn: ConnId, peer: PeerId) {
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        link.conns.remove(&conn);
        if link.outbound.is_some_and(|s| s.conn == conn) {
            link.outbound = None;
            link.negotiated = false;
            link.in_flight = None;
        }
        self.streams.retain(|s, _| s.conn != conn);
        if link.conns.is_empty() {
            self.links.remove(&peer);
            if let Some(router) = self.router.as_mut() {
                router.remove_peer(&peer);
            }
        } else if link.outbound.is_none() {
            link.protocol_index = 0;
            self.open_outbound(ctx, peer);
        }
        self.settle(ctx);
    }

    fn accept_inbound_stream(&mut self, ctx: &mut Context<'_>, stream: StreamRef, protocol: &str) {
        let Some(peer) = ctx.connection_peer(stream.conn) else {
            let _ = ctx.abort(stream, RESET_CODE);
            return;
        };
        let Some(router) = self.router.as_mut() else {
            return;
        };
        router.note_inbound_kind(peer, PeerKind::from_protocol(protocol));
        let reader = RpcReader::new(router.config().max_transmit_size);
        self.streams
            .insert(stream, StreamRole::Inbound(peer, reader));
    }

    fn handle_stream_negotiated(
        &mut self,
        ctx: &mut Context<'_>,
        stream: StreamRef,
        protocol: &str,
    ) {
        let Some(StreamRole::Outbound(peer)) = self.streams.get(&stream) else {
            return;
        };
        let peer = *peer;
        if let Some(link) = self.links.get_mut(&peer) {
            link.negotiated = true;
        }
        if let Some(router) = self.router.as_mut() {
            router.set_peer_kind(peer, PeerKind::from_protocol(protocol));
        }
        // Peers with nothing else to say still need the connection.
        self.flush_peer(ctx, peer);
        self.settle(ctx);
    }

    fn handle_stream_data(&mut self, ctx: &mut Context<'_>, stream: StreamRef, data: Bytes) {
        let Some(StreamRole::Inbound(peer, reader)) = self.streams.get_mut(&stream) else {
            return;
        };
        let peer = *peer;
        let mut rpcs = Vec::new();
        let result = reader.push(&data, &mut rpcs);
        if let Some(router) = self.router.as_mut() {
            let now = ctx.now();
            for rpc in rpcs {
                router.handle_rpc(peer, rpc, now, ctx.rng());
            }
        }
        if let Err(error) = result {
            self.wire_error(ctx, stream, peer, error);
        }
        self.settle(ctx);
    }

    fn handle_stream_writable(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        if let Some(StreamRole::Outbound(peer)) = self.streams.get(&stream) {
            let peer = *peer;
            self.flush_peer(ctx, peer);
        }
    }

    fn handle_stream_finished(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        match self.streams.remove(&stream) {
            Some(StreamRole::Inbound(peer, reader)) if !reader.is_between_rpcs() => {
                self.wire_error(ctx, stream, peer, WireError::Truncated);
            }
            Some(StreamRole::Inbound(..)) => {}
            Some(role) => {
                self.streams.insert(stream, role);
            }
            None => {}
        }
    }

    fn handle_stream_closed(
        &mut self,
        ctx: &mut Context<'_>,
        stream: StreamRef,
        reason: &StreamError,
    ) {
        let Some(StreamRole::Outbound(peer)) = self.streams.remove(&stream) else {
            return;
        };
        let Some(link) = self.links.get_mut(&peer) else {
            return;
        };
        if link.outbound != Some(stream) {
            return;
        }
        link.outbound = None;
        link.in_flight = None;
        if link.negotiated {
            debug!(%peer, %reason, "gossipsub stream closed; reopening");
            link.negotiated = false;
            self.reopen(ctx, peer);
        } else {
            // Refused: try the next older protocol.
            link.protocol_index += 1;
            if link.protocol_index < PROTOCOLS.len() {
                self.open_outbound(ctx, peer);
            } else {
                debug!(%peer, "peer speaks no pubsub protocol");
                if let Some(q) = self.router.as_mut().and_then(|r| r.queue_mut(&peer)) {
                    q.clear();
                }
            }
        }
        self.settle(ctx);
    }

    fn handle_stream_stopped(&mut self, ctx: &mut Context<'_>, stream: StreamRef, code: u64) {
        let _ = code;
        if let Some(StreamRole::Outbound(_)) = self.streams.get(&stream) {
            let reason = StreamError::Stopped(code);
            let _ = ctx.abort(stream, RESET_CODE);
            self.handle_stream_closed(ctx, stream, &reason);
        }
    }

    fn handle_timer(&mut self, ctx: &mut Context<'_>, token: u64) {
        if token != HEARTBEAT_TOKEN {
            return;
        }
        let Some(router) = self.router.as_mut() else {
            return;
        };
        let now = ctx.now();
        router.heartbeat(now, ctx.rng());
        let interval = router.config().heartbeat_interval;
        ctx.set_timer(interval, HEARTBEAT_TOKEN);
        self.settle(ctx);
    }

    fn handle_message(&mut self, ctx: &mut Context<'_>, message: Message) {
        match message.downcast::<GossipCommand>() {
            Ok(command) => self.command(ctx, *command),
            Err(_) => debug!("ignoring a message that is not a GossipCommand"),
        }
    }
}

/// The IP address at the front of a multiaddr (`/ip4/…` or `/ip6/…`).
fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    match addr.iter().next()? {
        AddrPart::Ip4(ip) => Some(ip.into()),
        AddrPart::Ip6(ip) => Some(ip.into()),
        _ => None,
    }
}
