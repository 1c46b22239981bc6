//! `codejail api`: the machine interface. One JSON request on stdin, one
//! JSON response on stdout, for programs (the Python package `codejail-rs`
//! drives every call through it), not for people.
//!
//! # Protocol, version 1
//!
//! The request is one JSON object, at most 256 MiB (read to the end of
//! stdin). Every field but `v`, `op` and `jail.bin` may be left out.
//!
//! ```text
//! {
//!   "v": 1,
//!   "op": "jail_code" | "safe_exec",
//!   "jail": {
//!     "name": "python",                  label in logs and messages
//!     "bin": "/usr/bin/python3",         the program (a bare name is looked up on PATH)
//!     "user": "sandbox" | null,          sandbox user, name or uid (root callers)
//!     "lang": {"name": "python3", "args": ["-E", "-B"], "safe_exec": true},
//!                                        default: python3; "safe_exec": true needs
//!                                        exactly python3's args
//!     "policy": "auto" | "unsafe" | "require:landlock,seccomp",
//!     "apparmor_profile": null, "jail_parent": null, "allow_root_user": false,
//!     "allow_exec": false                the code may start other programs
//!   },
//!   "code": "print(1)" | null,           written as `jailed_code`, argv then starts with it
//!   "argv": ["a", "b"],
//!   "stdin_b64": "<base64>",             jail_code only
//!   "files": ["/path/file", "/path/dir"],  copied in (links stay links)
//!   "extra_files": [["name", "<base64>"]],
//!   "python_path": ["lib.zip"],          safe_exec only: staged like files unless an
//!                                        extra file has that name, added to sys.path
//!   "globals_json": "{\"x\": 1}",        safe_exec only: the globals, as the TEXT of one
//!                                        object in Python's JSON dialect (NaN, Infinity,
//!                                        integers of any size, \ud800 escapes)
//!   "limits": {"cpu": 1, "realtime": 1, "vmem": 0, "fsize": 0, "nproc": 15},
//!                                        the effective limits, applied exactly; a limit
//!                                        left out has its built-in default (see the
//!                                        README's table); names are case-insensitive
//!   "slug": "course-42/p1" | null,
//!   "unsafe": false                      no confinement (not_safe_exec), logged loudly
//! }
//! ```
//!
//! The response, when the request was understood (exit code 0, also when the
//! code failed or was killed):
//!
//! ```text
//! {
//!   "v": 1,
//!   "status": 0,                         exit code, or minus the signal (CodeJail's);
//!                                        null when safe_exec's result was unreadable
//!   "stdout_b64": "...", "stderr_b64": "...",
//!   "killed_by": null | "realtime" | "cpu" | "memory" | "output" | "disk" | "cancelled",
//!   "truncated": {"stdout": false, "stderr": false},
//!   "wall_ms": 17, "cpu_ms": 12, "max_rss_kib": 9000, "layers": ["identity", ...],
//!   "landlock": "full" | "partial" | null,  how much of what codejail asks of
//!                                        Landlock the kernel enforced (null: no Landlock)
//!   "pid": 1234,                         the run's supervisor (as in "Killing process N")
//!   "jail_dir": "/tmp/codejail-.../codejail-...",  where it ran (removed since)
//!   "globals_json": "{\"x\": 2}",        safe_exec that succeeded: json_safe(namespace)
//!                                        as Python's json.dumps writes it
//!   "codejail_message": "Couldn't execute jailed code: stdout: b'', stderr: b'...' with status code: 1",
//!   "message": "ValueError: ...",        safe_exec that failed: CodeJail's exception text,
//!                                        and the short one (last traceback line, kill)
//!   "logs": [{"level": "warn", "message": "Killing process 1234: ...", "fields": {...}}]
//! }
//! ```
//!
//! No request at all (stdin closed before its first byte) is not an
//! error: the command exits 0 and prints nothing. A caller may start the
//! command ahead of its next call (it learns what the machine offers
//! meanwhile) and close its stdin if that call never comes.
//!
//! A request that is not understood (malformed JSON, an unknown field or
//! op, a limit out of range, a bad file name, a missing file, globals that
//! are not one object, a larger request than 256 MiB) exits 2; a jail that
//! cannot be set up (interpreter missing, unknown user, a required layer
//! missing, no filesystem confinement) exits 3. Either way stdout holds
//! `{"v": 1, "error": "<one line>", "kind": "usage" | "setup"}`.
//!
//! SIGTERM, SIGINT and SIGHUP end the run, remove its jail and exit 128 +
//! the signal, after the response (`killed_by: "cancelled"`); before a
//! request has come, they exit 128 + the signal at once. The command
//! also asks the kernel for SIGTERM when the process that started it dies,
//! so an abandoned call ends its run. `--config` plays no part: the
//! request says everything.
//!
//! Each request gets a private parent directory for its jail,
//! `<jail_parent or $TMPDIR>/codejail-<pid>.<start>-api` (mode 0711, named
//! so that `codejail gc` removes it after a killed command), which is how
//! the response knows `jail_dir`. The one under `$TMPDIR` is made while
//! the command waits for its request.

