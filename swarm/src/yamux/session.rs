//! A Yamux session without I/O: bytes in with [`Session::feed`], frames
//! out with [`Session::take_outbound`], stream operations in between.
//!
//! Driving contract: after every call, send what `take_outbound` yields
//! (it also wakes writers that waited for buffer room) and handle every
//! [`Event`] from `poll_event`. Time is an argument (RTT measurement and
//! window auto-tuning).
//!
//! Flow control: a stream's receive window is credited only as its owner
//! reads, so a slow reader stops the remote within one window; windows
//! double (up to `max_stream_window`, within the connection budget) when
//! the owner reads a window's worth within two round trips, as the
//! `yamux` crate's auto-tuning does.
//!
//! A paused reader holds its stream's window at zero for as long as it
//! pauses. Some Yamux peers reset a stream whose send window stays at zero
//! for about 5 s: a plugin that must pause longer than that should read
//! and buffer (within its own bound), or close the stream and open a new
//! one later, rather than leave the window shut.
//!
//! Interop rules kept here: an ACK always travels in a window update of its
//! own, never with FIN or RST (some peers ignore those flags on the ACK of
//! an open); a SYN is a window update of its own too.

use std::collections::VecDeque;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use rustc_hash::FxHashMap;

use super::config::{DEFAULT_WINDOW, YamuxConfig};
use super::error::{ConnectionError, OpenError, StreamError, WriteError};
use super::frame::{Flags, FrameType, HEADER_LEN, Header, go_away_code};
use super::stream::{RecvState, StreamState};

/// The shortest interval between window updates that counts as "the
/// reader keeps up" for auto-tuning, whatever the RTT (see `credit`).
const MIN_TUNING_INTERVAL: Duration = Duration::from_millis(2);

/// Which side of the connection we are: the dialer is the client (odd
/// stream ids), the listener the server (even ids).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Mode {
    /// The dialing side: opens odd stream ids.
    Client,
    /// The listening side: opens even stream ids.
    Server,
}

/// Something the session's owner must act on.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// The remote opened a stream; take it with [`Session::accept_stream`].
    InboundStream,
    /// A stream has data, its FIN or its reset to read.
    Readable(u32),
    /// A stream whose write was refused can take data again.
    Writable(u32),
    /// The remote reset a stream (it is readable and writable no more).
    Reset(u32),
    /// A stream ended on our side because of the remote's misbehaviour; the
    /// session goes on.
    StreamFailed(StreamError),
    /// The remote will open no more streams (code from [`go_away_code`]).
    GoAway(u32),
    /// A round-trip time measured by a ping.
    Rtt(Duration),
}

/// What one read step produced.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Read {
    /// The next chunk, in order.
    Data(Bytes),
    /// The remote finished: no more data.
    Fin,
    /// Nothing now; an [`Event::Readable`] follows when there is.
    Blocked,
    /// The remote reset the stream.
    Reset,
}

/// Counters of what the session dropped or refused (for tests and logs).
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Stats {
    /// Frames for a stream we do not know (never opened, or already gone).
    pub unknown_stream_frames: u64,
    /// Inbound opens reset because of the stream limit or a go-away.
    pub refused_inbound: u64,
    /// Streams reset for a window violation.
    pub window_violations: u64,
}

/// Where the parser stands in the inbound byte stream.
#[derive(Debug, Clone, Copy)]
enum Parse {
    /// Expecting a header.
    Header,
    /// Inside a data frame's payload: `remaining` bytes for `stream`
    /// (`None`: to be dropped), then its FIN / RST `flags` take effect.
    Body {
        stream: Option<u32>,
        remaining: u32,
        flags: Flags,
    },
}

/// A Yamux session over one secured byte stream.
pub struct Session {
    mode: Mode,
    config: YamuxConfig,
    streams: FxHashMap<u32, StreamState>,
    next_id: u32,
    inbound: VecDeque<u32>,
    events: VecDeque<Event>,
    out: BytesMut,
    partial_header: Vec<u8>,
    parse: Parse,
    failed: Option<ConnectionError>,
    /// Sum of the streams' `recv_window_max`.
    granted: u64,
    unacked_opens: usize,
    remote_go_away: bool,
    local_go_away: bool,
    /// Streams whose writes wait for window or buffer room.
    blocked: Vec<u32>,
    ping: Option<(u32, Instant)>,
    next_ping: u32,
    rtt: Option<Duration>,
    stats: Stats,
}

