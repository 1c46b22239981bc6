//! Jails: configuration, the registry, `jail_code`, `safe_exec`.

use std::collections::HashMap;
use std::path::{Path, PathBuf};
use std::sync::{Arc, RwLock};

use codejail_fs::{Contents, JailDir, JailOptions};
use codejail_proc::{FsRules, Layer, LayerSet, Needs, Outcome, Policy, Probe, Spawn, Tmpfs};
use serde_json::{Map, Value};

use crate::error::{ConfigError, JailError, SafeExecError};
use crate::limits::{LimitName, effective_limits};

/// How a jail confines, as configured.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub enum Confinement {
    /// Every layer the machine offers; refuses to run where there is no
    /// filesystem confinement (Landlock, or AppArmor with a profile).
    #[default]
    Auto,
    /// Every layer the machine offers, and these must be among them.
    Require(codejail_proc::LayerSet),
    /// No confinement (CodeJail's `ALWAYS_BE_UNSAFE`): `safe_exec` becomes
    /// `not_safe_exec`. Logged loudly on every call.
    Unsafe,
}

impl std::str::FromStr for Confinement {
    type Err = String;

    /// `auto`, `unsafe`, or `require:landlock,seccomp`.
    fn from_str(s: &str) -> Result<Confinement, String> {
        match s {
            "auto" => Ok(Confinement::Auto),
            "unsafe" => Ok(Confinement::Unsafe),
            other => match other.strip_prefix("require:") {
                Some(list) => list
                    .parse()
                    .map(Confinement::Require)
                    .map_err(|e| e.to_string()),
                None => Err(format!(
                    "unknown policy `{other}`; use auto, unsafe or require:LAYER,..."
                )),
            },
        }
    }
}

/// What a jail is made of.
#[derive(Clone, Debug, PartialEq, Eq)]
pub struct JailConfig {
    /// The interpreter or program.
    pub bin: PathBuf,
    /// The sandbox user (name or uid) for a caller that can switch uid;
    /// default `nobody`.
    pub user: Option<String>,
    /// The confinement policy.
    pub confinement: Confinement,
    /// An AppArmor profile to switch to, where the kernel has AppArmor.
    pub apparmor_profile: Option<String>,
    /// Where jail directories are made (default: the system temp dir).
    pub jail_parent: Option<PathBuf>,
}

impl JailConfig {
    /// A jail of `bin` with the defaults.
    pub fn new(bin: impl Into<PathBuf>) -> JailConfig {
        JailConfig {
            bin: bin.into(),
            user: None,
            confinement: Confinement::Auto,
            apparmor_profile: None,
            jail_parent: None,
        }
    }
}

/// A configured jail.
#[derive(Debug)]
pub struct Jail {
    name: String,
    config: JailConfig,
    pub(crate) lang_args: Vec<&'static str>,
    pub(crate) identity: (u32, u32),
    /// Read and execute for the interpreter: derived once, at configure.
    read_exec: Vec<PathBuf>,
    /// The `safe_exec` driver's bytecode for the interpreter, compiled at
    /// configure.
    driver: Option<Bytecode>,
}

/// Bytes shown by their length.
struct Bytecode(Vec<u8>);

impl std::fmt::Debug for Bytecode {
    fn fmt(&self, f: &mut std::fmt::Formatter<'_>) -> std::fmt::Result {
        write!(f, "<{} bytes of bytecode>", self.0.len())
    }
}

