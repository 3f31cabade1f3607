//! Unit tests of the Yamux session: two sessions wired back to back, and
//! hand-made hostile frames.

use std::time::{Duration, Instant};

use super::frame::{Flags, FrameType, HEADER_LEN, Header, go_away_code};
use super::*;

fn pair() -> (Session, Session) {
    (
        Session::new(Mode::Client, YamuxConfig::default()),
        Session::new(Mode::Server, YamuxConfig::default()),
    )
}

/// Move everything queued from `a` to `b`.
fn pump(a: &mut Session, b: &mut Session, now: Instant) {
    let bytes = a.take_outbound();
    b.feed(&bytes, now).expect("valid frames");
}

fn events(s: &mut Session) -> Vec<Event> {
    std::iter::from_fn(|| s.poll_event()).collect()
}

fn read_all(s: &mut Session, id: u32, now: Instant) -> (Vec<u8>, Read) {
    let mut got = Vec::new();
    loop {
        match s.read(id, usize::MAX, now) {
            Read::Data(d) => got.extend_from_slice(&d),
            end => return (got, end),
        }
    }
}

fn frame(kind: FrameType, flags: Flags, stream: u32, length: u32) -> Vec<u8> {
    let mut out = Vec::new();
    Header::new(kind, flags, stream, length).encode(&mut out);
    out
}

/// Split `bytes` into the frame headers it holds.
fn headers(bytes: &[u8]) -> Vec<Header> {
    let mut out = Vec::new();
    let mut rest = bytes;
    while rest.len() >= HEADER_LEN {
        let h = Header::decode(rest[..HEADER_LEN].try_into().unwrap()).unwrap();
        let body = if h.kind == FrameType::Data {
            h.length as usize
        } else {
            0
        };
        rest = &rest[HEADER_LEN + body..];
        out.push(h);
    }
    out
}

#[test]
fn stream_carries_data_both_ways_then_fin() {
    let now = Instant::now();
    let (mut c, mut s) = pair();
    let id = c.open_stream(now).unwrap();
    assert_eq!(id % 2, 1, "clients open odd ids");
    assert_eq!(c.write(id, b"hello").unwrap(), 5);
    c.finish(id).unwrap();
    pump(&mut c, &mut s, now);
    assert!(events(&mut s).contains(&Event::InboundStream));
    assert_eq!(s.accept_stream(), Some(id));
    assert_eq!(read_all(&mut s, id, now), (b"hello".to_vec(), Read::Fin));
    s.write(id, b"world").unwrap();
    s.finish(id).unwrap();
    pump(&mut s, &mut c, now);
    assert_eq!(read_all(&mut c, id, now), (b"world".to_vec(), Read::Fin));
    assert_eq!(
        (c.stream_count(), s.stream_count()),
        (0, 0),
        "both sides forgot it"
    );
}

#[test]
fn ack_and_fin_travel_in_separate_frames() {
    let now = Instant::now();
    let (mut c, mut s) = pair();
    let id = c.open_stream(now).unwrap();
    let syn = c.take_outbound();
    assert_eq!(
        headers(&syn),
        [Header::new(FrameType::WindowUpdate, Flags::SYN, id, 0)]
    );
    s.feed(&syn, now).unwrap();
    s.accept_stream().unwrap();
    s.finish(id).unwrap();
    s.reset(id);
    let hs = headers(&s.take_outbound());
    assert_eq!(hs.len(), 3);
    assert_eq!(hs[0].flags, Flags::ACK, "the ACK carries no other flag");
    assert_eq!(hs[1].flags, Flags::FIN);
    assert_eq!(hs[2].flags, Flags::RST);
}

#[test]
fn slow_reader_bounds_the_buffer_to_one_window_then_gets_every_byte_in_order() {
    let now = Instant::now();
    let (mut c, mut s) = pair();
    let id = c.open_stream(now).unwrap();
    pump(&mut c, &mut s, now);
    s.accept_stream().unwrap();
    pump(&mut s, &mut c, now);
    let data: Vec<u8> = (0..2_000_000u32).map(|i| (i % 251) as u8).collect();
    let mut sent = 0;
    let mut received = Vec::new();
    for round in 0..1_000 {
        sent += c.write(id, &data[sent..]).unwrap();
        pump(&mut c, &mut s, now);
        // The reader is slow: it reads only every tenth round. Until it
        // does, the buffer stays within one window.
        if round % 10 == 9 {
            received.extend(read_all(&mut s, id, now).0);
            pump(&mut s, &mut c, now);
        }
        assert!(s.outbound_len() == 0);
        if received.len() == data.len() {
            break;
        }
        assert!(
            sent - received.len() <= DEFAULT_WINDOW as usize,
            "unread bytes beyond the window"
        );
    }
    assert_eq!(received, data);
}

