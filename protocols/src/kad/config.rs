//! How the Kademlia plugin behaves: every limit and interval, with the
//! defaults and the reasons for them.

use std::sync::Arc;
use std::time::Duration;

use swarm::Multiaddr;

use super::validator::Validator;

/// The protocol id of the public IPFS DHT.
pub const DEFAULT_PROTOCOL: &str = "/ipfs/kad/1.0.0";

/// Whether this node serves the DHT.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum Mode {
    /// Accept Kademlia streams and advertise the protocol (through
    /// identify), so that others add us to their routing tables.
    Server,
    /// Only ask: the protocol is not advertised and inbound Kademlia streams
    /// are refused by multistream-select, so nobody adds us.
    Client,
}

/// Per-IP-group limits on routing table entries, against one host (or one
/// network) filling our table with identities it made up. Peers reached on
/// loopback are not counted (tests and local clusters share one address).
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub struct IpLimits {
    /// Most entries of one /24 (IPv4) or /48 (IPv6) in one bucket.
    pub per_bucket: usize,
    /// Most entries of one /24 or /48 in the whole table.
    pub per_table: usize,
}

impl Default for IpLimits {
    /// 2 per bucket, 10 in the table: a bucket of 20 then spans at least
    /// ten networks, while a small hosting provider's range still fits.
    fn default() -> Self {
        Self {
            per_bucket: 2,
            per_table: 10,
        }
    }
}

/// The Kademlia plugin's configuration; [`KadConfig::default`] follows the
/// spec and the common implementations.
#[derive(Clone)]
pub struct KadConfig {
    /// The protocol id. Default [`DEFAULT_PROTOCOL`]; an application DHT
    /// uses its own (e.g. `/myapp/kad/1.0.0`) to stay apart from IPFS.
    pub protocol: String,
    /// Server or client mode at start. Default [`Mode::Server`]; switch
    /// later with [`KadRequest::SetMode`](super::KadRequest::SetMode).
    pub mode: Mode,
    /// Bucket size and the number of results of a lookup (k). Default 20.
    pub k: usize,
    /// Parallel requests of one lookup (α). Default 3.
    pub alpha: usize,
    /// Largest message we accept, in bytes (not counting its length
    /// prefix). Default 64 KiB: a GET_PROVIDERS answer with 20 closer peers
    /// and 20 providers of 8 addresses each is about 15 KiB, and a
    /// GET_VALUE answer carries one record of at most
    /// [`KadConfig::max_record_size`] plus 20 peers. Bigger is never needed
    /// and would let each of a peer's inbound streams hold more of our
    /// memory (go accepts 4 MiB, rust-libp2p 16 KiB).
    pub max_message_size: usize,
    /// Longest one request may take, from asking (including the dial) to
    /// the whole answer; also how long an inbound stream may stay silent.
    /// Default 10 s (rust-libp2p's).
    pub request_timeout: Duration,
    /// Most inbound streams one peer may have open with us at once; more
    /// are reset. Default 16.
    pub max_inbound_streams_per_peer: usize,
    /// Most requests answered on one inbound stream. Default 64.
    pub max_requests_per_stream: usize,
    /// Longest a query may run. Default 60 s.
    pub query_timeout: Duration,
    /// Most queries running at once; more are refused. Default 64.
    pub max_queries: usize,
    /// Records a GET_VALUE needs before it returns. Default 1.
    pub get_quorum: usize,
    /// Peers that must store a PUT_VALUE for it to succeed. Default 1.
    pub put_quorum: usize,
    /// Per-IP-group limits on the routing table; `None` for none.
    pub ip_limits: Option<IpLimits>,
    /// How long addresses given to us directly stay in the peer store
    /// (`AddPeer`, bootstrap peers, a provider's own ADD_PROVIDER).
    /// Default 1 h.
    pub address_ttl: Duration,
    /// How long addresses that answers name for *other* peers (closer
    /// peers, providers) stay in the peer store. Short, as go-libp2p's
    /// temporary TTL: a lookup uses them at once, and a peer we then
    /// connect to gets its addresses for longer from the dial and identify;
    /// the rest would otherwise pile up with the size of the network.
    /// Default 2 min.
    pub lookup_address_ttl: Duration,
    /// Peers to add to the routing table at start (`/…/p2p/<id>`); they
    /// are trusted to speak the protocol.
    pub bootstrap_peers: Vec<Multiaddr>,
    /// Bootstrap (a self-lookup plus refreshes of stale buckets) this often;
    /// the first runs as soon as the table has a peer. `None`: only when
    /// asked. Default 5 min.
    pub bootstrap_interval: Option<Duration>,
    /// Make this plugin the swarm's peer router, so that `dial_with_id`
    /// finds peers through the DHT. Default `true`.
    pub peer_routing: bool,
    /// Most records stored. Default 1024.
    pub max_records: usize,
    /// Largest record (key plus value) stored or sent, in bytes. Default
    /// 16 KiB: an IPNS record is under 10 KiB, and rust-libp2p accepts no
    /// message over 16 KiB.
    pub max_record_size: usize,
    /// Longest key accepted, in bytes. Default 256.
    pub max_key_size: usize,
    /// Most provider entries of one key. Default 20 (k: one lookup's worth).
    pub max_providers_per_key: usize,
    /// Most keys with provider entries. Default 1024.
    pub max_provider_keys: usize,
    /// Most keys this node itself provides (and republishes). Default 1024.
    pub max_provided_keys: usize,
    /// How long a stored record lives. Default 48 h.
    pub record_ttl: Duration,
    /// How long a provider entry lives. Default 48 h.
    pub provider_ttl: Duration,
    /// Republish the providers we announce this often. Default 22 h.
    pub provider_republish_interval: Duration,
    /// Republish the records we put this often; `None`: never. Default 22 h.
    pub record_republish_interval: Option<Duration>,
    /// How often expiry and republishing are checked. Default 1 min.
    pub housekeeping_interval: Duration,
    /// Validators by key namespace (`/pk/…` has namespace `pk`); keys with
    /// no validator are accepted. Default: `pk` checks that the value is the
    /// public key of the PeerId in the key.
    pub validators: Vec<(String, Arc<dyn Validator>)>,
}

