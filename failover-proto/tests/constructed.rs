//! Field-level checks of the constructed vectors (one per message type), the decoder's
//! robustness cases, and the RFC 3074 hash vectors.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use core::net::Ipv4Addr;
use failover_proto::hash::{bucket, client_bucket};
use failover_proto::{
    BindingAck, BindingStatus, BndAck, BndUpd, Connect, ConnectAck, DecodeErrorKind, Disconnect,
    Hba, HbaPolarity, IpFlags, Message, MessageType, OptionCode, PoolResp, RejectReason, Repr,
    Role, ServerFlags, ServerState, State, Text, TlsReply, TlsRequest,
};

const T: u32 = 1_700_000_000;

fn hex(s: &str) -> Vec<u8> {
    let s: String = s.split_whitespace().collect();
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).unwrap())
        .collect()
}

fn round_trip(bytes: &[u8]) -> Repr<'_> {
    let repr = Repr::parse(bytes).unwrap();
    let mut out = vec![0u8; repr.buffer_len()];
    assert_eq!(repr.emit(&mut out).unwrap(), bytes.len());
    assert_eq!(out, bytes);
    repr
}

const CONNECT: &str = "00 73 05 0c 65 53 f1 00 00 00 00 00 00 16 00 0d
 64 68 63 70 2d 66 61 69 6c 6f 76 65 72 00 0e 00 04 00 00 00 0a 00 13 00 04 00 00 00 3c 00 1c 00
 0c 69 73 63 2d 34 2e 34 2e 33 2d 50 31 00 14 00 01 01 00 1b 00 01 00 00 0f 00 04 00 00 0e 10 00
 0b 00 20 ff ff ff ff ff ff ff ff ff ff ff ff ff ff ff ff 00 00 00 00 00 00 00 00 00 00 00 00 00
 00 00 00";

#[test]
fn connect_fields() {
    let bytes = hex(CONNECT);
    let Repr::Connect(c) = round_trip(&bytes) else {
        panic!()
    };
    assert_eq!((c.time, c.xid), (T, 0));
    assert_eq!(c.relationship_name, Text::from("dhcp-failover"));
    assert_eq!(c.max_unacked_bndupd, 10);
    assert_eq!(c.receive_timer, 60);
    assert_eq!(c.vendor_class.as_str(), Some("isc-4.4.3-P1"));
    assert_eq!(c.protocol_version, 1);
    assert_eq!(c.tls_request, Some(TlsRequest::NoTls));
    assert_eq!(c.mclt, 3600);
    assert_eq!(c.hba, Hba::split(128));
    assert!(c.extra.is_empty() && c.digest.is_none() && c.delayed_service.is_none());
}