#[test]
fn window_grows_when_the_reader_keeps_up_within_two_round_trips() {
    let t0 = Instant::now();
    let (mut c, mut s) = pair();
    // The server measures an RTT of 10 ms.
    s.ping(t0);
    pump(&mut s, &mut c, t0);
    pump(&mut c, &mut s, t0 + Duration::from_millis(10));
    assert_eq!(s.rtt(), Some(Duration::from_millis(10)));
    let id = c.open_stream(t0).unwrap();
    pump(&mut c, &mut s, t0);
    s.accept_stream().unwrap();
    pump(&mut s, &mut c, t0);
    let data = vec![7u8; 4 << 20];
    let mut sent = 0;
    let mut max_in_flight = 0;
    for _ in 0..100 {
        let n = c.write(id, &data[sent..]).unwrap();
        sent += n;
        max_in_flight = max_in_flight.max(n);
        pump(&mut c, &mut s, t0);
        // Reads within the same instant: a fast reader.
        read_all(&mut s, id, t0);
        pump(&mut s, &mut c, t0);
        if sent == data.len() {
            break;
        }
    }
    assert_eq!(sent, data.len());
    assert!(
        max_in_flight > DEFAULT_WINDOW as usize,
        "window never grew: {max_in_flight}"
    );
}

#[test]
fn data_beyond_the_window_resets_only_that_stream() {
    let now = Instant::now();
    let (mut c, mut s) = pair();
    let a = c.open_stream(now).unwrap();
    let b = c.open_stream(now).unwrap();
    pump(&mut c, &mut s, now);
    let _ = (s.accept_stream(), s.accept_stream());
    events(&mut s);
    // A hostile frame: one byte more than the 256 KiB window.
    let mut hostile = frame(FrameType::Data, Flags::NONE, a, DEFAULT_WINDOW + 1);
    hostile.extend(vec![0u8; DEFAULT_WINDOW as usize + 1]);
    s.feed(&hostile, now)
        .expect("a stream error, not a session error");
    let evs = events(&mut s);
    assert!(
        evs.contains(&Event::StreamFailed(StreamError::WindowExceeded {
            id: a,
            len: DEFAULT_WINDOW + 1,
            window: DEFAULT_WINDOW,
        }))
    );
    assert_eq!(s.read(a, 10, now), Read::Reset);
    assert_eq!(s.stats().window_violations, 1);
    let out = s.take_outbound();
    assert!(
        headers(&out)
            .iter()
            .any(|h| h.stream == a && h.flags == Flags::RST)
    );
    // The other stream still works.
    c.write(b, b"still here").unwrap();
    pump(&mut c, &mut s, now);
    assert_eq!(s.read(b, 100, now), Read::Data("still here".into()));
}

#[test]
fn open_flood_beyond_the_stream_limit_is_reset_and_the_rest_runs() {
    let now = Instant::now();
    let config = YamuxConfig {
        max_streams: 8,
        ..YamuxConfig::default()
    };
    let mut s = Session::new(Mode::Server, config);
    let mut flood = Vec::new();
    for i in 0..100u32 {
        flood.extend(frame(FrameType::WindowUpdate, Flags::SYN, 2 * i + 1, 0));
    }
    s.feed(&flood, now).expect("refusals are per stream");
    assert_eq!(s.stream_count(), 8);
    assert_eq!(s.stats().refused_inbound, 92);
    let evs = events(&mut s);
    assert!(evs.contains(&Event::StreamFailed(StreamError::Refused(17))));
    let resets = headers(&s.take_outbound())
        .into_iter()
        .filter(|h| h.flags == Flags::RST)
        .count();
    assert_eq!(resets, 92);
    // The accepted streams work.
    assert_eq!(s.accept_stream(), Some(1));
    let mut data = frame(FrameType::Data, Flags::NONE, 1, 3);
    data.extend(b"abc");
    s.feed(&data, now).unwrap();
    assert_eq!(s.read(1, 10, now), Read::Data("abc".into()));
}

