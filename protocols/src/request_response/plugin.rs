//! The plugin of one request/response protocol: it answers inbound
//! requests with its handler and sends the requests other plugins emit.

use std::collections::HashMap;
use std::fmt;

use bytes::Bytes;
use swarm::{
    Context, OpenStreamError, PeerId, Protocol, ProtocolEvent, StreamError, StreamRef, TimerId,
};
use tracing::{debug, warn};

use super::error::RequestError;
use super::message::{MessageReader, check_size, length_prefix};
use super::{
    OutboundRequest, RESET_DECLINED, RESET_TOO_LARGE, RequestId, RequestResponseConfig,
    ResponseEvent,
};
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
