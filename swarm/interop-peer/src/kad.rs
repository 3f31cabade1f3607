//! Kademlia (libp2p-kad 0.49, the `kad` feature of libp2p 0.57) on a
//! [`RustPeer`](crate::RustPeer): configuration, result types and the
//! background side of the blocking `kad_*` calls.
//!
//! # How a rust-libp2p node fills its routing table
//!
//! These are properties of libp2p-kad itself, which an implementation tested
//! against it has to expect:
//!
//! * A peer is inserted by libp2p-kad on its own only when *this* node dialed
//!   the connection and the remote is confirmed to speak the DHT protocol
//!   (identify lists it, or a DHT stream was negotiated on that connection in
//!   either direction); the dialed address is what goes into the table. On a
//!   connection the remote dialed, libp2p-kad emits `UnroutablePeer` and adds
//!   nothing, because the remote's source address may be ephemeral.
//! * Hence [`KadConfig::add_identified_peers`] (on by default, as in the
//!   rust-libp2p `ipfs-kad` example): when identify from a peer lists the
//!   DHT protocol, its identify listen addresses are fed to
//!   `Behaviour::add_address`. Without it a rust-libp2p node never learns the
//!   nodes that dial it.
//! * `add_address` inserts without any check that the peer speaks the
//!   protocol (the entry starts as disconnected).
//! * A peer that stops advertising the protocol (switches to client mode) is
//!   marked disconnected but is not removed from the table.
//! * In client mode the node refuses inbound DHT streams and does not list
//!   the protocol in identify, but still sends requests.
//! * A confirmed peer is one that negotiated a DHT stream on the connection
//!   in *either* direction: if this node dialed a client-mode peer and that
//!   peer sends it a request on that connection, libp2p-kad inserts it
//!   (a later identify without the protocol only marks it disconnected).
//! * libp2p-kad's automatic mode (`KadConfig::mode = None`) stays client on
//!   loopback, since no external address is ever confirmed there: a stock
//!   rust-libp2p node must be set to server mode to serve.
//!
//! # Wire behaviour of libp2p-kad 0.49 worth matching
//!
//! * Addresses in its routing table and in `closerPeers` / `providerPeers`
//!   carry `/p2p/<id>`; addresses it receives are given that suffix, and one
//!   naming another peer is dropped. A peer with an unparsable id is
//!   dropped, the rest of the response is kept.
//! * Responses leave out the requester and hold at most k = 20 peers.
//! * `PING` requests are not answered: it logs and closes the stream.
//! * Outbound: one request per stream. Inbound: it waits for further
//!   requests on the same stream; at most 32 streams per connection each way;
//!   messages up to 16 KiB; a stream times out after 10 s.
//! * A `PUT_VALUE` reply counts as stored if it carries any record; the echo
//!   is not compared. A `PUT_VALUE` reply without a record is an error.
//! * Records carry rust-libp2p's extension fields `publisher` (666) and
//!   `ttl` (777, seconds; 0 = no expiry); a received ttl sets the expiry.
//!   A record it stores as a non-closest node gets an expiry shortened
//!   exponentially with the number of nodes between it and the key.
//! * `ADD_PROVIDER` is accepted only when the provider entry is the sender;
//!   the entry is stored with whatever addresses it carries (possibly none).
//!   It announces itself with confirmed external addresses only (none on
//!   loopback) and answers `GET_PROVIDERS` for an address-less provider with
//!   the routing table's addresses for it (its own listen addresses when the
//!   provider is itself).
//! * On insertion while the table holds fewer than k peers it runs a
//!   bootstrap by itself (throttled to one per 500 ms), and periodically
//!   (every 5 min by default, [`KadConfig::periodic_bootstrap_interval`]).

use std::{
    collections::HashMap,
    num::NonZeroUsize,
    sync::mpsc as std_mpsc,
    time::{Duration, Instant},
};

use libp2p::{
    Multiaddr, PeerId, StreamProtocol,
    kad::{
        self, AddProviderOk, GetClosestPeersError, GetProvidersError, GetProvidersOk,
        GetRecordError, GetRecordOk, PutRecordError, QueryId, QueryResult, Quorum, RecordKey,
        store::MemoryStore,
    },
};

use crate::{Node, PeerEvent};

pub use libp2p::kad::Mode as KadMode;

/// The default DHT protocol id, `/ipfs/kad/1.0.0`.
pub const KAD_PROTOCOL: &str = "/ipfs/kad/1.0.0";