#[test]
fn unacknowledged_opens_are_bounded() {
    let now = Instant::now();
    let config = YamuxConfig {
        max_ack_backlog: 4,
        ..YamuxConfig::default()
    };
    let mut c = Session::new(Mode::Client, config);
    let mut s = Session::new(Mode::Server, YamuxConfig::default());
    for _ in 0..4 {
        c.open_stream(now).unwrap();
    }
    assert_eq!(c.open_stream(now), Err(OpenError::AckBacklog));
    pump(&mut c, &mut s, now);
    s.accept_stream().unwrap();
    pump(&mut s, &mut c, now);
    c.open_stream(now).expect("one ACK frees one slot");
}

#[test]
fn frame_for_an_unknown_stream_is_dropped_and_counted() {
    let now = Instant::now();
    let mut s = Session::new(Mode::Server, YamuxConfig::default());
    let mut bytes = frame(FrameType::Data, Flags::NONE, 41, 5);
    bytes.extend(b"ghost");
    bytes.extend(frame(FrameType::WindowUpdate, Flags::NONE, 43, 100));
    bytes.extend(frame(FrameType::WindowUpdate, Flags::SYN, 45, 0));
    s.feed(&bytes, now).unwrap();
    assert_eq!(s.stats().unknown_stream_frames, 2);
    assert_eq!(
        s.accept_stream(),
        Some(45),
        "the session still parses frames after them"
    );
}

#[test]
fn length_beyond_any_window_ends_the_session_with_a_typed_error() {
    let now = Instant::now();
    let mut s = Session::new(Mode::Server, YamuxConfig::default());
    s.feed(&frame(FrameType::WindowUpdate, Flags::SYN, 1, 0), now)
        .unwrap();
    let err = s
        .feed(&frame(FrameType::Data, Flags::NONE, 1, u32::MAX), now)
        .unwrap_err();
    assert_eq!(
        err,
        ConnectionError::FrameTooLarge {
            len: u32::MAX,
            max: YamuxConfig::default().max_stream_window,
        }
    );
    assert!(s.is_failed());
    let out = s.take_outbound();
    assert!(headers(&out).contains(&Header::new(
        FrameType::GoAway,
        Flags::NONE,
        0,
        go_away_code::PROTOCOL_ERROR
    )));
    assert!(matches!(s.feed(b"x", now), Err(ConnectionError::Failed(_))));
}

#[test]
fn malformed_headers_and_id_misuse_end_the_session() {
    let now = Instant::now();
    let cases: Vec<(Vec<u8>, ConnectionError)> = vec![
        (vec![1; HEADER_LEN], frame::HeaderError::Version(1).into()),
        (
            frame(FrameType::WindowUpdate, Flags::SYN, 2, 0),
            ConnectionError::WrongParity(2),
        ),
        (
            frame(FrameType::Data, Flags::NONE, 0, 0),
            ConnectionError::WrongStreamId("stream"),
        ),
        (
            frame(FrameType::Ping, Flags::SYN, 3, 0),
            ConnectionError::WrongStreamId("ping"),
        ),
    ];
    for (bytes, want) in cases {
        let mut s = Session::new(Mode::Server, YamuxConfig::default());
        assert_eq!(s.feed(&bytes, now), Err(want));
    }
    let mut s = Session::new(Mode::Server, YamuxConfig::default());
    let syn = frame(FrameType::WindowUpdate, Flags::SYN, 1, 0);
    s.feed(&syn, now).unwrap();
    assert_eq!(s.feed(&syn, now), Err(ConnectionError::DuplicateStream(1)));
}

