//! The builder and the caller's side of a run: plan, prepare, clone, pump,
//! reap.
//!
//! - this file: [`Spawn`], and [`Spawn::run`]: the layers planned, the
//!   input checked, the cgroup and the holder made, the pipes, the
//!   supervisor cloned, `execve` awaited on the error pipe, the pump, the
//!   report turned into an [`Outcome`];
//! - `prepare.rs`: from a `Spawn` to what the children need (the program's
//!   path, the confinement steps, every C string), built before the clone;
//! - `holder.rs`, `supervisor.rs`: the caller's handles on those processes
//!   (the processes themselves are in `crate::child`): they kill and reap;
//! - `pump.rs`: the I/O loop, public as [`crate::pump`].

mod holder;
mod prepare;
pub mod pump;
mod supervisor;

pub(crate) use prepare::exec_guard_filter;

use std::ffi::{OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::io::Errno;
use rustix::pipe::{PipeFlags, pipe_with};

use self::holder::Holder;
use self::pump::{Pump, Pumped, Target};
use self::supervisor::Supervisor;
use crate::cgroup::{self, Need, RunCgroup, Setting};
use crate::child::{self, ChildFds, Report, Step};
use crate::fsrules::{FsRules, Tmpfs};
use crate::layers::{Layer, LayerSet, Policy};
use crate::outcome::status_code;
use crate::probe::Probe;
use crate::{KillReason, Limits, Outcome, SpawnError, Truncated};

/// The uid and gid a root caller runs programs as by default.
pub const NOBODY: (u32, u32) = (65534, 65534);

/// The program's `PATH` when [`Spawn::env`] gives none, and where a bare
/// program name is looked up then.
pub const DEFAULT_PATH: &str = "/usr/local/bin:/usr/bin:/bin";

/// How long the supervisor gets to kill and reap the run after being asked,
/// before the caller kills it and its process group itself.
const KILL_GRACE: Duration = pump::DEFAULT_KILL_GRACE;

/// One program to run: argv, working directory, environment, stdin, limits.
///
/// Nothing of the caller's environment reaches the program unless given with
/// [`env`](Spawn::env). [`run`](Spawn::run) may be called from many threads
/// at once, on different `Spawn`s or the same one.
#[derive(Clone, Debug)]
pub struct Spawn {
    program: PathBuf,
    arg0: Option<OsString>,
    args: Vec<OsString>,
    env: Vec<(OsString, OsString)>,
    cwd: Option<PathBuf>,
    stdin: Vec<u8>,
    stdin_fd: Option<std::sync::Arc<std::sync::Mutex<Option<OwnedFd>>>>,
    limits: Limits,
    identity: (u32, u32),
    policy: Policy,
    fs: FsRules,
    tmpfs: Vec<Tmpfs>,
    cgroup_settings: Vec<Setting>,
    apparmor: Option<String>,
    cancel: Option<std::sync::Arc<OwnedFd>>,
    allow_exec: bool,
    slug: String,
}

impl Spawn {
    /// A run of `program`: a path, or a bare name looked up in the `PATH`
    /// given with [`env`](Spawn::env) (default [`DEFAULT_PATH`]).
    pub fn new(program: impl AsRef<Path>) -> Spawn {
        Spawn {
            program: program.as_ref().to_owned(),
            arg0: None,
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            stdin: Vec::new(),
            stdin_fd: None,
            limits: Limits::default(),
            identity: NOBODY,
            policy: Policy::Auto,
            fs: FsRules::default(),
            tmpfs: Vec::new(),
            cgroup_settings: Vec::new(),
            apparmor: None,
            cancel: None,
            allow_exec: false,
            slug: String::new(),
        }
    }

    /// Sets `argv[0]` (default: the program as given).
    pub fn arg0(&mut self, arg0: impl AsRef<OsStr>) -> &mut Spawn {
        self.arg0 = Some(arg0.as_ref().to_owned());
        self
    }

    /// Appends one argument.
    pub fn arg(&mut self, arg: impl AsRef<OsStr>) -> &mut Spawn {
        self.args.push(arg.as_ref().to_owned());
        self
    }

    /// Appends arguments.
    pub fn args<I, S>(&mut self, args: I) -> &mut Spawn
    where
        I: IntoIterator<Item = S>,
        S: AsRef<OsStr>,
    {
        self.args
            .extend(args.into_iter().map(|a| a.as_ref().to_owned()));
        self
    }

    /// Adds one environment variable. Nothing of the caller's environment
    /// is passed on: the program gets these variables and, unless one of
    /// them is `PATH`, [`DEFAULT_PATH`] as `PATH`, so that a program that
    /// runs others (a compiler driver and its helpers) finds them. A
    /// variable given twice is passed twice, in order.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Spawn {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// The working directory (default `/`).
    ///
    /// Not the caller's: under Landlock the caller's directory is reachable
    /// only if a rule grants it, and a run should not depend on where its
    /// caller happens to be. The program changes to it before it confines
    /// itself, so any directory the program's uid may enter works as a
    /// start; reading or writing in it still needs a rule
    /// ([`fs_rules`](Spawn::fs_rules)). A directory that does not exist is
    /// a [`SpawnError::Setup`] at step `chdir`.
    pub fn cwd(&mut self, dir: impl AsRef<Path>) -> &mut Spawn {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// Bytes fed to the program's stdin, then end of file.
    pub fn stdin(&mut self, bytes: impl Into<Vec<u8>>) -> &mut Spawn {
        self.stdin = bytes.into();
        self
    }

    /// The program's stdin is this descriptor itself (a socket, a FIFO, a
    /// file) instead of a pipe fed with [`stdin`](Spawn::stdin)'s bytes:
    /// the program reads it under the run's deadline, and nothing is
    /// buffered in the caller. The descriptor goes to the first run of
    /// this `Spawn` (or of a clone of it) and is closed in the caller as
    /// soon as that run's program has it; a later run's stdin is empty.
    pub fn stdin_fd(&mut self, fd: OwnedFd) -> &mut Spawn {
        self.stdin_fd = Some(std::sync::Arc::new(std::sync::Mutex::new(Some(fd))));
        self
    }

    /// Resource limits.
    pub fn limits(&mut self, limits: Limits) -> &mut Spawn {
        self.limits = limits;
        self
    }

    /// The uid and gid of the [`Layer::Identity`] layer, used when the
    /// caller can switch (default `nobody`/`nogroup`, 65534/65534). The
    /// program gets no supplementary groups.
    pub fn identity(&mut self, uid: u32, gid: u32) -> &mut Spawn {
        self.identity = (uid, gid);
        self
    }

    /// Which confinement layers to apply (default [`Policy::Auto`]).
    pub fn policy(&mut self, policy: Policy) -> &mut Spawn {
        self.policy = policy;
        self
    }

    /// The paths the program may reach under Landlock (default
    /// [`FsRules::default`]: system programs and libraries only).
    pub fn fs_rules(&mut self, rules: FsRules) -> &mut Spawn {
        self.fs = rules;
        self
    }

    /// Mounts a size- and inode-limited tmpfs over a directory, in the run's
    /// own mount namespace (needs the `mountns` layer).
    pub fn tmpfs(&mut self, mount: Tmpfs) -> &mut Spawn {
        self.tmpfs.push(mount);
        self
    }

    /// Writes `value` to the file `file` of the run's own cgroup v2 before
    /// its program starts, e.g. `cpu.max` = `"50000 100000"` (half a CPU).
    /// The file's controller (the name up to its first dot) must be
    /// delegated to this process (see
    /// [`CgroupOptions::controllers`](crate::CgroupOptions::controllers));
    /// the run needs the cgroup layer, and fails with
    /// [`SpawnError::LayerUnavailable`] when it cannot have either. Given
    /// twice, both are written, in order. A name that is not one plain
    /// controller file (`cgroup.*`, a `/`) is refused
    /// ([`SpawnError::Cgroup`], `InvalidInput`).
    pub fn cgroup_setting(
        &mut self,
        file: impl Into<String>,
        value: impl Into<String>,
    ) -> &mut Spawn {
        let value: String = value.into();
        self.cgroup_settings
            .push(Setting::new(file, value, Need::Required));
        self
    }

    /// The AppArmor profile the program switches to at exec (the
    /// [`Layer::AppArmor`] layer, where the kernel has AppArmor). The
    /// profile must be loaded; see the `codejail-apparmor` crate.
    pub fn apparmor_profile(&mut self, name: impl Into<String>) -> &mut Spawn {
        self.apparmor = Some(name.into());
        self
    }

    /// Ends the run (every process of it) as soon as `fd` becomes readable
    /// or its other end is closed: the read end of a pipe whose write end
    /// the caller drops to cancel. For long-lived runs such as a warm pool.
    pub fn cancel_on(&mut self, fd: OwnedFd) -> &mut Spawn {
        self.cancel = Some(std::sync::Arc::new(fd));
        self
    }

    /// Whether the program may start other programs (default: no).
    ///
    /// By default the program's own `execve` is the only one of the run:
    /// every later `execve` or `execveat`, by the program or anything it
    /// starts, fails with `EACCES` (the [`Layer::NoExec`] layer), as under
    /// CodeJail's AppArmor profile. With `true` that layer is left out and
    /// a program may start what the other layers let it reach (under
    /// Landlock, what its rules give the execute right: [`FsRules`]); a
    /// shell script that runs commands needs it. A policy that requires
    /// `no_exec` then fails ([`SpawnError::LayerUnavailable`]).
    pub fn allow_exec(&mut self, allow: bool) -> &mut Spawn {
        self.allow_exec = allow;
        self
    }

    /// A label for the caller's logs (CodeJail's `slug`); none when empty
    /// (the default).
    pub fn slug(&mut self, slug: impl Into<String>) -> &mut Spawn {
        self.slug = slug.into();
        self
    }

    /// Runs the program to the end and returns what happened.
    ///
    /// When this returns, every process the run created has been killed and
    /// reaped, but for one in uninterruptible sleep (a file system that
    /// took a request and does not answer it), which no signal ends: the
    /// caller stops waiting for it after a bounded time (decision 0016).
    ///
    /// A cancel ([`Spawn::cancel_on`]) seen before the program's `execve`
    /// ends the run as [`KillReason::Cancelled`], even one whose set-up
    /// would have failed; as for any kill, a supervisor that cannot finish
    /// it within the grace period (its own set-up, or a process of the run,
    /// in uninterruptible sleep) makes it [`SpawnError::SupervisorLost`].
    ///
    /// # Errors
    /// [`SpawnError`] when the program could not be started (not found, a
    /// setup step failed, the wall-clock limit passed first:
    /// [`SpawnError::SetupTimeout`]) or the run could not be supervised.
    pub fn run(&self) -> Result<Outcome, SpawnError> {
        let start = Instant::now();
        let span = tracing::info_span!(
            "run",
            slug = tracing::field::Empty,
            pid = tracing::field::Empty
        );
        // Without a slug, none is shown: a caller whose own span names it
        // (the facade's) leaves it out here, so that no line names it twice.
        if !self.slug.is_empty() {
            span.record("slug", tracing::field::display(&self.slug));
        }
        let _entered = span.enter();
        let deadline = self
            .limits
            .wall()
            .and_then(|wall| pump::deadline_after(start, wall));
        let mut run = self.start(deadline)?;
        let cap = self.limits.output();
        let mut pump = Pump::new(deadline).kill_grace(KILL_GRACE);
        if let Some(stdin) = run.stdin.take() {
            pump = pump.stdin(stdin, &self.stdin);
        }
        for output in [run.stdout.take(), run.stderr.take()].into_iter().flatten() {
            pump = pump.output(output, cap);
        }
        if let Some(cancel) = &self.cancel {
            pump = pump.cancel_on(cancel.as_fd());
        }
        let pumped = pump.run(&mut run.sup).map_err(|e| SpawnError::Parent {
            step: e.step,
            source: e.source,
        })?;
        let report = run.sup.finish()?;
        let oom = run
            .cgroup
            .as_ref()
            .is_some_and(|c| c.limits_memory() && c.oom_killed());
        drop(run.cgroup.take());
        let outcome = self.outcome(start, &run, report, pumped, oom);
        tracing::debug!(status = outcome.status, killed_by = ?outcome.killed_by, wall = ?outcome.wall, "finished");
        Ok(outcome)
    }

    /// Everything up to a running program: checks the input and builds
    /// what the children need ([`Spawn::plan`]), makes the cgroup, the
    /// holder and the pipes, clones the supervisor (which clones the
    /// program into the cgroup), and waits on the error pipe until
    /// `execve` succeeded, the run's `deadline` passed
    /// ([`SpawnError::SetupTimeout`]) or the caller cancelled it (the pump
    /// then ends it, as [`KillReason::Cancelled`]).
    fn start(&self, deadline: Option<Instant>) -> Result<Started, SpawnError> {
        let plan = self.plan()?;
        let probe = Probe::get();
        cgroup::check_settings(&probe.cgroups, &self.cgroup_settings)?;
        // Bad input has been refused by now: the first process or cgroup
        // comes here.
        let cgroup = plan
            .layers
            .contains(Layer::Cgroup)
            .then(|| {
                RunCgroup::create(
                    &probe.cgroups,
                    self.limits.memory(),
                    self.limits.nproc(),
                    &self.cgroup_settings,
                )
            })
            .transpose()?;
        let cgroup_v2 = cgroup
            .as_ref()
            .map(RunCgroup::v2_dir)
            .transpose()?
            .flatten();
        let cgroup_procs = cgroup
            .as_ref()
            .map(RunCgroup::v1_procs)
            .transpose()?
            .unwrap_or_default();
        let mut holder = (plan.namespaces != 0)
            .then(|| {
                let maps = (plan.layers.contains(Layer::UserNs)).then(|| self.id_maps(probe));
                Holder::create(plan.namespaces, plan.prep.net_late(), maps)
            })
            .transpose()?;
        let pipes = Pipes::new()?;
        let stdin_fd = self
            .stdin_fd
            .as_ref()
            .and_then(|fd| fd.lock().unwrap_or_else(|e| e.into_inner()).take());
        let fds = ChildFds {
            holder: holder.as_ref().map(|h| h.pidfd().as_raw_fd()),
            holder_net: holder
                .as_ref()
                .and_then(Holder::net)
                .map(|fd| fd.as_raw_fd()),
            landlock: plan.ruleset.as_ref().map(AsRawFd::as_raw_fd),
            cgroup_procs: [
                cgroup_procs.first().map(AsRawFd::as_raw_fd),
                cgroup_procs.get(1).map(AsRawFd::as_raw_fd),
            ],
            cgroup_v2: cgroup_v2.as_ref().map(AsRawFd::as_raw_fd),
            ..pipes.child_fds(stdin_fd.as_ref().map(AsRawFd::as_raw_fd))
        };
        let mut sup = Supervisor::start(&plan.prep, fds, pipes.control_w, pipes.report_r)?;
        tracing::Span::current().record("pid", sup.pid());
        tracing::debug!(program = %plan.program.display(), "started");
        drop(pipes.child_ends);
        drop((plan.ruleset, cgroup_v2, cgroup_procs, stdin_fd));
        if let Some(holder) = holder.as_mut() {
            holder.release_net();
        }
        let cancel = self.cancel.as_deref().map(AsFd::as_fd);
        // Past this point an error return drops `sup`, which kills and
        // reaps the supervisor (it kills the program), then the holder,
        // then the cgroup.
        match wait_setup(&pipes.error_r, deadline, cancel)? {
            SetupEnd::Started => {}
            SetupEnd::Failed(step, detail, errno) => {
                return Err(setup_failure(
                    &plan.program,
                    &plan.prep,
                    step,
                    detail,
                    errno,
                ));
            }
            SetupEnd::TimedOut => {
                tracing::warn!(
                    pid = sup.pid(),
                    "the run's set-up passed its wall-clock limit; killing it"
                );
                // Without the kill request's grace period: a supervisor
                // still in its own set-up reads no request.
                let answered = sup.kill_in_setup();
                // Killed without a word, it may have started a program
                // that left its process group in the meantime; only a pid
                // namespace or a cgroup is sure to end that.
                if !answered && !plan.layers.contains(Layer::PidNs) && cgroup.is_none() {
                    return Err(SpawnError::SupervisorLost {
                        wait_status: libc::SIGKILL,
                    });
                }
                return Err(SpawnError::SetupTimeout {
                    wall: self.limits.wall().unwrap_or_default(),
                });
            }
        }
        Ok(Started {
            sup,
            _holder: holder,
            cgroup,
            // With a descriptor of the caller's as stdin, nothing is fed.
            stdin: self.stdin_fd.is_none().then_some(pipes.stdin_w),
            stdout: Some(pipes.stdout_r),
            stderr: Some(pipes.stderr_r),
            layers: plan.layers,
            landlock_abi: plan.landlock_abi,
        })
    }

    /// The outcome of a run the supervisor reported on.
    fn outcome(
        &self,
        start: Instant,
        run: &Started,
        report: Report,
        pumped: Pumped,
        oom: bool,
    ) -> Outcome {
        let cpu = Duration::from_micros(report.cpu_micros);
        let status = status_code(report.wait_status);
        let disk = report.disk_full.then_some(KillReason::Disk);
        let killed_by = pumped
            .killed
            .filter(|k| k.ended(status))
            .or(oom.then_some(KillReason::Memory))
            .or_else(|| {
                let by_cpu_limit = status == -libc::SIGXCPU
                    || (status == -libc::SIGKILL
                        && self
                            .limits
                            .cpu_secs
                            .is_some_and(|s| s > 0 && cpu.as_secs() >= s));
                by_cpu_limit.then_some(KillReason::Cpu).or(disk)
            });
        let mut outputs = pumped.outputs.into_iter();
        let stdout = outputs.next().unwrap_or_default();
        let stderr = outputs.next().unwrap_or_default();
        Outcome {
            status,
            truncated: Truncated {
                stdout: stdout.truncated,
                stderr: stderr.truncated,
            },
            stdout: stdout.bytes,
            stderr: stderr.bytes,
            killed_by,
            wall: start.elapsed(),
            cpu,
            max_rss_kib: report.max_rss_kib,
            layers: run.layers,
            landlock: run.landlock_abi.and_then(|_| Probe::get().landlock_status),
        }
    }
}

/// A run whose program has started. Fields drop in this order: the
/// supervisor is reaped (or killed and reaped) before the holder, and the
/// cgroup goes last.
struct Started {
    sup: Supervisor,
    /// Kept for its drop: kills and reaps the holder.
    _holder: Option<Holder>,
    cgroup: Option<RunCgroup>,
    /// The caller's ends of the program's stdio, until the pump takes them.
    stdin: Option<OwnedFd>,
    stdout: Option<OwnedFd>,
    stderr: Option<OwnedFd>,
    layers: LayerSet,
    landlock_abi: Option<i32>,
}

/// How many processes of a run besides the program's own count against
/// its `RLIMIT_NPROC`: in an unprivileged user namespace the namespace
/// holder and the supervisor have the program's uid there. A caller that
/// counts processes itself (a warm pool's zygote) adds this too.
pub fn nproc_overhead(layers: LayerSet) -> u64 {
    if layers.contains(Layer::UserNs) && Probe::get().euid != 0 {
        2
    } else {
        0
    }
}

/// The run's six pipes, all close-on-exec: the caller's ends, and the
/// child's ends, which the supervisor takes at the clone and the caller
/// drops right after it.
struct Pipes {
    stdin_w: OwnedFd,
    stdout_r: OwnedFd,
    stderr_r: OwnedFd,
    error_r: OwnedFd,
    report_r: OwnedFd,
    control_w: OwnedFd,
    /// stdin's read end, stdout's and stderr's, the error and report
    /// pipes' write ends, the control pipe's read end.
    child_ends: [OwnedFd; 6],
}

impl Pipes {
    fn new() -> Result<Pipes, SpawnError> {
        let pipe = || pipe_with(PipeFlags::CLOEXEC).map_err(SpawnError::parent("create a pipe"));
        let (stdin_r, stdin_w) = pipe()?;
        let (stdout_r, stdout_w) = pipe()?;
        let (stderr_r, stderr_w) = pipe()?;
        let (error_r, error_w) = pipe()?;
        let (report_r, report_w) = pipe()?;
        let (control_r, control_w) = pipe()?;
        Ok(Pipes {
            stdin_w,
            stdout_r,
            stderr_r,
            error_r,
            report_r,
            control_w,
            child_ends: [stdin_r, stdout_w, stderr_w, error_w, report_w, control_r],
        })
    }

    /// The child's ends by number, with `stdin` instead of the stdin
    /// pipe's when given; no holder, ruleset or cgroup.
    fn child_fds(&self, stdin: Option<std::os::fd::RawFd>) -> ChildFds {
        let [stdin_r, stdout, stderr, error, report, control] =
            self.child_ends.each_ref().map(AsRawFd::as_raw_fd);
        ChildFds {
            stdin: stdin.unwrap_or(stdin_r),
            stdout,
            stderr,
            error,
            report,
            control,
            holder: None,
            holder_net: None,
            landlock: None,
            cgroup_procs: [None, None],
            cgroup_v2: None,
        }
    }
}

/// How the wait for the program's `execve` ended.
#[derive(Debug)]
enum SetupEnd {
    /// `execve` succeeded (the error pipe ended without a message), or the
    /// caller cancelled the run first (the pump ends it).
    Started,
    /// A set-up step failed: the step, its detail, its errno.
    Failed(Step, u32, i32),
    /// The run's deadline passed first.
    TimedOut,
}

/// Waits on the error pipe `fd` (with `poll`) until it has something to
/// read or hangs up, `deadline` passes, or `cancel` becomes readable or
/// hangs up, in that order of precedence when several are so at once;
/// then reads the pipe's message, if any. It polls at least once, so that
/// a message already in the pipe wins over a deadline already passed.
///
/// A set-up step can block in the kernel (a path lookup on a network file
/// system that does not answer, in the program's `chdir` or its root's
/// `open_tree`): without the deadline the caller would wait with it.
fn wait_setup(
    fd: &OwnedFd,
    deadline: Option<Instant>,
    cancel: Option<std::os::fd::BorrowedFd<'_>>,
) -> Result<SetupEnd, SpawnError> {
    use rustix::event::{PollFd, PollFlags, poll};
    loop {
        let left = deadline.map(|d| d.saturating_duration_since(Instant::now()));
        let mut fds = [
            PollFd::new(fd, PollFlags::IN),
            PollFd::from_borrowed_fd(cancel.unwrap_or(fd.as_fd()), PollFlags::IN),
        ];
        // Without a cancel descriptor only the error pipe is polled.
        let polled = if cancel.is_some() {
            &mut fds[..]
        } else {
            &mut fds[..1]
        };
        match poll(polled, left.map(pump::timespec).as_ref()) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(SpawnError::parent("poll the error pipe")(e)),
        }
        if !fds[0].revents().is_empty() {
            return Ok(match read_setup_error(fd) {
                None => SetupEnd::Started,
                Some((step, detail, errno)) => SetupEnd::Failed(step, detail, errno),
            });
        }
        if cancel.is_some() && !fds[1].revents().is_empty() {
            return Ok(SetupEnd::Started);
        }
        if deadline.is_some_and(|d| Instant::now() >= d) {
            return Ok(SetupEnd::TimedOut);
        }
    }
}

/// The error for a set-up step that failed: `NotFound` for a program
/// `execve` did not find, `Root` with the part of the private root that
/// failed, else `Setup` with the step's name; the errno kept.
fn setup_failure(
    program: &Path,
    prep: &child::Prepared,
    step: Step,
    detail: u32,
    errno: i32,
) -> SpawnError {
    let source = std::io::Error::from_raw_os_error(errno);
    match step {
        Step::Execve if errno == libc::ENOENT => SpawnError::NotFound {
            program: program.to_owned(),
        },
        Step::Root => {
            let what = prep.root().map_or_else(String::new, |root| {
                crate::root::describe(root, child::RootDetail::decode(detail))
            });
            SpawnError::Root(crate::root::RootError::Build { what, source })
        }
        _ => SpawnError::Setup {
            step: step.name(),
            source,
        },
    }
}

/// Reads the error pipe, once `poll` said it is readable, to its end:
/// `None` once `execve` succeeded, else the step, its detail and the
/// errno. The children write the message in one `write` shorter than
/// `PIPE_BUF`, so it is there whole.
fn read_setup_error(fd: &OwnedFd) -> Option<(Step, u32, i32)> {
    let mut msg = [0u8; child::ERROR_LEN];
    let mut got = 0;
    while got < msg.len() {
        match rustix::io::read(fd, &mut msg[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::INTR) => continue,
            Err(_) => break,
        }
    }
    if got < msg.len() {
        return None;
    }
    let (step, detail, errno) = child::decode_error(&msg);
    Some((step.unwrap_or(Step::Execve), detail, errno))
}

#[cfg(test)]
mod tests {
    use std::os::fd::{AsFd, OwnedFd};
    use std::time::{Duration, Instant};

    use super::{SetupEnd, wait_setup};
    use crate::child::{Step, encode_error};

    fn pipe() -> (OwnedFd, OwnedFd) {
        rustix::pipe::pipe().unwrap()
    }

    fn long_ago() -> Option<Instant> {
        Instant::now().checked_sub(Duration::from_secs(1))
    }

    /// A step's failure already in the pipe wins over a deadline already
    /// passed, and over a cancel.
    #[test]
    fn support_a_failure_in_the_pipe_wins_over_a_passed_deadline_and_a_cancel() {
        let (error_r, error_w) = pipe();
        let (cancel_r, cancel_w) = pipe();
        drop(cancel_w);
        rustix::io::write(&error_w, &encode_error(Step::Chdir, 0, libc::ENOENT)).unwrap();
        let end = wait_setup(&error_r, long_ago(), Some(cancel_r.as_fd())).unwrap();
        assert!(
            matches!(end, SetupEnd::Failed(Step::Chdir, 0, libc::ENOENT)),
            "{end:?}"
        );
    }

    /// The pipe's end (`execve` succeeded) is a start, with or without a
    /// cancel descriptor; nothing yet and the deadline passed is a
    /// timeout; nothing yet and a cancel is a start (the pump ends it).
    #[test]
    fn support_each_end_of_the_wait_is_told_apart() {
        let (error_r, error_w) = pipe();
        drop(error_w);
        let end = wait_setup(&error_r, None, None).unwrap();
        assert!(matches!(end, SetupEnd::Started), "{end:?}");
        let (cancel_r, _cancel_w) = pipe();
        let end = wait_setup(&error_r, long_ago(), Some(cancel_r.as_fd())).unwrap();
        assert!(matches!(end, SetupEnd::Started), "{end:?}");

        let (error_r, _error_w) = pipe();
        let (cancel_r, cancel_w) = pipe();
        let end = wait_setup(&error_r, long_ago(), Some(cancel_r.as_fd())).unwrap();
        assert!(matches!(end, SetupEnd::TimedOut), "{end:?}");
        let soon = Instant::now() + Duration::from_millis(50);
        let end = wait_setup(&error_r, Some(soon), None).unwrap();
        assert!(matches!(end, SetupEnd::TimedOut), "{end:?}");
        assert!(Instant::now() >= soon);
        drop(cancel_w);
        let end = wait_setup(&error_r, None, Some(cancel_r.as_fd())).unwrap();
        assert!(matches!(end, SetupEnd::Started), "{end:?}");
    }

    // Here rather than in tests/: no other test of this binary runs a
    // `Spawn`, so no thread caches the span's interest before the scoped
    // subscriber is installed.
    #[test]
    fn the_deadline_warning_names_the_slug_and_the_pid() {
        use std::time::Duration;

        use crate::{KillReason, Limits, Spawn};

        let mut spawn = Spawn::new("/bin/sleep");
        spawn.arg("60").slug("course-42/answer").limits(Limits {
            wall: Some(Duration::from_millis(300)),
            ..Limits::default()
        });
        let (out, log) = codejail_tests::logged(tracing::Level::INFO, || spawn.run().unwrap());
        assert_eq!(out.killed_by, Some(KillReason::Wall));
        assert!(log.contains("WARN"), "{log}");
        assert!(log.contains("slug=course-42/answer"), "{log}");
        let pid = log
            .split("Killing process ")
            .nth(1)
            .and_then(|rest| rest.split(':').next())
            .unwrap_or_else(|| panic!("no kill warning in {log:?}"));
        assert!(log.contains(&format!("pid={pid}")), "{log}");
    }
}