/// Kademlia settings of a [`RustPeer`](crate::RustPeer), set through
/// [`PeerConfig::kad`](crate::PeerConfig::kad).
#[derive(Debug, Clone)]
pub struct KadConfig {
    /// DHT protocol id. Default [`KAD_PROTOCOL`].
    pub protocol: String,
    /// Mode at start-up. `Some(Server)` (the default here) serves requests and
    /// advertises the protocol; `Some(Client)` only sends requests; `None`
    /// is libp2p-kad's automatic mode (client until an external address is
    /// confirmed, which on loopback never happens).
    pub mode: Option<KadMode>,
    /// Add peers whose identify lists [`KadConfig::protocol`] to the routing
    /// table, with their identify listen addresses (see the module docs).
    /// Default `true`.
    pub add_identified_peers: bool,
    /// libp2p-kad's own bound on a query (default 60 s there). Default 30 s.
    pub query_timeout: Duration,
    /// libp2p-kad's periodic bootstrap; `None` turns it off. Default
    /// `Some(5 min)`, libp2p-kad's default.
    pub periodic_bootstrap_interval: Option<Duration>,
    /// Replication factor (number of closest peers a query looks for and a
    /// record is stored at). Default 20 (`K_VALUE`).
    pub replication_factor: NonZeroUsize,
    /// Maximum DHT message size. Default 16 KiB, libp2p-kad's default.
    pub max_packet_size: usize,
}

impl Default for KadConfig {
    fn default() -> Self {
        KadConfig {
            protocol: KAD_PROTOCOL.to_string(),
            mode: Some(KadMode::Server),
            add_identified_peers: true,
            query_timeout: Duration::from_secs(30),
            periodic_bootstrap_interval: Some(Duration::from_secs(5 * 60)),
            replication_factor: kad::K_VALUE,
            max_packet_size: 16 * 1024,
        }
    }
}

/// Why a `kad_*` call failed.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum KadError {
    /// The peer was started without [`PeerConfig::kad`](crate::PeerConfig::kad).
    Disabled,
    /// The routing table is empty, so there is nobody to ask.
    NoKnownPeers,
    /// The query finished without finding what was asked for.
    NotFound,
    /// Neither the query nor the call finished in time, and nothing was found.
    Timeout,
    /// A put reached no peer at all.
    QuorumFailed,
    /// The local record store refused the record or provider record.
    Store(String),
    /// Anything else (invalid argument, the background thread is gone, ...).
    Other(String),
}

impl std::fmt::Display for KadError {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        match self {
            KadError::Disabled => f.write_str("kademlia is not enabled on this peer"),
            KadError::NoKnownPeers => f.write_str("no known peers"),
            KadError::NotFound => f.write_str("not found"),
            KadError::Timeout => f.write_str("timed out"),
            KadError::QuorumFailed => f.write_str("no peer stored the record"),
            KadError::Store(e) => write!(f, "record store: {e}"),
            KadError::Other(e) => f.write_str(e),
        }
    }
}

impl std::error::Error for KadError {}

/// A peer with its addresses, as returned by a lookup or read from the
/// routing table.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KadPeerInfo {
    /// The peer.
    pub peer: PeerId,
    /// Its known addresses (possibly empty when a lookup learnt none).
    pub addrs: Vec<Multiaddr>,
}

/// A record found by [`RustPeer::kad_get_value`](crate::RustPeer::kad_get_value).
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct KadRecord {
    /// The record key.
    pub key: Vec<u8>,
    /// The value.
    pub value: Vec<u8>,
    /// The publisher named in the record, if any.
    pub publisher: Option<PeerId>,
    /// The peer that returned it; `None` for this node's own store.
    pub from: Option<PeerId>,
}

