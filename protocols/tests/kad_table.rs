//! The routing table inside a running node: a full bucket keeps an entry
//! that answers its liveness check, and gives the place to the newcomer
//! when the entry does not.

mod kad_support;

use std::time::Duration;

use kad_support::KadNet;
use protocols::kad::{KadOutput, KadRequest, Key, Mode};
use swarm::PeerId;

const LIMIT: Duration = Duration::from_secs(60);

#[test]
fn a_full_bucket_checks_its_oldest_entry_before_replacing_it() {
    let mut net = KadNet::new(51);
    let a = net.add(Mode::Server, &[], |c| {
        c.k = 2;
        c.request_timeout = Duration::from_secs(2);
        c.bootstrap_interval = None;
    });
    let local = Key::from_peer(&net.nodes[a].peer);
    // Three servers in a's farthest bucket (half the key space each time).
    let mut far = Vec::new();
    while far.len() < 3 {
        let n = net.add(Mode::Server, &[], |c| c.bootstrap_interval = None);
        assert!(n < 30, "no three peers in bucket 255");
        let key = Key::from_peer(&net.nodes[n].peer);
        if local.distance(&key).bucket_index() == Some(255) {
            far.push(n);
        }
    }
    net.net.run_for(Duration::from_millis(100));
    let add = |net: &mut KadNet, n: usize| {
        let peer = net.nodes[n].peer;
        let addrs = vec![net.net.multiaddr(n)];
        let r = net.ask(a, KadRequest::AddPeer { peer, addrs }, LIMIT);
        assert_eq!(r, Ok(KadOutput::Done));
    };
    let peer = |net: &KadNet, n: usize| -> PeerId { net.nodes[n].peer };
    add(&mut net, far[0]);
    add(&mut net, far[1]);
    // Full: the newcomer waits while far[0], the oldest, is asked; it
    // answers and keeps its place.
    add(&mut net, far[2]);
    net.net.run_for(Duration::from_secs(3));
    let mut table = net.table(a);
    table.sort();
    let mut want = vec![peer(&net, far[0]), peer(&net, far[1])];
    want.sort();
    assert_eq!(table, want, "a live entry was replaced");
    // far[1] is now the oldest. It dies; the next newcomer replaces it.
    net.net.remove_node(far[1]);
    add(&mut net, far[2]);
    net.net.run_for(Duration::from_secs(15));
    let mut table = net.table(a);
    table.sort();
    let mut want = vec![peer(&net, far[0]), peer(&net, far[2])];
    want.sort();
    assert_eq!(table, want, "the dead entry was kept");
}
