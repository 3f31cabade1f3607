//! libp2p's TLS 1.3 handshake: certificates that carry the host key, and the rustls configs and
//! verifiers that check them.
//!
//! Follows the libp2p TLS specification (libp2p/specs, `tls/tls.md`, r0 2019-03-23):
//!
//! - Each side presents exactly one self-signed X.509 certificate. Its key is a fresh P-256 key
//!   unrelated to the host key; the host key is carried in the extension `1.3.6.1.4.1.53594.1.1`
//!   as `SignedKey ::= SEQUENCE { publicKey OCTET STRING, signature OCTET STRING }`, where
//!   `publicKey` is the host key's protobuf encoding and `signature` is the host key's signature
//!   over `"libp2p-tls-handshake:" ++ DER(SubjectPublicKeyInfo of the certificate)`.
//! - A receiver checks the validity period, the self-signature, the extension and its signature,
//!   and refuses critical extensions it does not understand. The PeerId is derived from the host
//!   key.
//! - TLS 1.3 only, ALPN `libp2p`, the server requires a client certificate, and the client sends
//!   no SNI.
//!
//! Nothing here goes through webpki's certificate parser: it refuses certificates with critical
//! extensions it does not know, and rust-libp2p marks the libp2p extension critical (as we do).
//! Certificates are parsed with x509-parser, and handshake signatures are checked against the
//! certificate's bare SubjectPublicKeyInfo.

use std::sync::{Arc, Mutex, PoisonError};

use libp2p_identity::{Keypair, PeerId, PublicKey};
use rcgen::PublicKeyData;
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::{CryptoProvider, WebPkiSupportedAlgorithms};
use rustls::pki_types::{
    CertificateDer, PrivateKeyDer, PrivatePkcs8KeyDer, ServerName, SubjectPublicKeyInfoDer,
    UnixTime,
};
use rustls::server::danger::{ClientCertVerified, ClientCertVerifier};
use rustls::sign::{CertifiedKey, SingleCertAndKey};
use rustls::{DigitallySignedStruct, DistinguishedName, SignatureScheme};
use x509_parser::certificate::X509Certificate;
use x509_parser::error::X509Error;
use x509_parser::oid_registry::{
    OID_PKCS1_SHA1WITHRSA, OID_SHA1_WITH_RSA, OID_X509_EXT_BASIC_CONSTRAINTS,
    OID_X509_EXT_EXTENDED_KEY_USAGE, OID_X509_EXT_KEY_USAGE, OID_X509_EXT_SUBJECT_ALT_NAME,
};
use x509_parser::prelude::FromDer;

use crate::verified_certificates::{Verified, VerifiedCertificates};

/// The ALPN protocol id that both sides must offer (spec, "ALPN").
pub const ALPN: &[u8] = b"libp2p";

/// The libp2p Public Key Extension's OID, 1.3.6.1.4.1.53594.1.1.
const EXTENSION_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 53594, 1, 1];

/// The same OID as its DER content bytes, to compare against parsed extensions without
/// building an `Oid` at run time.
const EXTENSION_OID_DER: &[u8] = &[0x2b, 0x06, 0x01, 0x04, 0x01, 0x83, 0xa2, 0x5a, 0x01, 0x01];

/// What the host key signs, followed by the certificate's SubjectPublicKeyInfo DER.
const SIGNATURE_PREFIX: &[u8] = b"libp2p-tls-handshake:";

/// Our certificate + key, generated once from the host keypair.
///
/// The same certificate is presented on every connection, as a client and as a server (the spec
/// allows reuse).
pub struct TlsIdentity {
    certified_key: Arc<CertifiedKey>,
    provider: Arc<CryptoProvider>,
    /// Peers' certificates that passed verification, shared by every
    /// verifier this identity builds (see [`VerifiedCertificates`]).
    verified: Arc<VerifiedCertificates>,
}

