//! The file store's log format: one record per line, space-separated fields, '-' for none.

use std::net::Ipv4Addr;

use failover_fsm::accept::{ClientIdentity, LocalBinding, Verdict};
use failover_fsm::record::LeaseRecord;
use failover_fsm::{BindingData, BindingStatus, Persisted, ServerState, UnixTime};
use failover_proto::IpFlags;

use super::Lease;

/// One line of the file store's log.
#[derive(Debug, Clone)]
pub(super) enum Record {
    State(Persisted),
    /// The whole record of one address, as it stands after a change.
    Lease(Box<Lease>),
    /// First format: a binding received and its verdict.
    Received(BindingData, Verdict),
    /// First format: a change of our own.
    Local(BindingData),
    /// First format: an acknowledgement.
    Acked([u8; 4], BindingStatus, Option<UnixTime>),
}

// ----- the log format: one record per line, space-separated fields, '-' for none -----

pub(super) fn opt_u32(v: Option<UnixTime>) -> String {
    v.map_or_else(|| "-".to_string(), |t| t.0.to_string())
}

// The writers below append to one line in place: a sync encodes every changed record, and a
// `String` per field made the encoding the largest CPU cost of a durable batch.

pub(super) fn put_opt(out: &mut String, v: Option<UnixTime>) {
    match v {
        Some(t) => put_u32(out, t.0),
        None => out.push('-'),
    }
}

/// A number in decimal, as `Display` writes it (without the formatter's machinery: the times
/// are most of a line).
pub(super) fn put_u32(out: &mut String, mut n: u32) {
    let mut digits = [b'0'; 10];
    let mut start = digits.len();
    for d in digits.iter_mut().rev() {
        *d = b'0' + (n % 10) as u8;
        n /= 10;
        start -= 1;
        if n == 0 {
            break;
        }
    }
    for d in digits.get(start..).unwrap_or_default() {
        out.push(char::from(*d));
    }
}

pub(super) fn put_hex(out: &mut String, b: &[u8]) {
    const DIGITS: &[u8; 16] = b"0123456789abcdef";
    if b.is_empty() {
        out.push('=');
    }
    for x in b {
        for d in [x >> 4, x & 0x0f] {
            out.push(char::from(
                DIGITS.get(usize::from(d)).copied().unwrap_or(b'0'),
            ));
        }
    }
}

pub(super) fn binding_fields(b: &BindingData) -> String {
    let mut s = String::new();
    put_binding_fields(&mut s, b);
    s
}

pub(super) fn put_binding_fields(out: &mut String, b: &BindingData) {
    for (i, octet) in b.address.iter().enumerate() {
        if i > 0 {
            out.push('.');
        }
        put_u32(out, (*octet).into());
    }
    out.push(' ');
    put_u32(out, u8::from(b.status).into());
    out.push(' ');
    match &b.client_identifier {
        Some(c) => put_hex(out, c),
        None => out.push('-'),
    }
    match &b.hardware_address {
        Some((t, a)) => {
            out.push(' ');
            put_u32(out, (*t).into());
            out.push(' ');
            put_hex(out, a);
        }
        None => out.push_str(" - -"),
    }
    for t in [
        b.lease_expiration_time,
        b.potential_expiration_time,
        b.start_time_of_state,
        b.client_last_transaction_time,
    ] {
        out.push(' ');
        put_opt(out, t);
    }
    out.push(' ');
    put_u32(out, b.ip_flags.0.into());
    out.push_str(" end");
}

/// Appends the log line of the record `l` (without its newline).
pub(super) fn put_lease(out: &mut String, l: &Lease) {
    out.push_str("lease ");
    put_binding_fields(out, &l.data);
    out.push(' ');
    put_u32(out, u8::from(l.local.status).into());
    for t in [
        l.local.cltt,
        l.local.lease_expiration,
        l.local.start_time_of_state,
        l.local.sent_pet,
        l.local.acked_pet,
        l.local.received_pet,
    ] {
        out.push(' ');
        put_opt(out, t);
    }
    out.push(' ');
    match l.local.partner_status {
        Some(p) => put_u32(out, u8::from(p).into()),
        None => out.push('-'),
    }
    for flag in [l.local.reserved, l.local.bootp, l.partner_has_it] {
        out.push(' ');
        put_u32(out, u8::from(flag).into());
    }
    out.push_str(" end");
}

pub(super) fn encode_record(r: &Record) -> String {
    match r {
        Record::State(p) => format!(
            "state {} {} {} {}{}",
            u8::from(p.state),
            p.since.0,
            p.mclt.map_or_else(|| "-".to_string(), |m| m.to_string()),
            opt_u32(p.last_operational),
            // Only while a refresh is under way, so older logs read the same.
            if p.lease_table_lost { " lost" } else { "" }
        ),
        Record::Received(b, v) => format!(
            "recv {} {} {} {} {} end",
            binding_fields(b),
            u8::from(v.store_as),
            opt_u32(v.lease_expiration),
            opt_u32(v.received_pet),
            v.superseded_xid
                .map_or_else(|| "-".to_string(), |x| x.to_string()),
        ),
        Record::Lease(l) => {
            let mut s = String::new();
            put_lease(&mut s, l);
            s
        }
        Record::Local(b) => format!("local {}", binding_fields(b)),
        Record::Acked(a, s, pet) => format!(
            "acked {} {} {}",
            Ipv4Addr::from(*a),
            u8::from(*s),
            opt_u32(*pet)
        ),
    }
}

