//! Decoding failover traffic for an operator: the library behind `cargo run --example decode`.
//!
//! The input is either
//!
//! * a hex vector file (one message per line, `idx time_s conn dir type len xid hex`, with `#`
//!   comments that may record TCP SYN/FIN/RST events), see [`decode_hex`], or
//! * a pcap or pcapng capture (recognised by its magic number), see [`decode_capture`]: every TCP
//!   connection with port 647 at either end is reassembled per direction in sequence-number
//!   order and framed with [`failover_proto::framer`].
//!
//! Either way the result is a list of [`Record`]s, in the order the messages were completed,
//! which [`render_text`] and [`render_json`] turn into one line each. [`run`] is the whole
//! command line program.
//!
//! ```
//! use failover_examples::decode::{decode_hex, render_text};
//! let vectors = "1 0.5 1 P>S CONTACT 12 0x00000007 000c0b0c6553f11400000007\n";
//! let decoded = decode_hex(vectors);
//! assert_eq!(decoded.message_count(), 1);
//! assert_eq!(decoded.error_count(), 0);
//! let line = render_text(&decoded.records[0], 3);
//! assert_eq!(line, "  0.500000 #1 P>S CONTACT    xid=0x00000007 len=12 time=1700000020");
//! ```

use std::io::{self, Read, Write};
use std::time::Duration;

use failover_proto::{DecodeError, Message, Repr};

mod capture;
mod hexfile;
mod render;

pub use capture::decode_capture;
pub use hexfile::decode_hex;
pub use render::{render_json, render_text};

/// One line of output: a message, a malformed message, a stream problem or a TCP event.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct Record {
    /// Seconds since the first packet of the capture (pcap), or the file's `time_s` (hex).
    pub time: Duration,
    /// TCP connection number, from 1 in order of first appearance.
    pub conn: u32,
    /// Direction: `A:port>B:port` for a capture, the file's label (`P>S`) for hex vectors.
    pub dir: String,
    /// The `idx` column of a hex vector file.
    pub idx: Option<u64>,
    /// What happened.
    pub event: Event,
}

/// What a [`Record`] reports.
#[derive(Debug, Clone, PartialEq, Eq)]
pub enum Event {
    /// One failover message (well-formed or not).
    Message(MessageRecord),
    /// A TCP control event (`SYN`, `SYN+ACK`, `FIN`, `RST`).
    Tcp {
        /// The flags, `+`-separated.
        flags: String,
    },
    /// The byte stream of one TCP direction can no longer be framed.
    StreamError(StreamError),
}

/// The bytes of one message, and what is wrong with them.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct MessageRecord {
    /// The whole message, from its length field.
    pub bytes: Vec<u8>,
    /// Why it does not decode, if it does not.
    pub problem: Option<Problem>,
    /// Context for the problem (for example that the capture ends inside the message).
    pub note: Option<&'static str>,
}

impl MessageRecord {
    /// Checks `bytes` with [`Repr::parse`].
    pub fn new(bytes: Vec<u8>) -> Self {
        let problem = check_message(&bytes);
        MessageRecord {
            bytes,
            problem,
            note: None,
        }
    }
}

/// Why a message is malformed.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Problem {
    /// The codec's verdict.
    Decode(DecodeError),
    /// A hex vector line holds more bytes than the message's length field says.
    Trailing {
        /// The length field.
        declared: usize,
        /// The bytes on the line.
        actual: usize,
    },
}

/// A TCP direction that cannot be framed any further.
#[derive(Debug, Clone, PartialEq, Eq)]
pub struct StreamError {
    /// The framer's error (a bad length field), or `None` for bytes missing from the capture.
    pub error: Option<DecodeError>,
    /// Offset in the direction's byte stream where framing stopped.
    pub stream_offset: u64,
    /// Bytes of this direction that were skipped.
    pub skipped: u64,
    /// Bytes missing from the capture (a sequence-number gap), when `error` is `None`.
    pub missing: u64,
    /// The first skipped bytes (at most [`StreamError::HEAD_LEN`]).
    pub head: Vec<u8>,
}

impl StreamError {
    /// How many of the skipped bytes are kept for display.
    pub const HEAD_LEN: usize = 64;
}

/// Everything decoded from one input.
#[derive(Debug, Clone, Default, PartialEq, Eq)]
pub struct Decoded {
    /// The records, in the order the messages were completed.
    pub records: Vec<Record>,
    /// Problems of the input itself (unreadable lines, a truncated capture): exit status 2.
    pub input_errors: Vec<String>,
    /// Remarks that do not affect the exit status (packets skipped, link types unknown).
    pub notes: Vec<String>,
}

