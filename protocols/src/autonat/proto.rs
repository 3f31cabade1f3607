//! The AutoNAT v2 messages (libp2p/specs `autonat/autonat-v2.md`), as
//! prost structs. On `/libp2p/autonat/2/dial-request` every message is a
//! [`Message`]; on `/libp2p/autonat/2/dial-back` a [`DialBack`] goes one
//! way and a [`DialBackResponse`] the other.

/// The envelope of the dial-request stream.
#[derive(Clone, PartialEq, prost::Message)]
pub struct Message {
    /// Which message it is.
    #[prost(oneof = "message::Msg", tags = "1, 2, 3, 4")]
    pub msg: Option<message::Msg>,
}

/// The variants of [`Message`].
pub mod message {
    /// One message of the dial-request stream.
    #[derive(Clone, PartialEq, prost::Oneof)]
    pub enum Msg {
        /// Client: dial one of these addresses back.
        #[prost(message, tag = "1")]
        DialRequest(super::DialRequest),
        /// Server: how the dial went.
        #[prost(message, tag = "2")]
        DialResponse(super::DialResponse),
        /// Server: send this much data first (amplification protection).
        #[prost(message, tag = "3")]
        DialDataRequest(super::DialDataRequest),
        /// Client: some of that data.
        #[prost(message, tag = "4")]
        DialDataResponse(super::DialDataResponse),
    }
}

/// Addresses to test, in order of priority, and the nonce the dial-back
/// must carry.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DialRequest {
    /// Binary multiaddrs.
    #[prost(bytes = "vec", repeated, tag = "1")]
    pub addrs: Vec<Vec<u8>>,
    /// Proves that a dial-back came from this request.
    #[prost(fixed64, tag = "2")]
    pub nonce: u64,
}

/// The server wants `num_bytes` of data before dialing `addr_idx`.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DialDataRequest {
    /// Index of the address the server chose.
    #[prost(uint32, tag = "1")]
    pub addr_idx: u32,
    /// Bytes of `DialDataResponse.data` the server wants.
    #[prost(uint64, tag = "2")]
    pub num_bytes: u64,
}

/// The dial's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum DialStatus {
    /// Not set.
    Unused = 0,
    /// The server could not connect to the address.
    EDialError = 100,
    /// Connected, but the dial-back stream failed.
    EDialBackError = 101,
    /// Connected, and the nonce was delivered.
    Ok = 200,
}

/// The request's outcome.
#[derive(Clone, Copy, Debug, PartialEq, Eq, prost::Enumeration)]
#[repr(i32)]
pub enum ResponseStatus {
    /// Something else failed on the server.
    EInternalError = 0,
    /// Refused: rate limit, resource limit, block list.
    ERequestRejected = 100,
    /// The server would not dial any of the addresses.
    EDialRefused = 101,
    /// The server dialed (or refused every address as undialable).
    Ok = 200,
}

/// The server's answer to a [`DialRequest`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct DialResponse {
    /// See [`ResponseStatus`].
    #[prost(enumeration = "ResponseStatus", tag = "1")]
    pub status: i32,
    /// Index of the address dialed.
    #[prost(uint32, tag = "2")]
    pub addr_idx: u32,
    /// See [`DialStatus`].
    #[prost(enumeration = "DialStatus", tag = "3")]
    pub dial_status: i32,
}

/// Data a client pays for a dial to another IP than its own.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DialDataResponse {
    /// At most 4,096 bytes each (the last may be larger).
    #[prost(bytes = "vec", tag = "1")]
    pub data: Vec<u8>,
}

/// The nonce, on the dial-back stream.
#[derive(Clone, PartialEq, prost::Message)]
pub struct DialBack {
    /// The request's nonce.
    #[prost(fixed64, tag = "1")]
    pub nonce: u64,
}

/// The client's acknowledgement of a [`DialBack`].
#[derive(Clone, PartialEq, prost::Message)]
pub struct DialBackResponse {
    /// 0 = OK.
    #[prost(int32, tag = "1")]
    pub status: i32,
}