use std::collections::BTreeMap;
use std::io::Read;
use std::path::{Path, PathBuf};
use std::sync::{Arc, Mutex};

use base64::Engine;
use codejail::{
    CallOptions, Confinement, JailCode, JailConfig, JailError, JailResult, Lang, LimitName,
    SafeExecError, SafeExecOptions,
};
use serde::Deserialize;
use serde_json::{Map, Value, json};

/// The protocol version this command speaks.
const VERSION: u64 = 1;
/// The largest request read.
const MAX_REQUEST: u64 = 256 << 20;

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct Request {
    #[allow(dead_code)]
    v: u64,
    op: Op,
    jail: JailSpec,
    #[serde(default)]
    code: Option<String>,
    #[serde(default)]
    argv: Vec<String>,
    #[serde(default)]
    stdin_b64: Option<String>,
    #[serde(default)]
    files: Vec<PathBuf>,
    #[serde(default)]
    extra_files: Vec<(String, String)>,
    #[serde(default)]
    python_path: Vec<PathBuf>,
    #[serde(default)]
    globals_json: Option<String>,
    #[serde(default)]
    limits: BTreeMap<String, u64>,
    #[serde(default)]
    slug: Option<String>,
    #[serde(default, rename = "unsafe")]
    unconfined: bool,
}

