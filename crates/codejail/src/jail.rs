//! A jail: `jail_code` and `safe_exec` on a cold run each.

use std::path::PathBuf;

use codejail_fs::{Contents, JailDir, JailOptions, Tmp};
use codejail_proc::{FsRules, Layer, LayerSet, Needs, Policy, Probe, Spawn, Tmpfs};
use serde_json::{Map, Value};

use crate::config::{Confinement, JailConfig, Lang};
use crate::error::{ConfigError, JailError, SafeExecError, excerpt};
use crate::limits::{LimitName, LimitSet, effective_limits};
use crate::python::{Asking, PythonFacts, python_facts, resolve_bin};
use crate::request::{CallOptions, JailCode, JailResult, SafeExecOptions, StdinFd};
use crate::uids::{self, DEFAULT_UID_LOCK_DIR, Taken, UidError, UidLease, UidRange, Uids};

/// The most bytes of the jail's output a [`SafeExecError`] message
/// carries.
const MESSAGE_MAX: usize = 1000;

/// A configured jail: a program, its language, a sandbox identity and a
/// confinement policy. Cheap to share (`Arc<Jail>`); used from any thread.
///
/// Made directly with [`Jail::new`], or registered under a name with
/// [`configure`](crate::configure) (CodeJail's way).
#[derive(Debug)]
pub struct Jail {
    name: String,
    config: JailConfig,
    identity: (u32, u32),
    /// Where each run's uid comes from, when not the user's.
    uids: Option<UidRange>,
    uid_lock_dir: PathBuf,
    facts: PythonFacts,
}

/// The uid and gid of one run, and the lease on the uid when it comes
/// from the jail's range: held until the run is over (every process of
/// it reaped, its directory removed), then dropped.
#[derive(Debug)]
pub(crate) struct RunIdentity {
    pub uid: u32,
    pub gid: u32,
    _lease: Option<UidLease>,
}

impl RunIdentity {
    /// Its uid and gid.
    pub(crate) fn ids(&self) -> (u32, u32) {
        (self.uid, self.gid)
    }
}

/// The identity of a run that switches uid: a uid of `range` taken for
/// it, or `user`'s uid; `user`'s group.
fn switched_identity(
    user: (u32, u32),
    range: Option<UidRange>,
    lock_dir: &std::path::Path,
) -> Result<RunIdentity, UidError> {
    match range {
        None => Ok(RunIdentity {
            uid: user.0,
            gid: user.1,
            _lease: None,
        }),
        Some(range) => {
            let lease = uids::lease(range, lock_dir)?;
            Ok(RunIdentity {
                uid: lease.uid(),
                gid: user.1,
                _lease: Some(lease),
            })
        }
    }
}

