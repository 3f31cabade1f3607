//! `netsim kad`: a Kademlia network. Nodes join one after another through
//! a few seed nodes, refresh once everyone is in, put records, then run
//! lookups of live peers and gets of the records while a fraction of the
//! nodes leaves (with no goodbye).

use std::collections::HashMap;
use std::net::{IpAddr, Ipv4Addr, Ipv6Addr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use clap::Args;
use protocols::identify::{Identify, IdentifyConfig};
use protocols::kad::{
    KadCommand, KadConfig, KadEvent, KadOutput, KadRequest, Kademlia, QueryId, Record, start_query,
};
use rand::rngs::StdRng;
use rand::seq::IndexedRandom;
use rand::{Rng, SeedableRng};
use serde_json::json;
use swarm::virtual_net::VirtualNet;
use swarm::{Context, Keypair, Multiaddr, PeerId, PluginId, Protocol, ProtocolEvent, SwarmConfig};

use crate::net_args::NetArgs;
use crate::report::{Progress, peak_rss_bytes, percentile_ms};

/// The knobs of the kad scenario.
#[derive(Args)]
pub(crate) struct KadArgs {
    #[command(flatten)]
    net: NetArgs,
    /// Kademlia's k: bucket size, lookup width and how many peers store a
    /// record.
    #[arg(long, default_value_t = 20)]
    k: usize,
    /// Nodes everyone else joins through.
    #[arg(long, default_value_t = 3)]
    seeds: usize,
    /// Virtual milliseconds between two nodes joining.
    #[arg(long, default_value_t = 10.0)]
    join_interval_ms: f64,
    /// Virtual milliseconds between two nodes starting their refresh once
    /// everyone has joined (0: all at once). Each refresh is a bootstrap
    /// (a dozen lookups, a few hundred peers dialed) whose connections live
    /// until they have been idle for 2 s; started all at once, every node
    /// holds a few hundred connections at the same moment (~30 KB each),
    /// which is what capped the network at 1,000 nodes. Started at the
    /// join interval, the refresh wave holds as many at once as the join
    /// wave does, whatever the number of nodes.
    #[arg(long, default_value_t = 10.0)]
    refresh_interval_ms: f64,
    /// Skip the refresh wave: the early joiners' tables fill only from the
    /// later joiners who reach them (half the connections of a run).
    #[arg(long)]
    no_refresh: bool,
    /// Records put before the query phase.
    #[arg(long, default_value_t = 100)]
    puts: usize,
    /// Lookups of live peers (find_peer) in the query phase.
    #[arg(long, default_value_t = 1000)]
    lookups: usize,
    /// Gets of the records put, in the query phase.
    #[arg(long, default_value_t = 1000)]
    gets: usize,
    /// Queries started per virtual second in the query phase.
    #[arg(long, default_value_t = 100.0)]
    query_rate: f64,
    /// Fraction of the nodes that leave during the query phase, spread
    /// evenly over it (seeds included: nobody is special once joined).
    #[arg(long, default_value_t = 0.1)]
    leave_fraction: f64,
}

/// What a query was for.
#[derive(Clone, Copy, PartialEq)]
enum Kind {
    Join,
    Put,
    Lookup,
    Get,
}

/// A query the scenario started: what, when, and how it ended.
struct Query {
    kind: Kind,
    started: Instant,
    /// The node that asked, and (lookups) the node looked for.
    origin: usize,
    target: Option<usize>,
    /// Finish time and success, once finished.
    outcome: Option<(Instant, bool)>,
    /// Hops to the closest peer that answered (see `KadEvent::QueryFinished`).
    hops: u32,
    /// The asking node or the node looked for left while the query ran:
    /// it counts neither way.
    abandoned: bool,
}

/// Every query of every node, by id (ids are unique in the process), and
/// how many are still open (neither finished nor abandoned): kept as the
/// queries change, since the run checks it after every turn and a scan of
/// tens of thousands of queries per turn would dominate a big run.
#[derive(Default)]
struct Book {
    by_id: HashMap<QueryId, Query>,
    open: usize,
}

type Queries = Arc<Mutex<Book>>;

/// Connections ever established, counted on both ends.
type Established = Arc<AtomicU64>;

/// Records when the node's Kademlia plugin finishes a query the scenario
/// started, and whether it succeeded.
struct Outcomes {
    queries: Queries,
    /// For lookups: the peer looked for; a lookup succeeds only with an
    /// address. For gets: the value expected.
    expected: Arc<Mutex<HashMap<QueryId, Vec<u8>>>>,
    established: Established,
}

impl Protocol for Outcomes {
    fn name(&self) -> &'static str {
        "netsim-kad-outcomes"
    }

    fn handle_protocol_event(&mut self, ctx: &mut Context<'_>, event: &ProtocolEvent) {
        let Some(KadEvent::QueryFinished { id, result, hops }) = event.downcast_ref::<KadEvent>()
        else {
            return;
        };
        let mut book = self.queries.lock().unwrap();
        let Book { by_id, open } = &mut *book;
        let Some(query) = by_id.get_mut(id) else {
            return;
        };
        let expected = self.expected.lock().unwrap().remove(id);
        let ok = match (query.kind, result) {
            (Kind::Join, Ok(_)) => true,
            (Kind::Put, Ok(KadOutput::Stored(n))) => *n > 0,
            (Kind::Lookup, Ok(KadOutput::PeerAddrs(addrs))) => !addrs.is_empty(),
            (Kind::Get, Ok(KadOutput::Records(records))) => {
                records.iter().any(|r| Some(&r.value) == expected.as_ref())
            }
            _ => false,
        };
        if query.outcome.is_none() && !query.abandoned {
            *open -= 1;
        }
        query.outcome = Some((ctx.now(), ok));
        query.hops = *hops;
    }

    fn handle_new_connection(&mut self, _: &mut Context<'_>, _: swarm::ConnId, _: PeerId) {
        self.established.fetch_add(1, Ordering::Relaxed);
    }
}

