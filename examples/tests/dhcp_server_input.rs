//! The `dhcp-server`'s request handling in-process, as its UDP loop calls it: bad input, a
//! direct client whose lease expires, two pools on two networks; and its command line.
//!
//! Bad input: truncated packets, wrong op, bad
//! hardware-address lengths, malformed and oversized options, message types a client does not
//! send, requests for addresses outside the pool or held by another client. Each gets no
//! answer or a DHCPNAK, never a panic and never a lease change. A primary and a secondary run
//! in-process (memory stores) and reach NORMAL; the primary's server is fed datagrams the way
//! its UDP loop feeds them.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::net::{Ipv4Addr, TcpListener};
use std::sync::Arc;
use std::time::Duration;

use dhcproto::v4::{DhcpOption, HType, Message, MessageType, Opcode, OptionCode};
use dhcproto::{Decodable, Decoder, Encodable};
use failover_examples::dhcp_server::serve::{Handled, Ports, Server};
use failover_examples::dhcp_server::wire::{BadRequest, ClientKind, Network, parse};
use failover_examples::dhcp_server::{Parsed, ServerOptions, parse_args};
use failover_examples::peer::{PeerStore, start_peer};
use failover_fsm::{BindingStatus, Dialect, ServerState};
use failover_proto::hash::client_bucket;
use failover_tokio::Handle;

const SERVER_ID: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 1);
const RELAY: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 9);
/// Random mutations of good messages tried.
const MUTATIONS: usize = 2000;

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

fn options_with(role: &str, peer: u16, partner: u16, mclt: u32, pools: &[&str]) -> ServerOptions {
    let mut args = vec!["--listen", "127.0.0.1:0"];
    args.extend_from_slice(pools);
    let rest = [
        "--plaintext",
        "--role",
        role,
        "--peer-listen",
        &format!("127.0.0.1:{peer}"),
        "--partner",
        &format!("127.0.0.1:{partner}"),
        "--name",
        "bad-input",
        "--mclt",
        &mclt.to_string(),
    ];
    args.extend_from_slice(&rest);
    match parse_args(args.iter().map(|s| s.to_string())) {
        Ok(Parsed::Run(o)) => *o,
        other => panic!("{other:?}"),
    }
}

async fn start(o: &ServerOptions) -> (Handle, Arc<PeerStore>) {
    let store = Arc::new(PeerStore::open(&o.peer).unwrap());
    let (handle, mut events) = start_peer(&o.peer, o.config(), store.clone())
        .await
        .unwrap();
    tokio::spawn(async move { while events.recv().await.is_some() {} });
    (handle, store)
}

/// A primary and a secondary in-process, both NORMAL.
async fn pair(mclt: u32) -> (Handle, Arc<PeerStore>, Handle, Arc<PeerStore>) {
    pair_with(mclt, &["--pool", "10.88.0.10-10.88.0.40"]).await
}

/// [`pair`] with the pools of `pools` (`--pool` arguments).
async fn pair_with(mclt: u32, pools: &[&str]) -> (Handle, Arc<PeerStore>, Handle, Arc<PeerStore>) {
    let (pp, sp) = (free_port(), free_port());
    let (po, so) = (
        options_with("primary", pp, sp, mclt, pools),
        options_with("secondary", sp, pp, mclt, pools),
    );
    let (ph, pstore) = start(&po).await;
    let (sh, sstore) = start(&so).await;
    tokio::time::timeout(Duration::from_secs(40), async {
        ph.wait_for_state(ServerState::Normal).await.unwrap();
        sh.wait_for_state(ServerState::Normal).await.unwrap();
    })
    .await
    .expect("both NORMAL");
    (ph, pstore, sh, sstore)
}

/// The primary's DHCP side, replying to relays on port 67 and clients on 68.
fn relay_server(ph: &Handle, pstore: &Arc<PeerStore>) -> Server {
    Server::new(
        ph.clone(),
        pstore.clone(),
        Dialect::Isc,
        Network {
            server_id: SERVER_ID,
            subnet_mask: None,
            router: None,
        },
        Ports {
            client: 68,
            relay: 67,
        },
        600,
    )
}

/// A MAC whose RFC 3074 bucket is the primary's (split 128), after `skip` others.
fn primary_mac(skip: usize) -> [u8; 6] {
    (0u16..)
        .map(|i| [0x02, 0x11, 0x22, 0x33, (i >> 8) as u8, i as u8])
        .filter(|m| client_bucket(None, m) < 128)
        .nth(skip)
        .unwrap()
}

