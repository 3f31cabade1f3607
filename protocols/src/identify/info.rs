//! What identify tells about a peer, and its conversion to and from the
//! wire message.

use swarm::multiaddr::Protocol as AddrPart;
use swarm::{Multiaddr, PeerId, PublicKey};
use tracing::debug;

use super::IdentifyError;
use super::proto;

/// A peer's identify information, as received (merged with earlier pushes)
/// or as we send it.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct IdentifyInfo {
    /// The peer's host public key; its PeerId is the connection's.
    pub public_key: PublicKey,
    /// Protocol family and version, e.g. `/ipfs/0.1.0`.
    pub protocol_version: String,
    /// Implementation name and version.
    pub agent_version: String,
    /// Addresses the peer says it listens on (without `/p2p/…`).
    pub listen_addrs: Vec<Multiaddr>,
    /// Protocol ids the peer accepts.
    pub protocols: Vec<String>,
    /// Our address as the peer sees it, if it said.
    pub observed_addr: Option<Multiaddr>,
}

impl IdentifyInfo {
    /// The wire message carrying every field.
    pub(crate) fn to_proto(&self) -> proto::Identify {
        proto::Identify {
            protocol_version: Some(self.protocol_version.clone()),
            agent_version: Some(self.agent_version.clone()),
            public_key: Some(self.public_key.encode_protobuf()),
            listen_addrs: self.listen_addrs.iter().map(|a| a.to_vec()).collect(),
            observed_addr: self.observed_addr.as_ref().map(|a| a.to_vec()),
            protocols: self.protocols.clone(),
            signed_peer_record: None,
        }
    }

    /// Apply a push: fields the push carries replace ours, absent ones stay
    /// (a push may send only what changed; empty lists count as absent, as
    /// in rust-libp2p).
    pub(crate) fn merge(&mut self, update: Update) {
        if let Some(key) = update.public_key {
            self.public_key = key;
        }
        if let Some(v) = update.protocol_version {
            self.protocol_version = v;
        }
        if let Some(v) = update.agent_version {
            self.agent_version = v;
        }
        if !update.listen_addrs.is_empty() {
            self.listen_addrs = update.listen_addrs;
        }
        if !update.protocols.is_empty() {
            self.protocols = update.protocols;
        }
        if update.observed_addr.is_some() {
            self.observed_addr = update.observed_addr;
        }
    }
}

/// A decoded and checked message whose fields may be absent (a push).
#[derive(Debug, Default)]
pub(crate) struct Update {
    pub(crate) public_key: Option<PublicKey>,
    pub(crate) protocol_version: Option<String>,
    pub(crate) agent_version: Option<String>,
    pub(crate) listen_addrs: Vec<Multiaddr>,
    pub(crate) protocols: Vec<String>,
    pub(crate) observed_addr: Option<Multiaddr>,
}

impl Update {
    /// Decode `message` from `peer`. A public key, if present, must decode
    /// and belong to `peer`. Unparsable addresses are skipped, not fatal:
    /// one odd address should not cost us the rest (rust-libp2p does the
    /// same).
    pub(crate) fn from_proto(
        message: proto::Identify,
        peer: PeerId,
    ) -> Result<Self, IdentifyError> {
        let public_key = match message.public_key {
            None => None,
            Some(bytes) => {
                let key = PublicKey::try_decode_protobuf(&bytes)
                    .map_err(|e| IdentifyError::InvalidPublicKey(e.to_string()))?;
                let actual = key.to_peer_id();
                if actual != peer {
                    return Err(IdentifyError::WrongPeerId { actual });
                }
                Some(key)
            }
        };
        let listen_addrs = message
            .listen_addrs
            .into_iter()
            .filter_map(|bytes| parse_addr(bytes, "listen"))
            .filter_map(|addr| without_own_p2p(addr, peer))
            .collect();
        Ok(Self {
            public_key,
            protocol_version: message.protocol_version,
            agent_version: message.agent_version,
            listen_addrs,
            protocols: message.protocols,
            observed_addr: message
                .observed_addr
                .and_then(|bytes| parse_addr(bytes, "observed")),
        })
    }

