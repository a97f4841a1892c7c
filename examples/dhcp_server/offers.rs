//! The addresses a server offered a moment ago, held for the clients they were offered to.
//!
//! Each operation costs what it touches, not the number of offers outstanding: the hold ends
//! in offer order (one hold time for all, so a queue in insertion order is also in expiry
//! order), and a client's offers are found through an index by identity. Under load a server
//! has thousands of offers out (every DISCOVER of the last [`OFFER_HOLD`](super::serve::OFFER_HOLD)
//! whose REQUEST went elsewhere or was lost); a scan of all of them per message was the
//! cost the issue-12 profile pointed at.

use std::collections::{HashMap, VecDeque};
use std::net::Ipv4Addr;
use std::time::{Duration, Instant};

use failover_fsm::accept::ClientIdentity;

/// One offer: to whom, until when.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Held {
    client: ClientIdentity,
    until: Instant,
}

/// Offers by address, by client and by the end of their hold.
#[derive(Debug)]
pub struct Offers {
    hold: Duration,
    by_address: HashMap<Ipv4Addr, Held>,
    /// Each client's offered addresses (almost always one).
    by_client: HashMap<ClientIdentity, Vec<Ipv4Addr>>,
    /// Every offer made, oldest first; an entry whose address was offered again or taken
    /// since is skipped when it comes up (its `until` no longer matches).
    ends: VecDeque<(Instant, Ipv4Addr)>,
}

impl Offers {
    /// No offers; each will be held for `hold`.
    pub fn new(hold: Duration) -> Self {
        Offers {
            hold,
            by_address: HashMap::new(),
            by_client: HashMap::new(),
            ends: VecDeque::new(),
        }
    }

    /// How many offers are held.
    pub fn len(&self) -> usize {
        self.by_address.len()
    }

    /// Whether no offer is held.
    pub fn is_empty(&self) -> bool {
        self.by_address.is_empty()
    }

    /// To whom `address` is offered, if it is.
    pub fn client_of(&self, address: Ipv4Addr) -> Option<&ClientIdentity> {
        self.by_address.get(&address).map(|h| &h.client)
    }

    /// Offers `address` to `client` from `now` on (replacing an earlier offer of it).
    pub fn insert(&mut self, address: Ipv4Addr, client: ClientIdentity, now: Instant) {
        self.remove(address);
        let until = now + self.hold;
        self.by_address.insert(address, Held { client, until });
        self.by_client.entry(client).or_default().push(address);
        self.ends.push_back((until, address));
    }

    /// Takes back the offer of `address` (the client got it, or went elsewhere).
    pub fn remove(&mut self, address: Ipv4Addr) {
        let Some(held) = self.by_address.remove(&address) else {
            return;
        };
        if let Some(list) = self.by_client.get_mut(&held.client) {
            list.retain(|a| *a != address);
            if list.is_empty() {
                self.by_client.remove(&held.client);
            }
        }
    }

    /// Takes back every offer to `client` (it took another server's offer).
    pub fn remove_client(&mut self, client: &ClientIdentity) {
        if let Some(list) = self.by_client.remove(client) {
            for a in list {
                self.by_address.remove(&a);
            }
        }
    }

    /// Ends the holds that are over at `now`.
    pub fn expire(&mut self, now: Instant) {
        while let Some(&(until, address)) = self.ends.front() {
            if until > now {
                break;
            }
            self.ends.pop_front();
            if self
                .by_address
                .get(&address)
                .is_some_and(|h| h.until == until)
            {
                self.remove(address);
            }
        }
        // Entries of offers taken back early wait for their time; when the queue holds many
        // more of them than live offers, drop them now so that it stays proportional.
        if self.ends.len() > 2 * self.by_address.len() + 1024 {
            let live = &self.by_address;
            self.ends
                .retain(|(until, a)| live.get(a).is_some_and(|h| h.until == *until));
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;
    use failover_proto::HardwareAddress;

    fn client(i: u8) -> ClientIdentity {
        ClientIdentity::new(
            None,
            Some(HardwareAddress {
                htype: 1,
                address: &[2, 0, 0, 0, 0, i],
            }),
        )
    }

    fn a(i: u8) -> Ipv4Addr {
        Ipv4Addr::new(10, 0, 0, i)
    }

    #[test]
    fn holds_end_in_time_and_an_offer_made_again_keeps_its_new_hold() {
        let t0 = Instant::now();
        let mut o = Offers::new(Duration::from_secs(30));
        o.insert(a(1), client(1), t0);
        o.insert(a(2), client(2), t0 + Duration::from_secs(10));
        // a(1) offered again (to another client) 20 s in: held until 50 s.
        o.insert(a(1), client(3), t0 + Duration::from_secs(20));
        o.expire(t0 + Duration::from_secs(30));
        assert_eq!(
            o.client_of(a(1)),
            Some(&client(3)),
            "its first hold's end is stale"
        );
        assert_eq!(o.client_of(a(2)), Some(&client(2)));
        o.expire(t0 + Duration::from_secs(40));
        assert_eq!(o.client_of(a(2)), None);
        assert_eq!(o.len(), 1);
        o.expire(t0 + Duration::from_secs(50));
        assert!(o.is_empty());
        assert!(o.by_client.is_empty() && o.ends.is_empty());
    }

    #[test]
    fn a_client_s_offers_are_taken_back_together_and_no_one_else_s() {
        let t0 = Instant::now();
        let mut o = Offers::new(Duration::from_secs(30));
        o.insert(a(1), client(1), t0);
        o.insert(a(2), client(1), t0);
        o.insert(a(3), client(2), t0);
        o.remove_client(&client(1));
        assert_eq!((o.client_of(a(1)), o.client_of(a(2))), (None, None));
        assert_eq!(o.client_of(a(3)), Some(&client(2)));
        // Taken by the ACK: gone from the client's index too.
        o.remove(a(3));
        assert!(o.is_empty() && o.by_client.is_empty());
        o.remove_client(&client(2));
        o.remove(a(3));
        assert!(o.is_empty());
    }

    #[test]
    fn matches_a_plain_map_scanned_per_message() {
        // The rule it replaces: a map of offers, expired and searched by a scan.
        let mut rng = 0x2545_f491_4f6c_dd1du64;
        let mut next = |n: u64| {
            rng ^= rng << 13;
            rng ^= rng >> 7;
            rng ^= rng << 17;
            rng % n
        };
        let hold = Duration::from_secs(5);
        let t0 = Instant::now();
        let mut o = Offers::new(hold);
        let mut plain: HashMap<Ipv4Addr, (ClientIdentity, Instant)> = HashMap::new();
        for step in 0..20_000u64 {
            let now = t0 + Duration::from_millis(step * 7);
            let (addr, who) = (a(next(40) as u8), client(next(12) as u8));
            match next(4) {
                0 | 1 => {
                    o.insert(addr, who, now);
                    plain.insert(addr, (who, now + hold));
                }
                2 => {
                    o.remove(addr);
                    plain.remove(&addr);
                }
                _ => {
                    o.remove_client(&who);
                    plain.retain(|_, (c, _)| c.same_client(&who) != Some(true));
                }
            }
            o.expire(now);
            plain.retain(|_, (_, until)| *until > now);
            assert_eq!(o.len(), plain.len(), "step {step}");
            for (addr, (c, _)) in &plain {
                assert_eq!(o.client_of(*addr), Some(c), "step {step}");
            }
            assert!(o.ends.len() <= 2 * o.len() + 1024 + 1);
        }
    }
}