fn message(
    mac: &[u8; 6],
    kind: MessageType,
    ciaddr: Ipv4Addr,
    requested: Option<Ipv4Addr>,
    server_id: Option<Ipv4Addr>,
) -> Message {
    let mut m = Message::new_with_id(
        0x1234_5678,
        ciaddr,
        Ipv4Addr::UNSPECIFIED,
        Ipv4Addr::UNSPECIFIED,
        RELAY,
        mac,
    );
    m.set_opcode(Opcode::BootRequest).set_htype(HType::Eth);
    m.opts_mut().insert(DhcpOption::MessageType(kind));
    if let Some(a) = requested {
        m.opts_mut().insert(DhcpOption::RequestedIpAddress(a));
    }
    if let Some(s) = server_id {
        m.opts_mut().insert(DhcpOption::ServerIdentifier(s));
    }
    m
}

fn bytes(m: &Message) -> Vec<u8> {
    m.to_vec().unwrap()
}

/// The reply's message type and yiaddr.
fn reply_of(out: &[u8]) -> (MessageType, Ipv4Addr) {
    let m = Message::decode(&mut Decoder::new(out)).unwrap();
    (m.opts().msg_type().unwrap(), m.yiaddr())
}

/// Waits until the primary has nothing outstanding with the partner (its records then stay
/// put while no client talks): its status idle and every record it queued acknowledged (or
/// refused). The status alone can predate the queueing of the last change, and the BNDACK that
/// then arrives changes the record under the next check.
async fn settle(handle: &Handle, store: &PeerStore) {
    for _ in 0..200 {
        let s = handle.status();
        let acked = store
            .memory()
            .snapshot()
            .values()
            .all(|r| r.queued.is_none() || r.partner_has_it || r.refused);
        if s.queued == 0 && s.unacked_sent == 0 && s.awaiting_commit == 0 && acked {
            tokio::time::sleep(Duration::from_millis(10)).await;
            return;
        }
        tokio::time::sleep(Duration::from_millis(25)).await;
    }
    panic!("the primary's updates were not acknowledged");
}

/// The `dhcp_request` fuzz target's properties, run here on stable Rust over its corpus and
/// every mutated datagram.
#[path = "../../fuzz/fuzz_targets/dhcp_checks.rs"]
mod dhcp_checks;

#[test]
fn the_fuzz_corpus_passes_the_fuzz_targets_checks() {
    let dir = std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/corpus/dhcp_request");
    let mut n = 0;
    for entry in std::fs::read_dir(dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        assert!(parse(&data).is_ok(), "a seed the parser refuses");
        dhcp_checks::check_dhcp_request(&data);
        n += 1;
    }
    assert!(n >= 5);
    // What the target once crashed on: refused now, and still no panic.
    let dir =
        std::path::Path::new(env!("CARGO_MANIFEST_DIR")).join("../fuzz/artifacts/dhcp_request");
    for entry in std::fs::read_dir(dir).unwrap() {
        let data = std::fs::read(entry.unwrap().path()).unwrap();
        dhcp_checks::check_dhcp_request(&data);
        n += 1;
    }
    assert!(n >= 6);
}

/// A tiny deterministic generator (xorshift) for the mutation loop.
struct Rng(u64);

impl Rng {
    fn next(&mut self) -> u64 {
        self.0 ^= self.0 << 13;
        self.0 ^= self.0 >> 7;
        self.0 ^= self.0 << 17;
        self.0
    }

