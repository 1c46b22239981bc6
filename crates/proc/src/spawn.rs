//! The builder and the caller's side of a run: prepare, clone, pump, reap.

use std::ffi::{CString, OsStr, OsString};
use std::os::fd::{AsFd, AsRawFd, OwnedFd};
use std::os::unix::ffi::OsStrExt;
use std::path::{Path, PathBuf};
use std::time::{Duration, Instant};

use rustix::event::{PollFd, PollFlags, Timespec, poll};
use rustix::fs::{OFlags, fcntl_getfl, fcntl_setfl};
use rustix::io::Errno;
use rustix::pipe::{PipeFlags, pipe_with};
use rustix::process::{Pid, Signal, WaitId, WaitIdOptions};

use crate::cgroup::RunCgroup;
use crate::child::{self, ChildFds, Confine, Prepared, Report, Step};
use crate::fsrules::{self, Enforcement, FsRules, Tmpfs};
use crate::holder::{self, Holder};
use crate::layers::{Layer, LayerSet, Policy};
use crate::outcome::status_code;
use crate::probe::{Needs, Probe};
use crate::{KillReason, Limits, Outcome, SpawnError, Truncated};

/// The uid and gid a root caller runs programs as by default.
pub const NOBODY: (u32, u32) = (65534, 65534);

/// How long the supervisor gets to kill and reap the run after being asked,
/// before the caller kills it and its process group itself.
const KILL_GRACE: Duration = Duration::from_secs(2);
const CHUNK: usize = 64 * 1024;

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
    limits: Limits,
    identity: (u32, u32),
    policy: Policy,
    fs: FsRules,
    tmpfs: Vec<Tmpfs>,
    apparmor: Option<String>,
    cancel: Option<std::sync::Arc<OwnedFd>>,
    slug: String,
}

