//! Target `multistream`: arbitrary bytes, split at arbitrary points, into a
//! multistream-select listener or dialer. Never panics, and the split points
//! never change the outcome (result, remainder, and every byte queued to send).
//!
//! Input: `flags, proposal, cut count, cuts (u16 each), data`, where `flags`
//! picks the role (bit 0), the limits (bits 1-3) and the set of protocols the
//! listener supports (bits 4-5).

use bytes::{Bytes, BytesMut};
use swarm::multistream::{
    MultistreamError, MultistreamLimits, Negotiation, Progress, encode_frame,
};

use crate::input::{Input, split_at_points};

const PING: &str = "/ipfs/ping/1.0.0";
const HEADER: &str = "/multistream/1.0.0";

/// Proposals a dialer may make, valid or not.
fn proposals() -> Vec<String> {
    vec![
        PING.into(),
        "/a".into(),
        "na".into(),
        "ls".into(),
        String::new(),
        "/x\n".into(),
        HEADER.into(),
        format!("/{}", "x".repeat(199)),
        format!("/{}", "y".repeat(1100)),
    ]
}

/// `(max_frame_len, max_rounds)`, including configurations below the
/// documented minimum (which must fail cleanly, not panic).
const LIMITS: [(usize, usize); 6] = [
    (1024, 16),
    (0, 0),
    (19, 1),
    (64, 3),
    (20_000, 100),
    (1024, 16),
];

fn supported(choice: u8, p: &str) -> bool {
    match choice {
        0 => p == PING,
        1 => true,
        2 => false,
        _ => p.starts_with("/a"),
    }
}

/// What a negotiation ended with after all chunks.
#[derive(Debug, PartialEq, Eq)]
enum Outcome {
    Pending,
    Done {
        protocol: String,
        remainder: Vec<u8>,
    },
    Failed(MultistreamError),
}

struct Run {
    outcome: Outcome,
    /// Everything queued to send, after construction and after each feed.
    outbound: Vec<u8>,
}

fn feed_all(n: &mut Negotiation, chunks: &[&[u8]], is_supported: &dyn Fn(&str) -> bool) -> Run {
    let mut outbound = n.take_outbound().to_vec();
    let mut outcome = Outcome::Pending;
    for chunk in chunks {
        let result = n.feed(Bytes::copy_from_slice(chunk), is_supported);
        outbound.extend_from_slice(&n.take_outbound());
        match (&mut outcome, result) {
            (Outcome::Pending, Ok(Progress::Pending)) => {}
            (
                Outcome::Pending,
                Ok(Progress::Done {
                    protocol,
                    remainder,
                }),
            ) => {
                outcome = Outcome::Done {
                    protocol,
                    remainder: remainder.to_vec(),
                }
            }
            (Outcome::Pending, Err(e)) => outcome = Outcome::Failed(e),
            (
                Outcome::Done {
                    protocol,
                    remainder,
                },
                Ok(Progress::Done {
                    protocol: p,
                    remainder: r,
                }),
            ) => {
                assert_eq!(*protocol, p, "protocol changed after done");
                assert_eq!(&r[..], *chunk, "data after done must pass through");
                remainder.extend_from_slice(&r);
            }
            (Outcome::Failed(e), Err(again)) => assert_eq!(*e, again, "error is not sticky"),
            (before, after) => panic!("negotiation went from {before:?} to {after:?}"),
        }
    }
    Run { outcome, outbound }
}