/// One `jail_code` request (CodeJail's arguments).
#[derive(Clone, Debug, Default)]
pub struct JailCode {
    /// The code, written as `jailed_code`; the argv then starts with it.
    pub code: Option<String>,
    /// Files, directories and links copied into the jail.
    pub files: Vec<PathBuf>,
    /// Files created from bytes: (name, contents).
    pub extra_files: Vec<(String, Vec<u8>)>,
    /// Arguments (after `jailed_code`; without code, the first one is the
    /// file to run).
    pub argv: Vec<String>,
    /// Bytes on stdin.
    pub stdin: Vec<u8>,
    /// The limit override context (CodeJail's `limit_overrides_context`).
    pub limits_context: Option<String>,
    /// Limits for this call only.
    pub limits: Vec<(LimitName, u64)>,
    /// A label for the logs.
    pub slug: Option<String>,
    /// Overrides the jail's confinement for this call: exactly these layers
    /// (`Policy::Only`), or none. For escape tests and `codejail selftest`,
    /// which show what each layer stops on its own.
    pub policy: Option<Policy>,
}

/// The result of `jail_code`.
#[derive(Clone, Debug)]
pub struct JailResult {
    /// Exit code, or minus the signal number.
    pub status: i32,
    /// stdout bytes.
    pub stdout: Vec<u8>,
    /// stderr bytes.
    pub stderr: Vec<u8>,
    /// Everything else: kill reason, timings, truncation, layers.
    pub outcome: Outcome,
}

/// Options of `safe_exec` beyond the code and the globals.
#[derive(Clone, Debug, Default)]
pub struct SafeExecOptions {
    /// Files copied into the jail.
    pub files: Vec<PathBuf>,
    /// Files created from bytes.
    pub extra_files: Vec<(String, Vec<u8>)>,
    /// Directories or zip files put on `sys.path`: staged like files
    /// unless an extra file of that name exists.
    pub python_path: Vec<PathBuf>,
    /// The limit override context.
    pub limits_context: Option<String>,
    /// Limits for this call only.
    pub limits: Vec<(LimitName, u64)>,
    /// A label for the logs.
    pub slug: Option<String>,
    /// Overrides the jail's confinement for this call (see
    /// [`JailCode::policy`]).
    pub policy: Option<Policy>,
}

static JAILS: RwLock<Option<HashMap<String, Arc<Jail>>>> = RwLock::new(None);

/// Configures a jail called `name` running `bin` (as `user`, when the
/// caller can switch uid) with automatic confinement, and records it
/// (CodeJail's `configure`).
///
/// # Errors
/// [`ConfigError`]: the interpreter is missing, the user unknown.
pub fn configure(
    name: &str,
    bin: impl Into<PathBuf>,
    user: Option<&str>,
) -> Result<Arc<Jail>, ConfigError> {
    let mut config = JailConfig::new(bin);
    config.user = user.map(str::to_owned);
    configure_with(name, config)
}

/// Configures a jail from a full [`JailConfig`] and records it.
///
/// # Errors
/// [`ConfigError`]: the interpreter is missing, the user unknown.
pub fn configure_with(name: &str, config: JailConfig) -> Result<Arc<Jail>, ConfigError> {
    let jail = Arc::new(Jail::new(name, config)?);
    JAILS
        .write()
        .unwrap_or_else(|e| e.into_inner())
        .get_or_insert_with(HashMap::new)
        .insert(name.to_owned(), jail.clone());
    Ok(jail)
}

/// The jail configured as `name` (CodeJail's `get_codejail`).
///
/// # Errors
/// [`JailError::NotConfigured`].
pub fn get_codejail(name: &str) -> Result<Arc<Jail>, JailError> {
    JAILS
        .read()
        .unwrap_or_else(|e| e.into_inner())
        .as_ref()
        .and_then(|m| m.get(name).cloned())
        .ok_or_else(|| JailError::NotConfigured {
            name: name.to_owned(),
        })
}

/// Whether a jail called `name` is configured.
pub fn is_configured(name: &str) -> bool {
    get_codejail(name).is_ok()
}

/// CodeJail's `jail_code(command, ...)`: [`Jail::jail_code`] on the jail
/// configured as `name`.
///
/// # Errors
/// [`JailError`].
pub fn jail_code(name: &str, request: &JailCode) -> Result<JailResult, JailError> {
    get_codejail(name)?.jail_code(request)
}

