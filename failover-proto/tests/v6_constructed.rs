//! RFC 8156 codec against hand-built messages: every message type, every field checked,
//! parse → emit byte-identical, emit → parse equal; unknown options at every level kept; every
//! error kind triggered at its offset; the framer; the time helpers.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

#[path = "common/v6_vectors.rs"]
mod v;

use core::net::Ipv6Addr;

use failover_proto::framer::FrameStatus;
use failover_proto::v6::{
    self, Binding, BindingStatus, BndReply, BndUpd, ClientData, Connect, ConnectFlags, Contact,
    Disconnect, DnsFlags, Framer, Ia, IaKind, Lease, LeaseAddr, Message, MessageType, OptionCode,
    PoolReq, ProtocolVersion, Repr, ServerFlags, ServerState, Status, StatusCode, UpdDone, time,
};
use failover_proto::{DecodeError, DecodeErrorKind, EncodeError, ExtraOptions, Text};
use v::{T0, failover, nest, status, tlv, u32opt};

/// Parses, re-encodes (byte-identical), parses the re-encoding (equal).
fn round_trip(bytes: &[u8]) -> Repr<'_> {
    let repr = Repr::parse(bytes).unwrap_or_else(|e| panic!("{e}"));
    assert_eq!(repr.buffer_len(), bytes.len());
    let mut out = vec![0u8; bytes.len() + 8];
    let n = repr.emit(&mut out).unwrap();
    assert_eq!(&out[..n], bytes, "re-encoding differs");
    assert_eq!(Repr::parse(&out[..n]).unwrap(), repr);
    // One byte short: the exact size is reported.
    assert_eq!(
        repr.emit(&mut out[..n - 1]),
        Err(EncodeError::BufferTooSmall { required: n })
    );
    repr
}

fn err(bytes: &[u8]) -> DecodeError {
    Repr::parse(bytes).expect_err("must not decode")
}

fn addr(o: [u8; 16]) -> Ipv6Addr {
    Ipv6Addr::from(o)
}

#[test]
fn every_vector_round_trips_and_every_type_is_covered() {
    let mut types = std::collections::BTreeSet::new();
    for (name, bytes) in v::all() {
        let repr = round_trip(&bytes);
        assert_eq!(
            u8::from(repr.message_type()),
            bytes[2],
            "{name}: message type"
        );
        types.insert(bytes[2]);
        // The header view agrees.
        let m = Message::new_checked(&bytes[..]).unwrap();
        assert_eq!(m.frame_len(), bytes.len());
        assert_eq!(m.xid(), repr.xid());
        assert_eq!(m.sent_time(), repr.sent_time());
    }
    for t in 24..=35u8 {
        assert!(types.contains(&t), "no vector of type {t}");
        assert!(MessageType::from(t).is_failover());
    }
}

#[test]
fn connect_from_the_digest() {
    let bytes = v::connect();
    let Repr::Connect(c) = round_trip(&bytes) else {
        panic!()
    };
    assert_eq!(
        c,
        Connect {
            xid: 1,
            sent_time: 0x2d24_bd00,
            protocol_version: ProtocolVersion::V1_0,
            mclt: 3600,
            keepalive_time: 60,
            max_unacked_bndupd: 100,
            relationship_name: Some(Text::from("fo1")),
            connect_flags: ConnectFlags::FIXED_PD_LENGTH,
            extra: ExtraOptions::EMPTY,
        }
    );
    // Built from the struct: the same 55 bytes.
    let mut out = [0u8; 55];
    assert_eq!(c.emit(&mut out), Ok(55));
    assert_eq!(out[..], bytes[..]);
    assert_eq!(time::to_unix(c.sent_time), 1_704_067_200);
}

#[test]
fn state_and_partner_down_state() {
    let st = v::state();
    let Repr::State(s) = round_trip(&st) else {
        panic!()
    };
    assert_eq!(s.server_state, ServerState::Normal);
    assert_eq!(s.server_flags, ServerFlags::COMMUNICATED);
    assert_eq!(s.start_time_of_state, T0 - 100);
    assert_eq!(s.partner_down_time, None);
    let bytes = failover(
        34,
        5,
        T0,
        &[
            tlv(132, &[4]),
            tlv(131, &[0x01]),
            u32opt(133, T0 - 7200),
            u32opt(125, T0 - 7200),
        ],
    );
    let Repr::State(s) = round_trip(&bytes) else {
        panic!()
    };
    assert_eq!(s.server_state, ServerState::PartnerDown);
    assert_eq!(s.partner_down_time, Some(T0 - 7200));
    // Every state number of §5.5.16.
    for (n, name) in (1u8..=10).zip([
        "STARTUP",
        "NORMAL",
        "COMMUNICATIONS-INTERRUPTED",
        "PARTNER-DOWN",
        "POTENTIAL-CONFLICT",
        "RECOVER",
        "RECOVER-WAIT",
        "RECOVER-DONE",
        "RESOLUTION-INTERRUPTED",
        "CONFLICT-DONE",
    ]) {
        assert_eq!(ServerState::from(n).name(), name);
        assert_eq!(u8::from(ServerState::from(n)), n);
    }
}

