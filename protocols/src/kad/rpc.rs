//! Asking one peer one thing: an outbound request on a stream of its own,
//! with the dial it may need first, a deadline, and exactly one outcome
//! (the answer, or a [`WireError`]) handed to whoever asked.

use bytes::Bytes;
use swarm::multiaddr::Protocol as AddrPart;
use swarm::{ConnId, Context, DialError, PeerId, TimerId};
use tracing::{debug, trace};

use super::codec::{self, MessageReader};
use super::error::WireError;
use super::plugin::{Kademlia, TimerKind};
use super::proto;

/// Dials in a row that must fail before a routing table entry is dropped.
const MAX_DIAL_FAILURES: u8 = 3;

/// Names one outbound request within the plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct RpcId(u64);

/// Who waits for a request's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// A query.
    Query(super::api::QueryId),
    /// The liveness check of a full bucket's oldest entry.
    Check,
}

/// One outbound request.
pub(crate) struct Rpc {
    pub peer: PeerId,
    /// Encoded with its length prefix; sent once a stream is open.
    pub request: Bytes,
    /// The request's type, which the answer must carry.
    pub kind: i32,
    pub purpose: Purpose,
    pub stream: Option<swarm::StreamRef>,
    pub reader: MessageReader,
    pub timer: (TimerId, u64),
}

/// A FIND_NODE request for `key`.
pub(crate) fn find_node(key: Vec<u8>) -> proto::Message {
    proto::Message {
        r#type: proto::FIND_NODE,
        key,
        ..Default::default()
    }
}

/// Whether a request of this type gets an answer. ADD_PROVIDER gets none
/// (the spec; go and rust-libp2p send nothing back).
fn expects_answer(kind: i32) -> bool {
    kind != proto::ADD_PROVIDER
}

impl Kademlia {
    /// Ask `peer` with `message`; the outcome comes back to `purpose`
    /// through [`Kademlia::complete_rpc`], never from inside this call. An
    /// error here means nothing was started (no address, no stream).
    pub(super) fn send_rpc(
        &mut self,
        ctx: &mut Context<'_>,
        peer: PeerId,
        message: proto::Message,
        purpose: Purpose,
    ) -> Result<RpcId, WireError> {
        if peer == self.local {
            return Err(WireError::Unreachable("that is us".into()));
        }
        let connected = !ctx.connections_to(&peer).is_empty();
        let dialing = self.waiting_for_conn.contains_key(&peer);
        if !connected && !dialing {
            self.dial(ctx, peer)?;
        }
        self.next_rpc += 1;
        let id = RpcId(self.next_rpc);
        let timeout = self.config.request_timeout;
        let timer = self.set_timer(ctx, timeout, TimerKind::Rpc(id));
        self.rpcs.insert(
            id,
            Rpc {
                peer,
                request: codec::encode(&message),
                kind: message.r#type,
                purpose,
                stream: None,
                reader: MessageReader::new(self.config.max_message_size),
                timer,
            },
        );
        if connected {
            self.open_rpc_stream(ctx, id);
        } else {
            self.waiting_for_conn.entry(peer).or_default().push(id);
        }
        Ok(id)
    }

    /// Dial `peer` at the first address of the peer store that the swarm
    /// takes; the others are kept to try if that fails.
    fn dial(&mut self, ctx: &mut Context<'_>, peer: PeerId) -> Result<(), WireError> {
        let now = ctx.now();
        let mut addrs = ctx.peer_store_mut().addresses(&peer, now);
        addrs.truncate(codec::MAX_ADDRS_PER_PEER);
        let mut last_error = "no known address".to_string();
        while !addrs.is_empty() {
            let addr = addrs.remove(0);
            // Never `dial_with_id`: with no address it would ask the peer
            // router, which is us.
            match ctx.dial(&addr.clone().with(AddrPart::P2p(peer)), false) {
                Ok(conn) => {
                    trace!(%peer, %addr, "dialing");
                    self.dials.insert(conn, (peer, addrs));
                    self.waiting_for_conn.entry(peer).or_default();
                    return Ok(());
                }
                Err(e) => last_error = e.to_string(),
            }
        }
        Err(WireError::Unreachable(last_error))
    }

    /// A dial of ours failed: try the next address, or fail every request
    /// waiting for the peer.
    pub(super) fn on_dial_failure(
        &mut self,
        ctx: &mut Context<'_>,
        conn: ConnId,
        error: &DialError,
    ) {
        let Some((peer, mut rest)) = self.dials.remove(&conn) else {
            return;
        };
        if !ctx.connections_to(&peer).is_empty() {
            return self.flush_waiting(ctx, peer);
        }
        while !rest.is_empty() {
            let addr = rest.remove(0);
            if let Ok(conn) = ctx.dial(&addr.with(AddrPart::P2p(peer)), false) {
                self.dials.insert(conn, (peer, rest));
                return;
            }
        }
        debug!(%peer, %error, "cannot reach peer");
        let waiting = self.waiting_for_conn.remove(&peer).unwrap_or_default();
        for id in waiting {
            self.complete_rpc(ctx, id, Err(WireError::Unreachable(error.to_string())));
        }
        // A peer we cannot dial is no use in the table, but one failure may
        // be a busy remote (handshake limits) or a lost flight: it goes
        // after a few in a row.
        if self.table.contains(&peer) {
            let failures = self.dial_failures.entry(peer).or_insert(0);
            *failures += 1;
            if *failures >= MAX_DIAL_FAILURES {
                self.dial_failures.remove(&peer);
                self.drop_peer(ctx, &peer);
            }
        }
    }

