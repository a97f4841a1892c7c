//! The decoder (`cargo run --example decode`) on the ISC vectors and on synthetic captures.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

use std::borrow::Cow;
use std::collections::HashMap;
use std::net::Ipv4Addr;
use std::path::PathBuf;
use std::time::Duration;

use etherparse::{LinuxSllPacketType, PacketBuilder};
use failover_examples::decode::{
    Decoded, Event, Problem, Record, decode_bytes, decode_capture, decode_hex, render_json,
    render_text, run,
};
use failover_proto::{
    Binding, BindingList, BindingStatus, BndUpd, Connect, ConnectAck, Contact, DecodeErrorKind,
    ExtraOptions, HardwareAddress, Hba, MessageType, OptionCode, ServerFlags, ServerState, State,
    Text, TlsReply, TlsRequest,
};
use pcap_file::DataLink;
use pcap_file::pcap::{PcapHeader, PcapPacket, PcapWriter};
use pcap_file::pcapng::PcapNgWriter;
use pcap_file::pcapng::blocks::enhanced_packet::EnhancedPacketBlock;
use pcap_file::pcapng::blocks::interface_description::InterfaceDescriptionBlock;

fn vectors() -> PathBuf {
    PathBuf::from(env!("CARGO_MANIFEST_DIR")).join("../failover-proto/tests/vectors")
}

fn read(name: &str) -> Vec<u8> {
    std::fs::read(vectors().join(name)).unwrap_or_else(|e| panic!("{name}: {e}"))
}

/// (scenario, messages, malformed messages), from the interop README.
const SCENARIOS: [(&str, usize, usize); 5] = [
    ("startup", 110, 0),
    ("leases", 447, 0),
    ("poolreq", 273, 0),
    ("partnerdown", 378, 0),
    ("rejects", 33, 3),
];

#[test]
fn hex_vectors_decode_with_expected_counts() {
    for (name, messages, errors) in SCENARIOS {
        let d = decode_bytes(&read(&format!("{name}.hex"))).unwrap();
        assert!(d.input_errors.is_empty(), "{name}: {:?}", d.input_errors);
        assert_eq!(d.message_count(), messages, "{name}");
        assert_eq!(d.error_count(), errors, "{name}");
        assert_eq!(d.exit_status(), i32::from(errors > 0), "{name}");
        // The idx column counts the messages.
        let idx: Vec<u64> = d.messages().map(|(r, _)| r.idx.unwrap()).collect();
        assert_eq!(idx, (1..=messages as u64).collect::<Vec<_>>(), "{name}");
    }
}

#[test]
fn rejects_probes_are_the_missing_option_errors() {
    let d = decode_bytes(&read("rejects.hex")).unwrap();
    let errors: Vec<(u64, OptionCode)> = d
        .messages()
        .filter_map(|(r, m)| match m.problem {
            Some(Problem::Decode(e)) => match e.kind() {
                DecodeErrorKind::MissingOption(code) => Some((r.idx.unwrap(), code)),
                other => panic!("unexpected {other:?}"),
            },
            Some(p) => panic!("unexpected {p:?}"),
            None => None,
        })
        .collect();
    assert_eq!(
        errors,
        [
            (3, OptionCode::HashBucketAssignment),
            (5, OptionCode::Mclt),
            (9, OptionCode::RelationshipName),
        ]
    );
    for (r, m) in d.messages().filter(|(_, m)| m.problem.is_some()) {
        let line = render_text(r, 0);
        assert!(line.contains("CONNECT"), "{line}");
        assert!(
            line.contains("ERROR MissingOption: missing mandatory option"),
            "{line}"
        );
        assert!(line.contains("at offset 12"), "{line}");
        assert!(line.ends_with(&format!("hex={}", hex(&m.bytes))), "{line}");
    }
}

fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// The `# labels: P=198.18.0.1 S=198.18.0.2` comment of a hex vector file.
fn labels(hex_file: &str) -> HashMap<String, String> {
    hex_file
        .lines()
        .find_map(|l| l.strip_prefix("# labels:"))
        .unwrap()
        .split_whitespace()
        .map(|kv| {
            let (k, v) = kv.split_once('=').unwrap();
            (k.to_owned(), v.to_owned())
        })
        .collect()
}

