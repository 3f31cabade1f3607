//! Tests of [`super`]: libp2p TLS certificates and verifiers, against the spec's vectors.
use super::*;
use rustls::{ClientConnection, Connection, ServerConnection};

// libp2p/specs tls/tls.md, "Test vectors".
const VECTOR_ED25519: &str = "308201ae30820156a0030201020204499602d2300a06082a8648ce3d040302302031123010060355040a13096c69627032702e696f310a300806035504051301313020170d3735303130313133303030305a180f34303936303130313133303030305a302031123010060355040a13096c69627032702e696f310a300806035504051301313059301306072a8648ce3d020106082a8648ce3d030107034200040c901d423c831ca85e27c73c263ba132721bb9d7a84c4f0380b2a6756fd601331c8870234dec878504c174144fa4b14b66a651691606d8173e55bd37e381569ea37c307a3078060a2b0601040183a25a0101046a3068042408011220a77f1d92fedb59dddaea5a1c4abd1ac2fbde7d7b879ed364501809923d7c11b90440d90d2769db992d5e6195dbb08e706b6651e024fda6cfb8846694a435519941cac215a8207792e42849cccc6cd8136c6e4bde92a58c5e08cfd4206eb5fe0bf909300a06082a8648ce3d0403020346003043021f50f6b6c52711a881778718238f650c9fb48943ae6ee6d28427dc6071ae55e702203625f116a7a454db9c56986c82a25682f7248ea1cb764d322ea983ed36a31b77";
const VECTOR_ECDSA: &str = "308201f63082019da0030201020204499602d2300a06082a8648ce3d040302302031123010060355040a13096c69627032702e696f310a300806035504051301313020170d3735303130313133303030305a180f34303936303130313133303030305a302031123010060355040a13096c69627032702e696f310a300806035504051301313059301306072a8648ce3d020106082a8648ce3d030107034200040c901d423c831ca85e27c73c263ba132721bb9d7a84c4f0380b2a6756fd601331c8870234dec878504c174144fa4b14b66a651691606d8173e55bd37e381569ea381c23081bf3081bc060a2b0601040183a25a01010481ad3081aa045f0803125b3059301306072a8648ce3d020106082a8648ce3d03010703420004bf30511f909414ebdd3242178fd290f093a551cf75c973155de0bb5a96fedf6cb5d52da7563e794b512f66e60c7f55ba8a3acf3dd72a801980d205e8a1ad29f2044730450220064ea8124774caf8f50e57f436aa62350ce652418c019df5d98a3ac666c9386a022100aa59d704a931b5f72fb9222cb6cc51f954d04a4e2e5450f8805fe8918f71eaae300a06082a8648ce3d04030203470030440220799395b0b6c1e940a7e4484705f610ab51ed376f19ff9d7c16757cfbf61b8d4302206205c03fbb0f95205c779be86581d3e31c01871ad5d1f3435bcf375cb0e5088a";
const VECTOR_SECP256K1: &str = "308201ba3082015fa0030201020204499602d2300a06082a8648ce3d040302302031123010060355040a13096c69627032702e696f310a300806035504051301313020170d3735303130313133303030305a180f34303936303130313133303030305a302031123010060355040a13096c69627032702e696f310a300806035504051301313059301306072a8648ce3d020106082a8648ce3d030107034200040c901d423c831ca85e27c73c263ba132721bb9d7a84c4f0380b2a6756fd601331c8870234dec878504c174144fa4b14b66a651691606d8173e55bd37e381569ea38184308181307f060a2b0601040183a25a01010471306f0425080212210206dc6968726765b820f050263ececf7f71e4955892776c0970542efd689d2382044630440220145e15a991961f0d08cd15425bb95ec93f6ffa03c5a385eedc34ecf464c7a8ab022026b3109b8a3f40ef833169777eb2aa337cfb6282f188de0666d1bcec2a4690dd300a06082a8648ce3d0403020349003046022100e1a217eeef9ec9204b3f774a08b70849646b6a1e6b8b27f93dc00ed58545d9fe022100b00dafa549d0f03547878338c7b15e7502888f6d45db387e5ae6b5d46899cef0";
const VECTOR_INVALID: &str = "308201f73082019da0030201020204499602d2300a06082a8648ce3d040302302031123010060355040a13096c69627032702e696f310a300806035504051301313020170d3735303130313133303030305a180f34303936303130313133303030305a302031123010060355040a13096c69627032702e696f310a300806035504051301313059301306072a8648ce3d020106082a8648ce3d030107034200040c901d423c831ca85e27c73c263ba132721bb9d7a84c4f0380b2a6756fd601331c8870234dec878504c174144fa4b14b66a651691606d8173e55bd37e381569ea381c23081bf3081bc060a2b0601040183a25a01010481ad3081aa045f0803125b3059301306072a8648ce3d020106082a8648ce3d03010703420004bf30511f909414ebdd3242178fd290f093a551cf75c973155de0bb5a96fedf6cb5d52da7563e794b512f66e60c7f55ba8a3acf3dd72a801980d205e8a1ad29f204473045022100bb6e03577b7cc7a3cd1558df0da2b117dfdcc0399bc2504ebe7de6f65cade72802206de96e2a5be9b6202adba24ee0362e490641ac45c240db71fe955f2c5cf8df6e300a06082a8648ce3d0403020348003045022100e847f267f43717358f850355bdcabbefb2cfbf8a3c043b203a14788a092fe8db022027c1d04a2d41fd6b57a7e8b3989e470325de4406e52e084e34a3fd56eef0d0df";

