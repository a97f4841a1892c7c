//! RFC 8156 connections (issue 15, item 3), loopback only: the primary connects and the
//! secondary listens (§6.1); messages framed by a 2-byte size (§5.1); in secure mode
//! STARTTLS and its REPLY, byte for byte, then TLS with pinned certificates before CONNECT
//! (§6.1, §10, RFC 7653 §8.2); and each refusal the RFCs ask for: a STARTTLS to an insecure
//! secondary, a plain connection to a secure one, a certificate of another identity, a
//! stranger, a size below a DHCPv6 header, silence.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::panic,
    clippy::indexing_slicing,
    missing_docs
)]
// The handshake helper and its imports serve the TLS tests only.
#![cfg_attr(not(feature = "tls"), allow(dead_code, unused_imports))]

mod common;

use std::net::{IpAddr, Ipv4Addr, SocketAddr};
use std::time::Duration;

use failover_proto::Text;
use failover_proto::v6::{
    Connect, ConnectFlags, ConnectReply, ProtocolVersion, Repr, ServerFlags, ServerState, State,
    Status, time,
};
use failover_tokio::v6::{
    Connection6, Security6, StartError, accept_as_secondary, connect_as_primary,
};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::task::JoinHandle;

const WAIT: Duration = Duration::from_secs(3);
const LOOPBACK: IpAddr = IpAddr::V4(Ipv4Addr::LOCALHOST);

async fn listener() -> (TcpListener, SocketAddr) {
    let l = TcpListener::bind((Ipv4Addr::LOCALHOST, 0)).await.unwrap();
    let a = l.local_addr().unwrap();
    (l, a)
}

/// A secondary on a new loopback listener: accepts one connection and sets it up as
/// `security` says, expecting its partner at 127.0.0.1. Returns the listener's address.
async fn spawn_secondary(
    security: Security6,
) -> (SocketAddr, JoinHandle<Result<Connection6, StartError>>) {
    let (l, a) = listener().await;
    let secondary = tokio::spawn(async move {
        let (tcp, _) = l.accept().await.unwrap();
        accept_as_secondary(tcp, LOOPBACK, &security, WAIT).await
    });
    (a, secondary)
}

fn now() -> u32 {
    time::from_unix(failover_tokio::wall_clock().0.into()).unwrap()
}

fn connect_msg(xid: u32) -> Vec<u8> {
    let c = Connect {
        xid,
        sent_time: now(),
        protocol_version: ProtocolVersion::V1_0,
        mclt: 3600,
        keepalive_time: 60,
        max_unacked_bndupd: 32,
        relationship_name: Some(Text(b"v6-pair")),
        connect_flags: ConnectFlags::default(),
        extra: Default::default(),
    };
    encode(&Repr::Connect(c))
}

fn encode(r: &Repr<'_>) -> Vec<u8> {
    let mut buf = vec![0u8; r.buffer_len()];
    let n = r.emit(&mut buf).unwrap();
    buf.truncate(n);
    buf
}

async fn next(c: &mut Connection6) -> Vec<u8> {
    let mut out = Vec::new();
    assert!(
        tokio::time::timeout(WAIT, c.next_message(&mut out))
            .await
            .unwrap()
            .unwrap()
    );
    out
}

/// CONNECT from the primary, CONNECTREPLY and STATE from the secondary, STATE from the
/// primary (§6.1), each read back as sent; the secondary's two go out in one write, so the
/// framing splits them.
async fn run_handshake(primary: &mut Connection6, secondary: &mut Connection6) {
    let connect = connect_msg(0x00_1234);
    primary.write_message(&connect).await.unwrap();
    let got = next(secondary).await;
    assert_eq!(got, connect);
    let Repr::Connect(c) = Repr::parse(&got).unwrap() else {
        panic!("not CONNECT")
    };
    assert_eq!(c.relationship_name, Some(Text(b"v6-pair")));

    let reply = encode(&Repr::ConnectReply(ConnectReply {
        xid: c.xid,
        sent_time: now(),
        protocol_version: Some(ProtocolVersion::V1_0),
        mclt: Some(c.mclt),
        keepalive_time: Some(60),
        max_unacked_bndupd: Some(32),
        connect_flags: Some(ConnectFlags::default()),
        ..Default::default()
    }));
    let state = |xid| {
        encode(&Repr::State(State {
            xid,
            sent_time: now(),
            server_state: ServerState::Startup,
            server_flags: ServerFlags::STARTUP,
            start_time_of_state: now(),
            partner_down_time: None,
            extra: Default::default(),
        }))
    };
    let secondary_state = state(2);
    let mut both = reply.clone();
    both.extend_from_slice(&secondary_state);
    secondary.write_message(&both).await.unwrap();
    assert_eq!(next(primary).await, reply);
    assert_eq!(next(primary).await, secondary_state);
    let primary_state = state(7);
    primary.write_message(&primary_state).await.unwrap();
    assert_eq!(next(secondary).await, primary_state);
}

