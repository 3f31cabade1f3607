//! Answering: inbound Kademlia streams, each carrying one or more requests
//! answered in order, within the per-peer stream limit, the per-stream
//! request limit and an idle deadline. A request we cannot parse or refuse
//! resets its stream with a typed [`WireError`] (reported as
//! [`KadEvent::InboundError`]); the node keeps serving everyone else.

use std::time::Instant;

use swarm::{Context, PeerId, StreamError, StreamRef, TimerId};
use tracing::{debug, trace};

use super::api::KadEvent;
use super::codec::{self, MessageReader, PeerInfo};
use super::error::{StoreError, WireError};
use super::key::Key;
use super::plugin::{Kademlia, TimerKind};
use super::proto;
use super::store::{Provider, Record};

/// Reset code for a stream whose request we refused or could not parse.
pub const RESET_REFUSED: u64 = 0x10;

/// One inbound stream being served.
pub(crate) struct InboundStream {
    pub peer: PeerId,
    pub reader: MessageReader,
    pub requests: usize,
    pub timer: (TimerId, u64),
}

impl Kademlia {
    /// A peer opened a stream for our protocol.
    pub(super) fn accept(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        let Some(peer) = ctx.connection_peer(stream.conn) else {
            let _ = ctx.abort(stream, RESET_REFUSED);
            return;
        };
        let open = self.inbound_per_peer.get(&peer).copied().unwrap_or(0);
        let limit = self.config.max_inbound_streams_per_peer;
        if open >= limit {
            debug!(%peer, limit, "refusing an inbound stream over the per-peer limit");
            let _ = ctx.abort(stream, RESET_REFUSED);
            ctx.emit(KadEvent::InboundError {
                peer,
                error: WireError::TooManyInbound(limit),
            });
            return;
        }
        *self.inbound_per_peer.entry(peer).or_insert(0) += 1;
        let timeout = self.config.request_timeout;
        let timer = self.set_timer(ctx, timeout, TimerKind::Inbound(stream));
        self.inbound.insert(
            stream,
            InboundStream {
                peer,
                reader: MessageReader::new(self.config.max_message_size),
                requests: 0,
                timer,
            },
        );
    }

    /// Bytes of requests arrived: answer every whole one.
    pub(super) fn inbound_data(&mut self, ctx: &mut Context<'_>, stream: StreamRef, data: &[u8]) {
        let Some(inbound) = self.inbound.get_mut(&stream) else {
            return;
        };
        inbound.reader.push(data);
        loop {
            let Some(inbound) = self.inbound.get_mut(&stream) else {
                return;
            };
            let request = match inbound.reader.next() {
                Ok(Some(request)) => request,
                Ok(None) => return,
                Err(e) => return self.inbound_failed(ctx, stream, e),
            };
            inbound.requests += 1;
            let peer = inbound.peer;
            if inbound.requests > self.config.max_requests_per_stream {
                let limit = self.config.max_requests_per_stream;
                return self.inbound_failed(ctx, stream, WireError::TooManyRequests(limit));
            }
            // A new request: the idle deadline starts again.
            let timer = inbound.timer;
            self.cancel_timer(ctx, timer);
            let timeout = self.config.request_timeout;
            let timer = self.set_timer(ctx, timeout, TimerKind::Inbound(stream));
            if let Some(inbound) = self.inbound.get_mut(&stream) {
                inbound.timer = timer;
            }
            match self.answer(ctx, peer, request) {
                Ok(Some(answer)) => {
                    if let Err(e) = ctx.send(stream, codec::encode(&answer)) {
                        return self.inbound_failed(ctx, stream, e.into());
                    }
                }
                Ok(None) => {}
                Err(e) => return self.inbound_failed(ctx, stream, e),
            }
        }
    }

    /// The asker finished its side: finish ours once the answers are out.
    pub(super) fn inbound_finished(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        let truncated = self
            .inbound
            .get(&stream)
            .is_some_and(|i| i.reader.buffered() > 0);
        if truncated {
            return self.inbound_failed(ctx, stream, WireError::Truncated);
        }
        self.untrack_inbound(ctx, stream);
        let _ = ctx.finish(stream);
    }

