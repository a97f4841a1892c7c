//! Properties checked on arbitrary input by the `frame` and `message` fuzz targets.
//!
//! Plain Rust over failover-proto and std only, so that the same file is compiled into the fuzz
//! targets (`#[path = "checks.rs"] mod checks;`) and into failover-proto's replay test
//! `tests/fuzz_corpus.rs`, which runs every committed corpus and artifact file through both
//! functions. Every violated property panics with a message saying which.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used
)]

use std::fmt::Write as _;

use failover_proto::framer::{FrameStatus, Framer, Frames, frame_status};
use failover_proto::{
    BndAck, BndUpd, Connect, ConnectAck, Contact, DecodeError, DecodeErrorKind, Disconnect,
    EncodeError, HEADER_LEN, MAX_MESSAGE_LEN, MIN_MESSAGE_LEN, Message, MessageType, PoolReq,
    PoolResp, RawOption, Repr, State, UpdDone, UpdReq, UpdReqAll,
};

/// Room for any message plus a guard zone that `emit` must leave untouched.
const GUARD: usize = 64;
const FILL: u8 = 0xa5;

/// One message: decode, re-encode, decode again; the lazy header view; error reporting.
pub fn check_message(data: &[u8]) {
    walk_view(data);
    let checked = Message::new_checked(data);
    let parsed = Repr::parse(data);
    // `Repr::parse` starts with the same header check as `Message::new_checked`.
    match (&checked, &parsed) {
        (Err(c), Err(p)) => assert_eq!(c, p, "header check and Repr::parse disagree"),
        (Err(c), Ok(_)) => panic!("Repr::parse accepted what Message::new_checked rejects: {c}"),
        (Ok(_), _) => {}
    }
    if let Ok(msg) = &checked {
        // Bytes after the message are ignored: parsing exactly the message gives the same.
        let exact = &data[..usize::from(msg.length())];
        assert_eq!(
            Repr::parse(exact),
            parsed,
            "trailing bytes changed the result"
        );
        // A framed message is never rejected for its length.
        assert_eq!(
            frame_status(data),
            Ok(FrameStatus::Complete(usize::from(msg.length())))
        );
    }
    match parsed {
        Ok(repr) => check_repr(data, &repr),
        Err(e) => check_error(data, &e),
    }
}

/// A byte stream: `Frames` over the whole of it and `Framer` fed in several chunkings must cut
/// the same messages, at the same places, and stop on the same error.
pub fn check_frame(data: &[u8]) {
    let reference = frames_reference(data);
    let whole = run_framer(data, &mut ChunkSizes::Fixed(data.len().max(1)));
    assert_eq!(whole, reference, "Framer (one read) differs from Frames");
    let bytewise = run_framer(data, &mut ChunkSizes::Fixed(1));
    assert_eq!(
        bytewise, reference,
        "Framer (1-byte reads) differs from Frames"
    );
    let mut derived = ChunkSizes::from_data(data);
    let chunked = run_framer(data, &mut derived);
    assert_eq!(
        chunked, reference,
        "Framer ({derived:?} reads) differs from Frames"
    );
    for (at, len) in &reference.messages {
        let msg = &data[*at..*at + *len];
        // Whatever the framer let through has a valid header length, so a decode error is
        // never about the length or a short buffer.
        if let Err(e) = Repr::parse(msg) {
            assert!(
                !matches!(
                    e.kind(),
                    DecodeErrorKind::BadLength(_) | DecodeErrorKind::Truncated { .. }
                ),
                "framed message rejected for its length: {e}"
            );
        }
    }
}

/// What framing a stream gave: (offset, length) of each message, the first error, and the
/// bytes left over (held by the framer, or `Frames::remainder`).
#[derive(Debug, PartialEq, Eq)]
struct Framing {
    messages: Vec<(usize, usize)>,
    error: Option<DecodeError>,
    leftover: usize,
}