#[tokio::test]
async fn insecure_mode_connects_without_starttls_and_frames_messages() {
    let (a, secondary) = spawn_secondary(Security6::Insecure).await;
    let mut primary = connect_as_primary(a, &Security6::Insecure, 1, WAIT)
        .await
        .unwrap();
    // In insecure mode the primary's first message is CONNECT: the secondary reads it to know
    // it is not STARTTLS, and keeps it for the caller.
    let connect = connect_msg(0x00_1234);
    primary.write_message(&connect).await.unwrap();
    let mut secondary = secondary.await.unwrap().unwrap();
    assert!(!primary.is_tls() && !secondary.is_tls());
    assert_eq!(next(&mut secondary).await, connect);
    // The rest of the exchange on the same connection.
    let mut s2 = secondary;
    let reply = encode(&Repr::ConnectReply(ConnectReply {
        xid: 0x00_1234,
        sent_time: now(),
        status: Some(failover_proto::v6::StatusCode::new(
            Status::ConfigurationConflict,
            "no",
        )),
        ..Default::default()
    }));
    s2.write_message(&reply).await.unwrap();
    let got = next(&mut primary).await;
    let Repr::ConnectReply(r) = Repr::parse(&got).unwrap() else {
        panic!("not CONNECTREPLY")
    };
    assert_eq!(
        r.status.map(|s| s.status),
        Some(Status::ConfigurationConflict)
    );
    // A clean close between two messages is the end of the stream, not an error.
    s2.shutdown().await.unwrap();
    let mut out = Vec::new();
    assert!(
        !tokio::time::timeout(WAIT, primary.next_message(&mut out))
            .await
            .unwrap()
            .unwrap()
    );
}

#[tokio::test]
async fn an_insecure_secondary_refuses_starttls_with_tls_connection_refused() {
    let (a, secondary) = spawn_secondary(Security6::Insecure).await;
    let mut raw = TcpStream::connect(a).await.unwrap();
    // STARTTLS, transaction-id 0x010203, in the plain DHCPv6 layout (RFC 7653 §6.2.2).
    raw.write_all(&[0x00, 0x04, 23, 0x01, 0x02, 0x03])
        .await
        .unwrap();
    let mut answer = Vec::new();
    tokio::time::timeout(WAIT, raw.read_to_end(&mut answer))
        .await
        .unwrap()
        .unwrap();
    // REPLY, the same transaction-id, OPTION_STATUS_CODE TLSConnectionRefused (15); closed.
    assert_eq!(
        answer,
        [
            0x00, 0x0a, 7, 0x01, 0x02, 0x03, 0x00, 13, 0x00, 0x02, 0x00, 15
        ]
    );
    assert!(matches!(
        secondary.await.unwrap(),
        Err(StartError::TlsNotOffered)
    ));
}

#[tokio::test]
async fn a_stranger_is_dropped_unread() {
    let (l, a) = listener().await;
    let secondary = tokio::spawn(async move {
        let (tcp, _) = l.accept().await.unwrap();
        // The partner is 127.0.0.2; the connection comes from 127.0.0.1.
        accept_as_secondary(
            tcp,
            IpAddr::V4(Ipv4Addr::new(127, 0, 0, 2)),
            &Security6::Insecure,
            WAIT,
        )
        .await
    });
    let mut raw = TcpStream::connect(a).await.unwrap();
    raw.write_all(&connect_msg(5)).await.unwrap();
    let r = secondary.await.unwrap();
    assert!(
        matches!(r, Err(StartError::Stranger { from }) if from == LOOPBACK),
        "{r:?}"
    );
    let mut answer = Vec::new();
    let _ = tokio::time::timeout(WAIT, raw.read_to_end(&mut answer))
        .await
        .unwrap();
    assert!(answer.is_empty());
}

#[tokio::test]
async fn a_size_below_a_dhcpv6_header_and_silence_are_refused() {
    let (l, a) = listener().await;
    let secondary = tokio::spawn(async move {
        let mut results = Vec::new();
        for _ in 0..2 {
            let (tcp, _) = l.accept().await.unwrap();
            results.push(
                accept_as_secondary(
                    tcp,
                    LOOPBACK,
                    &Security6::Insecure,
                    Duration::from_millis(300),
                )
                .await,
            );
        }
        results
    });
    let mut short = TcpStream::connect(a).await.unwrap();
    short.write_all(&[0x00, 0x03, 35, 0, 0]).await.unwrap();
    let silent = TcpStream::connect(a).await.unwrap();
    let results = secondary.await.unwrap();
    assert!(
        matches!(results[0], Err(StartError::Malformed(_))),
        "{:?}",
        results[0]
    );
    assert!(
        matches!(results[1], Err(StartError::Timeout)),
        "{:?}",
        results[1]
    );
    drop((short, silent));
}

#[cfg(feature = "tls")]
mod secure {
    use super::*;
    use common::pki::{Pki, SECONDARY_ID, tls};
    use failover_tokio::TlsRefusal;

