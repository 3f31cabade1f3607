//! The [`Kademlia`] plugin: its state, the [`Protocol`] callbacks, and the
//! glue between them and the rest of the module (serving in
//! `serve.rs`, asking in `rpc.rs`, queries in `queries.rs`).

use std::collections::{BTreeMap, HashMap};
use std::net::IpAddr;
use std::time::{Duration, Instant};

use bytes::Bytes;
use swarm::multiaddr::Protocol as AddrPart;
use swarm::{
    ConnId, Context, DialError, Message, Multiaddr, PeerId, Protocol, ProtocolEvent, StreamError,
    StreamRef, TimerId,
};
use tracing::{debug, info, trace, warn};

use super::api::{KadCommand, KadEvent, KadOutput, KadRequest, KadStats};
use super::config::{KadConfig, Mode};
use super::key::Key;
use super::routing_table::{InsertOutcome, RoutingTable};
use super::state::{InboundStream, Purpose, Query, Rpc, RpcId, TimerKind};
use super::store::{Record, RecordStore};
use crate::identify::IdentifyEvent;

/// The Kademlia DHT plugin. Add it to a swarm with identify (peers enter
/// the routing table when identify shows they speak the protocol), then
/// drive it with [`KadCommand`]s.
pub struct Kademlia {
    pub(super) config: KadConfig,
    pub(super) local: PeerId,
    pub(super) table: RoutingTable,
    pub(super) store: RecordStore,
    /// Inbound streams we are serving.
    pub(super) inbound: HashMap<StreamRef, InboundStream>,
    /// Open inbound streams per peer.
    pub(super) inbound_per_peer: HashMap<PeerId, usize>,
    /// Outbound requests, in flight or waiting for a connection.
    pub(super) rpcs: HashMap<RpcId, Rpc>,
    /// The stream each sent request waits on.
    pub(super) rpc_streams: HashMap<StreamRef, RpcId>,
    /// Requests waiting for a connection to their peer, in order.
    pub(super) waiting_for_conn: HashMap<PeerId, Vec<RpcId>>,
    /// Failed dials in a row to routing table entries (entries only, so
    /// bounded by the table).
    pub(super) dial_failures: HashMap<PeerId, u8>,
    /// Our dials: the peer, and the addresses still to try.
    pub(super) dials: HashMap<ConnId, (PeerId, Vec<Multiaddr>)>,
    pub(super) next_rpc: u64,
    /// Outcomes known before their request went out, delivered when the
    /// request's (zero-delay) timer fires.
    pub(super) deferred: HashMap<RpcId, Result<super::proto::Message, super::WireError>>,
    pub(super) timers: HashMap<u64, TimerKind>,
    pub(super) next_token: u64,
    pub(super) queries: HashMap<super::api::QueryId, Query>,
    /// Keys we provide, with when to announce them next (ordered, so
    /// republishing goes in the same order every run).
    pub(super) provided: BTreeMap<Vec<u8>, Instant>,
    /// Records we put, with when to put them again.
    pub(super) published: BTreeMap<Vec<u8>, (Record, Instant)>,
    /// The running bootstrap, if any.
    pub(super) bootstrap_query: Option<super::api::QueryId>,
    pub(super) bootstrapped_once: bool,
    bootstrap_timer: Option<(TimerId, u64)>,
}

impl Kademlia {
    /// A plugin with `config`.
    pub fn new(config: KadConfig) -> Self {
        let store = RecordStore::new(&config);
        // The real table is built in `on_start`, once our PeerId is known;
        // this one only stands in and is never used before.
        let placeholder = PeerId::from_bytes(&[0, 0]).expect("identity multihash of nothing");
        let table = RoutingTable::new(Key::from_peer(&placeholder), config.k, config.ip_limits);
        Self {
            config,
            local: placeholder,
            table,
            store,
            inbound: HashMap::new(),
            inbound_per_peer: HashMap::new(),
            rpcs: HashMap::new(),
            rpc_streams: HashMap::new(),
            waiting_for_conn: HashMap::new(),
            dials: HashMap::new(),
            dial_failures: HashMap::new(),
            next_rpc: 0,
            deferred: HashMap::new(),
            timers: HashMap::new(),
            next_token: 0,
            queries: HashMap::new(),
            provided: BTreeMap::new(),
            published: BTreeMap::new(),
            bootstrap_query: None,
            bootstrapped_once: false,
            bootstrap_timer: None,
        }
    }

    /// The routing table (for inspection).
    pub fn routing_table(&self) -> &RoutingTable {
        &self.table
    }

    /// The record store (for inspection).
    pub fn store(&self) -> &RecordStore {
        &self.store
    }

