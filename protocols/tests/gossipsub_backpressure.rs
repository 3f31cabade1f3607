//! Back-pressure: a subscribed peer that stops reading while we publish
//! 100,000 messages. Its queue stays within the configured bound, the
//! other peers get every message, and the slow peer's drops are counted
//! and reported.

mod gossipsub_harness;

use gossipsub_harness::{RouterNet, SEC, TOPIC, decode, unsigned};
use protocols::gossipsub::{GossipEvent, PublishError, QueueLimits};

const MESSAGES: usize = 100_000;
const STALLED: usize = 1;

#[test]
fn stalled_peer_costs_at_most_its_queue_bound_and_others_get_everything() {
    let limits = QueueLimits {
        max_bytes: 256 * 1024,
        max_frames: 2048,
        low_priority_percent: 75,
    };
    let mut net = RouterNet::new(6, 21, |i| {
        let mut c = unsigned(i);
        c.queue = limits;
        c
    });
    for i in 1..6 {
        net.connect(0, i);
    }
    net.deliver();
    for i in 0..6 {
        net.subscribe(i);
    }
    net.deliver();
    net.tick(SEC);
    net.stalled.insert(STALLED);
    let stalled = net.ids[STALLED];
    let mut got = [0usize; 6];
    let mut max_stalled_bytes = 0;
    for n in 0..MESSAGES {
        let data = (n as u64).to_be_bytes();
        // Never a typed error: the other peers always take it.
        net.publish(0, &data).expect("publish");
        let q = net.r(0).queue(&stalled).unwrap();
        max_stalled_bytes = max_stalled_bytes.max(q.bytes());
        assert!(q.bytes() <= limits.max_bytes && q.len() <= limits.max_frames);
        // The healthy peers read as fast as we publish: count their
        // messages straight off the queues (decoding is the reading).
        for (i, count) in got.iter_mut().enumerate().skip(2) {
            let id = net.ids[i];
            while let Some(frame) = net.r(0).pop_frame(&id) {
                *count += decode(&frame)
                    .iter()
                    .map(|r| r.publish.len())
                    .sum::<usize>();
            }
        }
        if n % 10_000 == 0 {
            net.now += SEC;
            let now = net.now;
            let mut rng = rand::SeedableRng::seed_from_u64(n as u64);
            let r: &mut protocols::gossipsub::Router = net.r(0);
            r.heartbeat(now, &mut rng as &mut rand::rngs::StdRng);
        }
    }
    for (i, g) in got.iter().enumerate().skip(2) {
        assert_eq!(*g, MESSAGES, "peer {i} missed messages");
    }
    let stats = net.r(0).stats();
    let q = net.r(0).queue(&stalled).unwrap();
    assert!(max_stalled_bytes <= limits.max_bytes);
    assert!(stats.max_peer_queue_bytes <= limits.max_bytes);
    let dropped = q.dropped as usize;
    // Every publish is either still queued for the stalled peer or counted
    // as dropped (the queue also held a few control frames).
    assert!(
        dropped + q.len() >= MESSAGES,
        "{dropped} dropped + {} queued",
        q.len()
    );
    assert!(dropped > MESSAGES / 2, "dropped {dropped}");
    assert_eq!(stats.queue_drops as usize, dropped);
    let mut rng: rand::rngs::StdRng = rand::SeedableRng::seed_from_u64(1);
    let now = net.now;
    net.r(0).heartbeat(now, &mut rng);
    let events = net.r(0).take_events();
    assert!(
        events
            .iter()
            .any(|e| matches!(e, GossipEvent::SlowPeer { peer, .. } if *peer == stalled)),
        "slow peer not reported"
    );
    let _ = TOPIC;
}

#[test]
fn publish_fails_with_all_queues_full_only_when_no_peer_takes_it() {
    let limits = QueueLimits {
        max_bytes: 4096,
        max_frames: 16,
        low_priority_percent: 50,
    };
    let mut net = RouterNet::new(3, 22, |i| {
        let mut c = unsigned(i);
        c.queue = limits;
        c
    });
    net.connect(0, 1);
    net.connect(0, 2);
    net.deliver();
    for i in 0..3 {
        net.subscribe(i);
    }
    net.deliver();
    net.stalled.insert(1);
    net.stalled.insert(2);
    let mut results = Vec::new();
    for n in 0..40u64 {
        results.push(net.publish(0, &n.to_be_bytes()));
    }
    assert!(results[..15].iter().all(|r| r.is_ok()));
    assert_eq!(results[39], Err(PublishError::AllQueuesFull(2)));
    // Once one peer reads again, publishes succeed.
    net.stalled.remove(&1);
    let one = net.ids[1];
    while net.r(0).pop_frame(&one).is_some() {}
    assert!(net.publish(0, b"again").is_ok());
}
