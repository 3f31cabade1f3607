//! Hostile TLS material: libp2p certificates broken in every way the spec
//! names, and rustls/quinn configs that present them (as a client or as a
//! server) while accepting anything from the other side.

use std::sync::Arc;

use quinn_proto::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use rcgen::PublicKeyData;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::pki_types::{CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, UnixTime};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{DigitallySignedStruct, SignatureScheme};
use swarm::{Keypair, PeerId};

const EXTENSION_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 53594, 1, 1];
const SIGNATURE_PREFIX: &[u8] = b"libp2p-tls-handshake:";

/// libp2p/specs tls/tls.md, "Test vectors": the invalid certificate (its
/// extension's signature does not cover its key).
pub const SPEC_INVALID_VECTOR: &str = "308201f73082019da0030201020204499602d2300a06082a8648ce3d040302302031123010060355040a13096c69627032702e696f310a300806035504051301313020170d3735303130313133303030305a180f34303936303130313133303030305a302031123010060355040a13096c69627032702e696f310a300806035504051301313059301306072a8648ce3d020106082a8648ce3d030107034200040c901d423c831ca85e27c73c263ba132721bb9d7a84c4f0380b2a6756fd601331c8870234dec878504c174144fa4b14b66a651691606d8173e55bd37e381569ea381c23081bf3081bc060a2b0601040183a25a01010481ad3081aa045f0803125b3059301306072a8648ce3d020106082a8648ce3d03010703420004bf30511f909414ebdd3242178fd290f093a551cf75c973155de0bb5a96fedf6cb5d52da7563e794b512f66e60c7f55ba8a3acf3dd72a801980d205e8a1ad29f204473045022100bb6e03577b7cc7a3cd1558df0da2b117dfdcc0399bc2504ebe7de6f65cade72802206de96e2a5be9b6202adba24ee0362e490641ac45c240db71fe955f2c5cf8df6e300a06082a8648ce3d0403020348003045022100e847f267f43717358f850355bdcabbefb2cfbf8a3c043b203a14788a092fe8db022027c1d04a2d41fd6b57a7e8b3989e470325de4406e52e084e34a3fd56eef0d0df";

/// The ways a presented certificate (chain) can be wrong.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum CertCase {
    /// A correct libp2p certificate (control case, and PeerId mismatch).
    Valid,
    SpecInvalidVector,
    TwoCertChain,
    Expired,
    MissingExtension,
    UnparsableExtension,
    UnparsableKeyProtobuf,
    /// The host key signed another certificate key.
    BadHostSignature,
    /// The certificate is fine, but the TLS CertificateVerify is made with
    /// another key than the certificate's.
    BadHandshakeSignature,
    UnknownCriticalExtension,
}

impl CertCase {
    pub const ALL_BAD: [CertCase; 9] = [
        CertCase::SpecInvalidVector,
        CertCase::TwoCertChain,
        CertCase::Expired,
        CertCase::MissingExtension,
        CertCase::UnparsableExtension,
        CertCase::UnparsableKeyProtobuf,
        CertCase::BadHostSignature,
        CertCase::BadHandshakeSignature,
        CertCase::UnknownCriticalExtension,
    ];

    /// The `Display` of the `swarm::tls::CertificateError` the verifier
    /// must give (and log as "refusing peer certificate"); `None` where
    /// rustls itself refuses.
    pub fn display(self) -> Option<&'static str> {
        Some(match self {
            CertCase::Valid | CertCase::BadHandshakeSignature => return None,
            CertCase::SpecInvalidVector | CertCase::BadHostSignature => {
                "host key signature over the certificate key is invalid"
            }
            CertCase::TwoCertChain => "expected exactly one certificate, got 2",
            CertCase::Expired => "certificate has expired",
            CertCase::MissingExtension => "certificate lacks the libp2p public key extension",
            CertCase::UnparsableExtension => "libp2p public key extension is not a valid SignedKey",
            CertCase::UnparsableKeyProtobuf => "unparsable host key in the libp2p extension",
            CertCase::UnknownCriticalExtension => "unknown critical extension 1.2.3.4",
        })
    }

    /// What the TLS error text carries (rustls formats our error with
    /// `Debug`): it reaches the peer in the CONNECTION_CLOSE reason, and the
    /// dialer in `DialError::Handshake`.
    pub fn wire_text(self) -> &'static str {
        match self {
            CertCase::Valid => "",
            CertCase::SpecInvalidVector | CertCase::BadHostSignature => {
                "Other(OtherError(BadHostKeySignature))"
            }
            CertCase::TwoCertChain => "Other(OtherError(NotOneCertificate { count: 2 }))",
            CertCase::Expired => "Other(OtherError(Expired))",
            CertCase::MissingExtension => "Other(OtherError(MissingExtension))",
            CertCase::UnparsableExtension => "Other(OtherError(UnparsableExtension))",
            CertCase::UnparsableKeyProtobuf => "Other(OtherError(UnparsableHostKey(",
            CertCase::BadHandshakeSignature => "invalid peer certificate: BadSignature",
            CertCase::UnknownCriticalExtension => {
                "Other(OtherError(UnknownCriticalExtension { oid: \"1.2.3.4\" }))"
            }
        }
    }

    /// The TLS alert: certificate_unknown (46) for our verifier's refusals,
    /// decrypt_error (51) for a bad CertificateVerify.
    pub fn alert(self) -> u8 {
        match self {
            CertCase::BadHandshakeSignature => 51,
            _ => 46,
        }
    }
}

