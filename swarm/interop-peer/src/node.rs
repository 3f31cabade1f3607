//! The background thread: the rust-libp2p swarm with its behaviours on a
//! current-thread tokio runtime, serving the [`RustPeer`](crate::RustPeer)
//! commands and reporting [`PeerEvent`](crate::PeerEvent)s.

use std::{
    collections::HashMap,
    sync::{Arc, Mutex, mpsc as std_mpsc},
    time::{Duration, Instant},
};

use futures::StreamExt;
use libp2p::{
    StreamProtocol, Swarm, SwarmBuilder, identify,
    multiaddr::Protocol,
    ping,
    swarm::{
        ConnectionId, NetworkBehaviour, SwarmEvent,
        behaviour::toggle::Toggle,
        dial_opts::{DialOpts, PeerCondition},
    },
};
use tokio::sync::mpsc as tokio_mpsc;

use crate::gossip::{self, GossipMessage, GossipState, GossipValidation};
use crate::streams::{echo_stream, perf_client, perf_server_stream, request, serve};
use crate::{
    Command, IDENTIFY_PROTOCOL_VERSION, Multiaddr, PERF_PROTOCOL, PeerConfig, PeerEvent, PeerId,
    autonat, identity, kad, lock,
};

#[derive(NetworkBehaviour)]
pub(crate) struct Behaviour {
    pub(crate) ping: ping::Behaviour,
    pub(crate) identify: identify::Behaviour,
    pub(crate) stream: libp2p_stream::Behaviour,
    pub(crate) kad: Toggle<libp2p::kad::Behaviour<libp2p::kad::store::MemoryStore>>,
    pub(crate) gossipsub: Toggle<libp2p::gossipsub::Behaviour>,
    pub(crate) autonat_client: Toggle<autonat::Client>,
    pub(crate) autonat_server: Toggle<autonat::Server>,
    pub(crate) relay_server: Toggle<libp2p::relay::Behaviour>,
    pub(crate) relay_client: libp2p::relay::client::Behaviour,
    pub(crate) dcutr: libp2p::dcutr::Behaviour,
}

pub(crate) type EventTx = std_mpsc::Sender<PeerEvent>;
/// The event channel and the gossip message channel.
pub(crate) type EventTxs = (EventTx, std_mpsc::Sender<GossipMessage>);

pub(crate) fn run_thread(
    keypair: identity::Keypair,
    cfg: PeerConfig,
    listen_addrs: Arc<Mutex<Vec<Multiaddr>>>,
    cmd_rx: tokio_mpsc::UnboundedReceiver<Command>,
    events: EventTxs,
    ready: std_mpsc::Sender<Result<(), String>>,
) {
    let rt = match tokio::runtime::Builder::new_current_thread()
        .enable_all()
        .build()
    {
        Ok(rt) => rt,
        Err(e) => {
            let _ = ready.send(Err(format!("cannot build tokio runtime: {e}")));
            return;
        }
    };
    rt.block_on(async move {
        let mut node = match Node::new(keypair, &cfg, listen_addrs, events, ready) {
            Ok(node) => node,
            Err((e, ready)) => {
                let _ = ready.send(Err(e));
                return;
            }
        };
        node.run(cmd_rx).await;
    });
}

pub(crate) struct Node {
    pub(crate) swarm: Swarm<Behaviour>,
    pub(crate) events: EventTx,
    pub(crate) listen_addrs: Arc<Mutex<Vec<Multiaddr>>>,
    /// Sent `Ok` once listening (or at once if not listening).
    pub(crate) ready: Option<std_mpsc::Sender<Result<(), String>>>,
    /// Addresses to dial per peer for `request` / `perf`.
    pub(crate) addresses: HashMap<PeerId, Vec<Multiaddr>>,
    /// Blocking `connect` calls waiting for their connection.
    pub(crate) pending_connects: HashMap<ConnectionId, std_mpsc::Sender<Result<PeerId, String>>>,
    /// Kademlia queries that blocking `kad_*` calls wait for.
    pub(crate) kad_pending: kad::PendingMap,
    /// [`KadConfig::add_identified_peers`].
    pub(crate) kad_add_identified: bool,
    /// [`KadConfig::replication_factor`].
    pub(crate) kad_replication: usize,
    /// Gossipsub's metrics, validator and message channel (`None` when
    /// gossipsub is disabled).
    pub(crate) gossip: Option<GossipState>,
    /// [`RustPeer::pause_swarm`] is in force.
    pub(crate) paused: bool,
}

