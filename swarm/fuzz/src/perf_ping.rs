//! Target `perf_ping`: arbitrary bytes, chunking and timing into the perf
//! server's header parser and the ping echo state, and arbitrary answers to
//! the ping and perf clients. The parsers are private to `protocols`, so the
//! target drives the real plugins over the virtual network: node 0 runs
//! `PerfServer`, `PerfClient` and `Ping`; node 1 is a scripted peer.
//!
//! Checks: no panic; the connection survives; a ping echo is always an
//! exact prefix of the complete 32-byte frames sent, and all of them once
//! both sides finished; a perf stream the server finishes carries exactly
//! the requested count of zeros, after a complete header; pings answered
//! by pure echo never fail as wrong or unsolicited; a successful perf
//! client run reports what it asked for. Afterwards, with every scripted
//! stream aborted, fresh ping and perf streams are served as on a new
//! connection (no per-peer or per-stream state leaked), and the tables are
//! empty after shutdown.
//!
//! Input: a sequence of operations (at most [`MAX_OPS`]): `0 p` open a ping
//! (even `p`) or perf stream, `1 s len bytes` write to stream `s` (streams
//! are numbered in the order the peer learned of them, the remote's
//! included), `2 s big value` write a perf header (`value` is a u64 if `big`
//! is odd, else a u16), `3 s` finish, `4 s how` reset and/or stop sending,
//! `5 mode` how to answer the remote's ping streams (see `peer::Answer`),
//! `6 t` let `20 t` ms pass, `7 up:u16 down:u16` the victim's perf client
//! starts a run to us, `8 mode delta:u16` how we serve those runs.

use std::time::Duration;

use protocols::perf::{self, PerfClient, PerfRequest, PerfServer, Run, RunResult};
use protocols::ping::{self, Ping, PingConfig, PingError, PingEvent};
use swarm::{PluginId, StreamRef, SwarmConfig};

use crate::input::Input;
use crate::net::{self, Net};
use crate::observe;
use crate::peer::{self, Answer, Peer, Shared};

/// Operations per input.
pub const MAX_OPS: usize = 64;
const VICTIM: usize = 0;
const HOSTILE: usize = 1;
/// We stop reading a stream after this many bytes (perf asks for up to 2^64).
const STOP_AFTER: u64 = 64 * 1024;

fn node_config(n: u8) -> SwarmConfig {
    let mut config = net::config(n);
    config.idle_connection_timeout = Duration::from_secs(24 * 3600);
    config
}

/// How the scripted peer serves the victim's perf client runs.
#[derive(Clone, Copy, Debug)]
enum Serve {
    /// The requested count, after the upload's end.
    Exact,
    /// The requested count plus this many bytes (wrapping), after the end.
    Off(u16),
    /// The requested count as soon as the header is in, without waiting.
    Early,
    /// Nothing.
    Silent,
}

struct Script {
    log: Shared,
    plugin: PluginId,
    serve: Serve,
    served: Vec<StreamRef>,
}

impl Script {
    /// Serve the victim's perf runs that are ready.
    fn tick(&mut self, net: &mut Net) {
        let ready: Vec<(StreamRef, u64)> = {
            let log = self.log.lock();
            log.streams
                .iter()
                .filter(|(s, l)| {
                    l.inbound
                        && l.protocol == perf::PROTOCOL_ID
                        && l.data.len() >= 8
                        && !l.we_aborted
                        && l.closed.is_none()
                        && !self.served.contains(s)
                })
                .filter(|(_, l)| match self.serve {
                    Serve::Early => true,
                    Serve::Exact | Serve::Off(_) => l.finished,
                    Serve::Silent => false,
                })
                .map(|(s, l)| {
                    let header: [u8; 8] = l.data[..8].try_into().expect("8 bytes");
                    (*s, u64::from_be_bytes(header))
                })
                .collect()
        };
        for (s, wanted) in ready {
            self.served.push(s);
            let count = match self.serve {
                Serve::Off(delta) => wanted.wrapping_add(u64::from(delta)),
                _ => wanted,
            }
            .min(STOP_AFTER) as usize;
            let log = &self.log;
            net.swarm(HOSTILE).with_context(self.plugin, |ctx| {
                peer::write(ctx, log, s, &vec![0; count]);
                peer::finish(ctx, log, s);
            });
        }
    }
}

