//! The operator's admin address (`--admin IP:PORT` of `peer` and `dhcp-server`): a minimal
//! HTTP/1.1 server with three routes.
//!
//! * `GET /metrics`: Prometheus text format (0.0.4) — every field of
//!   [`failover_fsm::Status`], its [`failover_fsm::Counters`], the task's connection counters
//!   and the lease table's counts, each series labelled `relationship="NAME"`.
//! * `GET /status`: the same as one JSON object ([`status_json`]).
//! * `POST /partner-down`: the operator's PARTNER-DOWN (§9.4), taken only in
//!   COMMUNICATIONS-INTERRUPTED (or RESOLUTION-INTERRUPTED); `POST /partner-down?force=1` from
//!   any state the rule book allows. 200 when taken, 409 with the reason when refused.
//!
//! Hand-written rather than `hyper`: three fixed routes, no request bodies, one request per
//! connection (`Connection: close`) — a few dozen lines against a dependency tree. Requests
//! are bounded (head of 8 KiB, 5 s to send it, 32 connections at once).

use std::fmt::Write as _;
use std::io;
use std::net::SocketAddr;
use std::sync::Arc;
use std::time::Duration;

use failover_fsm::{Counters, Link, RejectReason, ServerState, Status, UnixTime};
use failover_tokio::{Handle, PeerError, Transport};
use serde_json::{Value, json};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::Semaphore;
use tokio::task::JoinHandle;

use crate::peer::{PeerStore, StoreCounts};

/// Longest request head read.
const MAX_HEAD: usize = 8 * 1024;
/// Time a client has to send its request.
const READ_TIMEOUT: Duration = Duration::from_secs(5);
/// Connections served at once; more wait in the listen backlog.
const MAX_CONNECTIONS: usize = 32;

/// What the admin server reports on and acts on.
#[derive(Clone)]
pub struct Admin {
    /// The failover peer.
    pub handle: Handle,
    /// Its lease table.
    pub store: Arc<PeerStore>,
}

impl std::fmt::Debug for Admin {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        f.debug_struct("Admin").finish_non_exhaustive()
    }
}

/// Binds `addr` and serves `admin` there until the returned task is aborted.
pub async fn start(addr: SocketAddr, admin: Admin) -> io::Result<(SocketAddr, JoinHandle<()>)> {
    let listener = TcpListener::bind(addr).await?;
    let local = listener.local_addr()?;
    Ok((local, tokio::spawn(serve(listener, admin))))
}

async fn serve(listener: TcpListener, admin: Admin) {
    let slots = Arc::new(Semaphore::new(MAX_CONNECTIONS));
    loop {
        let Ok(permit) = slots.clone().acquire_owned().await else {
            return;
        };
        let Ok((stream, _)) = listener.accept().await else {
            continue;
        };
        let admin = admin.clone();
        tokio::spawn(async move {
            let _ = one_request(stream, &admin).await;
            drop(permit);
        });
    }
}

/// An HTTP response: status line, content type, body.
struct Response {
    status: &'static str,
    content_type: &'static str,
    body: String,
}

impl Response {
    fn json(status: &'static str, v: &Value) -> Self {
        Response {
            status,
            content_type: "application/json",
            body: format!("{v:#}\n"),
        }
    }

    fn text(status: &'static str, body: &str) -> Self {
        Response {
            status,
            content_type: "text/plain; charset=utf-8",
            body: format!("{body}\n"),
        }
    }
}

async fn one_request(mut stream: TcpStream, admin: &Admin) -> io::Result<()> {
    let head = tokio::time::timeout(READ_TIMEOUT, read_head(&mut stream))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "request head"))??;
    let response = match request_line(&head) {
        Some((method, target)) => route(method, target, admin).await,
        None => Response::text("400 Bad Request", "bad request"),
    };
    let out = format!(
        "HTTP/1.1 {}\r\nContent-Type: {}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n{}",
        response.status,
        response.content_type,
        response.body.len(),
        response.body
    );
    stream.write_all(out.as_bytes()).await?;
    stream.shutdown().await
}

