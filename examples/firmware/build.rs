//! For the QEMU image (feature `qemu`): writes the board's memory map (`memory.x`, read by
//! cortex-m-rt's `link.x`) and `conversation.rs`, the captured ISC dhcpd conversation the image
//! replays, generated from `failover-proto/tests/vectors/leases.hex` so that the image and the
//! codec's tests read the same capture.
//!
//! The size image (no feature) gets nothing: its `.text` must stay codec + engine only.

use std::fmt::Write as _;
use std::path::PathBuf;
use std::{env, fs};

/// The capture replayed: two ISC dhcpd 4.4.3-P1 servers, the primary sends 129 leases.
const VECTOR: &str = "../../failover-proto/tests/vectors/leases.hex";

/// QEMU's `mps2-an386` (Cortex-M4): 4 MiB SSRAM1 at 0 holds the image (the board's "flash"),
/// 4 MiB SSRAM2/3 at 0x2000_0000 is the RAM.
const MEMORY_X: &str = "MEMORY
{
  FLASH : ORIGIN = 0x00000000, LENGTH = 4M
  RAM : ORIGIN = 0x20000000, LENGTH = 4M
}
";

/// Set to 1, one expected answer is made wrong (the first BNDACK xid of the captured
/// secondary): run-qemu.sh builds that image too and requires it to FAIL, so the checks are
/// known to bite.
const WRONG: &str = "FAILOVER_QEMU_WRONG_EXPECTATION";

fn main() {
    println!("cargo:rerun-if-changed=build.rs");
    if env::var_os("CARGO_FEATURE_QEMU").is_none() {
        return;
    }
    let out = PathBuf::from(env::var_os("OUT_DIR").expect("cargo sets OUT_DIR"));
    fs::write(out.join("memory.x"), MEMORY_X).expect("write memory.x");
    println!("cargo:rustc-link-search={}", out.display());
    // Only the QEMU binary gets cortex-m-rt's linker script (and defmt's, which keeps the
    // log strings out of flash: they live in the ELF's `.defmt` section, read by the host).
    println!("cargo:rustc-link-arg-bin=failover-qemu=-Tlink.x");
    if env::var_os("CARGO_FEATURE_DEFMT").is_some() {
        println!("cargo:rustc-link-arg-bin=failover-qemu=-Tdefmt.x");
    }
    println!("cargo:rerun-if-changed={VECTOR}");
    println!("cargo:rerun-if-env-changed={WRONG}");
    let text = fs::read_to_string(VECTOR).expect(VECTOR);
    let wrong = env::var_os(WRONG).is_some_and(|v| v == "1");
    fs::write(out.join("conversation.rs"), generate(&text, wrong)).expect("write conversation.rs");
}

/// One message line of a `fo-vectors v1` file:
/// `idx time_s conn dir type len xid hex`.
struct Line<'a> {
    ms: u32,
    conn: &'a str,
    from_primary: bool,
    kind: &'a str,
    xid: u32,
    bytes: Vec<u8>,
}

fn parse(text: &str) -> Vec<Line<'_>> {
    let mut lines = Vec::new();
    for line in text.lines() {
        if line.starts_with('#') || line.trim().is_empty() {
            continue;
        }
        let f: Vec<&str> = line.split_whitespace().collect();
        assert_eq!(f.len(), 8, "vector line: {line}");
        let seconds: f64 = f[1].parse().expect("time column");
        let hex = f[7];
        lines.push(Line {
            ms: (seconds * 1000.0).round() as u32,
            conn: f[2],
            from_primary: f[3].starts_with('P'),
            kind: f[4],
            xid: u32::from_str_radix(f[6].trim_start_matches("0x"), 16).expect("xid column"),
            bytes: (0..hex.len())
                .step_by(2)
                .map(|i| u8::from_str_radix(&hex[i..i + 2], 16).expect("hex column"))
                .collect(),
        });
    }
    lines
}

fn generate(text: &str, wrong: bool) -> String {
    let lines = parse(text);
    // The first connection that carries messages (the capture's conn 2); the file is in time
    // order. The image is the secondary: the primary's messages are its input, the captured
    // secondary's answers are what it is checked against.
    let conn = lines.first().expect("messages").conn;
    let first_ms = lines[0].ms;
    let lines: Vec<&Line<'_>> = lines.iter().filter(|l| l.conn == conn).collect();

    let mut stream = Vec::new();
    // Messages with one timestamp arrived in one TCP segment: fed to the framer as one chunk.
    let mut segments: Vec<(u32, usize)> = Vec::new();
    for l in lines.iter().filter(|l| l.from_primary) {
        stream.extend_from_slice(&l.bytes);
        let ms = l.ms - first_ms;
        match segments.last_mut() {
            Some((t, end)) if *t == ms => *end = stream.len(),
            _ => segments.push((ms, stream.len())),
        }
    }
    let answers = |kind: &str| -> Vec<u32> {
        lines
            .iter()
            .filter(|l| !l.from_primary && l.kind == kind)
            .map(|l| l.xid)
            .collect()
    };
    let mut states: Vec<u8> = Vec::new();
    for l in lines
        .iter()
        .filter(|l| !l.from_primary && l.kind == "STATE")
    {
        // The payload starts at the header's payload-offset byte; server-state is option 24 (§12).
        let payload = &l.bytes[usize::from(l.bytes[3])..];
        let state = find_option(payload, 24).expect("server-state option");
        if states.last() != Some(&state) {
            states.push(state);
        }
    }

    let mut s = String::new();
    let _ = writeln!(
        s,
        "// Generated by build.rs from {VECTOR} (connection {conn}); do not edit."
    );
    let _ = writeln!(
        s,
        "/// The primary's side of the conversation, as its TCP stream carried it."
    );
    let _ = writeln!(
        s,
        "pub static STREAM: [u8; {}] = {:?};",
        stream.len(),
        stream
    );
    let _ = writeln!(
        s,
        "/// Per TCP segment: (milliseconds since the first message, end offset in STREAM)."
    );
    let _ = writeln!(
        s,
        "pub static SEGMENTS: [(u32, u32); {}] = {:?};",
        segments.len(),
        segments
    );
    for (name, kind) in [
        ("ISC_CONNECTACK_XIDS", "CONNECTACK"),
        ("ISC_BNDACK_XIDS", "BNDACK"),
        ("ISC_UPDDONE_XIDS", "UPDDONE"),
    ] {
        let mut xids = answers(kind);
        if wrong && kind == "BNDACK" {
            xids[0] ^= 0x0100_0000;
        }
        let _ = writeln!(
            s,
            "/// The xids of the captured secondary's {kind} messages."
        );
        let _ = writeln!(s, "pub static {name}: [u32; {}] = {:?};", xids.len(), xids);
    }
    let _ = writeln!(
        s,
        "/// The server-states the captured secondary announced in STATE, repeats folded."
    );
    let _ = writeln!(
        s,
        "pub static ISC_STATES: [u8; {}] = {:?};",
        states.len(),
        states
    );
    s
}

/// The one-byte value of option `code` in a failover message payload (§6.2: 2-byte code,
/// 2-byte length, value).
fn find_option(mut payload: &[u8], code: u16) -> Option<u8> {
    while payload.len() >= 4 {
        let c = u16::from_be_bytes([payload[0], payload[1]]);
        let len = usize::from(u16::from_be_bytes([payload[2], payload[3]]));
        let value = payload.get(4..4 + len)?;
        if c == code {
            return value.first().copied();
        }
        payload = &payload[4 + len..];
    }
    None
}
