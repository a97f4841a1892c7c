//! One DHCPv6 failover server of the v6 simulator: an `Engine<_, _, _, V6>`, its durable lease
//! store (a [`LocalLease`] per address and prefix, plus which server last wrote it) and the
//! store's side of the engine's three traits. Every record change goes through the library:
//! [`LocalLease::store_received`], [`LocalLease::store_ack`], [`LocalLease::update_lease`].

use std::collections::{BTreeMap, BTreeSet};
use std::net::Ipv6Addr;

use failover_fsm::engine::{
    BindingHandle, BindingSource6, CommitToken, Engine, LeaseLookup6, Persisted, UpdateId,
    UpdateSink6, V6,
};
use failover_fsm::v6::accept::Verdict;
use failover_fsm::v6::{ClientKey, LocalLease, owner};
use failover_fsm::{Instant, Role, UnixTime};
use failover_proto::v6::{
    Binding, BindingStatus, ClientData, Framer, Ia, IaKind, Lease, LeaseAddr, List, Status, time,
};

/// The engine: 32 queued updates, 16 commits in flight, 64 events.
pub(crate) type Engine6 = Engine<32, 16, 64, V6>;

/// The simulation's wall clock at `Instant::ZERO` (before each server's offset).
pub(crate) const T0: i64 = 1_700_000_000;

/// The address and prefix pool of a run: slots `0..addresses` are the addresses
/// 2001:db8::1.., then `prefixes` /64s 2001:db8:1:1::/64...
#[derive(Debug, Clone, Copy)]
pub(crate) struct Pool {
    pub(crate) addresses: usize,
    pub(crate) prefixes: usize,
}

impl Pool {
    pub(crate) fn len(&self) -> usize {
        self.addresses + self.prefixes
    }

    pub(crate) fn lease(&self, slot: usize) -> LeaseAddr {
        if slot < self.addresses {
            LeaseAddr::Address(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, slot as u16 + 1))
        } else {
            let n = (slot - self.addresses) as u16 + 1;
            LeaseAddr::Prefix {
                prefix: Ipv6Addr::new(0x2001, 0xdb8, 1, n, 0, 0, 0, 0),
                len: 64,
            }
        }
    }

    /// The slot of `lease`; `None` outside the pool (the engine answers ConfigurationConflict).
    pub(crate) fn slot(&self, lease: LeaseAddr) -> Option<usize> {
        let s = match lease {
            LeaseAddr::Address(a) => {
                let o = a.segments();
                (o[..7] == [0x2001, 0xdb8, 0, 0, 0, 0, 0])
                    .then_some(o[7] as usize)?
                    .checked_sub(1)
                    .filter(|s| *s < self.addresses)?
            }
            LeaseAddr::Prefix { prefix, len: 64 } => {
                let o = prefix.segments();
                let n = (o[..3] == [0x2001, 0xdb8, 1] && o[4..] == [0; 4]).then_some(o[3])?;
                (n as usize).checked_sub(1).filter(|n| *n < self.prefixes)? + self.addresses
            }
            LeaseAddr::Prefix { .. } => return None,
        };
        Some(s)
    }

    pub(crate) fn kind(&self, slot: usize) -> owner::Kind {
        match self.lease(slot) {
            LeaseAddr::Address(a) => owner::Kind::Address(a),
            LeaseAddr::Prefix { .. } => owner::Kind::Prefix,
        }
    }

    pub(crate) fn ia(&self, slot: usize) -> IaKind {
        if slot < self.addresses {
            IaKind::Na
        } else {
            IaKind::Pd
        }
    }

    /// A record never used: an address available to its owner (§4.2.1.1), a prefix FREE —
    /// the primary's (§4.2.2).
    pub(crate) fn fresh(&self, slot: usize) -> LocalLease {
        LocalLease::new(owner::freed_status(self.kind(slot)))
    }
}

/// Client `id`'s DUID (a DUID-LL of a made-up MAC).
pub(crate) fn duid(id: u32) -> [u8; 10] {
    let b = id.to_be_bytes();
    [0, 3, 0, 1, 2, 0, b[0], b[1], b[2], b[3]]
}

/// The IAID of each IA type (one IA_NA and one IA_PD per client).
pub(crate) fn iaid(ia: IaKind) -> u32 {
    if ia == IaKind::Na { 1 } else { 2 }
}

pub(crate) fn key(id: u32, ia: IaKind) -> ClientKey {
    ClientKey::new(&duid(id), ia, iaid(ia))
}

