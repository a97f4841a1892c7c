//! One listening port for many relationships (draft §5.1, §8.2): [`Listener`].
//!
//! The accept loop only looks at the source address: a connection from an address with no
//! relationship is closed unread, one from an address with one relationship is handed to that
//! relationship's task unread (as its own listener would), and one from an address with several
//! goes to a task of its own that reads the first message (bounded in bytes and time) and hands
//! the connection, with what was read, to the relationship its CONNECT names — or answers a
//! CONNECTACK rejecting it (reason 8) and closes. The rules are
//! [`failover_fsm::dispatch`]'s. Each relationship takes connections through a small bounded
//! channel: a partner that floods connections fills its own and has the rest closed, and a
//! slow or silent one holds only its own reading task, never the accept loop.

use std::collections::HashMap;
use std::fmt;
use std::io;
use std::net::{IpAddr, SocketAddr};
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Mutex};
use std::time::Duration;

use failover_fsm::Role;
use failover_fsm::dispatch::{self, Candidate, OnAccept, Route};
use failover_proto::framer::{FrameStatus, frame_status};
use tokio::net::{TcpListener, TcpStream};
use tokio::sync::{Semaphore, mpsc};
use tokio::task::JoinHandle;
use tracing::{debug, warn};

use crate::task::Stream;
#[cfg(feature = "tls")]
use crate::tls::{HandshakeFailed, TlsRefusal};
use crate::transport::Security;

/// Connections handed to one relationship and not yet taken by its task; more are closed.
const HANDOFF_QUEUE: usize = 4;
/// Connections waiting for their first message at once, over all relationships; more are
/// closed at once.
const MAX_AWAITING: usize = 256;
/// Longest a connection may take to send its first message, by default.
const FIRST_MESSAGE_TIMEOUT: Duration = Duration::from_secs(10);
/// Longest we try to write the CONNECTACK refusing an unknown relationship.
const REFUSAL_WRITE_TIMEOUT: Duration = Duration::from_secs(2);

/// A listening port (647 normally) shared by many relationships: each connection goes to its
/// relationship by the partner's address and, when that address has several, by the
/// relationship-name of its CONNECT (draft §5.1, §8.2). Give it to
/// [`crate::PeerBuilder::listener`] instead of [`crate::PeerBuilder::listen`]. Cheap to clone;
/// it listens as long as a clone or a relationship started on it lives.
///
/// ```no_run
/// # async fn demo() -> std::io::Result<()> {
/// use std::net::Ipv4Addr;
/// use std::sync::Arc;
/// use failover_fsm::{Config, Role};
/// use failover_tokio::{Listener, MemoryStore, PeerBuilder};
///
/// let listener = Listener::bind("192.0.2.10:647".parse().unwrap()).await?;
/// let mut handles = Vec::new();
/// // One secondary, two relationships with one primary: told apart by name.
/// for (name, pool) in [("pool-a", Ipv4Addr::new(192, 0, 2, 0)), ("pool-b", Ipv4Addr::new(198, 51, 100, 0))] {
///     let store = Arc::new(MemoryStore::new(Role::Secondary, pool, 256));
///     let (handle, _events) = PeerBuilder::new(Config::new(Role::Secondary, name, 3600), "192.0.2.1:647".parse().unwrap(), store)
///         .plaintext()
///         .listener(&listener)
///         .start()
///         .await?;
///     handles.push(handle);
/// }
/// # Ok(()) }
/// ```
///
/// With TLS the handshake comes before the CONNECT: relationships that share a partner address
/// on one listener must share one [`crate::TlsConfig`] (clones of one value: the partner is one
/// server with one certificate), or all be plain TCP; [`crate::PeerBuilder::start`] refuses
/// another mix (`InvalidInput`). Their connections are then handshaken by the listener and
/// handed over by name like plain ones.
#[derive(Clone)]
pub struct Listener {
    shared: Arc<Shared>,
    local: SocketAddr,
}

impl fmt::Debug for Listener {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        f.debug_struct("Listener")
            .field("local", &self.local)
            .finish_non_exhaustive()
    }
}

/// What the accept loop and the relationships share.
struct Shared {
    routes: Mutex<HashMap<IpAddr, Vec<Entry>>>,
    counters: ListenerCounters,
    awaiting: Arc<Semaphore>,
    /// [`Listener::first_message_timeout`], in milliseconds.
    first_message_ms: AtomicU64,
    next_id: AtomicU64,
    /// Aborts the accept loop once the last clone and the last registration are gone.
    accept: Mutex<Option<JoinHandle<()>>>,
}

