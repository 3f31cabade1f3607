//! The engine's state: [`Core`], its constructor and plain accessors.

use std::cmp::Reverse;
use std::collections::{BinaryHeap, HashMap, VecDeque};
use std::sync::mpsc::SyncSender;
use std::sync::{Arc, Mutex};
use std::time::Instant;

use libp2p_identity::PeerId;
use quinn_proto::{
    ConnectionHandle, ConnectionId, ConnectionIdGenerator, EndpointConfig, ServerConfig, Transmit,
};
use rand::rngs::StdRng;
use rand::{Rng, RngCore, SeedableRng};
use rustc_hash::FxHashMap;
use slab::Slab;

use crate::config::SwarmConfig;
use crate::connection::{Connection, SocketIndex};
use crate::events::SwarmEvent;
use crate::ids::PluginId;
use crate::peer_store::PeerStore;
use crate::tls::{TlsError, TlsIdentity};
use crate::transport;
use crate::wake::{Notifier, Wake};

/// QUIC connection ids from a seeded RNG (8 bytes, as quinn-proto's own
/// generator makes them), for seeded swarms.
struct SeededConnectionIds(StdRng);

impl ConnectionIdGenerator for SeededConnectionIds {
    fn generate_cid(&mut self) -> ConnectionId {
        let mut bytes = [0u8; 8];
        self.0.fill_bytes(&mut bytes);
        ConnectionId::new(&bytes)
    }

    fn cid_len(&self) -> usize {
        8
    }

    fn cid_lifetime(&self) -> Option<std::time::Duration> {
        None
    }
}

use super::peer_searches::PeerRouting;
use super::queues::{Callback, Deadline};
use crate::transport::quic::{Socket, SocketBinder};

/// Everything but the plugins: sockets, endpoints, connections, streams,
/// the peer store, deadlines and the queue of plugin calls. A plugin's
/// [`Context`](crate::Context) borrows it; the facade drives it.
pub(crate) struct Core {
    pub(crate) config: SwarmConfig,
    pub(crate) local_peer: PeerId,
    pub(crate) tls: TlsIdentity,
    pub(crate) endpoint_config: Arc<EndpointConfig>,
    pub(crate) server_config: Arc<ServerConfig>,
    pub(crate) transport: Arc<quinn_proto::TransportConfig>,
    pub(crate) binder: Box<dyn SocketBinder>,
    pub(crate) sockets: Vec<Socket>,
    pub(crate) connections: Slab<Connection>,
    pub(crate) next_generation: u32,
    pub(crate) by_quic_handle: FxHashMap<(SocketIndex, ConnectionHandle), usize>,
    pub(crate) protocols: HashMap<String, PluginId>,
    pub(crate) packet_protocols: HashMap<String, PluginId>,
    /// Datagrams for no open flow (unknown id, closed flow, malformed).
    pub(crate) dropped_datagrams: u64,
    pub(crate) plugin_names: Vec<&'static str>,
    pub(crate) peer_store: PeerStore,
    pub(crate) deadlines: BinaryHeap<Reverse<(Instant, Deadline)>>,
    pub(crate) timers: HashMap<u64, (PluginId, u64)>,
    pub(crate) next_timer: u64,
    pub(crate) callbacks: VecDeque<Callback>,
    /// Connections whose quinn-proto events must be drained.
    pub(crate) touched: Vec<usize>,
    /// Connections to ask for datagrams in `poll_transmit`.
    pub(crate) transmit_queue: VecDeque<usize>,
    /// Datagrams an endpoint produced itself (refusals, stateless resets).
    pub(crate) endpoint_transmits: VecDeque<(SocketIndex, Transmit, Vec<u8>)>,
    pub(crate) notifier: Notifier,
    pub(crate) subscribers: Vec<SyncSender<SwarmEvent>>,
    pub(crate) dropped_events: u64,
    pub(crate) now: Instant,
    pub(crate) shutting_down: bool,
    pub(crate) scratch: Vec<u8>,
    /// The swarm's randomness: from `SwarmConfig::seed`, or the OS.
    pub(crate) rng: StdRng,
    /// The peer router and the dials waiting for it.
    pub(crate) peer_routing: PeerRouting,
    /// The circuit transport and the dials through relays waiting for it.
    pub(crate) circuit_dials: super::circuit_dials::CircuitDials,
    /// Streams and packet flows ever handed to a thread.
    pub(crate) handed_to_threads: u64,
    /// Every published event, kept for a driver on this thread (see
    /// `Swarm::record_events`).
    pub(crate) recorded_events: Option<Vec<SwarmEvent>>,
    /// TCP listen addresses (the driver owns the listeners).
    pub(crate) tcp_listeners: Vec<std::net::SocketAddr>,
    /// Dialed TCP connections waiting for the driver's connect.
    pub(crate) tcp_connects: VecDeque<super::TcpConnect>,
    /// TCP connections touched since the driver last asked
    /// (`Swarm::poll_tcp_ready`): they may have bytes to write or a close.
    pub(crate) tcp_ready: VecDeque<crate::ids::ConnId>,
    /// The TLS server config for `/tls/1.0.0` over TCP, built on first use.
    pub(crate) tcp_tls_server: Option<Arc<rustls::ServerConfig>>,
    /// Addresses others reach us at, as confirmed by a plugin (AutoNAT),
    /// at most `MAX_EXTERNAL_ADDRS` (see `external_addrs.rs`).
    pub(crate) external_addrs: Vec<multiaddr::Multiaddr>,
}