/// `198.18.0.1:42787>198.18.0.2:647` to `(198.18.0.1, 198.18.0.2)`.
fn hosts(dir: &str) -> (String, String) {
    let (a, b) = dir.split_once('>').unwrap();
    let host = |s: &str| s.rsplit_once(':').unwrap().0.to_owned();
    (host(a), host(b))
}

#[test]
fn pcaps_give_the_same_messages_as_the_hex_files() {
    for (name, messages, errors) in SCENARIOS {
        let text = String::from_utf8(read(&format!("{name}.hex"))).unwrap();
        let from_hex = decode_hex(&text);
        let from_pcap = decode_bytes(&read(&format!("{name}.pcap"))).unwrap();
        assert!(from_pcap.input_errors.is_empty(), "{name}");
        assert_eq!(from_pcap.message_count(), messages, "{name}");
        assert_eq!(from_pcap.error_count(), errors, "{name}");
        let labels = labels(&text);
        let pairs: Vec<_> = from_hex.messages().zip(from_pcap.messages()).collect();
        assert_eq!(pairs.len(), messages, "{name}");
        for ((hr, hm), (pr, pm)) in pairs {
            let ctx = format!("{name} idx {}", hr.idx.unwrap());
            assert_eq!(hm.bytes, pm.bytes, "{ctx}");
            assert_eq!(hm.problem, pm.problem, "{ctx}");
            assert_eq!(hr.conn, pr.conn, "{ctx}");
            let diff = hr.time.abs_diff(pr.time);
            assert!(diff <= Duration::from_micros(1), "{ctx}: {diff:?}");
            let (from, to) = hr.dir.split_once('>').unwrap();
            assert_eq!(
                hosts(&pr.dir),
                (labels[from].clone(), labels[to].clone()),
                "{ctx}"
            );
        }
        // TCP events, which the hex file lists as comments, match too.
        let tcp = |d: &Decoded| {
            let mut v: Vec<(u32, String, Duration)> = d
                .records
                .iter()
                .filter_map(|r| match &r.event {
                    Event::Tcp { flags } => Some((r.conn, flags.clone(), r.time)),
                    _ => None,
                })
                .collect();
            v.sort();
            v
        };
        let (th, tp) = (tcp(&from_hex), tcp(&from_pcap));
        assert!(!th.is_empty(), "{name}");
        assert_eq!(th.len(), tp.len(), "{name}");
        for (a, b) in th.iter().zip(&tp) {
            assert_eq!((a.0, &a.1), (b.0, &b.1), "{name}");
            assert!(a.2.abs_diff(b.2) <= Duration::from_micros(1), "{name}");
        }
    }
}

// ---- synthetic captures ----

const CLIENT: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 1);
const SERVER: Ipv4Addr = Ipv4Addr::new(10, 0, 0, 2);
const CPORT: u16 = 40000;

fn emit(repr: impl Into<failover_proto::Repr<'static>>) -> Vec<u8> {
    let repr = repr.into();
    let mut out = vec![0; repr.buffer_len()];
    let n = repr.emit(&mut out).unwrap();
    assert_eq!(n, out.len());
    out
}

const MAC: [u8; 6] = [0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff];
static BINDINGS: [Binding<'static>; 2] = [
    Binding::new(Ipv4Addr::new(192, 0, 2, 10), BindingStatus::Free),
    Binding {
        hardware_address: Some(HardwareAddress {
            htype: 1,
            address: &MAC,
        }),
        lease_expiration_time: Some(1_700_000_600),
        potential_expiration_time: Some(1_700_001_200),
        ..Binding::new(Ipv4Addr::new(192, 0, 2, 11), BindingStatus::Active)
    },
];

