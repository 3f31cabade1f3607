//! Target `certificate`: arbitrary DER into the libp2p certificate verifier
//! (`swarm::tls::peer_id_from_certificate`). Never panics; the answer is
//! deterministic and the chain helper agrees with it.
//!
//! Mutating a whole certificate almost always breaks its self-signature,
//! which is checked before the libp2p extension, so the input may also
//! describe a certificate that the target builds and signs itself, to reach
//! the extension, host key and host signature checks with arbitrary data:
//!
//! - first byte `0x30` (a DER SEQUENCE): the input is the certificate;
//! - otherwise `mode, flags, [validity], extra extensions…, rest`, with
//!   `mode % 3`: 0 the libp2p extension's content is `rest`; 1 it is a
//!   `SignedKey` of `publicKey` (a short byte string) and `signature`
//!   (`rest`); 2 it is a valid `SignedKey` of a fixed host key (ed25519,
//!   secp256k1 or ECDSA by the first byte of `rest`), where the outcome is
//!   fully predicted from the flags (validity, unknown critical extensions,
//!   missing or duplicate extension).
//!
//! `flags`: bit 0 libp2p extension critical, bit 1 omit it, bit 2 add it
//! twice, bit 3 explicit validity years follow (two u16), bits 4-5 the
//! number of extra extensions (each `arcs count, arcs (u16), critical,
//! content`, under the unknown arc 1.2), bit 6 a critical basicConstraints.

use std::sync::OnceLock;

use rcgen::PublicKeyData;
use rustls::pki_types::{CertificateDer, ServerName};
use rustls::{ClientConnection, Connection, ServerConnection};
use swarm::tls::{CertificateError, TlsIdentity, peer_id_from_certificate, peer_id_from_chain};
use swarm::{Keypair, PeerId, PublicKey};

use crate::input::Input;

const EXTENSION_OID: &[u64] = &[1, 3, 6, 1, 4, 1, 53594, 1, 1];
const SIGNATURE_PREFIX: &[u8] = b"libp2p-tls-handshake:";

/// The fuzz target's body.
pub fn check(data: &[u8]) {
    match data.first() {
        None | Some(0x30) => {
            let _ = check_der(data);
        }
        Some(_) => check_built(data),
    }
}

/// The verifier's answer on `data`, after the consistency checks.
fn check_der(data: &[u8]) -> Result<PeerId, String> {
    let cert = CertificateDer::from(data);
    let first = peer_id_from_certificate(&cert);
    let again = peer_id_from_certificate(&cert);
    assert_eq!(
        format!("{first:?}"),
        format!("{again:?}"),
        "not deterministic"
    );
    let chained = peer_id_from_chain(std::slice::from_ref(&cert));
    assert_eq!(
        format!("{first:?}"),
        format!("{chained:?}"),
        "chain of one differs"
    );
    for count in [0, 2] {
        let chain = vec![cert.clone(); count];
        assert!(matches!(
            peer_id_from_chain(&chain),
            Err(CertificateError::NotOneCertificate { count: c }) if c == count
        ));
    }
    if first.is_ok() {
        // DER admits exactly one encoding: trailing bytes must be refused.
        let longer = CertificateDer::from([data, &[0]].concat());
        assert!(matches!(
            peer_id_from_certificate(&longer),
            Err(CertificateError::Unparsable(_))
        ));
        // And so must a truncation.
        let shorter = CertificateDer::from(&data[..data.len() - 1]);
        assert!(peer_id_from_certificate(&shorter).is_err());
    }
    first.map_err(|e| format!("{e:?}"))
}

/// A fixed P-256 key (PKCS#8), so that seeds carrying host signatures over
/// it stay valid from one process to the next.
const CERTIFICATE_KEY: &str = "308187020100301306072a8648ce3d020106082a8648ce3d030107046d306b020101042055fa826a5109eae5c85456d66ca6ae9217eb7f0ea29646be9d510b414b1a719ba1440342000403e85f9a78bc2bc29015c0f599483455d01e2f3db3155812b583fea812fb35eb7ea6a03b8dd1b44455a9d8a4883e7a2a0474c63d5cd49854bc3ca19d89a3de32";

/// The certificate key every built certificate is signed with.
fn certificate_key() -> &'static rcgen::KeyPair {
    static KEY: OnceLock<rcgen::KeyPair> = OnceLock::new();
    KEY.get_or_init(|| {
        let der = data_encoding::HEXLOWER
            .decode(CERTIFICATE_KEY.as_bytes())
            .expect("hex");
        rcgen::KeyPair::try_from(der.as_slice()).expect("P-256 key")
    })
}