fn frames_reference(data: &[u8]) -> Framing {
    let mut frames = Frames::new(data);
    let mut messages = Vec::new();
    let mut error = None;
    let mut pos = 0;
    // Not a `for`: `consumed()` is checked after each message.
    while let Some(item) = frames.next() {
        match item {
            Ok(msg) => {
                check_framed(data, pos, msg);
                messages.push((pos, msg.len()));
                pos += msg.len();
                assert_eq!(frames.consumed(), pos);
            }
            Err(e) => {
                assert!(
                    matches!(e.kind(), DecodeErrorKind::BadLength(_)),
                    "Frames error other than a bad length: {e}"
                );
                assert!(e.is_fatal());
                assert_eq!(e.offset(), pos, "Frames error not at the bad message");
                error = Some(e);
                break;
            }
        }
    }
    assert!(frames.next().is_none(), "Frames goes on after it ended");
    assert_eq!(frames.consumed(), pos);
    let rest = frames.remainder();
    assert_eq!(
        rest,
        &data[pos..],
        "Frames remainder is not the unconsumed tail"
    );
    let leftover = if error.is_some() {
        0
    } else {
        // It stopped because the next message is not complete.
        match frame_status(rest) {
            Ok(FrameStatus::Incomplete { needed }) => {
                assert!(needed > 0);
                rest.len()
            }
            other => panic!("Frames stopped early on {other:?}"),
        }
    };
    Framing {
        messages,
        error,
        leftover,
    }
}

/// A message cut from the stream at `pos`: valid length, the very bytes of the stream.
fn check_framed(data: &[u8], pos: usize, msg: &[u8]) {
    assert!(
        (MIN_MESSAGE_LEN..=MAX_MESSAGE_LEN).contains(&msg.len()),
        "framed message of {} bytes",
        msg.len()
    );
    assert_eq!(
        usize::from(u16::from_be_bytes([msg[0], msg[1]])),
        msg.len(),
        "framed length differs from the length field"
    );
    assert_eq!(
        data.get(pos..pos + msg.len()),
        Some(msg),
        "framed message is not the stream's bytes at {pos}"
    );
}

fn run_framer(data: &[u8], sizes: &mut ChunkSizes) -> Framing {
    let mut framer = Framer::new();
    let mut messages = Vec::new();
    let mut fed = 0usize;
    let mut pos = 0usize;
    let mut error = None;
    'feed: while fed < data.len() {
        let n = sizes.next_size().clamp(1, data.len() - fed);
        let mut input = &data[fed..fed + n];
        fed += n;
        loop {
            let before = input.len();
            match framer.next_message(&mut input) {
                Ok(Some(msg)) => {
                    check_framed(data, pos, msg);
                    messages.push((pos, msg.len()));
                    pos += msg.len();
                }
                Ok(None) => {
                    assert!(input.is_empty(), "Framer returned None with input left");
                    break;
                }
                Err(e) => {
                    assert!(input.len() <= before);
                    error = Some(e);
                    break 'feed;
                }
            }
            assert!(framer.buffered() <= MAX_MESSAGE_LEN);
        }
        assert!(
            framer.buffered() <= MAX_MESSAGE_LEN,
            "Framer holds {} bytes",
            framer.buffered()
        );
        // Between reads: everything fed is either delivered or held.
        assert_eq!(
            framer.stream_offset() + framer.buffered() as u64,
            fed as u64,
            "Framer lost or duplicated bytes"
        );
        assert_eq!(framer.stream_offset(), pos as u64);
    }
    if let Some(e) = error {
        // The stream is out of sync: the same error again, whatever comes next.
        let mut more: &[u8] = &[0, 12, 11, 12, 0, 0, 0, 0, 0, 0, 0, 0];
        assert_eq!(
            framer.next_message(&mut more),
            Err(e),
            "Framer forgot its error"
        );
        framer.reset();
        assert_eq!(framer.buffered(), 0);
        assert_eq!(framer.stream_offset(), 0);
    }
    let leftover = if error.is_some() {
        0
    } else {
        framer.buffered()
    };
    Framing {
        messages,
        error,
        leftover,
    }
}

/// Read sizes for feeding the framer, derived from the input so the fuzzer steers them. The
/// last byte picks the pattern (the first is a length byte, nearly always 0 in real streams).
#[derive(Debug, Clone)]
enum ChunkSizes {
    /// Every read the same size.
    Fixed(usize),
    /// Sizes 1..=256 taken from the data bytes in turn.
    Bytes {
        data_len: usize,
        i: usize,
        sizes: Vec<u8>,
    },
    /// Sizes 1..=4097 from byte pairs: several messages per read, or one split in two.
    Large { i: usize, sizes: Vec<u16> },
    /// Sizes around the header and the 2048 limit, rotated.
    Edges(usize),
}

const EDGE_SIZES: [usize; 9] = [1, 2, 3, 11, 12, 13, 2047, 2048, 2049];