fn vector(hex: &str) -> CertificateDer<'static> {
    CertificateDer::from(data_encoding::HEXLOWER.decode(hex.as_bytes()).unwrap())
}

fn all_key_types() -> [Keypair; 3] {
    [
        Keypair::generate_ed25519(),
        Keypair::generate_secp256k1(),
        Keypair::generate_ecdsa(),
    ]
}

/// A certificate built the way `generate_certificate` builds one, after `tweak` had its say
/// (the key is the one the certificate will be self-signed with).
fn certificate_with(
    host: &Keypair,
    tweak: impl FnOnce(&mut rcgen::CertificateParams, &rcgen::KeyPair),
) -> CertificateDer<'static> {
    let key = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
    let mut params = rcgen::CertificateParams::default();
    params.custom_extensions =
        vec![libp2p_extension(host, &key.subject_public_key_info()).unwrap()];
    tweak(&mut params, &key);
    params.self_signed(&key).unwrap().der().clone()
}

#[test]
fn a_remembered_certificate_is_still_checked_for_expiry() {
    let host = Keypair::generate_ed25519();
    let cert = certificate_with(&host, |params, _| {
        params.not_before = rcgen::date_time_ymd(2020, 1, 1);
        params.not_after = rcgen::date_time_ymd(2030, 1, 1);
    });
    let cache = VerifiedCertificates::default();
    let in_2028 = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_830_000_000));
    let in_2031 = UnixTime::since_unix_epoch(std::time::Duration::from_secs(1_930_000_000));
    let first = verify_cached(&cache, &cert, in_2028).expect("valid in 2028");
    assert_eq!(first.peer, host.public().to_peer_id());
    assert!(cache.get(cert.as_ref()).is_some(), "remembered");
    let again = verify_cached(&cache, &cert, in_2028).expect("still valid");
    assert_eq!(again.peer, first.peer);
    assert!(matches!(
        verify_cached(&cache, &cert, in_2031),
        Err(CertificateError::Expired)
    ));
}

#[test]
fn a_refused_certificate_is_not_remembered() {
    let host = Keypair::generate_ed25519();
    let mut der = certificate_with(&host, |_, _| {}).to_vec();
    // Flip a bit of the self-signature: every check but the signature passes.
    *der.last_mut().unwrap() ^= 1;
    let cert = CertificateDer::from(der);
    let cache = VerifiedCertificates::default();
    assert!(verify_cached(&cache, &cert, unix_now()).is_err());
    assert!(cache.get(cert.as_ref()).is_none());
    assert!(verify_cached(&cache, &cert, unix_now()).is_err());
}

fn verify_error(cert: &CertificateDer<'_>) -> CertificateError {
    peer_id_from_certificate(cert).expect_err("certificate must be refused")
}

/// Our typed error, back out of the rustls error a verifier returned.
fn rejection<E: std::error::Error + 'static>(error: &rustls::Error) -> Option<&E> {
    match error {
        rustls::Error::InvalidCertificate(rustls::CertificateError::Other(other)) => {
            other.0.downcast_ref()
        }
        _ => None,
    }
}

