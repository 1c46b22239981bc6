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

use std::io::{BufRead, BufReader, Read, Write};
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
use serde_json::{Map, Value, json};

use crate::jail::finish_safe_exec;
use crate::limits::LimitName;
use crate::{
    Jail, JailCode, JailError, JailResult, SafeExecError, SafeExecOptions, effective_limits,
};

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
    move |source| JailError::Warm {
        why: format!("could not {step}: {source}"),
    }
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
        let layers = self.planned_layers()?;
        let abi = probe.landlock_abi.unwrap_or(0);
        if !layers.contains(Layer::Landlock) || abi < 6 {
            return Err(JailError::Warm {
                why: "the warm path needs Landlock ABI 6 or later (signal scoping) in the jail's layers".into(),
            });
        }
        let base = self
            .config()
            .jail_parent
            .clone()
            .unwrap_or_else(std::env::temp_dir);
        let parent = base.join(format!("codejail-warm-{}-{}", std::process::id(), unique()));
        std::fs::create_dir(&parent).map_err(io_err("create the warm pool's directory"))?;
        use std::os::unix::fs::PermissionsExt;
        std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o755))
            .map_err(io_err("open the warm pool's directory"))?;
        let warm = Warm {
            jail: self.clone(),
            parent,
            owner: layers.contains(Layer::Identity).then_some(self.identity),
            layers,
            abi,
            idle: Mutex::new(Vec::new()),
            freed: Condvar::new(),
            next: AtomicU64::new(0),
        };
        for _ in 0..size.max(1) {
            let z = warm.start_zygote()?;
            warm.idle.lock().unwrap_or_else(|e| e.into_inner()).push(z);
        }
        Ok(warm)
    }
}

