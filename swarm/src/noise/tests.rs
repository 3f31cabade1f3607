//! Unit tests of the Noise handshake and transport: two sides in memory,
//! and corrupted, truncated and oversized input.

use bytes::BytesMut;
use libp2p_identity::Keypair;

use super::*;

fn key(n: u8) -> Keypair {
    Keypair::ed25519_from_bytes([n; 32]).unwrap()
}

fn sides(expected: Option<libp2p_identity::PeerId>) -> (NoiseHandshake, NoiseHandshake) {
    let i = NoiseHandshake::initiator(&key(1), expected, NoiseConfig::default(), [1; 32]).unwrap();
    let r = NoiseHandshake::responder(&key(2), NoiseConfig::default(), [2; 32]).unwrap();
    (i, r)
}

/// Run the handshake to the end; returns both transports.
fn handshake() -> (NoiseTransport, NoiseTransport) {
    let (mut i, mut r) = sides(Some(key(2).public().to_peer_id()));
    let m1 = i.take_outbound();
    assert_eq!(r.feed(&m1).unwrap(), HandshakeProgress::Pending);
    let m2 = r.take_outbound();
    assert_eq!(i.feed(&m2).unwrap(), HandshakeProgress::Done);
    let m3 = i.take_outbound();
    assert_eq!(r.feed(&m3).unwrap(), HandshakeProgress::Done);
    let (ti, ri) = i.into_transport().unwrap();
    let (tr, rr) = r.into_transport().unwrap();
    assert_eq!(ri.public_key, key(2).public());
    assert_eq!(rr.public_key, key(1).public());
    (ti, tr)
}

#[test]
fn handshake_proves_both_identities_and_the_channel_works_both_ways() {
    let (mut a, mut b) = handshake();
    let mut wire = BytesMut::new();
    a.encrypt(b"ping", &mut wire).unwrap();
    let mut plain = BytesMut::new();
    b.decrypt(&wire, &mut plain).unwrap();
    assert_eq!(&plain[..], b"ping");
    wire.clear();
    plain.clear();
    b.encrypt(b"pong", &mut wire).unwrap();
    a.decrypt(&wire, &mut plain).unwrap();
    assert_eq!(&plain[..], b"pong");
}

#[test]
fn dial_with_wrong_peer_id_fails_in_the_handshake_before_revealing_ours() {
    let wrong = key(9).public().to_peer_id();
    let (mut i, mut r) = sides(Some(wrong));
    r.feed(&i.take_outbound()).unwrap();
    let err = i.feed(&r.take_outbound()).unwrap_err();
    assert_eq!(
        err,
        NoiseError::WrongPeerId {
            expected: wrong,
            actual: key(2).public().to_peer_id()
        }
    );
    assert!(
        i.take_outbound().is_empty(),
        "message 3 (our identity) was not sent"
    );
}

#[test]
fn corrupt_handshake_message_fails_to_decrypt() {
    let (mut i, mut r) = sides(None);
    r.feed(&i.take_outbound()).unwrap();
    let mut m2 = r.take_outbound().to_vec();
    let last = m2.len() - 1;
    m2[last] ^= 1;
    assert_eq!(i.feed(&m2), Err(NoiseError::Decrypt));
    assert!(matches!(i.feed(b""), Err(NoiseError::Failed(_))));
}

#[test]
fn truncated_handshake_waits_then_fails_at_eof() {
    let (mut i, mut r) = sides(None);
    r.feed(&i.take_outbound()).unwrap();
    let m2 = r.take_outbound();
    assert_eq!(i.feed(&m2[..m2.len() - 5]), Ok(HandshakeProgress::Pending));
    assert_eq!(i.on_eof(), Err(NoiseError::Truncated));
}

#[test]
fn oversized_handshake_message_is_refused_before_it_is_buffered() {
    let (_, mut r) = sides(None);
    let len = (MAX_HANDSHAKE_MESSAGE + 1) as u16;
    assert_eq!(
        r.feed(&len.to_be_bytes()),
        Err(NoiseError::FrameTooLarge {
            len: MAX_HANDSHAKE_MESSAGE + 1,
            max: MAX_HANDSHAKE_MESSAGE
        })
    );
}

