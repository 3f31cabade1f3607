//! Queries: what each [`KadRequest`] does with [`Lookup`]s and requests,
//! and how it ends.
//!
//! Every query but bootstrap runs in up to two phases:
//!
//! 1. **Lookup**: an iterative [`Lookup`] towards the key, asking FIND_NODE
//!    (GET_VALUE for `GetValue`, GET_PROVIDERS for `GetProviders`), which
//!    may end early (a `FindPeer` that found the peer, a `GetValue` that
//!    reached its quorum).
//! 2. **Write** (`PutValue`, `StartProviding`): the request goes to the k
//!    closest peers that answered; the query ends when every one has
//!    answered or failed.
//!
//! Bootstrap is a chain of lookups: our own id, then a random key in each
//! stale bucket. Every query has a deadline ([`KadConfig::query_timeout`]).
//!
//! [`KadConfig::query_timeout`]: super::KadConfig::query_timeout

use std::time::Instant;

use swarm::{Context, Multiaddr, PeerId};
use tracing::debug;

use super::api::{KadOutput, KadRequest, KadResult, QueryId, Reply, deliver};
use super::codec;
use super::error::{KadError, WireError};
use super::key::Key;
use super::plugin::Kademlia;
use super::proto;
use super::query::Lookup;
use super::serve::to_proto_record;
use super::state::Purpose;
use super::state::{Kind, Phase, Query, TimerKind};
use super::store::{Provider, Record};

/// Most providers a `GetProviders` collects.
const MAX_PROVIDERS_FOUND: usize = 100;
/// The farthest-from-the-top bucket a bootstrap refreshes: finding a random
/// key in bucket `i` takes about 2^(256 - i) hashes, so buckets below 244
/// (4096 hashes) are left alone; networks of up to ~10^6 nodes have no
/// populated bucket below that.
const LOWEST_REFRESHED_BUCKET: usize = 244;

impl Kademlia {
    /// Start a query; a query that cannot start ends at once.
    pub(super) fn start_query(
        &mut self,
        ctx: &mut Context<'_>,
        id: QueryId,
        request: KadRequest,
        reply: Option<Reply>,
    ) {
        if self.queries.len() >= self.config.max_queries {
            let limit = self.config.max_queries;
            return deliver(ctx, id, reply, Err(KadError::TooManyQueries(limit)), 0);
        }
        let now = ctx.now();
        let (key, kind) = match self.prepare(ctx, request, now) {
            Ok(prepared) => prepared,
            Err(result) => return deliver(ctx, id, reply, result, 0),
        };
        let target = Key::from_bytes(&key);
        self.table.note_lookup(&target, now);
        let seeds = self.table.closest(&target, self.config.k);
        let lookup = Lookup::new(target, self.local, &seeds, self.config.k, self.config.alpha);
        let timeout = self.config.query_timeout;
        let timer = self.set_timer(ctx, timeout, TimerKind::Query(id));
        if matches!(kind, Kind::Bootstrap { .. }) {
            self.bootstrap_query = Some(id);
        }
        self.queries.insert(
            id,
            Query {
                key,
                kind,
                phase: Phase::Lookup,
                lookup,
                reply,
                timer,
                no_peers: seeds.is_empty(),
            },
        );
        self.drive(ctx, id);
    }

