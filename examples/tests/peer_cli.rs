//! The `peer` program (`cargo run --example peer`): its command line, and two instances run
//! in-process on loopback ports until both are NORMAL.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::PathBuf;
use std::time::Duration;

use failover_examples::console::{Captured, Console};
use failover_examples::peer::{Parsed, PeerOptions, parse_args, parse_pool, run};
use failover_fsm::{Role, ServerState};
use failover_tokio::{FileStore, Handle, Storage};
use tokio::sync::{mpsc, oneshot};

fn parse(args: &[&str]) -> Result<Parsed, String> {
    parse_args(args.iter().copied()).map_err(|e| e.to_string())
}

fn options(args: &[&str]) -> PeerOptions {
    match parse(args) {
        Ok(Parsed::Run(o)) => o,
        other => panic!("{args:?}: {other:?}"),
    }
}

const REQUIRED: [&str; 9] = [
    "--role",
    "secondary",
    "--listen",
    "127.0.0.1:6647",
    "--partner",
    "127.0.0.2:647",
    "--name",
    "dhcp-failover",
    "--plaintext",
];

#[test]
fn required_arguments_and_defaults() {
    let o = options(&REQUIRED);
    assert_eq!(o.role, Role::Secondary);
    assert_eq!(o.listen, "127.0.0.1:6647".parse::<SocketAddr>().unwrap());
    assert_eq!(o.partner, "127.0.0.2:647".parse::<SocketAddr>().unwrap());
    assert_eq!(o.name, "dhcp-failover");
    assert_eq!((o.mclt, o.split, o.mud, o.mrd), (3600, 128, 10, 20));
    assert_eq!((o.bind, o.store.clone()), (None, None));
    assert!(o.pools.is_empty());
    assert_eq!(
        (o.status_every, o.auto_partner_down, o.quiet),
        (None, None, false)
    );
    // The engine configuration follows.
    let c = o.config();
    assert_eq!(c.relationship_name.as_slice(), b"dhcp-failover");
    assert_eq!(
        (c.mclt, c.max_unacked_bndupd, c.receive_timer),
        (3600, 10, 20)
    );

    // Each flag with its value (the link's --plaintext, last, has its own test).
    for i in (0..REQUIRED.len() - 1).step_by(2) {
        let mut args = REQUIRED.to_vec();
        let flag = args.remove(i);
        args.remove(i);
        let e = parse(&args).unwrap_err();
        assert!(e.contains(flag) && e.contains("required"), "{e}");
    }
    assert_eq!(parse(&["--help"]), Ok(Parsed::Help));
    assert_eq!(parse(&["-h"]), Ok(Parsed::Help));
}

#[test]
fn every_option() {
    let mut args = REQUIRED.to_vec();
    args[1] = "primary";
    args.extend([
        "--bind",
        "127.0.0.1",
        "--mclt=60",
        "--split",
        "256",
        "--mud",
        "128",
        "--mrd",
        "3",
        "--store",
        "/tmp/leases.log",
        "--pool",
        "10.0.0.10-10.0.0.250",
        "--status-every",
        "30",
        "--auto-partner-down",
        "90",
        "--secret",
        "/etc/failover.secret",
        "--quiet",
    ]);
    let o = options(&args);
    assert_eq!(o.secret, Some(PathBuf::from("/etc/failover.secret")));
    assert_eq!(o.role, Role::Primary);
    assert_eq!(o.bind, Some("127.0.0.1".parse().unwrap()));
    assert_eq!((o.mclt, o.split, o.mud, o.mrd), (60, 256, 128, 3));
    assert_eq!(o.store, Some(PathBuf::from("/tmp/leases.log")));
    assert_eq!(
        o.pools,
        [(Ipv4Addr::new(10, 0, 0, 10), Ipv4Addr::new(10, 0, 0, 250))]
    );
    assert_eq!(o.status_every, Some(30));
    let mut two = REQUIRED.to_vec();
    two.extend([
        "--pool",
        "10.0.1.10-10.0.1.20",
        "--pool",
        "10.0.0.10-10.0.0.20",
    ]);
    assert_eq!(options(&two).pools.len(), 2);
    assert_eq!(o.auto_partner_down, Some(90));
    assert!(o.quiet);
    let c = o.config();
    assert_eq!(c.auto_partner_down, Some(90));
    assert_eq!(c.hba, failover_fsm::Hba::split(256));
    // --status-every 0 turns the periodic line off.
    let mut args = REQUIRED.to_vec();
    args.extend(["--status-every", "0"]);
    assert_eq!(options(&args).status_every, None);
    assert_eq!(options(&REQUIRED).secret, None);
}

