//! The environment variables `bandwidth_perf` reads, parsed into settings.
//!
//! Every reader takes a lookup function instead of the process environment,
//! so tests can feed values directly. An empty value counts as unset (so
//! `RESPONDER_KEY=` in a script means "none"). Errors name the variable and
//! its value, except for `SECRET_KEY`, whose value is never repeated.

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::path::Path;

use swarm::identity::{self, Keypair, PeerId};

/// Looks a variable up; `None` when unset.
pub type Lookup<'a> = &'a dyn Fn(&str) -> Option<String>;

/// The process environment as a [`Lookup`]. A value that is not UTF-8 is
/// passed on lossily, to fail parsing with a message rather than vanish.
pub fn process_env(name: &str) -> Option<String> {
    std::env::var_os(name).map(|v| v.to_string_lossy().into_owned())
}

/// The port both sides use unless told otherwise (the Zig tool's).
pub const DEFAULT_PORT: u16 = 54321;
/// Bytes downloaded unless `BYTE_SIZE` says otherwise.
pub const DEFAULT_BYTE_SIZE: u64 = 1 << 20;
/// Most parallel streams: the default QUIC stream limit of a responder.
pub const MAX_STREAMS: u32 = 256;
/// Bytes each way `bandwidth_perf loopback` moves unless told otherwise.
pub const DEFAULT_LOOPBACK_SIZE: u64 = 1 << 30;
/// Most iterations a measuring mode runs: keeps every loop bounded.
pub const MAX_ITERATIONS: u32 = 1_000_000;

/// A variable with a value we cannot use.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum EnvError {
    /// The value does not parse.
    #[error("bad {var}={value:?}: {reason}")]
    Invalid {
        /// The variable.
        var: &'static str,
        /// Its value.
        value: String,
        /// What is wrong with it.
        reason: String,
    },
    /// `SECRET_KEY` is unusable (its value is not shown: it is a secret).
    #[error("bad SECRET_KEY: {0}")]
    SecretKey(String),
}

/// Which transport the client dials.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientTransport {
    /// QUIC v1 (the default).
    Quic,
    /// TCP with Noise and Yamux.
    Tcp,
}

/// Which protocol the client runs.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum TransferProtocol {
    /// `/perf/1.0.0`.
    Perf,
    /// The legacy `/libp2p/test/data` (download only).
    TestData,
}

/// What the client measures.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum ClientMode {
    /// One transfer of `BYTE_SIZE` down and `UPLOAD_SIZE` up (the default).
    Transfer,
    /// Per iteration: a fresh connection, then a 1-byte perf run on it
    /// (8-byte header out, 1 byte back); each timed from the dial to the byte.
    Latency,
    /// Sequential handshakes: dial, wait until established, close.
    Connections,
    /// Sequential 1-byte perf runs, each on a new stream of one connection.
    Requests,
}

impl ClientMode {
    /// Iterations when `ITERATIONS` is not given.
    pub fn default_iterations(self) -> u32 {
        match self {
            ClientMode::Transfer => 1,
            ClientMode::Latency => 100,
            ClientMode::Connections => 1000,
            ClientMode::Requests => 10_000,
        }
    }

    /// The mode's name, as `MODE` takes it and the JSON lines print it.
    pub fn name(self) -> &'static str {
        match self {
            ClientMode::Transfer => "transfer",
            ClientMode::Latency => "latency",
            ClientMode::Connections => "connections",
            ClientMode::Requests => "requests",
        }
    }
}

/// Everything `bandwidth_perf server` needs.
#[derive(Debug)]
pub struct ServerSettings {
    /// Where to listen (UDP, QUIC).
    pub listen: SocketAddr,
    /// The host key.
    pub key: Keypair,
    /// The key was generated (no `SECRET_KEY`): print it so it can be reused.
    pub key_generated: bool,
}

