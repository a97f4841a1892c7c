//! DORA/s of DHCPv4 failover pairs, side by side in one run: ISC dhcpd 4.4, Kea 2.2 HA
//! (load-balancing and hot-standby) and the `dhcp-server` example, each also as a single server,
//! all driven by the same `perfdhcp` command at a ladder of rates (issue 12).
//!
//! ```sh
//! cargo build --release --example dhcp-server
//! cargo run --release -p failover-benches --bin perfdhcp-lab -- [--out DIR] [OPTIONS]
//! ```
//!
//! Needs root, iproute2, `perfdhcp` (package kea-admin), `kea-dhcp4` (kea-dhcp4-server) and
//! `dhcpd` (isc-dhcp-server); installs nothing and exits with status 2 naming what is missing.
//! Builds three network namespaces (`pdl-a`, `pdl-b`: the servers, `pdl-c`: perfdhcp as a
//! relay on a bridge) on 198.18.0.0/16 only, with no link outside them. Every lease store is
//! durable: ISC with `dhcp-cache-threshold 0`, Kea's memfile with `persist`, ours on the fsync'd
//! `FileStore`. Configurations: `benches/perfdhcp/*.in`. Writes `runs.csv`, `failover.csv`
//! (`failover-addresses.csv` with `--failover-capture`), `summary.md`, `chart.svg`,
//! `machine.txt` and every server's log to the output directory.
//! Every process it starts is stopped by PID and the namespaces are deleted at the end (also
//! on error); after a SIGKILL of the lab itself, `--cleanup` deletes the namespaces.
//! `--help` lists the options; `--smoke` is one short run against one single Kea.
//!
//! Time to serve from the whole pool after a failure: `--pool N` shrinks every system's pool
//! (the same N addresses from 198.18.64.0) and `--clients N` widens perfdhcp's client set, so
//! that the survivor runs out of its own free addresses during the failover test; with
//! `--failover-capture` the test also captures the DHCPACKs on the bridge and reports when the
//! survivor last allocated an address of its own share and when it allocated again (only the
//! partner's free addresses are left then: ISC and ours after PARTNER-DOWN + MCLT, Kea at
//! PARTNER-DOWN).

use std::collections::{BTreeMap, HashMap};
use std::fmt::Write as _;
use std::fs;
use std::io::{self, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, Command, ExitCode, Stdio};
use std::time::{Duration, Instant};

use failover_testkit::isc::pair::Machine;

const USAGE: &str = "\
perfdhcp-lab — DORA/s of ISC, Kea and dhcp-server, pairs and singles, in one run

    cargo run --release -p failover-benches --bin perfdhcp-lab -- [OPTIONS]

OPTIONS:
    --out DIR            results (default target/perfdhcp-lab/<unix time>)
    --systems A,B,..     of isc-pair, isc-single, kea-lb, kea-hs, kea-single, ours-pair,
                         ours-single (default: all)
    --rates R1,R2,..     offered DORA/s, in increasing order (default 100,200,400,700,1000,
                         1500,2000,3000,4000,6000,8000,12000,16000)
    --seconds N          perfdhcp -p, each run (default 10)
    --failover LIST      systems to kill a server of under load (default isc-pair,ours-pair,kea-lb;
                         `none` to skip)
    --failover-rate R    load during the failover test (default 100: below every pair's
                         zero-drop rate, so lost answers are the failure's)
    --failover-watch S   seconds of load after the kill (default 80: Kea's PARTNER-DOWN comes
                         at 60; ISC's and ours' use of the partner's free addresses at
                         auto-partner-down + MCLT = 70)
    --failover-capture   capture the failover test's DHCPACKs on the bridge (dumpcap, tshark):
                         per second after the kill, the survivor's ACKs and how many of them
                         give an address no one had been given before (failover-addresses.csv);
                         the end of a stall of those is the survivor allocating from the
                         partner's share. The capture is deleted once read
    --pool N             addresses in every system's pool, from 198.18.64.0 (default 16384, up
                         to 198.18.127.255; at least 16). Small enough, with --clients large,
                         and the survivor uses up its own free addresses in the failover test
    --clients N          distinct clients, perfdhcp -R (default 10000). perfdhcp takes them in
                         sequence: every DORA is a new client asking for an address until N
    --auto-partner-down S
                         ISC and ours go COMMUNICATIONS-INTERRUPTED → PARTNER-DOWN after S s
                         (default 10, ISC's shortest useful setting; 0: off). Kea: its
                         max-response-delay (default 60 s)
    --mud N              max-unacked-updates of the ISC pair and ours alike, 1 to 128 (default:
                         each its own: ISC 10, its usual setting; dhcp-server 128, its default
                         since issue 12's third round)
    --server PATH        the dhcp-server binary (default target/release/examples/dhcp-server)
    --baseline PATH      another dhcp-server binary (an earlier build), measured in the same
                         run as systems ours-pair-before / ours-single-before (added to the
                         default list when given)
    --generator G        perfdhcp (default) or flood: dora-flood, this program's sibling binary
                         (cargo build --release -p failover-benches --bin dora-flood), an
                         open-loop Rust generator for when perfdhcp saturates first; it reports
                         p50 / p99 itself. The failover test always uses perfdhcp
    --latency            capture every rung on the lab's bridge (dumpcap) and compute p50 / p99
                         of DISCOVER→OFFER and REQUEST→ACK from the packets' timestamps
                         (tshark); perfdhcp 2.2 prints no percentiles. The capture takes CPU
                         from the systems measured: compare runs with it only to runs with it
    --smoke              one 3 s run at 200/s against a single Kea, no failover test
    --redraw DIR         redraw DIR/chart.svg and print the table from DIR/runs.csv, then exit
    --cleanup            delete the lab's namespaces left by a killed run, then exit
    -h, --help           this text
";

/// The namespaces: server A, server B, clients (perfdhcp as a relay on a bridge).
const NS_A: &str = "pdl-a";
const NS_B: &str = "pdl-b";
const NS_C: &str = "pdl-c";
const ADDR_A: &str = "198.18.0.1";
const ADDR_B: &str = "198.18.0.2";
const RELAY: &str = "198.18.0.254";
/// The pool's first address, 198.18.64.0; `--pool` addresses from it (default up to
/// 198.18.127.255: clear of the servers' and the relay's addresses).
const POOL_FIRST: u32 = u32::from_be_bytes([198, 18, 64, 0]);
const POOL_MAX: u32 = 16_384;
/// perfdhcp -R default: distinct clients (the default pool holds 16,384).
const CLIENTS: u32 = 10_000;
/// ISC's and ours' maximum client lead time, s: the survivor waits this long in PARTNER-DOWN
/// before it allocates the partner's free addresses (draft §5.4, §8.2). Kea HA has none.
const MCLT: u32 = 60;
/// perfdhcp -W, µs: how long it waits for late replies after the last send.
const EXIT_WAIT_US: u32 = 2_000_000;

const TPL_ISC: &str = include_str!("../../perfdhcp/isc-dhcpd.conf.in");
const TPL_ISC_FAILOVER: &str = include_str!("../../perfdhcp/isc-failover.in");
const TPL_KEA: &str = include_str!("../../perfdhcp/kea-dhcp4.json.in");
const TPL_KEA_HA: &str = include_str!("../../perfdhcp/kea-ha-hooks.json.in");

#[derive(Debug, Clone, Copy, PartialEq, Eq, PartialOrd, Ord)]
enum System {
    // Declared in table order: pairs first (the derived Ord sorts the summary).
    IscPair,
    KeaLb,
    KeaHs,
    OursPair,
    OursPairBefore,
    IscSingle,
    KeaSingle,
    OursSingle,
    OursSingleBefore,
}

impl System {
    const ALL: [System; 7] = [
        System::IscPair,
        System::KeaLb,
        System::KeaHs,
        System::OursPair,
        System::IscSingle,
        System::KeaSingle,
        System::OursSingle,
    ];

    /// `--baseline`'s: our server, built from an earlier commit.
    const BEFORE: [System; 2] = [System::OursPairBefore, System::OursSingleBefore];

    fn name(self) -> &'static str {
        match self {
            System::IscPair => "isc-pair",
            System::IscSingle => "isc-single",
            System::KeaLb => "kea-lb",
            System::KeaHs => "kea-hs",
            System::KeaSingle => "kea-single",
            System::OursPair => "ours-pair",
            System::OursSingle => "ours-single",
            System::OursPairBefore => "ours-pair-before",
            System::OursSingleBefore => "ours-single-before",
        }
    }

    fn parse(s: &str) -> Option<System> {
        System::ALL
            .into_iter()
            .chain(System::BEFORE)
            .find(|x| x.name() == s)
    }

    fn is_pair(self) -> bool {
        matches!(
            self,
            System::IscPair
                | System::KeaLb
                | System::KeaHs
                | System::OursPair
                | System::OursPairBefore
        )
    }

    /// A pair or a single of our `dhcp-server` (either build).
    fn is_ours(self) -> bool {
        matches!(
            self,
            System::OursPair
                | System::OursSingle
                | System::OursPairBefore
                | System::OursSingleBefore
        )
    }
}

struct Options {
    out: PathBuf,
    systems: Vec<System>,
    rates: Vec<u32>,
    seconds: u32,
    failover: Vec<System>,
    failover_rate: u32,
    /// ISC `auto-partner-down`, ours `--auto-partner-down` (0: off).
    auto_partner_down: u32,
    server: PathBuf,
    /// ISC's `max-unacked-updates`, ours `--mud` (`None`: ISC 10, ours its default).
    mud: Option<u32>,
    /// `--baseline`: the build the `*-before` systems run.
    baseline: Option<PathBuf>,
    /// Addresses in every system's pool, from [`POOL_FIRST`].
    pool: u32,
    /// perfdhcp -R.
    clients: u32,
    /// Seconds of load after the kill in the failover test.
    failover_watch: u32,
    /// Capture the failover test's DHCPACKs (which addresses the survivor hands out).
    failover_capture: bool,
    generator: Generator,
    /// p50 / p99 from a capture of every rung.
    latency: bool,
}

/// What drives the DHCP load.
#[derive(Debug, Clone, Copy, PartialEq, Eq)]
enum Generator {
    /// Kea's perfdhcp.
    Perfdhcp,
    /// `dora-flood` (benches/src/bin/dora-flood.rs).
    Flood,
}

impl Generator {
    fn name(self) -> &'static str {
        match self {
            Generator::Perfdhcp => "perfdhcp",
            Generator::Flood => "dora-flood",
        }
    }
}

impl Options {
    /// The `dhcp-server` binary `sys` runs.
    fn server_for(&self, sys: System) -> &Path {
        match (sys, &self.baseline) {
            (System::OursPairBefore | System::OursSingleBefore, Some(b)) => b,
            _ => &self.server,
        }
    }

    /// The pool's `i`-th address (0-based), dotted.
    fn pool_addr(&self, i: u32) -> String {
        std::net::Ipv4Addr::from(POOL_FIRST + i.min(self.pool - 1)).to_string()
    }

    fn pool_first(&self) -> String {
        self.pool_addr(0)
    }

    fn pool_last(&self) -> String {
        self.pool_addr(self.pool - 1)
    }
}

/// dora-flood: next to this program.
fn flood_binary() -> PathBuf {
    std::env::current_exe()
        .map(|p| p.with_file_name("dora-flood"))
        .unwrap_or_else(|_| PathBuf::from("target/release/dora-flood"))
}

fn parse_list<T>(s: &str, f: impl Fn(&str) -> Option<T>) -> Result<Vec<T>, String> {
    s.split(',')
        .filter(|x| !x.is_empty())
        .map(|x| f(x.trim()).ok_or_else(|| format!("unknown or bad value `{x}`")))
        .collect()
}

enum Parsed {
    Run(Options),
    Help,
    Cleanup,
    Redraw(PathBuf),
}

