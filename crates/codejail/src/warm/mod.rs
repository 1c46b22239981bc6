//! The warm path: a pool of zygotes, so that a call does not pay for an
//! interpreter start.
//!
//! A zygote (`zygote.rs`) is an ordinary cold run, every layer on, of
//! `codejail_pyexec::ZYGOTE`, which forks one worker per call. Its channel
//! is its stdin, one end of a socketpair whose other end the pool keeps:
//! no other process can reach it. Each call gets a fresh directory in the
//! pool's private directory (only the caller and the sandbox uid may enter
//! it), a `tmp/` on the zygote's quota-limited tmpfs, its own rlimits and
//! session, a Landlock domain of its own nested in the zygote's (its
//! directory and `tmp/` only; signals and abstract sockets scoped to the
//! call), and every process of the call is killed and reaped before the
//! answer comes back. The call's code and data are files in its directory,
//! read by its worker only; its output goes to the caller's pipes through
//! the process layer's pump, which also enforces the output cap, the
//! wall-clock deadline and cancellation (by asking the zygote to kill). A
//! zygote serves one call at a time, so calls running at once are in
//! different zygotes, hence different namespaces.
//!
//! The pool (`pool.rs`) replaces a zygote that failed, retired (it found
//! something of its own changed, or served its share of calls) or died,
//! with backoff; a call waits a bounded time for a free one. A call whose
//! zygote died before reading it (nothing of it ran) goes to another; a
//! call its zygote read is never sent again.
//!
//! A call goes down the cold path instead when it needs what only a cold
//! run gives: a cgroup (a MEMORY limit), a quota other than the pool's
//! (DISK, FILES), fewer layers, or no code to run.

mod pool;
mod zygote;

use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::path::PathBuf;
use std::sync::Arc;
use std::sync::atomic::{AtomicU64, Ordering};
use std::thread::JoinHandle;
use std::time::{Duration, Instant};

use codejail_fs::{Contents, JailDir, JailOptions, Tmp};
use codejail_proc::pump::{Pump, State, deadline_after};
use codejail_proc::{KillReason, Layer, LayerSet, Probe, Truncated};
use serde_json::{Map, Value, json};

use self::pool::Pool;
use self::zygote::{Answering, Recipe, Zygote};
use crate::error::WarmError;
use crate::jail::{check_globals, finish_safe_exec, python_path_files};
use crate::limits::{LimitName, LimitSet};
use crate::{
    Jail, JailCode, JailError, JailResult, SafeExecError, SafeExecOptions, effective_limits,
};

/// A warm `jail_code` call's argv, staged for the worker.
const ARGV_FILE: &str = ".codejail-argv.json";
/// How long the zygote gets to kill a call after being asked (and then,
/// once it was ended by force, to be gone).
const KILL_GRACE: Duration = Duration::from_secs(2);

/// How a warm pool is made.
#[derive(Clone, Debug, PartialEq, Eq)]
#[non_exhaustive]
pub struct WarmOptions {
    /// Interpreters the pool keeps (at least one).
    pub size: usize,
    /// How long a call waits for a free interpreter before
    /// [`WarmError::Busy`]. The wait is not counted in the call's
    /// wall-clock limit (`REALTIME`) nor in its result's `wall`: both
    /// start once the call has its interpreter. A call sent to another
    /// interpreter because its first died without reading it keeps that
    /// start (the second wait counts). Calls waiting are served in the
    /// order they came. A call whose [`Cancel`](crate::Cancel) is
    /// cancelled while it waits stops waiting within 10 ms, with
    /// [`JailError::Cancelled`]: nothing of it ran.
    pub take_timeout: Duration,
    /// After this many calls an interpreter retires and is replaced (it
    /// bounds what a slow leak in the interpreter could grow to). The
    /// pool's first interpreters retire in turn: the `i`-th of `size`
    /// after `max_calls - i * max_calls / size` calls (at least one), so
    /// that they do not all retire at once.
    pub max_calls: u64,
}