pub(crate) type StartError = (String, std_mpsc::Sender<Result<(), String>>);

impl Node {
    fn new(
        keypair: identity::Keypair,
        cfg: &PeerConfig,
        listen_addrs: Arc<Mutex<Vec<Multiaddr>>>,
        (events, messages): EventTxs,
        ready: std_mpsc::Sender<Result<(), String>>,
    ) -> Result<Node, StartError> {
        let ping_cfg = ping::Config::new().with_interval(cfg.ping_interval);
        let agent = cfg.agent_version.clone();
        let version = cfg.multistream_version;
        let idle = cfg.idle_connection_timeout;
        let (autonat_client, autonat_server) = (cfg.autonat_client, cfg.autonat_server);
        let relay_server = cfg.relay_server;
        let local = keypair.public().to_peer_id();
        let kad_behaviour = match &cfg.kad {
            Some(k) => match kad::behaviour(local, k) {
                Ok(b) => Some(b),
                Err(e) => return Err((e, ready)),
            },
            None => None,
        };
        let (gossip_behaviour, gossip) = match &cfg.gossipsub {
            Some(g) => match gossip::behaviour(&keypair, g) {
                Ok((b, registry)) => {
                    let validator = match &g.validation {
                        GossipValidation::Callback(f) => Some(f.clone()),
                        _ => None,
                    };
                    let state = GossipState {
                        registry,
                        validator,
                        messages,
                    };
                    (Some(b), Some(state))
                }
                Err(e) => return Err((e, ready)),
            },
            None => (None, None),
        };
        // The security protocols in the order the dialer proposes them; the
        // two orders give two transport types, hence the macro.
        macro_rules! build_swarm {
            ($security:expr) => {
                SwarmBuilder::with_existing_identity(keypair)
                    .with_tokio()
                    .with_tcp(
                        libp2p::tcp::Config::default().nodelay(true),
                        $security,
                        libp2p::yamux::Config::default,
                    )
                    .map_err(|e| e.to_string())
                    .and_then(|b| {
                        b.with_quic()
                            .with_relay_client(
                                libp2p::noise::Config::new,
                                libp2p::yamux::Config::default,
                            )
                            .map_err(|e| e.to_string())
                    })
                    .and_then(|b| {
                        b.with_behaviour(|key, relay_client| Behaviour {
                            ping: ping::Behaviour::new(ping_cfg),
                            identify: identify::Behaviour::new(
                                identify::Config::new(
                                    IDENTIFY_PROTOCOL_VERSION.to_string(),
                                    key.public(),
                                )
                                .with_agent_version(agent),
                            ),
                            stream: libp2p_stream::Behaviour::new(),
                            kad: Toggle::from(kad_behaviour),
                            gossipsub: Toggle::from(gossip_behaviour),
                            autonat_client: Toggle::from(
                                autonat_client.then(autonat::Client::default),
                            ),
                            autonat_server: Toggle::from(
                                autonat_server.then(autonat::Server::default),
                            ),
                            relay_server: Toggle::from(relay_server.then(|| {
                                libp2p::relay::Behaviour::new(
                                    key.public().to_peer_id(),
                                    libp2p::relay::Config::default(),
                                )
                            })),
                            relay_client,
                            dcutr: libp2p::dcutr::Behaviour::new(key.public().to_peer_id()),
                        })
                        .map_err(|e| e.to_string())
                    })
                    .map(|b| {
                        b.with_swarm_config(|c| {
                            c.with_idle_connection_timeout(idle)
                                .with_substream_upgrade_protocol_override(version)
                        })
                        .build()
                    })
            };
        }
        let built = if cfg.tcp_tls_first {
            build_swarm!((libp2p::tls::Config::new, libp2p::noise::Config::new))
        } else {
            build_swarm!((libp2p::noise::Config::new, libp2p::tls::Config::new))
        };
        let mut swarm = match built {
            Ok(swarm) => swarm,
            Err(e) => return Err((format!("cannot build the swarm: {e}"), ready)),
        };

        let mut control = swarm.behaviour().stream.new_control();
        for p in &cfg.echo_protocols {
            let proto = match StreamProtocol::try_from_owned(p.clone()) {
                Ok(proto) => proto,
                Err(e) => return Err((format!("invalid echo protocol {p:?}: {e}"), ready)),
            };
            let incoming = match control.accept(proto) {
                Ok(i) => i,
                Err(e) => return Err((format!("echo protocol {p:?}: {e}"), ready)),
            };
            tokio::spawn(serve(incoming, p.clone(), events.clone(), echo_stream));
        }
        if cfg.perf_server {
            let incoming = match control.accept(StreamProtocol::new(PERF_PROTOCOL)) {
                Ok(i) => i,
                Err(e) => return Err((format!("perf protocol: {e}"), ready)),
            };
            tokio::spawn(serve(
                incoming,
                PERF_PROTOCOL.to_string(),
                events.clone(),
                perf_server_stream,
            ));
        }

        let ready = if cfg.listen {
            if let Err(e) = swarm.listen_on(cfg.quic_listen_addr.clone()) {
                return Err((format!("listen_on failed: {e}"), ready));
            }
            if cfg.listen_tcp {
                let tcp: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().expect("static multiaddr");
                if let Err(e) = swarm.listen_on(tcp) {
                    return Err((format!("listen_on tcp failed: {e}"), ready));
                }
            }
            Some(ready)
        } else {
            let _ = ready.send(Ok(()));
            None
        };

        Ok(Node {
            swarm,
            events,
            listen_addrs,
            ready,
            addresses: HashMap::new(),
            pending_connects: HashMap::new(),
            kad_pending: HashMap::new(),
            kad_add_identified: cfg.kad.as_ref().is_some_and(|k| k.add_identified_peers),
            kad_replication: cfg.kad.as_ref().map_or(0, |k| k.replication_factor.get()),
            gossip,
            paused: false,
        })
    }

