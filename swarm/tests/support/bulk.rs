//! A perf-like bulk transfer: `Sender` opens one stream per connection it
//! dials and writes a fixed pseudo-random payload (optionally paced);
//! `Receiver` counts and hashes what arrives. Errors are recorded, never
//! panicked on, so a test can tell what went wrong.

use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use sha2::{Digest, Sha256};
use swarm::{Bytes, ConnId, Context, PeerId, Protocol, StreamError, StreamRef};

pub const BULK: &str = "/test/bulk/1.0.0";

/// `len` bytes of deterministic pseudo-random data (splitmix64).
pub fn payload(len: usize, seed: u64) -> Bytes {
    let mut out = Vec::with_capacity(len + 8);
    let mut x = seed;
    while out.len() < len {
        x = x.wrapping_add(0x9e37_79b9_7f4a_7c15);
        let mut z = x;
        z = (z ^ (z >> 30)).wrapping_mul(0xbf58_476d_1ce4_e5b9);
        z = (z ^ (z >> 27)).wrapping_mul(0x94d0_49bb_1331_11eb);
        z ^= z >> 31;
        out.extend_from_slice(&z.to_le_bytes());
    }
    out.truncate(len);
    Bytes::from(out)
}

pub fn sha256(data: &[u8]) -> [u8; 32] {
    Sha256::digest(data).into()
}

#[derive(Default)]
pub struct SendState {
    pub opened: Option<StreamRef>,
    pub written: usize,
    pub finished: bool,
    pub error: Option<String>,
}

/// Sends `data` on a stream to the first peer it connects to.
pub struct Sender {
    data: Bytes,
    /// Bytes released per tick, and the tick; `None`: as fast as possible.
    pace: Option<(usize, Duration)>,
    allowance: usize,
    stream: Option<StreamRef>,
    pub state: Arc<Mutex<SendState>>,
}

impl Sender {
    pub fn new(data: Bytes, pace: Option<(usize, Duration)>) -> (Self, Arc<Mutex<SendState>>) {
        let state = Arc::new(Mutex::new(SendState::default()));
        let allowance = if pace.is_some() { 0 } else { usize::MAX };
        (
            Self {
                data,
                pace,
                allowance,
                stream: None,
                state: state.clone(),
            },
            state,
        )
    }

    fn pump(&mut self, ctx: &mut Context<'_>) {
        let Some(s) = self.stream else { return };
        let mut st = self.state.lock().unwrap();
        while st.written < self.data.len() && self.allowance > 0 {
            let end = (st.written + 64 * 1024)
                .min(self.data.len())
                .min(st.written.saturating_add(self.allowance));
            let mut chunk = self.data.slice(st.written..end);
            match ctx.write_bytes(s, &mut chunk) {
                Ok(0) => return,
                Ok(n) => {
                    st.written += n;
                    if self.allowance != usize::MAX {
                        self.allowance -= n;
                    }
                }
                Err(e) => {
                    st.error.get_or_insert(format!("write: {e}"));
                    self.stream = None;
                    return;
                }
            }
        }
        if st.written == self.data.len() && !st.finished {
            if let Err(e) = ctx.finish(s) {
                st.error.get_or_insert(format!("finish: {e}"));
            }
            st.finished = true;
        }
    }
}

