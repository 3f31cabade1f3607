//! Request/response: one request and one response per stream, each a
//! length-prefixed message, with size limits and a timeout.
//!
//! # Wire format
//!
//! The requester opens a stream for the protocol id, writes the request as
//! `uvarint(length) ‖ bytes` and finishes its send side. The responder reads
//! that one message (at most [`RequestResponseConfig::max_request_size`]
//! bytes), calls its handler, writes the response the same way and finishes.
//! A responder that will not answer resets the stream with one of the
//! `RESET_*` codes below, which the requester turns into a typed
//! [`RequestError`].
//!
//! # Use
//!
//! - **Serve** a protocol: register a [`RequestResponse`] plugin with a
//!   handler closure. The handler runs on the swarm thread, so it must not
//!   block; it returns the response, or `None`/`Err` to decline.
//! - **Ask from any thread**: [`request`] opens a stream through a
//!   [`SwarmHandle`] and blocks until the response, an error or the timeout.
//!   The asking node needs no plugin for this.
//! - **Ask from a plugin**: register a [`RequestResponse`] for the protocol
//!   (a handler is optional), call [`send_request`] with your plugin's
//!   [`Context`], and receive the outcome as a [`ResponseEvent`] in
//!   [`Protocol::handle_protocol_event`].
//!
//! ```no_run
//! use std::time::Duration;
//! use protocols::request_response::{self, RequestResponse, RequestResponseConfig};
//! use swarm::Bytes;
//! # fn main() -> Result<(), Box<dyn std::error::Error>> {
//! # let mut runtime = swarm::Runtime::new(swarm::SwarmConfig::new(swarm::Keypair::generate_ed25519()))?;
//! // Serve `/upper/1.0.0`: answer every request with its upper-case copy.
//! runtime.add_protocol(Box::new(
//!     RequestResponse::new("/upper/1.0.0", RequestResponseConfig::default())
//!         .with_handler(|_peer, request: Bytes| request.to_ascii_uppercase()),
//! ));
//! let (handle, _thread) = runtime.spawn()?;
//! // Ask a connected peer, from this thread.
//! # let peer = swarm::PeerId::random();
//! let response = request_response::request(&handle, peer, "/upper/1.0.0", b"hi", Duration::from_secs(5))?;
//! assert_eq!(&response[..], b"HI");
//! # Ok(())
//! # }
//! ```

use std::collections::HashMap;
use std::fmt;
use std::io::{self, Read, Write};
use std::sync::atomic::{AtomicU64, Ordering};
use std::time::{Duration, Instant};

use bytes::{Bytes, BytesMut};
use swarm::multistream::MultistreamError;
use swarm::{
    Context, HandleError, OpenStreamError, PeerId, Protocol, ProtocolEvent, StreamError, StreamRef,
    StreamTarget, SwarmHandle, TimerId,
};
use tracing::{debug, warn};

// Reset codes start at 2: 0 is "no reason" and 1 is the swarm's
// `RESET_CODE_NEGOTIATION`.
/// Reset code: the responder's handler declined to answer.
pub const RESET_DECLINED: u64 = 2;
/// Reset code: a message exceeded the receiver's size limit.
pub const RESET_TOO_LARGE: u64 = 3;
/// Reset code: a message was not a single length-prefixed message.
pub const RESET_MALFORMED: u64 = 4;
/// Reset code: the exchange did not finish within the timeout.
pub const RESET_TIMEOUT: u64 = 5;

/// Longest uvarint length prefix (a `u64`).
const MAX_PREFIX_LEN: usize = 10;

/// Size limits and the timeout of one protocol.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct RequestResponseConfig {
    /// Largest request, in bytes, that is sent or accepted. Default 1 MiB.
    pub max_request_size: usize,
    /// Largest response, in bytes, that is sent or accepted. Default 10 MiB.
    pub max_response_size: usize,
    /// Longest a whole exchange may take, from opening the stream to the
    /// last byte of the response. Default 10 s.
    pub timeout: Duration,
}

impl Default for RequestResponseConfig {
    fn default() -> Self {
        Self {
            max_request_size: 1 << 20,
            max_response_size: 10 << 20,
            timeout: Duration::from_secs(10),
        }
    }
}

