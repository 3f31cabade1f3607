//! `/file-transfer/1.0.0`: fetch a file by name from a served directory,
//! each transfer on a thread of its own.
//!
//! # Threads
//!
//! The plugin, [`FileServer`], runs on the swarm thread and never touches
//! the disk. For each inbound stream it calls
//! [`Context::detach_stream`](swarm::Context::detach_stream) and starts a
//! thread with the returned [`DetachedStream`] (blocking `Read + Write`). That
//! thread reads the name, opens the file and copies it into the stream with
//! [`std::io::copy`]. The handle's buffer is bounded
//! ([`Limits::threaded_stream_buffer`](swarm::Limits)): when the reader is
//! slow, `write` blocks, QUIC flow control holds the sender back, and memory
//! stays flat whatever the file's size. The receiving side, [`fetch`], does
//! the same in the other direction.
//!
//! # Wire format
//!
//! - Client: the file name (UTF-8, at most [`MAX_NAME_LEN`] bytes), then
//!   the end of its send side.
//! - Server: one status byte. [`STATUS_OK`]: the file's length as a
//!   big-endian `u64`, then exactly that many bytes. [`STATUS_ERROR`]: a
//!   UTF-8 reason. Then the end of its send side.
//!
//! The length lets the client tell a whole file from one cut short.

use std::fs::File;
use std::io::{self, BufWriter, Read, Write};
use std::path::{Path, PathBuf};
use std::sync::Arc;
use std::sync::atomic::{AtomicUsize, Ordering};
use std::time::Duration;

use swarm::{Context, DetachedStream, Protocol, StreamRef};
use tracing::{debug, info, warn};

/// The protocol id.
pub const PROTOCOL: &str = "/file-transfer/1.0.0";
/// Longest file name, in bytes.
pub const MAX_NAME_LEN: usize = 255;
/// Most transfers a server runs at once; further streams are reset.
pub const MAX_TRANSFERS: usize = 64;
/// Longest a transfer thread waits for the remote before giving up.
pub const IO_TIMEOUT: Duration = Duration::from_secs(60);
/// Status byte: the file follows.
pub const STATUS_OK: u8 = 0;
/// Status byte: a reason follows, and no file.
pub const STATUS_ERROR: u8 = 1;

/// Bytes the server's copy moves per `write` into the stream.
const COPY_CHUNK: usize = 64 * 1024;
/// Longest reason a client reads after [`STATUS_ERROR`].
const MAX_REASON_LEN: u64 = 1024;

/// Why a file name is refused. Names are single plain file names: no
/// directories, no way out of the served directory.
#[derive(Debug, Clone, PartialEq, Eq, thiserror::Error)]
pub enum NameError {
    /// The name is empty.
    #[error("the file name is empty")]
    Empty,
    /// The name is longer than [`MAX_NAME_LEN`] bytes.
    #[error("the file name is longer than {MAX_NAME_LEN} bytes")]
    TooLong,
    /// The name contains `/`, `\`, `..` or NUL, or is not UTF-8.
    #[error("{0:?} is not a plain file name (no '/', '\\', '..' or NUL)")]
    NotPlain(String),
}

/// Accept `name` only if it is one plain file name: not empty, at most
/// [`MAX_NAME_LEN`] bytes, without `/`, `\`, `..` or NUL (so neither an
/// absolute path nor a way up).
pub fn check_name(name: &str) -> Result<(), NameError> {
    if name.is_empty() {
        return Err(NameError::Empty);
    }
    if name.len() > MAX_NAME_LEN {
        return Err(NameError::TooLong);
    }
    if name.contains(['/', '\\', '\0']) || name.contains("..") || Path::new(name).is_absolute() {
        return Err(NameError::NotPlain(name.to_string()));
    }
    Ok(())
}

/// Serves the files of one directory on [`PROTOCOL`].
pub struct FileServer {
    /// The served directory, canonical (symlinks resolved).
    dir: Arc<PathBuf>,
    /// Transfers running now.
    active: Arc<AtomicUsize>,
}

impl FileServer {
    /// Serve the files directly in `dir`.
    pub fn new(dir: impl AsRef<Path>) -> io::Result<Self> {
        let dir = dir.as_ref().canonicalize()?;
        if !dir.is_dir() {
            return Err(io::Error::new(
                io::ErrorKind::NotADirectory,
                format!("{} is not a directory", dir.display()),
            ));
        }
        Ok(Self {
            dir: Arc::new(dir),
            active: Arc::new(AtomicUsize::new(0)),
        })
    }
}

