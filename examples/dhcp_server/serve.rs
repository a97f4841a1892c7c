//! The lease path: one client message in, at most one reply out. Every failover decision is a
//! library call — `Handle::may_answer`, `policy::choose_address` (through the store's index,
//! `MemoryStore::choose_address`), `policy::judge_request`,
//! `Handle::lease_time`, `LeaseRecord::{granted, released, declined, expired}`,
//! `Handle::send_binding` — in the order a server makes them.

use std::collections::HashMap;
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4};
use std::ops::RangeInclusive;
use std::sync::Arc;
use std::time::{Duration, Instant};

use dhcproto::v4::MessageType;
use failover_fsm::accept::ClientIdentity;
use failover_fsm::policy::{
    ClientMessage, Endpoint, LeaseRequest, LeaseTimes, MessageKind, PartnerDownLeases, PartnerPool,
    RequestAnswer, RequestKind, expires_leases, judge_request,
};
use failover_fsm::{BindingData, Dialect, UnixTime};
use failover_tokio::{Handle, Storage, wall_clock};

use super::offers::Offers;
use super::wire::{BadRequest, ClientKind, ClientRequest, Network, Offered, Pool, parse, reply};
use crate::peer::PeerStore;

/// How long an offered address is kept for the client it was offered to.
pub const OFFER_HOLD: Duration = Duration::from_secs(30);
/// Longest wait for the failover peer to record a binding before the client goes unanswered
/// (the peer's queue waits for room while the partner is away).
pub const RECORD_TIMEOUT: Duration = Duration::from_secs(5);

/// Where DHCP replies go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Ports {
    /// Clients' port (68).
    pub client: u16,
    /// Relay agents' port (67): replies to a relayed message go to giaddr here.
    pub relay: u16,
}

/// What the server counts.
#[derive(Debug, Clone, Copy, Default, PartialEq, Eq)]
pub struct Counters {
    /// Datagrams refused by [`parse`].
    pub bad: u64,
    /// Messages for the partner (load balancing) or not answered in our state.
    pub not_ours: u64,
    /// DISCOVERs without an address to offer.
    pub no_address: u64,
    /// OFFERs sent.
    pub offers: u64,
    /// ACKs sent (leases and INFORMs).
    pub acks: u64,
    /// NAKs sent.
    pub naks: u64,
    /// REQUESTs left unanswered (another server's, or allowed later).
    pub silent: u64,
    /// RELEASEs and DECLINEs recorded.
    pub releases: u64,
    /// Leases expired.
    pub expired: u64,
    /// Bindings the peer did not record (no ACK went out), counted one by one.
    pub record_failures: u64,
}

/// What a client message leads to.
#[derive(Debug)]
pub enum Handled {
    /// Answered at once (or not at all).
    Reply(Option<Outgoing>),
    /// A binding to record first ([`Server::record_later`], then [`Server::recorded`]).
    Record(Recording),
}

/// A binding that must be durable and queued for the partner before its reply goes out
/// (§5.1): while the failover peer records it, the server handles other clients' messages.
#[derive(Debug)]
pub struct Recording {
    address: Ipv4Addr,
    binding: BindingData,
    why: Why,
}

/// What a [`Recording`] is for.
#[derive(Debug)]
enum Why {
    /// A lease: the DHCPACK waits for it.
    Lease(Outgoing),
    /// A RELEASE or DECLINE: nothing is sent.
    Release,
    /// A lease whose time is up ([`Server::begin_expiry`]).
    Expiry,
}

/// [`Recording`]s handed to the failover peer together, and whether it recorded them in
/// time.
#[derive(Debug)]
pub struct Recorded {
    recordings: Vec<Recording>,
    ok: bool,
}

/// A reply to send.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Outgoing {
    /// The datagram.
    pub bytes: Vec<u8>,
    /// Where to.
    pub to: SocketAddr,
}