/// Everything `bandwidth_perf client` needs.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct ClientSettings {
    /// The responder's UDP address.
    pub server: SocketAddr,
    /// The responder's PeerId; `None` accepts any (with a warning).
    pub responder: Option<PeerId>,
    /// Bytes to download, in all streams together.
    pub download: u64,
    /// Bytes to upload, in all streams together.
    pub upload: u64,
    /// The protocol to run.
    pub protocol: TransferProtocol,
    /// Parallel streams on the one connection.
    pub streams: u32,
    /// What to measure.
    pub mode: ClientMode,
    /// How many times (connections, requests) a measuring mode repeats.
    pub iterations: u32,
    /// QUIC or TCP.
    pub transport: ClientTransport,
}

/// Read the server's variables: `PORT`, `LISTEN_IP`, `SECRET_KEY`.
pub fn server_settings(env: Lookup<'_>) -> Result<ServerSettings, EnvError> {
    let port = read(env, "PORT", parse_port)?.unwrap_or(DEFAULT_PORT);
    let ip = read(env, "LISTEN_IP", parse_ip)?.unwrap_or(IpAddr::V4(Ipv4Addr::UNSPECIFIED));
    let (key, key_generated) = match secret_key(env)? {
        Some(key) => (key, false),
        None => (identity::generate_keypair(), true),
    };
    Ok(ServerSettings {
        listen: SocketAddr::new(ip, port),
        key,
        key_generated,
    })
}

/// Read the client's variables: `RESPONDER_KEY`, `RESPONDER_KEY_HEX`,
/// `RESPONDER_IP`, `RESPONDER_PORT`, `BYTE_SIZE`, `UPLOAD_SIZE`,
/// `PROTOCOL`, `STREAMS`, `MODE`, `ITERATIONS`.
pub fn client_settings(env: Lookup<'_>) -> Result<ClientSettings, EnvError> {
    let ip = read(env, "RESPONDER_IP", parse_ip)?.unwrap_or(IpAddr::V4(Ipv4Addr::LOCALHOST));
    let port = read(env, "RESPONDER_PORT", parse_dial_port)?.unwrap_or(DEFAULT_PORT);
    let mut settings = transfer_settings(env, DEFAULT_BYTE_SIZE, Some(0))?;
    settings.server = SocketAddr::new(ip, port);
    settings.responder = responder(env)?;
    Ok(settings)
}

/// Read what `bandwidth_perf loopback` uses: the client's variables less
/// the `RESPONDER_*` ones (it starts its own server), with 1 GiB as the
/// default of both `BYTE_SIZE` and `UPLOAD_SIZE` (upload 0 for test-data).
/// The server address and PeerId are filled in once the server listens.
pub fn loopback_settings(env: Lookup<'_>) -> Result<ClientSettings, EnvError> {
    transfer_settings(env, DEFAULT_LOOPBACK_SIZE, None)
}

/// The transfer and mode variables, with the given defaults (`None` for
/// the upload: as much as the download, or 0 for test-data).
fn transfer_settings(
    env: Lookup<'_>,
    default_download: u64,
    default_upload: Option<u64>,
) -> Result<ClientSettings, EnvError> {
    let protocol = read(env, "PROTOCOL", parse_protocol)?.unwrap_or(TransferProtocol::Perf);
    let default_upload = match protocol {
        TransferProtocol::TestData => 0,
        TransferProtocol::Perf => default_upload.unwrap_or(default_download),
    };
    let upload = read(env, "UPLOAD_SIZE", parse_size)?.unwrap_or(default_upload);
    if protocol == TransferProtocol::TestData && upload > 0 {
        return Err(EnvError::Invalid {
            var: "UPLOAD_SIZE",
            value: upload.to_string(),
            reason: "the test-data protocol only downloads; use PROTOCOL=perf".into(),
        });
    }
    let mode = read(env, "MODE", parse_mode)?.unwrap_or(ClientMode::Transfer);
    Ok(ClientSettings {
        server: SocketAddr::new(IpAddr::V4(Ipv4Addr::LOCALHOST), DEFAULT_PORT),
        responder: None,
        download: read(env, "BYTE_SIZE", parse_size)?.unwrap_or(default_download),
        upload,
        protocol,
        streams: read(env, "STREAMS", parse_streams)?.unwrap_or(1),
        mode,
        iterations: read(env, "ITERATIONS", parse_iterations)?
            .unwrap_or_else(|| mode.default_iterations()),
        transport: read(env, "TRANSPORT", parse_transport)?.unwrap_or(ClientTransport::Quic),
    })
}

