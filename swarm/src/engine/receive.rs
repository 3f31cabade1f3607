//! The receive path: move what QUIC received on a stream to its owner (the
//! negotiation, a plugin's callbacks, a thread's buffer), as far as the
//! owner takes it.

use bytes::Bytes;
use quinn_proto::{ReadError, ReadableError, StreamId};

use crate::connection::Connection;
use crate::error::StreamError;
use crate::ids::StreamRef;
use crate::multistream::Progress;
use crate::stream::{Owner, Stream};

use super::core::Core;
use super::queues::Callback;

impl Core {
    /// Move what QUIC has received on a stream to its owner, as far as the
    /// owner accepts it.
    pub(crate) fn read_stream(&mut self, index: usize, sid: StreamId) {
        let conn_id = self.conn_id(index);
        let sref = StreamRef {
            conn: conn_id,
            id: sid,
        };
        let Core {
            connections,
            callbacks,
            protocols,
            packet_protocols,
            ..
        } = self;
        let conn = &mut connections[index];
        let Connection { quic, streams, .. } = conn;
        let Some(stream) = streams.get_mut(&sid) else {
            return;
        };
        if stream.recv_done || stream.read_paused || stream.queue_paused {
            return;
        }
        let mut recv = quic.recv_stream(sid);
        let mut chunks = match recv.read(true) {
            Ok(c) => c,
            Err(ReadableError::ClosedStream) => {
                stream.recv_done = true;
                return;
            }
            Err(ReadableError::IllegalOrderedRead) => return,
        };
        let mut failure: Option<StreamError> = None;
        let mut negotiated: Option<(String, Bytes)> = None;
        loop {
            let max = match &stream.owner {
                Owner::Thread(shared) => {
                    let mut st = shared.lock();
                    let room = shared.recv_room(&st);
                    if room == 0 {
                        st.recv_paused = true;
                        break;
                    }
                    room
                }
                _ if stream.read_paused || stream.queue_paused => break,
                _ => usize::MAX,
            };
            match chunks.next(max) {
                Ok(Some(chunk)) => match &mut stream.owner {
                    Owner::Negotiating {
                        negotiation,
                        plugin,
                        ..
                    } => {
                        let _ = plugin;
                        let supported =
                            |p: &str| protocols.contains_key(p) || packet_protocols.contains_key(p);
                        match negotiation.feed(chunk.bytes, &supported) {
                            Ok(Progress::Pending) => {}
                            Ok(Progress::Done {
                                protocol,
                                remainder,
                            }) => {
                                negotiated = Some((protocol, remainder));
                                break;
                            }
                            Err(e) => {
                                failure = Some(StreamError::Negotiation(e));
                                break;
                            }
                        }
                    }
                    // A flow's control stream carries nothing after negotiation.
                    Owner::Plugin(_) if stream.packet_flow => {}
                    Owner::Plugin(p) => callbacks.push_back(Callback::Data(*p, sref, chunk.bytes)),
                    Owner::Thread(shared) => {
                        let mut st = shared.lock();
                        st.recv_len += chunk.bytes.len();
                        st.recv.push_back(chunk.bytes);
                        drop(st);
                        shared.notify_thread();
                    }
                },
                Ok(None) => {
                    stream.recv_done = true;
                    match &stream.owner {
                        Owner::Negotiating { .. } => {
                            failure = Some(StreamError::EndedDuringNegotiation);
                        }
                        Owner::Plugin(_) if stream.packet_flow => {
                            failure = Some(StreamError::ConnectionClosed("flow closed".into()));
                        }
                        Owner::Plugin(p) => callbacks.push_back(Callback::Finished(*p, sref)),
                        Owner::Thread(shared) => {
                            shared.lock().recv_fin = true;
                            shared.notify_thread();
                        }
                    }
                    break;
                }
                Err(ReadError::Blocked) => break,
                Err(ReadError::Reset(code)) => {
                    stream.recv_done = true;
                    failure = Some(StreamError::Reset(code.into_inner()));
                    break;
                }
            }
        }
        let _ = chunks.finalize();
        self.touch(index);
        if let Some((protocol, remainder)) = negotiated {
            self.on_negotiated(index, sid, protocol, remainder);
            // More may be readable for the new owner.
            self.read_stream(index, sid);
        } else if let Some(Stream {
            owner: Owner::Negotiating { .. },
            ..
        }) = self.connections[index].streams.get(&sid)
        {
            self.flush_negotiation(index, sid);
        }
        if let Some(e) = failure {
            self.fail_stream(sref, e);
        } else {
            self.maybe_remove_stream(index, sid);
        }
    }
}
