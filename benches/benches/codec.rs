//! Criterion benchmarks of the `failover-proto` codec on messages captured from ISC dhcpd 4.4.3.
//!
//! Groups (see `BENCHMARKS.md` for the numbers and how to reproduce them):
//!
//! * `bndupd`: parse and emit of one ACTIVE BNDUPD (79 bytes, client-id and chaddr), next to a
//!   `memcpy` of the same bytes.
//! * `connect`: parse and emit of one CONNECT (112 bytes), next to a `memcpy`.
//! * `framing`: framing a ~1 MiB stream of every captured message, with [`Frames`] and with a
//!   [`Framer`] fed 1460-byte reads, framing plus [`Repr::parse`] of every message, and a
//!   `memcpy` of the stream.
//! * `hash`: the RFC 3074 bucket of a 6-byte MAC and of a 7-byte client-id.
//!
//! Run with `cargo bench -p failover-benches --bench codec` (criterion options and filters go
//! after `--`); `cargo bench -p failover-benches --bench codec -- --test` runs each benchmark
//! once as a smoke test.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing
)]

use std::hint::black_box;
use std::path::Path;

use criterion::{Criterion, Throughput, criterion_group, criterion_main};
use failover_proto::hash::bucket;
use failover_proto::{
    BindingList, BndUpd, Connect, ExtraOptions, Framer, Frames, MAX_MESSAGE_LEN, Repr,
};

/// leases.hex #337, S>P BNDUPD xid 0x46: 198.18.1.31 ACTIVE, client-id 01:02:fc:01:00:00:01,
/// chaddr 1/02:fc:01:00:00:01, lease-expiration, potential-expiration, start-time-of-state and
/// client-last-transaction-time (options in ISC's order 2 3 4 5 13 18 25 6).
const BNDUPD: [u8; 79] = [
    0x00, 0x4f, 0x03, 0x0c, 0x6b, 0x0b, 0xc7, 0x84, 0x00, 0x00, 0x00, 0x46, //
    0x00, 0x02, 0x00, 0x04, 0xc6, 0x12, 0x01, 0x1f, 0x00, 0x03, 0x00, 0x01, //
    0x02, 0x00, 0x04, 0x00, 0x07, 0x01, 0x02, 0xfc, 0x01, 0x00, 0x00, 0x01, //
    0x00, 0x05, 0x00, 0x07, 0x01, 0x02, 0xfc, 0x01, 0x00, 0x00, 0x01, 0x00, //
    0x0d, 0x00, 0x04, 0x6b, 0x0b, 0xc7, 0xc0, 0x00, 0x12, 0x00, 0x04, 0x6b, //
    0x0b, 0xc9, 0xfa, 0x00, 0x19, 0x00, 0x04, 0x6b, 0x0b, 0xc7, 0x84, 0x00, //
    0x06, 0x00, 0x04, 0x6b, 0x0b, 0xc7, 0x84,
];

/// startup.hex #1, P>S CONNECT: relationship "fo-interop", max-unacked 10, receive-timer 15,
/// vendor-class "isc-4.4.3-P1", protocol-version 1, TLS-request 0, MCLT 60, HBA first half.
const CONNECT: [u8; 112] = [
    0x00, 0x70, 0x05, 0x0c, 0x6b, 0x0b, 0xc7, 0x5e, 0x00, 0x00, 0x00, 0x00, //
    0x00, 0x16, 0x00, 0x0a, 0x66, 0x6f, 0x2d, 0x69, 0x6e, 0x74, 0x65, 0x72, //
    0x6f, 0x70, 0x00, 0x0e, 0x00, 0x04, 0x00, 0x00, 0x00, 0x0a, 0x00, 0x13, //
    0x00, 0x04, 0x00, 0x00, 0x00, 0x0f, 0x00, 0x1c, 0x00, 0x0c, 0x69, 0x73, //
    0x63, 0x2d, 0x34, 0x2e, 0x34, 0x2e, 0x33, 0x2d, 0x50, 0x31, 0x00, 0x14, //
    0x00, 0x01, 0x01, 0x00, 0x1b, 0x00, 0x01, 0x00, 0x00, 0x0f, 0x00, 0x04, //
    0x00, 0x00, 0x00, 0x3c, 0x00, 0x0b, 0x00, 0x20, 0xff, 0xff, 0xff, 0xff, //
    0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, 0xff, //
    0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, 0x00, //
    0x00, 0x00, 0x00, 0x00,
];

/// The chaddr of the BNDUPD above (without the hardware type).
const MAC: [u8; 6] = [0x02, 0xfc, 0x01, 0x00, 0x00, 0x01];
/// The client-identifier of the BNDUPD above.
const CLIENT_ID: [u8; 7] = [0x01, 0x02, 0xfc, 0x01, 0x00, 0x00, 0x01];

