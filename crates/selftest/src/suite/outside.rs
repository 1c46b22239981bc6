//! The sabotage mode outside codejail: the program as a plain child of
//! the caller.

use std::io::{Read, Write};
use std::path::Path;
use std::process::{Command, Stdio};
use std::time::{Duration, Instant};

use codejail::LayerSet;

use crate::bait::Bait;
use crate::header::Attack;
use crate::host::processes_with;
use crate::judge::{Seen, Verdict, judge};

use super::Target;
use super::victim::context;

/// The sabotage mode for what cannot be switched off: the same program as
/// a plain child of the caller (its environment, its descriptors, its
/// session), outside codejail. Whatever it leaves running is found by its
/// token, killed and waited for.
pub(super) fn run_outside(
    target: &Target<'_>,
    attack: &Attack,
    bait: &Bait,
    token: &str,
    victim_token: &str,
    tty: bool,
    shared: bool,
) -> Result<Verdict, String> {
    let home = tempfile_dir(target.jail_parent, token)?;
    let tmp = home.join("tmp");
    let fail = |e: std::io::Error| format!("{}: outside run: {e}", attack.name());
    std::fs::create_dir(&tmp).map_err(fail)?;
    let mut cmd = Command::new(&target.jail.config().bin);
    cmd.args(["-E", "-B", "-c", &attack.program(), token])
        .current_dir(&home)
        .env("TMPDIR", &tmp)
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    // The suite's own terminal for the program's stderr: what it types
    // there reaches no one.
    let pty = if tty {
        let (master, slave) = pseudo_terminal().map_err(fail)?;
        cmd.stderr(Stdio::from(slave));
        Some(master)
    } else {
        None
    };
    let mut child = cmd.spawn().map_err(fail)?;
    drop(cmd);
    let mut stdin = child.stdin.take().expect("piped stdin");
    let context = context(bait, victim_token, None);
    let feeder = std::thread::spawn(move || {
        let _ = stdin.write_all(&context);
    });
    let mut stdout = child.stdout.take().expect("piped stdout");
    let mut stderr: Box<dyn Read + Send> = match (child.stderr.take(), pty) {
        (Some(pipe), _) => Box::new(pipe),
        (None, Some(master)) => Box::new(std::fs::File::from(master)),
        (None, None) => Box::new(std::io::empty()),
    };
    // Detached children keep the pipes open: read until the program
    // itself ends, then take what is there.
    let out_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stdout.read_to_end(&mut v);
        v
    });
    let err_reader = std::thread::spawn(move || {
        let mut v = Vec::new();
        let _ = stderr.read_to_end(&mut v);
        v
    });
    let start = Instant::now();
    let status = loop {
        if let Some(status) = child.try_wait().map_err(fail)? {
            break status;
        }
        if start.elapsed() > Duration::from_secs(30) {
            let _ = child.kill();
            break child.wait().map_err(fail)?;
        }
        std::thread::sleep(Duration::from_millis(10));
    };
    let _ = feeder.join();
    // What outlived the program: the escape, observed (a moving target is
    // looked for a few times), then undone.
    let mut survivors = Vec::new();
    for _ in 0..10 {
        std::thread::sleep(Duration::from_millis(50));
        survivors = processes_with(token);
        if !survivors.is_empty() {
            break;
        }
    }
    let cleanup = kill_all(token);
    let stdout = out_reader.join().unwrap_or_default();
    let stderr = err_reader.join().unwrap_or_default();
    let _ = std::fs::remove_dir_all(&home);
    cleanup.map_err(|e| format!("{}: {e}", attack.name()))?;
    let damage = bait.damage_of(token, shared);
    let stdout = String::from_utf8_lossy(&stdout).into_owned();
    let stderr = String::from_utf8_lossy(&stderr).into_owned();
    use std::os::unix::process::ExitStatusExt;
    let status = status
        .code()
        .unwrap_or_else(|| -status.signal().unwrap_or(0));
    let seen = Seen {
        stdout: &stdout,
        stderr: &stderr,
        status,
        killed_by: None,
        layers: LayerSet::empty(),
        survivors: &survivors,
        damage: &damage,
        warm: false,
    };
    let mut v = judge(attack, &seen);
    v.detail = format!("outside codejail: {}", v.detail);
    Ok(v)
}

/// A pseudo-terminal pair: (master, slave).
fn pseudo_terminal() -> std::io::Result<(std::os::fd::OwnedFd, std::os::fd::OwnedFd)> {
    use rustix::pty::{OpenptFlags, grantpt, openpt, ptsname, unlockpt};
    let master = openpt(OpenptFlags::RDWR | OpenptFlags::NOCTTY | OpenptFlags::CLOEXEC)?;
    grantpt(&master)?;
    unlockpt(&master)?;
    let name = ptsname(&master, Vec::new())?;
    let slave = rustix::fs::open(
        name.as_c_str(),
        rustix::fs::OFlags::RDWR | rustix::fs::OFlags::NOCTTY | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )?;
    Ok((master, slave))
}

/// A fresh directory for an outside run.
fn tempfile_dir(parent: &Path, token: &str) -> Result<std::path::PathBuf, String> {
    let dir = parent.join(format!("codejail-bait-outside-{token}"));
    std::fs::create_dir(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    Ok(dir)
}

/// Kills every process whose command line has `token`, and waits (bounded)
/// until none is left.
fn kill_all(token: &str) -> Result<(), String> {
    let start = Instant::now();
    loop {
        let pids = processes_with(token);
        if pids.is_empty() {
            return Ok(());
        }
        for pid in &pids {
            if let Some(pid) = rustix::process::Pid::from_raw(*pid) {
                let _ = rustix::process::kill_process(pid, rustix::process::Signal::KILL);
            }
        }
        if start.elapsed() > Duration::from_secs(10) {
            return Err(format!(
                "processes {pids:?} of an outside run would not die"
            ));
        }
        std::thread::sleep(Duration::from_millis(20));
    }
}
