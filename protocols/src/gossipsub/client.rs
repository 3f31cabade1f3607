//! The gossipsub plugin from any thread: [`GossipsubClient`] sends a
//! [`GossipCommand`] through a [`SwarmHandle`] and blocks until the
//! outcome or the timeout.

use std::sync::mpsc::RecvTimeoutError;
use std::time::Duration;

use swarm::{PeerId, PluginId, SwarmHandle};

use super::api::{GossipCommand, GossipOutput, GossipRequest, GossipStats};
use super::error::PublishError;
use super::message::{MessageId, Validation};

/// Why a client call failed.
#[derive(Clone, Debug, PartialEq, thiserror::Error)]
pub enum ClientError {
    /// The plugin refused the publish.
    #[error(transparent)]
    Publish(#[from] PublishError),
    /// The swarm or plugin could not be reached.
    #[error("gossipsub unavailable: {0}")]
    Unavailable(String),
    /// No answer in time.
    #[error("no answer within {0:?}")]
    Timeout(Duration),
    /// The plugin answered something else than the request's output.
    #[error("unexpected answer {0:?}")]
    Unexpected(Box<GossipOutput>),
}

/// A blocking client of one swarm's gossipsub plugin. `Clone + Send`.
#[derive(Clone)]
pub struct GossipsubClient {
    handle: SwarmHandle,
    plugin: PluginId,
}

impl GossipsubClient {
    /// A client of the plugin `plugin` (what `add_protocol` returned).
    pub fn new(handle: SwarmHandle, plugin: PluginId) -> Self {
        Self { handle, plugin }
    }

    /// Run a request and wait at most `timeout`.
    pub fn run(
        &self,
        request: GossipRequest,
        timeout: Duration,
    ) -> Result<GossipOutput, ClientError> {
        let (command, outcome) = GossipCommand::with_channel(request);
        self.handle
            .send_message(self.plugin, command)
            .map_err(|e| ClientError::Unavailable(e.to_string()))?;
        match outcome.recv_timeout(timeout) {
            Ok(result) => Ok(result?),
            Err(RecvTimeoutError::Timeout) => Err(ClientError::Timeout(timeout)),
            Err(RecvTimeoutError::Disconnected) => Err(ClientError::Unavailable(
                "the plugin dropped the request (no gossipsub plugin with that id?)".into(),
            )),
        }
    }

    /// Subscribe; whether it was new.
    pub fn subscribe(&self, topic: &str, timeout: Duration) -> Result<bool, ClientError> {
        match self.run(GossipRequest::Subscribe(topic.into()), timeout)? {
            GossipOutput::Subscribed(new) => Ok(new),
            other => Err(ClientError::Unexpected(Box::new(other))),
        }
    }

    /// Unsubscribe.
    pub fn unsubscribe(&self, topic: &str, timeout: Duration) -> Result<(), ClientError> {
        self.run(GossipRequest::Unsubscribe(topic.into()), timeout)
            .map(|_| ())
    }

    /// Publish; the message id.
    pub fn publish(
        &self,
        topic: &str,
        data: Vec<u8>,
        timeout: Duration,
    ) -> Result<MessageId, ClientError> {
        let request = GossipRequest::Publish {
            topic: topic.into(),
            data,
        };
        match self.run(request, timeout)? {
            GossipOutput::Published(id) => Ok(id),
            other => Err(ClientError::Unexpected(Box::new(other))),
        }
    }

    /// Answer an asynchronous validation.
    pub fn report_validation(
        &self,
        id: MessageId,
        propagation_source: PeerId,
        validation: Validation,
        timeout: Duration,
    ) -> Result<(), ClientError> {
        let request = GossipRequest::ReportValidation {
            id,
            propagation_source,
            validation,
        };
        self.run(request, timeout).map(|_| ())
    }

    /// Our mesh for a topic.
    pub fn mesh_peers(&self, topic: &str, timeout: Duration) -> Result<Vec<PeerId>, ClientError> {
        match self.run(GossipRequest::MeshPeers(topic.into()), timeout)? {
            GossipOutput::Peers(p) => Ok(p),
            other => Err(ClientError::Unexpected(Box::new(other))),
        }
    }

    /// A peer's score.
    pub fn peer_score(&self, peer: PeerId, timeout: Duration) -> Result<f64, ClientError> {
        match self.run(GossipRequest::PeerScore(peer), timeout)? {
            GossipOutput::Score(s) => Ok(s),
            other => Err(ClientError::Unexpected(Box::new(other))),
        }
    }

    /// Counters.
    pub fn stats(&self, timeout: Duration) -> Result<GossipStats, ClientError> {
        match self.run(GossipRequest::Stats, timeout)? {
            GossipOutput::Stats(s) => Ok(*s),
            other => Err(ClientError::Unexpected(Box::new(other))),
        }
    }
}
