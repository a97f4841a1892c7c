//! Properties checked on arbitrary input by the `v6_codec` fuzz target (RFC 8156 codec):
//! compiled into the target and into failover-proto's replay test `tests/v6_fuzz_corpus.rs`.
#![allow(
    dead_code,
    unreachable_pub,
    clippy::indexing_slicing,
    clippy::panic,
    clippy::unwrap_used,
    clippy::expect_used
)]

use failover_proto::EncodeError;
use failover_proto::v6::{Binding, Framer, Message, Repr, framer};

/// One message: parse → emit → parse agrees, emit writes exactly `buffer_len()` bytes and
/// nothing past them, a shorter buffer is refused with the exact size, re-emitting is stable;
/// errors have offsets within the input; the view and the lazy lists never panic. Then the
/// input as a stream through the framer, whole and byte by byte.
pub fn check_v6(data: &[u8]) {
    let view = Message::new_unchecked(data);
    let _ = (
        view.size(),
        view.msg_type(),
        view.xid(),
        view.sent_time(),
        view.payload(),
    );
    for o in view.options() {
        let _ = o;
    }
    match Repr::parse(data) {
        Ok(repr) => {
            let len = repr.buffer_len();
            let mut out = vec![0xa5u8; len + 16];
            let n = repr.emit(&mut out).expect("emit into buffer_len bytes");
            assert_eq!(n, len, "emit length differs from buffer_len");
            assert!(
                out[n..].iter().all(|b| *b == 0xa5),
                "emit wrote past its length"
            );
            if n > 0 {
                assert_eq!(
                    repr.emit(&mut vec![0u8; n - 1]),
                    Err(EncodeError::BufferTooSmall { required: n })
                );
            }
            let again = Repr::parse(&out[..n]).expect("re-encoding parses");
            assert_eq!(again, repr, "parse(emit(x)) != x");
            let mut out2 = vec![0u8; n];
            assert_eq!(again.emit(&mut out2), Ok(n));
            assert_eq!(out2, out[..n], "re-encoding is not stable");
            walk(&repr);
        }
        Err(e) => {
            assert!(
                e.offset() <= data.len().max(2),
                "error offset past the input: {e}"
            );
            let _ = e.to_string();
        }
    }
    let whole: Vec<Vec<u8>> = stream(data, data.len().max(1));
    let bytewise: Vec<Vec<u8>> = stream(data, 1);
    assert_eq!(whole, bytewise, "framer differs with 1-byte reads");
    let reference: Vec<Vec<u8>> = framer::frames(data)
        .map_while(Result::ok)
        .map(<[u8]>::to_vec)
        .collect();
    assert_eq!(whole, reference, "Framer differs from frames()");
}

fn stream(data: &[u8], chunk: usize) -> Vec<Vec<u8>> {
    let mut f = Box::new(Framer::new());
    let mut got = Vec::new();
    'outer: for piece in data.chunks(chunk) {
        let mut input = piece;
        loop {
            match f.next_message(&mut input) {
                Ok(Some(m)) => got.push(m.to_vec()),
                Ok(None) => break,
                Err(_) => break 'outer,
            }
        }
    }
    got
}

fn walk(repr: &Repr<'_>) {
    let binding = match repr {
        Repr::BndUpd(u) => u.binding,
        Repr::BndReply(r) => r.binding,
        _ => return,
    };
    match binding {
        Binding::Client(c) => {
            for ia in c.ias.iter() {
                for lease in ia.leases.iter() {
                    let _ = lease.extra.iter().count();
                }
            }
        }
        Binding::Prefix(p) => {
            let _ = p.extra.iter().count();
        }
    }
}
