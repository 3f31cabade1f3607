//! The mio side of TCP: listeners, connecting sockets, and per-connection
//! read and write buffers, driven by the swarm's TCP calls (see the
//! driving contract in `swarm.rs`).

use std::collections::HashMap;
use std::io::{self, Read, Write};
use std::net::SocketAddr;
use std::time::Instant;

use bytes::{Buf, Bytes};
use mio::event::Event;
use mio::net::{TcpListener, TcpStream};
use mio::{Interest, Poll, Token};
use slab::Slab;
use tracing::{debug, trace};

use crate::TcpConnect;
use crate::ids::ConnId;
use crate::swarm::Swarm;

/// Listener tokens start here; connection tokens at [`CONN_BASE`].
const LISTENER_BASE: usize = 1 << 30;
const CONN_BASE: usize = 1 << 31;
/// One read's buffer: large reads mean fewer system calls and whole Noise
/// messages (up to 64 KiB each) decrypted without buffering.
pub(super) const READ_BUFFER: usize = 256 * 1024;
/// Reads per connection per turn (at most 1 MiB): one busy peer cannot
/// starve timers and the others, as `MAX_DATAGRAMS_PER_TURN` for UDP.
const MAX_READS_PER_TURN: usize = 4;
/// Accepts per listener per turn.
const MAX_ACCEPTS_PER_TURN: usize = 64;
/// Batches asked of the swarm per connection per flush.
const MAX_PULLS_PER_FLUSH: usize = 16;

/// Whether `token` is one of ours.
pub(super) fn is_tcp_token(token: Token) -> bool {
    token.0 >= LISTENER_BASE && token.0 != usize::MAX
}

/// A non-blocking listener on `addr` (IPv6 only for an IPv6 address, as
/// the UDP sockets). It allows port reuse, so that dials may leave from
/// its port ([`connect_from`]).
pub(super) fn bind_listener(addr: SocketAddr) -> io::Result<std::net::TcpListener> {
    let socket = reusable_socket(addr)?;
    socket.bind(&addr.into())?;
    socket.listen(1024)?;
    Ok(socket.into())
}

/// A non-blocking TCP socket for `addr`'s family with `SO_REUSEADDR` and
/// (on Unix) `SO_REUSEPORT`: a listener and the dials from its port share
/// the port, told apart by the remote end.
fn reusable_socket(addr: SocketAddr) -> io::Result<socket2::Socket> {
    let domain = socket2::Domain::for_address(addr);
    let socket = socket2::Socket::new(domain, socket2::Type::STREAM, Some(socket2::Protocol::TCP))?;
    if addr.is_ipv6() {
        socket.set_only_v6(true)?;
    }
    socket.set_reuse_address(true)?;
    #[cfg(unix)]
    socket.set_reuse_port(true)?;
    socket.set_nonblocking(true)?;
    Ok(socket)
}

/// Start connecting to `connect.remote`, from `connect.local` when given
/// (a listen address: the remote and any NAT on the way see our listen
/// port), from any port when not or when `local` cannot be used for this
/// remote (the same four-tuple is taken, say) and the dial allows it.
fn connect_from(connect: &TcpConnect) -> io::Result<TcpStream> {
    let remote = connect.remote;
    if let Some(local) = connect.local {
        let bound = reusable_socket(local).and_then(|socket| {
            socket.bind(&local.into())?;
            match socket.connect(&remote.into()) {
                Ok(()) => {}
                #[cfg(unix)]
                Err(e) if e.raw_os_error() == Some(libc::EINPROGRESS) => {}
                Err(e) => return Err(e),
            }
            Ok(socket)
        });
        match bound {
            Ok(socket) => return Ok(TcpStream::from_std(socket.into())),
            Err(e) if connect.local_only => return Err(e),
            Err(e) => {
                debug!(%remote, %local, error = %e, "dial from the listen port failed; any port")
            }
        }
    }
    TcpStream::connect(remote)
}

struct Listener {
    listener: TcpListener,
    readable: bool,
}

struct Conn {
    stream: TcpStream,
    id: ConnId,
    connected: bool,
    readable: bool,
    /// Bytes taken from the swarm and not yet in the kernel.
    out: Bytes,
    /// Close once `out` is written.
    close: bool,
}