#[test]
fn connectreply_accept_reject_and_disconnect() {
    let all = v::all();
    let get = |n: &str| all.iter().find(|(k, _)| *k == n).unwrap().1.clone();
    let accept = get("connectreply-accept");
    let Repr::ConnectReply(r) = round_trip(&accept) else {
        panic!()
    };
    assert!(r.is_accept());
    assert_eq!(r.protocol_version, Some(ProtocolVersion::V1_0));
    assert_eq!(
        (r.mclt, r.keepalive_time, r.max_unacked_bndupd),
        (Some(3600), Some(60), Some(10))
    );
    let reject = get("connectreply-reject");
    let Repr::ConnectReply(r) = round_trip(&reject) else {
        panic!()
    };
    assert!(!r.is_accept());
    assert_eq!(
        r.status,
        Some(StatusCode::new(Status::ExcessiveTimeSkew, "skew 7 s"))
    );
    assert_eq!(r.mclt, None);
    let dis = get("disconnect");
    let Repr::Disconnect(d) = round_trip(&dis) else {
        panic!()
    };
    assert_eq!(d.status.unwrap().status, Status::ServerShuttingDown);
    assert_eq!(
        d.status.unwrap().message.as_str(),
        Some("operator shutdown")
    );
    // The status codes RFC 8156 adds (§5.6).
    for (n, name) in (16u16..=22).zip([
        "AddressInUse",
        "ConfigurationConflict",
        "MissingBindingInformation",
        "OutdatedBindingInformation",
        "ServerShuttingDown",
        "DNSUpdateNotSupported",
        "ExcessiveTimeSkew",
    ]) {
        assert_eq!(Status::from(n).name(), name);
    }
}

#[test]
fn bare_messages() {
    for (t, xid) in [
        (26u8, 0x200),
        (27, 0x200),
        (28, 0xff_fffe),
        (29, 0x300),
        (30, 0x300),
        (35, 6),
    ] {
        let bytes = failover(t, xid, T0, &[]);
        assert_eq!(bytes.len(), 10);
        let repr = round_trip(&bytes);
        assert_eq!(repr.xid(), xid);
        assert_eq!(repr.sent_time(), T0);
    }
    let p = PoolReq {
        xid: 9,
        sent_time: T0,
        extra: ExtraOptions::EMPTY,
    };
    let mut out = [0u8; 10];
    assert_eq!(p.emit(&mut out), Ok(10));
    assert_eq!(out[..], failover(26, 9, T0, &[])[..]);
    assert!(matches!(Repr::parse(&out), Ok(Repr::PoolReq(q)) if q == p));
    // A typed parser refuses another type.
    assert_eq!(
        UpdDone::from_bytes(&out).unwrap_err().kind(),
        DecodeErrorKind::WrongMessageType {
            expected: 30,
            found: 26
        }
    );
    assert!(Contact::from_bytes(&failover(35, 1, 2, &[])).is_ok());
}