impl Jail {
    /// Makes a jail called `name` (used in logs and messages) from
    /// `config`. For a Python jail this runs the interpreter once, to learn
    /// which directories it reads and to compile the `safe_exec` driver.
    ///
    /// # Errors
    /// [`ConfigError`]: the program is missing, the interpreter fails, the
    /// user is unknown.
    pub fn new(name: impl Into<String>, config: JailConfig) -> Result<Jail, ConfigError> {
        if let Some(bad) = config
            .preload
            .iter()
            .find(|m| !crate::config::is_module_name(m))
        {
            return Err(ConfigError::BadPreload {
                module: bad.clone(),
            });
        }
        let name = name.into();
        if !config.preload.is_empty() && !config.lang.has_safe_exec() {
            return Err(ConfigError::PreloadNeedsPython {
                jail: name,
                lang: config.lang.to_string(),
            });
        }
        let bin = resolve_bin(&config.bin)?;
        let identity = match &config.user {
            None => codejail_proc::NOBODY,
            Some(user) => codejail_proc::lookup_user(user)
                .ok_or_else(|| ConfigError::UnknownUser { user: user.clone() })?,
        };
        if identity.0 == 0 && !config.allow_root_user {
            return Err(ConfigError::RootUser {
                user: config.user.clone().unwrap_or_default(),
            });
        }
        note_user_not_honoured(&config);
        // A misspelled read path fails when the jail is made, not at its
        // first run.
        FsRules {
            read: config.read_paths.clone(),
            ..FsRules::empty()
        }
        .check()
        .map_err(ConfigError::ReadPath)?;
        // A root user (allowed) is root: nothing to share.
        let uids = match config.uids {
            Uids::Range(range) if identity.0 != 0 => Some(range),
            _ => None,
        };
        if let Some(range) = uids {
            check_range(range)?;
        }
        let uid_lock_dir = config
            .uid_lock_dir
            .clone()
            .unwrap_or_else(|| PathBuf::from(DEFAULT_UID_LOCK_DIR));
        let mut facts = if config.lang.has_safe_exec() {
            let policy = asking_policy(&config);
            // The probe is a run like any other: with a uid of its own
            // when runs get one.
            let switches = Probe::get()
                .plan(policy, Needs::default())
                .is_ok_and(|layers| layers.contains(Layer::Identity));
            let who = if switches {
                switched_identity(identity, uids, &uid_lock_dir)?
            } else {
                switched_identity(identity, None, &uid_lock_dir)?
            };
            // What the interpreter may read depends on the group and on
            // the uid only through the files that uid owns: no file is
            // owned by a uid of the range (no account has one), so one
            // answer holds for all of them.
            let cache_as = match (switches, uids) {
                (false, _) => "the caller".to_owned(),
                (true, Some(_)) => format!("any uid of a range, gid {}", identity.1),
                (true, None) => format!("uid {}, gid {}", identity.0, identity.1),
            };
            let asking = Asking {
                policy,
                identity: who.ids(),
                cache_as: &cache_as,
                apparmor_profile: config.apparmor_profile.as_deref(),
            };
            python_facts(&bin, asking)?
        } else {
            PythonFacts::default()
        };
        // The program itself, wherever it is (a Python interpreter's
        // directories are among its facts already).
        facts.read_exec.push(bin.clone());
        if let Ok(real) = std::fs::canonicalize(&bin) {
            facts.read_exec.push(real);
        }
        facts.read_exec.sort();
        facts.read_exec.dedup();
        Ok(Jail {
            name,
            config: JailConfig { bin, ..config },
            identity,
            uids,
            uid_lock_dir,
            facts,
        })
    }

    /// The jail's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The jail's configuration (the program resolved to an absolute path).
    pub fn config(&self) -> &JailConfig {
        &self.config
    }

    /// The jail's language.
    pub fn lang(&self) -> &Lang {
        &self.config.lang
    }

    /// The configured user's uid and gid (default `nobody`). When the
    /// caller can switch uid, every run's group is this gid, and its uid
    /// is this uid only without a range ([`Jail::uid_range`]).
    pub fn identity(&self) -> (u32, u32) {
        self.identity
    }

    /// The range each run's uid is taken from, when the caller can
    /// switch uid; `None` when every run is the user's uid (`uids =
    /// "off"`, or a root user).
    pub fn uid_range(&self) -> Option<UidRange> {
        self.uids
    }

    /// The identity of one run with `layers`: when it switches uid, a uid
    /// of its own (held until the returned value is dropped) or the
    /// user's; otherwise the user's ids, which nothing uses.
    pub(crate) fn run_identity(&self, layers: LayerSet) -> Result<RunIdentity, UidError> {
        if layers.contains(Layer::Identity) {
            self.switched_identity()
        } else {
            switched_identity(self.identity, None, &self.uid_lock_dir)
        }
    }

    /// The identity of a run that switches uid (a warm zygote's, for its
    /// whole life).
    pub(crate) fn switched_identity(&self) -> Result<RunIdentity, UidError> {
        switched_identity(self.identity, self.uids, &self.uid_lock_dir)
    }

    /// Whether `safe_exec` runs unconfined (CodeJail's unsafe mode).
    pub fn is_unsafe(&self) -> bool {
        self.config.confinement == Confinement::Unsafe
    }

    /// The paths the interpreter needs to read and execute (Landlock).
    pub fn read_exec_paths(&self) -> &[PathBuf] {
        &self.facts.read_exec
    }

    /// The layers a run with the default limits would get now, or why it
    /// would not run.
    ///
    /// # Errors
    /// As [`Jail::jail_code`] before it starts anything.
    pub fn planned_layers(&self) -> Result<LayerSet, JailError> {
        let limits = effective_limits(None, &[])?;
        self.plan(self.policy(self.is_unsafe())?, &limits)
    }