    /// The key and the initial state of a query, or its result when it
    /// needs no network (or cannot start).
    fn prepare(
        &mut self,
        ctx: &mut Context<'_>,
        request: KadRequest,
        now: Instant,
    ) -> Result<(Vec<u8>, Kind), KadResult> {
        Ok(match request {
            KadRequest::GetClosestPeers(key) => (key, Kind::ClosestPeers),
            KadRequest::FindPeer(target) => (
                target.to_bytes(),
                Kind::FindPeer {
                    target,
                    found: Vec::new(),
                    routing: false,
                },
            ),
            KadRequest::GetValue(key) => {
                self.store.check_key(&key).map_err(|e| Err(e.into()))?;
                let records: Vec<Record> = self.store.get(&key, now).cloned().into_iter().collect();
                let quorum = self.config.get_quorum.max(1);
                (key, Kind::GetValue { records, quorum })
            }
            KadRequest::PutValue(mut record) => {
                record.publisher.get_or_insert(self.local);
                self.store
                    .put(record.clone(), now)
                    .map_err(|e| Err(e.into()))?;
                if let Some(interval) = self.config.record_republish_interval {
                    self.published
                        .insert(record.key.clone(), (record.clone(), now + interval));
                }
                (record.key.clone(), Kind::PutValue { record, stored: 0 })
            }
            KadRequest::StartProviding(key) => {
                self.store.check_key(&key).map_err(|e| Err(e.into()))?;
                if !self.provided.contains_key(&key)
                    && self.provided.len() >= self.config.max_provided_keys
                {
                    let limit = self.config.max_provided_keys;
                    return Err(Err(super::StoreError::ProviderKeysFull(limit).into()));
                }
                let me = Provider {
                    peer: self.local,
                    addrs: self.announce_addrs(ctx),
                };
                self.store
                    .add_provider(&key, me, now)
                    .map_err(|e| Err(e.into()))?;
                self.provided
                    .insert(key.clone(), now + self.config.provider_republish_interval);
                (key, Kind::StartProviding { sent: 0 })
            }
            KadRequest::GetProviders(key) => {
                self.store.check_key(&key).map_err(|e| Err(e.into()))?;
                let providers = self.store.providers(&key, now);
                (key, Kind::GetProviders { providers })
            }
            KadRequest::Bootstrap => {
                if self.table.is_empty() {
                    return Err(Err(KadError::NoKnownPeers));
                }
                self.bootstrapped_once = true;
                (
                    self.local.to_bytes(),
                    Kind::Bootstrap {
                        refresh: Vec::new(),
                    },
                )
            }
            // Handled without a query by the plugin.
            KadRequest::StopProviding(_)
            | KadRequest::AddPeer { .. }
            | KadRequest::SetMode(_)
            | KadRequest::Stats
            | KadRequest::RoutingTable => {
                return Err(Ok(KadOutput::Done));
            }
        })
    }

    /// Move a query on: send what may be sent, end it if it is over.
    pub(super) fn drive(&mut self, ctx: &mut Context<'_>, id: QueryId) {
        // Each turn either sends a request, fails a peer, changes phase or
        // returns; the bound only guards against a bug spinning forever.
        for _ in 0..10_000 {
            let k = self.config.k;
            let Some(query) = self.queries.get_mut(&id) else {
                return;
            };
            if let Some(result) = query.early_result(k) {
                return self.finish(ctx, id, result);
            }
            match query.phase {
                Phase::Write { outstanding } => {
                    if outstanding == 0 {
                        let result = self.write_result(id);
                        self.finish(ctx, id, result);
                    }
                    return;
                }
                Phase::Lookup => {
                    if let Some(peer) = query.lookup.next_to_ask() {
                        let message = query.lookup_message();
                        if self
                            .send_rpc(ctx, peer, message, Purpose::Query(id))
                            .is_err()
                            && let Some(query) = self.queries.get_mut(&id)
                        {
                            query.lookup.on_failure(&peer);
                        }
                        continue;
                    }
                    if !query.lookup.is_finished() {
                        return; // waiting for answers
                    }
                    self.lookup_done(ctx, id);
                }
            }
        }
    }

    /// The lookup phase is over: write, start the next lookup, or finish.
    fn lookup_done(&mut self, ctx: &mut Context<'_>, id: QueryId) {
        let k = self.config.k;
        let now = ctx.now();
        let Some(query) = self.queries.get_mut(&id) else {
            return;
        };
        let closest = query.lookup.closest_succeeded(k);
        let write = match &mut query.kind {
            Kind::PutValue { record, .. } => Some(proto::Message {
                r#type: proto::PUT_VALUE,
                key: record.key.clone(),
                record: Some(to_proto_record(record)),
                ..Default::default()
            }),
            Kind::StartProviding { .. } => None,
            Kind::Bootstrap { refresh } => {
                if refresh.is_empty() && query.lookup.target() == &Key::from_peer(&self.local) {
                    // The self-lookup is done: now the stale buckets.
                    let stale = self.table.stale_buckets(
                        now,
                        self.config.bootstrap_interval.unwrap_or_default(),
                        LOWEST_REFRESHED_BUCKET,
                    );
                    let local = *self.table.local_key();
                    let mut keys = Vec::new();
                    for bucket in stale {
                        if let Some(key) = random_key_in_bucket(ctx, &local, bucket) {
                            keys.push(key);
                        }
                    }
                    if let Some(Query {
                        kind: Kind::Bootstrap { refresh },
                        ..
                    }) = self.queries.get_mut(&id)
                    {
                        *refresh = keys;
                    }
                }
                let Some(Query {
                    kind: Kind::Bootstrap { refresh },
                    ..
                }) = self.queries.get_mut(&id)
                else {
                    return;
                };
                match refresh.pop() {
                    Some(key) => {
                        let target = Key::from_bytes(&key);
                        self.table.note_lookup(&target, now);
                        let seeds = self.table.closest(&target, k);
                        let lookup = Lookup::new(target, self.local, &seeds, k, self.config.alpha);
                        if let Some(query) = self.queries.get_mut(&id) {
                            query.key = key;
                            query.lookup = lookup;
                        }
                    }
                    None => {
                        let size = self.table.len();
                        self.finish(ctx, id, Ok(KadOutput::Bootstrapped(size)));
                    }
                }
                return;
            }
            _ => {
                let result = self.lookup_result(id);
                return self.finish(ctx, id, result);
            }
        };
        // The write phase.
        let message = match write {
            Some(m) => m,
            None => {
                let addrs = self.announce_addrs(ctx);
                let Some(query) = self.queries.get(&id) else {
                    return;
                };
                proto::Message {
                    r#type: proto::ADD_PROVIDER,
                    key: query.key.clone(),
                    provider_peers: vec![codec::encode_peer(
                        &codec::PeerInfo {
                            peer: self.local,
                            addrs,
                        },
                        true,
                    )],
                    ..Default::default()
                }
            }
        };
        let mut outstanding = 0;
        for peer in closest {
            if self
                .send_rpc(ctx, peer, message.clone(), Purpose::Query(id))
                .is_ok()
            {
                outstanding += 1;
            }
        }
        if let Some(query) = self.queries.get_mut(&id) {
            query.phase = Phase::Write { outstanding };
        }
    }