/// CodeJail's `safe_exec(code, globals, ...)` on the jail configured as
/// `name`.
///
/// # Errors
/// [`SafeExecError`].
pub fn safe_exec(
    name: &str,
    code: &str,
    globals: &mut Map<String, Value>,
    options: &SafeExecOptions,
) -> Result<(), SafeExecError> {
    get_codejail(name)
        .map_err(SafeExecError::Jail)?
        .safe_exec(code, globals, options)
}

/// CodeJail's `not_safe_exec` on the jail configured as `name`.
///
/// # Errors
/// [`SafeExecError`].
pub fn not_safe_exec(
    name: &str,
    code: &str,
    globals: &mut Map<String, Value>,
    options: &SafeExecOptions,
) -> Result<(), SafeExecError> {
    get_codejail(name)
        .map_err(SafeExecError::Jail)?
        .not_safe_exec(code, globals, options)
}

impl Jail {
    fn new(name: &str, config: JailConfig) -> Result<Jail, ConfigError> {
        let bin = resolve_bin(&config.bin)?;
        let identity = match &config.user {
            None => codejail_proc::NOBODY,
            Some(user) => codejail_proc::lookup_user(user)
                .ok_or_else(|| ConfigError::UnknownUser { user: user.clone() })?,
        };
        let is_python = name == "python"
            || bin
                .file_name()
                .is_some_and(|f| f.to_string_lossy().starts_with("python"));
        let lang_args = if is_python {
            vec!["-E", "-B"]
        } else {
            Vec::new()
        };
        let (read_exec, driver) = if is_python {
            python_facts(&bin)?
        } else {
            (Vec::new(), None)
        };
        Ok(Jail {
            name: name.to_owned(),
            config: JailConfig { bin, ..config },
            lang_args,
            identity,
            read_exec,
            driver: driver.map(Bytecode),
        })
    }

    /// The jail's name.
    pub fn name(&self) -> &str {
        &self.name
    }

    /// The jail's configuration (the interpreter resolved).
    pub fn config(&self) -> &JailConfig {
        &self.config
    }

    /// Whether `safe_exec` runs unconfined (CodeJail's unsafe mode).
    pub fn is_unsafe(&self) -> bool {
        self.config.confinement == Confinement::Unsafe
    }

    /// The paths the interpreter needs to read and execute (Landlock).
    pub fn read_exec_paths(&self) -> &[PathBuf] {
        &self.read_exec
    }