#[test]
fn connectack_accept_and_iscs_reject() {
    let accept = hex("00 47 06 0c 65 53 f1 01 00 00 00 00 00 16 00 0d
 64 68 63 70 2d 66 61 69 6c 6f 76 65 72 00 0e 00 04 00 00 00 0a 00 13 00 04 00 00 00 3c 00 1c 00
 0c 69 73 63 2d 34 2e 34 2e 33 2d 50 31 00 14 00 01 01 00 1a 00 01 00");
    let Repr::ConnectAck(a) = round_trip(&accept) else {
        panic!()
    };
    assert_eq!(a.relationship_name, Some(Text::from("dhcp-failover")));
    assert_eq!(
        (a.max_unacked_bndupd, a.receive_timer),
        (Some(10), Some(60))
    );
    assert_eq!(a.tls_reply, Some(TlsReply::NoTls));
    assert_eq!(a.reject_reason, None);

    let reject = hex("00 65 06 0c 65 53 f1 01 00 00 00 00 00 16 00 0d
 64 68 63 70 2d 66 61 69 6c 6f 76 65 72 00 0e 00 04 00 00 00 0a 00 13 00 04 00 00 00 3c 00 1c 00
 0c 69 73 63 2d 34 2e 34 2e 33 2d 50 31 00 14 00 01 01 00 1a 00 01 00 00 15 00 01 04 00 10 00 15
 74 69 6d 65 20 6f 66 66 73 65 74 20 74 6f 6f 20 6c 61 72 67 65");
    let Repr::ConnectAck(r) = round_trip(&reject) else {
        panic!()
    };
    assert_eq!(r.reject_reason, Some(RejectReason::TimeMismatch));
    assert_eq!(r.message.unwrap().as_str(), Some("time offset too large"));
}

#[test]
fn connectack_accept_must_name_the_relationship() {
    // An accepting CONNECTACK without relationship-name: ISC answers DISCONNECT 8.
    let ack = ConnectAck {
        time: T,
        protocol_version: 1,
        max_unacked_bndupd: Some(10),
        receive_timer: Some(60),
        vendor_class: Some(Text::from("x")),
        ..ConnectAck::default()
    };
    let mut buf = [0u8; 64];
    let n = ack.emit(&mut buf).unwrap();
    let err = ConnectAck::from_bytes(&buf[..n]).unwrap_err();
    assert_eq!(
        err.kind(),
        DecodeErrorKind::MissingOption(OptionCode::RelationshipName)
    );
    assert_eq!(err.reject_reason(), RejectReason::InvalidPartner);
}

#[test]
fn state_normal_and_startup_flag() {
    let normal = hex(
        "00 1e 0a 0c 65 53 f1 01 00 00 00 01 00 18 00 01 02 00 17 00 01 00 00 19 00 04 65 52 9f 80",
    );
    let Repr::State(s) = round_trip(&normal) else {
        panic!()
    };
    assert_eq!(s.server_state, ServerState::Normal);
    assert_eq!(s.server_flags, ServerFlags::EMPTY);
    assert_eq!(s.start_time_of_state, T - 86400);
    let startup = hex(
        "00 1e 0a 0c 65 53 f1 01 00 00 00 01 00 18 00 01 03 00 17 00 01 01 00 19 00 04 65 52 9f 80",
    );
    let Repr::State(s) = round_trip(&startup) else {
        panic!()
    };
    assert_eq!(s.server_state, ServerState::CommunicationsInterrupted);
    assert!(s.server_flags.contains(ServerFlags::STARTUP));
}

#[test]
fn state_recover_wait_is_254_and_unknown_states_are_kept() {
    let s = State {
        time: T,
        xid: 3,
        server_state: ServerState::RecoverWait,
        server_flags: ServerFlags::EMPTY,
        start_time_of_state: T,
        extra: Default::default(),
        digest: None,
    };
    let mut buf = [0u8; 30];
    assert_eq!(s.emit(&mut buf).unwrap(), 30);
    assert_eq!(buf[16], 254);
    assert_eq!(State::from_bytes(&buf).unwrap(), s);
    buf[16] = 99;
    let back = State::from_bytes(&buf).unwrap();
    assert_eq!(back.server_state, ServerState::Unknown(99));
    let mut again = [0u8; 30];
    back.emit(&mut again).unwrap();
    assert_eq!(again, buf);
}

#[test]
fn bndupd_active_and_backup() {
    let active = hex("00 4f 03 0c 65 53 f1 05 00 00 00 07 00 02 00 04
 c0 00 02 0a 00 03 00 01 02 00 04 00 07 01 aa bb cc dd ee ff 00 05 00 07 01 aa bb cc dd ee ff 00
 0d 00 04 65 53 ff 10 00 12 00 04 65 55 57 98 00 19 00 04 65 53 f1 05 00 06 00 04 65 53 f1 05");
    let Repr::BndUpd(u) = round_trip(&active) else {
        panic!()
    };
    assert_eq!(u.xid, 7);
    assert_eq!(u.bindings.len(), 1);
    let b = u.bindings.first().unwrap();
    assert_eq!(b.address, Ipv4Addr::new(192, 0, 2, 10));
    assert_eq!(b.status, BindingStatus::Active);
    assert_eq!(
        b.client_identifier,
        Some(&[1, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff][..])
    );
    let hw = b.hardware_address.unwrap();
    assert_eq!(
        (hw.htype, hw.address),
        (1, &[0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff][..])
    );
    assert_eq!(b.lease_expiration_time, Some(T + 3600));
    assert_eq!(b.potential_expiration_time, Some(T + 91800));
    assert_eq!(b.start_time_of_state, Some(T + 5));
    assert_eq!(b.client_last_transaction_time, Some(T + 5));
    assert_eq!(b.ip_flags, None);

    let backup = hex("00 31 03 0c 65 53 f1 07 00 00 00 08 00 02 00 04
 c0 00 02 14 00 03 00 01 07 00 0d 00 04 00 00 00 00 00 12 00 04 65 53 f1 07 00 19 00 04 65 53 f1 07");
    let Repr::BndUpd(u) = round_trip(&backup) else {
        panic!()
    };
    let b = u.bindings.first().unwrap();
    assert_eq!(b.status, BindingStatus::Backup);
    assert_eq!(b.lease_expiration_time, Some(0));
    assert_eq!(b.hardware_address, None);
}

#[test]
fn bndack_accept_and_reject() {
    let accept = hex("00 14 04 0c 65 53 f1 06 00 00 00 07 00 02 00 04 c0 00 02 0a");
    let Repr::BndAck(a) = round_trip(&accept) else {
        panic!()
    };
    assert_eq!(
        a.acks.first(),
        Some(BindingAck::accept(Ipv4Addr::new(192, 0, 2, 10)))
    );
    let reject = hex("00 52 04 0c 65 53 f1 06 00 00 00 07 00 02 00 04
 c0 00 02 0a 00 15 00 01 10 00 10 00 35 69 6e 63 6f 6d 69 6e 67 20 75 70 64 61 74 65 20 69 73 20
 6c 65 73 73 20 63 72 69 74 69 63 61 6c 20 74 68 61 6e 20 6f 75 74 67 6f 69 6e 67 20 75 70 64 61 74 65");
    let Repr::BndAck(a) = round_trip(&reject) else {
        panic!()
    };
    let ack = a.acks.first().unwrap();
    assert_eq!(
        ack.reject_reason,
        Some(RejectReason::LessCriticalBindingInformation)
    );
    assert_eq!(
        ack.message.unwrap().as_str(),
        Some("incoming update is less critical than outgoing update")
    );
}

#[test]
fn option_less_messages_and_poolresp() {
    for (line, ty, xid) in [
        (
            "00 0c 01 0c 65 53 f1 08 00 00 00 09",
            MessageType::PoolReq,
            9,
        ),
        (
            "00 0c 07 0c 65 53 f1 02 00 00 00 02",
            MessageType::UpdReqAll,
            2,
        ),
        (
            "00 0c 09 0c 65 53 f1 02 00 00 00 02",
            MessageType::UpdReq,
            2,
        ),
        (
            "00 0c 08 0c 65 53 f1 03 00 00 00 02",
            MessageType::UpdDone,
            2,
        ),
        (
            "00 0c 0b 0c 65 53 f1 14 00 00 00 0a",
            MessageType::Contact,
            10,
        ),
    ] {
        let bytes = hex(line);
        let r = round_trip(&bytes);
        assert_eq!((r.message_type(), r.xid()), (ty, xid));
    }
    let bytes = hex("00 14 02 0c 65 53 f1 08 00 00 00 09 00 01 00 04 00 00 00 19");
    let Repr::PoolResp(p) = round_trip(&bytes) else {
        panic!()
    };
    assert_eq!(p.addresses_transferred, 25);
    assert_eq!(PoolResp::from_bytes(&bytes).unwrap(), p);
}

#[test]
fn disconnect_with_message() {
    let bytes = hex("00 37 0c 0c 65 53 f1 1e 00 00 00 0b 00 15 00 01
 11 00 10 00 22 4e 6f 20 74 72 61 66 66 69 63 20 77 69 74 68 69 6e 20 73 75 66 66 69 63 69 65 6e
 74 20 74 69 6d 65 2e");
    let Repr::Disconnect(d) = round_trip(&bytes) else {
        panic!()
    };
    assert_eq!(d.reject_reason, RejectReason::NoTraffic);
    assert_eq!(
        d.message.unwrap().as_str(),
        Some("No traffic within sufficient time.")
    );
    assert_eq!(Disconnect::from_bytes(&bytes).unwrap(), d);
}

// Decoder robustness cases (spec table "Negative / robustness cases").

#[test]
fn bad_lengths_are_fatal() {
    for len in [0u16, 1, 11, 2049, 65535] {
        let mut b = hex("00 0c 0b 0c 65 53 f1 14 00 00 00 0a");
        b[..2].copy_from_slice(&len.to_be_bytes());
        let e = Repr::parse(&b).unwrap_err();
        assert_eq!(e.kind(), DecodeErrorKind::BadLength(len));
        assert!(e.is_fatal());
        assert!(failover_proto::framer::frame_status(&b).is_err());
    }
}

#[test]
fn payload_offset_8_is_read_as_12_and_never_emitted() {
    let mut b = hex("00 14 02 0c 65 53 f1 08 00 00 00 09 00 01 00 04 00 00 00 19");
    b[3] = 8;
    let p = PoolResp::from_bytes(&b).unwrap();
    assert_eq!(p.addresses_transferred, 25);
    let mut out = [0u8; 20];
    p.emit(&mut out).unwrap();
    assert_eq!(out[3], 12);
}

#[test]
fn extra_header_bytes_are_skipped() {
    // payload offset 16 with 4 extra header bytes.
    let b = hex("00 18 02 10 65 53 f1 08 00 00 00 09 de ad be ef 00 01 00 04 00 00 00 19");
    let m = Message::new_checked(&b[..]).unwrap();
    assert_eq!(m.extra_header(), &[0xde, 0xad, 0xbe, 0xef]);
    assert_eq!(PoolResp::from_bytes(&b).unwrap().addresses_transferred, 25);
}

#[test]
fn bad_payload_offsets_are_rejected() {
    for poff in [0u8, 7, 9, 11, 21, 255] {
        let mut b = hex("00 14 02 0c 65 53 f1 08 00 00 00 09 00 01 00 04 00 00 00 19");
        b[3] = poff;
        let e = Repr::parse(&b).unwrap_err();
        assert_eq!(e.kind(), DecodeErrorKind::BadPayloadOffset(poff), "{poff}");
        assert_eq!(e.offset(), 3);
    }
}

#[test]
fn unknown_message_types() {
    for t in [0u8, 13, 100, 127] {
        let mut b = hex("00 0c 0b 0c 65 53 f1 14 00 00 00 0a");
        b[2] = t;
        let e = Repr::parse(&b).unwrap_err();
        assert_eq!(e.kind(), DecodeErrorKind::UnknownMessageType(t));
        assert!(e.is_fatal());
    }
    // Optional types are kept, options and all.
    let b = hex("00 14 80 0c 65 53 f1 14 00 00 00 0a 00 63 00 04 01 02 03 04");
    let Repr::Optional(o) = round_trip(&b) else {
        panic!()
    };
    assert_eq!(o.msg_type, 128);
    assert!(
        o.options
            .iter()
            .eq([(99u16, &[1u8, 2, 3, 4][..])]
                .iter()
                .map(|&(c, d)| failover_proto::RawOption {
                    code: c,
                    data: d,
                    offset: 12
                }))
    );
}

#[test]
fn ip_flags_of_one_byte_are_the_low_byte() {
    let b = hex(
        "00 24 03 0c 65 53 f1 07 00 00 00 08 00 02 00 04 c0 00 02 14 00 03 00 01 07 00 0c 00 01 01
 00 1e 00 02 ab cd",
    );
    let u = BndUpd::from_bytes(&b).unwrap();
    let bind = u.bindings.first().unwrap();
    assert_eq!(bind.ip_flags, Some(IpFlags::RESERVED));
    // Microsoft's vendor option 30 is kept and re-emitted.
    assert!(
        bind.extra
            .iter()
            .map(|o| (o.code, o.data))
            .eq([(30u16, &[0xab, 0xcd][..])])
    );
    let mut out = [0u8; 64];
    // Bindings decoded from the wire are re-emitted as received...
    let n = u.emit(&mut out).unwrap();
    assert_eq!(&out[..n], &b[..]);
    // ...while a typed binding writes IP-flags as the 2 bytes ISC requires.
    let n = BndUpd::single(u.time, u.xid, &bind).emit(&mut out).unwrap();
    assert_eq!(n, b.len() + 1);
    assert_eq!(BndUpd::from_bytes(&out[..n]).unwrap(), u);
}

#[test]
fn vendor_options_round_trip_in_place() {
    // CONNECT + Microsoft options 30..41 after the draft's: all survive.
    let mut b = hex(CONNECT);
    let extra = hex("00 1e 00 04 0a 00 00 01 00 29 00 04 00 00 00 01");
    b.extend_from_slice(&extra);
    let len = b.len() as u16;
    b[..2].copy_from_slice(&len.to_be_bytes());
    let Repr::Connect(c) = round_trip(&b) else {
        panic!()
    };
    let codes: Vec<u16> = c.extra.iter().map(|o| o.code).collect();
    assert_eq!(codes, [30, 41]);
}

#[test]
fn option_overrun_and_bad_lengths() {
    // An option running past the message.
    let b = hex("00 14 02 0c 65 53 f1 08 00 00 00 09 00 01 00 05 00 00 00 19");
    let e = Repr::parse(&b).unwrap_err();
    assert_eq!(e.kind(), DecodeErrorKind::OptionOverrun { code: 1 });
    assert_eq!(e.offset(), 12);
    // A 3-byte option header at the end.
    let b = hex("00 13 02 0c 65 53 f1 08 00 00 00 09 00 01 00 04 00 00 00");
    assert!(matches!(
        Repr::parse(&b).unwrap_err().kind(),
        DecodeErrorKind::OptionOverrun { .. }
    ));
    // Fixed-size options must have their exact size: addresses-transferred of 3 bytes.
    let b = hex("00 13 02 0c 65 53 f1 08 00 00 00 09 00 01 00 03 00 00 19");
    assert_eq!(
        Repr::parse(&b).unwrap_err().kind(),
        DecodeErrorKind::OptionLength { code: 1, len: 3 }
    );
    // An HBA of 31 bytes in a CONNECT is an HBA conflict (ISC: reject 18).
    let mut c = hex(CONNECT);
    c.truncate(c.len() - 1);
    let len = c.len() as u16;
    c[..2].copy_from_slice(&len.to_be_bytes());
    let n = c.len();
    c[n - 32] = 31; // option length low byte
    let e = Repr::parse(&c).unwrap_err();
    assert_eq!(
        e.kind(),
        DecodeErrorKind::OptionLength { code: 11, len: 31 }
    );
    assert_eq!(e.reject_reason(), RejectReason::HbaConflict);
}

#[test]
fn duplicates_and_digest_position() {
    // Two server-state options in a STATE.
    let b = hex(
        "00 23 0a 0c 65 53 f1 01 00 00 00 01 00 18 00 01 02 00 18 00 01 02 00 17 00 01 00 00 19 00 04 65 52 9f 80",
    );
    assert_eq!(
        Repr::parse(&b).unwrap_err().kind(),
        DecodeErrorKind::DuplicateOption(24)
    );
    // A digest followed by another option.
    let b = hex(
        "00 24 0a 0c 65 53 f1 01 00 00 00 01 00 11 00 02 01 00 00 18 00 01 02 00 17 00 01 00 00 19 00 04 65 52 9f 80",
    );
    assert_eq!(
        Repr::parse(&b).unwrap_err().kind(),
        DecodeErrorKind::DigestNotLast
    );
    // A digest last is fine and re-emitted last.
    let b = hex(
        "00 24 0a 0c 65 53 f1 01 00 00 00 01 00 18 00 01 02 00 17 00 01 00 00 19 00 04 65 52 9f 80 00 11 00 02 01 00",
    );
    let Repr::State(s) = round_trip(&b) else {
        panic!()
    };
    assert_eq!(s.digest.unwrap().digest, &[0]);
}

#[test]
fn batched_bndupd_is_two_transactions() {
    let b1 = failover_proto::Binding::new(Ipv4Addr::new(192, 0, 2, 1), BindingStatus::Free);
    let b2 = failover_proto::Binding {
        ip_flags: Some(IpFlags::RESERVED),
        ..failover_proto::Binding::new(Ipv4Addr::new(192, 0, 2, 2), BindingStatus::Backup)
    };
    let list = [b1, b2];
    let u = BndUpd {
        time: T,
        xid: 5,
        bindings: failover_proto::BindingList::from_slice(&list),
        extra: Default::default(),
        digest: None,
    };
    let mut out = [0u8; 128];
    let n = u.emit(&mut out).unwrap();
    let back = BndUpd::from_bytes(&out[..n]).unwrap();
    assert_eq!(back.bindings.len(), 2);
    assert_eq!(back, u);
    let got: Vec<Ipv4Addr> = back.bindings.iter().map(|b| b.address).collect();
    assert_eq!(
        got,
        [Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 2)]
    );

    // A BNDACK answering both, one rejected.
    let acks = [
        BindingAck::accept(Ipv4Addr::new(192, 0, 2, 1)),
        BindingAck {
            reject_reason: Some(RejectReason::IpNotReserved),
            ..BindingAck::accept(Ipv4Addr::new(192, 0, 2, 2))
        },
    ];
    let a = BndAck {
        time: T,
        xid: 5,
        acks: failover_proto::BindingList::from_slice(&acks),
        extra: Default::default(),
        digest: None,
    };
    let n = a.emit(&mut out).unwrap();
    assert_eq!(BndAck::from_bytes(&out[..n]).unwrap(), a);
}

#[test]
fn binding_rules() {
    // A binding option before the first assigned-IP-address.
    let b = hex("00 1e 03 0c 65 53 f1 07 00 00 00 08 00 03 00 01 07 00 02 00 04 c0 00 02 14");
    assert_eq!(b.len(), 25);
    let mut b = b;
    b[1] = 25;
    assert_eq!(
        Repr::parse(&b).unwrap_err().kind(),
        DecodeErrorKind::OptionOutsideBinding(3)
    );
    // ACTIVE without a hardware address: missing binding information (ISC: reject 3).
    let u = failover_proto::Binding {
        lease_expiration_time: Some(T),
        potential_expiration_time: Some(T),
        ..failover_proto::Binding::new(Ipv4Addr::new(192, 0, 2, 3), BindingStatus::Active)
    };
    let mut out = [0u8; 64];
    let n = BndUpd::single(T, 1, &u).emit(&mut out).unwrap();
    let e = Repr::parse(&out[..n]).unwrap_err();
    assert_eq!(
        e.kind(),
        DecodeErrorKind::MissingOption(OptionCode::ClientHardwareAddress)
    );
    assert_eq!(e.reject_reason(), RejectReason::MissingBindingInformation);
    // A BNDUPD with no binding at all.
    let b = hex("00 0c 03 0c 65 53 f1 07 00 00 00 08");
    assert_eq!(
        Repr::parse(&b).unwrap_err().kind(),
        DecodeErrorKind::MissingOption(OptionCode::AssignedIpAddress)
    );
    // Binding status is required.
    let b = hex("00 14 03 0c 65 53 f1 07 00 00 00 08 00 02 00 04 c0 00 02 14");
    assert_eq!(
        Repr::parse(&b).unwrap_err().kind(),
        DecodeErrorKind::MissingOption(OptionCode::BindingStatus)
    );
}

#[test]
fn encode_errors() {
    let bytes = hex(CONNECT);
    let c = Connect::from_bytes(&bytes).unwrap();
    let mut small = [0u8; 114];
    assert_eq!(
        c.emit(&mut small),
        Err(failover_proto::EncodeError::BufferTooSmall { required: 115 })
    );
    let long = [b'x'; 2000];
    let c = Connect {
        vendor_class: Text(&long),
        ..c
    };
    let mut big = [0u8; 4096];
    assert!(matches!(
        c.emit(&mut big),
        Err(failover_proto::EncodeError::MessageTooLong { .. })
    ));
    let empty: [failover_proto::Binding<'_>; 0] = [];
    let u = BndUpd {
        time: T,
        xid: 1,
        bindings: failover_proto::BindingList::from_slice(&empty),
        extra: Default::default(),
        digest: None,
    };
    assert_eq!(
        u.emit(&mut big),
        Err(failover_proto::EncodeError::NoBinding)
    );
}

#[test]
fn wrong_type_for_a_typed_parser() {
    let bytes = hex(CONNECT);
    assert_eq!(
        State::from_bytes(&bytes).unwrap_err().kind(),
        DecodeErrorKind::WrongMessageType {
            expected: 10,
            found: 5
        }
    );
}

#[test]
fn reject_reason_descriptions_and_codes() {
    for v in (0..=21).chain([254]) {
        let r = RejectReason::from(v);
        assert!(!matches!(r, RejectReason::Unknown(_)), "{v}");
        assert_eq!(u8::from(r), v);
        assert!(r.description().len() > 5);
    }
    assert_eq!(RejectReason::from(22), RejectReason::Unknown(22));
    assert_eq!(
        RejectReason::HbaConflict.description(),
        "Hash bucket assignment conflict"
    );
}

// RFC 3074 hash vectors (RFC 3074 §6 table; worked examples cross-checked against ISC's table).
#[test]
fn load_balancing_hash_vectors() {
    let cases: [(&[u8], u8); 10] = [
        (&[], 0),
        (&[0x00], 175),
        (&[0x00, 0x0c, 0x29, 0x12, 0x34, 0x56], 201),
        (&[0x00, 0x11, 0x22, 0x33, 0x44, 0x55], 135),
        (&[0x01, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55], 223),
        (&[0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff], 57),
        (&[0x00, 0x00, 0x00, 0x00, 0x00, 0x01], 153),
        (&[0x00, 0x50, 0x56, 0x9a, 0x0b, 0x1c], 168),
        (&[0x02, 0x00, 0x00, 0x00, 0x00, 0x01], 133),
        (&[0x08, 0x00, 0x27, 0x00, 0x00, 0xff], 225),
    ];
    let split = Hba::split(128);
    for (key, want) in cases {
        assert_eq!(bucket(key), want, "{key:02x?}");
        // ISC polarity with `split 128`: buckets below 128 are the primary's.
        let role = split.server_for(want, HbaPolarity::BitsArePrimary);
        assert_eq!(role == Role::Primary, want < 128);
        assert_eq!(
            split.server_for(want, HbaPolarity::BitsAreSecondary),
            role.partner()
        );
    }
    // The client-identifier wins over chaddr.
    let mac = [0x00, 0x11, 0x22, 0x33, 0x44, 0x55];
    assert_eq!(client_bucket(None, &mac), 135);
    assert_eq!(
        client_bucket(Some(&[0x01, 0x00, 0x11, 0x22, 0x33, 0x44, 0x55]), &mac),
        223
    );
    // The table is a permutation: every single-byte key of length 1 lands in a distinct bucket.
    let mut seen = [false; 256];
    for b in 0..=255u8 {
        seen[usize::from(bucket(&[b]))] = true;
    }
    assert!(seen.iter().all(|&s| s));
}

#[test]
fn hba_bits_and_split() {
    let split = Hba::split(128);
    assert_eq!(&split.0[..16], &[0xff; 16]);
    assert_eq!(&split.0[16..], &[0; 16]);
    assert_eq!(split.count(), 128);
    assert_eq!(Hba::split(300), Hba([0xff; 32]));
    assert_eq!(Hba::split(0), Hba::default());
    // RFC 3074 §5.2 example: buckets 0–47 and 64–127.
    let mut h = Hba::default();
    for b in (0..48).chain(64..128) {
        h.set(b, true);
    }
    let mut want = [0u8; 32];
    want[..6].fill(0xff);
    want[8..16].fill(0xff);
    assert_eq!(h.0, want);
    h.set(0, false);
    assert_eq!(h.0[0], 0xfe);
    assert!(!h.get(0) && h.get(1));
    assert_eq!(h.inverted().count(), 256 - h.count());
    assert!(split.serves(Role::Primary, 57, HbaPolarity::BitsArePrimary));
    assert!(split.serves(Role::Secondary, 201, HbaPolarity::BitsArePrimary));
    assert!(split.serves(Role::Secondary, 57, HbaPolarity::BitsAreSecondary));
}
