//! Message authentication (issue 13, item 3): the HMAC-SHA256 primitive against RFC 4231,
//! the option's layout, sign/verify round trips, each refusal (tampered, another secret,
//! missing, unconfigured, another type, not last) and the replay rules.
#![cfg(feature = "hmac-sha256")]
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use failover_proto::auth::{
    Authenticator, DigestError, EmptySecret, HMAC_SHA256_TYPE, HmacSha256, MessageAuth,
    check_no_digest,
};
use failover_proto::{
    Connect, ConnectAck, Contact, EncodeError, Hba, RejectReason, Repr, Role, Text,
};

const NOW: u32 = 1_700_000_000;

fn hmac(secret: &[u8]) -> HmacSha256 {
    HmacSha256::new(secret).unwrap()
}

fn pair(
    secret_p: &[u8],
    secret_s: &[u8],
) -> (Authenticator<HmacSha256>, Authenticator<HmacSha256>) {
    (
        Authenticator::new(hmac(secret_p), Role::Primary, 60),
        Authenticator::new(hmac(secret_s), Role::Secondary, 60),
    )
}

/// A primary's CONNECT of time `time`, xid `xid`, signed by `a`.
fn connect(a: &mut Authenticator<HmacSha256>, time: u32, xid: u32) -> ([u8; 2048], usize) {
    let c = Connect {
        time,
        xid,
        relationship_name: Text::from("dhcp-failover"),
        max_unacked_bndupd: 10,
        receive_timer: 60,
        protocol_version: 1,
        mclt: 3600,
        hba: Hba::split(128),
        ..Connect::default()
    };
    let mut buf = [0u8; 2048];
    let n = c.emit(&mut buf).unwrap();
    let n = a.sign(&mut buf, n).unwrap();
    (buf, n)
}

fn contact(a: &mut Authenticator<HmacSha256>, xid: u32) -> ([u8; 2048], usize) {
    let mut buf = [0u8; 2048];
    let n = Contact {
        time: NOW,
        xid,
        ..Contact::default()
    }
    .emit(&mut buf)
    .unwrap();
    let n = a.sign(&mut buf, n).unwrap();
    (buf, n)
}

fn hex(s: &str) -> [u8; 32] {
    let mut out = [0u8; 32];
    for (i, o) in out.iter_mut().enumerate() {
        *o = u8::from_str_radix(&s[2 * i..2 * i + 2], 16).unwrap();
    }
    out
}

fn mac(key: &[u8], data: &[u8]) -> [u8; 32] {
    let mut out = [0u8; 32];
    hmac(key).compute(&[data], &mut out);
    out
}

#[test]
fn rfc4231_vectors() {
    // RFC 4231 §4.2, 4.3, 4.4, 4.5, 4.7 (HMAC-SHA-256).
    let cases: [(&[u8], &[u8], &str); 5] = [
        (
            &[0x0b; 20],
            b"Hi There",
            "b0344c61d8db38535ca8afceaf0bf12b881dc200c9833da726e9376c2e32cff7",
        ),
        (
            b"Jefe",
            b"what do ya want for nothing?",
            "5bdcc146bf60754e6a042426089575c75a003f089d2739839dec58b964ec3843",
        ),
        (
            &[0xaa; 20],
            &[0xdd; 50],
            "773ea91e36800e46854db8ebd09181a72959098b3ef8c122d9635514ced565fe",
        ),
        (
            &[
                1, 2, 3, 4, 5, 6, 7, 8, 9, 10, 11, 12, 13, 14, 15, 16, 17, 18, 19, 20, 21, 22, 23,
                24, 25,
            ],
            &[0xcd; 50],
            "82558a389a443c0ea4cc819899f2083a85f0faa3e578f8077a2e3ff46729665b",
        ),
        (
            &[0xaa; 131],
            b"Test Using Larger Than Block-Size Key - Hash Key First",
            "60e431591ee0b67f0d8a26aacbf5b77f8e0bc6213728c5140546040f0ee37f54",
        ),
    ];
    for (key, data, want) in cases {
        assert_eq!(mac(key, data), hex(want));
    }
    // Parts are concatenated.
    let mut split = [0u8; 32];
    hmac(b"Jefe").compute(&[b"what do ya ", b"", b"want for nothing?"], &mut split);
    assert_eq!(split, mac(b"Jefe", b"what do ya want for nothing?"));
}

#[test]
fn empty_secret_refused() {
    assert_eq!(HmacSha256::new(b"").unwrap_err(), EmptySecret);
}

