//! Node identity: keypairs, key files and the text forms of keys and peer ids.
//!
//! A node is named by its [`PeerId`], derived from the public half of its
//! [`Keypair`]. This module makes and stores keypairs, and reads and writes the
//! text forms other tools use:
//!
//! - key files hold the libp2p protobuf `PrivateKey` encoding
//!   ([`Keypair::to_protobuf_encoding`]), as go-libp2p and rust-libp2p store them;
//! - the Zig libp2p tool's secret: `b` + base32 of the 32-byte ed25519 secret;
//! - a raw ed25519 public key in hex (what `bandwidth_perf` is given for its
//!   responder);
//! - peer ids as legacy base58 multihashes (`12D3Koo…`, `Qm…`) or as CIDv1 text
//!   (`bafz…`), per the libp2p peer-ids spec.
//!
//! Every parser here returns a typed error for bad input and never panics, and
//! no error message repeats secret material.

use std::fs;
use std::io::{self, Read, Write};
use std::path::{Path, PathBuf};

use data_encoding::{BASE32_NOPAD, HEXLOWER_PERMISSIVE};
use libp2p_identity::ed25519;
pub use libp2p_identity::{Keypair, PeerId, PublicKey};

/// Largest key file [`load_keypair`] reads. Real ones are under 200 bytes
/// (ed25519: 68, ECDSA: 125); anything far larger is not a key.
pub const MAX_KEY_FILE_LEN: u64 = 16 * 1024;

/// Longest text [`parse_peer_id`] looks at. The longest valid peer id (an
/// identity multihash of 42 bytes, as CIDv1 base32) is 75 characters.
pub const MAX_PEER_ID_TEXT_LEN: usize = 128;

/// The multibase prefix of lowercase, unpadded RFC 4648 base32.
const BASE32_PREFIX: char = 'b';
/// CID version 1, as its varint.
const CID_V1: u64 = 1;
/// The `libp2p-key` multicodec.
const LIBP2P_KEY_CODEC: u64 = 0x72;
/// Length of an ed25519 secret or public key.
const ED25519_KEY_LEN: usize = 32;
/// Longest Zig secret or hex key text decoded; valid ones are 53 and 64.
const MAX_KEY_TEXT_LEN: usize = 128;

