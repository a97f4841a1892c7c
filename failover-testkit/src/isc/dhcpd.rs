//! One ISC dhcpd process as a failover peer: configuration, bridge, process, log.
//!
//! dhcpd refuses to run without an Ethernet-like interface carrying an IPv4 address and a
//! matching `subnet`; `lo` is refused and the `dummy` link type may be missing. A bridge with no
//! ports works and never sends anything anywhere, so each dhcpd gets its own port-less bridge
//! with an address from 198.18.0.0/15. Its failover endpoint runs on the real loopback.

use std::fmt::Write as _;
use std::fs::{self, File, OpenOptions};
use std::io::{self, BufRead, BufReader, Write as _};
use std::net::{Ipv4Addr, SocketAddr, TcpListener, UdpSocket};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::sync::atomic::{AtomicU32, Ordering};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::{Duration, Instant, SystemTime, UNIX_EPOCH};

use super::leases::Leases;

/// The dhcpd binary (Debian's isc-dhcp-server).
pub const DHCPD: &str = "/usr/sbin/dhcpd";
/// iproute2.
pub const IP: &str = "/usr/sbin/ip";
/// Kills the child when the thread that started it dies, so that an aborted test run leaves
/// no dhcpd behind (util-linux; used when present).
const SETPRIV: &str = "/usr/bin/setpriv";
/// Name prefix of our bridges: `fo<test pid>i<n>`.
const BRIDGE_PREFIX: &str = "fo";
/// Prefix of our temporary directories and files: `<tmp>/isc-interop-<test pid>-…`.
const DIR_PREFIX: &str = "isc-interop-";

static NEXT: AtomicU32 = AtomicU32::new(0);

/// ISC's role in the relationship.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
pub enum IscRole {
    /// `primary;` (with `mclt` and `split`).
    Primary,
    /// `secondary;`.
    Secondary,
}

/// What goes into the `failover peer` block and the pool.
#[derive(Debug, Clone)]
pub struct IscConfig {
    /// ISC's role.
    pub role: IscRole,
    /// The relationship name.
    pub name: String,
    /// ISC's failover address and port (`address`, `port`).
    pub addr: SocketAddr,
    /// Our address and port (`peer address`, `peer port`).
    pub peer: SocketAddr,
    /// `max-response-delay`.
    pub mrd: u32,
    /// `max-unacked-updates`.
    pub mud: u32,
    /// `mclt` (primary only).
    pub mclt: u32,
    /// `split` (primary only).
    pub split: u16,
    /// `load balance max seconds`.
    pub lbms: u32,
    /// `default-lease-time` (max is twice that).
    pub lease_time: u32,
    /// First and last address of the failover pool.
    pub pool: (Ipv4Addr, Ipv4Addr),
}

impl IscConfig {
    /// A configuration with short timers for tests: mrd 6, mud 10, mclt 10, split 128.
    pub fn new(role: IscRole, name: &str, addr: SocketAddr, peer: SocketAddr) -> Self {
        IscConfig {
            role,
            name: name.to_string(),
            addr,
            peer,
            mrd: 6,
            mud: 10,
            mclt: 10,
            split: 128,
            lbms: 3,
            lease_time: 600,
            pool: (Ipv4Addr::new(198, 18, 1, 0), Ipv4Addr::new(198, 18, 1, 63)),
        }
    }