/// The responder's PeerId from `RESPONDER_KEY` (`bafzaa…` or `12D3Koo…`),
/// else from `RESPONDER_KEY_HEX` (raw ed25519 public key), else `None`.
pub fn responder(env: Lookup<'_>) -> Result<Option<PeerId>, EnvError> {
    if let Some(peer) = read(env, "RESPONDER_KEY", |v| {
        identity::parse_peer_id(v).map_err(|e| e.to_string())
    })? {
        return Ok(Some(peer));
    }
    read(env, "RESPONDER_KEY_HEX", |v| {
        identity::peer_id_from_ed25519_hex(v).map_err(|e| e.to_string())
    })
}

/// The host key from `SECRET_KEY`: a Zig-format secret (`b` + base32 of
/// the 32-byte ed25519 secret) or the path of a key file. `None` if unset.
pub fn secret_key(env: Lookup<'_>) -> Result<Option<Keypair>, EnvError> {
    let Some(value) = env("SECRET_KEY").filter(|v| !v.trim().is_empty()) else {
        return Ok(None);
    };
    let path = Path::new(&value);
    if path.exists() {
        return identity::load_keypair(path)
            .map(Some)
            .map_err(|e| EnvError::SecretKey(e.to_string()));
    }
    identity::parse_zig_secret(&value).map(Some).map_err(|e| {
        EnvError::SecretKey(format!(
            "not an existing key file, nor a Zig-format secret ('b' + base32 \
             of the 32-byte ed25519 secret): {e}"
        ))
    })
}

/// Parse a byte count: decimal (`1048576`), hex (`0x100000`), either one
/// optionally followed by `KiB`, `MiB` or `GiB` (any case, a space allowed).
pub fn parse_size(text: &str) -> Result<u64, String> {
    const FORMS: &str =
        "expected a decimal or 0x hex number, optionally followed by KiB, MiB or GiB";
    let text = text.trim();
    let (radix, rest) = match text.strip_prefix("0x").or_else(|| text.strip_prefix("0X")) {
        Some(hex) => (16, hex),
        None => (10, text),
    };
    let digits_end = rest
        .find(|c: char| !c.is_digit(radix))
        .unwrap_or(rest.len());
    let (digits, unit) = rest.split_at(digits_end);
    if digits.is_empty() {
        return Err(format!("not a size: {FORMS}"));
    }
    let number = u64::from_str_radix(digits, radix).map_err(|_| "too large".to_string())?;
    let unit = unit.trim_start();
    let scale: u64 = match unit.to_ascii_lowercase().as_str() {
        "" => 1,
        "kib" => 1 << 10,
        "mib" => 1 << 20,
        "gib" => 1 << 30,
        _ => return Err(format!("unknown unit {unit:?}: {FORMS}")),
    };
    number
        .checked_mul(scale)
        .ok_or_else(|| "too large".to_string())
}

/// A port to listen on; 0 picks a free one.
pub fn parse_port(text: &str) -> Result<u16, String> {
    text.trim()
        .parse()
        .map_err(|_| "not a port: expected a number from 0 to 65535".to_string())
}

/// A port to dial: 1 to 65535.
pub fn parse_dial_port(text: &str) -> Result<u16, String> {
    match parse_port(text)? {
        0 => Err("port 0 cannot be dialed".into()),
        port => Ok(port),
    }
}

/// An IPv4 or IPv6 address (no host names).
pub fn parse_ip(text: &str) -> Result<IpAddr, String> {
    text.trim()
        .parse()
        .map_err(|_| "not an IP address: expected e.g. 127.0.0.1 or ::1".to_string())
}