/// Reads up to the blank line that ends the request head (bodies are not used).
async fn read_head(stream: &mut TcpStream) -> io::Result<String> {
    let mut buf = Vec::with_capacity(1024);
    let mut chunk = [0u8; 1024];
    while !buf.windows(4).any(|w| w == b"\r\n\r\n") {
        if buf.len() >= MAX_HEAD {
            return Err(io::Error::new(io::ErrorKind::InvalidData, "head too long"));
        }
        let n = stream.read(&mut chunk).await?;
        if n == 0 {
            break;
        }
        buf.extend_from_slice(chunk.get(..n).unwrap_or_default());
    }
    Ok(String::from_utf8_lossy(&buf).into_owned())
}

fn request_line(head: &str) -> Option<(&str, &str)> {
    let mut parts = head.lines().next()?.split_ascii_whitespace();
    let (method, target, version) = (parts.next()?, parts.next()?, parts.next()?);
    version.starts_with("HTTP/1.").then_some((method, target))
}

async fn route(method: &str, target: &str, admin: &Admin) -> Response {
    let (path, query) = target.split_once('?').unwrap_or((target, ""));
    match (method, path) {
        ("GET", "/metrics") => Response {
            status: "200 OK",
            content_type: "text/plain; version=0.0.4; charset=utf-8",
            body: metrics(admin),
        },
        ("GET", "/status") => Response::json("200 OK", &status_json(admin)),
        ("POST", "/partner-down") => {
            let force = query
                .split('&')
                .any(|kv| matches!(kv, "force=1" | "force=true" | "force"));
            partner_down(admin, force).await
        }
        (_, "/metrics" | "/status" | "/partner-down") => {
            Response::text("405 Method Not Allowed", "method not allowed")
        }
        _ => Response::text(
            "404 Not Found",
            "not found: GET /metrics, GET /status, POST /partner-down[?force=1]",
        ),
    }
}

async fn partner_down(admin: &Admin, force: bool) -> Response {
    let from = admin.handle.status().state;
    match admin.handle.partner_down(force).await {
        Ok(()) => Response::json(
            "200 OK",
            &json!({ "taken": true, "from": from.to_string(), "forced": force }),
        ),
        Err(PeerError::Engine(e)) => Response::json(
            "409 Conflict",
            &json!({ "taken": false, "state": from.to_string(), "error": e.to_string() }),
        ),
        Err(e) => Response::json(
            "503 Service Unavailable",
            &json!({ "taken": false, "error": e.to_string() }),
        ),
    }
}

/// A wall-clock time as seconds since the epoch (`null` when unknown).
fn time(t: Option<UnixTime>) -> Value {
    t.map_or(Value::Null, |t| json!(t.0))
}

fn state(s: Option<ServerState>) -> Value {
    s.map_or(Value::Null, |s| json!(s.to_string()))
}

fn link_name(link: Link) -> &'static str {
    match link {
        Link::Down => "down",
        Link::AwaitingConnect => "awaiting-connect",
        Link::AwaitingConnectAck => "awaiting-connectack",
        Link::AwaitingState => "awaiting-state",
        Link::Up => "up",
        Link::Closing => "closing",
    }
}

fn role_name(s: &Status) -> &'static str {
    match s.role {
        failover_fsm::Role::Primary => "primary",
        failover_fsm::Role::Secondary => "secondary",
    }
}

fn rejects_json(c: &Counters, sent: bool) -> Value {
    let map: serde_json::Map<String, Value> = c
        .rejects()
        .map(|(r, s, rx)| (u8::from(r).to_string(), json!(if sent { s } else { rx })))
        .filter(|(_, n)| n != &json!(0))
        .collect();
    Value::Object(map)
}