    /// The stream died under us.
    pub(super) fn inbound_closed(
        &mut self,
        ctx: &mut Context<'_>,
        stream: StreamRef,
        reason: &StreamError,
    ) {
        if let Some(inbound) = self.untrack_inbound(ctx, stream) {
            trace!(peer = %inbound.peer, %reason, "inbound kad stream closed");
        }
    }

    /// No request for a request timeout. A stream that carried requests is
    /// one the asker keeps for more (go reuses streams): closing it is
    /// routine. One that never brought a whole request is refused.
    pub(super) fn inbound_idle(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        let answered = self.inbound.get(&stream).is_some_and(|i| i.requests > 0);
        if answered
            && self
                .inbound
                .get(&stream)
                .is_some_and(|i| i.reader.buffered() == 0)
        {
            if let Some(inbound) = self.untrack_inbound(ctx, stream) {
                trace!(peer = %inbound.peer, "closing an idle inbound kad stream");
            }
            let _ = ctx.finish(stream);
            let _ = ctx.stop_sending(stream, 0);
            return;
        }
        let timeout = self.config.request_timeout;
        self.inbound_failed(ctx, stream, WireError::Timeout(timeout));
    }

    /// The asker stopped our answers. After answers that is how some
    /// implementations say goodbye; before any, it is a failure.
    pub(super) fn inbound_stopped(&mut self, ctx: &mut Context<'_>, stream: StreamRef, code: u64) {
        let answered = self.inbound.get(&stream).is_some_and(|i| i.requests > 0);
        if answered {
            self.untrack_inbound(ctx, stream);
            let _ = ctx.abort(stream, 0);
            return;
        }
        self.inbound_failed(ctx, stream, StreamError::Stopped(code).into());
    }

    /// Refuse the stream: reset it and report why.
    pub(super) fn inbound_failed(
        &mut self,
        ctx: &mut Context<'_>,
        stream: StreamRef,
        error: WireError,
    ) {
        let Some(inbound) = self.untrack_inbound(ctx, stream) else {
            return;
        };
        debug!(peer = %inbound.peer, %error, "inbound kad stream refused");
        let _ = ctx.abort(stream, RESET_REFUSED);
        ctx.emit(KadEvent::InboundError {
            peer: inbound.peer,
            error,
        });
    }

    fn untrack_inbound(
        &mut self,
        ctx: &mut Context<'_>,
        stream: StreamRef,
    ) -> Option<InboundStream> {
        let inbound = self.inbound.remove(&stream)?;
        self.cancel_timer(ctx, inbound.timer);
        if let Some(n) = self.inbound_per_peer.get_mut(&inbound.peer) {
            *n = n.saturating_sub(1);
            if *n == 0 {
                self.inbound_per_peer.remove(&inbound.peer);
            }
        }
        Some(inbound)
    }