impl Default for KadConfig {
    fn default() -> Self {
        Self {
            protocol: DEFAULT_PROTOCOL.into(),
            mode: Mode::Server,
            k: 20,
            alpha: 3,
            max_message_size: 64 * 1024,
            request_timeout: Duration::from_secs(10),
            max_inbound_streams_per_peer: 16,
            max_requests_per_stream: 64,
            query_timeout: Duration::from_secs(60),
            max_queries: 64,
            get_quorum: 1,
            put_quorum: 1,
            ip_limits: Some(IpLimits::default()),
            address_ttl: Duration::from_secs(3600),
            lookup_address_ttl: Duration::from_secs(120),
            bootstrap_peers: Vec::new(),
            bootstrap_interval: Some(Duration::from_secs(300)),
            peer_routing: true,
            max_records: 1024,
            max_record_size: 16 * 1024,
            max_key_size: 256,
            max_providers_per_key: 20,
            max_provider_keys: 1024,
            max_provided_keys: 1024,
            record_ttl: Duration::from_secs(48 * 3600),
            provider_ttl: Duration::from_secs(48 * 3600),
            provider_republish_interval: Duration::from_secs(22 * 3600),
            record_republish_interval: Some(Duration::from_secs(22 * 3600)),
            housekeeping_interval: Duration::from_secs(60),
            validators: vec![("pk".into(), Arc::new(super::validator::PublicKeyValidator))],
        }
    }
}

impl std::fmt::Debug for KadConfig {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("KadConfig")
            .field("protocol", &self.protocol)
            .field("mode", &self.mode)
            .field("k", &self.k)
            .field("alpha", &self.alpha)
            .field("max_message_size", &self.max_message_size)
            .field("request_timeout", &self.request_timeout)
            .field("query_timeout", &self.query_timeout)
            .finish_non_exhaustive()
    }
}