    fn below(&mut self, n: usize) -> usize {
        (self.next() % n as u64) as usize
    }
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn bad_input_gets_no_answer_or_a_nak_and_changes_no_lease() {
    let (ph, pstore, sh, _sstore) = pair(60).await;
    let mut server = relay_server(&ph, &pstore);

    // A client A with a lease, the baseline.
    let a = primary_mac(0);
    let b = primary_mac(1);
    let unspec = Ipv4Addr::UNSPECIFIED;
    let discover = bytes(&message(&a, MessageType::Discover, unspec, None, None));
    let offer = server.handle_datagram(&discover).await.unwrap().unwrap();
    let (kind, addr) = reply_of(&offer.bytes);
    assert_eq!(kind, MessageType::Offer);
    // The relay's agent information (option 82: circuit id "port-7") comes back unchanged.
    let mut with_agent = discover.clone();
    let end = with_agent.len() - 1;
    with_agent.splice(end..end, [82, 8, 1, 6, b'p', b'o', b'r', b't', b'-', b'7']);
    let out = server.handle_datagram(&with_agent).await.unwrap().unwrap();
    let reply = Message::decode(&mut Decoder::new(&out.bytes)).unwrap();
    let sent = Message::decode(&mut Decoder::new(&with_agent)).unwrap();
    let agent = sent.opts().get(OptionCode::RelayAgentInformation);
    assert!(agent.is_some());
    assert_eq!(reply.opts().get(OptionCode::RelayAgentInformation), agent);
    assert_eq!(offer.to.ip(), RELAY, "relayed: the reply goes to giaddr");
    assert_eq!(offer.to.port(), 67);
    let select = message(
        &a,
        MessageType::Request,
        unspec,
        Some(addr),
        Some(SERVER_ID),
    );
    let ack = server
        .handle_datagram(&bytes(&select))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply_of(&ack.bytes), (MessageType::Ack, addr));
    settle(&ph, &pstore).await;
    let before = pstore.memory().snapshot();

    // Every case: (what, datagram, whether a NAK is the right answer).
    let mut cases: Vec<(String, Vec<u8>, bool)> = Vec::new();
    let renew = bytes(&message(&a, MessageType::Request, addr, None, None));
    for len in [0, 1, 100, 235, 236, 239] {
        cases.push((format!("truncated to {len}"), renew[..len].to_vec(), false));
    }
    let mut wrong_op = renew.clone();
    wrong_op[0] = 2;
    cases.push(("op BOOTREPLY".into(), wrong_op.clone(), false));
    wrong_op[0] = 7;
    cases.push(("op 7".into(), wrong_op, false));
    for hlen in [0u8, 17, 255] {
        let mut d = renew.clone();
        d[2] = hlen;
        cases.push((format!("hlen {hlen}"), d, false));
    }
    let mut cookie = renew.clone();
    cookie[236] = 0;
    cases.push(("no magic cookie (BOOTP)".into(), cookie, false));
    // The option cases ride on B renewing A's address: a message that got through would be
    // NAKed, never ACKed.
    let b_renew = bytes(&message(&b, MessageType::Request, addr, None, None));
    let header = &b_renew[..240];
    let with_options = |opts: &[u8]| [header, opts].concat();
    for (what, opts) in [
        ("no options at all", vec![255]),
        ("message type of length 0", vec![53, 0, 255]),
        ("message type running past the end", vec![53, 5, 3]),
        (
            "an option length past the end",
            vec![53, 1, 3, 50, 200, 10, 88],
        ),
        (
            "requested address of 3 bytes",
            vec![53, 1, 3, 50, 3, 10, 88, 0, 255],
        ),
        ("message type 0", vec![53, 1, 0, 255]),
        ("unknown message type 200", vec![53, 1, 200, 255]),
        ("DHCPOFFER from a client", vec![53, 1, 2, 255]),
        ("DHCPACK from a client", vec![53, 1, 5, 255]),
        ("DHCPNAK from a client", vec![53, 1, 6, 255]),
        ("DHCPLEASEQUERY", vec![53, 1, 10, 255]),
        // Lengths dhcproto asserts (a debug build panicked: the `dhcp_request` fuzz target).
        ("rapid commit with data", vec![53, 1, 3, 80, 1, 0, 255]),
        ("client FQDN of 2 bytes", vec![53, 1, 3, 81, 2, 0, 0, 255]),
        ("client NDI of 2 bytes", vec![53, 1, 3, 94, 2, 1, 2, 255]),
        (
            "bulk leasequery status of 0 bytes",
            vec![53, 1, 3, 151, 0, 255],
        ),
        (
            "bulk leasequery base time of 2 bytes",
            vec![53, 1, 3, 152, 2, 0, 0, 255],
        ),
        ("lease time of 2 bytes", vec![53, 1, 3, 51, 2, 0, 9, 255]),
        // Consecutive pieces of one option are one option (RFC 3396): 3 + 3 bytes of client
        // NDI are 6 (a debug build panicked in dhcproto: the `dhcp_request` fuzz target).
        (
            "client NDI in two pieces of 3 bytes",
            vec![53, 1, 3, 94, 3, 1, 2, 0, 94, 3, 1, 2, 0, 255],
        ),
        ("message type in two pieces", vec![53, 1, 3, 53, 1, 3, 255]),
    ] {
        cases.push((what.into(), with_options(&opts), false));
    }
    // Oversized but well-formed: an option of 255 bytes of garbage, a hostname of invalid
    // UTF-8. Read past, and the request judged on what it asks: B may not renew A's lease.
    let mut big = vec![53, 1, 3, 43, 255];
    big.extend([0xee; 255]);
    big.extend([12, 4, 0xff, 0xfe, 0xfd, 0xfc, 255]);
    cases.push((
        "oversized and invalid options".into(),
        with_options(&big),
        true,
    ));
    // Well-formed, but not the client's to have.
    let outside = Ipv4Addr::new(192, 0, 2, 1);
    let m = message(&b, MessageType::Request, unspec, Some(outside), None);
    cases.push(("INIT-REBOOT outside the pool".into(), bytes(&m), true));
    let m = message(
        &b,
        MessageType::Request,
        unspec,
        Some(outside),
        Some(SERVER_ID),
    );
    cases.push(("SELECTING outside the pool".into(), bytes(&m), true));
    let m = message(&b, MessageType::Request, unspec, Some(addr), None);
    cases.push(("INIT-REBOOT for A's lease by B".into(), bytes(&m), true));
    let m = message(&b, MessageType::Request, addr, None, None);
    cases.push(("RENEWING A's lease by B".into(), bytes(&m), true));
    let m = message(&b, MessageType::Release, addr, None, None);
    cases.push(("RELEASE of A's lease by B".into(), bytes(&m), false));
    let m = message(&b, MessageType::Decline, unspec, Some(addr), None);
    cases.push(("DECLINE of A's lease by B".into(), bytes(&m), false));
    let m = message(&a, MessageType::Release, outside, None, None);
    cases.push(("RELEASE outside the pool".into(), bytes(&m), false));
    let m = message(&b, MessageType::Request, unspec, None, None);
    cases.push(("REQUEST without any address".into(), bytes(&m), false));
    let m = message(
        &b,
        MessageType::Request,
        unspec,
        Some(addr),
        Some(Ipv4Addr::new(127, 0, 0, 3)),
    );
    cases.push(("SELECTING another server".into(), bytes(&m), false));