/// A certificate chain and the key that signs the TLS handshake.
pub struct Presented {
    pub chain: Vec<CertificateDer<'static>>,
    pub key: PrivateKeyDer<'static>,
}

fn p256() -> rcgen::KeyPair {
    rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256).unwrap()
}

fn write_tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else if len < 0x100 {
        out.extend_from_slice(&[0x81, len as u8]);
    } else {
        out.extend_from_slice(&[0x82, (len >> 8) as u8, len as u8]);
    }
    out.extend_from_slice(content);
}

/// DER `SignedKey ::= SEQUENCE { publicKey OCTET STRING, signature OCTET STRING }`.
pub fn signed_key(public_key: &[u8], signature: &[u8]) -> Vec<u8> {
    let mut body = Vec::new();
    write_tlv(&mut body, 0x04, public_key);
    write_tlv(&mut body, 0x04, signature);
    let mut out = Vec::new();
    write_tlv(&mut out, 0x30, &body);
    out
}

/// The libp2p extension (critical, as rust-libp2p makes it) for `spki`.
pub fn extension(host: &Keypair, spki: &[u8]) -> rcgen::CustomExtension {
    let signature = host.sign(&[SIGNATURE_PREFIX, spki].concat()).unwrap();
    let content = signed_key(&host.public().encode_protobuf(), &signature);
    let mut ext = rcgen::CustomExtension::from_oid_content(EXTENSION_OID, content);
    ext.set_criticality(true);
    ext
}

/// A certificate as our TlsIdentity makes one, after `tweak`.
fn certificate(
    host: &Keypair,
    key: &rcgen::KeyPair,
    tweak: impl FnOnce(&mut rcgen::CertificateParams),
) -> CertificateDer<'static> {
    let mut params = rcgen::CertificateParams::default();
    params.not_before = rcgen::date_time_ymd(1975, 1, 1);
    params.not_after = rcgen::date_time_ymd(4096, 1, 1);
    params.custom_extensions = vec![extension(host, &key.subject_public_key_info())];
    tweak(&mut params);
    params.self_signed(key).unwrap().der().clone()
}

fn pkcs8(key: &rcgen::KeyPair) -> PrivateKeyDer<'static> {
    PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(key.serialize_der()))
}