    /// Set a timer standing for `kind`.
    pub(super) fn set_timer(
        &mut self,
        ctx: &mut Context<'_>,
        delay: Duration,
        kind: TimerKind,
    ) -> (TimerId, u64) {
        self.next_token += 1;
        let token = self.next_token;
        self.timers.insert(token, kind);
        (ctx.set_timer(delay, token), token)
    }

    /// Cancel a timer set with [`Kademlia::set_timer`].
    pub(super) fn cancel_timer(&mut self, ctx: &mut Context<'_>, timer: (TimerId, u64)) {
        ctx.cancel_timer(timer.0);
        self.timers.remove(&timer.1);
    }

    /// Offer a peer that speaks the protocol to the routing table.
    pub(super) fn offer_peer(&mut self, ctx: &mut Context<'_>, peer: PeerId, ip: Option<IpAddr>) {
        let was_empty = self.table.is_empty();
        match self.table.insert(peer, ip, ctx.now()) {
            InsertOutcome::Inserted => {
                debug!(%peer, "routing table: added");
                ctx.emit(KadEvent::PeerAdded(peer));
            }
            InsertOutcome::Pending { check } => {
                // The bucket is full: ask its least recently seen entry
                // something every implementation answers (FIND_NODE of our
                // own id); it keeps its place if it answers.
                debug!(%peer, %check, "routing table: bucket full; checking the oldest entry");
                let message = super::codec::find_node(self.local.to_bytes());
                if self.send_rpc(ctx, check, message, Purpose::Check).is_err() {
                    self.drop_peer(ctx, &check);
                }
            }
            outcome => trace!(%peer, ?outcome, "routing table: not added"),
        }
        if was_empty
            && !self.table.is_empty()
            && !self.bootstrapped_once
            && self.config.bootstrap_interval.is_some()
        {
            self.schedule_bootstrap(ctx, Duration::ZERO);
        }
    }

    /// Remove a peer from the table (it failed a check or a dial, or stopped
    /// advertising the protocol), reporting what changed.
    pub(super) fn drop_peer(&mut self, ctx: &mut Context<'_>, peer: &PeerId) {
        let before: Vec<PeerId> = self.bucket_peers(peer);
        self.dial_failures.remove(peer);
        if self.table.remove(peer) {
            debug!(%peer, "routing table: removed");
            ctx.emit(KadEvent::PeerRemoved(*peer));
            for added in self.bucket_peers(peer) {
                if !before.contains(&added) {
                    ctx.emit(KadEvent::PeerAdded(added));
                }
            }
        }
    }

    fn bucket_peers(&self, peer: &PeerId) -> Vec<PeerId> {
        let index = self
            .table
            .local_key()
            .distance(&Key::from_peer(peer))
            .bucket_index();
        index
            .map(|i| {
                self.table
                    .bucket(i)
                    .entries()
                    .iter()
                    .map(|e| e.peer)
                    .collect()
            })
            .unwrap_or_default()
    }

    fn schedule_bootstrap(&mut self, ctx: &mut Context<'_>, delay: Duration) {
        if let Some(timer) = self.bootstrap_timer.take() {
            self.cancel_timer(ctx, timer);
        }
        let timer = self.set_timer(ctx, delay, TimerKind::Bootstrap);
        self.bootstrap_timer = Some(timer);
    }

    /// Serve the DHT or stop serving it (see [`KadRequest::SetMode`]).
    fn set_mode(&mut self, ctx: &mut Context<'_>, mode: Mode) {
        if mode == self.config.mode {
            return;
        }
        let protocol = self.config.protocol.clone();
        let changed = match mode {
            Mode::Server => ctx.advertise_protocol(&protocol),
            Mode::Client => ctx.withdraw_protocol(&protocol),
        };
        if changed {
            self.config.mode = mode;
            info!(?mode, "Kademlia mode changed");
        } else {
            warn!(?mode, %protocol, "cannot change mode: another plugin has the protocol");
        }
    }

    /// Run a command from another plugin or thread.
    fn command(&mut self, ctx: &mut Context<'_>, command: KadCommand) {
        let KadCommand { id, request, reply } = command;
        let now = ctx.now();
        let immediate = match request {
            KadRequest::AddPeer { peer, addrs } => {
                let ip = addrs.iter().find_map(ip_of);
                for addr in addrs {
                    ctx.peer_store_mut()
                        .add_address(peer, addr, self.config.address_ttl, now);
                }
                self.offer_peer(ctx, peer, ip);
                Some(Ok(KadOutput::Done))
            }
            KadRequest::StopProviding(key) => {
                self.provided.remove(&key);
                Some(Ok(KadOutput::Done))
            }
            KadRequest::SetMode(mode) => {
                self.set_mode(ctx, mode);
                Some(Ok(KadOutput::Done))
            }
            KadRequest::Stats => Some(Ok(KadOutput::Stats(self.stats()))),
            KadRequest::RoutingTable => Some(Ok(KadOutput::Peers(
                self.table.entries().map(|e| e.peer).collect(),
            ))),
            request => {
                self.start_query(ctx, id, request, Some(reply));
                return;
            }
        };
        if let Some(result) = immediate {
            super::api::deliver(ctx, id, Some(reply), result, 0);
        }
    }