#[derive(Clone, Copy, Deserialize, PartialEq, Eq)]
#[serde(rename_all = "snake_case")]
enum Op {
    JailCode,
    SafeExec,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct JailSpec {
    #[serde(default)]
    name: Option<String>,
    bin: PathBuf,
    #[serde(default)]
    user: Option<String>,
    #[serde(default)]
    lang: Option<LangSpec>,
    #[serde(default)]
    policy: Option<String>,
    #[serde(default)]
    apparmor_profile: Option<String>,
    #[serde(default)]
    jail_parent: Option<PathBuf>,
    #[serde(default)]
    allow_root_user: bool,
    #[serde(default)]
    allow_exec: bool,
}

#[derive(Deserialize)]
#[serde(deny_unknown_fields)]
struct LangSpec {
    name: String,
    #[serde(default)]
    args: Vec<String>,
    #[serde(default)]
    safe_exec: bool,
}

/// Why a request got no answer: `usage` (exit 2) or `setup` (exit 3).
struct Refusal {
    code: u8,
    message: String,
}

fn usage(message: impl std::fmt::Display) -> Refusal {
    Refusal {
        code: 2,
        message: one_line(&message.to_string()),
    }
}

fn setup(message: impl std::fmt::Display) -> Refusal {
    Refusal {
        code: 3,
        message: one_line(&message.to_string()),
    }
}

fn one_line(text: &str) -> String {
    text.split_whitespace().collect::<Vec<_>>().join(" ")
}

fn jail_refusal(e: JailError) -> Refusal {
    match e {
        JailError::NoSafeExec { .. } => usage(e),
        e if e.is_bad_input() => usage(e),
        e => setup(e),
    }
}

/// `codejail api`: answers one request; the exit code is 0, 2 or 3.
pub(crate) fn api(stop: &crate::Stop) -> u8 {
    // The caller going away ends the run (SIGTERM, which `Stop` handles).
    // A parent that died before this line is seen by the pipe instead.
    let _ = rustix::process::set_parent_process_death_signal(Some(rustix::process::Signal::TERM));
    // What this machine offers is asked of the kernel while the request is
    // read and parsed (a few namespaces tried; about 2 ms).
    let probe = std::thread::spawn(|| {
        codejail::Probe::get();
    });
    // The usual jail parent is made while waiting too.
    let mut ready = Parent::create(None).ok();
    let ready_path = ready.as_ref().map(|p| p.path.clone());
    let waiting = std::sync::atomic::AtomicBool::new(true);
    let answer = std::thread::scope(|scope| {
        // Stopped while waiting for a request (a process started ahead):
        // exit now rather than answer a later request with "cancelled".
        let watcher = scope.spawn(|| {
            while waiting.load(std::sync::atomic::Ordering::SeqCst) {
                if let Some(signal) = stop.signal() {
                    if let Some(path) = &ready_path {
                        let _ = std::fs::remove_dir(path);
                    }
                    std::process::exit(128 + signal);
                }
                std::thread::park_timeout(std::time::Duration::from_millis(20));
            }
        });
        let request = read_request();
        waiting.store(false, std::sync::atomic::Ordering::SeqCst);
        watcher.thread().unpark();
        request
    })
    .and_then(|request| {
        let _ = probe.join();
        answer(request, stop, &mut ready)
    });
    if let Some(parent) = ready {
        parent.remove();
    }
    match answer {
        // No request at all: a process started ahead of a call that never
        // came (its caller exited). Nothing to answer.
        Err(Refusal { code: 0, .. }) => 0,
        Ok(response) => {
            crate::print_line(&response.to_string());
            0
        }
        Err(Refusal { code, message }) => {
            let kind = if code == 2 { "usage" } else { "setup" };
            crate::print_line(&json!({"v": VERSION, "error": message, "kind": kind}).to_string());
            code
        }
    }
}

fn read_request() -> Result<Request, Refusal> {
    let mut bytes = Vec::new();
    std::io::stdin()
        .lock()
        .take(MAX_REQUEST + 1)
        .read_to_end(&mut bytes)
        .map_err(|e| usage(format!("cannot read the request on stdin: {e}")))?;
    if bytes.is_empty() {
        return Err(Refusal {
            code: 0,
            message: String::new(),
        });
    }
    if bytes.len() as u64 > MAX_REQUEST {
        return Err(usage(format!(
            "the request is larger than {} MiB; stage big inputs as files",
            MAX_REQUEST >> 20
        )));
    }
    let value: Value = serde_json::from_slice(&bytes)
        .map_err(|e| usage(format!("the request is not JSON: {e}")))?;
    match value.get("v").and_then(Value::as_u64) {
        Some(VERSION) => {}
        Some(v) => {
            return Err(usage(format!(
                "protocol version {v} is not spoken here; this codejail speaks version {VERSION}"
            )));
        }
        None => return Err(usage("the request has no protocol version; add \"v\": 1")),
    }
    Request::deserialize(value).map_err(|e| usage(format!("malformed request: {e}")))
}

fn b64_decode(text: &str, what: &str) -> Result<Vec<u8>, Refusal> {
    base64::engine::general_purpose::STANDARD
        .decode(text)
        .map_err(|e| usage(format!("{what} is not base64: {e}")))
}

fn b64(bytes: &[u8]) -> String {
    base64::engine::general_purpose::STANDARD.encode(bytes)
}

fn lang(spec: Option<&LangSpec>) -> Result<Lang, Refusal> {
    let Some(spec) = spec else {
        return Ok(Lang::python3());
    };
    if spec.safe_exec {
        let python = Lang::python3();
        if spec.args != python.args() {
            return Err(usage(format!(
                "language `{}` has safe_exec, which runs Python with {:?}; it cannot take {:?}",
                spec.name,
                python.args(),
                spec.args
            )));
        }
        return Ok(python);
    }
    if spec.name == "other" && spec.args.is_empty() {
        return Ok(Lang::other());
    }
    Ok(Lang::custom(spec.name.clone(), spec.args.clone()))
}

fn limits(asked: &BTreeMap<String, u64>) -> Result<Vec<(LimitName, u64)>, Refusal> {
    asked
        .iter()
        .map(|(name, &value)| {
            let name: LimitName = name.parse().map_err(usage)?;
            Ok((name, name.check(value).map_err(usage)?))
        })
        .collect()
}

fn answer(
    request: Request,
    stop: &crate::Stop,
    ready: &mut Option<Parent>,
) -> Result<Value, Refusal> {
    let spec = &request.jail;
    let mut config = JailConfig::new(&spec.bin);
    config.lang = lang(spec.lang.as_ref())?;
    config.user = spec.user.clone();
    config.allow_root_user = spec.allow_root_user;
    config.allow_exec = spec.allow_exec;
    config.apparmor_profile = spec.apparmor_profile.clone();
    if let Some(policy) = &spec.policy {
        config.confinement = policy
            .parse::<Confinement>()
            .map_err(|e| usage(format!("jail policy: {e}")))?;
    }
    if request.unconfined {
        config.confinement = Confinement::Unsafe;
    }
    let limits = limits(&request.limits)?;
    let extra_files = request
        .extra_files
        .iter()
        .map(|(name, data)| Ok((name.clone(), b64_decode(data, "an extra file")?)))
        .collect::<Result<Vec<_>, Refusal>>()?;
    let stdin = match &request.stdin_b64 {
        Some(text) => b64_decode(text, "stdin_b64")?,
        None => Vec::new(),
    };
    if request.op == Op::JailCode
        && (request.globals_json.is_some() || !request.python_path.is_empty())
    {
        return Err(usage(
            "globals_json and python_path belong to safe_exec, not jail_code",
        ));
    }
    if request.op == Op::SafeExec && (!request.argv.is_empty() || !stdin.is_empty()) {
        return Err(usage(
            "argv and stdin_b64 belong to jail_code; safe_exec takes its input in globals_json",
        ));
    }

    let parent = match (spec.jail_parent.as_deref(), ready.take()) {
        (None, Some(parent)) => parent,
        (asked, made) => {
            if let Some(made) = made {
                made.remove();
            }
            Parent::create(asked)?
        }
    };
    config.jail_parent = Some(parent.path.clone());
    let name = spec.name.clone().unwrap_or_else(|| "python".into());
    let captured = Arc::new(Mutex::new(Captured::default()));
    let subscriber = {
        use tracing_subscriber::layer::SubscriberExt;
        tracing_subscriber::registry()
            .with(tracing_subscriber::filter::LevelFilter::INFO)
            .with(Capture {
                state: captured.clone(),
                parent: parent.path.clone(),
            })
    };
    let outcome = tracing::subscriber::with_default(subscriber, || {
        let jail = codejail::Jail::new(name, config).map_err(setup)?;
        let call = CallOptions {
            files: request.files.clone(),
            extra_files,
            limits_context: None,
            limits,
            slug: request.slug.clone(),
            layers: None,
            cancel: Some(stop.cancel.clone()),
        };
        Ok::<_, Refusal>(match request.op {
            Op::JailCode => {
                let run = JailCode {
                    code: request.code.clone(),
                    argv: request.argv.clone(),
                    stdin,
                    call,
                    ..JailCode::default()
                };
                // An unconfined run is said on every call, as not_safe_exec's is.
                let r = if jail.is_unsafe() {
                    jail.not_safe_jail_code(&run)
                } else {
                    jail.jail_code(&run)
                }
                .map_err(jail_refusal)?;
                Ran::Code(r)
            }
            Op::SafeExec => {
                let code = request.code.clone().unwrap_or_default();
                let globals = request.globals_json.as_deref().unwrap_or("{}");
                let options = SafeExecOptions {
                    python_path: request.python_path.clone(),
                    call,
                };
                match jail.safe_exec_json(&code, globals, &options) {
                    Ok(text) => Ran::Exec(Ok(text)),
                    Err(SafeExecError::Jail(e)) => return Err(jail_refusal(e)),
                    Err(e) => Ran::Exec(Err(e)),
                }
            }
        })
    });
    parent.remove();
    let ran = outcome?;
    let captured = std::mem::take(&mut *captured.lock().unwrap_or_else(|e| e.into_inner()));
    let mut response = Map::new();
    response.insert("v".into(), json!(VERSION));
    match ran {
        Ran::Code(r) => describe(&mut response, &r),
        Ran::Exec(Ok(text)) => {
            response.insert("status".into(), json!(0));
            response.insert("killed_by".into(), Value::Null);
            response.insert("globals_json".into(), json!(text));
        }
        Ran::Exec(Err(e)) => {
            match e.result() {
                Some(r) => describe(&mut response, r),
                None => {
                    response.insert("status".into(), Value::Null);
                    response.insert("killed_by".into(), Value::Null);
                }
            }
            response.insert("codejail_message".into(), json!(e.codejail_message()));
            response.insert("message".into(), json!(e.to_string()));
        }
    }
    response.insert("pid".into(), json!(captured.pid));
    response.insert(
        "jail_dir".into(),
        json!(captured.jail_dir.map(|p| p.display().to_string())),
    );
    response.insert("logs".into(), Value::Array(captured.logs));
    Ok(Value::Object(response))
}

enum Ran {
    Code(JailResult),
    Exec(Result<String, SafeExecError>),
}

fn describe(response: &mut Map<String, Value>, r: &JailResult) {
    let fields = json!({
        "status": r.status,
        "stdout_b64": b64(&r.stdout),
        "stderr_b64": b64(&r.stderr),
        "killed_by": r.killed_by.map(|k| k.as_str()),
        "truncated": {"stdout": r.truncated.stdout, "stderr": r.truncated.stderr},
        "wall_ms": r.wall.as_millis() as u64,
        "cpu_ms": r.cpu.as_millis() as u64,
        "max_rss_kib": r.max_rss_kib,
        "layers": r.layers.names(),
        "landlock": r.landlock.map(|e| e.as_str()),
    });
    if let Value::Object(map) = fields {
        response.extend(map);
    }
}

/// The request's own jail parent: `codejail-<pid>.<start>-api`, the
/// naming `codejail gc` reads, so that a killed command's is removed.
struct Parent {
    path: PathBuf,
}

impl Parent {
    fn create(under: Option<&Path>) -> Result<Parent, Refusal> {
        use std::os::unix::fs::{DirBuilderExt, PermissionsExt};
        let base = under.map_or_else(std::env::temp_dir, Path::to_owned);
        let pid = std::process::id();
        let start = start_time(pid).unwrap_or(0);
        let path = base.join(format!("codejail-{pid}.{start}-api"));
        let made = std::fs::DirBuilder::new().mode(0o711).create(&path);
        made.and_then(|()| std::fs::set_permissions(&path, std::fs::Permissions::from_mode(0o711)))
            .map_err(|e| {
                setup(format!(
                    "cannot create a jail parent in {}: {e}",
                    base.display()
                ))
            })?;
        Ok(Parent { path })
    }