impl Drop for Shared {
    fn drop(&mut self) {
        if let Some(j) = self.accept.get_mut().ok().and_then(Option::take) {
            j.abort();
        }
    }
}

/// One registered relationship.
#[derive(Clone)]
struct Entry {
    id: u64,
    name: Vec<u8>,
    role: Role,
    security: Security,
    tx: mpsc::Sender<Handoff>,
}

/// A connection (or news of one) for a relationship's task.
pub(crate) enum Handoff {
    /// Accepted, nothing read, no TLS handshake yet: the task does what it does with the
    /// connections of its own listener.
    Accepted(TcpStream, SocketAddr),
    /// Its transport established and its first bytes read (the CONNECT that named this
    /// relationship, maybe more): for the engine, in this order.
    Named {
        stream: Stream,
        from: SocketAddr,
        read: Vec<u8>,
    },
    /// A connection from the partner's address said nothing (a secondary's stimulus, §8.2):
    /// connect now.
    Stimulus,
    /// A connection from the partner's address failed its TLS handshake at the listener.
    #[cfg(feature = "tls")]
    TlsRefused(SocketAddr, TlsRefusal),
}

/// What the listener did with the connections it accepted (each relationship counts those it
/// took in its own [`crate::Counters`]).
#[derive(Debug, Default)]
pub struct ListenerCounters {
    strangers: AtomicU64,
    unknown_relationship: AtomicU64,
    unrouted: AtomicU64,
    busy: AtomicU64,
    handed_over: AtomicU64,
}

impl ListenerCounters {
    fn add(c: &AtomicU64) {
        c.fetch_add(1, Ordering::Relaxed);
    }

    /// Connections from an address with no relationship, closed unread (§8.2).
    pub fn strangers(&self) -> u64 {
        self.strangers.load(Ordering::Relaxed)
    }

    /// CONNECTs naming no relationship with their sender's address, answered with a
    /// CONNECTACK rejecting them (reason 8, §7.8.2) and closed.
    pub fn unknown_relationship(&self) -> u64 {
        self.unknown_relationship.load(Ordering::Relaxed)
    }

    /// Connections from an address with several relationships whose first message was no
    /// CONNECT, or that said nothing in time, or whose TLS handshake failed: closed.
    pub fn unrouted(&self) -> u64 {
        self.unrouted.load(Ordering::Relaxed)
    }

    /// Connections closed because their relationship had connections waiting already, or too
    /// many connections were waiting for their first message.
    pub fn busy(&self) -> u64 {
        self.busy.load(Ordering::Relaxed)
    }

    /// Connections handed to a relationship.
    pub fn handed_over(&self) -> u64 {
        self.handed_over.load(Ordering::Relaxed)
    }
}

/// A relationship's place on a listener, removed when its task ends.
pub(crate) struct Registration {
    shared: Arc<Shared>,
    ip: IpAddr,
    id: u64,
}

impl Drop for Registration {
    fn drop(&mut self) {
        if let Ok(mut routes) = self.shared.routes.lock()
            && let Some(list) = routes.get_mut(&self.ip)
        {
            list.retain(|e| e.id != self.id);
            if list.is_empty() {
                routes.remove(&self.ip);
            }
        }
    }
}

/// Why a relationship cannot be added to a listener.
fn refuse(why: String) -> io::Error {
    io::Error::new(io::ErrorKind::InvalidInput, why)
}

impl Listener {
    /// Binds `addr` (port 647 normally) and starts accepting.
    pub async fn bind(addr: SocketAddr) -> io::Result<Listener> {
        let tcp = TcpListener::bind(addr).await?;
        let local = tcp.local_addr()?;
        let shared = Arc::new(Shared {
            routes: Mutex::new(HashMap::new()),
            counters: ListenerCounters::default(),
            awaiting: Arc::new(Semaphore::new(MAX_AWAITING)),
            first_message_ms: AtomicU64::new(FIRST_MESSAGE_TIMEOUT.as_secs() * 1000),
            next_id: AtomicU64::new(0),
            accept: Mutex::new(None),
        });
        // The loop holds the shared state weakly, so that dropping the last holder ends it.
        let join = tokio::spawn(accept_loop(tcp, Arc::downgrade(&shared)));
        if let Ok(mut a) = shared.accept.lock() {
            *a = Some(join);
        }
        Ok(Listener { shared, local })
    }

