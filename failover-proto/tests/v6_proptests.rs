//! RFC 8156 property tests: typed value → emit → parse gives the value back (and re-encodes
//! to the same bytes) for every message type and for random binding nestings; arbitrary and
//! mutated bytes never panic and satisfy the fuzz target's checks.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

#[path = "../../fuzz/fuzz_targets/v6_checks.rs"]
mod v6_checks;

#[path = "common/v6_vectors.rs"]
mod v;

use core::net::Ipv6Addr;

use failover_proto::v6::{
    Binding, BindingStatus, BndReply, BndUpd, ClientData, Connect, ConnectFlags, ConnectReply,
    Contact, Disconnect, DnsFlags, DnsRemovalInfo, Ia, IaKind, Lease, PoolReq, PoolResp,
    ProtocolVersion, ReconfigureData, Repr, ServerFlags, ServerState, State, Status, StatusCode,
    UpdDone, UpdReq, UpdReqAll,
};
use failover_proto::{ExtraOptions, Text};
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;

/// Encoded options with codes RFC 8156 does not use.
fn unknown_tlvs() -> impl Strategy<Value = Vec<u8>> {
    vec(
        (
            prop_oneof![140u16..=199, 1000u16..=1100],
            vec(any::<u8>(), 0..6),
        ),
        0..3,
    )
    .prop_map(|opts| opts.iter().flat_map(|(c, d)| v::tlv(*c, d)).collect())
}

fn bytes(min: usize, max: usize) -> impl Strategy<Value = Vec<u8>> {
    vec(any::<u8>(), min..max)
}

fn status() -> impl Strategy<Value = Option<(u16, Vec<u8>)>> {
    of((0u16..30, bytes(0, 12)))
}

fn status_of(s: &Option<(u16, Vec<u8>)>) -> Option<StatusCode<'_>> {
    s.as_ref().map(|(c, m)| StatusCode {
        status: Status::from(*c),
        message: Text(m),
    })
}

/// OPTION_F_DNS_REMOVAL_INFO's host name, zone name, flags and unknown options.
type DnsSpec = (Option<Vec<u8>>, Option<Vec<u8>>, Option<u16>, Vec<u8>);

#[derive(Debug, Clone)]
struct LeaseSpec {
    addr: [u8; 16],
    plen: u8,
    pref: u32,
    valid: u32,
    status: Option<(u16, Vec<u8>)>,
    vss: Option<Vec<u8>>,
    binding_status: Option<u8>,
    times: [Option<u32>; 8],
    fqdn: Option<Vec<u8>>,
    dns: Option<DnsSpec>,
    extra: Vec<u8>,
}

fn lease_spec() -> impl Strategy<Value = LeaseSpec> {
    (
        (any::<[u8; 16]>(), any::<u8>(), any::<u32>(), any::<u32>()),
        (status(), of(bytes(1, 8)), of(any::<u8>())),
        any::<[Option<u32>; 8]>(),
        of(bytes(1, 12)),
        of((
            of(bytes(0, 8)),
            of(bytes(0, 8)),
            of(any::<u16>()),
            unknown_tlvs(),
        )),
        unknown_tlvs(),
    )
        .prop_map(
            |(
                (addr, plen, pref, valid),
                (status, vss, binding_status),
                times,
                fqdn,
                dns,
                extra,
            )| LeaseSpec {
                addr,
                plen,
                pref,
                valid,
                status,
                vss,
                binding_status,
                times,
                fqdn,
                dns,
                extra,
            },
        )
}

impl LeaseSpec {
    /// Made to satisfy a BNDUPD's rules: status and start time present, the starred three
    /// together (always for ACTIVE).
    fn for_update(mut self, clientless: bool) -> Self {
        let status = *self.binding_status.get_or_insert(5);
        self.times[1].get_or_insert(7);
        if clientless {
            self.times[0].get_or_insert(9);
        }
        let times_out = status == 1 || self.times[2].is_some();
        for i in [2usize, 4, 6] {
            if times_out {
                self.times[i].get_or_insert(100 + i as u32);
            } else {
                self.times[i] = None;
            }
        }
        self
    }

    fn build(&self, prefix: bool) -> Lease<'_> {
        let a = Ipv6Addr::from(self.addr);
        let base = if prefix {
            Lease::prefix(a, self.plen, self.pref, self.valid)
        } else {
            Lease::address(a, self.pref, self.valid)
        };
        let t = self.times;
        Lease {
            status: status_of(&self.status),
            vss: self.vss.as_deref(),
            lq_base_time: t[0],
            binding_status: self.binding_status.map(BindingStatus::from),
            start_time_of_state: t[1],
            state_expiration_time: t[2],
            clt_time: t[3],
            partner_lifetime: t[4],
            partner_raw_clt_time: t[5],
            expiration_time: t[6],
            partner_lifetime_sent: t[7],
            client_fqdn: self.fqdn.as_deref(),
            dns_removal_info: self.dns.as_ref().map(|(h, z, f, e)| DnsRemovalInfo {
                host_name: h.as_deref(),
                zone_name: z.as_deref(),
                flags: f.map(DnsFlags),
                extra: ExtraOptions::from_encoded(e),
            }),
            extra: ExtraOptions::from_encoded(&self.extra),
            ..base
        }
    }
}