/// A `kad_*` request from the blocking API.
pub(crate) enum KadCommand {
    AddAddress {
        peer: PeerId,
        addr: Multiaddr,
        reply: std_mpsc::Sender<Result<bool, KadError>>,
    },
    RemovePeer {
        peer: PeerId,
        reply: std_mpsc::Sender<Result<bool, KadError>>,
    },
    Bootstrap {
        timeout: Duration,
        reply: std_mpsc::Sender<Result<usize, KadError>>,
    },
    PutValue {
        key: Vec<u8>,
        value: Vec<u8>,
        timeout: Duration,
        reply: std_mpsc::Sender<Result<usize, KadError>>,
    },
    GetValue {
        key: Vec<u8>,
        first_only: bool,
        timeout: Duration,
        reply: std_mpsc::Sender<Result<Vec<KadRecord>, KadError>>,
    },
    StartProviding {
        key: Vec<u8>,
        timeout: Duration,
        reply: std_mpsc::Sender<Result<(), KadError>>,
    },
    GetProviders {
        key: Vec<u8>,
        timeout: Duration,
        reply: std_mpsc::Sender<Result<Vec<PeerId>, KadError>>,
    },
    GetClosestPeers {
        key: Vec<u8>,
        timeout: Duration,
        reply: std_mpsc::Sender<Result<Vec<KadPeerInfo>, KadError>>,
    },
    FindPeer {
        peer: PeerId,
        timeout: Duration,
        reply: std_mpsc::Sender<Result<Vec<Multiaddr>, KadError>>,
    },
    SetMode(Option<KadMode>),
    Mode(std_mpsc::Sender<Option<KadMode>>),
    RoutingTable(std_mpsc::Sender<Vec<KadPeerInfo>>),
}

/// A query some blocking call waits for, with what it has gathered so far.
pub(crate) struct PendingQuery {
    deadline: Instant,
    op: PendingOp,
}

enum PendingOp {
    Bootstrap(std_mpsc::Sender<Result<usize, KadError>>),
    PutValue(std_mpsc::Sender<Result<usize, KadError>>),
    GetValue {
        first_only: bool,
        found: Vec<KadRecord>,
        reply: std_mpsc::Sender<Result<Vec<KadRecord>, KadError>>,
    },
    StartProviding(std_mpsc::Sender<Result<(), KadError>>),
    GetProviders {
        found: Vec<PeerId>,
        reply: std_mpsc::Sender<Result<Vec<PeerId>, KadError>>,
    },
    GetClosestPeers(std_mpsc::Sender<Result<Vec<KadPeerInfo>, KadError>>),
    FindPeer {
        peer: PeerId,
        reply: std_mpsc::Sender<Result<Vec<Multiaddr>, KadError>>,
    },
}

/// Build the libp2p-kad behaviour for `cfg`.
pub(crate) fn behaviour(
    local: PeerId,
    cfg: &KadConfig,
) -> Result<kad::Behaviour<MemoryStore>, String> {
    let protocol = StreamProtocol::try_from_owned(cfg.protocol.clone())
        .map_err(|e| format!("invalid kad protocol {:?}: {e}", cfg.protocol))?;
    let mut config = kad::Config::new(protocol);
    config
        .set_query_timeout(cfg.query_timeout)
        .set_periodic_bootstrap_interval(cfg.periodic_bootstrap_interval)
        .set_replication_factor(cfg.replication_factor)
        .set_max_packet_size(cfg.max_packet_size);
    let mut behaviour = kad::Behaviour::with_config(local, MemoryStore::new(local), config);
    behaviour.set_mode(cfg.mode);
    Ok(behaviour)
}

/// When the background side gives up on a call. The blocking side waits
/// `timeout + REPLY_GRACE`, so the caller always gets this side's verdict
/// (with whatever was found so far) rather than a bare "timed out".
fn deadline(timeout: Duration) -> Instant {
    Instant::now() + timeout
}