fn unique() -> u64 {
    static N: AtomicU64 = AtomicU64::new(0);
    N.fetch_add(1, Ordering::Relaxed)
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

    /// Processes of the pool beyond its idle zygotes, found on the host by
    /// the pool's directory in their command line: after a call returns
    /// (with no other call going on), there must be none.
    pub fn stray_processes(&self) -> usize {
        let zygotes = self.idle.lock().unwrap_or_else(|e| e.into_inner()).len();
        let parent = self.parent.to_string_lossy();
        crate::selftest::processes_with(&parent)
            .len()
            .saturating_sub(zygotes)
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
        })?;
        home.stage(&Contents {
            code: Some(codejail_pyexec::ZYGOTE.as_bytes()),
            files: &[],
            extra: &[],
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
            .args(&self.jail.lang_args)
            .arg(codejail_fs::CODE_FILE)
            .arg(&socket)
            .cwd(home.path())
            .env("TMPDIR", home.tmp())
            .policy(self.jail.policy(false)?)
            .identity(self.jail.identity.0, self.jail.identity.1)
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
                return Err(JailError::Warm { why });
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

    fn take(&self) -> Zygote {
        let mut idle = self.idle.lock().unwrap_or_else(|e| e.into_inner());
        loop {
            if let Some(z) = idle.pop() {
                return z;
            }
            idle = self.freed.wait(idle).unwrap_or_else(|e| e.into_inner());
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
        let limits = effective_limits(options.limits_context.as_deref(), &options.limits);
        if needs_cold(&limits) || options.policy.is_some() {
            return self.jail.safe_exec(code, globals, options);
        }
        let (files, path_entries) = Jail::python_path_files(options)?;
        let request = JailCode {
            files,
            extra_files: options.extra_files.clone(),
            limits_context: options.limits_context.clone(),
            limits: options.limits.clone(),
            slug: options.slug.clone(),
            ..JailCode::default()
        };
        let payload = codejail_pyexec::payload(code, globals, &path_entries);
        let outcome = self
            .call(&request, Mode::Exec(payload))
            .map_err(SafeExecError::Jail)?;
        finish_safe_exec(outcome, globals)
    }

    /// `jail_code` in a warm interpreter: the code runs as `__main__` with
    /// the argv and stdin of the request.
    ///
    /// # Errors
    /// As [`Jail::jail_code`].
    pub fn jail_code(&self, request: &JailCode) -> Result<JailResult, JailError> {
        let limits = effective_limits(request.limits_context.as_deref(), &request.limits);
        if needs_cold(&limits) || request.policy.is_some() || request.code.is_none() {
            return self.jail.jail_code(request);
        }
        let outcome = self.call(request, Mode::Run(request))?;
        Ok(JailResult {
            status: outcome.status,
            stdout: outcome.stdout.clone(),
            stderr: outcome.stderr.clone(),
            outcome,
        })
    }

    fn call(&self, request: &JailCode, mode: Mode<'_>) -> Result<Outcome, JailError> {
        let start = Instant::now();
        let limits = effective_limits(request.limits_context.as_deref(), &request.limits);
        let mut extra = request.extra_files.clone();
        let (mode_name, code) = match &mode {
            Mode::Exec(payload) => {
                extra.push((".codejail-payload.json".into(), payload.clone()));
                ("exec", None)
            }
            Mode::Run(r) => {
                extra.push((".codejail-stdin".into(), r.stdin.clone()));
                extra.push((
                    ".codejail-argv.json".into(),
                    serde_json::to_vec(&r.argv).unwrap_or_default(),
                ));
                ("run", r.code.as_deref())
            }
        };
        let contents = Contents {
            code: code.map(str::as_bytes),
            files: &request.files,
            extra: &extra,
        };
        contents.validate()?;
        let dir = JailDir::create(&JailOptions {
            parent: Some(self.parent.clone()),
            owner: self.owner,
            tmp_quota: None,
        })?;
        dir.stage(&contents)?;
        let spec = self.jail.fs_rules(&dir).landlock_spec(self.abi);
        let line = json!({
            "home": dir.path(),
            "tmp": dir.tmp(),
            "mode": mode_name,
            "max_result": codejail_pyexec::MAX_RESULT_BYTES,
            "limits": {
                "cpu": limits.get(LimitName::Cpu),
                "realtime": limits.get(LimitName::Realtime),
                "vmem": limits.get(LimitName::Vmem),
                "fsize": limits.get(LimitName::Fsize),
                "nproc": limits.get(LimitName::Nproc),
                "output": limits.get(LimitName::Output),
            },
            "landlock": {
                "fs": spec.fs, "net": spec.net, "scoped": spec.scoped, "file_mask": spec.file_mask,
                "rules": spec.rules.iter().map(|(p, a)| json!([p, a])).collect::<Vec<_>>(),
            },
        });
        let realtime = Duration::from_secs(limits.get(LimitName::Realtime).max(1));
        let mut zygote = self.take();
        let answer = ask(&mut zygote, &line, realtime + ANSWER_GRACE);
        match &answer {
            Ok(_) => self.give_back(zygote),
            Err(_) => {
                // A zygote that does not answer is ended, with everything
                // in it, and replaced.
                drop(zygote);
                if let Ok(z) = self.start_zygote() {
                    self.give_back(z);
                }
            }
        }
        let (header, stdout, stderr, result) = answer?;
        dir.remove()?;
        if let Some(error) = header["error"].as_str() {
            return Err(JailError::Warm {
                why: format!("the call failed to start: {error}"),
            });
        }
        let killed_by = match header["killed_by"].as_str() {
            Some("realtime") => Some(KillReason::Wall),
            Some("cpu") => Some(KillReason::Cpu),
            Some("output") => Some(KillReason::Output),
            _ => None,
        };
        let truncated = Truncated {
            stdout: header["truncated"][0].as_bool().unwrap_or(false),
            stderr: header["truncated"][1].as_bool().unwrap_or(false),
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

type Answer = (Value, Vec<u8>, Vec<u8>, Vec<u8>);

/// Sends one request line and reads the answer: a JSON header line, then
/// the call's stdout, stderr and result bytes.
fn ask(zygote: &mut Zygote, line: &Value, timeout: Duration) -> Result<Answer, JailError> {
    let lost = |e: std::io::Error| JailError::Warm {
        why: format!("the zygote did not answer: {e}"),
    };
    zygote
        .stream
        .set_read_timeout(Some(timeout))
        .map_err(lost)?;
    let mut text = line.to_string();
    text.push('\n');
    zygote.stream.write_all(text.as_bytes()).map_err(lost)?;
    let mut reader = BufReader::new(
        zygote
            .stream
            .as_fd()
            .try_clone_to_owned()
            .map(UnixStream::from)
            .map_err(lost)?,
    );
    let mut header_line = Vec::new();
    reader.read_until(b'\n', &mut header_line).map_err(lost)?;
    let header: Value = serde_json::from_slice(&header_line).map_err(|e| JailError::Warm {
        why: format!("the zygote answered garbage: {e}"),
    })?;
    let lengths: Vec<usize> = (0..3)
        .map(|i| header["lengths"][i].as_u64().unwrap_or(0) as usize)
        .collect();
    let mut read = |n: usize| -> Result<Vec<u8>, JailError> {
        let mut buf = vec![0u8; n];
        reader.read_exact(&mut buf).map_err(lost)?;
        Ok(buf)
    };
    let stdout = read(lengths[0])?;
    let stderr = read(lengths[1])?;
    let result = read(lengths[2])?;
    // The zygote's mark that the call's leader has been reaped.
    if read(1)? != b"." {
        return Err(JailError::Warm {
            why: "the zygote did not confirm the end of the call".into(),
        });
    }
    Ok((header, stdout, stderr, result))
}

fn needs_cold(limits: &crate::Limits) -> bool {
    [LimitName::Memory, LimitName::Disk, LimitName::Files]
        .into_iter()
        .any(|n| limits.get(n) > 0)
}

impl Drop for Warm {
    fn drop(&mut self) {
        self.idle.lock().unwrap_or_else(|e| e.into_inner()).clear();
        let _ = std::fs::remove_dir_all(&self.parent);
    }
}