/// Fixed host keys: ed25519, secp256k1, ECDSA.
fn host_keys() -> &'static [Keypair; 3] {
    static KEYS: OnceLock<[Keypair; 3]> = OnceLock::new();
    KEYS.get_or_init(|| {
        [
            Keypair::ed25519_from_bytes([7; 32]).expect("ed25519"),
            Keypair::generate_secp256k1(),
            Keypair::generate_ecdsa(),
        ]
    })
}

fn tlv(tag: u8, content: &[u8]) -> Vec<u8> {
    let mut out = vec![tag];
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
    out
}

/// DER `SignedKey ::= SEQUENCE { publicKey OCTET STRING, signature OCTET STRING }`.
fn signed_key(public_key: &[u8], signature: &[u8]) -> Vec<u8> {
    tlv(
        0x30,
        &[tlv(0x04, public_key), tlv(0x04, signature)].concat(),
    )
}

/// What the built certificate must verify to, when it can be told.
enum Expect {
    Unknown,
    /// Whatever PeerId comes out must be that of this key.
    KeyOf(Vec<u8>),
    Exactly(Result<PeerId, &'static str>),
}

fn check_built(data: &[u8]) {
    let mut input = Input::new(data);
    let mode = input.u8() % 3;
    let flags = input.u8();
    let mut params = rcgen::CertificateParams::default();
    params.not_before = rcgen::date_time_ymd(1975, 1, 1);
    params.not_after = rcgen::date_time_ymd(4096, 1, 1);
    let mut validity: Result<(), &'static str> = Ok(());
    if flags & 8 != 0 {
        let (from, to) = (
            1971 + i32::from(input.u16() % 8000),
            1971 + i32::from(input.u16() % 8000),
        );
        params.not_before = rcgen::date_time_ymd(from, 1, 1);
        params.not_after = rcgen::date_time_ymd(to, 1, 1);
        let year = 1970
            + (std::time::SystemTime::now()
                .duration_since(std::time::UNIX_EPOCH)
                .unwrap_or_default()
                .as_secs()
                / 31_556_952) as i32;
        // Jan 1 of this year is past, of next year to come.
        if from > year {
            validity = Err("NotYetValid");
        } else if to <= year {
            validity = Err("Expired");
        }
    }
    if flags & 64 != 0 {
        params.is_ca = rcgen::IsCa::ExplicitNoCa;
    }
    let mut unknown_critical = None;
    for _ in 0..(flags >> 4) & 3 {
        let mut arcs = vec![1, 2];
        arcs.extend((0..input.u8() % 5).map(|_| u64::from(input.u16())));
        let critical = input.bool();
        let content = input.short_bytes().to_vec();
        let mut extension = rcgen::CustomExtension::from_oid_content(&arcs, content);
        extension.set_criticality(critical);
        if critical && unknown_critical.is_none() {
            unknown_critical = Some(arcs);
        }
        params.custom_extensions.push(extension);
    }
    let key = certificate_key();
    let (content, mut expect) = match mode {
        0 => (input.rest().to_vec(), Expect::Unknown),
        1 => {
            let public_key = input.short_bytes().to_vec();
            let content = signed_key(&public_key, input.rest());
            (content, Expect::KeyOf(public_key))
        }
        _ => {
            let host = &host_keys()[usize::from(input.u8() % 3)];
            let message = [SIGNATURE_PREFIX, &key.subject_public_key_info()].concat();
            let signature = host.sign(&message).expect("host signature");
            let public_key = host.public().encode_protobuf();
            let content = signed_key(&public_key, &signature);
            let peer = host.public().to_peer_id();
            let outcome = validity.and(match unknown_critical {
                Some(_) => Err("UnknownCriticalExtension"),
                None if flags & 2 != 0 => Err("MissingExtension"),
                None if flags & 4 != 0 => Err("DuplicateExtension"),
                None => Ok(peer),
            });
            (content, Expect::Exactly(outcome))
        }
    };
    if flags & 2 == 0 {
        let copies = if flags & 4 != 0 { 2 } else { 1 };
        for _ in 0..copies {
            let mut extension =
                rcgen::CustomExtension::from_oid_content(EXTENSION_OID, content.clone());
            extension.set_criticality(flags & 1 != 0);
            params.custom_extensions.push(extension);
        }
    } else if let Expect::KeyOf(_) = expect {
        expect = Expect::Exactly(validity.and(match unknown_critical {
            Some(_) => Err("UnknownCriticalExtension"),
            None => Err("MissingExtension"),
        }));
    }
    let Ok(cert) = params.self_signed(key) else {
        return;
    };
    let outcome = check_der(cert.der());
    match expect {
        Expect::Unknown => {}
        Expect::KeyOf(public_key) => {
            if let Ok(peer) = &outcome {
                let key = PublicKey::try_decode_protobuf(&public_key).expect("accepted a bad key");
                assert_eq!(*peer, key.to_peer_id(), "PeerId of another key");
            }
        }
        Expect::Exactly(Ok(peer)) => assert_eq!(outcome, Ok(peer), "valid certificate refused"),
        Expect::Exactly(Err(error)) => match outcome {
            Ok(peer) => panic!("accepted as {peer}, expected {error}"),
            Err(e) => assert!(e.starts_with(error), "refused with {e}, expected {error}"),
        },
    }
}

/// libp2p/specs tls/tls.md, "Test vectors": ed25519, ECDSA and secp256k1
/// host keys, then the invalid certificate.
pub const SPEC_VECTORS: [&str; 4] = [
    "308201ae30820156a0030201020204499602d2300a06082a8648ce3d040302302031123010060355040a13096c69627032702e696f310a300806035504051301313020170d3735303130313133303030305a180f34303936303130313133303030305a302031123010060355040a13096c69627032702e696f310a300806035504051301313059301306072a8648ce3d020106082a8648ce3d030107034200040c901d423c831ca85e27c73c263ba132721bb9d7a84c4f0380b2a6756fd601331c8870234dec878504c174144fa4b14b66a651691606d8173e55bd37e381569ea37c307a3078060a2b0601040183a25a0101046a3068042408011220a77f1d92fedb59dddaea5a1c4abd1ac2fbde7d7b879ed364501809923d7c11b90440d90d2769db992d5e6195dbb08e706b6651e024fda6cfb8846694a435519941cac215a8207792e42849cccc6cd8136c6e4bde92a58c5e08cfd4206eb5fe0bf909300a06082a8648ce3d0403020346003043021f50f6b6c52711a881778718238f650c9fb48943ae6ee6d28427dc6071ae55e702203625f116a7a454db9c56986c82a25682f7248ea1cb764d322ea983ed36a31b77",
    "308201f63082019da0030201020204499602d2300a06082a8648ce3d040302302031123010060355040a13096c69627032702e696f310a300806035504051301313020170d3735303130313133303030305a180f34303936303130313133303030305a302031123010060355040a13096c69627032702e696f310a300806035504051301313059301306072a8648ce3d020106082a8648ce3d030107034200040c901d423c831ca85e27c73c263ba132721bb9d7a84c4f0380b2a6756fd601331c8870234dec878504c174144fa4b14b66a651691606d8173e55bd37e381569ea381c23081bf3081bc060a2b0601040183a25a01010481ad3081aa045f0803125b3059301306072a8648ce3d020106082a8648ce3d03010703420004bf30511f909414ebdd3242178fd290f093a551cf75c973155de0bb5a96fedf6cb5d52da7563e794b512f66e60c7f55ba8a3acf3dd72a801980d205e8a1ad29f2044730450220064ea8124774caf8f50e57f436aa62350ce652418c019df5d98a3ac666c9386a022100aa59d704a931b5f72fb9222cb6cc51f954d04a4e2e5450f8805fe8918f71eaae300a06082a8648ce3d04030203470030440220799395b0b6c1e940a7e4484705f610ab51ed376f19ff9d7c16757cfbf61b8d4302206205c03fbb0f95205c779be86581d3e31c01871ad5d1f3435bcf375cb0e5088a",
    "308201ba3082015fa0030201020204499602d2300a06082a8648ce3d040302302031123010060355040a13096c69627032702e696f310a300806035504051301313020170d3735303130313133303030305a180f34303936303130313133303030305a302031123010060355040a13096c69627032702e696f310a300806035504051301313059301306072a8648ce3d020106082a8648ce3d030107034200040c901d423c831ca85e27c73c263ba132721bb9d7a84c4f0380b2a6756fd601331c8870234dec878504c174144fa4b14b66a651691606d8173e55bd37e381569ea38184308181307f060a2b0601040183a25a01010471306f0425080212210206dc6968726765b820f050263ececf7f71e4955892776c0970542efd689d2382044630440220145e15a991961f0d08cd15425bb95ec93f6ffa03c5a385eedc34ecf464c7a8ab022026b3109b8a3f40ef833169777eb2aa337cfb6282f188de0666d1bcec2a4690dd300a06082a8648ce3d0403020349003046022100e1a217eeef9ec9204b3f774a08b70849646b6a1e6b8b27f93dc00ed58545d9fe022100b00dafa549d0f03547878338c7b15e7502888f6d45db387e5ae6b5d46899cef0",
    "308201f73082019da0030201020204499602d2300a06082a8648ce3d040302302031123010060355040a13096c69627032702e696f310a300806035504051301313020170d3735303130313133303030305a180f34303936303130313133303030305a302031123010060355040a13096c69627032702e696f310a300806035504051301313059301306072a8648ce3d020106082a8648ce3d030107034200040c901d423c831ca85e27c73c263ba132721bb9d7a84c4f0380b2a6756fd601331c8870234dec878504c174144fa4b14b66a651691606d8173e55bd37e381569ea381c23081bf3081bc060a2b0601040183a25a01010481ad3081aa045f0803125b3059301306072a8648ce3d020106082a8648ce3d03010703420004bf30511f909414ebdd3242178fd290f093a551cf75c973155de0bb5a96fedf6cb5d52da7563e794b512f66e60c7f55ba8a3acf3dd72a801980d205e8a1ad29f204473045022100bb6e03577b7cc7a3cd1558df0da2b117dfdcc0399bc2504ebe7de6f65cade72802206de96e2a5be9b6202adba24ee0362e490641ac45c240db71fe955f2c5cf8df6e300a06082a8648ce3d0403020348003045022100e847f267f43717358f850355bdcabbefb2cfbf8a3c043b203a14788a092fe8db022027c1d04a2d41fd6b57a7e8b3989e470325de4406e52e084e34a3fd56eef0d0df",
];

/// The spec vectors, decoded.
pub fn spec_vectors() -> Vec<Vec<u8>> {
    SPEC_VECTORS
        .iter()
        .map(|hex| data_encoding::HEXLOWER.decode(hex.as_bytes()).expect("hex"))
        .collect()
}

/// The certificate a [`TlsIdentity`] for `keypair` presents, taken from an
/// in-memory TLS handshake (the identity does not expose it otherwise).
pub fn identity_certificate(keypair: &Keypair) -> Vec<u8> {
    let identity = TlsIdentity::new(keypair).expect("identity");
    let (client_config, _) = identity.client_config(None).expect("client config");
    let name = ServerName::try_from("libp2p").expect("name");
    let mut client: Connection = ClientConnection::new(client_config, name)
        .expect("client")
        .into();
    let server_config = identity.server_config().expect("server config");
    let mut server: Connection = ServerConnection::new(server_config).expect("server").into();
    for _ in 0..16 {
        let moved = transfer(&mut client, &mut server) + transfer(&mut server, &mut client);
        if moved == 0 {
            break;
        }
    }
    let chain = client.peer_certificates().expect("server certificate");
    chain[0].to_vec()
}

fn transfer(from: &mut Connection, to: &mut Connection) -> usize {
    let mut bytes = Vec::new();
    while from.wants_write() {
        from.write_tls(&mut bytes).expect("write_tls");
    }
    let mut unread = &bytes[..];
    while !unread.is_empty() {
        to.read_tls(&mut unread).expect("read_tls");
        to.process_new_packets().expect("handshake");
    }
    bytes.len()
}

/// Fresh certificates for the three host key types we support.
#[allow(clippy::type_complexity)]
pub fn identity_certificates() -> Vec<(&'static str, Keypair, Vec<u8>)> {
    [
        (
            "ed25519",
            Keypair::ed25519_from_bytes([7; 32]).expect("key"),
        ),
        ("secp256k1", Keypair::generate_secp256k1()),
        ("ecdsa", Keypair::generate_ecdsa()),
    ]
    .into_iter()
    .map(|(name, key)| {
        let cert = identity_certificate(&key);
        (name, key, cert)
    })
    .collect()
}

/// Inputs worth starting from.
pub fn seeds() -> Vec<Vec<u8>> {
    let mut seeds = spec_vectors();
    seeds.extend(identity_certificates().into_iter().map(|(_, _, c)| c));
    let host = &host_keys()[0];
    let public_key = host.public().encode_protobuf();
    let spki = certificate_key().subject_public_key_info();
    let signature = host
        .sign(&[SIGNATURE_PREFIX, &spki].concat())
        .expect("signature");
    // Built certificates: a valid SignedKey as raw content; as key and
    // signature (valid only with this process's certificate key);
    // then valid ones of each host key type, broken by the flags.
    seeds.push([&[0, 1][..], &signed_key(&public_key, &signature)].concat());
    let key = [&[public_key.len() as u8][..], &public_key].concat();
    seeds.push([&[1, 1][..], &key, &signature].concat());
    for host in 0..3u8 {
        seeds.push(vec![2, 1, host]);
    }
    // Explicit validity (expired, not yet valid), an unknown critical
    // extension, basicConstraints, missing and duplicate extensions.
    seeds.push(vec![2, 8, 0x10, 0x00, 0x20, 0x00, 0]);
    seeds.push(vec![2, 8, 0x00, 0x1f, 0x10, 0x1f, 0]);
    seeds.push(vec![2, 0x11, 2, 3, 0, 4, 0, 1, 2, 0xab, 0xcd, 1]);
    seeds.push(vec![2, 0x41, 0]);
    seeds.push(vec![2, 0x02, 0]);
    seeds.push(vec![2, 0x05, 0]);
    seeds
}