impl Core {
    /// An engine with no socket yet; `waker` wakes the driver when another
    /// thread needs the swarm.
    pub(crate) fn new(
        config: SwarmConfig,
        binder: Box<dyn SocketBinder>,
        waker: Arc<dyn Wake>,
        now: Instant,
    ) -> Result<Self, TlsError> {
        let local_peer = config.keypair.public().to_peer_id();
        let mut rng = match config.seed {
            Some(seed) => StdRng::seed_from_u64(seed),
            None => StdRng::from_os_rng(),
        };
        let mut tls = match config.seed {
            Some(_) => TlsIdentity::from_seed(&config.keypair, rng.random())?,
            None => TlsIdentity::new(&config.keypair)?,
        };
        if let Some(shared) = &config.certificate_cache {
            tls.share_verified_certificates(shared.0.clone());
        }
        let mut endpoint_config = EndpointConfig::default();
        if config.seed.is_some() {
            // quinn-proto's own generator draws connection ids from the
            // thread's RNG; a seeded one per endpoint, handed out in order.
            let seeds = Mutex::new(StdRng::seed_from_u64(rng.random()));
            endpoint_config.cid_generator(move || {
                let seed = seeds.lock().unwrap_or_else(|p| p.into_inner()).random();
                Box::new(SeededConnectionIds(StdRng::seed_from_u64(seed)))
            });
        }
        let transport = Arc::new(transport::quic::transport_config(&config));
        let server_config = Arc::new(transport::quic::server_config(&tls, transport.clone())?);
        Ok(Self {
            config,
            local_peer,
            tls,
            endpoint_config: Arc::new(endpoint_config),
            server_config,
            transport,
            binder,
            sockets: Vec::new(),
            connections: Slab::new(),
            next_generation: 0,
            by_quic_handle: FxHashMap::default(),
            protocols: HashMap::new(),
            packet_protocols: HashMap::new(),
            dropped_datagrams: 0,
            plugin_names: Vec::new(),
            peer_store: PeerStore::new(),
            deadlines: BinaryHeap::new(),
            timers: HashMap::new(),
            next_timer: 0,
            callbacks: VecDeque::new(),
            touched: Vec::new(),
            transmit_queue: VecDeque::new(),
            endpoint_transmits: VecDeque::new(),
            notifier: Notifier::new(waker),
            subscribers: Vec::new(),
            dropped_events: 0,
            now,
            shutting_down: false,
            scratch: Vec::new(),
            rng,
            peer_routing: PeerRouting::default(),
            circuit_dials: Default::default(),
            handed_to_threads: 0,
            recorded_events: None,
            tcp_listeners: Vec::new(),
            tcp_connects: VecDeque::new(),
            tcp_ready: VecDeque::new(),
            tcp_tls_server: None,
            external_addrs: Vec::new(),
        })
    }

    pub(crate) fn local_peer_id(&self) -> PeerId {
        self.local_peer
    }

    pub(crate) fn now(&self) -> Instant {
        self.now
    }

    pub(crate) fn peer_store(&self) -> &PeerStore {
        &self.peer_store
    }

    pub(crate) fn peer_store_mut(&mut self) -> &mut PeerStore {
        &mut self.peer_store
    }

    pub(crate) fn advertise_protocol(&mut self, plugin: PluginId, protocol: &str) -> bool {
        match self.protocols.get(protocol) {
            Some(owner) => *owner == plugin,
            None => {
                self.protocols.insert(protocol.to_string(), plugin);
                self.callbacks.push_back(Callback::LocalProtocolsChanged);
                true
            }
        }
    }

    pub(crate) fn withdraw_protocol(&mut self, plugin: PluginId, protocol: &str) -> bool {
        if self.protocols.get(protocol) != Some(&plugin) {
            return false;
        }
        self.protocols.remove(protocol);
        self.callbacks.push_back(Callback::LocalProtocolsChanged);
        true
    }

    pub(crate) fn supported_protocols(&self) -> Vec<String> {
        let mut ids: Vec<String> = self.protocols.keys().cloned().collect();
        ids.sort();
        ids
    }

    pub(crate) fn local_public_key(&self) -> libp2p_identity::PublicKey {
        self.config.keypair.public()
    }
}
