//! Streams opened while the connection's send window is used up: their
//! multistream-select messages wait for room, ahead of their data, instead
//! of killing the stream (a bug the plugin_api fuzz target found: such a
//! stream died at once with `StreamError::SendClosed`).

mod common;

use std::collections::HashMap;
use std::sync::{Arc, Mutex};
use std::time::{Duration, Instant};

use common::*;
use swarm::{Bytes, ConnId, Context, PeerId, Protocol, StreamError, StreamRef};

const SINK: &str = "/test/sink/1.0.0";
/// Far more than the writer's send window, so the first stream fills it.
const BULK: usize = 256 * 1024;
/// The writer's send window: small, so one write fills it.
const SEND_WINDOW: u64 = 32 * 1024;

/// What the sink received, per stream, and which streams ended cleanly.
#[derive(Default)]
struct Received {
    bytes: HashMap<StreamRef, Vec<u8>>,
    finished: Vec<StreamRef>,
}

/// Accepts `SINK` streams and keeps everything they carry.
struct Sink(Arc<Mutex<Received>>);

impl Protocol for Sink {
    fn name(&self) -> &'static str {
        "sink"
    }
    fn protocol_ids(&self) -> Vec<String> {
        vec![SINK.into()]
    }
    fn handle_stream_data(&mut self, _: &mut Context<'_>, stream: StreamRef, data: Bytes) {
        let mut r = self.0.lock().unwrap();
        r.bytes.entry(stream).or_default().extend_from_slice(&data);
    }
    fn handle_stream_finished(&mut self, _: &mut Context<'_>, stream: StreamRef) {
        self.0.lock().unwrap().finished.push(stream);
    }
}

/// What the writer saw go wrong.
#[derive(Default)]
struct WriterLog {
    closed: Vec<(StreamRef, String)>,
}

/// On a new connection, in one callback: opens a stream and writes `BULK`
/// bytes (the send window takes only part), then at once opens a second
/// stream and writes a short message. Each stream finishes once all of its
/// bytes are taken.
struct Writer {
    log: Arc<Mutex<WriterLog>>,
    left: HashMap<StreamRef, Bytes>,
}

impl Writer {
    fn push(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        let Some(data) = self.left.get_mut(&stream) else {
            return;
        };
        match ctx.write_bytes(stream, data) {
            Ok(_) if data.is_empty() => {
                self.left.remove(&stream);
                ctx.finish(stream).expect("finish");
            }
            Ok(_) => {} // `handle_stream_writable` follows.
            Err(e) => panic!("write on {stream}: {e}"),
        }
    }
}

impl Protocol for Writer {
    fn name(&self) -> &'static str {
        "writer"
    }
    fn handle_new_connection(&mut self, ctx: &mut Context<'_>, conn: ConnId, _: PeerId) {
        let first = ctx.open_stream(conn, SINK).expect("open the first stream");
        self.left.insert(first, Bytes::from(pattern(BULK)));
        self.push(ctx, first);
        assert!(
            self.left.contains_key(&first),
            "the send window took all {BULK} bytes: the test needs it full"
        );
        // The window is full now: this stream's negotiation cannot go out yet.
        let second = ctx.open_stream(conn, SINK).expect("open the second stream");
        self.left
            .insert(second, Bytes::from_static(b"after a full window"));
        self.push(ctx, second);
    }
    fn handle_stream_writable(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        self.push(ctx, stream);
    }
    // The remote's STOP_SENDING used to arrive as `handle_stream_closed(Stopped)`.
    fn handle_stream_stopped(&mut self, ctx: &mut Context<'_>, stream: StreamRef, code: u64) {
        self.handle_stream_closed(ctx, stream, &StreamError::Stopped(code));
    }

    fn handle_stream_closed(&mut self, _: &mut Context<'_>, stream: StreamRef, e: &StreamError) {
        self.log
            .lock()
            .unwrap()
            .closed
            .push((stream, e.to_string()));
    }
}

#[test]
fn a_stream_opened_while_the_send_window_is_full_waits_and_delivers() {
    let received = Arc::new(Mutex::new(Received::default()));
    let sink = node(config(71), vec![Box::new(Sink(received.clone()))]);
    let log = Arc::new(Mutex::new(WriterLog::default()));
    let mut writer_config = config(72);
    writer_config.send_window = SEND_WINDOW;
    let writer = node(
        writer_config,
        vec![Box::new(Writer {
            log: log.clone(),
            left: HashMap::new(),
        })],
    );
    writer
        .handle
        .dial(&sink.p2p_addr(), false, TIMEOUT)
        .expect("dial succeeds");

    let deadline = Instant::now() + TIMEOUT;
    while received.lock().unwrap().finished.len() < 2 && Instant::now() < deadline {
        assert!(
            log.lock().unwrap().closed.is_empty(),
            "writer streams died: {:?}",
            log.lock().unwrap().closed
        );
        std::thread::sleep(Duration::from_millis(10));
    }
    let r = received.lock().unwrap();
    assert_eq!(r.finished.len(), 2, "both streams end cleanly");
    let mut contents: Vec<&Vec<u8>> = r.finished.iter().map(|s| &r.bytes[s]).collect();
    contents.sort_by_key(|c| c.len());
    assert_eq!(contents[0].as_slice(), b"after a full window");
    assert_eq!(*contents[1], pattern(BULK));
    assert!(log.lock().unwrap().closed.is_empty());
}
