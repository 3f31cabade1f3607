//! Sans-I/O multistream-select 1.0.0 negotiation (dialer and listener) for one stream.
//!
//! Specs: libp2p/specs `connections/README.md` ("Protocol Negotiation") and
//! multiformats/multistream-select. Every message is an unsigned LEB128 varint
//! length (counting the trailing `\n`), the UTF-8 text, then `\n`. Both sides
//! open with the header `/multistream/1.0.0`; the dialer proposes a protocol id
//! and the listener either echoes it (accept) or answers `na` (refuse). `ls` is
//! answered with `na`: we never list our protocols.
//!
//! The dialer is optimistic (rust-libp2p's `V1Lazy`): header and proposal are
//! queued at once, so application data may follow them in the same packet.
//! Nothing here does I/O: the caller hands received chunks to
//! [`Negotiation::feed`] and sends whatever [`Negotiation::take_outbound`] yields.
//!
//! [`MultistreamLimits`] bounds a hostile peer: a length prefix above
//! `max_frame_len` fails before any of its payload is buffered, a frame split
//! across chunks is held in a buffer of at most `max_frame_len + 10` bytes (a
//! frame that sits whole in a chunk is sliced out of it without copying), and
//! a listener answers at most `max_rounds` proposals.

use bytes::{Buf, BufMut, Bytes, BytesMut};
use unsigned_varint::decode::Error::Insufficient;

const HEADER: &str = "/multistream/1.0.0";
const NA: &str = "na";
const LS: &str = "ls";

/// Bounds that protect the swarm from a hostile peer.
#[derive(Clone, Copy, Debug)]
pub struct MultistreamLimits {
    /// Largest accepted frame in bytes, counting the trailing `\n` but not the
    /// varint prefix (default 1024, as in go-multistream and js-libp2p). Must be at
    /// least 19 to admit the header.
    pub max_frame_len: usize,
    /// Most proposals (including `ls`) a listener answers before failing with
    /// [`MultistreamError::TooManyRounds`] (default 16). A dialer proposes exactly
    /// once, so this bound never stops it.
    pub max_rounds: usize,
}

impl Default for MultistreamLimits {
    /// `max_frame_len = 1024`, `max_rounds = 16`.
    fn default() -> Self {
        Self {
            max_frame_len: 1024,
            max_rounds: 16,
        }
    }
}

/// Why a negotiation failed. After any error the negotiation is dead: every later
/// [`Negotiation::feed`] returns the same error, and the caller resets the stream.
#[derive(Debug, thiserror::Error, Clone, PartialEq, Eq)]
pub enum MultistreamError {
    /// A length prefix announced a frame longer than `max_frame_len`; none of its
    /// payload was buffered.
    #[error("multistream frame of {len} bytes exceeds the limit of {max}")]
    FrameTooLarge {
        /// The announced length.
        len: usize,
        /// The configured `max_frame_len`.
        max: usize,
    },
    /// The length prefix overflows, is not minimally encoded, or has more bytes
    /// than any length up to `max_frame_len` needs (so `[0x80, 0x80, 0x01]` is
    /// `BadVarint` under the default limit, not `FrameTooLarge`).
    #[error("malformed multistream length prefix")]
    BadVarint,
    /// A message is not valid UTF-8.
    #[error("multistream message is not UTF-8")]
    NotUtf8,
    /// A frame (including an empty one) does not end with `\n`.
    #[error("multistream message does not end with a newline")]
    MissingNewline,
    /// The first message from the remote was not `/multistream/1.0.0`.
    #[error("expected multistream header, got {0:?}")]
    BadHeader(String),
    /// The listener was sent more than `max_rounds` proposals.
    #[error("more than {max} multistream negotiation rounds")]
    TooManyRounds {
        /// The configured `max_rounds`.
        max: usize,
    },
    /// Dialer: the remote answered `na` to our proposal.
    #[error("remote refused protocol {protocol:?}")]
    Refused {
        /// The protocol we proposed.
        protocol: String,
    },
    /// Dialer: the remote sent something other than the echo of our proposal or `na`.
    #[error("unexpected multistream message {0:?}")]
    UnexpectedMessage(String),
    /// Dialer: the protocol to propose is empty, contains `\n`, or does not fit in
    /// `max_frame_len`. Nothing was queued; the first `feed` reports this.
    #[error("cannot propose protocol {0:?}")]
    InvalidProtocol(String),
}

