//! Hole punching for QUIC: a datagram of random bytes from our listening
//! socket to an address, so that our NAT maps (and then lets in) that
//! address's packets before its QUIC handshake arrives (DCUtR's QUIC side
//! that waits for the handshake sends these while the other dials).

use multiaddr::Multiaddr;
use quinn_proto::Transmit;
use rand::RngCore;

use crate::address::parse_quic_addr;
use crate::error::DialError;

use super::core::Core;

/// Bytes in one hole-punching datagram.
const PUNCH_LEN: usize = 64;

impl Core {
    /// `Context::send_hole_punch`.
    pub(crate) fn send_hole_punch(&mut self, addr: &Multiaddr) -> Result<(), DialError> {
        let quic =
            parse_quic_addr(addr).ok_or_else(|| DialError::UnsupportedAddress(addr.clone()))?;
        // The socket we listen on (and dial from), whose NAT mapping the
        // remote learned from identify.
        let socket = self.socket_for(quic.socket)?;
        let mut data = vec![0u8; PUNCH_LEN];
        self.rng.fill_bytes(&mut data);
        // A short header with the QUIC fixed bit clear: no QUIC endpoint
        // takes it for a packet (nor answers it), it only opens the path.
        data[0] &= 0x3f;
        let transmit = Transmit {
            destination: quic.socket,
            ecn: None,
            size: PUNCH_LEN,
            segment_size: None,
            src_ip: None,
        };
        self.endpoint_transmits.push_back((socket, transmit, data));
        Ok(())
    }
}
