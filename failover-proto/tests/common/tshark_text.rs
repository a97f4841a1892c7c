//! Reader for Wireshark's text decoding of DHCP failover (`tshark -O dhcpfo`, Wireshark 4.0
//! `dhcpfo` dissector), and the ways that dissector shows values.
//!
//! What tshark 4.0 gets wrong, and how the tests adapt (see also the crate's spec notes):
//! * message types 7 and 9 have each other's names ("Update request" is 7, "Update request all"
//!   is 9): compare the numeric codes, and the names through [`type_name`];
//! * server-state 254 (RECOVER-WAIT, as ISC sends it) has no name: "Unknown (254)";
//! * IP-flags: the 16-bit value is right, the R/B breakdown uses masks 0x80/0x40 of the low byte
//!   instead of 0x0001/0x0002;
//! * client-identifier, DDNS and message-digest are shown as C strings: cut at the first NUL,
//!   each byte above 0x7f as U+FFFD ([`render_text`]).
#![allow(
    dead_code,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use failover_proto::{MessageType, ServerState};

/// One failover message as tshark shows it.
#[derive(Debug, Clone, Default)]
pub(crate) struct TsMsg {
    /// Frame number (a frame can carry several messages).
    pub(crate) frame: u32,
    /// Line of the "DHCP Failover" heading (1-based).
    pub(crate) line: usize,
    pub(crate) length: u16,
    pub(crate) type_code: u8,
    pub(crate) type_name: String,
    pub(crate) poffset: u8,
    /// Header time in seconds since 1970 (tshark prints a UTC date).
    pub(crate) time: u32,
    pub(crate) xid: u32,
    /// Header lines this reader does not know (additional header bytes, ...).
    pub(crate) other_header: Vec<String>,
    pub(crate) options: Vec<TsOpt>,
    /// Expert-info or malformed lines anywhere inside the message, with the code of the option
    /// they are under (`None`: at message level).
    pub(crate) problems: Vec<(Option<u16>, String)>,
}

/// One option as tshark shows it.
#[derive(Debug, Clone, Default)]
pub(crate) struct TsOpt {
    pub(crate) line: usize,
    /// Code from the "Option Code:" line (checked against the heading).
    pub(crate) code: u16,
    /// tshark's name of the option, from the heading.
    pub(crate) name: String,
    /// What the heading shows after the name and code, if anything.
    pub(crate) summary: String,
    /// The "Length:" line.
    pub(crate) length: u16,
    /// The detail lines below Option Code and Length, as `(label, value)`; a line without
    /// `": "` has an empty value.
    pub(crate) fields: Vec<(String, String)>,
}

impl TsOpt {
    /// The value of detail line `label`; panics, naming the option, when there is none.
    pub(crate) fn field(&self, label: &str) -> &str {
        self.fields
            .iter()
            .find(|(k, _)| k == label)
            .map(|(_, v)| v.as_str())
            .unwrap_or_else(|| {
                panic!(
                    "line {}: option {} ({}) has no {label:?} line: {:?}",
                    self.line, self.name, self.code, self.fields
                )
            })
    }
}

fn indent(line: &str) -> usize {
    line.len() - line.trim_start_matches(' ').len()
}

fn split_kv(s: &str) -> (String, String) {
    match s.split_once(": ") {
        Some((k, v)) => (k.to_string(), v.to_string()),
        None => (s.trim_end_matches(':').to_string(), String::new()),
    }
}

/// Splits `"Name (N)"` into `("Name", "N")`.
pub(crate) fn name_and_paren(s: &str) -> (&str, &str) {
    let s = s.trim_end();
    let open = s
        .rfind(" (")
        .unwrap_or_else(|| panic!("no \" (\" in {s:?}"));
    let inner = s[open + 2..]
        .strip_suffix(')')
        .unwrap_or_else(|| panic!("no closing parenthesis in {s:?}"));
    (&s[..open], inner)
}

/// Parses a decimal or `0x` hexadecimal number.
pub(crate) fn number(s: &str) -> u64 {
    let s = s.trim();
    let r = match s.strip_prefix("0x") {
        Some(h) => u64::from_str_radix(h, 16),
        None => s.parse(),
    };
    r.unwrap_or_else(|e| panic!("not a number: {s:?}: {e}"))
}