/// Node `i`'s address: each node in its own /24 (IPv4) or /48 (IPv6), as
/// hosts of a real network are, so that the routing table's per-network
/// limits do not bind.
fn node_ip(i: usize, ipv6: bool) -> IpAddr {
    let i = i as u32;
    if ipv6 {
        Ipv6Addr::new(0xfd00, (i >> 16) as u16, i as u16, 0, 0, 0, 0, 1).into()
    } else {
        Ipv4Addr::new(10, (i >> 8) as u8, i as u8, 1 + (i >> 16) as u8).into()
    }
}

/// Connections and streams open across the network right now (every
/// swarm's table: handshaking, established and closing connections).
fn open_connections(net: &VirtualNet) -> (usize, usize) {
    (0..net.len())
        .filter_map(|n| net.swarm_ref(n))
        .fold((0, 0), |(c, s), swarm| {
            (c + swarm.connection_count(), s + swarm.stream_count())
        })
}

/// One node of the network.
struct Node {
    index: usize,
    peer: PeerId,
    kad: PluginId,
}

struct Scenario {
    net: VirtualNet,
    rng: StdRng,
    queries: Queries,
    expected: Arc<Mutex<HashMap<QueryId, Vec<u8>>>>,
    established: Established,
    ipv6: bool,
    progress: Progress,
}

impl Scenario {
    fn add_node(&mut self, i: usize, seeds: &[Multiaddr], k: usize) -> anyhow::Result<Node> {
        let keypair = Keypair::ed25519_from_bytes(self.rng.random::<[u8; 32]>())?;
        let public_key = keypair.public();
        let mut config = SwarmConfig::new(keypair);
        config.seed = Some(self.rng.random());
        // A node meets many peers once (every lookup dials some): close
        // what nobody uses soon, as rust-libp2p does, and keep quinn's
        // per-connection stream table small (a Kademlia request is one
        // stream; see perf/BENCHMARKS.md on what that table costs).
        config.idle_connection_timeout = Duration::from_secs(2);
        config.limits.max_inbound_streams = 32;
        let kad_config = KadConfig {
            bootstrap_peers: seeds.to_vec(),
            k,
            // The scenario says when to bootstrap, to know when it ends.
            bootstrap_interval: None,
            ..KadConfig::default()
        };
        let mut kad = None;
        let (queries, expected) = (self.queries.clone(), self.expected.clone());
        let established = self.established.clone();
        let index = self.net.add_swarm_with(config, node_ip(i, self.ipv6), |s| {
            s.add_protocol(Box::new(Identify::new(IdentifyConfig::new(public_key))));
            kad = Some(s.add_protocol(Box::new(Kademlia::new(kad_config))));
            s.add_protocol(Box::new(Outcomes {
                queries,
                expected,
                established,
            }));
        });
        let peer = self.net.swarm(index).local_peer_id();
        Ok(Node {
            index,
            peer,
            kad: kad.expect("added"),
        })
    }