/// `perf` or `test-data` (or their protocol ids).
pub fn parse_protocol(text: &str) -> Result<TransferProtocol, String> {
    match text.trim() {
        "perf" | protocols::perf::PROTOCOL_ID => Ok(TransferProtocol::Perf),
        "test-data" | protocols::test_data::PROTOCOL_ID => Ok(TransferProtocol::TestData),
        _ => Err("unknown protocol: expected perf or test-data".into()),
    }
}

/// `quic` / `quic-v1` or `tcp`.
pub fn parse_transport(text: &str) -> Result<ClientTransport, String> {
    match text.trim() {
        "quic" | "quic-v1" => Ok(ClientTransport::Quic),
        "tcp" => Ok(ClientTransport::Tcp),
        _ => Err("unknown transport: expected quic-v1 or tcp".into()),
    }
}

/// A stream count from 1 to [`MAX_STREAMS`].
pub fn parse_streams(text: &str) -> Result<u32, String> {
    let bad = || format!("expected a number of streams from 1 to {MAX_STREAMS}");
    let n: u32 = text.trim().parse().map_err(|_| bad())?;
    if (1..=MAX_STREAMS).contains(&n) {
        Ok(n)
    } else {
        Err(bad())
    }
}

/// `transfer`, `latency`, `connections` or `requests`.
pub fn parse_mode(text: &str) -> Result<ClientMode, String> {
    match text.trim() {
        "transfer" => Ok(ClientMode::Transfer),
        "latency" => Ok(ClientMode::Latency),
        "connections" => Ok(ClientMode::Connections),
        "requests" => Ok(ClientMode::Requests),
        _ => Err("unknown mode: expected transfer, latency, connections or requests".into()),
    }
}

/// An iteration count from 1 to [`MAX_ITERATIONS`].
pub fn parse_iterations(text: &str) -> Result<u32, String> {
    let bad = || format!("expected a number of iterations from 1 to {MAX_ITERATIONS}");
    let n: u32 = text.trim().parse().map_err(|_| bad())?;
    if (1..=MAX_ITERATIONS).contains(&n) {
        Ok(n)
    } else {
        Err(bad())
    }
}

