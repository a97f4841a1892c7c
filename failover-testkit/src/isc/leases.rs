//! ISC's lease file (`dhcpd.leases`): an append-only journal where the last `lease A { … }`
//! block of an address wins, plus `failover peer "NAME" state { … }` blocks.

use std::collections::BTreeMap;
use std::net::Ipv4Addr;

use failover_fsm::BindingStatus;

/// ISC's name of a binding-status in its lease file (`binding state X;`).
pub fn isc_binding_state(status: BindingStatus) -> &'static str {
    match status {
        BindingStatus::Free => "free",
        BindingStatus::Active => "active",
        BindingStatus::Expired => "expired",
        BindingStatus::Released => "released",
        BindingStatus::Abandoned => "abandoned",
        BindingStatus::Reset => "reset",
        BindingStatus::Backup => "backup",
        BindingStatus::Unknown(_) => "unknown",
    }
}

/// A MAC address as ISC writes it (`hardware ethernet 02:00:…;`, lower-case).
pub fn ethernet(mac: &[u8; 6]) -> String {
    let [a, b, c, d, e, f] = *mac;
    format!("{a:02x}:{b:02x}:{c:02x}:{d:02x}:{e:02x}:{f:02x}")
}

/// What ISC last wrote about one address.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct IscLease {
    /// `binding state X;` (free, active, backup, expired, released, ...).
    pub binding_state: String,
    /// `hardware ethernet aa:bb:…;`, lower-case.
    pub hardware_ethernet: Option<String>,
    /// `ends N YYYY/MM/DD HH:MM:SS;` (`never` for free/backup leases).
    pub ends: Option<String>,
    /// `tsfp …;`: the potential-expiration-time the partner sent.
    pub tsfp: Option<String>,
    /// `uid "…";` as written.
    pub uid: Option<String>,
}

/// Unix time of a lease-file date, `W YYYY/MM/DD HH:MM:SS` (UTC; `W` is the weekday).
pub fn unix_time(date: &str) -> Option<u32> {
    let mut f = date.split_whitespace();
    let _weekday = f.next()?;
    let mut ymd = f.next()?.split('/').map(|x| x.parse::<i64>().ok());
    let (y, m, d) = (ymd.next()??, ymd.next()??, ymd.next()??);
    let mut hms = f.next()?.split(':').map(|x| x.parse::<i64>().ok());
    let (h, mi, s) = (hms.next()??, hms.next()??, hms.next()??);
    // Days from 1970-01-01 to y-m-d (proleptic Gregorian).
    let (y, m) = if m <= 2 { (y - 1, m + 9) } else { (y, m - 3) };
    let era = y.div_euclid(400);
    let yoe = y - era * 400;
    let doy = (153 * m + 2) / 5 + d - 1;
    let doe = yoe * 365 + yoe / 4 - yoe / 100 + doy;
    let days = era * 146_097 + doe - 719_468;
    u32::try_from(days * 86_400 + h * 3600 + mi * 60 + s).ok()
}

/// A lease-file date, `W YYYY/MM/DD HH:MM:SS` (UTC, `W` the weekday, 0 = Sunday), of a Unix
/// time: the inverse of [`unix_time`], for writing lease files.
pub fn lease_date(unix: u64) -> String {
    let days = i64::try_from(unix / 86_400).unwrap_or(i64::MAX / 2);
    let secs = unix % 86_400;
    // Civil date of a day count from 1970-01-01 (proleptic Gregorian).
    let z = days + 719_468;
    let era = z.div_euclid(146_097);
    let doe = z - era * 146_097;
    let yoe = (doe - doe / 1460 + doe / 36_524 - doe / 146_096) / 365;
    let doy = doe - (365 * yoe + yoe / 4 - yoe / 100);
    let mp = (5 * doy + 2) / 153;
    let d = doy - (153 * mp + 2) / 5 + 1;
    let m = if mp < 10 { mp + 3 } else { mp - 9 };
    let y = yoe + era * 400 + i64::from(m <= 2);
    // 1970-01-01 was a Thursday.
    let weekday = (days + 4).rem_euclid(7);
    format!(
        "{weekday} {y:04}/{m:02}/{d:02} {:02}:{:02}:{:02}",
        secs / 3600,
        secs / 60 % 60,
        secs % 60
    )
}

/// The lease file, replayed.
#[derive(Debug, Clone, Default)]
pub struct Leases {
    /// Last block per address.
    pub by_address: BTreeMap<Ipv4Addr, IscLease>,
    /// `my state X at …;` of the last failover state block.
    pub my_state: Option<String>,
    /// `partner state X at …;` of the last failover state block.
    pub partner_state: Option<String>,
}

