//! The circuit relay v2 messages (libp2p/specs `relay/circuit-v2.md`).
//!
//! The spec's schema is proto2 with `required` fields: every field here is
//! `optional` on our side so that it is always written when set, even at
//! its default value (a `type` of `RESERVE` is 0, which a proto3-style
//! field would leave out and a proto2 reader would then refuse).

/// A message of the hop protocol (client and relay).
#[derive(Clone, PartialEq, prost::Message)]
pub struct HopMessage {
    /// See [`hop_message::Type`].
    #[prost(enumeration = "hop_message::Type", optional, tag = "1")]
    pub r#type: Option<i32>,
    /// The target (CONNECT).
    #[prost(message, optional, tag = "2")]
    pub peer: Option<Peer>,
    /// The reservation granted (STATUS after RESERVE).
    #[prost(message, optional, tag = "3")]
    pub reservation: Option<Reservation>,
    /// Limits of the relayed connection.
    #[prost(message, optional, tag = "4")]
    pub limit: Option<Limit>,
    /// See [`Status`].
    #[prost(enumeration = "Status", optional, tag = "5")]
    pub status: Option<i32>,
}

/// Types of [`HopMessage`].
pub mod hop_message {
    /// A hop message's type.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
    #[repr(i32)]
    pub enum Type {
        /// Client: reserve a slot.
        Reserve = 0,
        /// Client: connect me to `peer`.
        Connect = 1,
        /// Relay: the outcome.
        Status = 2,
    }
}

/// A message of the stop protocol (relay to target).
#[derive(Clone, PartialEq, prost::Message)]
pub struct StopMessage {
    /// See [`stop_message::Type`].
    #[prost(enumeration = "stop_message::Type", optional, tag = "1")]
    pub r#type: Option<i32>,
    /// The initiator (CONNECT).
    #[prost(message, optional, tag = "2")]
    pub peer: Option<Peer>,
    /// Limits of the relayed connection.
    #[prost(message, optional, tag = "3")]
    pub limit: Option<Limit>,
    /// See [`Status`].
    #[prost(enumeration = "Status", optional, tag = "4")]
    pub status: Option<i32>,
}

/// Types of [`StopMessage`].
pub mod stop_message {
    /// A stop message's type.
    #[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
    #[repr(i32)]
    pub enum Type {
        /// Relay: `peer` wants a connection to you.
        Connect = 0,
        /// Target: the outcome.
        Status = 1,
    }
}

/// A peer and (optionally) its addresses.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Peer {
    /// The PeerId's bytes.
    #[prost(bytes = "vec", optional, tag = "1")]
    pub id: Option<Vec<u8>>,
    /// Binary multiaddrs.
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub addrs: Vec<Vec<u8>>,
}

/// A granted reservation.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Reservation {
    /// Expiry, in UNIX seconds (UTC).
    #[prost(uint64, optional, tag = "1")]
    pub expire: Option<u64>,
    /// The relay's addresses, for the reserving peer's relayed addresses.
    #[prost(bytes = "vec", repeated, tag = "2")]
    pub addrs: Vec<Vec<u8>>,
    /// A signed envelope (advisory).
    #[prost(bytes = "vec", optional, tag = "3")]
    pub voucher: Option<Vec<u8>>,
}

/// Limits of a relayed connection (absent: unlimited).
#[derive(Clone, PartialEq, prost::Message)]
pub struct Limit {
    /// Seconds the connection may last.
    #[prost(uint32, optional, tag = "1")]
    pub duration: Option<u32>,
    /// Bytes it may carry in each direction.
    #[prost(uint64, optional, tag = "2")]
    pub data: Option<u64>,
}

/// Outcome codes.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum Status {
    /// Done.
    Ok = 100,
    /// The relay will not reserve a slot for us.
    ReservationRefused = 200,
    /// Too many reservations or circuits.
    ResourceLimitExceeded = 201,
    /// Refused by an access list.
    PermissionDenied = 202,
    /// The relay could not reach the target.
    ConnectionFailed = 203,
    /// The target has no reservation.
    NoReservation = 204,
    /// Undecodable.
    MalformedMessage = 400,
    /// A message of the wrong type.
    UnexpectedMessage = 401,
}

impl Status {
    /// The status named by a wire value, if known.
    pub fn from_wire(value: Option<i32>) -> Option<Status> {
        value.and_then(|v| Status::try_from(v).ok())
    }
}
