//! [`SwarmHandle`]: how other threads command the swarm.
//!
//! Commands go through a channel and a wake-up; the swarm thread runs them
//! on its next turn. Every method that waits for an answer takes a timeout.

use std::sync::mpsc::{self, Sender, SyncSender};
use std::time::Duration;

use libp2p_identity::PeerId;
use multiaddr::Multiaddr;

use crate::error::{DialError, ListenError, OpenStreamError};
use crate::ids::ConnId;
use crate::protocol::{ProtocolEvent, StreamTarget};
use crate::swarm::{Swarm, SwarmEvent};
use crate::threaded::StreamHandle;
use crate::wake::Notifier;

/// A closure run on the swarm thread with the whole swarm.
pub(crate) type SwarmCall = Box<dyn FnOnce(&mut Swarm) + Send>;

/// Work for the swarm thread.
pub(crate) enum Command {
    Dial {
        addr: Multiaddr,
        force_new: bool,
        reply: Sender<Result<ConnId, DialError>>,
    },
    DialWithId {
        peer: PeerId,
        force_new: bool,
        reply: Sender<Result<ConnId, DialError>>,
    },
    Listen {
        addr: Multiaddr,
        reply: Sender<Result<Multiaddr, ListenError>>,
    },
    OpenStream {
        target: StreamTarget,
        protocol: String,
        reply: Sender<Result<StreamHandle, OpenStreamError>>,
    },
    Event(ProtocolEvent),
    Subscribe(SyncSender<SwarmEvent>),
    Shutdown {
        code: u32,
    },
    Call(SwarmCall),
}

/// Why a handle's request got no answer.
#[derive(Debug, thiserror::Error, PartialEq, Eq)]
pub enum HandleError {
    /// The swarm thread has stopped.
    #[error("the swarm has stopped")]
    Stopped,
    /// No answer within the timeout.
    #[error("no answer from the swarm within {0:?}")]
    Timeout(Duration),
}

/// A `Send + Clone` handle to a running swarm.
#[derive(Clone)]
pub struct SwarmHandle {
    commands: Sender<Command>,
    notifier: Notifier,
}

impl SwarmHandle {
    pub(crate) fn new(commands: Sender<Command>, notifier: Notifier) -> Self {
        Self { commands, notifier }
    }

    fn send(&self, cmd: Command) -> Result<(), HandleError> {
        self.commands.send(cmd).map_err(|_| HandleError::Stopped)?;
        self.notifier.wake();
        Ok(())
    }

    fn ask<T>(
        &self,
        timeout: Duration,
        make: impl FnOnce(Sender<T>) -> Command,
    ) -> Result<T, HandleError> {
        let (tx, rx) = mpsc::channel();
        self.send(make(tx))?;
        rx.recv_timeout(timeout).map_err(|e| match e {
            mpsc::RecvTimeoutError::Timeout => HandleError::Timeout(timeout),
            mpsc::RecvTimeoutError::Disconnected => HandleError::Stopped,
        })
    }

    /// Listen on a QUIC multiaddr; returns the resolved address.
    pub fn listen(
        &self,
        addr: Multiaddr,
        timeout: Duration,
    ) -> Result<Result<Multiaddr, ListenError>, HandleError> {
        self.ask(timeout, |reply| Command::Listen { addr, reply })
    }

    /// Dial and wait until the connection is established or fails.
    pub fn dial(
        &self,
        addr: Multiaddr,
        force_new: bool,
        timeout: Duration,
    ) -> Result<Result<ConnId, DialError>, HandleError> {
        self.ask(timeout, |reply| Command::Dial {
            addr,
            force_new,
            reply,
        })
    }

    /// Dial a peer at an address from the peer store, and wait.
    pub fn dial_with_id(
        &self,
        peer: PeerId,
        force_new: bool,
        timeout: Duration,
    ) -> Result<Result<ConnId, DialError>, HandleError> {
        self.ask(timeout, |reply| Command::DialWithId {
            peer,
            force_new,
            reply,
        })
    }

    /// Open a stream and wait for multistream-select; the stream is then
    /// this thread's, as a blocking `Read + Write` handle.
    pub fn open_stream(
        &self,
        target: impl Into<StreamTarget>,
        protocol: &str,
        timeout: Duration,
    ) -> Result<Result<StreamHandle, OpenStreamError>, HandleError> {
        let target = target.into();
        let protocol = protocol.to_string();
        self.ask(timeout, |reply| Command::OpenStream {
            target,
            protocol,
            reply,
        })
    }

    /// Deliver an event to every plugin's `handle_protocol_event`.
    pub fn send_event(&self, event: ProtocolEvent) -> Result<(), HandleError> {
        self.send(Command::Event(event))
    }

    /// Receive the swarm's events on a bounded channel of `capacity`. The
    /// swarm never blocks on it: when it is full, events are dropped and
    /// counted, so read it promptly.
    pub fn subscribe(&self, capacity: usize) -> Result<mpsc::Receiver<SwarmEvent>, HandleError> {
        let (tx, rx) = mpsc::sync_channel(capacity.max(1));
        self.send(Command::Subscribe(tx))?;
        Ok(rx)
    }

    /// Run `f` on the swarm thread with the swarm, and wait for its result.
    pub fn call<R: Send + 'static>(
        &self,
        timeout: Duration,
        f: impl FnOnce(&mut Swarm) -> R + Send + 'static,
    ) -> Result<R, HandleError> {
        self.ask(timeout, |reply| {
            Command::Call(Box::new(move |swarm| {
                let _ = reply.send(f(swarm));
            }))
        })
    }

    /// Close every connection with `code` and stop the swarm's thread once
    /// they have drained. Does not wait.
    pub fn shutdown(&self, code: u32) -> Result<(), HandleError> {
        self.send(Command::Shutdown { code })
    }
}
