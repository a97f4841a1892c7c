//! Control messages (everything but BNDUPD and BNDACK): the queue and how each is written.

use failover_proto::{
    Connect, ConnectAck, Contact, Disconnect, PROTOCOL_VERSION, PoolReq, PoolResp, RejectReason,
    ServerFlags, ServerState, State, Text, TlsReply, TlsRequest, UpdDone, UpdReq, UpdReqAll,
};

use super::Family;
use super::{Engine, PdHold};
use crate::time::UnixTime;

/// Control messages waiting to be sent (CONNECT, STATE, UPDDONE, ...).
pub(super) const CONTROL_CAPACITY: usize = 16;

/// A control message ready to go.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub(super) enum Control {
    Connect,
    ConnectAck {
        xid: u32,
        reject: Option<RejectReason>,
    },
    State,
    Contact,
    Disconnect(RejectReason),
    /// RFC 8156's DISCONNECT with ServerShuttingDown (§5.6): a V6 engine's orderly stop.
    ShuttingDown,
    UpdReq,
    UpdReqAll,
    UpdDone {
        xid: u32,
    },
    PoolReq,
    PoolResp {
        xid: u32,
        count: u32,
    },
    /// Close after everything before it was sent.
    Close,
}

impl<const QUEUE: usize, const COMMITS: usize, const EVENTS: usize, F: Family>
    Engine<QUEUE, COMMITS, EVENTS, F>
{
    /// Queues a control message. STATE and CONTACT are queued once (a STATE says the state
    /// at the time it is written).
    pub(super) fn push_control(&mut self, c: Control) {
        if matches!(c, Control::State | Control::Contact) && self.control.iter().any(|q| *q == c) {
            return;
        }
        // Bounded: a full queue means the partner is not reading; drop the connection.
        if self.control.push_back(c).is_err() {
            self.control.clear();
            self.abort_connection();
        }
    }

    /// Whether an update request of ours is outstanding or queued.
    pub(super) fn requesting(&self) -> bool {
        self.requests.ours.is_some()
            || self
                .control
                .iter()
                .any(|c| matches!(c, Control::UpdReq | Control::UpdReqAll))
    }

    /// The state, flags and start time a STATE message announces now.
    pub(super) fn announced_state(&self) -> (ServerState, ServerFlags, UnixTime) {
        match self.pd_hold {
            _ if self.state == ServerState::Startup => {
                (self.previous, ServerFlags::STARTUP, self.state_since)
            }
            PdHold::Armed(since) | PdHold::Until(_, since) if self.state == ServerState::Normal => {
                (ServerState::PartnerDown, ServerFlags::EMPTY, since)
            }
            _ => (self.state, ServerFlags::EMPTY, self.state_since),
        }
    }

    /// Writes control message `c` at our wall time `wall` into `buf`.
    pub(super) fn emit_control(&mut self, c: Control, wall: u32, buf: &mut [u8]) -> Option<usize> {
        // Messages we originate take a new xid; answers echo the request's (§6.1).
        let xid = match c {
            Control::ConnectAck { xid, .. }
            | Control::UpdDone { xid }
            | Control::PoolResp { xid, .. } => xid,
            _ => self.take_xid(),
        };
        if matches!(c, Control::UpdReq | Control::UpdReqAll) {
            self.requests.ours = Some(xid);
            self.requests.ours_all = c == Control::UpdReqAll;
        }
        if matches!(
            c,
            Control::Connect | Control::ConnectAck { reject: None, .. }
        ) {
            self.skew.handshake_sent(wall);
        }
        if F::IS_V6 {
            return self.emit_control6(c, xid, wall, buf);
        }
        match c {
            Control::Connect | Control::ConnectAck { .. } => self.emit_handshake(c, xid, wall, buf),
            Control::State => {
                let (state, flags, since) = self.announced_state();
                State {
                    time: wall,
                    xid,
                    server_state: state,
                    server_flags: flags,
                    start_time_of_state: since.0,
                    extra: Default::default(),
                    digest: None,
                }
                .emit(buf)
                .ok()
            }
            _ => emit_simple(c, xid, wall, buf),
        }
    }

    /// CONNECT and CONNECTACK, which carry our configuration (§7.8).
    fn emit_handshake(&self, c: Control, xid: u32, wall: u32, buf: &mut [u8]) -> Option<usize> {
        let name = Text(&self.config.relationship_name);
        let vendor = Text(&self.config.vendor_class);
        let n = match c {
            Control::Connect => Connect {
                time: wall,
                xid,
                relationship_name: name,
                max_unacked_bndupd: self.config.max_unacked_bndupd,
                receive_timer: self.config.receive_timer,
                vendor_class: vendor,
                protocol_version: PROTOCOL_VERSION,
                tls_request: Some(TlsRequest::NoTls),
                mclt: self.mclt.current(),
                hba: self.hba,
                ..Connect::default()
            }
            .emit(buf),
            Control::ConnectAck { reject, .. } => ConnectAck {
                time: wall,
                xid,
                relationship_name: Some(name),
                max_unacked_bndupd: reject.is_none().then_some(self.config.max_unacked_bndupd),
                receive_timer: reject.is_none().then_some(self.config.receive_timer),
                vendor_class: reject.is_none().then_some(vendor),
                protocol_version: PROTOCOL_VERSION,
                tls_reply: Some(TlsReply::NoTls),
                reject_reason: reject,
                message: reject.map(|r| Text(r.description().as_bytes())),
                ..ConnectAck::default()
            }
            .emit(buf),
            _ => return None,
        };
        n.ok()
    }
}

/// The control messages that carry nothing but their type and xid (and a count or reason).
fn emit_simple(c: Control, xid: u32, wall: u32, buf: &mut [u8]) -> Option<usize> {
    let n = match c {
        Control::Contact => Contact {
            time: wall,
            xid,
            ..Contact::default()
        }
        .emit(buf),
        Control::Disconnect(reason) => Disconnect {
            time: wall,
            xid,
            reject_reason: reason,
            message: Some(Text(reason.description().as_bytes())),
            extra: Default::default(),
            digest: None,
        }
        .emit(buf),
        Control::UpdReq => UpdReq {
            time: wall,
            xid,
            ..UpdReq::default()
        }
        .emit(buf),
        Control::UpdReqAll => UpdReqAll {
            time: wall,
            xid,
            ..UpdReqAll::default()
        }
        .emit(buf),
        Control::UpdDone { .. } => UpdDone {
            time: wall,
            xid,
            ..UpdDone::default()
        }
        .emit(buf),
        Control::PoolReq => PoolReq {
            time: wall,
            xid,
            ..PoolReq::default()
        }
        .emit(buf),
        Control::PoolResp { count, .. } => PoolResp {
            time: wall,
            xid,
            addresses_transferred: count,
            ..PoolResp::default()
        }
        .emit(buf),
        // ShuttingDown is a V6 engine's only.
        Control::Connect
        | Control::ConnectAck { .. }
        | Control::State
        | Control::Close
        | Control::ShuttingDown => {
            return None;
        }
    };
    n.ok()
}
