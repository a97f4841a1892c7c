//! Compares tshark's text decoding of a failover message (see `tshark_text`) with what our
//! decoder made of the same bytes: the options each message type has, scope by scope (the
//! message, then each binding of a BNDUPD/BNDACK), value by value.
#![allow(dead_code, clippy::panic)]

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use failover_proto::{
    BindingStatus, ExtraOptions, HardwareAddress, MessageDigest, MessageType, OptionCode,
    RejectReason, Repr, ServerState,
};

use super::tshark_text::{self as ts, TsMsg, TsOpt};

/// What tshark should show for one option.
#[derive(Debug)]
pub(crate) enum Want<'a> {
    /// A plain decimal number.
    Num(u64),
    /// `"N seconds"`.
    Seconds(u32),
    /// A UTC date.
    Time(u32),
    Ip(Ipv4Addr),
    /// A string option (relationship-name, vendor-class, message, client-identifier).
    Text(&'a [u8]),
    Hw(HardwareAddress<'a>),
    /// Hex without separators (hash-bucket-assignment).
    Hex(&'a [u8]),
    Status(BindingStatus),
    State(ServerState),
    ServerFlags(u8),
    Reject(RejectReason),
    /// TLS-request / TLS-reply: `"<name> (N)"`.
    Tls(u8),
    IpFlags(u16),
    /// DDNS: flags and FQDN (tshark shows it as a string).
    Ddns(u16, &'a [u8]),
    /// message-digest: type and digest.
    Digest(u8, &'a [u8]),
    /// Any other option data (tshark's text shows no value: only code and length compared).
    Raw(&'a [u8]),
}

#[derive(Debug)]
pub(crate) struct Exp<'a> {
    pub(crate) code: u16,
    pub(crate) len: usize,
    pub(crate) want: Want<'a>,
}

fn exp(code: OptionCode, len: usize, want: Want<'_>) -> Exp<'_> {
    Exp {
        code: code.into(),
        len,
        want,
    }
}

/// The detail label tshark 4.0 uses for each option's value.
pub(crate) fn label(code: u16) -> &'static str {
    match code {
        1 => "addresses transferred",
        2 => "assigned ip address",
        3 => "Type",
        4 => "Client Identifier",
        6 => "Client last transaction time",
        10 => "delayed service parameter",
        11 => "Hash bucket assignment",
        12 => "IP Flags",
        13 => "Lease expiration time",
        14 => "Max unacked BNDUPD",
        15 => "MCLT",
        16 => "Message",
        18 => "Potential expiration time",
        19 => "Receive timer",
        20 => "Protocol version",
        21 => "Reject reason",
        22 => "Relationship name",
        23 => "Serverflag",
        24 => "server status",
        25 => "Start time of state",
        26 => "TLS Reply",
        27 => "TLS Request",
        28 => "Vendor class",
        _ => panic!("no label for option {code}"),
    }
}

/// Compares one option tshark showed with what we decoded.
pub(crate) fn check_option(ctx: &str, e: &Exp<'_>, o: &TsOpt) {
    let ctx = format!(
        "{ctx}, tshark line {} option {} ({})",
        o.line, o.name, o.code
    );
    assert_eq!(o.code, e.code, "{ctx}: code");
    assert_eq!(usize::from(o.length), e.len, "{ctx}: length");
    let value = || o.field(label(e.code));
    match e.want {
        Want::Num(n) => assert_eq!(ts::number(value()), n, "{ctx}"),
        Want::Seconds(n) => assert_eq!(value(), format!("{n} seconds"), "{ctx}"),
        Want::Time(t) => assert_eq!(ts::parse_date(value()), Some(t), "{ctx}: {}", value()),
        Want::Ip(ip) => assert_eq!(value().parse::<Ipv4Addr>().ok(), Some(ip), "{ctx}"),
        Want::Text(b) => assert_eq!(value(), ts::render_text(b), "{ctx}: {b:02x?}"),
        Want::Hw(h) => {
            let (_, htype) = ts::name_and_paren(o.field("Client Hardware Type"));
            assert_eq!(ts::number(htype), u64::from(h.htype), "{ctx}: htype");
            assert_eq!(
                o.field("Client Hardware Address"),
                ts::hex_colons(h.address),
                "{ctx}: chaddr"
            );
        }
        Want::Hex(b) => assert_eq!(value(), ts::hex(b), "{ctx}"),
        Want::Status(s) => {
            let (name, n) = ts::name_and_paren(value());
            assert_eq!(ts::number(n), u64::from(u8::from(s)), "{ctx}");
            assert_eq!(name, s.name(), "{ctx}: name");
        }
        Want::State(s) => {
            let (name, n) = ts::name_and_paren(value());
            assert_eq!(ts::number(n), u64::from(u8::from(s)), "{ctx}");
            assert_eq!(name, ts::state_name(s), "{ctx}: name");
        }
        Want::ServerFlags(f) => {
            let (name, n) = ts::name_and_paren(value());
            assert_eq!(ts::number(n), u64::from(f), "{ctx}");
            let want = match f {
                0 => "NONE",
                1 => "STARTUP",
                _ => "UNKNOWN FLAGS",
            };
            assert_eq!(name, want, "{ctx}: name");
        }
        Want::Reject(r) => {
            let (name, n) = ts::name_and_paren(value());
            assert_eq!(ts::number(n), u64::from(u8::from(r)), "{ctx}");
            assert_eq!(name, r.name(), "{ctx}: name");
        }
        Want::Tls(v) => {
            let (_, n) = ts::name_and_paren(value());
            assert_eq!(ts::number(n), u64::from(v), "{ctx}");
        }
        Want::IpFlags(v) => {
            let shown = value().split(',').next().unwrap_or_default();
            assert_eq!(ts::number(shown), u64::from(v), "{ctx}");
        }
        Want::Ddns(..) | Want::Digest(..) | Want::Raw(_) => {}
    }
}

fn extras<'a>(out: &mut Vec<Exp<'a>>, extra: &ExtraOptions<'a>) {
    for o in extra.iter() {
        out.push(Exp {
            code: o.code,
            len: o.data.len(),
            want: Want::Raw(o.data),
        });
    }
}

fn digest<'a>(out: &mut Vec<Exp<'a>>, d: &Option<MessageDigest<'a>>) {
    if let Some(d) = d {
        out.push(exp(
            OptionCode::MessageDigest,
            1 + d.digest.len(),
            Want::Digest(d.kind.into(), d.digest),
        ));
    }
}

fn bare<'a>(out: &mut Vec<Exp<'a>>, extra: &ExtraOptions<'a>, d: &Option<MessageDigest<'a>>) {
    extras(out, extra);
    digest(out, d);
}

fn text<'a>(out: &mut Vec<Exp<'a>>, code: OptionCode, t: Option<&'a [u8]>) {
    if let Some(t) = t {
        out.push(exp(code, t.len(), Want::Text(t)));
    }
}