impl Protocol for FileServer {
    fn name(&self) -> &'static str {
        "file-transfer"
    }

    fn protocol_ids(&self) -> Vec<String> {
        vec![PROTOCOL.into()]
    }

    /// Hand the stream to a new thread at once: this runs on the swarm
    /// thread, which must never wait for the disk.
    fn accept_inbound_stream(&mut self, ctx: &mut Context<'_>, stream: StreamRef, _: &str) {
        if self.active.fetch_add(1, Ordering::AcqRel) >= MAX_TRANSFERS {
            self.active.fetch_sub(1, Ordering::AcqRel);
            warn!(%stream, "too many transfers; stream refused");
            // Both ways: the client is told at once and its name is not read.
            let _ = ctx.abort(stream, 0);
            return;
        }
        let handle = match ctx.detach_stream(stream) {
            Ok(handle) => handle,
            Err(e) => {
                self.active.fetch_sub(1, Ordering::AcqRel);
                warn!(%stream, error = %e, "cannot detach stream");
                return;
            }
        };
        let (dir, active) = (self.dir.clone(), self.active.clone());
        let spawned = std::thread::Builder::new()
            .name("file-transfer".into())
            .spawn(move || {
                match serve(&dir, handle) {
                    Ok(sent) => debug!(%stream, sent, "transfer done"),
                    Err(e) => info!(%stream, error = %e, "transfer failed"),
                }
                active.fetch_sub(1, Ordering::AcqRel);
            });
        if let Err(e) = spawned {
            // The handle went down with the closure: the stream is closed.
            self.active.fetch_sub(1, Ordering::AcqRel);
            warn!(%stream, error = %e, "cannot start a transfer thread");
        }
    }
}

/// One transfer, on its own thread: read the name, answer with the file.
/// Returns the bytes of file sent.
fn serve(dir: &Path, mut stream: DetachedStream) -> io::Result<u64> {
    // Every wait for the remote is bounded, so a vanished client frees the
    // thread.
    stream.set_timeout(Some(IO_TIMEOUT));
    // 1. The name: everything the client sends, up to its end.
    let mut name = Vec::new();
    (&mut stream)
        .take(MAX_NAME_LEN as u64 + 1)
        .read_to_end(&mut name)?;
    // 2. Open the file, or tell the client why not.
    let (file, len) = match open(dir, &name) {
        Ok(found) => found,
        Err(reason) => {
            stream.write_all(&[STATUS_ERROR])?;
            stream.write_all(reason.as_bytes())?;
            stream.finish()?;
            return Ok(0);
        }
    };
    // 3. Status and length, then the bytes. `io::copy` into a `BufWriter`
    //    reads the file straight into the writer's buffer; each full buffer
    //    becomes one `write` into the stream, which blocks while the
    //    stream's bounded buffer is full.
    stream.write_all(&[STATUS_OK])?;
    stream.write_all(&len.to_be_bytes())?;
    let mut writer = BufWriter::with_capacity(COPY_CHUNK, stream);
    let sent = io::copy(&mut file.take(len), &mut writer)?;
    let mut stream = writer
        .into_inner()
        .map_err(io::IntoInnerError::into_error)?;
    // 4. Finish: the client reads EOF after the last byte. (If the file
    //    shrank meanwhile, the client sees fewer bytes than announced.)
    stream.finish()?;
    Ok(sent)
}

/// Open `name` in `dir` if it is a plain name of a regular file inside it.
/// The error is the reason to send to the client.
fn open(dir: &Path, name: &[u8]) -> Result<(File, u64), String> {
    let name = std::str::from_utf8(name).map_err(|_| "the file name is not UTF-8".to_string())?;
    check_name(name).map_err(|e| e.to_string())?;
    let no_such_file = || format!("no such file: {name}");
    // A symlink in the directory must not lead out of it.
    let path = dir.join(name).canonicalize().map_err(|_| no_such_file())?;
    if !path.starts_with(dir) {
        return Err(no_such_file());
    }
    let file = File::open(&path).map_err(|_| no_such_file())?;
    match file.metadata() {
        Ok(meta) if meta.is_file() => Ok((file, meta.len())),
        _ => Err(no_such_file()),
    }
}