fn parse_args() -> Result<Parsed, String> {
    let now = std::time::SystemTime::now()
        .duration_since(std::time::UNIX_EPOCH)
        .map_or(0, |d| d.as_secs());
    let mut o = Options {
        out: PathBuf::from(format!("target/perfdhcp-lab/{now}")),
        systems: System::ALL.to_vec(),
        rates: vec![
            100, 200, 400, 700, 1000, 1500, 2000, 3000, 4000, 6000, 8000, 12000, 16000,
        ],
        seconds: 10,
        failover: vec![System::IscPair, System::OursPair, System::KeaLb],
        failover_rate: 100,
        auto_partner_down: 10,
        server: PathBuf::from("target/release/examples/dhcp-server"),
        baseline: None,
        mud: None,
        generator: Generator::Perfdhcp,
        latency: false,
        pool: POOL_MAX,
        clients: CLIENTS,
        failover_watch: 80,
        failover_capture: false,
    };
    let mut systems_given = false;
    let mut args = std::env::args().skip(1);
    let rate = |x: &str| x.parse::<u32>().ok().filter(|&r| r > 0);
    while let Some(flag) = args.next() {
        let mut value = || args.next().ok_or_else(|| format!("{flag} needs a value"));
        match flag.as_str() {
            "-h" | "--help" => return Ok(Parsed::Help),
            "--cleanup" => return Ok(Parsed::Cleanup),
            "--redraw" => return Ok(Parsed::Redraw(PathBuf::from(value()?))),
            "--out" => o.out = PathBuf::from(value()?),
            "--systems" => {
                o.systems = parse_list(&value()?, System::parse)?;
                systems_given = true;
            }
            "--baseline" => o.baseline = Some(PathBuf::from(value()?)),
            "--mud" => {
                o.mud = Some(
                    value()?
                        .parse()
                        .ok()
                        .filter(|m| (1..=128).contains(m))
                        .ok_or("--mud: 1 to 128")?,
                );
            }
            "--generator" => {
                o.generator = match value()?.as_str() {
                    "perfdhcp" => Generator::Perfdhcp,
                    "flood" | "dora-flood" => Generator::Flood,
                    other => return Err(format!("--generator {other}: perfdhcp or flood")),
                };
            }
            "--rates" => o.rates = parse_list(&value()?, rate)?,
            "--seconds" => o.seconds = rate(&value()?).ok_or("--seconds: a number above 0")?,
            "--failover" => {
                let v = value()?;
                o.failover = if v == "none" {
                    Vec::new()
                } else {
                    parse_list(&v, System::parse)?
                };
            }
            "--failover-rate" => {
                o.failover_rate = rate(&value()?).ok_or("--failover-rate: a number above 0")?;
            }
            "--failover-watch" => {
                o.failover_watch = rate(&value()?).ok_or("--failover-watch: seconds above 0")?;
            }
            "--failover-capture" => o.failover_capture = true,
            "--pool" => {
                o.pool = value()?
                    .parse()
                    .ok()
                    .filter(|n| (16..=POOL_MAX).contains(n))
                    .ok_or("--pool: 16 to 16384 addresses")?;
            }
            "--clients" => o.clients = rate(&value()?).ok_or("--clients: a number above 0")?,
            "--server" => o.server = PathBuf::from(value()?),
            "--latency" => o.latency = true,
            "--auto-partner-down" => {
                o.auto_partner_down = value()?
                    .parse()
                    .map_err(|_| "--auto-partner-down: seconds, 0 for off")?;
            }
            "--smoke" => {
                o.systems = vec![System::KeaSingle];
                o.rates = vec![200];
                o.seconds = 3;
                o.failover = Vec::new();
            }
            other => return Err(format!("unknown option {other} (see --help)")),
        }
    }
    if o.baseline.is_some() && !systems_given {
        o.systems.extend(System::BEFORE);
        o.systems.sort();
    }
    if o.baseline.is_none() && o.systems.iter().any(|s| System::BEFORE.contains(s)) {
        return Err("ours-*-before systems need --baseline PATH".into());
    }
    if o.systems.is_empty() || o.rates.is_empty() {
        return Err("--systems and --rates must not be empty".into());
    }
    if o.failover
        .iter()
        .any(|s| !s.is_pair() || System::BEFORE.contains(s))
    {
        return Err("--failover takes pairs only".into());
    }
    Ok(Parsed::Run(o))
}

/// Whether `prog` runs (`prog ARG` exits, whatever its status).
fn runs(prog: &str, arg: &str) -> bool {
    Command::new(prog)
        .arg(arg)
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .status()
        .is_ok()
}

/// Missing tools, each with the package that provides it.
fn missing_tools(o: &Options) -> Vec<String> {
    let mut missing = Vec::new();
    let uid = fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|v| v.split_whitespace().nth(1).map(str::to_string))
        })
        .unwrap_or_default();
    if uid != "0" {
        missing.push("root (network namespaces, port 67)".to_string());
    }
    let needs_kea = o
        .systems
        .iter()
        .any(|s| matches!(s, System::KeaLb | System::KeaHs | System::KeaSingle));
    let needs_isc = o
        .systems
        .iter()
        .any(|s| matches!(s, System::IscPair | System::IscSingle));
    for (need, prog, arg, pkg) in [
        (true, "ip", "-V", "iproute2"),
        (true, "perfdhcp", "-v", "kea-admin"),
        (needs_kea, "kea-dhcp4", "-v", "kea-dhcp4-server"),
        (needs_isc, "dhcpd", "--version", "isc-dhcp-server"),
        (
            o.latency || o.failover_capture,
            "dumpcap",
            "-v",
            "wireshark-common",
        ),
        (o.latency || o.failover_capture, "tshark", "-v", "tshark"),
    ] {
        if need && !runs(prog, arg) {
            missing.push(format!("{prog} (apt-get install -y {pkg})"));
        }
    }
    if needs_kea && !Path::new("/usr/lib/x86_64-linux-gnu/kea/hooks/libdhcp_ha.so").exists() {
        missing.push("Kea's HA hook libdhcp_ha.so (apt-get install -y kea-dhcp4-server)".into());
    }
    for server in o
        .systems
        .iter()
        .filter(|s| s.is_ours())
        .map(|&s| o.server_for(s))
    {
        let line = format!(
            "{} (cargo build --release --example dhcp-server)",
            server.display()
        );
        if !server.exists() && !missing.contains(&line) {
            missing.push(line);
        }
    }
    if o.generator == Generator::Flood && !flood_binary().exists() {
        missing.push(format!(
            "{} (cargo build --release -p failover-benches --bin dora-flood)",
            flood_binary().display()
        ));
    }
    missing
}

fn ip(args: &[&str]) -> io::Result<()> {
    let st = Command::new("ip")
        .args(args)
        .stderr(Stdio::piped())
        .output()?;
    if st.status.success() {
        Ok(())
    } else {
        Err(io::Error::other(format!(
            "ip {}: {}",
            args.join(" "),
            String::from_utf8_lossy(&st.stderr).trim()
        )))
    }
}

fn netns_exists(name: &str) -> bool {
    Path::new("/run/netns").join(name).exists()
}

/// The lab's namespaces; deleted on drop.
struct Net {
    created: Vec<&'static str>,
}

impl Net {
    fn up() -> io::Result<Net> {
        for n in [NS_A, NS_B, NS_C] {
            if netns_exists(n) {
                return Err(io::Error::other(format!(
                    "namespace {n} exists (a killed run? `perfdhcp-lab --cleanup` deletes it)"
                )));
            }
        }
        let mut net = Net {
            created: Vec::new(),
        };
        for n in [NS_A, NS_B, NS_C] {
            ip(&["netns", "add", n])?;
            net.created.push(n);
            ip(&["-n", n, "link", "set", "lo", "up"])?;
        }
        // One /16: the 16,384-address pool and the relay address fit one subnet declaration.
        ip(&[
            "-n",
            NS_C,
            "link",
            "add",
            "br0",
            "type",
            "bridge",
            "forward_delay",
            "0",
        ])?;
        ip(&[
            "-n",
            NS_C,
            "addr",
            "add",
            &format!("{RELAY}/16"),
            "dev",
            "br0",
        ])?;
        ip(&["-n", NS_C, "link", "set", "br0", "up"])?;
        for (ns, veth, addr) in [(NS_A, "va", ADDR_A), (NS_B, "vb", ADDR_B)] {
            ip(&[
                "-n", NS_C, "link", "add", veth, "type", "veth", "peer", "name", "eth1", "netns",
                ns,
            ])?;
            ip(&["-n", NS_C, "link", "set", veth, "master", "br0"])?;
            ip(&["-n", NS_C, "link", "set", veth, "up"])?;
            ip(&[
                "-n",
                ns,
                "addr",
                "add",
                &format!("{addr}/16"),
                "dev",
                "eth1",
            ])?;
            ip(&["-n", ns, "link", "set", "eth1", "up"])?;
        }
        Ok(net)
    }
}

impl Drop for Net {
    fn drop(&mut self) {
        for n in self.created.drain(..) {
            let _ = ip(&["netns", "del", n]);
        }
    }
}

/// A server process; stopped by PID (SIGTERM, then SIGKILL after 5 s) on drop.
struct Proc {
    label: String,
    child: Child,
    log: PathBuf,
    /// Kept open: the dhcp-server reads operator commands here.
    stdin: Option<std::process::ChildStdin>,
}

impl Proc {
    fn spawn(
        label: &str,
        ns: &str,
        argv: &[String],
        env: &[(&str, String)],
        log: &Path,
    ) -> io::Result<Proc> {
        let out = fs::File::create(log)?;
        let err = out.try_clone()?;
        let mut cmd = Command::new("ip");
        // `ip netns exec` execs the program: the child's PID is the server's.
        cmd.args(["netns", "exec", ns])
            .args(argv)
            .stdin(Stdio::piped())
            .stdout(out)
            .stderr(err);
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn()?;
        let stdin = child.stdin.take();
        Ok(Proc {
            label: label.to_string(),
            child,
            log: log.to_path_buf(),
            stdin,
        })
    }

    fn pid(&self) -> u32 {
        self.child.id()
    }

    fn alive(&mut self) -> bool {
        matches!(self.child.try_wait(), Ok(None))
    }

    fn log_text(&self) -> String {
        fs::read(&self.log)
            .map(|b| String::from_utf8_lossy(&b).into_owned())
            .unwrap_or_default()
    }

    fn signal(&self, sig: &str) {
        let _ = Command::new("kill")
            .args([sig, &self.pid().to_string()])
            .stderr(Stdio::null())
            .status();
    }

    fn stop(&mut self) {
        if !self.alive() {
            return;
        }
        self.stdin = None;
        self.signal("-TERM");
        let deadline = Instant::now() + Duration::from_secs(5);
        while Instant::now() < deadline {
            if !self.alive() {
                return;
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
    }

    /// utime + stime, clock ticks (/proc/PID/stat fields 14 and 15).
    fn cpu_ticks(&self) -> Option<u64> {
        let stat = fs::read_to_string(format!("/proc/{}/stat", self.pid())).ok()?;
        let rest = stat.rsplit_once(')')?.1;
        let f: Vec<&str> = rest.split_whitespace().collect();
        Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
    }
}

impl Drop for Proc {
    fn drop(&mut self) {
        self.stop();
    }
}

fn fill(tpl: &str, vars: &[(&str, &str)]) -> String {
    let mut s = tpl.to_string();
    for (k, v) in vars {
        s = s.replace(&format!("{{{{{k}}}}}"), v);
    }
    s
}

/// Server A or B: namespace, address, partner's address, Kea name.
#[derive(Clone, Copy)]
enum Side {
    A,
    B,
}

impl Side {
    fn ns(self) -> &'static str {
        match self {
            Side::A => NS_A,
            Side::B => NS_B,
        }
    }
    fn addr(self) -> &'static str {
        match self {
            Side::A => ADDR_A,
            Side::B => ADDR_B,
        }
    }
    fn peer(self) -> &'static str {
        match self {
            Side::A => ADDR_B,
            Side::B => ADDR_A,
        }
    }
    fn tag(self) -> &'static str {
        match self {
            Side::A => "a",
            Side::B => "b",
        }
    }
}