    fn remove(&self) {
        let _ = std::fs::remove_dir(&self.path);
    }
}

/// A process's start time in clock ticks after boot (field 22 of
/// `/proc/<pid>/stat`), as `codejail gc` reads owners.
fn start_time(pid: u32) -> Option<u64> {
    let stat = std::fs::read_to_string(format!("/proc/{pid}/stat")).ok()?;
    let after = &stat[stat.rfind(')')? + 1..];
    after.split_whitespace().nth(19)?.parse().ok()
}

/// What the run logged, its supervisor's pid and its jail directory.
#[derive(Default)]
struct Captured {
    logs: Vec<Value>,
    pid: Option<i64>,
    jail_dir: Option<PathBuf>,
}

/// A tracing layer that keeps the run's log lines for the response.
struct Capture {
    state: Arc<Mutex<Captured>>,
    parent: PathBuf,
}

/// A span's or an event's fields as JSON.
#[derive(Default)]
struct Fields(Map<String, Value>);

impl tracing::field::Visit for Fields {
    fn record_str(&mut self, field: &tracing::field::Field, value: &str) {
        self.0.insert(field.name().into(), json!(value));
    }
    fn record_i64(&mut self, field: &tracing::field::Field, value: i64) {
        self.0.insert(field.name().into(), json!(value));
    }
    fn record_u64(&mut self, field: &tracing::field::Field, value: u64) {
        self.0.insert(field.name().into(), json!(value));
    }
    fn record_bool(&mut self, field: &tracing::field::Field, value: bool) {
        self.0.insert(field.name().into(), json!(value));
    }
    fn record_debug(&mut self, field: &tracing::field::Field, value: &dyn std::fmt::Debug) {
        self.0
            .insert(field.name().into(), json!(format!("{value:?}")));
    }
}

impl<S> tracing_subscriber::Layer<S> for Capture
where
    S: tracing::Subscriber + for<'a> tracing_subscriber::registry::LookupSpan<'a>,
{
    fn on_new_span(
        &self,
        attrs: &tracing::span::Attributes<'_>,
        id: &tracing::span::Id,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut fields = Fields::default();
        attrs.record(&mut fields);
        if let Some(span) = ctx.span(id) {
            span.extensions_mut().insert(fields);
        }
        // The process layer's span opens once the jail directory is made
        // and staged: the request's parent holds it alone.
        let meta = attrs.metadata();
        if meta.name() == "run" && meta.target().starts_with("codejail_proc") {
            let found = std::fs::read_dir(&self.parent)
                .ok()
                .and_then(|mut dir| dir.next())
                .and_then(Result::ok)
                .map(|entry| entry.path());
            let mut state = self.state.lock().unwrap_or_else(|e| e.into_inner());
            if state.jail_dir.is_none() {
                state.jail_dir = found;
            }
        }
    }

    fn on_record(
        &self,
        id: &tracing::span::Id,
        values: &tracing::span::Record<'_>,
        ctx: tracing_subscriber::layer::Context<'_, S>,
    ) {
        let mut recorded = Fields::default();
        values.record(&mut recorded);
        if let Some(pid) = recorded.0.get("pid").and_then(Value::as_i64) {
            self.state.lock().unwrap_or_else(|e| e.into_inner()).pid = Some(pid);
        }
        if let Some(span) = ctx.span(id) {
            let mut ext = span.extensions_mut();
            match ext.get_mut::<Fields>() {
                Some(fields) => fields.0.extend(recorded.0),
                None => ext.insert(recorded),
            }
        }
    }

    fn on_event(&self, event: &tracing::Event<'_>, ctx: tracing_subscriber::layer::Context<'_, S>) {
        let mut all = Map::new();
        if let Some(scope) = ctx.event_scope(event) {
            for span in scope.from_root() {
                if let Some(fields) = span.extensions().get::<Fields>() {
                    all.extend(fields.0.clone());
                }
            }
        }
        let mut own = Fields::default();
        event.record(&mut own);
        let message = own
            .0
            .remove("message")
            .and_then(|m| m.as_str().map(str::to_owned))
            .unwrap_or_default();
        all.extend(own.0);
        let level = event.metadata().level().as_str().to_ascii_lowercase();
        self.state
            .lock()
            .unwrap_or_else(|e| e.into_inner())
            .logs
            .push(json!({"level": level, "message": message, "fields": all}));
    }
}
