//! An ISC dhcpd pair's resynchronisation rate: how many BNDUPDs per second two ISC dhcpd 4.4
//! servers in failover with each other move and acknowledge, measured on this machine.
//!
//! [`measure_resync`] starts a primary whose lease file holds `n` ACTIVE leases of the shared
//! pool (written here in ISC's format) and whose failover state says its partner was lost
//! (`my state partner-down`), then a secondary with an empty lease file. The secondary starts in
//! RECOVER and sends UPDREQALL; the primary answers with one BNDUPD per address of the pool (the
//! `n` ACTIVE leases and the pool's FREE records) and, once its update queue is empty and every
//! BNDUPD has been acknowledged, UPDDONE. The secondary writes each binding to its lease file and
//! fsyncs it before acknowledging it (ISC commits the lease file once per BNDACK batch).
//!
//! **What is timed**: from the UPDREQALL to the UPDDONE, by the dhcpd log lines as they arrive on
//! the two processes' stderr (`dhcpd -f -d`), stamped with [`Instant`] by the reader threads.
//! The timer starts at the earlier of the secondary's `Sent update request all message` and the
//! primary's `Update request all from …`, and stops at the secondary's `peer update completed.`
//! (UPDDONE received). Both servers reaching NORMAL is not the end point: the secondary then
//! waits one MCLT in RECOVER-WAIT, which is a timer, not work.
//!
//! **What is counted**: the lease records in the secondary's lease file when the UPDDONE arrives.
//! The secondary starts with an empty file and writes one record per BNDUPD it receives, so this
//! is the number of BNDUPDs it received and acknowledged (a capture of one run with tshark
//! agreed: 1,250 BNDUPDs primary → secondary for `n` = 1,000).
//!
//! **ISC's BNDACK batching**: ISC acknowledges in batches of half the partner's
//! max-unacked-updates (50 for ISC's default of 100), and flushes a smaller batch only from a
//! 2-second timer. A pool whose size is not a multiple of 50 therefore adds about 2 s of idle
//! waiting at the end of the resync. [`PairOptions::new`] sizes the FREE part of the pool so that
//! the pool is a multiple of `max_unacked / 2`; set [`PairOptions::free`] to see the other case.
//!
//! Layout: each dhcpd has its own port-less bridge (see [`super::dhcpd`]); the failover link is
//! on the loopback, the primary on 127.0.0.2 and the secondary on 127.0.0.3, high ports. The
//! processes are killed by PID and the bridges deleted when the measurement returns (or fails);
//! every wait is bounded by [`PairOptions::timeout`]. Needs root, `/usr/sbin/dhcpd` and
//! `/usr/sbin/ip` (check with [`super::tools_available`] first).

use std::collections::BTreeMap;
use std::fmt;
use std::fmt::Write as _;
use std::fs;
use std::io;
use std::net::{Ipv4Addr, SocketAddr, TcpListener};
use std::path::Path;
use std::process::Command;
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::dhcpd::{Dhcpd, IscConfig, IscRole, free_port};
use super::leases::{Leases, lease_date};

/// The relationship name of the pair.
pub const NAME: &str = "isc-pair";
/// The primary's failover address.
pub const PRIMARY_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 2);
/// The secondary's failover address.
pub const SECONDARY_IP: Ipv4Addr = Ipv4Addr::new(127, 0, 0, 3);
/// The first address of the pool (in 198.18.0.0/16, the subnet [`IscConfig`] declares).
pub const POOL_FIRST: Ipv4Addr = Ipv4Addr::new(198, 18, 1, 0);
/// The most addresses a pool from [`POOL_FIRST`] can have inside 198.18.0.0/16.
pub const MAX_POOL: usize = 65_000;

