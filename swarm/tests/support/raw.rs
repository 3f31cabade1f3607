//! A raw quinn-proto endpoint for hostile-peer tests: it speaks QUIC with
//! whatever TLS config a test gives it, and writes arbitrary bytes on
//! streams (no multistream-select of its own).

use std::collections::{HashMap, VecDeque};
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Instant;

use bytes::{Bytes, BytesMut};
use quinn_proto::{
    ClientConfig, Connection, ConnectionError, ConnectionHandle, DatagramEvent, Dir, Endpoint,
    EndpointConfig, Event, ReadError, ServerConfig, StreamEvent, StreamId, VarInt,
};
use swarm::virtual_net::Node;

/// What a raw peer saw on one stream.
#[derive(Clone, Debug, Default)]
pub struct RawStream {
    /// Every byte received, in order.
    pub received: Vec<u8>,
    /// The remote finished its send side.
    pub fin: bool,
    /// The remote reset its send side with this code.
    pub reset: Option<u64>,
    /// The remote asked us to stop sending, with this code.
    pub stopped: Option<u64>,
    /// When the reset or stop was first seen.
    pub ended_at: Option<Instant>,
}

/// One connection of a raw peer.
pub struct RawConn {
    pub quic: Connection,
    pub connected_at: Option<Instant>,
    /// Why the connection ended, and when it was seen.
    pub lost: Option<(ConnectionError, Instant)>,
    pub streams: HashMap<StreamId, RawStream>,
}

impl RawConn {
    /// Open a bidirectional stream (panics if the peer's limit is reached).
    pub fn open_bi(&mut self) -> StreamId {
        self.quic.streams().open(Dir::Bi).expect("stream credit")
    }

    /// Write all of `data` (panics if the window is too small for it).
    pub fn write(&mut self, id: StreamId, data: &[u8]) {
        let n = self.quic.send_stream(id).write(data).expect("write");
        assert_eq!(n, data.len(), "raw write did not fit the window");
    }

    pub fn finish(&mut self, id: StreamId) {
        let _ = self.quic.send_stream(id).finish();
    }

    pub fn reset(&mut self, id: StreamId, code: u32) {
        let _ = self.quic.send_stream(id).reset(VarInt::from_u32(code));
    }

    pub fn stream(&self, id: StreamId) -> RawStream {
        self.streams.get(&id).cloned().unwrap_or_default()
    }

    pub fn close(&mut self, now: Instant, code: u32) {
        self.quic
            .close(now, VarInt::from_u32(code), Bytes::from_static(b"bye"));
    }

    fn read(&mut self, id: StreamId, now: Instant) {
        let entry = self.streams.entry(id).or_default();
        let mut recv = self.quic.recv_stream(id);
        let Ok(mut chunks) = recv.read(true) else {
            return;
        };
        loop {
            match chunks.next(usize::MAX) {
                Ok(Some(chunk)) => entry.received.extend_from_slice(&chunk.bytes),
                Ok(None) => {
                    entry.fin = true;
                    break;
                }
                Err(ReadError::Blocked) => break,
                Err(ReadError::Reset(code)) => {
                    entry.reset = Some(code.into_inner());
                    entry.ended_at.get_or_insert(now);
                    break;
                }
            }
        }
        let _ = chunks.finalize();
    }
}

/// A quinn-proto endpoint with its connections.
pub struct RawPeer {
    pub addr: SocketAddr,
    pub endpoint: Endpoint,
    pub conns: HashMap<ConnectionHandle, RawConn>,
    /// Incoming connections refused by the endpoint itself (none expected).
    pub accept_errors: Vec<String>,
    out: VecDeque<(SocketAddr, Vec<u8>)>,
}

impl RawPeer {
    /// A client, or a server too when `server` is given. `seed` makes the
    /// endpoint's own randomness (connection ids) deterministic.
    pub fn new(addr: SocketAddr, server: Option<Arc<ServerConfig>>, seed: u8) -> Self {
        Self {
            addr,
            endpoint: Endpoint::new(
                Arc::new(EndpointConfig::default()),
                server,
                true,
                Some([seed; 32]),
            ),
            conns: HashMap::new(),
            accept_errors: Vec::new(),
            out: VecDeque::new(),
        }
    }

    pub fn connect(
        &mut self,
        now: Instant,
        config: ClientConfig,
        to: SocketAddr,
    ) -> ConnectionHandle {
        let (h, quic) = self
            .endpoint
            .connect(now, config, to, "l")
            .expect("connect");
        self.conns.insert(
            h,
            RawConn {
                quic,
                connected_at: None,
                lost: None,
                streams: HashMap::new(),
            },
        );
        h
    }