/// Parses the whole output of `tshark -O dhcpfo` (or `-V`) into the failover messages it shows,
/// in order. Lines of other protocols are skipped.
pub(crate) fn parse(text: &str) -> Vec<TsMsg> {
    let mut out: Vec<TsMsg> = Vec::new();
    let mut frame = 0u32;
    let mut in_fo = false;
    for (n, line) in text.lines().enumerate() {
        let n = n + 1;
        if line.trim().is_empty() {
            in_fo = false;
            continue;
        }
        let ind = indent(line);
        if ind == 0 {
            in_fo = line == "DHCP Failover";
            if let Some(rest) = line.strip_prefix("Frame ") {
                let num = rest.split(':').next().unwrap_or_default();
                frame = num.parse().unwrap_or_else(|_| panic!("line {n}: {line:?}"));
            }
            if in_fo {
                out.push(TsMsg {
                    frame,
                    line: n,
                    ..TsMsg::default()
                });
            }
            continue;
        }
        if !in_fo {
            continue;
        }
        let msg = out.last_mut().expect("a message is open");
        let body = line.trim_start_matches(' ');
        if body.contains("Expert Info") || body.contains("Malformed") {
            let code = if ind > 8 {
                msg.options.last().map(|o| o.code)
            } else {
                None
            };
            msg.problems.push((code, format!("line {n}: {body}")));
            continue;
        }
        if body.starts_with('[') {
            // The lines under an expert-info item; already recorded above.
            if msg.problems.is_empty() {
                panic!("line {n}: unexpected bracketed line {body:?}");
            }
            continue;
        }
        match ind {
            4 => {
                let (k, v) = split_kv(body);
                match k.as_str() {
                    "Message length" => msg.length = number(&v) as u16,
                    "Message Type" => {
                        let (name, code) = name_and_paren(&v);
                        msg.type_name = name.to_string();
                        msg.type_code = number(code) as u8;
                    }
                    "Payload Offset" => msg.poffset = number(&v) as u8,
                    "Time" => {
                        msg.time =
                            parse_date(&v).unwrap_or_else(|| panic!("line {n}: bad date {v:?}"));
                    }
                    "Xid" => msg.xid = number(&v) as u32,
                    "Payload Data" => {}
                    _ => msg.other_header.push(body.to_string()),
                }
            }
            8 => {
                let rest = body
                    .strip_prefix("DHCP Style Option, ")
                    .unwrap_or_else(|| panic!("line {n}: unexpected {body:?}"));
                // "name (code)" then optionally ", summary".
                let open = rest
                    .find(" (")
                    .unwrap_or_else(|| panic!("line {n}: {rest:?}"));
                let close = rest[open..]
                    .find(')')
                    .map(|c| c + open)
                    .unwrap_or_else(|| panic!("line {n}: {rest:?}"));
                let code = number(&rest[open + 2..close]) as u16;
                let summary = rest[close + 1..].strip_prefix(", ").unwrap_or_default();
                msg.options.push(TsOpt {
                    line: n,
                    code,
                    name: rest[..open].to_string(),
                    summary: summary.to_string(),
                    ..TsOpt::default()
                });
            }
            _ => {
                let opt = msg
                    .options
                    .last_mut()
                    .unwrap_or_else(|| panic!("line {n}: option detail outside an option"));
                let (k, v) = split_kv(body);
                match k.as_str() {
                    "Option Code" if ind == 12 => {
                        let (_, code) = name_and_paren(&v);
                        assert_eq!(number(code) as u16, opt.code, "line {n}: code mismatch");
                    }
                    "Length" if ind == 12 => opt.length = number(&v) as u16,
                    _ => opt.fields.push((k, v)),
                }
            }
        }
    }
    out
}

/// Reads tshark's date, `"Nov 29, 2026 06:34:06 UTC"` (a fraction of zeros may follow the
/// seconds), as seconds since 1970. `None` unless it is UTC and well formed.
pub(crate) fn parse_date(s: &str) -> Option<u32> {
    const MONTHS: [&str; 12] = [
        "Jan", "Feb", "Mar", "Apr", "May", "Jun", "Jul", "Aug", "Sep", "Oct", "Nov", "Dec",
    ];
    let f: Vec<&str> = s.split_whitespace().collect();
    let [mon, day, year, hms, "UTC"] = f.as_slice() else {
        return None;
    };
    let month = MONTHS.iter().position(|m| m == mon)? as i64 + 1;
    let day: i64 = day.strip_suffix(',')?.parse().ok()?;
    let year: i64 = year.parse().ok()?;
    let (hms, frac) = hms.split_once('.').unwrap_or((hms, "0"));
    if !frac.bytes().all(|b| b == b'0') {
        return None;
    }
    let t: Vec<i64> = hms
        .split(':')
        .map(|x| x.parse().ok())
        .collect::<Option<_>>()?;
    let [h, m, sec] = t.as_slice() else {
        return None;
    };
    // Days from civil (proleptic Gregorian), Howard Hinnant's algorithm.
    let y = if month <= 2 { year - 1 } else { year };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let mp = (month + 9) % 12;
    let doy = (153 * mp + 2) / 5 + day - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u32::try_from(days * 86_400 + h * 3600 + m * 60 + sec).ok()
}

