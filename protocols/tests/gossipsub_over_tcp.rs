//! Gossipsub runs unchanged over TCP + Noise + Yamux: three real swarms in
//! a line over TCP on loopback; a message published at one end crosses the
//! middle node (which forwards it) to the other end.

use std::time::{Duration, Instant};

use protocols::gossipsub::{Gossipsub, GossipsubClient, GossipsubConfig};
use swarm::{Keypair, Multiaddr, Runtime, SwarmConfig};

const TOPIC: &str = "over-tcp";

fn keypair(i: u8) -> Keypair {
    Keypair::ed25519_from_bytes([i + 40; 32]).unwrap()
}

#[test]
fn gossipsub_forwards_across_a_line_of_tcp_connections() {
    let timeout = Duration::from_secs(20);
    let mut nodes = Vec::new();
    for i in 0..3 {
        let key = keypair(i);
        let mut runtime = Runtime::new(SwarmConfig::new(key.clone())).unwrap();
        let mut config = GossipsubConfig::new(key);
        config.heartbeat_interval = Duration::from_millis(200);
        let (plugin, messages) = Gossipsub::with_message_channel(config, 64);
        let id = runtime.add_protocol(Box::new(plugin));
        let tcp: Multiaddr = "/ip4/127.0.0.1/tcp/0".parse().unwrap();
        let addr = runtime.listen(&tcp).unwrap();
        assert!(addr.to_string().contains("/tcp/"), "{addr}");
        let (handle, thread) = runtime.spawn().unwrap();
        let client = GossipsubClient::new(handle.clone(), id);
        client.subscribe(TOPIC, timeout).unwrap();
        nodes.push((client, handle, thread, messages, addr));
    }
    // 0 - 1 - 2: the ends only reach each other through node 1.
    let (addr0, addr1) = (nodes[0].4.clone(), nodes[1].4.clone());
    nodes[1].1.dial(&addr0, false, timeout).unwrap();
    nodes[2].1.dial(&addr1, false, timeout).unwrap();
    let deadline = Instant::now() + timeout;
    while nodes[0].0.mesh_peers(TOPIC, timeout).unwrap().is_empty()
        || nodes[2].0.mesh_peers(TOPIC, timeout).unwrap().is_empty()
    {
        assert!(Instant::now() < deadline, "no mesh over TCP");
        std::thread::sleep(Duration::from_millis(50));
    }
    nodes[0]
        .0
        .publish(TOPIC, b"across tcp".to_vec(), timeout)
        .unwrap();
    let at_1 = nodes[1].3.recv_timeout(timeout).expect("node 1 got it");
    let at_2 = nodes[2].3.recv_timeout(timeout).expect("node 2 got it");
    assert_eq!(at_1.message.data, b"across tcp");
    assert_eq!(at_2.message.data, b"across tcp");
    assert_eq!(nodes[1].0.stats(timeout).unwrap().forwarded, 1);
    for (_, handle, thread, ..) in nodes {
        handle.shutdown(0).unwrap();
        thread.join().unwrap().unwrap();
    }
}