/// Why a request got no response.
#[derive(Clone, Debug, PartialEq, Eq, thiserror::Error)]
pub enum RequestError {
    /// There is no connection to the peer: dial it first.
    #[error("not connected to {0}")]
    NotConnected(PeerId),
    /// The remote does not support the protocol (multistream-select `na`).
    #[error("the remote does not support {0}")]
    Refused(String),
    /// No full response within the timeout.
    #[error("no response within {0:?}")]
    Timeout(Duration),
    /// Our request, or the response we received, is over our size limit.
    #[error("message of {len} bytes exceeds the limit of {limit} bytes")]
    TooLarge {
        /// The message's length.
        len: u64,
        /// The limit it exceeds.
        limit: usize,
    },
    /// The remote refused our request as larger than its limit.
    #[error("the remote refused the request as too large")]
    RemoteTooLarge,
    /// The remote's handler gave no response.
    #[error("the remote declined to answer")]
    Declined,
    /// A message was not a single length-prefixed message.
    #[error("malformed message: {0}")]
    Malformed(String),
    /// The stream or connection ended before the full response.
    #[error("closed before the response: {0}")]
    Closed(String),
    /// The swarm could not start the exchange (stopped, shutting down,
    /// stream limit reached).
    #[error("the swarm cannot send the request: {0}")]
    Swarm(String),
}

impl RequestError {
    /// The error for a stream the remote reset or stopped with `code`.
    fn from_code(code: u64) -> Self {
        match code {
            RESET_DECLINED => RequestError::Declined,
            RESET_TOO_LARGE => RequestError::RemoteTooLarge,
            RESET_MALFORMED => RequestError::Malformed("the remote could not parse it".into()),
            other => RequestError::Closed(format!("the remote reset the stream with code {other}")),
        }
    }

    /// The error for a stream that died with `error`.
    fn from_stream(error: &StreamError, protocol: &str) -> Self {
        match error {
            StreamError::Negotiation(MultistreamError::Refused { .. }) => {
                RequestError::Refused(protocol.to_string())
            }
            StreamError::Reset(code) | StreamError::Stopped(code) => Self::from_code(*code),
            other => RequestError::Closed(other.to_string()),
        }
    }

    /// The error for a failed read or write on a thread's stream handle.
    fn from_io(error: io::Error, timeout: Duration, protocol: &str) -> Self {
        if error.kind() == io::ErrorKind::TimedOut {
            return RequestError::Timeout(timeout);
        }
        match error
            .get_ref()
            .and_then(|e| e.downcast_ref::<StreamError>())
        {
            Some(stream_error) => Self::from_stream(stream_error, protocol),
            None => RequestError::Closed(error.to_string()),
        }
    }

    /// The reset code that tells the remote about this error, if any.
    fn reset_code(&self) -> u64 {
        match self {
            RequestError::TooLarge { .. } => RESET_TOO_LARGE,
            RequestError::Malformed(_) => RESET_MALFORMED,
            RequestError::Timeout(_) => RESET_TIMEOUT,
            _ => 0,
        }
    }
}

/// Names one outbound request, to match it with its [`ResponseEvent`].
/// Unique within the process.
#[derive(Clone, Copy, Debug, PartialEq, Eq, Hash, PartialOrd, Ord)]
pub struct RequestId(u64);

impl RequestId {
    fn next() -> Self {
        static NEXT: AtomicU64 = AtomicU64::new(0);
        RequestId(NEXT.fetch_add(1, Ordering::Relaxed))
    }
}

impl fmt::Display for RequestId {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(f, "request#{}", self.0)
    }
}

/// A request for the [`RequestResponse`] plugin of `protocol` to send.
///
/// Plugins emit it with [`send_request`]; other threads may send it with
/// [`SwarmHandle::send_event`] and watch [`SwarmHandle::subscribe`] for the
/// [`ResponseEvent`] (or simply call [`request`]).
#[derive(Clone, Debug)]
pub struct OutboundRequest {
    /// The id its [`ResponseEvent`] will carry.
    pub id: RequestId,
    /// The peer to ask; it must be connected.
    pub peer: PeerId,
    /// The protocol id.
    pub protocol: String,
    /// The request bytes.
    pub request: Bytes,
}

impl OutboundRequest {
    /// A request with a fresh id.
    pub fn new(peer: PeerId, protocol: &str, request: impl Into<Bytes>) -> Self {
        Self {
            id: RequestId::next(),
            peer,
            protocol: protocol.to_string(),
            request: request.into(),
        }
    }
}

/// The outcome of an [`OutboundRequest`], emitted by the [`RequestResponse`]
/// plugin to the other plugins and to subscribers.
#[derive(Clone, Debug)]
pub struct ResponseEvent {
    /// The request's id.
    pub id: RequestId,
    /// The peer that was asked.
    pub peer: PeerId,
    /// The protocol id.
    pub protocol: String,
    /// The response, or why there is none.
    pub result: Result<Bytes, RequestError>,
}

