//! Protocols as swarm plugins, written only against the swarm's public API:
//! ping, identify (and push), perf, the legacy `/libp2p/test/data`,
//! request/response, Kademlia, gossipsub, and the NAT traversal trio:
//! AutoNAT v2, the circuit relay v2 client and DCUtR.

pub mod autonat;
pub mod dcutr;
pub mod framing;
pub mod gossipsub;
pub mod identify;
pub mod kad;
pub mod perf;
pub mod ping;
pub mod relay;
pub mod request_response;
pub mod test_data;
