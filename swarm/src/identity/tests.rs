//! Tests of [`super`]: key files, PeerId forms and their errors.
use super::*;
use std::sync::atomic::{AtomicUsize, Ordering};

/// A directory under the system temp dir, removed on drop.
struct TempDir(PathBuf);

impl TempDir {
    fn new(name: &str) -> Self {
        static COUNTER: AtomicUsize = AtomicUsize::new(0);
        let n = COUNTER.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!(
            "swarm-identity-{}-{}-{name}",
            std::process::id(),
            n
        ));
        fs::create_dir_all(&dir).unwrap();
        TempDir(dir)
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = fs::remove_dir_all(&self.0);
    }
}

fn hex(text: &str) -> Vec<u8> {
    HEXLOWER_PERMISSIVE.decode(text.as_bytes()).unwrap()
}

// libp2p/specs peer-ids/peer-ids.md, "Test vectors": an ed25519 private
// key and its public key, protobuf-encoded.
const SPEC_ED25519_PRIVATE: &str = "080112407e0830617c4a7de83925dfb2694556b12936c477a0e1feb2e148ec9da60fee7d1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e";
const SPEC_ED25519_PUBLIC: &str =
    "080112201ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e";
// The same spec, "Decoding" examples: one sha256 peer id in both forms.
const SPEC_SHA256_CID: &str = "bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe";
const SPEC_SHA256_BASE58: &str = "QmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N";
const SPEC_ED25519_BASE58: &str = "12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA";

#[test]
fn seed_is_deterministic() {
    let a = keypair_from_seed([7; 32]);
    let b = keypair_from_seed([7; 32]);
    let c = keypair_from_seed([8; 32]);
    assert_eq!(a.public(), b.public());
    assert_ne!(a.public(), c.public());
    assert_eq!(a.key_type(), libp2p_identity::KeyType::Ed25519);
    assert!(a.public().to_peer_id().to_base58().starts_with("12D3KooW"));
}

#[test]
fn generated_keys_differ() {
    assert_ne!(generate_keypair().public(), generate_keypair().public());
}

#[test]
fn spec_ed25519_vector_loads_and_matches_seed() {
    let key = Keypair::from_protobuf_encoding(&hex(SPEC_ED25519_PRIVATE)).unwrap();
    assert_eq!(key.public().encode_protobuf(), hex(SPEC_ED25519_PUBLIC));
    let mut seed = [0u8; 32];
    seed.copy_from_slice(&hex(SPEC_ED25519_PRIVATE)[4..36]);
    assert_eq!(keypair_from_seed(seed).public(), key.public());
    // The raw public key (the protobuf's last 32 bytes) names the same peer.
    let raw_public = &SPEC_ED25519_PUBLIC[8..];
    assert_eq!(
        peer_id_from_ed25519_hex(raw_public).unwrap(),
        key.public().to_peer_id()
    );
}

#[test]
fn save_load_round_trip() {
    let dir = TempDir::new("roundtrip");
    let path = dir.0.join("sub").join("key");
    for key in [
        keypair_from_seed([1; 32]),
        Keypair::generate_secp256k1(),
        Keypair::generate_ecdsa(),
    ] {
        save_keypair(&path, &key).unwrap();
        let loaded = load_keypair(&path).unwrap();
        assert_eq!(loaded.public(), key.public());
        #[cfg(unix)]
        {
            use std::os::unix::fs::PermissionsExt;
            let mode = fs::metadata(&path).unwrap().permissions().mode();
            assert_eq!(mode & 0o777, 0o600);
        }
    }
    assert!(!path.with_file_name("key.tmp").exists());
}

#[test]
fn load_or_generate_creates_then_reuses() {
    let dir = TempDir::new("generate");
    let path = dir.0.join("identity.key");
    let first = load_or_generate_keypair(&path).unwrap();
    assert!(path.exists());
    let second = load_or_generate_keypair(&path).unwrap();
    assert_eq!(first.public(), second.public());
}