/// Ask `peer` from inside a plugin. The [`RequestResponse`] plugin of
/// `protocol` (which must be registered on this swarm) sends the request;
/// the outcome arrives as a [`ResponseEvent`] with the returned id in
/// [`Protocol::handle_protocol_event`]. Every plugin sees every response
/// event, so match on the id. The peer must be connected (dial it first).
///
/// ```no_run
/// use protocols::request_response::{self, RequestId, ResponseEvent};
/// use swarm::{ConnId, Context, PeerId, Protocol, ProtocolEvent};
///
/// /// Asks every new peer for the time, and prints the answer.
/// #[derive(Default)]
/// struct AskTime(Vec<RequestId>);
///
/// impl Protocol for AskTime {
///     fn handle_new_connection(&mut self, ctx: &mut Context<'_>, _: ConnId, peer: PeerId) {
///         let id = request_response::send_request(ctx, peer, "/time/1.0.0", "now?");
///         self.0.push(id);
///     }
///
///     fn handle_protocol_event(&mut self, _: &mut Context<'_>, event: &ProtocolEvent) {
///         if let Some(response) = event.downcast_ref::<ResponseEvent>()
///             && self.0.contains(&response.id)
///         {
///             self.0.retain(|id| *id != response.id);
///             println!("{}: {:?}", response.peer, response.result);
///         }
///     }
/// }
/// ```
pub fn send_request(
    ctx: &mut Context<'_>,
    peer: PeerId,
    protocol: &str,
    request: impl Into<Bytes>,
) -> RequestId {
    let request = OutboundRequest::new(peer, protocol, request);
    let id = request.id;
    ctx.emit(request);
    id
}

/// Ask `target` (a connected peer or a connection) from any thread, and wait
/// up to `timeout` for the response. Uses the default size limits.
pub fn request(
    handle: &SwarmHandle,
    target: impl Into<StreamTarget>,
    protocol: &str,
    request: &[u8],
    timeout: Duration,
) -> Result<Bytes, RequestError> {
    let config = RequestResponseConfig {
        timeout,
        ..RequestResponseConfig::default()
    };
    request_with_config(handle, target, protocol, request, &config)
}

/// [`request`] with explicit size limits and timeout.
pub fn request_with_config(
    handle: &SwarmHandle,
    target: impl Into<StreamTarget>,
    protocol: &str,
    request: &[u8],
    config: &RequestResponseConfig,
) -> Result<Bytes, RequestError> {
    let timeout = config.timeout;
    let deadline = Instant::now() + timeout;
    check_size(request.len(), config.max_request_size)?;
    // Open the stream; the handle returns once multistream-select is done.
    let mut stream = match handle.open_stream(target, protocol, timeout) {
        Ok(stream) => stream,
        Err(HandleError::Failed(OpenStreamError::Negotiation(MultistreamError::Refused {
            ..
        }))) => {
            return Err(RequestError::Refused(protocol.to_string()));
        }
        Err(HandleError::Failed(OpenStreamError::NotConnected(peer))) => {
            return Err(RequestError::NotConnected(peer));
        }
        Err(HandleError::Failed(OpenStreamError::Stream(e))) => {
            return Err(RequestError::from_stream(&e, protocol));
        }
        Err(e @ HandleError::Failed(_)) => return Err(RequestError::Swarm(e.to_string())),
        Err(HandleError::Timeout(_)) => return Err(RequestError::Timeout(timeout)),
        Err(e @ HandleError::Stopped) => return Err(RequestError::Swarm(e.to_string())),
    };
    let io_error = |e| RequestError::from_io(e, timeout, protocol);
    // Send the request and finish our side.
    stream.set_timeout(Some(time_left(deadline, timeout)?));
    stream
        .write_all(&length_prefix(request.len()))
        .map_err(io_error)?;
    stream.write_all(request).map_err(io_error)?;
    stream.finish().map_err(io_error)?;
    // Read until one whole message has arrived.
    let mut reader = MessageReader::new(config.max_response_size);
    let mut buf = vec![0u8; 16 * 1024];
    loop {
        stream.set_timeout(Some(time_left(deadline, timeout)?));
        let n = stream.read(&mut buf).map_err(io_error)?;
        if n == 0 {
            return Err(RequestError::Closed(
                "the stream ended before a full response".into(),
            ));
        }
        if let Some(response) = reader.push(&buf[..n])? {
            return Ok(response);
        }
    }
}

/// What a handler may return: a response, or nothing (the stream is then
/// reset with [`RESET_DECLINED`]).
pub trait IntoResponse {
    /// The response bytes, or `None` to decline.
    fn into_response(self) -> Option<Bytes>;
}

impl IntoResponse for Bytes {
    fn into_response(self) -> Option<Bytes> {
        Some(self)
    }
}

impl IntoResponse for Vec<u8> {
    fn into_response(self) -> Option<Bytes> {
        Some(self.into())
    }
}

impl IntoResponse for String {
    fn into_response(self) -> Option<Bytes> {
        Some(self.into())
    }
}

