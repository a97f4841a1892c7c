//! Network namespaces for "namespace mode": ISC dhcpd serving real DHCP clients.
//!
//! A test creates two namespaces, `fo<pid>-s` (dhcpd and our peer, talking failover over that
//! namespace's own loopback) and `fo<pid>-c` (the DHCP clients, behind a relay address), joined
//! by a veth pair addressed from 198.18.0.0/16. Processes run inside a namespace through
//! `ip netns exec`, which enters it and execs the program (so the child's PID is the
//! program's). The test binary itself plays the programs that need our code (our peer, the
//! DHCP relay): it re-executes itself with [`CHILD_ENV`] set, running one ignored test.
//!
//! Everything is removed when dropped: children are killed by PID, namespaces deleted (which
//! deletes the veth pair too). Namespaces left by killed runs (whose PID is gone) are swept.

use std::io::{self, BufRead, BufReader, Write as _};
use std::path::{Path, PathBuf};
use std::process::{Child, ChildStdin, Command, ExitStatus, Stdio};
use std::sync::{Arc, Mutex, OnceLock};
use std::time::Duration;

use super::dhcpd::{IP, stamp};

/// Environment variable telling a re-executed test binary which child to play.
pub const CHILD_ENV: &str = "FAILOVER_NETNS_CHILD";
/// The (ignored) test the child runs.
pub const CHILD_TEST: &str = "netns_child_entry";
/// Prefix of the lines a child prints for its parent.
pub const LINE_PREFIX: &str = "FO-CHILD ";
/// Kills a child when the thread that started it dies (util-linux; used when present).
const SETPRIV: &str = "/usr/bin/setpriv";

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

/// Whether this process may create network namespaces (also sweeps leftovers of dead runs).
pub fn can_create_netns() -> bool {
    static OK: OnceLock<bool> = OnceLock::new();
    *OK.get_or_init(|| {
        sweep_leftovers();
        let probe = format!("fo{}-probe", std::process::id());
        let ok = ip(&["netns", "add", &probe]).is_ok();
        if ok {
            let _ = ip(&["netns", "del", &probe]);
        }
        ok
    })
}

/// Deletes namespaces `fo<pid>-…` whose process is gone.
fn sweep_leftovers() {
    let Ok(out) = Command::new(IP).args(["netns", "list"]).output() else {
        return;
    };
    for line in String::from_utf8_lossy(&out.stdout).lines() {
        // "fo1234-s (id: 3)" or "fo1234-s"
        let Some(name) = line.split_whitespace().next() else {
            continue;
        };
        let Some((pid, _)) = name.strip_prefix("fo").and_then(|r| r.split_once('-')) else {
            continue;
        };
        let Ok(pid) = pid.parse::<u32>() else {
            continue;
        };
        if pid != std::process::id() && !Path::new(&format!("/proc/{pid}")).exists() {
            let _ = ip(&["netns", "del", name]);
        }
    }
}

/// A network namespace with its loopback up, deleted (with its interfaces) when dropped.
#[derive(Debug)]
pub struct Netns {
    name: String,
}

impl Netns {
    /// Creates `fo<pid>-<tag>`.
    pub fn create(tag: &str) -> io::Result<Netns> {
        let name = format!("fo{}-{tag}", std::process::id());
        let _ = ip(&["netns", "del", &name]);
        ip(&["netns", "add", &name])?;
        let ns = Netns { name };
        ip(&["-n", &ns.name, "link", "set", "lo", "up"])?;
        Ok(ns)
    }

    /// The namespace's name.
    pub fn name(&self) -> &str {
        &self.name
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        let _ = ip(&["netns", "del", &self.name]);
    }
}

/// Joins two namespaces with a veth pair: `a_if` (address `a_cidr`) in `a`, `b_if` (`b_cidr`)
/// in `b`, both up, IPv6 off. Deleted with either namespace.
pub fn veth(
    a: &Netns,
    a_if: &str,
    a_cidr: &str,
    b: &Netns,
    b_if: &str,
    b_cidr: &str,
) -> io::Result<()> {
    ip(&[
        "-n", &a.name, "link", "add", a_if, "type", "veth", "peer", "name", b_if, "netns", &b.name,
    ])?;
    for (ns, dev, cidr) in [(a, a_if, a_cidr), (b, b_if, b_cidr)] {
        let _ = Command::new(IP)
            .args(["netns", "exec", &ns.name, "sysctl", "-qw"])
            .arg(format!("net.ipv6.conf.{dev}.disable_ipv6=1"))
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status();
        ip(&["-n", &ns.name, "addr", "add", cidr, "dev", dev])?;
        ip(&["-n", &ns.name, "link", "set", dev, "up"])?;
    }
    Ok(())
}