/// Why a key file could not be loaded or saved.
#[derive(Debug, thiserror::Error)]
pub enum KeyFileError {
    /// There is no file at `path`.
    #[error("key file {} does not exist", path.display())]
    Missing {
        /// The file looked for.
        path: PathBuf,
    },
    /// The file exists but could not be read.
    #[error("cannot read key file {}: {source}", path.display())]
    Unreadable {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The file was read but does not hold a usable keypair.
    #[error("key file {} is corrupt: {reason}", path.display())]
    Corrupt {
        /// The file.
        path: PathBuf,
        /// What is wrong with its contents.
        reason: String,
    },
    /// The key could not be written to `path`.
    #[error("cannot write key file {}: {source}", path.display())]
    Unwritable {
        /// The file.
        path: PathBuf,
        /// What the OS said.
        source: io::Error,
    },
    /// The key has no protobuf encoding (an RSA key: this build cannot encode
    /// those).
    #[error("cannot encode the key for {}: {reason}", path.display())]
    Unencodable {
        /// The file it was to be written to.
        path: PathBuf,
        /// Why encoding failed.
        reason: String,
    },
}

/// Why a key or peer id in text form was rejected.
///
/// Messages never include the input: it may be a secret.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum KeyParseError {
    /// The text is empty (after trimming whitespace).
    #[error("empty input")]
    Empty,
    /// The text is longer than any valid value.
    #[error("input is {len} characters, more than the {max} a valid value can have")]
    TooLong {
        /// Length of the input, in bytes.
        len: usize,
        /// The most accepted.
        max: usize,
    },
    /// A Zig secret does not start with its `b` prefix.
    #[error("missing the '{expected}' (base32) prefix")]
    MissingPrefix {
        /// The prefix required.
        expected: char,
    },
    /// Invalid lowercase base32 (RFC 4648, no padding).
    #[error("invalid base32: {0}")]
    Base32(String),
    /// Invalid base58btc.
    #[error("invalid base58: {0}")]
    Base58(String),
    /// Invalid hex.
    #[error("invalid hex: {0}")]
    Hex(String),
    /// The decoded bytes have the wrong length.
    #[error("expected {expected} bytes, got {found}")]
    WrongLength {
        /// Bytes required.
        expected: usize,
        /// Bytes decoded.
        found: usize,
    },
    /// The bytes are not a valid key.
    #[error("invalid key: {0}")]
    InvalidKey(String),
    /// A peer id in a multibase other than `b` (lowercase base32).
    #[error(
        "peer id uses multibase prefix '{0}'; only CIDv1 in base32 ('b' prefix) \
         or base58 ('1…', 'Qm…') peer ids are accepted"
    )]
    UnsupportedMultibase(char),
    /// Neither a base58 peer id nor multibase text.
    #[error("not a peer id: expected base58 ('1…', 'Qm…') or CIDv1 base32 ('b…')")]
    UnrecognizedFormat,
    /// The CID is not version 1.
    #[error("CID version {0} is not allowed for peer ids: expected CIDv1")]
    CidVersion(u64),
    /// The CID's codec is not `libp2p-key` (0x72).
    #[error("CID codec 0x{0:x} is not libp2p-key (0x72)")]
    WrongCodec(u64),
    /// The CID's header is cut short or its varints are malformed.
    #[error("malformed CID: {0}")]
    MalformedCid(&'static str),
    /// The multihash is not a valid peer id.
    #[error("invalid peer id multihash: {0}")]
    InvalidMultihash(String),
}

/// Generates a fresh random ed25519 keypair.
pub fn generate_keypair() -> Keypair {
    Keypair::generate_ed25519()
}

/// The ed25519 keypair whose 32-byte secret is `seed`. Deterministic: meant
/// for tests and fixed identities, never for keys that must stay secret unless
/// the seed itself is secret and random.
pub fn keypair_from_seed(seed: [u8; 32]) -> Keypair {
    let secret = ed25519::SecretKey::try_from_bytes(seed)
        .expect("a 32-byte array always has the length of an ed25519 secret");
    ed25519::Keypair::from(secret).into()
}

/// Reads a keypair from `path`, which holds the libp2p protobuf encoding
/// ([`Keypair::to_protobuf_encoding`]). Ed25519, secp256k1 and ECDSA keys load.
pub fn load_keypair(path: &Path) -> Result<Keypair, KeyFileError> {
    let file = fs::File::open(path).map_err(|source| {
        if source.kind() == io::ErrorKind::NotFound {
            KeyFileError::Missing {
                path: path.to_owned(),
            }
        } else {
            KeyFileError::Unreadable {
                path: path.to_owned(),
                source,
            }
        }
    })?;
    let mut bytes = Vec::new();
    file.take(MAX_KEY_FILE_LEN + 1)
        .read_to_end(&mut bytes)
        .map_err(|source| KeyFileError::Unreadable {
            path: path.to_owned(),
            source,
        })?;
    let corrupt = |reason: String| KeyFileError::Corrupt {
        path: path.to_owned(),
        reason,
    };
    if bytes.len() as u64 > MAX_KEY_FILE_LEN {
        return Err(corrupt(format!(
            "larger than {MAX_KEY_FILE_LEN} bytes, too large for a key"
        )));
    }
    if bytes.is_empty() {
        return Err(corrupt("the file is empty".into()));
    }
    let key = Keypair::from_protobuf_encoding(&bytes).map_err(|e| corrupt(error_chain(&e)));
    wipe(&mut bytes);
    key
}