    for (what, datagram, nak) in &cases {
        let got = server.handle_datagram(datagram).await;
        match got {
            Ok(Some(out)) => {
                assert!(*nak, "{what}: answered {:?}", reply_of(&out.bytes));
                assert_eq!(reply_of(&out.bytes).0, MessageType::Nak, "{what}");
                assert_eq!(out.to.ip(), RELAY, "{what}: a relayed NAK goes to giaddr");
            }
            Ok(None) => assert!(!nak, "{what}: no NAK"),
            Err(e) => {
                assert!(!nak, "{what}: refused ({e}) instead of a NAK");
                eprintln!("{what}: {e}");
            }
        }
        assert!(
            pstore.memory().snapshot() == before,
            "{what}: a lease changed"
        );
    }
    // The typed reasons name the fault.
    assert!(matches!(
        server.handle_datagram(&renew[..10]).await,
        Err(BadRequest::Truncated(10))
    ));

    // Random mutations of good messages: never a panic, and no lease changes but by an ACK or
    // by what still parses as A's RELEASE or DECLINE (after each legitimate change the
    // baseline is taken again once the partner acknowledged it).
    let mut rng = Rng(0x9e37_79b9_7f4a_7c15);
    let seeds = [
        discover.clone(),
        bytes(&select),
        renew.clone(),
        b_renew.clone(),
    ];
    let (mut answered, mut refused_n, mut changed) = (0, 0, 0);
    let mut base = pstore.memory().snapshot();
    for _ in 0..MUTATIONS {
        let mut d = seeds[rng.below(seeds.len())].clone();
        for _ in 0..1 + rng.below(8) {
            match rng.below(4) {
                0 => d.truncate(rng.below(d.len() + 1)),
                1 => d.extend((0..rng.below(300)).map(|_| rng.next() as u8)),
                _ if !d.is_empty() => {
                    let i = rng.below(d.len());
                    d[i] = rng.next() as u8;
                }
                _ => {}
            }
        }
        dhcp_checks::check_dhcp_request(&d);
        let kind = parse(&d).ok().map(|r| r.kind);
        let result = server.handle_datagram(&d).await;
        let acked = match &result {
            Ok(Some(out)) => {
                answered += 1;
                reply_of(&out.bytes).0 == MessageType::Ack
            }
            Ok(None) => false,
            Err(_) => {
                refused_n += 1;
                false
            }
        };
        if pstore.memory().snapshot() != base {
            assert!(
                acked || matches!(kind, Some(ClientKind::Release | ClientKind::Decline)),
                "a lease changed by {kind:?} answered {result:?}"
            );
            changed += 1;
            settle(&ph, &pstore).await;
            base = pstore.memory().snapshot();
        }
    }
    eprintln!(
        "{MUTATIONS} mutated datagrams: {refused_n} refused, {answered} answered, {changed} \
         legitimate lease changes, no panic"
    );
    // The server still serves A's renewal with the same address.
    let again = server.handle_datagram(&renew).await.unwrap().unwrap();
    assert_eq!(reply_of(&again.bytes), (MessageType::Ack, addr));
    ph.abort().await;
    sh.abort().await;
}