/// What a negotiation step produced.
#[derive(Debug, PartialEq, Eq)]
pub enum Progress {
    /// More bytes are needed.
    Pending,
    /// Negotiation finished on `protocol`. `remainder` is application data that
    /// arrived after the final message; it must be delivered to the protocol. It
    /// is a slice of the fed chunk (no copy) and may be empty.
    Done {
        /// The negotiated protocol id.
        protocol: String,
        /// Bytes of the fed chunk that follow the final negotiation message.
        remainder: Bytes,
    },
}

#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Role {
    Dialer,
    Listener,
}

#[derive(Debug)]
enum State {
    /// Waiting for the remote's `/multistream/1.0.0`.
    AwaitHeader,
    /// Dialer: waiting for the echo or `na`. Listener: waiting for a proposal.
    Negotiating,
    Done,
    Failed(MultistreamError),
}

/// The multistream-select negotiation of one stream, as dialer or listener.
#[derive(Debug)]
pub struct Negotiation {
    role: Role,
    state: State,
    limits: MultistreamLimits,
    /// Bytes needed to encode `max_frame_len` as a varint: the longest prefix accepted.
    max_prefix: usize,
    /// Dialer: the proposal. Listener: the match once done, empty before.
    protocol: String,
    /// A frame split across chunks (at most `max_prefix + max_frame_len` bytes).
    partial: BytesMut,
    outbound: BytesMut,
    /// Proposals answered so far (listener).
    rounds: usize,
}

impl Negotiation {
    /// Dialer for one protocol, optimistic: header and protocol are queued at once,
    /// so the caller may append application data right after them in the same packet
    /// (rust-libp2p's `V1Lazy`). Done when the remote confirms the header and echoes
    /// the protocol. An unencodable `protocol` queues nothing and makes the first
    /// `feed` fail with [`MultistreamError::InvalidProtocol`].
    pub fn dialer(protocol: &str, limits: MultistreamLimits) -> Self {
        let mut this = Self::new(Role::Dialer, protocol.to_owned(), limits);
        if protocol.is_empty() || protocol.contains('\n') || protocol.len() >= limits.max_frame_len
        {
            this.state = State::Failed(MultistreamError::InvalidProtocol(protocol.to_owned()));
        } else {
            encode_frame(HEADER.as_bytes(), &mut this.outbound);
            encode_frame(protocol.as_bytes(), &mut this.outbound);
        }
        this
    }

    /// Listener: queues the header immediately (so it works whether or not the
    /// remote's header has arrived yet); answers each proposal with an echo (if
    /// `is_supported`) or `na`. `ls`, `na` and the empty id always get `na`.
    pub fn listener(limits: MultistreamLimits) -> Self {
        let mut this = Self::new(Role::Listener, String::new(), limits);
        encode_frame(HEADER.as_bytes(), &mut this.outbound);
        this
    }

    fn new(role: Role, protocol: String, limits: MultistreamLimits) -> Self {
        let mut scratch = unsigned_varint::encode::usize_buffer();
        let max_prefix = unsigned_varint::encode::usize(limits.max_frame_len, &mut scratch).len();
        let (partial, outbound) = (BytesMut::new(), BytesMut::new());
        let state = State::AwaitHeader;
        Self {
            role,
            state,
            limits,
            max_prefix,
            protocol,
            partial,
            outbound,
            rounds: 0,
        }
    }

