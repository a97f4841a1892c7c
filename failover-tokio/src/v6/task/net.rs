//! The connection side of the DHCPv6 failover task: a secondary's listener and the set-ups
//! of what it accepts, a primary's dial and its backoff, the one live connection.

use super::*;

/// One thing that happened on the network side.
pub(crate) enum NetInput {
    Accepted(io::Result<(TcpStream, SocketAddr)>),
    /// An accepted connection's set-up ended.
    SetUp(SocketAddr, Result<Connection6, StartError>),
    Dialed(Result<Connection6, StartError>),
    /// A whole message is in [`Net::msg`] (`Ok(true)`), or the connection ended.
    Message(Result<bool, StartError>),
    /// Everything waiting for the socket was written (or the write failed).
    Written(io::Result<()>),
    /// The socket took nothing of what waits for the write timeout.
    WriteStalled,
    /// A set-up task that ended without a result (aborted).
    Nothing,
}

type Dial =
    std::pin::Pin<Box<dyn std::future::Future<Output = Result<Connection6, StartError>> + Send>>;

/// The connection side: a secondary's listener and the set-ups of what it accepts, a
/// primary's dial and its backoff, the one live connection and what waits to be written.
pub(crate) struct Net {
    pub(super) role: Role,
    pub(super) partner: SocketAddr,
    pub(super) bind: Option<IpAddr>,
    pub(super) listener: Option<TcpListener>,
    pub(super) security: Security6,
    pub(super) setups: JoinSet<(SocketAddr, Result<Connection6, StartError>)>,
    pub(super) dialing: Option<Dial>,
    pub(super) conn: Option<Connection6>,
    pub(super) out: Outbox,
    /// The engine's messages are written here first (the largest RFC 8156 frame fits).
    pub(super) tx: Box<[u8]>,
    /// The message read last.
    pub(super) msg: Vec<u8>,
    pub(super) redial: Redial,
    pub(super) redial_at: Option<tokio::time::Instant>,
    /// The partner refused us since the last connection came up (§6.1: retry slower).
    pub(super) refused: bool,
    pub(super) setup_timeout: Duration,
    pub(super) write_timeout: Duration,
    /// The engine asked to close while our last messages wait for the socket: closed by then
    /// even if they are not written.
    pub(super) close_by: Option<tokio::time::Instant>,
    /// The STARTTLS transaction-id of the next dial.
    pub(super) next_xid: u32,
}

impl Net {
    #[allow(clippy::too_many_arguments)]
    pub(crate) fn new(
        role: Role,
        partner: SocketAddr,
        bind: Option<IpAddr>,
        listener: Option<TcpListener>,
        security: Security6,
        timing: Backoff,
        setup_timeout: Duration,
        write_timeout: Duration,
        seed: u32,
    ) -> Self {
        Net {
            role,
            partner,
            bind,
            listener,
            security,
            setups: JoinSet::new(),
            dialing: None,
            conn: None,
            out: Outbox::new(),
            tx: vec![0u8; failover_proto::v6::MAX_FRAME_LEN].into_boxed_slice(),
            msg: Vec::new(),
            redial: Redial::new(timing, seed),
            // Only the primary connects (§6.1), at once.
            redial_at: (role == Role::Primary).then(tokio::time::Instant::now),
            refused: false,
            setup_timeout,
            write_timeout,
            close_by: None,
            next_xid: seed,
        }
    }

    pub(super) fn is_up(&self) -> bool {
        self.conn.is_some()
    }

    /// When a primary dials next, if no connection is up or being made.
    pub(super) fn redial_deadline(&self) -> Option<tokio::time::Instant> {
        if self.conn.is_none() && self.dialing.is_none() {
            self.redial_at
        } else {
            None
        }
    }

    pub(super) fn schedule_redial(&mut self) {
        if self.role != Role::Primary || self.conn.is_some() || self.dialing.is_some() {
            return;
        }
        let delay = self.redial.delay(self.refused);
        self.redial_at = Some(tokio::time::Instant::now() + delay);
    }

    /// Starts a primary's connection: TCP (from the bind address), then STARTTLS and TLS in
    /// secure mode (§6.1), within the set-up timeout.
    pub(super) fn dial(&mut self) {
        self.redial_at = None;
        let (partner, bind, timeout) = (self.partner, self.bind, self.setup_timeout);
        let security = self.security.clone();
        // STARTTLS carries a 24-bit transaction-id (§5.4); never 0.
        self.next_xid = (self.next_xid.wrapping_add(1) & failover_proto::v6::MAX_XID).max(1);
        let xid = self.next_xid;
        debug!(%partner, "connecting");
        self.dialing = Some(Box::pin(async move {
            let tcp = tokio::time::timeout(timeout, connect(partner, bind))
                .await
                .map_err(|_| StartError::Timeout)??;
            start_as_primary(tcp, &security, xid, timeout).await
        }));
    }

    pub(super) fn attach(&mut self, conn: Connection6) {
        self.dialing = None;
        self.conn = Some(conn);
        self.refused = false;
        self.redial.connected();
    }