#[test]
fn round_trip_and_layout() {
    let (mut p, mut s) = pair(b"secret", b"secret");
    let (buf, n) = connect(&mut p, NOW, 7);
    let msg = &buf[..n];
    // The option is last: code 17, length 33, type 254, 32 digest bytes; the length field
    // covers it.
    assert_eq!(&msg[n - 37..n - 32], &[0, 17, 0, 33, HMAC_SHA256_TYPE]);
    assert_eq!(usize::from(u16::from_be_bytes([msg[0], msg[1]])), n);
    // The codec reads it as the message's digest.
    let Repr::Connect(c) = Repr::parse(msg).unwrap() else {
        panic!()
    };
    assert_eq!(c.digest.unwrap().digest, &msg[n - 32..]);
    s.verify(msg, NOW).unwrap();
    // Both directions, several messages each.
    for xid in 8..12 {
        let (b, n) = contact(&mut s, xid);
        p.verify(&b[..n], NOW).unwrap();
        let (b, n) = contact(&mut p, xid);
        s.verify(&b[..n], NOW).unwrap();
    }
}

#[test]
fn every_tampered_byte_is_a_bad_digest() {
    let (mut p, s) = pair(b"secret", b"secret");
    let (buf, n) = connect(&mut p, NOW, 7);
    for i in 0..n {
        let mut t = buf;
        t[i] ^= 0x01;
        let got = s.clone().verify(&t[..n], NOW);
        assert!(got.is_err(), "byte {i} altered, accepted");
    }
    // Only the digest bytes themselves: exactly Bad.
    let mut t = buf;
    t[n - 1] ^= 0x80;
    assert_eq!(s.clone().verify(&t[..n], NOW), Err(DigestError::Bad));
}

#[test]
fn wrong_secret_is_bad() {
    let (mut p, mut s) = pair(b"secret", b"another");
    let (buf, n) = connect(&mut p, NOW, 7);
    let e = s.verify(&buf[..n], NOW).unwrap_err();
    assert_eq!(e, DigestError::Bad);
    assert_eq!(e.reject_reason(), RejectReason::DigestFailed);
}

#[test]
fn missing_and_unconfigured() {
    let (_, mut s) = pair(b"secret", b"secret");
    let mut buf = [0u8; 64];
    let n = Contact {
        time: NOW,
        xid: 1,
        ..Contact::default()
    }
    .emit(&mut buf)
    .unwrap();
    let e = s.verify(&buf[..n], NOW).unwrap_err();
    assert_eq!(e, DigestError::Missing);
    assert_eq!(e.reject_reason(), RejectReason::MissingDigest);
    assert_eq!(check_no_digest(&buf[..n]), Ok(()));
    // A signed message to a server without a secret (§11.1: reason 13).
    let (mut p, _) = pair(b"secret", b"secret");
    let (b, n) = contact(&mut p, 1);
    let e = check_no_digest(&b[..n]).unwrap_err();
    assert_eq!(e, DigestError::NotConfigured);
    assert_eq!(e.reject_reason(), RejectReason::DigestNotConfigured);
}

#[test]
fn other_type_and_not_last() {
    let (mut p, mut s) = pair(b"secret", b"secret");
    let mut other = Authenticator::new(hmac(b"secret").with_digest_type(2), Role::Primary, 60);
    let (b, n) = connect(&mut other, NOW, 7);
    let e = s.clone().verify(&b[..n], NOW).unwrap_err();
    assert_eq!(e, DigestError::UnsupportedType(2));
    assert_eq!(e.reject_reason(), RejectReason::DigestNotSupported);
    // An option after the digest (length fixed so that it frames).
    let (mut b, n) = connect(&mut p, NOW, 7);
    b[n..n + 5].copy_from_slice(&[0, 16, 0, 1, b'x']);
    b[..2].copy_from_slice(&((n + 5) as u16).to_be_bytes());
    assert_eq!(s.verify(&b[..n + 5], NOW), Err(DigestError::NotLast));
}

#[test]
fn replay_on_the_same_connection() {
    let (mut p, mut s) = pair(b"secret", b"secret");
    let (c, cn) = connect(&mut p, NOW, 7);
    s.verify(&c[..cn], NOW).unwrap();
    let (b, n) = contact(&mut p, 8);
    s.verify(&b[..n], NOW).unwrap();
    // The same bytes again: the count moved on.
    assert_eq!(s.clone().verify(&b[..n], NOW), Err(DigestError::Bad));
    // Out of order: the next one before the skipped one.
    let (_, _) = contact(&mut p, 9);
    let (b10, n10) = contact(&mut p, 10);
    assert_eq!(s.clone().verify(&b10[..n10], NOW), Err(DigestError::Bad));
    // Reflected: the primary's own message sent back to it.
    let (mut p2, _) = pair(b"secret", b"secret");
    let (b, n) = contact(&mut p2, 1);
    assert_eq!(p2.verify(&b[..n], NOW), Err(DigestError::Bad));
}