    /// Feed received bytes: a chunk split anywhere (half a varint, several frames,
    /// or frames followed by application data). `is_supported` is asked (listener
    /// only) about each proposal. Once done, further chunks are returned untouched
    /// as `Done { remainder }`; once failed, the same error is returned again.
    pub fn feed(
        &mut self,
        mut data: Bytes,
        is_supported: &dyn Fn(&str) -> bool,
    ) -> Result<Progress, MultistreamError> {
        match &self.state {
            State::Failed(e) => return Err(e.clone()),
            State::Done => return Ok(self.finished(data)),
            State::AwaitHeader | State::Negotiating => {}
        }
        let result = self.run(&mut data, is_supported);
        if let Err(e) = &result {
            tracing::debug!(error = %e, role = ?self.role, "multistream-select failed");
            self.state = State::Failed(e.clone());
            self.partial = BytesMut::new();
        }
        result
    }

    /// Bytes to send now (header, proposal, echo, `na`), as one `Bytes` that takes
    /// the queue's contents without copying. Empty when nothing is queued. Drain
    /// after construction and after every `feed` (including failed ones).
    pub fn take_outbound(&mut self) -> Bytes {
        self.outbound.split().freeze()
    }

    /// The protocol this dialer proposes, or the one the listener matched (`None`
    /// while a listener has not matched one).
    pub fn protocol(&self) -> Option<&str> {
        match (self.role, &self.state) {
            (Role::Listener, State::Done) | (Role::Dialer, _) => Some(&self.protocol),
            (Role::Listener, _) => None,
        }
    }

    /// Whether negotiation has finished successfully.
    pub fn is_done(&self) -> bool {
        matches!(self.state, State::Done)
    }

    fn run(
        &mut self,
        data: &mut Bytes,
        is_supported: &dyn Fn(&str) -> bool,
    ) -> Result<Progress, MultistreamError> {
        while let Some(frame) = self.next_frame(data)? {
            if self.on_message(message(&frame)?, is_supported)? {
                self.state = State::Done;
                tracing::debug!(protocol = %self.protocol, role = ?self.role, "multistream-select done");
                return Ok(self.finished(std::mem::take(data)));
            }
        }
        Ok(Progress::Pending)
    }

    fn finished(&self, remainder: Bytes) -> Progress {
        let protocol = self.protocol.clone();
        Progress::Done {
            protocol,
            remainder,
        }
    }

    /// Handles one message; `Ok(true)` when negotiation is complete.
    fn on_message(
        &mut self,
        msg: &str,
        is_supported: &dyn Fn(&str) -> bool,
    ) -> Result<bool, MultistreamError> {
        if matches!(self.state, State::AwaitHeader) {
            if msg != HEADER {
                return Err(MultistreamError::BadHeader(msg.to_owned()));
            }
            self.state = State::Negotiating;
            return Ok(false);
        }
        match self.role {
            Role::Dialer if msg == self.protocol => Ok(true),
            Role::Dialer if msg == NA => Err(MultistreamError::Refused {
                protocol: self.protocol.clone(),
            }),
            Role::Dialer => Err(MultistreamError::UnexpectedMessage(msg.to_owned())),
            Role::Listener => {
                self.rounds += 1;
                if self.rounds > self.limits.max_rounds {
                    return Err(MultistreamError::TooManyRounds {
                        max: self.limits.max_rounds,
                    });
                }
                if !msg.is_empty() && msg != LS && msg != NA && is_supported(msg) {
                    encode_frame(msg.as_bytes(), &mut self.outbound);
                    self.protocol = msg.to_owned();
                    return Ok(true);
                }
                tracing::trace!(proposal = msg, "multistream-select: answering na");
                encode_frame(NA.as_bytes(), &mut self.outbound);
                Ok(false)
            }
        }
    }

    /// Decodes the length prefix at the start of `buf`: `Some((frame_len, prefix_len))`,
    /// or `None` while the varint is incomplete but may still be valid.
    fn frame_len(&self, buf: &[u8]) -> Result<Option<(usize, usize)>, MultistreamError> {
        let (max, window) = (
            self.limits.max_frame_len,
            &buf[..buf.len().min(self.max_prefix)],
        );
        match unsigned_varint::decode::usize(window) {
            Ok((len, _)) if len > max => Err(MultistreamError::FrameTooLarge { len, max }),
            Ok((len, rest)) => Ok(Some((len, window.len() - rest.len()))),
            Err(Insufficient) if window.len() < self.max_prefix => Ok(None),
            Err(_) => Err(MultistreamError::BadVarint),
        }
    }