    /// The sizes of our tables.
    pub fn stats(&self) -> KadStats {
        KadStats {
            routing_table: self.table.len(),
            records: self.store.record_count(),
            provider_keys: self.store.provider_key_count(),
            providers: self.store.provider_count(),
            queries: self.queries.len(),
            inbound_streams: self.inbound.len(),
            outbound_requests: self.rpcs.len(),
        }
    }

    /// Expire what is old; republish what is due. Republishing starts at
    /// most a quarter of [`KadConfig::max_queries`] per round, so that a
    /// node providing many keys neither starves its own queries nor drops
    /// republications: what is left stays due for the next round.
    fn housekeeping(&mut self, ctx: &mut Context<'_>) {
        let now = ctx.now();
        self.store.expire(now);
        let room = (self.config.max_queries / 4)
            .max(1)
            .min(self.config.max_queries.saturating_sub(self.queries.len()));
        let due: Vec<Vec<u8>> = self
            .provided
            .iter()
            .filter(|(_, next)| **next <= now)
            .map(|(k, _)| k.clone())
            .take(room)
            .collect();
        let mut started = due.len();
        for key in due {
            debug!(key = ?String::from_utf8_lossy(&key), "republishing provider record");
            // `prepare` sets the next republication.
            self.start_query(
                ctx,
                super::api::QueryId::next(),
                KadRequest::StartProviding(key),
                None,
            );
        }
        if self.config.record_republish_interval.is_some() {
            let due: Vec<Record> = self
                .published
                .values()
                .filter(|(_, next)| *next <= now)
                .map(|(r, _)| r.clone())
                .take(room.saturating_sub(started))
                .collect();
            started += due.len();
            for record in due {
                debug!(key = ?String::from_utf8_lossy(&record.key), "republishing record");
                self.start_query(
                    ctx,
                    super::api::QueryId::next(),
                    KadRequest::PutValue(record),
                    None,
                );
            }
        }
        if started > 0 {
            debug!(started, "republishing");
        }
        let interval = self.config.housekeeping_interval;
        self.set_timer(ctx, interval, TimerKind::Housekeeping);
    }

    /// The addresses we announce in ADD_PROVIDER: our listen addresses,
    /// except those on an unspecified IP (nobody can dial `0.0.0.0`). js
    /// ignores provider entries with no address, and the swarm has no
    /// notion of a confirmed external address yet.
    pub(super) fn announce_addrs(&self, ctx: &Context<'_>) -> Vec<Multiaddr> {
        ctx.listen_addrs()
            .into_iter()
            .filter(|a| !ip_of(a).is_some_and(|ip| ip.is_unspecified()))
            .collect()
    }
}

/// The IP of an address, if it starts with one.
pub(super) fn ip_of(addr: &Multiaddr) -> Option<IpAddr> {
    match addr.iter().next()? {
        AddrPart::Ip4(ip) => Some(ip.into()),
        AddrPart::Ip6(ip) => Some(ip.into()),
        _ => None,
    }
}