/// Size of the framing stream.
const STREAM_LEN: usize = 1 << 20;
/// The read size the `Framer` is fed: one TCP segment of a 1500-byte MTU.
const TCP_MSS: usize = 1460;

/// Distance between a message's bytes and the output buffer in [`Arena`].
const OUT_AT: usize = 3072;

/// The input message and the output buffer of the per-message benchmarks, in one allocation.
///
/// Their distance is fixed at 3 KiB so that their addresses never share the low 12 bits: a load
/// from an address 4 KiB apart from a recent store ("4K aliasing") is stalled until that store
/// is resolved. With the message in `.rodata` and the output on the stack, whether that happened
/// depended on where ASLR put the stack, and a 79-byte copy took 1.5 ns in one run, 11 ns in the
/// next.
struct Arena {
    buf: Vec<u8>,
    len: usize,
}

impl Arena {
    fn new(msg: &[u8]) -> Self {
        assert!(msg.len() <= OUT_AT);
        let mut buf = vec![0u8; OUT_AT + MAX_MESSAGE_LEN];
        buf[..msg.len()].copy_from_slice(msg);
        Arena {
            buf,
            len: msg.len(),
        }
    }

    /// The message, and the output buffer.
    fn split(&mut self) -> (&[u8], &mut [u8]) {
        let (input, out) = self.buf.split_at_mut(OUT_AT);
        (&input[..self.len], out)
    }
}

fn unhex(s: &str) -> Vec<u8> {
    assert!(s.len() % 2 == 0, "odd hex length");
    (0..s.len())
        .step_by(2)
        .map(|i| u8::from_str_radix(&s[i..i + 2], 16).expect("hex digit"))
        .collect()
}

/// Every message of every `.hex` vector file, in file (name) order then line order.
fn captured_messages() -> Vec<Vec<u8>> {
    let dir = Path::new(env!("CARGO_MANIFEST_DIR")).join("../failover-proto/tests/vectors");
    let mut files: Vec<_> = std::fs::read_dir(&dir)
        .unwrap_or_else(|e| panic!("{}: {e}", dir.display()))
        .map(|e| e.unwrap().path())
        .filter(|p| p.extension().is_some_and(|x| x == "hex"))
        .collect();
    files.sort();
    assert!(!files.is_empty(), "no .hex vectors in {}", dir.display());
    let mut msgs = Vec::new();
    for f in files {
        let text = std::fs::read_to_string(&f).unwrap();
        for line in text.lines() {
            let line = line.trim();
            if line.is_empty() || line.starts_with('#') {
                continue;
            }
            let msg = unhex(line.split_whitespace().last().unwrap());
            let len = usize::from(u16::from_be_bytes([msg[0], msg[1]]));
            assert_eq!(len, msg.len(), "{}: length field of {line}", f.display());
            msgs.push(msg);
        }
    }
    msgs
}

/// The captured messages repeated, up to the last whole message that fits in `STREAM_LEN`.
fn build_stream() -> Vec<u8> {
    let msgs = captured_messages();
    let mut stream = Vec::with_capacity(STREAM_LEN);
    'fill: loop {
        for m in &msgs {
            if stream.len() + m.len() > STREAM_LEN {
                break 'fill;
            }
            stream.extend_from_slice(m);
        }
    }
    stream
}

fn bench_bndupd(c: &mut Criterion) {
    let mut arena = Arena::new(&BNDUPD);
    let (msg, out) = arena.split();
    let parsed = BndUpd::from_bytes(msg).unwrap();
    let binding = parsed.bindings.first().unwrap();
    // The same update built the way a sender builds one: a typed binding, no wire bytes behind.
    let owned = failover_proto::Binding {
        extra: ExtraOptions::EMPTY,
        ..binding
    };
    let built = BndUpd {
        bindings: BindingList::single(&owned),
        ..parsed
    };
    // Both encodings reproduce the capture, so the emit benchmarks do the real work.
    for m in [&parsed, &built] {
        let n = m.emit(out).unwrap();
        assert_eq!(&out[..n], &BNDUPD[..]);
    }

    let mut g = c.benchmark_group("bndupd");
    g.throughput(Throughput::Bytes(BNDUPD.len() as u64));
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            let src: &[u8] = black_box(msg);
            out[..src.len()].copy_from_slice(src);
            black_box(&mut *out);
        })
    });
    // Repr::parse validates every option and each binding transaction, but keeps the bindings
    // as wire bytes.
    g.bench_function("parse_repr", |b| {
        b.iter(|| black_box(Repr::parse(black_box(msg))))
    });
    g.bench_function("from_bytes", |b| {
        b.iter(|| black_box(BndUpd::from_bytes(black_box(msg))))
    });
    // What a receiver does: parse, then decode the binding(s) (decoded again on iteration).
    g.bench_function("from_bytes+bindings", |b| {
        b.iter(|| {
            let m = BndUpd::from_bytes(black_box(msg)).unwrap();
            for binding in m.bindings.iter() {
                black_box(binding);
            }
        })
    });
    g.bench_function("parse_repr+bindings", |b| {
        b.iter(|| {
            let Ok(Repr::BndUpd(m)) = Repr::parse(black_box(msg)) else {
                unreachable!()
            };
            for binding in m.bindings.iter() {
                black_box(binding);
            }
        })
    });
    // Re-encoding a parsed update: its binding region is copied as received.
    g.bench_function("emit_parsed", |b| {
        b.iter(|| black_box(black_box(&parsed).emit(out)))
    });
    // Encoding a typed binding, as a server sending its own updates does.
    g.bench_function("emit_built", |b| {
        b.iter(|| black_box(black_box(&built).emit(out)))
    });
    g.finish();
}

