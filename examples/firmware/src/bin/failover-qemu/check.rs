//! Checks every message the engine sends against what the partner asked and what the captured
//! ISC secondary answered.

use failover_proto::{Repr, ServerState};

use crate::device::Failure;
use crate::log::say;

/// Requests of the partner that want an answer, and everything learnt from our answers.
pub struct Checker {
    /// BNDUPDs fed and not yet acknowledged: (xid, address), in arrival order.
    pending: [(u32, [u8; 4]); 16],
    pending_len: usize,
    /// xids of the partner's UPDREQALLs, answered by UPDDONE (§7.4, §7.5).
    pub updreqall: [u32; 4],
    pub updreqall_len: usize,
    /// The CONNECT's xid, answered by CONNECTACK (§7.8).
    pub connect: Option<u32>,
    pub connectack_seen: bool,
    /// The xid of our last UPDREQALL.
    pub our_updreqall: Option<u32>,
    pub bndacks: u32,
    pub poolreqs: u32,
    pub bndacked: [u32; 256],
    pub upddones: [u32; 4],
    pub upddones_len: usize,
    /// Server-states we announced in STATE, repeats folded.
    pub states: [u8; 16],
    pub states_len: usize,
}

impl Checker {
    pub const fn new() -> Self {
        Checker {
            pending: [(0, [0; 4]); 16],
            pending_len: 0,
            updreqall: [0; 4],
            updreqall_len: 0,
            connect: None,
            connectack_seen: false,
            our_updreqall: None,
            bndacks: 0,
            poolreqs: 0,
            bndacked: [0; 256],
            upddones: [0; 4],
            upddones_len: 0,
            states: [0; 16],
            states_len: 0,
        }
    }

    /// A message from the partner, before the engine sees it.
    pub fn received(&mut self, repr: &Repr<'_>) -> Result<(), Failure> {
        match repr {
            Repr::Connect(c) => self.connect = Some(c.xid),
            Repr::UpdReqAll(r) => push(&mut self.updreqall, &mut self.updreqall_len, r.xid)?,
            Repr::BndUpd(u) => {
                // ISC sends one binding per BNDUPD.
                let b = u.bindings.first().ok_or("a BNDUPD without binding")?;
                let slot = self
                    .pending
                    .get_mut(self.pending_len)
                    .ok_or("more BNDUPDs unacknowledged than the partner may send")?;
                *slot = (u.xid, b.address.octets());
                self.pending_len += 1;
            }
            _ => {}
        }
        Ok(())
    }

    /// A message the engine sent.
    pub fn sent(&mut self, bytes: &[u8]) -> Result<(), Failure> {
        let repr =
            Repr::parse(bytes).map_err(|_| "the engine sent a message that does not decode")?;
        match repr {
            // §7.8: accept the CONNECT, with its xid, before anything else.
            Repr::ConnectAck(a) => {
                if a.reject_reason.is_some() {
                    return Err("CONNECTACK rejects the partner");
                }
                if Some(a.xid) != self.connect || self.connectack_seen {
                    return Err("CONNECTACK with the wrong xid, or twice");
                }
                self.connectack_seen = true;
            }
            Repr::State(s) => {
                if !self.connectack_seen {
                    return Err("STATE before CONNECTACK");
                }
                let code = u8::from(s.server_state);
                if self.states_len == 0 || self.states.get(self.states_len - 1) != Some(&code) {
                    push(&mut self.states, &mut self.states_len, code)?;
                }
            }
            // §7.2: one BNDACK per BNDUPD, same xid, the same address, accepted.
            Repr::BndAck(a) => {
                let mut acks = a.acks.iter();
                let (Some(ack), None) = (acks.next(), acks.next()) else {
                    return Err("a BNDACK without exactly one binding");
                };
                if ack.reject_reason.is_some() {
                    return Err("a BNDACK rejects a captured binding");
                }
                let i = self.pending[..self.pending_len]
                    .iter()
                    .position(|p| p.0 == a.xid)
                    .ok_or("a BNDACK whose xid matches no BNDUPD")?;
                if self.pending[i].1 != ack.address.octets() {
                    return Err("a BNDACK for another address than its BNDUPD");
                }
                self.pending.copy_within(i + 1..self.pending_len, i);
                self.pending_len -= 1;
                if let Some(slot) = self.bndacked.get_mut(self.bndacks as usize) {
                    *slot = a.xid;
                }
                self.bndacks += 1;
            }
            // §7.5: UPDDONE answers an UPDREQALL of the partner once all it asked for is acked.
            Repr::UpdDone(d) => {
                if !self.updreqall[..self.updreqall_len].contains(&d.xid) {
                    return Err("UPDDONE whose xid matches no UPDREQALL");
                }
                push(&mut self.upddones, &mut self.upddones_len, d.xid)?;
            }
            // Our own request for the partner's bindings (RECOVER, §9.5.2); its UPDDONE is
            // readdressed to this xid.
            Repr::UpdReqAll(r) => self.our_updreqall = Some(r.xid),
            Repr::Contact(_) => {}
            // A secondary entering NORMAL asks the primary for addresses (§9.8.1, §7.6). The
            // captured ISC secondary did not; the capture has no POOLRESP to feed back.
            Repr::PoolReq(_) => {
                if !self.announced(ServerState::Normal) {
                    return Err("POOLREQ before NORMAL was announced");
                }
                self.poolreqs += 1;
            }
            Repr::BndUpd(_) => return Err("the engine sent a BNDUPD: a new secondary has none"),
            other => {
                say!("unexpected: {}", other.message_type().name());
                return Err("the engine sent a message the conversation does not call for");
            }
        }
        Ok(())
    }

    /// Answers still owed.
    pub fn unanswered(&self) -> usize {
        self.pending_len
    }

    pub fn states(&self) -> &[u8] {
        self.states.get(..self.states_len).unwrap_or_default()
    }

    /// Whether the folded STATE sequence ends in `state`.
    pub fn announced(&self, state: ServerState) -> bool {
        self.states().last() == Some(&u8::from(state))
    }
}

fn push<T, const N: usize>(list: &mut [T; N], len: &mut usize, v: T) -> Result<(), Failure> {
    *list.get_mut(*len).ok_or("list full")? = v;
    *len += 1;
    Ok(())
}