/// The fuzz target's body.
pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let mut net = net::new();
    let (observer, victim_log) = Peer::new(&[]);
    let mut observer_id = None;
    let mut client_id = None;
    net::add_swarm(&mut net, node_config(0), |s| {
        s.add_protocol(Box::new(PerfServer::new()));
        client_id = Some(s.add_protocol(Box::new(PerfClient::new())));
        s.add_protocol(Box::new(Ping::new(PingConfig {
            interval: Duration::from_secs(1),
            timeout: Duration::from_secs(3),
            ping_on_connect: true,
            keep_alive: false,
        })));
        observer_id = Some(s.add_protocol(Box::new(observer)));
    });
    let observer_id = observer_id.expect("plugin id");
    let client_id = client_id.expect("plugin id");
    let (hostile, log) = Peer::new(&[ping::PROTOCOL, perf::PROTOCOL_ID]);
    {
        let mut l = log.lock();
        l.answer_only = Some(ping::PROTOCOL.into());
        l.stop_after = STOP_AFTER;
    }
    let mut plugin = None;
    net::add_swarm(&mut net, node_config(1), |s| {
        plugin = Some(s.add_protocol(Box::new(hostile)))
    });
    let mut script = Script {
        log: log.clone(),
        plugin: plugin.expect("plugin id"),
        serve: Serve::Exact,
        served: Vec::new(),
    };
    let victim_addr = net.dial_addr(VICTIM);
    net.swarm(HOSTILE).dial(&victim_addr, false).expect("dial");
    let up = net
        .run_until(Duration::from_secs(5), |_| {
            !log.lock().conns.is_empty() && !victim_log.lock().conns.is_empty()
        })
        .is_done();
    assert!(up, "no connection");
    let conn = log.lock().conns[0].0;

    let mut pure_echo = true;
    let mut runs: Vec<(u64, u64, Run)> = Vec::new();
    let pick = |input: &mut Input<'_>| {
        let log = log.lock();
        let i = input.below(log.order.len());
        log.order.get(i).copied()
    };
    for _ in 0..MAX_OPS {
        if input.is_empty() {
            break;
        }
        let op = input.u8() % 9;
        observe::note(|| format!("op {op}"));
        let id = script.plugin;
        match op {
            0 => {
                let protocol = [ping::PROTOCOL, perf::PROTOCOL_ID][usize::from(input.u8() % 2)];
                net.swarm(HOSTILE)
                    .with_context(id, |ctx| peer::open(ctx, &log, conn, protocol));
            }
            1..=4 => {
                let Some(s) = pick(&mut input) else { continue };
                let inbound_ping = {
                    let l = log.lock();
                    l.streams[&s].inbound && l.streams[&s].protocol == ping::PROTOCOL
                };
                pure_echo &= !inbound_ping;
                let swarm = net.swarm(HOSTILE);
                match op {
                    1 => {
                        let bytes = input.short_bytes();
                        swarm.with_context(id, |ctx| peer::write(ctx, &log, s, bytes));
                    }
                    2 => {
                        let value = if input.bool() {
                            input.u64()
                        } else {
                            u64::from(input.u16())
                        };
                        swarm.with_context(id, |ctx| {
                            peer::write(ctx, &log, s, &value.to_be_bytes())
                        });
                    }
                    3 => swarm.with_context(id, |ctx| peer::finish(ctx, &log, s)),
                    _ => {
                        let how = input.u8() % 3;
                        swarm.with_context(id, |ctx| {
                            if how != 1 {
                                let _ = ctx.reset(s, 5);
                            }
                            if how != 0 {
                                let _ = ctx.stop_sending(s, 6);
                            }
                        });
                        log.lock().streams.get_mut(&s).expect("known").we_aborted = true;
                    }
                }
            }
            5 => {
                let answer = Answer::from_byte(input.u8());
                pure_echo &= !matches!(answer, Answer::Corrupt | Answer::Extra);
                observe::note(|| format!("answer {answer:?}"));
                log.lock().answer = answer;
            }
            6 => {
                let d = Duration::from_millis(20 * u64::from(input.u8()));
                net.run_until(d, |net| {
                    script.tick(net);
                    false
                });
            }
            7 => {
                let upload = u64::from(input.u16() % 4096);
                let download = u64::from(input.u16());
                let (request, run) = PerfRequest::new(net::peer_id(1), upload, download);
                net.swarm(VICTIM)
                    .with_context(observer_id, |ctx| ctx.send_message(client_id, request));
                runs.push((upload, download, run));
            }
            _ => {
                script.serve = match input.u8() % 4 {
                    0 => Serve::Exact,
                    1 => Serve::Off(input.u16()),
                    2 => Serve::Early,
                    _ => Serve::Silent,
                };
                observe::note(|| format!("serve {}", observe::shape(&script.serve)));
            }
        }
        script.tick(&mut net);
    }
    net.run_until(Duration::from_secs(10), |net| {
        script.tick(net);
        false
    });

    let victim_peer = net::peer_id(0);
    let hostile_peer = net::peer_id(1);
    assert_eq!(
        net.swarm(VICTIM).connections_to(&hostile_peer).len(),
        1,
        "perf or ping input closed the connection"
    );
    assert_eq!(net.swarm(HOSTILE).connections_to(&victim_peer).len(), 1);
    let results: Vec<_> = runs
        .iter()
        .map(|(up, down, run)| (*up, *down, run.wait_timeout(Duration::ZERO)))
        .collect();
    note_outcomes(&log, &victim_log, &results);
    check_streams(&log);
    check_events(&victim_log, pure_echo);
    for (upload, download, result) in &results {
        if let Some(Ok(report)) = result {
            assert_eq!(
                (report.bytes_up, report.bytes_down),
                (*upload, *download),
                "a successful perf run with other counts than asked"
            );
        }
    }

    // Abort everything the script left open; then the victim must serve
    // fresh streams as on a new connection.
    let open: Vec<StreamRef> = log
        .lock()
        .streams
        .iter()
        .filter(|(_, l)| l.closed.is_none() && !l.we_aborted)
        .map(|(s, _)| *s)
        .collect();
    net.swarm(HOSTILE).with_context(script.plugin, |ctx| {
        for s in open {
            peer::abort(ctx, &log, s, 8);
        }
    });
    log.lock().answer = Answer::Echo;
    net.run_for(Duration::from_secs(2));
    probe(&mut net, &log, script.plugin, conn);
    net::shutdown_and_check_empty(&mut net);
}