/// A direct client (no relay): replies are broadcast to port 68 until it has an address, and
/// go to ciaddr after. Its lease (the MCLT, 3 s, for a new client) ends: the primary records
/// EXPIRED, the secondary acknowledges it, both hold the address FREE, and it is offered to
/// the next client.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_direct_clients_lease_expires_and_its_address_is_reused() {
    let (ph, pstore, sh, sstore) = pair(3).await;
    let mut server = relay_server(&ph, &pstore);
    let unspec = Ipv4Addr::UNSPECIFIED;
    let direct = |mut m: Message| {
        m.set_giaddr(unspec);
        bytes(&m)
    };
    let a = primary_mac(0);
    let offer = server
        .handle_datagram(&direct(message(
            &a,
            MessageType::Discover,
            unspec,
            None,
            None,
        )))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(offer.to, "255.255.255.255:68".parse().unwrap());
    let (_, addr) = reply_of(&offer.bytes);
    let select = message(
        &a,
        MessageType::Request,
        unspec,
        Some(addr),
        Some(SERVER_ID),
    );
    let ack = server
        .handle_datagram(&direct(select))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply_of(&ack.bytes), (MessageType::Ack, addr));
    let lease = Message::decode(&mut Decoder::new(&ack.bytes)).unwrap();
    let granted = match lease.opts().get(OptionCode::AddressLeaseTime) {
        Some(DhcpOption::AddressLeaseTime(t)) => *t,
        other => panic!("{other:?}"),
    };
    assert_eq!(
        granted, 3,
        "a new client's lease is at most the MCLT (§5.2.1)"
    );
    let inform = direct(message(&a, MessageType::Inform, addr, None, None));
    let out = server.handle_datagram(&inform).await.unwrap().unwrap();
    assert_eq!(out.to, std::net::SocketAddr::from((addr, 68)));
    settle(&ph, &pstore).await;
    assert_eq!(server.expire().await, 0, "the lease runs");

    tokio::time::sleep(Duration::from_millis(u64::from(granted) * 1000 + 1100)).await;
    assert_eq!(server.expire().await, 1, "the lease ended");
    // EXPIRED, or FREE already if the partner's BNDACK came back that fast (seen under load).
    let status = pstore.memory().get(addr).unwrap().local.status;
    assert!(
        matches!(status, BindingStatus::Expired | BindingStatus::Free),
        "{status:?}"
    );
    settle(&ph, &pstore).await;
    // The partner's acknowledgement frees it on both sides (§5.11).
    assert_eq!(
        pstore.memory().get(addr).unwrap().local.status,
        BindingStatus::Free
    );
    assert_eq!(
        sstore.memory().get(addr).unwrap().local.status,
        BindingStatus::Free
    );
    let b = primary_mac(1);
    let offer = server
        .handle_datagram(&direct(message(
            &b,
            MessageType::Discover,
            unspec,
            None,
            None,
        )))
        .await
        .unwrap()
        .unwrap();
    assert_eq!(reply_of(&offer.bytes), (MessageType::Offer, addr), "reused");
    ph.abort().await;
    sh.abort().await;
}

