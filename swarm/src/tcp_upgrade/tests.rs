//! The whole TCP upgrade between two sides in memory.

use std::time::Instant;

use libp2p_identity::Keypair;

use super::*;
use crate::noise::NoiseError;
use crate::tls::TlsIdentity;
use crate::yamux::{Read, YamuxConfig};

fn key(n: u8) -> Keypair {
    Keypair::ed25519_from_bytes([n; 32]).unwrap()
}

/// Run both sides, moving bytes `chunk` at a time, until both are done.
fn upgrade(
    mut d: TcpUpgrade,
    mut l: TcpUpgrade,
    chunk: usize,
) -> Result<(SecuredConnection, SecuredConnection), UpgradeError> {
    let now = Instant::now();
    let (mut d_done, mut l_done) = (false, false);
    for _ in 0..10_000 {
        let to_l = d.take_outbound();
        let to_d = l.take_outbound();
        for c in to_l.chunks(chunk) {
            l_done = l.feed(c, now)? == UpgradeProgress::Done;
        }
        for c in to_d.chunks(chunk) {
            d_done = d.feed(c, now)? == UpgradeProgress::Done;
        }
        if d_done && l_done {
            return Ok((d.finish()?, l.finish()?));
        }
    }
    panic!("upgrade did not finish");
}

fn pump(a: &mut SecuredConnection, b: &mut SecuredConnection) {
    let bytes = a.take_outbound().unwrap();
    b.feed(&bytes, Instant::now()).unwrap();
}

#[test]
fn dialer_and_listener_upgrade_and_carry_a_stream_even_byte_by_byte() {
    for chunk in [1, 7, usize::MAX] {
        let d = TcpUpgrade::dialer(
            &key(1),
            Some(key(2).public().to_peer_id()),
            DialSecurity::Noise,
            YamuxConfig::default(),
            [1; 32],
        );
        let l = TcpUpgrade::listener(&key(2), None, YamuxConfig::default(), [2; 32]);
        let (mut d, mut l) = upgrade(d, l, chunk).unwrap();
        assert_eq!(d.remote_peer(), key(2).public().to_peer_id());
        assert_eq!(l.remote_peer(), key(1).public().to_peer_id());
        let now = Instant::now();
        let id = d.session().open_stream(now).unwrap();
        d.session().write(id, b"over noise and yamux").unwrap();
        pump(&mut d, &mut l);
        assert_eq!(l.session().accept_stream(), Some(id));
        assert_eq!(
            l.session().read(id, 100, now),
            Read::Data("over noise and yamux".into())
        );
    }
}

#[test]
fn dialing_the_wrong_peer_fails_the_upgrade_with_wrong_peer_id() {
    let wrong = key(3).public().to_peer_id();
    let d = TcpUpgrade::dialer(
        &key(1),
        Some(wrong),
        DialSecurity::Noise,
        YamuxConfig::default(),
        [1; 32],
    );
    let l = TcpUpgrade::listener(&key(2), None, YamuxConfig::default(), [2; 32]);
    let err = upgrade(d, l, usize::MAX).err().expect("must fail");
    assert_eq!(
        err,
        UpgradeError::Noise(NoiseError::WrongPeerId {
            expected: wrong,
            actual: key(2).public().to_peer_id()
        })
    );
}

#[test]
fn a_listener_that_refuses_noise_fails_the_dialer_with_a_typed_error() {
    let now = Instant::now();
    let mut d = TcpUpgrade::dialer(
        &key(1),
        None,
        DialSecurity::Noise,
        YamuxConfig::default(),
        [1; 32],
    );
    let _ = d.take_outbound();
    // The listener's header, then `na` to our proposal.
    let mut reply = bytes::BytesMut::new();
    crate::multistream::encode_frame(b"/multistream/1.0.0", &mut reply);
    crate::multistream::encode_frame(b"na", &mut reply);
    assert!(matches!(
        d.feed(&reply, now),
        Err(UpgradeError::Select(
            crate::multistream::MultistreamError::Refused { .. }
        ))
    ));
    assert_eq!(d.feed(b"", now), Err(UpgradeError::Over));
}