impl ChunkSizes {
    fn from_data(data: &[u8]) -> Self {
        let Some(&sel) = data.last() else {
            return ChunkSizes::Fixed(1);
        };
        match sel % 4 {
            0 => ChunkSizes::Fixed(usize::from(sel >> 2) + 1),
            1 => ChunkSizes::Bytes {
                data_len: data.len(),
                i: usize::from(sel),
                sizes: data.iter().take(64).copied().collect(),
            },
            2 => ChunkSizes::Large {
                i: 0,
                sizes: data
                    .chunks_exact(2)
                    .take(32)
                    .map(|p| u16::from_be_bytes([p[0], p[1]]) % 4097)
                    .collect(),
            },
            _ => ChunkSizes::Edges(usize::from(sel >> 2)),
        }
    }

    fn next_size(&mut self) -> usize {
        match self {
            ChunkSizes::Fixed(n) => *n,
            ChunkSizes::Bytes { data_len, i, sizes } => {
                let s = sizes.get(*i % sizes.len().max(1)).copied().unwrap_or(0);
                *i += 1;
                (usize::from(s) + 1).min((*data_len).max(1))
            }
            ChunkSizes::Large { i, sizes } => {
                let s = sizes.get(*i % sizes.len().max(1)).copied().unwrap_or(0);
                *i += 1;
                usize::from(s) + 1
            }
            ChunkSizes::Edges(i) => {
                let s = EDGE_SIZES[*i % EDGE_SIZES.len()];
                *i += 1;
                s
            }
        }
    }
}

/// The unchecked view: no getter panics on any buffer, options stay inside the message.
fn walk_view(data: &[u8]) {
    let m = Message::new_unchecked(data);
    let len = m.length();
    let ty = m.msg_type();
    let _ = (ty.name(), ty.is_optional(), u8::from(ty));
    assert_eq!(MessageType::from(u8::from(ty)), ty);
    let _ = (m.payload_offset(), m.options_start(), m.time(), m.xid());
    if data.len() >= HEADER_LEN {
        assert_eq!(len, u16::from_be_bytes([data[0], data[1]]));
        assert_eq!(
            m.time(),
            u32::from_be_bytes([data[4], data[5], data[6], data[7]])
        );
        assert_eq!(
            m.xid(),
            u32::from_be_bytes([data[8], data[9], data[10], data[11]])
        );
    }
    let whole = m.as_bytes();
    assert!(whole.len() <= data.len());
    assert!(m.extra_header().len() + m.payload().len() <= whole.len());
    let mut s = String::new();
    let _ = write!(s, "{ty}");
    let mut options = m.options();
    for opt in options.by_ref() {
        match opt {
            Ok(o) => check_raw(whole, &o),
            Err(e) => {
                assert!(e.offset() <= data.len(), "option error past the end: {e}");
                let _ = write!(s, "{e}");
            }
        }
    }
    assert!(options.next().is_none(), "Options is not fused");
}

/// An option reported at `offset` really is there in the message.
fn check_raw(msg: &[u8], o: &RawOption<'_>) {
    let start = o.offset + 4;
    assert_eq!(
        msg.get(start..start + o.data.len()),
        Some(o.data),
        "option {} at offset {} is not where it says",
        o.code,
        o.offset
    );
    assert_eq!(
        msg.get(o.offset..o.offset + 2),
        Some(&o.code.to_be_bytes()[..])
    );
    assert_eq!(o.wire_len(), 4 + o.data.len());
    let _ = (o.option_code(), o.u32(), o.u8());
}

fn check_error(data: &[u8], e: &DecodeError) {
    assert!(
        e.offset() <= data.len(),
        "error offset {} past the {}-byte input: {e}",
        e.offset(),
        data.len()
    );
    let mut s = String::new();
    write!(s, "{e}").expect("Display of DecodeError");
    assert!(!s.is_empty());
    let _ = (e.reject_reason(), e.is_fatal(), format!("{:?}", e.kind()));
}

