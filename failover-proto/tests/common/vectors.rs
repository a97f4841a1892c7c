//! Loader for the captured ISC dhcpd failover traffic in `tests/vectors/S.hex`: one failover
//! message per line, `idx time_s conn dir type len xid hex`, `#` starts a comment (TCP events).
#![allow(dead_code, clippy::expect_used, clippy::panic)]

/// One message of a `.hex` vector file.
#[derive(Debug, Clone, PartialEq)]
pub(crate) struct VectorLine {
    /// 1-based position of the message in its scenario.
    pub(crate) idx: usize,
    /// Seconds since the first packet of the capture.
    pub(crate) time: f64,
    /// TCP connection number (new on each reconnect).
    pub(crate) conn: u32,
    /// Direction, `P>S`, `S>P`, `ISC>PROBE`, ...
    pub(crate) dir: String,
    /// The capture script's name of the message type (`BNDUPD`, `UPDREQALL`, ...).
    pub(crate) type_name: String,
    /// The message-length field.
    pub(crate) len: usize,
    /// The header xid.
    pub(crate) xid: u32,
    /// The whole message, from its length field on.
    pub(crate) bytes: Vec<u8>,
}

/// The scenarios that have a `.hex` file.
pub(crate) const SCENARIOS: [&str; 5] = ["startup", "leases", "poolreq", "partnerdown", "rejects"];

/// Path of a file in `tests/vectors/`.
pub(crate) fn path(file: &str) -> String {
    format!("{}/tests/vectors/{file}", env!("CARGO_MANIFEST_DIR"))
}

/// Loads `tests/vectors/{name}.hex` (`name` with or without the `.hex`). Panics on a malformed
/// line, or when a line's `len` disagrees with its bytes.
pub(crate) fn load(name: &str) -> Vec<VectorLine> {
    let file = if name.ends_with(".hex") {
        name.to_string()
    } else {
        format!("{name}.hex")
    };
    let p = path(&file);
    let text = std::fs::read_to_string(&p).unwrap_or_else(|e| panic!("{p}: {e}"));
    text.lines()
        .enumerate()
        .filter(|(_, l)| !l.starts_with('#') && !l.trim().is_empty())
        .map(|(n, l)| parse_line(l).unwrap_or_else(|e| panic!("{p}:{}: {e}", n + 1)))
        .collect()
}

fn parse_line(line: &str) -> Result<VectorLine, String> {
    let f: Vec<&str> = line.split_whitespace().collect();
    let [idx, time, conn, dir, type_name, len, xid, hex] = f.as_slice() else {
        return Err(format!("expected 8 columns, found {}", f.len()));
    };
    let num = |what: &str, s: &str| -> Result<usize, String> {
        s.parse().map_err(|e| format!("{what} {s:?}: {e}"))
    };
    let bytes = decode_hex(hex)?;
    let len = num("len", len)?;
    if bytes.len() != len {
        return Err(format!("len {len} but {} bytes of hex", bytes.len()));
    }
    Ok(VectorLine {
        idx: num("idx", idx)?,
        time: time.parse().map_err(|e| format!("time {time:?}: {e}"))?,
        conn: conn.parse().map_err(|e| format!("conn {conn:?}: {e}"))?,
        dir: (*dir).to_string(),
        type_name: (*type_name).to_string(),
        len,
        xid: xid
            .strip_prefix("0x")
            .and_then(|x| u32::from_str_radix(x, 16).ok())
            .ok_or_else(|| format!("xid {xid:?}"))?,
        bytes,
    })
}

/// Decodes a string of hex digit pairs.
pub(crate) fn decode_hex(hex: &str) -> Result<Vec<u8>, String> {
    if hex.len() % 2 != 0 || !hex.is_ascii() {
        return Err(format!("bad hex of length {}", hex.len()));
    }
    (0..hex.len())
        .step_by(2)
        .map(|i| {
            hex.get(i..i + 2)
                .and_then(|b| u8::from_str_radix(b, 16).ok())
                .ok_or_else(|| format!("bad hex at {i}"))
        })
        .collect()
}