impl Node {
    pub(crate) fn on_kad_command(&mut self, cmd: KadCommand) {
        let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() else {
            reply_disabled(cmd);
            return;
        };
        let (id, pending) = match cmd {
            KadCommand::AddAddress { peer, addr, reply } => {
                let r = match kad.add_address(&peer, addr) {
                    kad::RoutingUpdate::Success | kad::RoutingUpdate::Pending => Ok(true),
                    kad::RoutingUpdate::Failed => Ok(false),
                };
                let _ = reply.send(r);
                return;
            }
            KadCommand::RemovePeer { peer, reply } => {
                let _ = reply.send(Ok(kad.remove_peer(&peer).is_some()));
                return;
            }
            KadCommand::Bootstrap { timeout, reply } => match kad.bootstrap() {
                Ok(id) => (id, (timeout, PendingOp::Bootstrap(reply))),
                Err(kad::NoKnownPeers()) => {
                    let _ = reply.send(Err(KadError::NoKnownPeers));
                    return;
                }
            },
            KadCommand::PutValue {
                key,
                value,
                timeout,
                reply,
            } => {
                // `Quorum::All` makes the put phase wait for every one of the
                // closest peers, so the result tells how many stored it:
                // `Ok` means all `replication_factor` of them, and fewer ends
                // in `QuorumFailed` carrying the list of those that did.
                let record = kad::Record::new(RecordKey::new(&key), value);
                match kad.put_record(record, Quorum::All) {
                    Ok(id) => (id, (timeout, PendingOp::PutValue(reply))),
                    Err(e) => {
                        let _ = reply.send(Err(KadError::Store(format!("{e:?}"))));
                        return;
                    }
                }
            }
            KadCommand::GetValue {
                key,
                first_only,
                timeout,
                reply,
            } => {
                let id = kad.get_record(RecordKey::new(&key));
                let op = PendingOp::GetValue {
                    first_only,
                    found: Vec::new(),
                    reply,
                };
                (id, (timeout, op))
            }
            KadCommand::StartProviding {
                key,
                timeout,
                reply,
            } => match kad.start_providing(RecordKey::new(&key)) {
                Ok(id) => (id, (timeout, PendingOp::StartProviding(reply))),
                Err(e) => {
                    let _ = reply.send(Err(KadError::Store(format!("{e:?}"))));
                    return;
                }
            },
            KadCommand::GetProviders {
                key,
                timeout,
                reply,
            } => {
                let id = kad.get_providers(RecordKey::new(&key));
                let op = PendingOp::GetProviders {
                    found: Vec::new(),
                    reply,
                };
                (id, (timeout, op))
            }
            KadCommand::GetClosestPeers {
                key,
                timeout,
                reply,
            } => {
                let id = kad.get_closest_peers(key);
                (id, (timeout, PendingOp::GetClosestPeers(reply)))
            }
            KadCommand::FindPeer {
                peer,
                timeout,
                reply,
            } => {
                let id = kad.get_closest_peers(peer);
                (id, (timeout, PendingOp::FindPeer { peer, reply }))
            }
            KadCommand::SetMode(mode) => {
                kad.set_mode(mode);
                return;
            }
            KadCommand::Mode(reply) => {
                let _ = reply.send(Some(kad.mode()));
                return;
            }
            KadCommand::RoutingTable(reply) => {
                let table = kad
                    .kbuckets()
                    .flat_map(|bucket| {
                        bucket
                            .iter()
                            .map(|e| KadPeerInfo {
                                peer: *e.node.key.preimage(),
                                addrs: e.node.value.iter().cloned().collect(),
                            })
                            .collect::<Vec<_>>()
                    })
                    .collect();
                let _ = reply.send(table);
                return;
            }
        };
        let (timeout, op) = pending;
        self.kad_pending.insert(
            id,
            PendingQuery {
                deadline: deadline(timeout),
                op,
            },
        );
    }

    /// The earliest deadline of a pending query, for the run loop's timer.
    pub(crate) fn kad_next_deadline(&self) -> Option<Instant> {
        self.kad_pending.values().map(|p| p.deadline).min()
    }

    /// Answer the calls whose deadline has passed with what they have (or
    /// `Timeout`) and stop their queries.
    pub(crate) fn kad_expire(&mut self, now: Instant) {
        let expired: Vec<QueryId> = self
            .kad_pending
            .iter()
            .filter(|(_, p)| p.deadline <= now)
            .map(|(id, _)| *id)
            .collect();
        for id in expired {
            let Some(pending) = self.kad_pending.remove(&id) else {
                continue;
            };
            if let Some(kad) = self.swarm.behaviour_mut().kad.as_mut()
                && let Some(mut q) = kad.query_mut(&id)
            {
                q.finish();
            }
            match pending.op {
                PendingOp::GetValue { found, reply, .. } if !found.is_empty() => {
                    let _ = reply.send(Ok(found));
                }
                PendingOp::GetProviders { found, reply } if !found.is_empty() => {
                    let _ = reply.send(Ok(found));
                }
                op => op.fail(KadError::Timeout),
            }
        }
    }

    /// Feed in one libp2p-kad event.
    pub(crate) fn on_kad_event(&mut self, ev: kad::Event) {
        match ev {
            kad::Event::OutboundQueryProgressed {
                id, result, step, ..
            } => self.on_kad_progress(id, result, step.last),
            kad::Event::RoutingUpdated {
                peer,
                is_new_peer,
                addresses,
                ..
            } => self.emit(PeerEvent::KadRoutingUpdated {
                peer,
                is_new_peer,
                addresses: addresses.into_vec(),
            }),
            kad::Event::InboundRequest { request } => {
                // The record payload is left out: the kind of request is what
                // tests look at.
                let request = match request {
                    kad::InboundRequest::PutRecord { source, .. } => {
                        format!("PutRecord {{ source: {source} }}")
                    }
                    kad::InboundRequest::AddProvider { .. } => "AddProvider".to_string(),
                    other => format!("{other:?}"),
                };
                self.emit(PeerEvent::KadInboundRequest { request });
            }
            kad::Event::ModeChanged { new_mode } => self.emit(PeerEvent::KadModeChanged(new_mode)),
            other => self.emit(PeerEvent::Other(format!("kad: {other:?}"))),
        }
    }

