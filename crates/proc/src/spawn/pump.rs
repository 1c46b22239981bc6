//! The caller's side of a running program's I/O: one `poll` loop that
//! feeds stdin, drains output streams under per-stream caps, watches a
//! [`Target`] (the process or service that runs the program), and enforces
//! a wall-clock deadline and a cancel descriptor by asking the target to
//! end the run, then, after a grace period, forcing it.
//!
//! [`Spawn::run`](crate::Spawn::run) drives it with the run's supervisor as
//! the target (its pidfd polls readable when it has exited; the kill
//! request closes the control pipe; the forced kill is `SIGKILL` through
//! the pidfd). A warm pool drives it with a zygote's unix socket (the
//! target is finished once its answer line is complete; the kill request
//! writes `k` to the socket), and three outputs: stdout, stderr and a
//! result pipe, each with its own cap.
//!
//! A target is anything with a descriptor that polls readable when it has
//! news; `tests/pump.rs` drives the pump with a fake zygote this way:
//!
//! ```no_run
//! # use std::os::fd::{BorrowedFd, OwnedFd};
//! # use std::time::{Duration, Instant};
//! use codejail_proc::pump::{deadline_after, Pump, PumpError, State, Target};
//!
//! /// A service that answers one line on a socket when the run is over.
//! struct Service { socket: std::os::unix::net::UnixStream, answer: Vec<u8> }
//!
//! impl Target for Service {
//!     fn fd(&self) -> BorrowedFd<'_> { std::os::fd::AsFd::as_fd(&self.socket) }
//!     fn ready(&mut self) -> std::io::Result<State> {
//!         let mut buf = [0u8; 4096];
//!         match std::io::Read::read(&mut self.socket, &mut buf)? {
//!             0 => return Err(std::io::Error::other("the service hung up")),
//!             n => self.answer.extend_from_slice(&buf[..n]),
//!         }
//!         Ok(if self.answer.ends_with(b"\n") { State::Finished } else { State::Running })
//!     }
//!     fn pid(&self) -> i32 { 0 /* the service's pid */ }
//!     fn kill(&mut self, _: codejail_proc::KillReason) {
//!         let _ = std::io::Write::write_all(&mut self.socket, b"k");
//!     }
//!     fn force_kill(&mut self) { /* end the service */ }
//! }
//!
//! # fn demo(mut service: Service, out: OwnedFd, err: OwnedFd, result: OwnedFd) -> Result<(), PumpError> {
//! let pumped = Pump::new(deadline_after(Instant::now(), Duration::from_secs(5)))
//!     .output(out, Some(1 << 20))
//!     .output(err, Some(1 << 20))
//!     .output(result, Some(16 << 20))
//!     .run(&mut service)?;
//! # Ok(()) }
//! ```

use std::io;
use std::os::fd::{BorrowedFd, OwnedFd};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
use rustix::io::Errno;

use crate::KillReason;

/// How long a target gets after a kill request, and after a forced kill,
/// unless [`Pump::kill_grace`] says otherwise.
pub const DEFAULT_KILL_GRACE: Duration = Duration::from_secs(2);

/// Bytes read or written per system call.
const CHUNK: usize = 64 * 1024;

/// The other side of a run: what runs the program and can end it.
pub trait Target {
    /// A descriptor that polls readable (or hung up) when the target has
    /// news: a pidfd, a socket. Polled until the target is no longer
    /// [`State::Running`].
    fn fd(&self) -> BorrowedFd<'_>;

    /// Called when [`fd`](Target::fd) polled readable or hung up: reads
    /// the news, and says where the target is now. A descriptor that stays
    /// hung up means the target is no longer running: answer
    /// [`State::Finished`], [`State::Abandoned`] or an error, not
    /// [`State::Running`] (the next poll would return at once, again).
    ///
    /// # Errors
    /// Any error ends the pump with a [`PumpError`] whose step is
    /// `learn the run's state`, carrying this error.
    fn ready(&mut self) -> io::Result<State>;

