//! Error codes the swarm puts on the wire (QUIC application close and
//! stream reset codes), so that peers and logs can tell why.

/// Application error code sent when a limit refuses a connection.
pub const CLOSE_CODE_LIMIT: u32 = 0x10;
/// Application error code sent when an idle connection is closed.
pub const CLOSE_CODE_IDLE: u32 = 0;
/// Stream error code used when multistream-select fails or times out.
pub const RESET_CODE_NEGOTIATION: u32 = 0x1;