impl Spawn {
    /// A run of `program`: a path, or a bare name looked up in the `PATH`
    /// given with [`env`](Spawn::env) (default `/usr/local/bin:/usr/bin:/bin`).
    pub fn new(program: impl AsRef<Path>) -> Spawn {
        Spawn {
            program: program.as_ref().to_owned(),
            arg0: None,
            args: Vec::new(),
            env: Vec::new(),
            cwd: None,
            stdin: Vec::new(),
            limits: Limits::default(),
            identity: NOBODY,
            policy: Policy::Auto,
            fs: FsRules::default(),
            tmpfs: Vec::new(),
            apparmor: None,
            cancel: None,
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

    /// Adds one environment variable; the environment starts empty.
    pub fn env(&mut self, key: impl AsRef<OsStr>, value: impl AsRef<OsStr>) -> &mut Spawn {
        self.env
            .push((key.as_ref().to_owned(), value.as_ref().to_owned()));
        self
    }

    /// The working directory (default: the caller's).
    pub fn cwd(&mut self, dir: impl AsRef<Path>) -> &mut Spawn {
        self.cwd = Some(dir.as_ref().to_owned());
        self
    }

    /// Bytes fed to the program's stdin, then end of file.
    pub fn stdin(&mut self, bytes: impl Into<Vec<u8>>) -> &mut Spawn {
        self.stdin = bytes.into();
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

    /// A label for the caller's logs (CodeJail's `slug`).
    pub fn slug(&mut self, slug: impl Into<String>) -> &mut Spawn {
        self.slug = slug.into();
        self
    }

    /// Runs the program to the end and returns what happened.
    ///
    /// When this returns, every process the run created has been killed and
    /// reaped.
    ///
    /// # Errors
    /// [`SpawnError`] when the program could not be started (not found, a
    /// setup step failed) or the run could not be supervised.
    pub fn run(&self) -> Result<Outcome, SpawnError> {
        let start = Instant::now();
        let program = self.resolve_program()?;
        let probe = Probe::get();
        let layers = probe.plan(self.policy, self.needs())?;
        let cgroup = layers
            .contains(Layer::Cgroup)
            .then(|| RunCgroup::create(&probe.cgroups, self.limits.memory(), self.limits.nproc()))
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
        let landlock_abi = probe
            .landlock_abi
            .filter(|_| layers.contains(Layer::Landlock));
        let ruleset = landlock_abi.map(|abi| self.fs.ruleset(abi)).transpose()?;
        let mut confine = self.confine(probe, layers)?;
        confine.mount_access = landlock_abi.map_or(0, fsrules::read_write_access);
        let namespaces = confine.namespaces;
        let prep = self.prepare(&program, confine, nproc_overhead(layers))?;
        // Bad input has been refused by now: the first process comes here.
        let holder = (namespaces != 0)
            .then(|| {
                let maps = layers.contains(Layer::UserNs).then(|| self.id_maps(probe));
                Holder::create(namespaces, maps)
            })
            .transpose()?;

        let pipe = || pipe_with(PipeFlags::CLOEXEC).map_err(SpawnError::parent("create a pipe"));
        let (stdin_r, stdin_w) = pipe()?;
        let (stdout_r, stdout_w) = pipe()?;
        let (stderr_r, stderr_w) = pipe()?;
        let (error_r, error_w) = pipe()?;
        let (report_r, report_w) = pipe()?;
        let (control_r, control_w) = pipe()?;
        let fds = ChildFds {
            stdin: stdin_r.as_raw_fd(),
            stdout: stdout_w.as_raw_fd(),
            stderr: stderr_w.as_raw_fd(),
            error: error_w.as_raw_fd(),
            report: report_w.as_raw_fd(),
            control: control_r.as_raw_fd(),
            holder: holder.as_ref().map(|h| h.pidfd().as_raw_fd()),
            landlock: ruleset.as_ref().map(AsRawFd::as_raw_fd),
            cgroup_procs: [
                cgroup_procs.first().map(AsRawFd::as_raw_fd),
                cgroup_procs.get(1).map(AsRawFd::as_raw_fd),
            ],
            cgroup_v2: cgroup_v2.as_ref().map(AsRawFd::as_raw_fd),
        };

        let span = tracing::info_span!("run", slug = %self.slug, pid = tracing::field::Empty);
        let _entered = span.enter();
        let (pid, pidfd) =
            child::spawn_supervisor(&prep, fds).map_err(|source| SpawnError::Parent {
                step: "clone the supervisor",
                source,
            })?;
        span.record("pid", pid);
        tracing::debug!(program = %program.display(), "started");
        drop((stdin_r, stdout_w, stderr_w, error_w, report_w, control_r));
        drop((ruleset, cgroup_v2, cgroup_procs));

        let mut sup = Supervisor {
            pid,
            pidfd,
            control: Some(control_w),
            exited: false,
            wait_status: 0,
        };
        if let Some((step, errno)) = read_setup_error(&error_r) {
            sup.kill();
            sup.wait();
            let source = std::io::Error::from_raw_os_error(errno);
            return Err(match step {
                Step::Execve if errno == libc::ENOENT => SpawnError::NotFound { program },
                _ => SpawnError::Setup {
                    step: step.name(),
                    source,
                },
            });
        }

        let mut pump = Pump {
            stdin: Some(stdin_w).filter(|_| !self.stdin.is_empty()),
            stdin_bytes: &self.stdin,
            stdin_pos: 0,
            out: [Capture::new(stdout_r), Capture::new(stderr_r)],
            cap: self.limits.output(),
        };
        pump.nonblocking()?;
        let deadline = self.limits.wall().map(|d| start + d);
        let mut reason: Option<KillReason> = None;
        let mut kill_sent: Option<Instant> = None;
        let mut report: Option<Option<Report>> = None;

        while !(sup.exited && pump.outputs_closed()) {
            let now = Instant::now();
            if kill_sent.is_none() {
                if deadline.is_some_and(|d| now >= d) {
                    tracing::warn!("Killing process {pid}: wall-clock limit reached");
                    reason = Some(KillReason::Wall);
                } else if pump.over_cap() {
                    tracing::warn!("Killing process {pid}: output limit reached");
                    reason = Some(KillReason::Output);
                }
                if reason.is_some() {
                    sup.kill();
                    kill_sent = Some(now);
                }
            } else if kill_sent.is_some_and(|t| now >= t + KILL_GRACE) && !sup.exited {
                sup.force_kill();
            }
            let wake = match kill_sent {
                Some(t) => Some(t + KILL_GRACE),
                None => deadline,
            };
            let timeout = wake.map(|w| to_timespec(w.saturating_duration_since(now)));
            let cancel = self.cancel.as_deref().filter(|_| kill_sent.is_none());
            if pump.step(&mut sup, timeout.as_ref(), cancel)? {
                tracing::warn!("Killing process {pid}: the run was cancelled");
                reason = Some(KillReason::Cancelled);
                sup.kill();
                kill_sent = Some(Instant::now());
            }
            if sup.exited && report.is_none() {
                let r = read_report(&report_r);
                let lost = r.is_none();
                report = Some(r);
                if lost {
                    break; // escaped processes may hold the outputs open forever
                }
            }
        }

        let wait_status = sup.wait();
        let Some(Some(report)) = report else {
            sup.kill_group();
            return Err(SpawnError::SupervisorLost { wait_status });
        };
        let cpu = Duration::from_micros(report.cpu_micros);
        let status = status_code(report.wait_status);
        let oom = cgroup
            .as_ref()
            .is_some_and(|c| c.limits_memory() && c.oom_killed());
        drop(cgroup);
        let disk = report.disk_full.then_some(KillReason::Disk);
        let killed_by = reason.or(oom.then_some(KillReason::Memory)).or_else(|| {
            let by_cpu_limit = status == -libc::SIGXCPU
                || (status == -libc::SIGKILL
                    && self
                        .limits
                        .cpu_secs
                        .is_some_and(|s| s > 0 && cpu.as_secs() >= s));
            by_cpu_limit.then_some(KillReason::Cpu).or(disk)
        });
        let [stdout, stderr] = pump.out;
        let outcome = Outcome {
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
            layers,
            landlock: landlock_abi.map(Enforcement::for_abi),
        };
        tracing::debug!(status, killed_by = ?outcome.killed_by, wall = ?outcome.wall, "finished");
        Ok(outcome)
    }

    fn resolve_program(&self) -> Result<PathBuf, SpawnError> {
        let not_found = || SpawnError::NotFound {
            program: self.program.clone(),
        };
        if self.program.as_os_str().as_bytes().contains(&b'/') {
            return std::path::absolute(&self.program).map_err(|_| not_found());
        }
        let path = self
            .env
            .iter()
            .rev()
            .find(|(k, _)| k == "PATH")
            .map(|(_, v)| v.clone())
            .unwrap_or_else(|| "/usr/local/bin:/usr/bin:/bin".into());
        std::env::split_paths(&path)
            .map(|dir| dir.join(&self.program))
            .find(|candidate| candidate.is_file())
            .ok_or_else(not_found)
    }

    /// What this run asks for that only some layers can give.
    fn needs(&self) -> Needs {
        Needs {
            cgroup: self.limits.memory().is_some(),
            mount_ns: !self.tmpfs.is_empty(),
            apparmor_profile: self.apparmor.is_some(),
        }
    }

    /// The confinement steps for the planned layers.
    fn confine(&self, probe: &Probe, layers: LayerSet) -> Result<Confine, SpawnError> {
        let flag = |layer, flag: libc::c_int| {
            if layers.contains(layer) {
                flag as u64
            } else {
                0
            }
        };
        let namespaces = flag(Layer::UserNs, libc::CLONE_NEWUSER)
            | flag(Layer::PidNs, libc::CLONE_NEWPID)
            | flag(Layer::NetNs, libc::CLONE_NEWNET)
            | flag(Layer::MountNs, libc::CLONE_NEWNS)
            | flag(Layer::IpcNs, libc::CLONE_NEWIPC)
            | flag(Layer::UtsNs, libc::CLONE_NEWUTS);
        let seccomp = if layers.contains(Layer::Seccomp) {
            Some(seccomp_filter().map_err(SpawnError::Seccomp)?.to_vec())
        } else {
            None
        };
        Ok(Confine {
            namespaces,
            pid_ns: layers.contains(Layer::PidNs),
            hostname: layers.contains(Layer::UtsNs),
            identity: layers.contains(Layer::Identity).then_some(self.identity),
            // In an unprivileged user namespace setgroups is denied.
            setgroups: probe.euid == 0 || !layers.contains(Layer::UserNs),
            no_new_privs: layers.contains(Layer::NoNewPrivs),
            landlock: layers.contains(Layer::Landlock),
            seccomp,
            mounts: self
                .tmpfs
                .iter()
                .map(|m| {
                    let target = CString::new(m.target.as_os_str().as_bytes());
                    match (target, CString::new(m.data())) {
                        (Ok(t), Ok(d)) => Ok((t, d)),
                        _ => Err(SpawnError::Nul {
                            what: "tmpfs target",
                        }),
                    }
                })
                .collect::<Result<_, _>>()?,
            mount_access: 0,
            apparmor_exec: match (&self.apparmor, layers.contains(Layer::AppArmor)) {
                (Some(name), true) => {
                    Some(
                        CString::new(format!("exec {name}")).map_err(|_| SpawnError::Nul {
                            what: "AppArmor profile",
                        })?,
                    )
                }
                _ => None,
            },
        })
    }

    /// The ids of the run's user namespace: the sandbox ids (root caller)
    /// or the caller's own, one each.
    fn id_maps(&self, probe: &Probe) -> holder::IdMaps {
        let (uid, gid) = if probe.euid == 0 {
            self.identity
        } else {
            (probe.euid, rustix::process::getegid().as_raw())
        };
        holder::IdMaps {
            uid,
            gid,
            deny_setgroups: probe.euid != 0,
        }
    }

    fn prepare(
        &self,
        program: &Path,
        confine: Confine,
        nproc_extra: u64,
    ) -> Result<Prepared, SpawnError> {
        let cstr = |what: &'static str, bytes: &[u8]| {
            CString::new(bytes).map_err(|_| SpawnError::Nul { what })
        };
        let arg0 = self.arg0.as_deref().unwrap_or(self.program.as_os_str());
        let argv = std::iter::once(arg0)
            .chain(self.args.iter().map(OsString::as_os_str))
            .map(|a| cstr("argument", a.as_bytes()))
            .collect::<Result<Vec<_>, _>>()?;
        let envp = self
            .env
            .iter()
            .map(|(k, v)| {
                if k.is_empty() || k.as_bytes().contains(&b'=') {
                    return Err(SpawnError::Nul {
                        what: "environment",
                    });
                }
                let mut kv = k.as_bytes().to_vec();
                kv.push(b'=');
                kv.extend_from_slice(v.as_bytes());
                cstr("environment", &kv)
            })
            .collect::<Result<Vec<_>, _>>()?;
        let cwd = self
            .cwd
            .as_ref()
            .map(|c| cstr("cwd", c.as_os_str().as_bytes()))
            .transpose()?;
        Ok(Prepared::new(
            cstr("program", program.as_os_str().as_bytes())?,
            argv,
            envp,
            cwd,
            self.limits.rlimits(nproc_extra),
            confine,
        ))
    }
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

/// The compiled seccomp filter, built once per process.
fn seccomp_filter() -> Result<&'static [libc::sock_filter], String> {
    static FILTER: std::sync::OnceLock<Result<Vec<libc::sock_filter>, String>> =
        std::sync::OnceLock::new();
    FILTER
        .get_or_init(crate::seccomp::compile)
        .as_deref()
        .map_err(Clone::clone)
}

/// The caller's handle on the supervisor.
struct Supervisor {
    pid: i32,
    pidfd: OwnedFd,
    /// Dropping the write end of the control pipe asks for the kill.
    control: Option<OwnedFd>,
    exited: bool,
    wait_status: i32,
}

impl Supervisor {
    fn kill(&mut self) {
        self.control = None;
    }

    fn force_kill(&mut self) {
        tracing::warn!(
            pid = self.pid,
            "supervisor did not finish in time; killing it"
        );
        let _ = rustix::process::pidfd_send_signal(&self.pidfd, Signal::KILL);
        self.kill_group();
    }

    /// Kills the run's process group (the supervisor is a session leader).
    fn kill_group(&self) {
        if let Some(pgid) = Pid::from_raw(self.pid) {
            let _ = rustix::process::kill_process_group(pgid, Signal::KILL);
        }
    }

    /// Reaps the supervisor (once) and returns its raw wait status.
    fn wait(&mut self) -> i32 {
        if self.exited {
            return self.wait_status;
        }
        let options = WaitIdOptions::EXITED | WaitIdOptions::from_bits_retain(libc::__WALL as u32);
        loop {
            match rustix::process::waitid(WaitId::PidFd(self.pidfd.as_fd()), options) {
                Ok(Some(st)) => {
                    self.exited = true;
                    self.wait_status = match st.terminating_signal() {
                        Some(sig) => sig,
                        None => st.exit_status().unwrap_or(0) << 8,
                    };
                    return self.wait_status;
                }
                Ok(None) | Err(Errno::INTR) => continue,
                Err(_) => {
                    self.exited = true; // cannot be waited for: treat as gone
                    return self.wait_status;
                }
            }
        }
    }
}

/// One captured output stream.
struct Capture {
    fd: Option<OwnedFd>,
    bytes: Vec<u8>,
    truncated: bool,
}

impl Capture {
    fn new(fd: OwnedFd) -> Capture {
        Capture {
            fd: Some(fd),
            bytes: Vec::new(),
            truncated: false,
        }
    }

    /// Reads what is available; closes the stream at end of file.
    fn read(&mut self, cap: Option<usize>, buf: &mut [u8]) -> Result<(), SpawnError> {
        let Some(fd) = &self.fd else { return Ok(()) };
        loop {
            match rustix::io::read(fd, &mut *buf) {
                Ok(0) => {
                    self.fd = None;
                    return Ok(());
                }
                Ok(n) => {
                    let room = cap.map_or(n, |c| c.saturating_sub(self.bytes.len()));
                    self.bytes.extend_from_slice(&buf[..n.min(room)]);
                    if n > room {
                        self.truncated = true;
                    }
                }
                Err(Errno::AGAIN) => return Ok(()),
                Err(Errno::INTR) => continue,
                Err(e) => return Err(SpawnError::parent("read the program's output")(e)),
            }
        }
    }
}

/// Feeds stdin and drains stdout/stderr concurrently, in one thread.
struct Pump<'a> {
    stdin: Option<OwnedFd>,
    stdin_bytes: &'a [u8],
    stdin_pos: usize,
    out: [Capture; 2],
    cap: Option<usize>,
}

impl Pump<'_> {
    fn nonblocking(&self) -> Result<(), SpawnError> {
        let fds = self
            .stdin
            .iter()
            .chain(self.out.iter().filter_map(|c| c.fd.as_ref()));
        for fd in fds {
            let flags = fcntl_getfl(fd).map_err(SpawnError::parent("read descriptor flags"))?;
            fcntl_setfl(fd, flags | OFlags::NONBLOCK)
                .map_err(SpawnError::parent("make a pipe non-blocking"))?;
        }
        Ok(())
    }