#[derive(Debug, PartialEq)]
enum Side {
    Client,
    Server,
}

fn connect(
    client: &TlsIdentity,
    expected: Option<PeerId>,
    server: &TlsIdentity,
) -> (Connection, Connection, ObservedPeer) {
    let (client_config, observed) = client.client_config(expected).unwrap();
    let name = ServerName::try_from("libp2p").unwrap();
    let client = ClientConnection::new(client_config, name).unwrap();
    let server = ServerConnection::new(server.server_config().unwrap()).unwrap();
    (client.into(), server.into(), observed)
}

/// Moves records both ways until neither side has anything to send; the first error wins.
fn pump(client: &mut Connection, server: &mut Connection) -> Result<(), (Side, rustls::Error)> {
    for _ in 0..16 {
        let sent = transfer(client, server).map_err(|e| (Side::Server, e))?
            + transfer(server, client).map_err(|e| (Side::Client, e))?;
        if sent == 0 {
            return Ok(());
        }
    }
    panic!("handshake did not settle in 16 rounds");
}

/// Delivers everything `from` wants to send to `to`; returns how many bytes moved.
fn transfer(from: &mut Connection, to: &mut Connection) -> Result<usize, rustls::Error> {
    let mut bytes = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut bytes).unwrap();
    }
    let mut unread = &bytes[..];
    while !unread.is_empty() {
        to.read_tls(&mut unread).unwrap();
        to.process_new_packets()?;
    }
    Ok(bytes.len())
}

#[test]
fn spec_vectors_valid_certificates_resolve_to_their_peer_ids() {
    for (hex, peer) in [
        (
            VECTOR_ED25519,
            "12D3KooWM6CgA9iBFZmcYAHA6A2qvbAxqfkmrYiRQuz3XEsk4Ksv",
        ),
        (
            VECTOR_ECDSA,
            "QmfXbAwNjJLXfesgztEHe8HwgVDCMMpZ9Eax1HYq6hn9uE",
        ),
        (
            VECTOR_SECP256K1,
            "16Uiu2HAkutTMoTzDw1tCvSRtu6YoixJwS46S1ZFxW8hSx9fWHiPs",
        ),
    ] {
        let expected: PeerId = peer.parse().unwrap();
        assert_eq!(peer_id_from_certificate(&vector(hex)).unwrap(), expected);
        assert_eq!(peer_id_from_chain(&[vector(hex)]).unwrap(), expected);
    }
}

#[test]
fn spec_vector_invalid_certificate_is_rejected() {
    let error = verify_error(&vector(VECTOR_INVALID));
    assert!(
        matches!(error, CertificateError::BadHostKeySignature),
        "{error:?}"
    );
}

#[test]
fn generated_certificate_round_trips_to_own_peer_id() {
    for host in all_key_types() {
        let identity = TlsIdentity::new(&host).unwrap();
        let chain = &identity.certified_key.cert;
        assert_eq!(chain.len(), 1);
        assert_eq!(
            peer_id_from_chain(chain).unwrap(),
            host.public().to_peer_id()
        );

        let parsed = parse_certificate(&chain[0]).unwrap();
        let extension = parsed
            .extensions()
            .iter()
            .find(|e| e.oid.as_bytes() == EXTENSION_OID_DER)
            .unwrap();
        assert!(extension.critical, "marked critical like rust-libp2p");
        assert_eq!(extension.oid.to_id_string(), "1.3.6.1.4.1.53594.1.1");
    }
}

#[test]
fn each_identity_gets_a_fresh_certificate_key_and_serial() {
    let host = Keypair::generate_ed25519();
    let a = TlsIdentity::new(&host).unwrap();
    let b = TlsIdentity::new(&host).unwrap();
    let a = parse_certificate(&a.certified_key.cert[0]).unwrap();
    let b = parse_certificate(&b.certified_key.cert[0]).unwrap();
    assert_ne!(a.public_key().raw, b.public_key().raw);
    assert_ne!(a.raw_serial(), b.raw_serial());
}