    /// When identify from `peer` lists our DHT protocol, put its listen
    /// addresses into the routing table (see the module docs for why).
    pub(crate) fn kad_on_identify(
        &mut self,
        peer: PeerId,
        protocols: &[StreamProtocol],
        addrs: &[Multiaddr],
    ) {
        if !self.kad_add_identified {
            return;
        }
        let Some(kad) = self.swarm.behaviour_mut().kad.as_mut() else {
            return;
        };
        if !protocols.iter().any(|p| kad.protocol_names().contains(p)) {
            return;
        }
        for addr in addrs {
            kad.add_address(&peer, addr.clone());
        }
    }

    fn on_kad_progress(&mut self, id: QueryId, result: QueryResult, last: bool) {
        let Some(mut pending) = self.kad_pending.remove(&id) else {
            // Automatic bootstraps, republishing, or a call that already
            // gave up.
            return;
        };
        let done = match (&mut pending.op, result) {
            (PendingOp::Bootstrap(reply), QueryResult::Bootstrap(_)) => {
                // Each step (own id, then one random key per bucket) reports;
                // a timed-out step is not fatal, libp2p-kad goes on with the
                // next. The answer is the table size once all are done.
                if last {
                    let n = self.kad_table_size();
                    let _ = reply.send(Ok(n));
                }
                last
            }
            (PendingOp::PutValue(reply), QueryResult::PutRecord(r)) => {
                let r = match r {
                    Ok(_) => Ok(self.kad_replication_factor()),
                    Err(PutRecordError::QuorumFailed { success, .. })
                    | Err(PutRecordError::Timeout { success, .. }) => {
                        if success.is_empty() {
                            Err(KadError::QuorumFailed)
                        } else {
                            Ok(success.len())
                        }
                    }
                };
                let _ = reply.send(r);
                true
            }
            (
                PendingOp::GetValue {
                    first_only,
                    found,
                    reply,
                },
                QueryResult::GetRecord(r),
            ) => match r {
                Ok(GetRecordOk::FoundRecord(rec)) => {
                    found.push(KadRecord {
                        key: rec.record.key.to_vec(),
                        value: rec.record.value,
                        publisher: rec.record.publisher,
                        from: rec.peer,
                    });
                    if *first_only || last {
                        let _ = reply.send(Ok(std::mem::take(found)));
                        true
                    } else {
                        false
                    }
                }
                Ok(GetRecordOk::FinishedWithNoAdditionalRecord { .. }) => {
                    let _ = reply.send(Ok(std::mem::take(found)));
                    true
                }
                Err(GetRecordError::NotFound { .. }) | Err(GetRecordError::Timeout { .. }) => {
                    let r = if found.is_empty() {
                        Err(KadError::NotFound)
                    } else {
                        Ok(std::mem::take(found))
                    };
                    let _ = reply.send(r);
                    true
                }
            },
            (PendingOp::StartProviding(reply), QueryResult::StartProviding(r)) => {
                let _ = reply.send(match r {
                    Ok(AddProviderOk { .. }) => Ok(()),
                    Err(_) => Err(KadError::Timeout),
                });
                true
            }
            (PendingOp::GetProviders { found, reply }, QueryResult::GetProviders(r)) => match r {
                Ok(GetProvidersOk::FoundProviders { providers, .. }) => {
                    for p in providers {
                        if !found.contains(&p) {
                            found.push(p);
                        }
                    }
                    if last {
                        let _ = reply.send(Ok(std::mem::take(found)));
                    }
                    last
                }
                Ok(GetProvidersOk::FinishedWithNoAdditionalRecord { .. })
                | Err(GetProvidersError::Timeout { .. }) => {
                    let r = if found.is_empty() {
                        Err(KadError::NotFound)
                    } else {
                        Ok(std::mem::take(found))
                    };
                    let _ = reply.send(r);
                    true
                }
            },
            (PendingOp::GetClosestPeers(reply), QueryResult::GetClosestPeers(r)) => {
                let r = match r {
                    Ok(ok) => Ok(ok.peers),
                    Err(GetClosestPeersError::Timeout { .. }) => Err(KadError::Timeout),
                };
                let r = r.map(|peers| {
                    peers
                        .into_iter()
                        .map(|p| self.kad_with_table_addrs(p.peer_id, p.addrs))
                        .collect()
                });
                let _ = reply.send(r);
                true
            }
            (PendingOp::FindPeer { peer, reply }, QueryResult::GetClosestPeers(r)) => {
                let peers = match r {
                    Ok(ok) => ok.peers,
                    Err(GetClosestPeersError::Timeout { peers, .. }) => peers,
                };
                let peer = *peer;
                let r = match peers.into_iter().find(|p| p.peer_id == peer) {
                    Some(p) => {
                        let info = self.kad_with_table_addrs(p.peer_id, p.addrs);
                        if info.addrs.is_empty() {
                            Err(KadError::NotFound)
                        } else {
                            Ok(info.addrs)
                        }
                    }
                    None => Err(KadError::NotFound),
                };
                let _ = reply.send(r);
                true
            }
            (_, other) => {
                // A query id reused for another kind of result cannot happen
                // with libp2p-kad; log it rather than panic.
                self.emit(PeerEvent::Other(format!(
                    "kad: unexpected result for query {id:?}: {other:?}"
                )));
                false
            }
        };
        if done {
            if !last
                && let Some(kad) = self.swarm.behaviour_mut().kad.as_mut()
                && let Some(mut q) = kad.query_mut(&id)
            {
                // Answered early (first record found): stop asking others.
                q.finish();
            }
        } else {
            self.kad_pending.insert(id, pending);
        }
    }

