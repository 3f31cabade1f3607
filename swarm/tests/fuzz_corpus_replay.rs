//! Replays the committed fuzz corpora of the swarm's targets in plain
//! `cargo test` (stable, no cargo-fuzz): every file of
//! `swarm/fuzz/corpus/<target>/` and `swarm/fuzz/regressions/<target>/`, and
//! the targets' seeds, go through the very checks the fuzz targets run (the
//! target bodies are included from `swarm/fuzz/src/`). The protocol targets
//! (identify, perf and ping) replay in `protocols/tests/fuzz_corpus_replay.rs`.

#[allow(dead_code)]
#[path = "../fuzz/src/certificate.rs"]
mod certificate;
#[allow(dead_code)]
#[path = "../fuzz/src/input.rs"]
mod input;
#[allow(dead_code)]
#[path = "../fuzz/src/multistream.rs"]
mod multistream;
#[allow(dead_code)]
#[path = "../fuzz/src/net.rs"]
mod net;
#[allow(dead_code)]
#[path = "../fuzz/src/observe.rs"]
mod observe;
#[allow(dead_code)]
#[path = "../fuzz/src/plugin_api.rs"]
mod plugin_api;

#[path = "../fuzz/src/replay.rs"]
mod replay;

/// The fuzz crate's directory, where the corpora and regressions live.
fn fuzz_dir() -> std::path::PathBuf {
    std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("fuzz")
}

/// Replay `target`'s committed inputs and seeds through `check`.
fn replay(target: &str, seeds: Vec<Vec<u8>>, check: fn(&[u8])) {
    replay::replay(&fuzz_dir(), target, seeds, check);
}

#[test]
fn multistream_corpus_replays_clean() {
    replay("multistream", multistream::seeds(), multistream::check);
}

#[test]
fn certificate_corpus_replays_clean() {
    replay(
        "certificate",
        certificate::spec_vectors(),
        certificate::check,
    );
}

#[test]
fn plugin_api_corpus_replays_clean() {
    replay("plugin_api", plugin_api::seeds(), plugin_api::check);
}

/// The certificate corpus is seeded with what `TlsIdentity` presents for
/// each host key type; fresh ones must verify to their host's PeerId and
/// pass the target's checks.
#[test]
fn tls_identity_certificates_verify_to_their_peer_ids() {
    for (name, key, cert) in certificate::identity_certificates() {
        let der = rustls::pki_types::CertificateDer::from(cert.clone());
        let peer = swarm::tls::peer_id_from_certificate(&der);
        assert_eq!(peer.ok(), Some(key.public().to_peer_id()), "{name}");
        certificate::check(&cert);
    }
}