#[test]
fn handshake_with_expected_peer_id_succeeds_and_both_sides_see_each_other() {
    let [ed25519, secp256k1, ecdsa] = all_key_types();
    for (client_host, server_host) in [
        (&ed25519, &secp256k1),
        (&secp256k1, &ecdsa),
        (&ecdsa, &ed25519),
    ] {
        let client_id = client_host.public().to_peer_id();
        let server_id = server_host.public().to_peer_id();
        let client_tls = TlsIdentity::new(client_host).unwrap();
        let server_tls = TlsIdentity::new(server_host).unwrap();
        let (mut client, mut server, observed) = connect(&client_tls, Some(server_id), &server_tls);

        pump(&mut client, &mut server).unwrap();

        assert!(!client.is_handshaking() && !server.is_handshaking());
        assert_eq!(observed.get(), Some(server_id));
        let seen_by_client = peer_id_from_chain(client.peer_certificates().unwrap());
        let seen_by_server = peer_id_from_chain(server.peer_certificates().unwrap());
        assert_eq!(seen_by_client.unwrap(), server_id);
        assert_eq!(seen_by_server.unwrap(), client_id);
        for conn in [&client, &server] {
            assert_eq!(conn.alpn_protocol(), Some(ALPN));
            assert_eq!(
                conn.protocol_version(),
                Some(rustls::ProtocolVersion::TLSv1_3)
            );
        }
    }
}

#[test]
fn repeated_handshakes_never_resume_so_the_verifier_always_runs() {
    let server_host = Keypair::generate_ed25519();
    let client_tls = TlsIdentity::new(&Keypair::generate_ed25519()).unwrap();
    let server_tls = TlsIdentity::new(&server_host).unwrap();
    let (client_config, _) = client_tls
        .client_config(Some(server_host.public().to_peer_id()))
        .unwrap();
    let server_config = server_tls.server_config().unwrap();
    for _ in 0..2 {
        let name = ServerName::try_from("libp2p").unwrap();
        let client = ClientConnection::new(client_config.clone(), name).unwrap();
        let server = ServerConnection::new(server_config.clone()).unwrap();
        let (mut client, mut server) = (client.into(), server.into());
        pump(&mut client, &mut server).unwrap();
        assert_eq!(client.handshake_kind(), Some(rustls::HandshakeKind::Full));
    }
}

#[test]
fn handshake_without_expected_peer_id_accepts_any_valid_peer() {
    let server_host = Keypair::generate_ed25519();
    let client_tls = TlsIdentity::new(&Keypair::generate_ed25519()).unwrap();
    let server_tls = TlsIdentity::new(&server_host).unwrap();
    let (mut client, mut server, observed) = connect(&client_tls, None, &server_tls);

    pump(&mut client, &mut server).unwrap();

    assert_eq!(observed.get(), Some(server_host.public().to_peer_id()));
}

#[test]
fn handshake_with_wrong_expected_peer_id_fails_and_records_actual() {
    let server_host = Keypair::generate_ed25519();
    let actual = server_host.public().to_peer_id();
    let expected = Keypair::generate_ed25519().public().to_peer_id();
    let client_tls = TlsIdentity::new(&Keypair::generate_ed25519()).unwrap();
    let server_tls = TlsIdentity::new(&server_host).unwrap();
    let (mut client, mut server, observed) = connect(&client_tls, Some(expected), &server_tls);

    let (side, error) = pump(&mut client, &mut server).unwrap_err();

    assert_eq!(side, Side::Client);
    let mismatch = rejection::<PeerIdMismatch>(&error).expect("a PeerId mismatch");
    assert_eq!((mismatch.expected, mismatch.actual), (expected, actual));
    assert_eq!(observed.get(), Some(actual));
    assert!(client.is_handshaking());
}

/// An identity presenting `certificate_of`'s certificate but signing with `key_of`'s key.
fn impostor(certificate_of: &TlsIdentity, key_of: &TlsIdentity) -> TlsIdentity {
    TlsIdentity {
        certified_key: Arc::new(CertifiedKey::new(
            certificate_of.certified_key.cert.clone(),
            key_of.certified_key.key.clone(),
        )),
        provider: certificate_of.provider.clone(),
        verified: Arc::default(),
    }
}

