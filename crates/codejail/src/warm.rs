//! The warm path: a pool of zygotes, so that a call does not pay for an
//! interpreter start.
//!
//! A zygote is an ordinary cold run (every layer the machine offers: its own
//! user, pid, net, mount, ipc and uts namespaces, the sandbox uid, Landlock,
//! seccomp, no_new_privs) of `codejail_pyexec::ZYGOTE`, which connects to a
//! unix socket of the pool and forks one child per call. Each call gets a
//! fresh jail directory, its own rlimits and session, and a Landlock domain
//! of its own nested in the zygote's (only its directory; signals and
//! abstract sockets scoped to the call), and every process of the call is
//! killed and reaped before the answer comes back. The call's code and data
//! are files in its directory, read only by the call's own process, never
//! by the zygote. A zygote serves one call at a time, so calls running at
//! once are in different zygotes, hence different namespaces.
//!
//! Limits that need the cold path's per-run machinery (MEMORY: a cgroup;
//! DISK and FILES: a tmpfs) send the call down the cold path.

use std::io::{Read, Write};
use std::os::fd::{AsFd, OwnedFd};
use std::os::unix::net::{UnixListener, UnixStream};
use std::path::PathBuf;
use std::sync::atomic::{AtomicU64, Ordering};
use std::sync::{Arc, Condvar, Mutex};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use codejail_fs::{Contents, JailDir, JailOptions};
use codejail_proc::{
    Enforcement, FsRules, KillReason, Layer, LayerSet, Outcome, Probe, Spawn, SpawnError, Truncated,
};

use crate::error::WarmError;
use crate::jail::python_path_files;
use crate::limits::LimitSet;
use serde_json::{Map, Value, json};

use crate::jail::{check_globals, finish_safe_exec, update};
use crate::limits::LimitName;
use crate::{
    Jail, JailCode, JailError, JailResult, SafeExecError, SafeExecOptions, effective_limits,
};

/// A warm `jail_code` call's argv, staged for the worker.
const ARGV_FILE: &str = ".codejail-argv.json";
/// How long a call waits for a free zygote.
const TAKE_TIMEOUT: Duration = Duration::from_secs(30);
/// How long a new zygote may take to connect.
const START_TIMEOUT: Duration = Duration::from_secs(20);
/// Past a call's wall-clock limit, how long the pool waits for the answer
/// before it gives up on the zygote.
const ANSWER_GRACE: Duration = Duration::from_secs(10);

/// A pool of warm interpreters for one jail; see the module's text.
/// Dropping it ends every zygote and removes its directory.
#[derive(Debug)]
pub struct Warm {
    jail: Arc<Jail>,
    parent: PathBuf,
    owner: Option<(u32, u32)>,
    layers: LayerSet,
    abi: i32,
    idle: Mutex<Vec<Zygote>>,
    freed: Condvar,
    next: AtomicU64,
    size: usize,
    cold_fallbacks: AtomicU64,
    served: AtomicU64,
    restarts: AtomicU64,
    failures: AtomicU64,
}

/// What a warm pool is doing ([`Warm::health`]).
#[derive(Clone, Debug, Default, PartialEq, Eq)]
#[non_exhaustive]
pub struct Health {
    /// Interpreters the pool keeps.
    pub size: usize,
    /// Interpreters idle now, ready for a call.
    pub idle: usize,
    /// Calls a warm interpreter served.
    pub served: u64,
    /// Calls sent down the cold path instead.
    pub cold_fallbacks: u64,
    /// Interpreters started again after one failed or was retired.
    pub restarts: u64,
    /// Calls that failed because an interpreter failed.
    pub failures: u64,
}

#[derive(Debug)]
struct Zygote {
    stream: UnixStream,
    /// Dropping the write end cancels the zygote's run.
    cancel: Option<OwnedFd>,
    run: Option<JoinHandle<Result<Outcome, SpawnError>>>,
    _home: JailDir,
}

impl Drop for Zygote {
    fn drop(&mut self) {
        self.cancel = None;
        let _ = self.stream.shutdown(std::net::Shutdown::Both);
        if let Some(run) = self.run.take() {
            let _ = run.join();
        }
    }
}

fn io_err(step: &'static str) -> impl FnOnce(std::io::Error) -> JailError {
    move |source| WarmError::Io { step, source }.into()
}