pub(super) fn unhex(s: &str) -> Option<Vec<u8>> {
    if s == "=" {
        return Some(Vec::new());
    }
    if s.len() % 2 != 0 {
        return None;
    }
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(s.get(i..i + 2)?, 16).ok())
        .collect()
}

pub(super) fn time(s: &str) -> Option<Option<UnixTime>> {
    if s == "-" {
        Some(None)
    } else {
        s.parse().ok().map(|t| Some(UnixTime(t)))
    }
}

pub(super) fn decode_binding<'a>(f: &mut impl Iterator<Item = &'a str>) -> Option<BindingData> {
    let addr: Ipv4Addr = f.next()?.parse().ok()?;
    let status = BindingStatus::from(f.next()?.parse::<u8>().ok()?);
    let mut b = BindingData::new(addr, status);
    let cid = f.next()?;
    if cid != "-" {
        b.client_identifier = Some(heapless::Vec::from_slice(&unhex(cid)?).ok()?);
    }
    let (htype, hw) = (f.next()?, f.next()?);
    if htype != "-" {
        b.hardware_address = Some((
            htype.parse().ok()?,
            heapless::Vec::from_slice(&unhex(hw)?).ok()?,
        ));
    }
    b.lease_expiration_time = time(f.next()?)?;
    b.potential_expiration_time = time(f.next()?)?;
    b.start_time_of_state = time(f.next()?)?;
    b.client_last_transaction_time = time(f.next()?)?;
    b.ip_flags = IpFlags(f.next()?.parse().ok()?);
    (f.next()? == "end").then_some(b)
}

pub(super) fn flag(s: &str) -> Option<bool> {
    match s {
        "0" => Some(false),
        "1" => Some(true),
        _ => None,
    }
}

pub(super) fn decode_record(line: &str) -> Option<Record> {
    let mut f = line.split(' ');
    let r = match f.next()? {
        "state" => Record::State(Persisted {
            state: ServerState::from(f.next()?.parse::<u8>().ok()?),
            since: UnixTime(f.next()?.parse().ok()?),
            mclt: match f.next()? {
                "-" => None,
                m => Some(m.parse().ok()?),
            },
            last_operational: time(f.next()?)?,
            lease_table_lost: match f.next() {
                None => false,
                Some("lost") => true,
                Some(_) => return None,
            },
        }),
        "recv" => {
            let b = decode_binding(&mut f)?;
            let v = Verdict {
                store_as: BindingStatus::from(f.next()?.parse::<u8>().ok()?),
                lease_expiration: time(f.next()?)?,
                received_pet: time(f.next()?)?,
                client_changed: false,
                superseded_xid: match f.next()? {
                    "-" => None,
                    x => Some(x.parse().ok()?),
                },
                // Not logged: what was outstanding or dropped matters only when the verdict
                // is applied.
                ours_in_flight: false,
                ours_dropped: false,
                taken_as_newer: false,
                ours_wins_tie: false,
                partner_time_shift: 0,
                skew_margin: 0,
            };
            (f.next()? == "end").then_some(())?;
            Record::Received(b, v)
        }
        "lease" => {
            let data = decode_binding(&mut f)?;
            let mut local = LocalBinding::new(BindingStatus::from(f.next()?.parse::<u8>().ok()?));
            local.client = ClientIdentity::of(&data.to_wire());
            local.cltt = time(f.next()?)?;
            local.lease_expiration = time(f.next()?)?;
            local.start_time_of_state = time(f.next()?)?;
            local.sent_pet = time(f.next()?)?;
            local.acked_pet = time(f.next()?)?;
            local.received_pet = time(f.next()?)?;
            local.partner_status = match f.next()? {
                "-" => None,
                p => Some(BindingStatus::from(p.parse::<u8>().ok()?)),
            };
            local.reserved = flag(f.next()?)?;
            local.bootp = flag(f.next()?)?;
            let partner_has_it = flag(f.next()?)?;
            (f.next()? == "end").then_some(())?;
            Record::Lease(Box::new(LeaseRecord::stored(local, data, partner_has_it)))
        }
        "local" => Record::Local(decode_binding(&mut f)?),
        "acked" => Record::Acked(
            f.next()?.parse::<Ipv4Addr>().ok()?.octets(),
            BindingStatus::from(f.next()?.parse::<u8>().ok()?),
            time(f.next()?)?,
        ),
        _ => return None,
    };
    f.next().is_none().then_some(r)
}
