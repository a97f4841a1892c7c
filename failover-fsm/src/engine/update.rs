//! Binding updates: judging and committing the partner's (BNDUPD in, §7.1), and the answers
//! to ours (BNDACK in, §7.2).

use failover_proto::{Binding, BindingStatus, BndAck, BndUpd, RejectReason, Role};

use super::Family;
use super::incoming::{Incoming, Items, Outcome};
use super::{
    Action, CommitSink, CommitToken, Engine, EngineError, Event, LeaseLookup, MAX_BATCH, UpdateId,
    wrong_type,
};
use crate::accept::{LocalBinding, Verdict, judge_update};
use crate::binding::BindingData;
use crate::dialect::Dialect;
use crate::time::{Instant, UnixTime};

impl<const QUEUE: usize, const COMMITS: usize, const EVENTS: usize, F: Family>
    Engine<QUEUE, COMMITS, EVENTS, F>
{
    /// A BNDUPD from the partner: each binding is judged; the accepted ones go to the caller
    /// to commit (`commits`), and the BNDACK waits for those commits (§7.2).
    pub(super) fn on_bndupd(
        &mut self,
        now: Instant,
        wall: UnixTime,
        u: &BndUpd<'_>,
        db: &impl LeaseLookup,
        commits: &mut impl CommitSink,
    ) {
        // Counting the bindings parses them: once.
        let count = u.bindings.len();
        if count > MAX_BATCH || self.receive_window_full() {
            // More BNDUPDs unacknowledged than the max-unacked-bndupd we advertised (§8.4: the
            // partner MUST NOT send more, §7.3), or a batch we cannot hold.
            let error = wrong_type(4, 3);
            self.protocol_error(now, error, RejectReason::UnknownConnectionReason);
            return;
        }
        let first_token = self.incoming.tokens(count);
        let mut incoming = Incoming {
            xid: u.xid,
            first_token,
            items: Items::new(),
        };
        for (b, token) in u.bindings.iter().zip(first_token..) {
            let item = self.receive_binding(&b, token, wall, db, commits);
            // The codec and the check above bound the batch to MAX_BATCH.
            let _ = incoming.items.push(item);
        }
        // Room was checked above (flow control: at most max-unacked in flight).
        self.keep_incoming(incoming);
    }

    /// One binding of a received BNDUPD: handed to the caller to commit with `token`, or
    /// rejected at once (with the reason).
    fn receive_binding(
        &mut self,
        b: &Binding<'_>,
        token: u64,
        wall: UnixTime,
        db: &impl LeaseLookup,
        commits: &mut impl CommitSink,
    ) -> ([u8; 4], Outcome) {
        let address = b.address.octets();
        // The binding is built once and moved only into the sink: each move of a
        // `BindingData` is a copy of ~150 bytes, and this runs for every binding received.
        let reason = match BindingData::from_wire(b) {
            // ISC rejects over-long client data with reason 6.
            Err(_) => RejectReason::UnknownConnectionReason,
            Ok(mut data) => {
                if let (Dialect::Draft, Some(skew)) = (self.config.dialect, self.skew.correction())
                {
                    data.shift(skew);
                }
                match self.judge(db.lookup(b.address), &data, wall) {
                    Ok(mut verdict) => {
                        if let Some(pet) = verdict.received_pet {
                            self.mclt.note_received_pet(pet);
                        }
                        verdict.ours_dropped = self.supersede(&data, &verdict);
                        commits.commit(CommitToken(token), data, verdict);
                        return (address, None);
                    }
                    Err(reason) => reason,
                }
            }
        };
        self.last_reject = Some(reason);
        self.push_event(Event::RejectedPartnerBinding { address, reason });
        (address, Some(Some(reason)))
    }

    /// Keeps a received update until its BNDACK goes out (once every binding is settled).
    pub(super) fn keep_incoming(&mut self, inc: Incoming) {
        if self.incoming.push(inc).is_err() {
            self.abort_connection();
        }
    }

    /// Whether the partner has as many BNDUPDs unacknowledged as we advertised in
    /// max-unacked-bndupd (or as we can hold): one more breaks flow control (§8.4).
    pub(super) fn receive_window_full(&self) -> bool {
        let advertised = usize::try_from(self.config.max_unacked_bndupd).unwrap_or(COMMITS);
        self.incoming.unacked() >= advertised.min(COMMITS)
    }

    /// The caller committed (`reason` `None`) or failed to commit the binding of `token`; once
    /// every binding of its update is settled, the BNDACK is ready (`poll_transmit`).
    pub(super) fn resolve(
        &mut self,
        token: CommitToken,
        reason: Option<RejectReason>,
    ) -> Result<(), EngineError> {
        self.incoming.resolve(token, reason)?;
        if let Some(r) = reason {
            self.last_reject = Some(r);
        }
        Ok(())
    }

    /// Judges a received binding against our record of the address (§7.1.3).
    fn judge(
        &self,
        local: Option<LocalBinding>,
        received: &BindingData,
        wall: UnixTime,
    ) -> Result<Verdict, RejectReason> {
        let Some(mut local) = local else {
            return Err(RejectReason::IllegalIpAddress);
        };
        // What is outstanding is the engine's to know, not the store's.
        local.in_flight = self.outgoing.in_flight_for(&received.address);
        let ours_in_flight = local.in_flight;
        let cltt_before = local.cltt;
        if self.config.dialect == Dialect::Draft && !self.refresh_from_partner {
            self.order_crossing_updates(&mut local, received, wall);
        }
        // Ordered before theirs: the store must not keep ours for its later time (seed
        // 54068510: the primary kept its RELEASED over the secondary's renewal it had
        // accepted, sent it again later, and freed the address under the client).
        let taken_as_newer = local.cltt != cltt_before && local.cltt < cltt_before;
        if self.refresh_from_partner {
            // Refreshing a lost lease table from the partner (§9.5: "refresh its stable
            // storage from the other server"). Whatever we hold is a restored older copy at
            // best; the partner's table is the reference, so judge as an empty store would
            // (found by the simulator: a restored lease that had since ended refused the
            // partner's BACKUP, and both then served the address).
            local = LocalBinding {
                reserved: local.reserved,
                bootp: local.bootp,
                ..LocalBinding::new(BindingStatus::Free)
            };
        }
        // The partner's clock is at most this far ahead of ours: the lower bound of the skew
        // (ours minus theirs), measured from an answer to a message of ours (§5.10).
        let partner_ahead = self.skew.lower().map(|lo| u32::try_from(-lo).unwrap_or(0));
        let verdict = judge_update(
            self.config.dialect,
            self.config.role,
            self.state,
            Some(&local),
            &received.to_wire(),
            wall,
            partner_ahead,
        )?;
        // Taken over ours in a refresh, whatever of ours is in flight is superseded (the
        // caller clears its outstanding flag on that; a stale one made ISC's dueling rule
        // refuse the partner's later updates, seed 503470).
        let refreshed = ours_in_flight.filter(|_| self.refresh_from_partner);
        let partner_time_shift = match (self.config.dialect, self.skew.correction()) {
            (Dialect::Draft, Some(skew)) => skew,
            _ => 0,
        };
        // While the skew is not proven (0 still fits between its bounds, so no correction),
        // the partner's lease may end as late as its upper bound in our clock: the client
        // keeps it that long here (§5.10). Found by the simulator (seed 32387201): a
        // handshake slowed 11 s by a latency spike left a partner 10 s behind uncorrected;
        // its lease ended 10 s early here and the address was freed under its client.
        let skew_margin = match self.config.dialect {
            Dialect::Draft => self.skew.unproven_lateness(),
            Dialect::Isc => 0,
        };
        Ok(Verdict {
            superseded_xid: verdict.superseded_xid.or(refreshed),
            ours_in_flight: ours_in_flight.is_some(),
            taken_as_newer,
            ours_wins_tie: self.ours_wins_tie(received),
            partner_time_shift,
            skew_margin,
            ..verdict
        })
    }

    /// Whether our record is kept over `received` when their times are equal
    /// ([`Verdict::ours_wins_tie`]): under the draft's rules, on the primary, for updates
    /// that cross on the wire (ours sent and not yet answered) — and only where the partner
    /// takes ours in turn whatever its record says. Its FREE, BACKUP, EXPIRED or RELEASED
    /// accepts any update (Figure 7.1.3-1); keeping ours over its ACTIVE would not be
    /// answered in kind (it refuses our FREE while its lease runs, time(2)), and the primary
    /// would free an address the partner has just leased (found by the simulator: seed
    /// 84722595, where our unacknowledged FREE was a merged copy of the partner's own
    /// release).
    fn ours_wins_tie(&self, received: &BindingData) -> bool {
        use BindingStatus::{Backup, Expired, Free, Released};
        self.config.dialect == Dialect::Draft
            && self.config.role == Role::Primary
            && !self.refresh_from_partner
            && matches!(received.status, Free | Backup | Expired | Released)
            && self.outgoing.sent_for(&received.address)
    }

    /// Crossing updates of one client's lease (ours still queued or in flight) whose
    /// client-last-transaction-times are closer than the clocks can tell apart: a release or
    /// expiry at one server and a renewal at the other a second or two apart. Their order is
    /// unknowable, so both servers keep the lease (draft time rule (1), §7.1.3, read with the
    /// clock uncertainty of §5.10): the address then ends with the lease instead of being
    /// freed on one side while the client holds it (found by the `pair` fuzz target, with a
    /// latency spike at connection time inflating the measured skew).
    fn order_crossing_updates(
        &self,
        local: &mut LocalBinding,
        received: &BindingData,
        now: UnixTime,
    ) {
        use BindingStatus::{Active, Expired, Released};
        let (Some(ours), Some(theirs)) = (local.cltt, received.client_last_transaction_time) else {
            return;
        };
        let uncertainty = self.skew.uncertainty();
        if !self.outgoing.holds(&received.address)
            || local.client.same_client(&received.client()) != Some(true)
            || ours.0.abs_diff(theirs.0) > uncertainty
        {
            return;
        }
        let margin = uncertainty.saturating_add(1);
        // Only a lease still running is kept: an ended ACTIVE and an EXPIRED of the same lease
        // say the same, and the draft settles those by the expiry time (time(2)).
        let running = |t: Option<UnixTime>| t.is_some_and(|t| t > now);
        match (local.status, received.status) {
            // Theirs ends our running lease: take it as older than ours.
            (Active, Expired | Released) if running(local.lease_expiration) => {
                local.cltt = Some(theirs.plus(margin));
            }
            // Theirs renews it: take it as newer than ours.
            (Expired | Released, Active) if running(received.lease_expiration_time) => {
                local.cltt = Some(UnixTime(theirs.0.saturating_sub(margin)));
            }
            _ => {}
        }
    }

    /// We accept the partner's `received` binding: our stale copies of it go (see
    /// `OutgoingQueue::supersede`).
    /// Returns whether a copy not yet sent was dropped ([`Verdict::ours_dropped`]).
    fn supersede(&mut self, received: &BindingData, verdict: &Verdict) -> bool {
        let isc = self.config.dialect == Dialect::Isc;
        let queued = self.outgoing.len();
        if !self
            .outgoing
            .supersede(received, isc, verdict.taken_as_newer, verdict.ours_wins_tie)
        {
            return false;
        }
        let dropped = queued.saturating_sub(self.outgoing.len());
        self.count_dropped(dropped);
        // A dropped binding may have been the last one an UPDDONE or the PARTNER-DOWN
        // hold waited for: no BNDACK will come for it to trigger them.
        self.check_upddone();
        self.release_pd_hold();
        true
    }

    /// `n` of our updates left the queue unaccepted ([`super::Counters::updates_dropped`]).
    pub(super) fn count_dropped(&mut self, n: usize) {
        let n = u32::try_from(n).unwrap_or(u32::MAX);
        self.counters.updates_dropped = self.counters.updates_dropped.wrapping_add(n);
    }

    /// A time from the partner, in our clock: corrected by the skew under the draft (§5.10),
    /// taken as is under ISC rules (ISC does not correct, D27).
    pub(super) fn partner_time(&self, t: u32) -> UnixTime {
        match (self.config.dialect, self.skew.correction()) {
            (Dialect::Draft, Some(skew)) if t != 0 => {
                UnixTime(u32::try_from((i64::from(t) + skew).max(0)).unwrap_or(u32::MAX))
            }
            _ => UnixTime(t),
        }
    }

    /// The partner's BNDACK for our bindings.
    pub(super) fn on_bndack(&mut self, a: &BndAck<'_>) {
        for ack in a.acks.iter() {
            let address = ack.address.octets();
            let Some(o) = self.outgoing.take_answered(a.xid, &address) else {
                continue; // unknown or stale xid: ignored, as ISC does
            };
            self.skew.raise_floor(o.sent, a.time);
            let (update, xid) = (UpdateId(o.id), a.xid);
            match ack.reject_reason {
                None => self.push_action(Action::BindingAcked {
                    update,
                    xid,
                    address,
                    status: o.summary().status,
                    client: o.summary().client,
                    potential_expiration_time: o.summary().potential_expiration_time(),
                }),
                Some(reason) => {
                    self.counters.reject_received(reason);
                    self.count_dropped(1);
                    self.last_reject = Some(reason);
                    self.push_action(Action::BindingRejected {
                        update,
                        xid,
                        address,
                        reason,
                    });
                }
            }
        }
        self.release_pd_hold();
        self.check_upddone();
    }
}