#[test]
fn load_or_generate_keeps_corrupt_file() {
    let dir = TempDir::new("keepcorrupt");
    let path = dir.0.join("key");
    fs::write(&path, b"not a key").unwrap();
    let err = load_or_generate_keypair(&path).unwrap_err();
    assert!(matches!(err, KeyFileError::Corrupt { .. }), "{err:?}");
    assert_eq!(fs::read(&path).unwrap(), b"not a key");
}

#[test]
fn missing_file_error() {
    let dir = TempDir::new("missing");
    let path = dir.0.join("nope");
    match load_keypair(&path) {
        Err(KeyFileError::Missing { path: p }) => assert_eq!(p, path),
        other => panic!("expected Missing, got {other:?}"),
    }
}

#[test]
fn unreadable_file_error() {
    // A directory exists but cannot be read as a file.
    let dir = TempDir::new("unreadable");
    let err = load_keypair(&dir.0).unwrap_err();
    assert!(
        matches!(
            err,
            KeyFileError::Unreadable { .. } | KeyFileError::Corrupt { .. }
        ),
        "{err:?}"
    );
}

#[test]
fn corrupt_file_error() {
    let dir = TempDir::new("corrupt");
    let path = dir.0.join("key");
    let mut truncated = keypair_from_seed([2; 32]).to_protobuf_encoding().unwrap();
    truncated.truncate(20);
    let too_big = vec![0u8; MAX_KEY_FILE_LEN as usize + 1];
    for contents in [&b""[..], b"garbage \xff\x00", &truncated, &too_big] {
        fs::write(&path, contents).unwrap();
        let err = load_keypair(&path).unwrap_err();
        assert!(matches!(err, KeyFileError::Corrupt { .. }), "{err:?}");
        assert!(err.to_string().contains("corrupt"));
    }
}

#[test]
fn zig_secret_round_trip() {
    let key = keypair_from_seed([42; 32]);
    let text = format_zig_secret(&key).unwrap();
    assert_eq!(text.len(), 53);
    assert!(text.starts_with('b'));
    assert!(
        text[1..]
            .bytes()
            .all(|b| b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b))
    );
    let parsed = parse_zig_secret(&text).unwrap();
    assert_eq!(parsed.public(), key.public());
    // A trailing newline, as in a file, is fine.
    let parsed = parse_zig_secret(&format!("{text}\n")).unwrap();
    assert_eq!(parsed.public(), key.public());
    // Fixed vector: the secret is the seed, in RFC 4648 base32.
    let mut seed = [0u8; 32];
    seed[0] = 0xff;
    let text = format_zig_secret(&keypair_from_seed(seed)).unwrap();
    assert_eq!(
        text,
        format!("b74{}", "a".repeat(50)),
        "0xff then 31 zero bytes"
    );
}

#[test]
fn zig_secret_rejects_non_ed25519() {
    assert_eq!(format_zig_secret(&Keypair::generate_secp256k1()), None);
    assert_eq!(format_zig_secret(&Keypair::generate_ecdsa()), None);
}

#[test]
fn zig_secret_bad_inputs() {
    let good = format_zig_secret(&keypair_from_seed([3; 32])).unwrap();
    let body = &good[1..];
    // Wrong or missing prefix.
    for text in [body.to_string(), format!("z{body}"), format!("B{body}")] {
        assert_eq!(
            parse_zig_secret(&text).unwrap_err(),
            KeyParseError::MissingPrefix { expected: 'b' }
        );
    }
    // Bad base32: uppercase, out-of-alphabet digits, padding, non-ASCII.
    for text in [
        format!("b{}", body.to_ascii_uppercase()),
        format!("b{}1", &body[..51]),
        format!("b{}8", &body[..51]),
        format!("b{body}===="),
        format!("b{}é", &body[..50]),
    ] {
        assert!(
            matches!(parse_zig_secret(&text), Err(KeyParseError::Base32(_))),
            "{text}"
        );
    }
    // Valid base32 of the wrong length.
    let short = format!("b{}", BASE32_NOPAD.encode(&[1u8; 31]).to_ascii_lowercase());
    assert_eq!(
        parse_zig_secret(&short).unwrap_err(),
        KeyParseError::WrongLength {
            expected: 32,
            found: 31
        }
    );
    let long = format!("b{}", BASE32_NOPAD.encode(&[1u8; 40]).to_ascii_lowercase());
    assert_eq!(
        parse_zig_secret(&long).unwrap_err(),
        KeyParseError::WrongLength {
            expected: 32,
            found: 40
        }
    );
    assert_eq!(parse_zig_secret("").unwrap_err(), KeyParseError::Empty);
    assert_eq!(parse_zig_secret("  \n").unwrap_err(), KeyParseError::Empty);
    assert_eq!(
        parse_zig_secret("b").unwrap_err(),
        KeyParseError::WrongLength {
            expected: 32,
            found: 0
        }
    );
    assert!(matches!(
        parse_zig_secret(&format!("b{}", "a".repeat(10_000))),
        Err(KeyParseError::TooLong { .. })
    ));
    // Errors never echo the secret.
    let err = parse_zig_secret(&format!("b{}8", &body[..51])).unwrap_err();
    assert!(!err.to_string().contains(&body[..10]));
}