#[test]
fn garbage_instead_of_a_handshake_payload_is_refused() {
    // A responder whose payload is not a signed identity: build message 2
    // by hand with snow, carrying junk.
    let (mut i, _) = sides(None);
    let m1 = i.take_outbound();
    let params = "Noise_XX_25519_ChaChaPoly_SHA256".parse().unwrap();
    let builder = snow::Builder::new(params);
    let kp = builder.generate_keypair().unwrap();
    let mut r = builder
        .local_private_key(&kp.private)
        .unwrap()
        .build_responder()
        .unwrap();
    let mut buf = vec![0u8; 65535];
    r.read_message(&m1[2..], &mut buf).unwrap();
    let n = r.write_message(b"\xff\xff\xff junk", &mut buf).unwrap();
    let mut m2 = (n as u16).to_be_bytes().to_vec();
    m2.extend_from_slice(&buf[..n]);
    assert_eq!(i.feed(&m2), Err(NoiseError::BadPayload));
}

#[test]
fn signature_over_another_static_key_is_refused() {
    // A valid payload, but signed over a different static key.
    let (mut i, _) = sides(None);
    let m1 = i.take_outbound();
    let params = "Noise_XX_25519_ChaChaPoly_SHA256".parse().unwrap();
    let builder = snow::Builder::new(params);
    let kp = builder.generate_keypair().unwrap();
    let mut r = builder
        .local_private_key(&kp.private)
        .unwrap()
        .build_responder()
        .unwrap();
    let mut buf = vec![0u8; 65535];
    r.read_message(&m1[2..], &mut buf).unwrap();
    let forged = payload::encode(&key(3), &[7u8; 32], &[]).unwrap();
    let n = r.write_message(&forged, &mut buf).unwrap();
    let mut m2 = (n as u16).to_be_bytes().to_vec();
    m2.extend_from_slice(&buf[..n]);
    assert_eq!(i.feed(&m2), Err(NoiseError::BadSignature));
}

#[test]
fn large_writes_split_into_messages_of_at_most_65535_bytes_and_none_empty() {
    let (mut a, mut b) = handshake();
    let data: Vec<u8> = (0..200_000u32).map(|i| i as u8).collect();
    let mut wire = BytesMut::new();
    a.encrypt(&data, &mut wire).unwrap();
    a.encrypt(&[], &mut wire).unwrap();
    // Walk the frames: each within the limit, none empty.
    let mut rest = &wire[..];
    let mut frames = 0;
    while !rest.is_empty() {
        let len = usize::from(u16::from_be_bytes([rest[0], rest[1]]));
        assert!(len > 16 && len <= MAX_MESSAGE);
        rest = &rest[2 + len..];
        frames += 1;
    }
    assert_eq!(frames, 200_000usize.div_ceil(MAX_PLAINTEXT));
    // Fed one byte at a time, it still decrypts in order.
    let mut plain = BytesMut::new();
    for byte in wire.chunks(1) {
        b.decrypt(byte, &mut plain).unwrap();
    }
    assert_eq!(&plain[..], &data[..]);
    assert_eq!(b.on_eof(), Ok(()));
}

#[test]
fn transport_frame_shorter_than_a_tag_or_tampered_ends_the_transport() {
    let (mut a, mut b) = handshake();
    let mut plain = BytesMut::new();
    assert_eq!(
        b.decrypt(&[0, 3, 1, 2, 3], &mut plain),
        Err(NoiseError::Decrypt)
    );
    let mut wire = BytesMut::new();
    a.encrypt(b"x", &mut wire).unwrap();
    wire[3] ^= 0x80;
    let (_, mut b2) = handshake();
    assert_eq!(b2.decrypt(&wire, &mut plain), Err(NoiseError::Decrypt));
}

#[test]
fn seeded_handshakes_repeat_byte_for_byte() {
    let run = || {
        let (mut i, mut r) = sides(None);
        let m1 = i.take_outbound();
        r.feed(&m1).unwrap();
        (m1, r.take_outbound())
    };
    assert_eq!(run(), run());
}
