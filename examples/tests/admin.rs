//! The operator's admin address (`--admin`) of the `peer` program, on two real processes over
//! loopback: `/status` and `/metrics` show the relationship as it is (NORMAL, the BNDUPDs of
//! pool balancing counted alike at both ends), and `POST /partner-down` is refused in NORMAL
//! and taken once the partner is killed (COMMUNICATIONS-INTERRUPTED). Every process is killed
//! by its PID on every way out; every wait is bounded.
#![allow(
    clippy::unwrap_used,
    clippy::expect_used,
    clippy::indexing_slicing,
    clippy::panic,
    missing_docs
)]

mod common;

use std::io::{Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::time::{Duration, Instant};

use common::{Proc, example_binary, free_tcp_port};
use serde_json::Value;

const NAME: &str = "admin-test";

/// One HTTP/1.1 request; (status code, body).
fn http(addr: SocketAddr, method: &str, path: &str) -> std::io::Result<(u16, String)> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(2))?;
    s.set_read_timeout(Some(Duration::from_secs(5)))?;
    write!(
        s,
        "{method} {path} HTTP/1.1\r\nHost: {addr}\r\nContent-Length: 0\r\nConnection: close\r\n\r\n"
    )?;
    let mut text = String::new();
    s.read_to_string(&mut text)?;
    let (head, body) = text.split_once("\r\n\r\n").unwrap_or((&text, ""));
    let code = head
        .split_ascii_whitespace()
        .nth(1)
        .and_then(|c| c.parse().ok())
        .unwrap_or(0);
    Ok((code, body.to_string()))
}

fn get_json(addr: SocketAddr, path: &str) -> Option<Value> {
    let (code, body) = http(addr, "GET", path).ok()?;
    (code == 200).then(|| serde_json::from_str(&body).unwrap())
}