fn connect() -> Vec<u8> {
    emit(Connect {
        time: 1_700_000_000,
        xid: 0,
        relationship_name: Text::from("synthetic"),
        max_unacked_bndupd: 10,
        receive_timer: 60,
        vendor_class: Text::from("test"),
        protocol_version: 1,
        tls_request: Some(TlsRequest::NoTls),
        mclt: 3600,
        hba: Hba::split(128),
        ..Connect::default()
    })
}

fn state(xid: u32, s: ServerState) -> Vec<u8> {
    emit(State {
        time: 1_700_000_001,
        xid,
        server_state: s,
        server_flags: ServerFlags::STARTUP,
        start_time_of_state: 1_699_999_000,
        extra: ExtraOptions::EMPTY,
        digest: None,
    })
}

fn contact(xid: u32) -> Vec<u8> {
    emit(Contact {
        time: 1_700_000_002,
        xid,
        ..Contact::default()
    })
}

fn bndupd(xid: u32) -> Vec<u8> {
    emit(BndUpd {
        time: 1_700_000_003,
        xid,
        bindings: BindingList::from_slice(&BINDINGS),
        extra: ExtraOptions::EMPTY,
        digest: None,
    })
}

fn connectack() -> Vec<u8> {
    emit(ConnectAck {
        time: 1_700_000_000,
        xid: 0,
        relationship_name: Some(Text::from("synthetic")),
        max_unacked_bndupd: Some(10),
        receive_timer: Some(60),
        vendor_class: Some(Text::from("test")),
        protocol_version: 1,
        tls_reply: Some(TlsReply::NoTls),
        ..ConnectAck::default()
    })
}

/// One TCP segment of the synthetic capture.
struct Seg {
    ms: u64,
    from_client: bool,
    seq: u32,
    flags: &'static str,
    payload: Vec<u8>,
}

fn seg(ms: u64, from_client: bool, seq: u32, flags: &'static str, payload: &[u8]) -> Seg {
    Seg {
        ms,
        from_client,
        seq,
        flags,
        payload: payload.to_vec(),
    }
}

/// The IP packet (no link layer) of a segment, on `port` at the server.
fn ip_packet(s: &Seg, link: DataLink, port: u16) -> Vec<u8> {
    let (src, dst, sport, dport) = if s.from_client {
        (CLIENT, SERVER, CPORT, port)
    } else {
        (SERVER, CLIENT, port, CPORT)
    };
    let builder = match link {
        DataLink::ETHERNET => PacketBuilder::ethernet2([2, 0, 0, 0, 0, 1], [2, 0, 0, 0, 0, 2])
            .ipv4(src.octets(), dst.octets(), 64),
        DataLink::LINUX_SLL => {
            PacketBuilder::linux_sll(LinuxSllPacketType::OUTGOING, 6, [2, 0, 0, 0, 0, 1, 0, 0])
                .ipv4(src.octets(), dst.octets(), 64)
        }
        DataLink::RAW => PacketBuilder::ipv4(src.octets(), dst.octets(), 64),
        other => panic!("{other:?}"),
    };
    let mut b = builder.tcp(sport, dport, s.seq, 65535);
    for f in s.flags.split('+').filter(|f| !f.is_empty()) {
        b = match f {
            "SYN" => b.syn(),
            "ACK" => b.ack(1),
            "FIN" => b.fin(),
            "RST" => b.rst(),
            other => panic!("{other}"),
        };
    }
    let mut out = Vec::new();
    b.write(&mut out, &s.payload).unwrap();
    out
}

const EPOCH: Duration = Duration::from_secs(1_700_000_000);

fn pcap(segs: &[Seg], link: DataLink, port: u16) -> Vec<u8> {
    let header = PcapHeader {
        datalink: link,
        ..PcapHeader::default()
    };
    let mut w = PcapWriter::with_header(Vec::new(), header).unwrap();
    for s in segs {
        let data = ip_packet(s, link, port);
        let ts = EPOCH + Duration::from_millis(s.ms);
        w.write_packet(&PcapPacket::new(ts, data.len() as u32, &data))
            .unwrap();
    }
    w.into_writer()
}

