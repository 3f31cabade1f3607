//! A blocking test driver for the sans-I/O TCP stack (`swarm::tcp_upgrade`,
//! `swarm::yamux`, `swarm::multistream`) over a `std::net::TcpStream`, so
//! that interop tests can see what was negotiated: the same state machines
//! the engine holds, one thread per connection.
//!
//! Inbound streams are served automatically on every turn: `/ipfs/ping/1.0.0`
//! and the echo protocol echo, `/perf/1.0.0` is a perf server, anything else
//! is refused with `na`.
#![allow(dead_code)]

use std::collections::HashMap;
use std::io::{ErrorKind, Read as _, Write as _};
use std::net::{SocketAddr, TcpListener, TcpStream};
use std::sync::Arc;
use std::sync::atomic::{AtomicBool, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use swarm::multistream::{MultistreamLimits, Negotiation, Progress};
use swarm::tcp_upgrade::{
    DialSecurity, SecuredConnection, TcpUpgrade, UpgradeError, UpgradeProgress,
};
use swarm::tls::TlsIdentity;
use swarm::yamux::{Read, YamuxConfig};
use swarm::{Keypair, PeerId};

pub const PING: &str = "/ipfs/ping/1.0.0";
pub const PERF: &str = "/perf/1.0.0";
pub const ECHO: &str = "/test/echo/1.0.0";

/// Every blocking step is bounded by this.
pub const STEP_TIMEOUT: Duration = Duration::from_secs(30);

enum Inbound {
    Negotiating(Negotiation),
    /// Echo every byte until FIN, then finish.
    Echo {
        pending: Vec<u8>,
        fin: bool,
    },
    /// Perf server: the 8-byte size, the upload until FIN, then the download.
    Perf {
        header: Vec<u8>,
        uploaded: u64,
        fin: bool,
        to_send: u64,
    },
    Done,
}

/// One upgraded connection on a blocking socket.
pub struct Conn {
    sock: TcpStream,
    pub sec: SecuredConnection,
    inbound: HashMap<u32, Inbound>,
    /// Inbound streams that finished negotiating, by protocol (for tests).
    pub served: HashMap<String, u64>,
    /// Upload bytes the perf server received.
    pub perf_uploaded: u64,
    buf: Vec<u8>,
}

fn run_upgrade(mut sock: TcpStream, mut up: TcpUpgrade) -> Result<Conn, UpgradeError> {
    sock.set_nodelay(true).unwrap();
    sock.set_read_timeout(Some(Duration::from_millis(20)))
        .unwrap();
    let deadline = Instant::now() + STEP_TIMEOUT;
    let mut buf = vec![0u8; 64 * 1024];
    loop {
        sock.write_all(&up.take_outbound()).unwrap();
        assert!(Instant::now() < deadline, "upgrade timed out");
        match sock.read(&mut buf) {
            Ok(0) => panic!("remote closed during the upgrade"),
            Ok(n) => {
                if up.feed(&buf[..n], Instant::now())? == UpgradeProgress::Done {
                    let sec = up.finish()?;
                    let mut conn = Conn {
                        sock,
                        sec,
                        inbound: HashMap::new(),
                        served: HashMap::new(),
                        perf_uploaded: 0,
                        buf,
                    };
                    conn.flush();
                    return Ok(conn);
                }
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(e) => panic!("read failed: {e}"),
        }
    }
}

impl Conn {
    /// Dial `addr` over Noise and upgrade, expecting `expected`.
    pub fn dial(
        addr: SocketAddr,
        key: &Keypair,
        expected: Option<PeerId>,
    ) -> Result<Conn, UpgradeError> {
        Self::dial_with(addr, key, expected, DialSecurity::Noise)
    }

    /// Dial `addr` over TLS 1.3 (`/tls/1.0.0`) and upgrade.
    pub fn dial_tls(
        addr: SocketAddr,
        key: &Keypair,
        expected: Option<PeerId>,
    ) -> Result<Conn, UpgradeError> {
        let identity = TlsIdentity::new(key).unwrap();
        let (config, observed) = identity.client_config(expected).unwrap();
        Self::dial_with(addr, key, expected, DialSecurity::Tls { config, observed })
    }

    fn dial_with(
        addr: SocketAddr,
        key: &Keypair,
        expected: Option<PeerId>,
        security: DialSecurity,
    ) -> Result<Conn, UpgradeError> {
        let sock = TcpStream::connect_timeout(&addr, STEP_TIMEOUT).unwrap();
        let up = TcpUpgrade::dialer(key, expected, security, YamuxConfig::default(), rand_seed());
        run_upgrade(sock, up)
    }

    /// Accept one connection on `listener` and upgrade it (Noise or TLS,
    /// as the dialer proposes).
    pub fn accept(listener: &TcpListener, key: &Keypair) -> Result<Conn, UpgradeError> {
        let (sock, _) = listener.accept().unwrap();
        let tls = TlsIdentity::new(key).unwrap().server_config().unwrap();
        let up = TcpUpgrade::listener(key, Some(tls), YamuxConfig::default(), rand_seed());
        run_upgrade(sock, up)
    }

    /// Write what the connection queued.
    pub fn flush(&mut self) {
        let out = self.sec.take_outbound().expect("encrypt");
        if !out.is_empty() {
            self.sock.write_all(&out).expect("socket write");
        }
    }

    /// One turn: flush, read what arrived (waiting up to 20 ms), serve
    /// inbound streams, flush again. Returns false once the remote closed.
    pub fn turn(&mut self) -> bool {
        self.flush();
        let mut open = true;
        match self.sock.read(&mut self.buf) {
            Ok(0) => open = false,
            Ok(n) => {
                let data = self.buf[..n].to_vec();
                self.sec.feed(&data, Instant::now()).expect("valid input");
            }
            Err(e) if matches!(e.kind(), ErrorKind::WouldBlock | ErrorKind::TimedOut) => {}
            Err(_) => open = false,
        }
        while self.sec.session().poll_event().is_some() {}
        self.serve();
        self.flush();
        open
    }

    fn serve(&mut self) {
        let now = Instant::now();
        while let Some(id) = self.sec.session().accept_stream() {
            let mut n = Negotiation::listener(MultistreamLimits::default());
            let out = n.take_outbound();
            let _ = self.sec.session().write(id, &out);
            self.inbound.insert(id, Inbound::Negotiating(n));
        }
        let ids: Vec<u32> = self.inbound.keys().copied().collect();
        for id in ids {
            let mut state = self.inbound.remove(&id).unwrap();
            // Read everything available.
            let mut incoming = Vec::new();
            let mut fin = false;
            let mut reset = false;
            loop {
                match self.sec.session().read(id, usize::MAX, now) {
                    Read::Data(d) => incoming.extend_from_slice(&d),
                    Read::Fin => {
                        fin = true;
                        break;
                    }
                    Read::Reset => {
                        reset = true;
                        break;
                    }
                    Read::Blocked => break,
                }
            }
            if reset {
                continue;
            }
            if let Inbound::Negotiating(n) = &mut state {
                let progress = n
                    .feed(incoming.clone().into(), &|p| {
                        [PING, PERF, ECHO].contains(&p)
                    })
                    .expect("negotiation");
                let out = n.take_outbound();
                let _ = self.sec.session().write(id, &out);
                incoming.clear();
                if let Progress::Done {
                    protocol,
                    remainder,
                } = progress
                {
                    *self.served.entry(protocol.clone()).or_default() += 1;
                    incoming = remainder.to_vec();
                    state = if protocol == PERF {
                        Inbound::Perf {
                            header: Vec::new(),
                            uploaded: 0,
                            fin: false,
                            to_send: 0,
                        }
                    } else {
                        Inbound::Echo {
                            pending: Vec::new(),
                            fin: false,
                        }
                    };
                } else if fin {
                    continue;
                }
            }
            match &mut state {
                Inbound::Echo { pending, fin: f } => {
                    pending.extend_from_slice(&incoming);
                    *f |= fin;
                    let n = self
                        .sec
                        .session()
                        .write(id, pending)
                        .unwrap_or(pending.len());
                    pending.drain(..n);
                    if *f && pending.is_empty() {
                        let _ = self.sec.session().finish(id);
                        state = Inbound::Done;
                    }
                }
                Inbound::Perf {
                    header,
                    uploaded,
                    fin: f,
                    to_send,
                } => {
                    let need = 8usize.saturating_sub(header.len()).min(incoming.len());
                    header.extend_from_slice(&incoming[..need]);
                    *uploaded += (incoming.len() - need) as u64;
                    self.perf_uploaded += (incoming.len() - need) as u64;
                    if fin && header.len() == 8 && !*f {
                        *f = true;
                        *to_send = u64::from_be_bytes(header[..8].try_into().unwrap());
                    }
                    if *f {
                        let chunk = vec![0u8; (*to_send).min(256 * 1024) as usize];
                        let n = self.sec.session().write(id, &chunk).unwrap_or(0);
                        *to_send -= n as u64;
                        if *to_send == 0 {
                            let _ = self.sec.session().finish(id);
                            state = Inbound::Done;
                        }
                    }
                }
                Inbound::Negotiating(_) | Inbound::Done => {}
            }
            if !matches!(state, Inbound::Done) {
                self.inbound.insert(id, state);
            }
        }
    }

    /// Open a stream negotiating `protocol` (lazily: the proposal and data
    /// go together), write `data`, finish, and read the reply to its end.
    pub fn request(&mut self, protocol: &str, data: &[u8]) -> Vec<u8> {
        let id = self.open(protocol);
        self.write_all(id, data);
        self.sec.session().finish(id).unwrap();
        self.read_reply(id, protocol)
    }

    /// Open a stream and queue the multistream proposal.
    pub fn open(&mut self, protocol: &str) -> u32 {
        let id = self
            .sec
            .session()
            .open_stream(Instant::now())
            .expect("open");
        let mut n = Negotiation::dialer(protocol, MultistreamLimits::default());
        let out = n.take_outbound();
        self.write_all(id, &out);
        id
    }

    /// Write all of `data`, turning while the window is full.
    pub fn write_all(&mut self, id: u32, data: &[u8]) {
        let deadline = Instant::now() + STEP_TIMEOUT;
        let mut off = 0;
        while off < data.len() {
            off += self.sec.session().write(id, &data[off..]).expect("write");
            if off < data.len() {
                assert!(Instant::now() < deadline, "write timed out");
                assert!(self.turn(), "remote closed");
            }
        }
        self.flush();
    }

    /// Read a stream opened with `open(protocol)` to its end: the
    /// negotiation answer first, then the data.
    pub fn read_reply(&mut self, id: u32, protocol: &str) -> Vec<u8> {
        self.read_reply_up_to(id, protocol, usize::MAX)
    }

    /// Like [`Conn::read_reply`], but stop after `limit` bytes.
    pub fn read_reply_up_to(&mut self, id: u32, protocol: &str, limit: usize) -> Vec<u8> {
        let mut n = Negotiation::dialer(protocol, MultistreamLimits::default());
        let _ = n.take_outbound();
        let mut negotiated = false;
        let mut got = Vec::new();
        let deadline = Instant::now() + STEP_TIMEOUT;
        loop {
            if got.len() >= limit {
                return got;
            }
            match self.sec.session().read(id, usize::MAX, Instant::now()) {
                Read::Data(d) if negotiated => got.extend_from_slice(&d),
                Read::Data(d) => {
                    if let Progress::Done { remainder, .. } =
                        n.feed(d, &|_| false).expect("negotiation")
                    {
                        negotiated = true;
                        got.extend_from_slice(&remainder);
                    }
                }
                Read::Fin => return got,
                Read::Reset => panic!("stream {id} reset"),
                Read::Blocked => {
                    assert!(Instant::now() < deadline, "read timed out");
                    assert!(self.turn(), "remote closed");
                }
            }
        }
    }

    /// Turn for `d`, serving inbound streams.
    pub fn serve_for(&mut self, d: Duration) {
        let end = Instant::now() + d;
        while Instant::now() < end && self.turn() {}
    }

    /// Turn until `f` holds (bounded by the step timeout).
    pub fn serve_until(&mut self, mut f: impl FnMut(&Conn) -> bool) -> bool {
        let end = Instant::now() + STEP_TIMEOUT;
        while Instant::now() < end {
            if f(self) {
                return true;
            }
            if !self.turn() {
                return f(self);
            }
        }
        false
    }
}

fn rand_seed() -> [u8; 32] {
    rand::random()
}

/// The socket address of a `/ip4/…/tcp/…` multiaddr.
pub fn socket_addr(addr: &swarm::Multiaddr) -> SocketAddr {
    use swarm::multiaddr::Protocol;
    let mut ip = None;
    let mut port = None;
    for p in addr.iter() {
        match p {
            Protocol::Ip4(a) => ip = Some(std::net::IpAddr::V4(a)),
            Protocol::Tcp(p) => port = Some(p),
            _ => {}
        }
    }
    SocketAddr::new(ip.expect("ip4"), port.expect("tcp"))
}

/// One inbound connection on 127.0.0.1, upgraded and served on a thread of
/// its own until [`Served::stop`] or `limit`.
pub struct Served {
    /// Where to dial it, with `/p2p/<its peer id>`.
    pub addr: swarm::Multiaddr,
    /// Its peer id.
    pub peer: PeerId,
    stop: Arc<AtomicBool>,
    thread: JoinHandle<Conn>,
}

/// Listen on a fresh key and port, and serve the first connection.
pub fn serve_one(limit: Duration) -> Served {
    let key = Keypair::generate_ed25519();
    let peer = key.public().to_peer_id();
    let listener = TcpListener::bind("127.0.0.1:0").unwrap();
    let port = listener.local_addr().unwrap().port();
    let stop = Arc::new(AtomicBool::new(false));
    let thread = {
        let stop = stop.clone();
        std::thread::spawn(move || {
            let mut conn = Conn::accept(&listener, &key).expect("upgrade");
            let end = Instant::now() + limit;
            while !stop.load(Ordering::Relaxed) && Instant::now() < end && conn.turn() {}
            conn
        })
    };
    let addr = format!("/ip4/127.0.0.1/tcp/{port}/p2p/{peer}")
        .parse()
        .unwrap();
    Served {
        addr,
        peer,
        stop,
        thread,
    }
}

impl Served {
    /// Stop serving; the connection, to look at what it served.
    pub fn stop(self) -> Conn {
        self.stop.store(true, Ordering::Relaxed);
        self.thread.join().expect("the serving thread")
    }
}