impl Jail {
    /// Starts a pool of `size` warm interpreters for this jail.
    ///
    /// # Errors
    /// [`JailError::Warm`] where the warm path cannot keep the cold path's
    /// guarantees: it needs Landlock with signal scoping (ABI 6), and
    /// confinement (not unsafe mode).
    pub fn warm(self: &Arc<Jail>, size: usize) -> Result<Warm, JailError> {
        let probe = Probe::get();
        if size == 0 {
            return Err(WarmError::EmptyPool.into());
        }
        if self.is_unsafe() {
            return Err(WarmError::Unsafe {
                jail: self.name().to_owned(),
            }
            .into());
        }
        let layers = self.planned_layers()?;
        let abi = probe.landlock_abi.unwrap_or(0);
        if !layers.contains(Layer::Landlock) || abi < 6 {
            return Err(WarmError::NeedsLandlockScopes { layers }.into());
        }
        let base = self
            .config()
            .jail_parent
            .clone()
            .unwrap_or_else(std::env::temp_dir);
        let parent = tempfile::Builder::new()
            .prefix(&crate::leftovers::pool_prefix())
            .tempdir_in(&base)
            .map_err(io_err("create the warm pool's directory"))?
            .keep();
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o755))
            .map_err(io_err("open the warm pool's directory"))?;
        let warm = Warm {
            jail: self.clone(),
            parent,
            owner: layers.contains(Layer::Identity).then_some(self.identity()),
            layers,
            abi,
            idle: Mutex::new(Vec::new()),
            freed: Condvar::new(),
            next: AtomicU64::new(0),
            size,
            cold_fallbacks: AtomicU64::new(0),
            served: AtomicU64::new(0),
            restarts: AtomicU64::new(0),
            failures: AtomicU64::new(0),
        };
        for _ in 0..size {
            let z = warm.start_zygote()?;
            warm.idle.lock().unwrap_or_else(|e| e.into_inner()).push(z);
        }
        Ok(warm)
    }
}

/// What a call runs.
enum Mode<'a> {
    /// `safe_exec`: the driver's payload.
    Exec(Vec<u8>),
    /// `jail_code`: the code as `__main__`, with argv and stdin.
    Run(&'a JailCode),
}

impl Warm {
    /// The layers every call gets (the zygote's, plus its own Landlock
    /// domain).
    pub fn layers(&self) -> LayerSet {
        self.layers
    }

    /// How many calls went down the cold path instead (limits that need a
    /// cgroup or a tmpfs, a call that narrows the layers, `jail_code`
    /// without code).
    pub fn cold_fallbacks(&self) -> u64 {
        self.cold_fallbacks.load(Ordering::Relaxed)
    }

    /// What the pool is doing: for health checks and metrics.
    pub fn health(&self) -> Health {
        Health {
            size: self.size,
            idle: self.idle.lock().unwrap_or_else(|e| e.into_inner()).len(),
            served: self.served.load(Ordering::Relaxed),
            cold_fallbacks: self.cold_fallbacks.load(Ordering::Relaxed),
            restarts: self.restarts.load(Ordering::Relaxed),
            failures: self.failures.load(Ordering::Relaxed),
        }
    }

    /// Processes of the pool beyond its idle zygotes, found on the host by
    /// the pool's directory in their command line: after a call returns
    /// (with no other call going on), there must be none.
    pub fn stray_processes(&self) -> usize {
        let zygotes = self.idle.lock().unwrap_or_else(|e| e.into_inner()).len();
        let parent = self.parent.to_string_lossy();
        processes_with(&parent).len().saturating_sub(zygotes)
    }