/// Read and parse one variable; unset or empty gives `None`.
fn read<T>(
    env: Lookup<'_>,
    var: &'static str,
    parse: impl FnOnce(&str) -> Result<T, String>,
) -> Result<Option<T>, EnvError> {
    match env(var) {
        Some(value) if !value.trim().is_empty() => parse(&value)
            .map(Some)
            .map_err(|reason| EnvError::Invalid { var, value, reason }),
        _ => Ok(None),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    fn env_of(vars: &[(&str, &str)]) -> impl Fn(&str) -> Option<String> {
        let vars: Vec<(String, String)> = vars
            .iter()
            .map(|(k, v)| (k.to_string(), v.to_string()))
            .collect();
        move |name| vars.iter().find(|(k, _)| k == name).map(|(_, v)| v.clone())
    }

    fn client(vars: &[(&str, &str)]) -> Result<ClientSettings, EnvError> {
        client_settings(&env_of(vars))
    }

    fn invalid_var(e: EnvError) -> &'static str {
        match e {
            EnvError::Invalid { var, .. } => var,
            other => panic!("expected Invalid, got {other:?}"),
        }
    }

    #[test]
    fn sizes_in_every_form() {
        for (text, value) in [
            ("0", 0),
            ("1048576", 1 << 20),
            (" 42 ", 42),
            ("0x100000", 1 << 20),
            ("0XfF", 255),
            ("1KiB", 1024),
            ("10 MiB", 10 << 20),
            ("2gib", 2 << 30),
            ("0x10KiB", 16 << 10),
            ("18446744073709551615", u64::MAX),
        ] {
            assert_eq!(parse_size(text), Ok(value), "{text:?}");
        }
    }

    #[test]
    fn bad_sizes_say_why() {
        for (text, words) in [
            ("", "not a size"),
            ("abc", "not a size"),
            ("-5", "not a size"),
            ("0x", "not a size"),
            ("1.5GiB", "unknown unit \".5GiB\""),
            ("10MB", "unknown unit \"MB\""),
            ("10 k", "unknown unit \"k\""),
            ("18446744073709551616", "too large"),
            ("17179869184GiB", "too large"),
        ] {
            let e = parse_size(text).expect_err(text);
            assert!(e.contains(words), "{text:?} gave {e:?}");
        }
    }

    #[test]
    fn client_defaults() {
        let s = client(&[]).unwrap();
        assert_eq!(
            s,
            ClientSettings {
                server: "127.0.0.1:54321".parse().unwrap(),
                responder: None,
                download: 1 << 20,
                upload: 0,
                protocol: TransferProtocol::Perf,
                streams: 1,
                mode: ClientMode::Transfer,
                iterations: 1,
                transport: ClientTransport::Quic,
            }
        );
        assert_eq!(
            client(&[("TRANSPORT", "tcp")]).unwrap().transport,
            ClientTransport::Tcp
        );
        assert!(client(&[("TRANSPORT", "udp")]).is_err());
    }

    #[test]
    fn modes_and_their_default_iterations() {
        for (mode, iterations) in [
            ("transfer", 1),
            ("latency", 100),
            ("connections", 1000),
            ("requests", 10_000),
        ] {
            let s = client(&[("MODE", mode)]).unwrap();
            assert_eq!((s.mode.name(), s.iterations), (mode, iterations));
        }
        let s = client(&[("MODE", "requests"), ("ITERATIONS", "7")]).unwrap();
        assert_eq!((s.mode, s.iterations), (ClientMode::Requests, 7));
    }

    #[test]
    fn loopback_defaults_to_a_gib_each_way_and_ignores_responder_variables() {
        let env = env_of(&[("RESPONDER_KEY", "not a key"), ("RESPONDER_PORT", "x")]);
        let s = loopback_settings(&env).unwrap();
        assert_eq!((s.download, s.upload), (1 << 30, 1 << 30));
        assert_eq!(s.responder, None);
        let s = loopback_settings(&env_of(&[("BYTE_SIZE", "1MiB"), ("UPLOAD_SIZE", "0")])).unwrap();
        assert_eq!((s.download, s.upload), (1 << 20, 0));
        let s = loopback_settings(&env_of(&[("PROTOCOL", "test-data")])).unwrap();
        assert_eq!((s.download, s.upload), (1 << 30, 0));
    }

    #[test]
    fn client_reads_every_variable() {
        let key = identity::keypair_from_seed([7; 32]);
        let peer = key.public().to_peer_id();
        let s = client(&[
            ("RESPONDER_KEY", &peer.to_string()),
            ("RESPONDER_IP", "::1"),
            ("RESPONDER_PORT", "4001"),
            ("BYTE_SIZE", "0x10"),
            ("UPLOAD_SIZE", "3 KiB"),
            ("PROTOCOL", "perf"),
            ("STREAMS", "4"),
        ])
        .unwrap();
        assert_eq!(s.server, "[::1]:4001".parse().unwrap());
        assert_eq!(s.responder, Some(peer));
        assert_eq!((s.download, s.upload, s.streams), (16, 3072, 4));
        let s = client(&[("PROTOCOL", "test-data")]).unwrap();
        assert_eq!(s.protocol, TransferProtocol::TestData);
    }

    #[test]
    fn responder_key_in_both_text_forms_and_hex() {
        let key = identity::keypair_from_seed([9; 32]);
        let peer = key.public().to_peer_id();
        let cid = identity::peer_id_to_cid(&peer);
        assert!(cid.starts_with("bafzaa"), "{cid}");
        let hex: String = key
            .public()
            .try_into_ed25519()
            .unwrap()
            .to_bytes()
            .iter()
            .map(|b| format!("{b:02x}"))
            .collect();
        for vars in [
            vec![("RESPONDER_KEY", cid.as_str())],
            vec![("RESPONDER_KEY", &peer.to_string())],
            vec![("RESPONDER_KEY_HEX", hex.as_str())],
            // RESPONDER_KEY wins; an empty one counts as unset.
            vec![
                ("RESPONDER_KEY", &peer.to_string()),
                ("RESPONDER_KEY_HEX", "zz"),
            ],
            vec![("RESPONDER_KEY", ""), ("RESPONDER_KEY_HEX", hex.as_str())],
        ] {
            assert_eq!(client(&vars).unwrap().responder, Some(peer), "{vars:?}");
        }
    }

    #[test]
    fn bad_client_values_name_their_variable() {
        for (var, value) in [
            ("RESPONDER_KEY", "12D3KooWnotapeerid"),
            ("RESPONDER_KEY", "bafzaanope"),
            ("RESPONDER_KEY_HEX", "abcd"),
            ("RESPONDER_KEY_HEX", "not hex at all"),
            ("RESPONDER_IP", "localhost:1"),
            ("RESPONDER_PORT", "65536"),
            ("RESPONDER_PORT", "0"),
            ("BYTE_SIZE", "lots"),
            ("UPLOAD_SIZE", "1TiB"),
            ("PROTOCOL", "tcp"),
            ("STREAMS", "0"),
            ("STREAMS", "257"),
            ("STREAMS", "two"),
            ("MODE", "fast"),
            ("ITERATIONS", "0"),
            ("ITERATIONS", "1000001"),
        ] {
            let e = client(&[(var, value)]).expect_err(value);
            let message = e.to_string();
            assert!(
                message.starts_with(&format!("bad {var}=\"")),
                "{var}={value}: {message}"
            );
            assert_eq!(invalid_var(e), var);
        }
    }

    #[test]
    fn test_data_does_not_upload() {
        let e = client(&[("PROTOCOL", "test-data"), ("UPLOAD_SIZE", "1")]).unwrap_err();
        assert_eq!(invalid_var(e), "UPLOAD_SIZE");
    }

    #[test]
    fn server_defaults_generate_a_key() {
        let s = server_settings(&env_of(&[])).unwrap();
        assert_eq!(s.listen, "0.0.0.0:54321".parse().unwrap());
        assert!(s.key_generated);
    }

    #[test]
    fn server_reads_port_ip_and_zig_secret() {
        let key = identity::keypair_from_seed([3; 32]);
        let secret = identity::format_zig_secret(&key).unwrap();
        let s = server_settings(&env_of(&[
            ("PORT", "0"),
            ("LISTEN_IP", "::"),
            ("SECRET_KEY", &secret),
        ]))
        .unwrap();
        assert_eq!(s.listen, "[::]:0".parse().unwrap());
        assert!(!s.key_generated);
        assert_eq!(s.key.public(), key.public());
    }

    #[test]
    fn server_reads_a_key_file() {
        let key = identity::keypair_from_seed([4; 32]);
        let path = std::env::temp_dir().join(format!("bandwidth_perf_key_{}", std::process::id()));
        std::fs::write(&path, key.to_protobuf_encoding().unwrap()).unwrap();
        let s = server_settings(&env_of(&[("SECRET_KEY", path.to_str().unwrap())]));
        let _ = std::fs::remove_file(&path);
        assert_eq!(s.unwrap().key.public(), key.public());
    }

    #[test]
    fn bad_secret_key_is_explained_without_echoing_it() {
        for value in ["bnotbase32!", "/no/such/key/file", "b234567"] {
            let e = server_settings(&env_of(&[("SECRET_KEY", value)])).unwrap_err();
            let message = e.to_string();
            assert!(matches!(e, EnvError::SecretKey(_)), "{message}");
            assert!(!message.contains(value), "the secret leaked: {message}");
            assert!(message.contains("Zig-format"), "{message}");
        }
    }

    #[test]
    fn bad_server_values_name_their_variable() {
        for (var, value) in [("PORT", "http"), ("PORT", "-1"), ("LISTEN_IP", "0.0.0")] {
            let e = server_settings(&env_of(&[(var, value)])).unwrap_err();
            assert_eq!(invalid_var(e), var);
        }
    }
}
