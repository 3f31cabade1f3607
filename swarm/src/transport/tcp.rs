//! TCP for libp2p: one TCP connection upgraded with multistream-select,
//! Noise (or TLS) and Yamux ([`crate::tcp_upgrade`]), its streams offered
//! through the transport seam like QUIC's.
//!
//! The driver owns the socket: it hands received bytes to the engine and
//! writes what [`TcpConn::take_outbound`] yields. Stream ids are Yamux's.

use std::time::Instant;

use bytes::Bytes;
use libp2p_identity::PeerId;

use super::outcomes::{ReadStep, ReadUnavailable, SendError, StreamReader};
use crate::ids::StreamId;
use crate::tcp_upgrade::{SecuredConnection, TcpUpgrade, UpgradeError, UpgradeProgress};
use crate::yamux::{self, Event, OpenError, Read, WriteError};

/// Where a TCP connection stands.
enum State {
    /// We dialed; the socket is not connected yet.
    Connecting(Box<TcpUpgrade>),
    /// Connected; the upgrade runs.
    Upgrading(Box<TcpUpgrade>),
    /// Secured and multiplexed.
    Secured(Box<SecuredConnection>),
    /// Failed or closed: nothing more goes in; only [`TcpConn::last_words`]
    /// go out.
    Over,
}

/// One TCP connection as the engine holds it.
pub(crate) struct TcpConn {
    state: State,
    /// The engine's clock, as of the last call (Yamux takes time for RTT
    /// and window tuning).
    now: Instant,
    /// Streams whose FIN went out since the engine last looked (Yamux has
    /// no acknowledgement of a FIN; the engine's `on_finished` runs then).
    finished: Vec<StreamId>,
    /// The engine closed the connection: send what is queued, then close.
    pub(crate) close_requested: bool,
    /// What the session queued when the remote broke Yamux (its go-away
    /// with the protocol-error code), sent before the socket closes so
    /// the remote learns why.
    last_words: Bytes,
    /// We dialed from our TCP listen port (port reuse), so the remote's
    /// observation of our address names a port others can reach.
    pub(crate) from_listen_port: bool,
}

/// What an upgrade step reached, for the engine.
pub(crate) enum TcpProgress {
    /// Nothing new.
    Pending,
    /// The upgrade finished: the remote proved this PeerId.
    Established(PeerId),
}

impl TcpConn {
    /// A connection we dial (not connected yet).
    pub(crate) fn dialing(upgrade: TcpUpgrade, now: Instant) -> Self {
        Self::with(State::Connecting(Box::new(upgrade)), now)
    }

    /// A connection the remote dialed (connected).
    pub(crate) fn accepted(upgrade: TcpUpgrade, now: Instant) -> Self {
        Self::with(State::Upgrading(Box::new(upgrade)), now)
    }

    fn with(state: State, now: Instant) -> Self {
        Self {
            state,
            now,
            finished: Vec::new(),
            close_requested: false,
            last_words: Bytes::new(),
            from_listen_port: false,
        }
    }

    /// The socket connected (from our listen port or not): the upgrade
    /// may start sending.
    pub(crate) fn on_connected(&mut self, from_listen_port: bool) {
        self.from_listen_port = from_listen_port;
        if let State::Connecting(u) = std::mem::replace(&mut self.state, State::Over) {
            self.state = State::Upgrading(u);
        }
    }

    /// Whether the driver's connect has not finished yet.
    pub(crate) fn is_connecting(&self) -> bool {
        matches!(self.state, State::Connecting(_))
    }

    /// Bytes from the socket.
    pub(crate) fn feed(&mut self, data: &[u8], now: Instant) -> Result<TcpProgress, UpgradeError> {
        self.now = now;
        let result = match &mut self.state {
            State::Upgrading(u) => match u.feed(data, now) {
                Ok(UpgradeProgress::Pending) => Ok(TcpProgress::Pending),
                Ok(UpgradeProgress::Done) => {
                    match std::mem::replace(&mut self.state, State::Over) {
                        State::Upgrading(u) => u.finish().map(|secured| {
                            let peer = secured.remote_peer();
                            self.state = State::Secured(Box::new(secured));
                            TcpProgress::Established(peer)
                        }),
                        // Matched as `Upgrading` just above.
                        _ => Err(UpgradeError::Over),
                    }
                }
                Err(e) => Err(e),
            },
            State::Secured(s) => s.feed(data, now).map(|()| TcpProgress::Pending),
            State::Connecting(_) | State::Over => Ok(TcpProgress::Pending),
        };
        if let Err(e) = &result {
            if let (UpgradeError::Yamux(_), State::Secured(s)) = (e, &mut self.state) {
                self.last_words = s.take_outbound().unwrap_or_default();
            }
            self.state = State::Over;
        }
        result
    }