    /// The process the kill is asked of (a run's supervisor, a warm
    /// pool's zygote), as the pump's warning names it:
    /// `Killing process <pid>: <why>`.
    fn pid(&self) -> i32;

    /// Asks the target to end the run, politely (close a control pipe,
    /// write a request). Called at most once, with the first reason, and
    /// only while the target is running, after the pump logged the kill
    /// at warning level.
    fn kill(&mut self, reason: KillReason);

    /// Ends the target by force (`SIGKILL`). Called at most once: when the
    /// grace period after [`kill`](Target::kill) has passed and the target
    /// is still running.
    fn force_kill(&mut self);
}

/// Where a [`Target`] is.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
pub enum State {
    /// It is still running the program.
    Running,
    /// It is done, and every writer of the outputs is gone: the pump
    /// drains what is left in the streams until they close.
    Finished,
    /// It is gone without finishing properly (the supervisor died without
    /// a report): processes it should have killed may hold the outputs
    /// open forever, so the pump stops at once.
    Abandoned,
}

/// One output stream as captured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub struct Captured {
    /// The bytes read, at most the stream's cap.
    pub bytes: Vec<u8>,
    /// The stream went past its cap; what followed was read and dropped.
    pub truncated: bool,
}

/// What a pump run gives back.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct Pumped {
    /// The output streams, in the order they were added.
    pub outputs: Vec<Captured>,
    /// The first reason the pump asked the target to end the run:
    /// [`KillReason::Output`] (a stream passed its cap, recorded even when
    /// the target had already finished), [`KillReason::Wall`] (the
    /// deadline) or [`KillReason::Cancelled`] (the cancel descriptor).
    pub killed: Option<KillReason>,
    /// Where the target was when the pump stopped: [`State::Finished`],
    /// [`State::Abandoned`], or [`State::Running`] when the grace period
    /// after [`Target::force_kill`] passed too and the pump gave up on it.
    pub target: State,
}

/// A system call of the pump failed, or the target's
/// [`ready`](Target::ready) did.
#[derive(Debug, thiserror::Error)]
#[error("could not {step}: {source}")]
pub struct PumpError {
    /// What the pump was doing, e.g. `read the program's output`.
    pub step: &'static str,
    /// The underlying error, with its errno.
    #[source]
    pub source: io::Error,
}

impl PumpError {
    fn at(step: &'static str) -> impl FnOnce(Errno) -> PumpError {
        move |e| PumpError {
            step,
            source: e.into(),
        }
    }
}

/// `start + after`, or `None` (no deadline) when that instant cannot be
/// represented, as with `Duration::MAX` or `u64::MAX` seconds.
pub fn deadline_after(start: Instant, after: Duration) -> Option<Instant> {
    start.checked_add(after)
}

/// The I/O of one run, and the limits that end it; see the module's text.
///
/// Built with [`Pump::new`] and the methods after it, consumed by
/// [`Pump::run`]. Every descriptor is made non-blocking and is closed when
/// the run is over (or on error).
#[derive(Debug)]
pub struct Pump<'a> {
    stdin: Option<(OwnedFd, &'a [u8])>,
    outputs: Vec<Stream>,
    deadline: Option<Instant>,
    cancel: Option<BorrowedFd<'a>>,
    grace: Duration,
}

/// One output stream being captured.
#[derive(Debug)]
struct Stream {
    fd: Option<OwnedFd>,
    cap: Option<usize>,
    captured: Captured,
}

/// How far the pump is in ending the target.
#[derive(Clone, Copy, Debug)]
enum Kill {
    /// Nothing asked yet.
    No,
    /// [`Target::kill`] was called at this instant.
    Asked(Instant),
    /// [`Target::force_kill`] was called at this instant.
    Forced(Instant),
}

