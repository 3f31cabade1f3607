//! `pubsub`: gossipsub between processes, the example every libp2p user
//! starts from.
//!
//! ```text
//! $ cargo run -p pubsub -- --topic news
//! Listening on /ip4/127.0.0.1/udp/51234/quic-v1/p2p/12D3KooW…
//! $ cargo run -p pubsub -- --topic news --peer /ip4/127.0.0.1/udp/51234/quic-v1/p2p/12D3KooW… \
//!       --publish hello --count 3 --duration 5
//! Listening on /ip4/127.0.0.1/udp/40321/quic-v1/p2p/12D3KooX…
//! {"event":"published","topic":"news","from":"12D3KooX…","data":"hello-1"}
//! …
//! ```
//!
//! The first process prints `{"event":"message",…}` for each message it
//! receives. With `--chat`, every line typed on stdin is published.
//!
//! Each node runs identify (js-libp2p opens its gossipsub stream only
//! after identify lists a meshsub protocol), ping, and gossipsub with the
//! default StrictSign policy. Received messages come on the plugin's
//! bounded channel; publishing goes through the blocking
//! [`GossipsubClient`]. `RUST_LOG=debug` shows the swarm's logs on stderr.

use std::io::BufRead;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use clap::Parser;
use protocols::gossipsub::{ClientError, Gossipsub, GossipsubClient, GossipsubConfig};
use protocols::identify::{Identify, IdentifyConfig};
use protocols::ping::{Ping, PingConfig};
use swarm::{Multiaddr, Runtime, SwarmConfig, identity};

/// How long to wait for a mesh peer before publishing anyway.
const MESH_WAIT: Duration = Duration::from_secs(5);
/// Bound on every call to the swarm.
const CALL_TIMEOUT: Duration = Duration::from_secs(10);

/// The command line.
#[derive(Parser)]
#[command(about = "Publish and subscribe to a gossipsub topic")]
struct Cli {
    /// The topic to subscribe (and publish) to.
    #[arg(long)]
    topic: String,
    /// QUIC addresses to listen on.
    #[arg(long = "listen", default_value = "/ip4/127.0.0.1/udp/0/quic-v1")]
    listen: Vec<Multiaddr>,
    /// Peers to dial (with /p2p/<peer id> to insist on who answers).
    #[arg(long = "peer")]
    peers: Vec<Multiaddr>,
    /// Publish TEXT-1 … TEXT-N once a mesh peer is there.
    #[arg(long)]
    publish: Option<String>,
    /// How many messages to publish.
    #[arg(long, default_value = "1")]
    count: u64,
    /// Pause between publishes, in milliseconds.
    #[arg(long = "interval-ms", default_value = "100")]
    interval_ms: u64,
    /// Exit after this many seconds (default: run until killed, or until
    /// stdin ends with --chat).
    #[arg(long)]
    duration: Option<f64>,
    /// Publish every line typed on stdin.
    #[arg(long)]
    chat: bool,
}

fn main() -> anyhow::Result<()> {
    tracing_subscriber::fmt()
        .with_env_filter(tracing_subscriber::EnvFilter::from_default_env())
        .with_writer(std::io::stderr)
        .init();
    let cli = Cli::parse();
    let started = Instant::now();
    let deadline = cli.duration.map(|s| started + Duration::from_secs_f64(s));

    // 1. A swarm with identify, ping and gossipsub.
    let keypair = identity::generate_keypair();
    let me = keypair.public().to_peer_id();
    let mut runtime = Runtime::new(SwarmConfig::new(keypair.clone()))?;
    runtime.add_protocol(Box::new(Identify::new(IdentifyConfig::new(
        keypair.public(),
    ))));
    runtime.add_protocol(Box::new(Ping::new(PingConfig::default())));
    let (gossipsub, messages) =
        Gossipsub::with_message_channel(GossipsubConfig::new(keypair), 1024);
    let plugin = runtime.add_protocol(Box::new(gossipsub));
    for addr in &cli.listen {
        let resolved = runtime
            .listen(addr)
            .with_context(|| format!("listen on {addr}"))?;
        println!("Listening on {resolved}/p2p/{me}");
    }
    let (handle, thread) = runtime.spawn()?;
    let client = GossipsubClient::new(handle.clone(), plugin);

    // 2. Subscribe, then dial the peers we were given.
    client.subscribe(&cli.topic, CALL_TIMEOUT)?;
    for peer in &cli.peers {
        if let Err(e) = handle.dial(peer, false, CALL_TIMEOUT) {
            eprintln!("pubsub: cannot dial {peer}: {e}");
        }
    }

    // 3. Print what arrives, as JSON lines, on a thread of its own.
    std::thread::spawn(move || {
        for received in messages {
            let line = serde_json::json!({
                "event": "message",
                "topic": received.message.topic,
                "from": received.message.source.map(|p| p.to_string()),
                "data": String::from_utf8_lossy(&received.message.data),
            });
            println!("{line}");
        }
    });

    // 4. Publish TEXT-1 … TEXT-N once a mesh peer is there (or after a
    //    short wait), or every line of stdin with --chat.
    let publish = |text: &str| match client.publish(
        &cli.topic,
        text.as_bytes().to_vec(),
        CALL_TIMEOUT,
    ) {
        Ok(_) => println!(
            "{}",
            serde_json::json!({"event": "published", "topic": cli.topic, "from": me.to_string(), "data": text})
        ),
        Err(ClientError::Publish(e)) => println!(
            "{}",
            serde_json::json!({"event": "publish_error", "topic": cli.topic, "data": text, "error": e.to_string()})
        ),
        Err(e) => eprintln!("pubsub: {e}"),
    };
    if let Some(text) = &cli.publish {
        let wait_until = Instant::now() + MESH_WAIT;
        while client.mesh_peers(&cli.topic, CALL_TIMEOUT)?.is_empty() && Instant::now() < wait_until
        {
            std::thread::sleep(Duration::from_millis(50));
        }
        for n in 1..=cli.count {
            publish(&format!("{text}-{n}"));
            if n < cli.count {
                std::thread::sleep(Duration::from_millis(cli.interval_ms));
            }
        }
    }
    if cli.chat {
        for line in std::io::stdin().lock().lines() {
            let line = line?;
            if deadline.is_some_and(|d| Instant::now() >= d) {
                break;
            }
            publish(&line);
        }
    }

    // 5. Run until the deadline (or forever), then shut down cleanly.
    match deadline {
        Some(d) => std::thread::sleep(d.saturating_duration_since(Instant::now())),
        None if cli.chat => {}
        None => loop {
            std::thread::sleep(Duration::from_secs(3600));
        },
    }
    handle.shutdown(0)?;
    match thread.join() {
        Ok(result) => result?,
        Err(_) => bail!("the swarm thread panicked"),
    }
    Ok(())
}