/// A decoded message: its size, encoding, re-decoding, and stable re-encoding.
fn check_repr(data: &[u8], repr: &Repr<'_>) {
    let msg = Message::new_checked(data).expect("parsed, so the header is valid");
    assert_eq!(repr.message_type(), msg.msg_type());
    assert_eq!(repr.xid(), msg.xid());
    assert_eq!(repr.time(), msg.time());
    let _ = format!("{repr:?}");
    check_typed(data, repr);

    let len = repr.buffer_len();
    assert!(
        (MIN_MESSAGE_LEN..=MAX_MESSAGE_LEN).contains(&len),
        "buffer_len {len} outside 12..=2048"
    );
    // Never longer than what it was decoded from: re-encoding drops only padding.
    assert!(
        len <= usize::from(msg.length()),
        "re-encoding grew the message"
    );

    // Exactly buffer_len bytes, and not one past them.
    let mut buf = [FILL; MAX_MESSAGE_LEN + GUARD];
    let n = repr.emit(&mut buf).expect("emit of a parsed message");
    assert_eq!(n, len, "emit wrote {n} bytes, buffer_len says {len}");
    assert!(
        buf[n..].iter().all(|&b| b == FILL),
        "emit wrote past its length"
    );
    let mut exact = std::vec![0u8; len];
    assert_eq!(repr.emit(&mut exact), Ok(len));
    assert_eq!(&exact[..], &buf[..n]);

    // One byte short, or much shorter: the exact size needed.
    for short in [len - 1, len / 2, 0] {
        assert_eq!(
            repr.emit(&mut exact[..short]),
            Err(EncodeError::BufferTooSmall { required: len }),
            "emit into {short} bytes"
        );
    }

    // The encoding is a well-formed canonical message.
    let out = &buf[..n];
    let m2 = Message::new_checked(out).expect("emitted header is valid");
    assert_eq!(usize::from(m2.length()), n);
    assert_eq!(usize::from(m2.payload_offset()), HEADER_LEN);
    assert_eq!(m2.msg_type(), msg.msg_type());

    // parse(emit(parse(x))) == parse(x), and emit is stable from there on.
    let again = Repr::parse(out).unwrap_or_else(|e| panic!("emitted message does not parse: {e}"));
    assert_eq!(&again, repr, "decode/encode/decode changed the message");
    assert_eq!(again.buffer_len(), len);
    let mut buf2 = [0u8; MAX_MESSAGE_LEN];
    let n2 = again.emit(&mut buf2).expect("emit of a re-parsed message");
    assert_eq!(&buf2[..n2], out, "re-encoding is not stable");
}

/// The typed parser of the message's type agrees with `Repr`, every other one refuses it, and
/// everything the typed value points into the message is where it says.
fn check_typed(data: &[u8], repr: &Repr<'_>) {
    let view = Message::new_unchecked(data);
    let whole = view.as_bytes();
    macro_rules! typed {
        ($($variant:ident),+) => {
            $(
                match repr {
                    Repr::$variant(inner) => {
                        assert_eq!(&$variant::from_bytes(data).expect("typed parse"), inner);
                        assert_eq!(inner.buffer_len(), repr.buffer_len());
                    }
                    _ => {
                        let e = $variant::from_bytes(data).expect_err("typed parse of another type");
                        assert!(
                            matches!(e.kind(), DecodeErrorKind::WrongMessageType { .. }),
                            "typed parser of another type: {e}"
                        );
                    }
                }
            )+
        };
    }
    typed!(
        PoolReq, PoolResp, BndUpd, BndAck, Connect, ConnectAck, UpdReqAll, UpdDone, UpdReq, State,
        Contact, Disconnect
    );
    match repr {
        Repr::BndUpd(u) => {
            assert!(!u.bindings.is_empty(), "BNDUPD without a binding");
            assert_eq!(u.bindings.len(), u.bindings.iter().count());
            assert_eq!(u.bindings.first(), u.bindings.iter().next());
            u.extra.iter().for_each(|o| check_raw(whole, &o));
            for b in u.bindings.iter() {
                b.extra.iter().for_each(|o| check_raw(whole, &o));
                let _ = format!("{b:?}");
            }
        }
        Repr::BndAck(a) => {
            assert!(!a.acks.is_empty(), "BNDACK without a binding");
            assert_eq!(a.acks.len(), a.acks.iter().count());
            a.extra.iter().for_each(|o| check_raw(whole, &o));
            for t in a.acks.iter() {
                t.extra.iter().for_each(|o| check_raw(whole, &o));
            }
        }
        Repr::Connect(c) => c.extra.iter().for_each(|o| check_raw(whole, &o)),
        Repr::ConnectAck(c) => c.extra.iter().for_each(|o| check_raw(whole, &o)),
        Repr::Optional(o) => {
            assert!(o.msg_type >= 128);
            o.options.iter().for_each(|r| check_raw(whole, &r));
        }
        _ => {}
    }
}
