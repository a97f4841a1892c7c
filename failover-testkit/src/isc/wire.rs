//! Hand-made failover messages over a plain TCP stream: probing ISC the way our engine never
//! would (a skewed clock), and throwing junk at our peer.

use std::io;
use std::net::{IpAddr, SocketAddr};
use std::time::Duration;

use failover_proto::{Connect, Framer, Hba, Repr, Text, TlsRequest};
use tokio::io::{AsyncReadExt, AsyncWriteExt};
use tokio::net::{TcpSocket, TcpStream};

/// What came back on a probe connection.
#[derive(Debug, Default)]
pub struct Reply {
    /// Every whole message received, raw.
    pub messages: Vec<Vec<u8>>,
    /// The other side closed the connection (FIN or RST) before the probe gave up.
    pub closed: bool,
}

impl Reply {
    /// The messages, decoded (undecodable ones are skipped).
    pub fn decoded(&self) -> Vec<Repr<'_>> {
        self.messages
            .iter()
            .filter_map(|m| Repr::parse(m).ok())
            .collect()
    }
}

/// Opens a TCP connection from `from` (any port) to `to`.
pub async fn connect_from(from: IpAddr, to: SocketAddr) -> io::Result<TcpStream> {
    let socket = TcpSocket::new_v4()?;
    socket.bind(SocketAddr::new(from, 0))?;
    tokio::time::timeout(Duration::from_secs(5), socket.connect(to))
        .await
        .map_err(|_| io::Error::new(io::ErrorKind::TimedOut, "connect timed out"))?
}

/// A primary's CONNECT as ISC sends it (options 22, 14, 19, 28, 20, 27, 15, 11), with header
/// time `time`.
pub fn connect_message(name: &str, time: u32, mclt: u32) -> Vec<u8> {
    let c = Connect {
        time,
        xid: 0,
        relationship_name: Text::from(name),
        max_unacked_bndupd: 10,
        receive_timer: 30,
        vendor_class: Text::from("interop-probe"),
        protocol_version: 1,
        tls_request: Some(TlsRequest::NoTls),
        mclt,
        hba: Hba::split(128),
        delayed_service: None,
        vendor_options: None,
        extra: Default::default(),
        digest: None,
    };
    let mut buf = vec![0u8; c.buffer_len()];
    let n = c.emit(&mut buf).expect("CONNECT fits");
    buf.truncate(n);
    buf
}

/// Sends `bytes` and collects what comes back until the other side closes or `wait` passes
/// without news.
pub async fn exchange(stream: &mut TcpStream, bytes: &[u8], wait: Duration) -> Reply {
    let mut reply = Reply::default();
    if stream.write_all(bytes).await.is_err() {
        reply.closed = true;
        return reply;
    }
    let mut framer = Framer::new();
    let mut buf = vec![0u8; 4096];
    loop {
        match tokio::time::timeout(wait, stream.read(&mut buf)).await {
            Err(_) => break,
            Ok(Ok(0)) | Ok(Err(_)) => {
                reply.closed = true;
                break;
            }
            Ok(Ok(n)) => {
                let mut input = &buf[..n];
                while let Ok(Some(m)) = framer.next_message(&mut input) {
                    reply.messages.push(m.to_vec());
                }
            }
        }
    }
    reply
}