/// The fuzz target's body.
pub fn check(data: &[u8]) {
    let mut input = Input::new(data);
    let flags = input.u8();
    let proposal_index = input.u8();
    let cut_count = input.u8() % 16;
    let cuts: Vec<usize> = (0..cut_count).map(|_| usize::from(input.u16())).collect();
    let wire = input.rest();

    let listener = flags & 1 == 0;
    let (max_frame_len, max_rounds) = LIMITS[usize::from((flags >> 1) & 7) % LIMITS.len()];
    let limits = MultistreamLimits {
        max_frame_len,
        max_rounds,
    };
    let choice = (flags >> 4) & 3;
    let is_supported = move |p: &str| supported(choice, p);
    let proposals = proposals();
    let proposal = &proposals[usize::from(proposal_index) % proposals.len()];
    let fresh = || {
        if listener {
            Negotiation::listener(limits)
        } else {
            Negotiation::dialer(proposal, limits)
        }
    };

    let mut whole_n = fresh();
    let whole = feed_all(&mut whole_n, &[wire], &is_supported);
    let mut split_n = fresh();
    let split = feed_all(&mut split_n, &split_at_points(wire, &cuts), &is_supported);
    assert_eq!(
        whole.outcome, split.outcome,
        "splitting changed the outcome"
    );
    assert_eq!(
        whole.outbound, split.outbound,
        "splitting changed what is sent"
    );

    for n in [&whole_n, &split_n] {
        let done = matches!(whole.outcome, Outcome::Done { .. });
        assert_eq!(n.is_done(), done);
        match (&whole.outcome, listener) {
            (Outcome::Done { protocol, .. }, _) => assert_eq!(n.protocol(), Some(&protocol[..])),
            (_, true) => assert_eq!(n.protocol(), None),
            (_, false) => assert_eq!(n.protocol(), Some(&proposal[..])),
        }
    }

    let valid_proposal =
        !proposal.is_empty() && !proposal.contains('\n') && proposal.len() < max_frame_len;
    let mut expected_first = BytesMut::new();
    if listener {
        encode_frame(HEADER.as_bytes(), &mut expected_first);
    } else if valid_proposal {
        encode_frame(HEADER.as_bytes(), &mut expected_first);
        encode_frame(proposal.as_bytes(), &mut expected_first);
    }
    assert!(
        whole.outbound.starts_with(&expected_first),
        "first flight is not the header (and proposal)"
    );
    if !listener {
        // A dialer never sends anything after its first flight.
        assert_eq!(whole.outbound, expected_first.to_vec());
    }
    if !listener && !valid_proposal {
        assert_eq!(
            whole.outcome,
            Outcome::Failed(MultistreamError::InvalidProtocol(proposal.clone()))
        );
    }
    if let Outcome::Failed(MultistreamError::InvalidProtocol(_)) = &whole.outcome {
        assert!(!listener && !valid_proposal);
    }
    if listener {
        // Header, at most `max_rounds` answers of which only the last may be
        // an echo (at most one frame long).
        let bound = expected_first.len() + max_rounds * 4 + max_frame_len + 10;
        assert!(whole.outbound.len() <= bound, "listener sent too much");
    }
    if let Outcome::Done { protocol, .. } = &whole.outcome {
        if listener {
            assert!(
                is_supported(protocol),
                "listener accepted an unsupported id"
            );
            assert!(!protocol.is_empty() && protocol != "ls" && protocol != "na");
            let mut echo = BytesMut::new();
            encode_frame(protocol.as_bytes(), &mut echo);
            assert!(
                whole.outbound.ends_with(&echo),
                "no echo of the accepted id"
            );
        } else {
            assert_eq!(protocol, proposal);
        }
    }
}

/// Inputs worth starting from: the flights of real negotiations.
pub fn seeds() -> Vec<Vec<u8>> {
    let frames = |msgs: &[&[u8]]| {
        let mut out = BytesMut::new();
        msgs.iter().for_each(|m| encode_frame(m, &mut out));
        out.to_vec()
    };
    let h = HEADER.as_bytes();
    let p = PING.as_bytes();
    let mut flights: Vec<(u8, u8, Vec<u8>)> = vec![
        (0, 0, frames(&[h, p])),
        (0, 0, [frames(&[h, p]), b"app data".to_vec()].concat()),
        (0, 0, frames(&[h, b"/unknown/1.0.0", b"ls", p])),
        (0, 0, frames(&[h, b"na", b"", p])),
        (0, 0, frames(&[b"/multistream/2.0.0", p])),
        (0, 0, b"\x80\x80\x01".to_vec()),
        (0, 0, b"\x81\x08/".to_vec()),
        (0, 0, b"\x03abc".to_vec()),
        (0, 0, frames(&[h, b"/\xff\xfe"])),
        (0, 0, frames(&[&[b"/nope".as_slice()][..]; 20].concat())),
        (1, 0, frames(&[h, p])),
        (1, 0, [frames(&[h, p]), b"pong".to_vec()].concat()),
        (1, 0, frames(&[h, b"na"])),
        (1, 0, frames(&[h, b"/other"])),
        (
            1,
            7,
            frames(&[h, format!("/{}", "x".repeat(199)).as_bytes()]),
        ),
        (
            0x10,
            0,
            frames(&[h, format!("/{}", "x".repeat(199)).as_bytes()]),
        ),
        (0x30, 0, frames(&[h, b"/b", b"/a"])),
    ];
    // Each flight also byte by byte, with the first cuts.
    let mut seeds = Vec::new();
    for (flags, proposal, data) in flights.drain(..) {
        seeds.push([vec![flags, proposal, 0], data.clone()].concat());
        let cuts: Vec<u8> = (1..=8u16).flat_map(|c| c.to_le_bytes()).collect();
        seeds.push([vec![flags, proposal, 8], cuts, data].concat());
    }
    seeds
}