    /// The next whole frame (prefix stripped), sliced from `data` without copying
    /// when it sits there whole, otherwise assembled in `partial`.
    fn next_frame(&mut self, data: &mut Bytes) -> Result<Option<Bytes>, MultistreamError> {
        if self.partial.is_empty() {
            if data.is_empty() {
                return Ok(None);
            }
            if let Some((len, prefix)) = self.frame_len(data)?
                && data.len() - prefix >= len
            {
                data.advance(prefix);
                return Ok(Some(data.split_to(len)));
            }
            // Bounded: frame_len vetted the length, or the prefix is still short.
            self.partial.extend_from_slice(data);
            data.clear();
            return Ok(None);
        }
        let (len, prefix) = loop {
            if let Some(found) = self.frame_len(&self.partial)? {
                break found;
            }
            if data.is_empty() {
                return Ok(None);
            }
            self.partial.put_u8(data.get_u8());
        };
        let have = self.partial.len() - prefix;
        let take = len.saturating_sub(have).min(data.len());
        self.partial.extend_from_slice(&data[..take]);
        data.advance(take);
        if self.partial.len() - prefix < len {
            return Ok(None);
        }
        let mut frame = self.partial.split().freeze();
        frame.advance(prefix);
        Ok(Some(frame))
    }
}

/// The text of a frame: it must end with `\n`, and the rest must be UTF-8.
fn message(frame: &[u8]) -> Result<&str, MultistreamError> {
    let Some((&b'\n', text)) = frame.split_last() else {
        return Err(MultistreamError::MissingNewline);
    };
    std::str::from_utf8(text).map_err(|_| MultistreamError::NotUtf8)
}

/// Encode one frame: varint of `msg.len() + 1`, `msg`, then `\n` (used by the
/// negotiator itself, by tests and by hostile-peer tests).
pub fn encode_frame(msg: &[u8], out: &mut BytesMut) {
    let mut scratch = unsigned_varint::encode::usize_buffer();
    let prefix = unsigned_varint::encode::usize(msg.len().saturating_add(1), &mut scratch);
    out.reserve(prefix.len() + msg.len() + 1);
    out.put_slice(prefix);
    out.put_slice(msg);
    out.put_u8(b'\n');
}

#[cfg(test)]
mod tests {
    use super::*;
    use MultistreamError as E;

    const PING: &str = "/ipfs/ping/1.0.0";
    const H: &[u8] = HEADER.as_bytes();
    const P: &[u8] = PING.as_bytes();
    const PENDING: Result<Progress, E> = Ok(Progress::Pending);

    fn frames(msgs: &[&[u8]]) -> Bytes {
        let mut out = BytesMut::new();
        msgs.iter().for_each(|m| encode_frame(m, &mut out));
        out.freeze()
    }
    fn cat(parts: &[&[u8]]) -> Bytes {
        Bytes::from(parts.concat())
    }
    /// Feeds a copy of `data`; only PING is supported.
    fn feed(n: &mut Negotiation, data: &[u8]) -> Result<Progress, E> {
        n.feed(Bytes::copy_from_slice(data), &|p| p == PING)
    }
    fn done(protocol: &str, remainder: &'static [u8]) -> Result<Progress, E> {
        let (protocol, remainder) = (protocol.to_owned(), Bytes::from_static(remainder));
        Ok(Progress::Done {
            protocol,
            remainder,
        })
    }
    fn dialer() -> Negotiation {
        Negotiation::dialer(PING, MultistreamLimits::default())
    }
    fn fresh_listener() -> Negotiation {
        Negotiation::listener(MultistreamLimits::default())
    }
    /// A listener that has seen the remote header and sent its own.
    fn listener() -> Negotiation {
        let mut l = fresh_listener();
        assert_eq!(feed(&mut l, &frames(&[H])), PENDING);
        assert_eq!(l.take_outbound(), frames(&[H]));
        l
    }