#[test]
fn handshake_signed_by_another_key_than_the_certificates_is_rejected() {
    let victim_host = Keypair::generate_ed25519();
    let victim = TlsIdentity::new(&victim_host).unwrap();
    let attacker = TlsIdentity::new(&Keypair::generate_ed25519()).unwrap();
    let honest = TlsIdentity::new(&Keypair::generate_ed25519()).unwrap();
    let fake = impostor(&victim, &attacker);

    // Fake server: the client checks CertificateVerify against the certificate's key.
    let (mut client, mut server, _) =
        connect(&honest, Some(victim_host.public().to_peer_id()), &fake);
    let (side, error) = pump(&mut client, &mut server).unwrap_err();
    assert_eq!(side, Side::Client);
    assert!(
        matches!(
            error,
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature)
        ),
        "{error:?}"
    );

    // Fake client: the server does the same check.
    let (mut client, mut server, _) = connect(&fake, None, &honest);
    let (side, error) = pump(&mut client, &mut server).unwrap_err();
    assert_eq!(side, Side::Server);
    assert!(
        matches!(
            error,
            rustls::Error::InvalidCertificate(rustls::CertificateError::BadSignature)
        ),
        "{error:?}"
    );
}

#[test]
fn client_without_certificate_is_rejected_by_the_server() {
    let server_tls = TlsIdentity::new(&Keypair::generate_ed25519()).unwrap();
    let verifier = ServerVerifier {
        algorithms: server_tls.provider.signature_verification_algorithms,
        expected: None,
        observed: ObservedPeer::default(),
        verified: Arc::default(),
    };
    let mut config = rustls::ClientConfig::builder_with_provider(server_tls.provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(verifier))
        .with_no_client_auth();
    config.alpn_protocols = vec![ALPN.to_vec()];
    let name = ServerName::try_from("libp2p").unwrap();
    let mut client = ClientConnection::new(Arc::new(config), name)
        .unwrap()
        .into();
    let mut server = ServerConnection::new(server_tls.server_config().unwrap())
        .unwrap()
        .into();

    let (side, error) = pump(&mut client, &mut server).unwrap_err();

    assert_eq!(side, Side::Server);
    assert!(
        matches!(error, rustls::Error::NoCertificatesPresented),
        "{error:?}"
    );
}

/// A TLS 1.2-only ClientHello (no supported_versions extension), written by hand because
/// our rustls build has no TLS 1.2 support to make one with.
fn tls12_client_hello() -> Vec<u8> {
    let mut extensions = Vec::new();
    // signature_algorithms: ecdsa_secp256r1_sha256, rsa_pss_rsae_sha256
    extensions.extend_from_slice(&[0, 0x0d, 0, 6, 0, 4, 0x04, 0x03, 0x08, 0x04]);
    // supported_groups: x25519, secp256r1
    extensions.extend_from_slice(&[0, 0x0a, 0, 6, 0, 4, 0, 0x1d, 0, 0x17]);
    // ec_point_formats: uncompressed
    extensions.extend_from_slice(&[0, 0x0b, 0, 2, 1, 0]);
    // application_layer_protocol_negotiation: "libp2p"
    extensions.extend_from_slice(&[0, 0x10, 0, 9, 0, 7, 6]);
    extensions.extend_from_slice(ALPN);

    let mut hello = vec![0x03, 0x03]; // client_version TLS 1.2
    hello.extend_from_slice(&[0x42; 32]); // random
    hello.push(0); // empty session id
    // ECDHE-ECDSA-AES128-GCM-SHA256, ECDHE-RSA-AES128-GCM-SHA256
    hello.extend_from_slice(&[0, 4, 0xc0, 0x2b, 0xc0, 0x2f]);
    hello.extend_from_slice(&[1, 0]); // null compression
    hello.extend_from_slice(&(extensions.len() as u16).to_be_bytes());
    hello.extend_from_slice(&extensions);

    let mut handshake = vec![0x01]; // client_hello
    handshake.extend_from_slice(&(hello.len() as u32).to_be_bytes()[1..]);
    handshake.extend_from_slice(&hello);

    let mut record = vec![0x16, 0x03, 0x01]; // handshake record
    record.extend_from_slice(&(handshake.len() as u16).to_be_bytes());
    record.extend_from_slice(&handshake);
    record
}