impl Session {
    /// A session for our `mode`.
    pub fn new(mode: Mode, config: YamuxConfig) -> Self {
        Self {
            mode,
            config,
            streams: FxHashMap::default(),
            next_id: match mode {
                Mode::Client => 1,
                Mode::Server => 2,
            },
            inbound: VecDeque::new(),
            events: VecDeque::new(),
            out: BytesMut::new(),
            partial_header: Vec::with_capacity(HEADER_LEN),
            parse: Parse::Header,
            failed: None,
            granted: 0,
            unacked_opens: 0,
            remote_go_away: false,
            local_go_away: false,
            blocked: Vec::new(),
            ping: None,
            next_ping: 0,
            rtt: None,
            stats: Stats::default(),
        }
    }

    /// What was dropped or refused so far.
    pub fn stats(&self) -> Stats {
        self.stats
    }

    /// Whether `id` names a stream the session still holds.
    pub fn contains(&self, id: u32) -> bool {
        self.streams.contains_key(&id)
    }

    /// Streams open now.
    pub fn stream_count(&self) -> usize {
        self.streams.len()
    }

    /// The last measured round-trip time.
    pub fn rtt(&self) -> Option<Duration> {
        self.rtt
    }

    /// Whether the session failed (see [`Session::feed`]).
    pub fn is_failed(&self) -> bool {
        self.failed.is_some()
    }

    /// The next event to handle.
    pub fn poll_event(&mut self) -> Option<Event> {
        self.events.pop_front()
    }

    /// Bytes to send, everything queued so far (empty when none). Taking
    /// them frees buffer room, so streams that waited for it are reported
    /// writable.
    pub fn take_outbound(&mut self) -> Bytes {
        let bytes = self.out.split().freeze();
        self.wake_writers();
        bytes
    }

    /// Bytes queued for the wire.
    pub fn outbound_len(&self) -> usize {
        self.out.len()
    }

    // ----- input -----

    /// Feed bytes received from the remote, split anywhere. A protocol
    /// violation that breaks the session returns an error, queues a
    /// go-away (protocol error) and makes every later call fail; one that
    /// concerns a single stream resets that stream and is reported as
    /// [`Event::StreamFailed`].
    pub fn feed(&mut self, data: &[u8], now: Instant) -> Result<(), ConnectionError> {
        self.feed_bytes(Bytes::copy_from_slice(data), now)
    }

    /// [`Session::feed`] without copying: stream data is handed on as
    /// slices of `data`.
    pub fn feed_bytes(&mut self, mut data: Bytes, now: Instant) -> Result<(), ConnectionError> {
        if let Some(e) = &self.failed {
            return Err(ConnectionError::Failed(Box::new(e.clone())));
        }
        while !data.is_empty() {
            let step = match self.parse {
                Parse::Header => self.take_header(&mut data, now),
                Parse::Body {
                    stream,
                    remaining,
                    flags,
                } => {
                    let n = data.len().min(remaining as usize);
                    let chunk = data.split_to(n);
                    self.body(stream, chunk);
                    let remaining = remaining - n as u32;
                    if remaining == 0 {
                        self.parse = Parse::Header;
                        if let Some(id) = stream {
                            self.on_end_flags(id, flags);
                        }
                    } else {
                        self.parse = Parse::Body {
                            stream,
                            remaining,
                            flags,
                        };
                    }
                    Ok(())
                }
            };
            if let Err(e) = step {
                tracing::debug!(error = %e, "yamux session failed");
                self.go_away_with(go_away_code::PROTOCOL_ERROR);
                self.failed = Some(e.clone());
                return Err(e);
            }
        }
        Ok(())
    }

