//! The mio driver: real UDP sockets, the real clock, and one thread.
//!
//! It follows the [`Swarm`]'s driving contract: drain each readable socket
//! (through quinn-udp, with GRO where the kernel has it) up to
//! [`MAX_DATAGRAMS_PER_TURN`], run wake-ups and timeouts, then send what the
//! swarm produced (with GSO batches) until it has nothing left or a socket
//! would block. A socket that hit the per-turn cap is read again on the next
//! turn without sleeping, since mio's readiness is edge-triggered.
//!
//! TCP sockets (`runtime/tcp.rs`) live on the same loop: listeners accept,
//! dialed sockets connect without blocking, each connection's reads are
//! capped per turn and its writes ask the swarm for more bytes only once
//! the previous ones are in the kernel.

use std::io::{self, IoSliceMut};
use std::net::SocketAddr;
use std::sync::{Arc, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use bytes::BytesMut;
use mio::net::UdpSocket;
use mio::{Events, Interest, Poll, Token, Waker};
use multiaddr::Multiaddr;
use quinn_udp::{RecvMeta, UdpSockRef, UdpSocketState};
use tracing::{debug, trace, warn};

mod tcp;

use crate::config::SwarmConfig;
use crate::engine::ReceivedDatagram;
use crate::error::ListenError;
use crate::handle::SwarmHandle;
use crate::ids::PluginId;
use crate::protocol::Protocol;
use crate::swarm::{MAX_DATAGRAMS_PER_TURN, Swarm};
use crate::transport::quic::SocketBinder;

const WAKER: Token = Token(usize::MAX);
/// Socket buffer size asked of the kernel: room for bursts at loopback speed.
const SOCKET_BUFFER: usize = 8 << 20;
/// How long shutdown waits for connections to drain.
const SHUTDOWN_GRACE: Duration = Duration::from_secs(3);
/// Largest UDP payload a GRO batch can deliver in one buffer.
const RECV_BUFFER: usize = 64 * 1024;
/// Segments per GSO send. The kernel refuses (EMSGSIZE) a batch over 64 KiB
/// in total, and quinn's MTU discovery may grow segments to ~1500 bytes.
const MAX_GSO_SEGMENTS: usize = 40;

/// Why the runtime could not start.
#[derive(Debug, thiserror::Error)]
pub enum RuntimeError {
    /// mio's poll or waker could not be created.
    #[error("event loop: {0}")]
    Io(#[from] io::Error),
    /// Our TLS certificate could not be built.
    #[error("TLS identity: {0}")]
    Tls(#[from] crate::tls::TlsError),
}

/// Sockets bound by the swarm but not yet registered with mio.
#[derive(Clone, Default)]
struct Bound(
    Arc<Mutex<Vec<std::net::UdpSocket>>>,
    Arc<Mutex<Vec<std::net::TcpListener>>>,
);

impl SocketBinder for Bound {
    fn bind(&mut self, addr: SocketAddr) -> io::Result<SocketAddr> {
        let domain = socket2::Domain::for_address(addr);
        let socket =
            socket2::Socket::new(domain, socket2::Type::DGRAM, Some(socket2::Protocol::UDP))?;
        if addr.is_ipv6() {
            // One socket per family: an /ip6 listener must not take the
            // IPv4 port that an /ip4 listener may want.
            socket.set_only_v6(true)?;
        }
        socket.bind(&addr.into())?;
        socket.set_nonblocking(true)?;
        let socket: std::net::UdpSocket = socket.into();
        let local = socket.local_addr()?;
        self.0
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(socket);
        Ok(local)
    }

    fn tcp_supported(&self) -> bool {
        true
    }

    fn bind_tcp(&mut self, addr: SocketAddr) -> io::Result<SocketAddr> {
        let listener = tcp::bind_listener(addr)?;
        let local = listener.local_addr()?;
        self.1
            .lock()
            .unwrap_or_else(|p| p.into_inner())
            .push(listener);
        Ok(local)
    }
}

/// One registered socket.
struct Io {
    socket: UdpSocket,
    state: UdpSocketState,
    /// The socket's last read stopped at the cap, not at `WouldBlock`.
    more_to_read: bool,
}

/// A swarm driven by mio on one thread.
pub struct Runtime {
    swarm: Swarm,
    poll: Poll,
    bound: Bound,
    io: Vec<Io>,
    /// A datagram the kernel refused with `WouldBlock`, sent first next time.
    blocked: Option<(usize, quinn_proto::Transmit, Vec<u8>)>,
    /// TCP listeners and connections.
    tcp: tcp::TcpSockets,
}

impl Runtime {
    /// Build a swarm with real sockets. Nothing is bound until `listen` or a dial.
    pub fn new(config: SwarmConfig) -> Result<Self, RuntimeError> {
        let poll = Poll::new()?;
        let waker = Arc::new(Waker::new(poll.registry(), WAKER)?);
        let bound = Bound::default();
        let swarm = Swarm::new(config, Box::new(bound.clone()), waker, Instant::now())?;
        Ok(Self {
            swarm,
            poll,
            bound,
            io: Vec::new(),
            blocked: None,
            tcp: tcp::TcpSockets::default(),
        })
    }

    /// Register a plugin (see [`Swarm::add_protocol`]).
    pub fn add_protocol(&mut self, plugin: Box<dyn Protocol>) -> PluginId {
        self.swarm.add_protocol(plugin)
    }

    /// Listen on a QUIC or TCP multiaddr before running; returns the
    /// resolved address.
    pub fn listen(&mut self, addr: &Multiaddr) -> Result<Multiaddr, ListenError> {
        let r = self.swarm.listen(addr);
        if let Err(e) = self.register_new_sockets() {
            warn!(error = %e, "cannot register socket");
        }
        r
    }

    /// A handle for other threads.
    pub fn handle(&self) -> SwarmHandle {
        self.swarm.handle()
    }

    /// The swarm itself, e.g. to read its tables before it runs.
    pub fn swarm(&mut self) -> &mut Swarm {
        &mut self.swarm
    }

    /// Run on a new thread named `swarm`; returns a handle and the thread.
    pub fn spawn(self) -> io::Result<(SwarmHandle, JoinHandle<io::Result<()>>)> {
        let handle = self.handle();
        let thread = std::thread::Builder::new()
            .name("swarm".into())
            .spawn(move || self.run())?;
        Ok((handle, thread))
    }

    /// Run on this thread until a shutdown completes.
    pub fn run(mut self) -> io::Result<()> {
        let mut events = Events::with_capacity(256);
        let mut recv_bufs: Vec<Vec<u8>> = (0..quinn_udp::BATCH_SIZE)
            .map(|_| vec![0u8; RECV_BUFFER])
            .collect();
        let mut send_buf = Vec::with_capacity(RECV_BUFFER);
        let mut tcp_buf = vec![0u8; tcp::READ_BUFFER];
        let mut shutdown_deadline: Option<Instant> = None;
        // Plugins' on_start runs before the first event.
        self.swarm.feed_wakeup(Instant::now());
        loop {
            self.register_new_sockets()?;
            self.flush(&mut send_buf)?;
            self.tcp.connect(&mut self.swarm, &self.poll);
            self.tcp.flush(&mut self.swarm, &self.poll);
            if self.swarm.is_shut_down() {
                debug!("swarm shut down");
                return Ok(());
            }
            if self.swarm_is_shutting_down() {
                let deadline = *shutdown_deadline.get_or_insert(Instant::now() + SHUTDOWN_GRACE);
                if Instant::now() >= deadline {
                    debug!("shutdown grace period over");
                    return Ok(());
                }
            }
            let now = Instant::now();
            let timeout = if self.io.iter().any(|s| s.more_to_read) || self.tcp.has_work() {
                Some(Duration::ZERO)
            } else {
                let mut t = self
                    .swarm
                    .poll_timeout()
                    .map(|at| at.saturating_duration_since(now));
                if let Some(deadline) = shutdown_deadline {
                    let left = deadline.saturating_duration_since(now);
                    t = Some(t.map_or(left, |t| t.min(left)));
                }
                t
            };
            match self.poll.poll(&mut events, timeout) {
                Ok(()) => {}
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(e),
            }
            let mut woke = false;
            for event in events.iter() {
                match event.token() {
                    WAKER => woke = true,
                    t if tcp::is_tcp_token(t) => self.tcp.on_event(event),
                    Token(i) => {
                        if event.is_readable()
                            && let Some(io) = self.io.get_mut(i)
                        {
                            io.more_to_read = true;
                        }
                    }
                }
            }
            let now = Instant::now();
            self.receive(now, &mut recv_bufs)?;
            self.tcp.accept(&mut self.swarm, &self.poll);
            self.tcp.receive(&mut self.swarm, &self.poll, &mut tcp_buf);
            if woke {
                self.swarm.feed_wakeup(now);
            }
            if self.swarm.poll_timeout().is_some_and(|at| at <= now) {
                self.swarm.feed_timeout(now);
            }
        }
    }

    fn swarm_is_shutting_down(&mut self) -> bool {
        // Peek at the flag through the public API: a shut-down swarm with
        // connections left is still draining.
        self.swarm.shutting_down()
    }

    fn register_new_sockets(&mut self) -> io::Result<()> {
        let listeners: Vec<std::net::TcpListener> =
            std::mem::take(&mut *self.bound.1.lock().unwrap_or_else(|p| p.into_inner()));
        for listener in listeners {
            self.tcp.add_listener(listener, &self.poll)?;
        }
        let new: Vec<std::net::UdpSocket> =
            std::mem::take(&mut *self.bound.0.lock().unwrap_or_else(|p| p.into_inner()));
        for socket in new {
            let state = UdpSocketState::new(UdpSockRef::from(&socket))?;
            // Larger kernel buffers absorb bursts; the kernel may cap them.
            let _ = state.set_send_buffer_size(UdpSockRef::from(&socket), SOCKET_BUFFER);
            let _ = state.set_recv_buffer_size(UdpSockRef::from(&socket), SOCKET_BUFFER);
            let mut socket = UdpSocket::from_std(socket);
            let token = Token(self.io.len());
            self.poll.registry().register(
                &mut socket,
                token,
                Interest::READABLE | Interest::WRITABLE,
            )?;
            trace!(local = ?socket.local_addr(), gso = state.max_gso_segments(), gro = state.gro_segments(), "socket registered");
            self.io.push(Io {
                socket,
                state,
                // A datagram may have arrived before registration.
                more_to_read: true,
            });
        }
        Ok(())
    }

    /// Read every socket flagged readable, up to the per-turn cap.
    fn receive(&mut self, now: Instant, bufs: &mut [Vec<u8>]) -> io::Result<()> {
        let mut meta = [RecvMeta::default(); quinn_udp::BATCH_SIZE];
        for index in 0..self.io.len() {
            if !self.io[index].more_to_read {
                continue;
            }
            let mut received = 0;
            loop {
                if received >= MAX_DATAGRAMS_PER_TURN {
                    // Leave `more_to_read` set: read again next turn.
                    break;
                }
                let io = &self.io[index];
                let mut slices: Vec<IoSliceMut<'_>> =
                    bufs.iter_mut().map(|b| IoSliceMut::new(b)).collect();
                let n = match io
                    .state
                    .recv(UdpSockRef::from(&io.socket), &mut slices, &mut meta)
                {
                    Ok(n) => n,
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.io[index].more_to_read = false;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                    Err(e) => {
                        // ICMP errors surface here on some systems; they
                        // concern one peer, not the socket.
                        debug!(error = %e, "recv error");
                        // Counted against the cap, so a persistent error
                        // cannot keep this loop from yielding.
                        received += 1;
                        continue;
                    }
                };
                drop(slices);
                // One allocation and copy per received buffer (a GRO batch
                // of up to 64 datagrams), split into segments without
                // copying, as quinn's own endpoint does.
                let batch = meta.iter().zip(bufs.iter()).take(n).flat_map(|(m, buf)| {
                    let ecn = m
                        .ecn
                        .and_then(|e| quinn_proto::EcnCodepoint::from_bits(e as u8));
                    let stride = m.stride.max(1);
                    let mut data = BytesMut::from(&buf[..m.len]);
                    std::iter::from_fn(move || {
                        (!data.is_empty()).then(|| ReceivedDatagram {
                            remote: m.addr,
                            local_ip: m.dst_ip,
                            ecn,
                            data: data.split_to(stride.min(data.len())),
                        })
                    })
                });
                let counted = batch.inspect(|_| received += 1);
                self.swarm.feed_datagrams(now, index, counted);
            }
        }
        Ok(())
    }

    /// Send what the swarm has, until it has nothing or a socket blocks.
    fn flush(&mut self, buf: &mut Vec<u8>) -> io::Result<()> {
        if let Some((socket, t, data)) = self.blocked.take()
            && !self.send(socket, &t, &data)?
        {
            self.blocked = Some((socket, t, data));
            return Ok(());
        }
        let max_segments = self
            .io
            .iter()
            .map(|s| s.state.max_gso_segments())
            .min()
            .unwrap_or(1)
            .min(MAX_GSO_SEGMENTS);
        loop {
            let now = Instant::now();
            let Some((socket, t)) = self.swarm.poll_transmit(now, max_segments, buf) else {
                return Ok(());
            };
            if !self.send(socket, &t, buf)? {
                self.blocked = Some((socket, t, std::mem::take(buf)));
                return Ok(());
            }
        }
    }

    /// Send one transmit; `false` if the socket would block.
    fn send(&mut self, socket: usize, t: &quinn_proto::Transmit, data: &[u8]) -> io::Result<bool> {
        let Some(io) = self.io.get(socket) else {
            return Ok(true);
        };
        let transmit = quinn_udp::Transmit {
            destination: t.destination,
            ecn: t
                .ecn
                .and_then(|e| quinn_udp::EcnCodepoint::from_bits(e as u8)),
            contents: &data[..t.size],
            segment_size: t.segment_size,
            src_ip: t.src_ip,
        };
        match io.state.try_send(UdpSockRef::from(&io.socket), &transmit) {
            Ok(()) => Ok(true),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(false),
            Err(e) => {
                // An error here concerns this datagram only (e.g. ICMP
                // unreachable reported late); QUIC retransmits or times out.
                debug!(error = %e, dest = %t.destination, "send error");
                Ok(true)
            }
        }
    }
}