fn tls_dialer(dialer: u8, expected: Option<libp2p_identity::PeerId>) -> TcpUpgrade {
    let identity = TlsIdentity::new(&key(dialer)).unwrap();
    let (config, observed) = identity.client_config(expected).unwrap();
    TcpUpgrade::dialer(
        &key(dialer),
        expected,
        DialSecurity::Tls { config, observed },
        YamuxConfig::default(),
        [1; 32],
    )
}

fn tls_listener(listener: u8) -> TcpUpgrade {
    let identity = TlsIdentity::new(&key(listener)).unwrap();
    TcpUpgrade::listener(
        &key(listener),
        Some(identity.server_config().unwrap()),
        YamuxConfig::default(),
        [2; 32],
    )
}

#[test]
fn tls_upgrade_proves_both_peer_ids_and_carries_a_stream() {
    for chunk in [3, usize::MAX] {
        let d = tls_dialer(1, Some(key(2).public().to_peer_id()));
        let (mut d, mut l) = upgrade(d, tls_listener(2), chunk).unwrap();
        assert!(d.is_tls() && l.is_tls());
        assert_eq!(d.remote_peer(), key(2).public().to_peer_id());
        assert_eq!(l.remote_peer(), key(1).public().to_peer_id());
        let now = Instant::now();
        let id = d.session().open_stream(now).unwrap();
        d.session().write(id, b"over tls and yamux").unwrap();
        pump(&mut d, &mut l);
        assert_eq!(l.session().accept_stream(), Some(id));
        assert_eq!(
            l.session().read(id, 100, now),
            Read::Data("over tls and yamux".into())
        );
    }
}

#[test]
fn tls_dial_of_the_wrong_peer_fails_in_the_handshake_with_wrong_peer_id() {
    let wrong = key(3).public().to_peer_id();
    let err = upgrade(tls_dialer(1, Some(wrong)), tls_listener(2), usize::MAX)
        .err()
        .expect("must fail");
    assert_eq!(
        err.wrong_peer_id(),
        Some((wrong, key(2).public().to_peer_id()))
    );
}

#[test]
fn a_listener_without_tls_refuses_a_tls_dialer() {
    let l = TcpUpgrade::listener(&key(2), None, YamuxConfig::default(), [2; 32]);
    let err = upgrade(tls_dialer(1, None), l, usize::MAX)
        .err()
        .expect("must fail");
    assert!(matches!(
        err,
        UpgradeError::Select(crate::multistream::MultistreamError::Refused { .. })
    ));
}

/// How many exchanges (both sides send what they hold, then read) the
/// upgrade takes, whole flights at a time.
fn exchanges_to_upgrade(mut d: TcpUpgrade, mut l: TcpUpgrade) -> usize {
    let now = Instant::now();
    let (mut d_done, mut l_done) = (false, false);
    for round in 1..100 {
        let to_l = d.take_outbound();
        let to_d = l.take_outbound();
        if !to_l.is_empty() {
            l_done = l.feed(&to_l, now).unwrap() == UpgradeProgress::Done;
        }
        if !to_d.is_empty() {
            d_done = d.feed(&to_d, now).unwrap() == UpgradeProgress::Done;
        }
        if d_done && l_done {
            return round;
        }
    }
    panic!("upgrade did not finish");
}

fn noise_pair(inline_dialer: bool, inline_listener: bool) -> (TcpUpgrade, TcpUpgrade) {
    let mut d = TcpUpgrade::dialer(
        &key(1),
        Some(key(2).public().to_peer_id()),
        DialSecurity::Noise,
        YamuxConfig::default(),
        [1; 32],
    );
    let mut l = TcpUpgrade::listener(&key(2), None, YamuxConfig::default(), [2; 32]);
    if !inline_dialer {
        d = d.without_inline_muxer();
    }
    if !inline_listener {
        l = l.without_inline_muxer();
    }
    (d, l)
}