    fn outputs_closed(&self) -> bool {
        self.out.iter().all(|c| c.fd.is_none())
    }

    fn over_cap(&self) -> bool {
        self.out.iter().any(|c| c.truncated)
    }

    /// One `poll` over stdin, stdout, stderr, the supervisor's pidfd and the
    /// cancel descriptor; true when the run was cancelled.
    fn step(
        &mut self,
        sup: &mut Supervisor,
        timeout: Option<&Timespec>,
        cancel: Option<&OwnedFd>,
    ) -> Result<bool, SpawnError> {
        let mut fds: Vec<PollFd<'_>> = Vec::with_capacity(5);
        let mut slots = [usize::MAX; 5]; // stdin, stdout, stderr, pidfd, cancel
        if let Some(fd) = &self.stdin {
            slots[0] = fds.len();
            fds.push(PollFd::new(fd, PollFlags::OUT));
        }
        for (i, c) in self.out.iter().enumerate() {
            if let Some(fd) = &c.fd {
                slots[1 + i] = fds.len();
                fds.push(PollFd::new(fd, PollFlags::IN));
            }
        }
        if !sup.exited {
            slots[3] = fds.len();
            fds.push(PollFd::new(&sup.pidfd, PollFlags::IN));
        }
        if let Some(fd) = cancel {
            slots[4] = fds.len();
            fds.push(PollFd::new(fd, PollFlags::IN));
        }
        match poll(&mut fds, timeout) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(SpawnError::parent("poll the run")(e)),
        }
        let ready: [bool; 5] =
            std::array::from_fn(|i| fds.get(slots[i]).is_some_and(|f| !f.revents().is_empty()));
        drop(fds);