fn pcapng(segs: &[Seg], link: DataLink) -> Vec<u8> {
    let mut w = PcapNgWriter::new(Vec::new()).unwrap();
    w.write_pcapng_block(InterfaceDescriptionBlock::new(link, 0))
        .unwrap();
    for s in segs {
        let data = ip_packet(s, link, 647);
        // Default if_tsresol: microseconds. pcap-file 2 writes the Duration's nanoseconds as
        // the raw value, so pass the microsecond count as nanoseconds.
        let raw_us = (EPOCH + Duration::from_millis(s.ms)).as_micros() as u64;
        w.write_pcapng_block(EnhancedPacketBlock {
            interface_id: 0,
            timestamp: Duration::from_nanos(raw_us),
            original_len: data.len() as u32,
            data: Cow::Borrowed(&data),
            options: vec![],
        })
        .unwrap();
    }
    w.into_inner()
}

/// A handshake, then the client's CONNECT, STATE, CONTACT and BNDUPD in four segments
/// (CONNECT split over two, two messages sharing one), delivered out of order, duplicated and
/// partly retransmitted; the server's CONNECTACK and STATE in one segment; FINs. The client's
/// ISN is close to 2^32, so its sequence numbers wrap inside the stream.
fn scenario() -> (Vec<Seg>, Vec<Vec<u8>>, Vec<Vec<u8>>) {
    let client_msgs = vec![
        connect(),
        state(1, ServerState::RecoverWait),
        contact(2),
        bndupd(3),
    ];
    let server_msgs = vec![connectack(), state(0, ServerState::Normal)];
    let stream: Vec<u8> = client_msgs.concat();
    let c0 = connect().len();
    let s1 = 50; // CONNECT split at 50
    let s2 = c0 + client_msgs[1].len(); // rest of CONNECT + STATE
    let s3 = s2 + client_msgs[2].len() + 20; // CONTACT + 20 bytes of BNDUPD
    let isn_c: u32 = u32::MAX - 60;
    let isn_s: u32 = 7000;
    let at = |off: usize| isn_c.wrapping_add(1).wrapping_add(off as u32);
    let sstream: Vec<u8> = server_msgs.concat();
    let segs = vec![
        seg(0, true, isn_c, "SYN", &[]),
        seg(1, false, isn_s, "SYN+ACK", &[]),
        seg(2, true, at(0), "ACK", &[]),
        seg(10, true, at(0), "ACK", &stream[..s1]),
        seg(11, true, at(s2), "ACK", &stream[s2..s3]), // out of order
        seg(12, true, at(0), "ACK", &stream[..s1]),    // duplicate
        seg(13, true, at(s1), "ACK", &stream[s1..s2]), // fills the gap: 3 messages
        seg(14, false, isn_s + 1, "ACK", &sstream),
        seg(15, true, at(s3), "ACK", &stream[s3..]),
        seg(16, true, at(s3), "ACK", &stream[s3..]), // duplicate
        seg(17, true, at(40), "ACK", &stream[40..70]), // partial retransmission
        seg(20, true, at(stream.len()), "FIN+ACK", &[]),
        seg(21, false, isn_s + 1 + sstream.len() as u32, "FIN+ACK", &[]),
    ];
    (segs, client_msgs, server_msgs)
}

