//! One zygote: a confined interpreter that forks one worker per call, and
//! the caller's side of its channel (a socketpair: its stdin).

use std::io::{self, Read};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::path::{Path, PathBuf};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use codejail_fs::{Contents, JailDir, JailOptions, Tmp, TmpQuota};
use codejail_proc::pump::{State, Target};
use codejail_proc::{KillReason, Limits, Outcome, Spawn, SpawnError};
use rustix::event::{PollFd, PollFlags, Timespec, poll};

use crate::error::WarmError;
use crate::jail::{Jail, RunIdentity};

/// How long a new zygote may take to say it is ready.
const START_TIMEOUT: Duration = Duration::from_secs(20);

/// What a pool tells each zygote it starts.
#[derive(Clone, Debug)]
pub(crate) struct Recipe {
    /// The pool's directory: zygote homes and call directories.
    pub pool: PathBuf,
    /// The sandbox uid and gid, when the run switches uid: then each
    /// zygote takes a uid of its own (the jail's range) for its life, and
    /// keeps this gid.
    pub owner: Option<(u32, u32)>,
    /// The quota of the zygote's `tmp/`, where each call's `tmp/` lives.
    pub quota: Option<TmpQuota>,
    /// After this many calls a zygote retires.
    pub max_calls: u64,
    /// The modules each zygote imports before it serves (the jail's
    /// `preload`).
    pub preload: Vec<String>,
}

/// A running zygote. Dropping it ends it (its run is cancelled: every
/// process of it is killed) and removes its home.
#[derive(Debug)]
pub(crate) struct Zygote {
    /// The caller's end of the channel (non-blocking).
    socket: UnixStream,
    /// Dropping the write end cancels the zygote's run.
    cancel: Option<OwnedFd>,
    run: Option<JoinHandle<Result<Outcome, SpawnError>>>,
    /// The home of its calls that stage nothing (`safe_exec` without
    /// files), made once, in `home` (so dropped first): read-only to the
    /// calls, it holds only the `tmp` link, to [`EXEC_TMP`] in the
    /// zygote's `tmp/`, which the zygote makes before each such call and
    /// removes after it.
    exec_home: JailDir,
    home: JailDir,
    /// Its uid and gid, when it switches uid: its calls' directories are
    /// given to them. The lease on the uid is dropped after `drop` has
    /// joined the run (every process of it reaped).
    owner: Option<(u32, u32)>,
    _uid: Option<RunIdentity>,
    /// Its pid as the caller sees it (the kernel's credentials on its
    /// `ready` message), and a pidfd of it: a read of `/proc/<pid>` is
    /// about the zygote when the pidfd says it was alive after the read.
    pid: i32,
    pidfd: Option<OwnedFd>,
}

impl Drop for Zygote {
    fn drop(&mut self) {
        self.cancel = None;
        let _ = self.socket.shutdown(std::net::Shutdown::Both);
        if let Some(run) = self.run.take() {
            let _ = run.join();
        }
    }
}

fn io_err(step: &'static str) -> impl FnOnce(io::Error) -> WarmError {
    move |source| WarmError::Io { step, source }
}