impl Decoded {
    /// Number of messages, well-formed or not.
    pub fn message_count(&self) -> usize {
        self.records
            .iter()
            .filter(|r| matches!(r.event, Event::Message(_)))
            .count()
    }

    /// Number of malformed messages and stream errors.
    pub fn error_count(&self) -> usize {
        self.records.iter().filter(|r| r.is_error()).count()
    }

    /// The well-formed and malformed messages, in order.
    pub fn messages(&self) -> impl Iterator<Item = (&Record, &MessageRecord)> {
        self.records.iter().filter_map(|r| match &r.event {
            Event::Message(m) => Some((r, m)),
            _ => None,
        })
    }

    /// The exit status the program ends with: 2 if the input had problems, 1 if a message was
    /// malformed or a stream could not be framed, 0 otherwise.
    pub fn exit_status(&self) -> i32 {
        if !self.input_errors.is_empty() {
            2
        } else if self.error_count() > 0 {
            1
        } else {
            0
        }
    }
}

impl Record {
    /// Whether this record reports a malformed message or a stream error.
    pub fn is_error(&self) -> bool {
        match &self.event {
            Event::Message(m) => m.problem.is_some(),
            Event::StreamError(_) => true,
            Event::Tcp { .. } => false,
        }
    }
}

/// Decodes `bytes` with [`Repr::parse`] and checks that nothing follows the message.
pub fn check_message(bytes: &[u8]) -> Option<Problem> {
    if let Err(e) = Repr::parse(bytes) {
        return Some(Problem::Decode(e));
    }
    let declared = usize::from(Message::new_unchecked(bytes).length());
    (bytes.len() != declared).then_some(Problem::Trailing {
        declared,
        actual: bytes.len(),
    })
}

/// What kind of input a file holds.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum Format {
    /// Classic pcap (any byte order, micro- or nanosecond timestamps).
    Pcap,
    /// pcapng.
    PcapNg,
    /// Hex vector text.
    Hex,
}

/// Recognises the input format by its first bytes.
pub fn detect_format(data: &[u8]) -> Format {
    match data.get(..4) {
        Some(
            [0xd4, 0xc3, 0xb2, 0xa1]
            | [0xa1, 0xb2, 0xc3, 0xd4]
            | [0x4d, 0x3c, 0xb2, 0xa1]
            | [0xa1, 0xb2, 0x3c, 0x4d],
        ) => Format::Pcap,
        Some([0x0a, 0x0d, 0x0d, 0x0a]) => Format::PcapNg,
        _ => Format::Hex,
    }
}

/// Decodes a whole input file of any supported format.
///
/// Fails only when the input cannot be read at all (an invalid capture header, binary data
/// that is no capture); smaller problems are in [`Decoded::input_errors`].
pub fn decode_bytes(data: &[u8]) -> Result<Decoded, String> {
    match detect_format(data) {
        Format::Pcap | Format::PcapNg => decode_capture(data),
        Format::Hex => match std::str::from_utf8(data) {
            Ok(text) => Ok(decode_hex(text)),
            Err(_) => Err("not a pcap, pcapng or hex vector file".to_owned()),
        },
    }
}

/// The usage text.
pub const USAGE: &str = "\
usage: decode FILE [--json]

Decodes DHCP failover (draft-ietf-dhc-failover-12, TCP 647) traffic from FILE, which is either
a hex vector file (`idx time_s conn dir type len xid hex` per line) or a pcap/pcapng capture.
Prints one line per message (with --json: one JSON object per line). FILE `-` reads stdin.
Exit status: 0 if everything decoded, 1 if anything was malformed, 2 on usage or input errors.
";