fn check_scenario(d: &Decoded, client_msgs: &[Vec<u8>], server_msgs: &[Vec<u8>]) {
    assert!(d.input_errors.is_empty(), "{:?}", d.input_errors);
    assert_eq!(d.error_count(), 0, "{:#?}", d.records);
    let c2s = format!("{CLIENT}:{CPORT}>{SERVER}:647");
    let s2c = format!("{SERVER}:647>{CLIENT}:{CPORT}");
    let got: Vec<(&str, u64, &[u8])> = d
        .messages()
        .map(|(r, m)| (r.dir.as_str(), r.time.as_millis() as u64, &m.bytes[..]))
        .collect();
    let want: Vec<(&str, u64, &[u8])> = vec![
        (&c2s, 13, &client_msgs[0]),
        (&c2s, 13, &client_msgs[1]),
        (&c2s, 13, &client_msgs[2]),
        (&s2c, 14, &server_msgs[0]),
        (&s2c, 14, &server_msgs[1]),
        (&c2s, 15, &client_msgs[3]),
    ];
    assert_eq!(got, want);
    assert!(d.records.iter().all(|r| r.conn == 1));
    let tcp: Vec<(&str, &str)> = d
        .records
        .iter()
        .filter_map(|r| match &r.event {
            Event::Tcp { flags } => Some((r.dir.as_str(), flags.as_str())),
            _ => None,
        })
        .collect();
    assert_eq!(
        tcp,
        [
            (c2s.as_str(), "SYN"),
            (s2c.as_str(), "SYN+ACK"),
            (c2s.as_str(), "FIN"),
            (s2c.as_str(), "FIN")
        ]
    );
}

#[test]
fn synthetic_pcap_reassembles_split_packed_and_reordered_segments() {
    let (segs, client_msgs, server_msgs) = scenario();
    for link in [DataLink::ETHERNET, DataLink::LINUX_SLL, DataLink::RAW] {
        let d = decode_capture(&pcap(&segs, link, 647)).unwrap();
        check_scenario(&d, &client_msgs, &server_msgs);
        assert_eq!(d.exit_status(), 0);
    }
}

#[test]
fn synthetic_pcapng_with_linux_cooked_headers() {
    let (segs, client_msgs, server_msgs) = scenario();
    let data = pcapng(&segs, DataLink::LINUX_SLL);
    let d = decode_bytes(&data).unwrap();
    check_scenario(&d, &client_msgs, &server_msgs);
}

#[test]
fn other_ports_are_ignored() {
    let (segs, _, _) = scenario();
    let d = decode_capture(&pcap(&segs, DataLink::ETHERNET, 648)).unwrap();
    assert!(d.records.is_empty());
    assert_eq!(d.exit_status(), 0);
    assert!(
        d.notes
            .iter()
            .any(|n| n.contains("no TCP traffic on port 647"))
    );
}

#[test]
fn bad_length_skips_the_rest_of_the_direction_only() {
    let mut stream = contact(1);
    stream.extend_from_slice(&[0x00, 0x05, 0x0b, 0x0c]); // length 5 < 12
    stream.extend_from_slice(&contact(2));
    let reply = contact(9);
    let segs = vec![
        seg(0, true, 100, "ACK", &stream[..14]),
        seg(1, false, 500, "ACK", &reply),
        seg(2, true, 114, "ACK", &stream[14..]),
        seg(3, false, 512, "ACK", &reply),
    ];
    let d = decode_capture(&pcap(&segs, DataLink::ETHERNET, 647)).unwrap();
    assert_eq!(d.message_count(), 3, "{:#?}", d.records);
    assert_eq!(d.error_count(), 1);
    assert_eq!(d.exit_status(), 1);
    let Some(Record {
        event: Event::StreamError(e),
        time,
        ..
    }) = d.records.iter().find(|r| r.is_error())
    else {
        panic!("no stream error")
    };
    assert_eq!(*time, Duration::ZERO);
    assert_eq!(e.stream_offset, 12);
    assert_eq!(e.error.unwrap().kind(), DecodeErrorKind::BadLength(5));
    assert_eq!(
        e.skipped,
        stream.len() as u64 - 12,
        "later bytes are counted"
    );
    let line = render_text(d.records.iter().find(|r| r.is_error()).unwrap(), 0);
    assert!(
        line.contains("STREAM-ERROR BadLength: message length 5 outside 12..=2048 at offset 12"),
        "{line}"
    );
    assert!(line.contains("cannot be framed"), "{line}");
    let j: serde_json::Value = serde_json::from_str(&render_json(
        d.records.iter().find(|r| r.is_error()).unwrap(),
    ))
    .unwrap();
    assert_eq!(j["kind"], "stream-error");
    assert_eq!(j["error"]["kind"], "BadLength");
    assert_eq!(j["stream_offset"], 12);
}