#[test]
fn replay_on_a_new_connection() {
    let (mut p, mut s) = pair(b"secret", b"secret");
    let (c1, n1) = connect(&mut p, NOW, 7);
    s.verify(&c1[..n1], NOW).unwrap();
    let (b1, m1) = contact(&mut p, 8);
    s.verify(&b1[..m1], NOW).unwrap();
    // The partner's CONNECT recorded and sent again on a new connection.
    s.connection_up();
    let e = s.clone().verify(&c1[..n1], NOW).unwrap_err();
    assert_eq!(
        e,
        DigestError::ConnectReplayed {
            time: NOW,
            last: NOW
        }
    );
    assert_eq!(e.reject_reason(), RejectReason::TimeMismatch);
    // A real new CONNECT within the same second (greater xid) passes; the recorded CONTACT,
    // second message of the old connection, does not verify on the new one.
    p.connection_up();
    let (c2, n2) = connect(&mut p, NOW, 9);
    s.verify(&c2[..n2], NOW).unwrap();
    assert_eq!(s.clone().verify(&b1[..m1], NOW), Err(DigestError::Bad));
    let (b2, m2) = contact(&mut p, 10);
    s.verify(&b2[..m2], NOW).unwrap();
    // The secondary's answer recorded on the old connection does not verify at the primary
    // on the new one.
    let (mut p3, mut s3) = pair(b"secret", b"secret");
    let (c, n) = connect(&mut p3, NOW, 1);
    s3.verify(&c[..n], NOW).unwrap();
    let (ack, an) = contact(&mut s3, 1);
    p3.verify(&ack[..an], NOW).unwrap();
    p3.connection_up();
    let _ = connect(&mut p3, NOW + 1, 2);
    assert_eq!(p3.verify(&ack[..an], NOW), Err(DigestError::Bad));
}

#[test]
fn connect_outside_the_skew_window() {
    let (mut p, mut s) = pair(b"secret", b"secret");
    let (c, n) = connect(&mut p, NOW - 61, 7);
    assert_eq!(
        s.verify(&c[..n], NOW),
        Err(DigestError::ConnectTime {
            time: NOW - 61,
            now: NOW
        })
    );
    p.connection_up();
    let (c, n) = connect(&mut p, NOW + 60, 8);
    s.verify(&c[..n], NOW).unwrap();
}

#[test]
fn sign_needs_room() {
    let (mut p, _) = pair(b"secret", b"secret");
    let mut buf = [0u8; 40];
    let n = Contact {
        time: NOW,
        xid: 1,
        ..Contact::default()
    }
    .emit(&mut buf)
    .unwrap();
    assert_eq!(
        p.sign(&mut buf, n),
        Err(EncodeError::BufferTooSmall { required: n + 37 })
    );
    // Never past the largest message.
    let mut big = [0u8; 2100];
    big[..2].copy_from_slice(&2040u16.to_be_bytes());
    big[2] = 11;
    big[3] = 12;
    assert!(p.sign(&mut big, 2040).is_err());
    assert_eq!(p.overhead(), 37);
}

fn connect_ack(a: &mut Authenticator<HmacSha256>, time: u32, xid: u32) -> ([u8; 2048], usize) {
    let mut buf = [0u8; 2048];
    let ack = ConnectAck {
        time,
        xid,
        relationship_name: Some(Text::from("dhcp-failover")),
        max_unacked_bndupd: Some(10),
        receive_timer: Some(60),
        ..ConnectAck::default()
    };
    let n = ack.emit(&mut buf).unwrap();
    let n = a.sign(&mut buf, n).unwrap();
    (buf, n)
}

#[test]
fn replayed_primary_side_after_a_restart_stops_after_connect() {
    let (mut p, mut s) = pair(b"secret", b"secret");
    let (c, cn) = connect(&mut p, NOW, 7);
    s.verify(&c[..cn], NOW).unwrap();
    let (a, an) = connect_ack(&mut s, NOW, 7);
    p.verify(&a[..an], NOW).unwrap();
    let (m, mn) = contact(&mut p, 8);
    s.verify(&m[..mn], NOW).unwrap();
    // The secondary restarts (no memory of the CONNECT) and the recorded primary side comes
    // again within the skew window: the CONNECT passes, what followed it does not, because
    // the new CONNECTACK is another one.
    let mut s2 = Authenticator::new(hmac(b"secret"), Role::Secondary, 60);
    s2.verify(&c[..cn], NOW + 5).unwrap();
    let _ = connect_ack(&mut s2, NOW + 5, 7);
    assert_eq!(s2.verify(&m[..mn], NOW + 5), Err(DigestError::Bad));
}