    /// A connection to `peer` is up: send what waited for it.
    pub(super) fn flush_waiting(&mut self, ctx: &mut Context<'_>, peer: PeerId) {
        for id in self.waiting_for_conn.remove(&peer).unwrap_or_default() {
            self.open_rpc_stream(ctx, id);
        }
    }

    /// Open the request's stream and send it, finishing our side at once:
    /// one request per stream. An outcome known here (the stream cannot be
    /// opened; an ADD_PROVIDER, which gets no answer, was handed over) is
    /// delivered on a zero-delay timer, never from inside this call, so that
    /// a query never re-enters itself.
    fn open_rpc_stream(&mut self, ctx: &mut Context<'_>, id: RpcId) {
        let Some(rpc) = self.rpcs.get(&id) else {
            return;
        };
        let (peer, request, kind) = (rpc.peer, rpc.request.clone(), rpc.kind);
        let protocol = self.config.protocol.clone();
        let stream = match ctx.open_stream(peer, &protocol) {
            Ok(stream) => stream,
            Err(e) => return self.defer_rpc(ctx, id, Err(e.into())),
        };
        // The request follows the negotiation in the same flight.
        if let Err(e) = ctx.send(stream, request).and_then(|_| ctx.finish(stream)) {
            let _ = ctx.abort(stream, 0);
            return self.defer_rpc(ctx, id, Err(e.into()));
        }
        if !expects_answer(kind) {
            // Nothing comes back; the stream ends once the remote has read
            // it. Handed over counts as done.
            return self.defer_rpc(ctx, id, Ok(proto::Message::default()));
        }
        if let Some(rpc) = self.rpcs.get_mut(&id) {
            rpc.stream = Some(stream);
        }
        self.rpc_streams.insert(stream, id);
    }

    /// Deliver a request's outcome on the next turn.
    fn defer_rpc(
        &mut self,
        ctx: &mut Context<'_>,
        id: RpcId,
        result: Result<proto::Message, WireError>,
    ) {
        let Some(rpc) = self.rpcs.get_mut(&id) else {
            return;
        };
        let old = rpc.timer;
        self.cancel_timer(ctx, old);
        self.deferred.insert(id, result);
        let timer = self.set_timer(ctx, std::time::Duration::ZERO, TimerKind::Rpc(id));
        if let Some(rpc) = self.rpcs.get_mut(&id) {
            rpc.timer = timer;
        }
    }

    /// Bytes of an answer arrived.
    pub(super) fn rpc_data(
        &mut self,
        ctx: &mut Context<'_>,
        stream: swarm::StreamRef,
        data: &[u8],
    ) {
        let Some(&id) = self.rpc_streams.get(&stream) else {
            return;
        };
        let Some(rpc) = self.rpcs.get_mut(&id) else {
            return;
        };
        rpc.reader.push(data);
        match rpc.reader.next() {
            Ok(None) => {}
            Ok(Some(answer)) if answer.r#type != rpc.kind => {
                let kind = answer.r#type;
                self.complete_rpc(ctx, id, Err(WireError::UnexpectedType(kind)));
            }
            Ok(Some(answer)) => self.complete_rpc(ctx, id, Ok(answer)),
            Err(e) => self.complete_rpc(ctx, id, Err(e)),
        }
    }

    /// The request's one outcome: forget it, close its stream, and tell
    /// whoever asked. Later calls for the same id do nothing.
    pub(super) fn complete_rpc(
        &mut self,
        ctx: &mut Context<'_>,
        id: RpcId,
        result: Result<proto::Message, WireError>,
    ) {
        self.deferred.remove(&id);
        let Some(rpc) = self.rpcs.remove(&id) else {
            return;
        };
        self.cancel_timer(ctx, rpc.timer);
        if let Some(stream) = rpc.stream {
            self.rpc_streams.remove(&stream);
            // Our side is finished; this stops theirs (a no-op if it ended).
            let _ = ctx.abort(stream, 0);
        }
        if let Some(waiting) = self.waiting_for_conn.get_mut(&rpc.peer) {
            waiting.retain(|w| *w != id);
        }
        let now = ctx.now();
        match &result {
            Ok(_) => {
                self.table.mark_seen(&rpc.peer, now);
            }
            Err(e) => debug!(peer = %rpc.peer, error = %e, "request failed"),
        }
        match rpc.purpose {
            Purpose::Query(query) => self.on_query_answer(ctx, query, rpc.peer, result),
            Purpose::Check => {
                if result.is_err() {
                    // The oldest entry is gone: the waiting newcomer takes
                    // its place.
                    self.drop_peer(ctx, &rpc.peer);
                }
            }
        }
    }
}
