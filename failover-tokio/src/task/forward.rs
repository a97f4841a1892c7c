//! What the task tells the application: events (in order, with back-pressure), the status
//! watch, counters, and the log.

use std::collections::VecDeque;
use std::sync::Arc;

use failover_fsm::{Event, Status};
use tokio::sync::{mpsc, watch};
use tracing::{info, warn};

use crate::peer::{Counters, PeerEvent};

/// The application's side of the task: events of type `E` (the DHCPv4 peer's [`PeerEvent`],
/// the DHCPv6 peer's [`crate::v6::PeerEvent6`]).
pub(crate) struct Forward<E = PeerEvent> {
    tx: mpsc::Sender<E>,
    /// Events gathered while input is handled, sent once it is.
    pending: VecDeque<E>,
    status: watch::Sender<Status>,
    pub(crate) counters: Arc<Counters>,
}

impl<E> Forward<E> {
    pub(crate) fn new(
        tx: mpsc::Sender<E>,
        status: watch::Sender<Status>,
        counters: Arc<Counters>,
    ) -> Self {
        Forward {
            tx,
            pending: VecDeque::new(),
            status,
            counters,
        }
    }

    pub(crate) fn push(&mut self, event: E) {
        self.pending.push_back(event);
    }

    /// Sends the gathered events. Bounded: when the application does not keep up, the task
    /// waits here (and so stops reading from the partner).
    pub(crate) async fn flush(&mut self) {
        while let Some(event) = self.pending.pop_front() {
            if self.tx.send(event).await.is_err() {
                // The application dropped its receiver; keep running without events.
                self.tx = mpsc::channel(1).0;
                self.pending.clear();
            }
        }
    }

    /// Publishes the engine's status if it changed.
    pub(crate) fn publish(&self, status: Status) {
        self.status.send_if_modified(|s| {
            let changed = *s != status;
            *s = status;
            changed
        });
    }
}

/// Logs an informational engine event.
pub(crate) fn log_event(event: &Event) {
    match event {
        Event::StateChanged { from, to } => {
            info!(from = %from, to = %to, "failover state changed");
        }
        Event::PartnerStateChanged { state, .. } => {
            info!(partner = %state, "partner state");
        }
        Event::ConnectionRejected { reason, by_partner } => {
            warn!(%reason, by_partner, "connection rejected");
        }
        Event::PartnerDisconnected { reason } => {
            info!(%reason, "partner sent DISCONNECT");
        }
        Event::PartnerShuttingDown => info!("partner is shutting down"),
        Event::ProtocolError { error } => {
            warn!(%error, "protocol error from the partner");
        }
        Event::Alarm {
            state,
            partner_state,
        } => {
            warn!(%state, partner = ?partner_state, "failover alarm");
        }
        Event::UpdateUnacknowledged { waited } => {
            warn!(
                waited,
                "binding update unacknowledged while the partner is connected; reconnecting"
            );
        }
        Event::PersistFailed { token } => {
            warn!(
                ?token,
                "failover state not persisted; its announcement waits"
            );
        }
        _ => {}
    }
}