/// The server loop's way of recording (issue 12): the REQUESTs of one burst go to the failover
/// peer as one batch and are ACKed in order once durable; the expiry of leases runs beside the
/// clients' messages, its addresses held back (not offered, a renewal silent, not ended twice)
/// until it is recorded.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn a_burst_is_recorded_as_one_batch_and_expiry_holds_its_addresses_until_durable() {
    let (ph, pstore, sh, _sstore) = pair(3).await;
    let mut server = relay_server(&ph, &pstore);
    let unspec = Ipv4Addr::UNSPECIFIED;
    let macs: Vec<[u8; 6]> = (0..3).map(primary_mac).collect();
    let mut requests = Vec::new();
    for mac in &macs {
        let offer = server
            .handle_datagram(&bytes(&message(
                mac,
                MessageType::Discover,
                unspec,
                None,
                None,
            )))
            .await
            .unwrap()
            .unwrap();
        let (kind, addr) = reply_of(&offer.bytes);
        assert_eq!(kind, MessageType::Offer);
        requests.push((
            addr,
            bytes(&message(
                mac,
                MessageType::Request,
                unspec,
                Some(addr),
                Some(SERVER_ID),
            )),
        ));
    }
    // The three REQUESTs decided one after the other, recorded together.
    let batch: Vec<_> = requests
        .iter()
        .map(|(_, r)| match server.begin(r).unwrap() {
            Handled::Record(rec) => rec,
            other => panic!("{other:?}"),
        })
        .collect();
    assert_eq!(server.recording(), 3);
    let done = server.record_later(batch).await;
    let acks = server.recorded(done);
    let leased: Vec<Ipv4Addr> = requests.iter().map(|(a, _)| *a).collect();
    assert_eq!(
        acks.iter().map(|o| reply_of(&o.bytes)).collect::<Vec<_>>(),
        leased
            .iter()
            .map(|a| (MessageType::Ack, *a))
            .collect::<Vec<_>>(),
        "one ACK each, in order"
    );
    assert_eq!((server.counters.acks, server.recording()), (3, 0));
    for a in &leased {
        assert_eq!(
            pstore.memory().get(*a).unwrap().local.status,
            BindingStatus::Active,
            "durable before its ACK"
        );
    }
    settle(&ph, &pstore).await;

    // The MCLT-long leases (3 s) end.
    tokio::time::sleep(Duration::from_millis(4100)).await;
    let ended = server.begin_expiry().expect("three leases ended");
    assert_eq!(ended.len(), 3);
    assert_eq!(server.recording(), 3);
    assert!(server.begin_expiry().is_none(), "not ended twice meanwhile");
    // Meanwhile: the first client's renewal is not answered, a new client is offered none of
    // the three.
    let renew = bytes(&message(
        &macs[0],
        MessageType::Request,
        leased[0],
        None,
        None,
    ));
    let silent = server.counters.silent;
    assert!(matches!(server.begin(&renew), Ok(Handled::Reply(None))));
    assert_eq!(server.counters.silent, silent + 1);
    let newcomer = primary_mac(3);
    let offer = server
        .handle_datagram(&bytes(&message(
            &newcomer,
            MessageType::Discover,
            unspec,
            None,
            None,
        )))
        .await
        .unwrap()
        .unwrap();
    let (kind, offered) = reply_of(&offer.bytes);
    assert_eq!(kind, MessageType::Offer);
    assert!(!leased.contains(&offered), "{offered} is being expired");
    // Recorded: counted, nothing sent, the addresses released to the rules again.
    let done = server.record_later(ended).await;
    assert!(server.recorded(done).is_empty());
    assert_eq!((server.counters.expired, server.recording()), (3, 0));
    for a in &leased {
        let status = pstore.memory().get(*a).unwrap().local.status;
        assert!(
            matches!(status, BindingStatus::Expired | BindingStatus::Free),
            "{a}: {status:?}"
        );
    }
    ph.abort().await;
    sh.abort().await;
}

