//! QUIC variable-length integers (RFC 9000 §16), for the packet-flow header.

use bytes::{Bytes, BytesMut};

/// Bytes a QUIC variable-length integer takes.
pub(crate) fn len(v: u64) -> usize {
    match v {
        0..0x40 => 1,
        0x40..0x4000 => 2,
        0x4000..0x4000_0000 => 4,
        _ => 8,
    }
}

/// Append `v` as a QUIC variable-length integer (RFC 9000 §16).
pub(crate) fn encode(v: u64, out: &mut BytesMut) {
    use bytes::BufMut;
    if v < 1 << 6 {
        out.put_u8(v as u8);
    } else if v < 1 << 14 {
        out.put_u16(0x4000 | v as u16);
    } else if v < 1 << 30 {
        out.put_u32(0x8000_0000 | v as u32);
    } else {
        out.put_u64(0xc000_0000_0000_0000 | v);
    }
}

/// Split a QUIC variable-length integer off the front of `data`.
pub(crate) fn decode(data: &mut Bytes) -> Option<u64> {
    let first = *data.first()?;
    let len = 1usize << (first >> 6);
    if data.len() < len {
        return None;
    }
    let mut v = u64::from(first & 0x3f);
    for b in &data[1..len] {
        v = (v << 8) | u64::from(*b);
    }
    let _ = data.split_to(len);
    Some(v)
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn quic_varints_round_trip_at_every_length() {
        for v in [
            0,
            63,
            64,
            16_383,
            16_384,
            (1 << 30) - 1,
            1 << 30,
            (1 << 62) - 1,
        ] {
            let mut buf = BytesMut::new();
            encode(v, &mut buf);
            buf.extend_from_slice(b"tail");
            let mut bytes = buf.freeze();
            assert_eq!(decode(&mut bytes), Some(v));
            assert_eq!(&bytes[..], b"tail");
        }
        assert_eq!(decode(&mut Bytes::new()), None);
        assert_eq!(decode(&mut Bytes::from_static(&[0x80, 1])), None);
    }
}
