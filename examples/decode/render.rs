//! One line per record: readable text, or a JSON object.

use std::fmt::Write as _;
use std::net::Ipv4Addr;
use std::time::Duration;

use failover_proto::option::length_ok;
use failover_proto::{
    BindingStatus, DdnsFlags, DecodeError, DigestType, Hba, IpFlags, Message, MessageType,
    OptionCode, Options, RawOption, RejectReason, ServerFlags, ServerState, TlsReply, TlsRequest,
};

use super::{Event, MessageRecord, Problem, Record, StreamError};

/// A decoded option value.
#[derive(Debug, Clone, PartialEq, Eq)]
enum Value<'a> {
    /// A count or a duration in seconds.
    Uint(u32),
    /// Seconds since 1970.
    Time(u32),
    /// An IPv4 address.
    Ip(Ipv4Addr),
    /// A one-byte enumeration: its value, its name, and whether the name is known.
    Enum(u8, &'static str),
    /// reject-reason.
    Reason(RejectReason),
    /// Text (relationship-name, message, vendor-class-identifier).
    Text(&'a [u8]),
    /// Opaque bytes.
    Bytes(&'a [u8]),
    /// client-hardware-address.
    Hardware(u8, &'a [u8]),
    /// A flag field: its value and the names of the set flags.
    Flags(u16, Vec<&'static str>),
    /// DDNS: flags and the FQDN in DNS wire format.
    Ddns(u16, Vec<&'static str>, &'a [u8]),
    /// message-digest.
    Digest(DigestType, &'a [u8]),
    /// hash-bucket-assignment.
    Hba(Hba),
}

/// The typed value of an option; `None` for a code the draft does not define.
fn decode_value<'a>(o: &RawOption<'a>) -> Option<Value<'a>> {
    let code = o.option_code();
    if matches!(code, OptionCode::Unknown(_)) {
        return None;
    }
    if !length_ok(o.code, o.data.len()) {
        // Only malformed messages have these, and those are shown raw; be safe anyway.
        return Some(Value::Bytes(o.data));
    }
    let b = o.u8();
    Some(match code {
        OptionCode::AddressesTransferred
        | OptionCode::MaxUnackedBndupd
        | OptionCode::Mclt
        | OptionCode::ReceiveTimer => Value::Uint(o.u32()),
        OptionCode::DelayedServiceParameter | OptionCode::ProtocolVersion => {
            Value::Uint(u32::from(b))
        }
        OptionCode::ClientLastTransactionTime
        | OptionCode::LeaseExpirationTime
        | OptionCode::PotentialExpirationTime
        | OptionCode::StartTimeOfState => Value::Time(o.u32()),
        OptionCode::AssignedIpAddress => Value::Ip(Ipv4Addr::from(o.u32())),
        OptionCode::BindingStatus => Value::Enum(b, BindingStatus::from(b).name()),
        OptionCode::ServerState => Value::Enum(b, ServerState::from(b).name()),
        OptionCode::TlsReply => Value::Enum(b, TlsReply::from(b).name()),
        OptionCode::TlsRequest => Value::Enum(b, TlsRequest::from(b).name()),
        OptionCode::RejectReason => Value::Reason(RejectReason::from(b)),
        OptionCode::Message | OptionCode::RelationshipName | OptionCode::VendorClassIdentifier => {
            Value::Text(o.data)
        }
        OptionCode::ClientHardwareAddress => {
            Value::Hardware(b, o.data.get(1..).unwrap_or_default())
        }
        OptionCode::ServerFlags => {
            let f = ServerFlags(b);
            let mut names = Vec::new();
            if f.contains(ServerFlags::STARTUP) {
                names.push("STARTUP");
            }
            Value::Flags(u16::from(b), names)
        }
        OptionCode::IpFlags => {
            let v = match o.data {
                [lo] => u16::from(*lo),
                [hi, lo, ..] => u16::from_be_bytes([*hi, *lo]),
                [] => 0,
            };
            let f = IpFlags(v);
            let mut names = Vec::new();
            if f.contains(IpFlags::RESERVED) {
                names.push("RESERVED");
            }
            if f.contains(IpFlags::BOOTP) {
                names.push("BOOTP");
            }
            Value::Flags(v, names)
        }
        OptionCode::Ddns => {
            let v = match o.data {
                [hi, lo, ..] => u16::from_be_bytes([*hi, *lo]),
                _ => 0,
            };
            let f = DdnsFlags(v);
            let names = [
                (DdnsFlags::FORWARD_COMPLETE, "FORWARD-COMPLETE"),
                (DdnsFlags::SERVER_CONTROLS_A, "SERVER-CONTROLS-A"),
                (DdnsFlags::REVERSE_COMPLETE, "REVERSE-COMPLETE"),
                (DdnsFlags::SERVER_CONTROLS_PTR, "SERVER-CONTROLS-PTR"),
            ]
            .into_iter()
            .filter(|(flag, _)| f.contains(*flag))
            .map(|(_, name)| name)
            .collect();
            Value::Ddns(v, names, o.data.get(2..).unwrap_or_default())
        }
        OptionCode::MessageDigest => {
            Value::Digest(DigestType::from(b), o.data.get(1..).unwrap_or_default())
        }
        OptionCode::HashBucketAssignment => {
            let mut bits = [0u8; Hba::LEN];
            bits.copy_from_slice(o.data.get(..Hba::LEN).unwrap_or(&[0; Hba::LEN]));
            Value::Hba(Hba(bits))
        }
        OptionCode::ClientIdentifier
        | OptionCode::ClientReplyOptions
        | OptionCode::ClientRequestOptions
        | OptionCode::VendorSpecificOptions
        | OptionCode::Unknown(_) => Value::Bytes(o.data),
    })
}

/// Lower-case hex.
pub(crate) fn hex(bytes: &[u8]) -> String {
    let mut s = String::with_capacity(bytes.len() * 2);
    for b in bytes {
        let _ = write!(s, "{b:02x}");
    }
    s
}

/// `aa:bb:cc`.
fn colon_hex(bytes: &[u8]) -> String {
    bytes
        .iter()
        .map(|b| format!("{b:02x}"))
        .collect::<Vec<_>>()
        .join(":")
}

/// Text as a string, with invalid UTF-8 replaced.
fn lossy(bytes: &[u8]) -> String {
    String::from_utf8_lossy(bytes).into_owned()
}

/// A DNS wire-format name as dotted text, or `None` if it is not one.
fn dns_name(mut wire: &[u8]) -> Option<String> {
    let mut labels = Vec::new();
    loop {
        let (&len, rest) = wire.split_first()?;
        if len == 0 {
            return rest.is_empty().then(|| labels.join("."));
        }
        let (label, rest) = rest.split_at_checked(usize::from(len))?;
        labels.push(lossy(label));
        wire = rest;
    }
}

fn hardware_type(htype: u8) -> &'static str {
    match htype {
        1 => "ethernet",
        6 => "ieee802",
        32 => "infiniband",
        _ => "htype",
    }
}

/// `3.212716`.
fn seconds(t: Duration) -> String {
    format!("{}.{:06}", t.as_secs(), t.subsec_micros())
}

/// The option's name as printed (`unknown-35` for codes the draft does not define).
fn option_name(o: &RawOption<'_>) -> String {
    match o.option_code() {
        OptionCode::Unknown(c) => format!("unknown-{c}"),
        code => code.name().to_owned(),
    }
}

fn value_text(v: &Value<'_>) -> String {
    match v {
        Value::Uint(n) | Value::Time(n) => n.to_string(),
        Value::Ip(a) => a.to_string(),
        Value::Enum(n, name) => format!("{}({n})", name.replace(' ', "-")),
        Value::Reason(r) => format!("{} \"{}\"", u8::from(*r), r.description()),
        Value::Text(t) => format!("\"{}\"", failover_proto::Text(t)),
        Value::Bytes(b) => format!("0x{}", hex(b)),
        Value::Hardware(htype, addr) => {
            format!("{}({htype})/{}", hardware_type(*htype), colon_hex(addr))
        }
        Value::Flags(n, names) if names.is_empty() => format!("0x{n:02x}"),
        Value::Flags(n, names) => format!("0x{n:02x}({})", names.join("|")),
        Value::Ddns(n, names, fqdn) => {
            let name = dns_name(fqdn).unwrap_or_else(|| format!("0x{}", hex(fqdn)));
            format!("0x{n:04x}({})/\"{name}\"", names.join("|"))
        }
        Value::Digest(kind, d) => {
            format!("{}({})/{}", kind.name(), u8::from(*kind), hex(d))
        }
        Value::Hba(h) => format!("{}({} set)", hex(&h.0), h.count()),
    }
}

fn option_text(o: &RawOption<'_>) -> String {
    let value = decode_value(o).map_or_else(|| format!("0x{}", hex(o.data)), |v| value_text(&v));
    format!("{}={value}", option_name(o))
}

/// A JSON string literal.
pub(crate) fn json_str(s: &str) -> String {
    let mut out = String::with_capacity(s.len() + 2);
    out.push('"');
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            '\r' => out.push_str("\\r"),
            '\t' => out.push_str("\\t"),
            c if u32::from(c) < 0x20 || c == '\u{7f}' => {
                let _ = write!(out, "\\u{:04x}", u32::from(c));
            }
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

fn json_names(names: &[&str]) -> String {
    let items: Vec<String> = names.iter().map(|n| json_str(n)).collect();
    format!("[{}]", items.join(","))
}

fn value_json(v: &Value<'_>) -> String {
    match v {
        Value::Uint(n) | Value::Time(n) => n.to_string(),
        Value::Ip(a) => json_str(&a.to_string()),
        Value::Enum(n, name) => format!("{{\"value\":{n},\"name\":{}}}", json_str(name)),
        Value::Reason(r) => format!(
            "{{\"value\":{},\"description\":{}}}",
            u8::from(*r),
            json_str(r.description())
        ),
        Value::Text(t) => json_str(&lossy(t)),
        Value::Bytes(b) => json_str(&hex(b)),
        Value::Hardware(htype, addr) => format!(
            "{{\"htype\":{htype},\"address\":{}}}",
            json_str(&colon_hex(addr))
        ),
        Value::Flags(n, names) => format!("{{\"value\":{n},\"flags\":{}}}", json_names(names)),
        Value::Ddns(n, names, fqdn) => format!(
            "{{\"flags\":{{\"value\":{n},\"flags\":{}}},\"fqdn\":{}}}",
            json_names(names),
            dns_name(fqdn).map_or_else(|| json_str(&hex(fqdn)), |n| json_str(&n))
        ),
        Value::Digest(kind, d) => format!(
            "{{\"type\":{{\"value\":{},\"name\":{}}},\"digest\":{}}}",
            u8::from(*kind),
            json_str(kind.name()),
            json_str(&hex(d))
        ),
        Value::Hba(h) => format!("{{\"hex\":{},\"set\":{}}}", json_str(&hex(&h.0)), h.count()),
    }
}

fn option_json(o: &RawOption<'_>) -> String {
    let value = decode_value(o).map_or_else(|| json_str(&hex(o.data)), |v| value_json(&v));
    let name = match o.option_code() {
        OptionCode::Unknown(_) => "unknown",
        code => code.name(),
    };
    format!(
        "{{\"code\":{},\"name\":{},\"value\":{value}}}",
        o.code,
        json_str(name)
    )
}

/// The options of a well-formed message, split as printed: message-level options (including
/// a trailing message-digest) and, for BNDUPD/BNDACK, one group per binding transaction.
struct Layout<'a> {
    head: Vec<RawOption<'a>>,
    bindings: Option<Vec<Vec<RawOption<'a>>>>,
}

fn layout(bytes: &[u8]) -> Layout<'_> {
    let view = Message::new_unchecked(bytes);
    let batched = matches!(view.msg_type(), MessageType::BndUpd | MessageType::BndAck);
    let mut head = Vec::new();
    let mut bindings: Vec<Vec<RawOption<'_>>> = Vec::new();
    let start = view.options_start();
    let payload = bytes
        .get(start..usize::from(view.length()))
        .unwrap_or_default();
    for o in Options::new(payload, start).map_while(Result::ok) {
        if !batched || o.code == 17 {
            head.push(o);
        } else if o.code == 2 {
            bindings.push(vec![o]);
        } else if let Some(last) = bindings.last_mut() {
            last.push(o);
        } else {
            head.push(o);
        }
    }
    Layout {
        head,
        bindings: batched.then_some(bindings),
    }
}

/// `MissingOption` from `MissingOption(Mclt)`.
fn kind_name(e: &DecodeError) -> String {
    let debug = format!("{:?}", e.kind());
    debug
        .split(['(', ' ', '{'])
        .next()
        .unwrap_or_default()
        .to_owned()
}

fn problem_text(p: &Problem) -> String {
    match p {
        Problem::Decode(e) => format!(
            "{}: {e} (reject-reason {})",
            kind_name(e),
            u8::from(e.reject_reason())
        ),
        Problem::Trailing { declared, actual } => format!(
            "TrailingBytes: the line holds {actual} bytes, the message length is {declared}"
        ),
    }
}

fn problem_json(p: &Problem) -> String {
    match p {
        Problem::Decode(e) => format!(
            "{{\"kind\":{},\"offset\":{},\"message\":{},\"reject_reason\":{}}}",
            json_str(&kind_name(e)),
            e.offset(),
            json_str(&e.to_string()),
            u8::from(e.reject_reason())
        ),
        Problem::Trailing { declared, actual } => format!(
            "{{\"kind\":\"TrailingBytes\",\"offset\":{declared},\"message\":{}}}",
            json_str(&format!(
                "the line holds {actual} bytes, the message length is {declared}"
            ))
        ),
    }
}

/// Header fields of a message, if its 12-byte header is there.
fn header(bytes: &[u8]) -> Option<(MessageType, u32, u16, u32)> {
    let m = Message::new_unchecked(bytes);
    (bytes.len() >= failover_proto::HEADER_LEN)
        .then(|| (m.msg_type(), m.xid(), m.length(), m.time()))
}

fn type_name(t: MessageType) -> String {
    t.to_string()
}

fn message_text(m: &MessageRecord) -> String {
    let mut s = String::new();
    match header(&m.bytes) {
        Some((ty, xid, len, time)) => {
            let _ = write!(
                s,
                "{:<10} xid=0x{xid:08x} len={len} time={time}",
                type_name(ty)
            );
        }
        None => {
            let _ = write!(s, "{:<10} ({} bytes)", "?", m.bytes.len());
        }
    }
    if let Some(p) = &m.problem {
        let _ = write!(s, " ERROR {}", problem_text(p));
        if let Some(note) = m.note {
            let _ = write!(s, " ({note})");
        }
        let _ = write!(s, " hex={}", hex(&m.bytes));
        return s;
    }
    let l = layout(&m.bytes);
    for o in &l.head {
        let _ = write!(s, " {}", option_text(o));
    }
    for b in l.bindings.iter().flatten() {
        let opts: Vec<String> = b.iter().map(option_text).collect();
        let _ = write!(s, " binding{{{}}}", opts.join(" "));
    }
    s
}

fn stream_error_text(e: &StreamError) -> String {
    let cause = match &e.error {
        Some(err) => format!("{}: {err}", kind_name(err)),
        None => format!(
            "Gap: {} bytes missing from the capture at stream offset {}",
            e.missing, e.stream_offset
        ),
    };
    let ellipsis = if e.skipped > e.head.len() as u64 {
        "..."
    } else {
        ""
    };
    format!(
        "STREAM-ERROR {cause}; the rest of this direction cannot be framed: {} bytes skipped hex={}{ellipsis}",
        e.skipped,
        hex(&e.head)
    )
}

/// One readable line: `time #conn dir TYPE xid=.. len=.. time=.. options...`.
///
/// `dir_width` pads the direction column (the widest direction of the input lines them up).
pub fn render_text(r: &Record, dir_width: usize) -> String {
    let body = match &r.event {
        Event::Message(m) => message_text(m),
        Event::Tcp { flags } => format!("TCP {flags}"),
        Event::StreamError(e) => stream_error_text(e),
    };
    format!(
        "{:>10} #{} {:<dir_width$} {body}",
        seconds(r.time),
        r.conn,
        r.dir
    )
}

/// One JSON object (no newline). Every object has `kind` (`message`, `error`,
/// `stream-error` or `tcp`), `time` (seconds), `conn` and `dir`.
///
/// A message has `type`, `type_code`, `xid` (hex string), `len`, `header_time`, `options`
/// (an array of `{code, name, value}`), for BNDUPD/BNDACK `bindings` (an array of
/// `{options}`), and `hex`. A malformed message has `error` (`{kind, offset, message}`) and
/// `hex`, and the header fields when the header is complete.
pub fn render_json(r: &Record) -> String {
    let mut s = String::from("{");
    let kind = match &r.event {
        Event::Message(m) if m.problem.is_some() => "error",
        Event::Message(_) => "message",
        Event::Tcp { .. } => "tcp",
        Event::StreamError(_) => "stream-error",
    };
    let _ = write!(
        s,
        "\"kind\":\"{kind}\",\"time\":{},\"conn\":{},\"dir\":{}",
        seconds(r.time),
        r.conn,
        json_str(&r.dir)
    );
    if let Some(idx) = r.idx {
        let _ = write!(s, ",\"idx\":{idx}");
    }
    match &r.event {
        Event::Message(m) => {
            if let Some((ty, xid, len, time)) = header(&m.bytes) {
                let _ = write!(
                    s,
                    ",\"type\":{},\"type_code\":{},\"xid\":\"0x{xid:08x}\",\"len\":{len},\"header_time\":{time}",
                    json_str(&type_name(ty)),
                    u8::from(ty)
                );
            }
            if let Some(p) = &m.problem {
                let _ = write!(s, ",\"error\":{}", problem_json(p));
                if let Some(note) = m.note {
                    let _ = write!(s, ",\"note\":{}", json_str(note));
                }
            } else {
                let l = layout(&m.bytes);
                let head: Vec<String> = l.head.iter().map(option_json).collect();
                let _ = write!(s, ",\"options\":[{}]", head.join(","));
                if let Some(bindings) = &l.bindings {
                    let items: Vec<String> = bindings
                        .iter()
                        .map(|b| {
                            let opts: Vec<String> = b.iter().map(option_json).collect();
                            format!("{{\"options\":[{}]}}", opts.join(","))
                        })
                        .collect();
                    let _ = write!(s, ",\"bindings\":[{}]", items.join(","));
                }
            }
            let _ = write!(s, ",\"hex\":{}", json_str(&hex(&m.bytes)));
        }
        Event::Tcp { flags } => {
            let _ = write!(s, ",\"flags\":{}", json_str(flags));
        }
        Event::StreamError(e) => {
            match &e.error {
                Some(err) => {
                    let _ = write!(s, ",\"error\":{}", problem_json(&Problem::Decode(*err)));
                }
                None => {
                    let _ = write!(
                        s,
                        ",\"error\":{{\"kind\":\"Gap\",\"offset\":{},\"message\":{}}}",
                        e.stream_offset,
                        json_str(&format!("{} bytes missing from the capture", e.missing))
                    );
                }
            }
            let _ = write!(
                s,
                ",\"stream_offset\":{},\"skipped\":{},\"hex\":{}",
                e.stream_offset,
                e.skipped,
                json_str(&hex(&e.head))
            );
        }
    }
    s.push('}');
    s
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;

    fn opt(code: u16, data: &[u8]) -> String {
        option_text(&RawOption {
            code,
            data,
            offset: 12,
        })
    }

    #[test]
    fn option_values() {
        assert_eq!(opt(2, &[198, 18, 1, 0]), "assigned-IP-address=198.18.1.0");
        assert_eq!(opt(3, &[7]), "binding-status=BACKUP(7)");
        assert_eq!(opt(3, &[99]), "binding-status=unknown(99)");
        assert_eq!(opt(24, &[254]), "server-state=RECOVER-WAIT(254)");
        assert_eq!(
            opt(21, &[16]),
            "reject-reason=16 \"Less critical binding information\""
        );
        assert_eq!(opt(22, b"fo \"x\""), "relationship-name=\"fo \\\"x\\\"\"");
        assert_eq!(
            opt(5, &[1, 0xaa, 0xbb, 0xcc, 0xdd, 0xee, 0xff]),
            "client-hardware-address=ethernet(1)/aa:bb:cc:dd:ee:ff"
        );
        assert_eq!(
            opt(13, &[0x65, 0x53, 0xf1, 0x00]),
            "lease-expiration-time=1700000000"
        );
        assert_eq!(opt(23, &[1]), "server-flags=0x01(STARTUP)");
        assert_eq!(opt(12, &[0, 3]), "IP-flags=0x03(RESERVED|BOOTP)");
        assert_eq!(opt(27, &[0]), "TLS-request=no-TLS(0)");
        assert_eq!(opt(35, &[1, 2]), "unknown-35=0x0102");
        assert_eq!(opt(4, &[]), "client-identifier=0x");
        assert_eq!(
            opt(9, &[0, 5, 3, b'f', b'o', b'o', 2, b'e', b'x', 0]),
            "DDNS=0x0005(FORWARD-COMPLETE|REVERSE-COMPLETE)/\"foo.ex\""
        );
        assert_eq!(opt(17, &[1, 0xab]), "message-digest=HMAC-MD5(1)/ab");
        let mut hba = [0u8; 32];
        hba[0] = 0xff;
        assert!(opt(11, &hba).ends_with("(8 set)"));
        // A known code with a bad length falls back to hex.
        assert_eq!(opt(3, &[1, 2]), "binding-status=0x0102");
    }

    #[test]
    fn json_escapes() {
        assert_eq!(json_str("a\"b\\c\n\u{1}é"), "\"a\\\"b\\\\c\\n\\u0001é\"");
    }

    #[test]
    fn kind_names() {
        let e = DecodeError::new(
            failover_proto::DecodeErrorKind::MissingOption(OptionCode::Mclt),
            12,
        );
        assert_eq!(kind_name(&e), "MissingOption");
        let e = DecodeError::new(failover_proto::DecodeErrorKind::Truncated { needed: 40 }, 3);
        assert_eq!(kind_name(&e), "Truncated");
    }
}