/// The DHCP server: its network, its failover peer, its store, the offers it made.
pub struct Server {
    handle: Handle,
    store: Arc<PeerStore>,
    dialect: Dialect,
    net: Network,
    /// The pools, when several: each client is served from the pool of its network.
    pools: Vec<Pool>,
    ports: Ports,
    desired: u32,
    offers: Offers,
    /// Addresses whose binding is being recorded, and for whom (nobody's for an expiry): the
    /// store does not show it yet, so nothing else is decided about them meanwhile.
    recording: HashMap<Ipv4Addr, ClientIdentity>,
    /// What happened so far.
    pub counters: Counters,
}

impl std::fmt::Debug for Server {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Server")
            .field("net", &self.net)
            .field("counters", &self.counters)
            .finish_non_exhaustive()
    }
}

impl Server {
    /// A server answering with `net`, granting leases of `desired` seconds at most.
    pub fn new(
        handle: Handle,
        store: Arc<PeerStore>,
        dialect: Dialect,
        net: Network,
        ports: Ports,
        desired: u32,
    ) -> Self {
        Server {
            handle,
            store,
            dialect,
            net,
            pools: Vec::new(),
            ports,
            desired,
            offers: Offers::new(OFFER_HOLD),
            recording: HashMap::new(),
            counters: Counters::default(),
        }
    }

    /// Serves several pools (more than one: each with its subnet mask), each client from the
    /// pool of its network (see `pool_for`); the subnet mask and router of that pool go
    /// in its replies. One pool (or none given) serves every client.
    pub fn with_pools(mut self, pools: Vec<Pool>) -> Self {
        self.pools = pools;
        self
    }

    /// The pool of `req`'s network when there are several: the one holding its ciaddr, else
    /// the one whose subnet holds the relay's giaddr, else our server identifier's (a direct
    /// client is on our network). `Err` when no pool is on that network.
    fn pool_for(&self, req: &ClientRequest) -> Result<Option<&Pool>, ()> {
        if self.pools.len() <= 1 {
            return Ok(self.pools.first());
        }
        let (ciaddr, giaddr) = (req.msg.ciaddr(), req.msg.giaddr());
        let by = |f: &dyn Fn(&Pool) -> bool| self.pools.iter().find(|p| f(p));
        let pool = if !ciaddr.is_unspecified() {
            by(&|p| p.holds(ciaddr)).or_else(|| by(&|p| p.on_network(ciaddr)))
        } else if !giaddr.is_unspecified() {
            by(&|p| p.on_network(giaddr))
        } else {
            by(&|p| p.on_network(self.net.server_id))
        };
        pool.map(Some).ok_or(())
    }

    /// The pool's subnet mask and router, else the server's.
    fn network_for(&self, req: &ClientRequest) -> Network {
        match self.pool_for(req) {
            Ok(Some(p)) => Network {
                subnet_mask: p.subnet_mask.or(self.net.subnet_mask),
                router: p.router.or(self.net.router),
                ..self.net
            },
            _ => self.net,
        }
    }

    fn endpoint(&self) -> Endpoint {
        Endpoint::of(&self.handle.status(), self.dialect)
    }

    /// Handles one datagram and waits for its binding, if any, to be recorded; returns the
    /// reply to send, if any. Never panics on input: what [`parse`] refuses is counted and
    /// dropped. (The server's loop uses [`Server::begin`] instead, so as not to wait.)
    pub async fn handle_datagram(
        &mut self,
        datagram: &[u8],
    ) -> Result<Option<Outgoing>, BadRequest> {
        match self.begin(datagram)? {
            Handled::Reply(r) => Ok(r),
            Handled::Record(r) => {
                let done = self.record_later(vec![r]).await;
                Ok(self.recorded(done).pop())
            }
        }
    }

    /// Handles one datagram up to the binding to record, if any: the decisions are made now,
    /// in the order the messages came; only the wait for durability is left to the caller.
    pub fn begin(&mut self, datagram: &[u8]) -> Result<Handled, BadRequest> {
        let req = match parse(datagram) {
            Ok(r) => r,
            Err(e) => {
                self.counters.bad += 1;
                return Err(e);
            }
        };
        Ok(self.handle_request(&req).unwrap_or(Handled::Reply(None)))
    }

