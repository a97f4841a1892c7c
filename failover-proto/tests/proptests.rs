//! Property tests: typed value → emit → parse gives the value back, for every message type;
//! no input makes a parser or the framer panic; every truncation of a valid message is a typed
//! error.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use core::net::Ipv4Addr;
use failover_proto::framer::{Frames, frame_status};
use failover_proto::{
    Binding, BindingAck, BindingList, BindingStatus, BndAck, BndUpd, Connect, ConnectAck, Contact,
    Ddns, DdnsFlags, DecodeErrorKind, DigestType, Disconnect, ExtraOptions, Framer,
    HardwareAddress, Hba, IpFlags, Message, MessageDigest, PoolReq, PoolResp, RejectReason, Repr,
    ServerFlags, ServerState, State, Text, TlsReply, TlsRequest, UpdDone, UpdReq, UpdReqAll,
};
use proptest::collection::vec;
use proptest::option::of;
use proptest::prelude::*;

/// Owned data the borrowed reprs point into.
#[derive(Debug, Clone)]
struct Blobs {
    a: Vec<u8>,
    b: Vec<u8>,
    c: Vec<u8>,
    d: Vec<u8>,
    /// Pre-encoded vendor options (codes 30..=41).
    extra: Vec<u8>,
}

fn vendor_tlvs() -> impl Strategy<Value = Vec<u8>> {
    vec((30u16..=41, vec(any::<u8>(), 0..8)), 0..3).prop_map(|opts| {
        let mut out = Vec::new();
        for (code, data) in opts {
            out.extend_from_slice(&code.to_be_bytes());
            out.extend_from_slice(&(data.len() as u16).to_be_bytes());
            out.extend_from_slice(&data);
        }
        out
    })
}

fn blobs() -> impl Strategy<Value = Blobs> {
    (
        vec(any::<u8>(), 0..40),
        vec(any::<u8>(), 0..40),
        vec(any::<u8>(), 4..40),
        vec(any::<u8>(), 0..40),
        vendor_tlvs(),
    )
        .prop_map(|(a, b, c, d, extra)| Blobs { a, b, c, d, extra })
}

#[derive(Debug, Clone)]
struct Scalars {
    time: u32,
    xid: u32,
    u: [u32; 6],
    bytes: [u8; 6],
    flags: u16,
    hba: [u8; 32],
    opt: [bool; 12],
}

fn scalars() -> impl Strategy<Value = Scalars> {
    (
        any::<u32>(),
        any::<u32>(),
        any::<[u32; 6]>(),
        any::<[u8; 6]>(),
        any::<u16>(),
        any::<[u8; 32]>(),
        any::<[bool; 12]>(),
    )
        .prop_map(|(time, xid, u, bytes, flags, hba, opt)| Scalars {
            time,
            xid,
            u,
            bytes,
            flags,
            hba,
            opt,
        })
}

fn digest(s: &Scalars, bl: &Blobs) -> Option<MessageDigest<'static>> {
    let _ = bl;
    s.opt[11].then_some(MessageDigest {
        kind: DigestType::HmacMd5,
        digest: &[0u8; 16],
    })
}

fn check(repr: Repr<'_>) {
    let len = repr.buffer_len();
    let mut out = vec![0u8; len];
    assert_eq!(repr.emit(&mut out).unwrap(), len);
    let back = Repr::parse(&out).unwrap_or_else(|e| panic!("{e}: {repr:?}"));
    assert_eq!(back, repr);
    // Every truncation is a typed error, never a panic.
    for cut in 0..len {
        let e = Repr::parse(&out[..cut]).unwrap_err();
        assert!(
            matches!(e.kind(), DecodeErrorKind::Truncated { .. }),
            "{cut}: {e}"
        );
    }
    // A buffer one byte short reports the exact size.
    if len > 0 {
        let mut short = vec![0u8; len - 1];
        assert_eq!(
            repr.emit(&mut short),
            Err(failover_proto::EncodeError::BufferTooSmall { required: len })
        );
    }
}

