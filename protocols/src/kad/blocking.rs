//! The Kademlia plugin from any thread: [`KadClient`] sends a
//! [`KadCommand`] through a [`SwarmHandle`] and blocks until the outcome or
//! the timeout.

use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use swarm::{Multiaddr, PeerId, PluginId, SwarmHandle};

use super::api::{KadCommand, KadOutput, KadRequest, KadResult, KadStats};
use super::error::KadError;
use super::store::{Provider, Record};

/// A blocking client of one swarm's Kademlia plugin. `Clone + Send`.
#[derive(Clone)]
pub struct KadClient {
    handle: SwarmHandle,
    plugin: PluginId,
}

impl KadClient {
    /// A client of the plugin `plugin` (what `add_protocol` returned) on
    /// the swarm behind `handle`.
    pub fn new(handle: SwarmHandle, plugin: PluginId) -> Self {
        Self { handle, plugin }
    }

    /// Run `request` and wait at most `timeout` for its outcome.
    pub fn run(&self, request: KadRequest, timeout: Duration) -> KadResult {
        let (command, outcome) = KadCommand::with_channel(request);
        self.handle
            .send_message(self.plugin, command)
            .map_err(|e| KadError::Unavailable(e.to_string()))?;
        match outcome.recv_timeout(timeout) {
            Ok(result) => result,
            Err(RecvTimeoutError::Timeout) => Err(KadError::Timeout(timeout)),
            Err(RecvTimeoutError::Disconnected) => Err(KadError::Unavailable(
                "the plugin dropped the request (no Kademlia plugin with that id?)".into(),
            )),
        }
    }

    /// The k peers closest to `key`, closest first.
    pub fn get_closest_peers(
        &self,
        key: &[u8],
        timeout: Duration,
    ) -> Result<Vec<PeerId>, KadError> {
        match self.run(KadRequest::GetClosestPeers(key.to_vec()), timeout)? {
            KadOutput::ClosestPeers(peers) => Ok(peers),
            other => Err(unexpected(other)),
        }
    }

    /// A peer's addresses (also added to the peer store).
    pub fn find_peer(&self, peer: PeerId, timeout: Duration) -> Result<Vec<Multiaddr>, KadError> {
        match self.run(KadRequest::FindPeer(peer), timeout)? {
            KadOutput::PeerAddrs(addrs) => Ok(addrs),
            other => Err(unexpected(other)),
        }
    }

    /// Store a record on the k closest peers; how many stored it.
    pub fn put_value(&self, record: Record, timeout: Duration) -> Result<usize, KadError> {
        match self.run(KadRequest::PutValue(record), timeout)? {
            KadOutput::Stored(n) => Ok(n),
            other => Err(unexpected(other)),
        }
    }

    /// The valid records found under `key` (at least the quorum).
    pub fn get_value(&self, key: &[u8], timeout: Duration) -> Result<Vec<Record>, KadError> {
        match self.run(KadRequest::GetValue(key.to_vec()), timeout)? {
            KadOutput::Records(records) => Ok(records),
            other => Err(unexpected(other)),
        }
    }

    /// Announce us as a provider of `key`; how many peers were told.
    pub fn start_providing(&self, key: &[u8], timeout: Duration) -> Result<usize, KadError> {
        match self.run(KadRequest::StartProviding(key.to_vec()), timeout)? {
            KadOutput::Providing(n) => Ok(n),
            other => Err(unexpected(other)),
        }
    }

    /// Stop republishing `key`.
    pub fn stop_providing(&self, key: &[u8], timeout: Duration) -> Result<(), KadError> {
        self.run(KadRequest::StopProviding(key.to_vec()), timeout)
            .map(|_| ())
    }

    /// Providers of `key`.
    pub fn get_providers(&self, key: &[u8], timeout: Duration) -> Result<Vec<Provider>, KadError> {
        match self.run(KadRequest::GetProviders(key.to_vec()), timeout)? {
            KadOutput::Providers(providers) => Ok(providers),
            other => Err(unexpected(other)),
        }
    }

    /// Bootstrap now; the routing table size afterwards.
    pub fn bootstrap(&self, timeout: Duration) -> Result<usize, KadError> {
        match self.run(KadRequest::Bootstrap, timeout)? {
            KadOutput::Bootstrapped(n) => Ok(n),
            other => Err(unexpected(other)),
        }
    }

    /// Add a peer that speaks the protocol, at `addrs`.
    pub fn add_peer(
        &self,
        peer: PeerId,
        addrs: Vec<Multiaddr>,
        timeout: Duration,
    ) -> Result<(), KadError> {
        self.run(KadRequest::AddPeer { peer, addrs }, timeout)
            .map(|_| ())
    }

    /// The plugin's table sizes.
    pub fn stats(&self, timeout: Duration) -> Result<KadStats, KadError> {
        match self.run(KadRequest::Stats, timeout)? {
            KadOutput::Stats(stats) => Ok(stats),
            other => Err(unexpected(other)),
        }
    }
}

fn unexpected(output: KadOutput) -> KadError {
    KadError::Unavailable(format!("unexpected answer {output:?}"))
}