    fn start_zygote(&self) -> Result<Zygote, JailError> {
        let n = self.next.fetch_add(1, Ordering::Relaxed);
        let socket = self.parent.join(format!("zygote-{n}.sock"));
        let listener = UnixListener::bind(&socket).map_err(io_err("bind the zygote's socket"))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&socket, std::fs::Permissions::from_mode(0o777))
            .map_err(io_err("open the zygote's socket"))?;
        let home = JailDir::create(&JailOptions {
            parent: Some(self.parent.clone()),
            owner: self.owner,
            tmp_quota: None,
            prefix: None,
        })?;
        home.stage(&Contents {
            code: Some(codejail_pyexec::ZYGOTE.as_bytes()),
            ..Contents::default()
        })?;
        let (cancel_r, cancel_w) = rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC)
            .map_err(|e| io_err("create a pipe")(e.into()))?;
        let mut rules = FsRules::default();
        rules
            .read_exec
            .extend(self.jail.read_exec_paths().iter().cloned());
        rules.read_write.push(self.parent.clone());
        let mut spawn = Spawn::new(&self.jail.config().bin);
        spawn
            .args(self.jail.lang().args())
            .arg(codejail_fs::CODE_FILE)
            .arg(&socket)
            .cwd(home.path())
            .env("TMPDIR", home.tmp())
            .policy(self.jail.policy(false)?)
            .identity(self.jail.identity().0, self.jail.identity().1)
            .fs_rules(rules)
            .limits(codejail_proc::Limits {
                output_bytes: Some(64 << 10),
                ..codejail_proc::Limits::none()
            })
            .slug("warm zygote")
            .cancel_on(cancel_r);
        let run = std::thread::spawn(move || spawn.run());
        listener
            .set_nonblocking(true)
            .map_err(io_err("poll the zygote's socket"))?;
        let started = Instant::now();
        let stream = loop {
            match listener.accept() {
                Ok((stream, _)) => break stream,
                Err(e) if e.kind() == std::io::ErrorKind::WouldBlock => {}
                Err(e) => return Err(io_err("accept the zygote")(e)),
            }
            if run.is_finished() || started.elapsed() > START_TIMEOUT {
                drop(cancel_w);
                let why = match run.join() {
                    Ok(Ok(out)) => format!(
                        "the zygote ended before it connected (status {}): {}",
                        out.status,
                        String::from_utf8_lossy(&out.stderr)
                            .lines()
                            .last()
                            .unwrap_or("")
                    ),
                    Ok(Err(e)) => e.to_string(),
                    Err(_) => "the zygote's thread panicked".into(),
                };
                return Err(WarmError::Start(why).into());
            }
            let mut fds = [rustix::event::PollFd::new(
                &listener,
                rustix::event::PollFlags::IN,
            )];
            let _ = rustix::event::poll(
                &mut fds,
                Some(&rustix::event::Timespec {
                    tv_sec: 0,
                    tv_nsec: 50_000_000,
                }),
            );
        };
        let _ = std::fs::remove_file(&socket);
        stream
            .set_nonblocking(false)
            .map_err(io_err("configure the zygote's socket"))?;
        Ok(Zygote {
            stream,
            cancel: Some(cancel_w),
            run: Some(run),
            _home: home,
        })
    }

    /// An idle zygote, waiting at most the pool's take timeout.
    fn take(&self) -> Result<Zygote, WarmError> {
        let start = Instant::now();
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(z) = idle.pop() {
                return Ok(z);
            }
            let left = TAKE_TIMEOUT.saturating_sub(start.elapsed());
            if left.is_zero() {
                return Err(WarmError::Busy {
                    waited: start.elapsed(),
                });
            }
            idle = self
                .freed
                .wait_timeout(idle, left)
                .unwrap_or_else(|e| e.into_inner())
                .0;
        }
    }

    fn give_back(&self, z: Zygote) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).push(z);
        self.freed.notify_one();
    }

    /// Python's `exec` in a warm interpreter: the contract of
    /// [`Jail::safe_exec`].
    ///
    /// # Errors
    /// As [`Jail::safe_exec`].
    pub fn safe_exec(
        &self,
        code: &str,
        globals: &mut Map<String, Value>,
        options: &SafeExecOptions,
    ) -> Result<(), SafeExecError> {
        let text = serde_json::to_string(globals).expect("a map always serializes");
        let result = self.safe_exec_json(code, &text, options)?;
        update(globals, &result)
    }

    /// [`Jail::safe_exec_json`] in a warm interpreter.
    ///
    /// # Errors
    /// As [`Jail::safe_exec_json`].
    pub fn safe_exec_json(
        &self,
        code: &str,
        globals_json: &str,
        options: &SafeExecOptions,
    ) -> Result<String, SafeExecError> {
        self.exec_json(code, globals_json, options, false)
    }

    /// [`Jail::safe_exec_json_updated`] in a warm interpreter.
    ///
    /// # Errors
    /// As [`Jail::safe_exec_json`].
    pub fn safe_exec_json_updated(
        &self,
        code: &str,
        globals_json: &str,
        options: &SafeExecOptions,
    ) -> Result<String, SafeExecError> {
        self.exec_json(code, globals_json, options, true)
    }

    fn exec_json(
        &self,
        code: &str,
        globals_json: &str,
        options: &SafeExecOptions,
        merge: bool,
    ) -> Result<String, SafeExecError> {
        let call = &options.call;
        let limits = effective_limits(call.limits_context.as_deref(), &call.limits)
            .map_err(JailError::from)?;
        if needs_cold(&limits) || call.layers.is_some() {
            self.cold_fallbacks.fetch_add(1, Ordering::Relaxed);
            return if merge {
                self.jail
                    .safe_exec_json_updated(code, globals_json, options)
            } else {
                self.jail.safe_exec_json(code, globals_json, options)
            };
        }
        self.jail.check_safe_exec()?;
        check_globals(globals_json)?;
        let (call, path_entries) = python_path_files(options)?;
        let request = JailCode {
            call,
            ..JailCode::default()
        };
        let payload = codejail_pyexec::payload(code, globals_json, &path_entries, merge);
        let outcome = self.call(&request, Mode::Exec(payload))?;
        finish_safe_exec(warm_result(outcome))
    }

    /// `jail_code` in a warm interpreter: the code runs as `__main__` with
    /// the argv and stdin of the request.
    ///
    /// # Errors
    /// As [`Jail::jail_code`].
    pub fn jail_code(&self, request: &JailCode) -> Result<JailResult, JailError> {
        let call = &request.call;
        let limits = effective_limits(call.limits_context.as_deref(), &call.limits)?;
        if needs_cold(&limits) || call.layers.is_some() || request.code.is_none() {
            self.cold_fallbacks.fetch_add(1, Ordering::Relaxed);
            return self.jail.jail_code(request);
        }
        let outcome = self.call(request, Mode::Run(request))?;
        Ok(warm_result(outcome))
    }

    fn call(&self, request: &JailCode, mode: Mode<'_>) -> Result<Outcome, JailError> {
        let start = Instant::now();
        let call = &request.call;
        let limits = effective_limits(call.limits_context.as_deref(), &call.limits)?;
        let argv_json;
        let mut own: Vec<(&str, &[u8])> = Vec::new();
        let (mode_name, code, stdin) = match &mode {
            Mode::Exec(payload) => ("exec", None, payload.as_slice()),
            Mode::Run(r) => {
                argv_json = serde_json::to_vec(&r.argv).unwrap_or_default();
                own.push((ARGV_FILE, &argv_json));
                ("run", r.code.as_deref(), r.stdin.as_slice())
            }
        };
        let contents = Contents {
            code: code.map(str::as_bytes),
            files: &call.files,
            extra: &call.extra_files,
            own: &own,
        };
        contents.validate()?;
        let dir = JailDir::create(&JailOptions {
            parent: Some(self.parent.clone()),
            owner: self.owner,
            tmp_quota: None,
            prefix: None,
        })?;
        dir.stage(&contents)?;
        let ruleset = self
            .jail
            .fs_rules(&dir)
            .ruleset(self.abi)
            .map_err(|e| WarmError::Landlock(Box::new(e)))?;
        // RLIMIT_NPROC counts the zygote too, and whatever else of the
        // zygote's run has its uid in the namespace.
        let nproc = match limits.get(LimitName::Nproc) {
            0 => 0,
            n => n + 1 + codejail_proc::nproc_overhead(self.layers),
        };
        let line = json!({
            "home": dir.path(),
            "tmp": dir.tmp(),
            "mode": mode_name,
            "limits": {
                "cpu": limits.get(LimitName::Cpu),
                "realtime": limits.get(LimitName::Realtime),
                "vmem": limits.get(LimitName::Vmem),
                "fsize": limits.get(LimitName::Fsize),
                "nproc": nproc,
                "output": limits.get(LimitName::Output),
            },
        });
        let realtime = Duration::from_secs(limits.get(LimitName::Realtime).max(1));
        let cap = usize::try_from(limits.get(LimitName::Output)).unwrap_or(usize::MAX);
        let caps = [
            if cap == 0 { usize::MAX } else { cap },
            if cap == 0 { usize::MAX } else { cap },
            if cap == 0 { usize::MAX } else { cap },
        ];
        let mut zygote = self.take()?;
        let answer = ask(
            &mut zygote,
            &line,
            &ruleset,
            stdin,
            caps,
            realtime + ANSWER_GRACE,
        );
        drop(ruleset);
        match &answer {
            Ok(_) => {
                self.served.fetch_add(1, Ordering::Relaxed);
                self.give_back(zygote)
            }
            Err(_) => {
                // A zygote that does not answer is ended, with everything
                // in it, and replaced.
                drop(zygote);
                self.failures.fetch_add(1, Ordering::Relaxed);
                self.restarts.fetch_add(1, Ordering::Relaxed);
                if let Ok(z) = self.start_zygote() {
                    self.give_back(z);
                }
            }
        }
        let (header, [stdout, stderr, result], truncated) = answer?;
        dir.remove()?;
        if let Some(error) = header["error"].as_str() {
            return Err(WarmError::Lost(format!("the call failed to start: {error}")).into());
        }
        let killed_by = match header["killed_by"].as_str() {
            Some("realtime") => Some(KillReason::Wall),
            Some("cpu") => Some(KillReason::Cpu),
            Some("output") => Some(KillReason::Output),
            _ => None,
        };
        let truncated = Truncated {
            stdout: truncated[0],
            stderr: truncated[1],
        };
        Ok(Outcome {
            status: header["status"].as_i64().unwrap_or(-9) as i32,
            // safe_exec's result is its stdout, as on the cold path.
            stdout: if matches!(mode, Mode::Exec(_)) {
                result
            } else {
                stdout
            },
            stderr,
            truncated,
            killed_by,
            wall: start.elapsed(),
            cpu: Duration::from_micros(header["cpu_us"].as_u64().unwrap_or(0)),
            max_rss_kib: header["max_rss_kib"].as_u64().unwrap_or(0),
            layers: self.layers,
            landlock: Some(Enforcement::Full),
        })
    }
}