    pub fn conn(&mut self, h: ConnectionHandle) -> &mut RawConn {
        self.conns.get_mut(&h).expect("raw connection")
    }

    pub fn handle_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        let mut buf = Vec::new();
        match self
            .endpoint
            .handle(now, from, None, None, BytesMut::from(data), &mut buf)
        {
            None => {}
            Some(DatagramEvent::ConnectionEvent(h, ev)) => {
                if let Some(c) = self.conns.get_mut(&h) {
                    c.quic.handle_event(ev);
                    self.process(h, now);
                }
            }
            Some(DatagramEvent::NewConnection(incoming)) => {
                match self.endpoint.accept(incoming, now, &mut buf, None) {
                    Ok((h, quic)) => {
                        self.conns.insert(
                            h,
                            RawConn {
                                quic,
                                connected_at: None,
                                lost: None,
                                streams: HashMap::new(),
                            },
                        );
                        self.process(h, now);
                    }
                    Err(e) => {
                        self.accept_errors.push(e.cause.to_string());
                        if let Some(t) = e.response {
                            self.out.push_back((t.destination, buf[..t.size].to_vec()));
                        }
                    }
                }
            }
            Some(DatagramEvent::Response(t)) => {
                self.out.push_back((t.destination, buf[..t.size].to_vec()));
            }
        }
    }

    /// Drain a connection's endpoint and application events.
    fn process(&mut self, h: ConnectionHandle, now: Instant) {
        let Some(c) = self.conns.get_mut(&h) else {
            return;
        };
        while let Some(ev) = c.quic.poll_endpoint_events() {
            if let Some(back) = self.endpoint.handle_event(h, ev) {
                c.quic.handle_event(back);
            }
        }
        while let Some(ev) = c.quic.poll() {
            match ev {
                Event::Connected => c.connected_at = Some(now),
                Event::ConnectionLost { reason } => {
                    c.lost.get_or_insert((reason, now));
                }
                Event::Stream(StreamEvent::Opened { dir }) => {
                    while let Some(id) = c.quic.streams().accept(dir) {
                        c.streams.entry(id).or_default();
                        c.read(id, now);
                    }
                }
                Event::Stream(StreamEvent::Readable { id }) => c.read(id, now),
                Event::Stream(StreamEvent::Stopped { id, error_code }) => {
                    let s = c.streams.entry(id).or_default();
                    s.stopped = Some(error_code.into_inner());
                    s.ended_at.get_or_insert(now);
                }
                _ => {}
            }
        }
    }

    pub fn poll_transmit(&mut self, now: Instant) -> Vec<(SocketAddr, Vec<u8>)> {
        let mut out: Vec<_> = self.out.drain(..).collect();
        let handles: Vec<ConnectionHandle> = self.conns.keys().copied().collect();
        let mut buf = Vec::new();
        for h in handles {
            loop {
                buf.clear();
                let c = self.conns.get_mut(&h).unwrap();
                let Some(t) = c.quic.poll_transmit(now, 1, &mut buf) else {
                    break;
                };
                out.push((t.destination, buf[..t.size].to_vec()));
            }
            self.process(h, now);
        }
        out
    }

    pub fn poll_timeout(&mut self) -> Option<Instant> {
        self.conns
            .values_mut()
            .filter(|c| !c.quic.is_drained())
            .filter_map(|c| c.quic.poll_timeout())
            .min()
    }

    pub fn handle_timeout(&mut self, now: Instant) {
        let handles: Vec<ConnectionHandle> = self.conns.keys().copied().collect();
        for h in handles {
            let c = self.conns.get_mut(&h).unwrap();
            if c.quic.poll_timeout().is_some_and(|t| t <= now) {
                c.quic.handle_timeout(now);
                self.process(h, now);
            }
        }
    }
}

/// A raw peer takes part in a `swarm::virtual_net` network like a swarm.
impl Node for RawPeer {
    fn feed_datagram(&mut self, now: Instant, from: SocketAddr, data: &[u8]) {
        self.handle_datagram(now, from, data);
    }

    fn poll_transmits(
        &mut self,
        now: Instant,
        _scratch: &mut Vec<u8>,
        out: &mut Vec<(SocketAddr, Vec<u8>)>,
    ) {
        out.extend(self.poll_transmit(now));
    }

    fn poll_timeout(&mut self) -> Option<Instant> {
        RawPeer::poll_timeout(self)
    }

    fn feed_timeout(&mut self, now: Instant) {
        self.handle_timeout(now);
    }
}