impl Zygote {
    /// Starts a zygote of `jail` and waits (bounded) until it is ready.
    /// A zygote that fails to start leaves nothing: its run is cancelled
    /// and its home removed.
    pub(crate) fn start(jail: &Jail, recipe: &Recipe) -> Result<Zygote, WarmError> {
        // One call at a time per zygote: a uid of its own for its life is
        // a uid of its own per call.
        let who = match recipe.owner {
            Some(_) => Some(jail.switched_identity().map_err(WarmError::Uid)?),
            None => None,
        };
        let owner = who.as_ref().map(RunIdentity::ids);
        let home = JailDir::create(&JailOptions {
            parent: Some(recipe.pool.clone()),
            owner,
            tmp_quota: recipe.quota,
            ..JailOptions::default()
        })
        .map_err(|e| WarmError::Start(e.to_string()))?;
        home.stage(&Contents {
            code: Some(codejail_pyexec::ZYGOTE.as_bytes()),
            ..Contents::default()
        })
        .map_err(|e| WarmError::Start(e.to_string()))?;
        let exec_home = JailDir::create(&JailOptions {
            parent: Some(home.path().to_owned()),
            owner,
            tmp: Tmp::Link(home.tmp().join(EXEC_TMP)),
            prefix: Some(crate::leftovers::jail_prefix()),
            ..JailOptions::default()
        })
        .map_err(|e| WarmError::Start(e.to_string()))?;
        // The jailed program of `safe_exec` calls without a python_path,
        // whose line their tracebacks name.
        exec_home
            .stage(&Contents {
                code: Some(codejail_pyexec::program(0).as_bytes()),
                ..Contents::default()
            })
            .map_err(|e| WarmError::Start(e.to_string()))?;
        let (ours, theirs) = UnixStream::pair().map_err(io_err("make the zygote's channel"))?;
        // The kernel then attaches the sender's pid, as this process sees
        // it, to what the zygote sends (its `ready` line).
        rustix::net::sockopt::set_socket_passcred(&ours, true)
            .map_err(|e| io_err("configure the zygote's channel")(e.into()))?;
        let (cancel_r, cancel_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| io_err("create a pipe")(e.into()))?;
        let spawn = spawn_of(jail, recipe, owner, &home, theirs.into(), cancel_r)?;
        let run = std::thread::spawn(move || spawn.run());
        ours.set_nonblocking(true)
            .map_err(io_err("configure the zygote's channel"))?;
        let mut zygote = Zygote {
            socket: ours,
            cancel: Some(cancel_w),
            run: Some(run),
            exec_home,
            home,
            owner,
            _uid: who,
            pid: 0,
            pidfd: None,
        };
        match zygote
            .wait_ready()
            .and_then(|()| zygote.check_threads(&recipe.preload))
        {
            Ok(()) => Ok(zygote),
            Err(Failed::Refused(e)) => {
                // Its drop ends it, every process of it.
                drop(zygote);
                Err(e)
            }
            Err(Failed::Said(why)) => {
                // Cancel it, then say what it printed, if it ended.
                zygote.cancel = None;
                let out = zygote.run.take().map(JoinHandle::join);
                let said = match out {
                    Some(Ok(Ok(out))) => format!(
                        " (status {}: {})",
                        out.status,
                        crate::error::excerpt(&out.stderr, 300).trim()
                    ),
                    Some(Ok(Err(e))) => format!(" ({e})"),
                    _ => String::new(),
                };
                Err(WarmError::Start(format!("{why}{said}")))
            }
        }
    }

    /// Waits for the zygote's `ready` line (or its word on why it will
    /// not serve), and learns its pid from the kernel's credentials on it.
    fn wait_ready(&mut self) -> Result<(), Failed> {
        let started = Instant::now();
        let mut said = Vec::new();
        let mut pid = None;
        loop {
            let left = START_TIMEOUT.saturating_sub(started.elapsed());
            if left.is_zero() {
                return Err(Failed::Said(format!(
                    "it did not say it was ready within {START_TIMEOUT:?}"
                )));
            }
            let mut fds = [PollFd::new(&self.socket, PollFlags::IN)];
            let wait = Timespec {
                tv_sec: left.as_secs().try_into().unwrap_or(i64::MAX),
                tv_nsec: left.subsec_nanos().into(),
            };
            match poll(&mut fds, Some(&wait)) {
                Ok(_) | Err(rustix::io::Errno::INTR) => {}
                Err(e) => return Err(Failed::Said(format!("could not wait for it: {e}"))),
            }
            let mut buf = [0u8; 512];
            match receive(&self.socket, &mut buf) {
                Ok((0, _)) => return Err(Failed::Said("it ended before it was ready".into())),
                Ok((n, from)) => {
                    said.extend_from_slice(&buf[..n]);
                    pid = pid.or(from);
                }
                Err(e) if e.kind() == io::ErrorKind::WouldBlock => continue,
                Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
                Err(e) => return Err(Failed::Said(format!("its channel failed: {e}"))),
            }
            if said == b"ready\n" {
                break;
            }
            let other = || Failed::Said("it said something other than that it was ready".into());
            if said.starts_with(b"{") {
                if said.ends_with(b"\n") {
                    return Err(refusal(&said));
                }
                if said.len() > READY_MAX {
                    return Err(other());
                }
            } else if !b"ready\n".starts_with(&said) {
                return Err(other());
            }
        }
        let _ = rustix::net::sockopt::set_socket_passcred(&self.socket, false);
        let pid = pid.ok_or_else(|| Failed::Said("its pid could not be learned".into()))?;
        let pidfd = rustix::process::pidfd_open(pid, rustix::process::PidfdFlags::empty())
            .map_err(|e| Failed::Said(format!("could not open a pidfd of it: {e}")))?;
        // The zygote is the only holder of its end of the channel: while
        // that end is open it is alive, so the pidfd is the zygote's (its
        // pid cannot have been reused).
        let mut fds = [PollFd::new(&self.socket, PollFlags::RDHUP)];
        if poll(&mut fds, Some(&Timespec::default())).is_ok_and(|n| n > 0) {
            return Err(Failed::Said("it ended once ready".into()));
        }
        self.pid = pid.as_raw_nonzero().get();
        self.pidfd = Some(pidfd);
        Ok(())
    }