    #[test]
    fn rust_libp2p_wire_bytes_are_exact() {
        let (mut d, mut l) = (dialer(), fresh_listener());
        let flight = d.take_outbound();
        let expected = b"\x13/multistream/1.0.0\n\x11/ipfs/ping/1.0.0\n";
        assert_eq!(&flight[..], expected);
        assert_eq!(feed(&mut l, &flight), done(PING, b""));
        assert_eq!(l.take_outbound(), flight, "listener answers header + echo");
        assert_eq!(feed(&mut d, &flight), done(PING, b""));
    }

    #[test]
    fn whole_first_flight_in_one_chunk_is_negotiated_with_remainder() {
        let mut l = fresh_listener();
        let chunk = cat(&[&frames(&[H, P]), b"app data"]);
        let result = l.feed(chunk.clone(), &|p| p == PING);
        assert_eq!(result, done(PING, b"app data"));
        let Ok(Progress::Done { remainder, .. }) = result else {
            unreachable!()
        };
        // The remainder is a slice of the fed chunk, not a copy.
        let offset = chunk.len() - remainder.len();
        assert_eq!(remainder.as_ptr(), chunk[offset..].as_ptr());
        assert_eq!(l.take_outbound(), frames(&[H, P]));
        assert_eq!((l.protocol(), l.is_done()), (Some(PING), true));
        assert_eq!(feed(&mut l, b"more"), done(PING, b"more")); // passed through
    }

    #[test]
    fn byte_by_byte_split_frames_negotiate() {
        // A 200-byte id has a 2-byte varint prefix, so the prefix itself is split too.
        let long = format!("/{}", "x".repeat(199));
        let flight = frames(&[H, long.as_bytes()]);
        let mut l = fresh_listener();
        let (last, is_supported) = (flight.len() - 1, &|_: &str| true);
        for i in 0..last {
            assert_eq!(l.feed(flight.slice(i..i + 1), is_supported), PENDING);
            assert!(l.partial.len() <= 1024 + 10);
        }
        assert_eq!(l.feed(flight.slice(last..), is_supported), done(&long, b""));

        let (mut d, answer) = (dialer(), frames(&[H, P]));
        for i in 0..answer.len() - 1 {
            assert_eq!(feed(&mut d, &answer[i..i + 1]), PENDING);
        }
        assert_eq!(feed(&mut d, &answer[answer.len() - 1..]), done(PING, b""));
    }

    #[test]
    fn dialer_and_listener_negotiate_against_each_other() {
        let (mut d, mut l) = (dialer(), fresh_listener());
        let to_dialer = l.take_outbound(); // the listener's header leaves first
        let to_listener = cat(&[&d.take_outbound(), b"ping payload"]);
        assert_eq!(feed(&mut l, &to_listener), done(PING, b"ping payload"));
        assert_eq!(feed(&mut d, &to_dialer[..3]), PENDING);
        assert_eq!(feed(&mut d, &to_dialer[3..]), PENDING);
        let echo = cat(&[&l.take_outbound(), b"pong"]);
        assert_eq!(feed(&mut d, &echo), done(PING, b"pong"));
        assert!(d.take_outbound().is_empty() && l.take_outbound().is_empty());
    }

    #[test]
    fn unknown_protocol_gets_na_then_second_proposal_succeeds() {
        let mut l = listener();
        assert_eq!(feed(&mut l, &frames(&[b"/unknown/1.0.0"])), PENDING);
        assert_eq!((l.take_outbound(), l.protocol()), (frames(&[b"na"]), None));
        assert_eq!(feed(&mut l, &frames(&[P])), done(PING, b""));
        assert_eq!(l.take_outbound(), frames(&[P]));
    }

    #[test]
    fn dialer_reports_refused_on_na() {
        let mut d = dialer();
        let refused = Err(E::Refused {
            protocol: PING.to_owned(),
        });
        assert_eq!(feed(&mut d, &frames(&[H, b"na"])), refused);
        assert_eq!(feed(&mut d, &frames(&[P])), refused); // sticky
    }

