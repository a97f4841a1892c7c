//! Field-level agreement between our decoder and Wireshark's `dhcpfo` dissector (tshark 4.0.17)
//! on the traffic captured between two ISC dhcpd 4.4.3-P1 servers.
//!
//! For each scenario S, `tests/vectors/S.hex` has the failover messages of `S.pcap` (one per
//! line) and `tests/vectors/S.tshark.txt` is `tshark -Y dhcpfo -O dhcpfo -r S.pcap` as it was
//! run when the capture was made. Both list the messages in the same order (tshark prints one
//! "DHCP Failover" block per message, several per frame when a TCP segment carries several).
//! Every message is decoded with `Repr::parse` and each value tshark shows (header, and every
//! option of every binding) is compared with the typed value. No tshark binary is needed.
//!
//! Known tshark display bugs are adapted to in `common::tshark_text` (7/9 names swapped, no
//! name for state 254, client-identifier shown as a C string).
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic
)]

mod common;

use std::collections::BTreeMap;

use common::tshark_check as check;
use common::tshark_text::{self as ts, TsMsg};
use common::vectors::{self, VectorLine};
use failover_proto::{DecodeErrorKind, Message, Repr};

#[derive(Debug, Default)]
struct Stats {
    /// Messages compared field by field, per draft type name.
    per_type: BTreeMap<&'static str, usize>,
    /// Option values compared, per option code.
    per_code: BTreeMap<u16, usize>,
    /// `idx` of the messages our decoder rejects (only header and option TLVs compared).
    rejected: Vec<usize>,
}

/// Compares the header of a message (any message, decodable or not).
fn check_header(ctx: &str, line: &VectorLine, t: &TsMsg) {
    let msg = Message::new_checked(&line.bytes[..]).unwrap_or_else(|e| panic!("{ctx}: {e}"));
    assert!(
        t.problems.is_empty(),
        "{ctx}: tshark flagged {:?}",
        t.problems
    );
    assert!(t.other_header.is_empty(), "{ctx}: {:?}", t.other_header);
    assert_eq!(usize::from(t.length), line.len, "{ctx}: length");
    assert_eq!(t.length, msg.length(), "{ctx}: length");
    assert_eq!(t.type_code, u8::from(msg.msg_type()), "{ctx}: type");
    assert_eq!(
        t.type_name,
        ts::type_name(msg.msg_type()),
        "{ctx}: type name"
    );
    assert_eq!(
        line.type_name,
        msg.msg_type().name(),
        "{ctx}: type label of the .hex"
    );
    assert_eq!(t.poffset, msg.payload_offset(), "{ctx}: payload offset");
    assert_eq!(t.time, msg.time(), "{ctx}: time");
    assert_eq!(t.xid, msg.xid(), "{ctx}: xid");
    assert_eq!(t.xid, line.xid, "{ctx}: xid of the .hex");
    // The option TLVs, code and length, in wire order.
    let raw: Vec<(u16, usize)> = msg
        .options()
        .map(|o| o.map(|o| (o.code, o.data.len())))
        .collect::<Result<_, _>>()
        .unwrap_or_else(|e| panic!("{ctx}: {e}"));
    let shown: Vec<(u16, usize)> = t
        .options
        .iter()
        .map(|o| (o.code, usize::from(o.length)))
        .collect();
    assert_eq!(shown, raw, "{ctx}: option codes and lengths");
}

fn check_scenario(name: &str) -> Stats {
    let lines = vectors::load(name);
    let text = std::fs::read_to_string(vectors::path(&format!("{name}.tshark.txt"))).unwrap();
    let shown = ts::parse(&text);
    assert_eq!(
        shown.len(),
        lines.len(),
        "{name}: tshark shows {} messages, the .hex has {}",
        shown.len(),
        lines.len()
    );
    let mut stats = Stats::default();
    for (line, t) in lines.iter().zip(&shown) {
        let ctx = format!(
            "{name} #{} ({} {}, tshark frame {} line {})",
            line.idx, line.dir, line.type_name, t.frame, t.line
        );
        check_header(&ctx, line, t);
        let repr = match Repr::parse(&line.bytes) {
            Ok(r) => r,
            Err(e) => {
                assert!(
                    matches!(e.kind(), DecodeErrorKind::MissingOption(_)),
                    "{ctx}: {e}"
                );
                stats.rejected.push(line.idx);
                continue;
            }
        };
        assert_eq!(u8::from(repr.message_type()), t.type_code, "{ctx}: type");
        assert_eq!(repr.xid(), t.xid, "{ctx}: xid");
        assert_eq!(repr.time(), t.time, "{ctx}: time");
        assert_eq!(repr.buffer_len(), usize::from(t.length), "{ctx}: length");

        for (code, n) in check::compare(&ctx, &repr, t) {
            *stats.per_code.entry(code).or_default() += n;
        }
        *stats
            .per_type
            .entry(repr.message_type().name())
            .or_default() += 1;
    }
    stats
}