#[test]
fn tls12_only_client_is_rejected_by_the_server_config() {
    let server_tls = TlsIdentity::new(&Keypair::generate_ed25519()).unwrap();
    let mut server = ServerConnection::new(server_tls.server_config().unwrap()).unwrap();

    server.read_tls(&mut &tls12_client_hello()[..]).unwrap();
    let error = server.process_new_packets().unwrap_err();

    assert!(
        matches!(
            error,
            rustls::Error::PeerIncompatible(
                rustls::PeerIncompatible::SupportedVersionsExtensionRequired
            )
        ),
        "{error:?}"
    );
    // And it tells the client why: a fatal protocol_version alert.
    let mut alert = Vec::new();
    server.write_tls(&mut alert).unwrap();
    assert_eq!(alert.first(), Some(&0x15));
    assert!(alert.ends_with(&[2, 70]), "{alert:?}");
}

#[test]
fn configs_are_tls13_only_with_libp2p_alpn_and_no_sni() {
    let tls = TlsIdentity::new(&Keypair::generate_ed25519()).unwrap();
    let (client, _) = tls.client_config(None).unwrap();
    let server = tls.server_config().unwrap();
    assert!(!client.enable_sni);
    assert_eq!(client.alpn_protocols, vec![b"libp2p".to_vec()]);
    assert_eq!(server.alpn_protocols, vec![b"libp2p".to_vec()]);
    for provider in [client.crypto_provider(), server.crypto_provider()] {
        assert!(
            provider
                .cipher_suites
                .iter()
                .any(|s| s.suite() == rustls::CipherSuite::TLS13_AES_128_GCM_SHA256)
        );
    }
}

#[test]
fn aes_128_gcm_is_offered_first() {
    assert_eq!(
        libp2p_provider().cipher_suites[0].suite(),
        rustls::CipherSuite::TLS13_AES_128_GCM_SHA256
    );
}

#[test]
fn quic_configs_accept_the_rustls_configs() {
    use quinn_proto::crypto::rustls::{QuicClientConfig, QuicServerConfig};
    let tls = TlsIdentity::new(&Keypair::generate_ed25519()).unwrap();
    let (client, _) = tls.client_config(None).unwrap();
    assert!(QuicClientConfig::try_from(client).is_ok());
    assert!(QuicServerConfig::try_from(tls.server_config().unwrap()).is_ok());
}

#[test]
fn two_certificate_chain_is_rejected() {
    let a = certificate_with(&Keypair::generate_ed25519(), |_, _| {});
    let b = certificate_with(&Keypair::generate_ed25519(), |_, _| {});

    let chain = [a.clone(), b.clone()];
    assert!(matches!(
        peer_id_from_chain(&chain),
        Err(CertificateError::NotOneCertificate { count: 2 })
    ));
    assert!(matches!(
        peer_id_from_chain(&[]),
        Err(CertificateError::NotOneCertificate { count: 0 })
    ));

    // Both verifiers refuse intermediates, however valid.
    let algorithms = rustls::crypto::ring::default_provider().signature_verification_algorithms;
    let server_verifier = ServerVerifier {
        algorithms,
        expected: None,
        observed: ObservedPeer::default(),
        verified: Arc::default(),
    };
    let name = ServerName::try_from("libp2p").unwrap();
    let error = server_verifier
        .verify_server_cert(&a, std::slice::from_ref(&b), &name, &[], UnixTime::now())
        .unwrap_err();
    assert!(matches!(
        rejection::<CertificateError>(&error),
        Some(CertificateError::NotOneCertificate { count: 2 })
    ));
    assert_eq!(server_verifier.observed.get(), None);
    let client_verifier = ClientVerifier {
        algorithms,
        verified: Arc::default(),
    };
    let error = client_verifier
        .verify_client_cert(&a, &[b], UnixTime::now())
        .unwrap_err();
    assert!(matches!(
        rejection::<CertificateError>(&error),
        Some(CertificateError::NotOneCertificate { count: 2 })
    ));
    assert!(client_verifier.client_auth_mandatory());
    assert!(client_verifier.root_hint_subjects().is_empty());
}

#[test]
fn missing_extension_is_rejected() {
    let cert = certificate_with(&Keypair::generate_ed25519(), |params, _| {
        params.custom_extensions.clear();
    });
    assert!(matches!(
        verify_error(&cert),
        CertificateError::MissingExtension
    ));
}

