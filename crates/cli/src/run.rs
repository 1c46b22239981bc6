//! `codejail run`: run code and pass its output and exit status through.

use std::io::Write;
use std::os::unix::fs::FileTypeExt;
use std::path::PathBuf;

use base64::Engine;
use clap::Args;
use codejail::JailCode;
use serde_json::json;

use crate::{Common, Fail, jail_error, prepare, usage};

#[derive(Args)]
pub(crate) struct RunArgs {
    #[command(flatten)]
    common: Common,
    /// Feed this file to stdin (`-` for this command's own stdin).
    #[arg(long, value_name = "FILE")]
    stdin_file: Option<PathBuf>,
    /// Print one JSON object instead of passing output through.
    #[arg(long)]
    json: bool,
    /// The program's arguments after `jailed_code`; without --code, the
    /// first is the file to run.
    #[arg(last = true, value_name = "ARG")]
    args: Vec<String>,
}

pub(crate) fn run(config: Option<PathBuf>, args: RunArgs, stop: &crate::Stop) -> Result<u8, Fail> {
    let p = prepare(config, &args.common, stop)?;
    if p.code.is_none() && args.args.is_empty() {
        return Err(usage(
            "give --code, --code-file, or the file to run after `--`",
        ));
    }
    let realtime = codejail::effective_limits(p.call.limits_context.as_deref(), &p.call.limits)
        .map_err(usage)?
        .realtime();
    let (stdin, stdin_fd) = stdin_of(args.stdin_file.as_deref(), realtime)?;
    let request = JailCode {
        code: p.code,
        argv: args.args,
        stdin,
        stdin_fd,
        call: p.call,
    };
    let r = if args.common.unconfined {
        p.jail.not_safe_jail_code(&request)
    } else {
        p.jail.jail_code(&request)
    }
    .map_err(jail_error)?;
    if args.json {
        let b64 = |b: &[u8]| base64::engine::general_purpose::STANDARD.encode(b);
        let out = json!({
            "status": r.status,
            "stdout": String::from_utf8_lossy(&r.stdout),
            "stderr": String::from_utf8_lossy(&r.stderr),
            "stdout_base64": b64(&r.stdout),
            "stderr_base64": b64(&r.stderr),
            "killed_by": r.killed_by.map(|k| k.as_str()),
            "wall_ms": r.wall.as_millis() as u64,
            "cpu_ms": r.cpu.as_millis() as u64,
            "max_rss_kib": r.max_rss_kib,
            "truncated": {"stdout": r.truncated.stdout, "stderr": r.truncated.stderr},
            "layers": r.layers.names(),
            "landlock": r.landlock.map(|e| e.as_str()),
        });
        crate::print_line(&out.to_string());
        return Ok(0);
    }
    crate::write_out(&r.stdout);
    let _ = std::io::stderr().write_all(&r.stderr);
    match r.killed_by {
        // The signal that stopped this command says it.
        Some(codejail::KillReason::Cancelled) => {}
        // As `timeout` and friends do: say why the program was stopped.
        Some(reason) => tell!("codejail: killed: {}", killed_by(reason, &request.call)),
        None => {}
    }
    Ok(if r.status < 0 {
        (128 + (-r.status)).clamp(0, 255) as u8
    } else {
        r.status.clamp(0, 255) as u8
    })
}

/// `cpu limit (1 s)`: the reason a run was ended, with the limit's value.
fn killed_by(reason: codejail::KillReason, call: &codejail::CallOptions) -> String {
    use codejail::{KillReason, LimitName};
    let limit = match reason {
        KillReason::Wall => Some(LimitName::Realtime),
        KillReason::Cpu => Some(LimitName::Cpu),
        KillReason::Memory => Some(LimitName::Memory),
        KillReason::Output => Some(LimitName::Output),
        KillReason::Disk => Some(LimitName::Disk),
        _ => None,
    };
    let value = limit.and_then(|name| {
        let limits =
            codejail::effective_limits(call.limits_context.as_deref(), &call.limits).ok()?;
        let v = limits.get(name);
        Some(match name {
            LimitName::Realtime | LimitName::Cpu => format!(" ({v} s)"),
            _ => format!(" ({v} bytes)"),
        })
    });
    format!("{reason} limit{}", value.unwrap_or_default())
}

/// The program's stdin: a regular file's bytes (bounded), or the
/// descriptor itself for anything else — this command's own stdin (`-`), a
/// FIFO, a pipe, a terminal — which the program reads under the run's
/// deadline (reading it here first could wait forever).
///
/// A FIFO is opened without waiting for its writer, then, as `cat` would,
/// given until the run's wall-clock limit for a writer to come (a reader
/// that finds no writer reads end of file at once).
fn stdin_of(
    file: Option<&std::path::Path>,
    realtime: Option<std::time::Duration>,
) -> Result<(Vec<u8>, Option<codejail::StdinFd>), Fail> {
    use std::os::fd::AsFd;
    let Some(file) = file else {
        return Ok((Vec::new(), None));
    };
    if file.as_os_str() == "-" {
        let fd = std::io::stdin()
            .as_fd()
            .try_clone_to_owned()
            .map_err(|e| usage(format!("cannot use stdin: {e}")))?;
        return Ok((Vec::new(), Some(codejail::StdinFd::new(fd))));
    }
    let meta = std::fs::metadata(file)
        .map_err(|e| usage(format!("cannot read --stdin-file {}: {e}", file.display())))?;
    if meta.is_file() {
        return Ok((
            crate::read_bounded(file, crate::MAX_INPUT, "--stdin-file")?,
            None,
        ));
    }
    // O_NONBLOCK: opening a FIFO that has no writer yet must not wait here.
    let fd = rustix::fs::open(
        file,
        rustix::fs::OFlags::RDONLY | rustix::fs::OFlags::NONBLOCK | rustix::fs::OFlags::CLOEXEC,
        rustix::fs::Mode::empty(),
    )
    .map_err(|e| usage(format!("cannot read --stdin-file {}: {e}", file.display())))?;
    if meta.file_type().is_fifo() {
        use rustix::event::{PollFd, PollFlags, Timespec, poll};
        let wait = realtime.map(|d| Timespec {
            tv_sec: d.as_secs().try_into().unwrap_or(i64::MAX),
            tv_nsec: d.subsec_nanos().into(),
        });
        let mut fds = [PollFd::new(&fd, PollFlags::IN)];
        // Linux does not report a hang-up to a reader that has seen no
        // writer yet: this waits for data, or a writer that came and went.
        while let Err(rustix::io::Errno::INTR) = poll(&mut fds, wait.as_ref()) {}
    }
    rustix::fs::fcntl_setfl(&fd, rustix::fs::OFlags::empty())
        .map_err(|e| usage(format!("cannot read --stdin-file {}: {e}", file.display())))?;
    Ok((Vec::new(), Some(codejail::StdinFd::new(fd))))
}