fn start_isc(o: &Options, dir: &Path, side: Side, pair: bool) -> io::Result<Proc> {
    let auto_partner_down = o.auto_partner_down;
    let apd = if auto_partner_down > 0 {
        format!("  auto-partner-down {auto_partner_down};\n")
    } else {
        String::new()
    };
    let (failover, pool_peer) = if pair {
        let primary = matches!(side, Side::A);
        (
            fill(
                TPL_ISC_FAILOVER,
                &[
                    ("ROLE", if primary { "primary" } else { "secondary" }),
                    ("ADDR", side.addr()),
                    ("PEER", side.peer()),
                    ("APD", &apd),
                    ("MUD", &o.mud.unwrap_or(10).to_string()),
                    (
                        "PRIMARY_ONLY",
                        &if primary {
                            format!("  mclt {MCLT};\n  split 128;\n")
                        } else {
                            String::new()
                        },
                    ),
                ],
            ),
            "    failover peer \"lab\";\n".to_string(),
        )
    } else {
        (String::new(), String::new())
    };
    let conf = dir.join("dhcpd.conf");
    fs::write(
        &conf,
        fill(
            TPL_ISC,
            &[
                ("FAILOVER", &failover),
                ("POOL_PEER", &pool_peer),
                ("POOL_FIRST", &o.pool_first()),
                ("POOL_LAST", &o.pool_last()),
            ],
        ),
    )?;
    let leases = dir.join("dhcpd.leases");
    fs::write(&leases, "")?;
    let p = |x: &Path| x.display().to_string();
    let argv = [
        "dhcpd".to_string(),
        "-4".into(),
        "-f".into(),
        "-d".into(),
        "-cf".into(),
        p(&conf),
        "-lf".into(),
        p(&leases),
        "-pf".into(),
        p(&dir.join("dhcpd.pid")),
        "eth1".into(),
    ];
    Proc::spawn(
        &format!("dhcpd-{}", side.tag()),
        side.ns(),
        &argv,
        &[],
        &dir.join("dhcpd.log"),
    )
}

#[derive(Clone, Copy)]
enum KeaMode {
    Single,
    LoadBalancing,
    HotStandby,
}

fn start_kea(o: &Options, dir: &Path, side: Side, mode: KeaMode) -> io::Result<Proc> {
    let d = dir.display().to_string();
    let whole = format!("{{\"pool\": \"{} - {}\"}}", o.pool_first(), o.pool_last());
    let (pools, hooks) = match mode {
        KeaMode::Single => (whole, String::new()),
        KeaMode::LoadBalancing | KeaMode::HotStandby => {
            let lb = matches!(mode, KeaMode::LoadBalancing);
            // Load balancing needs a pool per server, chosen by the HA classes: the two
            // halves of the same addresses.
            let pools = if lb {
                let half = o.pool / 2;
                format!(
                    "{{\"pool\": \"{} - {}\", \"client-class\": \"HA_server1\"}}, \
                     {{\"pool\": \"{} - {}\", \"client-class\": \"HA_server2\"}}",
                    o.pool_first(),
                    o.pool_addr(half - 1),
                    o.pool_addr(half),
                    o.pool_last()
                )
            } else {
                whole
            };
            let hooks = fill(
                TPL_KEA_HA,
                &[
                    (
                        "THIS",
                        match side {
                            Side::A => "server1",
                            Side::B => "server2",
                        },
                    ),
                    ("MODE", if lb { "load-balancing" } else { "hot-standby" }),
                    ("ROLE2", if lb { "secondary" } else { "standby" }),
                ],
            );
            (pools, hooks)
        }
    };
    let conf = dir.join("kea-dhcp4.json");
    fs::write(
        &conf,
        fill(
            TPL_KEA,
            &[("DIR", &d), ("POOLS", &pools), ("HOOKS", &hooks)],
        ),
    )?;
    // Two kea-dhcp4 on one host: a PID file directory each, no lock file.
    let env = [
        ("KEA_PIDFILE_DIR", d.clone()),
        ("KEA_LOCKFILE_DIR", "none".to_string()),
    ];
    let check = Command::new("ip")
        .args(["netns", "exec", side.ns(), "kea-dhcp4", "-t"])
        .arg(&conf)
        .envs(env.iter().map(|(k, v)| (*k, v.as_str())))
        .output()?;
    if !check.status.success() {
        return Err(io::Error::other(format!(
            "kea-dhcp4 -t {}: {}",
            conf.display(),
            String::from_utf8_lossy(&check.stdout)
        )));
    }
    let argv = [
        "kea-dhcp4".to_string(),
        "-c".into(),
        conf.display().to_string(),
    ];
    Proc::spawn(
        &format!("kea-{}", side.tag()),
        side.ns(),
        &argv,
        &env,
        &dir.join("kea.stdout"),
    )
}

fn start_ours(o: &Options, sys: System, dir: &Path, side: Side) -> io::Result<Proc> {
    let (server, auto_partner_down) = (o.server_for(sys), o.auto_partner_down);
    let role = match side {
        Side::A => "primary",
        Side::B => "secondary",
    };
    let argv: Vec<String> = [
        &server.display().to_string(),
        "--listen",
        "0.0.0.0:67",
        "--server-id",
        side.addr(),
        "--subnet",
        "16",
        "--pool",
        &format!("{}-{}", o.pool_first(), o.pool_last()),
        "--lease-time",
        "3600",
        "--plaintext",
        "--role",
        role,
        "--peer-listen",
        &format!("{}:647", side.addr()),
        "--partner",
        &format!("{}:647", side.peer()),
        "--bind",
        side.addr(),
        "--name",
        "lab",
        "--mclt",
        &MCLT.to_string(),
        "--split",
        "128",
        "--mrd",
        "15",
        "--status-every",
        "1",
        "--store",
        &dir.join("leases.log").display().to_string(),
    ]
    .iter()
    .map(|s| s.to_string())
    .collect();
    let mut argv = argv;
    if let Some(mud) = o.mud {
        argv.push("--mud".into());
        argv.push(mud.to_string());
    }
    if auto_partner_down > 0 {
        argv.push("--auto-partner-down".into());
        argv.push(auto_partner_down.to_string());
    }
    Proc::spawn(
        &format!("dhcp-server-{}", side.tag()),
        side.ns(),
        &argv,
        &[],
        &dir.join("dhcp-server.log"),
    )
}

/// Waits until every server's log holds its needle (`timeout` bounds it).
fn wait_logs(procs: &mut [Proc], needles: &[&str], timeout: Duration) -> io::Result<Duration> {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        for p in procs.iter_mut() {
            if !p.alive() {
                return Err(io::Error::other(format!(
                    "{} exited; its log: {}",
                    p.label,
                    p.log.display()
                )));
            }
        }
        if procs
            .iter()
            .zip(needles)
            .all(|(p, n)| p.log_text().contains(n))
        {
            return Ok(t0.elapsed());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(io::Error::other(format!(
        "not ready after {} s (waited for {needles:?})",
        timeout.as_secs()
    )))
}

/// Waits until `ready` holds for every server's log (`timeout` bounds it).
fn wait_until(procs: &mut [Proc], ready: fn(&str) -> bool, timeout: Duration) -> io::Result<()> {
    let t0 = Instant::now();
    while t0.elapsed() < timeout {
        for p in procs.iter_mut() {
            if !p.alive() {
                return Err(io::Error::other(format!("{} exited", p.label)));
            }
        }
        if procs.iter().all(|p| ready(&p.log_text())) {
            return Ok(());
        }
        std::thread::sleep(Duration::from_millis(200));
    }
    Err(io::Error::other(format!(
        "not settled after {} s",
        timeout.as_secs()
    )))
}

/// Whether a `dhcp-server`'s last status line (`--status-every 1`) shows pool balancing done:
/// NORMAL, nothing queued, unacknowledged or awaiting commit, and BACKUP addresses.
fn ours_balanced(log: &str) -> bool {
    let Some(line) = log.lines().rfind(|l| l.contains("status: ")) else {
        return false;
    };
    line.contains("status: NORMAL")
        && line.contains("queued 0, unacked 0, awaiting commit 0")
        && !line.contains(" 0 BACKUP")
}

/// Starts a system with fresh stores under `dir` and waits for its failover/HA state.
fn start_system(o: &Options, sys: System, dir: &Path) -> io::Result<(Vec<Proc>, Duration)> {
    let mut procs = Vec::new();
    let sides: &[Side] = if sys.is_pair() {
        &[Side::A, Side::B]
    } else {
        &[Side::A]
    };
    for &side in sides {
        let d = dir.join(side.tag());
        fs::create_dir_all(&d)?;
        procs.push(match sys {
            System::IscPair | System::IscSingle => start_isc(o, &d, side, sys.is_pair())?,
            System::KeaLb => start_kea(o, &d, side, KeaMode::LoadBalancing)?,
            System::KeaHs => start_kea(o, &d, side, KeaMode::HotStandby)?,
            System::KeaSingle => start_kea(o, &d, side, KeaMode::Single)?,
            System::OursPair
            | System::OursSingle
            | System::OursPairBefore
            | System::OursSingleBefore => start_ours(o, sys, &d, side)?,
        });
    }
    let kea_log = |p: &Proc| p.log.with_file_name("kea.log");
    let ready = match sys {
        System::IscPair => wait_logs(
            &mut procs,
            &["to normal", "to normal"],
            Duration::from_secs(90),
        )?,
        System::IscSingle => wait_logs(
            &mut procs,
            &["Server starting service"],
            Duration::from_secs(30),
        )?,
        System::KeaLb | System::KeaHs | System::KeaSingle => {
            // Kea logs to kea.log, not stdout: watch that file.
            for p in procs.iter_mut() {
                p.log = kea_log(p);
            }
            let needle = match sys {
                System::KeaLb => "to LOAD-BALANCING state",
                System::KeaHs => "to HOT-STANDBY state",
                _ => "DHCP4_STARTED",
            };
            wait_logs(&mut procs, &[needle, needle], Duration::from_secs(90))?
        }
        System::OursPair | System::OursPairBefore => {
            let t0 = Instant::now();
            wait_logs(
                &mut procs,
                &["→ NORMAL", "→ NORMAL"],
                Duration::from_secs(90),
            )?;
            // And pool balancing done (the primary's BNDUPDs of half the pool, each
            // acknowledged): the load must not start beside 8,192 updates each way.
            wait_until(&mut procs, ours_balanced, Duration::from_secs(90))?;
            t0.elapsed()
        }
        System::OursSingle | System::OursSingleBefore => {
            // No partner: the operator declares it down, as a lone failover server must be.
            // A fresh store starts in STARTUP, then RECOVER (no state of its own, §9.3) after
            // the startup wait, where only a forced PARTNER-DOWN is taken.
            let t0 = Instant::now();
            wait_logs(&mut procs, &["→ RECOVER"], Duration::from_secs(60))?;
            if let Some(stdin) = procs.first_mut().and_then(|p| p.stdin.as_mut()) {
                stdin.write_all(b"partner-down force\n")?;
                stdin.flush()?;
            }
            wait_logs(&mut procs, &["→ PARTNER-DOWN"], Duration::from_secs(30))?;
            t0.elapsed()
        }
    };
    Ok((procs, ready))
}

/// One direction of perfdhcp's statistics.
#[derive(Debug, Clone, Default)]
struct Leg {
    sent: u64,
    received: u64,
    drops: u64,
    /// Replies matching no outstanding request: a second server's answer, or a late one.
    orphans: u64,
    min_ms: Option<f64>,
    avg_ms: Option<f64>,
    max_ms: Option<f64>,
    std_ms: Option<f64>,
    /// Median and 99th percentile of the answered exchanges, from a capture (`--latency`).
    p50_ms: Option<f64>,
    p99_ms: Option<f64>,
}

/// perfdhcp's final report, and its `-t 1` lines (cumulative RA received).
#[derive(Debug, Clone, Default)]
struct Report {
    rate_line: Option<f64>,
    /// The partner's lag after a DHCPACK (`--latency`, pairs speaking the failover protocol).
    lag_p50_ms: Option<f64>,
    lag_p99_ms: Option<f64>,
    discover_offer: Leg,
    request_ack: Leg,
    periodic_ra_received: Vec<u64>,
}

fn number(s: &str) -> Option<f64> {
    s.split_whitespace()
        .next()?
        .parse::<f64>()
        .ok()
        .filter(|x| x.is_finite())
}

fn parse_report(text: &str) -> Report {
    let mut r = Report::default();
    let mut leg: Option<&mut Leg> = None;
    for line in text.lines() {
        let line = line.trim();
        if let Some(v) = line.strip_prefix("Rate:") {
            r.rate_line = number(v);
        } else if line.starts_with("***Statistics for: DISCOVER-OFFER") {
            leg = Some(&mut r.discover_offer);
        } else if line.starts_with("***Statistics for: REQUEST-ACK") {
            leg = Some(&mut r.request_ack);
        } else if line.starts_with("sent:") && line.contains("received:") {
            // "sent: 9/9; received: 9/8; drops: ..." — the second figure is REQUEST-ACK.
            let ra = line
                .split(';')
                .find_map(|f| f.trim().strip_prefix("received:"))
                .and_then(|v| v.trim().split('/').nth(1))
                .and_then(|v| v.parse::<u64>().ok());
            if let Some(ra) = ra {
                r.periodic_ra_received.push(ra);
            }
        } else if let Some(l) = leg.as_deref_mut() {
            let int = |v: &str| number(v).map_or(0, |x| x as u64);
            if let Some(v) = line.strip_prefix("sent packets:") {
                l.sent = int(v);
            } else if let Some(v) = line.strip_prefix("received packets:") {
                l.received = int(v);
            } else if let Some(v) = line.strip_prefix("drops:") {
                l.drops = int(v);
            } else if let Some(v) = line.strip_prefix("orphans:") {
                l.orphans = int(v);
            } else if let Some(v) = line.strip_prefix("min delay:") {
                l.min_ms = number(v);
            } else if let Some(v) = line.strip_prefix("avg delay:") {
                l.avg_ms = number(v);
            } else if let Some(v) = line.strip_prefix("max delay:") {
                l.max_ms = number(v);
            } else if let Some(v) = line.strip_prefix("std deviation:") {
                l.std_ms = number(v);
            } else if let Some(v) = line.strip_prefix("p50 delay:") {
                // dora-flood's; perfdhcp 2.2 prints none.
                l.p50_ms = number(v);
            } else if let Some(v) = line.strip_prefix("p99 delay:") {
                l.p99_ms = number(v);
            }
        }
    }
    r
}

/// utime + stime of process `pid`, clock ticks (/proc/PID/stat fields 14 and 15).
fn cpu_ticks_of(pid: u32) -> Option<u64> {
    let stat = fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let rest = stat.rsplit_once(')')?.1;
    let f: Vec<&str> = rest.split_whitespace().collect();
    Some(f.get(11)?.parse::<u64>().ok()? + f.get(12)?.parse::<u64>().ok()?)
}

/// Runs the generator in the client namespace for `seconds` at `rate` against `sys`; its
/// output goes to `log`. Returns its report and the CPU it used while sending (% of one
/// core, from /proc every 100 ms: whether it, not the server, was the bottleneck).
fn generate(
    generator: Generator,
    clients: u32,
    sys: System,
    rate: u32,
    seconds: u32,
    log: &Path,
) -> io::Result<(Report, Option<f64>)> {
    let mut cmd = Command::new("ip");
    cmd.args(["netns", "exec", NS_C]);
    match generator {
        Generator::Perfdhcp => {
            cmd.args(["perfdhcp", "-4", "-l", "br0"])
                .args(["-R", &clients.to_string()])
                .args(["-r", &rate.to_string()])
                .args(["-p", &seconds.to_string()])
                .args(["-W", &EXIT_WAIT_US.to_string()]);
        }
        Generator::Flood => {
            let to = if sys.is_pair() {
                format!("{ADDR_A},{ADDR_B}")
            } else {
                ADDR_A.to_string()
            };
            cmd.arg(flood_binary())
                .args(["--rate", &rate.to_string()])
                .args(["--seconds", &seconds.to_string()])
                .args(["--to", &to])
                .args(["--clients", &clients.to_string()])
                .args(["--giaddr", RELAY])
                .args(["--wait-ms", &(EXIT_WAIT_US / 1000).to_string()]);
        }
    }
    let out = fs::File::create(log)?;
    let mut child = cmd
        .stdout(out.try_clone()?)
        .stderr(out)
        .stdin(Stdio::null())
        .spawn()?;
    // `ip netns exec` execs the generator: the child's PID is its.
    let t0 = Instant::now();
    let sending = Duration::from_secs(u64::from(seconds));
    let mut cpu_while_sending = None;
    let deadline = Instant::now() + Duration::from_secs(u64::from(seconds) + 30);
    loop {
        if child.try_wait()?.is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = child.kill();
            let _ = child.wait();
            return Err(io::Error::other(format!(
                "{} did not end in time; killed",
                generator.name()
            )));
        }
        if t0.elapsed() <= sending
            && let Some(t) = cpu_ticks_of(child.id())
        {
            cpu_while_sending = Some((t, t0.elapsed()));
        }
        std::thread::sleep(Duration::from_millis(100));
    }
    let cpu = cpu_while_sending
        .filter(|(_, at)| !at.is_zero())
        .map(|(t, at)| 100.0 * t as f64 / ticks_per_s() / at.as_secs_f64());
    Ok((parse_report(&fs::read_to_string(log)?), cpu))
}