        if ready[0] {
            self.feed_stdin()?;
        }
        let mut buf = vec![0u8; CHUNK];
        for (i, capture) in self.out.iter_mut().enumerate() {
            if ready[1 + i] {
                capture.read(self.cap, &mut buf)?;
            }
        }
        if ready[3] {
            sup.wait();
        }
        Ok(ready[4])
    }

    fn feed_stdin(&mut self) -> Result<(), SpawnError> {
        let Some(fd) = &self.stdin else { return Ok(()) };
        while self.stdin_pos < self.stdin_bytes.len() {
            let end = (self.stdin_pos + CHUNK).min(self.stdin_bytes.len());
            match rustix::io::write(fd, &self.stdin_bytes[self.stdin_pos..end]) {
                Ok(n) => self.stdin_pos += n,
                Err(Errno::AGAIN) => return Ok(()),
                Err(Errno::INTR) => continue,
                // The program closed its stdin: the rest is not wanted.
                Err(Errno::PIPE) => break,
                Err(e) => return Err(SpawnError::parent("write the program's stdin")(e)),
            }
        }
        self.stdin = None;
        Ok(())
    }
}

/// Waits for the end of the error pipe: `None` once `execve` succeeded.
fn read_setup_error(fd: &OwnedFd) -> Option<(Step, i32)> {
    let mut msg = [0u8; child::ERROR_LEN];
    if read_full(fd, &mut msg) < msg.len() {
        return None;
    }
    let (step, errno) = child::decode_error(&msg);
    Some((step.unwrap_or(Step::Execve), errno))
}