#[test]
fn hex_key_parse() {
    let key = keypair_from_seed([9; 32]);
    let raw = key.public().try_into_ed25519().unwrap().to_bytes();
    let text = HEXLOWER_PERMISSIVE.encode(&raw);
    let expected = key.public().to_peer_id();
    assert_eq!(peer_id_from_ed25519_hex(&text).unwrap(), expected);
    assert_eq!(
        peer_id_from_ed25519_hex(&text.to_ascii_uppercase()).unwrap(),
        expected
    );
    assert_eq!(
        peer_id_from_ed25519_hex(&format!(" 0x{text}\n")).unwrap(),
        expected
    );
}

#[test]
fn hex_key_bad_inputs() {
    let good = "1ed1e8fae2c4a144b8be8fd4b47bf3d3b34b871c3cacf6010f0e42d474fce27e";
    assert!(peer_id_from_ed25519_hex(good).is_ok());
    assert!(matches!(
        peer_id_from_ed25519_hex(&good.replace('e', "g")),
        Err(KeyParseError::Hex(_))
    ));
    assert!(matches!(
        peer_id_from_ed25519_hex(&good[..63]),
        Err(KeyParseError::Hex(_))
    ));
    assert_eq!(
        peer_id_from_ed25519_hex(&good[..62]).unwrap_err(),
        KeyParseError::WrongLength {
            expected: 32,
            found: 31
        }
    );
    assert_eq!(
        peer_id_from_ed25519_hex(&format!("{good}00")).unwrap_err(),
        KeyParseError::WrongLength {
            expected: 32,
            found: 33
        }
    );
    assert_eq!(
        peer_id_from_ed25519_hex("").unwrap_err(),
        KeyParseError::Empty
    );
    assert_eq!(
        peer_id_from_ed25519_hex("0x").unwrap_err(),
        KeyParseError::Empty
    );
    assert!(matches!(
        peer_id_from_ed25519_hex(&"ab".repeat(1000)),
        Err(KeyParseError::TooLong { .. })
    ));
    assert!(matches!(
        peer_id_from_ed25519_hex("ééééééééééééééééééééééééééééééé"),
        Err(KeyParseError::Hex(_))
    ));
}

#[test]
fn hex_key_rejects_points_off_curve() {
    // About half of all y coordinates have no point on the curve.
    let mut rejected = 0;
    for y in 2u8..=40 {
        let mut bytes = [0u8; 32];
        bytes[0] = y;
        match peer_id_from_ed25519_hex(&HEXLOWER_PERMISSIVE.encode(&bytes)) {
            Ok(_) => {}
            Err(KeyParseError::InvalidKey(_)) => rejected += 1,
            Err(e) => panic!("unexpected error {e:?}"),
        }
    }
    assert!(rejected > 0);
}

#[test]
fn spec_sha256_peer_id_in_both_forms() {
    let from_cid = parse_peer_id(SPEC_SHA256_CID).unwrap();
    let from_base58 = parse_peer_id(SPEC_SHA256_BASE58).unwrap();
    assert_eq!(from_cid, from_base58);
    assert_eq!(from_cid.to_base58(), SPEC_SHA256_BASE58);
    assert_eq!(peer_id_to_cid(&from_base58), SPEC_SHA256_CID);
}