/// One rung of the ladder.
struct Run {
    system: System,
    offered: u32,
    seconds: u32,
    report: Report,
    /// Server CPU during the run, % of one core, per server.
    cpu: Vec<f64>,
    load1: String,
    /// perfdhcp or dora-flood, and its CPU while sending (% of one core).
    generator: String,
    generator_cpu: Option<f64>,
}

impl Run {
    /// REQUEST→ACK received per second of sending (perfdhcp's Rate line also counts -W).
    fn dora_per_s(&self) -> f64 {
        self.report.request_ack.received as f64 / f64::from(self.seconds)
    }
    fn drops(&self) -> u64 {
        self.report.discover_offer.drops + self.report.request_ack.drops
    }
    fn drop_pct(&self) -> f64 {
        let sent = self.report.discover_offer.sent + self.report.request_ack.sent;
        if sent == 0 {
            100.0
        } else {
            100.0 * self.drops() as f64 / sent as f64
        }
    }
}

fn ticks_per_s() -> f64 {
    Command::new("getconf")
        .arg("CLK_TCK")
        .output()
        .ok()
        .and_then(|o| {
            String::from_utf8_lossy(&o.stdout)
                .trim()
                .parse::<f64>()
                .ok()
        })
        .unwrap_or(100.0)
}

fn load1() -> String {
    failover_testkit::isc::pair::load1()
}

fn ladder(o: &Options, sys: System, dir: &Path, runs: &mut Vec<Run>) -> io::Result<()> {
    let (mut procs, ready) = start_system(o, sys, dir)?;
    println!("{}: ready in {:.1} s", sys.name(), ready.as_secs_f64());
    let hz = ticks_per_s();
    let mut saturated = 0;
    for &rate in &o.rates {
        std::thread::sleep(Duration::from_secs(2));
        let before: Vec<Option<u64>> = procs.iter().map(Proc::cpu_ticks).collect();
        let load = load1();
        let capture = if o.latency {
            Some(Capture::start(
                &dir.join(format!("capture-{rate}.pcapng")),
                "udp port 67 or tcp port 647",
            )?)
        } else {
            None
        };
        let t0 = Instant::now();
        let report = generate(
            o.generator,
            o.clients,
            sys,
            rate,
            o.seconds,
            &dir.join(format!("{}-{rate}.txt", o.generator.name())),
        );
        let wall = t0.elapsed().as_secs_f64();
        let cpu = procs
            .iter()
            .zip(&before)
            .map(|(p, b)| match (b, p.cpu_ticks()) {
                (Some(b), Some(a)) => 100.0 * (a - b) as f64 / hz / wall,
                _ => f64::NAN,
            })
            .collect();
        let (mut report, generator_cpu) = report?;
        if let Some(c) = capture {
            let file = c.stop();
            let [d, a, lag] = latencies(&file)?;
            (report.discover_offer.p50_ms, report.discover_offer.p99_ms) = d.unzip();
            (report.request_ack.p50_ms, report.request_ack.p99_ms) = a.unzip();
            (report.lag_p50_ms, report.lag_p99_ms) = lag.unzip();
            // The numbers are kept; the packets (tens of MB a rung) are not.
            let _ = fs::remove_file(&file);
        }
        let run = Run {
            system: sys,
            offered: rate,
            seconds: o.seconds,
            report,
            cpu,
            load1: load,
            generator: o.generator.name().to_string(),
            generator_cpu,
        };
        println!(
            "{:12} r={:6} → {:8.0} DORA/s, drops {:5.2} % (DO {} / RA {}), RA avg {} ms, max {} ms, CPU {} + {}: {} %, load {}",
            sys.name(),
            rate,
            run.dora_per_s(),
            run.drop_pct(),
            run.report.discover_offer.drops,
            run.report.request_ack.drops,
            opt(run.report.request_ack.avg_ms),
            opt(run.report.request_ack.max_ms),
            run.cpu
                .iter()
                .map(|c| format!("{c:.0} %"))
                .collect::<Vec<_>>()
                .join(" + "),
            o.generator.name(),
            opt(run.generator_cpu),
            run.load1
        );
        if o.latency || o.generator == Generator::Flood {
            let (d, a) = (&run.report.discover_offer, &run.report.request_ack);
            println!(
                "{:12}          p50 / p99 ms: DO {} / {}, RA {} / {}, partner's lag {} / {}",
                "",
                opt(d.p50_ms),
                opt(d.p99_ms),
                opt(a.p50_ms),
                opt(a.p99_ms),
                opt(run.report.lag_p50_ms),
                opt(run.report.lag_p99_ms)
            );
        }
        let dora = run.dora_per_s();
        runs.push(run);
        for p in procs.iter_mut() {
            if !p.alive() {
                return Err(io::Error::other(format!("{} died during the run", p.label)));
            }
        }
        // Two rungs at under half the offered rate: higher rates only measure the overload.
        if dora < 0.5 * f64::from(rate) {
            saturated += 1;
            if saturated >= 2 {
                break;
            }
        }
    }
    for p in procs.iter_mut() {
        p.stop();
    }
    Ok(())
}

/// dumpcap on the lab's bridge, in the clients' namespace: every DHCP packet perfdhcp sends
/// and receives, timestamped by the kernel.
struct Capture {
    child: Child,
    file: PathBuf,
}