    /// Closes the connection; `true` if there was one. The TLS close_notify goes on its own
    /// (bounded) task, so that a partner that stopped reading holds up nothing.
    pub(super) fn drop_conn(&mut self) -> bool {
        self.out.clear();
        self.close_by = None;
        match self.conn.take() {
            Some(mut c) => {
                tokio::spawn(async move {
                    let _ = c.shutdown().await;
                });
                true
            }
            None => false,
        }
    }

    /// Waits for the next thing to happen on the network side. Cancel-safe: tokio's accept,
    /// a JoinSet's join and the framed read are; the dial future is kept across calls; what
    /// is written is recorded in the outbox as it goes.
    pub(super) async fn next(&mut self) -> NetInput {
        let Net {
            listener,
            setups,
            dialing,
            conn,
            out,
            msg,
            write_timeout,
            close_by,
            ..
        } = self;
        let stall = conn
            .as_ref()
            .and(earliest(out.stall_deadline(*write_timeout), *close_by));
        let setting_up = !setups.is_empty();
        tokio::select! {
            a = accept_opt(listener) => NetInput::Accepted(a),
            s = setups.join_next(), if setting_up => match s {
                Some(Ok((from, r))) => NetInput::SetUp(from, r),
                _ => NetInput::Nothing,
            },
            d = dial_opt(dialing) => {
                *dialing = None;
                NetInput::Dialed(d)
            }
            io = conn_io(conn, out, msg) => io,
            _ = sleep_opt(stall) => NetInput::WriteStalled,
        }
    }

    /// Writes what the socket takes now: `Some(Err)` if the write failed.
    pub(super) fn write_now(&mut self) -> Option<io::Error> {
        match self.conn.as_mut() {
            None => {
                self.out.clear();
                None
            }
            Some(c) if !self.out.is_empty() => self.out.write_now(c.stream_mut()),
            Some(_) => None,
        }
    }

    /// Whether the socket took nothing for the write timeout, or the close the engine asked
    /// for waited its longest.
    pub(super) fn stalled(&self) -> bool {
        let now = tokio::time::Instant::now();
        let stall = earliest(self.out.stall_deadline(self.write_timeout), self.close_by);
        stall.is_some_and(|t| t <= now)
    }

    /// Nothing waits to be written. If something does, the close the engine asked for waits
    /// for it at most [`CLOSE_LINGER`].
    pub(super) fn written_before_close(&mut self) -> bool {
        if self.out.is_empty() {
            return true;
        }
        if self.close_by.is_none() {
            self.close_by = Some(tokio::time::Instant::now() + CLOSE_LINGER);
        }
        false
    }

    /// Waits, at most `limit`, until what waits for the socket is written.
    pub(super) async fn finish_writes(&mut self, limit: Duration) {
        let Net { conn, out, .. } = self;
        if let Some(c) = conn.as_mut() {
            let write = std::future::poll_fn(|cx| out.poll_write(c.stream_mut(), cx));
            let _ = tokio::time::timeout(limit, write).await;
        }
    }
}

/// The connection's next message, or the end of what waited for the socket. Nothing is read
/// while the outbox is full (a partner that does not take our answers gets no more of them
/// made).
async fn conn_io(conn: &mut Option<Connection6>, out: &mut Outbox, msg: &mut Vec<u8>) -> NetInput {
    let Some(c) = conn else {
        return std::future::pending().await;
    };
    std::future::poll_fn(|cx| {
        if !out.is_empty()
            && let std::task::Poll::Ready(r) = out.poll_write(c.stream_mut(), cx)
        {
            return std::task::Poll::Ready(NetInput::Written(r));
        }
        if !out.has_room() {
            return std::task::Poll::Pending;
        }
        c.poll_message(cx, msg).map(NetInput::Message)
    })
    .await
}

/// The listener's next connection. A failed accept (out of file descriptors) comes back
/// after [`ACCEPT_ERROR_PAUSE`], so that it does not spin the task.
async fn accept_opt(listener: &mut Option<TcpListener>) -> io::Result<(TcpStream, SocketAddr)> {
    match listener {
        Some(l) => match l.accept().await {
            Err(e) => {
                tokio::time::sleep(ACCEPT_ERROR_PAUSE).await;
                Err(e)
            }
            accepted => accepted,
        },
        None => std::future::pending().await,
    }
}

async fn dial_opt(d: &mut Option<Dial>) -> Result<Connection6, StartError> {
    match d {
        Some(f) => f.await,
        None => std::future::pending().await,
    }
}

/// Opens a TCP connection to `partner`, from `bind` if given.
async fn connect(partner: SocketAddr, bind: Option<IpAddr>) -> io::Result<TcpStream> {
    let socket = if partner.is_ipv4() {
        TcpSocket::new_v4()?
    } else {
        TcpSocket::new_v6()?
    };
    if let Some(ip) = bind {
        socket.bind(SocketAddr::new(ip, 0))?;
    }
    socket.connect(partner).await
}