/// Writes `key` to `path` in the libp2p protobuf encoding, readable only by its
/// owner (mode 0600) on unix. The file is written beside `path` and renamed
/// over it, so a crash never leaves a half-written key; the parent directory is
/// created if missing.
pub fn save_keypair(path: &Path, key: &Keypair) -> Result<(), KeyFileError> {
    let mut bytes = key
        .to_protobuf_encoding()
        .map_err(|e| KeyFileError::Unencodable {
            path: path.to_owned(),
            reason: error_chain(&e),
        })?;
    let result = write_private_file(path, &bytes).map_err(|source| KeyFileError::Unwritable {
        path: path.to_owned(),
        source,
    });
    wipe(&mut bytes);
    result
}

/// Loads the keypair at `path`, or, if there is no file there, generates an
/// ed25519 keypair and saves it there. A file that exists but cannot be read
/// or parsed is an error and is left untouched: a node must not silently
/// change identity.
pub fn load_or_generate_keypair(path: &Path) -> Result<Keypair, KeyFileError> {
    match load_keypair(path) {
        Ok(key) => Ok(key),
        Err(KeyFileError::Missing { .. }) => {
            let key = generate_keypair();
            save_keypair(path, &key)?;
            tracing::info!(
                path = %path.display(),
                peer = %key.public().to_peer_id(),
                "generated a new identity key"
            );
            Ok(key)
        }
        Err(e) => Err(e),
    }
}

/// Parses the Zig libp2p tool's secret format: `b` followed by RFC 4648
/// base32 (lowercase, no padding) of the 32-byte ed25519 secret, 53 characters
/// in all. Surrounding whitespace (a trailing newline) is ignored.
pub fn parse_zig_secret(text: &str) -> Result<Keypair, KeyParseError> {
    let text = text.trim();
    if text.is_empty() {
        return Err(KeyParseError::Empty);
    }
    let body = text
        .strip_prefix(BASE32_PREFIX)
        .ok_or(KeyParseError::MissingPrefix {
            expected: BASE32_PREFIX,
        })?;
    if text.len() > MAX_KEY_TEXT_LEN {
        return Err(KeyParseError::TooLong {
            len: text.len(),
            max: MAX_KEY_TEXT_LEN,
        });
    }
    let mut secret = decode_base32_lower(body)?;
    if secret.len() != ED25519_KEY_LEN {
        let found = secret.len();
        wipe(&mut secret);
        return Err(KeyParseError::WrongLength {
            expected: ED25519_KEY_LEN,
            found,
        });
    }
    // `try_from_bytes` zeroes `secret` on success.
    ed25519::SecretKey::try_from_bytes(&mut secret)
        .map(|secret| ed25519::Keypair::from(secret).into())
        .map_err(|e| KeyParseError::InvalidKey(error_chain(&e)))
}

/// Formats `key` in the Zig libp2p tool's secret format (see
/// [`parse_zig_secret`]). `None` if `key` is not ed25519.
pub fn format_zig_secret(key: &Keypair) -> Option<String> {
    let keypair = key.clone().try_into_ed25519().ok()?;
    let secret = keypair.secret();
    let mut text = String::with_capacity(53);
    text.push(BASE32_PREFIX);
    text.push_str(&BASE32_NOPAD.encode(secret.as_ref()).to_ascii_lowercase());
    Some(text)
}

/// The [`PeerId`] of a raw 32-byte ed25519 public key given in hex (64 digits,
/// either case, optional `0x`; surrounding whitespace ignored), as
/// `bandwidth_perf`'s `RESPONDER_KEY_HEX`.
pub fn peer_id_from_ed25519_hex(hex: &str) -> Result<PeerId, KeyParseError> {
    let hex = hex.trim();
    let hex = hex
        .strip_prefix("0x")
        .or_else(|| hex.strip_prefix("0X"))
        .unwrap_or(hex);
    if hex.is_empty() {
        return Err(KeyParseError::Empty);
    }
    if hex.len() > MAX_KEY_TEXT_LEN {
        return Err(KeyParseError::TooLong {
            len: hex.len(),
            max: MAX_KEY_TEXT_LEN,
        });
    }
    let bytes = HEXLOWER_PERMISSIVE
        .decode(hex.as_bytes())
        .map_err(|e| KeyParseError::Hex(e.to_string()))?;
    if bytes.len() != ED25519_KEY_LEN {
        return Err(KeyParseError::WrongLength {
            expected: ED25519_KEY_LEN,
            found: bytes.len(),
        });
    }
    let key = ed25519::PublicKey::try_from_bytes(&bytes)
        .map_err(|e| KeyParseError::InvalidKey(error_chain(&e)))?;
    Ok(PublicKey::from(key).to_peer_id())
}

