//! Protocol ids a plugin advertises or withdraws at run time: the swarm's
//! multistream-select answers follow, and every plugin hears of it.

use std::net::Ipv4Addr;
use std::sync::{Arc, Mutex};
use std::time::Duration;

use swarm::multistream::MultistreamError;
use swarm::virtual_net::{LinkConfig, Outcome, VirtualNet};
use swarm::{Context, Keypair, PluginId, Protocol, StreamError, StreamRef, SwarmConfig};

const PROTOCOL: &str = "/test/late/1.0.0";

fn config(i: u8) -> SwarmConfig {
    let mut config = SwarmConfig::new(Keypair::ed25519_from_bytes([i; 32]).unwrap());
    config.seed = Some(u64::from(i));
    config
}

/// How the streams it opened ended, and how often it heard of a change.
#[derive(Default)]
struct Seen {
    negotiated: u32,
    refused: u32,
    changes: u32,
}

struct Recorder(Arc<Mutex<Seen>>);

impl Protocol for Recorder {
    fn name(&self) -> &'static str {
        "recorder"
    }
    fn handle_stream_negotiated(&mut self, ctx: &mut Context<'_>, s: StreamRef, _: &str) {
        self.0.lock().unwrap().negotiated += 1;
        let _ = ctx.abort(s, 0);
    }
    fn handle_stream_closed(&mut self, _: &mut Context<'_>, _: StreamRef, e: &StreamError) {
        if matches!(
            e,
            StreamError::Negotiation(MultistreamError::Refused { .. })
        ) {
            self.0.lock().unwrap().refused += 1;
        }
    }
    fn handle_local_protocols_changed(&mut self, _: &mut Context<'_>) {
        self.0.lock().unwrap().changes += 1;
    }
}

#[test]
fn advertised_and_withdrawn_ids_change_what_multistream_select_accepts() {
    let mut net = VirtualNet::new(9, LinkConfig::clean());
    let dialer_seen = Arc::new(Mutex::new(Seen::default()));
    let server_seen = Arc::new(Mutex::new(Seen::default()));
    let mut dialer_plugin = None;
    let a = net.add_swarm_with(config(1), Ipv4Addr::new(10, 0, 0, 1), |s| {
        dialer_plugin = Some(s.add_protocol(Box::new(Recorder(dialer_seen.clone()))));
    });
    let mut server_plugin = None;
    let b = net.add_swarm_with(config(2), Ipv4Addr::new(10, 0, 0, 2), |s| {
        server_plugin = Some(s.add_protocol(Box::new(Recorder(server_seen.clone()))));
    });
    let (dialer_plugin, server_plugin) = (dialer_plugin.unwrap(), server_plugin.unwrap());
    let to_b = net.dial_addr(b);
    let conn = net.swarm(a).dial(&to_b, false).expect("dial");
    let peer_b = net.swarm(b).local_peer_id();
    let outcome = net.run_until(Duration::from_secs(5), |net| {
        !net.swarm(a).connections_to(&peer_b).is_empty()
    });
    assert_eq!(outcome, Outcome::Done);
    net.run_for(Duration::from_millis(100));
    let open = |net: &mut VirtualNet| {
        net.swarm(a).with_context(dialer_plugin, |ctx| {
            ctx.open_stream(conn, PROTOCOL).expect("open");
        });
        net.run_for(Duration::from_millis(200));
    };

    open(&mut net);
    assert_eq!(dialer_seen.lock().unwrap().refused, 1, "not advertised yet");

    let advertised = net
        .swarm(b)
        .with_context(server_plugin, |ctx| ctx.advertise_protocol(PROTOCOL));
    assert!(advertised);
    assert!(net.swarm(b).with_context(server_plugin, |ctx| {
        ctx.supported_protocols().contains(&PROTOCOL.to_string())
    }));
    open(&mut net);
    assert_eq!(dialer_seen.lock().unwrap().negotiated, 1, "advertised");

    // Another plugin cannot take it over or withdraw it.
    assert!(
        !net.swarm(b)
            .with_context(PluginId::external(), |ctx| ctx.withdraw_protocol(PROTOCOL))
    );
    let withdrawn = net
        .swarm(b)
        .with_context(server_plugin, |ctx| ctx.withdraw_protocol(PROTOCOL));
    assert!(withdrawn);
    open(&mut net);
    assert_eq!(dialer_seen.lock().unwrap().refused, 2, "withdrawn");
    // Both changes were announced to the plugins of the swarm that made them.
    assert_eq!(server_seen.lock().unwrap().changes, 2);
    assert_eq!(dialer_seen.lock().unwrap().changes, 0);
}
