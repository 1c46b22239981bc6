//! The start-up safety checks of codejail-service, to its criteria: code
//! runs; the jail cannot list `/`, start a program or make an `AF_INET`
//! socket; and this process cannot reach the network. Health is OK, and
//! code-exec served, only when every one passed.

use std::net::{SocketAddr, TcpStream, UdpSocket};
use std::time::Duration;

use codejail::{Runner, SafeExecOptions};

/// One check's result.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct CheckResult {
    /// codejail-service's id: `functionality`, `disk`, `exec`, `network`,
    /// `webapp_egress`.
    pub id: &'static str,
    /// What it checks.
    pub name: &'static str,
    /// `None`: passed; else why it failed.
    pub failure: Option<String>,
}

/// `safe_exec` as codejail-service wraps it: the globals afterwards (the
/// input's on failure) and the error message, if any.
fn safe_exec(runner: &dyn Runner, code: &str, globals: &str) -> (String, Option<String>) {
    match runner.safe_exec_json_updated(code, globals, &SafeExecOptions::default()) {
        Ok(out) => (out, None),
        Err(e) => (globals.to_owned(), Some(e.codejail_message())),
    }
}

fn expect_error(runner: &dyn Runner, code: &str, wanted: &[&str]) -> Option<String> {
    match safe_exec(runner, code, "{}") {
        (globals, None) => Some(format!(
            "Expected error, but code ran successfully. Globals: {globals}"
        )),
        (_, Some(e)) if wanted.iter().any(|w| e.contains(w)) => None,
        (_, Some(e)) => Some(format!("Expected {}, but got: {e}", wanted.join(" or "))),
    }
}

const DENIED: &str = "PermissionError: [Errno 13] Permission denied";

/// Runs every check through `runner` (the pool that will serve), and the
/// egress check from this process against `probes`.
pub fn run(runner: &dyn Runner, probes: &[SocketAddr]) -> Vec<CheckResult> {
    let functionality = match safe_exec(runner, "x = x + 1", r#"{"x": 16}"#) {
        (_, Some(e)) => Some(format!("Unexpected error: {e}")),
        (globals, None) => match codejail_pyexec::json::top_level(&globals) {
            Ok((_, members)) => match members.iter().rev().find(|m| m.key.as_str() == Some("x")) {
                None => Some("x not in returned globals".into()),
                Some(m) if m.value.text == "17" => None,
                Some(m) => Some(format!("returned global x != 17 (was {})", m.value.text)),
            },
            Err(e) => Some(format!("unreadable globals: {e}")),
        },
    };
    let checks = [
        ("functionality", "Basic code execution", functionality),
        (
            "disk",
            "Block sandbox escape by disk access",
            expect_error(runner, "import os; ret = os.listdir('/')", &[DENIED]),
        ),
        (
            "exec",
            "Block sandbox escape by process execution",
            expect_error(
                runner,
                "import subprocess;ret = subprocess.check_output(['date', '-u', '-d', '@0', '+%Y'])",
                &[
                    "BlockingIOError: [Errno 11] Resource temporarily unavailable",
                    DENIED,
                ],
            ),
        ),
        (
            "network",
            "Block network access",
            expect_error(
                runner,
                "import socket\nwith socket.socket(socket.AF_INET, socket.SOCK_STREAM) as s:\n    filedesc = s.fileno()\n",
                &[DENIED],
            ),
        ),
        (
            "webapp_egress",
            "Block egress from webapp",
            egress(probes).err(),
        ),
    ];
    checks
        .into_iter()
        .map(|(id, name, failure)| {
            match &failure {
                None => tracing::info!(check = id, "startup check {name:?} passed"),
                Some(why) => {
                    tracing::error!(check = id, why = %why, "startup check {name:?} failed")
                }
            }
            CheckResult { id, name, failure }
        })
        .collect()
}

/// Whether an error says the kernel refused to send (no route, or a
/// firewall, BPF filter or LSM said no), before any packet left.
fn refused_locally(e: &std::io::Error) -> bool {
    use rustix::io::Errno;
    let refused = [
        Errno::NETUNREACH,
        Errno::HOSTUNREACH,
        Errno::ACCESS,
        Errno::PERM,
        Errno::AFNOSUPPORT,
        Errno::ADDRNOTAVAIL,
    ];
    e.raw_os_error()
        .is_some_and(|n| refused.iter().any(|r| r.raw_os_error() == n))
}

/// This process cannot send to any of `probes`. First a UDP `connect`,
/// which only looks the route up and sends nothing: no route (a network
/// namespace with only loopback) passes here. Where a route exists, a TCP
/// connect: refused by the kernel at once (systemd's `IPAddressDeny=`,
/// a firewall) passes; connecting, being refused by a peer or timing out
/// (a packet left) fails.
///
/// # Errors
/// Why the network looks reachable.
pub fn egress(probes: &[SocketAddr]) -> Result<(), String> {
    if probes.is_empty() {
        return Err("no egress probe is configured".into());
    }
    for probe in probes {
        let local: SocketAddr = if probe.is_ipv4() {
            ([0, 0, 0, 0], 0).into()
        } else {
            ([0u16; 8], 0).into()
        };
        let routed = match UdpSocket::bind(local).and_then(|s| s.connect(probe)) {
            Ok(()) => true,
            Err(e) if refused_locally(&e) => false,
            Err(e) => return Err(format!("{probe}: {e}")),
        };
        if !routed {
            continue;
        }
        match TcpStream::connect_timeout(probe, Duration::from_secs(3)) {
            Ok(_) => return Err(format!("Expected a refusal, but connected to {probe}")),
            Err(e) if refused_locally(&e) => {}
            Err(e) => {
                return Err(format!(
                    "Expected the kernel to refuse a connection to {probe}, but got: {e}"
                ));
            }
        }
    }
    Ok(())
}