    async fn run(&mut self, mut cmd_rx: tokio_mpsc::UnboundedReceiver<Command>) {
        loop {
            // Deadlines of blocking kad calls; far in the future when there
            // are none (the branch is disabled then anyway).
            let deadline = self.kad_next_deadline();
            let wake = deadline.unwrap_or_else(|| Instant::now() + Duration::from_secs(3600));
            if self.paused {
                // Paused: only resume and shutdown are acted on; other
                // commands wait (their callers time out) so that nothing
                // touches the swarm.
                match cmd_rx.recv().await {
                    None | Some(Command::Shutdown) => break,
                    Some(Command::PauseSwarm(p)) => self.paused = p,
                    Some(_) => {}
                }
                continue;
            }
            tokio::select! {
                cmd = cmd_rx.recv() => match cmd {
                    None | Some(Command::Shutdown) => break,
                    Some(cmd) => self.on_command(cmd),
                },
                ev = self.swarm.select_next_some() => self.on_swarm_event(ev),
                _ = tokio::time::sleep_until(wake.into()), if deadline.is_some() => {
                    self.kad_expire(Instant::now());
                }
            }
        }
    }

    pub(crate) fn emit(&self, ev: PeerEvent) {
        let _ = self.events.send(ev);
    }

    fn on_command(&mut self, cmd: Command) {
        match cmd {
            Command::Dial { addr, reply } => {
                let opts = match addr.iter().last() {
                    Some(Protocol::P2p(peer)) => {
                        self.remember(peer, addr.clone());
                        DialOpts::peer_id(peer)
                            .addresses(vec![addr.clone()])
                            .condition(PeerCondition::Always)
                            .build()
                    }
                    _ => DialOpts::unknown_peer_id().address(addr.clone()).build(),
                };
                let id = opts.connection_id();
                match self.swarm.dial(opts) {
                    Ok(()) => {
                        if let Some(reply) = reply {
                            self.pending_connects.insert(id, reply);
                        }
                    }
                    Err(e) => {
                        let error = format!("dial {addr}: {e}");
                        self.emit(PeerEvent::OutgoingConnectionError {
                            peer: None,
                            error: error.clone(),
                        });
                        if let Some(reply) = reply {
                            let _ = reply.send(Err(error));
                        }
                    }
                }
            }
            Command::AddPeerAddress { peer, addr } => self.remember(peer, addr),
            Command::Request {
                peer,
                protocol,
                data,
                timeout,
                reply,
            } => {
                self.ensure_dialing(peer);
                let control = self.swarm.behaviour().stream.new_control();
                let work = request(control, peer, protocol, data);
                reply_within(timeout, "request", work, reply);
            }
            Command::Perf {
                peer,
                up,
                down,
                timeout,
                reply,
            } => {
                self.ensure_dialing(peer);
                let control = self.swarm.behaviour().stream.new_control();
                let work = perf_client(control, peer, up, down);
                reply_within(timeout, "perf", work, reply);
            }
            Command::PushIdentify { peers } => self.swarm.behaviour_mut().identify.push(peers),
            Command::AddExternalAddress(addr) => self.swarm.add_external_address(addr),
            Command::Listen(addr, reply) => {
                let result = self
                    .swarm
                    .listen_on(addr)
                    .map(|_| ())
                    .map_err(|e| e.to_string());
                let _ = reply.send(result);
            }
            Command::Disconnect(peer) => {
                let _ = self.swarm.disconnect_peer_id(peer);
            }
            Command::ConnectedPeers(reply) => {
                let _ = reply.send(self.swarm.connected_peers().copied().collect());
            }
            Command::Kad(cmd) => self.on_kad_command(cmd),
            Command::Gossip(cmd) => self.on_gossip_command(cmd),
            Command::PauseSwarm(p) => self.paused = p,
            Command::Shutdown => {}
        }
    }