    /// The zygote's threads, counted by the kernel (`/proc/<pid>/task`):
    /// it forks a worker per call and must have one. A read the pidfd
    /// cannot vouch for (the zygote ended meanwhile) is an error.
    pub(crate) fn threads(&self) -> io::Result<usize> {
        let count = std::fs::read_dir(format!("/proc/{}/task", self.pid))?.count();
        let Some(pidfd) = &self.pidfd else {
            return Err(io::Error::other("the zygote was never ready"));
        };
        let mut fds = [PollFd::new(pidfd, PollFlags::IN)];
        match poll(&mut fds, Some(&Timespec::default())) {
            Ok(0) => Ok(count),
            Ok(_) => Err(io::Error::other("the zygote has ended")),
            Err(e) => Err(e.into()),
        }
    }

    /// Refuses a zygote that has more than one thread once ready.
    fn check_threads(&self, preload: &[String]) -> Result<(), Failed> {
        match self.threads() {
            Ok(1) => Ok(()),
            Ok(threads) => Err(Failed::Refused(WarmError::Threads {
                threads,
                modules: preload.to_vec(),
            })),
            Err(e) => Err(Failed::Said(format!(
                "could not count its threads in /proc/{}/task: {e}",
                self.pid
            ))),
        }
    }

    /// Its pid, as this process sees it.
    pub(crate) fn pid(&self) -> i32 {
        self.pid
    }

    /// Whether the zygote's run has ended (it retired, crashed or was
    /// killed): it can serve nothing more.
    pub(crate) fn is_gone(&self) -> bool {
        self.run.as_ref().is_none_or(JoinHandle::is_finished)
    }

    /// Its uid and gid, when it switches uid.
    pub(crate) fn owner(&self) -> Option<(u32, u32)> {
        self.owner
    }

    /// The caller's end of the channel.
    pub(crate) fn socket(&self) -> &UnixStream {
        &self.socket
    }

    /// The zygote's `tmp/`, where its calls' `tmp/` directories live (in
    /// its mount namespace).
    pub(crate) fn tmp(&self) -> &Path {
        self.home.tmp()
    }

    /// The zygote's home, where its calls' directories are made.
    pub(crate) fn home(&self) -> &Path {
        self.home.path()
    }

    /// The home of its calls that stage nothing, and their `tmp/` (in its
    /// mount namespace).
    pub(crate) fn exec_home(&self) -> (&JailDir, PathBuf) {
        (&self.exec_home, self.home.tmp().join(EXEC_TMP))
    }
}

/// The name of the `tmp/` of a call without files in the zygote's
/// `tmp/`: one call at a time, each made and removed by the zygote.
const EXEC_TMP: &str = "call";