impl WarmOptions {
    /// `size` interpreters, waiting up to 30 s for one, 1,000 calls each.
    pub fn new(size: usize) -> WarmOptions {
        WarmOptions {
            size,
            take_timeout: Duration::from_secs(30),
            max_calls: 1000,
        }
    }
}

/// A pool of warm interpreters for one jail; see the module's text.
/// Dropping it ends every zygote and removes its directory.
#[derive(Debug)]
pub struct Warm {
    jail: Arc<Jail>,
    pool: Arc<Pool>,
    keeper: Option<JoinHandle<()>>,
    dir: PathBuf,
    quota: Option<codejail_fs::TmpQuota>,
    layers: LayerSet,
    abi: i32,
    options: WarmOptions,
    calls: AtomicU64,
    cold_fallbacks: AtomicU64,
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
    /// Interpreters replaced (retired, failed or gone).
    pub restarts: u64,
    /// Calls that failed because an interpreter failed (a call that found
    /// no interpreter free in time is not one, unless an interpreter had
    /// failed it first).
    pub failures: u64,
}

impl Jail {
    /// Starts a pool of `size` warm interpreters for this jail
    /// ([`WarmOptions::new`]).
    ///
    /// # Errors
    /// As [`Jail::warm_with`].
    pub fn warm(self: &Arc<Jail>, size: usize) -> Result<Warm, JailError> {
        self.warm_with(WarmOptions::new(size))
    }

    /// Starts a pool of warm interpreters for this jail.
    ///
    /// # Errors
    /// [`JailError::Warm`] where the warm path cannot keep the cold path's
    /// guarantees (it needs Landlock with signal scoping, ABI 6, and a
    /// confined jail), or a first interpreter does not start.
    pub fn warm_with(self: &Arc<Jail>, options: WarmOptions) -> Result<Warm, JailError> {
        if options.size == 0 {
            return Err(WarmError::EmptyPool.into());
        }
        if self.is_unsafe() {
            return Err(WarmError::Unsafe {
                jail: self.name().to_owned(),
            }
            .into());
        }
        self.check_safe_exec()?;
        let layers = self.planned_layers()?;
        let abi = Probe::get().landlock_abi.unwrap_or(0);
        if !layers.contains(Layer::Landlock) || abi < 6 {
            return Err(WarmError::NeedsLandlockScopes { layers }.into());
        }
        crate::leftovers::gc_own_kind(self.config().jail_parent.as_deref());
        let owner = layers.contains(Layer::Identity).then_some(self.identity());
        let dir = private_dir(self, owner)?;
        let quota = effective_limits(None, &[])?.tmp_quota();
        let recipe = Recipe {
            pool: dir.clone(),
            owner,
            quota,
            max_calls: options.max_calls,
            preload: self.config().preload.clone(),
        };
        let (pool, keeper) = match Pool::start(self.clone(), recipe, options.size) {
            Ok(started) => started,
            Err(e) => {
                remove_dir(&dir);
                return Err(e.into());
            }
        };
        Ok(Warm {
            jail: self.clone(),
            pool,
            keeper: Some(keeper),
            dir,
            quota,
            layers,
            abi,
            options,
            calls: AtomicU64::new(0),
            cold_fallbacks: AtomicU64::new(0),
        })
    }
}

/// The pool's directory, `codejail-warm-<owner>-XXXXXX` in the jail
/// parent: the caller's, 0700; for a root caller whose code runs as the
/// sandbox uid, 0710 with the sandbox group, which may pass through it to
/// the homes and call directories and list nothing.
fn private_dir(jail: &Jail, owner: Option<(u32, u32)>) -> Result<PathBuf, WarmError> {
    let io = |step| move |source| WarmError::Io { step, source };
    let base = jail
        .config()
        .jail_parent
        .clone()
        .unwrap_or_else(std::env::temp_dir);
    let dir = tempfile::Builder::new()
        .prefix(&crate::leftovers::pool_prefix())
        .tempdir_in(&base)
        .map_err(io("create the warm pool's directory"))?
        .keep();
    use std::os::unix::fs::PermissionsExt;
    // Whatever the umask made of it (tempfile's directories are 0777 less
    // the umask).
    let made_private = match owner {
        Some((_, gid)) => std::os::unix::fs::chown(&dir, None, Some(gid))
            .and_then(|()| std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o710))),
        None => std::fs::set_permissions(&dir, std::fs::Permissions::from_mode(0o700)),
    };
    if let Err(e) = made_private {
        remove_dir(&dir);
        return Err(io("make the warm pool's directory private")(e));
    }
    Ok(dir)
}