#[test]
fn bndupd_with_a_client_every_field() {
    let bytes = v::bndupd_client();
    let Repr::BndUpd(u) = round_trip(&bytes) else {
        panic!()
    };
    assert_eq!((u.xid, u.sent_time), (0x102, T0));
    let Binding::Client(c) = u.binding else {
        panic!()
    };
    assert_eq!(c.client_id, Some(&v::DUID[..]));
    assert_eq!(c.lq_base_time, Some(T0));
    assert_eq!(c.vss, Some(&[0, 0, 0, 0, 0x2a][..]));
    let r = c.reconfigure.unwrap();
    assert_eq!((r.time, r.key), (T0 - 86_400, &[0xa5; 16][..]));
    assert_eq!(c.relay_data.unwrap().len(), 20);
    let ias: Vec<Ia<'_>> = c.ias.iter().collect();
    assert_eq!(c.ias.len(), 3);
    assert_eq!(
        ias.iter()
            .map(|i| (i.kind, i.iaid, i.t1, i.t2))
            .collect::<Vec<_>>(),
        [
            (IaKind::Na, 1, 900, 1440),
            (IaKind::Ta, 7, 0, 0),
            (IaKind::Pd, 2, 900, 1440)
        ]
    );
    let na: Vec<Lease<'_>> = ias[0].leases.iter().collect();
    assert_eq!(na.len(), 2);
    let a = na[0];
    assert_eq!(a.addr, LeaseAddr::Address(addr(v::ADDR1)));
    assert_eq!((a.preferred_lifetime, a.valid_lifetime), (1800, 3600));
    assert_eq!(a.binding_status, Some(BindingStatus::Active));
    assert_eq!(a.start_time_of_state, Some(T0));
    assert_eq!(a.state_expiration_time, Some(T0 + 3600));
    assert_eq!(a.clt_time, Some(12));
    assert_eq!(a.partner_lifetime, Some(T0 + 5400));
    assert_eq!(a.partner_raw_clt_time, Some(T0 - 100));
    assert_eq!(a.expiration_time, Some(T0 + 3600));
    assert_eq!(a.client_fqdn, Some(&b"\x01\x04host\x07example\x00"[..]));
    let dns = a.dns_removal_info.unwrap();
    assert_eq!(dns.host_name, Some(&b"\x04host\x00"[..]));
    assert_eq!(dns.zone_name, Some(&b"\x07example\x00"[..]));
    assert_eq!(
        dns.flags,
        Some(
            DnsFlags::USING_REQUESTED_FQDN
                .union(DnsFlags::REV_UPTODATE)
                .union(DnsFlags::FWD_UPTODATE)
        )
    );
    assert!(a.extra.is_empty());
    assert_eq!(na[1].binding_status, Some(BindingStatus::Expired));
    let ta = ias[1].leases.first().unwrap();
    assert_eq!(ta.binding_status, Some(BindingStatus::Released));
    assert_eq!(ta.state_expiration_time, None);
    let pd = ias[2].leases.first().unwrap();
    assert_eq!(
        pd.addr,
        LeaseAddr::Prefix {
            prefix: addr(v::PREFIX),
            len: 56
        }
    );
    // The same message built from typed values encodes to the same bytes.
    let leases_na = [a, na[1]];
    let leases_ta = [ta];
    let leases_pd = [pd];
    let built_ias = [
        Ia::new(IaKind::Na, 1, 900, 1440, &leases_na),
        Ia::new(IaKind::Ta, 7, 0, 0, &leases_ta),
        Ia::new(IaKind::Pd, 2, 900, 1440, &leases_pd),
    ];
    let built = BndUpd {
        xid: 0x102,
        sent_time: T0,
        binding: Binding::Client(ClientData {
            vss: c.vss,
            reconfigure: c.reconfigure,
            relay_data: c.relay_data,
            ..ClientData::new(&v::DUID, T0, &built_ias)
        }),
        extra: ExtraOptions::EMPTY,
    };
    assert_eq!(built, u);
    let mut out = vec![0u8; built.buffer_len()];
    assert_eq!(built.emit(&mut out), Ok(bytes.len()));
    assert_eq!(out, bytes);
}

#[test]
fn bndupd_with_a_prefix_and_the_replies() {
    let bp = v::bndupd_prefix();
    let Repr::BndUpd(u) = round_trip(&bp) else {
        panic!()
    };
    let Binding::Prefix(p) = u.binding else {
        panic!()
    };
    assert_eq!(p.binding_status, Some(BindingStatus::FreeBackup));
    assert_eq!(p.lq_base_time, Some(T0));
    assert_eq!(
        p.addr,
        LeaseAddr::Prefix {
            prefix: addr(v::PREFIX),
            len: 48
        }
    );
    let brc = v::bndreply_client();
    let Repr::BndReply(r) = round_trip(&brc) else {
        panic!()
    };
    assert_eq!(r.xid, 0x102);
    let Binding::Client(c) = r.binding else {
        panic!()
    };
    assert_eq!(c.status, Some(StatusCode::new(Status::Success, "ok")));
    let ias: Vec<Ia<'_>> = c.ias.iter().collect();
    let lease = ias[0].leases.first().unwrap();
    assert_eq!(
        lease.status.unwrap().status,
        Status::OutdatedBindingInformation
    );
    assert_eq!(lease.partner_lifetime_sent, Some(T0 + 5400));
    assert_eq!(ias[1].status.unwrap().status, Status::AddressInUse);
    let brp = v::bndreply_prefix();
    let Repr::BndReply(r) = round_trip(&brp) else {
        panic!()
    };
    let Binding::Prefix(p) = r.binding else {
        panic!()
    };
    assert_eq!(
        p.status,
        Some(StatusCode::new(Status::ConfigurationConflict, "not mine"))
    );
    // A BNDREPLY built from a slice.
    let ack = Lease {
        status: Some(StatusCode::new(Status::Success, "")),
        ..Lease::prefix(addr(v::PREFIX), 48, 0, 0)
    };
    let reply = BndReply {
        xid: 3,
        sent_time: T0,
        binding: Binding::Prefix(ack),
        extra: ExtraOptions::EMPTY,
    };
    let mut out = [0u8; 64];
    let n = reply.emit(&mut out).unwrap();
    assert_eq!(n, 10 + 4 + 25 + 6);
    assert_eq!(BndReply::from_bytes(&out[..n]).unwrap(), reply);
}

