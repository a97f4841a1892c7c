//! Properties checked on arbitrary input by the `engine` fuzz target.
//!
//! Plain Rust over failover-fsm, failover-proto, `arbitrary` and std, so that the same file is
//! compiled into the fuzz target (`#[path = "engine_checks.rs"] mod engine_checks;`) and into
//! failover-fsm's replay test `tests/fuzz_engine_corpus.rs`, which runs every committed corpus
//! and artifact file of the target through [`check_engine`].
//!
//! The input is a [`Setup`] (role, dialect, capacities, persisted state, lease database) and
//! then [`Step`]s until the data runs out: the transport's inputs, the DHCP server's commands,
//! time passing, and messages from a partner, built from arbitrary typed values of every
//! message type (emitted with failover-proto), mutated, or raw bytes. A few scripted steps
//! play a well-behaved partner (handshake, acknowledge everything, commit everything) so that
//! short inputs reach the deep states. After every step the harness polls actions, events and
//! messages as the crate documentation prescribes (writing every persist snapshot at once)
//! and checks:
//!
//! * nothing panics, and the engine's outputs run dry (no endless stream of events/messages);
//! * `state()` is a draft state (never `Unknown`) and agrees with the `StateChanged` events;
//! * in flight ≤ the partner's window (`unacked_sent <= partner_max_unacked`), and the queue
//!   counts add up;
//! * every message from `poll_transmit` parses with `Repr::parse`, its length field is its
//!   length, BNDUPD and BNDACK go out only with communications OK, and STATE announces the
//!   current state (or PARTNER-DOWN while NORMAL is held back) that was persisted before
//!   (SHUTDOWN and PAUSED: the state to restart from was);
//! * every `BindingAcked`/`BindingRejected` answers a BNDUPD of ours that is outstanding on this
//!   connection, with that xid, at most once;
//! * every BNDACK accepting a partner's binding follows `binding_committed` of that binding
//!   (nothing durable-less is acknowledged), every rejecting one a rejection;
//! * a live commit token is accepted once, a used or unknown one refused (`UnknownToken`);
//! * `handle_message` is never refused once events are drained; `connection_up` is refused
//!   exactly when a connection is up; `send_binding` fails only on a full queue;
//! * after `handle_timeout(now)` the next deadline is not in the past, and a second round at
//!   the same `now` moves it past `now` (no busy loop).
//!
//! Every violated property panics with a message saying which.
#![allow(
    dead_code,
    unreachable_pub,
    missing_docs,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::net::Ipv4Addr;

use arbitrary::{Arbitrary, Unstructured};
use failover_fsm::accept::LocalBinding;
use failover_fsm::policy::{BalanceTrigger, PoolCounts};
use failover_fsm::{
    Action, BindingData, CommitToken, Commits, Config, Dialect, Engine, EngineError, Event,
    Instant, LeaseLookup, Link, Persisted, UnixTime,
};
use failover_proto::{
    Binding, BindingAck, BindingList, BindingStatus, BndAck, BndUpd, Connect, ConnectAck, Contact,
    Ddns, DdnsFlags, DigestType, Disconnect, ExtraOptions, HardwareAddress, Hba, IpFlags,
    MAX_MESSAGE_LEN, Message, MessageDigest, OptionalMessage, PROTOCOL_VERSION, PoolReq, PoolResp,
    RejectReason, Repr, Role, ServerFlags, ServerState, State, Text, TlsReply, TlsRequest, UpdDone,
    UpdReq, UpdReqAll,
};

/// Most steps run per input (the rest of a longer input is ignored).
pub const MAX_STEPS: usize = 256;
/// The wall clock at the start of every run.
pub const BASE_WALL: u32 = 1_700_000_000;
/// The relationship name of the engine under test.
pub const NAME: &str = "fuzz-pair";
/// The lease database's pool: 192.0.2.0..16 (addresses 16..20 are outside every pool).
const POOL_NET: [u8; 3] = [192, 0, 2];

/// Every draft state, in a fixed order for indexing.
pub const STATES: [ServerState; 12] = [
    ServerState::Startup,
    ServerState::Normal,
    ServerState::CommunicationsInterrupted,
    ServerState::PartnerDown,
    ServerState::PotentialConflict,
    ServerState::Recover,
    ServerState::Paused,
    ServerState::Shutdown,
    ServerState::RecoverDone,
    ServerState::ResolutionInterrupted,
    ServerState::ConflictDone,
    ServerState::RecoverWait,
];

// ----- input encoding -----

/// Writes a value so that `Arbitrary` reads it back: the inverse of the derived decoders, for
/// building seed inputs.
pub trait Enc {
    fn enc(&self, out: &mut Vec<u8>);
}

macro_rules! enc_int {
    ($($t:ty),*) => {
        $(impl Enc for $t {
            fn enc(&self, out: &mut Vec<u8>) {
                out.extend_from_slice(&self.to_le_bytes());
            }
        })*
    };
}
enc_int!(u8, u16, u32, u64, i8, i16, i32);

impl Enc for bool {
    fn enc(&self, out: &mut Vec<u8>) {
        out.push(u8::from(*self));
    }
}

impl<T: Enc> Enc for Option<T> {
    fn enc(&self, out: &mut Vec<u8>) {
        match self {
            None => out.push(0),
            Some(v) => {
                out.push(1);
                v.enc(out);
            }
        }
    }
}

impl<T: Enc, const N: usize> Enc for [T; N] {
    fn enc(&self, out: &mut Vec<u8>) {
        self.iter().for_each(|v| v.enc(out));
    }
}

impl<A: Enc, B: Enc> Enc for (A, B) {
    fn enc(&self, out: &mut Vec<u8>) {
        self.0.enc(out);
        self.1.enc(out);
    }
}

/// The derived enum decoder picks variant `(tag as u64 * count) >> 32`: write the smallest
/// tag that picks `idx`.
fn tag(out: &mut Vec<u8>, idx: usize, count: usize) {
    let (idx, count) = (idx as u64, count as u64);
    let x = (idx << 32).div_ceil(count);
    u32::try_from(x).unwrap().enc(out);
}