/// The command line: DHCP options, the failover options passed to the peer's parser
/// (`--peer-listen` as its `--listen`), and the typed errors.
/// Two pools on two networks: a relayed client gets an address of the pool on its relay's
/// network with that pool's subnet mask and router; a relay on no pool's network is not
/// answered; a request for the other network's address is NAKed; the partner records leases
/// of both pools.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_pools_each_client_is_served_from_the_pool_of_its_network() {
    // Each pool is balanced on its own: the primary keeps addresses of both (counted
    // together, the partner would get all of the higher, smaller pool).
    let pools = [
        "--pool",
        "10.88.0.10-10.88.0.40,subnet=24,router=10.88.0.1",
        "--pool",
        "10.99.0.10-10.99.0.14,subnet=255.255.255.0,router=10.99.0.1",
    ];
    let (ph, pstore, sh, sstore) = pair_with(30, &pools).await;
    let o = options_with("primary", free_port(), free_port(), 30, &pools);
    assert_eq!(o.pools.len(), 2);
    let mut server = relay_server(&ph, &pstore).with_pools(o.pools.clone());
    let via = |mac: &[u8; 6], kind, requested, server_id, giaddr: [u8; 4]| {
        let mut m = message(mac, kind, Ipv4Addr::UNSPECIFIED, requested, server_id);
        m.set_giaddr(Ipv4Addr::from(giaddr));
        bytes(&m)
    };
    let options_of = |out: &[u8]| {
        let m = Message::decode(&mut Decoder::new(out)).unwrap();
        let mask = match m.opts().get(OptionCode::SubnetMask) {
            Some(DhcpOption::SubnetMask(a)) => Some(*a),
            _ => None,
        };
        let router = match m.opts().get(OptionCode::Router) {
            Some(DhcpOption::Router(r)) => r.first().copied(),
            _ => None,
        };
        (mask, router)
    };
    let mut leased = Vec::new();
    for (k, (relay, net)) in [([10, 88, 0, 1], [10, 88, 0]), ([10, 99, 0, 1], [10, 99, 0])]
        .into_iter()
        .enumerate()
    {
        let mac = primary_mac(k);
        let offer = server
            .handle_datagram(&via(&mac, MessageType::Discover, None, None, relay))
            .await
            .unwrap()
            .unwrap_or_else(|| panic!("an OFFER: {:?}", server.counters));
        let (kind, yiaddr) = reply_of(&offer.bytes);
        assert_eq!(kind, MessageType::Offer);
        assert_eq!(yiaddr.octets()[..3], net, "from the pool of {relay:?}");
        assert_eq!(
            options_of(&offer.bytes),
            (
                Some(Ipv4Addr::new(255, 255, 255, 0)),
                Some(Ipv4Addr::new(net[0], net[1], net[2], 1))
            )
        );
        // The other network's relay asking for this address: NAKed.
        let other = if k == 0 {
            [10, 99, 0, 1]
        } else {
            [10, 88, 0, 1]
        };
        let nak = server
            .handle_datagram(&via(
                &mac,
                MessageType::Request,
                Some(yiaddr),
                Some(SERVER_ID),
                other,
            ))
            .await
            .unwrap()
            .expect("a NAK");
        assert_eq!(reply_of(&nak.bytes).0, MessageType::Nak);
        let ack = server
            .handle_datagram(&via(
                &mac,
                MessageType::Request,
                Some(yiaddr),
                Some(SERVER_ID),
                relay,
            ))
            .await
            .unwrap()
            .expect("an ACK");
        assert_eq!(reply_of(&ack.bytes), (MessageType::Ack, yiaddr));
        leased.push(yiaddr);
    }
    // A relay on no pool's network.
    let none = server
        .handle_datagram(&via(
            &primary_mac(2),
            MessageType::Discover,
            None,
            None,
            [10, 77, 0, 1],
        ))
        .await
        .unwrap();
    assert!(none.is_none());
    settle(&ph, &pstore).await;
    // Balanced per pool: both servers hold addresses of each (5 in the small pool: the
    // primary keeps 3 available, less the one leased above, the secondary 2).
    for (who, store, status) in [
        ("primary", &pstore, BindingStatus::Free),
        ("secondary", &sstore, BindingStatus::Backup),
    ] {
        for net in [[10, 88, 0], [10, 99, 0]] {
            let n = (10..=40u8)
                .filter_map(|h| store.memory().get(Ipv4Addr::new(net[0], net[1], net[2], h)))
                .filter(|l| l.local.status == status)
                .count();
            assert!(n > 0, "{who} holds no {status:?} address of {net:?}");
        }
    }
    for a in leased {
        for (who, store) in [("primary", &pstore), ("secondary", &sstore)] {
            let l = store.memory().get(a).unwrap();
            assert_eq!(l.local.status, BindingStatus::Active, "{who} {a}");
        }
    }
    drop(sh);
}