impl IntoResponse for &'static [u8] {
    fn into_response(self) -> Option<Bytes> {
        Some(Bytes::from_static(self))
    }
}

impl<T: IntoResponse> IntoResponse for Option<T> {
    fn into_response(self) -> Option<Bytes> {
        self.and_then(T::into_response)
    }
}

impl<T: IntoResponse, E: fmt::Display> IntoResponse for Result<T, E> {
    fn into_response(self) -> Option<Bytes> {
        match self {
            Ok(response) => response.into_response(),
            Err(error) => {
                debug!(%error, "request handler declined");
                None
            }
        }
    }
}

/// A handler, with its return value already turned into a response.
type Handler = Box<dyn FnMut(PeerId, Bytes) -> Option<Bytes> + Send>;

/// The plugin for one request/response protocol: it answers inbound
/// requests with its handler (if it has one) and sends the
/// [`OutboundRequest`]s other plugins emit for its protocol.
pub struct RequestResponse {
    protocol: String,
    config: RequestResponseConfig,
    handler: Option<Handler>,
    exchanges: HashMap<StreamRef, Exchange>,
    /// Timer tokens to the exchanges they bound.
    timers: HashMap<u64, StreamRef>,
    next_token: u64,
}

/// One request and its response, on one stream.
struct Exchange {
    peer: PeerId,
    /// `Some` for requests we sent: the id to report the outcome under.
    outbound: Option<RequestId>,
    /// Collects the incoming message.
    reader: MessageReader,
    /// Inbound only: the request arrived and the handler ran.
    answered: bool,
    /// Outbound only: the remote accepted the protocol.
    negotiated: bool,
    timer: TimerId,
    token: u64,
}

impl RequestResponse {
    /// A plugin for `protocol` that only sends requests. Add a handler with
    /// [`RequestResponse::with_handler`] to answer them too.
    pub fn new(protocol: impl Into<String>, config: RequestResponseConfig) -> Self {
        Self {
            protocol: protocol.into(),
            config,
            handler: None,
            exchanges: HashMap::new(),
            timers: HashMap::new(),
            next_token: 0,
        }
    }

    /// Answer inbound requests with `handler(peer, request)`. It runs on the
    /// swarm thread and must not block. Return the response (`Bytes`,
    /// `Vec<u8>`, `String`, …), or `None` / `Err(_)` to decline.
    pub fn with_handler<F, R>(mut self, mut handler: F) -> Self
    where
        F: FnMut(PeerId, Bytes) -> R + Send + 'static,
        R: IntoResponse,
    {
        self.handler = Some(Box::new(move |peer, request| {
            handler(peer, request).into_response()
        }));
        self
    }

    /// The protocol id.
    pub fn protocol(&self) -> &str {
        &self.protocol
    }

    /// Start tracking an exchange on `stream`, bounded by the timeout.
    fn track(
        &mut self,
        ctx: &mut Context<'_>,
        stream: StreamRef,
        peer: PeerId,
        outbound: Option<(RequestId, Bytes)>,
    ) {
        let token = self.next_token;
        self.next_token += 1;
        let timer = ctx.set_timer(self.config.timeout, token);
        self.timers.insert(token, stream);
        let limit = match outbound {
            Some(_) => self.config.max_response_size,
            None => self.config.max_request_size,
        };
        let exchange = Exchange {
            peer,
            outbound: outbound.as_ref().map(|(id, _)| *id),
            reader: MessageReader::new(limit),
            answered: false,
            negotiated: false,
            timer,
            token,
        };
        self.exchanges.insert(stream, exchange);
        if let Some((_, request)) = outbound {
            self.send_message(ctx, stream, request);
        }
    }

    /// Send `message` with its length prefix and finish after it. The swarm
    /// queues what the window does not take (a message is bounded by the
    /// size limits) and sends the FIN once the queue is out.
    fn send_message(&mut self, ctx: &mut Context<'_>, stream: StreamRef, message: Bytes) {
        let prefix = Bytes::from(length_prefix(message.len()));
        let sent = ctx
            .send(stream, prefix)
            .and_then(|_| ctx.send(stream, message))
            .and_then(|_| ctx.finish(stream));
        if let Err(e) = sent {
            let error = RequestError::from_stream(&e, &self.protocol);
            return self.end(ctx, stream, Err(error));
        }
        // An answered request is over once the response is out. While part
        // of it still waits for the window, the exchange's timer stays: a
        // requester that never reads cannot hold it past the timeout.
        let inbound = self
            .exchanges
            .get(&stream)
            .is_some_and(|e| e.outbound.is_none());
        if inbound && ctx.queued(stream) == 0 {
            self.forget(ctx, stream);
        }
    }