    #[test]
    fn dialer_rejects_other_echo_and_unencodable_protocols() {
        let other = Err(E::UnexpectedMessage("/other/1.0.0".into()));
        assert_eq!(feed(&mut dialer(), &frames(&[H, b"/other/1.0.0"])), other);
        for bad in ["", "/a\nb", &"/x".repeat(512)] {
            let mut d = Negotiation::dialer(bad, MultistreamLimits::default());
            assert!(d.take_outbound().is_empty());
            assert_eq!(feed(&mut d, b""), Err(E::InvalidProtocol(bad.into())));
        }
    }

    #[test]
    fn oversized_frame_is_rejected_before_buffering() {
        assert_eq!(feed(&mut listener(), b"\x80\x08"), PENDING); // 1024 is allowed
        let mut l = listener();
        assert_eq!(feed(&mut l, b"\x81"), PENDING);
        let too_large = Err(E::FrameTooLarge {
            len: 1025,
            max: 1024,
        });
        assert_eq!(feed(&mut l, b"\x08/"), too_large);
        assert!(l.partial.is_empty());
    }

    #[test]
    fn three_byte_varint_is_rejected() {
        // 1024 needs a 2-byte varint, so a third prefix byte is BadVarint, not FrameTooLarge.
        assert_eq!(feed(&mut listener(), b"\x80\x80\x01"), Err(E::BadVarint));
    }

    #[test]
    fn malformed_varint_is_rejected() {
        assert_eq!(feed(&mut listener(), &[0xff; 10]), Err(E::BadVarint));
        let not_minimal = b"\x81\x00";
        assert_eq!(feed(&mut listener(), not_minimal), Err(E::BadVarint));
        let limits = MultistreamLimits {
            max_frame_len: usize::MAX,
            max_rounds: 16,
        };
        let mut l = Negotiation::listener(limits);
        assert_eq!(feed(&mut l, &[0xff; 10]), Err(E::BadVarint)); // overflows u64
    }

    #[test]
    fn non_utf8_protocol_is_rejected() {
        let mut l = listener();
        assert_eq!(feed(&mut l, &frames(&[b"/\xff\xfe"])), Err(E::NotUtf8));
        assert_eq!(feed(&mut l, &frames(&[P])), Err(E::NotUtf8)); // sticky
    }

    #[test]
    fn endless_na_rounds_stop_at_limit() {
        let mut l = listener();
        let proposals = frames(&[b"/nope/1.0.0".as_slice(); 100]);
        assert_eq!(feed(&mut l, &proposals), Err(E::TooManyRounds { max: 16 }));
        assert_eq!(l.take_outbound(), frames(&[b"na".as_slice(); 16]));
    }

    #[test]
    fn wrong_header_is_rejected() {
        let mut l = fresh_listener();
        let bad = Err(E::BadHeader("/multistream/2.0.0".into()));
        assert_eq!(feed(&mut l, &frames(&[b"/multistream/2.0.0", P])), bad);
        let echo_first = frames(&[P, H]);
        let bad = Err(E::BadHeader(PING.into()));
        assert_eq!(feed(&mut dialer(), &echo_first), bad);
    }

    #[test]
    fn frame_without_newline_is_rejected() {
        assert_eq!(feed(&mut listener(), b"\x03abc"), Err(E::MissingNewline));
        assert_eq!(feed(&mut listener(), b"\x00"), Err(E::MissingNewline)); // empty frame
    }

    #[test]
    fn empty_message_is_an_unsupported_proposal() {
        let mut l = listener();
        assert_eq!(l.feed(Bytes::from_static(b"\x01\n"), &|_| true), PENDING);
        assert_eq!(l.take_outbound(), frames(&[b"na"]));
    }

    #[test]
    fn ls_is_answered_with_na() {
        let mut l = listener();
        assert_eq!(l.feed(frames(&[b"ls"]), &|_| true), PENDING);
        assert_eq!(l.take_outbound(), frames(&[b"na"]));
        assert_eq!(feed(&mut l, &frames(&[P])), done(PING, b""));
    }
}