    #[tokio::test]
    async fn starttls_then_tls_then_the_connect_exchange() {
        let pki = Pki::new();
        let (a, secondary) = spawn_secondary(Security6::Secure(pki.secondary())).await;
        let mut primary = connect_as_primary(a, &Security6::Secure(pki.primary()), 77, WAIT)
            .await
            .unwrap();
        let mut secondary = secondary.await.unwrap().unwrap();
        assert!(primary.is_tls() && secondary.is_tls());
        run_handshake(&mut primary, &mut secondary).await;
    }

    #[tokio::test]
    async fn the_primary_sends_starttls_first_and_closes_when_it_is_refused() {
        let pki = Pki::new();
        let (l, a) = listener().await;
        let fake = tokio::spawn(async move {
            let (mut tcp, _) = l.accept().await.unwrap();
            let mut first = [0u8; 6];
            tcp.read_exact(&mut first).await.unwrap();
            // An insecure secondary's answer.
            tcp.write_all(&[
                0x00, 0x0a, 7, first[3], first[4], first[5], 0, 13, 0, 2, 0, 15,
            ])
            .await
            .unwrap();
            let mut rest = Vec::new();
            tokio::time::timeout(WAIT, tcp.read_to_end(&mut rest))
                .await
                .unwrap()
                .unwrap();
            (first, rest)
        });
        let r = connect_as_primary(a, &Security6::Secure(pki.primary()), 0x0a0b0c, WAIT).await;
        assert!(
            matches!(
                r,
                Err(StartError::TlsRefusedByPartner {
                    status: Status::TlsConnectionRefused
                })
            ),
            "{r:?}"
        );
        drop(r);
        let (first, rest) = fake.await.unwrap();
        // STARTTLS with our transaction-id is the first thing on the wire...
        assert_eq!(first, [0x00, 0x04, 23, 0x0a, 0x0b, 0x0c]);
        // ... and nothing follows it: no CONNECT in the clear.
        assert!(rest.is_empty(), "{rest:?}");
    }

    #[tokio::test]
    async fn the_primary_closes_when_the_secondary_says_nothing_or_closes() {
        let pki = Pki::new();
        let (l, a) = listener().await;
        let fake = tokio::spawn(async move {
            let (silent, _) = l.accept().await.unwrap();
            let (closing, _) = l.accept().await.unwrap();
            drop(closing);
            tokio::time::sleep(WAIT).await;
            drop(silent);
        });
        let short = Duration::from_millis(300);
        let r = connect_as_primary(a, &Security6::Secure(pki.primary()), 1, short).await;
        assert!(matches!(r, Err(StartError::Timeout)), "{r:?}");
        let r = connect_as_primary(a, &Security6::Secure(pki.primary()), 2, short).await;
        assert!(
            matches!(r, Err(StartError::Closed | StartError::Io(_))),
            "{r:?}"
        );
        fake.abort();
    }

    #[tokio::test]
    async fn a_secure_secondary_closes_a_connection_that_does_not_start_with_starttls() {
        let pki = Pki::new();
        let (a, secondary) = spawn_secondary(Security6::Secure(pki.secondary())).await;
        let mut primary = connect_as_primary(a, &Security6::Insecure, 1, WAIT)
            .await
            .unwrap();
        primary.write_message(&connect_msg(3)).await.unwrap();
        let r = secondary.await.unwrap();
        assert!(
            matches!(r, Err(StartError::Unexpected { msg_type: 31 })),
            "{r:?}"
        );
        drop(r);
        // Closed without an answer.
        let mut out = Vec::new();
        let read = tokio::time::timeout(WAIT, primary.next_message(&mut out))
            .await
            .unwrap();
        assert!(
            matches!(read, Ok(false) | Err(StartError::Io(_))),
            "{read:?}"
        );
    }

    #[tokio::test]
    async fn a_certificate_of_another_identity_is_refused() {
        let pki = Pki::new();
        let intruder = pki.ca.leaf("intruder.test", false);
        let (a, secondary) = spawn_secondary(Security6::Secure(pki.secondary())).await;
        // Same CA, valid, but it names intruder.test where the secondary pins primary.test.
        let wrong = Security6::Secure(tls(&intruder, &pki.ca, SECONDARY_ID));
        let p = connect_as_primary(a, &wrong, 1, WAIT).await;
        let s = secondary.await.unwrap();
        assert!(
            matches!(
                s,
                Err(StartError::Tls(
                    TlsRefusal::WrongIdentity | TlsRefusal::BadCertificate
                ))
            ),
            "{s:?}"
        );
        // TLS 1.3: the client may finish its handshake before the server refuses it; then the
        // refusal arrives as the first read.
        if let Ok(mut c) = p {
            let mut out = Vec::new();
            let read = tokio::time::timeout(WAIT, c.next_message(&mut out))
                .await
                .unwrap();
            assert!(!matches!(read, Ok(true)), "{read:?}");
        }
    }
}