/// The zygote's answer line, and the call's stdout, stderr and result with
/// their truncation.
type Answer = (Value, [Vec<u8>; 3], [bool; 3]);

/// Sends one request with the call's pipes and Landlock ruleset, feeds stdin, drains the
/// outputs (asking the zygote to kill the call when one passes its cap),
/// and reads the answer line.
fn ask(
    zygote: &mut Zygote,
    line: &Value,
    ruleset: &OwnedFd,
    stdin: &[u8],
    caps: [usize; 3],
    timeout: Duration,
) -> Result<Answer, JailError> {
    use rustix::event::{PollFd, PollFlags, Timespec, poll};
    use rustix::io::Errno;
    let lost = |why: String| JailError::from(WarmError::Lost(why));
    let pipe = || {
        rustix::pipe::pipe_with(
            rustix::pipe::PipeFlags::CLOEXEC | rustix::pipe::PipeFlags::NONBLOCK,
        )
        .map_err(|e| lost(e.to_string()))
    };
    let (stdin_r, stdin_w) = pipe()?;
    let (out_r, out_w) = pipe()?;
    let (err_r, err_w) = pipe()?;
    let (res_r, res_w) = pipe()?;
    // The worker's ends must block like ordinary stdio.
    for fd in [&stdin_r, &out_w, &err_w, &res_w] {
        rustix::fs::fcntl_setfl(fd, rustix::fs::OFlags::empty())
            .map_err(|e| lost(e.to_string()))?;
    }
    let mut text = line.to_string();
    text.push('\n');
    {
        let fds = [
            stdin_r.as_fd(),
            out_w.as_fd(),
            err_w.as_fd(),
            res_w.as_fd(),
            ruleset.as_fd(),
        ];
        let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(5))];
        let mut control = rustix::net::SendAncillaryBuffer::new(&mut space);
        control.push(rustix::net::SendAncillaryMessage::ScmRights(&fds));
        let iov = [std::io::IoSlice::new(text.as_bytes())];
        let sent = rustix::net::sendmsg(
            &zygote.stream,
            &iov,
            &mut control,
            rustix::net::SendFlags::empty(),
        )
        .map_err(|e| lost(e.to_string()))?;
        if sent != text.len() {
            zygote
                .stream
                .write_all(&text.as_bytes()[sent..])
                .map_err(|e| lost(e.to_string()))?;
        }
    }
    drop((stdin_r, out_w, err_w, res_w));
    let deadline = Instant::now() + timeout;
    let mut stdin_w = Some(stdin_w).filter(|_| !stdin.is_empty());
    let mut fed = 0;
    let mut outs: [Option<OwnedFd>; 3] = [Some(out_r), Some(err_r), Some(res_r)];
    let mut bufs: [Vec<u8>; 3] = Default::default();
    let mut truncated = [false; 3];
    let mut kill_sent = false;
    let mut header = Vec::new();
    let mut chunk = vec![0u8; 64 << 10];
    while outs.iter().any(Option::is_some) || !header.ends_with(b"\n") {
        let left = deadline.saturating_duration_since(Instant::now());
        if left.is_zero() {
            return Err(lost("timed out".into()));
        }
        let mut fds = Vec::with_capacity(5);
        let mut which = Vec::with_capacity(5);
        if let Some(fd) = &stdin_w {
            fds.push(PollFd::new(fd, PollFlags::OUT));
            which.push(3);
        }
        for (i, fd) in outs.iter().enumerate() {
            if let Some(fd) = fd {
                fds.push(PollFd::new(fd, PollFlags::IN));
                which.push(i);
            }
        }
        if !header.ends_with(b"\n") {
            fds.push(PollFd::new(&zygote.stream, PollFlags::IN));
            which.push(4);
        }
        let ts = Timespec {
            tv_sec: left.as_secs() as i64,
            tv_nsec: i64::from(left.subsec_nanos()),
        };
        match poll(&mut fds, Some(&ts)) {
            Ok(_) | Err(Errno::INTR) => {}
            Err(e) => return Err(lost(e.to_string())),
        }
        let ready: Vec<usize> = fds
            .iter()
            .zip(&which)
            .filter(|(f, _)| !f.revents().is_empty())
            .map(|(_, w)| *w)
            .collect();
        drop(fds);
        for w in ready {
            match w {
                3 => {
                    let Some(fd) = &stdin_w else { continue };
                    match rustix::io::write(fd, &stdin[fed..]) {
                        Ok(n) => fed += n,
                        Err(Errno::AGAIN | Errno::INTR) => {}
                        Err(_) => fed = stdin.len(), // the code closed its stdin
                    }
                    if fed >= stdin.len() {
                        stdin_w = None;
                    }
                }
                4 => match zygote.stream.read(&mut chunk) {
                    Ok(0) => return Err(lost("the zygote closed its socket".into())),
                    Ok(n) => header.extend_from_slice(&chunk[..n]),
                    Err(e) if e.kind() == std::io::ErrorKind::Interrupted => {}
                    Err(e) => return Err(lost(e.to_string())),
                },
                i => {
                    let Some(fd) = &outs[i] else { continue };
                    match rustix::io::read(fd, &mut chunk) {
                        Ok(0) => outs[i] = None,
                        Ok(n) => {
                            let room = caps[i].saturating_sub(bufs[i].len());
                            bufs[i].extend_from_slice(&chunk[..n.min(room)]);
                            if n > room {
                                truncated[i] = true;
                                if !kill_sent && !header.ends_with(b"\n") {
                                    kill_sent = true;
                                    let _ = zygote.stream.write_all(b"k");
                                }
                            }
                        }
                        Err(Errno::AGAIN | Errno::INTR) => {}
                        Err(e) => return Err(lost(e.to_string())),
                    }
                }
            }
        }
    }
    let mut answer: Value = serde_json::from_slice(&header)
        .map_err(|e| WarmError::Lost(format!("the zygote answered garbage: {e}")))?;
    if truncated[0] || truncated[1] || truncated[2] {
        answer["killed_by"] = json!("output");
    }
    Ok((answer, bufs, truncated))
}

fn needs_cold(limits: &LimitSet) -> bool {
    [LimitName::Memory, LimitName::Disk, LimitName::Files]
        .into_iter()
        .any(|n| limits.get(n) > 0)
}

/// A warm call's outcome as a result.
fn warm_result(outcome: Outcome) -> JailResult {
    JailResult {
        warm: true,
        ..JailResult::cold(outcome)
    }
}

/// Host pids of live processes whose command line contains `token`.
fn processes_with(token: &str) -> Vec<i32> {
    let Ok(entries) = std::fs::read_dir("/proc") else {
        return Vec::new();
    };
    entries
        .flatten()
        .filter_map(|e| {
            let pid: i32 = e.file_name().to_string_lossy().parse().ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let zombie = stat
                .rsplit(')')
                .next()
                .is_some_and(|s| s.trim_start().starts_with('Z'));
            (!zombie && String::from_utf8_lossy(&cmdline).contains(token)).then_some(pid)
        })
        .collect()
}

impl Drop for Warm {
    fn drop(&mut self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let _ = std::fs::remove_dir_all(&self.parent);
    }
}
