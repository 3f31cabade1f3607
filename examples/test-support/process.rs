//! Helpers for tests that run the example's binary as separate processes on
//! loopback: every wait is bounded, and every child is killed when the test
//! ends, passing or failing.
#![allow(dead_code)]

use std::io::{BufRead, BufReader, Read};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitStatus, Stdio};
use std::sync::mpsc;
use std::time::{Duration, Instant};

/// A bound on every wait; generous for debug builds on a busy machine.
pub const TIMEOUT: Duration = Duration::from_secs(60);

/// A server process, killed when dropped.
pub struct Server {
    child: Child,
    /// The address it printed, with `/p2p/<peer id>`.
    pub addr: String,
}

impl Server {
    /// The server's process id (to read `/proc/<pid>/status`).
    pub fn pid(&self) -> u32 {
        self.child.id()
    }
}

impl Drop for Server {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
    }
}

/// Start `bin args…` and wait for its one stdout line,
/// `Listening on <multiaddr>/p2p/<peer id>`.
pub fn start_server(bin: &str, args: &[&str]) -> Server {
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    let stdout = child.stdout.take().expect("piped stdout");
    let (tx, rx) = mpsc::channel();
    // Read on a thread (the first line with a bound), and keep draining so
    // the server never blocks on a full pipe.
    std::thread::spawn(move || {
        for line in BufReader::new(stdout).lines() {
            let Ok(line) = line else { break };
            let _ = tx.send(line);
        }
    });
    let mut server = Server {
        child,
        addr: String::new(),
    };
    let line = rx
        .recv_timeout(TIMEOUT)
        .unwrap_or_else(|_| panic!("{bin} printed no line within {TIMEOUT:?}"));
    server.addr = line
        .strip_prefix("Listening on ")
        .unwrap_or_else(|| panic!("unexpected first line {line:?}"))
        .to_string();
    assert!(server.addr.contains("/p2p/"), "no peer id in {line:?}");
    server
}

/// What a finished client printed.
pub struct Output {
    /// Its exit status.
    pub status: ExitStatus,
    /// Everything on stdout.
    pub stdout: String,
    /// Everything on stderr.
    pub stderr: String,
    /// How long it ran.
    pub took: Duration,
}

impl Output {
    /// The exit code (`None` if a signal ended it).
    pub fn code(&self) -> Option<i32> {
        self.status.code()
    }
}

/// Run `bin args…` to its end, killing it if it runs past `TIMEOUT`.
pub fn run(bin: &str, args: &[&str]) -> Output {
    let started = Instant::now();
    let mut child = Command::new(bin)
        .args(args)
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap_or_else(|e| panic!("cannot start {bin}: {e}"));
    let stdout = read_all(child.stdout.take().expect("piped stdout"));
    let stderr = read_all(child.stderr.take().expect("piped stderr"));
    let status = loop {
        if let Some(status) = child.try_wait().expect("wait") {
            break status;
        }
        if started.elapsed() > TIMEOUT {
            let _ = child.kill();
            let _ = child.wait();
            panic!("{bin} {args:?} ran longer than {TIMEOUT:?}");
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let output = Output {
        status,
        stdout: stdout.recv_timeout(TIMEOUT).expect("stdout"),
        stderr: stderr.recv_timeout(TIMEOUT).expect("stderr"),
        took: started.elapsed(),
    };
    eprintln!(
        "{bin} {args:?} -> {:?} in {:?}; stderr: {}",
        output.code(),
        output.took,
        output.stderr.trim_end()
    );
    output
}

/// Read a pipe to its end on a thread.
fn read_all(mut pipe: impl Read + Send + 'static) -> mpsc::Receiver<String> {
    let (tx, rx) = mpsc::channel();
    std::thread::spawn(move || {
        let mut bytes = Vec::new();
        let _ = pipe.read_to_end(&mut bytes);
        let _ = tx.send(String::from_utf8_lossy(&bytes).into_owned());
    });
    rx
}

/// A fresh directory under the system's temp dir, removed when dropped.
pub struct TempDir(PathBuf);

impl TempDir {
    /// A new empty directory whose name starts with `prefix`.
    pub fn new(prefix: &str) -> TempDir {
        use std::sync::atomic::{AtomicUsize, Ordering};
        static NEXT: AtomicUsize = AtomicUsize::new(0);
        let n = NEXT.fetch_add(1, Ordering::Relaxed);
        let path = std::env::temp_dir().join(format!("{prefix}-{}-{n}", std::process::id()));
        let _ = std::fs::remove_dir_all(&path);
        std::fs::create_dir_all(&path).expect("create temp dir");
        TempDir(path)
    }

    /// The directory.
    pub fn path(&self) -> &Path {
        &self.0
    }
}

impl Drop for TempDir {
    fn drop(&mut self) {
        let _ = std::fs::remove_dir_all(&self.0);
    }
}

/// The address with its `/p2p/<peer id>` replaced by `peer`.
pub fn with_peer_id(addr: &str, peer: &str) -> String {
    let (base, _) = addr.rsplit_once("/p2p/").expect("address with /p2p/");
    format!("{base}/p2p/{peer}")
}

/// A loopback UDP port where nobody answers: the socket is bound (so no
/// ICMP error comes back) but never read. Keep the socket while testing.
pub fn silent_port() -> (std::net::UdpSocket, String) {
    let socket = std::net::UdpSocket::bind("127.0.0.1:0").expect("bind");
    let port = socket.local_addr().expect("addr").port();
    (socket, format!("/ip4/127.0.0.1/udp/{port}/quic-v1"))
}

/// A swarm in this process with no protocol plugin, so it refuses every
/// stream. Shut down when dropped.
pub struct MuteNode {
    handle: swarm::SwarmHandle,
    thread: Option<std::thread::JoinHandle<std::io::Result<()>>>,
    /// Its address, with `/p2p/<peer id>`.
    pub addr: String,
}

impl MuteNode {
    /// Start one on 127.0.0.1.
    pub fn start() -> MuteNode {
        let key = swarm::identity::generate_keypair();
        let mut runtime = swarm::Runtime::new(swarm::SwarmConfig::new(key)).expect("runtime");
        let addr = runtime
            .listen(&"/ip4/127.0.0.1/udp/0/quic-v1".parse().expect("multiaddr"))
            .expect("listen");
        let addr = format!("{addr}/p2p/{}", runtime.swarm().local_peer_id());
        let (handle, thread) = runtime.spawn().expect("spawn");
        MuteNode {
            handle,
            thread: Some(thread),
            addr,
        }
    }
}

impl Drop for MuteNode {
    fn drop(&mut self) {
        let _ = self.handle.shutdown(0);
        if let Some(thread) = self.thread.take() {
            let _ = thread.join();
        }
    }
}