/// Every TCP socket of the runtime.
#[derive(Default)]
pub(super) struct TcpSockets {
    listeners: Vec<Listener>,
    conns: Slab<Conn>,
    by_id: HashMap<ConnId, usize>,
    /// Connections to serve at the next flush though the swarm did not name
    /// them: a writable event (unwritten bytes may go now), or the pull cap
    /// reached with more to write.
    busy: Vec<usize>,
    /// A connection stopped at the pull cap: the loop must not sleep.
    more_to_write: bool,
}

impl TcpSockets {
    pub(super) fn add_listener(
        &mut self,
        listener: std::net::TcpListener,
        poll: &Poll,
    ) -> io::Result<()> {
        let mut listener = TcpListener::from_std(listener);
        let token = Token(LISTENER_BASE + self.listeners.len());
        poll.registry()
            .register(&mut listener, token, Interest::READABLE)?;
        self.listeners.push(Listener {
            listener,
            // A connection may be waiting already.
            readable: true,
        });
        Ok(())
    }

    /// Whether a socket stopped reading or writing at a per-turn cap.
    pub(super) fn has_work(&self) -> bool {
        self.more_to_write
            || self.listeners.iter().any(|l| l.readable)
            || self.conns.iter().any(|(_, c)| c.readable && c.connected)
    }

    pub(super) fn on_event(&mut self, event: &Event) {
        let t = event.token().0;
        if t >= CONN_BASE {
            let key = t - CONN_BASE;
            if let Some(c) = self.conns.get_mut(key) {
                // A connect's outcome shows as writable (or an error); a
                // read finds end of file or errors itself.
                c.readable = true;
                if event.is_writable() {
                    self.busy.push(key);
                }
            }
        } else if let Some(l) = self.listeners.get_mut(t - LISTENER_BASE) {
            l.readable = true;
        }
    }

    /// Accept waiting connections (capped per turn).
    pub(super) fn accept(&mut self, swarm: &mut Swarm, poll: &Poll) {
        for i in 0..self.listeners.len() {
            if !self.listeners[i].readable {
                continue;
            }
            for n in 0..=MAX_ACCEPTS_PER_TURN {
                if n == MAX_ACCEPTS_PER_TURN {
                    // Leave `readable` set: accept again next turn.
                    break;
                }
                match self.listeners[i].listener.accept() {
                    Ok((stream, remote)) => {
                        let Some(id) = swarm.feed_tcp_accepted(Instant::now(), remote) else {
                            continue; // refused by a limit: dropping closes it
                        };
                        self.add_conn(stream, id, true, swarm, poll);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        self.listeners[i].readable = false;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        // E.g. out of file descriptors. Not retried at once
                        // (that would spin); the next connection's event
                        // brings us back.
                        debug!(error = %e, "accept failed");
                        self.listeners[i].readable = false;
                        break;
                    }
                }
            }
        }
    }

    /// Start the connects the swarm asked for.
    pub(super) fn connect(&mut self, swarm: &mut Swarm, poll: &Poll) {
        while let Some(connect) = swarm.poll_tcp_connect() {
            let id = connect.conn;
            match connect_from(&connect) {
                Ok(stream) => self.add_conn(stream, id, false, swarm, poll),
                Err(e) => swarm.feed_tcp_closed(Instant::now(), id, Some(e.to_string())),
            }
        }
    }

    fn add_conn(
        &mut self,
        mut stream: TcpStream,
        id: ConnId,
        connected: bool,
        swarm: &mut Swarm,
        poll: &Poll,
    ) {
        // Small messages (multistream, pings, window updates) must not wait
        // for Nagle.
        let _ = stream.set_nodelay(true);
        let entry = self.conns.vacant_entry();
        let token = Token(CONN_BASE + entry.key());
        if let Err(e) =
            poll.registry()
                .register(&mut stream, token, Interest::READABLE | Interest::WRITABLE)
        {
            swarm.feed_tcp_closed(Instant::now(), id, Some(e.to_string()));
            return;
        }
        self.by_id.insert(id, entry.key());
        entry.insert(Conn {
            stream,
            id,
            connected,
            readable: true,
            out: Bytes::new(),
            close: false,
        });
    }