#[test]
fn noise_chooses_yamux_inline_saving_the_muxer_round_trip() {
    let inline = exchanges_to_upgrade(noise_pair(true, true).0, noise_pair(true, true).1);
    let (d, l) = noise_pair(false, false);
    let selected = exchanges_to_upgrade(d, l);
    assert!(
        inline < selected,
        "inline {inline} exchanges, multistream-select {selected}"
    );
}

#[test]
fn a_peer_that_lists_no_muxers_gets_multistream_select_either_way() {
    for (inline_dialer, inline_listener) in [(true, false), (false, true)] {
        let (d, l) = noise_pair(inline_dialer, inline_listener);
        let (mut d, mut l) = upgrade(d, l, 5).unwrap();
        let now = Instant::now();
        let id = d.session().open_stream(now).unwrap();
        d.session().write(id, b"after multistream-select").unwrap();
        pump(&mut d, &mut l);
        assert_eq!(l.session().accept_stream(), Some(id));
        assert_eq!(
            l.session().read(id, 100, now),
            Read::Data("after multistream-select".into())
        );
    }
}

#[test]
fn a_remote_listing_only_other_muxers_fails_the_handshake_with_no_common_muxer() {
    use crate::multistream::{MultistreamLimits, Negotiation, Progress};
    use crate::noise::{NoiseConfig, NoiseHandshake};
    let now = Instant::now();
    let mut l = TcpUpgrade::listener(&key(2), None, YamuxConfig::default(), [2; 32]);
    // A raw initiator: proposes /noise and sends Noise message 1 at once,
    // listing only mplex.
    let mut select = Negotiation::dialer(NOISE_PROTOCOL, MultistreamLimits::default());
    let config = NoiseConfig {
        stream_muxers: vec!["/mplex/6.7.0".into()],
    };
    let mut noise = NoiseHandshake::initiator(&key(1), None, config, [1; 32]).unwrap();
    let mut first = select.take_outbound().to_vec();
    first.extend_from_slice(&noise.take_outbound());
    assert_eq!(l.feed(&first, now), Ok(UpgradeProgress::Pending));
    let Progress::Done { remainder, .. } = select.feed(l.take_outbound(), &|_| false).unwrap()
    else {
        panic!("the listener accepted /noise");
    };
    noise.feed(&remainder).unwrap();
    let err = l.feed(&noise.take_outbound(), now).unwrap_err();
    assert_eq!(
        err,
        UpgradeError::NoCommonMuxer {
            offered: vec!["/mplex/6.7.0".into()]
        }
    );
}

/// A peer may send its first Yamux frames right behind its last handshake
/// message, in one read; whatever is wrong with them is the established
/// connection's error (which then ends with a go-away and a close the
/// swarm reports), not the handshake's. (Inline muxer choice: the
/// listener finishes last.)
#[test]
fn bytes_behind_the_last_handshake_message_are_judged_by_the_established_connection() {
    let (mut d, mut l) = noise_pair(true, true);
    let now = Instant::now();
    let mut dialer_done = false;
    for _ in 0..20 {
        let to_l = d.take_outbound();
        if !to_l.is_empty() {
            assert!(l.feed(&to_l, now).unwrap() == UpgradeProgress::Pending);
        }
        let to_d = l.take_outbound();
        if !to_d.is_empty() && d.feed(&to_d, now).unwrap() == UpgradeProgress::Done {
            dialer_done = true;
            break;
        }
    }
    assert!(dialer_done, "the dialer finished first");
    let mut d = d.finish().unwrap();
    let mut last = d.take_outbound().unwrap().to_vec();
    // A Noise message of 40 bytes whose tag cannot verify.
    last.extend_from_slice(&[0, 40]);
    last.extend_from_slice(&[0xa5; 40]);
    let progress = l.feed(&last, now).expect("the handshake itself succeeds");
    assert!(progress == UpgradeProgress::Done);
    let mut l = l.finish().unwrap();
    let err = l.feed(&[], now).expect_err("the bogus message fails");
    assert!(err.to_string().contains("decrypt"), "{err}");
}