    /// Records the bindings of `recordings` with the failover peer (durable, queued for the
    /// partner) in one request, waiting at most [`RECORD_TIMEOUT`]: the messages of one burst
    /// cost the failover task one command and the server one wake-up, and one sync covers
    /// them (it covers whatever the task recorded before it started). Needs no access to the
    /// server: the caller may run many at once, then hands each result to
    /// [`Server::recorded`].
    pub fn record_later(
        &self,
        recordings: Vec<Recording>,
    ) -> impl std::future::Future<Output = Recorded> + Send + 'static {
        let handle = self.handle.clone();
        async move {
            let bindings = recordings.iter().map(|r| r.binding.clone()).collect();
            let sent = handle.send_bindings(bindings);
            let ok = matches!(tokio::time::timeout(RECORD_TIMEOUT, sent).await, Ok(Ok(())));
            Recorded { recordings, ok }
        }
    }

    /// Bindings are recorded (or not): returns the replies that waited for them, in order.
    pub fn recorded(&mut self, done: Recorded) -> Vec<Outgoing> {
        let Recorded { recordings, ok } = done;
        let mut replies = Vec::new();
        for recording in recordings {
            self.recording.remove(&recording.address);
            if !ok {
                self.counters.record_failures += 1;
                continue;
            }
            match recording.why {
                Why::Lease(ack) => {
                    self.offers.remove(recording.address);
                    self.counters.acks += 1;
                    replies.push(ack);
                }
                Why::Release => self.counters.releases += 1,
                Why::Expiry => self.counters.expired += 1,
            }
        }
        replies
    }

    /// How many bindings are being recorded.
    pub fn recording(&self) -> usize {
        self.recording.len()
    }

    /// Whether a binding of `address` is being recorded: its record in the store is not the
    /// one the client will be told of.
    fn is_recording(&self, address: Option<Ipv4Addr>) -> bool {
        address.is_some_and(|a| self.recording.contains_key(&a))
    }

    fn handle_request(&mut self, req: &ClientRequest) -> Option<Handled> {
        let now = wall_clock();
        let ep = self.endpoint();
        let (kind, address) = match req.kind {
            ClientKind::Discover => (MessageKind::Discover, None),
            ClientKind::Request => {
                let (rk, a) = request_kind(req)?;
                if rk == RequestKind::Selecting && req.server_id != Some(self.net.server_id) {
                    // The client took another server's offer: ours is free again.
                    self.offers.remove_client(&req.lease_client().identity());
                    return None;
                }
                (MessageKind::Request(rk), Some(a))
            }
            ClientKind::Release => (MessageKind::Release, Some(req.msg.ciaddr())),
            ClientKind::Decline => (MessageKind::Decline, req.requested),
            ClientKind::Inform => (MessageKind::Inform, None),
        };
        // 1. Who answers this client (state, RFC 3074 load balancing).
        let msg = ClientMessage {
            kind,
            client_id: req.client_id.as_deref(),
            chaddr: req.chaddr(),
            secs: req.msg.secs(),
        };
        // ISC answers the partner's DISCOVERs too when the partner has no address left.
        let partner_pool = PartnerPool::of(self.store.pool_counts(), ep.role);
        let answer = self.handle.may_answer(&msg, partner_pool);
        if !answer.is_serve() {
            self.counters.not_ours += 1;
            return None;
        }
        // The pool of the client's network (several pools).
        let Ok(pool) = self.pool_for(req).map(|p| p.copied()) else {
            self.counters.no_address += 1;
            return None;
        };
        if self.pools.len() > 1
            && req.kind == ClientKind::Request
            && let (Some(p), Some(a)) = (pool, address)
            && !p.holds(a)
        {
            // An address of another network: the client moved (RFC 2131 §4.3.2).
            self.counters.naks += 1;
            return Some(Handled::Reply(self.send(req, MessageType::Nak, None)));
        }
        let within = pool.map_or(Ipv4Addr::UNSPECIFIED..=Ipv4Addr::BROADCAST, |p| {
            p.first..=p.last
        });
        if self.is_recording(address) {
            // Its binding is on its way to the partner: the client's retry is answered
            // from the record once it is written.
            self.counters.silent += 1;
            return None;
        }
        match req.kind {
            ClientKind::Discover => Some(Handled::Reply(self.discover(req, &ep, now, within))),
            ClientKind::Request => self.request(req, &ep, address?, kind, now),
            ClientKind::Release | ClientKind::Decline => self.release(req, address?, req.kind, now),
            ClientKind::Inform => Some(Handled::Reply(self.send(req, MessageType::Ack, None))),
        }
    }

    fn discover(
        &mut self,
        req: &ClientRequest,
        ep: &Endpoint,
        now: UnixTime,
        within: RangeInclusive<Ipv4Addr>,
    ) -> Option<Outgoing> {
        let me = req.lease_client().identity();
        let clock = Instant::now();
        self.offers.expire(clock);
        let (offers, recording) = (&self.offers, &self.recording);
        // 2. An address the failover state lets us give this client (the store's indexes find
        // what `choose_address` would choose from the whole pool).
        let held_for_another = |a: Ipv4Addr, _: &_| {
            let other = |c: &ClientIdentity| c.same_client(&me) != Some(true);
            offers.client_of(a).is_some_and(other) || recording.get(&a).is_some_and(other)
        };
        let Some(record) = self.store.memory().choose_address_within(
            within,
            ep,
            &me,
            req.requested,
            now,
            held_for_another,
        ) else {
            self.counters.no_address += 1;
            return None;
        };
        let address = record.data.ip();
        // 3. The lease time the MCLT rules allow (what the ACK will grant, if nothing moves).
        let grant = self.handle.lease_time(&LeaseRequest {
            now,
            desired: self.desired,
            times: LeaseTimes::for_client(&record.local, record.holds(&me)),
            partner_down: PartnerDownLeases::KeepMclt,
        });
        self.offers.insert(address, me, clock);
        self.counters.offers += 1;
        self.send(
            req,
            MessageType::Offer,
            Some(Offered {
                address,
                lease_time: grant.granted,
            }),
        )
    }

    fn request(
        &mut self,
        req: &ClientRequest,
        ep: &Endpoint,
        address: Ipv4Addr,
        kind: MessageKind,
        now: UnixTime,
    ) -> Option<Handled> {
        let me = req.lease_client().identity();
        let record = self.store.memory().get(address);
        // 2. What the failover state lets us answer for this address.
        match judge_request(ep, record.as_ref().map(|r| &r.local), &me, now) {
            RequestAnswer::Ack => {}
            RequestAnswer::Nak => {
                self.counters.naks += 1;
                return Some(Handled::Reply(self.send(req, MessageType::Nak, None)));
            }
            RequestAnswer::Silent(_) => {
                self.counters.silent += 1;
                return None;
            }
        }
        let record = record?;
        let verifying = matches!(
            kind,
            MessageKind::Request(RequestKind::InitReboot | RequestKind::Renewing)
        );
        if verifying && !record.holds(&me) {
            // RFC 2131 §4.3.2: a client verifying or extending a lease we have no record of
            // gets no answer (its lease may be the partner's news we have not had yet).
            self.counters.silent += 1;
            return None;
        }
        // 3. The lease time under the MCLT rules.
        let grant = self.handle.lease_time(&LeaseRequest {
            now,
            desired: self.desired,
            times: LeaseTimes::for_client(&record.local, record.holds(&me)),
            partner_down: PartnerDownLeases::KeepMclt,
        });
        // 4. The binding, recorded durably and queued for the partner before the ACK (§5.1).
        let Ok(binding) = record.granted(&req.lease_client(), &grant, now) else {
            self.counters.record_failures += 1;
            return None;
        };
        let ack = self.send(
            req,
            MessageType::Ack,
            Some(Offered {
                address,
                lease_time: grant.granted,
            }),
        )?;
        self.recording.insert(address, me);
        Some(Handled::Record(Recording {
            address,
            binding,
            why: Why::Lease(ack),
        }))
    }

    fn release(
        &mut self,
        req: &ClientRequest,
        address: Ipv4Addr,
        kind: ClientKind,
        now: UnixTime,
    ) -> Option<Handled> {
        let me = req.lease_client().identity();
        let record = self.store.memory().get(address)?;
        let binding = if kind == ClientKind::Decline {
            record.declined(&me, now)
        } else {
            record.released(&me, now)
        }?;
        self.recording.insert(address, me);
        Some(Handled::Record(Recording {
            address,
            binding,
            why: Why::Release,
        }))
    }

    /// Ends the leases whose time is up (EXPIRED, sent to the partner) and waits until that is
    /// recorded. Returns how many. (The server's loop uses [`Server::begin_expiry`] instead,
    /// so as not to wait.)
    pub async fn expire(&mut self) -> usize {
        let Some(ended) = self.begin_expiry() else {
            return 0;
        };
        let n = ended.len();
        let done = self.record_later(ended).await;
        let ok = done.ok;
        self.recorded(done);
        if ok { n } else { 0 }
    }

    /// The leases whose time is up, as EXPIRED bindings to record ([`Server::record_later`],
    /// then [`Server::recorded`]), or `None`. Their addresses count as being recorded
    /// meanwhile: no client is offered or granted one until the expiry is durable, and the
    /// next call does not end them again.
    pub fn begin_expiry(&mut self) -> Option<Vec<Recording>> {
        let now = wall_clock();
        if !expires_leases(&self.endpoint()) {
            return None;
        }
        let recording = &mut self.recording;
        // A lease being renewed is not ended: its renewal is on its way to the store.
        let ended: Vec<Recording> = self
            .store
            .memory()
            .expired(now)
            .into_iter()
            .filter(|b| !recording.contains_key(&b.ip()))
            .map(|binding| Recording {
                address: binding.ip(),
                binding,
                why: Why::Expiry,
            })
            .collect();
        for r in &ended {
            recording.insert(r.address, ClientIdentity::NONE);
        }
        (!ended.is_empty()).then_some(ended)
    }

    fn send(
        &self,
        req: &ClientRequest,
        kind: MessageType,
        lease: Option<Offered>,
    ) -> Option<Outgoing> {
        let bytes = reply(req, kind, lease, &self.network_for(req)).ok()?;
        Some(Outgoing {
            bytes,
            to: destination(req, kind, self.ports),
        })
    }
}