/// The longest word of a zygote that will not serve.
const READY_MAX: usize = 4096;

/// Why a zygote did not become ready.
enum Failed {
    /// It said why (the jail's preload): the start's error as it is.
    Refused(WarmError),
    /// Anything else: said with what its run printed.
    Said(String),
}

/// What a zygote that will not serve said: the module of the jail's
/// preload that failed to import, or that left threads running.
fn refusal(said: &[u8]) -> Failed {
    let Ok(word) = serde_json::from_slice::<serde_json::Value>(said) else {
        return Failed::Said("it said something other than that it was ready".into());
    };
    let module = word["preload"].as_str().unwrap_or_default().to_owned();
    if let Some(threads) = word["threads"].as_u64() {
        return Failed::Refused(WarmError::Threads {
            threads: usize::try_from(threads).unwrap_or(usize::MAX),
            modules: vec![module],
        });
    }
    Failed::Refused(WarmError::Preload {
        module,
        error: crate::error::excerpt(word["error"].as_str().unwrap_or_default().as_bytes(), 300),
    })
}

/// One read of the channel, with the sender's pid when the kernel
/// attached it.
fn receive(
    socket: &UnixStream,
    buf: &mut [u8],
) -> io::Result<(usize, Option<rustix::process::Pid>)> {
    use rustix::net::{RecvAncillaryBuffer, RecvAncillaryMessage, RecvFlags, recvmsg};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmCredentials(1))];
    let mut control = RecvAncillaryBuffer::new(&mut space);
    let mut iov = [io::IoSliceMut::new(buf)];
    let got = recvmsg(socket, &mut iov, &mut control, RecvFlags::CMSG_CLOEXEC)?;
    let pid = control.drain().find_map(|m| match m {
        RecvAncillaryMessage::ScmCredentials(cred) => Some(cred.pid),
        _ => None,
    });
    Ok((got.bytes, pid))
}

/// The zygote's run: the jail's interpreter, policy and identity; its
/// channel as stdin; Landlock letting it read its home (where its calls'
/// directories are made) and write its own `tmp/`; no limit of its own
/// (each worker sets the call's); cancelled through `cancel`.
fn spawn_of(
    jail: &Jail,
    recipe: &Recipe,
    owner: Option<(u32, u32)>,
    home: &JailDir,
    channel: OwnedFd,
    cancel: OwnedFd,
) -> Result<Spawn, WarmError> {
    let mut rules = jail.base_rules();
    rules.read.push(home.path().to_owned());
    let mut spawn = Spawn::new(&jail.config().bin);
    spawn
        .args(jail.lang().args())
        .arg(codejail_fs::CODE_FILE)
        .arg(home.path())
        .arg(recipe.max_calls.to_string())
        .args(&recipe.preload)
        .cwd(home.path())
        .env("TMPDIR", home.tmp())
        .policy(
            jail.policy(false)
                .map_err(|e| WarmError::Start(e.to_string()))?,
        )
        .identity(
            owner.map_or(jail.identity().0, |o| o.0),
            owner.map_or(jail.identity().1, |o| o.1),
        )
        // The zygote's own exec is its run's one; its workers are forks
        // of it, under the same guard.
        .allow_exec(jail.config().allow_exec)
        .limits(Limits {
            output_bytes: Some(64 << 10),
            ..Limits::none()
        })
        .stdin_fd(channel)
        .slug("warm zygote")
        .cancel_on(cancel);
    match home.tmp_mount() {
        Some(m) => {
            spawn.tmpfs(crate::jail::tmpfs_of(m));
        }
        // Without a quota the calls' tmp/ directories are on the disk.
        None => rules.read_write.push(home.tmp().to_owned()),
    }
    if let Some(profile) = &jail.config().apparmor_profile {
        spawn.apparmor_profile(profile);
    }
    spawn.fs_rules(rules);
    Ok(spawn)
}