    fn take_header(&mut self, data: &mut Bytes, now: Instant) -> Result<(), ConnectionError> {
        let need = HEADER_LEN - self.partial_header.len();
        let n = need.min(data.len());
        self.partial_header.extend_from_slice(&data.split_to(n));
        if self.partial_header.len() < HEADER_LEN {
            return Ok(());
        }
        let mut raw = [0u8; HEADER_LEN];
        raw.copy_from_slice(&self.partial_header);
        self.partial_header.clear();
        let header = Header::decode(&raw)?;
        self.on_header(header, now)
    }

    fn on_header(&mut self, h: Header, now: Instant) -> Result<(), ConnectionError> {
        tracing::trace!(?h, "yamux frame in");
        match h.kind {
            FrameType::Ping => {
                if h.stream != 0 {
                    return Err(ConnectionError::WrongStreamId("ping"));
                }
                self.on_ping(h, now);
                Ok(())
            }
            FrameType::GoAway => {
                if h.stream != 0 {
                    return Err(ConnectionError::WrongStreamId("go-away"));
                }
                self.remote_go_away = true;
                self.events.push_back(Event::GoAway(h.length));
                Ok(())
            }
            FrameType::Data | FrameType::WindowUpdate => {
                if h.stream == 0 {
                    return Err(ConnectionError::WrongStreamId("stream"));
                }
                self.on_stream_frame(h, now)
            }
        }
    }

    fn on_ping(&mut self, h: Header, now: Instant) {
        if h.flags.contains(Flags::SYN) {
            self.push_frame(Header::new(FrameType::Ping, Flags::ACK, 0, h.length));
        } else if h.flags.contains(Flags::ACK)
            && let Some((value, sent)) = self.ping
            && value == h.length
        {
            let rtt = now.saturating_duration_since(sent);
            self.rtt = Some(rtt);
            self.ping = None;
            self.events.push_back(Event::Rtt(rtt));
        }
    }

    fn on_stream_frame(&mut self, h: Header, now: Instant) -> Result<(), ConnectionError> {
        let id = h.stream;
        let is_data = h.kind == FrameType::Data;
        if is_data && h.length > self.config.max_stream_window {
            return Err(ConnectionError::FrameTooLarge {
                len: h.length,
                max: self.config.max_stream_window,
            });
        }
        if h.flags.contains(Flags::SYN) && !self.open_inbound(id, now)? {
            // Refused: drop whatever the frame carries.
            self.skip_body(h, None);
            return Ok(());
        }
        let Some(s) = self.streams.get_mut(&id) else {
            self.stats.unknown_stream_frames += 1;
            tracing::trace!(stream = id, "yamux frame for an unknown stream dropped");
            self.skip_body(h, None);
            return Ok(());
        };
        if h.flags.contains(Flags::ACK) && s.awaiting_ack {
            s.awaiting_ack = false;
            self.unacked_opens -= 1;
        }
        if is_data && s.recv == RecvState::Reset {
            // Data in flight after a reset: dropped.
            self.skip_body(h, None);
            return Ok(());
        }
        if is_data {
            if h.length > s.recv_window {
                let window = s.recv_window;
                self.stats.window_violations += 1;
                self.fail_stream(StreamError::WindowExceeded {
                    id,
                    len: h.length,
                    window,
                });
                self.skip_body(h, None);
                return Ok(());
            }
            s.recv_window -= h.length;
        } else if !h.flags.contains(Flags::SYN) {
            // A SYN's delta applies to the default window (in open_inbound).
            s.send_window = s
                .send_window
                .checked_add(h.length)
                .ok_or(ConnectionError::WindowOverflow(id))?;
            if s.send_window > 0 && s.write_blocked {
                s.write_blocked = false;
                self.events.push_back(Event::Writable(id));
            }
        }
        if is_data && h.length > 0 {
            // FIN / RST take effect after the payload (see `feed`).
            self.skip_body(h, Some(id));
        } else {
            self.on_end_flags(id, h.flags);
        }
        Ok(())
    }

    /// Start consuming a frame's payload (data frames only), for `stream`
    /// or (`None`) to be dropped.
    fn skip_body(&mut self, h: Header, stream: Option<u32>) {
        if h.kind == FrameType::Data && h.length > 0 {
            self.parse = Parse::Body {
                stream,
                remaining: h.length,
                flags: h.flags,
            };
        }
    }