    fn remember(&mut self, peer: PeerId, addr: Multiaddr) {
        let list = self.addresses.entry(peer).or_default();
        if !list.contains(&addr) {
            list.push(addr);
        }
    }

    /// If not connected to `peer` but an address is known, dial it so that
    /// libp2p-stream's pending `open_stream` gets a connection.
    fn ensure_dialing(&mut self, peer: PeerId) {
        if self.swarm.is_connected(&peer) {
            return;
        }
        let Some(addrs) = self.addresses.get(&peer).cloned() else {
            return;
        };
        let opts = DialOpts::peer_id(peer)
            .addresses(addrs)
            .condition(PeerCondition::DisconnectedAndNotDialing)
            .build();
        if let Err(e) = self.swarm.dial(opts) {
            self.emit(PeerEvent::Other(format!("dial {peer} for a stream: {e}")));
        }
    }

    fn on_swarm_event(&mut self, ev: SwarmEvent<BehaviourEvent>) {
        match ev {
            SwarmEvent::NewListenAddr { address, .. } => {
                lock(&self.listen_addrs).push(address.clone());
                if let Some(ready) = self.ready.take() {
                    let _ = ready.send(Ok(()));
                }
                self.emit(PeerEvent::Listening(address));
            }
            SwarmEvent::ConnectionEstablished {
                peer_id,
                connection_id,
                endpoint,
                ..
            } => {
                if let Some(reply) = self.pending_connects.remove(&connection_id) {
                    let _ = reply.send(Ok(peer_id));
                }
                self.emit(PeerEvent::ConnectionEstablished {
                    peer: peer_id,
                    remote_addr: endpoint.get_remote_address().clone(),
                    dialer: endpoint.is_dialer(),
                });
            }
            SwarmEvent::ConnectionClosed { peer_id, cause, .. } => {
                self.emit(PeerEvent::ConnectionClosed {
                    peer: peer_id,
                    cause: cause.map(|c| c.to_string()),
                });
            }
            SwarmEvent::OutgoingConnectionError {
                connection_id,
                peer_id,
                error,
            } => {
                let error = error.to_string();
                if let Some(reply) = self.pending_connects.remove(&connection_id) {
                    let _ = reply.send(Err(error.clone()));
                }
                self.emit(PeerEvent::OutgoingConnectionError {
                    peer: peer_id,
                    error,
                });
            }
            SwarmEvent::IncomingConnectionError {
                send_back_addr,
                error,
                peer_id,
                ..
            } => self.emit(PeerEvent::Other(format!(
                "incoming connection error from {send_back_addr} (peer {peer_id:?}): {error}"
            ))),
            SwarmEvent::ExpiredListenAddr { address, .. } => {
                lock(&self.listen_addrs).retain(|a| a != &address);
                self.emit(PeerEvent::Other(format!(
                    "listen address expired: {address}"
                )));
            }
            SwarmEvent::ListenerClosed { reason, .. } => {
                self.emit(PeerEvent::Other(format!("listener closed: {reason:?}")));
            }
            SwarmEvent::ListenerError { error, .. } => {
                self.emit(PeerEvent::Other(format!("listener error: {error}")));
            }
            SwarmEvent::NewExternalAddrCandidate { address } => {
                self.emit(PeerEvent::Other(format!(
                    "new external address candidate: {address}"
                )));
            }
            SwarmEvent::Behaviour(BehaviourEvent::Ping(ping::Event { peer, result, .. })) => {
                self.emit(PeerEvent::Ping {
                    peer,
                    result: result.map_err(|e| e.to_string()),
                });
            }
            SwarmEvent::Behaviour(BehaviourEvent::Identify(ev)) => self.on_identify(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Stream(())) => {}
            SwarmEvent::Behaviour(BehaviourEvent::Kad(ev)) => self.on_kad_event(ev),
            SwarmEvent::Behaviour(BehaviourEvent::Gossipsub(ev)) => self.on_gossip_event(ev),
            SwarmEvent::Behaviour(BehaviourEvent::AutonatClient(ev)) => {
                self.emit(autonat::client_event(ev))
            }
            SwarmEvent::Behaviour(BehaviourEvent::AutonatServer(ev)) => {
                self.emit(autonat::server_event(ev))
            }
            SwarmEvent::Behaviour(BehaviourEvent::RelayServer(ev)) => {
                self.emit(PeerEvent::Relay(format!("{ev:?}")))
            }
            SwarmEvent::Behaviour(BehaviourEvent::RelayClient(ev)) => {
                self.emit(PeerEvent::Relay(format!("{ev:?}")))
            }
            SwarmEvent::Behaviour(BehaviourEvent::Dcutr(ev)) => self.emit(PeerEvent::Dcutr {
                peer: ev.remote_peer_id,
                result: ev.result.map(|_| ()).map_err(|e| e.to_string()),
            }),
            // Dialing, IncomingConnection, external address bookkeeping: not
            // interesting for tests.
            _ => {}
        }
    }