    /// Longest a connection from an address with several relationships may take to send its
    /// first message (default 10 s; the TLS handshake has its own bound before it). One that
    /// says nothing by then is closed and taken for a secondary's stimulus: our primary
    /// relationships with that address connect at once (§8.2).
    pub fn first_message_timeout(self, d: Duration) -> Self {
        let ms = u64::try_from(d.as_millis()).unwrap_or(u64::MAX);
        self.shared.first_message_ms.store(ms, Ordering::Relaxed);
        self
    }

    /// The address it listens on.
    pub fn local_addr(&self) -> SocketAddr {
        self.local
    }

    /// What it did with the connections it accepted.
    pub fn counters(&self) -> &ListenerCounters {
        &self.shared.counters
    }

    /// Adds a relationship: connections from `partner` for `name` go to `tx`'s receiver.
    pub(crate) fn register(
        &self,
        partner: IpAddr,
        name: &[u8],
        role: Role,
        security: &Security,
    ) -> io::Result<(Registration, mpsc::Receiver<Handoff>)> {
        let mut routes = self
            .shared
            .routes
            .lock()
            .map_err(|_| io::Error::other("listener state poisoned"))?;
        let list = routes.entry(partner).or_default();
        if list.iter().any(|e| e.name == name) {
            return Err(refuse(format!(
                "the listener has relationship {:?} with {partner} already",
                String::from_utf8_lossy(name)
            )));
        }
        if let Some(other) = list.first()
            && !other.security.same_transport(security)
        {
            return Err(refuse(format!(
                "relationships with {partner} on one listener must share one transport (one \
                 TlsConfig, or all plain TCP): the TLS handshake comes before the CONNECT \
                 that names the relationship"
            )));
        }
        let (tx, rx) = mpsc::channel(HANDOFF_QUEUE);
        let id = self.shared.next_id.fetch_add(1, Ordering::Relaxed);
        list.push(Entry {
            id,
            name: name.to_vec(),
            role,
            security: security.clone(),
            tx,
        });
        let reg = Registration {
            shared: self.shared.clone(),
            ip: partner,
            id,
        };
        Ok((reg, rx))
    }
}

async fn accept_loop(tcp: TcpListener, shared: std::sync::Weak<Shared>) {
    loop {
        let accepted = tcp.accept().await;
        let Some(shared) = shared.upgrade() else {
            return;
        };
        match accepted {
            Ok((stream, from)) => shared.dispatch(stream, from),
            Err(e) => {
                // Out of descriptors, most likely: give the process a moment.
                warn!(error = %e, "accept failed");
                drop(shared);
                tokio::time::sleep(Duration::from_millis(50)).await;
            }
        }
    }
}

impl Shared {
    /// The relationships with `ip`, as they are now.
    fn entries(&self, ip: IpAddr) -> Vec<Entry> {
        self.routes
            .lock()
            .ok()
            .and_then(|r| r.get(&ip).cloned())
            .unwrap_or_default()
    }

    /// Hands `h` to `entry`'s task unless its queue is full (then the connection is closed).
    fn hand(&self, entry: &Entry, h: Handoff) {
        match entry.tx.try_send(h) {
            Ok(()) => ListenerCounters::add(&self.counters.handed_over),
            Err(_) => {
                debug!(name = %String::from_utf8_lossy(&entry.name), "relationship busy; connection closed");
                ListenerCounters::add(&self.counters.busy);
            }
        }
    }

    fn dispatch(self: Arc<Self>, stream: TcpStream, from: SocketAddr) {
        let entries = self.entries(from.ip());
        let candidates = candidates(&entries);
        match dispatch::on_accept(&candidates) {
            OnAccept::Refuse => {
                debug!(%from, "refused a connection from a stranger");
                ListenerCounters::add(&self.counters.strangers);
            }
            OnAccept::Relationship(i) => {
                if let Some(e) = entries.get(i) {
                    self.hand(e, Handoff::Accepted(stream, from));
                }
            }
            OnAccept::AwaitConnect => {
                let Ok(permit) = self.awaiting.clone().try_acquire_owned() else {
                    ListenerCounters::add(&self.counters.busy);
                    return;
                };
                let _ = stream.set_nodelay(true);
                tokio::spawn(async move {
                    self.await_connect(stream, from, entries).await;
                    drop(permit);
                });
            }
        }
    }