/// One stored record, and bookkeeping of the simulation that is not protocol state.
#[derive(Debug, Clone, Copy)]
pub(crate) struct Rec {
    pub(crate) lease: LocalLease,
    /// This server made the current ACTIVE binding (granted or renewed it): it expires it.
    pub(crate) mine: bool,
    /// The simulation's write counter at the last change (any kind).
    pub(crate) stamp: u64,
    /// When the last change happened, by its writer's clock: our own changes now, a received
    /// lease its client-last-transaction or start-time-of-state, whichever is later (what
    /// Figure 4 compares; the record itself keeps neither for a received lease).
    pub(crate) changed: u32,
}

/// A received lease as the store committed it (for the "nothing acknowledged lost" check).
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(crate) struct Logged {
    pub(crate) stamp: u64,
    pub(crate) status: BindingStatus,
    pub(crate) client: Option<ClientKey>,
    pub(crate) start: Option<UnixTime>,
    pub(crate) cltt: Option<UnixTime>,
    /// [`Rec::changed`] of the write.
    pub(crate) changed: u32,
}

/// The durable lease store: what was written survives a crash (only `lease_table_lost`
/// wipes it).
pub(crate) struct Store {
    pub(crate) recs: Vec<Rec>,
    /// The last few received leases committed per slot.
    pub(crate) log: Vec<Vec<Logged>>,
}

impl Store {
    pub(crate) fn new(pool: &Pool) -> Store {
        Store {
            recs: (0..pool.len())
                .map(|s| Rec {
                    lease: pool.fresh(s),
                    mine: false,
                    stamp: 0,
                    changed: 0,
                })
                .collect(),
            log: vec![Vec::new(); pool.len()],
        }
    }
}

/// What the store lends the engine: lookups and bindings read at transmit time.
pub(crate) struct View<'a> {
    pub(crate) store: &'a Store,
    pub(crate) pool: Pool,
    /// The server's wall clock now (OPTION_LQ_BASE_TIME).
    pub(crate) wall: UnixTime,
    /// Bindings sent whole, copies of the partner's leases included (the answer to
    /// UPDREQALL); the others carry only the leases this server changed.
    pub(crate) full: &'a BTreeMap<u32, Option<UpdateId>>,
}

impl LeaseLookup6 for View<'_> {
    fn lookup(&self, lease: LeaseAddr) -> Option<LocalLease> {
        self.pool.slot(lease).map(|s| self.store.recs[s].lease)
    }
}

/// The statuses a client's binding carries: bound, or ended and not yet freed (§7.2).
pub(crate) fn in_binding(status: BindingStatus) -> bool {
    matches!(
        status,
        BindingStatus::Active
            | BindingStatus::Expired
            | BindingStatus::Released
            | BindingStatus::Reset
    )
}

/// The leases a client's BNDUPD carries: those of its binding, and one freed since whose
/// FREE / FREE-BACKUP the partner has not acked (`LocalLease::store_ack`, §4.3).
pub(crate) fn in_update(lease: &failover_fsm::v6::LocalLease) -> bool {
    in_binding(lease.status) || !lease.update_sent
}

impl BindingSource6 for View<'_> {
    fn binding<R>(
        &self,
        handle: BindingHandle,
        write: impl FnOnce(&Binding<'_>) -> R,
    ) -> Option<R> {
        let id = handle.0;
        let leases = |ia: IaKind| -> Vec<Lease<'static>> {
            let k = key(id, ia);
            (0..self.pool.len())
                .filter(|s| self.pool.ia(*s) == ia)
                .filter(|s| {
                    let r = &self.store.recs[*s];
                    // Ours, the whole binding, or a change the partner has not had.
                    let ours = r.mine
                        || self.full.contains_key(&id)
                        || !r.lease.update_sent
                        || r.lease.update_partner;
                    ours && r.lease.client == Some(k) && in_update(&r.lease)
                })
                .map(|s| {
                    let l = &self.store.recs[s].lease;
                    let valid = l
                        .state_expiration_time
                        .map_or(0, |t| t.secs_since(self.wall));
                    l.update_lease(self.pool.lease(s), valid / 2, valid, self.wall)
                })
                .collect()
        };
        let na = leases(IaKind::Na);
        let pd = leases(IaKind::Pd);
        fn ia<'a>(kind: IaKind, leases: &'a [Lease<'static>]) -> Ia<'a> {
            Ia {
                kind,
                iaid: iaid(kind),
                t1: 0,
                t2: 0,
                leases: List::from_slice(leases),
                status: None,
                extra: Default::default(),
            }
        }
        let mut ias = Vec::new();
        if !na.is_empty() {
            ias.push(ia(IaKind::Na, &na));
        }
        if !pd.is_empty() {
            ias.push(ia(IaKind::Pd, &pd));
        }
        if ias.is_empty() {
            return None;
        }
        let d = duid(id);
        Some(write(&Binding::Client(ClientData {
            status: None,
            client_id: Some(&d),
            lq_base_time: time::from_unix(u64::from(self.wall.0)),
            vss: None,
            reconfigure: None,
            relay_data: None,
            ias: List::from_slice(&ias),
            extra: Default::default(),
        })))
    }
}