    /// The answer to one request from `peer` (`None`: none is due).
    fn answer(
        &mut self,
        ctx: &mut Context<'_>,
        peer: PeerId,
        request: proto::Message,
    ) -> Result<Option<proto::Message>, WireError> {
        let now = ctx.now();
        match request.r#type {
            proto::PING => Ok(Some(proto::Message {
                r#type: proto::PING,
                ..Default::default()
            })),
            proto::FIND_NODE => {
                self.check_request_key(&request.key)?;
                let closer = self.closer_peers(ctx, &request.key, &peer);
                Ok(Some(proto::Message {
                    r#type: proto::FIND_NODE,
                    key: request.key,
                    closer_peers: closer,
                    ..Default::default()
                }))
            }
            proto::GET_VALUE => {
                self.check_request_key(&request.key)?;
                let record = self.store.get(&request.key, now).map(to_proto_record);
                let closer = self.closer_peers(ctx, &request.key, &peer);
                Ok(Some(proto::Message {
                    r#type: proto::GET_VALUE,
                    key: request.key,
                    record,
                    closer_peers: closer,
                    ..Default::default()
                }))
            }
            proto::PUT_VALUE => {
                self.check_request_key(&request.key)?;
                let wire = request
                    .record
                    .as_ref()
                    .ok_or(WireError::Invalid("PUT_VALUE without a record"))?;
                if wire.key != request.key {
                    return Err(WireError::Invalid(
                        "PUT_VALUE record key differs from the key",
                    ));
                }
                let record = Record {
                    key: wire.key.clone(),
                    value: wire.value.clone(),
                    publisher: PeerId::from_bytes(&wire.publisher).ok(),
                };
                self.store.put(record, now)?;
                ctx.emit(KadEvent::RecordStored {
                    peer,
                    key: request.key.clone(),
                });
                // The answer echoes the request: that is what tells the
                // asker it was stored.
                Ok(Some(request))
            }
            proto::ADD_PROVIDER => {
                self.check_request_key(&request.key)?;
                self.add_providers(ctx, peer, &request, now)?;
                Ok(None)
            }
            proto::GET_PROVIDERS => {
                self.check_request_key(&request.key)?;
                let providers = self
                    .store
                    .providers(&request.key, now)
                    .into_iter()
                    .map(|p| {
                        let mut info = PeerInfo {
                            peer: p.peer,
                            addrs: p.addrs,
                        };
                        if info.addrs.is_empty() {
                            info.addrs = ctx.peer_store_mut().addresses(&p.peer, now);
                        }
                        let connected = !ctx.connections_to(&p.peer).is_empty();
                        codec::encode_peer(&info, connected)
                    })
                    .collect();
                let closer = self.closer_peers(ctx, &request.key, &peer);
                Ok(Some(proto::Message {
                    r#type: proto::GET_PROVIDERS,
                    key: request.key,
                    closer_peers: closer,
                    provider_peers: providers,
                    ..Default::default()
                }))
            }
            other => Err(WireError::UnexpectedType(other)),
        }
    }

    fn check_request_key(&self, key: &[u8]) -> Result<(), WireError> {
        self.store.check_key(key).map_err(WireError::from)
    }

    /// Record the providers an ADD_PROVIDER names. Only the sender may
    /// announce itself (as go and rust-libp2p require): entries naming
    /// anyone else are dropped.
    fn add_providers(
        &mut self,
        ctx: &mut Context<'_>,
        sender: PeerId,
        request: &proto::Message,
        now: Instant,
    ) -> Result<(), WireError> {
        let providers = codec::decode_peers(&request.provider_peers, 4);
        let mut refused = None;
        for info in providers {
            if info.peer != sender {
                refused = Some(StoreError::ForeignProvider {
                    claimed: info.peer,
                    sender,
                });
                continue;
            }
            let ttl = self.config.address_ttl;
            for addr in &info.addrs {
                ctx.peer_store_mut()
                    .add_address(sender, addr.clone(), ttl, now);
            }
            let provider = Provider {
                peer: info.peer,
                addrs: info.addrs,
            };
            self.store.add_provider(&request.key, provider, now)?;
            ctx.emit(KadEvent::ProviderAdded {
                key: request.key.clone(),
                provider: sender,
            });
        }
        match refused {
            Some(e) => Err(e.into()),
            None => Ok(()),
        }
    }

    /// The k peers of our table closest to `key`, with their addresses,
    /// leaving out the asker and peers we know no address of.
    pub(super) fn closer_peers(
        &self,
        ctx: &mut Context<'_>,
        key: &[u8],
        asker: &PeerId,
    ) -> Vec<proto::Peer> {
        let now = ctx.now();
        let target = Key::from_bytes(key);
        self.table
            .closest(&target, self.config.k + 1)
            .into_iter()
            .filter(|p| p != asker)
            .take(self.config.k)
            .filter_map(|peer| {
                let addrs = ctx.peer_store_mut().addresses(&peer, now);
                if addrs.is_empty() {
                    return None;
                }
                let connected = !ctx.connections_to(&peer).is_empty();
                Some(codec::encode_peer(&PeerInfo { peer, addrs }, connected))
            })
            .collect()
    }
}

/// The wire form of a record.
pub(super) fn to_proto_record(record: &Record) -> proto::Record {
    proto::Record {
        key: record.key.clone(),
        value: record.value.clone(),
        time_received: String::new(),
        publisher: record.publisher.map(|p| p.to_bytes()).unwrap_or_default(),
        ttl: 0,
    }
}
