//! The gossipsub RPC protobuf (libp2p/specs `pubsub/gossipsub`, `rpc.proto`
//! with the v1.1 PRUNE fields and the v1.2 IDONTWANT control), hand-written
//! prost structs. Floodsub's `Message.topicIDs` (repeated, tag 4) decodes
//! into `topic` (one string, tag 4): a one-topic floodsub message is the
//! same bytes.

/// One RPC: subscription changes, messages and control, in any mix.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Rpc {
    /// Subscribe / unsubscribe announcements.
    #[prost(message, repeated, tag = "1")]
    pub subscriptions: Vec<SubOpts>,
    /// Published or forwarded messages.
    #[prost(message, repeated, tag = "2")]
    pub publish: Vec<Message>,
    /// Gossip and mesh control.
    #[prost(message, optional, tag = "3")]
    pub control: Option<ControlMessage>,
}

/// A subscription change.
#[derive(Clone, PartialEq, prost::Message)]
pub struct SubOpts {
    /// `true` to subscribe, `false` to unsubscribe.
    #[prost(bool, optional, tag = "1")]
    pub subscribe: Option<bool>,
    /// The topic.
    #[prost(string, optional, tag = "2")]
    pub topic_id: Option<String>,
}

/// A pubsub message as it travels.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Message {
    /// The author's PeerId bytes (absent under StrictNoSign / Anonymous).
    #[prost(bytes = "vec", optional, tag = "1")]
    pub from: Option<Vec<u8>>,
    /// The payload.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub data: Option<Vec<u8>>,
    /// 8-byte big-endian sequence number.
    #[prost(bytes = "vec", optional, tag = "3")]
    pub seqno: Option<Vec<u8>>,
    /// The topic (`required` in the spec's proto2 schema).
    #[prost(string, required, tag = "4")]
    pub topic: String,
    /// Signature over `libp2p-pubsub:` + this message without `signature`
    /// and `key`.
    #[prost(bytes = "vec", optional, tag = "5")]
    pub signature: Option<Vec<u8>>,
    /// The author's public key, when the PeerId does not inline it.
    #[prost(bytes = "vec", optional, tag = "6")]
    pub key: Option<Vec<u8>>,
}

/// Control messages of one RPC.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ControlMessage {
    /// "I have these messages".
    #[prost(message, repeated, tag = "1")]
    pub ihave: Vec<ControlIHave>,
    /// "Send me these messages".
    #[prost(message, repeated, tag = "2")]
    pub iwant: Vec<ControlIWant>,
    /// "Add me to your mesh for this topic".
    #[prost(message, repeated, tag = "3")]
    pub graft: Vec<ControlGraft>,
    /// "I removed you from my mesh for this topic".
    #[prost(message, repeated, tag = "4")]
    pub prune: Vec<ControlPrune>,
    /// v1.2: "do not send me these messages".
    #[prost(message, repeated, tag = "5")]
    pub idontwant: Vec<ControlIDontWant>,
}

/// IHAVE for one topic.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ControlIHave {
    /// The topic.
    #[prost(string, optional, tag = "1")]
    pub topic_id: Option<String>,
    /// Ids of messages we have.
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub message_ids: Vec<Vec<u8>>,
}

/// IWANT.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ControlIWant {
    /// Ids of messages we want.
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub message_ids: Vec<Vec<u8>>,
}

/// GRAFT for one topic.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ControlGraft {
    /// The topic.
    #[prost(string, optional, tag = "1")]
    pub topic_id: Option<String>,
}

/// PRUNE for one topic, with v1.1 peer exchange and backoff.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ControlPrune {
    /// The topic.
    #[prost(string, optional, tag = "1")]
    pub topic_id: Option<String>,
    /// Peers to try instead (peer exchange).
    #[prost(message, repeated, tag = "2")]
    pub peers: Vec<PeerInfo>,
    /// Seconds before the pruned peer may GRAFT again.
    #[prost(uint64, optional, tag = "3")]
    pub backoff: Option<u64>,
}

/// A peer in a PRUNE's peer exchange.
#[derive(Clone, PartialEq, prost::Message)]
pub struct PeerInfo {
    /// PeerId bytes.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub peer_id: Option<Vec<u8>>,
    /// A signed peer record (envelope), which we pass on but do not use.
    #[prost(bytes = "vec", optional, tag = "2")]
    pub signed_peer_record: Option<Vec<u8>>,
}

/// v1.2 IDONTWANT.
#[derive(Clone, PartialEq, prost::Message)]
pub struct ControlIDontWant {
    /// Ids of messages the sender already has.
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub message_ids: Vec<Vec<u8>>,
}

impl ControlMessage {
    /// Whether there is nothing to send.
    pub fn is_empty(&self) -> bool {
        self.ihave.is_empty()
            && self.iwant.is_empty()
            && self.graft.is_empty()
            && self.prune.is_empty()
            && self.idontwant.is_empty()
    }
}
