//! Records and providers over virtual hours: what others stored for us
//! expires after its TTL unless we republish it, and republishing follows
//! the configured intervals (housekeeping runs on timers only).

mod kad_support;

use std::time::Duration;

use kad_support::KadNet;
use protocols::kad::{KadConfig, KadOutput, KadRequest, KadStats, Mode, Record};

const LIMIT: Duration = Duration::from_secs(60);
const MINUTE: Duration = Duration::from_secs(60);

fn stats(net: &mut KadNet, n: usize) -> KadStats {
    match net.ask(n, KadRequest::Stats, LIMIT) {
        Ok(KadOutput::Stats(s)) => s,
        other => panic!("{other:?}"),
    }
}

/// A publisher and a holder; records and providers live 60 minutes.
fn pair(republish: Option<Duration>) -> (KadNet, usize, usize) {
    let mut net = KadNet::new(21);
    let short = move |c: &mut KadConfig| {
        c.record_ttl = 60 * MINUTE;
        c.provider_ttl = 60 * MINUTE;
        c.record_republish_interval = republish;
        c.provider_republish_interval = republish.unwrap_or(1000 * MINUTE);
        c.housekeeping_interval = MINUTE;
        c.bootstrap_interval = None;
    };
    let holder = net.add(Mode::Server, &[], short);
    let publisher = net.add(Mode::Server, &[holder], short);
    net.net.run_for(Duration::from_secs(1));
    (net, publisher, holder)
}

#[test]
fn records_and_providers_expire_after_their_ttl_without_republishing() {
    let (mut net, publisher, holder) = pair(None);
    let r = net.ask(
        publisher,
        KadRequest::PutValue(Record::new(*b"k", *b"v")),
        LIMIT,
    );
    assert_eq!(r, Ok(KadOutput::Stored(1)));
    let r = net.ask(publisher, KadRequest::StartProviding(b"p".to_vec()), LIMIT);
    assert_eq!(r, Ok(KadOutput::Providing(1)));
    net.net.run_for(59 * MINUTE);
    let s = stats(&mut net, holder);
    assert_eq!((s.records, s.providers), (1, 1), "gone too early: {s:?}");
    net.net.run_for(3 * MINUTE);
    let s = stats(&mut net, holder);
    assert_eq!((s.records, s.providers), (0, 0), "not expired: {s:?}");
    // The holder answers as if it never had them.
    let r = net.ask(holder, KadRequest::GetValue(b"k".to_vec()), LIMIT);
    assert!(r.is_err(), "{r:?}");
}

#[test]
fn republishing_keeps_records_and_providers_alive() {
    let (mut net, publisher, holder) = pair(Some(20 * MINUTE));
    let r = net.ask(
        publisher,
        KadRequest::PutValue(Record::new(*b"k", *b"v")),
        LIMIT,
    );
    assert_eq!(r, Ok(KadOutput::Stored(1)));
    let r = net.ask(publisher, KadRequest::StartProviding(b"p".to_vec()), LIMIT);
    assert_eq!(r, Ok(KadOutput::Providing(1)));
    // Three TTLs later both are still there, refreshed by the publisher.
    net.net.run_for(180 * MINUTE);
    let s = stats(&mut net, holder);
    assert_eq!((s.records, s.providers), (1, 1), "{s:?}");
    let r = net.ask(holder, KadRequest::GetProviders(b"p".to_vec()), LIMIT);
    let Ok(KadOutput::Providers(providers)) = r else {
        panic!("{r:?}");
    };
    assert_eq!(providers[0].peer, net.nodes[publisher].peer);
    // Once the publisher stops providing, the entry runs out.
    let r = net.ask(publisher, KadRequest::StopProviding(b"p".to_vec()), LIMIT);
    assert_eq!(r, Ok(KadOutput::Done));
    net.net.run_for(62 * MINUTE);
    let s = stats(&mut net, holder);
    assert_eq!(s.providers, 0, "{s:?}");
    assert_eq!(s.records, 1, "the record is still republished");
}