#[test]
fn unknown_options_are_kept_at_every_level() {
    let bytes = v::bndupd_unknowns();
    let Repr::BndUpd(u) = round_trip(&bytes) else {
        panic!()
    };
    let codes = |e: &ExtraOptions<'_>| {
        e.iter()
            .map(|o| (o.code, o.data.to_vec()))
            .collect::<Vec<_>>()
    };
    assert_eq!(codes(&u.extra), [(0xfe04, b"top".to_vec())]);
    let Binding::Client(c) = u.binding else {
        panic!()
    };
    assert_eq!(codes(&c.extra), [(0xfe03, b"client-level".to_vec())]);
    let ia = c.ias.first().unwrap();
    assert_eq!(codes(&ia.extra), [(0xfe02, vec![])]);
    let lease = ia.leases.first().unwrap();
    assert_eq!(
        codes(&lease.extra),
        [(0xfe01, vec![1, 2, 3]), (2, vec![0; 14])]
    );
    let dns = lease.dns_removal_info.unwrap();
    assert_eq!(codes(&dns.extra), [(999, b"dns-x".to_vec())]);
    // Offsets point at the options in the message.
    for o in u
        .extra
        .iter()
        .chain(c.extra.iter())
        .chain(lease.extra.iter())
    {
        assert_eq!(&bytes[o.offset..o.offset + 2], &o.code.to_be_bytes());
    }
    // An unknown code on a message without options of its own, too.
    round_trip(&failover(35, 1, T0, &[tlv(0xabcd, b"x"), tlv(4000, &[])]));
    assert_eq!(OptionCode::from(0xabcd), OptionCode::Unknown(0xabcd));
}

#[test]
fn starttls_and_reply_use_the_plain_header() {
    let tls = v::plain(23, 7, &[]);
    let Repr::Other(s) = round_trip(&tls) else {
        panic!()
    };
    assert_eq!((s.msg_type, s.xid), (MessageType::StartTls, 7));
    let reply = v::plain(7, 7, &[status(15, "no TLS here")]);
    let Repr::Other(r) = round_trip(&reply) else {
        panic!()
    };
    assert_eq!(r.msg_type, MessageType::Reply);
    let o = r.options.iter().next().unwrap();
    assert_eq!((o.code, o.offset), (13, 6));
    assert_eq!(Message::new_checked(&reply[..]).unwrap().sent_time(), 0);
}

#[test]
fn header_errors() {
    // Nothing, or one byte: the size field is cut.
    assert_eq!(
        err(&[]),
        DecodeError::new(DecodeErrorKind::Truncated { needed: 2 }, 0)
    );
    assert_eq!(
        err(&[0]),
        DecodeError::new(DecodeErrorKind::Truncated { needed: 2 }, 1)
    );
    // A size below a DHCPv6 header: the stream cannot be framed (fatal).
    let e = err(&[0x00, 0x03, 35, 0, 0]);
    assert_eq!(e, DecodeError::new(DecodeErrorKind::SizeOutOfRange(3), 0));
    assert!(e.is_fatal());
    // The size announces more than the buffer holds.
    let contact = failover(35, 1, T0, &[]);
    assert_eq!(
        err(&contact[..9]),
        DecodeError::new(DecodeErrorKind::Truncated { needed: 10 }, 9)
    );
    // A failover type whose size cuts the sent-time.
    let e = err(&[0x00, 0x06, 35, 0, 0, 1, 0x2d, 0x24]);
    assert_eq!(
        e,
        DecodeError::new(DecodeErrorKind::Truncated { needed: 10 }, 8)
    );
    assert!(!e.is_fatal());
    // ... while a plain DHCPv6 message of that size is fine.
    assert!(Repr::parse(&[0x00, 0x04, 23, 0, 0, 1]).is_ok());
    // Bytes after the message are not part of it.
    let mut longer = contact.clone();
    longer.extend_from_slice(&[0xff; 5]);
    assert_eq!(
        Repr::parse(&longer).unwrap(),
        Repr::parse(&contact).unwrap()
    );
}