    /// Read every readable connection, up to the cap; finish connects.
    pub(super) fn receive(&mut self, swarm: &mut Swarm, poll: &Poll, buf: &mut [u8]) {
        let keys: Vec<usize> = self
            .conns
            .iter()
            .filter(|(_, c)| c.readable)
            .map(|(k, _)| k)
            .collect();
        for key in keys {
            let c = &mut self.conns[key];
            if !c.connected {
                match c.stream.take_error() {
                    Ok(None) => {}
                    Ok(Some(e)) | Err(e) => {
                        self.close(key, swarm, poll, Some(e.to_string()));
                        continue;
                    }
                }
                match c.stream.peer_addr().and_then(|_| c.stream.local_addr()) {
                    Ok(local) => {
                        c.connected = true;
                        trace!(conn = %c.id, %local, "TCP connected");
                        swarm.feed_tcp_connected(Instant::now(), c.id, local);
                    }
                    // Not connected yet: wait for the next event.
                    Err(e) if e.kind() == io::ErrorKind::NotConnected => {
                        c.readable = false;
                        continue;
                    }
                    Err(e) => {
                        self.close(key, swarm, poll, Some(e.to_string()));
                        continue;
                    }
                }
            }
            let mut reads = 0;
            while let Some(c) = self.conns.get_mut(key) {
                if reads == MAX_READS_PER_TURN {
                    break; // `readable` stays set: more next turn
                }
                reads += 1;
                match c.stream.read(buf) {
                    Ok(0) => {
                        self.close(key, swarm, poll, None);
                        break;
                    }
                    Ok(n) => {
                        let id = c.id;
                        swarm.feed_tcp_data(Instant::now(), id, &buf[..n]);
                    }
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        c.readable = false;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        self.close(key, swarm, poll, Some(e.to_string()));
                        break;
                    }
                }
            }
        }
    }

    /// Write what the swarm has for the connections it names (and the busy
    /// ones), until the kernel blocks; close connections the swarm closed
    /// once written. Idle connections cost nothing here.
    pub(super) fn flush(&mut self, swarm: &mut Swarm, poll: &Poll) {
        self.more_to_write = false;
        let mut keys = std::mem::take(&mut self.busy);
        while let Some(id) = swarm.poll_tcp_ready() {
            if let Some(&key) = self.by_id.get(&id) {
                keys.push(key);
            }
        }
        keys.sort_unstable();
        keys.dedup();
        for key in keys {
            self.flush_one(key, swarm, poll);
        }
    }

    /// Pull and write one connection's bytes, at most
    /// [`MAX_PULLS_PER_FLUSH`] batches.
    fn flush_one(&mut self, key: usize, swarm: &mut Swarm, poll: &Poll) {
        for pull in 0..=MAX_PULLS_PER_FLUSH {
            if pull == MAX_PULLS_PER_FLUSH {
                // More may be waiting: serve it next turn, without sleeping.
                self.busy.push(key);
                self.more_to_write = true;
                break;
            }
            let Some(c) = self.conns.get_mut(key) else {
                break;
            };
            if c.out.is_empty() {
                let o = swarm.poll_tcp_outbound(Instant::now(), c.id);
                c.out = o.data;
                c.close |= o.close;
            }
            if !c.connected {
                if c.close {
                    self.close(key, swarm, poll, None);
                }
                break;
            }
            let mut blocked = false;
            while !c.out.is_empty() {
                match c.stream.write(&c.out) {
                    Ok(0) => break,
                    Ok(n) => c.out.advance(n),
                    Err(e) if e.kind() == io::ErrorKind::WouldBlock => {
                        blocked = true;
                        break;
                    }
                    Err(e) if e.kind() == io::ErrorKind::Interrupted => {}
                    Err(e) => {
                        let text = e.to_string();
                        self.close(key, swarm, poll, Some(text));
                        blocked = true;
                        break;
                    }
                }
            }
            if blocked {
                break;
            }
            let Some(c) = self.conns.get_mut(key) else {
                break;
            };
            if c.out.is_empty() && c.close {
                self.close(key, swarm, poll, None);
                break;
            }
            if c.out.is_empty() {
                // Ask again only if the swarm handed something this
                // time; an empty answer means it is idle.
                let o = swarm.poll_tcp_outbound(Instant::now(), c.id);
                if o.data.is_empty() && !o.close {
                    break;
                }
                c.out = o.data;
                c.close |= o.close;
            }
        }
    }

    fn close(&mut self, key: usize, swarm: &mut Swarm, poll: &Poll, error: Option<String>) {
        if !self.conns.contains(key) {
            return;
        }
        let mut c = self.conns.remove(key);
        self.by_id.remove(&c.id);
        let _ = poll.registry().deregister(&mut c.stream);
        let _ = c.stream.shutdown(std::net::Shutdown::Both);
        trace!(conn = %c.id, ?error, "TCP socket closed");
        swarm.feed_tcp_closed(Instant::now(), c.id, error);
    }
}