    /// The process layer's policy, or an error where `Auto` would leave
    /// the filesystem unconfined.
    pub(crate) fn policy(&self, unsafe_run: bool) -> Result<Policy, JailError> {
        if unsafe_run {
            return Ok(Policy::None);
        }
        match &self.config.confinement {
            Confinement::Unsafe => Ok(Policy::None),
            Confinement::Require(set) => Ok(Policy::Require(*set)),
            Confinement::Auto => {
                let probe = Probe::get();
                let landlock = probe.availability(Layer::Landlock).is_yes();
                let apparmor = self.config.apparmor_profile.is_some()
                    && probe.availability(Layer::AppArmor).is_yes();
                if landlock || apparmor {
                    Ok(Policy::Auto)
                } else {
                    Err(JailError::NoFilesystemConfinement {
                        jail: self.name.clone(),
                    })
                }
            }
        }
    }

    /// The policy of one call: the jail's, or the call's narrowing of it.
    pub(crate) fn call_policy(
        &self,
        call: &CallOptions,
        unsafe_run: bool,
        limits: &LimitSet,
    ) -> Result<Policy, JailError> {
        let policy = self.policy(unsafe_run)?;
        let Some(asked) = call.layers else {
            return Ok(policy);
        };
        let planned = if policy == Policy::None {
            LayerSet::empty()
        } else {
            self.plan(policy, limits)?
        };
        let narrows = !asked.is_empty() && asked.iter().all(|l| planned.contains(l));
        if !narrows {
            return Err(JailError::LayersNotNarrowed { asked, planned });
        }
        Ok(Policy::Only(asked))
    }

    /// The layers a run under `policy` with `limits` gets: the same plan
    /// the process layer makes when it starts the run. A tmp quota never
    /// makes a run fail for want of a mount namespace: `tmp/` is then not
    /// writable at all ([`tmp_of`]).
    fn plan(&self, policy: Policy, limits: &LimitSet) -> Result<LayerSet, JailError> {
        let needs = Needs {
            cgroup: limits.get(LimitName::Memory) > 0,
            cgroup_settings: false,
            mount_ns: false,
            apparmor_profile: self.config.apparmor_profile.is_some(),
            exec: self.config.allow_exec,
        };
        Ok(Probe::get().plan(policy, needs)?)
    }

    /// Runs code in a fresh jail directory (CodeJail's `jail_code`).
    ///
    /// # Errors
    /// [`JailError`] when the run could not be set up; a program that fails
    /// is a [`JailResult`] with a non-zero status.
    pub fn jail_code(&self, request: &JailCode) -> Result<JailResult, JailError> {
        self.run(request, self.is_unsafe(), &[])
    }

    /// `jail_code` with no confinement, for debugging; logs a warning on
    /// every call.
    ///
    /// # Errors
    /// As [`Jail::jail_code`].
    pub fn not_safe_jail_code(&self, request: &JailCode) -> Result<JailResult, JailError> {
        self.run(request, true, &[])
    }