impl Capture {
    fn start(file: &Path, filter: &str) -> io::Result<Capture> {
        let _ = fs::remove_file(file);
        let child = Command::new("ip")
            .args(["netns", "exec", NS_C, "dumpcap", "-q", "-i", "br0"])
            .args(["-B", "64", "-f", filter, "-w"])
            .arg(file)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .spawn()?;
        let mut c = Capture {
            child,
            file: file.to_path_buf(),
        };
        // Running once the file exists (dumpcap writes its header first); 5 s at most.
        let t0 = Instant::now();
        while !c.file.exists() && t0.elapsed() < Duration::from_secs(5) {
            if matches!(c.child.try_wait(), Ok(Some(_))) {
                return Err(io::Error::other("dumpcap exited at start"));
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        std::thread::sleep(Duration::from_millis(300));
        Ok(c)
    }

    /// Stops dumpcap by PID (SIGINT: it finishes the file; SIGKILL after 5 s).
    fn stop(mut self) -> PathBuf {
        let _ = Command::new("kill")
            .args(["-INT", &self.child.id().to_string()])
            .status();
        let t0 = Instant::now();
        while t0.elapsed() < Duration::from_secs(5) {
            if matches!(self.child.try_wait(), Ok(Some(_))) {
                return self.file.clone();
            }
            std::thread::sleep(Duration::from_millis(50));
        }
        let _ = self.child.kill();
        let _ = self.child.wait();
        self.file.clone()
    }
}

impl Drop for Capture {
    fn drop(&mut self) {
        if matches!(self.child.try_wait(), Ok(None)) {
            let _ = self.child.kill();
            let _ = self.child.wait();
        }
    }
}

/// The `q` quantile of sorted `xs`, nearest rank.
fn quantile(xs: &[f64], q: f64) -> Option<f64> {
    let rank = (q * xs.len() as f64).ceil() as usize;
    xs.get(rank.max(1) - 1).copied()
}

/// One captured packet, as tshark decodes it: a DHCP message (xid, option 53, yiaddr) or a
/// TCP segment of failover messages (their types and assigned-IP-address options).
#[derive(Debug, Default)]
struct Packet {
    t: f64,
    src: String,
    xid: String,
    dhcp: Option<u8>,
    yiaddr: String,
    /// (message type, assigned-IP-address) of each BNDUPD (3) and BNDACK (4) in the segment.
    bindings: Vec<(u8, String)>,
}

/// The tshark fields [`parse_packet`] reads, in order.
const FIELDS: [&str; 7] = [
    "frame.time_epoch",
    "ip.src",
    "dhcp.id",
    "dhcp.option.dhcp",
    "dhcp.ip.your",
    "dhcpfo.type",
    "dhcpfo.assignedipaddress",
];

/// A line of `tshark -T fields` with [`FIELDS`], `|` between fields and `;` between the values
/// of one field. A failover segment's assigned addresses are those of its BNDUPDs and BNDACKs,
/// one each, in order (CONTACT, STATE and the others carry none).
fn parse_packet(line: &str) -> Option<Packet> {
    let f: Vec<&str> = line.split('|').collect();
    let field = |i: usize| f.get(i).copied().unwrap_or("");
    let types = field(5).split(';').filter_map(|t| t.parse::<u8>().ok());
    let addresses = field(6).split(';').filter(|a| !a.is_empty());
    Some(Packet {
        t: field(0).parse().ok()?,
        src: field(1).to_string(),
        xid: field(2).to_string(),
        dhcp: field(3).parse().ok(),
        yiaddr: field(4).to_string(),
        bindings: types
            .filter(|t| matches!(t, 3 | 4))
            .zip(addresses)
            .map(|(t, a)| (t, a.to_string()))
            .collect(),
    })
}

/// Each DISCOVER→OFFER and REQUEST→ACK delay in ms, the first answer to each request (a
/// pair's second answer is not a faster one).
fn exchange_delays(packets: &[Packet]) -> (Vec<f64>, Vec<f64>) {
    let mut asked: HashMap<(&str, u8), f64> = HashMap::new();
    let (mut d, mut a) = (Vec::new(), Vec::new());
    for p in packets {
        match p.dhcp {
            Some(kind @ (1 | 3)) => {
                asked.insert((&p.xid, kind), p.t);
            }
            Some(kind @ (2 | 5)) => {
                let request = if kind == 2 { 1 } else { 3 };
                if let Some(t0) = asked.remove(&(p.xid.as_str(), request)) {
                    let out = if kind == 2 { &mut d } else { &mut a };
                    out.push((p.t - t0) * 1000.0);
                }
            }
            _ => {}
        }
    }
    (d, a)
}

/// The partner's lag, in ms, for each DHCPACK a server of a pair sent: until the first BNDACK
/// the partner sent for that address (it holds the lease durably then) from 1 s before the
/// DHCPACK on, within 30 s; negative when the partner had it before the client. None for a
/// DHCPACK whose address the partner never acknowledged in that window.
fn partner_lags(packets: &[Packet]) -> Vec<f64> {
    let mut acked: HashMap<(&str, &str), Vec<f64>> = HashMap::new();
    for p in packets {
        for (t, a) in &p.bindings {
            if *t == 4 {
                acked.entry((&p.src, a)).or_default().push(p.t);
            }
        }
    }
    let partner = |s: &str| match s {
        ADDR_A => Some(ADDR_B),
        ADDR_B => Some(ADDR_A),
        _ => None,
    };
    packets
        .iter()
        .filter(|p| p.dhcp == Some(5) && !p.yiaddr.is_empty())
        .filter_map(|p| {
            let times = acked.get(&(partner(&p.src)?, p.yiaddr.as_str()))?;
            let first = times
                .iter()
                .find(|t| **t >= p.t - 1.0 && **t <= p.t + 30.0)?;
            Some((first - p.t) * 1000.0)
        })
        .collect()
}

type Percentiles = Option<(f64, f64)>;

/// p50 and p99 of DISCOVER→OFFER, REQUEST→ACK and the partner's lag in the capture `file`.
fn latencies(file: &Path) -> io::Result<[Percentiles; 3]> {
    let mut cmd = Command::new("tshark");
    cmd.arg("-r")
        .arg(file)
        .args(["-d", "tcp.port==647,dhcpfo", "-T", "fields"])
        .args(["-E", "separator=|", "-E", "aggregator=;"]);
    for f in FIELDS {
        cmd.args(["-e", f]);
    }
    let out = cmd.stderr(Stdio::null()).output()?;
    let text = String::from_utf8_lossy(&out.stdout);
    let packets: Vec<Packet> = text.lines().filter_map(parse_packet).collect();
    let (mut d, mut a) = exchange_delays(&packets);
    let mut lag = partner_lags(&packets);
    let pcts = |xs: &mut Vec<f64>| {
        xs.sort_by(f64::total_cmp);
        Some((quantile(xs, 0.50)?, quantile(xs, 0.99)?))
    };
    Ok([pcts(&mut d), pcts(&mut a), pcts(&mut lag)])
}

fn opt(x: Option<f64>) -> String {
    x.map_or_else(|| "-".to_string(), |v| format!("{v:.2}"))
}

/// The failover test's result.
struct Takeover {
    system: System,
    rate: u32,
    killed_at_s: u32,
    /// RA received each second (from perfdhcp's cumulative -t 1 lines).
    per_second: Vec<u64>,
    survivor_state_after: String,
    /// Seconds from the kill until the survivor's log says PARTNER-DOWN (polled every 250 ms).
    partner_down_after: Option<f64>,
    pool: u32,
    clients: u32,
    /// What the survivor handed out, from the capture (`--failover-capture`).
    addresses: Option<Addresses>,
}

impl Takeover {
    /// Seconds after the kill until a second with at least 90 % of the offered rate answered.
    fn full_service_after(&self) -> Option<u32> {
        let k = self.killed_at_s as usize;
        self.per_second
            .iter()
            .enumerate()
            .skip(k + 1)
            .find(|(_, n)| **n as f64 >= 0.9 * f64::from(self.rate))
            .map(|(i, _)| (i - k) as u32)
    }
    /// Seconds after the kill from which the survivor may allocate the partner's free
    /// addresses: PARTNER-DOWN + MCLT for ISC and ours (draft §5.4, §8.2), PARTNER-DOWN for
    /// Kea HA (no MCLT; a hot standby serves no one before).
    fn whole_pool_predicted(&self) -> Option<f64> {
        let mclt = match self.system {
            System::KeaLb | System::KeaHs => 0.0,
            _ => f64::from(MCLT),
        };
        self.partner_down_after.map(|t| t + mclt)
    }

    fn worst_second_after(&self) -> Option<u64> {
        self.per_second
            .iter()
            .skip(self.killed_at_s as usize + 1)
            .copied()
            .min()
    }
}

/// Under steady load, SIGKILLs server A (the primary) `kill_at` seconds in.
fn takeover(o: &Options, sys: System, dir: &Path) -> io::Result<Takeover> {
    let (mut procs, _) = start_system(o, sys, dir)?;
    // 80 s after the kill by default: Kea's PARTNER-DOWN comes after its 60 s
    // max-response-delay, ISC's and ours' use of the partner's addresses at 10 + MCLT.
    let kill_at = 10u32;
    let seconds = kill_at + o.failover_watch;
    // DHCP only: the failover connection's segments would only grow the file.
    let capture = if o.failover_capture {
        Some(Capture::start(&dir.join("failover.pcapng"), "udp port 67")?)
    } else {
        None
    };
    let mut killed_epoch = 0.0;
    let needle = match sys {
        System::IscPair => "to partner-down",
        System::OursPair | System::OursPairBefore => "→ PARTNER-DOWN",
        _ => "to PARTNER-DOWN state",
    };
    let mut killed_at: Option<Instant> = None;
    let mut partner_down_after = None;
    let mut seen = 0u64;
    let mut next_look = Instant::now();
    let log = dir.join("perfdhcp-failover.txt");
    let rate = o.failover_rate;
    let mut cmd_child = {
        let out = fs::File::create(&log)?;
        Command::new("ip")
            .args(["netns", "exec", NS_C, "perfdhcp", "-4", "-l", "br0"])
            .args(["-R", &o.clients.to_string(), "-r", &rate.to_string()])
            .args(["-p", &seconds.to_string(), "-t", "1"])
            .args(["-W", &EXIT_WAIT_US.to_string()])
            .stdout(out.try_clone()?)
            .stderr(out)
            .stdin(Stdio::null())
            .spawn()?
    };
    // Count the periodic lines: the kill lands after the kill_at-th second's report.
    let t0 = Instant::now();
    let deadline = t0 + Duration::from_secs(u64::from(seconds) + 30);
    let mut killed = false;
    loop {
        if cmd_child.try_wait()?.is_some() {
            break;
        }
        if Instant::now() > deadline {
            let _ = cmd_child.kill();
            let _ = cmd_child.wait();
            return Err(io::Error::other("perfdhcp did not end in time; killed"));
        }
        if !killed {
            let n = parse_report(&fs::read_to_string(&log).unwrap_or_default())
                .periodic_ra_received
                .len();
            if n >= kill_at as usize {
                if let Some(a) = procs.first_mut() {
                    let _ = a.child.kill();
                    let _ = a.child.wait();
                }
                killed = true;
                killed_at = Some(Instant::now());
                // The capture's clock: the kernel's wall time.
                killed_epoch = std::time::SystemTime::now()
                    .duration_since(std::time::UNIX_EPOCH)
                    .map_or(0.0, |d| d.as_secs_f64());
            }
        } else if let (Some(k), None, Some(b)) = (killed_at, partner_down_after, procs.get(1))
            && Instant::now() >= next_look
        {
            next_look = Instant::now() + Duration::from_millis(250);
            let (found, end) = log_has_since(&b.log, seen, needle);
            seen = end.saturating_sub(needle.len() as u64);
            if found {
                partner_down_after = Some(k.elapsed().as_secs_f64());
            }
        }
        std::thread::sleep(Duration::from_millis(20));
    }
    let report = parse_report(&fs::read_to_string(&log)?);
    let mut per_second = Vec::new();
    let mut last = 0;
    // Only the sending seconds: perfdhcp's last line comes during its -W wait.
    for &c in report.periodic_ra_received.iter().take(seconds as usize) {
        per_second.push(c.saturating_sub(last));
        last = c;
    }
    let survivor_state_after = procs
        .get(1)
        .map_or_else(|| "?".to_string(), |b| last_state(sys, &b.log_text()));
    for p in procs.iter_mut() {
        p.stop();
    }
    let addresses = match capture {
        Some(c) => {
            let file = c.stop();
            let acks = read_acks(&file)?;
            // The numbers are kept; the packets are not.
            let _ = fs::remove_file(&file);
            Some(survivor_addresses(
                &acks,
                killed_epoch,
                ADDR_B,
                o.failover_watch,
            ))
        }
        None => None,
    };
    Ok(Takeover {
        system: sys,
        rate,
        killed_at_s: kill_at,
        per_second,
        survivor_state_after,
        partner_down_after,
        pool: o.pool,
        clients: o.clients,
        addresses,
    })
}

/// A DHCPACK on the bridge: when, from which server, which address, to which client.
#[derive(Debug, Clone)]
struct Ack {
    t: f64,
    src: String,
    yiaddr: String,
    chaddr: String,
}

/// A line of `tshark -T fields` with time, ip.src, yiaddr and chaddr, `|` between them.
fn parse_ack(line: &str) -> Option<Ack> {
    let mut f = line.split('|');
    let t = f.next()?.parse().ok()?;
    let (src, yiaddr) = (f.next()?, f.next()?);
    // The first: a server echoing the client-identifier (01 and the MAC) shows a second.
    let chaddr = f.next()?.split(',').next()?;
    if yiaddr.is_empty() || yiaddr == "0.0.0.0" {
        return None;
    }
    Some(Ack {
        t,
        src: src.to_string(),
        yiaddr: yiaddr.to_string(),
        chaddr: chaddr.to_string(),
    })
}

/// The DHCPACKs in the capture `file`, in time order.
fn read_acks(file: &Path) -> io::Result<Vec<Ack>> {
    let out = Command::new("tshark")
        .arg("-r")
        .arg(file)
        .args(["-Y", "dhcp.option.dhcp == 5", "-T", "fields"])
        .args(["-E", "separator=|"])
        .args(["-e", "frame.time_epoch", "-e", "ip.src"])
        .args(["-e", "dhcp.ip.your", "-e", "dhcp.hw.mac_addr"])
        .stderr(Stdio::null())
        .output()?;
    let mut acks: Vec<Ack> = String::from_utf8_lossy(&out.stdout)
        .lines()
        .filter_map(parse_ack)
        .collect();
    acks.sort_by(|a, b| a.t.total_cmp(&b.t));
    Ok(acks)
}

/// A stretch this long without a new address while almost every client asks for one (many
/// more clients than addresses): the survivor has no free address it may give.
const STALL_S: f64 = 5.0;

/// What the survivor handed out after the kill, from the capture.
#[derive(Debug, Clone, Default)]
struct Addresses {
    /// Per second after the kill (second k: (k - 1, k] s): the survivor's DHCPACKs, and those
    /// of them giving an address no DHCPACK had given before in the test (a free address).
    acks: Vec<u32>,
    new: Vec<u32>,
    /// The survivor's first DHCPACK to a client the dead server would have answered: one in
    /// an RFC 3074 hash bucket only the dead server answered before the kill (perfdhcp's
    /// clients are new ones, in sequence, until -R wraps: none is a renewal). A hot standby
    /// answered none: every client is the dead server's.
    first_to_dead_clients: Option<f64>,
    /// Each stretch of at least [`STALL_S`] without a new address from the survivor: from
    /// its last new address (or the kill) to its next one (`None`: none before the end).
    stalls: Vec<(f64, Option<f64>)>,
    /// New addresses from the survivor after the kill: before the longest stall, after it.
    new_before_stall: u32,
    new_after_stall: u32,
    /// Distinct addresses given in the whole test, by either server.
    distinct: usize,
}

impl Addresses {
    /// The longest stall: the survivor's own free addresses used up, until it may take the
    /// partner's (or, for a hot standby, until it serves at all).
    fn longest_stall(&self) -> Option<(f64, Option<f64>)> {
        let end = self.acks.len() as f64;
        self.stalls
            .iter()
            .copied()
            .max_by(|a, b| (a.1.unwrap_or(end) - a.0).total_cmp(&(b.1.unwrap_or(end) - b.0)))
    }
}

/// The survivor's DHCPACKs after the kill at `kill` (epoch seconds), for `watch` seconds.
fn survivor_addresses(acks: &[Ack], kill: f64, survivor: &str, watch: u32) -> Addresses {
    let mut a = Addresses {
        acks: vec![0; watch as usize],
        new: vec![0; watch as usize],
        ..Addresses::default()
    };
    // Which server answered each hash bucket before the kill: learnt, not assumed (ISC's,
    // Kea's and ours' split need not agree on which half is the primary's), and under the key
    // that splits them best: perfdhcp sends a client-identifier (01 and the MAC), which a
    // server may hash instead of chaddr (RFC 3074 §4).
    let bucket = |chaddr: &str, client_id: bool| -> Option<u8> {
        let mut key: Vec<u8> = if client_id { vec![1] } else { Vec::new() };
        for x in chaddr.split(':') {
            key.push(u8::from_str_radix(x, 16).ok()?);
        }
        Some(failover_proto::hash::client_bucket(None, &key))
    };
    let learn = |client_id: bool| {
        let (mut dead_b, mut own_b) = ([false; 256], [false; 256]);
        for k in acks.iter().filter(|k| k.t < kill) {
            if let Some(b) = bucket(&k.chaddr, client_id) {
                let side = if k.src == survivor {
                    &mut own_b
                } else {
                    &mut dead_b
                };
                if let Some(x) = side.get_mut(usize::from(b)) {
                    *x = true;
                }
            }
        }
        let shared = dead_b
            .iter()
            .zip(&own_b)
            .filter(|(d, o)| **d && **o)
            .count();
        (shared, dead_b, own_b)
    };
    let (by_chaddr, by_id) = (learn(false), learn(true));
    let client_id = by_id.0 < by_chaddr.0;
    let (_, dead_b, own_b) = if client_id { by_id } else { by_chaddr };
    let dead_s = |chaddr: &str| {
        bucket(chaddr, client_id).is_some_and(|b| {
            let b = usize::from(b);
            dead_b.get(b) == Some(&true) && own_b.get(b) != Some(&true)
        })
    };
    let mut given: std::collections::HashSet<&str> = std::collections::HashSet::new();
    let mut new_times = Vec::new();
    for k in acks {
        let fresh = given.insert(&k.yiaddr);
        let after = k.t - kill;
        if k.src == survivor && after >= 0.0 && after < f64::from(watch) {
            let i = after.floor() as usize;
            if let (Some(n), Some(m)) = (a.acks.get_mut(i), a.new.get_mut(i)) {
                *n += 1;
                *m += u32::from(fresh);
            }
            if fresh {
                new_times.push(after);
            }
            if a.first_to_dead_clients.is_none() && dead_s(&k.chaddr) {
                a.first_to_dead_clients = Some(after);
            }
        }
    }
    a.distinct = given.len();
    let mut prev = 0.0;
    for &t in &new_times {
        if t - prev >= STALL_S {
            a.stalls.push((prev, Some(t)));
        }
        prev = t;
    }
    if f64::from(watch) - prev >= STALL_S {
        a.stalls.push((prev, None));
    }
    let split = a.longest_stall().map_or(f64::INFINITY, |(from, _)| from);
    a.new_before_stall = new_times.iter().filter(|t| **t <= split).count() as u32;
    a.new_after_stall = new_times.len() as u32 - a.new_before_stall;
    a
}

/// Whether `path` holds `needle` after byte `from`; also the file's length (the next `from`).
fn log_has_since(path: &Path, from: u64, needle: &str) -> (bool, u64) {
    use std::io::{Read, Seek, SeekFrom};
    let Ok(mut f) = fs::File::open(path) else {
        return (false, from);
    };
    let mut buf = Vec::new();
    if f.seek(SeekFrom::Start(from)).is_err() || f.read_to_end(&mut buf).is_err() {
        return (false, from);
    }
    let end = from + buf.len() as u64;
    (String::from_utf8_lossy(&buf).contains(needle), end)
}

/// The survivor's last failover/HA state, from its log.
fn last_state(sys: System, log: &str) -> String {
    let found = match sys {
        System::IscPair => log
            .lines()
            .filter_map(|l| {
                l.split_once("I move from")
                    .map(|(_, r)| r.trim().to_string())
            })
            .next_back(),
        System::OursPair | System::OursPairBefore => log
            .lines()
            .filter(|l| l.contains(" → "))
            .filter_map(|l| l.rsplit_once(" → ").map(|(_, r)| r.trim().to_string()))
            .next_back(),
        _ => log
            .lines()
            .filter_map(|l| {
                l.split_once("server transitions from")
                    .map(|(_, r)| r.trim().to_string())
            })
            .next_back(),
    };
    found.unwrap_or_else(|| "?".to_string())
}

fn write_csv(out: &Path, runs: &[Run], takeovers: &[Takeover]) -> io::Result<()> {
    let mut s = String::from(
        "system,offered_per_s,seconds,do_sent,do_received,do_drops,ra_sent,ra_received,ra_drops,\
         dora_per_s,perfdhcp_rate_line,do_min_ms,do_avg_ms,do_max_ms,do_std_ms,ra_min_ms,\
         ra_avg_ms,ra_max_ms,ra_std_ms,cpu_a_pct,cpu_b_pct,load1,do_orphans,ra_orphans,\
         do_p50_ms,do_p99_ms,ra_p50_ms,ra_p99_ms,lag_p50_ms,lag_p99_ms,generator,generator_cpu_pct\n",
    );
    let f = |x: Option<f64>| x.map_or_else(String::new, |v| format!("{v}"));
    for r in runs {
        let (d, a) = (&r.report.discover_offer, &r.report.request_ack);
        let cpu = |i: usize| r.cpu.get(i).map_or_else(String::new, |c| format!("{c:.1}"));
        let _ = writeln!(
            s,
            "{},{},{},{},{},{},{},{},{},{:.1},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{},{}",
            r.system.name(),
            r.offered,
            r.seconds,
            d.sent,
            d.received,
            d.drops,
            a.sent,
            a.received,
            a.drops,
            r.dora_per_s(),
            f(r.report.rate_line),
            f(d.min_ms),
            f(d.avg_ms),
            f(d.max_ms),
            f(d.std_ms),
            f(a.min_ms),
            f(a.avg_ms),
            f(a.max_ms),
            f(a.std_ms),
            cpu(0),
            cpu(1),
            r.load1,
            d.orphans,
            a.orphans,
            f(d.p50_ms),
            f(d.p99_ms),
            f(a.p50_ms),
            f(a.p99_ms),
            f(r.report.lag_p50_ms),
            f(r.report.lag_p99_ms),
            r.generator,
            r.generator_cpu
                .map_or_else(String::new, |c| format!("{c:.1}"))
        );
    }
    fs::write(out.join("runs.csv"), s)?;
    let mut t = String::from("system,offered_per_s,killed_at_s,second,ra_received\n");
    for k in takeovers {
        for (i, n) in k.per_second.iter().enumerate() {
            let _ = writeln!(
                t,
                "{},{},{},{},{}",
                k.system.name(),
                k.rate,
                k.killed_at_s,
                i + 1,
                n
            );
        }
    }
    fs::write(out.join("failover.csv"), t)?;
    if takeovers.iter().any(|k| k.addresses.is_some()) {
        let mut t = String::from(
            "system,pool,clients,second_after_kill,survivor_acks,survivor_new_addresses\n",
        );
        for k in takeovers {
            let Some(a) = &k.addresses else { continue };
            for (i, (n, m)) in a.acks.iter().zip(&a.new).enumerate() {
                let _ = writeln!(
                    t,
                    "{},{},{},{},{n},{m}",
                    k.system.name(),
                    k.pool,
                    k.clients,
                    i + 1
                );
            }
        }
        fs::write(out.join("failover-addresses.csv"), t)?;
    }
    Ok(())
}

/// Per system: the best zero-drop rung and the best rung overall.
struct Summary<'a> {
    system: System,
    zero: Option<&'a Run>,
    peak: Option<&'a Run>,
}

fn summarize(runs: &[Run]) -> Vec<Summary<'_>> {
    let mut by: BTreeMap<System, Vec<&Run>> = BTreeMap::new();
    for r in runs {
        by.entry(r.system).or_default().push(r);
    }
    by.into_iter()
        .map(|(system, rs)| Summary {
            system,
            zero: rs
                .iter()
                .filter(|r| r.drops() == 0)
                .max_by(|a, b| a.dora_per_s().total_cmp(&b.dora_per_s()))
                .copied(),
            peak: rs
                .iter()
                .max_by(|a, b| a.dora_per_s().total_cmp(&b.dora_per_s()))
                .copied(),
        })
        .collect()
}