/// What tshark should show for a decoded message: one list of options per scope (the
/// message-level options, then one per binding transaction of a BNDUPD or BNDACK).
pub(crate) fn expected<'a>(repr: &'a Repr<'a>) -> Vec<Vec<Exp<'a>>> {
    use OptionCode as C;
    let mut top = Vec::new();
    let mut scopes = Vec::new();
    match repr {
        Repr::PoolReq(m) => bare(&mut top, &m.extra, &m.digest),
        Repr::UpdReqAll(m) => bare(&mut top, &m.extra, &m.digest),
        Repr::UpdDone(m) => bare(&mut top, &m.extra, &m.digest),
        Repr::UpdReq(m) => bare(&mut top, &m.extra, &m.digest),
        Repr::Contact(m) => bare(&mut top, &m.extra, &m.digest),
        Repr::PoolResp(m) => {
            top.push(exp(
                C::AddressesTransferred,
                4,
                Want::Num(m.addresses_transferred.into()),
            ));
            extras(&mut top, &m.extra);
            digest(&mut top, &m.digest);
        }
        Repr::State(m) => {
            top.push(exp(C::ServerState, 1, Want::State(m.server_state)));
            top.push(exp(C::ServerFlags, 1, Want::ServerFlags(m.server_flags.0)));
            top.push(exp(
                C::StartTimeOfState,
                4,
                Want::Time(m.start_time_of_state),
            ));
            extras(&mut top, &m.extra);
            digest(&mut top, &m.digest);
        }
        Repr::Disconnect(m) => {
            top.push(exp(C::RejectReason, 1, Want::Reject(m.reject_reason)));
            text(&mut top, C::Message, m.message.map(|t| t.0));
            extras(&mut top, &m.extra);
            digest(&mut top, &m.digest);
        }
        Repr::Connect(m) => {
            text(&mut top, C::RelationshipName, Some(m.relationship_name.0));
            top.push(exp(
                C::MaxUnackedBndupd,
                4,
                Want::Num(m.max_unacked_bndupd.into()),
            ));
            top.push(exp(C::ReceiveTimer, 4, Want::Seconds(m.receive_timer)));
            text(&mut top, C::VendorClassIdentifier, Some(m.vendor_class.0));
            top.push(exp(
                C::ProtocolVersion,
                1,
                Want::Num(m.protocol_version.into()),
            ));
            if let Some(t) = m.tls_request {
                top.push(exp(C::TlsRequest, 1, Want::Tls(t.into())));
            }
            top.push(exp(C::Mclt, 4, Want::Num(m.mclt.into())));
            top.push(exp(C::HashBucketAssignment, 32, Want::Hex(&m.hba.0)));
            if let Some(d) = m.delayed_service {
                top.push(exp(C::DelayedServiceParameter, 1, Want::Num(d.into())));
            }
            if let Some(v) = m.vendor_options {
                top.push(exp(C::VendorSpecificOptions, v.len(), Want::Raw(v)));
            }
            extras(&mut top, &m.extra);
            digest(&mut top, &m.digest);
        }
        Repr::ConnectAck(m) => {
            text(
                &mut top,
                C::RelationshipName,
                m.relationship_name.map(|t| t.0),
            );
            if let Some(v) = m.max_unacked_bndupd {
                top.push(exp(C::MaxUnackedBndupd, 4, Want::Num(v.into())));
            }
            if let Some(v) = m.receive_timer {
                top.push(exp(C::ReceiveTimer, 4, Want::Seconds(v)));
            }
            text(
                &mut top,
                C::VendorClassIdentifier,
                m.vendor_class.map(|t| t.0),
            );
            top.push(exp(
                C::ProtocolVersion,
                1,
                Want::Num(m.protocol_version.into()),
            ));
            if let Some(t) = m.tls_reply {
                top.push(exp(C::TlsReply, 1, Want::Tls(t.into())));
            }
            if let Some(r) = m.reject_reason {
                top.push(exp(C::RejectReason, 1, Want::Reject(r)));
            }
            text(&mut top, C::Message, m.message.map(|t| t.0));
            if let Some(v) = m.vendor_options {
                top.push(exp(C::VendorSpecificOptions, v.len(), Want::Raw(v)));
            }
            extras(&mut top, &m.extra);
            digest(&mut top, &m.digest);
        }
        Repr::BndUpd(m) => {
            extras(&mut top, &m.extra);
            for b in m.bindings.iter() {
                let mut s = vec![
                    exp(C::AssignedIpAddress, 4, Want::Ip(b.address)),
                    exp(C::BindingStatus, 1, Want::Status(b.status)),
                ];
                text(&mut s, C::ClientIdentifier, b.client_identifier);
                if let Some(h) = b.hardware_address {
                    s.push(exp(C::ClientHardwareAddress, h.wire_len(), Want::Hw(h)));
                }
                for (code, t) in [
                    (C::LeaseExpirationTime, b.lease_expiration_time),
                    (C::PotentialExpirationTime, b.potential_expiration_time),
                    (C::StartTimeOfState, b.start_time_of_state),
                    (C::ClientLastTransactionTime, b.client_last_transaction_time),
                ] {
                    if let Some(t) = t {
                        s.push(exp(code, 4, Want::Time(t)));
                    }
                }
                if let Some(f) = b.ip_flags {
                    s.push(exp(C::IpFlags, 2, Want::IpFlags(f.0)));
                }
                if let Some(d) = b.ddns {
                    s.push(exp(
                        C::Ddns,
                        2 + d.fqdn.len(),
                        Want::Ddns(d.flags.0, d.fqdn),
                    ));
                }
                for (code, v) in [
                    (C::ClientRequestOptions, b.client_request_options),
                    (C::ClientReplyOptions, b.client_reply_options),
                ] {
                    if let Some(v) = v {
                        s.push(exp(code, v.len(), Want::Raw(v)));
                    }
                }
                extras(&mut s, &b.extra);
                scopes.push(s);
            }
            if let Some(last) = scopes.last_mut() {
                digest(last, &m.digest);
            }
        }
        Repr::BndAck(m) => {
            extras(&mut top, &m.extra);
            for a in m.acks.iter() {
                let mut s = vec![exp(C::AssignedIpAddress, 4, Want::Ip(a.address))];
                if let Some(r) = a.reject_reason {
                    s.push(exp(C::RejectReason, 1, Want::Reject(r)));
                }
                text(&mut s, C::Message, a.message.map(|t| t.0));
                extras(&mut s, &a.extra);
                scopes.push(s);
            }
            if let Some(last) = scopes.last_mut() {
                digest(last, &m.digest);
            }
        }
        Repr::Optional(m) => extras(&mut top, &m.options),
    }
    scopes.insert(0, top);
    scopes
}