/// A struct deriving `Arbitrary`, with its encoder (fields in order).
macro_rules! arb_struct {
    ($(#[$m:meta])* pub struct $name:ident { $( $(#[$fm:meta])* pub $f:ident : $t:ty ),* $(,)? }) => {
        $(#[$m])*
        #[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
        pub struct $name { $( $(#[$fm])* pub $f: $t ),* }

        impl Enc for $name {
            fn enc(&self, out: &mut Vec<u8>) {
                $( self.$f.enc(out); )*
            }
        }
    };
}

/// An enum deriving `Arbitrary` (unit and struct-like variants only), with its encoder.
macro_rules! arb_enum {
    ($(#[$m:meta])* pub enum $name:ident {
        $( $(#[$vm:meta])* $v:ident $( { $( $f:ident : $t:ty ),* $(,)? } )? ),* $(,)?
    }) => {
        $(#[$m])*
        #[derive(Arbitrary, Debug, Clone, PartialEq, Eq)]
        pub enum $name { $( $(#[$vm])* $v $( { $( $f: $t ),* } )? ),* }

        impl Enc for $name {
            fn enc(&self, out: &mut Vec<u8>) {
                const NAMES: &[&str] = &[$(stringify!($v)),*];
                let name = match self { $( $name::$v { .. } => stringify!($v) ),* };
                let idx = NAMES.iter().position(|n| *n == name).unwrap();
                tag(out, idx, NAMES.len());
                match self {
                    $( $name::$v $( { $( $f ),* } )? => { $( $( $f.enc(out); )* )? } ),*
                }
            }
        }
    };
}

/// Up to 255 bytes: a length byte, then that many bytes (fewer if the input ends).
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct Bytes(pub Vec<u8>);

impl<'a> Arbitrary<'a> for Bytes {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let n = usize::from(u8::arbitrary(u)?).min(u.len());
        Ok(Bytes(u.bytes(n)?.to_vec()))
    }
}

impl Enc for Bytes {
    fn enc(&self, out: &mut Vec<u8>) {
        u8::try_from(self.0.len()).unwrap().enc(out);
        out.extend_from_slice(&self.0);
    }
}

/// Up to 2100 bytes (a whole message and then some): a 16-bit length, then the bytes.
#[derive(Debug, Clone, PartialEq, Eq, Default)]
pub struct LongBytes(pub Vec<u8>);

impl<'a> Arbitrary<'a> for LongBytes {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let n = (usize::from(u16::arbitrary(u)?) % 2101).min(u.len());
        Ok(LongBytes(u.bytes(n)?.to_vec()))
    }
}

impl Enc for LongBytes {
    fn enc(&self, out: &mut Vec<u8>) {
        assert!(self.0.len() <= 2100);
        u16::try_from(self.0.len()).unwrap().enc(out);
        out.extend_from_slice(&self.0);
    }
}

/// Up to `N` values: a count byte (mod `N + 1`), then the values.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct List<T, const N: usize>(pub Vec<T>);

impl<'a, T: Arbitrary<'a>, const N: usize> Arbitrary<'a> for List<T, N> {
    fn arbitrary(u: &mut Unstructured<'a>) -> arbitrary::Result<Self> {
        let n = usize::from(u8::arbitrary(u)?) % (N + 1);
        let mut v = Vec::with_capacity(n);
        for _ in 0..n {
            if u.is_empty() {
                break;
            }
            v.push(T::arbitrary(u)?);
        }
        Ok(List(v))
    }
}

impl<T: Enc, const N: usize> Enc for List<T, N> {
    fn enc(&self, out: &mut Vec<u8>) {
        assert!(self.0.len() <= N);
        u8::try_from(self.0.len()).unwrap().enc(out);
        self.0.iter().for_each(|v| v.enc(out));
    }
}

// ----- the input -----

arb_struct! {
    /// The engine under test. Fixed size (36 bytes); all zeros is a brand-new ISC primary with
    /// the defaults of `Config::new`.
    pub struct Setup {
        pub secondary: bool,
        pub draft: bool,
        /// Small capacities (`Engine<8, 4, 32>`) instead of the defaults, to fill the queues.
        pub small: bool,
        /// Call `connection_down` as soon as `Action::CloseConnection` is polled (and the last
        /// messages are sent).
        pub auto_close: bool,
        /// max-unacked-bndupd we advertise (0: 10), capped by the commit capacity.
        pub max_unacked: u8,
        /// Our receive timer (below 3: 20).
        pub receive_timer: u8,
        /// MCLT (0: 3600).
        pub mclt: u16,
        /// 0: no automatic PARTNER-DOWN; else the safe period plus one, seconds.
        pub auto_partner_down: u16,
        /// 0: 15 s; else the delay plus one.
        pub startup_delay: u8,
        /// 0: brand new; else the persisted state, `STATES[(x - 1) % 12]`.
        pub persisted_state: u8,
        /// How long before the start that state was entered, seconds.
        pub persisted_age: u16,
        /// The persisted MCLT (0: none).
        pub persisted_mclt: u16,
        /// How long before the start we were last operational (0: unknown).
        pub last_operational_age: u16,
        /// The lease database: the status of 192.0.2.i (low bits) and whether it is reserved
        /// (bit 7).
        pub db: [u8; 16],
    }
}

arb_enum! {
    /// A server-state value: one of the draft's, or any byte.
    pub enum StateChoice {
        Known { i: u8 },
        Raw { v: u8 },
    }
}

arb_enum! {
    /// An absolute time as the partner sends it.
    pub enum TimeArb {
        /// The partner's clock: our wall clock plus `off` seconds.
        Now { off: i16 },
        Zero,
        Raw { v: u32 },
    }
}

arb_enum! {
    /// A transaction id.
    pub enum XidArb {
        /// A new one from the partner's counter.
        Fresh,
        /// One of the last 32 messages we sent, `k` from the newest.
        Ours { k: u8 },
        /// The xid of one of our BNDUPDs not acknowledged yet.
        Outstanding { k: u8 },
        /// Our last UPDREQ, UPDREQALL or POOLREQ.
        Request,
        Raw { v: u32 },
    }
}

arb_enum! {
    /// An IPv4 address.
    pub enum AddrArb {
        /// 192.0.2.(i % 20): in the pool, or (16..20) outside it.
        Pool { i: u8 },
        /// The address of one of our BNDUPDs not acknowledged yet.
        Outstanding { k: u8 },
        Raw { a: [u8; 4] },
    }
}

arb_enum! {
    /// A relationship name.
    pub enum NameArb {
        Ours,
        Raw { b: Bytes },
    }
}

arb_enum! {
    /// A hash bucket assignment.
    pub enum HbaArb {
        Split { n: u16 },
        Raw { bits: [u8; 32] },
    }
}

arb_struct! {
    /// One option TLV (any code, so possibly one the message models: then it does not parse).
    pub struct Tlv {
        pub code: u16,
        pub data: Bytes,
    }
}

arb_struct! {
    /// What every message has: header time and xid, unmodelled options, a message-digest.
    pub struct Header {
        pub time: TimeArb,
        pub xid: XidArb,
        pub extra: Option<Tlv>,
        pub digest: Option<(u8, Bytes)>,
    }
}

arb_struct! {
    /// One binding of a BNDUPD (also what the DHCP server queues with `send_binding`).
    pub struct BindingArb {
        pub addr: AddrArb,
        /// `BindingStatus::from(x % 7 + 1)`, or `Unknown` from 248 up.
        pub status: u8,
        pub client_id: Option<Bytes>,
        pub hw: Option<(u8, Bytes)>,
        pub lease: Option<TimeArb>,
        pub pet: Option<TimeArb>,
        pub stos: Option<TimeArb>,
        pub cltt: Option<TimeArb>,
        pub ip_flags: Option<u16>,
        pub ddns: Option<(u16, Bytes)>,
        pub request_options: Option<Bytes>,
        pub reply_options: Option<Bytes>,
        pub extra: Option<Tlv>,
    }
}

arb_struct! {
    /// One binding of a BNDACK.
    pub struct AckArb {
        pub addr: AddrArb,
        pub reject: Option<u8>,
        pub message: Option<Bytes>,
        pub extra: Option<Tlv>,
    }
}

arb_struct! {
    pub struct ConnectArb {
        pub h: Header,
        pub name: NameArb,
        pub max_unacked: u32,
        pub receive_timer: u32,
        pub vendor: Bytes,
        pub version: u8,
        pub tls: Option<u8>,
        pub mclt: u32,
        pub hba: HbaArb,
        pub delayed_service: Option<u8>,
        pub vendor_options: Option<Bytes>,
    }
}

arb_struct! {
    pub struct ConnectAckArb {
        pub h: Header,
        pub name: Option<NameArb>,
        pub max_unacked: Option<u32>,
        pub receive_timer: Option<u32>,
        pub vendor: Option<Bytes>,
        pub version: u8,
        pub tls: Option<u8>,
        pub reject: Option<u8>,
        pub message: Option<Bytes>,
        pub vendor_options: Option<Bytes>,
    }
}

arb_struct! {
    pub struct StateArb {
        pub h: Header,
        pub state: StateChoice,
        pub flags: u8,
        pub since: TimeArb,
    }
}

arb_enum! {
    /// A message from the partner, of every type, from typed values.
    pub enum Msg {
        Connect { m: ConnectArb },
        ConnectAck { m: ConnectAckArb },
        State { m: StateArb },
        BndUpd { h: Header, bindings: List<BindingArb, 10> },
        BndAck { h: Header, acks: List<AckArb, 10> },
        UpdReq { h: Header },
        UpdReqAll { h: Header },
        UpdDone { h: Header },
        PoolReq { h: Header },
        PoolResp { h: Header, count: u32 },
        Contact { h: Header },
        Disconnect { h: Header, reason: u8, message: Option<Bytes> },
        /// An optional message type (128 | ty).
        Optional { h: Header, ty: u8 },
    }
}

arb_enum! {
    /// One input to the engine.
    pub enum Step {
        ConnectionUp,
        ConnectionDown,
        /// Time passes (milliseconds), then `handle_timeout`.
        Advance { ms: u16 },
        /// Time passes (seconds), then `handle_timeout`.
        AdvanceSecs { s: u16 },
        /// To the engine's next deadline, then `handle_timeout`.
        ToDeadline,
        /// The wall clock jumps.
        WallJump { s: i16 },
        /// A partner's message from typed values.
        Partner { m: Msg },
        /// The same with up to four bytes overwritten.
        Mutated { m: Msg, edits: List<(u16, u8), 4> },
        /// Raw bytes as one message.
        Raw { b: LongBytes },
        /// Scripted partner: connect if down, CONNECT or CONNECTACK as needed, then STATE.
        Handshake { state: StateChoice, startup: bool, window: u8 },
        /// Scripted partner: BNDACK every outstanding BNDUPD of ours (rejecting with a reason).
        AckAll { reject: Option<u8>, batch: bool },
        /// The DHCP server queues a binding.
        SendBinding { b: BindingArb },
        /// `binding_committed` of the `k`-th pending token.
        Commit { k: u8 },
        /// `binding_commit_failed` of the `k`-th pending token.
        CommitFailed { k: u8, reason: u8 },
        /// `binding_committed` of any token.
        CommitToken { token: u64 },
        /// `binding_committed` of the last token used again.
        CommitAgain,
        /// `binding_committed` of every pending token.
        CommitAll,
        EndOfUpdates,
        PartnerDown,
        Shutdown,
        Pause,
        Disconnect { reason: u8 },
        PoolResponse { n: u32 },
        BalancePools { free: u32, backup: u32, trigger: u8 },
        RequestPoolBalance,
        /// The server restarts with what the engine asked to persist.
        Restart,
    }
}

/// Decodes an input: the setup, then steps until the data ends (at most [`MAX_STEPS`]).
pub fn decode(data: &[u8]) -> (Setup, Vec<Step>) {
    let mut u = Unstructured::new(data);
    // Integers read past the end as zeros, so decoding never fails.
    let setup = Setup::arbitrary(&mut u).expect("setup decodes");
    let mut steps = Vec::new();
    while !u.is_empty() && steps.len() < MAX_STEPS {
        match Step::arbitrary(&mut u) {
            Ok(s) => steps.push(s),
            Err(_) => break,
        }
    }
    (setup, steps)
}

/// Encodes a setup and steps as an input that [`decode`] reads back.
pub fn encode(setup: &Setup, steps: &[Step]) -> Vec<u8> {
    let mut out = Vec::new();
    setup.enc(&mut out);
    steps.iter().for_each(|s| s.enc(&mut out));
    out
}

/// The fuzz target: run an input, checking every property after every step.
pub fn check_engine(data: &[u8]) {
    let (setup, steps) = decode(data);
    run(&setup, &steps);
}

/// What a run did, for tests of the harness itself.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub struct Outcome {
    pub state: ServerState,
    pub partner_state: Option<ServerState>,
    pub link: Link,
    /// Our bindings the partner acknowledged (`BindingAcked`).
    pub acked: usize,
    /// BNDUPDs we sent.
    pub bndupds_sent: usize,
    /// Partner bindings we acknowledged as accepted in a BNDACK.
    pub accepted_sent: usize,
    /// Messages we sent.
    pub messages_sent: usize,
}

/// Runs steps on a fresh engine, checking every property after every step.
pub fn run(setup: &Setup, steps: &[Step]) -> Outcome {
    if setup.small {
        Harness::<8, 4, 32>::new(setup.clone()).run(steps)
    } else {
        Harness::<256, 128, 64>::new(setup.clone()).run(steps)
    }
}

// ----- conversions -----

fn status_of(x: u8) -> BindingStatus {
    if x >= 248 {
        BindingStatus::Unknown(x)
    } else {
        BindingStatus::from(x % 7 + 1)
    }
}

fn state_of(c: &StateChoice) -> ServerState {
    match c {
        StateChoice::Known { i } => STATES[usize::from(*i) % STATES.len()],
        StateChoice::Raw { v } => ServerState::from(*v),
    }
}

fn tlv_bytes(t: &Option<Tlv>) -> Vec<u8> {
    let mut out = Vec::new();
    if let Some(t) = t {
        out.extend_from_slice(&t.code.to_be_bytes());
        out.extend_from_slice(&u16::try_from(t.data.0.len()).unwrap().to_be_bytes());
        out.extend_from_slice(&t.data.0);
    }
    out
}

fn digest_of(d: &Option<(u8, Bytes)>) -> Option<MessageDigest<'_>> {
    d.as_ref().map(|(k, b)| MessageDigest {
        kind: DigestType::from(*k),
        digest: &b.0,
    })
}

fn bytes_of(b: &Option<Bytes>) -> Option<&[u8]> {
    b.as_ref().map(|b| &b.0[..])
}

/// Whether a binding goes out as a BNDUPD that decodes (mandatory options present, lengths
/// valid).
fn sendable(b: &BindingData) -> bool {
    let wire = b.to_wire();
    emit(&Repr::BndUpd(BndUpd::single(BASE_WALL, 1, &wire)))
        .is_some_and(|bytes| Repr::parse(&bytes).is_ok())
}

fn emit(repr: &Repr<'_>) -> Option<Vec<u8>> {
    let mut buf = vec![0u8; repr.buffer_len().max(12)];
    let n = repr.emit(&mut buf).ok()?;
    buf.truncate(n);
    Some(buf)
}

/// What the partner's message builder needs from the harness.
struct Ctx<'h> {
    wall: u32,
    fresh: u32,
    name: &'h [u8],
    sent: &'h [u32],
    outstanding: &'h [Outstanding],
    request: Option<u32>,
}

impl Ctx<'_> {
    fn time(&self, t: &TimeArb) -> u32 {
        match t {
            TimeArb::Now { off } => u32::try_from(
                (i64::from(self.wall) + i64::from(*off)).clamp(0, i64::from(u32::MAX)),
            )
            .unwrap(),
            TimeArb::Zero => 0,
            TimeArb::Raw { v } => *v,
        }
    }

    fn xid(&self, x: &XidArb) -> u32 {
        let pick = |len: usize, k: u8| (len > 0).then(|| len - 1 - usize::from(k) % len);
        match x {
            XidArb::Fresh => self.fresh,
            XidArb::Ours { k } => pick(self.sent.len(), *k).map_or(self.fresh, |i| self.sent[i]),
            XidArb::Outstanding { k } => {
                pick(self.outstanding.len(), *k).map_or(self.fresh, |i| self.outstanding[i].xid)
            }
            XidArb::Request => self.request.unwrap_or(self.fresh),
            XidArb::Raw { v } => *v,
        }
    }

    fn addr(&self, a: &AddrArb) -> Ipv4Addr {
        match a {
            AddrArb::Pool { i } => Ipv4Addr::new(POOL_NET[0], POOL_NET[1], POOL_NET[2], i % 20),
            AddrArb::Outstanding { k } => {
                if self.outstanding.is_empty() {
                    Ipv4Addr::new(POOL_NET[0], POOL_NET[1], POOL_NET[2], 0)
                } else {
                    let o = &self.outstanding[usize::from(*k) % self.outstanding.len()];
                    Ipv4Addr::from(o.address)
                }
            }
            AddrArb::Raw { a } => Ipv4Addr::from(*a),
        }
    }

    fn name<'x>(&'x self, n: &'x NameArb) -> &'x [u8] {
        match n {
            NameArb::Ours => self.name,
            NameArb::Raw { b } => &b.0,
        }
    }

    fn binding<'x>(&'x self, b: &'x BindingArb, extra: &'x [u8]) -> Binding<'x> {
        Binding {
            address: self.addr(&b.addr),
            status: status_of(b.status),
            client_identifier: bytes_of(&b.client_id),
            hardware_address: b.hw.as_ref().map(|(htype, a)| HardwareAddress {
                htype: *htype,
                address: &a.0,
            }),
            lease_expiration_time: b.lease.as_ref().map(|t| self.time(t)),
            potential_expiration_time: b.pet.as_ref().map(|t| self.time(t)),
            start_time_of_state: b.stos.as_ref().map(|t| self.time(t)),
            client_last_transaction_time: b.cltt.as_ref().map(|t| self.time(t)),
            ip_flags: b.ip_flags.map(IpFlags),
            ddns: b.ddns.as_ref().map(|(f, n)| Ddns {
                flags: DdnsFlags(*f),
                fqdn: &n.0,
            }),
            client_request_options: bytes_of(&b.request_options),
            client_reply_options: bytes_of(&b.reply_options),
            extra: ExtraOptions::from_encoded(extra),
        }
    }

    /// The wire bytes of `m`, or `None` if the values cannot be encoded (too long).
    fn build(&self, m: &Msg) -> Option<Vec<u8>> {
        let hdr = |h: &Header| (self.time(&h.time), self.xid(&h.xid));
        match m {
            Msg::Connect { m } => {
                let (time, xid) = hdr(&m.h);
                let extra = tlv_bytes(&m.h.extra);
                let c = Connect {
                    time,
                    xid,
                    relationship_name: Text(self.name(&m.name)),
                    max_unacked_bndupd: m.max_unacked,
                    receive_timer: m.receive_timer,
                    vendor_class: Text(&m.vendor.0),
                    protocol_version: m.version,
                    tls_request: m.tls.map(TlsRequest::from),
                    mclt: m.mclt,
                    hba: match &m.hba {
                        HbaArb::Split { n } => Hba::split(*n),
                        HbaArb::Raw { bits } => Hba(*bits),
                    },
                    delayed_service: m.delayed_service,
                    vendor_options: bytes_of(&m.vendor_options),
                    extra: ExtraOptions::from_encoded(&extra),
                    digest: digest_of(&m.h.digest),
                };
                emit(&Repr::Connect(c))
            }
            Msg::ConnectAck { m } => {
                let (time, xid) = hdr(&m.h);
                let extra = tlv_bytes(&m.h.extra);
                let a = ConnectAck {
                    time,
                    xid,
                    relationship_name: m.name.as_ref().map(|n| Text(self.name(n))),
                    max_unacked_bndupd: m.max_unacked,
                    receive_timer: m.receive_timer,
                    vendor_class: m.vendor.as_ref().map(|v| Text(&v.0)),
                    protocol_version: m.version,
                    tls_reply: m.tls.map(TlsReply::from),
                    reject_reason: m.reject.map(RejectReason::from),
                    message: m.message.as_ref().map(|v| Text(&v.0)),
                    vendor_options: bytes_of(&m.vendor_options),
                    extra: ExtraOptions::from_encoded(&extra),
                    digest: digest_of(&m.h.digest),
                };
                emit(&Repr::ConnectAck(a))
            }
            Msg::State { m } => {
                let (time, xid) = hdr(&m.h);
                let extra = tlv_bytes(&m.h.extra);
                emit(&Repr::State(State {
                    time,
                    xid,
                    server_state: state_of(&m.state),
                    server_flags: ServerFlags(m.flags),
                    start_time_of_state: self.time(&m.since),
                    extra: ExtraOptions::from_encoded(&extra),
                    digest: digest_of(&m.h.digest),
                }))
            }
            Msg::BndUpd { h, bindings } => {
                let (time, xid) = hdr(h);
                let extras: Vec<Vec<u8>> = bindings.0.iter().map(|b| tlv_bytes(&b.extra)).collect();
                let list: Vec<Binding<'_>> = bindings
                    .0
                    .iter()
                    .zip(&extras)
                    .map(|(b, e)| self.binding(b, e))
                    .collect();
                let extra = tlv_bytes(&h.extra);
                emit(&Repr::BndUpd(BndUpd {
                    time,
                    xid,
                    bindings: BindingList::from_slice(&list),
                    extra: ExtraOptions::from_encoded(&extra),
                    digest: digest_of(&h.digest),
                }))
            }
            Msg::BndAck { h, acks } => {
                let (time, xid) = hdr(h);
                let extras: Vec<Vec<u8>> = acks.0.iter().map(|a| tlv_bytes(&a.extra)).collect();
                let list: Vec<BindingAck<'_>> = acks
                    .0
                    .iter()
                    .zip(&extras)
                    .map(|(a, e)| BindingAck {
                        address: self.addr(&a.addr),
                        reject_reason: a.reject.map(RejectReason::from),
                        message: a.message.as_ref().map(|m| Text(&m.0)),
                        extra: ExtraOptions::from_encoded(e),
                    })
                    .collect();
                let extra = tlv_bytes(&h.extra);
                emit(&Repr::BndAck(BndAck {
                    time,
                    xid,
                    acks: BindingList::from_slice(&list),
                    extra: ExtraOptions::from_encoded(&extra),
                    digest: digest_of(&h.digest),
                }))
            }
            Msg::UpdReq { h }
            | Msg::UpdReqAll { h }
            | Msg::UpdDone { h }
            | Msg::PoolReq { h }
            | Msg::Contact { h } => {
                let (time, xid) = hdr(h);
                let extra = tlv_bytes(&h.extra);
                let extra = ExtraOptions::from_encoded(&extra);
                let digest = digest_of(&h.digest);
                emit(&match m {
                    Msg::UpdReq { .. } => Repr::UpdReq(UpdReq {
                        time,
                        xid,
                        extra,
                        digest,
                    }),
                    Msg::UpdReqAll { .. } => Repr::UpdReqAll(UpdReqAll {
                        time,
                        xid,
                        extra,
                        digest,
                    }),
                    Msg::UpdDone { .. } => Repr::UpdDone(UpdDone {
                        time,
                        xid,
                        extra,
                        digest,
                    }),
                    Msg::PoolReq { .. } => Repr::PoolReq(PoolReq {
                        time,
                        xid,
                        extra,
                        digest,
                    }),
                    _ => Repr::Contact(Contact {
                        time,
                        xid,
                        extra,
                        digest,
                    }),
                })
            }
            Msg::PoolResp { h, count } => {
                let (time, xid) = hdr(h);
                let extra = tlv_bytes(&h.extra);
                emit(&Repr::PoolResp(PoolResp {
                    time,
                    xid,
                    addresses_transferred: *count,
                    extra: ExtraOptions::from_encoded(&extra),
                    digest: digest_of(&h.digest),
                }))
            }
            Msg::Disconnect { h, reason, message } => {
                let (time, xid) = hdr(h);
                let extra = tlv_bytes(&h.extra);
                emit(&Repr::Disconnect(Disconnect {
                    time,
                    xid,
                    reject_reason: RejectReason::from(*reason),
                    message: message.as_ref().map(|m| Text(&m.0)),
                    extra: ExtraOptions::from_encoded(&extra),
                    digest: digest_of(&h.digest),
                }))
            }
            Msg::Optional { h, ty } => {
                let (time, xid) = hdr(h);
                let extra = tlv_bytes(&h.extra);
                emit(&Repr::Optional(OptionalMessage {
                    msg_type: 128 | ty,
                    time,
                    xid,
                    options: ExtraOptions::from_encoded(&extra),
                }))
            }
        }
    }
}

// ----- the harness -----

/// The lease database: 192.0.2.0..16 with statuses from the setup.
struct Db([u8; 16]);

impl LeaseLookup for Db {
    fn lookup(&self, address: Ipv4Addr) -> Option<LocalBinding> {
        let o = address.octets();
        if o[..3] != POOL_NET || o[3] >= 16 {
            return None;
        }
        let x = self.0[usize::from(o[3])];
        let mut local = LocalBinding::new(status_of(x & 0x7f));
        local.reserved = x & 0x80 != 0;
        Some(local)
    }
}

/// One binding of a BNDUPD of ours, sent on the current connection and not answered yet.
#[derive(Debug, Clone, Copy)]
struct Outstanding {
    xid: u32,
    address: [u8; 4],
    status: BindingStatus,
}

struct Harness<const Q: usize, const C: usize, const E: usize> {
    setup: Setup,
    engine: Engine<Q, C, E>,
    db: Db,
    name: Vec<u8>,
    now: Instant,
    wall_offset: i64,
    partner_xid: u32,
    restarts: u32,
    // What the engine asked to persist (for restarts).
    persisted: Option<Persisted>,
    persisted_mclt: Option<u32>,
    persisted_last_operational: Option<UnixTime>,
    persisted_lost: bool,
    /// Every state persisted since the engine started (STATE may announce only these).
    ever_persisted: Vec<ServerState>,
    /// The state according to the `StateChanged` events.
    tracked_state: ServerState,
    close_requested: bool,
    /// The xid of the message being handled, while its events are polled.
    fed_xid: Option<u32>,
    // The current connection.
    outstanding: Vec<Outstanding>,
    /// Our bindings as queued, the newest of each address: what the engine reads when it sends.
    queued: Vec<BindingData>,
    /// Live commit tokens: (token, xid of the BNDUPD, address).
    pending: Vec<(u64, u32, [u8; 4])>,
    last_used_token: Option<u64>,
    last_token: u64,
    /// Partner bindings committed / rejected and not yet answered in a BNDACK: (xid, address).
    committed: Vec<(u32, [u8; 4])>,
    rejected: Vec<(u32, [u8; 4])>,
    /// The xids of the last 32 messages we sent.
    sent: Vec<u32>,
    last_request: Option<u32>,
    outcome: Outcome,
}

impl<const Q: usize, const C: usize, const E: usize> Harness<Q, C, E> {
    fn config(setup: &Setup) -> Config {
        let role = if setup.secondary {
            Role::Secondary
        } else {
            Role::Primary
        };
        let mclt = if setup.mclt == 0 {
            3600
        } else {
            u32::from(setup.mclt)
        };
        let mut c = Config::new(role, NAME, mclt);
        c.dialect = if setup.draft {
            Dialect::Draft
        } else {
            Dialect::Isc
        };
        let cap = u32::try_from(C).unwrap();
        c.max_unacked_bndupd = match setup.max_unacked {
            0 => 10.min(cap),
            n => u32::from(n).min(cap),
        };
        if setup.receive_timer >= 3 {
            c.receive_timer = u32::from(setup.receive_timer);
        }
        c.auto_partner_down = setup.auto_partner_down.checked_sub(1).map(u32::from);
        if let Some(d) = setup.startup_delay.checked_sub(1) {
            c.startup_delay = u32::from(d);
        }
        c
    }

    fn initial_persisted(setup: &Setup) -> Option<Persisted> {
        let i = usize::from(setup.persisted_state.checked_sub(1)?) % STATES.len();
        Some(Persisted {
            state: STATES[i],
            since: UnixTime(BASE_WALL).minus(u32::from(setup.persisted_age)),
            mclt: (setup.persisted_mclt != 0).then_some(u32::from(setup.persisted_mclt)),
            last_operational: (setup.last_operational_age != 0)
                .then(|| UnixTime(BASE_WALL).minus(u32::from(setup.last_operational_age))),
            lease_table_lost: false,
        })
    }

    fn new(setup: Setup) -> Self {
        let persisted = Self::initial_persisted(&setup);
        let mut engine = Engine::new(
            Self::config(&setup),
            persisted,
            Instant::ZERO,
            UnixTime(BASE_WALL),
            1,
        )
        .unwrap_or_else(|e| panic!("Engine::new refused a valid configuration: {e}"));
        // Without persisted state the age means nothing: an odd one says the lease table was
        // lost or restored from an older copy.
        if persisted.is_none() && setup.persisted_age % 2 == 1 {
            engine.lease_table_lost();
        }
        let name = engine.config().relationship_name.to_vec();
        Harness {
            db: Db(setup.db),
            setup,
            engine,
            name,
            now: Instant::ZERO,
            wall_offset: 0,
            partner_xid: 1000,
            restarts: 0,
            persisted_mclt: persisted.and_then(|p| p.mclt),
            persisted_last_operational: persisted.and_then(|p| p.last_operational),
            persisted_lost: false,
            ever_persisted: persisted.iter().map(|p| p.state).collect(),
            persisted,
            tracked_state: ServerState::Startup,
            close_requested: false,
            fed_xid: None,
            outstanding: Vec::new(),
            queued: Vec::new(),
            pending: Vec::new(),
            last_used_token: None,
            last_token: 0,
            committed: Vec::new(),
            rejected: Vec::new(),
            sent: Vec::new(),
            last_request: None,
            outcome: Outcome {
                state: ServerState::Startup,
                partner_state: None,
                link: Link::Down,
                acked: 0,
                bndupds_sent: 0,
                accepted_sent: 0,
                messages_sent: 0,
            },
        }
    }

    fn run(mut self, steps: &[Step]) -> Outcome {
        self.serve();
        self.check_invariants();
        for step in steps {
            self.step(step);
            self.serve();
            self.check_invariants();
        }
        self.outcome.state = self.engine.state();
        self.outcome.partner_state = self.engine.partner_state();
        self.outcome.link = self.engine.link();
        self.outcome
    }

    fn wall(&self) -> UnixTime {
        let secs = i64::try_from(self.now.as_millis() / 1000).unwrap_or(i64::MAX);
        let w = (i64::from(BASE_WALL) + secs + self.wall_offset).clamp(0, i64::from(u32::MAX));
        UnixTime(u32::try_from(w).unwrap())
    }

    fn ctx(&mut self) -> Ctx<'_> {
        self.partner_xid = self.partner_xid.wrapping_add(1);
        Ctx {
            wall: self.wall().0,
            fresh: self.partner_xid,
            name: &self.name,
            sent: &self.sent,
            outstanding: &self.outstanding,
            request: self.last_request,
        }
    }

    fn step(&mut self, step: &Step) {
        let now = self.now;
        match step {
            Step::ConnectionUp => self.connection_up(),
            Step::ConnectionDown => self.connection_down(),
            Step::Advance { ms } => self.advance(u64::from(*ms)),
            Step::AdvanceSecs { s } => self.advance(u64::from(*s) * 1000),
            Step::ToDeadline => {
                let to = self
                    .engine
                    .poll_timeout()
                    .map_or(0, |t| t.as_millis().saturating_sub(self.now.as_millis()));
                self.advance(to);
            }
            Step::WallJump { s } => {
                self.wall_offset = (self.wall_offset + i64::from(*s)).clamp(-(1 << 31), 1 << 31);
            }
            Step::Partner { m } => {
                if let Some(bytes) = self.ctx().build(m) {
                    self.feed(&bytes);
                }
            }
            Step::Mutated { m, edits } => {
                if let Some(mut bytes) = self.ctx().build(m) {
                    for (pos, value) in &edits.0 {
                        let i = usize::from(*pos) % bytes.len();
                        bytes[i] = *value;
                    }
                    self.feed(&bytes);
                }
            }
            Step::Raw { b } => self.feed(&b.0),
            Step::Handshake {
                state,
                startup,
                window,
            } => self.handshake(state_of(state), *startup, *window),
            Step::AckAll { reject, batch } => self.ack_all(reject.map(RejectReason::from), *batch),
            Step::SendBinding { b } => {
                let ctx = self.ctx();
                let extra = tlv_bytes(&b.extra);
                let Ok(data) = BindingData::from_wire(&ctx.binding(b, &extra)) else {
                    return;
                };
                // The engine sends what it is given: a binding the codec would refuse to decode
                // (ACTIVE without a hardware address, say) goes out as an invalid BNDUPD. That
                // is the caller's mistake, so only valid bindings are queued.
                if !sendable(&data) {
                    return;
                }
                match self.engine.send_binding(&data) {
                    Ok(_) => {
                        self.queued.retain(|q| q.address != data.address);
                        self.queued.push(data);
                    }
                    Err(EngineError::QueueFull) => assert_eq!(
                        self.engine.send_queue_space(),
                        0,
                        "send_binding: QueueFull with room in the queue"
                    ),
                    Err(e) => panic!("send_binding failed: {e}"),
                }
            }
            Step::Commit { k } => {
                if !self.pending.is_empty() {
                    let i = usize::from(*k) % self.pending.len();
                    self.commit(i, None);
                }
            }
            Step::CommitFailed { k, reason } => {
                if !self.pending.is_empty() {
                    let i = usize::from(*k) % self.pending.len();
                    self.commit(i, Some(RejectReason::from(*reason)));
                }
            }
            Step::CommitToken { token } => self.commit_token(*token),
            Step::CommitAgain => {
                if let Some(t) = self.last_used_token {
                    self.commit_token(t);
                }
            }
            Step::CommitAll => {
                while !self.pending.is_empty() {
                    self.commit(0, None);
                }
            }
            Step::EndOfUpdates => self.engine.end_of_updates(),
            Step::PartnerDown => {
                let _ = self.engine.partner_down(now, true);
            }
            Step::Shutdown => self.engine.shutdown(now),
            Step::Pause => self.engine.pause(now),
            Step::Disconnect { reason } => self.engine.disconnect(now, RejectReason::from(*reason)),
            Step::PoolResponse { n } => self.engine.pool_response(*n),
            Step::BalancePools {
                free,
                backup,
                trigger,
            } => {
                let trigger = [
                    BalanceTrigger::Timer,
                    BalanceTrigger::PoolReq,
                    BalanceTrigger::Manual,
                ][usize::from(*trigger) % 3];
                let counts = PoolCounts {
                    free: *free,
                    backup: *backup,
                };
                let _ = self.engine.balance_pools(counts, trigger);
            }
            Step::RequestPoolBalance => self.engine.request_pool_balance(),
            Step::Restart => self.restart(),
        }
    }

    // ----- inputs -----

    fn connection_up(&mut self) {
        let before = self.engine.link();
        let r = self.engine.connection_up(self.now);
        if before == Link::Down {
            assert_eq!(r, Ok(()), "connection_up refused with no connection");
            self.new_connection();
        } else {
            assert_eq!(
                r,
                Err(EngineError::AlreadyConnected),
                "connection_up accepted while {before:?}"
            );
        }
    }

    fn connection_down(&mut self) {
        self.engine.connection_down(self.now);
        assert_eq!(self.engine.link(), Link::Down);
        self.new_connection();
    }

    /// Forgets what belonged to the previous connection.
    fn new_connection(&mut self) {
        self.outstanding.clear();
        self.pending.clear();
        self.committed.clear();
        self.rejected.clear();
        self.last_request = None;
    }

    fn advance(&mut self, millis: u64) {
        self.now = Instant::from_millis(self.now.as_millis().saturating_add(millis));
        let now = self.now;
        self.engine.handle_timeout(now);
        self.serve();
        if let Some(t) = self.engine.poll_timeout() {
            assert!(
                t >= now,
                "poll_timeout {t:?} is in the past after handle_timeout({now:?})"
            );
        }
        // A deadline at `now` is due: handling it once more must move it on.
        if self.engine.poll_timeout().is_some_and(|t| t <= now) {
            self.engine.handle_timeout(now);
            self.serve();
            self.check_invariants();
            if let Some(t) = self.engine.poll_timeout() {
                assert!(
                    t > now,
                    "handle_timeout({now:?}) twice leaves the deadline at {t:?}: a caller would spin"
                );
            }
        }
    }

    /// One message from the partner.
    fn feed(&mut self, bytes: &[u8]) {
        let mut commits = Commits::new();
        let r = self
            .engine
            .handle_message(self.now, self.wall(), bytes, &self.db, &mut commits);
        assert_eq!(r, Ok(()), "handle_message refused with no event pending");
        let xid = Message::new_unchecked(bytes).xid();
        while let Some(c) = commits.pop() {
            assert!(
                c.token.0 > self.last_token,
                "commit token {} given after {}",
                c.token.0,
                self.last_token
            );
            self.last_token = c.token.0;
            self.pending.push((c.token.0, xid, c.binding.address));
        }
        self.fed_xid = Some(xid);
        self.drain_events();
        self.fed_xid = None;
        self.serve();
    }

    fn handshake(&mut self, state: ServerState, startup: bool, window: u8) {
        if self.engine.link() == Link::Down {
            self.connection_up();
            self.serve();
        }
        let wall = self.wall().0;
        let window = u32::from(window.max(1));
        let name = self.name.clone();
        let mclt = if self.setup.mclt == 0 {
            3600
        } else {
            u32::from(self.setup.mclt)
        };
        self.partner_xid = self.partner_xid.wrapping_add(1);
        let xid = self.partner_xid;
        let vendor = Text(b"fuzz-partner");
        match self.engine.link() {
            Link::AwaitingConnect => {
                let c = Connect {
                    time: wall,
                    xid,
                    relationship_name: Text(&name),
                    max_unacked_bndupd: window,
                    receive_timer: 20,
                    vendor_class: vendor,
                    protocol_version: PROTOCOL_VERSION,
                    tls_request: Some(TlsRequest::NoTls),
                    mclt,
                    hba: Hba::split(128),
                    ..Connect::default()
                };
                self.feed(&emit(&Repr::Connect(c)).unwrap());
            }
            Link::AwaitingConnectAck => {
                let a = ConnectAck {
                    time: wall,
                    xid: self.sent.last().copied().unwrap_or(xid),
                    relationship_name: Some(Text(&name)),
                    max_unacked_bndupd: Some(window),
                    receive_timer: Some(20),
                    vendor_class: Some(vendor),
                    protocol_version: PROTOCOL_VERSION,
                    tls_reply: Some(TlsReply::NoTls),
                    ..ConnectAck::default()
                };
                self.feed(&emit(&Repr::ConnectAck(a)).unwrap());
            }
            _ => {}
        }
        if matches!(self.engine.link(), Link::AwaitingState | Link::Up) {
            let s = State {
                time: wall,
                xid: xid.wrapping_add(1),
                server_state: state,
                server_flags: if startup {
                    ServerFlags::STARTUP
                } else {
                    ServerFlags::EMPTY
                },
                start_time_of_state: wall,
                extra: ExtraOptions::EMPTY,
                digest: None,
            };
            self.feed(&emit(&Repr::State(s)).unwrap());
        }
    }

    fn ack_all(&mut self, reject: Option<RejectReason>, batch: bool) {
        let wall = self.wall().0;
        let mut groups: Vec<(u32, Vec<Ipv4Addr>)> = Vec::new();
        for o in &self.outstanding {
            match groups.iter_mut().find(|g| batch && g.0 == o.xid) {
                Some(g) => g.1.push(Ipv4Addr::from(o.address)),
                None => groups.push((o.xid, vec![Ipv4Addr::from(o.address)])),
            }
        }
        for (xid, addresses) in groups {
            let acks: Vec<BindingAck<'_>> = addresses
                .iter()
                .map(|a| BindingAck {
                    reject_reason: reject,
                    ..BindingAck::accept(*a)
                })
                .collect();
            let msg = BndAck {
                time: wall,
                xid,
                acks: BindingList::from_slice(&acks),
                extra: ExtraOptions::EMPTY,
                digest: None,
            };
            self.feed(&emit(&Repr::BndAck(msg)).unwrap());
        }
    }

    /// Resolves the `i`-th pending token: committed (`None`) or failed with a reason.
    fn commit(&mut self, i: usize, failed: Option<RejectReason>) {
        let (token, xid, address) = self.pending.remove(i);
        let r = match failed {
            None => self.engine.binding_committed(CommitToken(token)),
            Some(reason) => self
                .engine
                .binding_commit_failed(CommitToken(token), reason),
        };
        assert_eq!(r, Ok(()), "live commit token {token} refused");
        self.last_used_token = Some(token);
        match failed {
            None => self.committed.push((xid, address)),
            Some(_) => self.rejected.push((xid, address)),
        }
        self.serve();
    }

    fn commit_token(&mut self, token: u64) {
        match self.pending.iter().position(|p| p.0 == token) {
            Some(i) => self.commit(i, None),
            None => assert_eq!(
                self.engine.binding_committed(CommitToken(token)),
                Err(EngineError::UnknownToken),
                "token {token} (used, dead or never given) accepted"
            ),
        }
    }

    fn restart(&mut self) {
        let persisted = self.persisted.map(|p| Persisted {
            mclt: self.persisted_mclt,
            last_operational: self.persisted_last_operational,
            lease_table_lost: self.persisted_lost,
            ..p
        });
        self.restarts += 1;
        self.engine = Engine::new(
            Self::config(&self.setup),
            persisted,
            self.now,
            self.wall(),
            self.restarts.wrapping_mul(7919),
        )
        .unwrap_or_else(|e| panic!("Engine::new refused a valid configuration: {e}"));
        // A refresh cut short before any state was saved is asked for again.
        if persisted.is_none() && self.persisted_lost {
            self.engine.lease_table_lost();
        }
        self.ever_persisted = persisted.iter().map(|p| p.state).collect();
        self.tracked_state = ServerState::Startup;
        self.close_requested = false;
        self.last_token = 0;
        self.last_used_token = None;
        self.sent.clear();
        self.new_connection();
    }

    // ----- outputs -----

    /// Polls events and messages until both run dry, as the crate documentation prescribes.
    fn serve(&mut self) {
        let mut buf = [0u8; MAX_MESSAGE_LEN];
        let mut messages = 0usize;
        for round in 0.. {
            assert!(round < 64, "events and messages never run dry");
            let mut progress = self.drain_events();
            while let Some(n) = self
                .engine
                .poll_transmit(self.now, &mut buf, &self.queued[..])
            {
                assert!(n <= buf.len(), "poll_transmit says {n} bytes");
                self.on_transmit(&buf[..n]);
                progress = true;
                messages += 1;
                assert!(messages < 4 * Q + 1000, "poll_transmit never runs dry");
            }
            if self.close_requested {
                self.close_requested = false;
                if self.setup.auto_close {
                    self.connection_down();
                    progress = true;
                }
            }
            if !progress {
                break;
            }
        }
    }

    fn drain_events(&mut self) -> bool {
        let mut any = false;
        while let Some(a) = self.engine.poll_action() {
            any = true;
            self.on_action(a);
        }
        while let Some(e) = self.engine.poll_event() {
            any = true;
            self.on_event(e);
        }
        any
    }

    fn on_action(&mut self, a: Action) {
        match a {
            Action::Persist { token, snapshot } => {
                let state = snapshot.state;
                assert!(
                    STATES.contains(&state),
                    "asked to persist a non-draft state {state:?}"
                );
                self.persisted = Some(snapshot);
                self.persisted_mclt = snapshot.mclt;
                self.persisted_last_operational = snapshot.last_operational;
                self.persisted_lost = snapshot.lease_table_lost;
                if !self.ever_persisted.contains(&state) {
                    self.ever_persisted.push(state);
                }
                assert_eq!(
                    self.engine.persist_complete(token),
                    Ok(()),
                    "persist token refused"
                );
                assert_eq!(
                    self.engine.persist_complete(token),
                    Err(EngineError::UnknownToken),
                    "persist token accepted twice"
                );
            }
            Action::CloseConnection => self.close_requested = true,
            Action::BindingAcked {
                address,
                status,
                xid,
                ..
            } => {
                assert_eq!(Some(xid), self.fed_xid, "BindingAcked with another xid");
                let o = self.answered(address);
                assert_eq!(
                    o.status, status,
                    "BindingAcked with another status than sent"
                );
                self.outcome.acked += 1;
            }
            Action::BindingRejected { address, xid, .. } => {
                assert_eq!(Some(xid), self.fed_xid, "BindingRejected with another xid");
                self.answered(address);
            }
            _ => {}
        }
    }

    fn on_event(&mut self, e: Event) {
        match e {
            Event::StateChanged { from, to } => {
                assert_eq!(
                    from, self.tracked_state,
                    "StateChanged from {from:?}, but the last change was to {:?}",
                    self.tracked_state
                );
                assert!(STATES.contains(&to), "changed to a non-draft state {to:?}");
                self.tracked_state = to;
            }
            Event::PersistFailed { .. } => panic!("PersistFailed without a failed write"),
            Event::RejectedPartnerBinding { address, .. } => {
                let xid = self
                    .fed_xid
                    .expect("RejectedPartnerBinding without a BNDUPD being handled");
                self.rejected.push((xid, address));
            }
            _ => {}
        }
    }

    /// The partner's BNDACK being handled answered `address`: it must be outstanding with
    /// that xid; it is not any more.
    fn answered(&mut self, address: [u8; 4]) -> Outstanding {
        let xid = self
            .fed_xid
            .expect("BindingAcked/BindingRejected without a BNDACK being handled");
        let i = self
            .outstanding
            .iter()
            .position(|o| o.xid == xid && o.address == address)
            .unwrap_or_else(|| {
                panic!(
                    "BNDACK xid {xid} answered {address:?}, which is not outstanding with that xid \
                     (answered twice, or never sent): {:?}",
                    self.outstanding
                )
            });
        self.outstanding.remove(i)
    }

    fn on_transmit(&mut self, bytes: &[u8]) {
        let repr = Repr::parse(bytes).unwrap_or_else(|e| {
            panic!("the engine sent a message that does not parse: {e}: {bytes:02x?}")
        });
        let msg = Message::new_checked(bytes).expect("parsed, so the header is valid");
        assert_eq!(
            usize::from(msg.length()),
            bytes.len(),
            "poll_transmit length differs from the length field"
        );
        let link = self.engine.link();
        assert_ne!(link, Link::Down, "sent a message with no connection");
        self.outcome.messages_sent += 1;
        let xid = repr.xid();
        if self.sent.len() == 32 {
            self.sent.remove(0);
        }
        self.sent.push(xid);
        match repr {
            Repr::BndUpd(u) => {
                assert_eq!(link, Link::Up, "BNDUPD sent before communications are OK");
                for b in u.bindings.iter() {
                    self.outstanding.push(Outstanding {
                        xid,
                        address: b.address.octets(),
                        status: b.status,
                    });
                }
                self.outcome.bndupds_sent += 1;
                let s = self.engine.status(self.now);
                assert!(
                    s.unacked_sent <= usize::try_from(s.partner_max_unacked).unwrap(),
                    "{} BNDUPDs in flight, the partner's window is {}",
                    s.unacked_sent,
                    s.partner_max_unacked
                );
            }
            Repr::BndAck(a) => {
                assert_eq!(link, Link::Up, "BNDACK sent before communications are OK");
                for ack in a.acks.iter() {
                    let key = (xid, ack.address.octets());
                    let accepted = ack.reject_reason.is_none();
                    let list = if accepted {
                        &mut self.committed
                    } else {
                        &mut self.rejected
                    };
                    let Some(i) = list.iter().position(|k| *k == key) else {
                        panic!(
                            "BNDACK xid {xid} {} {} with no {} of it",
                            if accepted { "accepts" } else { "rejects" },
                            ack.address,
                            if accepted { "commit" } else { "rejection" },
                        );
                    };
                    list.remove(i);
                    if accepted {
                        self.outcome.accepted_sent += 1;
                    }
                }
            }
            Repr::State(s) if !s.server_flags.contains(ServerFlags::STARTUP) => {
                let ours = self.engine.state();
                let announced = s.server_state;
                assert!(
                    announced == ours
                        || (announced == ServerState::PartnerDown && ours == ServerState::Normal),
                    "STATE announces {announced:?} in {ours:?}"
                );
                // Leaving PARTNER-DOWN, the engine keeps PARTNER-DOWN persisted until the
                // partner has everything (`PdHold`): then it may announce NORMAL or
                // COMMUNICATIONS-INTERRUPTED on top of it.
                let held = matches!(
                    announced,
                    ServerState::Normal | ServerState::CommunicationsInterrupted
                ) && self.persisted.map(|p| p.state) == Some(ServerState::PartnerDown);
                // SHUTDOWN and PAUSED persist the state to restart from instead (§9.13.1,
                // §9.14.1).
                let stop = matches!(announced, ServerState::Shutdown | ServerState::Paused);
                assert!(
                    self.ever_persisted.contains(&announced) || held || stop,
                    "STATE announces {announced:?}, never persisted ({:?})",
                    self.ever_persisted
                );
            }
            Repr::UpdReq(_) | Repr::UpdReqAll(_) | Repr::PoolReq(_) => {
                self.last_request = Some(xid);
            }
            _ => {}
        }
    }

    fn check_invariants(&self) {
        let e = &self.engine;
        let state = e.state();
        assert!(STATES.contains(&state), "state() is {state:?}");
        assert_eq!(
            state, self.tracked_state,
            "state() differs from the StateChanged events"
        );
        let s = e.status(self.now);
        assert_eq!(s.state, state);
        assert_eq!(s.link, e.link());
        // The waits use the larger of the agreed MCLT and one leases may still run under;
        // grants never exceed the agreed one.
        assert!(
            s.mclt >= e.mclt(),
            "wait MCLT {} < MCLT {}",
            s.mclt,
            e.mclt()
        );
        assert!(
            s.lease_mclt <= e.mclt(),
            "lease MCLT {} > MCLT {}",
            s.lease_mclt,
            e.mclt()
        );
        let ep = e.endpoint(self.now);
        assert_eq!((ep.mclt, ep.lease_mclt), (s.mclt, s.lease_mclt));
        assert_eq!(s.partner_state, e.partner_state());
        assert!(
            s.unacked_sent <= usize::try_from(s.partner_max_unacked).unwrap(),
            "{} BNDUPDs in flight, the partner's window is {}",
            s.unacked_sent,
            s.partner_max_unacked
        );
        assert!(s.unacked_sent <= s.queued, "more in flight than queued");
        assert_eq!(s.queued + e.send_queue_space(), Q, "queue counts");
        assert_eq!(e.is_communicating(), e.link() == Link::Up);
        assert!(
            self.pending.len() <= s.awaiting_commit,
            "{} live tokens, {} awaiting commit",
            self.pending.len(),
            s.awaiting_commit
        );
        if e.link() == Link::Down {
            assert_eq!(s.unacked_sent, 0, "in flight with no connection");
            assert_eq!(s.awaiting_commit, 0, "awaiting commit with no connection");
        }
    }
}

// ----- seeds -----

fn pool_binding(i: u8, status: u8) -> BindingArb {
    BindingArb {
        addr: AddrArb::Pool { i },
        status,
        client_id: Some(Bytes(vec![1, 0, 0x0c, 0x29, 0, 0, i])),
        hw: Some((1, Bytes(vec![0, 0x0c, 0x29, 0, 0, i]))),
        lease: Some(TimeArb::Now { off: 3600 }),
        pet: Some(TimeArb::Now { off: 5400 }),
        stos: Some(TimeArb::Now { off: 0 }),
        cltt: Some(TimeArb::Now { off: 0 }),
        ip_flags: None,
        ddns: None,
        request_options: None,
        reply_options: None,
        extra: None,
    }
}

fn header(xid: XidArb) -> Header {
    Header {
        time: TimeArb::Now { off: 0 },
        xid,
        extra: None,
        digest: None,
    }
}

fn setup(secondary: bool, persisted: Option<ServerState>) -> Setup {
    Setup {
        secondary,
        draft: false,
        small: false,
        auto_close: true,
        max_unacked: 0,
        receive_timer: 0,
        mclt: 60,
        auto_partner_down: 0,
        startup_delay: 0,
        persisted_state: persisted.map_or(0, |s| {
            u8::try_from(STATES.iter().position(|x| *x == s).unwrap() + 1).unwrap()
        }),
        persisted_age: 600,
        persisted_mclt: 0,
        last_operational_age: 0,
        db: [0; 16],
    }
}

const NORMAL: StateChoice = StateChoice::Known { i: 1 };

/// A few inputs that reach deep states, written with [`encode`]: the starting corpus.
/// Each comes with what it must achieve (checked by the replay test).
pub fn seeds() -> Vec<(&'static str, Vec<u8>)> {
    let handshake = |state| Step::Handshake {
        state,
        startup: false,
        window: 4,
    };
    let send = |i, status| Step::SendBinding {
        b: pool_binding(i, status),
    };
    let partner = |m| Step::Partner { m };
    let ack_all = Step::AckAll {
        reject: None,
        batch: false,
    };
    vec![
        // A primary back in NORMAL: lazy updates both ways, an UPDREQALL answered, a reconnect.
        (
            "primary-normal",
            encode(
                &setup(false, Some(ServerState::Normal)),
                &[
                    handshake(NORMAL),
                    send(1, 1),
                    send(2, 0),
                    send(3, 1),
                    ack_all.clone(),
                    partner(Msg::BndUpd {
                        h: header(XidArb::Fresh),
                        bindings: List(vec![pool_binding(4, 1)]),
                    }),
                    Step::CommitAll,
                    partner(Msg::UpdReqAll {
                        h: header(XidArb::Fresh),
                    }),
                    send(5, 0),
                    Step::EndOfUpdates,
                    ack_all.clone(),
                    Step::ToDeadline,
                    Step::ConnectionDown,
                    send(6, 1),
                    Step::ToDeadline,
                    handshake(NORMAL),
                    ack_all.clone(),
                ],
            ),
        ),
        // A secondary in NORMAL: pool balancing, a rejected commit, a partner's rejection.
        (
            "secondary-normal",
            encode(
                &setup(true, Some(ServerState::Normal)),
                &[
                    handshake(NORMAL),
                    partner(Msg::BndUpd {
                        h: header(XidArb::Fresh),
                        bindings: List(vec![pool_binding(7, 1)]),
                    }),
                    partner(Msg::BndUpd {
                        h: header(XidArb::Fresh),
                        bindings: List(vec![pool_binding(8, 1)]),
                    }),
                    Step::Commit { k: 0 },
                    Step::CommitFailed { k: 0, reason: 6 },
                    send(9, 6),
                    Step::AckAll {
                        reject: Some(2),
                        batch: true,
                    },
                    partner(Msg::PoolReq {
                        h: header(XidArb::Fresh),
                    }),
                    Step::BalancePools {
                        free: 10,
                        backup: 200,
                        trigger: 1,
                    },
                    Step::ToDeadline,
                    Step::ToDeadline,
                ],
            ),
        ),
        // Brand-new primary: RECOVER, UPDREQALL answered with UPDDONE, RECOVER-WAIT runs out.
        (
            "primary-recover",
            encode(
                &setup(false, None),
                &[
                    handshake(NORMAL),
                    partner(Msg::BndUpd {
                        h: header(XidArb::Fresh),
                        bindings: List(vec![pool_binding(1, 1), pool_binding(2, 0)]),
                    }),
                    Step::CommitAll,
                    partner(Msg::UpdDone {
                        h: header(XidArb::Request),
                    }),
                    Step::ToDeadline,
                    Step::ToDeadline,
                    Step::ToDeadline,
                    Step::ToDeadline,
                ],
            ),
        ),
        // A secondary that loses its partner: COMMUNICATIONS-INTERRUPTED, PARTNER-DOWN by the
        // operator, leases of its own, then the partner comes back in RECOVER.
        (
            "secondary-partner-down",
            encode(
                &Setup {
                    auto_partner_down: 31,
                    ..setup(true, Some(ServerState::Normal))
                },
                &[
                    handshake(NORMAL),
                    Step::ConnectionDown,
                    Step::ToDeadline,
                    Step::ToDeadline,
                    Step::PartnerDown,
                    send(3, 1),
                    handshake(StateChoice::Known { i: 5 }),
                    partner(Msg::UpdReqAll {
                        h: header(XidArb::Fresh),
                    }),
                    Step::EndOfUpdates,
                    ack_all.clone(),
                    Step::ToDeadline,
                    handshake(StateChoice::Known { i: 8 }),
                    ack_all.clone(),
                    Step::ToDeadline,
                ],
            ),
        ),
        // Shutdown, pause, restart from what was persisted, and malformed input.
        (
            "shutdown-restart",
            encode(
                &Setup {
                    small: true,
                    draft: true,
                    ..setup(false, Some(ServerState::Normal))
                },
                &[
                    handshake(NORMAL),
                    send(1, 1),
                    Step::Shutdown,
                    Step::ToDeadline,
                    Step::Restart,
                    handshake(NORMAL),
                    Step::Pause,
                    Step::Restart,
                    handshake(NORMAL),
                    Step::Mutated {
                        m: Msg::BndUpd {
                            h: header(XidArb::Fresh),
                            bindings: List(vec![pool_binding(2, 1)]),
                        },
                        edits: List(vec![(14, 0)]),
                    },
                    Step::Raw {
                        b: LongBytes(vec![0, 12, 3, 12, 0, 0, 0, 0, 0, 0, 0, 1]),
                    },
                ],
            ),
        ),
    ]
}
