//! Asking from any thread: open a stream through a `SwarmHandle`, write
//! the request, block until the response, an error or the timeout.

use std::io::{Read, Write};
use std::time::{Duration, Instant};

use bytes::Bytes;
use swarm::multistream::MultistreamError;
use swarm::{HandleError, OpenStreamError, StreamTarget, SwarmHandle};

use super::RequestResponseConfig;
use super::error::RequestError;
use super::message::{MessageReader, check_size, length_prefix};

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

/// The time left before `deadline`, or a timeout error.
pub(super) fn time_left(deadline: Instant, timeout: Duration) -> Result<Duration, RequestError> {
    let left = deadline.saturating_duration_since(Instant::now());
    if left.is_zero() {
        return Err(RequestError::Timeout(timeout));
    }
    Ok(left)
}