#[test]
fn the_link_is_chosen_explicitly() {
    use failover_examples::peer::{Link, TlsFiles};
    let without = &REQUIRED[..8];
    assert!(parse(without).unwrap_err().contains("choose the link"));
    assert_eq!(options(&REQUIRED).link, Link::Plaintext);
    let tls = [
        "--tls-cert",
        "c.pem",
        "--tls-key",
        "k.pem",
        "--tls-ca",
        "ca.pem",
        "--tls-partner-name",
        "primary.test",
    ];
    let mut args = without.to_vec();
    args.extend(tls);
    assert_eq!(
        options(&args).link,
        Link::Tls(Box::new(TlsFiles {
            cert: "c.pem".into(),
            key: "k.pem".into(),
            ca: "ca.pem".into(),
            partner_name: "primary.test".into()
        }))
    );
    args.push("--plaintext");
    assert!(parse(&args).unwrap_err().contains("exclude"));
    let mut args = without.to_vec();
    args.extend(&tls[..6]);
    assert!(parse(&args).unwrap_err().contains("all of"));
}

#[test]
fn bad_arguments_are_refused_with_a_reason() {
    let cases: [(&[&str], &str); 14] = [
        (&["--role", "tertiary"], "--role tertiary"),
        (&["--listen", "localhost"], "--listen localhost"),
        (&["--mclt"], "needs a value"),
        (&["--mud", "0"], "--mud"),
        (&["--mud", "513"], "--mud"), // one above failover_tokio::MAX_UNACKED_BNDUPD
        (&["--mrd", "2"], "--mrd"),
        (&["--split", "257"], "--split"),
        (&["--pool", "10.0.0.9"], "FIRST-LAST"),
        (&["--pool", "10.0.0.9-10.0.0.1"], "before"),
        (
            &[
                "--pool",
                "10.0.0.10-10.0.0.20",
                "--pool",
                "10.0.0.20-10.0.0.30",
            ],
            "overlap",
        ),
        (
            &[
                "--pool",
                "10.0.0.0-10.9.255.255",
                "--pool",
                "10.16.0.0-10.25.255.255",
            ],
            "more than",
        ),
        (&["--name", ""], "--name"),
        (&["--what"], "unknown option `--what`"),
        (&["extra"], "unexpected argument `extra`"),
    ];
    for (extra, want) in cases {
        let mut args = REQUIRED.to_vec();
        args.extend_from_slice(extra);
        let e = parse(&args).unwrap_err();
        assert!(e.contains(want), "{extra:?}: {e}");
    }
    // A primary needs an MCLT; the same address both ends is a mistake.
    let mut args = REQUIRED.to_vec();
    args[1] = "primary";
    args.extend(["--mclt", "0"]);
    assert!(parse(&args).unwrap_err().contains("--mclt"));
    let mut args = REQUIRED.to_vec();
    args[5] = "127.0.0.1:6647";
    assert!(parse(&args).unwrap_err().contains("same"));
    assert_eq!(
        parse_pool(" 192.0.2.1 - 192.0.2.1 "),
        Ok((Ipv4Addr::new(192, 0, 2, 1), Ipv4Addr::new(192, 0, 2, 1)))
    );
    assert!(parse_pool("10.0.0.0-10.255.255.255").is_err());
}

fn free_port() -> u16 {
    TcpListener::bind("127.0.0.1:0")
        .unwrap()
        .local_addr()
        .unwrap()
        .port()
}

struct Running {
    handle: Handle,
    stop: oneshot::Sender<()>,
    status: mpsc::Sender<()>,
    out: Captured,
    done: tokio::task::JoinHandle<std::io::Result<()>>,
}