    /// The process layer's policy, or an error where `Auto` would leave
    /// the filesystem unconfined.
    pub fn policy(&self, unsafe_run: bool) -> Result<Policy, JailError> {
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

    /// Runs code in a fresh jail directory (CodeJail's `jail_code`).
    ///
    /// # Errors
    /// [`JailError`] when the run could not be set up; a program that fails
    /// is a [`JailResult`] with a non-zero status.
    pub fn jail_code(&self, request: &JailCode) -> Result<JailResult, JailError> {
        self.run(request, self.is_unsafe())
    }

    /// `jail_code` with no confinement, for debugging; logs a warning on
    /// every call.
    ///
    /// # Errors
    /// As [`Jail::jail_code`].
    pub fn not_safe_jail_code(&self, request: &JailCode) -> Result<JailResult, JailError> {
        tracing::warn!(jail = %self.name, "running code WITHOUT confinement");
        self.run(request, true)
    }

    /// The layers a run would get now, or why it would not run.
    ///
    /// # Errors
    /// As [`Jail::jail_code`] before it starts anything.
    pub fn planned_layers(&self) -> Result<LayerSet, JailError> {
        self.plan(self.policy(self.is_unsafe())?, &effective_limits(None, &[]))
    }

    /// The layers a run under `policy` with `limits` gets: the same plan
    /// the process layer makes when it starts the run.
    fn plan(&self, policy: Policy, limits: &crate::Limits) -> Result<LayerSet, JailError> {
        let needs = Needs {
            cgroup: limits.get(LimitName::Memory) > 0,
            mount_ns: limits.tmp_quota().is_some(),
            apparmor_profile: self.config.apparmor_profile.is_some(),
        };
        Ok(Probe::get().plan(policy, needs)?)
    }

    fn run(&self, request: &JailCode, unsafe_run: bool) -> Result<JailResult, JailError> {
        let policy = match request.policy {
            Some(policy) => policy,
            None => self.policy(unsafe_run)?,
        };
        let limits = effective_limits(request.limits_context.as_deref(), &request.limits);
        let proc_limits = limits.to_proc();
        // The sandbox uid owns tmp/ when the run will switch to it.
        let layers = self.plan(policy, &limits)?;
        let owner = layers.contains(Layer::Identity).then_some(self.identity);
        let contents = Contents {
            code: request.code.as_deref().map(str::as_bytes),
            files: &request.files,
            extra: &request.extra_files,
        };
        contents.validate()?;
        let jail = JailDir::create(&JailOptions {
            parent: self.config.jail_parent.clone(),
            owner,
            tmp_quota: limits.tmp_quota(),
        })?;
        jail.stage(&contents)?;

        let mut spawn = Spawn::new(&self.config.bin);
        spawn.args(&self.lang_args);
        if request.code.is_some() {
            spawn.arg(codejail_fs::CODE_FILE);
        }
        spawn
            .args(&request.argv)
            .cwd(jail.path())
            .env("TMPDIR", jail.tmp())
            .stdin(request.stdin.clone())
            .limits(proc_limits)
            .policy(policy)
            .identity(self.identity.0, self.identity.1)
            .fs_rules(self.fs_rules(&jail))
            .slug(request.slug.clone().unwrap_or_default());
        if let Some(profile) = &self.config.apparmor_profile {
            spawn.apparmor_profile(profile);
        }
        if let Some(m) = jail.tmp_mount() {
            spawn.tmpfs(Tmpfs {
                target: m.target,
                bytes: m.bytes,
                inodes: m.inodes,
                mode: m.mode,
                uid: m.uid,
                gid: m.gid,
            });
        }
        let outcome = spawn.run()?;
        jail.remove()?;
        Ok(JailResult {
            status: outcome.status,
            stdout: outcome.stdout.clone(),
            stderr: outcome.stderr.clone(),
            outcome,
        })
    }

    /// The filesystem rules of a run in `jail`: the interpreter's paths,
    /// the jail home read-only, its `tmp/` read-write.
    pub(crate) fn fs_rules(&self, jail: &JailDir) -> FsRules {
        let mut rules = FsRules::default();
        rules.read_exec.extend(self.read_exec.iter().cloned());
        rules.read.push(jail.path().to_owned());
        rules.read_write.push(jail.tmp().to_owned());
        rules
    }

    /// Python's `exec(code, globals)` in a jail (CodeJail's `safe_exec`):
    /// afterwards the JSON-safe globals replace `globals`.
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
        if self.is_unsafe() {
            return self.not_safe_exec(code, globals, options);
        }
        self.exec(code, globals, options, false)
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
        tracing::warn!(jail = %self.name, "running code WITHOUT confinement (not_safe_exec)");
        self.exec(code, globals, options, true)
    }

    fn exec(
        &self,
        code: &str,
        globals: &mut Map<String, Value>,
        options: &SafeExecOptions,
        unsafe_run: bool,
    ) -> Result<(), SafeExecError> {
        let (files, path_entries) = Jail::python_path_files(options)?;
        let mut extra_files = options.extra_files.clone();
        if let Some(bytecode) = &self.driver {
            extra_files.push((
                codejail_pyexec::DRIVER_BYTECODE_FILE.to_owned(),
                bytecode.0.clone(),
            ));
        }
        let request = JailCode {
            code: Some(codejail_pyexec::program().to_owned()),
            files,
            extra_files,
            argv: Vec::new(),
            stdin: codejail_pyexec::payload(code, globals, &path_entries),
            limits_context: options.limits_context.clone(),
            limits: options.limits.clone(),
            slug: options.slug.clone(),
            policy: options.policy,
        };
        let result = self
            .run(&request, unsafe_run)
            .map_err(SafeExecError::Jail)?;
        finish_safe_exec(result.outcome, globals)
    }

