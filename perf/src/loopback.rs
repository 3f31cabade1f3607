//! `bandwidth_perf loopback`: a server process and a client on 127.0.0.1
//! in one go.
//!
//! We start this same program as `bandwidth_perf server` on a free port of
//! 127.0.0.1 with a pipe on its standard input (it exits when the pipe
//! closes, so it cannot outlive us), read its banner up to the first
//! `Listening on` line, and run the client against the address and PeerId
//! printed there: a download, then an upload, each as its own run with
//! the client's usual output (or, with `MODE`, that measurement).

use std::io::{BufRead, BufReader};
use std::net::SocketAddr;
use std::process::{Child, Command, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

use anyhow::{Context as _, bail};
use swarm::address::parse_quic_addr;
use swarm::{Multiaddr, PeerId};

use crate::client;
use crate::env::{ClientMode, ClientSettings};

/// How long the server may take to print its listen address.
const START_TIMEOUT: Duration = Duration::from_secs(30);

/// Start the server, run the client's runs against it, stop the server.
pub fn run(settings: &ClientSettings) -> anyhow::Result<()> {
    if settings.mode == ClientMode::Transfer && settings.download == 0 && settings.upload == 0 {
        bail!("nothing to transfer: BYTE_SIZE and UPLOAD_SIZE are both 0");
    }
    let mut server = Server::start()?;
    let mut target = settings.clone();
    target.server = server.address;
    target.responder = Some(server.peer);
    let result = run_client(&target);
    server.stop();
    result
}

fn run_client(settings: &ClientSettings) -> anyhow::Result<()> {
    if settings.mode != ClientMode::Transfer {
        return client::run(settings);
    }
    if settings.download > 0 {
        eprintln!("Download of {}:", size_text(settings.download));
        client::run(&ClientSettings {
            upload: 0,
            ..settings.clone()
        })
        .context("download")?;
    }
    if settings.upload > 0 {
        eprintln!("Upload of {}:", size_text(settings.upload));
        client::run(&ClientSettings {
            download: 0,
            ..settings.clone()
        })
        .context("upload")?;
    }
    Ok(())
}

/// A byte count for people: `1 GiB`, `3 MiB`, or bytes.
fn size_text(bytes: u64) -> String {
    for (unit, shift) in [("GiB", 30), ("MiB", 20), ("KiB", 10)] {
        if bytes >= 1 << shift && bytes.is_multiple_of(1 << shift) {
            return format!("{} {unit}", bytes >> shift);
        }
    }
    format!("{bytes} bytes")
}

/// The server child process; killed if still running when dropped.
struct Server {
    child: Child,
    address: SocketAddr,
    peer: PeerId,
}

impl Server {
    fn start() -> anyhow::Result<Self> {
        let exe = std::env::current_exe().context("cannot find this program's path")?;
        let mut child = Command::new(exe)
            .args(["server", "--exit-with-stdin"])
            .env("PORT", "0")
            .env("LISTEN_IP", "127.0.0.1")
            .stdin(Stdio::piped())
            .stdout(Stdio::null())
            .stderr(Stdio::piped())
            .spawn()
            .context("cannot start the server process")?;
        match listen_address(&mut child) {
            Ok((address, peer)) => Ok(Server {
                child,
                address,
                peer,
            }),
            Err(e) => {
                let _ = child.kill();
                let _ = child.wait();
                Err(e)
            }
        }
    }

    /// Close its standard input (it exits), then make sure it is gone.
    fn stop(&mut self) {
        drop(self.child.stdin.take());
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if let Ok(Some(_)) = self.child.try_wait() {
                return;
            }
            std::thread::sleep(Duration::from_millis(10));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Read the server's banner up to its first `Listening on` line, and
/// forward its lines (prefixed) from then on; the address and PeerId there.
fn listen_address(child: &mut Child) -> anyhow::Result<(SocketAddr, PeerId)> {
    let stderr = child.stderr.take().context("no server stderr")?;
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut announced = false;
        for line in BufReader::new(stderr).lines().map_while(Result::ok) {
            // A generated key is of no use to anyone after this run.
            if !line.starts_with("Secret key: ") {
                eprintln!("[server] {line}");
            }
            if !announced && let Some(addr) = line.strip_prefix("Listening on ") {
                announced = true;
                let _ = tx.send(addr.to_string());
            }
        }
    });
    let line =
        rx.recv_timeout(START_TIMEOUT)
            .map_err(|_| match child.try_wait().ok().flatten() {
                Some(status) => anyhow::anyhow!("the server exited ({status}) before listening"),
                None => anyhow::anyhow!("the server did not listen within {START_TIMEOUT:?}"),
            })?;
    let addr: Multiaddr = line
        .parse()
        .with_context(|| format!("the server printed a bad address: {line}"))?;
    let quic = parse_quic_addr(&addr)
        .with_context(|| format!("the server printed a non-QUIC address: {line}"))?;
    let peer = quic
        .peer
        .with_context(|| format!("the server's address has no PeerId: {line}"))?;
    Ok((quic.socket, peer))
}

impl Drop for Server {
    fn drop(&mut self) {
        if let Ok(None) = self.child.try_wait() {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn sizes_for_people() {
        assert_eq!(size_text(1 << 30), "1 GiB");
        assert_eq!(size_text(3 << 20), "3 MiB");
        assert_eq!(size_text(1536), "1536 bytes");
        assert_eq!(size_text(2048), "2 KiB");
    }
}