impl Protocol for Sender {
    fn name(&self) -> &'static str {
        "bulk-sender"
    }
    fn handle_new_connection(&mut self, ctx: &mut Context<'_>, conn: ConnId, _: PeerId) {
        if self.stream.is_some() || self.state.lock().unwrap().opened.is_some() {
            return;
        }
        match ctx.open_stream(conn, BULK) {
            Ok(s) => {
                self.stream = Some(s);
                self.state.lock().unwrap().opened = Some(s);
                if let Some((_, tick)) = self.pace {
                    ctx.set_timer(tick, 0);
                }
                self.pump(ctx);
            }
            Err(e) => {
                self.state.lock().unwrap().error = Some(format!("open: {e}"));
            }
        }
    }
    fn handle_timer(&mut self, ctx: &mut Context<'_>, _: u64) {
        let Some((bytes, tick)) = self.pace else {
            return;
        };
        self.allowance = self.allowance.saturating_add(bytes);
        self.pump(ctx);
        let st = self.state.lock().unwrap();
        if st.written < self.data.len() && st.error.is_none() {
            ctx.set_timer(tick, 0);
        }
    }
    fn handle_stream_writable(&mut self, ctx: &mut Context<'_>, _: StreamRef) {
        self.pump(ctx);
    }
    // The remote's STOP_SENDING used to arrive as `handle_stream_closed(Stopped)`.
    fn handle_stream_stopped(&mut self, ctx: &mut Context<'_>, stream: StreamRef, code: u64) {
        self.handle_stream_closed(ctx, stream, &StreamError::Stopped(code));
    }

    fn handle_stream_closed(&mut self, _: &mut Context<'_>, s: StreamRef, e: &StreamError) {
        if Some(s) == self.stream {
            self.stream = None;
        }
        let mut st = self.state.lock().unwrap();
        if !st.finished || !matches!(e, StreamError::Stopped(_)) {
            st.error.get_or_insert(format!("closed: {e}"));
        }
    }
}

pub struct RecvState {
    pub bytes: usize,
    pub hasher: Sha256,
    pub finished_at: Option<Instant>,
    pub streams: usize,
    pub error: Option<String>,
}

impl RecvState {
    pub fn digest(&self) -> [u8; 32] {
        self.hasher.clone().finalize().into()
    }
}

/// Counts and hashes every byte of inbound bulk streams.
pub struct Receiver {
    pub state: Arc<Mutex<RecvState>>,
}

impl Receiver {
    pub fn new() -> (Self, Arc<Mutex<RecvState>>) {
        let state = Arc::new(Mutex::new(RecvState {
            bytes: 0,
            hasher: Sha256::new(),
            finished_at: None,
            streams: 0,
            error: None,
        }));
        (
            Self {
                state: state.clone(),
            },
            state,
        )
    }
}

impl Protocol for Receiver {
    fn name(&self) -> &'static str {
        "bulk-receiver"
    }
    fn protocol_ids(&self) -> Vec<String> {
        vec![BULK.into()]
    }
    fn accept_inbound_stream(&mut self, _: &mut Context<'_>, _: StreamRef, _: &str) {
        self.state.lock().unwrap().streams += 1;
    }
    fn handle_stream_data(&mut self, _: &mut Context<'_>, _: StreamRef, data: Bytes) {
        let mut st = self.state.lock().unwrap();
        st.bytes += data.len();
        st.hasher.update(&data);
    }
    fn handle_stream_finished(&mut self, ctx: &mut Context<'_>, s: StreamRef) {
        self.state.lock().unwrap().finished_at = Some(ctx.now());
        let _ = ctx.finish(s);
    }
    // The remote's STOP_SENDING used to arrive as `handle_stream_closed(Stopped)`.
    fn handle_stream_stopped(&mut self, ctx: &mut Context<'_>, stream: StreamRef, code: u64) {
        self.handle_stream_closed(ctx, stream, &StreamError::Stopped(code));
    }

    fn handle_stream_closed(&mut self, _: &mut Context<'_>, _: StreamRef, e: &StreamError) {
        self.state
            .lock()
            .unwrap()
            .error
            .get_or_insert(e.to_string());
    }
}

pub const ECHO: &str = "/test/echo/1.0.0";

/// Echoes every byte of inbound echo streams, and finishes when the remote
/// does; used to prove a connection still works after hostile input.
pub struct Echo;

impl Protocol for Echo {
    fn name(&self) -> &'static str {
        "echo"
    }
    fn protocol_ids(&self) -> Vec<String> {
        vec![ECHO.into()]
    }
    fn handle_stream_data(&mut self, ctx: &mut Context<'_>, s: StreamRef, mut data: Bytes) {
        let _ = ctx.write_bytes(s, &mut data);
    }
    fn handle_stream_finished(&mut self, ctx: &mut Context<'_>, s: StreamRef) {
        let _ = ctx.finish(s);
    }
}