    /// A whole message arrived: a response to report, or a request to answer.
    fn on_message(&mut self, ctx: &mut Context<'_>, stream: StreamRef, message: Bytes) {
        let Some(exchange) = self.exchanges.get_mut(&stream) else {
            return;
        };
        if exchange.outbound.is_some() {
            return self.end(ctx, stream, Ok(message));
        }
        exchange.answered = true;
        let response = self
            .handler
            .as_mut()
            .and_then(|handler| handler(exchange.peer, message));
        match response {
            None => self.abort(ctx, stream, RESET_DECLINED),
            Some(response) if response.len() > self.config.max_response_size => {
                warn!(
                    protocol = %self.protocol,
                    len = response.len(),
                    limit = self.config.max_response_size,
                    "response over the size limit; not sent"
                );
                self.abort(ctx, stream, RESET_TOO_LARGE);
            }
            Some(response) => self.send_message(ctx, stream, response),
        }
    }

    /// End an exchange: report an outbound outcome, and on error reset the
    /// stream (both ways) with the code that tells the remote why.
    fn end(
        &mut self,
        ctx: &mut Context<'_>,
        stream: StreamRef,
        result: Result<Bytes, RequestError>,
    ) {
        let Some(exchange) = self.forget(ctx, stream) else {
            return;
        };
        if let Err(error) = &result {
            debug!(%stream, protocol = %self.protocol, %error, "exchange failed");
            let _ = ctx.abort(stream, error.reset_code());
        }
        if let Some(id) = exchange.outbound {
            ctx.emit(ResponseEvent {
                id,
                peer: exchange.peer,
                protocol: self.protocol.clone(),
                result,
            });
        }
    }

    /// Refuse an inbound request with `code`.
    fn abort(&mut self, ctx: &mut Context<'_>, stream: StreamRef, code: u64) {
        if self.forget(ctx, stream).is_some() {
            let _ = ctx.abort(stream, code);
        }
    }

    /// Stop tracking an exchange and cancel its timer.
    fn forget(&mut self, ctx: &mut Context<'_>, stream: StreamRef) -> Option<Exchange> {
        let exchange = self.exchanges.remove(&stream)?;
        ctx.cancel_timer(exchange.timer);
        self.timers.remove(&exchange.token);
        Some(exchange)
    }

    /// Why an exchange's stream died, for the requester.
    fn closed_error(&self, exchange: &Exchange, reason: &StreamError) -> RequestError {
        match reason {
            // We sent the request right behind our proposal; a remote that
            // refuses the protocol may then reset (and stop) the stream as
            // it fails to parse the request as the next proposal, and that
            // can overtake its `na`.
            StreamError::Reset(code) | StreamError::Stopped(code)
                if !exchange.negotiated && *code == u64::from(swarm::RESET_CODE_NEGOTIATION) =>
            {
                RequestError::Refused(self.protocol.clone())
            }
            other => RequestError::from_stream(other, &self.protocol),
        }
    }

    /// Open a stream for an [`OutboundRequest`] and send it.
    fn request(&mut self, ctx: &mut Context<'_>, request: &OutboundRequest) {
        let result = check_size(request.request.len(), self.config.max_request_size).and_then(
            |()| match ctx.open_stream(request.peer, &self.protocol) {
                Ok(stream) => Ok(stream),
                Err(OpenStreamError::NotConnected(peer)) => Err(RequestError::NotConnected(peer)),
                Err(e) => Err(RequestError::Swarm(e.to_string())),
            },
        );
        match result {
            // The request follows the multistream-select proposal in the
            // same flight (optimistic).
            Ok(stream) => self.track(
                ctx,
                stream,
                request.peer,
                Some((request.id, request.request.clone())),
            ),
            Err(error) => ctx.emit(ResponseEvent {
                id: request.id,
                peer: request.peer,
                protocol: self.protocol.clone(),
                result: Err(error),
            }),
        }
    }
}