#[test]
fn multiaddr_suite_pairs_in_both_forms() {
    // The multiformats multiaddr test suites (go-multiaddr, js-multiaddr)
    // list these peers in both forms: an ed25519 (identity multihash) and a
    // sha256 peer id.
    for (base58, cid) in [
        (
            "12D3KooWCryG7Mon9orvQxcS1rYZjotPgpwoJNHHKcLLfE4Hf5mV",
            "bafzaajaiaejcalj543iwv2d7pkjt7ykvefrkfu7qjfi6sduakhso4lay6abn2d5u",
        ),
        (
            "QmcgpsyWgH8Y8ajJz1Cu72KnS5uo2Aa2LpzU7kinSupNKC",
            "bafzbeigvf25ytwc3akrijfecaotc74udrhcxzh2cx3we5qqnw5vgrei4bm",
        ),
    ] {
        let peer = parse_peer_id(base58).unwrap();
        assert_eq!(parse_peer_id(cid).unwrap(), peer);
        assert_eq!(peer_id_to_cid(&peer), cid);
        assert_eq!(peer.to_base58(), base58);
    }
}

#[test]
fn cid_encoding_matches_multiformats_vector() {
    // py-multiformats documents CID('base32', 1, 'libp2p-key', <identity
    // multihash of 32 bytes>) as this text.
    let multihash = hex("00201498b5467a63dffa2dc9d9e069caf075d16fc33fdd4c3b01bfadae6433767d93");
    let peer = PeerId::from_bytes(&multihash).unwrap();
    let text = "bafzaaiautc2um6td375c3soz4bu4v4dv2fx4gp65jq5qdp5nvzsdg5t5sm";
    assert_eq!(peer_id_to_cid(&peer), text);
    assert_eq!(parse_peer_id(text).unwrap(), peer);
}

#[test]
fn cid_round_trip_both_forms() {
    let spec_key = Keypair::from_protobuf_encoding(&hex(SPEC_ED25519_PRIVATE)).unwrap();
    let mut peers = vec![
        parse_peer_id(SPEC_ED25519_BASE58).unwrap(),
        spec_key.public().to_peer_id(),
        keypair_from_seed([5; 32]).public().to_peer_id(),
        Keypair::generate_secp256k1().public().to_peer_id(),
        Keypair::generate_ecdsa().public().to_peer_id(),
    ];
    peers.extend((0..20).map(|_| generate_keypair().public().to_peer_id()));
    for peer in peers {
        let cid = peer_id_to_cid(&peer);
        let base58 = peer.to_base58();
        assert_eq!(parse_peer_id(&cid).unwrap(), peer, "{cid}");
        assert_eq!(parse_peer_id(&base58).unwrap(), peer, "{base58}");
        assert!(cid.len() <= MAX_PEER_ID_TEXT_LEN);
    }
    // Ed25519 ids are identity multihashes: `12D3KooW…` / `bafzaa…`.
    let ed = keypair_from_seed([6; 32]).public().to_peer_id();
    assert!(ed.to_base58().starts_with("12D3KooW"));
    assert!(peer_id_to_cid(&ed).starts_with("bafzaa"));
    assert_eq!(
        parse_peer_id(&format!("  {}\n", peer_id_to_cid(&ed))).unwrap(),
        ed
    );
}