/// How the pair is set up.
#[derive(Debug, Clone)]
pub struct PairOptions {
    /// ACTIVE leases in the primary's lease file (the first `active` addresses of the pool).
    pub active: usize,
    /// Further addresses of the pool, which ISC keeps FREE (or BACKUP) and also sends.
    /// [`PairOptions::new`] rounds it for `max_unacked` 100; with another `max_unacked`, make
    /// `active + free` a multiple of `max_unacked / 2` to keep ISC's 2-second BNDACK timer out.
    pub free: usize,
    /// `max-unacked-updates` of both servers (ISC's default when not configured: 100).
    pub max_unacked: u32,
    /// `max-response-delay` of both servers (ISC's default when not configured: 20).
    pub max_response_delay: u32,
    /// `mclt` of the primary (ISC has no default; 3600 is dhcpd.conf(5)'s example).
    pub mclt: u32,
    /// `default-lease-time`; the ACTIVE leases started 600 s ago and end `lease_time - 600` s
    /// from now.
    pub lease_time: u32,
    /// Bound on every wait, and so roughly on the whole measurement.
    pub timeout: Duration,
}

impl PairOptions {
    /// `active` ACTIVE leases, ISC's defaults for max-unacked-updates (100) and
    /// max-response-delay (20), MCLT 3600, lease time 3600, a timeout of 60 s plus 1 s per 1,000
    /// leases, and at least 250 FREE addresses, rounded up so that the pool is a multiple of
    /// `max_unacked / 2` (no 2-second BNDACK timer at the end; see the module docs).
    pub fn new(active: usize) -> Self {
        let max_unacked = 100;
        let batch = (max_unacked as usize / 2).max(1);
        let free = 250 + (batch - (active + 250) % batch) % batch;
        PairOptions {
            active,
            free,
            max_unacked,
            max_response_delay: 20,
            mclt: 3600,
            lease_time: 3600,
            timeout: Duration::from_secs(60 + active as u64 / 1000),
        }
    }

    /// Addresses in the pool.
    pub fn pool(&self) -> usize {
        self.active + self.free
    }
}

/// What one resync measured.
#[derive(Debug, Clone)]
pub struct IscPairRate {
    /// The setup.
    pub options: PairOptions,
    /// BNDUPDs the secondary received and acknowledged (lease records in its lease file).
    pub bndupd: usize,
    /// Binding states in the secondary's lease file afterwards (last record per address).
    pub states: BTreeMap<String, usize>,
    /// Distinct addresses in the secondary's lease file.
    pub addresses: usize,
    /// UPDREQALL → UPDDONE.
    pub elapsed: Duration,
    /// UPDREQALL → the primary's `Sent update done message` (for comparison with `elapsed`).
    pub primary_done: Duration,
    /// From starting the primary until it logged `Server starting service.` (reading its lease
    /// file).
    pub primary_startup: Duration,
}

impl IscPairRate {
    /// Acknowledged BNDUPDs per second.
    pub fn rate(&self) -> f64 {
        self.bndupd as f64 / self.elapsed.as_secs_f64().max(1e-9)
    }
}

impl fmt::Display for IscPairRate {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        let states: Vec<String> = self
            .states
            .iter()
            .map(|(s, n)| format!("{s} {n}"))
            .collect();
        write!(
            f,
            "isc-pair resync: N={} bndupd={} ({}) elapsed={:.3}s rate={:.0}/s \
             (mud {}, pool {}, UPDDONE sent at {:.3}s)",
            self.options.active,
            self.bndupd,
            states.join(", "),
            self.elapsed.as_secs_f64(),
            self.rate(),
            self.options.max_unacked,
            self.options.pool(),
            self.primary_done.as_secs_f64(),
        )
    }
}

/// Measures one resync of `n` ACTIVE leases with [`PairOptions::new`].
pub fn measure_resync(n: usize) -> io::Result<IscPairRate> {
    measure_resync_with(PairOptions::new(n))
}