#[test]
fn fin_on_a_data_frame_split_across_feeds_comes_after_its_payload() {
    let now = Instant::now();
    let mut s = Session::new(Mode::Server, YamuxConfig::default());
    let mut bytes = frame(FrameType::WindowUpdate, Flags::SYN, 1, 0);
    bytes.extend(frame(FrameType::Data, Flags::FIN, 1, 6));
    bytes.extend(b"abcdef");
    // Byte by byte, reading after each: never a FIN before the data.
    let mut got = Vec::new();
    let mut fin = false;
    let mut open = false;
    for b in &bytes {
        s.feed(std::slice::from_ref(b), now).unwrap();
        open |= s.accept_stream().is_some();
        if !open {
            continue;
        }
        match s.read(1, 100, now) {
            Read::Data(d) => got.extend_from_slice(&d),
            Read::Fin => {
                fin = true;
                break;
            }
            Read::Blocked => {}
            Read::Reset => panic!("reset"),
        }
    }
    if !fin {
        assert_eq!(s.read(1, 100, now), Read::Fin);
    }
    assert_eq!(got, b"abcdef");
}

#[test]
fn remote_reset_is_reported_and_writes_fail() {
    let now = Instant::now();
    let (mut c, mut s) = pair();
    let id = c.open_stream(now).unwrap();
    pump(&mut c, &mut s, now);
    s.accept_stream().unwrap();
    s.reset(id);
    pump(&mut s, &mut c, now);
    assert!(events(&mut c).contains(&Event::Reset(id)));
    assert_eq!(c.write(id, b"x"), Err(WriteError::Reset));
    assert_eq!(c.read(id, 1, now), Read::Reset);
}

#[test]
fn go_away_stops_new_streams_but_not_open_ones() {
    let now = Instant::now();
    let (mut c, mut s) = pair();
    let id = c.open_stream(now).unwrap();
    pump(&mut c, &mut s, now);
    s.accept_stream().unwrap();
    s.go_away(go_away_code::NORMAL);
    pump(&mut s, &mut c, now);
    assert!(events(&mut c).contains(&Event::GoAway(go_away_code::NORMAL)));
    assert_eq!(c.open_stream(now), Err(OpenError::GoingAway));
    c.write(id, b"ok").unwrap();
    pump(&mut c, &mut s, now);
    assert_eq!(s.read(id, 10, now), Read::Data("ok".into()));
}

#[test]
fn writes_beyond_the_outbound_buffer_wait_for_the_driver() {
    let now = Instant::now();
    let config = YamuxConfig {
        max_outbound_buffer: 1000,
        ..YamuxConfig::default()
    };
    let mut c = Session::new(Mode::Client, config);
    let id = c.open_stream(now).unwrap();
    let n = c.write(id, &[1u8; 5000]).unwrap();
    assert!(n < 1000, "wrote {n}");
    assert_eq!(c.write(id, &[1u8; 10]).unwrap(), 0);
    let _ = c.take_outbound();
    assert_eq!(c.poll_event(), Some(Event::Writable(id)));
}

#[test]
fn window_grows_on_a_tiny_rtt_when_updates_come_within_the_floor_but_not_for_a_pausing_reader() {
    // RTT 10 µs (loopback): without the 2 ms floor no update could come
    // fast enough to count. A reader pausing 50 ms between reads never
    // grows its window.
    for (pause, expect_growth) in [
        (Duration::from_micros(500), true),
        (Duration::from_millis(50), false),
    ] {
        let t0 = Instant::now();
        let (mut c, mut s) = pair();
        s.ping(t0);
        pump(&mut s, &mut c, t0);
        pump(&mut c, &mut s, t0 + Duration::from_micros(10));
        let id = c.open_stream(t0).unwrap();
        pump(&mut c, &mut s, t0);
        s.accept_stream().unwrap();
        pump(&mut s, &mut c, t0);
        let data = vec![1u8; 4 << 20];
        let (mut sent, mut max_in_flight, mut now) = (0, 0, t0);
        for _ in 0..200 {
            let n = c.write(id, &data[sent..]).unwrap();
            sent += n;
            max_in_flight = max_in_flight.max(n);
            pump(&mut c, &mut s, now);
            now += pause;
            read_all(&mut s, id, now);
            pump(&mut s, &mut c, now);
            if sent == data.len() {
                break;
            }
        }
        assert_eq!(
            max_in_flight > DEFAULT_WINDOW as usize,
            expect_growth,
            "pause {pause:?}: largest flight {max_in_flight}"
        );
    }
}