/// The decode program: `args` without the program name. Returns the exit status.
pub fn run(args: &[String], out: &mut dyn Write, err: &mut dyn Write) -> i32 {
    let mut json = false;
    let mut path: Option<&str> = None;
    for arg in args {
        match arg.as_str() {
            "--json" => json = true,
            "-h" | "--help" => {
                return match out.write_all(USAGE.as_bytes()) {
                    Ok(()) => 0,
                    Err(_) => 2,
                };
            }
            a if a.starts_with('-') && a != "-" => {
                let _ = write!(err, "decode: unknown option {a}\n{USAGE}");
                return 2;
            }
            a if path.is_none() => path = Some(a),
            a => {
                let _ = write!(err, "decode: unexpected argument {a}\n{USAGE}");
                return 2;
            }
        }
    }
    let Some(path) = path else {
        let _ = err.write_all(USAGE.as_bytes());
        return 2;
    };
    let data = if path == "-" {
        let mut buf = Vec::new();
        io::stdin().read_to_end(&mut buf).map(|_| buf)
    } else {
        std::fs::read(path)
    };
    let data = match data {
        Ok(d) => d,
        Err(e) => {
            let _ = writeln!(err, "decode: {path}: {e}");
            return 2;
        }
    };
    let decoded = match decode_bytes(&data) {
        Ok(d) => d,
        Err(e) => {
            let _ = writeln!(err, "decode: {path}: {e}");
            return 2;
        }
    };
    match print(&decoded, json, out, err) {
        Ok(()) => decoded.exit_status(),
        // `decode ... | head`: the reader is gone, which is no error of ours.
        Err(e) if e.kind() == io::ErrorKind::BrokenPipe => decoded.exit_status(),
        Err(e) => {
            let _ = writeln!(err, "decode: writing output: {e}");
            2
        }
    }
}

/// Writes every record, then the input problems and a summary on `err`.
fn print(
    decoded: &Decoded,
    json: bool,
    out: &mut dyn Write,
    err: &mut dyn Write,
) -> io::Result<()> {
    let width = decoded
        .records
        .iter()
        .filter(|r| !matches!(r.event, Event::Tcp { .. }))
        .map(|r| r.dir.len())
        .max()
        .unwrap_or(0);
    for r in &decoded.records {
        let line = if json {
            render_json(r)
        } else {
            render_text(r, width)
        };
        out.write_all(line.as_bytes())?;
        out.write_all(b"\n")?;
    }
    out.flush()?;
    for note in &decoded.notes {
        writeln!(err, "decode: note: {note}")?;
    }
    for e in &decoded.input_errors {
        writeln!(err, "decode: input error: {e}")?;
    }
    if !json {
        writeln!(
            err,
            "decode: {} messages, {} errors",
            decoded.message_count(),
            decoded.error_count()
        )?;
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    #![allow(clippy::unwrap_used, clippy::indexing_slicing, clippy::panic)]
    use super::*;

    #[test]
    fn formats_by_magic() {
        assert_eq!(detect_format(&[0xd4, 0xc3, 0xb2, 0xa1, 0]), Format::Pcap);
        assert_eq!(detect_format(&[0xa1, 0xb2, 0x3c, 0x4d]), Format::Pcap);
        assert_eq!(detect_format(&[0x0a, 0x0d, 0x0d, 0x0a]), Format::PcapNg);
        assert_eq!(detect_format(b"# comment\n"), Format::Hex);
        assert_eq!(detect_format(b""), Format::Hex);
        assert!(decode_bytes(&[0xff, 0xfe, 0x00, 0x80]).is_err());
    }

    #[test]
    fn trailing_bytes_are_a_problem() {
        let contact = [0x00, 0x0c, 0x0b, 0x0c, 0, 0, 0, 0, 0, 0, 0, 1];
        assert_eq!(check_message(&contact), None);
        let mut longer = contact.to_vec();
        longer.push(0);
        assert_eq!(
            check_message(&longer),
            Some(Problem::Trailing {
                declared: 12,
                actual: 13
            })
        );
        assert!(matches!(
            check_message(&contact[..7]),
            Some(Problem::Decode(_))
        ));
    }

    fn run_args(args: &[&str]) -> (i32, String, String) {
        let args: Vec<String> = args.iter().map(|s| (*s).to_owned()).collect();
        let (mut out, mut err) = (Vec::new(), Vec::new());
        let status = run(&args, &mut out, &mut err);
        (
            status,
            String::from_utf8(out).unwrap(),
            String::from_utf8(err).unwrap(),
        )
    }

    #[test]
    fn usage_errors_exit_2() {
        let (status, out, err) = run_args(&[]);
        assert_eq!((status, out.as_str()), (2, ""));
        assert!(err.contains("usage: decode FILE"));
        assert_eq!(run_args(&["--bogus", "x.hex"]).0, 2);
        assert_eq!(run_args(&["a.hex", "b.hex"]).0, 2);
        let (status, _, err) = run_args(&["/nonexistent/dir/file.hex"]);
        assert_eq!(status, 2);
        assert!(err.contains("/nonexistent/dir/file.hex"), "{err}");
        let (status, out, _) = run_args(&["--help"]);
        assert_eq!(status, 0);
        assert!(out.starts_with("usage:"));
    }
}
