//! The DCUtR message (libp2p/specs `relay/DCUtR.md`), proto2.

/// One message of a `/libp2p/dcutr` stream.
#[derive(Clone, PartialEq, prost::Message)]
pub struct HolePunch {
    /// See [`hole_punch::Type`]; written even at its default.
    #[prost(enumeration = "hole_punch::Type", optional, tag = "1")]
    pub r#type: Option<i32>,
    /// The sender's observed (and predicted) addresses.
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub obs_addrs: Vec<Vec<u8>>,
}

/// Types of [`HolePunch`].
pub mod hole_punch {
    /// A DCUtR message's type.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
    #[repr(i32)]
    pub enum Type {
        /// Here are my addresses (both ways; the initiator times the
        /// round trip).
        Connect = 100,
        /// Dial now (initiator to responder).
        Sync = 300,
    }
}