    /// Start `request` on `node`; `expected` is what makes it a success
    /// (see [`Outcomes`]).
    fn start(
        &mut self,
        node: &Node,
        kind: Kind,
        request: KadRequest,
        expected: Option<Vec<u8>>,
        target: Option<usize>,
    ) {
        // Registered before the command is sent: a query answered from the
        // local store finishes within the call.
        let command = KadCommand::with_event(request);
        let id = command.id;
        if let Some(value) = expected {
            self.expected.lock().unwrap().insert(id, value);
        }
        let mut book = self.queries.lock().unwrap();
        book.open += 1;
        book.by_id.insert(
            id,
            Query {
                kind,
                started: self.net.now(),
                origin: node.index,
                target,
                outcome: None,
                hops: 0,
                abandoned: false,
            },
        );
        // Let go before the command runs: a query that finishes within
        // it takes the lock in `Outcomes`.
        drop(book);
        let kad = node.kad;
        self.net
            .swarm(node.index)
            .with_context(PluginId::external(), |ctx| ctx.send_message(kad, command));
    }

    /// Node `gone` left: its open queries, and open lookups of it, are
    /// abandoned.
    fn left(&mut self, gone: usize) {
        self.net.remove_node(gone);
        let mut book = self.queries.lock().unwrap();
        let Book { by_id, open } = &mut *book;
        for q in by_id.values_mut() {
            if q.outcome.is_none() && !q.abandoned && (q.origin == gone || q.target == Some(gone)) {
                q.abandoned = true;
                *open -= 1;
            }
        }
    }

    /// Run until every query started has finished (or `limit` passes).
    fn settle(&mut self, limit: Duration) {
        let queries = self.queries.clone();
        let progress = &mut self.progress;
        self.net.run_until(limit, |net| {
            let open = queries.lock().unwrap().open;
            progress.tick(net, || {
                let (conns, streams) = open_connections(net);
                json!({"phase_open_queries": open, "connections": conns, "streams": streams})
            });
            open == 0
        });
    }

    /// Print where a phase ended: virtual and wall time, connections
    /// established so far.
    fn phase_done(&self, phase: &str) {
        println!(
            "{}",
            json!({
                "event": "phase_done",
                "phase": phase,
                "virtual_s": self.net.elapsed().as_secs_f64(),
                "wall_s": self.progress.wall_s(),
                "connections_established": self.established.load(Ordering::Relaxed),
                "connections_open": open_connections(&self.net).0,
                "peer_store_entries": (0..self.net.len())
                    .filter_map(|n| self.net.swarm_ref(n))
                    .map(|s| s.peer_store().len())
                    .sum::<usize>(),
            })
        );
    }

    /// Hops p50 and p99 of the successful queries of one kind.
    fn hops(&self, kind: Kind) -> (Option<u32>, Option<u32>) {
        let book = self.queries.lock().unwrap();
        let mut hops: Vec<u32> = book
            .by_id
            .values()
            .filter(|q| q.kind == kind && !q.abandoned && matches!(q.outcome, Some((_, true))))
            .map(|q| q.hops)
            .collect();
        hops.sort_unstable();
        let at = |p: f64| {
            let last = hops.len().checked_sub(1)?;
            Some(hops[((hops.len() as f64 * p) as usize).min(last)])
        };
        (at(0.5), at(0.99))
    }