    fn render(&self, iface: &Iface) -> String {
        let mut c = String::new();
        let _ = writeln!(c, "# written by failover_testkit::isc");
        let _ = writeln!(c, "authoritative;");
        let _ = writeln!(c, "ddns-update-style none;");
        let _ = writeln!(c, "ping-check false;");
        let _ = writeln!(c, "default-lease-time {};", self.lease_time);
        let _ = writeln!(c, "max-lease-time {};", self.lease_time * 2);
        let _ = writeln!(c);
        let _ = writeln!(c, "failover peer \"{}\" {{", self.name);
        let _ = writeln!(
            c,
            "  {};",
            match self.role {
                IscRole::Primary => "primary",
                IscRole::Secondary => "secondary",
            }
        );
        let _ = writeln!(c, "  address {};", self.addr.ip());
        let _ = writeln!(c, "  port {};", self.addr.port());
        let _ = writeln!(c, "  peer address {};", self.peer.ip());
        let _ = writeln!(c, "  peer port {};", self.peer.port());
        let _ = writeln!(c, "  max-response-delay {};", self.mrd);
        let _ = writeln!(c, "  max-unacked-updates {};", self.mud);
        if self.role == IscRole::Primary {
            let _ = writeln!(c, "  mclt {};", self.mclt);
            let _ = writeln!(c, "  split {};", self.split);
        }
        let _ = writeln!(c, "  load balance max seconds {};", self.lbms);
        let _ = writeln!(c, "}}");
        let _ = writeln!(c);
        if let Iface::Bridge(bridge) = iface {
            let _ = writeln!(c, "# the port-less bridge dhcpd needs as a DHCP interface");
            let _ = writeln!(
                c,
                "subnet {} netmask 255.255.255.252 {{ }}",
                bridge.network()
            );
            let _ = writeln!(c);
        }
        let _ = writeln!(c, "subnet 198.18.0.0 netmask 255.255.0.0 {{");
        let _ = writeln!(c, "  pool {{");
        let _ = writeln!(c, "    failover peer \"{}\";", self.name);
        let _ = writeln!(c, "    range {} {};", self.pool.0, self.pool.1);
        let _ = writeln!(c, "  }}");
        let _ = writeln!(c, "}}");
        c
    }
}

/// A free TCP port on both 127.0.0.1 and 127.0.0.2, below the ephemeral range so that no
/// outgoing connection takes it meanwhile.
pub fn free_port() -> u16 {
    static PORT: AtomicU32 = AtomicU32::new(0);
    let base = 20_000 + (std::process::id() % 500) * 20;
    for _ in 0..2_000 {
        let n = PORT.fetch_add(1, Ordering::Relaxed);
        let port = u16::try_from(base + n % 10_000).unwrap_or(20_000);
        let free = ["127.0.0.1", "127.0.0.2"]
            .iter()
            .all(|ip| TcpListener::bind((*ip, port)).is_ok());
        if free {
            return port;
        }
    }
    panic!("no free TCP port found");
}

fn free_udp_port() -> u16 {
    // dhcpd's own DHCP port (-p): keeps parallel dhcpds off each other's port 67.
    UdpSocket::bind("0.0.0.0:0")
        .and_then(|s| s.local_addr())
        .map(|a| a.port())
        .unwrap_or(6700)
}

/// dhcpd's DHCP interface.
#[derive(Debug)]
enum Iface {
    /// Our own port-less bridge, in this namespace.
    Bridge(Bridge),
    /// An interface `name` inside network namespace `netns` (addressed from the pool's
    /// subnet, 198.18.0.0/16), which the caller owns: dhcpd runs under `ip netns exec`.
    Netns { netns: String, name: String },
}

impl Iface {
    fn name(&self) -> &str {
        match self {
            Iface::Bridge(b) => &b.name,
            Iface::Netns { name, .. } => name,
        }
    }
}

/// A port-less bridge with a /30 from 198.19.0.0/16, deleted when dropped.
#[derive(Debug)]
struct Bridge {
    name: String,
    index: u32,
}

impl Bridge {
    fn create(index: u32) -> io::Result<Bridge> {
        let name = format!("{BRIDGE_PREFIX}{}i{index}", std::process::id());
        let _ = Command::new(IP)
            .args(["link", "del", &name])
            .stderr(Stdio::null())
            .status();
        ip(&["link", "add", &name, "type", "bridge"])?;
        let bridge = Bridge { name, index };
        let _ = fs::write(
            format!("/proc/sys/net/ipv6/conf/{}/disable_ipv6", bridge.name),
            "1",
        );
        ip(&[
            "addr",
            "add",
            &format!("{}/30", bridge.address()),
            "dev",
            &bridge.name,
        ])?;
        ip(&["link", "set", &bridge.name, "up"])?;
        Ok(bridge)
    }

    fn network(&self) -> Ipv4Addr {
        let i = self.index % (64 * 256);
        Ipv4Addr::new(198, 19, (i / 64) as u8, ((i % 64) * 4) as u8)
    }