impl Protocol for RequestResponse {
    fn name(&self) -> &'static str {
        "request-response"
    }

    /// The protocol id, if this plugin answers requests (has a handler).
    fn protocol_ids(&self) -> Vec<String> {
        match self.handler {
            Some(_) => vec![self.protocol.clone()],
            None => Vec::new(),
        }
    }

    fn accept_inbound_stream(&mut self, ctx: &mut Context<'_>, stream: StreamRef, _: &str) {
        let Some(peer) = ctx.connection_peer(stream.conn) else {
            let _ = ctx.abort(stream, 0);
            return;
        };
        self.track(ctx, stream, peer, None);
    }

    fn handle_stream_negotiated(&mut self, _: &mut Context<'_>, stream: StreamRef, _: &str) {
        if let Some(exchange) = self.exchanges.get_mut(&stream) {
            exchange.negotiated = true;
        }
    }

    fn handle_stream_data(&mut self, ctx: &mut Context<'_>, stream: StreamRef, data: Bytes) {
        let Some(exchange) = self.exchanges.get_mut(&stream) else {
            return;
        };
        if exchange.answered {
            // Bytes after the request: the response is on its way anyway.
            return;
        }
        match exchange.reader.push(&data) {
            Ok(None) => {}
            Ok(Some(message)) => self.on_message(ctx, stream, message),
            Err(error) => self.end(ctx, stream, Err(error)),
        }
    }

    fn handle_stream_finished(&mut self, ctx: &mut Context<'_>, stream: StreamRef) {
        // An answered request may finish any time; it changes nothing.
        if let Some(exchange) = self.exchanges.get(&stream)
            && !exchange.answered
        {
            let error = RequestError::Closed("the stream ended before a full message".into());
            self.end(ctx, stream, Err(error));
        }
    }

    /// The remote will not read what we send. A responder stops a request
    /// it refuses (with a `RESET_*` code that says why), and a requester
    /// that stops wants no response: either way the exchange is over.
    fn handle_stream_stopped(&mut self, ctx: &mut Context<'_>, stream: StreamRef, code: u64) {
        if let Some(exchange) = self.exchanges.get(&stream) {
            let error = self.closed_error(exchange, &StreamError::Stopped(code));
            self.end(ctx, stream, Err(error));
        }
    }

    fn handle_stream_closed(
        &mut self,
        ctx: &mut Context<'_>,
        stream: StreamRef,
        reason: &StreamError,
    ) {
        let Some(exchange) = self.forget(ctx, stream) else {
            return;
        };
        let Some(id) = exchange.outbound else {
            return;
        };
        let error = self.closed_error(&exchange, reason);
        ctx.emit(ResponseEvent {
            id,
            peer: exchange.peer,
            protocol: self.protocol.clone(),
            result: Err(error),
        });
    }

    fn handle_timer(&mut self, ctx: &mut Context<'_>, token: u64) {
        let Some(stream) = self.timers.remove(&token) else {
            return;
        };
        let answered = self.exchanges.get(&stream).is_some_and(|e| e.answered);
        if answered && ctx.queued(stream) == 0 {
            // The response went out after all (the swarm sends no event
            // when a send queue drains).
            self.forget(ctx, stream);
        } else {
            self.end(ctx, stream, Err(RequestError::Timeout(self.config.timeout)));
        }
    }

    fn handle_protocol_event(&mut self, ctx: &mut Context<'_>, event: &ProtocolEvent) {
        if let Some(request) = event.downcast_ref::<OutboundRequest>()
            && request.protocol == self.protocol
        {
            self.request(ctx, request);
        }
    }
}

/// `uvarint(len)`, the prefix of a message of `len` bytes.
fn length_prefix(len: usize) -> Vec<u8> {
    let mut buf = unsigned_varint::encode::u64_buffer();
    unsigned_varint::encode::u64(len as u64, &mut buf).to_vec()
}

/// `Ok` if a message of `len` bytes fits `limit`.
fn check_size(len: usize, limit: usize) -> Result<(), RequestError> {
    if len > limit {
        return Err(RequestError::TooLarge {
            len: len as u64,
            limit,
        });
    }
    Ok(())
}

/// The time left before `deadline`, or a timeout error.
fn time_left(deadline: Instant, timeout: Duration) -> Result<Duration, RequestError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(RequestError::Timeout(timeout));
    }
    Ok(left)
}

/// Reassembles one length-prefixed message from chunks, never buffering
/// more than the limit (plus the prefix).
#[derive(Debug)]
struct MessageReader {
    limit: usize,
    buf: BytesMut,
    /// The message's length, once its prefix has arrived.
    len: Option<usize>,
}

impl MessageReader {
    fn new(limit: usize) -> Self {
        Self {
            limit,
            buf: BytesMut::new(),
            len: None,
        }
    }

    /// Add received bytes; the message once it is complete. Bytes after
    /// the message are an error.
    fn push(&mut self, data: &[u8]) -> Result<Option<Bytes>, RequestError> {
        let mut data = data;
        if self.len.is_none() {
            // Take prefix bytes one at a time: a prefix is at most 10 bytes.
            while self.len.is_none() {
                let Some((&byte, rest)) = data.split_first() else {
                    return Ok(None);
                };
                data = rest;
                self.buf.extend_from_slice(&[byte]);
                match unsigned_varint::decode::u64(&self.buf) {
                    Ok((len, _)) => {
                        if len > self.limit as u64 {
                            let limit = self.limit;
                            return Err(RequestError::TooLarge { len, limit });
                        }
                        self.buf.clear();
                        self.len = Some(len as usize);
                    }
                    Err(unsigned_varint::decode::Error::Insufficient)
                        if self.buf.len() < MAX_PREFIX_LEN => {}
                    Err(e) => return Err(RequestError::Malformed(format!("length prefix: {e}"))),
                }
            }
        }
        let len = self.len.unwrap_or(0);
        if self.buf.len() + data.len() > len {
            return Err(RequestError::Malformed("bytes after the message".into()));
        }
        self.buf.extend_from_slice(data);
        if self.buf.len() < len {
            return Ok(None);
        }
        Ok(Some(self.buf.split().freeze()))
    }
}

