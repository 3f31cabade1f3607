//! ping (`/ipfs/ping/1.0.0`): measure round-trip times to connected peers.
//!
//! The pinger opens one stream per peer and, on it, repeatedly writes 32
//! random bytes and waits for the same 32 bytes back. Each round trip (or
//! failure) is emitted as a [`PingEvent`]; successful ones are also recorded
//! in the peer store. A wrong echo, a timeout or a broken stream fails the
//! ping: the stream is reset and the next ping, one interval later, opens a
//! new one. A peer that refuses the protocol is not pinged again on that
//! connection.
//!
//! The answering side echoes every 32-byte frame of an inbound stream, as
//! the bytes may arrive in any chunking, and accepts at most
//! [`MAX_INBOUND_STREAMS_PER_PEER`] streams per peer at a time (the spec's
//! allowance for a pinger replacing its stream); a third is reset.
//!
//! Like rust-libp2p's, pinging does not ask the swarm to keep connections
//! open (set [`PingConfig::keep_alive`] for that): ping streams are exempt
//! from the swarm's keep-alive, so a connection with nothing else to do
//! still idles out while it is being pinged.
//!
//! ```no_run
//! use std::time::Duration;
//! use protocols::ping::{Ping, PingConfig};
//! # let mut runtime = swarm::Runtime::new(swarm::SwarmConfig::new(swarm::Keypair::generate_ed25519())).unwrap();
//! let config = PingConfig {
//!     interval: Duration::from_secs(1),
//!     ..PingConfig::default()
//! };
//! runtime.add_protocol(Box::new(Ping::new(config)));
//! ```

use std::collections::HashMap;
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use swarm::multistream::MultistreamError;
use swarm::{
    ConnId, Context, OpenStreamError, PeerId, Protocol, ProtocolEvent, StreamError, StreamRef,
    TimerId,
};
use tracing::{debug, trace, warn};

/// The ping protocol id.
pub const PROTOCOL: &str = "/ipfs/ping/1.0.0";
/// Bytes in one ping (and its echo).
pub const PAYLOAD_LEN: usize = 32;
/// Inbound ping streams accepted per peer at once.
pub const MAX_INBOUND_STREAMS_PER_PEER: usize = 2;

/// Error code for ping streams we abort.
const RESET_CODE: u64 = 0;

/// How the ping plugin behaves.
#[derive(Clone, Debug)]
pub struct PingConfig {
    /// Time between the end of one ping and the start of the next.
    /// Default 15 s (rust-libp2p's).
    pub interval: Duration,
    /// Longest a ping may wait for its echo (including opening the stream
    /// for the first ping). Default 20 s.
    pub timeout: Duration,
    /// Start pinging each peer when the first connection to it is
    /// established. Otherwise pinging starts on [`PingCommand::Start`].
    /// Default `true`.
    pub ping_on_connect: bool,
    /// Keep connections open while they are up, even without other streams
    /// (what a `ping` tool wants). Default `false`, as in rust-libp2p.
    pub keep_alive: bool,
}

impl Default for PingConfig {
    fn default() -> Self {
        Self {
            interval: Duration::from_secs(15),
            timeout: Duration::from_secs(20),
            ping_on_connect: true,
            keep_alive: false,
        }
    }
}

/// One ping's outcome, emitted by the plugin (applications get it as
/// `SwarmEvent::Protocol` and downcast).
#[derive(Clone, Debug)]
pub struct PingEvent {
    /// The pinged peer.
    pub peer: PeerId,
    /// The connection the ping ran on.
    pub conn: ConnId,
    /// The round-trip time, or why the ping failed.
    pub result: Result<Duration, PingError>,
}