#[test]
fn option_overrun_at_every_level() {
    // Top level: the option's header is cut (3 bytes left).
    let mut b = failover(35, 1, T0, &[]);
    b.extend_from_slice(&[0x00, 0x7a, 0x00]);
    b[1] += 3;
    assert_eq!(
        err(&b),
        DecodeError::new(DecodeErrorKind::OptionOverrun { code: 0x7a }, 10)
    );
    // Top level: the data runs past the end.
    let mut b = failover(35, 1, T0, &[]);
    b.extend_from_slice(&[0x00, 0x7a, 0x00, 0x08, 0, 0]);
    b[1] += 6;
    assert_eq!(
        err(&b),
        DecodeError::new(DecodeErrorKind::OptionOverrun { code: 0x7a }, 10)
    );
    // Inside an IAADDR inside an IA_NA inside CLIENT_DATA: an option claims 9 bytes of 4.
    let addr = nest(
        5,
        &v::iaaddr_fixed(v::ADDR1, 0, 0),
        &[vec![0, 114, 0, 9, 1, 2, 3, 4]],
    );
    let msg = failover(
        24,
        1,
        T0,
        &[nest(
            45,
            &[],
            &[
                tlv(1, &v::DUID),
                u32opt(100, T0),
                nest(3, &v::ia_fixed(1, 0, 0), &[addr]),
            ],
        )],
    );
    // 10 header + 4 CLIENT_DATA + 14 DUID + 8 base time + 4+12 IA_NA + 4+24 IAADDR = 80.
    assert_eq!(
        err(&msg),
        DecodeError::new(DecodeErrorKind::OptionOverrun { code: 114 }, 80)
    );
}

#[test]
fn wrong_lengths() {
    let bad = |opts: &[Vec<u8>]| err(&failover(31, 1, T0, opts)).kind();
    assert_eq!(
        bad(&[tlv(122, &[0, 0, 1])]),
        DecodeErrorKind::V6OptionLength { code: 122, len: 3 }
    );
    assert_eq!(
        bad(&[tlv(127, &[0, 1])]),
        DecodeErrorKind::V6OptionLength { code: 127, len: 2 }
    );
    assert_eq!(
        bad(&[tlv(115, &[1])]),
        DecodeErrorKind::V6OptionLength { code: 115, len: 1 }
    );
    assert_eq!(
        err(&failover(34, 1, T0, &[tlv(132, &[])])).kind(),
        DecodeErrorKind::V6OptionLength { code: 132, len: 0 }
    );
    // Nested: an IA_NA too short for IAID/T1/T2, an IAADDR too short for its address and
    // lifetimes, a status code without its code, a DNS flags option of 3 bytes.
    let client = |inner: Vec<u8>| {
        failover(
            24,
            1,
            T0,
            &[nest(45, &[], &[tlv(1, &v::DUID), u32opt(100, T0), inner])],
        )
    };
    assert_eq!(
        err(&client(tlv(3, &[0; 8]))).kind(),
        DecodeErrorKind::V6OptionLength { code: 3, len: 8 }
    );
    let short_addr = nest(3, &v::ia_fixed(1, 0, 0), &[tlv(5, &[0; 20])]);
    assert_eq!(
        err(&client(short_addr)).kind(),
        DecodeErrorKind::V6OptionLength { code: 5, len: 20 }
    );
    let lease = |opts: &[Vec<u8>]| {
        nest(
            3,
            &v::ia_fixed(1, 0, 0),
            &[nest(5, &v::iaaddr_fixed(v::ADDR1, 0, 0), opts)],
        )
    };
    assert_eq!(
        err(&client(lease(&[tlv(13, &[0])]))).kind(),
        DecodeErrorKind::V6OptionLength { code: 13, len: 1 }
    );
    assert_eq!(
        err(&client(lease(&[nest(116, &[], &[tlv(119, &[0, 0, 1])])]))).kind(),
        DecodeErrorKind::V6OptionLength { code: 119, len: 3 }
    );
    let e = err(&client(lease(&[tlv(114, &[1, 1])])));
    assert_eq!(
        e.to_string(),
        "option 114 (OPTION_F_BINDING_STATUS) has invalid length 2 at offset 80"
    );
}