#[cfg(test)]
mod tests {
    use std::sync::mpsc;
    use std::thread::JoinHandle;

    use swarm::{ConnId, Keypair, Multiaddr, Runtime, SwarmConfig};

    use super::*;

    const PROTOCOL: &str = "/test/upper/1.0.0";
    const WAIT: Duration = Duration::from_secs(20);

    /// A node on loopback; shut down when dropped.
    struct Node {
        handle: SwarmHandle,
        peer: PeerId,
        addr: Multiaddr,
        thread: Option<JoinHandle<io::Result<()>>>,
    }

    impl Drop for Node {
        fn drop(&mut self) {
            let _ = self.handle.shutdown(0);
            if let Some(thread) = self.thread.take() {
                let _ = thread.join();
            }
        }
    }

    fn node(seed: u8, plugins: Vec<Box<dyn Protocol>>) -> Node {
        let key = Keypair::ed25519_from_bytes([seed; 32]).unwrap();
        let mut runtime = Runtime::new(SwarmConfig::new(key)).unwrap();
        for plugin in plugins {
            runtime.add_protocol(plugin);
        }
        let addr = runtime
            .listen(&"/ip4/127.0.0.1/udp/0/quic-v1".parse().unwrap())
            .unwrap();
        let peer = runtime.swarm().local_peer_id();
        let (handle, thread) = runtime.spawn().unwrap();
        Node {
            handle,
            peer,
            addr,
            thread: Some(thread),
        }
    }

    fn connect(from: &Node, to: &Node) -> ConnId {
        let addr = to
            .addr
            .clone()
            .with(swarm::multiaddr::Protocol::P2p(to.peer));
        from.handle.dial(&addr, false, WAIT).unwrap()
    }

    /// Upper-cases requests; declines `"no"`.
    fn upper(config: RequestResponseConfig) -> Box<dyn Protocol> {
        Box::new(
            RequestResponse::new(PROTOCOL, config).with_handler(|_, request: Bytes| {
                (&request[..] != b"no").then(|| request.to_ascii_uppercase())
            }),
        )
    }

    fn ask(from: &Node, to: &Node, request: &[u8]) -> Result<Bytes, RequestError> {
        super::request(&from.handle, to.peer, PROTOCOL, request, WAIT)
    }

    #[test]
    fn reader_reassembles_a_message_split_anywhere() {
        let message = b"hello, world".repeat(20);
        let mut wire = length_prefix(message.len());
        wire.extend_from_slice(&message);
        for split in 0..wire.len() {
            let mut reader = MessageReader::new(1000);
            let first = reader.push(&wire[..split]).unwrap();
            assert_eq!(first, None, "split at {split}");
            let second = reader.push(&wire[split..]).unwrap();
            assert_eq!(second.as_deref(), Some(&message[..]), "split at {split}");
        }
    }

    #[test]
    fn reader_enforces_limit_and_rejects_garbage() {
        let mut reader = MessageReader::new(10);
        assert_eq!(
            reader.push(&length_prefix(11)),
            Err(RequestError::TooLarge { len: 11, limit: 10 })
        );
        let mut reader = MessageReader::new(10);
        assert!(matches!(
            reader.push(&[3, b'a', b'b', b'c', b'd']),
            Err(RequestError::Malformed(_))
        ));
        let mut reader = MessageReader::new(10);
        assert!(matches!(
            reader.push(&[0x80; 11]),
            Err(RequestError::Malformed(_))
        ));
        let mut reader = MessageReader::new(10);
        assert_eq!(reader.push(&[0]), Ok(Some(Bytes::new())));
    }

    #[test]
    fn blocking_request_gets_the_handlers_response() {
        let server = node(1, vec![upper(RequestResponseConfig::default())]);
        let client = node(2, vec![]);
        connect(&client, &server);
        assert_eq!(ask(&client, &server, b"hello").unwrap(), "HELLO");
        // Large messages cross several send windows.
        let big = vec![b'x'; 900_000];
        assert_eq!(
            ask(&client, &server, &big).unwrap(),
            big.to_ascii_uppercase()
        );
        assert_eq!(ask(&client, &server, b"").unwrap(), "");
    }

