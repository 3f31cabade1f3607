//! A raw quinn transfer, no libp2p: the practical ceiling for a QUIC perf
//! in Rust, for perf/bench/compare.sh.
//!
//! Each perf run is one bidirectional QUIC stream carrying exactly the perf
//! protocol's bytes (8-byte header, upload, end; then the download, end),
//! without multistream-select. TLS 1.3 with a self-signed rcgen
//! certificate and no client certificate; AES-128-GCM is offered first.
//! Windows as rust-libp2p's (and bandwidth_perf's) defaults: 10 MB per
//! stream, 15 MB per connection, 15 MB send window. Sends are zero-copy
//! (`write_chunk` of static zeros), receives take quinn's chunks as they
//! come (`read_chunk`).

use std::net::SocketAddr;
use std::sync::Arc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, ensure};
use bench_common::{CHUNK, Cli, Mode, ZEROS};
use bytes::Bytes;
use quinn::crypto::rustls::{QuicClientConfig, QuicServerConfig};
use quinn::{Connection, Endpoint, RecvStream, SendStream, TransportConfig, VarInt};
use rustls::client::danger::{HandshakeSignatureValid, ServerCertVerified, ServerCertVerifier};
use rustls::crypto::CryptoProvider;
use rustls::pki_types::{CertificateDer, PrivatePkcs8KeyDer, ServerName, UnixTime};

const ALPN: &[u8] = b"perf";

#[tokio::main]
async fn main() -> anyhow::Result<()> {
    let cli = Cli::get();
    if cli.run_server {
        server(cli.server_address).await
    } else {
        client(&cli).await
    }
}

/// The ring provider with AES-128-GCM first (fastest on AES-NI hardware).
fn provider() -> Arc<CryptoProvider> {
    let mut provider = rustls::crypto::ring::default_provider();
    provider
        .cipher_suites
        .sort_by_key(|s| s.suite() != rustls::CipherSuite::TLS13_AES_128_GCM_SHA256);
    Arc::new(provider)
}

fn transport() -> Arc<TransportConfig> {
    let mut t = TransportConfig::default();
    t.stream_receive_window(VarInt::from_u32(10_000_000))
        .receive_window(VarInt::from_u32(15_000_000))
        .send_window(15_000_000)
        .max_concurrent_bidi_streams(VarInt::from_u32(256))
        .max_idle_timeout(Some(VarInt::from_u32(10_000).into()));
    Arc::new(t)
}

async fn server(addr: SocketAddr) -> anyhow::Result<()> {
    let cert = rcgen::generate_simple_self_signed(vec!["localhost".into()])?;
    let key = PrivatePkcs8KeyDer::from(cert.signing_key.serialize_der());
    let mut tls = rustls::ServerConfig::builder_with_provider(provider())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .with_no_client_auth()
        .with_single_cert(vec![cert.cert.der().clone()], key.into())?;
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let mut config = quinn::ServerConfig::with_crypto(Arc::new(QuicServerConfig::try_from(tls)?));
    config.transport_config(transport());
    let endpoint = Endpoint::server(config, addr)?;
    eprintln!("Listening on {}", endpoint.local_addr()?);
    while let Some(incoming) = endpoint.accept().await {
        tokio::spawn(async move {
            let Ok(conn) = incoming.await else { return };
            while let Ok((send, recv)) = conn.accept_bi().await {
                tokio::spawn(async move {
                    if let Err(e) = serve(send, recv).await {
                        eprintln!("perf stream failed: {e:#}");
                    }
                });
            }
        });
    }
    Ok(())
}

/// Read the header and the upload to its end, then send what was asked.
async fn serve(mut send: SendStream, mut recv: RecvStream) -> anyhow::Result<()> {
    let mut header = [0u8; 8];
    recv.read_exact(&mut header).await?;
    drain(&mut recv).await?;
    send_zeros(&mut send, u64::from_be_bytes(header)).await?;
    send.finish()?;
    // Keep the stream until the peer has it all (or the connection ends).
    let _ = send.stopped().await;
    Ok(())
}

async fn send_zeros(send: &mut SendStream, mut left: u64) -> anyhow::Result<()> {
    while left > 0 {
        let n = usize::try_from(left).unwrap_or(CHUNK).min(CHUNK);
        send.write_chunk(Bytes::from_static(&ZEROS[..n])).await?;
        left -= n as u64;
    }
    Ok(())
}

