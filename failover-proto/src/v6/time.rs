//! RFC 8156's time: seconds since 2000-01-01 00:00:00 UTC, modulo 2^32 (§3), and conversions
//! to and from Unix time. Every conversion is checked; none panics.
//!
//! ```
//! use failover_proto::v6::time;
//! // 2024-01-01T00:00:00Z
//! assert_eq!(time::from_unix(1_704_067_200), Some(0x2d24_bd00));
//! assert_eq!(time::to_unix(0x2d24_bd00), 1_704_067_200);
//! assert_eq!(time::from_unix(946_684_799), None); // 1999
//! ```

/// 2000-01-01 00:00:00 UTC in Unix seconds (the DHCPv6 DUID-LLT epoch too).
pub const EPOCH_2000_UNIX: u64 = 946_684_800;

/// The first Unix second the 32-bit wire time cannot hold (2136-02-07 06:28:16 UTC).
pub const WRAP_UNIX: u64 = EPOCH_2000_UNIX + (1 << 32);

/// Unix seconds to the wire: `None` before 2000 or from 2136-02-07 on (where the wire value
/// would wrap).
pub const fn from_unix(unix: u64) -> Option<u32> {
    match unix.checked_sub(EPOCH_2000_UNIX) {
        Some(t) if t <= u32::MAX as u64 => Some(t as u32),
        _ => None,
    }
}

/// Unix seconds to the wire modulo 2^32, as §3 defines the field: `None` only before 2000.
pub const fn from_unix_wrapping(unix: u64) -> Option<u32> {
    match unix.checked_sub(EPOCH_2000_UNIX) {
        Some(t) => Some(t as u32),
        None => None,
    }
}

/// A wire time to Unix seconds, read in the first 2^32-second era (2000..2136).
pub const fn to_unix(wire: u32) -> u64 {
    EPOCH_2000_UNIX + wire as u64
}

/// A wire time to Unix seconds, in the era that puts it nearest to `now_unix` (for the time
/// after 2136, when values wrap, §3).
pub const fn to_unix_near(wire: u32, now_unix: u64) -> u64 {
    let now_wire = now_unix.saturating_sub(EPOCH_2000_UNIX);
    let era = now_wire >> 32;
    let base = EPOCH_2000_UNIX + (era << 32);
    let candidate = base + wire as u64;
    // Within half an era of now: this one; else the neighbour on the near side.
    let half = 1u64 << 31;
    if candidate > now_unix && candidate - now_unix > half && era > 0 {
        candidate - (1 << 32)
    } else if candidate < now_unix && now_unix - candidate > half {
        candidate.saturating_add(1 << 32)
    } else {
        candidate
    }
}