    #[test]
    fn blocking_request_errors_are_typed() {
        let small = RequestResponseConfig {
            max_request_size: 100,
            ..RequestResponseConfig::default()
        };
        let server = node(3, vec![upper(small)]);
        let client = node(4, vec![]);
        assert_eq!(
            ask(&client, &server, b"x"),
            Err(RequestError::NotConnected(server.peer))
        );
        connect(&client, &server);
        assert_eq!(ask(&client, &server, b"no"), Err(RequestError::Declined));
        assert_eq!(
            ask(&client, &server, &[b'x'; 101]),
            Err(RequestError::RemoteTooLarge)
        );
        assert_eq!(
            super::request(&client.handle, server.peer, "/nobody/1.0.0", b"x", WAIT),
            Err(RequestError::Refused("/nobody/1.0.0".into()))
        );
        let tiny_response = RequestResponseConfig {
            max_response_size: 3,
            ..RequestResponseConfig::default()
        };
        assert_eq!(
            request_with_config(
                &client.handle,
                server.peer,
                PROTOCOL,
                b"four",
                &tiny_response
            ),
            Err(RequestError::TooLarge { len: 4, limit: 3 })
        );
        // The connection survives every refusal.
        assert_eq!(ask(&client, &server, b"ok").unwrap(), "OK");
    }

    /// Accepts streams for PROTOCOL and never answers.
    struct Silent;

    impl Protocol for Silent {
        fn protocol_ids(&self) -> Vec<String> {
            vec![PROTOCOL.into()]
        }
    }

    #[test]
    fn silent_responder_times_out_on_both_paths() {
        let server = node(5, vec![Box::new(Silent)]);
        let (tx, rx) = mpsc::channel();
        let client = node(
            6,
            vec![
                Box::new(RequestResponse::new(
                    PROTOCOL,
                    RequestResponseConfig {
                        timeout: Duration::from_millis(300),
                        ..RequestResponseConfig::default()
                    },
                )),
                Box::new(Asker { results: tx }),
            ],
        );
        connect(&client, &server);
        let timeout = Duration::from_millis(300);
        let started = Instant::now();
        assert_eq!(
            super::request(&client.handle, server.peer, PROTOCOL, b"x", timeout),
            Err(RequestError::Timeout(timeout))
        );
        assert!(started.elapsed() < Duration::from_secs(5));
        // The plugin path: the asker's request times out too.
        let (_, result) = rx.recv_timeout(WAIT).expect("asker reports");
        assert_eq!(result, Err(RequestError::Timeout(timeout)));
    }

    /// Sends `"hello"` on every new connection with `send_request` and
    /// reports each outcome.
    struct Asker {
        results: mpsc::Sender<(RequestId, Result<Bytes, RequestError>)>,
    }

    impl Protocol for Asker {
        fn handle_new_connection(&mut self, ctx: &mut Context<'_>, _: ConnId, peer: PeerId) {
            send_request(ctx, peer, PROTOCOL, "hello");
            send_request(ctx, peer, PROTOCOL, "no");
        }

        fn handle_protocol_event(&mut self, _: &mut Context<'_>, event: &ProtocolEvent) {
            if let Some(response) = event.downcast_ref::<ResponseEvent>() {
                let _ = self.results.send((response.id, response.result.clone()));
            }
        }
    }

    #[test]
    fn plugin_requests_get_response_events() {
        let server = node(7, vec![upper(RequestResponseConfig::default())]);
        let (tx, rx) = mpsc::channel();
        let client = node(
            8,
            vec![
                Box::new(RequestResponse::new(
                    PROTOCOL,
                    RequestResponseConfig::default(),
                )),
                Box::new(Asker { results: tx }),
            ],
        );
        connect(&client, &server);
        let mut results: Vec<_> = (0..2).map(|_| rx.recv_timeout(WAIT).unwrap()).collect();
        results.sort_by_key(|(id, _)| *id);
        assert_eq!(results[0].1, Ok(Bytes::from("HELLO")));
        assert_eq!(results[1].1, Err(RequestError::Declined));
    }

    #[test]
    fn plugin_request_to_a_peer_without_the_protocol_is_refused() {
        let server = node(9, vec![]);
        let (tx, rx) = mpsc::channel();
        let client = node(
            10,
            vec![
                Box::new(RequestResponse::new(
                    PROTOCOL,
                    RequestResponseConfig::default(),
                )),
                Box::new(Asker { results: tx }),
            ],
        );
        connect(&client, &server);
        for _ in 0..2 {
            let (_, result) = rx.recv_timeout(WAIT).unwrap();
            assert_eq!(result, Err(RequestError::Refused(PROTOCOL.into())));
        }
    }
}