/// Measures one resync with `options` (see the module docs).
pub fn measure_resync_with(options: PairOptions) -> io::Result<IscPairRate> {
    let pool = options.pool();
    if options.active == 0 || pool > MAX_POOL {
        return Err(io::Error::new(
            io::ErrorKind::InvalidInput,
            format!("the pool must hold 1 to {MAX_POOL} addresses with at least one ACTIVE lease"),
        ));
    }
    let deadline = Instant::now() + options.timeout;
    let (p_port, s_port) = ports()?;
    let primary_at = SocketAddr::new(PRIMARY_IP.into(), p_port);
    let secondary_at = SocketAddr::new(SECONDARY_IP.into(), s_port);
    let last = Ipv4Addr::from(u32::from(POOL_FIRST) + (pool as u32 - 1));
    let config = |role, addr, peer| {
        let mut c = IscConfig::new(role, NAME, addr, peer);
        c.mrd = options.max_response_delay;
        c.mud = options.max_unacked;
        c.mclt = options.mclt;
        c.lease_time = options.lease_time;
        c.pool = (POOL_FIRST, last);
        c
    };

    let mut primary = Dhcpd::new(config(IscRole::Primary, primary_at, secondary_at))?;
    fs::write(primary.lease_path(), primary_lease_file(&options))?;
    let started = Instant::now();
    primary.start()?;
    let service = wait_line(&mut primary, "Server starting service.", deadline)?;

    let mut secondary = Dhcpd::new(config(IscRole::Secondary, secondary_at, primary_at))?;
    secondary.start()?;
    let done = wait_line(&mut secondary, "peer update completed.", deadline).map_err(|e| {
        io::Error::new(
            e.kind(),
            format!("{e}\n--- primary log ---\n{}", primary.log_tail(30)),
        )
    })?;
    let requested = [
        secondary.first_line_at("Sent update request all message"),
        primary.first_line_at("Update request all from"),
    ]
    .into_iter()
    .flatten()
    .min()
    .ok_or_else(|| io::Error::other("UPDDONE arrived but no UPDREQALL was logged"))?;
    let primary_done = primary
        .first_line_at("Sent update done message")
        .unwrap_or(done);

    // Every acknowledged record is on disk: ISC commits the lease file before each BNDACK batch,
    // and UPDDONE comes after the last BNDACK.
    let text = fs::read_to_string(secondary.lease_path())?;
    secondary.kill();
    primary.kill();
    let bndupd = text.lines().filter(|l| l.starts_with("lease ")).count();
    let leases = Leases::parse(&text);
    let mut states = BTreeMap::new();
    for l in leases.by_address.values() {
        *states.entry(l.binding_state.clone()).or_default() += 1;
    }
    Ok(IscPairRate {
        bndupd,
        states,
        addresses: leases.by_address.len(),
        elapsed: done.saturating_duration_since(requested),
        primary_done: primary_done.saturating_duration_since(requested),
        primary_startup: service.saturating_duration_since(started),
        options,
    })
}

/// A port free on the primary's address and one free on the secondary's.
fn ports() -> io::Result<(u16, u16)> {
    let free_on = |ip: Ipv4Addr, port: u16| TcpListener::bind((ip, port)).is_ok();
    let p = (0..20)
        .map(|_| free_port())
        .find(|&p| free_on(PRIMARY_IP, p))
        .ok_or_else(|| io::Error::other("no free port on 127.0.0.2"))?;
    let s = (0..20)
        .map(|_| free_port())
        .find(|&s| s != p && free_on(SECONDARY_IP, s))
        .ok_or_else(|| io::Error::other("no free port on 127.0.0.3"))?;
    Ok((p, s))
}

/// Waits until `dhcpd` logs a line containing `needle`; fails when it exits or at `deadline`.
fn wait_line(dhcpd: &mut Dhcpd, needle: &str, deadline: Instant) -> io::Result<Instant> {
    loop {
        if let Some(at) = dhcpd.first_line_at(needle) {
            return Ok(at);
        }
        let exited = !dhcpd.running();
        if exited || Instant::now() >= deadline {
            return Err(io::Error::new(
                if exited {
                    io::ErrorKind::Other
                } else {
                    io::ErrorKind::TimedOut
                },
                format!(
                    "dhcpd {} before logging {needle:?}; its log:\n{}",
                    if exited { "exited" } else { "timed out" },
                    dhcpd.log_tail(30)
                ),
            ));
        }
        std::thread::sleep(Duration::from_millis(5));
    }
}