fn assert_counts(name: &str, stats: &Stats, types: &[(&str, usize)], options: usize) {
    let want: BTreeMap<&str, usize> = types.iter().copied().collect();
    let got: BTreeMap<&str, usize> = stats.per_type.iter().map(|(k, v)| (*k, *v)).collect();
    assert_eq!(got, want, "{name}: messages compared per type");
    let n: usize = stats.per_code.values().sum();
    assert_eq!(n, options, "{name}: option values compared");
}

#[test]
fn startup_matches_tshark() {
    let s = check_scenario("startup");
    assert!(s.rejected.is_empty(), "{:?}", s.rejected);
    let types = [
        ("BNDACK", 40),
        ("BNDUPD", 40),
        ("CONNECT", 2),
        ("CONNECTACK", 2),
        ("CONTACT", 7),
        ("STATE", 13),
        ("UPDDONE", 2),
        ("UPDREQALL", 4),
    ];
    assert_counts("startup", &s, &types, 339);
}

#[test]
fn leases_matches_tshark() {
    let s = check_scenario("leases");
    assert!(s.rejected.is_empty(), "{:?}", s.rejected);
    let types = [
        ("BNDACK", 215),
        ("BNDUPD", 215),
        ("CONNECT", 1),
        ("CONNECTACK", 1),
        ("CONTACT", 1),
        ("STATE", 8),
        ("UPDDONE", 2),
        ("UPDREQALL", 4),
    ];
    assert_counts("leases", &s, &types, 1618);
}

#[test]
fn poolreq_matches_tshark() {
    let s = check_scenario("poolreq");
    assert!(s.rejected.is_empty(), "{:?}", s.rejected);
    let types = [
        ("BNDACK", 127),
        ("BNDUPD", 127),
        ("CONNECT", 1),
        ("CONNECTACK", 1),
        ("CONTACT", 1),
        ("POOLREQ", 1),
        ("POOLRESP", 1),
        ("STATE", 8),
        ("UPDDONE", 2),
        ("UPDREQALL", 4),
    ];
    assert_counts("poolreq", &s, &types, 935);
}

#[test]
fn partnerdown_matches_tshark() {
    let s = check_scenario("partnerdown");
    assert!(s.rejected.is_empty(), "{:?}", s.rejected);
    let types = [
        ("BNDACK", 172),
        ("BNDUPD", 172),
        ("CONNECT", 4),
        ("CONNECTACK", 2),
        ("CONTACT", 3),
        ("STATE", 15),
        ("UPDDONE", 4),
        ("UPDREQ", 2),
        ("UPDREQALL", 4),
    ];
    assert_counts("partnerdown", &s, &types, 1285);
}

#[test]
fn rejects_matches_tshark() {
    let s = check_scenario("rejects");
    // The probe's deliberately incomplete CONNECTs: no MCLT and no HBA, no MCLT, no
    // relationship-name. Only their header and option TLVs are compared.
    assert_eq!(s.rejected, [3, 5, 9], "messages our decoder rejects");
    let types = [
        ("CONNECT", 9),
        ("CONNECTACK", 9),
        ("CONTACT", 1),
        ("DISCONNECT", 1),
        ("STATE", 9),
        ("UPDREQ", 1),
    ];
    assert_counts("rejects", &s, &types, 159);
}

/// Every option code ISC sends was compared, as often as tshark shows it.
#[test]
fn every_option_code_is_compared() {
    let mut total: BTreeMap<u16, usize> = BTreeMap::new();
    for name in vectors::SCENARIOS {
        for (code, n) in check_scenario(name).per_code {
            *total.entry(code).or_default() += n;
        }
    }
    // tshark's option count in the five .tshark.txt files, less the 20 options of the three
    // CONNECTs our decoder rejects (codes 11, 14, 15, 19, 20, 22, 27, 28).
    let want: BTreeMap<u16, usize> = [
        (1, 1),
        (2, 1108),
        (3, 554),
        (4, 85),
        (5, 85),
        (6, 82),
        (11, 17),
        (13, 554),
        (14, 30),
        (15, 17),
        (16, 189),
        (18, 554),
        (19, 30),
        (20, 32),
        (21, 190),
        (22, 31),
        (23, 53),
        (24, 53),
        (25, 607),
        (26, 15),
        (27, 17),
        (28, 32),
    ]
    .into_iter()
    .collect();
    assert_eq!(total, want, "option values compared per code");
}