/// Why [`fetch`] did not get the whole file.
#[derive(Debug, thiserror::Error)]
pub enum FetchError {
    /// The name was refused before asking.
    #[error(transparent)]
    Name(#[from] NameError),
    /// The server refused: no such file, or a bad name.
    #[error("the server refused: {0}")]
    Remote(String),
    /// The stream ended before the announced length.
    #[error("the transfer ended after {got} of {expected} bytes")]
    Truncated {
        /// The length the server announced.
        expected: u64,
        /// The bytes that arrived.
        got: u64,
    },
    /// The server's answer does not follow the wire format.
    #[error("malformed answer from the server")]
    Malformed,
    /// Reading the stream or writing `out` failed (including timeouts).
    #[error(transparent)]
    Io(#[from] io::Error),
}

/// Ask for `name` on a stream opened for [`PROTOCOL`], and copy the file
/// into `out` with [`std::io::copy`]. Returns the file's length. Give `out`
/// a `BufWriter` for large files: the copy then reads the stream straight
/// into its buffer.
pub fn fetch(
    mut stream: DetachedStream,
    name: &str,
    out: &mut impl Write,
) -> Result<u64, FetchError> {
    check_name(name)?;
    // 1. Send the name and end our side.
    stream.write_all(name.as_bytes())?;
    stream.finish()?;
    // 2. The status byte: the file follows, or the reason there is none.
    let mut status = [0u8; 1];
    stream.read_exact(&mut status).map_err(eof_is_malformed)?;
    if status[0] == STATUS_ERROR {
        let mut reason = String::new();
        (&mut stream)
            .take(MAX_REASON_LEN)
            .read_to_string(&mut reason)
            .map_err(|_| FetchError::Malformed)?;
        return Err(FetchError::Remote(reason));
    }
    if status[0] != STATUS_OK {
        return Err(FetchError::Malformed);
    }
    // 3. The length, then exactly that many bytes into `out`.
    let mut len = [0u8; 8];
    stream.read_exact(&mut len).map_err(eof_is_malformed)?;
    let expected = u64::from_be_bytes(len);
    let got = io::copy(&mut (&mut stream).take(expected), out)?;
    out.flush()?;
    if got < expected {
        return Err(FetchError::Truncated { expected, got });
    }
    Ok(got)
}

/// An early end of stream in the header is a malformed answer.
fn eof_is_malformed(e: io::Error) -> FetchError {
    match e.kind() {
        io::ErrorKind::UnexpectedEof => FetchError::Malformed,
        _ => FetchError::Io(e),
    }
}

#[cfg(test)]
mod tests {
    use super::*;

    #[test]
    fn plain_names_pass_and_paths_do_not() {
        for good in [
            "a",
            "file.bin",
            "ä ö.txt",
            ".hidden",
            &"x".repeat(MAX_NAME_LEN),
        ] {
            assert_eq!(check_name(good), Ok(()), "{good:?}");
        }
        assert_eq!(check_name(""), Err(NameError::Empty));
        assert_eq!(
            check_name(&"x".repeat(MAX_NAME_LEN + 1)),
            Err(NameError::TooLong)
        );
        for bad in [
            "..",
            "../etc/passwd",
            "/etc/passwd",
            "a/b",
            "a/",
            "a\\b",
            "..\\x",
            "a..b",
            "nul\0",
        ] {
            assert!(
                matches!(check_name(bad), Err(NameError::NotPlain(_))),
                "{bad:?}"
            );
        }
    }

    #[test]
    fn open_refuses_directories_and_symlinks_out() {
        let base = std::env::temp_dir().join(format!("ft-open-{}", std::process::id()));
        let dir = base.join("served");
        std::fs::create_dir_all(dir.join("sub")).unwrap();
        std::fs::write(base.join("secret"), b"secret").unwrap();
        std::fs::write(dir.join("ok"), b"fine").unwrap();
        #[cfg(unix)]
        std::os::unix::fs::symlink(base.join("secret"), dir.join("link")).unwrap();
        let dir = dir.canonicalize().unwrap();
        assert_eq!(open(&dir, b"ok").unwrap().1, 4);
        for bad in [
            &b"."[..],
            b"sub",
            b"link",
            b"missing",
            b"../secret",
            b"\xff",
        ] {
            assert!(
                open(&dir, bad).is_err(),
                "{:?}",
                String::from_utf8_lossy(bad)
            );
        }
        std::fs::remove_dir_all(base).unwrap();
    }
}