    fn on_identify(&mut self, ev: identify::Event) {
        let ev = match ev {
            identify::Event::Received { peer_id, info, .. } => {
                self.kad_on_identify(peer_id, &info.protocols, &info.listen_addrs);
                PeerEvent::IdentifyReceived {
                    peer: peer_id,
                    info: info.into(),
                }
            }
            identify::Event::Sent { peer_id, .. } => PeerEvent::IdentifySent { peer: peer_id },
            identify::Event::Pushed { peer_id, .. } => PeerEvent::IdentifyPushed { peer: peer_id },
            identify::Event::Error { peer_id, error, .. } => PeerEvent::IdentifyError {
                peer: peer_id,
                error: error.to_string(),
            },
        };
        self.emit(ev);
    }
}

/// Run `work` on its own task, bounded by `timeout` ("`what`: timed out"
/// then), and send its result to `reply`.
fn reply_within<T: Send + 'static>(
    timeout: Duration,
    what: &'static str,
    work: impl Future<Output = Result<T, String>> + Send + 'static,
    reply: std_mpsc::Sender<Result<T, String>>,
) {
    tokio::spawn(async move {
        let r = tokio::time::timeout(timeout, work)
            .await
            .unwrap_or_else(|_| Err(format!("{what}: timed out")));
        let _ = reply.send(r);
    });
}