#[test]
fn duplicates_and_missing_options() {
    let connect = |opts: &[Vec<u8>]| err(&failover(31, 1, T0, opts)).kind();
    let full = [
        tlv(127, &[0, 1, 0, 0]),
        u32opt(122, 3600),
        u32opt(128, 60),
        u32opt(121, 10),
        tlv(115, &[0, 0]),
    ];
    let mut twice = full.to_vec();
    twice.push(u32opt(122, 60));
    assert_eq!(connect(&twice), DecodeErrorKind::V6DuplicateOption(122));
    for (i, code) in [127u16, 122, 128, 121, 115].into_iter().enumerate() {
        let mut without = full.to_vec();
        without.remove(i);
        assert_eq!(
            connect(&without),
            DecodeErrorKind::V6MissingOption { code, parent: 0 }
        );
    }
    // STATE needs its three options; an accepting CONNECTREPLY its five.
    assert_eq!(
        err(&failover(34, 1, T0, &[tlv(132, &[2]), tlv(131, &[0])])).kind(),
        DecodeErrorKind::V6MissingOption {
            code: 133,
            parent: 0
        }
    );
    assert_eq!(
        err(&failover(32, 1, T0, &[status(0, "")])).kind(),
        DecodeErrorKind::V6MissingOption {
            code: 127,
            parent: 0
        }
    );
    // BNDUPD: no binding; CLIENT_DATA without client id, base time, IA; IA without lease;
    // lease without binding-status or start-time; starred options apart.
    assert_eq!(
        err(&failover(24, 1, T0, &[])).kind(),
        DecodeErrorKind::V6MissingOption {
            code: 45,
            parent: 0
        }
    );
    let bnd = |c: Vec<Vec<u8>>| err(&failover(24, 1, T0, &[nest(45, &[], &c)])).kind();
    assert_eq!(
        bnd(vec![u32opt(100, T0)]),
        DecodeErrorKind::V6MissingOption {
            code: 1,
            parent: 45
        }
    );
    assert_eq!(
        bnd(vec![tlv(1, &v::DUID)]),
        DecodeErrorKind::V6MissingOption {
            code: 100,
            parent: 45
        }
    );
    assert_eq!(
        bnd(vec![tlv(1, &v::DUID), u32opt(100, T0)]),
        DecodeErrorKind::V6MissingOption {
            code: 3,
            parent: 45
        }
    );
    assert_eq!(
        bnd(vec![
            tlv(1, &v::DUID),
            u32opt(100, T0),
            nest(25, &v::ia_fixed(1, 0, 0), &[])
        ]),
        DecodeErrorKind::V6MissingOption {
            code: 26,
            parent: 25
        }
    );
    let with_lease = |opts: &[Vec<u8>]| {
        bnd(vec![
            tlv(1, &v::DUID),
            u32opt(100, T0),
            nest(
                3,
                &v::ia_fixed(1, 0, 0),
                &[nest(5, &v::iaaddr_fixed(v::ADDR1, 0, 0), opts)],
            ),
        ])
    };
    assert_eq!(
        with_lease(&[u32opt(133, T0)]),
        DecodeErrorKind::V6MissingOption {
            code: 114,
            parent: 5
        }
    );
    assert_eq!(
        with_lease(&[tlv(114, &[5])]),
        DecodeErrorKind::V6MissingOption {
            code: 133,
            parent: 5
        }
    );
    assert_eq!(
        with_lease(&[tlv(114, &[1]), u32opt(133, T0)]),
        DecodeErrorKind::V6MissingOption {
            code: 134,
            parent: 5
        }
    );
    assert_eq!(
        with_lease(&[
            tlv(114, &[2]),
            u32opt(133, T0),
            u32opt(134, T0),
            u32opt(123, T0)
        ]),
        DecodeErrorKind::V6MissingOption {
            code: 120,
            parent: 5
        }
    );
    assert_eq!(
        with_lease(&[tlv(114, &[5]), u32opt(133, T0), tlv(114, &[5])]),
        DecodeErrorKind::V6DuplicateOption(114)
    );
    // A clientless prefix needs its base time.
    assert_eq!(
        err(&failover(
            24,
            1,
            T0,
            &[nest(
                26,
                &v::iaprefix_fixed(0, 0, 48, v::PREFIX),
                &[tlv(114, &[6]), u32opt(133, T0)]
            )]
        ))
        .kind(),
        DecodeErrorKind::V6MissingOption {
            code: 100,
            parent: 26
        }
    );
    // The offset is that of the option missing something: here the IAADDR, after the
    // 10-byte header, CLIENT_DATA's 4, the DUID's 14, the base time's 8 and IA_NA's 16.
    let inner = nest(
        5,
        &v::iaaddr_fixed(v::ADDR1, 0, 0),
        &[tlv(114, &[1]), u32opt(133, T0)],
    );
    let msg = failover(
        24,
        1,
        T0,
        &[nest(
            45,
            &[],
            &[
                tlv(1, &v::DUID),
                u32opt(100, T0),
                nest(3, &v::ia_fixed(1, 0, 0), &[inner]),
            ],
        )],
    );
    assert_eq!(
        err(&msg),
        DecodeError::new(
            DecodeErrorKind::V6MissingOption {
                code: 134,
                parent: 5
            },
            52
        )
    );
    assert_eq!(
        v6::status_for(&err(&msg)),
        Status::MissingBindingInformation
    );
    // CLIENT_DATA's own missing options are reported at CLIENT_DATA.
    assert_eq!(
        err(&failover(24, 1, T0, &[nest(45, &[], &[u32opt(100, T0)])])),
        DecodeError::new(
            DecodeErrorKind::V6MissingOption {
                code: 1,
                parent: 45
            },
            10
        )
    );
    // A BNDREPLY needs none of that, only one binding.
    assert!(BndReply::from_bytes(&failover(25, 1, T0, &[nest(45, &[], &[])])).is_ok());
    let e = DecodeError::new(
        DecodeErrorKind::V6MissingOption {
            code: 114,
            parent: 5,
        },
        0,
    );
    assert_eq!(v6::status_for(&e), Status::MissingBindingInformation);
}