/// Removes the pool's directory and whatever is left in it.
fn remove_dir(dir: &std::path::Path) {
    let (Some(parent), Some(name)) = (dir.parent(), dir.file_name()) else {
        return;
    };
    if let Ok(parent) = std::fs::File::open(parent) {
        if let Err(e) = codejail_fs::remove_tree_at(parent.as_fd(), name) {
            tracing::warn!(dir = %dir.display(), "could not remove the warm pool's directory: {e}");
        }
    }
}

/// What a call runs.
enum Mode<'a> {
    /// `safe_exec`: the driver's payload, and the number of its
    /// `python_path` entries.
    Exec(Vec<u8>, usize),
    /// `jail_code`: the code as `__main__`, with argv and stdin.
    Run(&'a JailCode),
}

impl Warm {
    /// The layers every call gets (the zygote's, plus its own Landlock
    /// domain).
    pub fn layers(&self) -> LayerSet {
        self.layers
    }

    /// How many calls went down the cold path instead (see the module's
    /// text).
    pub fn cold_fallbacks(&self) -> u64 {
        self.cold_fallbacks.load(Ordering::Relaxed)
    }

    /// What the pool is doing: for health checks and metrics.
    pub fn health(&self) -> Health {
        Health {
            size: self.options.size,
            idle: self.pool.idle(),
            served: self.pool.served.load(Ordering::Relaxed),
            cold_fallbacks: self.cold_fallbacks.load(Ordering::Relaxed),
            restarts: self.pool.restarts.load(Ordering::Relaxed),
            failures: self.pool.failures.load(Ordering::Relaxed),
        }
    }

    /// The pids (as this process sees them) of the zygotes idle now: for
    /// tests and for measuring what a pool costs (`/proc/<pid>/smaps_rollup`).
    pub fn zygote_pids(&self) -> Vec<i32> {
        self.pool.idle_pids()
    }