impl TlsIdentity {
    /// Generates a fresh P-256 certificate key and a self-signed certificate carrying `keypair`'s
    /// public key, signed by `keypair` as the spec requires.
    pub fn new(keypair: &Keypair) -> Result<Self, TlsError> {
        Self::build(keypair, None)
    }

    /// Like [`TlsIdentity::new`], but the certificate key (Ed25519) and
    /// serial number come from `seed`: the same seed gives the same
    /// certificate, and Ed25519's deterministic, fixed-size signatures keep
    /// every handshake message the same size. For simulations only.
    pub fn from_seed(keypair: &Keypair, seed: [u8; 32]) -> Result<Self, TlsError> {
        Self::build(keypair, Some(seed))
    }

    fn build(keypair: &Keypair, seed: Option<[u8; 32]>) -> Result<Self, TlsError> {
        let (certificate, certificate_key) = generate_certificate(keypair, seed)?;
        // Catch an encoding slip here rather than on every peer's side of every handshake.
        peer_id_from_certificate(&certificate).map_err(TlsError::SelfCheck)?;

        let provider = Arc::new(libp2p_provider());
        let private_key =
            PrivateKeyDer::Pkcs8(PrivatePkcs8KeyDer::from(certificate_key.serialize_der()));
        let signing_key = provider.key_provider.load_private_key(private_key)?;
        // `CertifiedKey::new`, not `from_der`/`with_single_cert`: those re-parse the certificate
        // with webpki, which refuses our critical libp2p extension.
        let certified_key = Arc::new(CertifiedKey::new(vec![certificate], signing_key));
        Ok(Self {
            certified_key,
            provider,
            verified: Arc::default(),
        })
    }

    /// Use `cache` instead of this identity's own table of verified
    /// certificates (for verifiers built from now on).
    pub(crate) fn share_verified_certificates(&mut self, cache: Arc<VerifiedCertificates>) {
        self.verified = cache;
    }

    /// [`peer_id_from_chain`] for a chain that a verifier of this identity
    /// may have checked already: an identical certificate costs a lookup
    /// and a validity check.
    pub(crate) fn verified_peer_id(
        &self,
        chain: &[CertificateDer<'_>],
    ) -> Result<PeerId, CertificateError> {
        match chain {
            [cert] => verify_cached(&self.verified, cert, unix_now()).map(|v| v.peer),
            _ => Err(CertificateError::NotOneCertificate { count: chain.len() }),
        }
    }

    /// TLS 1.3 only, ring provider, ALPN libp2p, REQUIRES a client certificate verified by the
    /// libp2p rules.
    pub fn server_config(&self) -> Result<Arc<rustls::ServerConfig>, TlsError> {
        let verifier = ClientVerifier {
            algorithms: self.provider.signature_verification_algorithms,
            verified: self.verified.clone(),
        };
        let mut config = rustls::ServerConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .with_client_cert_verifier(Arc::new(verifier))
            .with_cert_resolver(Arc::new(SingleCertAndKey::from(self.certified_key.clone())));
        config.alpn_protocols = vec![ALPN.to_vec()];
        // No tickets, so no resumption: every client's certificate goes through the verifier.
        config.send_tls13_tickets = 0;
        // Nor a session cache: it would only hold nothing, at ~25 KiB per
        // swarm (rustls preallocates it).
        config.session_storage = Arc::new(rustls::server::NoServerSessionStorage {});
        Ok(Arc::new(config))
    }

    /// TLS 1.3 only, ring provider, ALPN libp2p, enable_sni = false, presents our cert.
    ///
    /// `expected`: when Some, the handshake FAILS inside the verifier if the server's PeerId
    /// differs. The returned ObservedPeer records the PeerId the server's certificate presented
    /// (set even when it mismatched), so the caller can build a typed error naming expected and
    /// actual after the handshake fails.
    ///
    /// Make one config per dial: every connection made with it shares the one ObservedPeer.
    pub fn client_config(
        &self,
        expected: Option<PeerId>,
    ) -> Result<(Arc<rustls::ClientConfig>, ObservedPeer), TlsError> {
        let observed = ObservedPeer::default();
        let verifier = ServerVerifier {
            algorithms: self.provider.signature_verification_algorithms,
            expected,
            observed: observed.clone(),
            verified: self.verified.clone(),
        };
        let mut config = rustls::ClientConfig::builder_with_provider(self.provider.clone())
            .with_protocol_versions(&[&rustls::version::TLS13])?
            .dangerous()
            .with_custom_certificate_verifier(Arc::new(verifier))
            .with_client_cert_resolver(Arc::new(SingleCertAndKey::from(
                self.certified_key.clone(),
            )));
        config.alpn_protocols = vec![ALPN.to_vec()];
        // The spec keeps SNI for future handshake versions: this one MUST NOT send it.
        config.enable_sni = false;
        // A resumed session skips the verifier, and with it the `expected` check.
        config.resumption = rustls::client::Resumption::disabled();
        Ok((Arc::new(config), observed))
    }
}

/// The PeerId the server's certificate presented during a client handshake, shared between the
/// client config's verifier (which writes it) and the caller (which reads it after the handshake).
#[derive(Clone, Debug, Default)]
pub struct ObservedPeer(Arc<Mutex<Option<PeerId>>>);

impl ObservedPeer {
    /// The PeerId of the server's certificate, once it was verified (whether or not it was the
    /// expected one); `None` before that or when the certificate itself was invalid.
    pub fn get(&self) -> Option<PeerId> {
        // A poisoned lock still holds a valid `Option<PeerId>`.
        *self.0.lock().unwrap_or_else(PoisonError::into_inner)
    }

