//! The lookup state machine on its own: whom it asks, in which order, how
//! it copes with peers that time out, answer garbage or name themselves,
//! and when it stops.

use protocols::kad::Key;
use protocols::kad::query::{Lookup, MAX_CANDIDATES, PeerState};
use swarm::PeerId;

fn peers(n: usize) -> Vec<PeerId> {
    (0..n).map(|_| PeerId::random()).collect()
}

fn by_distance(mut peers: Vec<PeerId>, target: &Key) -> Vec<PeerId> {
    peers.sort_by_key(|p| Key::from_peer(p).distance(target));
    peers
}

/// Answer every outstanding request with `answer(peer)` until done;
/// returns the peers asked, in order.
fn run(lookup: &mut Lookup, mut answer: impl FnMut(&PeerId) -> Option<Vec<PeerId>>) -> Vec<PeerId> {
    let mut asked = Vec::new();
    for _ in 0..10_000 {
        let mut batch = Vec::new();
        while let Some(p) = lookup.next_to_ask() {
            batch.push(p);
        }
        if batch.is_empty() {
            break;
        }
        for p in batch {
            asked.push(p);
            match answer(&p) {
                Some(closer) => lookup.on_success(&p, &closer),
                None => lookup.on_failure(&p),
            }
        }
    }
    assert!(lookup.is_finished(), "the lookup did not finish");
    asked
}

#[test]
fn asks_at_most_alpha_at_once_closest_first() {
    let local = PeerId::random();
    let target = Key::from_bytes(b"t");
    let seeds = peers(10);
    let mut lookup = Lookup::new(target, local, &seeds, 20, 3);
    let first: Vec<PeerId> = std::iter::from_fn(|| lookup.next_to_ask()).collect();
    assert_eq!(first.len(), 3);
    assert_eq!(first, by_distance(seeds.clone(), &target)[..3].to_vec());
    assert_eq!(lookup.waiting(), 3);
    assert!(lookup.next_to_ask().is_none(), "alpha requests are out");
    lookup.on_success(&first[0], &[]);
    assert!(lookup.next_to_ask().is_some(), "a slot freed up");
}

#[test]
fn a_small_network_asks_everyone_even_without_closer_answers() {
    // Five nodes that only ever name each other: nobody is "strictly
    // closer", yet every one is among the k closest and must be asked.
    let local = PeerId::random();
    let all = peers(5);
    let target = Key::from_bytes(b"small");
    let mut lookup = Lookup::new(target, local, &all[..1], 20, 3);
    let asked = run(&mut lookup, |_| Some(all.clone()));
    assert_eq!(asked.len(), 5, "every node asked once");
    assert_eq!(lookup.closest_succeeded(20), by_distance(all, &target));
}

#[test]
fn stops_once_the_k_closest_have_answered() {
    let local = PeerId::random();
    let target = Key::from_bytes(b"big");
    let network = by_distance(peers(200), &target);
    let k = 20;
    // Everyone answers with the whole network: after the first answers the
    // k closest are known, and once they answered the lookup stops.
    let mut lookup = Lookup::new(target, local, &network[150..], k, 3);
    let asked = run(&mut lookup, |_| Some(network.clone()));
    assert_eq!(lookup.closest_succeeded(k), network[..k].to_vec());
    assert!(asked.len() < 40, "asked {} peers", asked.len());
    assert_eq!(
        lookup.state(&network[k + 50]),
        Some(PeerState::NotContacted)
    );
}

#[test]
fn peers_that_time_out_or_answer_garbage_are_skipped() {
    let local = PeerId::random();
    let target = Key::from_bytes(b"faulty");
    let network = by_distance(peers(40), &target);
    // The three closest never answer (timeout or garbage: both reach the
    // lookup as a failure).
    let dead: Vec<PeerId> = network[..3].to_vec();
    let mut lookup = Lookup::new(target, local, &network[30..], 10, 3);
    run(&mut lookup, |p| {
        (!dead.contains(p)).then(|| network.clone())
    });
    for d in &dead {
        assert_eq!(lookup.state(d), Some(PeerState::Failed));
    }
    assert_eq!(lookup.closest_succeeded(10), network[3..13].to_vec());
}

#[test]
fn peers_naming_themselves_us_or_duplicates_change_nothing() {
    let local = PeerId::random();
    let target = Key::from_bytes(b"self");
    let network = by_distance(peers(8), &target);
    let mut lookup = Lookup::new(target, local, &network, 20, 3);
    let asked = run(&mut lookup, |p| Some(vec![*p, *p, local, *p]));
    assert_eq!(asked.len(), 8, "each peer asked exactly once");
    assert_eq!(lookup.state(&local), None, "we are never a candidate");
    assert_eq!(lookup.candidate_count(), 8);
}

#[test]
fn answers_from_peers_not_asked_are_ignored() {
    let local = PeerId::random();
    let target = Key::from_bytes(b"unasked");
    let seeds = peers(2);
    let stranger = PeerId::random();
    let mut lookup = Lookup::new(target, local, &seeds, 20, 3);
    lookup.on_success(&stranger, &peers(5));
    assert_eq!(lookup.candidate_count(), 2);
    // An answer for a seed never asked is ignored as well.
    lookup.on_success(&seeds[0], &peers(5));
    assert_eq!(lookup.candidate_count(), 2);
}

#[test]
fn floods_of_candidates_stay_bounded() {
    let local = PeerId::random();
    let target = Key::from_bytes(b"flood");
    let seeds = peers(3);
    let mut lookup = Lookup::new(target, local, &seeds, 20, 3);
    let mut answered = 0;
    while let Some(p) = lookup.next_to_ask() {
        lookup.on_success(&p, &peers(500));
        answered += 1;
        assert!(lookup.candidate_count() <= MAX_CANDIDATES);
        if answered > 50 {
            break;
        }
    }
    assert!(lookup.candidate_count() <= MAX_CANDIDATES);
}

#[test]
fn a_lookup_with_no_peers_is_finished_at_once() {
    let mut lookup = Lookup::new(Key::from_bytes(b"x"), PeerId::random(), &[], 20, 3);
    assert!(lookup.is_finished());
    assert!(lookup.next_to_ask().is_none());
    assert!(lookup.closest_succeeded(20).is_empty());
}

#[test]
fn hops_count_the_requests_on_the_path_to_the_closest_answer() {
    let local = PeerId::random();
    let (a, b, c) = (PeerId::random(), PeerId::random(), PeerId::random());
    // Looking for C: A (known) names B, B names C, C answers.
    let target = Key::from_peer(&c);
    let mut lookup = Lookup::new(target, local, &[a], 20, 3);
    assert_eq!(lookup.hops(), 0, "nobody answered yet");
    run(&mut lookup, |p| {
        Some(match p {
            p if *p == a => vec![b],
            p if *p == b => vec![c],
            _ => Vec::new(),
        })
    });
    assert_eq!(lookup.closest_succeeded(1), vec![c]);
    assert_eq!(lookup.hops(), 3);
    // A known peer that is itself the closest: one hop.
    let mut direct = Lookup::new(target, local, &[c, a], 20, 3);
    run(&mut direct, |_| Some(Vec::new()));
    assert_eq!(direct.hops(), 1);
}