    /// Processes of the pool beyond its idle zygotes and the one worker
    /// each forks ahead of its next call (a child of the zygote), found on
    /// the host by the pool's directory in their command line: after a
    /// call returns (with no other call going on), there must be none. A
    /// zygote has no other child then: it reaped every process of the call
    /// before it answered.
    pub fn stray_processes(&self) -> usize {
        let zygotes = self.pool.idle_pids();
        let dir = self.dir.to_string_lossy();
        let mut ahead = std::collections::HashSet::new();
        crate::leftovers::processes_with(&dir)
            .into_iter()
            .filter(|pid| !zygotes.contains(pid))
            .filter(|&pid| {
                let parent = u32::try_from(pid)
                    .ok()
                    .and_then(codejail_proc::owner::parent_of);
                !parent.is_some_and(|p| zygotes.contains(&p) && ahead.insert(p))
            })
            .count()
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
        crate::Runner::safe_exec(self, code, globals, options)
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
        if self.needs_cold(&limits, call) {
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
        let result = self.call(&request, &limits, Mode::Exec(payload, path_entries.len()))?;
        finish_safe_exec(result)
    }

    /// `jail_code` in a warm interpreter: the code runs as `__main__` with
    /// the argv and stdin of the request.
    ///
    /// # Errors
    /// As [`Jail::jail_code`].
    pub fn jail_code(&self, request: &JailCode) -> Result<JailResult, JailError> {
        let call = &request.call;
        let limits = effective_limits(call.limits_context.as_deref(), &call.limits)?;
        if self.needs_cold(&limits, call) || request.code.is_none() {
            self.cold_fallbacks.fetch_add(1, Ordering::Relaxed);
            return self.jail.jail_code(request);
        }
        self.call(request, &limits, Mode::Run(request))
    }

    /// What only a cold run gives: a cgroup, a quota other than the
    /// pool's, fewer layers.
    fn needs_cold(&self, limits: &LimitSet, call: &crate::CallOptions) -> bool {
        limits.get(LimitName::Memory) > 0
            || limits.tmp_quota() != self.quota
            || call.layers.is_some()
    }

    fn call(
        &self,
        request: &JailCode,
        limits: &LimitSet,
        mode: Mode<'_>,
    ) -> Result<JailResult, JailError> {
        let call = &request.call;
        let span = tracing::error_span!("run", jail = %self.jail.name(), slug = %call.slug.as_deref().unwrap_or(""), warm = true);
        let _entered = span.enter();
        if cancelled(call) {
            return Err(JailError::Cancelled);
        }
        // Taken once: a call sent again (below) sends the same descriptor.
        let stdin_fd = match &mode {
            Mode::Run(r) => r.stdin_fd.as_ref().and_then(crate::StdinFd::take),
            Mode::Exec(..) => None,
        };
        // A call its zygote never read (the zygote died first) goes to
        // another, up to once per interpreter of the pool and once more:
        // every one of them may have been killed at once.
        let mut tries = self.options.size.max(1) + 1;
        // The call's wall-clock limit and its `wall` start once it first
        // has an interpreter: a call that waited for one in a busy pool has
        // not run yet (the wait has its own bound, `take_timeout`). A call
        // sent again keeps its start: the failed try and the wait for
        // another interpreter count, and it is not sent again once its
        // deadline has passed.
        let mut first: Option<(Instant, String)> = None;
        // One place in the line for the call: sent again, it is served at
        // the place it first had.
        let ticket = self.pool.ticket();
        let (zygote, answered, start) = loop {
            // A cancel ends the wait for an interpreter (nothing of the
            // call ran: it was cancelled before it started). A call sent
            // again waits no longer than its wall-clock limit has left.
            let wait = first
                .as_ref()
                .and_then(|(start, _)| deadline(limits, *start))
                .map_or(self.options.take_timeout, |d| {
                    d.saturating_duration_since(Instant::now())
                        .min(self.options.take_timeout)
                });
            let taken = self.pool.take(wait, call.cancel.as_ref(), ticket);
            let zygote = match (taken, &first) {
                (Ok(zygote), Some((start, why))) if past_deadline(limits, *start) => {
                    // Its time ran out while it waited: sent, it would
                    // only be killed before it ran.
                    self.pool.put_back(zygote);
                    self.pool.failures.fetch_add(1, Ordering::Relaxed);
                    return Err(WarmError::Lost(format!(
                        "{why}, and its wall-clock limit passed before another interpreter took it"
                    ))
                    .into());
                }
                (Ok(zygote), _) => zygote,
                (Err(e @ JailError::Cancelled), _) | (Err(e), None) => return Err(e),
                (Err(e), Some((_, why))) => {
                    self.pool.failures.fetch_add(1, Ordering::Relaxed);
                    return Err(WarmError::Lost(format!(
                        "{why}, and no other interpreter took the call: {e}"
                    ))
                    .into());
                }
            };
            let start = first
                .as_ref()
                .map_or_else(Instant::now, |(start, _)| *start);
            let stdin = stdin_fd.as_ref().map(AsFd::as_fd);
            match self.ask(&zygote, request, limits, &mode, stdin, start) {
                // Nothing of it ran: cancelled, whether or not it could
                // have been sent again.
                Err(Attempt::Unread(_)) if cancelled(call) => {
                    self.pool.lose(zygote);
                    return Err(JailError::Cancelled);
                }
                Err(Attempt::Unread(why)) if tries > 1 && !past_deadline(limits, start) => {
                    tries -= 1;
                    tracing::warn!(
                        "a warm interpreter died before it read the call ({why}); the call goes to another"
                    );
                    self.pool.lose(zygote);
                    first = Some((start, why));
                }
                answered => break (zygote, answered.map_err(JailError::from), start),
            }
        };
        match &answered {
            Ok(a) if !a.retire && single_threaded(&zygote) => {
                self.pool.served.fetch_add(1, Ordering::Relaxed);
                self.pool.give_back(zygote);
            }
            Ok(_) => {
                self.pool.served.fetch_add(1, Ordering::Relaxed);
                self.pool.lose(zygote);
            }
            Err(_) => {
                self.pool.failures.fetch_add(1, Ordering::Relaxed);
                self.pool.lose(zygote);
            }
        }
        let answered = answered?;
        let result = self.result(answered, limits, &mode, start);
        tracing::info!(
            status = result.status,
            killed_by = result.killed_by.map(|k| k.as_str()),
            wall_ms = result.wall.as_millis() as u64,
            "ran jailed code"
        );
        Ok(result)
    }

    /// One call on `zygote`: its directory, the request, the pump.
    /// `stdin_fd` is the caller's descriptor for a `jail_code` call's
    /// stdin, if it gave one.
    fn ask(
        &self,
        zygote: &Zygote,
        request: &JailCode,
        limits: &LimitSet,
        mode: &Mode<'_>,
        stdin_fd: Option<BorrowedFd<'_>>,
        start: Instant,
    ) -> Result<Answered, Attempt> {
        let call = &request.call;
        let argv_json;
        let program;
        let mut own: Vec<(&str, &[u8])> = Vec::new();
        let (mode_name, code) = match mode {
            Mode::Exec(..) => ("exec", None),
            Mode::Run(r) => {
                argv_json = serde_json::to_vec(&r.argv).unwrap_or_default();
                own.push((ARGV_FILE, &argv_json));
                ("run", r.code.as_deref())
            }
        };
        let mut contents = Contents {
            code: code.map(str::as_bytes),
            files: &call.files,
            extra: &call.extra_files,
            own: &own,
        };
        // A call that stages nothing (`safe_exec` without files) runs in
        // the zygote's home for such calls, made once; any other in a
        // directory of its own, in the zygote's home: its private root
        // holds that directory (live), and no other zygote's holds it.
        // A `safe_exec` call's directory holds the jailed program as a
        // cold run's does, whose line its traceback names (the home for
        // calls without files holds it for calls without a python_path).
        if let (Mode::Exec(_, entries), false) = (mode, contents.is_empty()) {
            program = codejail_pyexec::program(*entries);
            contents.code = Some(program.as_bytes());
        }
        contents.validate().map_err(JailError::from)?;
        let staged = if contents.is_empty() {
            None
        } else {
            let id = self.calls.fetch_add(1, Ordering::Relaxed);
            let tmp = zygote.tmp().join(format!("call-{id}"));
            let dir = JailDir::create(&JailOptions {
                parent: Some(zygote.home().to_owned()),
                owner: zygote.owner(),
                tmp: Tmp::Link(tmp.clone()),
                prefix: Some(crate::leftovers::jail_prefix()),
                ..JailOptions::default()
            })
            .map_err(JailError::from)?;
            dir.stage(&contents).map_err(JailError::from)?;
            Some((dir, tmp))
        };
        let (dir, tmp) = match &staged {
            Some((dir, tmp)) => (dir, tmp.clone()),
            None => zygote.exec_home(),
        };
        let mut rules = self.jail.base_rules();
        rules.read.push(dir.path().to_owned());
        let ruleset = rules
            .ruleset(self.abi)
            .map_err(|e| WarmError::Landlock(Box::new(e)))?;
        let line = json!({
            "home": dir.path(),
            "tmp": tmp,
            "tmpdir": dir.tmp(),
            "mode": mode_name,
            "tmp_access": codejail_proc::read_write_access(self.abi),
            "limits": {
                "cpu": limits.get(LimitName::Cpu),
                "vmem": limits.get(LimitName::Vmem),
                "fsize": limits.get(LimitName::Fsize),
                "nproc": nproc(limits, self.layers),
                "disk": limits.get(LimitName::Disk),
                "files": limits.get(LimitName::Files),
            },
        });
        let stdin = match (mode, stdin_fd) {
            (Mode::Exec(payload, _), _) => Stdin::Bytes(payload),
            (Mode::Run(_), Some(fd)) => Stdin::Fd(fd),
            (Mode::Run(r), None) => Stdin::Bytes(&r.stdin),
        };
        let answered = exchange(zygote, &line, ruleset, stdin, limits, call, start);
        if let Some((dir, _)) = staged {
            dir.remove().map_err(JailError::from)?;
        }
        answered
    }

    /// The call's result from the zygote's answer and what the pump saw.
    fn result(
        &self,
        answered: Answered,
        limits: &LimitSet,
        mode: &Mode<'_>,
        start: Instant,
    ) -> JailResult {
        let Answered {
            answer,
            mut outputs,
            killed,
            ..
        } = answered;
        let status = answer["status"]
            .as_i64()
            .map_or(-libc::SIGKILL, |s| s as i32);
        let cpu = Duration::from_micros(answer["cpu_us"].as_u64().unwrap_or(0));
        let cpu_limit = limits.get(LimitName::Cpu);
        let by_cpu = status == -libc::SIGXCPU
            || (status == -libc::SIGKILL && cpu_limit > 0 && cpu.as_secs() >= cpu_limit);
        let killed_by = killed
            .filter(|k| k.ended(status))
            .or(by_cpu.then_some(KillReason::Cpu))
            .or((answer["disk_full"] == true).then_some(KillReason::Disk));
        let result = outputs.pop().unwrap_or_default();
        let stderr = outputs.pop().unwrap_or_default();
        let stdout = outputs.pop().unwrap_or_default();
        JailResult {
            status,
            // safe_exec's result is its stdout, as on the cold path.
            stdout: match mode {
                Mode::Exec(..) => result.bytes,
                Mode::Run(_) => stdout.bytes,
            },
            stderr: stderr.bytes,
            truncated: Truncated {
                stdout: stdout.truncated || result.truncated,
                stderr: stderr.truncated,
            },
            killed_by,
            wall: start.elapsed(),
            cpu,
            max_rss_kib: answer["max_rss_kib"].as_u64().unwrap_or(0),
            layers: self.layers,
            landlock: Probe::get().landlock_status,
            warm: true,
        }
    }
}

/// Whether `zygote` may fork again: one thread (counted by the kernel),
/// as when it became ready. One that is not is retired, with a warning.
fn single_threaded(zygote: &Zygote) -> bool {
    match zygote.threads() {
        Ok(1) => true,
        Ok(threads) => {
            tracing::warn!(
                threads,
                "a warm interpreter started threads after it became ready; it is replaced"
            );
            false
        }
        Err(e) => {
            tracing::warn!("could not count a warm interpreter's threads; it is replaced: {e}");
            false
        }
    }
}

/// `RLIMIT_NPROC` for a worker: the call's, plus the zygote and whatever
/// else of the zygote's run has its uid in the namespace.
fn nproc(limits: &LimitSet, layers: LayerSet) -> u64 {
    match limits.get(LimitName::Nproc) {
        0 => 0,
        n => n + 1 + codejail_proc::nproc_overhead(layers),
    }
}

/// A call's stdin: bytes fed through a pipe, or the caller's descriptor
/// (each try sends a copy; the caller's stays open until the call ends,
/// for a call sent again).
enum Stdin<'a> {
    Bytes(&'a [u8]),
    Fd(BorrowedFd<'a>),
}

/// How one try of a call on a zygote failed.
enum Attempt {
    /// The zygote ended before it had read the whole request: nothing of
    /// the call ran, and it may go to another zygote.
    Unread(String),
    /// Any other failure: the call may have run, or the failure is not the
    /// zygote's.
    Failed(JailError),
}

impl From<JailError> for Attempt {
    fn from(e: JailError) -> Attempt {
        Attempt::Failed(e)
    }
}

impl From<WarmError> for Attempt {
    fn from(e: WarmError) -> Attempt {
        Attempt::Failed(e.into())
    }
}

impl From<Attempt> for JailError {
    fn from(a: Attempt) -> JailError {
        match a {
            Attempt::Unread(why) => JailError::from(WarmError::Lost(why)),
            Attempt::Failed(e) => e,
        }
    }
}

/// When the call's wall-clock limit, counted from `start`, ends (none
/// without a limit).
fn deadline(limits: &LimitSet, start: Instant) -> Option<Instant> {
    limits
        .realtime()
        .and_then(|wall| deadline_after(start, wall))
}

/// The call's wall-clock limit, counted from `start`, has passed.
fn past_deadline(limits: &LimitSet, start: Instant) -> bool {
    deadline(limits, start).is_some_and(|d| Instant::now() >= d)
}

/// The caller cancelled the call.
fn cancelled(call: &crate::CallOptions) -> bool {
    call.cancel
        .as_ref()
        .is_some_and(crate::Cancel::is_cancelled)
}

/// What came back from a zygote.
struct Answered {
    answer: Value,
    /// stdout, stderr, result.
    outputs: Vec<codejail_proc::pump::Captured>,
    killed: Option<KillReason>,
    /// The zygote asks to be replaced.
    retire: bool,
}

/// Sends the request with the call's descriptors, then pumps: stdin in,
/// the three outputs out under the output cap, the deadline and the
/// cancel handle enforced by asking the zygote to kill the call.
///
/// [`Attempt::Unread`] when the zygote cannot have read the whole request
/// line (it acts on a call only once it has its newline): the request
/// could not be sent whole (a failed send leaves its newline unsent), or
/// the channel was reset before any answer with nothing of ours sent
/// after the request (the kernel resets a unix stream whose last holder
/// closes it with bytes unread; here those bytes can only be the
/// request's).
fn exchange(
    zygote: &Zygote,
    line: &Value,
    ruleset: OwnedFd,
    stdin: Stdin<'_>,
    limits: &LimitSet,
    call: &crate::CallOptions,
    start: Instant,
) -> Result<Answered, Attempt> {
    let lost = |why: String| Attempt::Failed(JailError::from(WarmError::Lost(why)));
    let pipe = || {
        rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).map_err(|e| lost(e.to_string()))
    };
    let (stdin_r, stdin_w, stdin_bytes): (OwnedFd, Option<OwnedFd>, &[u8]) = match stdin {
        Stdin::Bytes(bytes) => {
            let (r, w) = pipe()?;
            (r, Some(w).filter(|_| !bytes.is_empty()), bytes)
        }
        Stdin::Fd(fd) => {
            let copy = fd.try_clone_to_owned();
            (
                copy.map_err(|e| lost(format!("could not copy stdin's descriptor: {e}")))?,
                None,
                &[],
            )
        }
    };
    let [(out_r, out_w), (err_r, err_w), (res_r, res_w)] = [pipe()?, pipe()?, pipe()?];
    let mut text = line.to_string();
    text.push('\n');
    send(
        zygote.socket(),
        text.as_bytes(),
        &[
            stdin_r.as_fd(),
            out_w.as_fd(),
            err_w.as_fd(),
            res_w.as_fd(),
            ruleset.as_fd(),
        ],
    )
    .map_err(|e| Attempt::Unread(format!("could not send the call: {e}")))?;
    drop((stdin_r, out_w, err_w, res_w, ruleset));
    let cap = usize::try_from(limits.get(LimitName::Output))
        .ok()
        .filter(|&c| c > 0);
    let cancel = call.cancel.as_ref().map(crate::Cancel::watch).transpose();
    let cancel = cancel.map_err(|e| lost(format!("could not watch the cancel handle: {e}")))?;
    let mut pump = Pump::new(deadline(limits, start)).kill_grace(KILL_GRACE);
    if let Some(w) = stdin_w {
        pump = pump.stdin(w, stdin_bytes);
    }
    pump = pump
        .output(out_r, cap)
        .output(err_r, cap)
        .output(res_r, cap);
    if let Some(fd) = &cancel {
        pump = pump.cancel_on(fd.as_fd());
    }
    let mut target = Answering {
        zygote,
        answer: Vec::new(),
        asked_kill: false,
        forced: false,
    };
    let pumped = pump.run(&mut target).map_err(|e| {
        let why = format!("could not {}: {}", e.step, e.source);
        let reset = e.source.kind() == std::io::ErrorKind::ConnectionReset;
        if reset && target.answer.is_empty() && !target.asked_kill {
            Attempt::Unread(why)
        } else {
            lost(why)
        }
    })?;
    if pumped.target != State::Finished || target.forced {
        // The zygote did not answer, even asked to kill: it is ended by the
        // pool, with every process of the call. A call that was being
        // killed anyway says so; any other is the pool's failure.
        return match pumped.killed {
            Some(killed) => Ok(Answered {
                answer: json!({"status": -libc::SIGKILL}),
                outputs: pumped.outputs,
                killed: Some(killed),
                retire: true,
            }),
            None => Err(lost("it stopped answering".into())),
        };
    }
    let answer: Value = serde_json::from_slice(&target.answer)
        .map_err(|e| lost(format!("it answered garbage: {e}")))?;
    Ok(Answered {
        retire: answer["retire"] == true,
        answer,
        outputs: pumped.outputs,
        killed: pumped.killed,
    })
}

/// `sendmsg` of `bytes` with `fds` (SCM_RIGHTS) on the non-blocking
/// channel, waiting for room when it is full.
fn send(
    socket: &std::os::unix::net::UnixStream,
    bytes: &[u8],
    fds: &[std::os::fd::BorrowedFd<'_>],
) -> std::io::Result<()> {
    use rustix::net::{SendAncillaryBuffer, SendAncillaryMessage, SendFlags, sendmsg};
    let mut space = [std::mem::MaybeUninit::uninit(); rustix::cmsg_space!(ScmRights(5))];
    let mut control = SendAncillaryBuffer::new(&mut space);
    control.push(SendAncillaryMessage::ScmRights(fds));
    let mut sent = 0;
    let mut first = true;
    while sent < bytes.len() {
        let iov = [std::io::IoSlice::new(&bytes[sent..])];
        let r = if first {
            sendmsg(socket, &iov, &mut control, SendFlags::empty())
        } else {
            rustix::net::send(socket, &bytes[sent..], SendFlags::empty())
        };
        match r {
            Ok(n) => {
                sent += n;
                first = false;
            }
            Err(rustix::io::Errno::AGAIN) => {
                let mut fds = [rustix::event::PollFd::new(
                    socket,
                    rustix::event::PollFlags::OUT,
                )];
                let _ = rustix::event::poll(&mut fds, None);
            }
            Err(rustix::io::Errno::INTR) => {}
            Err(e) => return Err(e.into()),
        }
    }
    Ok(())
}

impl Drop for Warm {
    fn drop(&mut self) {
        self.pool.shut_down();
        if let Some(keeper) = self.keeper.take() {
            let _ = keeper.join();
        }
        remove_dir(&self.dir);
    }
}

#[cfg(test)]
mod tests {
    #[test]
    fn nproc_counts_the_zygote() {
        let mut limits = crate::LimitSet::default();
        limits.set(crate::LimitName::Nproc, 5).unwrap();
        assert!(super::nproc(&limits, crate::LayerSet::empty()) >= 6);
        limits.set(crate::LimitName::Nproc, 0).unwrap();
        assert_eq!(super::nproc(&limits, crate::LayerSet::empty()), 0);
    }
}