/// The pump's view of a zygote during one call: its channel polls
/// readable when the answer comes; a kill request is `k`.
#[derive(Debug)]
pub(crate) struct Answering<'z> {
    pub zygote: &'z Zygote,
    /// The answer line, as it arrives.
    pub answer: Vec<u8>,
    /// A kill request was sent: bytes of ours after the request.
    pub asked_kill: bool,
    /// The grace period after the kill request passed: the zygote is lost.
    pub forced: bool,
}

impl Target for Answering<'_> {
    fn fd(&self) -> BorrowedFd<'_> {
        self.zygote.socket.as_fd()
    }

    fn ready(&mut self) -> io::Result<State> {
        read_answer(&self.zygote.socket, &mut self.answer)
    }

    fn pid(&self) -> i32 {
        // The process that kills the call's processes.
        self.zygote.pid()
    }

    fn kill(&mut self, _reason: KillReason) {
        // The reason is the pump's to log and report; the zygote only
        // kills.
        self.asked_kill = true;
        let _ = io::Write::write_all(&mut &self.zygote.socket, b"k");
    }

    fn force_kill(&mut self) {
        // The zygote did not answer the kill: the pool ends it (dropping
        // it cancels its run, which kills every process of it).
        self.forced = true;
    }
}

/// Reads what the zygote sent on `socket` (non-blocking) into `answer`:
/// [`State::Finished`] once `answer` is a whole line, else
/// [`State::Running`].
///
/// A retiring zygote answers, then exits. Its end of file may come in the
/// same turn as its answer, and so may a reset: a zygote that exits with
/// bytes of ours unread in its end (a kill request `k` sent as the call
/// ended by itself) makes the kernel reset the channel, and the read after
/// the answer fails with `ECONNRESET`. After a whole answer, both are the
/// end of the channel, not a lost call.
fn read_answer(mut socket: &UnixStream, answer: &mut Vec<u8>) -> io::Result<State> {
    let mut buf = [0u8; 4096];
    loop {
        match socket.read(&mut buf) {
            Ok(0) if answer.ends_with(b"\n") => break,
            Ok(0) => return Err(io::Error::other("the zygote closed its channel")),
            Ok(n) => answer.extend_from_slice(&buf[..n]),
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => break,
            Err(e) if e.kind() == io::ErrorKind::Interrupted => continue,
            Err(e) if e.kind() == io::ErrorKind::ConnectionReset && answer.ends_with(b"\n") => {
                break;
            }
            Err(e) => return Err(e),
        }
    }
    Ok(if answer.ends_with(b"\n") {
        State::Finished
    } else {
        State::Running
    })
}

#[cfg(test)]
mod answer_tests {
    use std::io::Write;
    use std::os::unix::net::UnixStream;

    use super::*;

    /// A zygote that answers and exits with our kill request unread: the
    /// answer is read whole, and the reset after it ends the channel.
    #[test]
    fn a_reset_after_a_whole_answer_is_the_end_of_the_channel() {
        let (ours, zygote) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        (&zygote).write_all(b"{\"status\": 0}\n").unwrap();
        (&ours).write_all(b"k").unwrap();
        drop(zygote);
        let mut answer = Vec::new();
        assert_eq!(read_answer(&ours, &mut answer).unwrap(), State::Finished);
        assert_eq!(answer, b"{\"status\": 0}\n");
    }

    /// Before the whole answer, a reset or an end of file is a lost
    /// zygote; with nothing more to read yet, the call is still running.
    #[test]
    fn a_reset_or_an_end_before_the_answer_is_a_lost_zygote() {
        let (ours, zygote) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        (&zygote).write_all(b"{\"sta").unwrap();
        let mut answer = Vec::new();
        assert_eq!(read_answer(&ours, &mut answer).unwrap(), State::Running);
        (&ours).write_all(b"k").unwrap();
        drop(zygote);
        let err = read_answer(&ours, &mut answer).unwrap_err();
        assert_eq!(err.kind(), io::ErrorKind::ConnectionReset, "{err}");

        let (ours, zygote) = UnixStream::pair().unwrap();
        ours.set_nonblocking(true).unwrap();
        drop(zygote);
        assert!(read_answer(&ours, &mut Vec::new()).is_err());
    }
}