    /// Reads the first message of a connection from an address with several relationships
    /// (after the TLS handshake, if they use TLS) and hands it on by its CONNECT's name.
    async fn await_connect(&self, tcp: TcpStream, from: SocketAddr, entries: Vec<Entry>) {
        let Some(first) = entries.first() else { return };
        let wait = Duration::from_millis(self.first_message_ms.load(Ordering::Relaxed));
        let mut stream = match &first.security {
            Security::Plain => Stream::Plain(tcp),
            #[cfg(feature = "tls")]
            Security::Tls(tls) => match tls.accept(tcp).await {
                Ok(s) => Stream::Tls(Box::new(s)),
                Err(failed) => {
                    ListenerCounters::add(&self.counters.unrouted);
                    // Every relationship with that address hears of a refusal (one of them
                    // was meant); a connection closed during its handshake is no news.
                    if let HandshakeFailed::Refused(reason) = failed {
                        for e in &entries {
                            let _ = e.tx.try_send(Handoff::TlsRefused(from, reason));
                        }
                    }
                    return;
                }
            },
        };
        let mut buf = vec![0u8; failover_proto::MAX_MESSAGE_LEN];
        let read = tokio::time::timeout(wait, first_message(&mut stream, &mut buf)).await;
        let candidates = candidates(&entries);
        let (len, msg_len) = match read {
            Ok(Ok(Some(lens))) => lens,
            Ok(Ok(None)) | Err(_) => {
                // Nothing said: a secondary's stimulus for our primary relationships (§8.2).
                debug!(%from, "a connection said nothing; connecting to the partner");
                ListenerCounters::add(&self.counters.unrouted);
                for i in dispatch::on_silence(&candidates) {
                    if let Some(e) = entries.get(i) {
                        let _ = e.tx.try_send(Handoff::Stimulus);
                    }
                }
                return;
            }
            Ok(Err(_)) => {
                ListenerCounters::add(&self.counters.unrouted);
                return;
            }
        };
        let msg = buf.get(..msg_len).unwrap_or_default();
        match dispatch::on_first_message(&candidates, msg) {
            Route::Relationship(i) => {
                if let Some(e) = entries.get(i) {
                    buf.truncate(len);
                    self.hand(
                        e,
                        Handoff::Named {
                            stream,
                            from,
                            read: buf,
                        },
                    );
                }
            }
            Route::Refuse { xid } => {
                let name = dispatch::connect_name(msg).unwrap_or_default();
                warn!(%from, name = %String::from_utf8_lossy(name), "CONNECT for no relationship with its sender; refused (reason 8)");
                ListenerCounters::add(&self.counters.unknown_relationship);
                let mut out = [0u8; failover_proto::MAX_MESSAGE_LEN];
                if let Ok(n) = dispatch::emit_refusal(xid, name, crate::wall_clock(), &mut out) {
                    let reply = out.get(..n).unwrap_or_default();
                    let _ = tokio::time::timeout(REFUSAL_WRITE_TIMEOUT, async {
                        stream.write_all(reply).await?;
                        stream.shutdown().await
                    })
                    .await;
                }
            }
            Route::Close => {
                debug!(%from, "first message no CONNECT; closed");
                ListenerCounters::add(&self.counters.unrouted);
            }
        }
    }
}

fn candidates(entries: &[Entry]) -> Vec<Candidate<'_>> {
    entries
        .iter()
        .map(|e| Candidate {
            name: &e.name,
            role: e.role,
        })
        .collect()
}

/// Reads until `buf` starts with a whole message: `Some((bytes read, its length))`, `None` if
/// the connection ended first; an error if it cannot be framed.
async fn first_message(stream: &mut Stream, buf: &mut [u8]) -> io::Result<Option<(usize, usize)>> {
    let mut filled = 0;
    loop {
        let have = buf.get(..filled).unwrap_or_default();
        match frame_status(have) {
            Ok(FrameStatus::Complete(n)) => return Ok(Some((filled, n))),
            Ok(FrameStatus::Incomplete { .. }) => {}
            Err(e) => return Err(io::Error::new(io::ErrorKind::InvalidData, e.to_string())),
        }
        let Some(room) = buf.get_mut(filled..).filter(|r| !r.is_empty()) else {
            return Err(io::ErrorKind::InvalidData.into());
        };
        let n = stream.read_some(room).await?;
        if n == 0 {
            return Ok(None);
        }
        filled += n;
    }
}