    fn on_end_flags(&mut self, id: u32, flags: Flags) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        if flags.contains(Flags::RST) {
            s.recv = RecvState::Reset;
            s.recv_buf.clear();
            s.buffered = 0;
            s.send_closed = true;
            self.events.push_back(Event::Reset(id));
            self.events.push_back(Event::Readable(id));
        } else if flags.contains(Flags::FIN) && s.recv == RecvState::Open {
            s.recv = RecvState::Finished;
            self.events.push_back(Event::Readable(id));
        }
    }

    /// A payload chunk of `stream`'s current data frame.
    fn body(&mut self, stream: Option<u32>, chunk: Bytes) {
        let Some(id) = stream else { return };
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        match s.recv {
            // Data sent before a FIN it also carried still counts.
            RecvState::Open | RecvState::Finished => {
                let was_empty = s.buffered == 0;
                s.buffered += chunk.len() as u32;
                s.recv_buf.push_back(chunk);
                if was_empty {
                    self.events.push_back(Event::Readable(id));
                }
            }
            RecvState::Discarding => {
                // Credited at once: the remote can finish its send side.
                s.recv_window += chunk.len() as u32;
                let delta = chunk.len() as u32;
                self.push_frame(Header::new(FrameType::WindowUpdate, Flags::NONE, id, delta));
            }
            RecvState::Reset => {}
        }
    }

    /// A SYN for `id`: `Ok(true)` if the stream now exists, `Ok(false)` if
    /// it was refused (reset), an error if the open breaks the protocol.
    fn open_inbound(&mut self, id: u32, now: Instant) -> Result<bool, ConnectionError> {
        let theirs = match self.mode {
            Mode::Client => id.is_multiple_of(2),
            Mode::Server => !id.is_multiple_of(2),
        };
        if !theirs {
            return Err(ConnectionError::WrongParity(id));
        }
        if self.streams.contains_key(&id) {
            return Err(ConnectionError::DuplicateStream(id));
        }
        if self.local_go_away
            || self.streams.len() >= self.config.max_streams
            || self.granted + u64::from(DEFAULT_WINDOW) > self.config.max_connection_window
        {
            self.stats.refused_inbound += 1;
            self.push_frame(Header::new(FrameType::WindowUpdate, Flags::RST, id, 0));
            self.events
                .push_back(Event::StreamFailed(StreamError::Refused(id)));
            return Ok(false);
        }
        self.granted += u64::from(DEFAULT_WINDOW);
        self.streams
            .insert(id, StreamState::new(DEFAULT_WINDOW, now));
        self.inbound.push_back(id);
        self.events.push_back(Event::InboundStream);
        Ok(true)
    }

    /// Reset a stream for the remote's misbehaviour.
    fn fail_stream(&mut self, error: StreamError) {
        let StreamError::WindowExceeded { id, .. } = error else {
            return;
        };
        self.push_frame(Header::new(FrameType::WindowUpdate, Flags::RST, id, 0));
        if let Some(s) = self.streams.get_mut(&id) {
            s.recv = RecvState::Reset;
            s.recv_buf.clear();
            s.buffered = 0;
            s.send_closed = true;
        }
        self.events.push_back(Event::StreamFailed(error));
        self.events.push_back(Event::Readable(id));
    }

    // ----- streams -----

    /// Open an outbound stream: its SYN is queued at once.
    pub fn open_stream(&mut self, now: Instant) -> Result<u32, OpenError> {
        if self.failed.is_some() {
            return Err(OpenError::Failed);
        }
        if self.remote_go_away || self.local_go_away {
            return Err(OpenError::GoingAway);
        }
        if self.streams.len() >= self.config.max_streams {
            return Err(OpenError::TooManyStreams);
        }
        if self.unacked_opens >= self.config.max_ack_backlog {
            return Err(OpenError::AckBacklog);
        }
        let id = self.next_id;
        self.next_id = id.checked_add(2).ok_or(OpenError::IdsExhausted)?;
        let mut s = StreamState::new(DEFAULT_WINDOW, now);
        s.awaiting_ack = true;
        self.unacked_opens += 1;
        self.granted += u64::from(DEFAULT_WINDOW);
        self.streams.insert(id, s);
        self.push_frame(Header::new(FrameType::WindowUpdate, Flags::SYN, id, 0));
        Ok(id)
    }

    /// The next stream the remote opened; its ACK is queued now (in a frame
    /// of its own).
    pub fn accept_stream(&mut self) -> Option<u32> {
        while let Some(id) = self.inbound.pop_front() {
            if self.streams.contains_key(&id) {
                self.push_frame(Header::new(FrameType::WindowUpdate, Flags::ACK, id, 0));
                return Some(id);
            }
        }
        None
    }

    /// Read up to `max` bytes of `id`. Reading gives the remote window
    /// credit (possibly a larger window, see the module doc).
    pub fn read(&mut self, id: u32, max: usize, now: Instant) -> Read {
        let Some(s) = self.streams.get_mut(&id) else {
            return Read::Reset;
        };
        if max == 0 {
            return Read::Blocked;
        }
        let step = match s.recv_buf.front_mut() {
            Some(front) => {
                let chunk = if front.len() <= max {
                    s.recv_buf.pop_front().unwrap_or_default()
                } else {
                    front.split_to(max)
                };
                s.buffered -= chunk.len() as u32;
                Read::Data(chunk)
            }
            None => match s.recv {
                RecvState::Open | RecvState::Discarding => Read::Blocked,
                RecvState::Finished => {
                    s.end_read = true;
                    Read::Fin
                }
                RecvState::Reset => {
                    s.end_read = true;
                    Read::Reset
                }
            },
        };
        if matches!(step, Read::Data(_)) {
            self.credit(id, now);
        } else {
            self.forget_if_done(id);
        }
        step
    }

    /// Send a window update when the remote used at least half its window
    /// and the owner has read it; grow the window if that happened fast.
    fn credit(&mut self, id: u32, now: Instant) {
        let rtt = self.rtt;
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        if s.recv != RecvState::Open {
            return;
        }
        let unread_credit = s.recv_window_max - s.recv_window - s.buffered;
        if unread_credit < s.recv_window_max / 2 {
            return;
        }
        let mut growth = 0;
        // On loopback and LANs the measured RTT is below what a turn of the
        // event loop takes; the floor lets a reader that keeps up grow its
        // window there too, while one that pauses for longer never does.
        //
        // And the window must be what holds the sender back: less than half
        // of it left to the remote. Without that, a reader that paused and
        // then drains a full window at once would send two updates in the
        // same instant and grow its window for nothing.
        if let Some(rtt) = rtt
            && now.saturating_duration_since(s.last_update) < (rtt * 2).max(MIN_TUNING_INTERVAL)
            && s.recv_window < s.recv_window_max / 2
        {
            let cap = self.config.max_stream_window.max(s.recv_window_max);
            let want = s.recv_window_max.min(cap - s.recv_window_max);
            let room = self
                .config
                .max_connection_window
                .saturating_sub(self.granted);
            growth = u64::from(want).min(room) as u32;
        }
        s.recv_window_max += growth;
        self.granted += u64::from(growth);
        if growth > 0 {
            tracing::debug!(
                stream = id,
                window = s.recv_window_max,
                "yamux receive window grew"
            );
        }
        let delta = unread_credit + growth;
        s.recv_window += delta;
        s.last_update = now;
        self.push_frame(Header::new(FrameType::WindowUpdate, Flags::NONE, id, delta));
    }

    /// Queue as much of `data` as the send window and the outbound buffer
    /// take; `Ok(n)` with `n < data.len()` means the rest must wait for an
    /// [`Event::Writable`].
    pub fn write(&mut self, id: u32, data: &[u8]) -> Result<usize, WriteError> {
        let room = self
            .config
            .max_outbound_buffer
            .saturating_sub(self.out.len());
        let max_frame = self.config.max_frame_payload.max(1);
        let s = self.streams.get_mut(&id).ok_or(WriteError::UnknownStream)?;
        if s.recv == RecvState::Reset {
            return Err(WriteError::Reset);
        }
        if s.send_closed {
            return Err(WriteError::Closed);
        }
        let n = data.len().min(s.send_window as usize).min(room);
        s.send_window -= n as u32;
        if n < data.len() && !s.write_blocked {
            s.write_blocked = true;
            self.blocked.push(id);
        }
        for chunk in data[..n].chunks(max_frame) {
            Header::new(FrameType::Data, Flags::NONE, id, chunk.len() as u32).encode(&mut self.out);
            self.out.extend_from_slice(chunk);
        }
        Ok(n)
    }

    /// Finish our send side (FIN in a frame of its own).
    pub fn finish(&mut self, id: u32) -> Result<(), WriteError> {
        let s = self.streams.get_mut(&id).ok_or(WriteError::UnknownStream)?;
        if s.recv == RecvState::Reset {
            return Err(WriteError::Reset);
        }
        if s.send_closed {
            return Err(WriteError::Closed);
        }
        s.send_closed = true;
        self.push_frame(Header::new(FrameType::WindowUpdate, Flags::FIN, id, 0));
        self.forget_if_done(id);
        Ok(())
    }

    /// Reset the stream both ways; it is forgotten at once.
    pub fn reset(&mut self, id: u32) {
        if let Some(s) = self.streams.get(&id) {
            if s.recv != RecvState::Reset {
                self.push_frame(Header::new(FrameType::WindowUpdate, Flags::RST, id, 0));
            }
            self.remove(id);
        }
    }

    /// Stop reading: buffered and later data is dropped (and credited, so
    /// the remote can finish). Yamux has no stop-sending frame; once our
    /// send side is over too, the stream is reset instead.
    pub fn stop(&mut self, id: u32) {
        let Some(s) = self.streams.get_mut(&id) else {
            return;
        };
        if s.send_closed && s.recv == RecvState::Open {
            self.reset(id);
            return;
        }
        if s.recv == RecvState::Open {
            s.recv = RecvState::Discarding;
            let delta = s.buffered;
            s.recv_buf.clear();
            s.buffered = 0;
            s.recv_window += delta;
            if delta > 0 {
                self.push_frame(Header::new(FrameType::WindowUpdate, Flags::NONE, id, delta));
            }
        }
        self.forget_if_done(id);
    }

    /// Ask for a pong to measure the round trip (one ping at a time; a
    /// ping still unanswered is replaced).
    pub fn ping(&mut self, now: Instant) {
        self.next_ping = self.next_ping.wrapping_add(1);
        self.ping = Some((self.next_ping, now));
        self.push_frame(Header::new(FrameType::Ping, Flags::SYN, 0, self.next_ping));
    }

    /// Tell the remote we open and accept no more streams (`code` from
    /// [`go_away_code`]); streams open now go on.
    pub fn go_away(&mut self, code: u32) {
        self.go_away_with(code);
    }

    fn go_away_with(&mut self, code: u32) {
        if !self.local_go_away {
            self.local_go_away = true;
            self.push_frame(Header::new(FrameType::GoAway, Flags::NONE, 0, code));
        }
    }

    // ----- helpers -----

    fn push_frame(&mut self, h: Header) {
        tracing::trace!(?h, "yamux frame out");
        h.encode(&mut self.out);
    }

    fn wake_writers(&mut self) {
        let room = self.out.len() < self.config.max_outbound_buffer;
        let streams = &mut self.streams;
        let events = &mut self.events;
        self.blocked.retain(|id| {
            let Some(s) = streams.get_mut(id) else {
                return false;
            };
            if !s.write_blocked {
                return false;
            }
            if room && s.send_window > 0 {
                s.write_blocked = false;
                events.push_back(Event::Writable(*id));
                return false;
            }
            true
        });
    }

    fn forget_if_done(&mut self, id: u32) {
        if self.streams.get(&id).is_some_and(StreamState::is_done) {
            self.remove(id);
        }
    }

    fn remove(&mut self, id: u32) {
        if let Some(s) = self.streams.remove(&id) {
            self.granted -= u64::from(s.recv_window_max);
            if s.awaiting_ack {
                self.unacked_opens -= 1;
            }
        }
    }
}