    /// A complete info from a response (or a first push), which must carry
    /// the public key.
    pub(crate) fn into_info(self) -> Result<IdentifyInfo, IdentifyError> {
        let public_key = self.public_key.ok_or(IdentifyError::MissingPublicKey)?;
        Ok(IdentifyInfo {
            public_key,
            protocol_version: self.protocol_version.unwrap_or_default(),
            agent_version: self.agent_version.unwrap_or_default(),
            listen_addrs: self.listen_addrs,
            protocols: self.protocols,
            observed_addr: self.observed_addr,
        })
    }
}

fn parse_addr(bytes: Vec<u8>, what: &str) -> Option<Multiaddr> {
    match Multiaddr::try_from(bytes) {
        Ok(addr) => Some(addr),
        Err(e) => {
            debug!(error = %e, "skipping unparsable {what} address in identify message");
            None
        }
    }
}

/// Some implementations append `/p2p/<their id>` to listen addresses; the
/// peer store keys addresses by peer already, so strip it. An address that
/// names another peer is not the sender's to announce: skip it.
fn without_own_p2p(mut addr: Multiaddr, peer: PeerId) -> Option<Multiaddr> {
    match addr.iter().last() {
        Some(AddrPart::P2p(id)) if id == peer => {
            addr.pop();
            Some(addr)
        }
        Some(AddrPart::P2p(other)) => {
            debug!(%other, %peer, "skipping listen address for another peer");
            None
        }
        _ => Some(addr),
    }
}

#[cfg(test)]
mod tests {
    use super::*;
    use swarm::Keypair;

    fn info() -> IdentifyInfo {
        IdentifyInfo {
            public_key: Keypair::ed25519_from_bytes([7; 32]).unwrap().public(),
            protocol_version: "/ipfs/0.1.0".into(),
            agent_version: "test/1".into(),
            listen_addrs: vec!["/ip4/127.0.0.1/udp/1/quic-v1".parse().unwrap()],
            protocols: vec!["/ipfs/id/1.0.0".into()],
            observed_addr: Some("/ip4/127.0.0.2/udp/2/quic-v1".parse().unwrap()),
        }
    }

    #[test]
    fn every_field_survives_the_wire() {
        let info = info();
        let peer = info.public_key.to_peer_id();
        let back = Update::from_proto(info.to_proto(), peer)
            .unwrap()
            .into_info()
            .unwrap();
        assert_eq!(back, info);
    }

    #[test]
    fn key_of_another_peer_is_refused() {
        let info = info();
        let err = Update::from_proto(info.to_proto(), PeerId::random()).unwrap_err();
        assert_eq!(
            err,
            IdentifyError::WrongPeerId {
                actual: info.public_key.to_peer_id()
            }
        );
    }

    #[test]
    fn push_replaces_only_the_fields_it_carries() {
        let mut info = info();
        let new_addr: Multiaddr = "/ip4/127.0.0.1/udp/3/quic-v1".parse().unwrap();
        info.merge(Update {
            listen_addrs: vec![new_addr.clone()],
            ..Default::default()
        });
        assert_eq!(info.listen_addrs, vec![new_addr]);
        assert_eq!(info.agent_version, "test/1");
        assert_eq!(info.protocols, vec!["/ipfs/id/1.0.0".to_string()]);
    }

    #[test]
    fn own_p2p_suffix_is_stripped_and_foreign_ones_skipped() {
        let info = info();
        let peer = info.public_key.to_peer_id();
        let mut message = info.to_proto();
        let base: Multiaddr = "/ip4/127.0.0.1/udp/1/quic-v1".parse().unwrap();
        message.listen_addrs = vec![
            base.clone().with(AddrPart::P2p(peer)).to_vec(),
            base.clone().with(AddrPart::P2p(PeerId::random())).to_vec(),
            vec![0xff, 0xff],
        ];
        let update = Update::from_proto(message, peer).unwrap();
        assert_eq!(update.listen_addrs, vec![base]);
    }
}