/// Reads the supervisor's report; only called once the supervisor exited.
fn read_report(fd: &OwnedFd) -> Option<Report> {
    let mut buf = [0u8; Report::LEN];
    let got = read_full(fd, &mut buf);
    Report::decode(&buf[..got])
}

/// Reads until `buf` is full or end of file (or an error); how many bytes.
fn read_full(fd: &OwnedFd, buf: &mut [u8]) -> usize {
    let mut got = 0;
    while got < buf.len() {
        match rustix::io::read(fd, &mut buf[got..]) {
            Ok(0) => break,
            Ok(n) => got += n,
            Err(Errno::INTR) => continue,
            Err(_) => break,
        }
    }
    got
}

fn to_timespec(d: Duration) -> Timespec {
    Timespec {
        tv_sec: d.as_secs() as i64,
        tv_nsec: i64::from(d.subsec_nanos()),
    }
}

#[cfg(test)]
mod tests {
    // Here rather than in tests/: no other test of this binary runs a
    // `Spawn`, so no thread caches the span's interest before the scoped
    // subscriber is installed.
    #[test]
    fn the_deadline_warning_names_the_slug_and_the_pid() {
        use std::sync::{Arc, Mutex};
        use std::time::Duration;

        use crate::{KillReason, Limits, Spawn};

        #[derive(Clone, Default)]
        struct Buf(Arc<Mutex<Vec<u8>>>);
        impl std::io::Write for Buf {
            fn write(&mut self, b: &[u8]) -> std::io::Result<usize> {
                self.0.lock().unwrap().extend_from_slice(b);
                Ok(b.len())
            }
            fn flush(&mut self) -> std::io::Result<()> {
                Ok(())
            }
        }

        let buf = Buf::default();
        let writer = buf.clone();
        let subscriber = tracing_subscriber::fmt()
            .with_writer(move || writer.clone())
            .with_ansi(false)
            .with_max_level(tracing::Level::INFO)
            .finish();
        let mut spawn = Spawn::new("/bin/sleep");
        spawn.arg("60").slug("course-42/answer").limits(Limits {
            wall: Some(Duration::from_millis(300)),
            ..Limits::default()
        });
        let out = tracing::subscriber::with_default(subscriber, || spawn.run().unwrap());
        assert_eq!(out.killed_by, Some(KillReason::Wall));
        let log = String::from_utf8(buf.0.lock().unwrap().clone()).unwrap();
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
