//! dora-flood — an open-loop DHCPv4 load generator, as a relay agent: DISCOVER at a fixed
//! rate, the REQUEST as soon as an OFFER comes, and perfdhcp's report (plus p50 / p99), for
//! when perfdhcp itself is the bottleneck (issue 12). perfdhcp-lab runs it with
//! `--generator flood`; alone:
//!
//! ```text
//! dora-flood --rate 10000 --seconds 10 --to 198.18.0.1,198.18.0.2 [--clients 10000]
//!            [--bind 0.0.0.0:67] [--giaddr 198.18.0.254] [--wait-ms 2000]
//! ```
//!
//! Each message goes to every `--to` server (as perfdhcp's broadcast reaches both servers of
//! a pair), with giaddr set: the servers answer the relay at `giaddr`:67, this socket. Clients
//! are perfdhcp's: MAC 00:0c:01:02:03:04 plus a random index below `--clients`, one exchange
//! at a time per client (a client is picked again once ACKed or NAKed, or after the wait,
//! `--wait-ms`, if unanswered). One thread,
//! hand-built messages (no DHCP crate), a non-blocking socket polled with 20 µs naps when
//! idle; the delays are taken in user space around the system calls, so they include this
//! program's own scheduling and nap (tens of µs).

use std::io::{self, Write};
use std::net::{Ipv4Addr, SocketAddr, SocketAddrV4, UdpSocket};
use std::process::ExitCode;
use std::time::{Duration, Instant};

const USAGE: &str = "\
dora-flood — DISCOVER/OFFER/REQUEST/ACK at a fixed rate, as a relay agent

    dora-flood --rate N --seconds S --to IP[,IP] [--clients N] [--bind IP:PORT]
               [--giaddr IP] [--wait-ms MS]

Prints perfdhcp's report format (sent, received, drops, orphans, min/avg/max/std delay per
exchange) plus p50 and p99 delays.
";

struct Options {
    rate: u32,
    seconds: u32,
    to: Vec<Ipv4Addr>,
    clients: u32,
    bind: SocketAddr,
    giaddr: Ipv4Addr,
    wait: Duration,
}

fn parse_args() -> Result<Option<Options>, String> {
    let mut o = Options {
        rate: 0,
        seconds: 10,
        to: Vec::new(),
        clients: 10_000,
        bind: SocketAddr::from(([0, 0, 0, 0], 67)),
        giaddr: Ipv4Addr::new(198, 18, 0, 254),
        wait: Duration::from_secs(2),
    };
    let mut args = std::env::args().skip(1);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        let bad = |f: &str| format!("{f}: bad value");
        match flag.as_str() {
            "-h" | "--help" => return Ok(None),
            "--rate" => o.rate = value()?.parse().map_err(|_| bad("--rate"))?,
            "--seconds" => o.seconds = value()?.parse().map_err(|_| bad("--seconds"))?,
            "--clients" => o.clients = value()?.parse().map_err(|_| bad("--clients"))?,
            "--bind" => o.bind = value()?.parse().map_err(|_| bad("--bind"))?,
            "--giaddr" => o.giaddr = value()?.parse().map_err(|_| bad("--giaddr"))?,
            "--wait-ms" => {
                o.wait = Duration::from_millis(value()?.parse().map_err(|_| bad("--wait-ms"))?);
            }
            "--to" => {
                o.to = value()?
                    .split(',')
                    .map(|s| s.trim().parse().map_err(|_| bad("--to")))
                    .collect::<Result<_, _>>()?;
            }
            other => return Err(format!("unknown option {other} (see --help)")),
        }
    }
    if o.rate == 0 || o.seconds == 0 || o.to.is_empty() || o.clients == 0 {
        return Err("--rate, --seconds, --to and --clients are required, above 0".into());
    }
    Ok(Some(o))
}

/// BOOTP's fixed part, then the magic cookie.
const FIXED: usize = 236;
const OPTIONS: usize = FIXED + 4;
const COOKIE: [u8; 4] = [99, 130, 83, 99];
const DISCOVER: u8 = 1;
const OFFER: u8 = 2;
const REQUEST: u8 = 3;
const ACK: u8 = 5;
const NAK: u8 = 6;