    /// The result of a query whose lookup ended without an early stop.
    fn lookup_result(&self, id: QueryId) -> KadResult {
        let Some(query) = self.queries.get(&id) else {
            return Err(KadError::NotFound);
        };
        let k = self.config.k;
        match &query.kind {
            Kind::ClosestPeers => {
                let peers = query.lookup.closest_succeeded(k);
                if peers.is_empty() {
                    Err(self.nothing_error(query))
                } else {
                    Ok(KadOutput::ClosestPeers(peers))
                }
            }
            Kind::FindPeer { .. } => Err(self.nothing_error(query)),
            Kind::GetValue { records, quorum } => {
                if records.is_empty() {
                    Err(self.nothing_error(query))
                } else {
                    Err(KadError::QuorumFailed {
                        quorum: *quorum,
                        reached: records.len(),
                    })
                }
            }
            Kind::GetProviders { providers } => {
                if providers.is_empty() {
                    Err(self.nothing_error(query))
                } else {
                    Ok(KadOutput::Providers(providers.clone()))
                }
            }
            Kind::PutValue { .. } | Kind::StartProviding { .. } | Kind::Bootstrap { .. } => {
                Err(KadError::NotFound)
            }
        }
    }

    /// "Nothing found" when there was nobody to ask is `NoKnownPeers`.
    fn nothing_error(&self, query: &Query) -> KadError {
        if query.no_peers {
            KadError::NoKnownPeers
        } else {
            KadError::NotFound
        }
    }

    /// The result of a write phase.
    fn write_result(&self, id: QueryId) -> KadResult {
        let Some(query) = self.queries.get(&id) else {
            return Err(KadError::NotFound);
        };
        match &query.kind {
            Kind::PutValue { stored, .. } => {
                let quorum = self.config.put_quorum.max(1);
                if *stored >= quorum {
                    Ok(KadOutput::Stored(*stored))
                } else if query.no_peers {
                    Err(KadError::NoKnownPeers)
                } else {
                    Err(KadError::QuorumFailed {
                        quorum,
                        reached: *stored,
                    })
                }
            }
            Kind::StartProviding { sent } => {
                if *sent > 0 {
                    Ok(KadOutput::Providing(*sent))
                } else if query.no_peers {
                    Err(KadError::NoKnownPeers)
                } else {
                    Err(KadError::QuorumFailed {
                        quorum: 1,
                        reached: 0,
                    })
                }
            }
            _ => Err(KadError::NotFound),
        }
    }

