//! The plugin's state types: timer tokens, requests in flight, inbound
//! streams and queries. Kept apart from the code that drives them (the
//! `impl Kademlia` blocks of `plugin.rs`, `rpc.rs`, `serve.rs` and
//! `queries.rs`), so that those files import this one and `plugin.rs`,
//! and nothing imports back.

use bytes::Bytes;
use swarm::{Multiaddr, PeerId, StreamRef, TimerId};

use super::api::{KadOutput, KadResult, QueryId, Reply};
use super::codec::MessageReader;
use super::proto;
use super::query::Lookup;
use super::store::{Provider, Record};

/// What a timer token stands for.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(super) enum TimerKind {
    /// An outbound request's deadline.
    Rpc(RpcId),
    /// An inbound stream's idle deadline.
    Inbound(StreamRef),
    /// A query's deadline.
    Query(QueryId),
    /// Expiry and republishing.
    Housekeeping,
    /// The periodic bootstrap.
    Bootstrap,
}

/// Names one outbound request within the plugin.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub(crate) struct RpcId(pub(crate) u64);

/// Who waits for a request's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub(crate) enum Purpose {
    /// A query.
    Query(QueryId),
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
    pub stream: Option<StreamRef>,
    pub reader: MessageReader,
    pub timer: (TimerId, u64),
}

/// One inbound stream being served.
pub(crate) struct InboundStream {
    pub peer: PeerId,
    pub reader: MessageReader,
    pub requests: usize,
    pub timer: (TimerId, u64),
}

/// What a query is for, and what it has found so far.
pub(super) enum Kind {
    ClosestPeers,
    FindPeer {
        target: PeerId,
        found: Vec<Multiaddr>,
        /// Whether the swarm's peer routing waits for it.
        routing: bool,
    },
    GetValue {
        records: Vec<Record>,
        quorum: usize,
    },
    PutValue {
        record: Record,
        stored: usize,
    },
    StartProviding {
        sent: usize,
    },
    GetProviders {
        providers: Vec<Provider>,
    },
    Bootstrap {
        /// Keys still to look up after the current lookup.
        refresh: Vec<Vec<u8>>,
    },
}

/// Where a query stands.
pub(super) enum Phase {
    Lookup,
    /// Requests out to the closest peers; this many not answered yet.
    Write {
        outstanding: usize,
    },
}

/// One running query.
pub(super) struct Query {
    /// The key bytes the lookup is about (sent in requests).
    pub(super) key: Vec<u8>,
    pub(super) kind: Kind,
    pub(super) phase: Phase,
    pub(super) lookup: Lookup,
    pub(super) reply: Option<Reply>,
    pub(super) timer: (TimerId, u64),
    /// Whether the routing table was empty when it started.
    pub(super) no_peers: bool,
}

impl Query {
    /// The swarm's peer routing waits for this query.
    pub(super) fn set_routing(&mut self) {
        if let Kind::FindPeer { routing, .. } = &mut self.kind {
            *routing = true;
        }
    }

    /// The request the lookup phase sends.
    pub(super) fn lookup_message(&self) -> proto::Message {
        let r#type = match self.kind {
            Kind::GetValue { .. } => proto::GET_VALUE,
            Kind::GetProviders { .. } => proto::GET_PROVIDERS,
            _ => proto::FIND_NODE,
        };
        proto::Message {
            r#type,
            key: self.key.clone(),
            ..Default::default()
        }
    }

    /// The result if the query can stop before its lookup ends.
    pub(super) fn early_result(&self, k: usize) -> Option<KadResult> {
        match &self.kind {
            Kind::FindPeer { found, .. } if !found.is_empty() => {
                Some(Ok(KadOutput::PeerAddrs(found.clone())))
            }
            Kind::GetValue { records, quorum } if records.len() >= *quorum => {
                Some(Ok(KadOutput::Records(records.clone())))
            }
            Kind::GetProviders { providers } if providers.len() >= k => {
                Some(Ok(KadOutput::Providers(providers.clone())))
            }
            _ => None,
        }
    }
}
