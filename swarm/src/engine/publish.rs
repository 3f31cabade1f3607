//! Events out: to other plugins (queued callbacks), to one plugin (a
//! message), and to application subscribers (never blocking the thread).

use tracing::warn;

use crate::events::{Message, ProtocolEvent, SwarmEvent};
use crate::ids::PluginId;

use super::core::Core;
use super::queues::Callback;
use std::sync::mpsc::TrySendError;

impl Core {
    pub(crate) fn emit(&mut self, from: Option<PluginId>, event: ProtocolEvent) {
        self.publish(SwarmEvent::Protocol(event.clone()));
        self.callbacks.push_back(Callback::Event(from, event));
    }

    /// Send an event to subscribers without ever blocking the swarm thread:
    /// a full subscriber loses the event (counted and logged). The log of
    /// a recording driver keeps every event.
    pub(crate) fn publish(&mut self, event: SwarmEvent) {
        if let Some(log) = &mut self.recorded_events {
            log.push(event.clone());
        }
        self.subscribers
            .retain(|s| match s.try_send(event.clone()) {
                Ok(()) => true,
                Err(TrySendError::Full(_)) => {
                    self.dropped_events += 1;
                    warn!(
                        dropped = self.dropped_events,
                        "event subscriber is full; event dropped"
                    );
                    true
                }
                Err(TrySendError::Disconnected(_)) => false,
            });
    }

    pub(crate) fn send_message(&mut self, to: PluginId, message: Message) {
        self.callbacks.push_back(Callback::Message(to, message));
    }
}