#[test]
fn missing_segment_and_cut_off_message_are_errors() {
    let msg = state(4, ServerState::Normal);
    // Client: a message, then (after 10 missing bytes) another. Server: half a message.
    let segs = vec![
        seg(0, true, 1, "ACK", &msg),
        seg(1, true, 1 + msg.len() as u32 + 10, "ACK", &msg),
        seg(2, false, 1, "ACK", &msg[..20]),
    ];
    let d = decode_capture(&pcap(&segs, DataLink::ETHERNET, 647)).unwrap();
    assert_eq!(d.message_count(), 2);
    assert_eq!(d.error_count(), 2);
    let gap = d
        .records
        .iter()
        .find_map(|r| match &r.event {
            Event::StreamError(e) => Some(e),
            _ => None,
        })
        .unwrap();
    assert_eq!((gap.error, gap.missing, gap.skipped), (None, 10, 30));
    let (r, m) = d.messages().find(|(_, m)| m.problem.is_some()).unwrap();
    assert_eq!(m.bytes, &msg[..20]);
    assert!(
        render_text(r, 0).contains("the capture ends inside this message"),
        "{}",
        render_text(r, 0)
    );
}

#[test]
fn connections_are_numbered_and_a_reused_tuple_is_a_new_connection() {
    let c = contact(1);
    let segs = vec![
        seg(0, true, 10, "SYN", &[]),
        seg(1, false, 20, "RST+ACK", &[]),
        seg(2, true, 5000, "SYN", &[]), // same 4-tuple, new ISN: connection 2
        seg(3, false, 9000, "SYN+ACK", &[]),
        seg(4, true, 5001, "ACK", &c),
        seg(5, true, 5001, "ACK", &c), // retransmission
    ];
    let d = decode_capture(&pcap(&segs, DataLink::ETHERNET, 647)).unwrap();
    let summary: Vec<(u32, String)> = d
        .records
        .iter()
        .map(|r| {
            let what = match &r.event {
                Event::Tcp { flags } => flags.clone(),
                Event::Message(_) => "MSG".to_owned(),
                Event::StreamError(_) => "ERR".to_owned(),
            };
            (r.conn, what)
        })
        .collect();
    let want: Vec<(u32, String)> = [
        (1, "SYN"),
        (1, "RST"),
        (2, "SYN"),
        (2, "SYN+ACK"),
        (2, "MSG"),
    ]
    .iter()
    .map(|(c, s)| (*c, (*s).to_owned()))
    .collect();
    assert_eq!(summary, want);
    assert_eq!(d.exit_status(), 0);
}

#[test]
fn capture_starting_mid_connection_frames_from_the_first_segment() {
    let (a, b) = (contact(5), bndupd(6));
    let segs = vec![
        seg(0, false, 3_000_000_000, "ACK", &a),
        seg(1, false, 3_000_000_000 + a.len() as u32, "ACK", &b),
    ];
    let d = decode_capture(&pcap(&segs, DataLink::ETHERNET, 647)).unwrap();
    let got: Vec<&[u8]> = d.messages().map(|(_, m)| &m.bytes[..]).collect();
    assert_eq!(got, [&a[..], &b[..]]);
    assert_eq!(d.records[0].dir, format!("{SERVER}:647>{CLIENT}:{CPORT}"));
}

// ---- output ----

