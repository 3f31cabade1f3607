//! The receive path: move what the transport received on a stream to its
//! owner (the negotiation, a plugin's callbacks, a thread's buffer), as far
//! as the owner takes it.

use bytes::Bytes;

use crate::connection::Connection;
use crate::error::StreamError;
use crate::ids::{StreamId, StreamRef};
use crate::multistream::MultistreamError;
use crate::multistream::Progress;
use crate::stream::{Opener, Owner, RecvState};
use crate::transport::{ReadStep, ReadUnavailable};

use super::core::Core;
use super::queues::Callback;

impl Core {
    /// Move what the transport has received on a stream to its owner, as
    /// far as the owner accepts it.
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
        let Connection {
            transport, streams, ..
        } = &mut connections[index];
        let Some(stream) = streams.get_mut(&sid) else {
            return;
        };
        if !stream.recv_open() || stream.read_paused || stream.queue_paused {
            return;
        }
        let mut failure: Option<StreamError> = None;
        let mut negotiated: Option<(String, Bytes)> = None;
        // A carrier stream's bytes, and its end, for its relayed connection.
        let carrier_of = match &stream.owner {
            Owner::Carrier { inner, .. } => Some(*inner),
            _ => None,
        };
        let mut carried: Vec<Bytes> = Vec::new();
        let mut carrier_ended = false;
        let read = transport.read(sid, |reader| {
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
                match reader.next(max) {
                    ReadStep::Data(bytes) => match &mut stream.owner {
                        Owner::Negotiating { negotiation, .. } => {
                            let supported = |p: &str| {
                                protocols.contains_key(p) || packet_protocols.contains_key(p)
                            };
                            match negotiation.feed(bytes, &supported) {
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
                        // A flow's control stream carries nothing after
                        // negotiation; a draining stream's receive side is over.
                        Owner::FlowControl { .. } | Owner::Draining => {}
                        Owner::Plugin(p) => callbacks.push_back(Callback::Data(*p, sref, bytes)),
                        Owner::Thread(shared) => {
                            let mut st = shared.lock();
                            st.recv_len += bytes.len();
                            st.recv.push_back(bytes);
                            drop(st);
                            shared.notify_thread();
                        }
                        Owner::Carrier { .. } => carried.push(bytes),
                    },
                    ReadStep::Fin => {
                        stream.recv = RecvState::Closed;
                        match &stream.owner {
                            Owner::Negotiating { .. } => {
                                failure = Some(StreamError::EndedDuringNegotiation);
                            }
                            Owner::FlowControl { .. } => {
                                failure = Some(StreamError::ConnectionClosed("flow closed".into()));
                            }
                            Owner::Plugin(p) => callbacks.push_back(Callback::Finished(*p, sref)),
                            Owner::Thread(shared) => {
                                shared.lock().recv_fin = true;
                                shared.notify_thread();
                            }
                            Owner::Carrier { .. } => carrier_ended = true,
                            Owner::Draining => {}
                        }
                        break;
                    }
                    ReadStep::Blocked => break,
                    ReadStep::Reset(code) => {
                        stream.recv = RecvState::Closed;
                        failure = Some(StreamError::Reset(code));
                        break;
                    }
                }
            }
        });
        match read {
            Ok(()) => {}
            Err(ReadUnavailable::Closed) => {
                stream.recv = RecvState::Closed;
                return;
            }
            Err(ReadUnavailable::NotNow) => return,
        }
        self.touch(index);
        if let Some(inner) = carrier_of {
            for bytes in carried {
                self.tcp_data(inner, &bytes);
            }
            if carrier_ended {
                self.relayed_lost(inner, "the relay stream finished".into());
            }
        }
        if let Some((protocol, remainder)) = negotiated {
            self.on_negotiated(index, sid, protocol, remainder);
            // More may be readable for the new owner.
            self.read_stream(index, sid);
        } else if self.connections[index]
            .streams
            .get(&sid)
            .is_some_and(|s| s.is_negotiating())
        {
            self.flush_negotiation(index, sid);
        }
        if let Some(e) = failure {
            let listener = self.connections[index].streams.get(&sid).is_some_and(|s| {
                matches!(
                    s.owner,
                    Owner::Negotiating {
                        opener: Opener::Remote,
                        ..
                    }
                )
            });
            match e {
                StreamError::Negotiation(MultistreamError::TooManyRounds { .. }) if listener => {
                    self.refuse_negotiation(sref, e)
                }
                e => self.fail_stream(sref, e),
            }
        } else {
            self.maybe_remove_stream(index, sid);
        }
    }
}
