//! [`SwarmHandle`]: how other threads command the swarm.
//!
//! Commands go through a channel and a wake-up; the swarm thread runs them
//! on its next turn. Every method that waits for an answer takes a timeout.

use std::sync::mpsc::{self, Sender};
use std::time::Duration;

use libp2p_identity::PeerId;
use multiaddr::Multiaddr;

use crate::detached_stream::DetachedStream;
use crate::error::{DialError, ListenError, OpenStreamError};
use crate::events::SwarmEvent;
use crate::events::{ProtocolEvent, StreamTarget};
use crate::ids::{ConnId, PluginId};
use crate::swarm::{Command, Swarm};
use crate::wake::Notifier;

/// Why a [`SwarmHandle`] call failed: the swarm could not be reached
/// (`Stopped`, `Timeout`), or it answered that the operation failed
/// (`Failed`, with the operation's own error). Calls that cannot fail on
/// the swarm's side use the default `E = Infallible`.
#[derive(Debug, thiserror::Error)]
pub enum HandleError<E: std::error::Error + 'static = std::convert::Infallible> {
    /// The swarm thread has stopped.
    #[error("the swarm has stopped")]
    Stopped,
    /// No answer within the timeout.
    #[error("no answer from the swarm within {0:?}")]
    Timeout(Duration),
    /// The swarm ran the operation, and it failed.
    #[error(transparent)]
    Failed(E),
}

impl<E: std::error::Error + 'static> HandleError<E> {
    /// The operation's own error, if the swarm answered with one.
    pub fn failed(&self) -> Option<&E> {
        match self {
            HandleError::Failed(e) => Some(e),
            _ => None,
        }
    }
}

impl HandleError {
    /// Widen an error of a call that cannot fail on the swarm's side.
    fn widen<E: std::error::Error + 'static>(self) -> HandleError<E> {
        match self {
            HandleError::Stopped => HandleError::Stopped,
            HandleError::Timeout(t) => HandleError::Timeout(t),
            HandleError::Failed(never) => match never {},
        }
    }
}

/// A `Send + Clone` handle to a running swarm.
#[derive(Clone)]
pub struct SwarmHandle {
    commands: Sender<Command>,
    notifier: Notifier,
}

impl Swarm {
    /// A handle other threads can use to command this swarm.
    pub fn handle(&self) -> SwarmHandle {
        let (commands, notifier) = self.command_sender();
        SwarmHandle { commands, notifier }
    }
}

impl SwarmHandle {
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

    /// Ask and wait for an answer that is itself a `Result`.
    fn ask_fallible<T, E: std::error::Error + 'static>(
        &self,
        timeout: Duration,
        make: impl FnOnce(Sender<Result<T, E>>) -> Command,
    ) -> Result<T, HandleError<E>> {
        self.ask(timeout, make)
            .map_err(HandleError::widen)?
            .map_err(HandleError::Failed)
    }

    /// Listen on a QUIC or TCP multiaddr; returns the resolved address.
    pub fn listen(
        &self,
        addr: &Multiaddr,
        timeout: Duration,
    ) -> Result<Multiaddr, HandleError<ListenError>> {
        let addr = addr.clone();
        self.ask_fallible(timeout, |reply| Command::Listen { addr, reply })
    }

    /// Dial and wait until the connection is established or fails (see
    /// [`Context::dial`](crate::Context::dial) for the arguments).
    pub fn dial(
        &self,
        addr: &Multiaddr,
        force_new_conn: bool,
        timeout: Duration,
    ) -> Result<ConnId, HandleError<DialError>> {
        let addr = addr.clone();
        self.ask_fallible(timeout, |reply| Command::Dial {
            addr,
            force_new: force_new_conn,
            reply,
        })
    }

    /// Dial a peer at an address from the peer store (asking the peer
    /// router when the store knows none), and wait for the connection.
    pub fn dial_with_id(
        &self,
        peer: PeerId,
        force_new_conn: bool,
        timeout: Duration,
    ) -> Result<ConnId, HandleError<DialError>> {
        self.ask_fallible(timeout, |reply| Command::DialWithId {
            peer,
            force_new: force_new_conn,
            reply,
        })
    }

    /// Open a stream and wait for multistream-select; the stream is then
    /// this thread's, as a blocking `Read + Write` [`DetachedStream`].
    pub fn open_stream(
        &self,
        target: impl Into<StreamTarget>,
        protocol: &str,
        timeout: Duration,
    ) -> Result<DetachedStream, HandleError<OpenStreamError>> {
        let target = target.into();
        let protocol = protocol.to_string();
        self.ask_fallible(timeout, |reply| Command::OpenStream {
            target,
            protocol,
            reply,
        })
    }

    /// Deliver an event to every plugin's `handle_protocol_event`.
    pub fn send_event(&self, event: ProtocolEvent) -> Result<(), HandleError> {
        self.send(Command::Event(event))
    }

    /// Hand `message` to one plugin's [`Protocol::handle_message`]
    /// (`to` is what [`Runtime::add_protocol`] returned). The value moves:
    /// a plugin can take ownership of what is inside (a reply channel, a
    /// request). If no plugin has that id, the message is dropped.
    ///
    /// [`Protocol::handle_message`]: crate::Protocol::handle_message
    /// [`Runtime::add_protocol`]: crate::Runtime::add_protocol
    pub fn send_message<T: std::any::Any + Send>(
        &self,
        to: PluginId,
        message: T,
    ) -> Result<(), HandleError> {
        self.send(Command::Message {
            to,
            message: Box::new(message),
        })
    }

    /// Receive the swarm's events on a bounded channel of `capacity`. The
    /// swarm never blocks on it: when it is full, events are dropped and
    /// counted, so read it promptly.
    ///
    /// Events flow from when the swarm thread takes the subscription, which
    /// may be after what the caller does next (say, a connection it makes).
    /// To see every event from now on, follow it with a [`call`](Self::call):
    /// commands run in order, so the call returns once the subscription is
    /// in place.
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