    /// Success rate and latency percentiles (virtual ms) of one kind.
    fn figures(&self, kind: Kind) -> (usize, f64, Option<f64>, Option<f64>) {
        let book = self.queries.lock().unwrap();
        let of_kind: Vec<&Query> = book
            .by_id
            .values()
            .filter(|q| q.kind == kind && !q.abandoned)
            .collect();
        let ok: Vec<Duration> = of_kind
            .iter()
            .filter_map(|q| match q.outcome {
                Some((at, true)) => Some(at - q.started),
                _ => None,
            })
            .collect();
        let mut sorted = ok.clone();
        sorted.sort_unstable();
        let rate = if of_kind.is_empty() {
            1.0
        } else {
            ok.len() as f64 / of_kind.len() as f64
        };
        (
            of_kind.len(),
            rate,
            percentile_ms(&sorted, 0.5),
            percentile_ms(&sorted, 0.99),
        )
    }
}

pub(crate) fn run(args: KadArgs) -> anyhow::Result<()> {
    let net_args = args.net.clone();
    anyhow::ensure!(
        args.seeds >= 1 && net_args.nodes > args.seeds,
        "--nodes must exceed --seeds (at least 1)"
    );
    let mut s = Scenario {
        net: net_args.network(),
        rng: StdRng::seed_from_u64(net_args.seed),
        queries: Arc::default(),
        expected: Arc::default(),
        established: Arc::default(),
        ipv6: net_args.ipv6,
        progress: Progress::new(),
    };
    let limit = Duration::from_secs_f64(net_args.max_virtual_s);

    // 1. Seeds, knowing each other; then everyone else, one at a time,
    //    each bootstrapping through the seeds as it arrives.
    let mut nodes: Vec<Node> = Vec::with_capacity(net_args.nodes);
    let mut seed_addrs = Vec::new();
    for i in 0..args.seeds {
        let node = s.add_node(i, &[], args.k)?;
        seed_addrs.push(s.net.dial_addr(node.index));
        nodes.push(node);
    }
    for (i, node) in nodes.iter().enumerate() {
        let others: Vec<(PeerId, Multiaddr)> = nodes
            .iter()
            .zip(&seed_addrs)
            .filter(|(n, _)| n.index != node.index)
            .map(|(n, a)| (n.peer, a.clone()))
            .collect();
        for (peer, addr) in others {
            let request = KadRequest::AddPeer {
                peer,
                addrs: vec![addr],
            };
            let kad = node.kad;
            s.net
                .swarm(nodes[i].index)
                .with_context(PluginId::external(), |ctx| start_query(ctx, kad, request));
        }
    }
    let join_interval = Duration::from_secs_f64(args.join_interval_ms / 1000.0);
    for i in args.seeds..net_args.nodes {
        let node = s.add_node(i, &seed_addrs, args.k)?;
        s.start(&node, Kind::Join, KadRequest::Bootstrap, None, None);
        nodes.push(node);
        s.net.run_for(join_interval);
        let (joined, virtual_s) = (nodes.len(), s.net.elapsed().as_secs_f64());
        s.progress.tick(&s.net, || {
            let (conns, streams) = open_connections(&s.net);
            json!({"phase": "join", "nodes": joined, "at": virtual_s,
                    "connections": conns, "streams": streams})
        });
    }
    s.settle(limit);
    s.phase_done("join");
    // Early joiners met a small network: everyone refreshes once, one
    // after another as they joined (see `--refresh-interval-ms`).
    let refresh_interval = Duration::from_secs_f64(args.refresh_interval_ms / 1000.0);
    let refreshing = if args.no_refresh { &[][..] } else { &nodes[..] };
    for (i, node) in refreshing.iter().enumerate() {
        s.start(node, Kind::Join, KadRequest::Bootstrap, None, None);
        if !refresh_interval.is_zero() {
            s.net.run_for(refresh_interval);
            s.progress.tick(&s.net, || {
                let (conns, streams) = open_connections(&s.net);
                json!({"phase": "refresh", "started": i + 1,
                    "connections": conns, "streams": streams})
            });
        }
    }
    s.settle(limit);
    s.phase_done("refresh");
    let joined_at = s.net.elapsed();

    // 2. Records, from random nodes.
    let mut keys = Vec::with_capacity(args.puts);
    for j in 0..args.puts {
        let (key, value) = (
            format!("key-{j}").into_bytes(),
            format!("value-{j}").into_bytes(),
        );
        let from = s.rng.random_range(0..nodes.len());
        let record = Record::new(key.clone(), value.clone());
        s.start(
            &nodes[from],
            Kind::Put,
            KadRequest::PutValue(record),
            None,
            None,
        );
        keys.push((key, value));
    }
    s.settle(limit);
    s.phase_done("put");

    // 3. Lookups and gets, in random order at the query rate, while nodes
    //    leave evenly over the phase.
    let total = args.lookups + args.gets;
    let mut kinds: Vec<Kind> = std::iter::repeat_n(Kind::Lookup, args.lookups)
        .chain(std::iter::repeat_n(Kind::Get, args.gets))
        .collect();
    for i in (1..kinds.len()).rev() {
        let j = s.rng.random_range(0..=i);
        kinds.swap(i, j);
    }
    let leaves = ((net_args.nodes as f64) * args.leave_fraction) as usize;
    let leave_every = total.checked_div(leaves).unwrap_or(usize::MAX);
    let gap = Duration::from_secs_f64(1.0 / args.query_rate);
    let mut left = 0;
    for (q, kind) in kinds.into_iter().enumerate() {
        if left < leaves && q % leave_every.max(1) == 0 && nodes.len() > 2 {
            let gone = nodes.swap_remove(s.rng.random_range(0..nodes.len()));
            s.left(gone.index);
            left += 1;
        }
        let from = s.rng.random_range(0..nodes.len());
        match kind {
            Kind::Lookup => {
                let mut target = s.rng.random_range(0..nodes.len());
                while target == from {
                    target = s.rng.random_range(0..nodes.len());
                }
                let request = KadRequest::FindPeer(nodes[target].peer);
                let target = Some(nodes[target].index);
                s.start(&nodes[from], Kind::Lookup, request, None, target);
            }
            _ => {
                let (key, value) = keys.choose(&mut s.rng).expect("puts > 0").clone();
                let request = KadRequest::GetValue(key);
                s.start(&nodes[from], Kind::Get, request, Some(value), None);
            }
        }
        s.net.run_for(gap);
        s.progress.tick(&s.net, || {
            let (conns, streams) = open_connections(&s.net);
            json!({"phase": "query", "started": q + 1, "left": left,
                    "connections": conns, "streams": streams})
        });
    }
    s.settle(limit);

    let unfinished = s.queries.lock().unwrap().open;
    let (joins, join_rate, _, _) = s.figures(Kind::Join);
    let (puts, put_rate, put_p50, _) = s.figures(Kind::Put);
    let (lookups, lookup_rate, lookup_p50, lookup_p99) = s.figures(Kind::Lookup);
    let (gets, get_rate, get_p50, get_p99) = s.figures(Kind::Get);
    let (lookup_hops_p50, lookup_hops_p99) = s.hops(Kind::Lookup);
    let (get_hops_p50, get_hops_p99) = s.hops(Kind::Get);
    println!(
        "{}",
        json!({
            "event": "summary",
            "scenario": "kad",
            "nodes": net_args.nodes,
            "seed": net_args.seed,
            "virtual_s": s.net.elapsed().as_secs_f64(),
            "wall_s": s.progress.wall_s(),
            "peak_rss_bytes": peak_rss_bytes(),
            "trace_hash": format!("{:016x}", s.net.trace_hash()),
            "replayable": s.net.replayable(),
            "joined_virtual_s": joined_at.as_secs_f64(),
            "bootstraps": joins,
            "bootstrap_success_rate": join_rate,
            "puts": puts,
            "put_success_rate": put_rate,
            "put_p50_ms": put_p50,
            "lookups": lookups,
            "lookup_success_rate": lookup_rate,
            "lookup_p50_ms": lookup_p50,
            "lookup_p99_ms": lookup_p99,
            "lookup_hops_p50": lookup_hops_p50,
            "lookup_hops_p99": lookup_hops_p99,
            "gets": gets,
            "get_success_rate": get_rate,
            "get_p50_ms": get_p50,
            "get_p99_ms": get_p99,
            "get_hops_p50": get_hops_p50,
            "get_hops_p99": get_hops_p99,
            "left": left,
            "abandoned_queries": s.queries.lock().unwrap().by_id.values().filter(|q| q.abandoned).count(),
            "connections_established": s.established.load(Ordering::Relaxed),
            "unfinished_queries": unfinished,
        })
    );
    Ok(())
}