/// A string option's value as tshark 4.0 holds it (and writes it into JSON): the bytes up to
/// the first NUL, ASCII kept, every byte above 0x7f replaced by U+FFFD.
pub(crate) fn string_value(bytes: &[u8]) -> String {
    bytes
        .iter()
        .take_while(|&&b| b != 0)
        .map(|&b| if b < 0x80 { char::from(b) } else { '\u{fffd}' })
        .collect()
}

/// A string option as tshark 4.0 prints it in its text output: [`string_value`], with control
/// characters escaped the C way (`\t`, `\001`, `\177`).
pub(crate) fn render_text(bytes: &[u8]) -> String {
    let mut s = String::new();
    for c in string_value(bytes).chars() {
        match c {
            '\u{7}' => s.push_str("\\a"),
            '\u{8}' => s.push_str("\\b"),
            '\u{c}' => s.push_str("\\f"),
            '\n' => s.push_str("\\n"),
            '\r' => s.push_str("\\r"),
            '\t' => s.push_str("\\t"),
            '\u{b}' => s.push_str("\\v"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                s.push_str(&format!("\\{:03o}", u32::from(c)));
            }
            c => s.push(c),
        }
    }
    s
}

/// Lower-case hex, no separators.
pub(crate) fn hex(bytes: &[u8]) -> String {
    bytes.iter().map(|b| format!("{b:02x}")).collect()
}

/// Lower-case hex with `:` between bytes (tshark's FT_BYTES and hardware addresses).
pub(crate) fn hex_colons(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// tshark 4.0's name of a message type. It swaps 7 and 9: ISC and the draft have
/// 7 = UPDREQALL and 9 = UPDREQ, tshark calls 7 "Update request" and 9 "Update request all".
pub(crate) fn type_name(t: MessageType) -> &'static str {
    match t {
        MessageType::PoolReq => "Pool request",
        MessageType::PoolResp => "Pool response",
        MessageType::BndUpd => "Binding update",
        MessageType::BndAck => "Binding acknowledge",
        MessageType::Connect => "Connect",
        MessageType::ConnectAck => "Connect acknowledge",
        MessageType::UpdReqAll => "Update request", // sic: tshark's swap
        MessageType::UpdDone => "Update done",
        MessageType::UpdReq => "Update request all", // sic: tshark's swap
        MessageType::State => "State",
        MessageType::Contact => "Contact",
        MessageType::Disconnect => "Disconnect",
        MessageType::Unknown(_) => "Unknown",
    }
}

/// tshark 4.0's name of a server state; RECOVER-WAIT (254) has none.
pub(crate) fn state_name(s: ServerState) -> &'static str {
    match s {
        ServerState::Startup => "startup",
        ServerState::Normal => "normal",
        ServerState::CommunicationsInterrupted => "communication interrupted",
        ServerState::PartnerDown => "partner down",
        ServerState::PotentialConflict => "potential conflict",
        ServerState::Recover => "recover",
        ServerState::Paused => "paused",
        ServerState::Shutdown => "shutdown",
        ServerState::RecoverDone => "recover done",
        ServerState::ResolutionInterrupted => "resolution interrupted",
        ServerState::ConflictDone => "conflict done",
        ServerState::RecoverWait | ServerState::Unknown(_) => "Unknown",
    }
}

#[test]
fn dates() {
    assert_eq!(parse_date("Jan  1, 1970 00:00:00 UTC"), Some(0));
    assert_eq!(parse_date("Nov 29, 2026 06:34:06 UTC"), Some(0x6b0b_c75e));
    assert_eq!(
        parse_date("Nov 29, 2026 06:34:44.000000000 UTC"),
        Some(0x6b0b_c784)
    );
    assert_eq!(parse_date("Feb 29, 2024 23:59:59 UTC"), Some(1_709_251_199));
    assert_eq!(parse_date("Nov 29, 2026 06:34:06 CET"), None);
    assert_eq!(parse_date("Nov 29, 2026 06:34:06.5 UTC"), None);
}

#[test]
fn strings() {
    assert_eq!(
        render_text(&[1, 2, 0xfc, 1, 0, 0, 1]),
        "\\001\\002\u{fffd}\\001"
    );
    assert_eq!(
        render_text(b"a\\b\tc\x7fd\xc3\xa9"),
        "a\\b\\tc\\177d\u{fffd}\u{fffd}"
    );
    assert_eq!(string_value(b"xyz\0q"), "xyz");
}