/// perfdhcp's client MACs: 00:0c:01:02:03:04 plus the index.
fn mac(i: u32) -> [u8; 6] {
    let base = 0x000c_0102_0304u64 + u64::from(i);
    let b = base.to_be_bytes();
    [b[2], b[3], b[4], b[5], b[6], b[7]]
}

/// A relayed client message: BOOTREQUEST, Ethernet, `xid`, giaddr, chaddr; option 53, then
/// 50 and 54 for a REQUEST, 55 (subnet mask, router), end.
fn message(
    out: &mut Vec<u8>,
    kind: u8,
    xid: u32,
    giaddr: Ipv4Addr,
    chaddr: [u8; 6],
    offer: Option<(Ipv4Addr, Ipv4Addr)>,
) {
    out.clear();
    // BOOTREQUEST, Ethernet, hlen 6, one relay hop; xid; secs, flags, ciaddr, yiaddr,
    // siaddr all zero; giaddr; chaddr (16 bytes), sname, file; the cookie.
    out.extend_from_slice(&[1, 1, 6, 1]);
    out.extend_from_slice(&xid.to_be_bytes());
    out.extend_from_slice(&[0; 16]);
    out.extend_from_slice(&giaddr.octets());
    out.extend_from_slice(&chaddr);
    out.resize(FIXED, 0);
    out.extend_from_slice(&COOKIE);
    out.extend_from_slice(&[53, 1, kind]);
    if let Some((yiaddr, server)) = offer {
        out.extend_from_slice(&[50, 4]);
        out.extend_from_slice(&yiaddr.octets());
        out.extend_from_slice(&[54, 4]);
        out.extend_from_slice(&server.octets());
    }
    out.extend_from_slice(&[55, 2, 1, 3, 255]);
}

/// A server's reply: xid, message type, yiaddr, server identifier.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
struct Reply {
    xid: u32,
    kind: u8,
    yiaddr: Ipv4Addr,
    server: Option<Ipv4Addr>,
}

fn parse_reply(b: &[u8]) -> Option<Reply> {
    if b.first() != Some(&2) || b.get(FIXED..OPTIONS) != Some(&COOKIE[..]) {
        return None;
    }
    let xid = u32::from_be_bytes(b.get(4..8)?.try_into().ok()?);
    let yiaddr = Ipv4Addr::from(<[u8; 4]>::try_from(b.get(16..20)?).ok()?);
    let (mut kind, mut server) = (None, None);
    let mut opts = b.get(OPTIONS..)?;
    while let Some((&code, rest)) = opts.split_first() {
        match code {
            0 => opts = rest,
            255 => break,
            _ => {
                let (&len, rest) = rest.split_first()?;
                let data = rest.get(..usize::from(len))?;
                match (code, data) {
                    (53, [t]) => kind = Some(*t),
                    (54, [a, b, c, d]) => server = Some(Ipv4Addr::new(*a, *b, *c, *d)),
                    _ => {}
                }
                opts = rest.get(usize::from(len)..)?;
            }
        }
    }
    Some(Reply {
        xid,
        kind: kind?,
        yiaddr,
        server,
    })
}

/// One exchange's times, ns from the start.
#[derive(Debug, Clone, Copy, Default)]
struct Slot {
    client: u32,
    discover: u64,
    offer: u64,
    request: u64,
    ack: u64,
}

/// One direction's figures, as perfdhcp reports them.
#[derive(Debug, Default)]
struct Leg {
    sent: u64,
    delays_ms: Vec<f64>,
    orphans: u64,
}

impl Leg {
    fn report(&mut self, name: &str, out: &mut impl Write) -> io::Result<()> {
        let received = self.delays_ms.len() as u64;
        self.delays_ms.sort_by(f64::total_cmp);
        let d = &self.delays_ms;
        writeln!(out, "***Statistics for: {name}***")?;
        writeln!(out, "sent packets: {}", self.sent)?;
        writeln!(out, "received packets: {received}")?;
        writeln!(out, "drops: {}", self.sent.saturating_sub(received))?;
        writeln!(out, "orphans: {}\n", self.orphans)?;
        let (Some(min), Some(max)) = (d.first(), d.last()) else {
            return writeln!(out, "min delay: n/a\navg delay: n/a\nmax delay: n/a\n");
        };
        let n = d.len() as f64;
        let avg = d.iter().sum::<f64>() / n;
        let var = d.iter().map(|x| (x - avg) * (x - avg)).sum::<f64>() / n;
        // The nearest-rank quantile.
        let q = |p: f64| {
            let rank = ((p * n).ceil() as usize).clamp(1, d.len());
            d.get(rank - 1).copied().unwrap_or(f64::NAN)
        };
        writeln!(out, "min delay: {min:.3} ms")?;
        writeln!(out, "avg delay: {avg:.3} ms")?;
        writeln!(out, "max delay: {max:.3} ms")?;
        writeln!(out, "std deviation: {:.3} ms", var.sqrt())?;
        writeln!(out, "p50 delay: {:.3} ms", q(0.50))?;
        writeln!(out, "p99 delay: {:.3} ms\n", q(0.99))
    }
}