    /// One cold run of `request`, with codejail's `own` files staged too.
    fn run(
        &self,
        request: &JailCode,
        unsafe_run: bool,
        own: &[(&str, &[u8])],
    ) -> Result<JailResult, JailError> {
        let call = &request.call;
        // At error level so that it exists whatever the level shown: every
        // line logged during the run names the jail and the slug.
        let span = tracing::error_span!("run", jail = %self.name, slug = %call.slug.as_deref().unwrap_or(""));
        let _entered = span.enter();
        let limits = effective_limits(call.limits_context.as_deref(), &call.limits)?;
        let policy = self.call_policy(call, unsafe_run, &limits)?;
        if policy == Policy::None {
            // Every unconfined run says so, whichever way it was asked for.
            tracing::warn!("running code WITHOUT confinement");
        }
        // The run's uid owns tmp/ when the run will switch to it.
        let layers = self.plan(policy, &limits)?;
        let (tmp, tmp_quota) = tmp_of(&limits, layers);
        let contents = Contents {
            code: request.code.as_deref().map(str::as_bytes),
            files: &call.files,
            extra: &call.extra_files,
            own,
        };
        contents.validate()?;
        // Held until every process of the run is reaped and its directory
        // removed (dropped at the end of this function).
        let who = self.run_identity(layers)?;
        let owner = layers.contains(Layer::Identity).then_some(who.ids());
        let jail = JailDir::create(&JailOptions {
            parent: self.config.jail_parent.clone(),
            owner,
            tmp_quota,
            tmp: tmp.clone(),
            prefix: Some(crate::leftovers::jail_prefix()),
        })?;
        jail.stage(&contents)?;

        let mut spawn = Spawn::new(&self.config.bin);
        spawn.args(self.config.lang.args());
        if request.code.is_some() {
            spawn.arg(codejail_fs::CODE_FILE);
        }
        spawn
            .args(&request.argv)
            .cwd(jail.path())
            .env("TMPDIR", jail.tmp())
            .stdin(request.stdin.clone())
            .limits(limits.to_proc())
            .policy(policy)
            .allow_exec(self.config.allow_exec)
            .identity(who.uid, who.gid)
            .fs_rules(self.fs_rules(&jail, &tmp));
        // No slug for the run's own span: this call's span, around it,
        // names the slug (and the jail) on every line already.
        if let Some(profile) = &self.config.apparmor_profile {
            spawn.apparmor_profile(profile);
        }
        if let Some(fd) = request.stdin_fd.as_ref().and_then(StdinFd::take) {
            spawn.stdin_fd(fd);
        }
        if let Some(cancel) = &call.cancel {
            if cancel.is_cancelled() {
                return Err(JailError::Cancelled);
            }
            let watch = cancel.watch().map_err(|e| {
                JailError::Spawn(codejail_proc::SpawnError::Parent {
                    step: "watch the cancel handle",
                    source: e,
                })
            })?;
            spawn.cancel_on(watch);
        }
        if let Some(m) = jail.tmp_mount() {
            spawn.tmpfs(tmpfs_of(m));
        }
        let outcome = spawn.run()?;
        jail.remove()?;
        drop(who);
        tracing::info!(
            status = outcome.status,
            killed_by = outcome.killed_by.map(|k| k.as_str()),
            wall_ms = outcome.wall.as_millis() as u64,
            "ran jailed code"
        );
        Ok(JailResult::cold(outcome))
    }

    /// The rules every run of this jail has, wherever it runs (cold, a
    /// zygote, a warm call): the system's, the interpreter's paths, and
    /// the jail's `read_paths`.
    pub(crate) fn base_rules(&self) -> FsRules {
        let mut rules = FsRules::default();
        rules.read_exec.extend(self.facts.read_exec.iter().cloned());
        rules.read.extend(self.config.read_paths.iter().cloned());
        rules
    }

    /// The filesystem rules of a run in `jail`: the interpreter's paths,
    /// the jail home read-only, its `tmp/` read-write when it is writable.
    pub(crate) fn fs_rules(&self, jail: &JailDir, tmp: &Tmp) -> FsRules {
        let mut rules = self.base_rules();
        rules.read.push(jail.path().to_owned());
        if *tmp == Tmp::Writable {
            rules.read_write.push(jail.tmp().to_owned());
        }
        rules
    }

    /// Python's `exec(code, globals)` in a jail (CodeJail's `safe_exec`):
    /// afterwards `globals` is updated with the code's JSON-safe globals, as
    /// CodeJail's `globals_dict.update(...)` does (a key the code deleted,
    /// or bound to something JSON cannot carry, keeps its value).
    ///
    /// Values `serde_json` cannot hold come back changed: `NaN` and
    /// `±Infinity` as `null`, lone surrogates as U+FFFD (integers of any
    /// size are exact). [`Jail::safe_exec_json`] gives the exact text.
    ///
    /// # Errors
    /// [`SafeExecError`] when the code raised, crashed or hit a limit (the
    /// message has the last traceback line and the kill reason), or the run
    /// could not be set up.
    pub fn safe_exec(
        &self,
        code: &str,
        globals: &mut Map<String, Value>,
        options: &SafeExecOptions,
    ) -> Result<(), SafeExecError> {
        crate::Runner::safe_exec(self, code, globals, options)
    }

    /// `safe_exec` on JSON text of Python's dialect (`NaN`, `Infinity`,
    /// integers of any size, `\ud800` escapes): `globals_json` is the
    /// caller's globals (one object), the answer the code's JSON-safe
    /// globals as Python's `json.dumps` writes them, exactly what CodeJail
    /// reads back before `globals_dict.update(json.loads(...))`.
    ///
    /// # Errors
    /// As [`Jail::safe_exec`]; [`JailError::BadGlobals`] when
    /// `globals_json` is not one JSON object.
    pub fn safe_exec_json(
        &self,
        code: &str,
        globals_json: &str,
        options: &SafeExecOptions,
    ) -> Result<String, SafeExecError> {
        let unsafe_run = self.is_unsafe();
        self.exec(code, globals_json, options, unsafe_run, false)
    }