/// `peer` as CIDv1 text: multibase `b` (lowercase base32, no padding) of
/// `[0x01 (CIDv1), 0x72 (libp2p-key), multihash…]`. Ed25519 peer ids (identity
/// multihashes) come out as `bafzaa…`, sha256 ones as `bafzbe…`.
pub fn peer_id_to_cid(peer: &PeerId) -> String {
    let multihash = peer.to_bytes();
    let mut bytes = Vec::with_capacity(2 + multihash.len());
    // Both numbers are below 0x80, so each varint is the single byte.
    bytes.push(CID_V1 as u8);
    bytes.push(LIBP2P_KEY_CODEC as u8);
    bytes.extend_from_slice(&multihash);
    let mut text = String::with_capacity(1 + BASE32_NOPAD.encode_len(bytes.len()));
    text.push(BASE32_PREFIX);
    text.push_str(&BASE32_NOPAD.encode(&bytes).to_ascii_lowercase());
    text
}

/// Parses a peer id in either text form the libp2p peer-ids spec defines:
///
/// - a bare base58btc multihash, starting `1` (identity multihash, e.g.
///   `12D3KooW…` for ed25519) or `Qm` (sha256);
/// - a CIDv1 with the `libp2p-key` codec (0x72). Only the `b` multibase
///   (lowercase base32, no padding; e.g. `bafzaa…`) is accepted; other
///   multibases (`k51…` base36, `z…` base58, …) get
///   [`KeyParseError::UnsupportedMultibase`].
///
/// Surrounding whitespace is ignored.
pub fn parse_peer_id(text: &str) -> Result<PeerId, KeyParseError> {
    let text = text.trim();
    let first = text.chars().next().ok_or(KeyParseError::Empty)?;
    if text.len() > MAX_PEER_ID_TEXT_LEN {
        return Err(KeyParseError::TooLong {
            len: text.len(),
            max: MAX_PEER_ID_TEXT_LEN,
        });
    }
    if first == '1' || text.starts_with("Qm") {
        return text.parse::<PeerId>().map_err(|e| match e {
            libp2p_identity::ParseError::B58(e) => KeyParseError::Base58(e.to_string()),
            e => KeyParseError::InvalidMultihash(error_chain(&e)),
        });
    }
    if first == BASE32_PREFIX {
        return peer_id_from_cid_bytes(&decode_base32_lower(&text[1..])?);
    }
    if is_multibase_prefix(first) {
        return Err(KeyParseError::UnsupportedMultibase(first));
    }
    Err(KeyParseError::UnrecognizedFormat)
}

/// The peer id in binary CID bytes: `<varint 1><varint 0x72><multihash>`.
fn peer_id_from_cid_bytes(bytes: &[u8]) -> Result<PeerId, KeyParseError> {
    let (version, rest) = read_uvarint(bytes)?;
    if version != CID_V1 {
        return Err(KeyParseError::CidVersion(version));
    }
    let (codec, multihash) = read_uvarint(rest)?;
    if codec != LIBP2P_KEY_CODEC {
        return Err(KeyParseError::WrongCodec(codec));
    }
    PeerId::from_bytes(multihash).map_err(|e| KeyParseError::InvalidMultihash(error_chain(&e)))
}