    /// `addrs`, or the routing table's addresses for `peer` when a lookup
    /// learnt none (libp2p-kad reports only addresses that some response
    /// carried, not those of peers it started from).
    fn kad_with_table_addrs(&mut self, peer: PeerId, addrs: Vec<Multiaddr>) -> KadPeerInfo {
        if !addrs.is_empty() {
            return KadPeerInfo { peer, addrs };
        }
        let addrs = self
            .swarm
            .behaviour_mut()
            .kad
            .as_mut()
            .and_then(|kad| {
                kad.kbucket(peer).and_then(|b| {
                    b.iter()
                        .find(|e| *e.node.key.preimage() == peer)
                        .map(|e| e.node.value.iter().cloned().collect())
                })
            })
            .unwrap_or_default();
        KadPeerInfo { peer, addrs }
    }

    fn kad_table_size(&mut self) -> usize {
        self.swarm
            .behaviour_mut()
            .kad
            .as_mut()
            .map(|kad| kad.kbuckets().map(|b| b.num_entries()).sum())
            .unwrap_or(0)
    }

    fn kad_replication_factor(&self) -> usize {
        self.kad_replication
    }
}

impl PendingOp {
    fn fail(self, e: KadError) {
        match self {
            PendingOp::Bootstrap(r) | PendingOp::PutValue(r) => {
                let _ = r.send(Err(e));
            }
            PendingOp::GetValue { reply, .. } => {
                let _ = reply.send(Err(e));
            }
            PendingOp::StartProviding(r) => {
                let _ = r.send(Err(e));
            }
            PendingOp::GetProviders { reply, .. } => {
                let _ = reply.send(Err(e));
            }
            PendingOp::GetClosestPeers(r) => {
                let _ = r.send(Err(e));
            }
            PendingOp::FindPeer { reply, .. } => {
                let _ = reply.send(Err(e));
            }
        }
    }
}

fn reply_disabled(cmd: KadCommand) {
    let e = KadError::Disabled;
    match cmd {
        KadCommand::AddAddress { reply, .. } | KadCommand::RemovePeer { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        KadCommand::Bootstrap { reply, .. } | KadCommand::PutValue { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        KadCommand::GetValue { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        KadCommand::StartProviding { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        KadCommand::GetProviders { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        KadCommand::GetClosestPeers { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        KadCommand::FindPeer { reply, .. } => {
            let _ = reply.send(Err(e));
        }
        KadCommand::SetMode(_) => {}
        KadCommand::Mode(reply) => {
            let _ = reply.send(None);
        }
        KadCommand::RoutingTable(reply) => {
            let _ = reply.send(Vec::new());
        }
    }
}

/// The queries blocking calls wait for, by libp2p-kad query id.
pub(crate) type PendingMap = HashMap<QueryId, PendingQuery>;