    /// [`Jail::safe_exec_json`], answering with `globals_json` updated with
    /// the code's globals: what a CodeJail caller's `globals_dict` holds
    /// afterwards (the command line's `exec` prints this).
    ///
    /// # Errors
    /// As [`Jail::safe_exec_json`].
    pub fn safe_exec_json_updated(
        &self,
        code: &str,
        globals_json: &str,
        options: &SafeExecOptions,
    ) -> Result<String, SafeExecError> {
        let unsafe_run = self.is_unsafe();
        self.exec(code, globals_json, options, unsafe_run, true)
    }

    /// `safe_exec` with no confinement, for debugging; logs a warning on
    /// every call (CodeJail's `not_safe_exec`).
    ///
    /// # Errors
    /// As [`Jail::safe_exec`].
    pub fn not_safe_exec(
        &self,
        code: &str,
        globals: &mut Map<String, Value>,
        options: &SafeExecOptions,
    ) -> Result<(), SafeExecError> {
        let text = serde_json::to_string(globals).expect("a map always serializes");
        let result = self.exec(code, &text, options, true, false)?;
        update(globals, &result)
    }

    /// [`Jail::safe_exec_json_updated`] with no confinement, for debugging.
    ///
    /// # Errors
    /// As [`Jail::safe_exec_json`].
    pub fn not_safe_exec_json_updated(
        &self,
        code: &str,
        globals_json: &str,
        options: &SafeExecOptions,
    ) -> Result<String, SafeExecError> {
        self.exec(code, globals_json, options, true, true)
    }

    fn exec(
        &self,
        code: &str,
        globals_json: &str,
        options: &SafeExecOptions,
        unsafe_run: bool,
        merge: bool,
    ) -> Result<String, SafeExecError> {
        self.check_safe_exec()?;
        check_globals(globals_json)?;
        let (call, path_entries) = python_path_files(options)?;
        let driver = self.facts.driver.as_deref();
        let own: Vec<(&str, &[u8])> = driver
            .map(|bytecode| (codejail_pyexec::DRIVER_BYTECODE_FILE, bytecode))
            .into_iter()
            .collect();
        let request = JailCode {
            code: Some(codejail_pyexec::program(path_entries.len())),
            argv: Vec::new(),
            stdin: codejail_pyexec::payload(code, globals_json, &path_entries, merge),
            stdin_fd: None,
            call,
        };
        let result = self.run(&request, unsafe_run, &own)?;
        finish_safe_exec(result)
    }

    /// `safe_exec` needs a language that has it.
    pub(crate) fn check_safe_exec(&self) -> Result<(), JailError> {
        if self.config.lang.has_safe_exec() {
            Ok(())
        } else {
            Err(JailError::NoSafeExec {
                jail: self.name.clone(),
                lang: self.config.lang.name().to_owned(),
            })
        }
    }
}

/// A range in which an account has its uid, or a subordinate range lies,
/// is refused: a run would act as that account or share uids with that
/// user's containers.
fn check_range(range: UidRange) -> Result<(), ConfigError> {
    use std::path::Path;
    match uids::taken_in(range, Path::new("/etc/passwd"), Path::new("/etc/subuid")) {
        None => Ok(()),
        Some(Taken::Account { user, uid }) => Err(ConfigError::UidRangeTaken { range, user, uid }),
        Some(Taken::Delegated { user, first, count }) => Err(ConfigError::UidRangeDelegated {
            range,
            user,
            first,
            count,
        }),
    }
}

/// An unprivileged caller cannot switch to the configured user: the code
/// runs as the caller's own uid (in a user namespace where there is one).
/// Said once per process, as a warning (and by `codejail doctor`).
fn note_user_not_honoured(config: &JailConfig) {
    static SAID: std::sync::Once = std::sync::Once::new();
    let Some(user) = &config.user else { return };
    if Probe::get().can_setuid || config.confinement == Confinement::Unsafe {
        return;
    }
    SAID.call_once(|| {
        tracing::warn!(
            user = %user,
            "the configured sandbox user `{user}` cannot be used: this process cannot change uid (run as root, or with CAP_SETUID and CAP_SETGID); the code runs as this process's own uid"
        );
    });
}