/// The kind of a DHCPREQUEST and the address it is about (RFC 2131 §4.3.2). A renewal and a
/// rebinding look alike but for the destination address; both are served alike (§5.5).
fn request_kind(req: &ClientRequest) -> Option<(RequestKind, Ipv4Addr)> {
    let ciaddr = req.msg.ciaddr();
    match (req.server_id, req.requested) {
        (Some(_), Some(a)) => Some((RequestKind::Selecting, a)),
        (None, Some(a)) if ciaddr.is_unspecified() => Some((RequestKind::InitReboot, a)),
        (None, _) if !ciaddr.is_unspecified() => Some((RequestKind::Renewing, ciaddr)),
        _ => None,
    }
}

/// Where a reply goes (RFC 2131 §4.1): to the relay at giaddr; else to ciaddr when the client
/// has one (not for a NAK); else broadcast (the server sends no unicast to an address the
/// client does not have yet: that needs an ARP entry a UDP socket cannot make).
fn destination(req: &ClientRequest, kind: MessageType, ports: Ports) -> SocketAddr {
    let m = &req.msg;
    let to = if !m.giaddr().is_unspecified() {
        SocketAddrV4::new(m.giaddr(), ports.relay)
    } else if !m.ciaddr().is_unspecified() && kind != MessageType::Nak {
        SocketAddrV4::new(m.ciaddr(), ports.client)
    } else {
        SocketAddrV4::new(Ipv4Addr::BROADCAST, ports.client)
    };
    SocketAddr::V4(to)
}
