//! The device around the engine: a lease table for the relationship's 64 addresses, a slot for
//! the persisted snapshot (both standing in for flash), and the service loop of
//! `failover_fsm`'s output API: actions, then events, then messages.

use core::net::Ipv4Addr;

use failover_fsm::accept::LocalBinding;
use failover_fsm::record::{BacklogWalk, LeaseRecord, Received, Walked};
use failover_fsm::{
    Action, BindingData, BindingSource, Commits, Engine, Event, Instant, LeaseLookup, Persisted,
    UnixTime,
};

use crate::log::{trace, value};

/// The engine as the size image sizes it: 32 queued bindings, 16 commits in flight (at least
/// the max-unacked-bndupd we advertise, §7.1.1), 32 actions and events.
pub type FirmwareEngine = Engine<32, 16, 32>;

/// The pool of the captured relationship: 198.18.1.0/26.
pub const POOL_FIRST: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 0);
pub const POOL_SIZE: usize = 64;

/// The lease database: one record per address, in RAM here, in flash on a device.
pub struct Leases {
    records: [LeaseRecord; POOL_SIZE],
}

impl Leases {
    /// A new secondary: every address untouched (all start on the primary, §5.4).
    pub fn new() -> Self {
        let first = u32::from(POOL_FIRST);
        Leases {
            records: core::array::from_fn(|i| LeaseRecord::fresh(Ipv4Addr::from(first + i as u32))),
        }
    }

    fn get_mut(&mut self, address: [u8; 4]) -> Option<&mut LeaseRecord> {
        let i = u32::from(Ipv4Addr::from(address)).checked_sub(u32::from(POOL_FIRST))?;
        self.records.get_mut(i as usize)
    }
}

impl LeaseLookup for Leases {
    fn lookup(&self, address: Ipv4Addr) -> Option<LocalBinding> {
        let i = u32::from(address).checked_sub(u32::from(POOL_FIRST))?;
        self.records.get(i as usize).map(|r| r.local)
    }
}

/// The engine reads our bindings from here when it sends them.
impl BindingSource for Leases {
    fn binding(&self, address: Ipv4Addr) -> Option<BindingData> {
        let i = u32::from(address).checked_sub(u32::from(POOL_FIRST))?;
        self.records.get(i as usize).map(|r| r.data.clone())
    }
}

/// What went wrong while serving the engine.
pub type Failure = &'static str;

/// The engine and its storage.
pub struct Device {
    pub engine: FirmwareEngine,
    pub leases: Leases,
    /// The last snapshot written (§9.2: the state survives a restart).
    pub persisted: Option<Persisted>,
    /// Actions and events are logged (off while timing).
    pub verbose: bool,
    /// The answer to UPDREQ / UPDREQALL or the backlog, under way as the queue has room.
    pub walk: Option<BacklogWalk>,
}

impl Device {
    /// Hands one message to the engine; the partner's bindings it accepts are stored, then
    /// confirmed (§7.2: stored first, acknowledged after). The list of them lives on the stack
    /// for this call only: the engine keeps no copy.
    pub fn handle(&mut self, now: Instant, wall: UnixTime, msg: &[u8]) -> Result<(), Failure> {
        let mut commits = Commits::new();
        self.engine
            .handle_message(now, wall, msg, &self.leases, &mut commits)
            .map_err(|_| "handle_message refused")?;
        while let Some(c) = commits.pop() {
            let record = self
                .leases
                .get_mut(c.binding.address)
                .ok_or("a committed binding outside the pool")?;
            if let Received::KeptOurs(_) = record.apply_received(&c.binding, &c.verdict) {
                record
                    .send_again(&mut self.engine)
                    .map_err(|_| "queue full")?;
            }
            self.engine
                .binding_committed(c.token)
                .map_err(|_| "binding_committed refused")?;
        }
        Ok(())
    }

    /// Carries out every action and reads every event, then hands every message the engine
    /// writes to `sent` (the TCP connection). The order is the engine's contract.
    pub fn serve(
        &mut self,
        now: Instant,
        tx: &mut [u8],
        sent: &mut impl FnMut(&[u8]) -> Result<(), Failure>,
    ) -> Result<(), Failure> {
        while let Some(action) = self.engine.poll_action() {
            if self.verbose {
                value("action", &action);
            }
            self.act(action)?;
        }
        // Acknowledgements may have made room for the rest of a walk.
        self.feed();
        while let Some(event) = self.engine.poll_event() {
            if self.verbose {
                value("event", &event);
            }
            match event {
                Event::ProtocolError { .. } => return Err("the engine saw a protocol error"),
                Event::ConnectionRejected { .. } => return Err("the connection was rejected"),
                Event::StateChanged { to, .. } => trace!("state -> {}", to.name()),
                _ => {}
            }
        }
        while let Some(n) = self.engine.poll_transmit(now, tx, &self.leases) {
            sent(tx.get(..n).ok_or("poll_transmit overran the buffer")?)?;
        }
        Ok(())
    }

    fn act(&mut self, action: Action) -> Result<(), Failure> {
        let engine = &mut self.engine;
        match action {
            Action::Persist { token, snapshot } => {
                self.persisted = Some(snapshot);
                engine
                    .persist_complete(token)
                    .map_err(|_| "persist_complete refused")?;
            }
            // UPDREQALL (§7.4) and UPDREQ (§7.3): queue what the partner should have, then say
            // so; the backlog (§9.8.1). A new secondary's untouched records are not sent.
            Action::SendAllBindings | Action::SendUnackedBindings | Action::SendBacklog => {
                if let Some(walk) = BacklogWalk::for_action(&action) {
                    walk.begin(&mut self.leases.records);
                    self.walk = Some(match self.walk.take() {
                        Some(under_way) => under_way.then(walk),
                        None => walk,
                    });
                    self.feed();
                }
            }
            Action::BindingAcked { .. } => {
                if let Some((address, ack)) = action.ack()
                    && let Some(record) = self.leases.get_mut(address)
                {
                    record.apply_ack(&ack, engine.config().role);
                }
            }
            Action::BindingRejected {
                address, update, ..
            } => {
                if let Some(record) = self.leases.get_mut(address) {
                    record.apply_reject(update);
                }
            }
            // The captured conversation has no reconnect and leaves pool balancing to the
            // primary (ISC runs it there); a device would act on these.
            Action::CloseConnection => return Err("the engine closed the connection"),
            _ => {}
        }
        Ok(())
    }

    /// Queues the walk under way as far as the queue has room.
    fn feed(&mut self) {
        if let Some(walk) = self.walk.as_mut()
            && walk.walk(&mut self.leases.records, &mut self.engine, |_, _| {}) == Walked::Done
        {
            self.walk = None;
        }
    }
}