/// What a run's `tmp/` is: writable under the quota of `limits` (a tmpfs
/// in the run's mount namespace), writable without a quota when DISK and
/// FILES are both 0, or, when the quota cannot be mounted (no mount
/// namespace here), not writable at all: the disk is never bounded by
/// `fsize` alone. Said once per process.
fn tmp_of(limits: &LimitSet, layers: LayerSet) -> (Tmp, Option<codejail_fs::TmpQuota>) {
    match limits.tmp_quota() {
        None => (Tmp::Writable, None),
        Some(quota) if layers.contains(Layer::MountNs) => (Tmp::Writable, Some(quota)),
        Some(_) => {
            static SAID: std::sync::Once = std::sync::Once::new();
            SAID.call_once(|| {
                let why = match Probe::get().availability(Layer::MountNs).why_not() {
                    Some(_) => "which this host does not give",
                    None => "which these runs do not have (an unsafe jail, or a policy without mountns)",
                };
                tracing::warn!(
                    "tmp/ is read-only: its disk quota needs a mount namespace, {why} (set disk = 0 and files = 0 to write without a quota)"
                );
            });
            (Tmp::ReadOnly, None)
        }
    }
}

/// The policy the interpreter is asked its facts under: the jail's (where
/// `auto` has no filesystem layer, runs fail later with that reason).
fn asking_policy(config: &JailConfig) -> Policy {
    match &config.confinement {
        Confinement::Unsafe => Policy::None,
        Confinement::Require(set) => Policy::Require(*set),
        Confinement::Auto => Policy::Auto,
    }
}

/// The call options of a `safe_exec` (its files, with the python_path
/// entries staged among them) and its `sys.path` entries.
pub(crate) fn python_path_files(
    options: &SafeExecOptions,
) -> Result<(CallOptions, Vec<String>), JailError> {
    let mut call = options.call.clone();
    let mut path_entries = Vec::new();
    for entry in &options.python_path {
        let name = entry
            .file_name()
            .ok_or_else(|| JailError::BadPythonPath {
                path: entry.clone(),
            })?
            .to_string_lossy()
            .into_owned();
        if !call.extra_files.iter().any(|(n, _)| *n == name) {
            call.files.push(entry.clone());
        }
        path_entries.push(name);
    }
    Ok((call, path_entries))
}

/// Checks that `globals_json` is one JSON object of Python's dialect (what
/// [`Jail::safe_exec_json`] takes).
///
/// # Errors
/// [`JailError::BadGlobals`] saying what is wrong and where.
pub fn check_globals(globals_json: &str) -> Result<(), JailError> {
    codejail_pyexec::json::check_object(globals_json)
        .map_err(|e| JailError::BadGlobals { why: e.to_string() })
}

/// CodeJail's `globals_dict.update(result)`.
pub(crate) fn update(globals: &mut Map<String, Value>, result: &str) -> Result<(), SafeExecError> {
    let map = codejail_pyexec::json::to_map(result)
        .map_err(|e| codejail_pyexec::ResultError::Malformed(e.to_string()))?;
    globals.extend(map);
    Ok(())
}

/// A `safe_exec` run's end: the result text read back, or the error with
/// the last traceback line, the status and the kill reason.
pub(crate) fn finish_safe_exec(result: JailResult) -> Result<String, SafeExecError> {
    // A full tmpfs is not a kill: the code met ENOSPC and went on.
    let killed = result
        .killed_by
        .filter(|k| *k != codejail_proc::KillReason::Disk);
    if result.status != 0 || killed.is_some() {
        let summary = codejail_pyexec::error_summary(&result.stderr);
        let mut message = excerpt(summary.as_bytes(), MESSAGE_MAX);
        if message.is_empty() {
            message = format!("the code ended with status {}", result.status);
        }
        if let Some(reason) = killed {
            message = format!("{message} (killed: {reason} limit)");
        }
        return Err(SafeExecError::Failed {
            message,
            result: Box::new(result),
        });
    }
    codejail_pyexec::parse_result(&result.stdout)?;
    let JailResult { stdout, .. } = result;
    Ok(String::from_utf8(stdout).expect("checked to be UTF-8"))
}

/// The jail's `tmp/` quota as the mount the run makes (`codejail-fs` and
/// `codejail-proc` do not depend on each other: the facade joins them).
pub(crate) fn tmpfs_of(m: codejail_fs::TmpMount) -> Tmpfs {
    Tmpfs {
        target: m.target,
        bytes: m.bytes,
        inodes: m.inodes,
        mode: m.mode,
        uid: m.uid,
        gid: m.gid,
    }
}
