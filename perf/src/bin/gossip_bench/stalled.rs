//! The stalled peer: a separate process (this binary with
//! `--stalled-child ADDR`, so that its buffers are not in the measured
//! process's RSS) that dials node 0, subscribes, waits until node 0 is in
//! its mesh, then stops reading its inbound gossipsub streams. Its swarm
//! keeps running, so QUIC keeps acknowledging and the connection stays up,
//! but once the stream's receive window is full flow control stops node
//! 0's writes to it. rust-libp2p's side gets the same effect by no longer
//! polling its swarm while the QUIC driver runs on.
//!
//! The switch is [`PauseSwitch`], a plugin that wraps our gossipsub plugin
//! and passes every callback through; on [`Pause`] it calls
//! `Context::set_reading(stream, false)` on the inbound streams.

use std::collections::BTreeSet;
use std::io::{BufRead, BufReader, Read, Write};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use protocols::gossipsub::Gossipsub;
use swarm::{
    Bytes, ConnId, Context, DialError, Message, Multiaddr, PeerId, Protocol, ProtocolEvent,
    StreamError, StreamRef,
};

use crate::TOPIC;
use crate::node::Node;

/// Bound on the child's set-up (dial, subscribe, mesh).
const CHILD_SETUP: Duration = Duration::from_secs(20);
/// Bound on one call to a swarm.
const CALL: Duration = Duration::from_secs(10);

/// The command that stops the stalled peer's reading.
struct Pause;

/// Our gossipsub plugin with a switch that stops reading its inbound
/// streams (the stalled peer only; benchmark nodes run the plugin bare).
struct PauseSwitch {
    inner: Gossipsub,
    inbound: BTreeSet<StreamRef>,
    paused: bool,
}

impl Protocol for PauseSwitch {
    fn name(&self) -> &'static str {
        self.inner.name()
    }
    fn protocol_ids(&self) -> Vec<String> {
        self.inner.protocol_ids()
    }
    fn on_start(&mut self, ctx: &mut Context<'_>) {
        self.inner.on_start(ctx)
    }
    fn handle_new_connection(&mut self, ctx: &mut Context<'_>, conn: ConnId, peer: PeerId) {
        self.inner.handle_new_connection(ctx, conn, peer)
    }
    fn handle_closed_connection(&mut self, ctx: &mut Context<'_>, conn: ConnId, peer: PeerId) {
        self.inbound.retain(|s| s.conn != conn);
        self.inner.handle_closed_connection(ctx, conn, peer)
    }
    fn handle_dial_failure(&mut self, ctx: &mut Context<'_>, conn: ConnId, error: &DialError) {
        self.inner.handle_dial_failure(ctx, conn, error)
    }
    fn accept_inbound_stream(&mut self, ctx: &mut Context<'_>, stream: StreamRef, protocol: &str) {
        self.inbound.insert(stream);
        self.inner.accept_inbound_stream(ctx, stream, protocol);
        if self.paused {
            let _ = ctx.set_reading(stream, false);
        }
    }
    fn handle_stream_negotiated(&mut self, ctx: &mut Context<'_>, s: StreamRef, protocol: &str) {
        self.inner.handle_stream_negotiated(ctx, s, protocol)
    }
    fn handle_stream_data(&mut self, ctx: &mut Context<'_>, stream: StreamRef, data: Bytes) {
        self.inner.handle_stream_data(ctx, stream, data)
    }
    fn handle_stream_writable(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        self.inner.handle_stream_writable(ctx, stream)
    }
    fn handle_stream_finished(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        self.inbound.remove(&stream);
        self.inner.handle_stream_finished(ctx, stream)
    }
    fn handle_stream_closed(&mut self, ctx: &mut Context<'_>, s: StreamRef, why: &StreamError) {
        self.inbound.remove(&s);
        self.inner.handle_stream_closed(ctx, s, why)
    }
    fn handle_stream_stopped(&mut self, ctx: &mut Context<'_>, stream: StreamRef, code: u64) {
        self.inner.handle_stream_stopped(ctx, stream, code)
    }
    fn handle_timer(&mut self, ctx: &mut Context<'_>, token: u64) {
        self.inner.handle_timer(ctx, token)
    }
    fn handle_protocol_event(&mut self, ctx: &mut Context<'_>, event: &ProtocolEvent) {
        self.inner.handle_protocol_event(ctx, event)
    }
    fn handle_message(&mut self, ctx: &mut Context<'_>, message: Message) {
        match message.downcast::<Pause>() {
            Ok(_) => {
                self.paused = true;
                for &stream in &self.inbound {
                    let _ = ctx.set_reading(stream, false);
                }
            }
            Err(other) => self.inner.handle_message(ctx, other),
        }
    }
}

/// Start this binary as the stalled peer of `target` and wait until it
/// says it stopped reading.
pub fn start_child(target: &Multiaddr) -> anyhow::Result<Child> {
    let exe = std::env::current_exe().context("current_exe")?;
    let mut child = Command::new(exe)
        .arg("--stalled-child")
        .arg(target.to_string())
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .context("spawn the stalled peer")?;
    let stdout = child
        .stdout
        .take()
        .context("no stdout of the stalled peer")?;
    // The child bounds its own set-up and exits on failure, which ends
    // this read with an empty line.
    let mut line = String::new();
    let _ = BufReader::new(stdout).read_line(&mut line);
    if line.trim() != "paused" {
        let _ = child.kill();
        let _ = child.wait();
        bail!("the stalled peer did not start: {line:?}");
    }
    Ok(child)
}

/// End the stalled peer: closing its stdin ends it; kill is the fallback.
pub fn stop_child(mut child: Child) {
    drop(child.stdin.take());
    let deadline = Instant::now() + Duration::from_secs(5);
    while Instant::now() < deadline {
        if let Ok(Some(_)) = child.try_wait() {
            return;
        }
        std::thread::sleep(Duration::from_millis(50));
    }
    let _ = child.kill();
    let _ = child.wait();
}

/// The child's side: dial `target`, subscribe, wait until in its mesh,
/// stop reading, say "paused", then sit until stdin closes.
pub fn run_child(target: &Multiaddr) -> anyhow::Result<()> {
    let keypair = swarm::identity::generate_keypair();
    let mut node = Node::start(keypair, |inner| {
        Box::new(PauseSwitch {
            inner,
            inbound: BTreeSet::new(),
            paused: false,
        })
    })?;
    // Nothing reads what arrives: it is paused anyway.
    drop(node.messages.take());
    node.handle
        .dial(target, false, CALL)
        .map_err(|e| anyhow::anyhow!("dial node 0: {e}"))?;
    let remote = target
        .iter()
        .find_map(|p| match p {
            swarm::multiaddr::Protocol::P2p(peer) => Some(peer),
            _ => None,
        })
        .context("node 0's address has no /p2p")?;
    node.client.subscribe(TOPIC, CALL)?;
    let deadline = Instant::now() + CHILD_SETUP;
    while !node.client.mesh_peers(TOPIC, CALL)?.contains(&remote) {
        if Instant::now() > deadline {
            bail!("node 0 never joined the stalled peer's mesh");
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    node.handle
        .send_message(node.plugin, Pause)
        .map_err(|e| anyhow::anyhow!("pause: {e}"))?;
    println!("paused");
    std::io::stdout().flush()?;
    // Parent gone or done: stdin reaches EOF.
    let mut sink = Vec::new();
    let _ = std::io::stdin().read_to_end(&mut sink);
    node.shutdown();
    Ok(())
}
