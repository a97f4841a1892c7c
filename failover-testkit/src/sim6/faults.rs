//! The v6 simulator's seeded faults, one every 10–60 virtual seconds of the fault phase, and
//! the assumptions they respect (those of RFC 8156's safety argument: an operator who is
//! right, one server at a time losing its table, clocks within 5 s).
//!
//! * **cut**: the connection breaks, messages in flight are lost, the primary reconnects
//!   after 1–30 s (§6.1).
//! * **spike**: for 10–60 s every message takes 0.5–8 s (in order).
//! * **crash**: a server dies and restarts 5 s to 2 MCLT + 30 s later from its persisted
//!   [`Persisted`](failover_fsm::engine::Persisted) snapshot; its lease store is durable
//!   (what it committed survives). Never the server that declared its partner down until the
//!   two have been NORMAL together again (the operator's decision assumes it stays up).
//! * **skew**: a crash after which the server's clock comes back stepped back by 1–4 s,
//!   staying within 4 s of its partner's (§7.1 allows 5). Never ahead: a clock stepped forward
//!   ends its clients' leases early by its own reckoning, which no protocol can prevent.
//! * **table-lost**: a crash after which the server restarts with its store wiped and
//!   `lease_table_lost` (RECOVER, UPDREQALL, §8.5.2) — only while its partner is NORMAL, not
//!   refreshing itself, and has acknowledged every change of the victim (the partner holds
//!   the only copy afterwards).
//! * **partner-down**: the operator declares PARTNER-DOWN on a server whose partner has been
//!   down 10 s or more (§8.4), in half of the fault draws that find one down.
//!
//! A crashed server restarts only after any spike, and no cut or spike starts while a server
//! is in STARTUP, so that a restart meets its partner (possibly in PARTNER-DOWN) before its
//! startup timer sends it back to its previous state.

use failover_fsm::ServerState;

use super::{NAMES, World6, secs};

impl World6 {
    pub(crate) fn inject_fault(&mut self) {
        self.next_fault = self.now + secs(self.rng.range(10, 60));
        let down = (0..2).find(|&j| !self.servers[j].alive());
        if let Some(j) = down {
            let since = self.servers[j].crashed_at.unwrap_or(self.now);
            let long = self.now.as_millis() >= since.as_millis() + 10_000;
            if long && self.rng.chance(50) {
                self.fault_partner_down(1 - j);
            }
            return;
        }
        let i = self.rng.below(2) as usize;
        let name = match self.rng.below(100) {
            0..=24 => self.fault_cut(),
            25..=39 => self.fault_spike(),
            40..=64 => self.fault_crash(i, false, None),
            65..=79 => self.fault_skew(i),
            _ => self.fault_table_lost(i),
        };
        if let Some(name) = name {
            *self.stats.faults.entry(name).or_default() += 1;
        }
    }

    fn starting(&self) -> bool {
        self.servers.iter().any(|s| {
            s.engine
                .as_ref()
                .is_some_and(|e| e.state() == ServerState::Startup)
        })
    }

    fn fault_cut(&mut self) -> Option<&'static str> {
        if !self.link.up || self.starting() {
            return None;
        }
        let r = secs(self.rng.range(1, 30));
        self.log(format_args!("FAULT cut, reconnect in {r:?}"));
        self.connection_down(Some(r));
        Some("cut")
    }

    fn fault_spike(&mut self) -> Option<&'static str> {
        if self.starting() {
            return None;
        }
        let d = self.rng.range(10, 60);
        self.link.spike_until = self.now + secs(d);
        self.log(format_args!("FAULT latency spike for {d} s"));
        Some("spike")
    }

    /// Server `i` crashes; it restarts with its table lost (`wipe`) or its clock at
    /// `offset`.
    fn fault_crash(&mut self, i: usize, wipe: bool, offset: Option<i64>) -> Option<&'static str> {
        if self.servers[i].declared_pd || !self.servers[1 - i].alive() {
            return None;
        }
        let down = self.rng.range(5, u64::from(self.params.mclt) * 2 + 30);
        let s = &mut self.servers[i];
        s.engine = None;
        s.sink = Default::default();
        s.retry.clear();
        s.crashed_at = Some(self.now);
        s.restart_at = Some(self.now + secs(down));
        s.wipe_on_restart = wipe;
        s.restart_offset = offset.unwrap_or(s.offset);
        self.log(format_args!("FAULT {} crashes for {down} s", NAMES[i]));
        self.connection_down(None);
        Some("crash")
    }

    fn fault_skew(&mut self, i: usize) -> Option<&'static str> {
        // Back by 1-4 s, within 4 s of the partner.
        let (mine, theirs) = (self.servers[i].offset, self.servers[1 - i].offset);
        let lowest = theirs - 4;
        if mine - 1 < lowest {
            return None;
        }
        let back = self.rng.range(1, (mine - lowest).min(4) as u64) as i64;
        self.fault_crash(i, false, Some(mine - back))?;
        self.log(format_args!("  its clock comes back {back} s behind"));
        Some("skew")
    }

    fn fault_table_lost(&mut self, i: usize) -> Option<&'static str> {
        let j = 1 - i;
        let (Some(ev), Some(ep)) = (
            self.servers[i].engine.as_ref(),
            self.servers[j].engine.as_ref(),
        ) else {
            return None;
        };
        let st = ev.status(self.now);
        let all_acked = st.unacked_sent == 0 && st.queued == 0 && self.servers[i].retry.is_empty();
        let partner_whole = ep.state() == ServerState::Normal && !self.servers[j].refreshing;
        if !self.link.up || !all_acked || !partner_whole || self.servers[i].refreshing {
            return None;
        }
        self.fault_crash(i, true, None)?;
        Some("table-lost")
    }

    fn fault_partner_down(&mut self, i: usize) {
        let now = self.now;
        let Some(e) = self.servers[i].engine.as_mut() else {
            return;
        };
        if e.state() != ServerState::PartnerDown && e.partner_down(now, false).is_ok() {
            self.servers[i].declared_pd = true;
            *self.stats.faults.entry("partner-down").or_default() += 1;
            self.log(format_args!("FAULT operator: {} PARTNER-DOWN", NAMES[i]));
            self.settle(i);
        }
    }
}