/// Record what happened (see `observe`).
fn note_outcomes(log: &Shared, victim_log: &Shared, runs: &[(u64, u64, Option<RunResult>)]) {
    for l in log.lock().streams.values() {
        observe::note(|| {
            let closed = l.closed.as_ref().map(observe::shape);
            format!(
                "stream {} in={} fin={} wefin={} aborted={} tampered={} closed={closed:?}",
                l.protocol, l.inbound, l.finished, l.we_finished, l.we_aborted, l.tampered
            )
        });
    }
    for event in &victim_log.lock().events {
        if let Some(p) = event.downcast_ref::<PingEvent>() {
            observe::note(|| format!("ping {}", observe::shape(&p.result)));
        }
        if let Some(e) = event.downcast_ref::<perf::PerfServerEvent>() {
            observe::note(|| match e {
                perf::PerfServerEvent::Finished { .. } => "perf server finished".into(),
                perf::PerfServerEvent::Failed { error, .. } => {
                    format!("perf server failed {}", observe::shape(error))
                }
            });
        }
    }
    for (_, _, result) in runs {
        let result = result.as_ref().map(|r| r.as_ref().map(|_| ()));
        observe::note(|| format!("run {}", observe::shape(&result)));
    }
}

/// What the scripted peer saw on its own streams must fit the protocols.
fn check_streams(log: &Shared) {
    let log = log.lock();
    for (s, l) in &log.streams {
        if l.inbound {
            continue;
        }
        let (w, r) = (&l.written, &l.data);
        if l.protocol == ping::PROTOCOL {
            let frames = w.len() / ping::PAYLOAD_LEN * ping::PAYLOAD_LEN;
            assert!(r.len() <= frames, "{s}: echo of an incomplete frame");
            assert_eq!(&w[..r.len()], &r[..], "{s}: echo differs from the ping");
            let clean = l.we_finished && l.finished && !l.we_aborted && l.closed.is_none();
            if clean {
                assert_eq!(r.len(), frames, "{s}: echo incomplete at the end of stream");
            }
        } else if l.finished && !l.we_aborted {
            assert!(l.we_finished, "{s}: perf server answered before our end");
            assert!(w.len() >= 8, "{s}: perf server answered a truncated header");
            let wanted = u64::from_be_bytes(w[..8].try_into().expect("8 bytes"));
            assert_eq!(l.received, wanted, "{s}: perf server sent a wrong count");
            assert!(r.iter().all(|b| *b == 0), "{s}: perf server sent non-zeros");
        } else if l.we_finished && w.len() < 8 && !l.we_aborted {
            assert!(!l.finished, "{s}: truncated header served");
        }
    }
}