fn binding<'a>(s: &Scalars, bl: &'a Blobs, status: u8, salt: u32) -> Binding<'a> {
    let status = BindingStatus::from(status);
    let needs_client = status.requires_client();
    let active = status == BindingStatus::Active;
    Binding {
        address: Ipv4Addr::from(s.u[0] ^ salt),
        status,
        client_identifier: s.opt[0].then_some(&bl.a[..]),
        hardware_address: (needs_client || s.opt[1]).then_some(HardwareAddress {
            htype: s.bytes[0],
            address: &bl.b[..bl.b.len().min(16)],
        }),
        lease_expiration_time: (active || s.opt[2]).then_some(s.u[1]),
        potential_expiration_time: (active || s.opt[3]).then_some(s.u[2]),
        start_time_of_state: s.opt[4].then_some(s.u[3]),
        client_last_transaction_time: s.opt[5].then_some(s.u[4]),
        ip_flags: s.opt[6].then_some(IpFlags(s.flags)),
        ddns: s.opt[7].then_some(Ddns {
            flags: DdnsFlags(s.flags),
            fqdn: &bl.d,
        }),
        client_request_options: s.opt[8].then_some(&bl.c[..]),
        client_reply_options: s.opt[9].then_some(&bl.c[..]),
        extra: ExtraOptions::from_encoded(&bl.extra),
    }
}