async fn spawn_peer(args: Vec<String>) -> Running {
    let opts = match parse_args(args) {
        Ok(Parsed::Run(o)) => o,
        other => panic!("{other:?}"),
    };
    let (console, out) = Console::capture(false);
    let (stop_tx, stop_rx) = oneshot::channel::<()>();
    let (status_tx, status_rx) = mpsc::channel(4);
    let (handle_tx, handle_rx) = oneshot::channel();
    let done = tokio::spawn(async move {
        let stop = async {
            let _ = stop_rx.await;
        };
        run(&opts, &console, stop, status_rx, move |h| {
            let _ = handle_tx.send(h.clone());
        })
        .await
    });
    let handle = handle_rx.await.expect("the peer starts");
    Running {
        handle,
        stop: stop_tx,
        status: status_tx,
        out,
        done,
    }
}

async fn within<T>(secs: u64, f: impl std::future::Future<Output = T>) -> T {
    tokio::time::timeout(Duration::from_secs(secs), f)
        .await
        .expect("timed out")
}

async fn wait_for_text(out: &Captured, needle: &str) {
    within(10, async {
        while !out.text().contains(needle) {
            tokio::time::sleep(Duration::from_millis(20)).await;
        }
    })
    .await;
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_reach_normal_and_stop_gracefully() {
    let (pp, sp) = (free_port(), free_port());
    let log = std::env::temp_dir().join(format!(
        "failover-peer-test-{}-{pp}.log",
        std::process::id()
    ));
    let _ = std::fs::remove_file(&log);
    let args = |v: &[&str]| v.iter().map(|s| s.to_string()).collect::<Vec<_>>();
    let p_listen = format!("127.0.0.1:{pp}");
    let s_listen = format!("127.0.0.1:{sp}");
    let log_arg = log.to_string_lossy().into_owned();
    // The primary knows its pool and keeps a file; the secondary learns the addresses.
    let primary = spawn_peer(args(&[
        "--plaintext",
        "--role",
        "primary",
        "--listen",
        &p_listen,
        "--partner",
        &s_listen,
        "--name",
        "peer-test",
        "--mclt",
        "5",
        "--mrd",
        "6",
        "--pool",
        "10.9.0.1-10.9.0.20",
        "--store",
        &log_arg,
    ]))
    .await;
    tokio::time::sleep(Duration::from_millis(25)).await;
    let secondary = spawn_peer(args(&[
        "--plaintext",
        "--role",
        "secondary",
        "--listen",
        &s_listen,
        "--partner",
        &p_listen,
        "--name",
        "peer-test",
        "--mrd",
        "6",
        "--status-every",
        "1",
    ]))
    .await;

    within(20, primary.handle.wait_for_state(ServerState::Normal))
        .await
        .unwrap();
    within(20, secondary.handle.wait_for_state(ServerState::Normal))
        .await
        .unwrap();
    assert_eq!(secondary.handle.status().mclt, 5, "learnt from the primary");

    // Pool balancing gave the secondary half the pool, which it learnt address by address
    // (the primary's FREE addresses, never used, are no record and are not sent); the
    // periodic status line says so.
    wait_for_text(&secondary.out, "10 addresses: 0 ACTIVE, 0 FREE, 10 BACKUP").await;
    primary.status.send(()).await.unwrap();
    wait_for_text(&primary.out, "status: NORMAL").await;
    wait_for_text(&primary.out, "20 addresses: 0 ACTIVE, 10 FREE, 10 BACKUP").await;
    let ptext = primary.out.text();
    assert!(ptext.contains("STARTUP → RECOVER"), "{ptext}");
    assert!(ptext.contains("RECOVER-DONE → NORMAL"), "{ptext}");
    assert!(ptext.contains("10.9.0.20 BACKUP acknowledged"), "{ptext}");
    assert!(
        ptext.contains(&format!("store: file {}", log.display())),
        "{ptext}"
    );
    let stext = secondary.out.text();
    assert!(
        stext.contains("MCLT agreed with the partner: 5 s"),
        "{stext}"
    );
    assert!(stext.contains("← 10.9.0.20 BACKUP"), "{stext}");
    assert!(
        stext.contains("learning addresses from the partner"),
        "{stext}"
    );
    assert!(stext.contains("· plain TCP"), "{stext}");

    // SIGINT on the primary: SHUTDOWN, the secondary takes over.
    primary.stop.send(()).unwrap();
    within(20, primary.done).await.unwrap().unwrap();
    let ptext = primary.out.text();
    assert!(ptext.contains("NORMAL → SHUTDOWN"), "{ptext}");
    assert!(ptext.trim_end().ends_with("stopped"), "{ptext}");
    within(
        10,
        secondary.handle.wait_for_state(ServerState::PartnerDown),
    )
    .await
    .unwrap();
    secondary.stop.send(()).unwrap();
    within(20, secondary.done).await.unwrap().unwrap();

    // The file store has the state and the balanced pool for the next start.
    let store = FileStore::open(&log, Role::Primary, Ipv4Addr::new(10, 9, 0, 1), 20).unwrap();
    assert!(store.load_state().is_some());
    assert_eq!(
        store.memory().count(failover_fsm::BindingStatus::Backup),
        10
    );
    assert_eq!(store.memory().count(failover_fsm::BindingStatus::Free), 10);
    drop(store);
    let _ = std::fs::remove_file(&log);
}

/// PEM files for a pair: the CA, and for `who` its certificate and key, naming `who`.
fn pem_files(dir: &std::path::Path) -> PathBuf {
    use rcgen::{CertificateParams, CertifiedIssuer, ExtendedKeyUsagePurpose, IsCa, KeyPair};
    std::fs::create_dir_all(dir).unwrap();
    let mut ca = CertificateParams::new(Vec::<String>::new()).unwrap();
    ca.is_ca = IsCa::Ca(rcgen::BasicConstraints::Unconstrained);
    let ca = CertifiedIssuer::self_signed(ca, KeyPair::generate().unwrap()).unwrap();
    std::fs::write(dir.join("ca.pem"), ca.pem()).unwrap();
    for who in ["primary.test", "secondary.test"] {
        let mut p = CertificateParams::new(vec![who.to_string()]).unwrap();
        p.extended_key_usages = vec![
            ExtendedKeyUsagePurpose::ServerAuth,
            ExtendedKeyUsagePurpose::ClientAuth,
        ];
        let key = KeyPair::generate().unwrap();
        let cert = p.signed_by(&key, &ca).unwrap();
        std::fs::write(dir.join(format!("{who}.pem")), cert.pem()).unwrap();
        std::fs::write(dir.join(format!("{who}.key")), key.serialize_pem()).unwrap();
    }
    dir.to_path_buf()
}

#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_pair_over_tls() {
    let (pp, sp) = (free_port(), free_port());
    let dir = pem_files(
        &std::env::temp_dir().join(format!("failover-peer-tls-{}-{pp}", std::process::id())),
    );
    let file = |f: &str| dir.join(f).to_string_lossy().into_owned();
    let peer = |role: &str, me: &str, partner: &str, listen: u16, to: u16| {
        [
            "--role".to_string(),
            role.into(),
            "--listen".into(),
            format!("127.0.0.1:{listen}"),
            "--partner".into(),
            format!("127.0.0.1:{to}"),
            "--name".into(),
            "peer-tls".into(),
            "--mclt".into(),
            "5".into(),
            "--tls-cert".into(),
            file(&format!("{me}.pem")),
            "--tls-key".into(),
            file(&format!("{me}.key")),
            "--tls-ca".into(),
            file("ca.pem"),
            "--tls-partner-name".into(),
            partner.into(),
        ]
        .to_vec()
    };
    let primary = spawn_peer(peer("primary", "primary.test", "secondary.test", pp, sp)).await;
    let secondary = spawn_peer(peer("secondary", "secondary.test", "primary.test", sp, pp)).await;
    within(20, primary.handle.wait_for_state(ServerState::Normal))
        .await
        .unwrap();
    within(20, secondary.handle.wait_for_state(ServerState::Normal))
        .await
        .unwrap();
    let ptext = primary.out.text();
    assert!(ptext.contains("TLS 1.3, partner secondary.test"), "{ptext}");
    assert_eq!(primary.handle.counters().tls_refused(), 0);
    for p in [primary, secondary] {
        p.stop.send(()).unwrap();
        within(20, p.done).await.unwrap().unwrap();
    }
    let _ = std::fs::remove_dir_all(&dir);
}