/// tshark's options split the same way: before the first assigned-IP-address, then one scope
/// per assigned-IP-address (only for BNDUPD and BNDACK).
pub(crate) fn shown_scopes(t: MessageType, opts: &[TsOpt]) -> Vec<Vec<&TsOpt>> {
    let batched = matches!(t, MessageType::BndUpd | MessageType::BndAck);
    let mut scopes = vec![Vec::new()];
    for o in opts {
        if batched && o.code == 2 {
            scopes.push(Vec::new());
        }
        scopes.last_mut().unwrap().push(o);
    }
    scopes
}

/// Compares every option tshark shows for `t` with the typed message `repr`: the same options
/// in each scope, each with the value we decoded. Returns how many values were compared per
/// option code. `ctx` names the message in panics.
pub(crate) fn compare<'a>(ctx: &str, repr: &'a Repr<'a>, t: &TsMsg) -> BTreeMap<u16, usize> {
    let mut per_code = BTreeMap::new();
    let want = expected(repr);
    let got = shown_scopes(repr.message_type(), &t.options);
    assert_eq!(got.len(), want.len(), "{ctx}: number of bindings");
    for (scope, (mut w, mut g)) in want.into_iter().zip(got).enumerate() {
        w.sort_by_key(|e| e.code);
        g.sort_by_key(|o| o.code);
        let wc: Vec<u16> = w.iter().map(|e| e.code).collect();
        let gc: Vec<u16> = g.iter().map(|o| o.code).collect();
        assert_eq!(gc, wc, "{ctx}: option codes of scope {scope}");
        for (e, o) in w.iter().zip(g) {
            check_option(ctx, e, o);
            *per_code.entry(e.code).or_default() += 1;
        }
    }
    per_code
}