#[test]
fn json_lines_parse_and_carry_the_fields() {
    let (segs, _, _) = scenario();
    let d = decode_capture(&pcap(&segs, DataLink::ETHERNET, 647)).unwrap();
    let lines: Vec<serde_json::Value> = d
        .records
        .iter()
        .map(|r| serde_json::from_str(&render_json(r)).unwrap())
        .collect();
    let connect = lines.iter().find(|j| j["type"] == "CONNECT").unwrap();
    assert_eq!(connect["kind"], "message");
    assert_eq!(connect["conn"], 1);
    assert_eq!(connect["dir"], format!("{CLIENT}:{CPORT}>{SERVER}:647"));
    assert_eq!(connect["time"].as_f64().unwrap(), 0.013);
    assert_eq!(connect["type_code"], 5);
    assert_eq!(connect["xid"], "0x00000000");
    assert_eq!(connect["header_time"], 1_700_000_000);
    assert_eq!(
        connect["len"].as_u64().unwrap() as usize,
        self::connect().len()
    );
    assert_eq!(connect["hex"], hex(&self::connect()));
    let opts = connect["options"].as_array().unwrap();
    let names: Vec<&str> = opts.iter().map(|o| o["name"].as_str().unwrap()).collect();
    assert_eq!(
        names,
        [
            "relationship-name",
            "max-unacked-bndupd",
            "receive-timer",
            "vendor-class-identifier",
            "protocol-version",
            "TLS-request",
            "MCLT",
            "hash-bucket-assignment"
        ]
    );
    assert_eq!(opts[0]["value"], "synthetic");
    assert_eq!(opts[0]["code"], 22);
    assert_eq!(opts[6]["value"], 3600);
    assert_eq!(opts[7]["value"]["set"], 128);

    let state = lines
        .iter()
        .find(|j| j["type"] == "STATE" && j["xid"] == "0x00000001")
        .unwrap();
    assert_eq!(state["options"][0]["value"]["value"], 254);
    assert_eq!(state["options"][0]["value"]["name"], "RECOVER-WAIT");
    assert_eq!(state["options"][1]["value"]["flags"][0], "STARTUP");

    let upd = lines.iter().find(|j| j["type"] == "BNDUPD").unwrap();
    let bindings = upd["bindings"].as_array().unwrap();
    assert_eq!(bindings.len(), 2);
    assert_eq!(bindings[0]["options"][0]["value"], "192.0.2.10");
    assert_eq!(bindings[0]["options"][1]["value"]["name"], "FREE");
    let active = bindings[1]["options"].as_array().unwrap();
    let chaddr = active.iter().find(|o| o["code"] == 5).unwrap();
    assert_eq!(chaddr["value"]["htype"], 1);
    assert_eq!(chaddr["value"]["address"], "aa:bb:cc:dd:ee:ff");
    let expiry = active.iter().find(|o| o["code"] == 13).unwrap();
    assert_eq!(expiry["value"], 1_700_000_600);

    let syn = &lines[0];
    assert_eq!(
        (syn["kind"].as_str(), syn["flags"].as_str()),
        (Some("tcp"), Some("SYN"))
    );
}

#[test]
fn json_of_a_malformed_message_and_of_text_options() {
    let d = decode_bytes(&read("rejects.hex")).unwrap();
    let lines: Vec<serde_json::Value> = d
        .records
        .iter()
        .map(|r| serde_json::from_str(&render_json(r)).unwrap())
        .collect();
    let err = lines.iter().find(|j| j["kind"] == "error").unwrap();
    assert_eq!(err["idx"], 3);
    assert_eq!(err["type"], "CONNECT");
    assert_eq!(err["error"]["kind"], "MissingOption");
    assert_eq!(err["error"]["offset"], 12);
    assert_eq!(err["error"]["reject_reason"], 18);
    assert!(err["hex"].as_str().unwrap().starts_with("0040050c"));
    assert!(err.get("options").is_none());
    // The DISCONNECT: reject-reason with its description, message text.
    let disc = lines.iter().find(|j| j["type"] == "DISCONNECT").unwrap();
    let opts = disc["options"].as_array().unwrap();
    assert_eq!(opts[0]["value"]["value"], 8);
    assert_eq!(
        opts[0]["value"]["description"],
        "Connection rejected, invalid failover partner"
    );
    assert_eq!(opts[1]["name"], "message");
    assert!(opts[1]["value"].as_str().unwrap().contains("failover"));
}