#[test]
fn bad_nesting() {
    let kind = |b: Vec<u8>| err(&b).kind();
    // An IAADDR at the top of a BNDUPD; an IA_NA at the top of a CONNECT.
    assert_eq!(
        kind(failover(24, 1, T0, &[tlv(5, &[0; 24])])),
        DecodeErrorKind::MisplacedOption { code: 5, parent: 0 }
    );
    assert_eq!(
        kind(failover(31, 1, T0, &[tlv(3, &[0; 12])])),
        DecodeErrorKind::MisplacedOption { code: 3, parent: 0 }
    );
    // Both a client and a prefix; two clients.
    let client = nest(45, &[], &[tlv(1, &v::DUID), u32opt(100, T0)]);
    let prefix = nest(26, &v::iaprefix_fixed(0, 0, 48, v::PREFIX), &[]);
    assert_eq!(
        kind(failover(25, 1, T0, &[client.clone(), prefix])),
        DecodeErrorKind::MisplacedOption {
            code: 26,
            parent: 0
        }
    );
    assert_eq!(
        kind(failover(25, 1, T0, &[client.clone(), client])),
        DecodeErrorKind::V6DuplicateOption(45)
    );
    // An IAPREFIX in an IA_NA, an IAADDR in an IA_PD, a CLIENT_DATA in a CLIENT_DATA, an IA
    // inside a lease.
    let reply = |inner: Vec<u8>| failover(25, 1, T0, &[nest(45, &[], &[inner])]);
    assert_eq!(
        kind(reply(nest(3, &v::ia_fixed(1, 0, 0), &[tlv(26, &[0; 25])]))),
        DecodeErrorKind::MisplacedOption {
            code: 26,
            parent: 3
        }
    );
    assert_eq!(
        kind(reply(nest(25, &v::ia_fixed(1, 0, 0), &[tlv(5, &[0; 24])]))),
        DecodeErrorKind::MisplacedOption {
            code: 5,
            parent: 25
        }
    );
    assert_eq!(
        kind(reply(nest(45, &[], &[]))),
        DecodeErrorKind::MisplacedOption {
            code: 45,
            parent: 45
        }
    );
    assert_eq!(
        kind(reply(nest(
            4,
            &[0; 4],
            &[nest(5, &[0; 24], &[tlv(3, &[0; 12])])]
        ))),
        DecodeErrorKind::MisplacedOption { code: 3, parent: 5 }
    );
    let e = err(&reply(nest(3, &v::ia_fixed(1, 0, 0), &[tlv(26, &[0; 25])])));
    assert_eq!(
        e.to_string(),
        "option 26 (OPTION_IAPREFIX) not allowed in OPTION_IA_NA at offset 30"
    );
}

#[test]
fn encode_errors() {
    let c = Contact {
        xid: 0x0100_0000,
        sent_time: 0,
        extra: ExtraOptions::EMPTY,
    };
    assert_eq!(
        c.emit(&mut [0u8; 10]),
        Err(EncodeError::XidTooLarge(0x0100_0000))
    );
    let big = vec![0u8; 70_000];
    let tlvs = [tlv(0xfe00, &big[..60_000]), tlv(0xfe00, &big[..6_000])].concat();
    let d = Disconnect {
        xid: 1,
        sent_time: 0,
        status: None,
        extra: ExtraOptions::from_encoded(&tlvs),
    };
    assert_eq!(d.buffer_len(), 10 + 66_008);
    assert_eq!(
        d.emit(&mut vec![0u8; 70_000]),
        Err(EncodeError::V6TooLong { len: 66_018 })
    );
    // The largest message fits exactly.
    let tlvs = tlv(0xfe00, &big[..65_535 - 8 - 4]);
    let d = Disconnect {
        extra: ExtraOptions::from_encoded(&tlvs),
        ..d
    };
    let mut out = vec![0u8; 65_537];
    assert_eq!(d.emit(&mut out), Ok(65_537));
    assert_eq!(Repr::parse(&out).unwrap(), Repr::Disconnect(d));
}