proptest! {
    #![proptest_config(ProptestConfig { cases: 512, ..ProptestConfig::default() })]

    #[test]
    fn bare_messages_round_trip(s in scalars(), bl in blobs(), which in 0u8..5) {
        let extra = ExtraOptions::from_encoded(&bl.extra);
        let d = digest(&s, &bl);
        let (time, xid) = (s.time, s.xid);
        let repr: Repr<'_> = match which {
            0 => PoolReq { time, xid, extra, digest: d }.into(),
            1 => UpdReqAll { time, xid, extra, digest: d }.into(),
            2 => UpdDone { time, xid, extra, digest: d }.into(),
            3 => UpdReq { time, xid, extra, digest: d }.into(),
            _ => Contact { time, xid, extra, digest: d }.into(),
        };
        check(repr);
    }

    #[test]
    fn poolresp_state_disconnect_round_trip(s in scalars(), bl in blobs(), state in any::<u8>(), reason in any::<u8>()) {
        let extra = ExtraOptions::from_encoded(&bl.extra);
        check(PoolResp { time: s.time, xid: s.xid, addresses_transferred: s.u[0], extra, digest: digest(&s, &bl) }.into());
        check(State {
            time: s.time, xid: s.xid,
            server_state: ServerState::from(state),
            server_flags: ServerFlags(s.bytes[0]),
            start_time_of_state: s.u[1],
            extra, digest: digest(&s, &bl),
        }.into());
        check(Disconnect {
            time: s.time, xid: s.xid,
            reject_reason: RejectReason::from(reason),
            message: s.opt[0].then_some(Text(&bl.a)),
            extra, digest: digest(&s, &bl),
        }.into());
    }

    #[test]
    fn connect_round_trips(s in scalars(), bl in blobs()) {
        check(Connect {
            time: s.time,
            xid: s.xid,
            relationship_name: Text(&bl.a),
            max_unacked_bndupd: s.u[0],
            receive_timer: s.u[1],
            vendor_class: Text(&bl.b),
            protocol_version: s.bytes[0],
            tls_request: s.opt[0].then_some(TlsRequest::from(s.bytes[1])),
            mclt: s.u[2],
            hba: Hba(s.hba),
            delayed_service: s.opt[1].then_some(s.bytes[2]),
            vendor_options: s.opt[2].then_some(&bl.d[..]),
            extra: ExtraOptions::from_encoded(&bl.extra),
            digest: digest(&s, &bl),
        }.into());
    }

    #[test]
    fn connectack_round_trips(s in scalars(), bl in blobs(), reject in any::<bool>()) {
        let full = !reject;
        check(ConnectAck {
            time: s.time,
            xid: s.xid,
            relationship_name: (full || s.opt[0]).then_some(Text(&bl.a)),
            max_unacked_bndupd: (full || s.opt[1]).then_some(s.u[0]),
            receive_timer: (full || s.opt[2]).then_some(s.u[1]),
            vendor_class: (full || s.opt[3]).then_some(Text(&bl.b)),
            protocol_version: s.bytes[0],
            tls_reply: s.opt[4].then_some(TlsReply::from(s.bytes[1])),
            reject_reason: reject.then_some(RejectReason::from(s.bytes[2])),
            message: s.opt[5].then_some(Text(&bl.d)),
            vendor_options: s.opt[6].then_some(&bl.c[..]),
            extra: ExtraOptions::from_encoded(&bl.extra),
            digest: digest(&s, &bl),
        }.into());
    }

    #[test]
    fn bndupd_round_trips(s in scalars(), bl in blobs(), statuses in vec(any::<u8>(), 1..4)) {
        let list: Vec<Binding<'_>> = statuses
            .iter()
            .enumerate()
            .map(|(i, &st)| binding(&s, &bl, st, i as u32))
            .collect();
        check(BndUpd {
            time: s.time,
            xid: s.xid,
            bindings: BindingList::from_slice(&list),
            extra: ExtraOptions::from_encoded(&bl.extra),
            digest: digest(&s, &bl),
        }.into());
    }

    #[test]
    fn bndack_round_trips(s in scalars(), bl in blobs(), reasons in vec(of(any::<u8>()), 1..4)) {
        let list: Vec<BindingAck<'_>> = reasons
            .iter()
            .enumerate()
            .map(|(i, r)| BindingAck {
                address: Ipv4Addr::from(s.u[0].wrapping_add(i as u32)),
                reject_reason: r.map(RejectReason::from),
                message: s.opt[i].then_some(Text(&bl.a)),
                extra: ExtraOptions::from_encoded(&bl.extra),
            })
            .collect();
        check(BndAck {
            time: s.time,
            xid: s.xid,
            acks: BindingList::from_slice(&list),
            extra: ExtraOptions::EMPTY,
            digest: digest(&s, &bl),
        }.into());
    }

    #[test]
    fn arbitrary_bytes_never_panic(data in vec(any::<u8>(), 0..2100)) {
        if let Ok(r) = Repr::parse(&data) {
            let mut out = vec![0u8; r.buffer_len()];
            r.emit(&mut out).unwrap();
            prop_assert_eq!(Repr::parse(&out).unwrap(), r);
        }
        let m = Message::new_unchecked(&data[..]);
        let _ = (m.length(), m.msg_type(), m.time(), m.xid(), m.payload(), m.extra_header());
        for o in m.options() {
            let _ = o;
        }
        let _ = frame_status(&data);
        for f in Frames::new(&data) {
            let _ = f;
        }
    }

    #[test]
    fn mutated_valid_messages_never_panic(s in scalars(), bl in blobs(), flips in vec((any::<usize>(), any::<u8>()), 1..6)) {
        let b = binding(&s, &bl, 2, 0);
        let u = BndUpd::single(s.time, s.xid, &b);
        let mut out = vec![0u8; u.buffer_len()];
        u.emit(&mut out).unwrap();
        for (at, v) in flips {
            let n = out.len();
            out[at % n] = v;
        }
        if let Ok(r) = Repr::parse(&out) {
            let mut again = vec![0u8; r.buffer_len()];
            r.emit(&mut again).unwrap();
            prop_assert_eq!(Repr::parse(&again).unwrap(), r);
        }
    }

    #[test]
    fn framer_matches_frames_for_any_chunking(
        msgs in vec((12u16..200, any::<u8>()), 0..12),
        tail in vec(any::<u8>(), 0..3),
        chunk in 1usize..300,
    ) {
        let mut stream = Vec::new();
        for (len, fill) in &msgs {
            let start = stream.len();
            stream.resize(start + usize::from(*len), *fill);
            stream[start..start + 2].copy_from_slice(&len.to_be_bytes());
        }
        let whole = stream.len();
        stream.extend_from_slice(&tail);
        let expected: Vec<&[u8]> = Frames::new(&stream).map_while(Result::ok).collect();
        let mut framer = Framer::new();
        let mut got = Vec::new();
        let mut error = false;
        for piece in stream.chunks(chunk) {
            let mut input = piece;
            loop {
                match framer.next_message(&mut input) {
                    Ok(Some(m)) => got.push(m.to_vec()),
                    Ok(None) => break,
                    Err(_) => { error = true; break; }
                }
            }
            if error { break; }
        }
        prop_assert_eq!(got.len(), expected.len());
        for (g, e) in got.iter().zip(&expected) {
            prop_assert_eq!(&g[..], *e);
        }
        if !error {
            prop_assert!(got.len() >= msgs.len());
            prop_assert_eq!(framer.stream_offset() as usize + framer.buffered(), stream.len().max(whole));
        }
    }
}