#[test]
fn text_output_of_the_readme_demo() {
    let args = vec![vectors().join("startup.hex").to_string_lossy().into_owned()];
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(run(&args, &mut out, &mut err), 0);
    let out = String::from_utf8(out).unwrap();
    let err = String::from_utf8(err).unwrap();
    assert_eq!(err, "decode: 110 messages, 0 errors\n");
    let lines: Vec<&str> = out.lines().collect();
    assert_eq!(lines[0], "  0.000000 #1 P:42787>S:647 TCP SYN");
    let connect = lines.iter().find(|l| l.contains("CONNECT ")).unwrap();
    assert!(
        connect.starts_with(
            "  3.212716 #2 P>S CONNECT    xid=0x00000000 len=112 time=1795934046 \
             relationship-name=\"fo-interop\" max-unacked-bndupd=10 receive-timer=15 \
             vendor-class-identifier=\"isc-4.4.3-P1\" protocol-version=1 TLS-request=no-TLS(0) \
             MCLT=60 hash-bucket-assignment=ffffffffffffffffffffffffffffffff"
        ),
        "{connect}"
    );
    let nack = lines.iter().find(|l| l.contains("BNDACK")).unwrap();
    assert!(
        nack.ends_with(
            "binding{assigned-IP-address=198.18.1.0 reject-reason=16 \"Less critical binding \
             information\" message=\"incoming update is less critical than outgoing update\"}"
        ),
        "{nack}"
    );
    let upd = lines.iter().find(|l| l.contains("BNDUPD")).unwrap();
    assert!(upd.contains("binding-status=FREE(1)"), "{upd}");
    // One line per message plus the TCP events.
    let tcp = lines.iter().filter(|l| l.contains(" TCP ")).count();
    assert_eq!(lines.len(), 110 + tcp);
}

#[test]
fn exit_status_of_the_program() {
    let path = |n: &str| vec![vectors().join(n).to_string_lossy().into_owned()];
    let mut sink = (Vec::new(), Vec::new());
    assert_eq!(run(&path("rejects.pcap"), &mut sink.0, &mut sink.1), 1);
    let mut json = path("leases.pcap");
    json.push("--json".into());
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(run(&json, &mut out, &mut err), 0);
    let out = String::from_utf8(out).unwrap();
    let messages = out
        .lines()
        .map(|l| serde_json::from_str::<serde_json::Value>(l).unwrap())
        .filter(|j| j["kind"] == "message")
        .count();
    assert_eq!(messages, 447);
    // A file of binary garbage is neither a capture nor hex vectors.
    let dir = std::env::temp_dir().join(format!("decode-test-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let junk = dir.join("junk.bin");
    std::fs::write(&junk, [0xff, 0xfe, 0x00, 0x9f, 0x80]).unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(
        run(&[junk.to_string_lossy().into_owned()], &mut out, &mut err),
        2
    );
    assert!(String::from_utf8(err).unwrap().contains("not a pcap"));
    // A truncated capture decodes what it has and exits 2.
    let pcap = read("startup.pcap");
    let cut = dir.join("cut.pcap");
    std::fs::write(&cut, &pcap[..pcap.len() - 10]).unwrap();
    let (mut out, mut err) = (Vec::new(), Vec::new());
    assert_eq!(
        run(&[cut.to_string_lossy().into_owned()], &mut out, &mut err),
        2
    );
    assert!(String::from_utf8(out).unwrap().lines().count() > 100);
    assert!(String::from_utf8(err).unwrap().contains("input error"));
    std::fs::remove_dir_all(&dir).unwrap();
}

#[test]
fn header_type_names_follow_the_draft() {
    // UPDREQALL is 7 and UPDREQ 9 (Wireshark swaps them).
    let d = decode_bytes(&read("partnerdown.hex")).unwrap();
    let types: std::collections::BTreeSet<String> = d
        .messages()
        .map(|(_, m)| MessageType::from(m.bytes[2]).to_string())
        .collect();
    assert!(types.contains("UPDREQ"));
    for (r, m) in d.messages() {
        let line = render_text(r, 0);
        let name = MessageType::from(m.bytes[2]).to_string();
        assert!(line.contains(&format!(" {name} ")), "{line}");
    }
}