/// Why a ping failed.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum PingError {
    /// No echo within the timeout.
    #[error("no echo within {0:?}")]
    Timeout(Duration),
    /// The echo differed from what we sent.
    #[error("the echo does not match the ping")]
    WrongEcho,
    /// The remote sent bytes when no ping was outstanding.
    #[error("unsolicited bytes on the ping stream")]
    Unsolicited,
    /// The remote ended the stream.
    #[error("the remote ended the ping stream")]
    StreamEnded,
    /// The remote does not speak `/ipfs/ping/1.0.0`; we stop pinging it.
    #[error("the remote does not support ping")]
    Unsupported,
    /// The stream could not be opened.
    #[error("cannot open ping stream: {0}")]
    OpenStream(#[from] OpenStreamError),
    /// The stream failed.
    #[error("ping stream failed: {0}")]
    Stream(#[from] StreamError),
}

/// Start or stop pinging a peer: send with
/// [`SwarmHandle::send_event`](swarm::SwarmHandle::send_event) or
/// [`Context::emit`].
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum PingCommand {
    /// Ping this connected peer from now on (no-op if already pinging).
    Start(PeerId),
    /// Stop pinging this peer (its stream is closed).
    Stop(PeerId),
}

/// The ping plugin: pinger and answerer.
pub struct Ping {
    config: PingConfig,
    /// Established connections.
    conns: HashMap<ConnId, PeerId>,
    /// Peers we ping, one pinger each.
    pingers: HashMap<PeerId, Pinger>,
    /// Timer token -> the peer whose pinger set it.
    timers: HashMap<u64, PeerId>,
    next_token: u64,
    /// Inbound streams we echo on.
    echoes: HashMap<StreamRef, Echo>,
    /// Inbound stream count per peer.
    inbound_per_peer: HashMap<PeerId, usize>,
}

/// Pings one peer over one connection.
struct Pinger {
    conn: ConnId,
    /// The open stream, reused across pings.
    stream: Option<StreamRef>,
    negotiated: bool,
    /// The ping waiting for its echo.
    in_flight: Option<InFlight>,
    /// The one running timer: the timeout while opening or waiting for an
    /// echo, else the interval before the next ping.
    timer: Option<(TimerId, u64)>,
    /// The remote refused the protocol: stay quiet.
    unsupported: bool,
}

struct InFlight {
    payload: [u8; PAYLOAD_LEN],
    sent_at: Instant,
    echo: BytesMut,
}

/// An inbound stream we echo on. Echoes go out with `Context::send`: the
/// swarm queues what a full window does not take and stops reading the
/// stream while much is queued, so a remote that does not read its echoes
/// is held back by QUIC flow control instead of growing our memory.
struct Echo {
    peer: PeerId,
    /// An incomplete frame.
    partial: BytesMut,
}

impl Ping {
    /// A plugin with this configuration.
    pub fn new(config: PingConfig) -> Self {
        Self {
            config,
            conns: HashMap::new(),
            pingers: HashMap::new(),
            timers: HashMap::new(),
            next_token: 0,
            echoes: HashMap::new(),
            inbound_per_peer: HashMap::new(),
        }
    }

    // ----- pinger -----

    /// Start pinging `peer` on `conn`.
    fn start(&mut self, ctx: &mut Context<'_>, peer: PeerId, conn: ConnId) {
        debug!(%peer, %conn, "start pinging");
        self.pingers.insert(
            peer,
            Pinger {
                conn,
                stream: None,
                negotiated: false,
                in_flight: None,
                timer: None,
                unsupported: false,
            },
        );
        self.next_ping(ctx, peer);
    }

    /// Stop pinging `peer` and close its stream.
    fn stop(&mut self, ctx: &mut Context<'_>, peer: PeerId) {
        if let Some(mut pinger) = self.pingers.remove(&peer) {
            debug!(%peer, "stop pinging");
            self.cancel(ctx, &mut pinger);
            if let Some(stream) = pinger.stream {
                let _ = ctx.abort(stream, RESET_CODE);
            }
        }
    }

    fn cancel(&mut self, ctx: &mut Context<'_>, pinger: &mut Pinger) {
        if let Some((timer, token)) = pinger.timer.take() {
            ctx.cancel_timer(timer);
            self.timers.remove(&token);
        }
    }

    /// Replace the pinger's timer with one firing after `delay`.
    fn arm(&mut self, ctx: &mut Context<'_>, peer: PeerId, delay: Duration) {
        let Some(mut pinger) = self.pingers.remove(&peer) else {
            return;
        };
        self.cancel(ctx, &mut pinger);
        let token = self.next_token;
        self.next_token += 1;
        pinger.timer = Some((ctx.set_timer(delay, token), token));
        self.timers.insert(token, peer);
        self.pingers.insert(peer, pinger);
    }

    /// Send the next ping, opening a stream first if there is none.
    fn next_ping(&mut self, ctx: &mut Context<'_>, peer: PeerId) {
        let timeout = self.config.timeout;
        let Some(pinger) = self.pingers.get_mut(&peer) else {
            return;
        };
        if pinger.unsupported || pinger.in_flight.is_some() {
            return;
        }
        match pinger.stream {
            Some(stream) if pinger.negotiated => {
                let mut payload = [0u8; PAYLOAD_LEN];
                ctx.rng().fill_bytes(&mut payload);
                pinger.in_flight = Some(InFlight {
                    payload,
                    sent_at: ctx.now(),
                    echo: BytesMut::with_capacity(PAYLOAD_LEN),
                });
                trace!(%peer, %stream, "ping");
                self.arm(ctx, peer, timeout);
                // 32 bytes: whatever the window does not take now, the swarm
                // sends as it opens.
                if let Err(e) = ctx.send(stream, Bytes::copy_from_slice(&payload)) {
                    self.ping_failed(ctx, peer, e.into());
                }
            }
            // Negotiation is under way; the ping goes out when it is done.
            Some(_) => {}
            None => match ctx.open_stream(pinger.conn, PROTOCOL) {
                Ok(stream) => {
                    // Pinging alone must not keep a connection open.
                    let _ = ctx.set_stream_keep_alive(stream, false);
                    pinger.stream = Some(stream);
                    pinger.negotiated = false;
                    self.arm(ctx, peer, timeout);
                }
                Err(e) => self.ping_failed(ctx, peer, e.into()),
            },
        }
    }

    /// Bytes arrived on our ping stream.
    fn on_echo(&mut self, ctx: &mut Context<'_>, peer: PeerId, data: Bytes) {
        let Some(pinger) = self.pingers.get_mut(&peer) else {
            return;
        };
        let Some(in_flight) = pinger.in_flight.as_mut() else {
            self.ping_failed(ctx, peer, PingError::Unsolicited);
            return;
        };
        let wanted = PAYLOAD_LEN - in_flight.echo.len();
        if data.len() > wanted {
            // More than we sent: not an echo of this ping.
            self.ping_failed(ctx, peer, PingError::WrongEcho);
            return;
        }
        in_flight.echo.extend_from_slice(&data);
        if in_flight.echo.len() < PAYLOAD_LEN {
            return;
        }
        if in_flight.echo[..] != in_flight.payload[..] {
            self.ping_failed(ctx, peer, PingError::WrongEcho);
            return;
        }
        let rtt = ctx.now().saturating_duration_since(in_flight.sent_at);
        let conn = pinger.conn;
        pinger.in_flight = None;
        trace!(%peer, ?rtt, "pong");
        ctx.peer_store_mut().set_rtt(peer, rtt);
        ctx.emit(PingEvent {
            peer,
            conn,
            result: Ok(rtt),
        });
        let interval = self.config.interval;
        self.arm(ctx, peer, interval);
    }

    /// A ping failed: report it, drop the stream, and try again one
    /// interval later (unless the remote does not speak ping).
    fn ping_failed(&mut self, ctx: &mut Context<'_>, peer: PeerId, error: PingError) {
        let Some(mut pinger) = self.pingers.remove(&peer) else {
            return;
        };
        let conn = pinger.conn;
        pinger.in_flight = None;
        pinger.negotiated = false;
        if let Some(stream) = pinger.stream.take() {
            let _ = ctx.abort(stream, RESET_CODE);
        }
        self.cancel(ctx, &mut pinger);
        pinger.unsupported = error == PingError::Unsupported;
        let retry = !pinger.unsupported;
        self.pingers.insert(peer, pinger);
        if retry {
            let interval = self.config.interval;
            self.arm(ctx, peer, interval);
        }
        warn!(%peer, %conn, %error, "ping failed");
        ctx.emit(PingEvent {
            peer,
            conn,
            result: Err(error),
        });
    }

    /// The peer whose pinger owns `stream`, if any.
    fn pinger_of(&self, stream: StreamRef) -> Option<PeerId> {
        let peer = self.conns.get(&stream.conn)?;
        let pinger = self.pingers.get(peer)?;
        (pinger.stream == Some(stream)).then_some(*peer)
    }

    // ----- answerer -----

    /// Echo the complete frames among `data`; keep an incomplete one.
    fn echo(&mut self, ctx: &mut Context<'_>, stream: StreamRef, data: &[u8]) {
        let Some(echo) = self.echoes.get_mut(&stream) else {
            return;
        };
        echo.partial.extend_from_slice(data);
        let frames = echo.partial.len() / PAYLOAD_LEN * PAYLOAD_LEN;
        if frames == 0 {
            return;
        }
        let complete = echo.partial.split_to(frames).freeze();
        if let Err(e) = ctx.send(stream, complete) {
            debug!(%stream, error = %e, "ping echo failed");
            self.close_echo(ctx, stream, true);
        }
    }

    /// Forget an inbound stream, aborting it if `abort_stream`.
    fn close_echo(&mut self, ctx: &mut Context<'_>, stream: StreamRef, abort_stream: bool) {
        let Some(echo) = self.echoes.remove(&stream) else {
            return;
        };
        if abort_stream {
            let _ = ctx.abort(stream, RESET_CODE);
        }
        if let Some(count) = self.inbound_per_peer.get_mut(&echo.peer) {
            *count -= 1;
            if *count == 0 {
                self.inbound_per_peer.remove(&echo.peer);
            }
        }
    }
}

impl Protocol for Ping {
    fn name(&self) -> &'static str {
        "ping"
    }

    fn protocol_ids(&self) -> Vec<String> {
        vec![PROTOCOL.into()]
    }

    fn handle_new_connection(&mut self, ctx: &mut Context<'_>, conn: ConnId, peer: PeerId) {
        self.conns.insert(conn, peer);
        if self.config.keep_alive {
            let _ = ctx.keep_alive(conn, true);
        }
        // One pinger per peer, whatever the number of connections.
        if self.config.ping_on_connect && !self.pingers.contains_key(&peer) {
            self.start(ctx, peer, conn);
        }
    }

    fn handle_closed_connection(&mut self, ctx: &mut Context<'_>, conn: ConnId, peer: PeerId) {
        self.conns.remove(&conn);
        let Some(mut pinger) = self.pingers.remove(&peer) else {
            return;
        };
        if pinger.conn != conn {
            self.pingers.insert(peer, pinger);
            return;
        }
        self.cancel(ctx, &mut pinger);
        // Carry on over another connection to the same peer, if any.
        if let Some(&other) = ctx.connections_to(&peer).iter().find(|c| **c != conn) {
            self.start(ctx, peer, other);
        }
    }

    fn accept_inbound_stream(&mut self, ctx: &mut Context<'_>, stream: StreamRef, _: &str) {
        let Some(peer) = ctx.connection_peer(stream.conn) else {
            return;
        };
        let count = self.inbound_per_peer.entry(peer).or_default();
        if *count >= MAX_INBOUND_STREAMS_PER_PEER {
            debug!(%peer, %stream, "too many inbound ping streams; resetting");
            let _ = ctx.abort(stream, RESET_CODE);
            return;
        }
        *count += 1;
        let _ = ctx.set_stream_keep_alive(stream, false);
        self.echoes.insert(
            stream,
            Echo {
                peer,
                partial: BytesMut::new(),
            },
        );
    }

    fn handle_stream_negotiated(&mut self, ctx: &mut Context<'_>, stream: StreamRef, _: &str) {
        let Some(peer) = self.pinger_of(stream) else {
            return;
        };
        if let Some(pinger) = self.pingers.get_mut(&peer) {
            pinger.negotiated = true;
        }
        self.next_ping(ctx, peer);
    }

    fn handle_stream_data(&mut self, ctx: &mut Context<'_>, stream: StreamRef, data: Bytes) {
        if self.echoes.contains_key(&stream) {
            self.echo(ctx, stream, &data);
        } else if let Some(peer) = self.pinger_of(stream) {
            self.on_echo(ctx, peer, data);
        }
    }

    fn handle_stream_finished(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        if self.echoes.contains_key(&stream) {
            // Our FIN follows the echoes still queued; an incomplete last
            // frame is not echoed.
            let _ = ctx.finish(stream);
            self.close_echo(ctx, stream, false);
        } else if let Some(peer) = self.pinger_of(stream) {
            self.ping_failed(ctx, peer, PingError::StreamEnded);
        }
    }

    /// The remote no longer reads this stream. Echoes cannot reach it, and
    /// pings cannot either: the stream is of no use, so abort it (which
    /// stops the remote's side too); a pinger retries on a new stream.
    fn handle_stream_stopped(&mut self, ctx: &mut Context<'_>, stream: StreamRef, code: u64) {
        if self.echoes.contains_key(&stream) {
            debug!(%stream, code, "inbound ping stream stopped");
            self.close_echo(ctx, stream, true);
        } else if let Some(peer) = self.pinger_of(stream) {
            self.ping_failed(ctx, peer, StreamError::Stopped(code).into());
        }
    }

    fn handle_stream_closed(
        &mut self,
        ctx: &mut Context<'_>,
        stream: StreamRef,
        reason: &StreamError,
    ) {
        if self.echoes.contains_key(&stream) {
            debug!(%stream, %reason, "inbound ping stream closed");
            self.close_echo(ctx, stream, false);
            return;
        }
        let Some(peer) = self.pinger_of(stream) else {
            return;
        };
        if let Some(pinger) = self.pingers.get_mut(&peer) {
            pinger.stream = None;
        }
        let error = match reason {
            // The connection is going; `handle_closed_connection` follows.
            StreamError::ConnectionClosed(_) => return,
            StreamError::Negotiation(MultistreamError::Refused { .. }) => PingError::Unsupported,
            other => PingError::Stream(other.clone()),
        };
        self.ping_failed(ctx, peer, error);
    }

    fn handle_timer(&mut self, ctx: &mut Context<'_>, token: u64) {
        let Some(peer) = self.timers.remove(&token) else {
            return;
        };
        let Some(pinger) = self.pingers.get_mut(&peer) else {
            return;
        };
        if pinger.timer.is_none_or(|(_, t)| t != token) {
            return;
        }
        pinger.timer = None;
        let waiting = pinger.in_flight.is_some() || (pinger.stream.is_some() && !pinger.negotiated);
        if waiting {
            let timeout = self.config.timeout;
            self.ping_failed(ctx, peer, PingError::Timeout(timeout));
        } else {
            self.next_ping(ctx, peer);
        }
    }

    fn handle_protocol_event(&mut self, ctx: &mut Context<'_>, event: &ProtocolEvent) {
        match event.downcast_ref::<PingCommand>() {
            Some(PingCommand::Start(peer)) if !self.pingers.contains_key(peer) => {
                match ctx.connections_to(peer).first() {
                    Some(&conn) => self.start(ctx, *peer, conn),
                    None => debug!(%peer, "cannot ping: not connected"),
                }
            }
            Some(PingCommand::Stop(peer)) => self.stop(ctx, *peer),
            _ => {}
        }
    }
}