#[test]
fn cid_with_wrong_codec_rejected() {
    let peer = keypair_from_seed([4; 32]).public().to_peer_id();
    let cid_text = |prefix: &[u8]| {
        let mut bytes = prefix.to_vec();
        bytes.extend_from_slice(&peer.to_bytes());
        format!("b{}", BASE32_NOPAD.encode(&bytes).to_ascii_lowercase())
    };
    // dag-pb (0x70), raw (0x55), libp2p-key as a two-byte varint elsewhere.
    assert_eq!(
        parse_peer_id(&cid_text(&[0x01, 0x70])).unwrap_err(),
        KeyParseError::WrongCodec(0x70)
    );
    assert_eq!(
        parse_peer_id(&cid_text(&[0x01, 0x55])).unwrap_err(),
        KeyParseError::WrongCodec(0x55)
    );
    assert_eq!(
        parse_peer_id(&cid_text(&[0x01, 0xf2, 0x01])).unwrap_err(),
        KeyParseError::WrongCodec(0xf2)
    );
    // Version 2, and non-minimal varints.
    assert_eq!(
        parse_peer_id(&cid_text(&[0x02, 0x72])).unwrap_err(),
        KeyParseError::CidVersion(2)
    );
    assert!(matches!(
        parse_peer_id(&cid_text(&[0x81, 0x00, 0x72])),
        Err(KeyParseError::MalformedCid(_))
    ));
    assert!(matches!(
        parse_peer_id(&cid_text(&[
            0x01, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff
        ])),
        Err(KeyParseError::MalformedCid(_))
    ));
    // The right codec with the right header still parses.
    assert_eq!(parse_peer_id(&cid_text(&[0x01, 0x72])).unwrap(), peer);
    let msg = KeyParseError::WrongCodec(0x70).to_string();
    assert!(msg.contains("0x70") && msg.contains("libp2p-key"), "{msg}");
}

#[test]
fn other_multibases_rejected_clearly() {
    // The same peer in base36 (IPNS style) and base58 multibase.
    for text in [
        "k51qzi5uqu5dhb6l8spkdx7yxafegfkee5by8h7lmjh2ehc2sgg34z7c15vzqs",
        "zQmYyQSo1c1Ym7orWxLYvCrM2EmxFTANf8wXmmE7DWjhx5N",
        "BAFZBEIE5745RPV2M6TJYUUGYWY4D5EWRQGQQHFNF445HE3OMZPJBX5XQXE",
        "f01720020",
        "mAXI",
    ] {
        let err = parse_peer_id(text).unwrap_err();
        assert!(
            matches!(err, KeyParseError::UnsupportedMultibase(_)),
            "{text}: {err:?}"
        );
        assert!(err.to_string().contains("base32"));
    }
}

#[test]
fn garbage_peer_ids_rejected() {
    let cases = [
        "",
        "   ",
        "hello world",
        "Qm",
        "Qm0OIl",
        "1",
        "12D3KooW",
        "b",
        "bafzaa",
        "bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqx",
        "bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxe0",
        "bafzbeie5745rpv2m6tjyuugywy4d5ewrqgqqhfnf445he3omzpjbx5xqxeaa",
        "bAFZBEIE5745RPV2M6TJYUUGYWY4D5EWRQGQQHFNF445HE3OMZPJBX5XQXE",
        "/p2p/12D3KooWD3eckifWpRn9wQpMG9R9hX3sD158z7EqHWmweQAJU5SA",
        "é",
        "\u{1F680}",
        "\0\0\0",
    ];
    for text in cases {
        assert!(parse_peer_id(text).is_err(), "{text:?} parsed");
    }
    let long = format!("12D3KooW{}", "a".repeat(10_000));
    assert!(matches!(
        parse_peer_id(&long),
        Err(KeyParseError::TooLong { .. })
    ));
    // Every prefix of valid ids, and every single-byte change, is handled
    // without panicking.
    for valid in [SPEC_SHA256_CID, SPEC_SHA256_BASE58, SPEC_ED25519_BASE58] {
        for end in 0..=valid.len() {
            let _ = parse_peer_id(&valid[..end]);
        }
        for i in 0..valid.len() {
            for c in ['a', 'z', '2', '9', '1', 'Q', '!'] {
                let mut text = valid.to_string();
                text.replace_range(i..i + 1, &c.to_string());
                let _ = parse_peer_id(&text);
            }
        }
    }
}

#[test]
fn peer_id_errors_are_clear() {
    assert_eq!(parse_peer_id("").unwrap_err(), KeyParseError::Empty);
    assert_eq!(
        parse_peer_id("Xyz").unwrap_err(),
        KeyParseError::UnrecognizedFormat
    );
    assert!(matches!(
        parse_peer_id("1OOO"),
        Err(KeyParseError::Base58(_))
    ));
    assert!(matches!(
        parse_peer_id("bafzaa"),
        Err(KeyParseError::InvalidMultihash(_))
    ));
}