#[derive(Debug, Clone)]
struct IaSpec {
    kind: u8,
    iaid: u32,
    t1: u32,
    t2: u32,
    status: Option<(u16, Vec<u8>)>,
    leases: Vec<LeaseSpec>,
    extra: Vec<u8>,
}

fn ia_spec() -> impl Strategy<Value = IaSpec> {
    (
        0u8..3,
        any::<u32>(),
        any::<u32>(),
        any::<u32>(),
        status(),
        vec(lease_spec(), 1..3),
        unknown_tlvs(),
    )
        .prop_map(|(kind, iaid, t1, t2, status, leases, extra)| IaSpec {
            kind,
            iaid,
            t1: if kind == 1 { 0 } else { t1 },
            t2: if kind == 1 { 0 } else { t2 },
            status,
            leases,
            extra,
        })
}

impl IaSpec {
    fn kind(&self) -> IaKind {
        [IaKind::Na, IaKind::Ta, IaKind::Pd][usize::from(self.kind)]
    }
}

#[derive(Debug, Clone)]
struct ClientSpec {
    status: Option<(u16, Vec<u8>)>,
    duid: Vec<u8>,
    base: u32,
    vss: Option<Vec<u8>>,
    reconf: Option<(u32, Vec<u8>)>,
    relay: Option<Vec<u8>>,
    ias: Vec<IaSpec>,
    extra: Vec<u8>,
}

fn client_spec() -> impl Strategy<Value = ClientSpec> {
    (
        status(),
        bytes(2, 20),
        any::<u32>(),
        of(bytes(1, 8)),
        of((any::<u32>(), bytes(0, 16))),
        of(bytes(16, 30)),
        vec(ia_spec(), 1..4),
        unknown_tlvs(),
    )
        .prop_map(
            |(status, duid, base, vss, reconf, relay, ias, extra)| ClientSpec {
                status,
                duid,
                base,
                vss,
                reconf,
                relay,
                ias,
                extra,
            },
        )
}

/// Encodes, decodes, compares; re-encodes the decoded value and compares the bytes.
fn check(repr: Repr<'_>) -> Result<(), TestCaseError> {
    let mut out = vec![0u8; repr.buffer_len()];
    let n = repr.emit(&mut out).unwrap();
    prop_assert_eq!(n, out.len());
    let back = Repr::parse(&out).map_err(|e| TestCaseError::fail(e.to_string()))?;
    prop_assert_eq!(back, repr);
    let mut again = vec![0u8; n];
    prop_assert_eq!(back.emit(&mut again), Ok(n));
    prop_assert_eq!(&again, &out);
    v6_checks::check_v6(&out);
    Ok(())
}

/// The binding of a client spec, built and checked (as a BNDUPD when `update`).
fn check_client(spec: &ClientSpec, xid: u32, time: u32, update: bool) -> Result<(), TestCaseError> {
    let specs: Vec<Vec<LeaseSpec>> = spec
        .ias
        .iter()
        .map(|ia| {
            ia.leases
                .iter()
                .map(|l| {
                    if update {
                        l.clone().for_update(false)
                    } else {
                        l.clone()
                    }
                })
                .collect()
        })
        .collect();
    let leases: Vec<Vec<Lease<'_>>> = spec
        .ias
        .iter()
        .zip(&specs)
        .map(|(ia, ls)| ls.iter().map(|l| l.build(ia.kind == 2)).collect())
        .collect();
    let ias: Vec<Ia<'_>> = spec
        .ias
        .iter()
        .zip(&leases)
        .map(|(s, ls)| Ia {
            status: status_of(&s.status),
            extra: ExtraOptions::from_encoded(&s.extra),
            ..Ia::new(s.kind(), s.iaid, s.t1, s.t2, ls)
        })
        .collect();
    let client = ClientData {
        status: status_of(&spec.status),
        vss: spec.vss.as_deref(),
        reconfigure: spec
            .reconf
            .as_ref()
            .map(|(t, k)| ReconfigureData { time: *t, key: k }),
        relay_data: spec.relay.as_deref(),
        extra: ExtraOptions::from_encoded(&spec.extra),
        ..ClientData::new(&spec.duid, spec.base, &ias)
    };
    let binding = Binding::Client(client);
    if update {
        check(Repr::BndUpd(BndUpd {
            xid,
            sent_time: time,
            binding,
            extra: ExtraOptions::EMPTY,
        }))
    } else {
        check(Repr::BndReply(BndReply {
            xid,
            sent_time: time,
            binding,
            extra: ExtraOptions::EMPTY,
        }))
    }
}

