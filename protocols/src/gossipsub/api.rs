//! What the plugin reports and what it is asked: events, statistics and
//! commands (from a plugin with `Context::send_message`, from a thread
//! with [`GossipsubClient`](super::GossipsubClient)).

use std::sync::mpsc;

use swarm::PeerId;

use super::error::{PublishError, WireError};
use super::message::{GossipMessage, MessageId, Validation};

/// What the gossipsub plugin emits (`Context::emit`; applications get it
/// as `SwarmEvent::Protocol` and downcast).
#[derive(Clone, Debug)]
pub enum GossipEvent {
    /// A new message for a topic we subscribe to. With asynchronous
    /// validation it is not forwarded until answered with
    /// [`GossipRequest::ReportValidation`].
    Message {
        /// The peer we got it from.
        propagation_source: PeerId,
        /// Its id.
        id: MessageId,
        /// The message.
        message: GossipMessage,
    },
    /// A peer subscribed to a topic.
    Subscribed {
        /// The peer.
        peer: PeerId,
        /// The topic.
        topic: String,
    },
    /// A peer unsubscribed from a topic.
    Unsubscribed {
        /// The peer.
        peer: PeerId,
        /// The topic.
        topic: String,
    },
    /// A peer's outbound queue refused frames since the last report: it
    /// does not read fast enough.
    SlowPeer {
        /// The peer.
        peer: PeerId,
        /// Frames dropped for it since the last report.
        dropped: u64,
        /// Bytes waiting for it now.
        queued_bytes: usize,
    },
    /// A peer sent bytes we could not parse; its inbound stream was dropped.
    WireError {
        /// The peer.
        peer: PeerId,
        /// What was wrong.
        error: WireError,
    },
    /// A peer pruned us and suggested others (peer exchange); we dial
    /// those the peer store has addresses for.
    PeerExchange {
        /// The pruning peer.
        peer: PeerId,
        /// The topic.
        topic: String,
        /// Suggested peers.
        peers: Vec<PeerId>,
    },
    /// The outcome of a command sent with [`Reply::Event`].
    CommandDone {
        /// The caller's tag.
        tag: u64,
        /// The outcome.
        result: GossipResult,
    },
}

/// Counters, for inspection and tests.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct GossipStats {
    /// Our own messages published.
    pub published: u64,
    /// New messages delivered to the application.
    pub delivered: u64,
    /// Frames of forwarded messages queued to peers.
    pub forwarded: u64,
    /// Messages received again (seen-cache hits).
    pub duplicates: u64,
    /// Messages refused by signature / policy checks.
    pub invalid_messages: u64,
    /// Messages rejected by validation.
    pub rejected: u64,
    /// Messages ignored by validation.
    pub ignored: u64,
    /// Inbound streams dropped for garbage or oversized RPCs.
    pub wire_errors: u64,
    /// Frames (forwards, gossip, control) refused by full peer queues.
    pub queue_drops: u64,
    /// IHAVE messages or ids ignored over the per-heartbeat limits.
    pub ihave_ignored: u64,
    /// IWANT ids we do not have (never advertised, or expired).
    pub iwant_unknown: u64,
    /// IWANT ids asked more than `gossip_retransmission` times.
    pub iwant_over_limit: u64,
    /// GRAFTs refused because the peer was in backoff.
    pub graft_during_backoff: u64,
    /// IDONTWANT ids we sent.
    pub idontwant_sent: u64,
    /// Forwards skipped because the peer said IDONTWANT.
    pub idontwant_honoured: u64,
    /// IDONTWANT ids ignored over the per-heartbeat cap.
    pub idontwant_ignored: u64,
    /// Messages not validated because too many waited.
    pub validations_dropped: u64,
    /// Messages authored by us that came back.
    pub own_messages: u64,
    /// Messages for topics we do not subscribe to.
    pub unsubscribed_topic: u64,
    /// Subscriptions refused over `max_topics_per_peer`.
    pub subscriptions_refused: u64,
    /// RPCs ignored from peers below the graylist threshold (scoring on).
    pub graylisted_rpcs: u64,
    /// Heartbeats run.
    pub heartbeats: u64,
    /// Bytes in all peer queues now.
    pub queued_bytes: usize,
    /// Frames in all peer queues now.
    pub queued_frames: usize,
    /// Largest single peer queue now, in bytes.
    pub max_peer_queue_bytes: usize,
    /// Messages in the message cache.
    pub mcache_len: usize,
    /// Ids in the seen-cache.
    pub seen_len: usize,
    /// Messages awaiting asynchronous validation.
    pub pending_validations: usize,
    /// Received messages the bounded channel refused (full).
    pub channel_drops: u64,
    /// IHAVE promises broken (advertised, asked for, not delivered in
    /// time; scoring on).
    pub broken_promises: u64,
    /// IHAVE promises open now.
    pub open_promises: usize,
    /// Departed peers whose bad scores are kept.
    pub retained_scores: usize,
}

/// A command to the plugin.
#[derive(Clone, Debug)]
pub enum GossipRequest {
    /// Join a topic (announce and build its mesh).
    Subscribe(String),
    /// Leave a topic.
    Unsubscribe(String),
    /// Publish data.
    Publish {
        /// The topic.
        topic: String,
        /// The payload.
        data: Vec<u8>,
    },
    /// Answer an asynchronous validation.
    ReportValidation {
        /// The message.
        id: MessageId,
        /// The peer it came from (as in [`GossipEvent::Message`]).
        propagation_source: PeerId,
        /// The verdict.
        validation: Validation,
    },
    /// Our mesh peers for a topic.
    MeshPeers(String),
    /// Peers subscribed to a topic.
    TopicPeers(String),
    /// A peer's score (0 with scoring off).
    PeerScore(PeerId),
    /// Set a peer's application-specific score (P5; scoring on).
    SetApplicationScore(PeerId, f64),
    /// Counters.
    Stats,
}

/// What a command returns.
#[derive(Clone, Debug, PartialEq)]
pub enum GossipOutput {
    /// Done, nothing to report.
    Done,
    /// Subscribe: whether it was new.
    Subscribed(bool),
    /// Publish: the message id.
    Published(MessageId),
    /// Peers.
    Peers(Vec<PeerId>),
    /// A score.
    Score(f64),
    /// Counters.
    Stats(Box<GossipStats>),
}

/// A command's outcome.
pub type GossipResult = Result<GossipOutput, PublishError>;

/// Where a command's outcome goes.
#[derive(Clone, Debug)]
pub enum Reply {
    /// Nowhere.
    None,
    /// On a channel (a blocking caller).
    Channel(mpsc::SyncSender<GossipResult>),
    /// As [`GossipEvent::CommandDone`] with this tag (a plugin caller).
    Event(u64),
}

/// A command with its reply path: send it to the plugin's id.
#[derive(Clone, Debug)]
pub struct GossipCommand {
    /// What to do.
    pub request: GossipRequest,
    /// Where the outcome goes.
    pub reply: Reply,
}

impl GossipCommand {
    /// A command whose outcome arrives on the returned channel.
    pub fn with_channel(request: GossipRequest) -> (Self, mpsc::Receiver<GossipResult>) {
        let (tx, rx) = mpsc::sync_channel(1);
        (
            Self {
                request,
                reply: Reply::Channel(tx),
            },
            rx,
        )
    }
}