/// The first kill reason, and how far the pump is in ending the target.
#[derive(Debug)]
struct Ending {
    killed: Option<KillReason>,
    kill: Kill,
}

impl Ending {
    /// Records the first reason, and asks a running target, once.
    fn ask<T: Target + ?Sized>(
        &mut self,
        target: &mut T,
        state: State,
        reason: KillReason,
        now: Instant,
    ) {
        if self.killed.is_some() {
            return;
        }
        self.killed = Some(reason);
        if state == State::Running {
            tracing::warn!("Killing process {}: {}", target.pid(), reason.why());
            target.kill(reason);
            self.kill = Kill::Asked(now);
        }
    }
}

/// Which descriptors of the last poll were ready.
#[derive(Debug, Default)]
struct Ready {
    stdin: bool,
    outputs: Vec<bool>,
    target: bool,
    cancel: bool,
}

impl Ready {
    fn any(&self) -> bool {
        self.stdin || self.target || self.cancel || self.outputs.contains(&true)
    }
}

impl<'a> Pump<'a> {
    /// A pump with no stream yet that asks the target to end the run at
    /// `deadline` ([`KillReason::Wall`]); `None`: no deadline (see
    /// [`deadline_after`]).
    pub fn new(deadline: Option<Instant>) -> Pump<'a> {
        Pump {
            stdin: None,
            outputs: Vec::new(),
            deadline,
            cancel: None,
            grace: DEFAULT_KILL_GRACE,
        }
    }

    /// Feeds `bytes` to `fd` (the write end of the program's stdin), then
    /// closes it: end of file. `EPIPE` means the program closed its stdin
    /// and wants no more; the rest is dropped. Empty `bytes` close `fd` at
    /// once.
    pub fn stdin(mut self, fd: OwnedFd, bytes: &'a [u8]) -> Pump<'a> {
        self.stdin = (!bytes.is_empty()).then_some((fd, bytes));
        self
    }

    /// Adds an output stream (the read end of a pipe) that keeps at most
    /// `cap` bytes (`None`: no cap). Past the cap the stream is marked
    /// truncated, the rest is read and dropped, and the target is asked to
    /// end the run ([`KillReason::Output`]). Streams are returned in the
    /// order they were added.
    pub fn output(mut self, fd: OwnedFd, cap: Option<usize>) -> Pump<'a> {
        self.outputs.push(Stream {
            fd: Some(fd),
            cap,
            captured: Captured::default(),
        });
        self
    }

    /// Asks the target to end the run ([`KillReason::Cancelled`]) as soon
    /// as `fd` polls readable or hung up: the read end of a pipe whose
    /// write end the caller closes to cancel.
    pub fn cancel_on(mut self, fd: BorrowedFd<'a>) -> Pump<'a> {
        self.cancel = Some(fd);
        self
    }

    /// How long the target gets to finish after the kill request before
    /// [`Target::force_kill`], and after that before the pump gives up on
    /// it (default [`DEFAULT_KILL_GRACE`]). Also how long the pump waits,
    /// once the target has finished, for streams that have nothing left to
    /// read but do not close.
    pub fn kill_grace(mut self, grace: Duration) -> Pump<'a> {
        self.grace = grace;
        self
    }

    /// Runs the loop until the target has finished and every stream is
    /// closed, or the target is [`State::Abandoned`], or the pump gave up
    /// on it after [`Target::force_kill`].
    ///
    /// One `poll` over stdin, the streams, the target's descriptor and the
    /// cancel descriptor, whose timeout is the next thing due: the
    /// deadline, or after a kill request the end of the grace period, or
    /// after the forced kill the end of a second one. It never spins: each
    /// turn waits on the descriptors until one is ready or that instant.
    ///
    /// # Errors
    /// [`PumpError`] when `poll`, a read, a write or
    /// [`Target::ready`] fails. The target is then left as it is: its
    /// owner ends it (the cold path's handle does so when dropped).
    pub fn run<T: Target + ?Sized>(mut self, target: &mut T) -> Result<Pumped, PumpError> {
        self.make_nonblocking()?;
        let mut state = State::Running;
        let mut ending = Ending {
            killed: None,
            kill: Kill::No,
        };
        let mut finished_at: Option<Instant> = None;
        let mut buf = vec![0u8; CHUNK];
        loop {
            let now = Instant::now();
            if state == State::Running && self.timers(target, &mut ending, now) {
                break; // gave up on the target
            }
            let wake = match (finished_at, ending.kill) {
                (Some(at), _) | (None, Kill::Asked(at) | Kill::Forced(at)) => {
                    at.checked_add(self.grace)
                }
                (None, Kill::No) => self.deadline,
            };
            let ready = self.poll(target, state, ending.kill, wake, now)?;
            if ready.stdin {
                self.feed_stdin()?;
            }
            for (stream, _) in self.outputs.iter_mut().zip(&ready.outputs).filter(|r| *r.1) {
                stream.read(&mut buf)?;
            }
            let now = Instant::now();
            // Past a cap: end the run. The reason is kept even when the
            // target has finished already, so that the outcome says why the
            // output is cut.
            if self.outputs.iter().any(|s| s.captured.truncated) {
                ending.ask(target, state, KillReason::Output, now);
            }
            if ready.target {
                state = target.ready().map_err(|source| PumpError {
                    step: "learn the run's state",
                    source,
                })?;
                if state != State::Running {
                    finished_at = Some(now);
                    self.stdin = None; // nobody is left to read it
                }
            }
            if ready.cancel {
                ending.ask(target, state, KillReason::Cancelled, now);
            }
            let drained = self.outputs.iter().all(|s| s.fd.is_none());
            let quiet_past_grace =
                !ready.any() && finished_at.is_some_and(|at| self.due(at, Instant::now()));
            match state {
                State::Abandoned => break,
                State::Finished if drained || quiet_past_grace => break,
                _ => {}
            }
        }
        Ok(Pumped {
            outputs: self.outputs.into_iter().map(|s| s.captured).collect(),
            killed: ending.killed,
            target: state,
        })
    }

    /// What is due while the target runs: the deadline (kill request), the
    /// end of the grace period after it (forced kill), the end of the one
    /// after that (true: give up).
    fn timers<T: Target + ?Sized>(
        &self,
        target: &mut T,
        ending: &mut Ending,
        now: Instant,
    ) -> bool {
        match ending.kill {
            Kill::No if self.deadline.is_some_and(|d| now >= d) => {
                ending.ask(target, State::Running, KillReason::Wall, now);
            }
            Kill::Asked(at) if self.due(at, now) => {
                target.force_kill();
                ending.kill = Kill::Forced(now);
            }
            Kill::Forced(at) if self.due(at, now) => return true,
            _ => {}
        }
        false
    }

    /// Whether the grace period that started `at` is over; never, when its
    /// end cannot be represented.
    fn due(&self, at: Instant, now: Instant) -> bool {
        at.checked_add(self.grace).is_some_and(|end| now >= end)
    }

    fn make_nonblocking(&self) -> Result<(), PumpError> {
        let stdin = self.stdin.iter().map(|(fd, _)| fd);
        let outputs = self.outputs.iter().filter_map(|s| s.fd.as_ref());
        for fd in stdin.chain(outputs) {
            let flags = fcntl_getfl(fd).map_err(PumpError::at("read descriptor flags"))?;
            fcntl_setfl(fd, flags | OFlags::NONBLOCK)
                .map_err(PumpError::at("make a pipe non-blocking"))?;
        }
        Ok(())
    }

    /// One `poll` until a descriptor is ready or `wake`: stdin while there
    /// is some to feed, the open streams, the target's descriptor while it
    /// runs, the cancel descriptor until a kill was asked for.
    fn poll<T: Target + ?Sized>(
        &self,
        target: &T,
        state: State,
        kill: Kill,
        wake: Option<Instant>,
        now: Instant,
    ) -> Result<Ready, PumpError> {
        // What each entry of `fds` is: the stream's index, or one of these.
        const STDIN: usize = usize::MAX;
        const TARGET: usize = usize::MAX - 1;
        const CANCEL: usize = usize::MAX - 2;
        let running = state == State::Running;
        let mut fds = Vec::with_capacity(self.outputs.len() + 3);
        let mut what = Vec::with_capacity(self.outputs.len() + 3);
        if let Some((fd, _)) = &self.stdin {
            fds.push(PollFd::new(fd, PollFlags::OUT));
            what.push(STDIN);
        }
        for (i, stream) in self.outputs.iter().enumerate() {
            if let Some(fd) = &stream.fd {
                fds.push(PollFd::new(fd, PollFlags::IN));
                what.push(i);
            }
        }
        if running {
            fds.push(PollFd::from_borrowed_fd(target.fd(), PollFlags::IN));
            what.push(TARGET);
        }
        if let (true, Kill::No, Some(fd)) = (running, kill, self.cancel) {
            fds.push(PollFd::from_borrowed_fd(fd, PollFlags::IN));
            what.push(CANCEL);
        }
        let timeout = wake.map(|w| timespec(w.saturating_duration_since(now)));
        match poll(&mut fds, timeout.as_ref()) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(PumpError::at("poll the run")(e)),
        }
        let mut ready = Ready {
            outputs: vec![false; self.outputs.len()],
            ..Ready::default()
        };
        for (fd, what) in fds.iter().zip(what) {
            if fd.revents().is_empty() {
                continue;
            }
            match what {
                STDIN => ready.stdin = true,
                TARGET => ready.target = true,
                CANCEL => ready.cancel = true,
                i => {
                    if let Some(r) = ready.outputs.get_mut(i) {
                        *r = true;
                    }
                }
            }
        }
        Ok(ready)
    }

    /// Writes what the pipe takes; closes it when everything is written or
    /// the program closed its end.
    fn feed_stdin(&mut self) -> Result<(), PumpError> {
        let Some((fd, bytes)) = &mut self.stdin else {
            return Ok(());
        };
        while !bytes.is_empty() {
            let chunk = &bytes[..bytes.len().min(CHUNK)];
            match rustix::io::write(&*fd, chunk) {
                Ok(n) => *bytes = &bytes[n.min(bytes.len())..],
                Err(Errno::AGAIN) => return Ok(()),
                Err(Errno::INTR) => {}
                // The program closed its stdin: the rest is not wanted.
                Err(Errno::PIPE) => break,
                Err(e) => return Err(PumpError::at("write the program's stdin")(e)),
            }
        }
        self.stdin = None;
        Ok(())
    }
}

impl Stream {
    /// Reads what is available; closes the stream at end of file.
    fn read(&mut self, buf: &mut [u8]) -> Result<(), PumpError> {
        let Some(fd) = &self.fd else { return Ok(()) };
        loop {
            match rustix::io::read(fd, &mut *buf) {
                Ok(0) => {
                    self.fd = None;
                    return Ok(());
                }
                Ok(n) => {
                    let kept = self.captured.bytes.len();
                    let room = self.cap.map_or(n, |c| c.saturating_sub(kept));
                    self.captured.bytes.extend_from_slice(&buf[..n.min(room)]);
                    if n > room {
                        self.captured.truncated = true;
                    }
                }
                Err(Errno::AGAIN) => return Ok(()),
                Err(Errno::INTR) => {}
                Err(e) => return Err(PumpError::at("read the program's output")(e)),
            }
        }
    }
}

/// A poll timeout; durations past `i64::MAX` seconds are clamped.
pub(crate) fn timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: i64::try_from(d.as_secs()).unwrap_or(i64::MAX),
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}
