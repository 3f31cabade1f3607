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
mod tests;