/// The test binary, which plays the children.
pub fn test_binary() -> io::Result<PathBuf> {
    std::env::current_exe()
}

/// A re-executed test binary running inside a namespace as `role`. Its stdout lines starting
/// with [`LINE_PREFIX`] are collected (prefix stripped); everything it prints is kept for
/// diagnostics. Closing its stdin asks it to stop; dropping it kills it by PID.
#[derive(Debug)]
pub struct ChildProc {
    role: String,
    child: Child,
    stdin: Option<ChildStdin>,
    lines: Arc<Mutex<Vec<String>>>,
    output: Arc<Mutex<Vec<String>>>,
}

impl ChildProc {
    /// Starts the test binary in `ns` as `role`, with `env` added.
    pub fn spawn(ns: &Netns, role: &str, env: &[(&str, String)]) -> io::Result<ChildProc> {
        let exe = test_binary()?;
        let mut cmd = if Path::new(SETPRIV).exists() {
            let mut c = Command::new(SETPRIV);
            c.args(["--pdeathsig", "KILL", "--", IP]);
            c
        } else {
            Command::new(IP)
        };
        cmd.args(["netns", "exec", &ns.name])
            .arg(exe)
            .args([
                CHILD_TEST,
                "--exact",
                "--ignored",
                "--nocapture",
                "--test-threads=1",
                "--quiet",
            ])
            .env(CHILD_ENV, role)
            .stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        for (k, v) in env {
            cmd.env(k, v);
        }
        let mut child = cmd.spawn()?;
        let lines = Arc::new(Mutex::new(Vec::new()));
        let output = Arc::new(Mutex::new(Vec::new()));
        if let Some(out) = child.stdout.take() {
            let (lines, output) = (lines.clone(), output.clone());
            std::thread::spawn(move || {
                for line in BufReader::new(out).lines() {
                    let Ok(line) = line else { break };
                    if let Some(rest) = line.strip_prefix(LINE_PREFIX) {
                        lines
                            .lock()
                            .unwrap_or_else(|e| e.into_inner())
                            .push(rest.to_string());
                    }
                    output
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(format!("{} {line}", stamp()));
                }
            });
        }
        if let Some(err) = child.stderr.take() {
            let output = output.clone();
            std::thread::spawn(move || {
                for line in BufReader::new(err).lines() {
                    let Ok(line) = line else { break };
                    output
                        .lock()
                        .unwrap_or_else(|e| e.into_inner())
                        .push(format!("{} [stderr] {line}", stamp()));
                }
            });
        }
        let stdin = child.stdin.take();
        Ok(ChildProc {
            role: role.to_string(),
            child,
            stdin,
            lines,
            output,
        })
    }

    /// The child's report lines so far.
    pub fn lines(&self) -> Vec<String> {
        self.lines.lock().unwrap_or_else(|e| e.into_inner()).clone()
    }

    /// Everything the child printed (stamped), for failure messages.
    pub fn output(&self) -> String {
        self.output
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .join("\n")
    }

    /// Waits for a report line equal to `line`; fails with the child's output.
    pub async fn wait_line(&self, line: &str, within: Duration) {
        let deadline = tokio::time::Instant::now() + within;
        while !self.lines().iter().any(|l| l == line) {
            if tokio::time::Instant::now() >= deadline {
                panic!(
                    "{} child never reported {line:?} within {within:?}; its output:\n{}",
                    self.role,
                    self.output()
                );
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Waits for the child to exit by itself; `None` if it is still running after `within`.
    pub async fn wait_exit(&mut self, within: Duration) -> Option<ExitStatus> {
        let deadline = tokio::time::Instant::now() + within;
        loop {
            if let Ok(Some(status)) = self.child.try_wait() {
                // Let the reader threads drain the pipes.
                tokio::time::sleep(Duration::from_millis(100)).await;
                return Some(status);
            }
            if tokio::time::Instant::now() >= deadline {
                return None;
            }
            tokio::time::sleep(Duration::from_millis(50)).await;
        }
    }

    /// Closes the child's stdin (its signal to stop gracefully) and waits for it to exit.
    pub async fn stop(&mut self, within: Duration) -> Option<ExitStatus> {
        if let Some(mut stdin) = self.stdin.take() {
            let _ = stdin.flush();
        }
        self.wait_exit(within).await
    }
}

impl Drop for ChildProc {
    fn drop(&mut self) {
        let _ = self.child.kill();
        let _ = self.child.wait();
        if std::thread::panicking() {
            eprintln!("--- {} child output ---\n{}\n---", self.role, self.output());
        }
    }
}