/// One answer of the partner to ours: (update, handle, lease, acked binding-status,
/// partner-lifetime-sent, outcome).
pub(crate) type Answer = (
    UpdateId,
    BindingHandle,
    LeaseAddr,
    Option<BindingStatus>,
    Option<u32>,
    Result<(), Status>,
);

/// Accepted partner leases to commit, and answers to ours to store — both handled right
/// after the message that brought them.
#[derive(Default)]
pub(crate) struct Sink {
    pub(crate) commits: Vec<(CommitToken, LeaseAddr, Option<ClientKey>, Verdict)>,
    pub(crate) answers: Vec<Answer>,
    /// The partner's leases refused as outdated (§7.5.4).
    pub(crate) outdated: Vec<LeaseAddr>,
}

impl UpdateSink6 for Sink {
    fn commit(
        &mut self,
        token: CommitToken,
        binding: &Binding<'_>,
        ia: Option<&Ia<'_>>,
        lease: &Lease<'_>,
        verdict: &Verdict,
    ) {
        let client = ClientKey::of_update(binding, ia);
        self.commits.push((token, lease.addr, client, *verdict));
    }

    fn refused(&mut self, _: &Binding<'_>, _: Option<&Ia<'_>>, lease: &Lease<'_>, status: Status) {
        if status == Status::OutdatedBindingInformation {
            self.outdated.push(lease.addr);
        }
    }

    fn acked(
        &mut self,
        update: UpdateId,
        handle: BindingHandle,
        lease: &Lease<'_>,
        outcome: Result<(), Status>,
    ) {
        self.answers.push((
            update,
            handle,
            lease.addr,
            lease.binding_status,
            lease.partner_lifetime_sent,
            outcome,
        ));
    }
}

/// A server: its engine while it runs, and what survives it.
pub(crate) struct Server {
    pub(crate) role: Role,
    pub(crate) engine: Option<Box<Engine6>>,
    /// This server's clock minus the simulation's, seconds (skew within 5 s, §7.1).
    pub(crate) offset: i64,
    /// The engine's last snapshot (confirmed at once: the store is synchronous).
    pub(crate) persisted: Option<Persisted>,
    pub(crate) store: Store,
    pub(crate) sink: Sink,
    /// The engine asked to close the connection.
    pub(crate) closed: bool,
    /// Bindings whose `send_binding` found the queue full: sent again each step.
    pub(crate) retry: BTreeSet<u32>,
    /// Bindings to send whole until the answer to their last queued version
    /// ([`View::full`]).
    pub(crate) full: BTreeMap<u32, Option<UpdateId>>,
    /// Receives the connection's byte stream.
    pub(crate) framer: Box<Framer<4096>>,
    /// When it comes back from a crash, and whether with its lease table lost.
    pub(crate) restart_at: Option<Instant>,
    pub(crate) crashed_at: Option<Instant>,
    /// The next periodic scan for leases whose partner must be updated (§7.5.4).
    pub(crate) scan_at: Instant,
    pub(crate) wipe_on_restart: bool,
    /// The offset it restarts with (a clock stepped back: the skew fault).
    pub(crate) restart_offset: i64,
    /// Restarted with its lease table lost and not yet refreshed (UPDDONE not received).
    pub(crate) refreshing: bool,
    /// It entered PARTNER-DOWN by the operator and has not been NORMAL with its partner
    /// since: it is not crashed meanwhile (the operator's decision assumes it stays up).
    pub(crate) declared_pd: bool,
}

impl Server {
    pub(crate) fn new(role: Role, offset: i64, pool: &Pool) -> Server {
        Server {
            role,
            engine: None,
            offset,
            persisted: None,
            store: Store::new(pool),
            sink: Sink::default(),
            closed: false,
            retry: BTreeSet::new(),
            full: BTreeMap::new(),
            framer: Box::new(Framer::with_capacity()),
            restart_at: None,
            crashed_at: None,
            scan_at: Instant::ZERO,
            wipe_on_restart: false,
            restart_offset: offset,
            refreshing: false,
            declared_pd: false,
        }
    }

    /// This server's wall clock at `now` (whole seconds).
    pub(crate) fn wall(&self, now: Instant) -> UnixTime {
        let secs = (now.as_millis() / 1000) as i64;
        UnixTime((T0 + self.offset + secs) as u32)
    }

    /// The simulation instant at which this server's clock reads `wall`.
    pub(crate) fn instant_of(&self, wall: UnixTime) -> Instant {
        let secs = i64::from(wall.0) - T0 - self.offset;
        Instant::from_secs(secs.max(0) as u64)
    }

    pub(crate) fn alive(&self) -> bool {
        self.engine.is_some()
    }
}