impl Leases {
    /// Parses the text of a lease file.
    pub fn parse(text: &str) -> Leases {
        let mut out = Leases::default();
        let mut current: Option<(Ipv4Addr, IscLease)> = None;
        let mut in_failover = false;
        for raw in text.lines() {
            let line = raw.trim();
            if let Some(rest) = line.strip_prefix("lease ") {
                let addr = rest.trim_end_matches('{').trim();
                current = addr.parse().ok().map(|a| (a, IscLease::default()));
                continue;
            }
            if line.starts_with("failover peer ") && line.ends_with("state {") {
                in_failover = true;
                continue;
            }
            if line == "}" {
                if let Some((a, l)) = current.take() {
                    out.by_address.insert(a, l);
                }
                in_failover = false;
                continue;
            }
            let value = |prefix: &str| {
                line.strip_prefix(prefix)
                    .map(|v| v.trim_end_matches(';').trim().to_string())
            };
            if in_failover {
                if let Some(v) = value("my state ") {
                    out.my_state = v.split(" at ").next().map(str::to_string);
                } else if let Some(v) = value("partner state ") {
                    out.partner_state = v.split(" at ").next().map(str::to_string);
                }
                continue;
            }
            let Some((_, lease)) = current.as_mut() else {
                continue;
            };
            if let Some(v) = value("binding state ") {
                lease.binding_state = v;
            } else if let Some(v) = value("hardware ethernet ") {
                lease.hardware_ethernet = Some(v.to_ascii_lowercase());
            } else if let Some(v) = value("ends ") {
                lease.ends = Some(v);
            } else if let Some(v) = value("tsfp ") {
                lease.tsfp = Some(v);
            } else if let Some(v) = value("uid ") {
                lease.uid = Some(v);
            }
        }
        out
    }

    /// Addresses whose binding state is `state`.
    pub fn count(&self, state: &str) -> usize {
        self.by_address
            .values()
            .filter(|l| l.binding_state == state)
            .count()
    }

    /// The lease of `address`.
    pub fn get(&self, address: Ipv4Addr) -> Option<&IscLease> {
        self.by_address.get(&address)
    }

    /// `state: count` for every binding state, and the failover states.
    pub fn summary(&self) -> String {
        let mut counts: BTreeMap<&str, usize> = BTreeMap::new();
        for l in self.by_address.values() {
            *counts.entry(l.binding_state.as_str()).or_default() += 1;
        }
        format!(
            "{counts:?}, my state {:?}, partner state {:?}",
            self.my_state, self.partner_state
        )
    }
}

#[test]
fn parses_a_lease_file_written_by_isc() {
    let text = r#"# The format of this file is documented in the dhcpd.leases(5) manual page.
# This lease file was written by isc-dhcp-4.4.3-P1

# authoring-byte-order entry is generated, DO NOT DELETE
authoring-byte-order little-endian;

failover peer "fo-interop" state {
  my state recover at 0 2026/11/29 06:34:03;
  partner state unknown-state at 0 2026/11/29 06:34:03;
}
lease 198.18.1.0 {
  starts 0 2026/11/29 06:34:06;
  tstp 0 2026/11/29 06:34:06;
  tsfp 0 2026/11/29 06:34:06;
  cltt 0 2026/11/29 06:34:06;
  binding state free;
}
lease 198.18.1.0 {
  starts 0 2026/11/29 06:35:06;
  ends 0 2026/11/29 06:45:06;
  cltt 0 2026/11/29 06:35:06;
  binding state active;
  next binding state expired;
  rewind binding state free;
  hardware ethernet 02:00:00:AA:00:01;
  uid "\001\002\000\000\252\000\001";
}
lease 198.18.1.1 {
  binding state backup;
}
failover peer "fo-interop" state {
  my state normal at 0 2026/11/29 06:34:06;
  partner state normal at 0 2026/11/29 06:34:06;
}
"#;
    let l = Leases::parse(text);
    assert_eq!(l.by_address.len(), 2);
    let a = l.get(Ipv4Addr::new(198, 18, 1, 0)).unwrap();
    assert_eq!(a.binding_state, "active");
    assert_eq!(a.hardware_ethernet.as_deref(), Some("02:00:00:aa:00:01"));
    assert_eq!(a.ends.as_deref(), Some("0 2026/11/29 06:45:06"));
    assert_eq!(unix_time("0 2026/11/29 06:45:06"), Some(1_795_934_706));
    assert_eq!(unix_time("4 1970/01/01 00:00:00"), Some(0));
    assert_eq!(unix_time("never"), None);
    assert_eq!(lease_date(1_795_934_706), "0 2026/11/29 06:45:06");
    assert_eq!(lease_date(0), "4 1970/01/01 00:00:00");
    for t in (0..4_000_000_000u32).step_by(9_999_991) {
        assert_eq!(unix_time(&lease_date(u64::from(t))), Some(t), "{t}");
    }
    assert_eq!(l.count("backup"), 1);
    assert_eq!(l.my_state.as_deref(), Some("normal"));
    assert_eq!(l.partner_state.as_deref(), Some("normal"));
}
