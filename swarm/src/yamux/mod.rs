//! Yamux (`/yamux/1.0.0`) without I/O: the stream multiplexer libp2p runs
//! over a secured TCP connection (hashicorp/yamux `spec.md`, as rust-libp2p
//! and js-libp2p use it).
//!
//! | file | concept |
//! |---|---|
//! | `frame.rs` | the 12-byte header |
//! | `config.rs` | limits and windows |
//! | `error.rs` | connection, stream, open and write errors |
//! | `stream.rs` | one stream's windows, buffer and half-closes |
//! | `session.rs` | the session: input, output, stream operations |
//!
//! Hostile input ends only what it concerns: a data frame beyond a
//! stream's window resets that stream ([`StreamError::WindowExceeded`]),
//! an open beyond `max_streams` is reset ([`StreamError::Refused`]), a
//! frame for an unknown stream is dropped and counted ([`Stats`]); a frame
//! no valid peer could send (bad header, a length beyond any window, a
//! reused or wrong-parity id) ends the session ([`ConnectionError`]).

mod config;
mod error;
pub mod frame;
mod session;
mod stream;

pub use config::{DEFAULT_WINDOW, YamuxConfig};
pub use error::{ConnectionError, OpenError, StreamError, WriteError};
pub use session::{Event, Mode, Read, Session, Stats};

#[cfg(test)]
mod tests;