fn bench_connect(c: &mut Criterion) {
    let mut arena = Arena::new(&CONNECT);
    let (msg, out) = arena.split();
    let parsed = Connect::from_bytes(msg).unwrap();
    let built = Connect {
        extra: ExtraOptions::EMPTY,
        ..parsed
    };
    for m in [&parsed, &built] {
        let n = m.emit(out).unwrap();
        assert_eq!(&out[..n], &CONNECT[..]);
    }

    let mut g = c.benchmark_group("connect");
    g.throughput(Throughput::Bytes(CONNECT.len() as u64));
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            let src: &[u8] = black_box(msg);
            out[..src.len()].copy_from_slice(src);
            black_box(&mut *out);
        })
    });
    g.bench_function("parse_repr", |b| {
        b.iter(|| black_box(Repr::parse(black_box(msg))))
    });
    g.bench_function("from_bytes", |b| {
        b.iter(|| black_box(Connect::from_bytes(black_box(msg))))
    });
    // A parsed CONNECT keeps its unmodelled options as a filtered view of the wire: emit walks
    // the payload again for them (none here).
    g.bench_function("emit_parsed", |b| {
        b.iter(|| black_box(black_box(&parsed).emit(out)))
    });
    g.bench_function("emit_built", |b| {
        b.iter(|| black_box(black_box(&built).emit(out)))
    });
    g.finish();
}

fn bench_framing(c: &mut Criterion) {
    let stream = build_stream();
    let len = stream.len();
    let count = Frames::new(&stream).count();
    let parse_errors = Frames::new(&stream)
        .filter(|m| Repr::parse(m.as_ref().unwrap()).is_err())
        .count();
    eprintln!(
        "framing stream: {len} bytes, {count} messages ({:.1} B average), \
         {parse_errors} of them rejected by Repr::parse",
        len as f64 / count as f64
    );
    // Both framers see exactly the messages of the stream.
    let mut framer = Framer::new();
    let mut seen = (0usize, 0usize);
    for chunk in stream.chunks(TCP_MSS) {
        let mut input = chunk;
        while let Some(m) = framer.next_message(&mut input).unwrap() {
            seen = (seen.0 + 1, seen.1 + m.len());
        }
    }
    assert_eq!(seen, (count, len));

    let mut g = c.benchmark_group("framing");
    g.throughput(Throughput::Bytes(len as u64));
    let mut copy = vec![0u8; len];
    g.bench_function("memcpy", |b| {
        b.iter(|| {
            copy.copy_from_slice(black_box(&stream));
            black_box(&copy);
        })
    });
    g.bench_function("frames", |b| {
        b.iter(|| {
            for m in Frames::new(black_box(&stream)) {
                black_box(m.unwrap());
            }
        })
    });
    g.bench_function("framer_1460", |b| {
        b.iter(|| {
            framer.reset();
            for chunk in black_box(&stream).chunks(TCP_MSS) {
                let mut input = chunk;
                while let Some(m) = framer.next_message(&mut input).unwrap() {
                    black_box(m);
                }
            }
        })
    });
    g.bench_function("frame+parse", |b| {
        b.iter(|| {
            for m in Frames::new(black_box(&stream)) {
                black_box(Repr::parse(m.unwrap()).ok());
            }
        })
    });
    g.finish();
}

fn bench_hash(c: &mut Criterion) {
    let mut g = c.benchmark_group("hash");
    g.bench_function("bucket_mac6", |b| b.iter(|| bucket(black_box(&MAC))));
    g.bench_function("bucket_client_id7", |b| {
        b.iter(|| bucket(black_box(&CLIENT_ID)))
    });
    g.finish();
}

criterion_group!(
    benches,
    bench_bndupd,
    bench_connect,
    bench_framing,
    bench_hash
);
criterion_main!(benches);