    fn address(&self) -> Ipv4Addr {
        Ipv4Addr::from(u32::from(self.network()) + 1)
    }
}

impl Drop for Bridge {
    fn drop(&mut self) {
        let _ = ip(&["link", "del", &self.name]);
    }
}

fn ip(args: &[&str]) -> io::Result<()> {
    let out = Command::new(IP).args(args).output()?;
    if out.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&out.stderr).trim()
        )))
    }
}

/// Whether this process may create links (root / CAP_NET_ADMIN). Also removes bridges and
/// directories left by earlier runs that were killed before they could clean up.
pub fn can_create_links() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        sweep_leftovers();
        let probe = format!("{BRIDGE_PREFIX}{}probe", std::process::id());
        let ok = ip(&["link", "add", &probe, "type", "bridge"]).is_ok();
        if ok {
            let _ = ip(&["link", "del", &probe]);
        }
        ok
    })
}

/// The PID embedded in a name of ours (`fo<pid>i<n>`, `isc-interop-<pid>-<n>`) whose process
/// is gone.
fn dead_owner(rest: &str, sep: char) -> bool {
    let Some((pid, _)) = rest.split_once(sep) else {
        return false;
    };
    let Ok(pid) = pid.parse::<u32>() else {
        return false;
    };
    pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists()
}

fn sweep_leftovers() {
    if let Ok(out) = Command::new(IP)
        .args(["-o", "link", "show", "type", "bridge"])
        .output()
    {
        for line in String::from_utf8_lossy(&out.stdout).lines() {
            // "12: fo1234i0: <...>"
            let Some(name) = line.split(':').nth(1).map(str::trim) else {
                continue;
            };
            if let Some(rest) = name.strip_prefix(BRIDGE_PREFIX)
                && dead_owner(rest, 'i')
            {
                let _ = ip(&["link", "del", name]);
            }
        }
    }
    if let Ok(entries) = fs::read_dir(std::env::temp_dir()) {
        for e in entries.flatten() {
            let name = e.file_name().to_string_lossy().into_owned();
            if let Some(rest) = name.strip_prefix(DIR_PREFIX)
                && dead_owner(rest, '-')
            {
                let _ = fs::remove_dir_all(e.path()).or_else(|_| fs::remove_file(e.path()));
            }
        }
    }
}

/// Wall-clock time of day, `HH:MM:SS.mmm` UTC, for log lines.
pub fn stamp() -> String {
    let d = SystemTime::now()
        .duration_since(UNIX_EPOCH)
        .unwrap_or_default();
    let s = d.as_secs() % 86_400;
    format!(
        "{:02}:{:02}:{:02}.{:03}",
        s / 3600,
        s / 60 % 60,
        s % 60,
        d.subsec_millis()
    )
}

/// One dhcpd with its directory (`dhcpd.conf`, `dhcpd.leases`, `dhcpd.pid`, `dhcpd.log`) and
/// bridge. Dropping it kills the process (SIGKILL, by PID) and deletes the bridge; the
/// directory is kept, and the log tail printed, when the test is failing.
#[derive(Debug)]
pub struct Dhcpd {
    config: IscConfig,
    dir: PathBuf,
    child: Option<Child>,
    /// Every stderr line (all starts), with the monotonic time it was read: for timings.
    timed: Arc<Mutex<Vec<(Instant, String)>>>,
    udp_port: u16,
    starts: u32,
    // Dropped after the child is killed.
    iface: Iface,
}