#[test]
fn framer_and_frames() {
    let msgs: Vec<Vec<u8>> = v::all().into_iter().map(|(_, b)| b).collect();
    let stream: Vec<u8> = msgs.concat();
    // Whole stream, one read; then every chunk size from 1 to 64.
    for chunk in [stream.len(), 1, 2, 3, 7, 10, 64] {
        let mut framer = Box::new(Framer::new());
        let mut got = Vec::new();
        for piece in stream.chunks(chunk) {
            let mut input = piece;
            while let Some(m) = framer.next_message(&mut input).unwrap() {
                got.push(m.to_vec());
            }
        }
        assert_eq!(got, msgs, "chunk {chunk}");
        assert_eq!(framer.buffered(), 0);
        assert_eq!(framer.stream_offset(), stream.len() as u64);
    }
    let mut it = v6::framer::frames(&stream);
    assert_eq!(it.by_ref().count(), msgs.len());
    assert_eq!(it.consumed(), stream.len());
    // A size below 4 is fatal, at its stream offset.
    let mut bad = msgs[0].clone();
    bad.extend_from_slice(&[0x00, 0x02, 0x00, 0x00]);
    let mut framer = Box::new(Framer::new());
    let mut input = &bad[..];
    assert!(framer.next_message(&mut input).unwrap().is_some());
    let e = framer.next_message(&mut input).unwrap_err();
    assert_eq!(
        e,
        DecodeError::new(DecodeErrorKind::SizeOutOfRange(2), msgs[0].len())
    );
    assert!(e.is_fatal());
    assert_eq!(framer.next_message(&mut &b""[..]), Err(e));
    framer.reset();
    assert_eq!(
        framer.next_message(&mut &msgs[1][..]).unwrap(),
        Some(&msgs[1][..])
    );
    // A small framer refuses what it cannot hold, before reading the body.
    let mut small = Framer::<64>::with_capacity();
    let client = v::bndupd_client();
    let e = small.next_message(&mut &client[..2]).unwrap_err();
    assert_eq!(
        e.kind(),
        DecodeErrorKind::FrameTooLarge {
            len: client.len() as u32,
            capacity: 64
        }
    );
    assert_eq!(
        v6::framer::frame_status(&client[..5]),
        Ok(FrameStatus::Incomplete {
            needed: client.len() - 5
        })
    );
}

#[test]
fn time_conversions() {
    assert_eq!(time::EPOCH_2000_UNIX, 946_684_800);
    assert_eq!(time::from_unix(946_684_800), Some(0));
    assert_eq!(time::from_unix(946_684_799), None);
    assert_eq!(time::from_unix(time::WRAP_UNIX - 1), Some(u32::MAX));
    assert_eq!(time::from_unix(time::WRAP_UNIX), None);
    assert_eq!(time::from_unix(u64::MAX), None);
    assert_eq!(time::from_unix_wrapping(time::WRAP_UNIX + 5), Some(5));
    assert_eq!(time::from_unix_wrapping(0), None);
    assert_eq!(time::to_unix(u32::MAX), time::WRAP_UNIX - 1);
    // After the wrap, a small value is read in the current era; before it, in the first.
    assert_eq!(
        time::to_unix_near(5, time::WRAP_UNIX + 100),
        time::WRAP_UNIX + 5
    );
    assert_eq!(
        time::to_unix_near(u32::MAX - 5, time::WRAP_UNIX + 100),
        time::WRAP_UNIX - 6
    );
    assert_eq!(time::to_unix_near(T0, 1_704_067_200), 1_704_067_200);
    assert_eq!(time::to_unix_near(0, 0), time::EPOCH_2000_UNIX);
    for unix in [
        946_684_800u64,
        1_704_067_200,
        4_000_000_000,
        time::WRAP_UNIX - 1,
    ] {
        assert_eq!(time::to_unix(time::from_unix(unix).unwrap()), unix);
    }
}

/// What the decoder refuses (`misplaced_options`) is not written either: a prefix in an
/// IA_NA, an address in an IA_PD; the right kinds encode and read back.
#[test]
fn leases_of_the_wrong_kind_for_their_ia_are_not_encoded() {
    let a = Lease::address(Ipv6Addr::new(0x2001, 0xdb8, 0, 0, 0, 0, 0, 7), 60, 120);
    let p = Lease::prefix(
        Ipv6Addr::new(0x2001, 0xdb8, 0x100, 0, 0, 0, 0, 0),
        56,
        60,
        120,
    );
    let duid = [0, 3, 0, 1, 2, 0, 0x5e, 0, 0x53, 1];
    let update = |ias: &[Ia<'_>]| {
        BndUpd {
            xid: 1,
            sent_time: T0,
            binding: Binding::Client(ClientData::new(&duid, T0, ias)),
            extra: ExtraOptions::EMPTY,
        }
        .emit(&mut [0u8; 512])
    };
    for (kind, lease, code) in [(IaKind::Na, p, 26), (IaKind::Ta, p, 26), (IaKind::Pd, a, 5)] {
        let leases = [lease];
        assert_eq!(
            update(&[Ia::new(kind, 1, 0, 0, &leases)]),
            Err(EncodeError::V6MisplacedOption {
                code,
                parent: kind.code()
            }),
            "{kind:?}"
        );
    }
    let (na, pd) = ([a], [p]);
    let n = update(&[
        Ia::new(IaKind::Na, 1, 0, 0, &na),
        Ia::new(IaKind::Pd, 2, 0, 0, &pd),
    ])
    .unwrap();
    assert!(n > 0);
    assert_eq!(
        EncodeError::V6MisplacedOption {
            code: 26,
            parent: 3
        }
        .to_string(),
        "option 26 (OPTION_IAPREFIX) not allowed in OPTION_IA_NA"
    );
}