async fn drain(recv: &mut RecvStream) -> anyhow::Result<u64> {
    let mut total = 0;
    while let Some(chunk) = recv.read_chunk(usize::MAX, true).await? {
        total += chunk.bytes.len() as u64;
    }
    Ok(total)
}

/// One perf run on a new stream: header, upload, finish, drain.
async fn perf_run(conn: &Connection, upload: u64, download: u64) -> anyhow::Result<()> {
    let (mut send, mut recv) = conn.open_bi().await?;
    send.write_all(&download.to_be_bytes()).await?;
    send_zeros(&mut send, upload).await?;
    send.finish()?;
    let received = drain(&mut recv).await?;
    ensure!(
        received == download,
        "short byte count: received {received} of {download} bytes"
    );
    Ok(())
}

/// Accepts any server certificate but checks the handshake signature (the
/// libp2p verifiers check the signature too, and more).
#[derive(Debug)]
struct AnyServer(Arc<CryptoProvider>);

impl ServerCertVerifier for AnyServer {
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
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls12_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn verify_tls13_signature(
        &self,
        message: &[u8],
        cert: &CertificateDer<'_>,
        dss: &rustls::DigitallySignedStruct,
    ) -> Result<HandshakeSignatureValid, rustls::Error> {
        rustls::crypto::verify_tls13_signature(
            message,
            cert,
            dss,
            &self.0.signature_verification_algorithms,
        )
    }

    fn supported_verify_schemes(&self) -> Vec<rustls::SignatureScheme> {
        self.0.signature_verification_algorithms.supported_schemes()
    }
}

fn client_endpoint() -> anyhow::Result<Endpoint> {
    let provider = provider();
    let mut tls = rustls::ClientConfig::builder_with_provider(provider.clone())
        .with_protocol_versions(&[&rustls::version::TLS13])?
        .dangerous()
        .with_custom_certificate_verifier(Arc::new(AnyServer(provider)))
        .with_no_client_auth();
    tls.alpn_protocols = vec![ALPN.to_vec()];
    let mut config = quinn::ClientConfig::new(Arc::new(QuicClientConfig::try_from(tls)?));
    config.transport_config(transport());
    let mut endpoint = Endpoint::client("127.0.0.1:0".parse()?)?;
    endpoint.set_default_client_config(config);
    Ok(endpoint)
}

async fn connect(endpoint: &Endpoint, addr: SocketAddr) -> anyhow::Result<Connection> {
    endpoint
        .connect(addr, "localhost")?
        .await
        .with_context(|| format!("cannot reach {addr}"))
}

async fn client(cli: &Cli) -> anyhow::Result<()> {
    let start = Instant::now();
    let endpoint = client_endpoint()?;
    let addr = cli.server_address;
    let iterations = cli.iterations();
    match cli.mode {
        Mode::Transfer => {
            let conn = connect(&endpoint, addr).await?;
            perf_run(&conn, cli.upload_bytes, cli.download_bytes).await?;
            bench_common::print_final(start.elapsed(), cli.upload_bytes, cli.download_bytes);
            conn.close(0u32.into(), b"done");
        }
        Mode::Latency => {
            let conn = connect(&endpoint, addr).await?;
            perf_run(&conn, 0, 1).await?;
            conn.close(0u32.into(), b"done");
            let mut samples: Vec<Duration> = Vec::with_capacity(iterations as usize);
            for _ in 0..iterations {
                let t = Instant::now();
                let conn = connect(&endpoint, addr).await?;
                perf_run(&conn, 0, 1).await?;
                samples.push(t.elapsed());
                conn.close(0u32.into(), b"done");
            }
            bench_common::print_latency(&mut samples);
        }
        Mode::Connections => {
            connect(&endpoint, addr).await?.close(0u32.into(), b"done");
            let t = Instant::now();
            for _ in 0..iterations {
                connect(&endpoint, addr).await?.close(0u32.into(), b"done");
            }
            bench_common::print_rate(cli.mode, iterations, t.elapsed());
        }
        Mode::Requests => {
            let conn = connect(&endpoint, addr).await?;
            perf_run(&conn, 0, 1).await?;
            let t = Instant::now();
            for _ in 0..iterations {
                perf_run(&conn, 0, 1).await?;
            }
            let elapsed = t.elapsed();
            conn.close(0u32.into(), b"done");
            bench_common::print_rate(cli.mode, iterations, elapsed);
        }
    }
    // Let the close reach the server before the endpoint goes.
    endpoint.wait_idle().await;
    Ok(())
}