    /// Bytes to write to the socket now (empty when none).
    pub(crate) fn take_outbound(&mut self) -> Result<Bytes, UpgradeError> {
        match &mut self.state {
            State::Upgrading(u) => Ok(u.take_outbound()),
            State::Secured(s) => s.take_outbound(),
            State::Over => Ok(std::mem::take(&mut self.last_words)),
            State::Connecting(_) => Ok(Bytes::new()),
        }
    }

    /// The next Yamux event, once secured.
    pub(crate) fn poll_event(&mut self) -> Option<Event> {
        match &mut self.state {
            State::Secured(s) => s.session().poll_event(),
            _ => None,
        }
    }

    /// Streams whose FIN went out since the last call.
    pub(crate) fn take_finished(&mut self) -> Vec<StreamId> {
        std::mem::take(&mut self.finished)
    }

    /// Close: a go-away, then the driver closes the socket after sending.
    pub(crate) fn close(&mut self) {
        self.close_requested = true;
        if let State::Secured(s) = &mut self.state {
            s.session().go_away(yamux::frame::go_away_code::NORMAL);
        }
    }

    /// The engine's clock moved on (stream operations between feeds use it).
    pub(crate) fn set_now(&mut self, now: Instant) {
        self.now = now;
    }

    /// Send a Yamux ping (keep-alive; its pong also refreshes the RTT).
    pub(crate) fn ping(&mut self, now: Instant) {
        self.now = now;
        if let Some(s) = self.session() {
            s.ping(now);
        }
    }

    fn session(&mut self) -> Option<&mut yamux::Session> {
        match &mut self.state {
            State::Secured(s) => Some(s.session()),
            _ => None,
        }
    }
}

// ----- the stream side of the seam (see `transport/mod.rs`) -----

fn yamux_id(id: StreamId) -> u32 {
    // Ids come from Yamux (u32); an impossible one names no stream.
    u32::try_from(id.0).unwrap_or(0)
}

fn send_error(e: WriteError) -> SendError {
    match e {
        WriteError::Reset => SendError::Stopped(0),
        WriteError::Closed | WriteError::UnknownStream => SendError::Closed,
    }
}

pub(crate) fn open_stream(t: &mut TcpConn) -> Option<StreamId> {
    let now = t.now;
    match t.session()?.open_stream(now) {
        Ok(id) => Some(StreamId(u64::from(id))),
        Err(e @ (OpenError::TooManyStreams | OpenError::AckBacklog)) => {
            tracing::debug!(error = %e, "yamux stream refused");
            None
        }
        Err(_) => None,
    }
}

pub(crate) fn accept_stream(t: &mut TcpConn) -> Option<StreamId> {
    t.session()?
        .accept_stream()
        .map(|id| StreamId(u64::from(id)))
}

pub(crate) fn read<R>(
    t: &mut TcpConn,
    id: StreamId,
    f: impl FnOnce(&mut StreamReader<'_>) -> R,
) -> Result<R, ReadUnavailable> {
    let now = t.now;
    let session = t.session().ok_or(ReadUnavailable::Closed)?;
    let id = yamux_id(id);
    if !session.contains(id) {
        return Err(ReadUnavailable::Closed);
    }
    let mut reader = StreamReader::Yamux { session, id, now };
    Ok(f(&mut reader))
}

/// One step of a Yamux read (see `StreamReader::next`).
pub(crate) fn next_yamux_chunk(
    session: &mut yamux::Session,
    id: u32,
    now: Instant,
    max: usize,
) -> ReadStep {
    match session.read(id, max, now) {
        Read::Data(d) => ReadStep::Data(d),
        Read::Fin => ReadStep::Fin,
        Read::Blocked => ReadStep::Blocked,
        Read::Reset => ReadStep::Reset(0),
    }
}

pub(crate) fn write(t: &mut TcpConn, id: StreamId, data: &[u8]) -> Result<usize, SendError> {
    let session = t.session().ok_or(SendError::Closed)?;
    // `Ok(n < len)`: the window or the outbound buffer is full; the
    // session reports the stream writable when it can go on.
    session.write(yamux_id(id), data).map_err(send_error)
}

pub(crate) fn write_bytes(
    t: &mut TcpConn,
    id: StreamId,
    data: &mut Bytes,
) -> Result<usize, SendError> {
    let n = write(t, id, data)?;
    let _ = data.split_to(n);
    Ok(n)
}

pub(crate) fn finish(t: &mut TcpConn, id: StreamId) -> Result<(), SendError> {
    let session = t.session().ok_or(SendError::Closed)?;
    session.finish(yamux_id(id)).map_err(send_error)?;
    t.finished.push(id);
    Ok(())
}

pub(crate) fn reset(t: &mut TcpConn, id: StreamId) {
    if let Some(s) = t.session() {
        s.reset(yamux_id(id));
    }
}

pub(crate) fn stop(t: &mut TcpConn, id: StreamId) {
    if let Some(s) = t.session() {
        s.stop(yamux_id(id));
    }
}