#[test]
fn duplicate_extension_is_rejected() {
    let cert = certificate_with(&Keypair::generate_ed25519(), |params, _| {
        let again = params.custom_extensions[0].clone();
        params.custom_extensions.push(again);
    });
    assert!(matches!(
        verify_error(&cert),
        CertificateError::DuplicateExtension
    ));
}

#[test]
fn expired_certificate_is_rejected() {
    let cert = certificate_with(&Keypair::generate_ed25519(), |params, _| {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    });
    assert!(matches!(verify_error(&cert), CertificateError::Expired));
}

#[test]
fn not_yet_valid_certificate_is_rejected() {
    let cert = certificate_with(&Keypair::generate_ed25519(), |params, _| {
        params.not_before = rcgen::date_time_ymd(3000, 1, 1);
    });
    assert!(matches!(verify_error(&cert), CertificateError::NotYetValid));
}

#[test]
fn validity_is_judged_at_the_time_rustls_passes() {
    let host = Keypair::generate_ed25519();
    let cert = certificate_with(&host, |params, _| {
        params.not_before = rcgen::date_time_ymd(2000, 1, 1);
        params.not_after = rcgen::date_time_ymd(2001, 1, 1);
    });
    let in_2000 = UnixTime::since_unix_epoch(std::time::Duration::from_secs(960_000_000));
    assert_eq!(
        verify_certificate(&cert, in_2000).unwrap(),
        host.public().to_peer_id()
    );
}

#[test]
fn unknown_critical_extension_is_rejected() {
    let cert = certificate_with(&Keypair::generate_ed25519(), |params, _| {
        let mut unknown = rcgen::CustomExtension::from_oid_content(&[1, 2, 3, 4], vec![5, 0]);
        unknown.set_criticality(true);
        params.custom_extensions.push(unknown);
    });
    match verify_error(&cert) {
        CertificateError::UnknownCriticalExtension { oid } => assert_eq!(oid, "1.2.3.4"),
        other => panic!("{other:?}"),
    }
}

#[test]
fn unknown_non_critical_and_known_critical_extensions_are_accepted() {
    let host = Keypair::generate_ed25519();
    let cert = certificate_with(&host, |params, _| {
        params
            .custom_extensions
            .push(rcgen::CustomExtension::from_oid_content(
                &[1, 2, 3, 4],
                vec![5, 0],
            ));
        // A critical basicConstraints (cA false), as js-libp2p sends.
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
    });
    let parsed = parse_certificate(&cert).unwrap();
    let basic_constraints = parsed.basic_constraints().unwrap().unwrap();
    assert!(basic_constraints.critical);
    assert_eq!(
        peer_id_from_certificate(&cert).unwrap(),
        host.public().to_peer_id()
    );
}

#[test]
fn extension_signed_for_another_certificate_key_is_rejected() {
    let host = Keypair::generate_ed25519();
    let cert = certificate_with(&host, |params, _| {
        let other = rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap();
        params.custom_extensions =
            vec![libp2p_extension(&host, &other.subject_public_key_info()).unwrap()];
    });
    assert!(matches!(
        verify_error(&cert),
        CertificateError::BadHostKeySignature
    ));
}

#[test]
fn unparsable_extension_and_host_key_are_rejected() {
    let cert = certificate_with(&Keypair::generate_ed25519(), |params, _| {
        params.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
            EXTENSION_OID,
            vec![0x30, 0x03, 0x04, 0x01],
        )];
    });
    assert!(matches!(
        verify_error(&cert),
        CertificateError::UnparsableExtension
    ));

    let cert = certificate_with(&Keypair::generate_ed25519(), |params, _| {
        params.custom_extensions = vec![rcgen::CustomExtension::from_oid_content(
            EXTENSION_OID,
            encode_signed_key(b"not a protobuf key", b"sig"),
        )];
    });
    assert!(matches!(
        verify_error(&cert),
        CertificateError::UnparsableHostKey(_)
    ));
}

