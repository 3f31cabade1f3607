//! The perf request header: a big-endian u64 that may arrive in pieces.

/// Collects the 8-byte header from chunks split anywhere.
#[derive(Debug, Default, Clone)]
pub(crate) struct Header {
    buf: [u8; 8],
    len: usize,
}

impl Header {
    /// Take header bytes from the front of `data`; returns how many bytes of
    /// `data` follow the header (the upload payload in this chunk).
    pub(crate) fn feed(&mut self, data: &[u8]) -> usize {
        let take = (8 - self.len).min(data.len());
        self.buf[self.len..self.len + take].copy_from_slice(&data[..take]);
        self.len += take;
        data.len() - take
    }

    /// The requested byte count, once all 8 bytes are in.
    pub(crate) fn value(&self) -> Option<u64> {
        (self.len == 8).then(|| u64::from_be_bytes(self.buf))
    }

    /// How many header bytes arrived so far.
    pub(crate) fn received(&self) -> usize {
        self.len
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn header_of(chunks: &[&[u8]]) -> (Header, usize) {
        let mut h = Header::default();
        let body = chunks.iter().map(|c| h.feed(c)).sum();
        (h, body)
    }

    #[test]
    fn header_in_one_chunk_with_payload_after_it() {
        let mut data = 1234u64.to_be_bytes().to_vec();
        data.extend_from_slice(b"payload");
        let (h, body) = header_of(&[&data]);
        assert_eq!(h.value(), Some(1234));
        assert_eq!(body, 7);
    }

    #[test]
    fn header_split_at_every_position() {
        let bytes = 0x0102_0304_0506_0708u64.to_be_bytes();
        for cut in 0..=8 {
            let (h, body) = header_of(&[&bytes[..cut], &bytes[cut..], b"xy"]);
            assert_eq!(h.value(), Some(0x0102_0304_0506_0708), "cut at {cut}");
            assert_eq!(body, 2);
        }
    }

    #[test]
    fn header_one_byte_at_a_time() {
        let bytes = u64::MAX.to_be_bytes();
        let chunks: Vec<&[u8]> = bytes.chunks(1).collect();
        let (h, body) = header_of(&chunks);
        assert_eq!(h.value(), Some(u64::MAX));
        assert_eq!(body, 0);
    }

    #[test]
    fn short_header_has_no_value() {
        let (h, body) = header_of(&[&[0, 0, 1]]);
        assert_eq!(h.value(), None);
        assert_eq!(h.received(), 3);
        assert_eq!(body, 0);
    }
}