#[test]
fn command_line() {
    let parse = |extra: &[&str]| {
        let mut args: Vec<String> = [
            "--pool",
            "10.0.0.10-10.0.0.20",
            "--plaintext",
            "--role",
            "primary",
            "--peer-listen",
            "127.0.0.1:6647",
            "--partner",
            "127.0.0.2:6647",
            "--name",
            "dhcp",
        ]
        .iter()
        .map(|s| s.to_string())
        .collect();
        args.extend(extra.iter().map(|s| s.to_string()));
        parse_args(args).map_err(|e| e.to_string())
    };
    let Ok(Parsed::Run(o)) = parse(&[
        "--listen",
        "192.0.2.1:67",
        "--subnet",
        "24",
        "--router",
        "192.0.2.254",
        "--lb-max-secs",
        "5",
        "--auto-partner-down",
        "600",
        "--mclt",
        "120",
    ]) else {
        panic!()
    };
    assert_eq!(
        o.server_id,
        Ipv4Addr::new(192, 0, 2, 1),
        "the --listen address"
    );
    assert_eq!(o.subnet_mask, Some(Ipv4Addr::new(255, 255, 255, 0)));
    assert_eq!(o.router, Some(Ipv4Addr::new(192, 0, 2, 254)));
    assert_eq!((o.lease_time, o.status_every), (3600, 10));
    assert_eq!((o.ports.client, o.ports.relay), (68, 67));
    assert_eq!(o.peer.listen, "127.0.0.1:6647".parse().unwrap());
    let c = o.config();
    assert_eq!(c.load_balance_max_seconds, 5);
    assert_eq!((c.auto_partner_down, c.mclt), (Some(600), 120));
    assert_eq!(parse(&["--help"]), Ok(Parsed::Help));
    // A second pool with its own subnet and router; the first takes --subnet and --router.
    let Ok(Parsed::Run(two)) = parse(&[
        "--listen",
        "192.0.2.1:67",
        "--subnet",
        "24",
        "--router",
        "10.0.0.1",
        "--pool",
        "10.0.1.10-10.0.1.20,subnet=255.255.255.0,router=10.0.1.1",
    ]) else {
        panic!()
    };
    assert_eq!(two.peer.pools.len(), 2);
    assert_eq!(
        two.pools
            .iter()
            .map(|p| (p.first, p.subnet_mask, p.router))
            .collect::<Vec<_>>(),
        [
            (
                Ipv4Addr::new(10, 0, 0, 10),
                Some(Ipv4Addr::new(255, 255, 255, 0)),
                Some(Ipv4Addr::new(10, 0, 0, 1))
            ),
            (
                Ipv4Addr::new(10, 0, 1, 10),
                Some(Ipv4Addr::new(255, 255, 255, 0)),
                Some(Ipv4Addr::new(10, 0, 1, 1))
            ),
        ]
    );
    for (extra, needle) in [
        (
            &["--subnet", "255.0.255.0", "--listen", "192.0.2.1:67"][..],
            "--subnet",
        ),
        (
            &["--subnet", "33", "--listen", "192.0.2.1:67"][..],
            "--subnet",
        ),
        (&[][..], "--server-id"),
        (
            &["--listen", "192.0.2.1:67", "--lease-time", "0"][..],
            "--lease-time",
        ),
        (&["--listen", "192.0.2.1:67", "--bogus", "1"][..], "--bogus"),
        (
            &["--listen", "192.0.2.1:67", "--pool", "10.0.1.10-10.0.1.20"][..],
            "needs a subnet",
        ),
        (
            &[
                "--listen",
                "192.0.2.1:67",
                "--pool",
                "10.0.1.10-10.0.1.20,gateway=1",
            ][..],
            "expected subnet=",
        ),
        (
            &[
                "--listen",
                "192.0.2.1:67",
                "--pool",
                "10.0.0.15-10.0.0.30,subnet=24",
            ][..],
            "overlap",
        ),
    ] {
        let e = parse(extra).unwrap_err();
        assert!(e.contains(needle), "{extra:?}: {e}");
    }
    let e = parse_args(["--role", "primary"].map(String::from)).unwrap_err();
    assert!(e.to_string().contains("--pool"), "{e}");
}