#[test]
fn corrupted_self_signature_is_rejected() {
    let cert = certificate_with(&Keypair::generate_ed25519(), |_, _| {});
    let mut bytes = cert.to_vec();
    // The certificate ends with the ECDSA signature's last byte.
    *bytes.last_mut().unwrap() ^= 0x01;
    assert!(matches!(
        verify_error(&CertificateDer::from(bytes)),
        CertificateError::BadSelfSignature
    ));
}

#[test]
fn garbage_bytes_are_rejected_without_panic() {
    for garbage in [&[][..], &[0x30], &[0x30, 0x80], &[0xff; 64], b"hello world"] {
        assert!(matches!(
            verify_error(&CertificateDer::from(garbage)),
            CertificateError::Unparsable(_)
        ));
    }

    let host = Keypair::generate_ed25519();
    let peer = host.public().to_peer_id();
    let valid = certificate_with(&host, |_, _| {});
    for len in 0..valid.len() {
        assert!(peer_id_from_certificate(&CertificateDer::from(&valid[..len])).is_err());
    }
    let mut trailing = valid.to_vec();
    trailing.push(0);
    assert!(matches!(
        verify_error(&CertificateDer::from(trailing)),
        CertificateError::Unparsable(_)
    ));

    // Any single flipped bit either breaks the certificate or changes nothing that is signed.
    for index in 0..valid.len() {
        let mut bytes = valid.to_vec();
        bytes[index] ^= 0x04;
        if let Ok(other) = peer_id_from_certificate(&CertificateDer::from(bytes)) {
            assert_eq!(other, peer, "flip at {index} changed the identity");
        }
    }
}

#[test]
fn signed_key_der_round_trips_and_rejects_malformed_encodings() {
    for len in [0, 1, 127, 128, 255, 256, 65_535, 70_000] {
        let public_key = vec![0xab; len];
        let encoded = encode_signed_key(&public_key, b"signature");
        assert_eq!(
            decode_signed_key(&encoded),
            Some((&public_key[..], &b"signature"[..]))
        );
    }
    // Long-form lengths are the shortest ones.
    assert_eq!(
        &encode_signed_key(&[0; 200], &[])[..4],
        &[0x30, 0x81, 0xcd, 0x04]
    );

    let good = encode_signed_key(b"key", b"sig");
    let key = [4, 3, b'k', b'e', b'y'];
    let sig = [4, 3, b's', b'i', b'g'];
    let body = [&key[..], &sig].concat();
    assert_eq!(good, [&[0x30, 0x0a][..], &body].concat());
    let malformed: &[(&str, Vec<u8>)] = &[
        ("empty", vec![]),
        ("truncated", good[..good.len() - 1].to_vec()),
        ("trailing garbage", [&good[..], &[0]].concat()),
        ("SET, not SEQUENCE", [&[0x31, 0x0a][..], &body].concat()),
        (
            "BIT STRING key",
            [&[0x30, 0x0a, 3][..], &body[1..]].concat(),
        ),
        ("no signature", [&[0x30, 0x05][..], &key].concat()),
        ("third field", [&[0x30, 0x0c][..], &body, &[4, 0]].concat()),
        ("garbage inside", [&[0x30, 0x0b][..], &body, &[0]].concat()),
        (
            "non-minimal long form",
            [&[0x30, 0x81, 0x0a][..], &body].concat(),
        ),
        (
            "zero-padded long form",
            [&[0x30, 0x82, 0, 0x0a][..], &body].concat(),
        ),
        (
            "non-minimal inner length",
            [&[0x30, 0x0b, 4, 0x81][..], &key[1..], &sig].concat(),
        ),
        (
            "indefinite length",
            [&[0x30, 0x80][..], &body, &[0, 0]].concat(),
        ),
        ("five length bytes", vec![0x30, 0x85, 1, 0, 0, 0, 0]),
        (
            "longer than the input",
            vec![0x30, 0x84, 0xff, 0xff, 0xff, 0xff, 0],
        ),
    ];
    for (case, input) in malformed {
        assert_eq!(decode_signed_key(input), None, "{case}");
    }
}

#[test]
fn observed_peer_starts_empty_and_is_shared_by_clones() {
    let observed = ObservedPeer::default();
    assert_eq!(observed.get(), None);
    let peer = Keypair::generate_ed25519().public().to_peer_id();
    observed.clone().set(peer);
    assert_eq!(observed.get(), Some(peer));
}