/// The victim's events must fit what the script did.
fn check_events(victim_log: &Shared, pure_echo: bool) {
    for event in &victim_log.lock().events {
        if let Some(PingEvent {
            result: Err(e @ (PingError::WrongEcho | PingError::Unsolicited)),
            ..
        }) = event.downcast_ref::<PingEvent>()
        {
            assert!(!pure_echo, "ping failed with {e} against a pure echo");
        }
    }
}

/// Two fresh ping streams are echoed and a fresh perf run is served.
fn probe(net: &mut Net, log: &Shared, plugin: PluginId, conn: swarm::ConnId) {
    let ping_payload = [0x42u8; ping::PAYLOAD_LEN];
    let streams = net.swarm(HOSTILE).with_context(plugin, |ctx| {
        let mut streams = Vec::new();
        for protocol in [ping::PROTOCOL, ping::PROTOCOL, perf::PROTOCOL_ID] {
            let s = peer::open(ctx, log, conn, protocol).expect("open a probe stream");
            let data = if protocol == ping::PROTOCOL {
                ping_payload.to_vec()
            } else {
                1000u64.to_be_bytes().to_vec()
            };
            peer::write(ctx, log, s, &data);
            peer::finish(ctx, log, s);
            streams.push(s);
        }
        streams
    });
    let done = net
        .run_until(Duration::from_secs(5), |_| {
            let log = log.lock();
            streams
                .iter()
                .all(|s| log.streams[s].finished || log.streams[s].closed.is_some())
        })
        .is_done();
    let log = log.lock();
    for s in &streams {
        let l = &log.streams[s];
        assert!(done && l.finished, "{s}: probe not served: {l:?}");
        let expected = if l.protocol == ping::PROTOCOL {
            32
        } else {
            1000
        };
        assert_eq!(l.received, expected, "{s}: probe answered wrongly");
    }
}

fn op(bytes: &[&[u8]]) -> Vec<u8> {
    bytes.concat()
}

/// Inputs worth starting from.
pub fn seeds() -> Vec<Vec<u8>> {
    let ping32: Vec<u8> = (0..32).collect();
    let mut seeds = vec![
        // A ping stream: one frame whole, one split, one half frame.
        op(&[
            &[0, 0, 1, 0, 32],
            &ping32,
            &[6, 10, 1, 0, 20],
            &ping32[..20],
            &[6, 5],
        ]),
        op(&[
            &[1, 0, 12],
            &ping32[20..],
            &[1, 0, 10],
            &ping32[..10],
            &[3, 0, 6, 50],
        ]),
        // A perf stream: a header for 100 bytes, an upload, the end.
        op(&[&[0, 1, 2, 0, 0, 100, 0, 1, 0, 3, 1, 2, 3, 3, 0, 6, 50]]),
        // A perf header cut short.
        op(&[&[0, 1, 1, 0, 3, 0, 0, 1, 3, 0, 6, 50]]),
        // A perf header split, a huge request.
        op(&[&[
            0, 1, 1, 0, 4, 0, 0, 0, 0, 6, 5, 1, 0, 4, 0, 0, 1, 0, 3, 0, 6, 100,
        ]]),
        op(&[&[0, 1, 2, 0, 1], &u64::MAX.to_le_bytes(), &[3, 0, 6, 100]]),
        // Three ping streams at once (the third is refused).
        op(&[&[0, 0, 0, 0, 0, 0, 6, 10, 1, 2, 32], &ping32, &[6, 10]]),
        // Answer the victim's pings by echo, corrupt, extra, or not at all.
        op(&[&[5, 1, 6, 200, 6, 200]]),
        op(&[&[5, 2, 6, 200]]),
        op(&[&[5, 3, 6, 200]]),
        op(&[&[5, 4, 6, 200, 5, 5, 6, 200]]),
        op(&[&[6, 255, 6, 255]]),
        // The victim's perf client against exact, wrong, early and silent service.
        op(&[&[5, 1, 7, 10, 0, 100, 0, 6, 100]]),
        op(&[&[5, 1, 8, 1, 1, 0, 7, 10, 0, 100, 0, 6, 100]]),
        op(&[&[5, 1, 8, 2, 7, 0, 8, 100, 0, 6, 100]]),
        op(&[&[5, 1, 8, 3, 7, 10, 0, 100, 0, 6, 255]]),
        // Reset and stop a ping and a perf stream mid-way.
        op(&[
            &[0, 0, 0, 1, 1, 0, 16],
            &ping32[..16],
            &[4, 0, 0, 2, 1, 0, 0, 0, 4, 1, 1, 6, 20],
        ]),
    ];
    seeds.push(op(&[&[0, 0, 1, 0, 255], &[7; 255], &[3, 0, 6, 100]]));
    seeds
}