impl Dhcpd {
    /// Prepares the directory, the bridge and `dhcpd.conf` (checked with `dhcpd -t`).
    pub fn new(config: IscConfig) -> io::Result<Dhcpd> {
        let index = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}-{index}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        let bridge = Bridge::create(index)?;
        let d = Dhcpd {
            config,
            dir,
            child: None,
            timed: Arc::default(),
            udp_port: free_udp_port(),
            starts: 0,
            iface: Iface::Bridge(bridge),
        };
        d.write_config()?;
        Ok(d)
    }

    /// Like [`Dhcpd::new`], but dhcpd will run inside network namespace `netns` (which the
    /// caller creates and deletes) on its interface `iface`, whose address must lie in
    /// 198.18.0.0/16 (the pool's subnet), on the standard DHCP port 67. ISC's failover
    /// endpoint is then on that namespace's loopback.
    pub fn new_in_netns(config: IscConfig, netns: &str, iface: &str) -> io::Result<Dhcpd> {
        let index = NEXT.fetch_add(1, Ordering::Relaxed);
        let dir = std::env::temp_dir().join(format!("{DIR_PREFIX}{}-{index}", std::process::id()));
        let _ = fs::remove_dir_all(&dir);
        fs::create_dir_all(&dir)?;
        let d = Dhcpd {
            config,
            dir,
            child: None,
            timed: Arc::default(),
            udp_port: 67,
            starts: 0,
            iface: Iface::Netns {
                netns: netns.to_string(),
                name: iface.to_string(),
            },
        };
        d.write_config()?;
        Ok(d)
    }

    fn path(&self, file: &str) -> PathBuf {
        self.dir.join(file)
    }

    /// The log file (dhcpd's stderr, each line prefixed with the time it was read).
    pub fn log_path(&self) -> PathBuf {
        self.path("dhcpd.log")
    }

    /// The lease file.
    pub fn lease_path(&self) -> PathBuf {
        self.path("dhcpd.leases")
    }

    /// Writes `dhcpd.conf` and checks it with `dhcpd -t`.
    pub fn write_config(&self) -> io::Result<()> {
        let conf = self.path("dhcpd.conf");
        fs::write(&conf, self.config.render(&self.iface))?;
        let out = Command::new(DHCPD)
            .args(["-4", "-t", "-cf"])
            .arg(&conf)
            .output()?;
        if !out.status.success() {
            return Err(io::Error::other(format!(
                "dhcpd -t rejected {}:\n{}",
                conf.display(),
                String::from_utf8_lossy(&out.stderr)
            )));
        }
        Ok(())
    }

    /// Starts `dhcpd -4 -f -d` on the bridge. Its stderr goes to the log, each line stamped.
    pub fn start(&mut self) -> io::Result<()> {
        if self.running() {
            return Ok(());
        }
        self.write_config()?;
        let leases = self.lease_path();
        if !leases.exists() {
            File::create(&leases)?;
        }
        let _ = fs::remove_file(self.path("dhcpd.pid"));
        self.starts += 1;
        let mut log = OpenOptions::new()
            .create(true)
            .append(true)
            .open(self.log_path())?;
        writeln!(log, "{} === start #{} ===", stamp(), self.starts)?;
        // `ip netns exec` enters the namespace and execs dhcpd: the child's PID is dhcpd's.
        let mut argv: Vec<&str> = Vec::new();
        if let Iface::Netns { netns, .. } = &self.iface {
            argv.extend([IP, "netns", "exec", netns.as_str()]);
        }
        argv.push(DHCPD);
        let mut cmd = if Path::new(SETPRIV).exists() {
            let mut c = Command::new(SETPRIV);
            c.args(["--pdeathsig", "KILL", "--"]).args(&argv);
            c
        } else {
            let mut c = Command::new(argv[0]);
            c.args(&argv[1..]);
            c
        };
        cmd.args(["-4", "-f", "-d", "-p", &self.udp_port.to_string(), "-cf"])
            .arg(self.path("dhcpd.conf"))
            .arg("-lf")
            .arg(&leases)
            .arg("-pf")
            .arg(self.path("dhcpd.pid"))
            .arg(self.iface.name())
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn()?;
        if let Some(err) = child.stderr.take() {
            let timed = self.timed.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines() {
                    let Ok(line) = line else { break };
                    let at = Instant::now();
                    let _ = writeln!(log, "{} {line}", stamp());
                    timed
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push((at, line));
                }
            });
        }
        self.child = Some(child);
        Ok(())
    }

    /// Whether the process is alive.
    pub fn running(&mut self) -> bool {
        match self.child.as_mut() {
            Some(c) => matches!(c.try_wait(), Ok(None)),
            None => false,
        }
    }

    /// SIGKILL (a crash) and reap.
    pub fn kill(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = c.kill();
            let _ = c.wait();
            self.note("killed (SIGKILL)");
        }
    }

    /// SIGTERM (a graceful stop), SIGKILL after 5 s, and reap.
    pub fn terminate(&mut self) {
        if let Some(mut c) = self.child.take() {
            let _ = Command::new("kill")
                .args(["-TERM", &c.id().to_string()])
                .status();
            for _ in 0..50 {
                if matches!(c.try_wait(), Ok(Some(_))) {
                    break;
                }
                std::thread::sleep(Duration::from_millis(100));
            }
            let _ = c.kill();
            let _ = c.wait();
            self.note("stopped (SIGTERM)");
        }
    }

    fn note(&self, what: &str) {
        if let Ok(mut f) = OpenOptions::new().append(true).open(self.log_path()) {
            let _ = writeln!(f, "{} === {what} ===", stamp());
        }
    }

    /// When dhcpd first wrote a line containing `needle` to stderr (in any start so far): the
    /// monotonic time the reader thread took the line from the pipe (dhcpd's stderr is
    /// unbuffered, so that is as soon as this thread runs). For timings finer than the log
    /// file's wall-clock millisecond stamps.
    pub fn first_line_at(&self, needle: &str) -> Option<Instant> {
        self.timed
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .iter()
            .find(|(_, line)| line.contains(needle))
            .map(|(at, _)| *at)
    }

    /// The whole log.
    pub fn log(&self) -> String {
        fs::read_to_string(self.log_path()).unwrap_or_default()
    }

    /// The log's current length: pass it to [`Dhcpd::wait_log`] to see only later lines.
    pub fn mark(&self) -> usize {
        self.log().len()
    }

    /// The log from `mark` on.
    pub fn log_since(&self, mark: usize) -> String {
        let log = self.log();
        log.get(mark..).unwrap_or_default().to_string()
    }

    /// The last `n` lines of the log.
    pub fn log_tail(&self, n: usize) -> String {
        let log = self.log();
        let lines: Vec<&str> = log.lines().collect();
        lines[lines.len().saturating_sub(n)..].join("\n")
    }

    /// Waits until a log line after `mark` contains `needle`; fails with the log tail.
    pub async fn wait_log(&self, mark: usize, needle: &str, within: Duration) -> String {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let log = self.log_since(mark);
            if let Some(line) = log.lines().find(|l| l.contains(needle)) {
                return line.to_string();
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "ISC did not log {needle:?} within {within:?}; log tail:\n{}",
                    self.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(100)).await;
        }
    }

    /// ISC's failover state as last logged (`I move from X to Y` → Y).
    pub fn state(&self) -> Option<String> {
        self.log()
            .lines()
            .filter_map(|l| l.split_once("I move from ").map(|(_, r)| r.to_string()))
            .next_back()
            .and_then(|r| r.split(" to ").nth(1).map(|s| s.trim().to_string()))
    }

    /// Waits until ISC logs `I move from … to state` after `mark`.
    pub async fn wait_state(&self, mark: usize, state: &str, within: Duration) -> String {
        self.wait_log(mark, &format!(" to {state}"), within).await
    }

    /// ISC's lease file, parsed.
    pub fn leases(&self) -> Leases {
        Leases::parse(&fs::read_to_string(self.lease_path()).unwrap_or_default())
    }

    /// Waits until the lease file satisfies `ok`; fails with a summary.
    pub async fn wait_leases(
        &self,
        what: &str,
        within: Duration,
        ok: impl Fn(&Leases) -> bool,
    ) -> Leases {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            let l = self.leases();
            if ok(&l) {
                return l;
            }
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "ISC's lease file never showed {what} within {within:?}: {}\nlog tail:\n{}",
                    l.summary(),
                    self.log_tail(40)
                );
            }
            tokio::time::sleep(Duration::from_millis(200)).await;
        }
    }
}

impl Drop for Dhcpd {
    fn drop(&mut self) {
        self.kill();
        let keep = std::env::var("ISC_INTEROP_KEEP").is_ok_and(|v| v == "1");
        if std::thread::panicking() || keep {
            eprintln!(
                "--- ISC dhcpd ({}) log tail, files kept in {} ---\n{}\n---",
                self.iface.name(),
                self.dir.display(),
                self.log_tail(60)
            );
        } else {
            let _ = fs::remove_dir_all(&self.dir);
        }
    }
}