/// Polls `/status` until `ok` holds (bounded); returns the last one.
fn wait_status(
    p: &Proc,
    addr: SocketAddr,
    what: &str,
    secs: u64,
    ok: impl Fn(&Value) -> bool,
) -> Value {
    let deadline = Instant::now() + Duration::from_secs(secs);
    let mut last = None;
    while Instant::now() < deadline {
        if let Some(v) = get_json(addr, "/status") {
            if ok(&v) {
                return v;
            }
            last = Some(v);
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    panic!(
        "{}: not {what} within {secs} s; last status {last:#?}\n{}",
        p.name,
        p.text()
    );
}

/// The value of the sample `name{relationship="admin-test"<labels>}`.
fn metric(page: &str, name: &str, labels: &str) -> f64 {
    let key = format!("{name}{{relationship=\"{NAME}\"{labels}}} ");
    let line = page
        .lines()
        .find(|l| l.starts_with(&key))
        .unwrap_or_else(|| panic!("no {key} in\n{page}"));
    line[key.len()..].trim().parse().unwrap()
}

fn n(v: &Value, path: &str) -> u64 {
    v.pointer(path)
        .and_then(Value::as_u64)
        .unwrap_or_else(|| panic!("{path} in {v:#}"))
}

fn start(role: &str, listen: u16, partner: u16, admin: u16) -> Proc {
    let args: Vec<String> = [
        "--plaintext",
        "--role",
        role,
        "--listen",
        &format!("127.0.0.1:{listen}"),
        "--partner",
        &format!("127.0.0.1:{partner}"),
        "--name",
        NAME,
        "--mclt",
        "30",
        "--pool",
        "10.0.0.10-10.0.0.25",
        "--admin",
        &format!("127.0.0.1:{admin}"),
    ]
    .map(String::from)
    .to_vec();
    let name = if role == "primary" {
        "primary"
    } else {
        "secondary"
    };
    Proc::spawn(&example_binary("peer"), &args, name)
}

#[test]
fn metrics_status_and_partner_down_over_http() {
    let bin = example_binary("peer");
    assert!(bin.is_file());
    let (pf, sf, pa, sa) = (
        free_tcp_port(),
        free_tcp_port(),
        free_tcp_port(),
        free_tcp_port(),
    );
    let (p_admin, s_admin) = (
        SocketAddr::from(([127, 0, 0, 1], pa)),
        SocketAddr::from(([127, 0, 0, 1], sa)),
    );
    let mut primary = start("primary", pf, sf, pa);
    let mut secondary = start("secondary", sf, pf, sa);

    // NORMAL on both, and pool balancing done: the primary's BACKUP moves all acknowledged.
    let settled = |v: &Value| {
        v["state"] == "NORMAL" && v["partner_state"] == "NORMAL" && n(v, "/updates/queued") == 0
    };
    let ps = wait_status(&primary, p_admin, "NORMAL", 60, |v| {
        settled(v) && n(v, "/messages/bndupd_sent") > 0
    });
    let sent = n(&ps, "/messages/bndupd_sent");
    let ss = wait_status(&secondary, s_admin, "NORMAL", 30, |v| {
        settled(v) && n(v, "/messages/bndack_sent") == sent
    });
    // Every BNDUPD the primary sent moved one address to the secondary as BACKUP, and was
    // counted once at each end.
    assert_eq!(n(&ss, "/leases/backup"), sent, "{ss:#}");
    assert_eq!(n(&ss, "/messages/bndupd_received"), sent);
    assert_eq!(n(&ps, "/messages/bndack_received"), sent);
    assert_eq!(n(&ps, "/messages/bndupd_received"), 0);
    assert_eq!(ps["relationship"], NAME);
    assert_eq!(
        (&ps["role"], &ss["role"]),
        (&"primary".into(), &"secondary".into())
    );
    assert_eq!((&ps["link"], &ss["link"]), (&"up".into(), &"up".into()));
    assert_eq!(ps["transport"], serde_json::json!({ "kind": "plain" }));
    assert_eq!(n(&ps, "/connections/tls_refused"), 0);
    assert_eq!((n(&ps, "/mclt"), n(&ss, "/mclt")), (30, 30));
    assert_eq!(n(&ps, "/hash_buckets_served"), 128);
    assert_eq!(n(&ss, "/hash_buckets_served"), 128);
    assert_eq!(n(&ps, "/max_response_delay"), 20);
    assert_eq!(n(&ps, "/partner_max_response_delay"), 20);
    assert_eq!(n(&ps, "/partner_max_unacked_updates"), 10);
    assert_eq!(n(&ps, "/state_entries/recover"), 1);
    assert_eq!(n(&ps, "/state_entries/partner_down"), 0);
    assert_eq!(n(&ps, "/updates/dropped"), 0);
    assert_eq!(ps["rejects"]["received"], serde_json::json!({}));
    assert!(ps["last_contact"].is_u64() && ps["clock_skew"]["upper"].is_i64());
    // One connection between them, whoever dialled: accepted at one end.
    assert_eq!(
        n(&ps, "/connections/accepted") + n(&ss, "/connections/accepted"),
        n(&ps, "/connections/established").min(n(&ss, "/connections/established"))
    );

    // The same numbers in the Prometheus page, with HELP and TYPE.
    let (code, page) = http(p_admin, "GET", "/metrics").unwrap();
    assert_eq!(code, 200);
    assert!(page.contains("# TYPE dhcp_failover_bndupd_sent_total counter\n"));
    assert!(page.contains("# HELP dhcp_failover_bndupd_sent_total "));
    assert!(page.contains("# TYPE dhcp_failover_state gauge\n"));
    assert_eq!(
        metric(&page, "dhcp_failover_bndupd_sent_total", ""),
        sent as f64
    );
    assert_eq!(
        metric(&page, "dhcp_failover_bndack_received_total", ""),
        sent as f64
    );
    assert_eq!(metric(&page, "dhcp_failover_state", ""), 2.0);
    assert_eq!(metric(&page, "dhcp_failover_partner_state", ""), 2.0);
    assert_eq!(metric(&page, "dhcp_failover_link_up", ""), 1.0);
    assert_eq!(metric(&page, "dhcp_failover_mclt_seconds", ""), 30.0);
    assert_eq!(
        metric(
            &page,
            "dhcp_failover_info",
            ",role=\"primary\",state=\"NORMAL\",partner_state=\"NORMAL\",link=\"up\""
        ),
        1.0
    );
    assert_eq!(
        metric(
            &page,
            "dhcp_failover_state_entries_total",
            ",state=\"recover\""
        ),
        1.0
    );
    assert_eq!(
        metric(
            &page,
            "dhcp_failover_rejects_received_total",
            ",reason=\"1\""
        ),
        0.0
    );
    let (_, page) = http(s_admin, "GET", "/metrics").unwrap();
    assert_eq!(
        metric(&page, "dhcp_failover_bndupd_received_total", ""),
        sent as f64
    );
    assert_eq!(
        metric(&page, "dhcp_failover_bndack_sent_total", ""),
        sent as f64
    );
    assert_eq!(
        metric(&page, "dhcp_failover_leases", ",status=\"backup\""),
        sent as f64
    );

    // Wrong routes and methods.
    assert_eq!(http(s_admin, "GET", "/nope").unwrap().0, 404);
    assert_eq!(http(s_admin, "GET", "/partner-down").unwrap().0, 405);

    // NORMAL: the partner may be serving clients — refused, nothing changes.
    let (code, body) = http(s_admin, "POST", "/partner-down").unwrap();
    assert_eq!(code, 409, "{body}");
    let refused: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(refused["taken"], false);
    assert_eq!(refused["state"], "NORMAL");
    assert!(
        refused["error"].as_str().unwrap().contains("unless forced"),
        "{body}"
    );
    assert_eq!(get_json(s_admin, "/status").unwrap()["state"], "NORMAL");

    // The primary dies: COMMUNICATIONS-INTERRUPTED, and the operator's PARTNER-DOWN is taken.
    primary.kill();
    wait_status(&secondary, s_admin, "COMMUNICATIONS-INTERRUPTED", 30, |v| {
        v["state"] == "COMMUNICATIONS-INTERRUPTED"
    });
    let (code, body) = http(s_admin, "POST", "/partner-down").unwrap();
    assert_eq!(code, 200, "{body}");
    let taken: Value = serde_json::from_str(&body).unwrap();
    assert_eq!(
        (&taken["taken"], &taken["forced"]),
        (&true.into(), &false.into())
    );
    assert_eq!(taken["from"], "COMMUNICATIONS-INTERRUPTED");
    let ss = wait_status(&secondary, s_admin, "PARTNER-DOWN", 10, |v| {
        v["state"] == "PARTNER-DOWN"
    });
    assert_eq!(n(&ss, "/state_entries/communications_interrupted"), 1);
    assert_eq!(n(&ss, "/state_entries/partner_down"), 1);
    assert_eq!(ss["link"], "down");
    let (_, page) = http(s_admin, "GET", "/metrics").unwrap();
    assert_eq!(metric(&page, "dhcp_failover_state", ""), 4.0);
    assert_eq!(
        metric(
            &page,
            "dhcp_failover_state_entries_total",
            ",state=\"partner-down\""
        ),
        1.0
    );
    assert_eq!(metric(&page, "dhcp_failover_link_up", ""), 0.0);
    secondary.kill();
}