proptest! {
    #![proptest_config(ProptestConfig::with_cases(300))]

    #[test]
    fn client_bindings_round_trip(spec in client_spec(), xid in 0u32..=0xff_ffff, time: u32) {
        check_client(&spec, xid, time, true)?;
        check_client(&spec, xid, time, false)?;
    }

    #[test]
    fn clientless_prefixes_round_trip(l in lease_spec(), top in unknown_tlvs(), xid in 0u32..=0xff_ffff, time: u32) {
        let upd = l.clone().for_update(true);
        let lease = upd.build(true);
        check(Repr::BndUpd(BndUpd {
            xid, sent_time: time, binding: Binding::Prefix(lease), extra: ExtraOptions::from_encoded(&top),
        }))?;
        let lease = l.build(true);
        check(Repr::BndReply(BndReply {
            xid, sent_time: time, binding: Binding::Prefix(lease), extra: ExtraOptions::from_encoded(&top),
        }))?;
    }

    #[test]
    fn session_messages_round_trip(
        xid in 0u32..=0xff_ffff,
        time: u32,
        v: (u16, u16, u32, u32, u32, u16),
        name in of(bytes(0, 20)),
        st in status(),
        state: (u8, u8, u32, Option<u32>),
        extra in unknown_tlvs(),
        reply_fields: [bool; 5],
    ) {
        let extra = ExtraOptions::from_encoded(&extra);
        check(Repr::Connect(Connect {
            xid, sent_time: time,
            protocol_version: ProtocolVersion { major: v.0, minor: v.1 },
            mclt: v.2, keepalive_time: v.3, max_unacked_bndupd: v.4,
            relationship_name: name.as_deref().map(Text),
            connect_flags: ConnectFlags(v.5),
            extra,
        }))?;
        // An accepting CONNECTREPLY carries all five; a rejecting one any of them.
        let status = status_of(&st);
        let accept = status.is_none_or(|s| !s.status.is_error());
        let f = |i: usize| accept || reply_fields[i];
        check(Repr::ConnectReply(ConnectReply {
            xid, sent_time: time, status,
            protocol_version: f(0).then_some(ProtocolVersion { major: v.0, minor: v.1 }),
            mclt: f(1).then_some(v.2),
            keepalive_time: f(2).then_some(v.3),
            max_unacked_bndupd: f(3).then_some(v.4),
            connect_flags: f(4).then_some(ConnectFlags(v.5)),
            extra,
        }))?;
        check(Repr::Disconnect(Disconnect { xid, sent_time: time, status, extra }))?;
        check(Repr::State(State {
            xid, sent_time: time,
            server_state: ServerState::from(state.0),
            server_flags: ServerFlags(state.1),
            start_time_of_state: state.2,
            partner_down_time: state.3,
            extra,
        }))?;
        check(Repr::PoolReq(PoolReq { xid, sent_time: time, extra }))?;
        check(Repr::PoolResp(PoolResp { xid, sent_time: time, extra }))?;
        check(Repr::UpdReq(UpdReq { xid, sent_time: time, extra }))?;
        check(Repr::UpdReqAll(UpdReqAll { xid, sent_time: time, extra }))?;
        check(Repr::UpdDone(UpdDone { xid, sent_time: time, extra }))?;
        check(Repr::Contact(Contact { xid, sent_time: time, extra }))?;
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in vec(any::<u8>(), 0..300)) {
        v6_checks::check_v6(&data);
    }

    #[test]
    fn arbitrary_messages_never_panic(t in 0u8..40, body in vec(any::<u8>(), 0..200)) {
        // A valid size and header around arbitrary options.
        let mut m = u16::try_from(body.len() + 8).unwrap().to_be_bytes().to_vec();
        m.push(t);
        m.extend_from_slice(&[0, 0, 1, 0x2d, 0x24, 0xbd, 0x00]);
        m.extend_from_slice(&body);
        v6_checks::check_v6(&m);
    }

    #[test]
    fn mutated_vectors_never_panic(which in 0usize..19, flips in vec((any::<usize>(), any::<u8>()), 1..4)) {
        let all = v::all();
        let mut m = all[which % all.len()].1.clone();
        for (at, b) in flips {
            let i = at % m.len();
            m[i] ^= b;
        }
        v6_checks::check_v6(&m);
    }

    #[test]
    fn every_truncation_is_an_error(which in 0usize..19, cut in any::<usize>()) {
        let all = v::all();
        let m = &all[which % all.len()].1;
        let cut = cut % m.len();
        prop_assert!(Repr::parse(&m[..cut]).is_err());
    }
}
