//! A network of seeded swarms running identify and Kademlia on the virtual
//! net, and a way to ask one of them something and wait on virtual time.

#![allow(dead_code)]

pub mod loopback;

use std::net::Ipv4Addr;
use std::time::Duration;

use protocols::identify::{Identify, IdentifyConfig};
use protocols::kad::{KadCommand, KadConfig, KadOutput, KadRequest, KadResult, Kademlia, Mode};
use swarm::multiaddr::Protocol as AddrPart;
use swarm::virtual_net::{LISTEN_PORT, LinkConfig, VirtualNet};
use swarm::{Keypair, Multiaddr, PeerId, PluginId, SwarmConfig};

/// One node of the test network.
pub struct Node {
    pub index: usize,
    pub peer: PeerId,
    pub kad: PluginId,
    pub mode: Mode,
}

/// The network and its nodes.
pub struct KadNet {
    pub net: VirtualNet,
    pub nodes: Vec<Node>,
    pub seed: u64,
}

fn keypair(seed: u64, i: usize) -> Keypair {
    let mut key = [0u8; 32];
    key[..8].copy_from_slice(&seed.to_le_bytes());
    key[8..16].copy_from_slice(&(i as u64).to_le_bytes());
    key[31] = 0x4b;
    Keypair::ed25519_from_bytes(key).unwrap()
}

/// Node `i`'s IP: one /24 each, so the table's per-network limits hold.
pub fn ip(i: usize) -> Ipv4Addr {
    Ipv4Addr::new(10, (i / 250) as u8, (i % 250) as u8, 1)
}

/// The dial address of node `i` of a network with this seed.
pub fn dial_addr(seed: u64, i: usize) -> Multiaddr {
    let peer = keypair(seed, i).public().to_peer_id();
    format!("/ip4/{}/udp/{LISTEN_PORT}/quic-v1", ip(i))
        .parse::<Multiaddr>()
        .unwrap()
        .with(AddrPart::P2p(peer))
}

impl KadNet {
    /// An empty network.
    pub fn new(seed: u64) -> Self {
        let mut net = VirtualNet::new(seed, LinkConfig::clean());
        net.wall_limit = Some(Duration::from_secs(120));
        Self {
            net,
            nodes: Vec::new(),
            seed,
        }
    }

    /// Add a node bootstrapping from `seeds` (node indices), with `config`
    /// adjusted by `tweak`.
    pub fn add(
        &mut self,
        mode: Mode,
        seeds: &[usize],
        tweak: impl FnOnce(&mut KadConfig),
    ) -> usize {
        let i = self.nodes.len();
        let key = keypair(self.seed, i);
        let peer = key.public().to_peer_id();
        let mut config = SwarmConfig::new(key.clone());
        config.seed = Some(self.seed.wrapping_mul(1000).wrapping_add(i as u64));
        let mut kad_config = KadConfig {
            mode,
            bootstrap_peers: seeds
                .iter()
                .filter(|&&s| s != i)
                .map(|&s| dial_addr(self.seed, s))
                .collect(),
            ..KadConfig::default()
        };
        tweak(&mut kad_config);
        let mut kad = None;
        let index = self.net.add_swarm_with(config, ip(i), |s| {
            s.add_protocol(Box::new(Identify::new(IdentifyConfig::new(key.public()))));
            kad = Some(s.add_protocol(Box::new(Kademlia::new(kad_config))));
        });
        assert_eq!(index, i, "nodes are added in order");
        self.nodes.push(Node {
            index,
            peer,
            kad: kad.unwrap(),
            mode,
        });
        i
    }

    /// Send `request` to node `n`'s Kademlia plugin and run the network
    /// until it answers (at most `limit` of virtual time).
    pub fn ask(&mut self, n: usize, request: KadRequest, limit: Duration) -> KadResult {
        let (command, outcome) = KadCommand::with_channel(request);
        let kad = self.nodes[n].kad;
        self.net
            .swarm(n)
            .handle()
            .send_message(kad, command)
            .unwrap();
        let mut result = None;
        self.net.run_until(limit, |_| match outcome.try_recv() {
            Ok(r) => {
                result = Some(r);
                true
            }
            Err(_) => false,
        });
        result.unwrap_or_else(|| panic!("node {n} did not answer within {limit:?}"))
    }

    /// Send every `(node, request)` at once and run the network until all
    /// have answered; the results in the same order.
    pub fn ask_all(
        &mut self,
        requests: Vec<(usize, KadRequest)>,
        limit: Duration,
    ) -> Vec<KadResult> {
        let mut waiting = Vec::new();
        for (n, request) in requests {
            let (command, outcome) = KadCommand::with_channel(request);
            let kad = self.nodes[n].kad;
            self.net
                .swarm(n)
                .handle()
                .send_message(kad, command)
                .unwrap();
            waiting.push(outcome);
        }
        let mut results: Vec<Option<KadResult>> = waiting.iter().map(|_| None).collect();
        self.net.run_until(limit, |_| {
            for (slot, outcome) in results.iter_mut().zip(&waiting) {
                if slot.is_none() {
                    *slot = outcome.try_recv().ok();
                }
            }
            results.iter().all(Option::is_some)
        });
        results
            .into_iter()
            .enumerate()
            .map(|(i, r)| r.unwrap_or_else(|| panic!("request {i} got no answer within {limit:?}")))
            .collect()
    }

    /// Node `n`'s routing table.
    pub fn table(&mut self, n: usize) -> Vec<PeerId> {
        match self.ask(n, KadRequest::RoutingTable, Duration::from_secs(1)) {
            Ok(KadOutput::Peers(peers)) => peers,
            other => panic!("unexpected {other:?}"),
        }
    }
}