/// REQUEST→ACK "avg / max", and "(p50 / p99)" when the rung was captured.
fn ra_latency(r: &Run) -> String {
    let a = &r.report.request_ack;
    let mut s = format!("{} / {}", opt(a.avg_ms), opt(a.max_ms));
    if let (Some(p50), Some(p99)) = (a.p50_ms, a.p99_ms) {
        let _ = write!(s, " ({p50:.2} / {p99:.2})");
    }
    s
}

fn summary_md(machine: &str, sums: &[Summary<'_>], takeovers: &[Takeover]) -> String {
    let mut s = format!("{machine}\n\n");
    s.push_str(
        "| system | DORA/s, 0 drops (offered) | RA avg / max ms there (p50 / p99) | DORA/s at saturation (offered) | drops there DO / RA | RA avg / max ms there (p50 / p99) | server CPU % there | generator, its CPU % there |\n\
         | --- | --- | --- | --- | --- | --- | --- | --- |\n",
    );
    for x in sums {
        let zero = x.zero.map_or_else(
            || ("none".to_string(), "-".to_string()),
            |r| {
                (
                    format!("{:.0} ({})", r.dora_per_s(), r.offered),
                    ra_latency(r),
                )
            },
        );
        let (peak, drops, lat, cpu, generator) = x.peak.map_or_else(
            || ("-".into(), "-".into(), "-".into(), "-".into(), "-".into()),
            |r| {
                let sent_do = r.report.discover_offer.sent.max(1) as f64;
                let sent_ra = r.report.request_ack.sent.max(1) as f64;
                (
                    format!("{:.0} ({})", r.dora_per_s(), r.offered),
                    format!(
                        "{:.1} % / {:.1} %",
                        100.0 * r.report.discover_offer.drops as f64 / sent_do,
                        100.0 * r.report.request_ack.drops as f64 / sent_ra
                    ),
                    ra_latency(r),
                    r.cpu
                        .iter()
                        .map(|c| format!("{c:.0}"))
                        .collect::<Vec<_>>()
                        .join(" + "),
                    format!(
                        "{} {}",
                        r.generator,
                        r.generator_cpu
                            .map_or_else(|| "?".to_string(), |c| format!("{c:.0}"))
                    ),
                )
            },
        );
        let _ = writeln!(
            s,
            "| {} | {} | {} | {} | {} | {} | {} | {} |",
            x.system.name(),
            zero.0,
            zero.1,
            peak,
            drops,
            lat,
            cpu,
            generator
        );
    }
    if !takeovers.is_empty() {
        s.push_str(
            "\n| pair (A SIGKILLed) | load DORA/s | first second after the kill with ≥ 90 % answered | fewest answers in a second after the kill | survivor PARTNER-DOWN after | survivor's last state |\n\
             | --- | --- | --- | --- | --- | --- |\n",
        );
        for k in takeovers {
            let _ = writeln!(
                s,
                "| {} | {} | {} | {} | {} | {} |",
                k.system.name(),
                k.rate,
                k.full_service_after()
                    .map_or_else(|| "never".to_string(), |t| format!("+{t} s")),
                k.worst_second_after()
                    .map_or_else(|| "-".to_string(), |n| n.to_string()),
                k.partner_down_after
                    .map_or_else(|| "not seen".to_string(), |t| format!("{t:.1} s")),
                k.survivor_state_after
            );
        }
    }
    if takeovers.iter().any(|k| k.addresses.is_some()) {
        s.push_str(
            "\n| pair (A SIGKILLed) | pool, clients | survivor's first ACK to a client of the dead one | PARTNER-DOWN after | survivor's last new address before its longest stall | its first new address after (the partner's share) | predicted (PARTNER-DOWN + MCLT; Kea: PARTNER-DOWN) | new addresses from the survivor before / after | stalls ≥ 5 s | distinct addresses given in the test |\n\
             | --- | --- | --- | --- | --- | --- | --- | --- | --- | --- |\n",
        );
        let at = |t: Option<f64>| t.map_or_else(|| "-".to_string(), |t| format!("+{t:.1} s"));
        for k in takeovers {
            let Some(a) = &k.addresses else { continue };
            let stall = a.longest_stall();
            let _ = writeln!(
                s,
                "| {} | {}, {} | {} | {} | {} | {} | {} | {} / {} | {} | {} |",
                k.system.name(),
                k.pool,
                k.clients,
                at(a.first_to_dead_clients),
                at(k.partner_down_after),
                at(stall.map(|x| x.0)),
                stall.map_or_else(
                    || "no stall".to_string(),
                    |x| x
                        .1
                        .map_or_else(|| "none before the end".to_string(), |t| at(Some(t)))
                ),
                at(k.whole_pool_predicted()),
                a.new_before_stall,
                a.new_after_stall,
                stalls_text(&a.stalls),
                a.distinct
            );
        }
    }
    s
}

/// "+15.2–+70.4 s, +86.0 s–end".
fn stalls_text(stalls: &[(f64, Option<f64>)]) -> String {
    if stalls.is_empty() {
        return "none".to_string();
    }
    stalls
        .iter()
        .map(|(a, b)| match b {
            Some(b) => format!("+{a:.1}–+{b:.1} s"),
            None => format!("+{a:.1} s–end"),
        })
        .collect::<Vec<_>>()
        .join(", ")
}

/// A bar chart of the summary on a log scale (the systems span 100 to 10,000 DORA/s):
/// zero-drop and saturation DORA/s per system.
fn chart_svg(sums: &[Summary<'_>]) -> String {
    let (w, row, left, right) = (760.0, 44.0, 110.0, 60.0);
    let top = 44.0;
    let h = top + row * sums.len() as f64 + 24.0;
    let max = sums
        .iter()
        .filter_map(|x| x.peak.map(Run::dora_per_s))
        .fold(100.0f64, f64::max);
    // 10/s at the axis, the largest decade boundary above `max` at the right.
    let decades = max.log10().ceil() - 1.0;
    let x_of = |v: f64| left + (w - left - right) * ((v.max(10.0)).log10() - 1.0) / decades;
    let mut s = format!(
        "<svg xmlns=\"http://www.w3.org/2000/svg\" width=\"{w}\" height=\"{h}\" font-family=\"sans-serif\" font-size=\"12\">\n\
         <rect width=\"100%\" height=\"100%\" fill=\"white\"/>\n\
         <text x=\"10\" y=\"18\" font-size=\"14\">DORA/s under perfdhcp, log scale: dark = with 0 drops, light = at saturation</text>\n"
    );
    let mut grid = 10.0f64;
    while grid <= 10f64.powf(decades + 1.0) {
        let x = x_of(grid);
        let _ = writeln!(
            s,
            "<line x1=\"{x:.1}\" y1=\"{:.0}\" x2=\"{x:.1}\" y2=\"{:.0}\" stroke=\"#ccc\"/>\n\
             <text x=\"{x:.1}\" y=\"{:.0}\" text-anchor=\"middle\" fill=\"#666\">{grid:.0}</text>",
            top - 8.0,
            h - 20.0,
            h - 6.0
        );
        grid *= 10.0;
    }
    for (i, x) in sums.iter().enumerate() {
        let y = top + row * i as f64;
        let peak = x.peak.map_or(0.0, Run::dora_per_s);
        let zero = x.zero.map_or(0.0, Run::dora_per_s);
        let (xp, xz) = (x_of(peak), x_of(zero));
        let _ = writeln!(
            s,
            "<text x=\"10\" y=\"{:.0}\">{}</text>\n\
             <rect x=\"{left}\" y=\"{y:.0}\" width=\"{:.1}\" height=\"16\" fill=\"#9ecae1\"/>\n\
             <rect x=\"{left}\" y=\"{:.0}\" width=\"{:.1}\" height=\"16\" fill=\"#3182bd\"/>\n\
             <text x=\"{:.1}\" y=\"{:.0}\">{peak:.0}</text>\n\
             <text x=\"{:.1}\" y=\"{:.0}\">{zero:.0}</text>",
            y + 20.0,
            x.system.name(),
            xp - left,
            y + 18.0,
            xz - left,
            xp + 4.0,
            y + 13.0,
            xz + 4.0,
            y + 31.0,
        );
    }
    s.push_str("</svg>\n");
    s
}

/// Reads back a `runs.csv` this program wrote (for `--redraw`).
fn read_runs(path: &Path) -> io::Result<Vec<Run>> {
    let text = fs::read_to_string(path)?;
    let mut lines = text.lines();
    let header: Vec<&str> = lines.next().unwrap_or_default().split(',').collect();
    let col = |name: &str| header.iter().position(|h| *h == name);
    let mut runs = Vec::new();
    for line in lines {
        let f: Vec<&str> = line.split(',').collect();
        let get = |name: &str| col(name).and_then(|i| f.get(i)).copied().unwrap_or("");
        let int = |name: &str| get(name).parse::<u64>().unwrap_or(0);
        let ms = |name: &str| get(name).parse::<f64>().ok();
        let Some(system) = System::parse(get("system")) else {
            continue;
        };
        let leg = |p: &str| Leg {
            sent: int(&format!("{p}_sent")),
            received: int(&format!("{p}_received")),
            drops: int(&format!("{p}_drops")),
            orphans: int(&format!("{p}_orphans")),
            min_ms: ms(&format!("{p}_min_ms")),
            avg_ms: ms(&format!("{p}_avg_ms")),
            max_ms: ms(&format!("{p}_max_ms")),
            std_ms: ms(&format!("{p}_std_ms")),
            p50_ms: ms(&format!("{p}_p50_ms")),
            p99_ms: ms(&format!("{p}_p99_ms")),
        };
        runs.push(Run {
            system,
            offered: u32::try_from(int("offered_per_s")).unwrap_or(0),
            seconds: u32::try_from(int("seconds")).unwrap_or(1).max(1),
            report: Report {
                rate_line: ms("perfdhcp_rate_line"),
                lag_p50_ms: ms("lag_p50_ms"),
                lag_p99_ms: ms("lag_p99_ms"),
                discover_offer: leg("do"),
                request_ack: leg("ra"),
                periodic_ra_received: Vec::new(),
            },
            cpu: ["cpu_a_pct", "cpu_b_pct"]
                .iter()
                .filter_map(|c| get(c).parse::<f64>().ok())
                .collect(),
            load1: get("load1").to_string(),
            generator: match get("generator") {
                "" => "perfdhcp".to_string(),
                g => g.to_string(),
            },
            generator_cpu: ms("generator_cpu_pct"),
        });
    }
    Ok(runs)
}

fn cleanup() {
    for n in [NS_A, NS_B, NS_C] {
        if netns_exists(n) {
            match ip(&["netns", "del", n]) {
                Ok(()) => println!("deleted namespace {n}"),
                Err(e) => eprintln!("{e}"),
            }
        }
    }
}

fn main() -> ExitCode {
    let o = match parse_args() {
        Ok(Parsed::Run(o)) => o,
        Ok(Parsed::Help) => {
            print!("{USAGE}");
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Cleanup) => {
            cleanup();
            return ExitCode::SUCCESS;
        }
        Ok(Parsed::Redraw(dir)) => {
            return match read_runs(&dir.join("runs.csv")) {
                Ok(runs) => {
                    let sums = summarize(&runs);
                    print!("{}", summary_md("(from runs.csv)", &sums, &[]));
                    match fs::write(dir.join("chart.svg"), chart_svg(&sums)) {
                        Ok(()) => ExitCode::SUCCESS,
                        Err(e) => {
                            eprintln!("perfdhcp-lab: {e}");
                            ExitCode::FAILURE
                        }
                    }
                }
                Err(e) => {
                    eprintln!("perfdhcp-lab: {}: {e}", dir.join("runs.csv").display());
                    ExitCode::FAILURE
                }
            };
        }
        Err(e) => {
            eprintln!("perfdhcp-lab: {e}");
            return ExitCode::from(64);
        }
    };
    let missing = missing_tools(&o);
    if !missing.is_empty() {
        eprintln!("perfdhcp-lab: missing (nothing is installed for you):");
        for m in &missing {
            eprintln!("    {m}");
        }
        eprintln!(
            "  all at once: apt-get install -y kea-dhcp4-server kea-admin isc-dhcp-server iproute2"
        );
        return ExitCode::from(2);
    }
    match lab(&o) {
        Ok(()) => ExitCode::SUCCESS,
        Err(e) => {
            eprintln!("perfdhcp-lab: {e}");
            ExitCode::FAILURE
        }
    }
}

fn lab(o: &Options) -> io::Result<()> {
    fs::create_dir_all(&o.out)?;
    let out = o.out.canonicalize()?;
    let uptime = Command::new("uptime")
        .output()
        .map(|x| String::from_utf8_lossy(&x.stdout).trim().to_string())
        .unwrap_or_default();
    let machine = format!(
        "{}; before the run: {uptime}; {}",
        Machine::probe(),
        match o.generator {
            Generator::Perfdhcp => format!(
                "perfdhcp -4 -l br0 -R {} -r RATE -p {} -W {EXIT_WAIT_US}; pool {}-{} ({} addresses)",
                o.clients,
                o.seconds,
                o.pool_first(),
                o.pool_last(),
                o.pool
            ),
            Generator::Flood => format!(
                "dora-flood --rate RATE --seconds {} --clients {} --wait-ms {}; pool {}-{} ({} addresses)",
                o.seconds,
                o.clients,
                EXIT_WAIT_US / 1000,
                o.pool_first(),
                o.pool_last(),
                o.pool
            ),
        }
    );
    println!("{machine}\nresults in {}", out.display());
    fs::write(out.join("machine.txt"), format!("{machine}\n"))?;
    let _net = Net::up()?;
    let mut runs = Vec::new();
    let mut failed = Vec::new();
    for &sys in &o.systems {
        let dir = out.join(sys.name());
        if let Err(e) = ladder(o, sys, &dir, &mut runs) {
            eprintln!("{}: {e}", sys.name());
            failed.push(sys.name());
        }
        // Raw results so far, in case a later system hangs the machine.
        write_csv(&out, &runs, &[])?;
    }
    let mut takeovers = Vec::new();
    for &sys in &o.failover {
        let dir = out.join(format!("{}-failover", sys.name()));
        match takeover(o, sys, &dir) {
            Ok(k) => {
                println!(
                    "{} failover: per second {:?}, ≥ 90 % after the kill at {:?} s, PARTNER-DOWN after {:?} s, survivor: {}",
                    sys.name(),
                    k.per_second,
                    k.full_service_after(),
                    k.partner_down_after,
                    k.survivor_state_after
                );
                if let Some(a) = &k.addresses {
                    println!(
                        "{} survivor after the kill: ACKs per second {:?}, new addresses per second {:?}, stalls {}, first ACK to a client of the dead one {:?} s",
                        sys.name(),
                        a.acks,
                        a.new,
                        stalls_text(&a.stalls),
                        a.first_to_dead_clients
                    );
                }
                takeovers.push(k);
            }
            Err(e) => {
                eprintln!("{} failover: {e}", sys.name());
                failed.push(sys.name());
            }
        }
    }
    write_csv(&out, &runs, &takeovers)?;
    let after = Command::new("uptime")
        .output()
        .map(|x| String::from_utf8_lossy(&x.stdout).trim().to_string())
        .unwrap_or_default();
    let sums = summarize(&runs);
    let md = summary_md(&format!("{machine}; after: {after}"), &sums, &takeovers);
    fs::write(out.join("summary.md"), &md)?;
    fs::write(out.join("chart.svg"), chart_svg(&sums))?;
    println!("\n{md}");
    if failed.is_empty() {
        Ok(())
    } else {
        Err(io::Error::other(format!("failed: {}", failed.join(", "))))
    }
}

#[cfg(test)]
#[allow(clippy::unwrap_used)]
mod tests {
    use super::*;

    /// perfdhcp 2.2.0's output against the ISC pair at 1,000/s (2026-12-03), cut down.
    const SAMPLE: &str = "\
Running: perfdhcp -4 -l br0 -R 10000 -r 1000 -p 10 -W 2000000
sent: 99/99; received: 99/98; drops: 0/0; rejected: 0/0
sent: 200/198; received: 198/197; drops: 2/0; rejected: 0/0
***Rate statistics***
Rate: 788.166 4-way exchanges/second, expected rate: 1000

***Statistics for: DISCOVER-OFFER***
sent packets: 9997
received packets: 9537
drops: 460
drops ratio: 4.60138 %
orphans: 0

min delay: 0.078 ms
avg delay: 27.879 ms
max delay: 150.966 ms
std deviation: 27.058 ms

***Statistics for: REQUEST-ACK***
sent packets: 9537
received packets: 9459
drops: 78
orphans: 7436

min delay: inf ms
avg delay: min delay: n/a
avg delay: n/a
max delay: 149.576 ms
std deviation: 22.975 ms
";

    #[test]
    fn parses_both_legs_and_the_periodic_lines() {
        let r = parse_report(SAMPLE);
        assert_eq!(r.rate_line, Some(788.166));
        let (d, a) = (&r.discover_offer, &r.request_ack);
        assert_eq!(
            (d.sent, d.received, d.drops, d.orphans),
            (9997, 9537, 460, 0)
        );
        assert_eq!(
            (a.sent, a.received, a.drops, a.orphans),
            (9537, 9459, 78, 7436)
        );
        assert_eq!(
            (d.min_ms, d.avg_ms, d.max_ms),
            (Some(0.078), Some(27.879), Some(150.966))
        );
        // "inf" and "n/a" are no figures.
        assert_eq!((a.min_ms, a.avg_ms, a.max_ms), (None, None, Some(149.576)));
        assert_eq!(r.periodic_ra_received, vec![98, 197]);
        let run = Run {
            system: System::IscPair,
            offered: 1000,
            seconds: 10,
            report: r,
            cpu: vec![28.4, 30.4],
            load1: "5.0".into(),
            generator: "perfdhcp".into(),
            generator_cpu: None,
        };
        // REQUEST-ACK received over the sending time, not perfdhcp's Rate line.
        assert!((run.dora_per_s() - 945.9).abs() < 1e-9);
        assert_eq!(run.drops(), 538);
    }

    #[test]
    fn delays_pair_each_request_with_its_first_answer() {
        // time|src|xid|option 53|yiaddr|failover types|assigned addresses
        let lines = "\
1.000|198.18.0.254|0x1|1|||
1.002|198.18.0.1|0x1|2|198.18.64.1||
1.003|198.18.0.2|0x1|2|198.18.64.9||
1.010|198.18.0.254|0x1|3|||
1.012|198.18.0.1||||3;11|198.18.64.1
1.015|198.18.0.1|0x1|5|198.18.64.1||
1.020|198.18.0.2||||10;4;4|198.18.64.7;198.18.64.1
2.000|198.18.0.254|0x2|1|||
3.000|198.18.0.1|0x3|5|198.18.64.3||
";
        let packets: Vec<Packet> = lines.lines().filter_map(parse_packet).collect();
        assert_eq!(packets.len(), 9);
        let (d, a) = exchange_delays(&packets);
        let near = |x: &[f64], y: &[f64]| {
            x.len() == y.len() && x.iter().zip(y).all(|(p, q)| (p - q).abs() < 1e-6)
        };
        assert!(near(&d, &[2.0]), "{d:?}");
        assert!(near(&a, &[5.0]), "{a:?}");
        // The partner's BNDACK for 198.18.64.1 came 5 ms after the client's ACK; 198.18.64.3
        // was never acknowledged.
        let lags = partner_lags(&packets);
        assert!(near(&lags, &[5.0]), "{lags:?}");
        let xs: Vec<f64> = (1..=100).map(f64::from).collect();
        assert_eq!(quantile(&xs, 0.5), Some(50.0));
        assert_eq!(quantile(&xs, 0.99), Some(99.0));
        assert_eq!(quantile(&[], 0.5), None);
    }

    #[test]
    fn runs_csv_reads_back_what_it_wrote() {
        let dir = std::env::temp_dir().join(format!("perfdhcp-lab-test-{}", std::process::id()));
        fs::create_dir_all(&dir).unwrap();
        let run = Run {
            system: System::OursPair,
            offered: 400,
            seconds: 10,
            report: parse_report(SAMPLE),
            cpu: vec![36.3, 38.4],
            load1: "4.9".into(),
            generator: "dora-flood".into(),
            generator_cpu: Some(61.5),
        };
        write_csv(&dir, std::slice::from_ref(&run), &[]).unwrap();
        let back = read_runs(&dir.join("runs.csv")).unwrap();
        fs::remove_dir_all(&dir).unwrap();
        let b = back.first().unwrap();
        assert_eq!(back.len(), 1);
        assert_eq!(
            (b.system, b.offered, b.seconds),
            (System::OursPair, 400, 10)
        );
        assert_eq!(b.report.request_ack.received, 9459);
        assert_eq!(b.report.request_ack.orphans, 7436);
        assert_eq!(b.report.discover_offer.avg_ms, Some(27.879));
        assert_eq!(b.cpu, vec![36.3, 38.4]);
        assert_eq!(
            (b.generator.as_str(), b.generator_cpu),
            ("dora-flood", Some(61.5))
        );
    }

    #[test]
    fn the_survivor_s_stall_and_its_end_are_found_in_its_acks() {
        // time|src|yiaddr|chaddr; the kill at 100.0, B survives. Hash buckets: aa:bb:cc:dd:ee:ff
        // 57 (A's before the kill), 00:0c:29:12:34:56 201 (B's); 01 and 02 neither.
        let lines = "\
99.5|198.18.0.1|198.18.64.1|aa:bb:cc:dd:ee:ff
99.6|198.18.0.2|198.18.64.2|00:0c:29:12:34:56,00:0c:29:12:34:56
100.5|198.18.0.2|198.18.64.3|01
101.2|198.18.0.2|198.18.64.4|02
103.0|198.18.0.2|198.18.64.2|00:0c:29:12:34:56
104.0|198.18.0.2|198.18.64.1|aa:bb:cc:dd:ee:ff
110.5|198.18.0.2|198.18.64.5|03
111.0|198.18.0.1|0.0.0.0|04
";
        let acks: Vec<Ack> = lines.lines().filter_map(parse_ack).collect();
        assert_eq!(acks.len(), 7, "an ACK without an address is none");
        let a = survivor_addresses(&acks, 100.0, ADDR_B, 15);
        assert_eq!(a.acks.get(..5), Some(&[1, 1, 0, 1, 1][..]));
        assert_eq!(a.new.get(..5), Some(&[1, 1, 0, 0, 0][..]));
        // Only aa:bb:cc:dd:ee:ff's bucket was A's alone (if 01 and 02 hash elsewhere).
        assert_eq!(a.first_to_dead_clients, Some(4.0));
        // Its own last new address at +1.2 s, the next at +10.5 s; 4.5 s to the end is none.
        assert_eq!(a.stalls.len(), 1);
        let (from, to) = a.longest_stall().unwrap();
        assert!(
            (from - 1.2).abs() < 1e-9 && to == Some(10.5),
            "{from} {to:?}"
        );
        assert_eq!((a.new_before_stall, a.new_after_stall), (2, 1));
        assert_eq!(a.distinct, 5);
    }

    #[test]
    fn dora_flood_s_percentiles_are_read_and_pool_balancing_is_seen_done() {
        let r = parse_report(
            "***Statistics for: REQUEST-ACK***\nsent packets: 4\nreceived packets: 4\n\
             drops: 0\norphans: 0\n\nmin delay: 1.000 ms\navg delay: 2.500 ms\n\
             max delay: 4.000 ms\nstd deviation: 1.118 ms\np50 delay: 2.000 ms\n\
             p99 delay: 4.000 ms\n",
        );
        assert_eq!(
            (r.request_ack.p50_ms, r.request_ack.p99_ms),
            (Some(2.0), Some(4.0))
        );
        let line = |state: &str, queued: u32, backup: &str| {
            format!(
                "  1.0s dhcp      dhcp: 0 offers · status: {state} for 1 s, partner NORMAL · \
                 queued {queued}, unacked 0, awaiting commit 0 · 16,384 addresses: 0 ACTIVE, \
                 8,192 FREE, {backup} BACKUP · messages 1 in\n"
            )
        };
        assert!(!ours_balanced(""));
        assert!(!ours_balanced(&line("NORMAL", 0, "0")), "nothing moved yet");
        assert!(!ours_balanced(&line("NORMAL", 256, "1,024")), "under way");
        assert!(!ours_balanced(&line("RECOVER-DONE", 0, "8,192")));
        assert!(ours_balanced(&line("NORMAL", 0, "8,192")));
        // The last status line counts.
        let two = line("NORMAL", 0, "8,192") + &line("NORMAL", 3, "8,192");
        assert!(!ours_balanced(&two));
    }
}