impl Protocol for Kademlia {
    fn name(&self) -> &'static str {
        "kad"
    }

    fn protocol_ids(&self) -> Vec<String> {
        match self.config.mode {
            Mode::Server => vec![self.config.protocol.clone()],
            // Not advertised, and inbound streams are refused by
            // multistream-select: nobody adds a client to its table.
            Mode::Client => Vec::new(),
        }
    }

    fn on_start(&mut self, ctx: &mut Context<'_>) {
        self.local = ctx.local_peer_id();
        self.table = RoutingTable::new(
            Key::from_peer(&self.local),
            self.config.k,
            self.config.ip_limits,
        );
        if self.config.peer_routing {
            ctx.register_peer_router();
        }
        let interval = self.config.housekeeping_interval;
        self.set_timer(ctx, interval, TimerKind::Housekeeping);
        let now = ctx.now();
        for addr in self.config.bootstrap_peers.clone() {
            let Some(AddrPart::P2p(peer)) = addr.iter().last() else {
                debug!(%addr, "bootstrap address without /p2p/<id>; ignored");
                continue;
            };
            ctx.peer_store_mut()
                .add_address(peer, addr.clone(), self.config.address_ttl, now);
            self.offer_peer(ctx, peer, ip_of(&addr));
        }
        if let Some(interval) = self.config.bootstrap_interval
            && self.table.is_empty()
        {
            self.schedule_bootstrap(ctx, interval);
        }
    }

    fn handle_new_connection(&mut self, ctx: &mut Context<'_>, conn: ConnId, peer: PeerId) {
        self.dials.remove(&conn);
        self.dial_failures.remove(&peer);
        self.flush_waiting(ctx, peer);
    }

    fn handle_dial_failure(&mut self, ctx: &mut Context<'_>, conn: ConnId, error: &DialError) {
        self.on_dial_failure(ctx, conn, error);
    }

    fn handle_find_peer(&mut self, ctx: &mut Context<'_>, peer: PeerId) {
        debug!(%peer, "peer routing: looking the peer up");
        let id = super::api::QueryId::next();
        self.start_query(ctx, id, KadRequest::FindPeer(peer), None);
        // A query that could not start (no peers) has ended already; the
        // routing answer is given when the query ends.
        match self.queries.get_mut(&id) {
            Some(query) => query.set_routing(),
            None => ctx.peer_routing_done(peer),
        }
    }

    fn accept_inbound_stream(&mut self, ctx: &mut Context<'_>, stream: StreamRef, _: &str) {
        self.accept(ctx, stream);
    }

    fn handle_stream_data(&mut self, ctx: &mut Context<'_>, stream: StreamRef, data: Bytes) {
        if self.inbound.contains_key(&stream) {
            self.inbound_data(ctx, stream, &data);
        } else if self.rpc_streams.contains_key(&stream) {
            self.rpc_data(ctx, stream, &data);
        }
    }

    fn handle_stream_finished(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        if self.inbound.contains_key(&stream) {
            self.inbound_finished(ctx, stream);
        } else if let Some(&id) = self.rpc_streams.get(&stream) {
            self.complete_rpc(ctx, id, Err(super::WireError::Truncated));
        }
    }

    fn handle_stream_stopped(&mut self, ctx: &mut Context<'_>, stream: StreamRef, code: u64) {
        // An answerer stops our send side once it has our request; the
        // answer may still come. An asker that stops our answers is done
        // with the stream (rust-libp2p stops it when it drops a stream it
        // got its answer on).
        if self.inbound.contains_key(&stream) {
            self.inbound_stopped(ctx, stream, code);
        }
    }

    fn handle_stream_closed(
        &mut self,
        ctx: &mut Context<'_>,
        stream: StreamRef,
        reason: &StreamError,
    ) {
        if self.inbound.contains_key(&stream) {
            self.inbound_closed(ctx, stream, reason);
        } else if let Some(&id) = self.rpc_streams.get(&stream) {
            self.complete_rpc(ctx, id, Err(reason.clone().into()));
        }
    }

    fn handle_timer(&mut self, ctx: &mut Context<'_>, token: u64) {
        let Some(kind) = self.timers.remove(&token) else {
            return;
        };
        match kind {
            TimerKind::Rpc(id) => {
                let timeout = self.config.request_timeout;
                let result = self
                    .deferred
                    .remove(&id)
                    .unwrap_or(Err(super::WireError::Timeout(timeout)));
                self.complete_rpc(ctx, id, result);
            }
            TimerKind::Inbound(stream) => self.inbound_idle(ctx, stream),
            TimerKind::Query(id) => self.query_timed_out(ctx, id),
            TimerKind::Housekeeping => self.housekeeping(ctx),
            TimerKind::Bootstrap => {
                self.bootstrap_timer = None;
                if !self.table.is_empty() && self.bootstrap_query.is_none() {
                    self.start_query(
                        ctx,
                        super::api::QueryId::next(),
                        KadRequest::Bootstrap,
                        None,
                    );
                }
                if let Some(interval) = self.config.bootstrap_interval {
                    self.schedule_bootstrap(ctx, interval);
                }
            }
        }
    }

    fn handle_protocol_event(&mut self, ctx: &mut Context<'_>, event: &ProtocolEvent) {
        let Some(IdentifyEvent::Received {
            peer, conn, info, ..
        }) = event.downcast_ref::<IdentifyEvent>()
        else {
            return;
        };
        if info.protocols.contains(&self.config.protocol) {
            let ip = ctx.connection_remote_addr(*conn).as_ref().and_then(ip_of);
            self.offer_peer(ctx, *peer, ip);
        } else if self.table.contains(peer) {
            // It switched to client mode (or stopped serving the DHT).
            self.drop_peer(ctx, peer);
        }
    }

    fn handle_message(&mut self, ctx: &mut Context<'_>, message: Message) {
        match message.downcast::<KadCommand>() {
            Ok(command) => self.command(ctx, *command),
            Err(_) => debug!("ignoring a message that is not a KadCommand"),
        }
    }
}