/// xorshift64: the clients' order (perfdhcp -R picks at random too).
fn next(state: &mut u64) -> u64 {
    *state ^= *state << 13;
    *state ^= *state >> 7;
    *state ^= *state << 17;
    *state
}

fn run(o: &Options) -> io::Result<()> {
    let socket = UdpSocket::bind(o.bind)?;
    socket.set_nonblocking(true)?;
    let targets: Vec<SocketAddr> =
        o.to.iter()
            .map(|ip| SocketAddr::V4(SocketAddrV4::new(*ip, 67)))
            .collect();
    let total = u64::from(o.rate) * u64::from(o.seconds);
    let mut slots = vec![Slot::default(); usize::try_from(total).unwrap_or(0)];
    let (mut discover, mut request) = (Leg::default(), Leg::default());
    let mut naks = 0u64;
    // A client with an exchange under way (until its ACK or NAK, or the wait after a send)
    // is not picked again meanwhile: a real client runs one DORA at a time, and a server may
    // leave a second REQUEST unanswered while the first one's binding is being recorded.
    let mut busy_until = vec![0u64; usize::try_from(o.clients).unwrap_or(0)];
    let hold = u64::try_from(o.wait.as_nanos()).unwrap_or(u64::MAX);
    let mut rng = 0x9e37_79b9_7f4a_7c15u64;
    let mut out = Vec::with_capacity(300);
    let mut buf = [0u8; 1500];
    let t0 = Instant::now();
    let ns = |t: Instant| u64::try_from(t.duration_since(t0).as_nanos()).unwrap_or(u64::MAX);
    let send_end = Duration::from_secs(u64::from(o.seconds));
    let mut sent = 0u64;
    loop {
        let elapsed = t0.elapsed();
        if elapsed > send_end + o.wait {
            break;
        }
        // DISCOVERs due by now (at most a small burst before the replies are read).
        let due = (u128::from(o.rate) * elapsed.as_nanos() / 1_000_000_000).min(u128::from(total));
        let mut burst = 0;
        while u128::from(sent) < due && burst < 64 {
            let now = ns(Instant::now());
            let mut client = 0;
            for _ in 0..32 {
                client = u32::try_from(next(&mut rng) % u64::from(o.clients)).unwrap_or(0);
                if busy_until.get(client as usize).is_some_and(|&b| b <= now) {
                    break;
                }
            }
            if let Some(b) = busy_until.get_mut(client as usize) {
                *b = now.saturating_add(hold);
            }
            let xid = u32::try_from(sent).unwrap_or(u32::MAX);
            message(&mut out, DISCOVER, xid, o.giaddr, mac(client), None);
            if let Some(s) = slots.get_mut(sent as usize) {
                s.client = client;
                s.discover = ns(Instant::now());
            }
            for t in &targets {
                let _ = socket.send_to(&out, t);
            }
            discover.sent += 1;
            sent += 1;
            burst += 1;
        }
        // Replies: until none is waiting; when nothing was due or waiting, a short nap.
        let mut received = 0;
        for _ in 0..256 {
            let n = match socket.recv_from(&mut buf) {
                Ok((n, _)) => n,
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
                Err(_) => continue,
            };
            received += 1;
            let at = ns(Instant::now());
            let Some(r) = buf.get(..n).and_then(parse_reply) else {
                continue;
            };
            let Some(s) = slots.get_mut(r.xid as usize).filter(|s| s.discover > 0) else {
                if r.kind == OFFER {
                    discover.orphans += 1;
                } else {
                    request.orphans += 1;
                }
                continue;
            };
            match r.kind {
                OFFER if s.offer == 0 => {
                    s.offer = at;
                    discover.delays_ms.push((at - s.discover) as f64 / 1e6);
                    let Some(server) = r.server else { continue };
                    message(
                        &mut out,
                        REQUEST,
                        r.xid,
                        o.giaddr,
                        mac(s.client),
                        Some((r.yiaddr, server)),
                    );
                    s.request = ns(Instant::now());
                    for t in &targets {
                        let _ = socket.send_to(&out, t);
                    }
                    request.sent += 1;
                }
                ACK if s.request > 0 && s.ack == 0 => {
                    s.ack = at;
                    request.delays_ms.push((at - s.request) as f64 / 1e6);
                    if let Some(b) = busy_until.get_mut(s.client as usize) {
                        *b = 0;
                    }
                }
                NAK => {
                    naks += 1;
                    if let Some(b) = busy_until.get_mut(s.client as usize) {
                        *b = 0;
                    }
                }
                OFFER => discover.orphans += 1,
                _ => request.orphans += 1,
            }
        }
        if burst == 0 && received == 0 {
            std::thread::sleep(Duration::from_micros(20));
        }
    }
    let acks = request.delays_ms.len();
    let stdout = io::stdout();
    let mut w = stdout.lock();
    writeln!(
        w,
        "Running: dora-flood --rate {} --seconds {} --to {:?}",
        o.rate, o.seconds, o.to
    )?;
    writeln!(w, "***Rate statistics***")?;
    writeln!(
        w,
        "Rate: {:.3} 4-way exchanges/second, expected rate: {}\n",
        acks as f64 / (send_end + o.wait).as_secs_f64(),
        o.rate
    )?;
    discover.report("DISCOVER-OFFER", &mut w)?;
    request.report("REQUEST-ACK", &mut w)?;
    writeln!(w, "naks: {naks}")?;
    Ok(())
}