    fn set(&self, peer: PeerId) {
        *self.0.lock().unwrap_or_else(PoisonError::into_inner) = Some(peer);
    }
}

/// Full verification of a libp2p certificate (one cert, no chain): validity period (now),
/// self-signature valid, libp2p extension 1.3.6.1.4.1.53594.1.1 present and parsable (SignedKey:
/// publicKey protobuf + signature), signature over "libp2p-tls-handshake:" ++
/// SubjectPublicKeyInfo DER verifies with the host key, no unknown critical extensions. Returns
/// the PeerId of the host key.
pub fn peer_id_from_certificate(cert: &CertificateDer<'_>) -> Result<PeerId, CertificateError> {
    verify_certificate(cert, unix_now())
}

/// The time for validity checks. Not `UnixTime::now()`, which panics on a clock set before
/// 1970; such a clock only makes certificates look not yet valid.
fn unix_now() -> UnixTime {
    let since_epoch = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .unwrap_or_default();
    UnixTime::since_unix_epoch(since_epoch)
}

/// ring's provider with TLS 1.3's AES-128-GCM offered first: on AES-NI
/// hardware it is the cheapest suite, and ring lists AES-256-GCM first.
fn libp2p_provider() -> CryptoProvider {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|suite| suite.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    provider
}

/// Helper for after the handshake: quinn-proto exposes `peer_identity()` as `Box<dyn Any>` holding
/// Vec<CertificateDer<'static>>. The chain must hold exactly one certificate, which gets the full
/// [`peer_id_from_certificate`] verification.
pub fn peer_id_from_chain(chain: &[CertificateDer<'_>]) -> Result<PeerId, CertificateError> {
    match chain {
        [cert] => peer_id_from_certificate(cert),
        _ => Err(CertificateError::NotOneCertificate { count: chain.len() }),
    }
}

/// Why a peer's certificate (chain) was refused. Verifier failures reach rustls as
/// `rustls::Error::InvalidCertificate(rustls::CertificateError::Other(e))`, where `e.0` downcasts
/// to this type.
#[derive(Debug, thiserror::Error)]
pub enum CertificateError {
    /// The peer sent a chain of `count` certificates; the spec allows exactly one.
    #[error("expected exactly one certificate, got {count}")]
    NotOneCertificate {
        /// How many certificates the chain held.
        count: usize,
    },
    /// The bytes are not a DER-encoded X.509 certificate (or have trailing data).
    #[error("unparsable certificate: {0}")]
    Unparsable(String),
    /// The certificate's `notBefore` is in the future.
    #[error("certificate is not yet valid")]
    NotYetValid,
    /// The certificate's `notAfter` is in the past.
    #[error("certificate has expired")]
    Expired,
    /// The certificate is signed with an algorithm we do not verify (e.g. SHA-1).
    #[error("unsupported certificate signature scheme")]
    UnsupportedSignatureScheme,
    /// The certificate's self-signature does not verify with its own public key.
    #[error("certificate self-signature is invalid")]
    BadSelfSignature,
    /// The libp2p Public Key Extension is absent.
    #[error("certificate lacks the libp2p public key extension")]
    MissingExtension,
    /// The libp2p Public Key Extension appears more than once.
    #[error("certificate carries the libp2p public key extension more than once")]
    DuplicateExtension,
    /// The extension's content is not a DER `SignedKey`.
    #[error("libp2p public key extension is not a valid SignedKey")]
    UnparsableExtension,
    /// The extension's `publicKey` is not a host key we can decode (RSA is not supported).
    #[error("unparsable host key in the libp2p extension: {0}")]
    UnparsableHostKey(#[source] libp2p_identity::DecodingError),
    /// The host key's signature over the certificate key does not verify.
    #[error("host key signature over the certificate key is invalid")]
    BadHostKeySignature,
    /// The certificate has a critical extension we do not understand.
    #[error("unknown critical extension {oid}")]
    UnknownCriticalExtension {
        /// The extension's OID, dotted.
        oid: String,
    },
}

/// Why our certificate or a rustls config could not be built.
#[derive(Debug, thiserror::Error)]
pub enum TlsError {
    /// The system random number generator failed (certificate serial number).
    #[error("system randomness unavailable")]
    Randomness,
    /// rcgen could not generate the certificate key.
    #[error("certificate key generation failed: {0}")]
    CertificateKey(#[source] rcgen::Error),
    /// The host keypair could not sign the certificate key.
    #[error("host key signing failed: {0}")]
    HostKeySigning(#[from] libp2p_identity::SigningError),
    /// rcgen could not build or sign the certificate.
    #[error("certificate generation failed: {0}")]
    Certificate(#[source] rcgen::Error),
    /// Our own freshly generated certificate failed libp2p verification (a bug).
    #[error("generated certificate failed verification: {0}")]
    SelfCheck(#[source] CertificateError),
    /// rustls refused the key or the config.
    #[error("rustls config: {0}")]
    Rustls(#[from] rustls::Error),
    /// quinn-proto refused to wrap a rustls config (no initial cipher suite). Built by the
    /// transport, which does the wrapping.
    #[error("QUIC crypto config: {0}")]
    Quic(String),
}

/// Builds our self-signed certificate carrying `host`'s key; returns it with its private key.
fn generate_certificate(
    host: &Keypair,
    seed: Option<[u8; 32]>,
) -> Result<(CertificateDer<'static>, rcgen::KeyPair), TlsError> {
    let certificate_key = match seed {
        None => rcgen::KeyPair::generate_for(&rcgen::PKCS_ECDSA_P256_SHA256),
        Some(seed) => {
            // PKCS#8 v1 for an Ed25519 private key: a fixed prefix, then the 32-byte seed.
            let mut der = vec![
                0x30, 0x2e, 0x02, 0x01, 0x00, 0x30, 0x05, 0x06, 0x03, 0x2b, 0x65, 0x70, 0x04, 0x22,
                0x04, 0x20,
            ];
            der.extend_from_slice(&seed);
            rcgen::KeyPair::try_from(der.as_slice())
        }
    }
    .map_err(TlsError::CertificateKey)?;
    let extension = libp2p_extension(host, &certificate_key.subject_public_key_info())?;

    let mut params = rcgen::CertificateParams::default();
    // RFC 5280 wants a non-empty issuer; the name itself carries nothing.
    params.distinguished_name = rcgen::DistinguishedName::new();
    params
        .distinguished_name
        .push(rcgen::DnType::OrganizationName, "libp2p.io");
    params.serial_number = Some(match seed {
        None => random_serial()?,
        // Reversed so that it is not the key's seed; the top bit cleared and
        // the first byte nonzero keep the INTEGER at 16 bytes.
        Some(seed) => {
            let mut serial: Vec<u8> = seed.iter().rev().take(16).copied().collect();
            serial[0] = (serial[0] & 0x7f) | 0x01;
            rcgen::SerialNumber::from_slice(&serial)
        }
    });
    // The spec's test vectors use this span: wide enough that wrong clocks do not break handshakes.
    params.not_before = rcgen::date_time_ymd(1975, 1, 1);
    params.not_after = rcgen::date_time_ymd(4096, 1, 1);
    params.custom_extensions = vec![extension];

    let certificate = params
        .self_signed(&certificate_key)
        .map_err(TlsError::Certificate)?;
    Ok((certificate.der().clone(), certificate_key))
}

/// The libp2p Public Key Extension for a certificate whose SubjectPublicKeyInfo DER is `spki`.
fn libp2p_extension(host: &Keypair, spki: &[u8]) -> Result<rcgen::CustomExtension, TlsError> {
    let signature = host.sign(&[SIGNATURE_PREFIX, spki].concat())?;
    let content = encode_signed_key(&host.public().encode_protobuf(), &signature);
    let mut extension = rcgen::CustomExtension::from_oid_content(EXTENSION_OID, content);
    // The spec allows critical; rust-libp2p marks it so, and a verifier that does not know
    // libp2p should not take the certificate as authenticating anyone.
    extension.set_criticality(true);
    Ok(extension)
}

/// 16 random bytes; rcgen encodes them as a positive INTEGER.
fn random_serial() -> Result<rcgen::SerialNumber, TlsError> {
    use ring::rand::SecureRandom;
    let mut serial = [0u8; 16];
    ring::rand::SystemRandom::new()
        .fill(&mut serial)
        .map_err(|_| TlsError::Randomness)?;
    Ok(rcgen::SerialNumber::from_slice(&serial))
}

/// Parses one DER certificate, refusing trailing bytes.
fn parse_certificate<'a>(
    cert: &'a CertificateDer<'_>,
) -> Result<X509Certificate<'a>, CertificateError> {
    match X509Certificate::from_der(cert.as_ref()) {
        Ok(([], parsed)) => Ok(parsed),
        Ok(_) => Err(CertificateError::Unparsable(
            "trailing data after the certificate".into(),
        )),
        Err(e) => Err(CertificateError::Unparsable(e.to_string())),
    }
}

/// Everything [`peer_id_from_certificate`] promises, at time `now`.
fn verify_certificate(
    cert: &CertificateDer<'_>,
    now: UnixTime,
) -> Result<PeerId, CertificateError> {
    verify_fully(cert, now).map(|v| v.peer)
}

/// [`verify_certificate`] through `cache`: a certificate byte-identical to one that passed
/// before only has its validity period checked again (the signatures depend on the bytes alone).
fn verify_cached(
    cache: &VerifiedCertificates,
    cert: &CertificateDer<'_>,
    now: UnixTime,
) -> Result<Verified, CertificateError> {
    if let Some(verified) = cache.get(cert.as_ref()) {
        check_validity(verified.not_before, verified.not_after, now)?;
        return Ok(verified);
    }
    let verified = verify_fully(cert, now)?;
    cache.insert(cert.as_ref(), verified.clone());
    Ok(verified)
}

/// Every check, from the bytes up; returns what later uses of the certificate need.
fn verify_fully(cert: &CertificateDer<'_>, now: UnixTime) -> Result<Verified, CertificateError> {
    let parsed = parse_certificate(cert)?;
    let validity = parsed.validity();
    let (not_before, not_after) = (
        validity.not_before.timestamp(),
        validity.not_after.timestamp(),
    );
    check_validity(not_before, not_after, now)?;
    check_self_signature(&parsed)?;
    let extension = libp2p_extension_value(&parsed)?;

    let (public_key, signature) =
        decode_signed_key(extension).ok_or(CertificateError::UnparsableExtension)?;
    let host_key =
        PublicKey::try_decode_protobuf(public_key).map_err(CertificateError::UnparsableHostKey)?;
    let message = [SIGNATURE_PREFIX, parsed.public_key().raw].concat();
    if !host_key.verify(&message, signature) {
        return Err(CertificateError::BadHostKeySignature);
    }
    Ok(Verified {
        peer: host_key.to_peer_id(),
        not_before,
        not_after,
        spki: Arc::from(parsed.public_key().raw),
    })
}

/// `now` within [not_before, not_after] (seconds since the Unix epoch).
fn check_validity(not_before: i64, not_after: i64, now: UnixTime) -> Result<(), CertificateError> {
    let now = i64::try_from(now.as_secs()).unwrap_or(i64::MAX);
    if now < not_before {
        return Err(CertificateError::NotYetValid);
    }
    if now > not_after {
        return Err(CertificateError::Expired);
    }
    Ok(())
}

fn check_self_signature(cert: &X509Certificate<'_>) -> Result<(), CertificateError> {
    // RFC 5280: the signed and the outer algorithm identifiers must agree, or the signature
    // would be checked under an algorithm the signer did not commit to.
    if cert.signature_algorithm != cert.tbs_certificate.signature {
        return Err(CertificateError::BadSelfSignature);
    }
    // x509-parser still verifies SHA-1 RSA signatures; TLS 1.3 peers have no reason to use them.
    let algorithm = &cert.signature_algorithm.algorithm;
    if *algorithm == OID_PKCS1_SHA1WITHRSA || *algorithm == OID_SHA1_WITH_RSA {
        return Err(CertificateError::UnsupportedSignatureScheme);
    }
    match cert.verify_signature(None) {
        Ok(()) => Ok(()),
        Err(X509Error::SignatureUnsupportedAlgorithm) => {
            Err(CertificateError::UnsupportedSignatureScheme)
        }
        Err(_) => Err(CertificateError::BadSelfSignature),
    }
}

/// The libp2p extension's content, after refusing critical extensions we do not understand.
fn libp2p_extension_value<'a>(cert: &X509Certificate<'a>) -> Result<&'a [u8], CertificateError> {
    let mut found = None;
    for extension in cert.extensions() {
        if extension.oid.as_bytes() == EXTENSION_OID_DER {
            if found.replace(extension.value).is_some() {
                return Err(CertificateError::DuplicateExtension);
            }
        } else if extension.critical && !is_understood(&extension.oid) {
            return Err(CertificateError::UnknownCriticalExtension {
                oid: extension.oid.to_id_string(),
            });
        }
    }
    found.ok_or(CertificateError::MissingExtension)
}

/// Standard extensions other implementations mark critical and that constrain nothing a
/// self-signed libp2p certificate relies on (js-libp2p marks basicConstraints critical).
fn is_understood(oid: &x509_parser::oid_registry::Oid<'_>) -> bool {
    [
        OID_X509_EXT_BASIC_CONSTRAINTS,
        OID_X509_EXT_KEY_USAGE,
        OID_X509_EXT_EXTENDED_KEY_USAGE,
        OID_X509_EXT_SUBJECT_ALT_NAME,
    ]
    .contains(oid)
}

const TAG_SEQUENCE: u8 = 0x30;
const TAG_OCTET_STRING: u8 = 0x04;

/// DER `SignedKey ::= SEQUENCE { publicKey OCTET STRING, signature OCTET STRING }`.
fn encode_signed_key(public_key: &[u8], signature: &[u8]) -> Vec<u8> {
    let mut body = Vec::with_capacity(public_key.len() + signature.len() + 12);
    write_tlv(&mut body, TAG_OCTET_STRING, public_key);
    write_tlv(&mut body, TAG_OCTET_STRING, signature);
    let mut out = Vec::with_capacity(body.len() + 6);
    write_tlv(&mut out, TAG_SEQUENCE, &body);
    out
}

/// Inverse of [`encode_signed_key`]: `(publicKey, signature)`, or `None` unless `input` is
/// exactly one such DER value.
fn decode_signed_key(input: &[u8]) -> Option<(&[u8], &[u8])> {
    let (body, []) = read_tlv(input, TAG_SEQUENCE)? else {
        return None;
    };
    let (public_key, rest) = read_tlv(body, TAG_OCTET_STRING)?;
    let (signature, []) = read_tlv(rest, TAG_OCTET_STRING)? else {
        return None;
    };
    Some((public_key, signature))
}

/// Appends one DER value with a single-byte `tag`, using the shortest length encoding.
fn write_tlv(out: &mut Vec<u8>, tag: u8, content: &[u8]) {
    out.push(tag);
    let len = content.len();
    if len < 0x80 {
        out.push(len as u8);
    } else {
        let bytes = len.to_be_bytes();
        let significant = &bytes[bytes.iter().take_while(|b| **b == 0).count()..];
        out.push(0x80 | significant.len() as u8);
        out.extend_from_slice(significant);
    }
    out.extend_from_slice(content);
}

/// Reads one DER value that must carry `tag`: `(content, rest)`. Refuses what DER forbids:
/// the indefinite length, and long-form lengths that are not the shortest encoding.
fn read_tlv(input: &[u8], tag: u8) -> Option<(&[u8], &[u8])> {
    let (&found, input) = input.split_first()?;
    if found != tag {
        return None;
    }
    let (&first, input) = input.split_first()?;
    let (len, input) = if first < 0x80 {
        (usize::from(first), input)
    } else {
        // 0x80 is the indefinite length; beyond 4 length bytes nothing fits in a certificate.
        let count = usize::from(first & 0x7f);
        if count == 0 || count > 4 {
            return None;
        }
        let (len_bytes, input) = input.split_at_checked(count)?;
        if len_bytes.first() == Some(&0) {
            return None;
        }
        let len = len_bytes
            .iter()
            .fold(0usize, |len, byte| (len << 8) | usize::from(*byte));
        if len < 0x80 {
            return None;
        }
        (len, input)
    };
    input.split_at_checked(len)
}

/// The client verifier's refusal of a valid certificate for another peer than the one dialed.
/// Callers learn both ids from [`ObservedPeer`] and their own `expected`; this only gives the
/// rustls error a clear message.
#[derive(Debug, thiserror::Error)]
#[error("expected peer {expected}, certificate is for {actual}")]
struct PeerIdMismatch {
    expected: PeerId,
    actual: PeerId,
}

/// Hands a certificate failure to rustls, keeping our typed error downcastable from
/// `rustls::CertificateError::Other`.
fn to_rustls(error: impl std::error::Error + Send + Sync + 'static) -> rustls::Error {
    tracing::debug!(%error, "refusing peer certificate");
    rustls::Error::InvalidCertificate(rustls::CertificateError::Other(rustls::OtherError(
        Arc::new(error),
    )))
}

/// Checks a presented chain: exactly one certificate, fully verified at `now`.
fn verify_presented(
    cache: &VerifiedCertificates,
    end_entity: &CertificateDer<'_>,
    intermediates: &[CertificateDer<'_>],
    now: UnixTime,
) -> Result<PeerId, rustls::Error> {
    if !intermediates.is_empty() {
        return Err(to_rustls(CertificateError::NotOneCertificate {
            count: intermediates.len() + 1,
        }));
    }
    verify_cached(cache, end_entity, now)
        .map(|v| v.peer)
        .map_err(to_rustls)
}

/// Checks the TLS 1.3 CertificateVerify signature against the certificate's key.
///
/// `rustls::crypto::verify_tls13_signature` would parse the certificate with webpki, which
/// refuses the critical libp2p extension; the key alone is all the check needs.
fn verify_handshake_signature(
    cache: &VerifiedCertificates,
    message: &[u8],
    cert: &CertificateDer<'_>,
    dss: &DigitallySignedStruct,
    algorithms: &WebPkiSupportedAlgorithms,
) -> Result<HandshakeSignatureValid, rustls::Error> {
    // rustls calls this after the certificate verifier, which remembered the key.
    if let Some(verified) = cache.get(cert.as_ref()) {
        let spki = SubjectPublicKeyInfoDer::from(&verified.spki[..]);
        return rustls::crypto::verify_tls13_signature_with_raw_key(
            message, &spki, dss, algorithms,
        );
    }
    let parsed = parse_certificate(cert).map_err(to_rustls)?;
    let spki = SubjectPublicKeyInfoDer::from(parsed.public_key().raw);
    rustls::crypto::verify_tls13_signature_with_raw_key(message, &spki, dss, algorithms)
}

/// TLS 1.2 is never negotiated (the configs enable TLS 1.3 only); refuse it here too.
fn refuse_tls12() -> Result<HandshakeSignatureValid, rustls::Error> {
    Err(rustls::Error::PeerIncompatible(
        rustls::PeerIncompatible::Tls12NotOfferedOrEnabled,
    ))
}

/// The client's view of the server's certificate.
#[derive(Debug)]
struct ServerVerifier {
    algorithms: WebPkiSupportedAlgorithms,
    expected: Option<PeerId>,
    observed: ObservedPeer,
    verified: Arc<VerifiedCertificates>,
}

impl ServerCertVerifier for ServerVerifier {
    fn verify_server_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        _server_name: &ServerName<'_>,
        _ocsp_response: &[u8],
        now: UnixTime,
    ) -> Result<ServerCertVerified, rustls::Error> {
        let actual = verify_presented(&self.verified, end_entity, intermediates, now)?;
        // Recorded before the comparison, so a mismatch can be reported with both ids.
        self.observed.set(actual);
        match self.expected {
            Some(expected) if expected != actual => {
                Err(to_rustls(PeerIdMismatch { expected, actual }))
            }
            _ => Ok(ServerCertVerified::assertion()),
        }
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        refuse_tls12()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_handshake_signature(&self.verified, message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

/// The server's view of the client's certificate, which it insists on.
#[derive(Debug)]
struct ClientVerifier {
    algorithms: WebPkiSupportedAlgorithms,
    verified: Arc<VerifiedCertificates>,
}

impl ClientCertVerifier for ClientVerifier {
    fn offer_client_auth(&self) -> bool {
        true
    }

    fn client_auth_mandatory(&self) -> bool {
        true
    }

    fn root_hint_subjects(&self) -> &[DistinguishedName] {
        // Certificates are self-signed: there is no CA to hint at.
        &[]
    }

    fn verify_client_cert(
        &self,
        end_entity: &CertificateDer<'_>,
        intermediates: &[CertificateDer<'_>],
        now: UnixTime,
    ) -> Result<ClientCertVerified, rustls::Error> {
        verify_presented(&self.verified, end_entity, intermediates, now)?;
        Ok(ClientCertVerified::assertion())
    }

    fn verify_tls12_signature(
        &self,
        _message: &[u8],
        _cert: &CertificateDer<'_>,
        _dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        refuse_tls12()
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        verify_handshake_signature(&self.verified, message, cert, dss, &self.algorithms)
    }

    fn supported_verify_schemes(&self) -> Vec<SignatureScheme> {
        self.algorithms.supported_schemes()
    }
}

#[cfg(test)]
mod tests;