    /// The files and `sys.path` entries of a `safe_exec` call.
    pub(crate) fn python_path_files(
        options: &SafeExecOptions,
    ) -> Result<(Vec<PathBuf>, Vec<String>), SafeExecError> {
        let mut files = options.files.clone();
        let mut path_entries = Vec::new();
        for entry in &options.python_path {
            let name = entry
                .file_name()
                .ok_or_else(|| {
                    SafeExecError::Jail(JailError::BadPythonPath {
                        path: entry.clone(),
                    })
                })?
                .to_string_lossy()
                .into_owned();
            if !options.extra_files.iter().any(|(n, _)| *n == name) {
                files.push(entry.clone());
            }
            path_entries.push(name);
        }
        Ok((files, path_entries))
    }
}

/// A `safe_exec` run's end: the globals read back, or the error with the
/// last traceback line and the kill reason.
pub(crate) fn finish_safe_exec(
    outcome: Outcome,
    globals: &mut Map<String, Value>,
) -> Result<(), SafeExecError> {
    if outcome.status != 0 || outcome.killed_by.is_some() {
        let mut message = codejail_pyexec::error_summary(&outcome.stderr);
        if let Some(reason) = outcome.killed_by {
            message = format!("{message} (killed: {reason} limit)")
                .trim()
                .to_owned();
        }
        if message.is_empty() {
            message = format!("the code ended with status {}", outcome.status);
        }
        return Err(SafeExecError::Failed {
            message,
            outcome: Box::new(outcome),
        });
    }
    *globals = codejail_pyexec::parse_result(&outcome.stdout, codejail_pyexec::MAX_RESULT_BYTES)?;
    Ok(())
}

/// The interpreter as an absolute path: a path is made absolute, a bare
/// name is looked up on `PATH`.
fn resolve_bin(bin: &Path) -> Result<PathBuf, ConfigError> {
    let missing = || ConfigError::InterpreterMissing {
        bin: bin.to_owned(),
    };
    let found = if bin.components().count() > 1 {
        std::path::absolute(bin).ok().filter(|p| p.is_file())
    } else {
        std::env::var_os("PATH").and_then(|path| {
            std::env::split_paths(&path)
                .map(|d| d.join(bin))
                .find(|p| p.is_file())
        })
    };
    found.ok_or_else(missing)
}

/// What a jail needs to know of a Python interpreter, asked of the
/// interpreter itself, once: the directories it reads (its real location,
/// `sys.prefix`, `sys.base_prefix`, `sys.exec_prefix`), and the
/// `safe_exec` driver compiled to its bytecode, if it can say which.
fn python_facts(bin: &Path) -> Result<(Vec<PathBuf>, Option<Vec<u8>>), ConfigError> {
    let out = std::process::Command::new(bin)
        .args(["-E", "-B", "-c", codejail_pyexec::probe_script()])
        .env_clear()
        .output()
        .map_err(|e| ConfigError::InterpreterFailed {
            bin: bin.to_owned(),
            why: e.to_string(),
        })?;
    let facts = out
        .status
        .success()
        .then(|| codejail_pyexec::parse_probe(&out.stdout))
        .flatten();
    let Some((mut paths, bytecode)) = facts else {
        let why = String::from_utf8_lossy(&out.stderr).trim().to_owned();
        return Err(ConfigError::InterpreterFailed {
            bin: bin.to_owned(),
            why,
        });
    };
    if let Ok(real) = std::fs::canonicalize(bin) {
        paths.extend(real.parent().map(Path::to_owned));
    }
    paths.extend(bin.parent().map(Path::to_owned));
    paths.sort();
    paths.dedup();
    Ok((paths, bytecode))
}