fn main() -> ExitCode {
    match parse_args() {
        Ok(Some(o)) => match run(&o) {
            Ok(()) => ExitCode::SUCCESS,
            Err(e) => {
                eprintln!("dora-flood: {e}");
                ExitCode::FAILURE
            }
        },
        Ok(None) => {
            print!("{USAGE}");
            ExitCode::SUCCESS
        }
        Err(e) => {
            eprintln!("dora-flood: {e}");
            ExitCode::from(64)
        }
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used, clippy::indexing_slicing)]
mod tests {
    use super::*;

    #[test]
    fn a_reply_built_like_a_request_parses_back() {
        let mut m = Vec::new();
        let (yiaddr, server) = (Ipv4Addr::new(198, 18, 64, 7), Ipv4Addr::new(198, 18, 0, 1));
        message(
            &mut m,
            REQUEST,
            77,
            Ipv4Addr::new(198, 18, 0, 254),
            mac(3),
            Some((yiaddr, server)),
        );
        assert_eq!(&m[28..34], &[0x00, 0x0c, 0x01, 0x02, 0x03, 0x07]);
        // As a server would answer: BOOTREPLY, yiaddr.
        m[0] = 2;
        m[16..20].copy_from_slice(&yiaddr.octets());
        let r = parse_reply(&m).unwrap();
        assert_eq!(
            r,
            Reply {
                xid: 77,
                kind: REQUEST,
                yiaddr,
                server: Some(server)
            }
        );
        // Truncated options, a request, garbage: no reply.
        assert!(parse_reply(&m[..OPTIONS + 5]).is_none());
        m[0] = 1;
        assert!(parse_reply(&m).is_none());
        assert!(parse_reply(&[0u8; 10]).is_none());
    }

    #[test]
    fn the_report_reads_like_perfdhcp_s() {
        let mut leg = Leg {
            sent: 5,
            delays_ms: vec![4.0, 1.0, 3.0, 2.0],
            orphans: 1,
        };
        let mut out = Vec::new();
        leg.report("REQUEST-ACK", &mut out).unwrap();
        let text = String::from_utf8(out).unwrap();
        for line in [
            "sent packets: 5",
            "received packets: 4",
            "drops: 1",
            "orphans: 1",
            "min delay: 1.000 ms",
            "avg delay: 2.500 ms",
            "max delay: 4.000 ms",
            "p50 delay: 2.000 ms",
            "p99 delay: 4.000 ms",
        ] {
            assert!(text.contains(line), "{line} in {text}");
        }
    }
}