/// Reads one unsigned varint (multiformats: LEB128, at most 9 bytes, minimal).
fn read_uvarint(bytes: &[u8]) -> Result<(u64, &[u8]), KeyParseError> {
    let mut value: u64 = 0;
    for (i, &byte) in bytes.iter().enumerate().take(9) {
        value |= u64::from(byte & 0x7f) << (7 * i);
        if byte & 0x80 == 0 {
            if byte == 0 && i > 0 {
                return Err(KeyParseError::MalformedCid(
                    "varint is not minimally encoded",
                ));
            }
            return Ok((value, &bytes[i + 1..]));
        }
    }
    if bytes.len() >= 9 {
        Err(KeyParseError::MalformedCid("varint longer than 9 bytes"))
    } else {
        Err(KeyParseError::MalformedCid("truncated"))
    }
}

/// Decodes lowercase, unpadded RFC 4648 base32. Uppercase is refused: in
/// multibase it is a different base (`B`), and a secret has one spelling.
fn decode_base32_lower(text: &str) -> Result<Vec<u8>, KeyParseError> {
    if let Some(pos) = text
        .bytes()
        .position(|b| !(b.is_ascii_lowercase() || (b'2'..=b'7').contains(&b)))
    {
        return Err(KeyParseError::Base32(format!(
            "invalid character at position {pos} (expected a-z or 2-7)"
        )));
    }
    BASE32_NOPAD
        .decode(text.to_ascii_uppercase().as_bytes())
        .map_err(|e| KeyParseError::Base32(e.to_string()))
}

/// Whether `c` starts some multibase encoding (multiformats/multibase table).
fn is_multibase_prefix(c: char) -> bool {
    matches!(
        c,
        '0' | '7'
            | '9'
            | 'f'
            | 'F'
            | 'v'
            | 'V'
            | 't'
            | 'T'
            | 'B'
            | 'c'
            | 'C'
            | 'h'
            | 'k'
            | 'K'
            | 'z'
            | 'Z'
            | 'm'
            | 'M'
            | 'u'
            | 'U'
            | 'p'
            | '\u{1F680}'
    )
}

/// An error and its sources, joined with `: `.
fn error_chain(e: &dyn std::error::Error) -> String {
    let mut text = e.to_string();
    let mut source = e.source();
    while let Some(s) = source {
        text.push_str(": ");
        text.push_str(&s.to_string());
        source = s.source();
    }
    text
}

/// Overwrites key material before it is dropped (best effort: `black_box`
/// keeps the compiler from dropping the writes as dead stores).
fn wipe(bytes: &mut [u8]) {
    bytes.fill(0);
    std::hint::black_box(bytes);
}

/// Writes `bytes` to a fresh temporary file beside `path` (mode 0600 on unix)
/// and renames it over `path`.
fn write_private_file(path: &Path, bytes: &[u8]) -> io::Result<()> {
    if let Some(parent) = path.parent().filter(|p| !p.as_os_str().is_empty()) {
        fs::create_dir_all(parent)?;
    }
    let mut tmp_name = path.file_name().unwrap_or_default().to_owned();
    tmp_name.push(".tmp");
    let tmp = path.with_file_name(tmp_name);
    // A stale temporary file from a crash may have other permissions.
    match fs::remove_file(&tmp) {
        Err(e) if e.kind() != io::ErrorKind::NotFound => return Err(e),
        _ => {}
    }
    let mut options = fs::OpenOptions::new();
    options.write(true).create_new(true);
    #[cfg(unix)]
    {
        use std::os::unix::fs::OpenOptionsExt;
        options.mode(0o600);
    }
    let written = options.open(&tmp).and_then(|mut file| {
        file.write_all(bytes)?;
        file.sync_all()
    });
    let renamed = written.and_then(|()| fs::rename(&tmp, path));
    if renamed.is_err() {
        let _ = fs::remove_file(&tmp);
    }
    renamed
}

#[cfg(test)]
mod tests {
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
}