/// `GET /status`: the engine's [`Status`], the task's connection counters and the lease
/// table's counts as one JSON object. Times are seconds since the Unix epoch; reject
/// counts are keyed by reject-reason code (§12.21).
pub fn status_json(admin: &Admin) -> Value {
    let s = admin.handle.status();
    let c = &s.counters;
    let t = admin.handle.counters();
    let leases: StoreCounts = admin.store.counts();
    let secs = |d: Option<Duration>| d.map_or(Value::Null, |d| json!(d.as_secs()));
    json!({
        "relationship": s.relationship_name.to_string(),
        "role": role_name(&s),
        "state": s.state.to_string(),
        "state_since": s.state_since.0,
        "partner_state": state(s.partner_state),
        "partner_state_since": time(s.partner_since),
        "link": link_name(s.link),
        "last_contact": time(s.last_contact),
        "clock_skew": { "lower": s.clock_skew_lower, "upper": s.clock_skew },
        "mclt": s.mclt,
        "lease_mclt": s.lease_mclt,
        "hash_buckets_served": s.buckets_served(),
        "load_balance_max_seconds": s.load_balance_max_seconds,
        "max_response_delay": s.receive_timer,
        "partner_max_response_delay": s.partner_receive_timer,
        "max_unacked_updates": s.max_unacked_bndupd,
        "partner_max_unacked_updates": s.partner_max_unacked,
        "updates": {
            "queued": s.queued,
            "unacked": s.unacked_sent,
            "awaiting_commit": s.awaiting_commit,
            "dropped": c.updates_dropped,
        },
        "messages": {
            "bndupd_sent": c.bndupd_sent,
            "bndupd_received": c.bndupd_received,
            "bndack_sent": c.bndack_sent,
            "bndack_received": c.bndack_received,
            "sent": t.messages_out(),
            "received": t.messages_in(),
        },
        "rejects": { "sent": rejects_json(c, true), "received": rejects_json(c, false) },
        "last_reject": s.last_reject.map(u8::from),
        "state_entries": {
            "communications_interrupted": c.communications_interrupted,
            "partner_down": c.partner_down,
            "recover": c.recover,
        },
        "connections": {
            "established": t.connections(),
            "accepted": t.accepted(),
            "refused": t.refused(),
            "tls_refused": t.tls_refused(),
            "digest_refused": t.digest_refused(),
        },
        "transport": transport_json(admin.handle.transport()),
        "timers": {
            "startup_left": secs(s.startup_left),
            "recover_wait_left": secs(s.recover_wait_left),
            "auto_partner_down_left": secs(s.auto_partner_down_left),
        },
        "leases": {
            "known": leases.known,
            "active": leases.active,
            "free": leases.free,
            "backup": leases.backup,
        },
    })
}

/// A Prometheus text page under construction: each family's `# HELP` and `# TYPE` once,
/// then its samples.
struct Page {
    out: String,
    relationship: String,
}

impl Page {
    fn family(&mut self, name: &str, kind: &str, help: &str) {
        let _ = writeln!(self.out, "# HELP {name} {help}");
        let _ = writeln!(self.out, "# TYPE {name} {kind}");
    }

    fn sample(&mut self, name: &str, labels: &[(&str, &str)], value: impl std::fmt::Display) {
        let _ = write!(self.out, "{name}{{relationship=\"{}\"", self.relationship);
        for (k, v) in labels {
            let _ = write!(self.out, ",{k}=\"{}\"", escape(v));
        }
        let _ = writeln!(self.out, "}} {value}");
    }

    /// A family with one sample and no other label.
    fn one(&mut self, name: &str, kind: &str, help: &str, value: impl std::fmt::Display) {
        self.family(name, kind, help);
        self.sample(name, &[], value);
    }
}

/// A label value as the text format wants it.
fn escape(v: &str) -> String {
    v.replace('\\', "\\\\")
        .replace('"', "\\\"")
        .replace('\n', "\\n")
}

/// `{"kind": "plain"}` or `{"kind": "tls", "partner_identity": ...}`.
fn transport_json(t: &Transport) -> Value {
    match t {
        Transport::Tls { partner } => json!({ "kind": "tls", "partner_identity": partner }),
        _ => json!({ "kind": "plain" }),
    }
}