/// The primary's lease file: its failover state (it lost its partner), then one ACTIVE lease
/// per address for the first `active` addresses of the pool, with distinct MAC addresses.
fn primary_lease_file(o: &PairOptions) -> String {
    let now = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default()
        .as_secs();
    let since = lease_date(now - 60);
    let starts = lease_date(now - 600);
    let ends = lease_date(now + u64::from(o.lease_time).saturating_sub(600).max(60));
    let mut f = String::with_capacity(200 * o.active + 200);
    let _ = writeln!(
        f,
        "# written by failover_testkit::isc::pair: {} ACTIVE leases\n",
        o.active
    );
    let _ = writeln!(f, "failover peer \"{NAME}\" state {{");
    let _ = writeln!(f, "  my state partner-down at {since};");
    let _ = writeln!(f, "  partner state communications-interrupted at {since};");
    let _ = writeln!(f, "}}");
    for i in 0..o.active as u32 {
        let [_, a, b, c] = i.to_be_bytes();
        let _ = writeln!(f, "lease {} {{", Ipv4Addr::from(u32::from(POOL_FIRST) + i));
        let _ = writeln!(f, "  starts {starts};");
        let _ = writeln!(f, "  ends {ends};");
        let _ = writeln!(f, "  tstp {ends};");
        let _ = writeln!(f, "  cltt {starts};");
        let _ = writeln!(f, "  binding state active;");
        let _ = writeln!(f, "  next binding state expired;");
        let _ = writeln!(f, "  hardware ethernet 02:00:00:{a:02x}:{b:02x}:{c:02x};");
        let _ = writeln!(f, "}}");
    }
    f
}

/// The machine a measurement ran on.
#[derive(Debug, Clone)]
pub struct Machine {
    /// `lscpu`'s `Model name` (or /proc/cpuinfo's `model name`).
    pub model: String,
    /// CPUs this process may use (`nproc`).
    pub nproc: usize,
    /// 1-minute load average (/proc/loadavg) when probed.
    pub load1: String,
    /// File system type of the temporary directory, where the lease files are (fsync cost).
    pub tmp_fs: String,
}

impl Machine {
    /// Reads the machine's description now.
    pub fn probe() -> Machine {
        let model = Command::new("lscpu")
            .output()
            .ok()
            .and_then(|o| {
                String::from_utf8_lossy(&o.stdout)
                    .lines()
                    .find_map(|l| l.strip_prefix("Model name:").map(|v| v.trim().to_string()))
            })
            .or_else(|| {
                fs::read_to_string("/proc/cpuinfo").ok().and_then(|c| {
                    c.lines().find_map(|l| {
                        l.strip_prefix("model name")
                            .and_then(|v| v.split_once(':'))
                            .map(|(_, v)| v.trim().to_string())
                    })
                })
            })
            .unwrap_or_else(|| "unknown".to_string());
        let nproc = std::thread::available_parallelism().map_or(0, |n| n.get());
        Machine {
            model,
            nproc,
            load1: load1(),
            tmp_fs: fs_type(&std::env::temp_dir()),
        }
    }
}

impl fmt::Display for Machine {
    fn fmt(&self, f: &mut fmt::Formatter<'_>) -> fmt::Result {
        write!(
            f,
            "machine: {}, nproc {}, load {} (1 min), lease files on {}",
            self.model, self.nproc, self.load1, self.tmp_fs
        )
    }
}

/// The 1-minute load average now (/proc/loadavg), or `?`.
pub fn load1() -> String {
    fs::read_to_string("/proc/loadavg")
        .ok()
        .and_then(|l| l.split_whitespace().next().map(str::to_string))
        .unwrap_or_else(|| "?".to_string())
}

/// The type of the file system holding `path` (the longest mount point in /proc/mounts).
fn fs_type(path: &Path) -> String {
    let path = path.canonicalize().unwrap_or_else(|_| path.to_path_buf());
    let mounts = fs::read_to_string("/proc/mounts").unwrap_or_default();
    let best = mounts
        .lines()
        .filter_map(|l| {
            let mut f = l.split_whitespace();
            let (_, dir, kind) = (f.next()?, f.next()?, f.next()?);
            path.starts_with(dir).then(|| (dir.len(), kind.to_string()))
        })
        .max_by_key(|(len, _)| *len);
    match best {
        Some((_, kind)) => format!("{kind} ({})", path.display()),
        None => format!("? ({})", path.display()),
    }
}