    /// One of the query's requests ended.
    pub(super) fn on_query_answer(
        &mut self,
        ctx: &mut Context<'_>,
        id: QueryId,
        peer: PeerId,
        result: Result<proto::Message, WireError>,
    ) {
        let now = ctx.now();
        let ttl = self.config.lookup_address_ttl;
        let k = self.config.k;
        // Validate records before borrowing the query.
        let valid_record = match &result {
            Ok(answer) => answer.record.as_ref().and_then(|r| {
                let record = Record {
                    key: r.key.clone(),
                    value: r.value.clone(),
                    publisher: PeerId::from_bytes(&r.publisher).ok(),
                };
                self.store.validate(&record).ok().map(|_| record)
            }),
            Err(_) => None,
        };
        let Some(query) = self.queries.get_mut(&id) else {
            return;
        };
        match query.phase {
            Phase::Write {
                ref mut outstanding,
            } => {
                *outstanding = outstanding.saturating_sub(1);
                match (&mut query.kind, &result) {
                    (Kind::PutValue { record, stored }, Ok(answer)) => {
                        // Stored only if the answer echoes the record.
                        let echoed = answer
                            .record
                            .as_ref()
                            .is_some_and(|r| r.key == record.key && r.value == record.value);
                        if echoed {
                            *stored += 1;
                        }
                    }
                    (Kind::StartProviding { sent }, Ok(_)) => *sent += 1,
                    _ => {}
                }
            }
            Phase::Lookup => match result {
                Err(_) => query.lookup.on_failure(&peer),
                Ok(answer) => {
                    let closer = codec::decode_peers(&answer.closer_peers, k);
                    let store = ctx.peer_store_mut();
                    for info in &closer {
                        for addr in &info.addrs {
                            store.add_address(info.peer, addr.clone(), ttl, now);
                        }
                    }
                    match &mut query.kind {
                        Kind::FindPeer { target, found, .. } => {
                            if let Some(info) = closer.iter().find(|i| i.peer == *target) {
                                found.extend(info.addrs.iter().cloned());
                            }
                            if peer == *target {
                                // The peer itself answered: we reach it.
                                found.extend(store.addresses(target, now));
                            }
                            let mut unique: Vec<Multiaddr> = Vec::with_capacity(found.len());
                            for addr in found.drain(..) {
                                if !unique.contains(&addr) {
                                    unique.push(addr);
                                }
                            }
                            *found = unique;
                        }
                        Kind::GetValue { records, .. } => {
                            if let Some(record) = valid_record
                                && record.key == query.key
                                && !records.iter().any(|r| r.value == record.value)
                            {
                                records.push(record);
                            }
                        }
                        Kind::GetProviders { providers } => {
                            for info in codec::decode_peers(&answer.provider_peers, k) {
                                for addr in &info.addrs {
                                    store.add_address(info.peer, addr.clone(), ttl, now);
                                }
                                if providers.len() < MAX_PROVIDERS_FOUND
                                    && !providers.iter().any(|p| p.peer == info.peer)
                                {
                                    providers.push(Provider {
                                        peer: info.peer,
                                        addrs: info.addrs,
                                    });
                                }
                            }
                        }
                        _ => {}
                    }
                    let ids: Vec<PeerId> = closer.iter().map(|i| i.peer).collect();
                    query.lookup.on_success(&peer, &ids);
                }
            },
        }
        self.drive(ctx, id);
    }

    /// The query's deadline passed.
    pub(super) fn query_timed_out(&mut self, ctx: &mut Context<'_>, id: QueryId) {
        let Some(query) = self.queries.get(&id) else {
            return;
        };
        let result = match query.phase {
            // A write that reached its quorum is a success even if some
            // peers never answered.
            Phase::Write { .. } => match self.write_result(id) {
                Ok(output) => Ok(output),
                Err(_) => Err(KadError::Timeout(self.config.query_timeout)),
            },
            Phase::Lookup => match &query.kind {
                Kind::GetProviders { providers } if !providers.is_empty() => {
                    Ok(KadOutput::Providers(providers.clone()))
                }
                _ => Err(KadError::Timeout(self.config.query_timeout)),
            },
        };
        self.finish(ctx, id, result);
    }

    /// End a query: report, and answer the swarm's peer routing if it waits.
    fn finish(&mut self, ctx: &mut Context<'_>, id: QueryId, result: KadResult) {
        let Some(query) = self.queries.remove(&id) else {
            return;
        };
        self.cancel_timer(ctx, query.timer);
        if self.bootstrap_query == Some(id) {
            self.bootstrap_query = None;
        }
        debug!(?id, ok = result.is_ok(), "query finished");
        if let Kind::FindPeer {
            target,
            routing: true,
            ..
        } = query.kind
        {
            // The addresses found are in the peer store already.
            ctx.peer_routing_done(target);
        }
        let hops = query.lookup.hops();
        deliver(ctx, id, query.reply, result, hops);
    }
}

/// Random key bytes (a sha2-256 multihash, so that implementations that
/// parse FIND_NODE keys as PeerIds take it) whose key falls in `bucket` of
/// `local`, or `None` if none was found in a bounded number of tries.
fn random_key_in_bucket(ctx: &mut Context<'_>, local: &Key, bucket: usize) -> Option<Vec<u8>> {
    let tries = 1usize << (256 - bucket).min(16) << 2;
    let mut bytes = vec![0u8; 34];
    bytes[0] = 0x12;
    bytes[1] = 0x20;
    for _ in 0..tries {
        ctx.rng().fill_bytes(&mut bytes[2..]);
        if local.distance(&Key::from_bytes(&bytes)).bucket_index() == Some(bucket) {
            return Some(bytes);
        }
    }
    None
}