/// The states whose entries are counted, as the `state` label shows them.
const COUNTED_STATES: [&str; 3] = ["communications-interrupted", "partner-down", "recover"];

/// `GET /metrics`: the names are documented in the README ("Operating it").
pub fn metrics(admin: &Admin) -> String {
    let s = admin.handle.status();
    let c = s.counters;
    let t = admin.handle.counters();
    let leases = admin.store.counts();
    let mut p = Page {
        out: String::with_capacity(8 * 1024),
        relationship: escape(&s.relationship_name.to_string()),
    };
    let (state, partner) = (
        s.state.to_string(),
        s.partner_state
            .map_or_else(|| "unknown".into(), |p| p.to_string()),
    );
    p.family(
        "dhcp_failover_info",
        "gauge",
        "Always 1: the relationship's role, local and partner state and link as labels.",
    );
    p.sample(
        "dhcp_failover_info",
        &[
            ("role", role_name(&s)),
            ("state", &state),
            ("partner_state", &partner),
            ("link", link_name(s.link)),
        ],
        1,
    );
    let code = |st: ServerState| u8::from(st);
    p.one(
        "dhcp_failover_state",
        "gauge",
        "Local failover state, as its server-state code (draft §12.24; RECOVER-WAIT 254).",
        code(s.state),
    );
    p.one(
        "dhcp_failover_partner_state",
        "gauge",
        "The partner's last reported state code; 0 before any STATE.",
        s.partner_state.map_or(0, code),
    );
    p.one(
        "dhcp_failover_state_since_seconds",
        "gauge",
        "When the local state was entered, Unix time.",
        s.state_since.0,
    );
    if let Some(t) = s.partner_since {
        p.one(
            "dhcp_failover_partner_state_since_seconds",
            "gauge",
            "When the partner entered its state (its start-time-of-state), Unix time.",
            t.0,
        );
    }
    p.one(
        "dhcp_failover_link_up",
        "gauge",
        "1 while communications are OK (§8.3): CONNECT, CONNECTACK and STATE exchanged.",
        u8::from(s.link == Link::Up),
    );
    if let Some(t) = s.last_contact {
        p.one(
            "dhcp_failover_last_contact_seconds",
            "gauge",
            "When the partner was last heard from, Unix time.",
            t.0,
        );
    }
    if let Some(v) = s.clock_skew {
        p.one(
            "dhcp_failover_clock_skew_upper_seconds",
            "gauge",
            "Upper bound of the measured clock skew (our clock minus the partner's).",
            v,
        );
    }
    if let Some(v) = s.clock_skew_lower {
        p.one(
            "dhcp_failover_clock_skew_lower_seconds",
            "gauge",
            "Lower bound of the measured clock skew (our clock minus the partner's).",
            v,
        );
    }
    let gauges: [(&str, &str, u64); 11] = [
        (
            "dhcp_failover_mclt_seconds",
            "The MCLT in force for the safety waits.",
            s.mclt.into(),
        ),
        (
            "dhcp_failover_lease_mclt_seconds",
            "The MCLT that bounds leases granted now.",
            s.lease_mclt.into(),
        ),
        (
            "dhcp_failover_hash_buckets_served",
            "Hash buckets of 256 this server serves (split).",
            s.buckets_served().into(),
        ),
        (
            "dhcp_failover_load_balance_max_seconds",
            "Clients waiting longer are answered by both servers; 0 off.",
            s.load_balance_max_seconds.into(),
        ),
        (
            "dhcp_failover_max_response_delay_seconds",
            "Our receive timer (MRD).",
            s.receive_timer.into(),
        ),
        (
            "dhcp_failover_partner_max_response_delay_seconds",
            "The partner's receive timer; 0 until known.",
            s.partner_receive_timer.into(),
        ),
        (
            "dhcp_failover_max_unacked_updates",
            "The max-unacked-bndupd we advertise.",
            s.max_unacked_bndupd.into(),
        ),
        (
            "dhcp_failover_partner_max_unacked_updates",
            "The partner's max-unacked-bndupd: our send window.",
            s.partner_max_unacked.into(),
        ),
        (
            "dhcp_failover_updates_queued",
            "Our binding updates queued, in flight included.",
            s.queued as u64,
        ),
        (
            "dhcp_failover_updates_unacked",
            "Our BNDUPDs sent and not yet acknowledged.",
            s.unacked_sent as u64,
        ),
        (
            "dhcp_failover_updates_awaiting_commit",
            "The partner's bindings waiting for our commit.",
            s.awaiting_commit as u64,
        ),
    ];
    for (name, help, v) in gauges {
        p.one(name, "gauge", help, v);
    }
    let counters: [(&str, &str, u64); 12] = [
        (
            "dhcp_failover_bndupd_sent_total",
            "BNDUPD messages sent.",
            c.bndupd_sent.into(),
        ),
        (
            "dhcp_failover_bndupd_received_total",
            "BNDUPD messages received.",
            c.bndupd_received.into(),
        ),
        (
            "dhcp_failover_bndack_sent_total",
            "BNDACK messages sent.",
            c.bndack_sent.into(),
        ),
        (
            "dhcp_failover_bndack_received_total",
            "BNDACK messages received.",
            c.bndack_received.into(),
        ),
        (
            "dhcp_failover_updates_dropped_total",
            "Our binding updates taken out of the queue unaccepted: superseded by the partner's, or rejected.",
            c.updates_dropped.into(),
        ),
        (
            "dhcp_failover_connections_total",
            "Connections with the partner established, either direction.",
            t.connections(),
        ),
        (
            "dhcp_failover_connections_accepted_total",
            "The partner's connections accepted.",
            t.accepted(),
        ),
        (
            "dhcp_failover_connections_refused_total",
            "Connections closed before the engine saw them: strangers, a second one from the partner, failed TLS handshakes.",
            t.refused(),
        ),
        (
            "dhcp_failover_connections_tls_refused_total",
            "Connections to or from the partner whose TLS handshake failed.",
            t.tls_refused(),
        ),
        (
            "dhcp_failover_connections_digest_refused_total",
            "Connections closed on a message that failed authentication (message digest, draft 11.1).",
            t.digest_refused(),
        ),
        (
            "dhcp_failover_messages_sent_total",
            "Failover messages sent.",
            t.messages_out(),
        ),
        (
            "dhcp_failover_messages_received_total",
            "Failover messages received.",
            t.messages_in(),
        ),
    ];
    for (name, help, v) in counters {
        p.one(name, "counter", help, v);
    }
    p.family(
        "dhcp_failover_state_entries_total",
        "counter",
        "Entries into COMMUNICATIONS-INTERRUPTED, PARTNER-DOWN and RECOVER.",
    );
    for (label, n) in
        COUNTED_STATES
            .iter()
            .zip([c.communications_interrupted, c.partner_down, c.recover])
    {
        p.sample("dhcp_failover_state_entries_total", &[("state", label)], n);
    }
    for (dir, sent) in [("sent", true), ("received", false)] {
        let name = format!("dhcp_failover_rejects_{dir}_total");
        p.family(
            &name,
            "counter",
            &format!("Reject-reasons {dir} (BNDACK, CONNECTACK, DISCONNECT), by code (§12.21)."),
        );
        // Every code of the draft's table, so that a rate is defined before the first reject.
        for code in (0u8..=21).chain([254]) {
            let r = RejectReason::from(code);
            let n = if sent {
                c.rejects_sent(r)
            } else {
                c.rejects_received(r)
            };
            p.sample(&name, &[("reason", &code.to_string())], n);
        }
    }
    p.family(
        "dhcp_failover_leases",
        "gauge",
        "Addresses in the lease table by binding-status.",
    );
    for (status, n) in [
        ("active", leases.active),
        ("free", leases.free),
        ("backup", leases.backup),
    ] {
        p.sample("dhcp_failover_leases", &[("status", status)], n);
    }
    p.out
}
