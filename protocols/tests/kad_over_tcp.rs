//! Kademlia runs unchanged over TCP + Noise + Yamux: three real swarms
//! that listen on TCP only find each other, store and get a record.

mod kad_support;

use std::time::Duration;

use kad_support::loopback::{TCP, node};
use protocols::kad::{Mode, Record};

const WAIT: Duration = Duration::from_secs(20);

#[test]
fn kademlia_finds_peers_and_records_over_tcp() {
    let a = node(61, Mode::Server, &[], TCP);
    let b = node(62, Mode::Server, &[&a], TCP);
    let c = node(63, Mode::Client, &[&a], TCP);
    assert!(b.addr.to_string().contains("/tcp/"), "{}", b.addr);
    assert!(b.dht.bootstrap(WAIT).unwrap() >= 1);
    assert!(c.dht.bootstrap(WAIT).unwrap() >= 1);
    // c learns b's TCP address through a.
    assert_eq!(c.dht.find_peer(b.peer, WAIT).unwrap(), vec![b.addr.clone()]);
    let stored = b
        .dht
        .put_value(Record::new(*b"/app/tcp", *b"over tcp"), WAIT)
        .unwrap();
    assert!(stored >= 1, "stored on {stored}");
    let records = c.dht.get_value(b"/app/tcp", WAIT).unwrap();
    assert_eq!(records[0].value, b"over tcp");
}
