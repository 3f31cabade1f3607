//! How other plugins and other threads ask the Kademlia plugin for work:
//! a [`KadCommand`] carries a [`KadRequest`] and says where the outcome
//! goes (a channel, or a [`KadEvent::QueryFinished`] event), and the
//! outcome is a `Result<`[`KadOutput`]`, `[`KadError`]`>`.

use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::mpsc;

use swarm::{Context, Multiaddr, PeerId, PluginId};

use super::config::Mode;
use super::error::{KadError, WireError};
use super::store::{Provider, Record};

/// Names one query, to match it with its [`KadEvent::QueryFinished`].
/// Unique within the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct QueryId(u64);

impl QueryId {
    /// A fresh id.
    pub fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(1);
        QueryId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

/// What to do.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KadRequest {
    /// The k peers closest to a key (bytes, hashed like every key).
    GetClosestPeers(Vec<u8>),
    /// A peer's addresses; they are also added to the peer store.
    FindPeer(PeerId),
    /// Store a record here and on the k peers closest to its key.
    PutValue(Record),
    /// Find a record; done once the quorum of valid records is found.
    GetValue(Vec<u8>),
    /// Announce us as a provider of a key to the k closest peers, and keep
    /// republishing it.
    StartProviding(Vec<u8>),
    /// Stop republishing a key (entries others hold expire on their own).
    StopProviding(Vec<u8>),
    /// Find providers of a key.
    GetProviders(Vec<u8>),
    /// A lookup of our own id plus refreshes of stale buckets.
    Bootstrap,
    /// Add a peer (trusted to speak the protocol) to the routing table,
    /// with addresses for the peer store.
    AddPeer {
        /// The peer.
        peer: PeerId,
        /// Its addresses.
        addrs: Vec<Multiaddr>,
    },
    /// Switch between server and client mode: the protocol is advertised
    /// (and inbound requests accepted) or withdrawn, and identify pushes
    /// the change to connected peers, which add or drop us.
    SetMode(Mode),
    /// Report the routing table and store sizes.
    Stats,
    /// List the routing table's peers.
    RoutingTable,
}

/// What a query found.
#[derive(Clone, Debug, PartialEq, Eq)]
pub enum KadOutput {
    /// [`KadRequest::GetClosestPeers`]: closest first.
    ClosestPeers(Vec<PeerId>),
    /// [`KadRequest::FindPeer`]: its addresses.
    PeerAddrs(Vec<Multiaddr>),
    /// [`KadRequest::PutValue`]: how many remote peers stored it (their
    /// answer echoed the record).
    Stored(usize),
    /// [`KadRequest::GetValue`]: the valid records found (at least the
    /// quorum; the local copy counts).
    Records(Vec<Record>),
    /// [`KadRequest::StartProviding`]: how many peers the announcement
    /// went to.
    Providing(usize),
    /// [`KadRequest::GetProviders`]: the providers found.
    Providers(Vec<Provider>),
    /// [`KadRequest::Bootstrap`]: the routing table size afterwards.
    Bootstrapped(usize),
    /// A request that needs no network (add peer, stop providing).
    Done,
    /// [`KadRequest::Stats`].
    Stats(KadStats),
    /// [`KadRequest::RoutingTable`]: every entry, bucket by bucket.
    Peers(Vec<PeerId>),
}

/// Sizes of the plugin's tables, for tests and monitoring.
#[derive(Clone, Copy, Debug, Default, PartialEq, Eq)]
pub struct KadStats {
    /// Routing table entries.
    pub routing_table: usize,
    /// Records stored.
    pub records: usize,
    /// Keys with provider entries.
    pub provider_keys: usize,
    /// Provider entries over all keys.
    pub providers: usize,
    /// Queries running.
    pub queries: usize,
    /// Inbound streams open.
    pub inbound_streams: usize,
    /// Outbound requests in flight or waiting for a connection.
    pub outbound_requests: usize,
}

/// The outcome of a query.
pub type KadResult = Result<KadOutput, KadError>;

/// Where an outcome goes.
#[derive(Debug)]
pub enum Reply {
    /// Sent on this channel (another thread waits on it).
    Channel(mpsc::Sender<KadResult>),
    /// Emitted as [`KadEvent::QueryFinished`] (plugins and subscribers).
    Event,
}

/// A message for the Kademlia plugin: send it with
/// [`Context::send_message`] or
/// [`SwarmHandle::send_message`](swarm::SwarmHandle::send_message).
#[derive(Debug)]
pub struct KadCommand {
    /// The id the outcome carries.
    pub id: QueryId,
    /// What to do.
    pub request: KadRequest,
    /// Where the outcome goes.
    pub reply: Reply,
}

impl KadCommand {
    /// A command whose outcome arrives on the returned channel.
    pub fn with_channel(request: KadRequest) -> (Self, mpsc::Receiver<KadResult>) {
        let (tx, rx) = mpsc::channel();
        let command = Self {
            id: QueryId::next(),
            request,
            reply: Reply::Channel(tx),
        };
        (command, rx)
    }

    /// A command whose outcome is emitted as [`KadEvent::QueryFinished`].
    pub fn with_event(request: KadRequest) -> Self {
        Self {
            id: QueryId::next(),
            request,
            reply: Reply::Event,
        }
    }
}

/// Start a query from a plugin: the Kademlia plugin (`kad`, what
/// `add_protocol` returned for it) runs it and emits
/// [`KadEvent::QueryFinished`] with the returned id.
pub fn start_query(ctx: &mut Context<'_>, kad: PluginId, request: KadRequest) -> QueryId {
    let command = KadCommand::with_event(request);
    let id = command.id;
    ctx.send_message(kad, command);
    id
}

/// What the Kademlia plugin reports (see [`Context::emit`]; applications
/// get it as `SwarmEvent::Protocol` and downcast).
#[derive(Clone, Debug)]
pub enum KadEvent {
    /// A query started with [`Reply::Event`] finished.
    QueryFinished {
        /// Its id.
        id: QueryId,
        /// Its outcome.
        result: KadResult,
        /// Hops to the closest peer that answered: the requests on the
        /// path that led to it, itself included (1: a peer the routing
        /// table knew); 0 for a query that reached nobody.
        hops: u32,
    },
    /// A peer entered the routing table.
    PeerAdded(PeerId),
    /// A peer left the routing table.
    PeerRemoved(PeerId),
    /// A peer's inbound request was refused or its stream broke; we reset
    /// that stream and keep serving.
    InboundError {
        /// The peer.
        peer: PeerId,
        /// Why.
        error: WireError,
    },
    /// We stored a record a peer sent.
    RecordStored {
        /// The sender.
        peer: PeerId,
        /// The record's key.
        key: Vec<u8>,
    },
    /// We stored a provider entry a peer sent.
    ProviderAdded {
        /// The key.
        key: Vec<u8>,
        /// The provider.
        provider: PeerId,
    },
}

/// Hand a result to whoever asked.
pub(super) fn deliver(
    ctx: &mut Context<'_>,
    id: QueryId,
    reply: Option<Reply>,
    result: KadResult,
    hops: u32,
) {
    match reply {
        Some(Reply::Channel(tx)) => {
            let _ = tx.send(result);
        }
        Some(Reply::Event) => ctx.emit(KadEvent::QueryFinished { id, result, hops }),
        None => {}
    }
}