/// Two peers with `--secret`: NORMAL with every message signed and checked when the secrets
/// match; with different secrets every connection is refused, neither leaves
/// COMMUNICATIONS-INTERRUPTED, and the refusals are counted. An empty secret file is refused
/// at start.
#[tokio::test(flavor = "multi_thread", worker_threads = 2)]
async fn two_peers_sign_their_messages_with_a_shared_secret() {
    let dir = std::env::temp_dir().join(format!("failover-peer-secret-{}", std::process::id()));
    std::fs::create_dir_all(&dir).unwrap();
    let secret = |name: &str, text: &str| {
        let path = dir.join(name);
        std::fs::write(&path, text).unwrap();
        path.to_string_lossy().into_owned()
    };
    let (ours, same, other) = (
        secret("ours", "correct horse battery staple\n"),
        secret("same", "correct horse battery staple"),
        secret("other", "correct horse battery stable\n"),
    );
    let peer = |role: &str, listen: u16, to: u16, secret: &str| {
        [
            "--role",
            role,
            "--listen",
            &format!("127.0.0.1:{listen}"),
            "--partner",
            &format!("127.0.0.1:{to}"),
            "--name",
            "peer-secret",
            "--mclt",
            "5",
            "--mrd",
            "3",
            "--plaintext",
            "--secret",
            secret,
        ]
        .iter()
        .map(|s| s.to_string())
        .collect::<Vec<_>>()
    };

    // The same secret (the final newline is not part of it).
    let (pp, sp) = (free_port(), free_port());
    let primary = spawn_peer(peer("primary", pp, sp, &ours)).await;
    let secondary = spawn_peer(peer("secondary", sp, pp, &same)).await;
    within(20, primary.handle.wait_for_state(ServerState::Normal))
        .await
        .unwrap();
    within(20, secondary.handle.wait_for_state(ServerState::Normal))
        .await
        .unwrap();
    assert_eq!(primary.handle.digest_type(), Some(254));
    primary.status.send(()).await.unwrap();
    wait_for_text(&primary.out, "message digest type 254 (0 refused)").await;
    for p in [primary, secondary] {
        assert_eq!(p.handle.counters().digest_refused(), 0);
        p.stop.send(()).unwrap();
        within(20, p.done).await.unwrap().unwrap();
    }

    // Different secrets: refused, every time.
    let (pp, sp) = (free_port(), free_port());
    let primary = spawn_peer(peer("primary", pp, sp, &ours)).await;
    let secondary = spawn_peer(peer("secondary", sp, pp, &other)).await;
    within(20, async {
        while primary.handle.counters().digest_refused()
            + secondary.handle.counters().digest_refused()
            < 2
        {
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    })
    .await;
    for p in [&primary, &secondary] {
        assert_ne!(p.handle.status().state, ServerState::Normal);
        assert_ne!(p.handle.status().partner_state, Some(ServerState::Normal));
    }
    for p in [primary, secondary] {
        p.stop.send(()).unwrap();
        within(20, p.done).await.unwrap().unwrap();
    }

    // An empty secret authenticates nothing: the peer does not start.
    let empty = secret("empty", "\n");
    let opts = match parse_args(peer("primary", free_port(), free_port(), &empty)) {
        Ok(Parsed::Run(o)) => o,
        other => panic!("{other:?}"),
    };
    let (console, _out) = Console::capture(false);
    let (_status_tx, status_rx) = mpsc::channel(1);
    let started = run(&opts, &console, std::future::pending(), status_rx, |_| {}).await;
    let err = started.expect_err("an empty secret is refused");
    assert!(err.to_string().contains("--secret"), "{err}");
    let _ = std::fs::remove_dir_all(&dir);
}