/// What a hostile peer with host key `host` presents for `case`.
pub fn presented(case: CertCase, host: &Keypair) -> Presented {
    let key = p256();
    let mut chain = match case {
        CertCase::Valid | CertCase::BadHandshakeSignature => {
            vec![certificate(host, &key, |_| {})]
        }
        CertCase::SpecInvalidVector => vec![CertificateDer::from(
            data_encoding::HEXLOWER
                .decode(SPEC_INVALID_VECTOR.as_bytes())
                .unwrap(),
        )],
        CertCase::TwoCertChain => {
            let other = p256();
            let second = certificate(&Keypair::generate_ed25519(), &other, |_| {});
            vec![certificate(host, &key, |_| {}), second]
        }
        CertCase::Expired => vec![certificate(host, &key, |p| {
            p.not_before = rcgen::date_time_ymd(2000, 1, 1);
            p.not_after = rcgen::date_time_ymd(2001, 1, 1);
        })],
        CertCase::MissingExtension => vec![certificate(host, &key, |p| {
            p.custom_extensions.clear();
        })],
        CertCase::UnparsableExtension => vec![certificate(host, &key, |p| {
            let mut ext = rcgen::CustomExtension::from_oid_content(
                EXTENSION_OID,
                vec![0x30, 0x03, 0x04, 0x01],
            );
            ext.set_criticality(true);
            p.custom_extensions = vec![ext];
        })],
        CertCase::UnparsableKeyProtobuf => vec![certificate(host, &key, |p| {
            let mut ext = rcgen::CustomExtension::from_oid_content(
                EXTENSION_OID,
                signed_key(b"not a protobuf key", b"sig"),
            );
            ext.set_criticality(true);
            p.custom_extensions = vec![ext];
        })],
        CertCase::BadHostSignature => vec![certificate(host, &key, |p| {
            let other = p256();
            p.custom_extensions = vec![extension(host, &other.subject_public_key_info())];
        })],
        CertCase::UnknownCriticalExtension => vec![certificate(host, &key, |p| {
            let mut unknown = rcgen::CustomExtension::from_oid_content(&[1, 2, 3, 4], vec![5, 0]);
            unknown.set_criticality(true);
            p.custom_extensions.push(unknown);
        })],
    };
    let signing = if case == CertCase::BadHandshakeSignature {
        p256()
    } else {
        key
    };
    chain.shrink_to_fit();
    Presented {
        chain,
        key: pkcs8(&signing),
    }
}

/// Accepts any server certificate and any handshake signature: the hostile
/// client does not care who the server is.
#[derive(Debug)]
struct AcceptAnything;

impl ServerCertVerifier for AcceptAnything {
    fn verify_server_cert(
        &self,
        _: &CertificateDer<'_>,
        _: &[CertificateDer<'_>],
        _: &ServerName<'_>,
        _: &[u8],
        _: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        Ok(ServerCertVerified::assertion())
    }
    fn verify_tls12_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn verify_tls13_signature(
        &self,
        _: &[u8],
        _: &CertificateDer<'_>,
        _: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        Ok(HandshakeSignatureValid::assertion())
    }
    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        rustls::crypto::ring::default_provider()
            .signature_verification_algorithms
            .supported_schemes()
    }
}

fn certified(p: Presented) -> Arc<CertifiedKey> {
    let provider = rustls::crypto::ring::default_provider();
    let signing = provider.key_provider.load_private_key(p.key).unwrap();
    Arc::new(CertifiedKey::new(p.chain, signing))
}

/// A QUIC client config presenting `p`, offering `alpn`, trusting anyone.
pub fn hostile_client(p: Presented, alpn: &[&[u8]]) -> quinn_proto::ClientConfig {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ClientConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AcceptAnything))
        .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(certified(p))));
    tls.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    tls.enable_sni = false;
    let crypto = QuicClientConfig::try_from(Arc::new(tls)).unwrap();
    quinn_proto::ClientConfig::new(Arc::new(crypto))
}

/// A QUIC server config presenting `p`, selecting from `alpn` (empty: no
/// ALPN at all), not asking for a client certificate.
pub fn hostile_server(p: Presented, alpn: &[&[u8]]) -> Arc<quinn_proto::ServerConfig> {
    let provider = Arc::new(rustls::crypto::ring::default_provider());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider)
        .with_protocol_versions(&[&rustls::version::TLS13])
        .unwrap()
        .with_no_client_auth()
        .with_cert_resolver(Arc::new(SingleCertAndKey::from(certified(p))));
    tls.alpn_protocols = alpn.iter().map(|a| a.to_vec()).collect();
    let crypto = QuicServerConfig::try_from(Arc::new(tls)).unwrap();
    Arc::new(quinn_proto::ServerConfig::with_crypto(Arc::new(crypto)))
}

/// The honest client config our swarm would use, for a raw client that
/// then misbehaves above TLS.
pub fn honest_client(host: &Keypair, expected: Option<PeerId>) -> quinn_proto::ClientConfig {
    let tls = swarm::tls::TlsIdentity::new(host).unwrap();
    let (config, _) = tls.client_config(expected).unwrap();
    let crypto = QuicClientConfig::try_from(config).unwrap();
    quinn_proto::ClientConfig::new(Arc::new(crypto))
}
