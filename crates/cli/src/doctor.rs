//! `codejail doctor`: what this machine offers, and whether each
//! configured jail is confined and really runs. A health check: it exits 1
//! when any jail is not confined or cannot run. A missing optional layer
//! (a cgroup, the namespaces in a container) is said, with what gives it
//! back, but is no failure by itself.

use std::path::PathBuf;

use codejail::{Jail, JailCode, JailConfig, JailError, LayerSet};
use serde_json::{Value, json};

use crate::{Fail, settings};

/// What doctor found out about one jail.
struct Checked {
    name: String,
    config: JailConfig,
    /// The layers a run gets, when it would run at all.
    layers: Option<LayerSet>,
    /// Why it is not confined or does not run.
    problem: Option<String>,
    /// Worth knowing, not a failure.
    warnings: Vec<String>,
}

impl Checked {
    fn healthy(&self) -> bool {
        self.problem.is_none()
    }
}

pub(crate) fn doctor(config: Option<PathBuf>, as_json: bool) -> Result<u8, Fail> {
    let settings = settings(config)?;
    let probe = codejail::Probe::get();
    let checked: Vec<Checked> = settings
        .jails
        .iter()
        .map(|(name, config)| check(name, config))
        .collect();
    let healthy = checked.iter().all(Checked::healthy);
    // Why user namespaces are missing, read from the host (the errno of a
    // trial clone and the sysctls that decide it).
    let userns = codejail::UsernsHost::detect().diagnose(&codejail::this_program());
    if as_json {
        let layers: Vec<Value> = probe
            .layers
            .iter()
            .map(|(l, a)| match a {
                codejail::Availability::Yes => {
                    json!({"name": l.name(), "available": true, "reason": null})
                }
                codejail::Availability::No(why) => {
                    json!({"name": l.name(), "available": false, "reason": why})
                }
            })
            .collect();
        let jails: Vec<Value> = checked
            .iter()
            .map(|c| {
                json!({
                    "name": c.name,
                    "bin": c.config.bin,
                    "user": c.config.user,
                    "confined": c.healthy(),
                    "layers": c.layers.map(LayerSet::names).unwrap_or_default(),
                    "reason": c.problem,
                    "warnings": c.warnings,
                })
            })
            .collect();
        let out = json!({
            "healthy": healthy,
            "layers": layers,
            "landlock_abi": probe.landlock_abi,
            "landlock": probe.landlock_abi.map(|abi| json!({
                "abi": abi,
                "pinned_abi": codejail::LANDLOCK_ABI,
                "enforcement": probe.landlock_status.map(|e| e.as_str()),
                "unenforced": codejail::unenforced(abi),
            })),
            "cgroup": probe.cgroups.version(),
            "cgroups": cgroups_json(&probe.cgroups),
            "container": container_json(probe),
            "userns": {
                "available": userns.available(),
                "cause": format!("{:?}", userns.cause),
                "why": userns.why,
                "fix": (!userns.available()).then_some(&userns.fix),
            },
            "jails": jails,
        });
        say!("{out}");
    } else {
        say_part!("{probe}");
        if !userns.available() {
            say!("user namespaces: missing: {}", userns.why);
            say!("  to fix: {}", userns.fix);
        }
        say!();
        say_part!("{}", cgroups_text(&probe.cgroups));
        say_part!("{}", container_text(probe));
        say!();
        for c in &checked {
            let bin = c.config.bin.display();
            match (&c.problem, c.layers) {
                (None, Some(layers)) => {
                    say!(
                        "jail {} ({bin}): confined by {}; a trial run worked",
                        c.name,
                        layers.names().join(", ")
                    )
                }
                (problem, _) => say!(
                    "jail {} ({bin}): NOT confined or not running: {}",
                    c.name,
                    problem.as_deref().unwrap_or("unknown")
                ),
            }
            for w in &c.warnings {
                say!("jail {}: warning: {w}", c.name);
            }
        }
    }
    Ok(if healthy { 0 } else { 1 })
}

/// Configures the jail (which asks the interpreter, confined), plans its
/// layers, and runs a trial program in it.
fn check(name: &str, config: &JailConfig) -> Checked {
    let mut checked = Checked {
        name: name.to_owned(),
        config: config.clone(),
        layers: None,
        problem: None,
        warnings: Vec::new(),
    };
    if let Some(user) = &config.user {
        if !codejail::Probe::get().can_setuid {
            checked.warnings.push(format!(
                "user `{user}` cannot be used: this process cannot change uid (run as root, or with CAP_SETUID and CAP_SETGID); code runs as this process's own uid"
            ));
        }
    }
    let unavailable: Vec<&str> = {
        use codejail::Layer;
        let probe = codejail::Probe::get();
        [
            Layer::UserNs,
            Layer::PidNs,
            Layer::NetNs,
            Layer::MountNs,
            Layer::RootFs,
            Layer::IpcNs,
            Layer::UtsNs,
            Layer::Cgroup,
        ]
        .into_iter()
        .filter(|l| !probe.availability(*l).is_yes())
        .map(Layer::name)
        .collect()
    };
    if !unavailable.is_empty() && config.confinement != codejail::Confinement::Unsafe {
        checked.warnings.push(format!(
            "unavailable here: {} (why, and what gives them back: the lines above)",
            unavailable.join(", ")
        ));
    }
    if config.allow_exec {
        checked.warnings.push(
            "allow_exec = true: the code may start other programs (the no_exec layer is off)"
                .into(),
        );
    }
    let jail = match Jail::new(name, config.clone()) {
        Ok(jail) => jail,
        Err(e) => {
            checked.problem = Some(e.to_string());
            return checked;
        }
    };
    if jail.is_unsafe() {
        checked.problem = Some("policy is unsafe: code runs with no confinement".into());
        return checked;
    }
    match jail.planned_layers() {
        Ok(layers) if layers.is_empty() => {
            checked.problem = Some("no confinement layer would apply".into());
            return checked;
        }
        Ok(layers) => checked.layers = Some(layers),
        Err(e) => {
            checked.problem = Some(e.to_string());
            return checked;
        }
    }
    if let Err(problem) = trial(&jail) {
        checked.problem = Some(problem);
    }
    checked
}

/// A trial run: the program starts in a jail directory under the jail's
/// policy and identity. Python prints a word; another language is only
/// started (its program may want arguments; it must not fail to start).
fn trial(jail: &Jail) -> Result<(), String> {
    let (uid, gid) = jail.identity();
    let switches = codejail::Probe::get().can_setuid;
    let user = match (jail.uid_range().filter(|_| switches), &jail.config().user) {
        (Some(range), Some(user)) => {
            format!("a uid of {range} with the group of user {user} (gid {gid})")
        }
        (Some(range), None) => format!("a uid of {range} with gid {gid}"),
        (None, Some(user)) => format!("user {user} (uid {uid})"),
        (None, None) => format!("uid {uid}"),
    };
    let parent = jail
        .config()
        .jail_parent
        .clone()
        .unwrap_or_else(std::env::temp_dir);
    let request = if jail.lang().has_safe_exec() {
        JailCode::code("print('codejail doctor')")
    } else {
        JailCode::default()
    };
    match jail.jail_code(&request) {
        Ok(r) if !jail.lang().has_safe_exec() => {
            let _ = r;
            Ok(())
        }
        Ok(r) if r.status == 0 && r.stdout == b"codejail doctor\n" => Ok(()),
        Ok(r) => Err(format!(
            "a trial run of {} as {user} ended with status {}: {}",
            jail.config().bin.display(),
            r.status,
            codejail_excerpt(&r.stderr)
        )),
        Err(JailError::Spawn(codejail::SpawnError::Setup { step: "chdir", .. })) => Err(format!(
            "{user} cannot enter the jail directories made in {}; make the jail parent searchable by that user (mode 0711 or more) or set jail_parent",
            parent.display()
        )),
        Err(e) => Err(format!(
            "a trial run of {} as {user} with jails in {} could not start: {e}",
            jail.config().bin.display(),
            parent.display()
        )),
    }
}

/// What a fix for the cgroups is, when memory limits cannot be enforced.
fn cgroup_fix(cg: &codejail::Cgroups) -> Option<String> {
    if cg.has_memory() {
        return None;
    }
    let env = codejail::CGROUP_ENV;
    Some(match &cg.v2 {
        Some(_) => "hand the memory controller to the delegated cgroup: `Delegate=yes` (or `Delegate=memory pids`) in the systemd unit".to_owned(),
        None if cg.v2_missing.as_deref().is_some_and(|w| w.contains("read-only")) => format!(
            "give the container a writable cgroup tree of its own (a private cgroup namespace mounted read-write, as Podman's --systemd=always or a privileged container has), or run codejail on the host; {env} may name a writable delegated cgroup"
        ),
        None => format!(
            "run codejail as a systemd service with `Delegate=yes` in its [Service] section (or under `systemd-run -p Delegate=yes`), or set {env} to a cgroup v2 directory delegated to this process"
        ),
    })
}

/// The cgroup lines: the mode, where this process is, what is delegated
/// and what is missing, and the fix.
fn cgroups_text(cg: &codejail::Cgroups) -> String {
    use std::fmt::Write;
    let mut t = String::new();
    let mut line = |key: &str, value: String| {
        let _ = writeln!(t, "{key:<19} {value}");
    };
    line("cgroup mode", cg.mode.name().to_owned());
    let mut own: Vec<String> = cg
        .own_v2
        .iter()
        .map(|p| format!("{} (v2)", p.display()))
        .collect();
    own.extend(
        cg.v1_memory
            .iter()
            .map(|p| format!("{} (v1 memory)", p.display())),
    );
    line(
        "caller's cgroup",
        if own.is_empty() {
            "not found".into()
        } else {
            own.join("; ")
        },
    );
    match (&cg.v2, &cg.v2_missing) {
        (Some(d), _) => {
            let leaf = d
                .leaf
                .as_ref()
                .map(|l| format!("; this process in {}", l.display()))
                .unwrap_or_default();
            line(
                "delegated (v2)",
                format!(
                    "{}: {}{leaf}; runs' cgroups go there",
                    d.base.display(),
                    d.by.describe()
                ),
            );
            let mut controllers = if d.controllers.is_empty() {
                "none enabled".to_owned()
            } else {
                format!("enabled: {}", d.controllers.join(", "))
            };
            for (c, why) in &d.missing {
                let _ = write!(controllers, "; {c} missing: {why}");
            }
            line("v2 controllers", controllers);
        }
        (None, why) => line(
            "delegated (v2)",
            format!("none: {}", why.as_deref().unwrap_or("unknown")),
        ),
    }
    if cg.mode != codejail::CgroupMode::V2 {
        let v1 = match (&cg.v1_memory, &cg.v1_missing) {
            (Some(_), _) => format!(
                "memory: yes; pids: {}",
                if cg.v1_pids.is_some() { "yes" } else { "no" }
            ),
            (None, why) => format!("none: {}", why.as_deref().unwrap_or("unknown")),
        };
        line("v1 hierarchies", v1);
    }
    line(
        "memory limits",
        match cg.why_no_memory() {
            None if cg.v2_has("memory") => "yes (v2 memory controller)".into(),
            None => "yes (v1 memory hierarchy)".into(),
            Some(why) => format!("no (a run with one fails): {why}"),
        },
    );
    line(
        "process limits",
        if cg.has_pids() {
            "RLIMIT_NPROC, and pids.max".into()
        } else {
            "RLIMIT_NPROC only (no pids controller)".into()
        },
    );
    if let Some(fix) = cgroup_fix(cg) {
        line("cgroup fix", fix);
    }
    t
}

fn cgroups_json(cg: &codejail::Cgroups) -> Value {
    json!({
        "mode": cg.mode.name(),
        "own_v2": cg.own_v2,
        "delegated": cg.v2.as_ref().map(|d| json!({
            "base": d.base,
            "by": d.by.describe(),
            "leaf": d.leaf,
            "controllers": d.controllers,
            "missing": d.missing.iter().map(|(c, why)| json!({"controller": c, "reason": why})).collect::<Vec<_>>(),
        })),
        "delegated_missing": cg.v2_missing,
        "v1_memory": cg.v1_memory,
        "v1_pids": cg.v1_pids,
        "v1_missing": cg.v1_missing,
        "memory_limits": cg.has_memory(),
        "memory_missing": cg.why_no_memory(),
        "fix": cgroup_fix(cg),
    })
}

/// Signs that this process runs in a container, under a runtime's
/// default restrictions.
struct Container {
    /// Files and variables runtimes leave.
    markers: Vec<&'static str>,
    /// Seccomp filters on this process (`Seccomp: 2`).
    seccomp_filters: Option<u32>,
    /// Root without `CAP_SYS_ADMIN`.
    root_without_sys_admin: bool,
    /// Layers this process cannot have that a container's defaults take.
    lost: Vec<codejail::Layer>,
}

impl Container {
    fn look(probe: &codejail::Probe) -> Container {
        use codejail::Layer;
        let status = std::fs::read_to_string("/proc/self/status").unwrap_or_default();
        let field = |name: &str| {
            status.lines().find_map(|l| {
                l.strip_prefix(name)
                    .and_then(|v| v.strip_prefix(':'))
                    .map(|v| v.trim().to_owned())
            })
        };
        let mut markers = Vec::new();
        if std::path::Path::new("/.dockerenv").exists() {
            markers.push("/.dockerenv");
        }
        if std::path::Path::new("/run/.containerenv").exists() {
            markers.push("/run/.containerenv");
        }
        if std::env::var_os("container").is_some() {
            markers.push("$container");
        }
        if std::env::var_os("KUBERNETES_SERVICE_HOST").is_some() {
            markers.push("$KUBERNETES_SERVICE_HOST");
        }
        let seccomp_filters = (field("Seccomp").as_deref() == Some("2")).then(|| {
            field("Seccomp_filters")
                .and_then(|n| n.parse().ok())
                .unwrap_or(1)
        });
        let lost = Layer::ALL
            .into_iter()
            .filter(|l| {
                matches!(
                    l,
                    Layer::UserNs
                        | Layer::PidNs
                        | Layer::NetNs
                        | Layer::MountNs
                        | Layer::IpcNs
                        | Layer::UtsNs
                        | Layer::Cgroup
                )
            })
            .filter(|l| !probe.availability(*l).is_yes())
            .collect();
        Container {
            markers,
            seccomp_filters,
            root_without_sys_admin: probe.euid == 0 && !probe.cap_sys_admin,
            lost,
        }
    }

    fn namespaces_lost(&self) -> bool {
        self.lost.iter().any(|l| *l != codejail::Layer::Cgroup)
    }

    /// Whether this looks like a container: a runtime's marker, or a
    /// seccomp filter or a root without CAP_SYS_ADMIN where namespaces
    /// are refused.
    fn likely(&self) -> bool {
        !self.markers.is_empty()
            || ((self.seccomp_filters.is_some() || self.root_without_sys_admin)
                && self.namespaces_lost())
    }

    fn signs(&self) -> Vec<String> {
        let mut signs: Vec<String> = self.markers.iter().map(|m| (*m).to_owned()).collect();
        if let Some(n) = self.seccomp_filters {
            signs.push(format!("{n} seccomp filter(s) on this process"));
        }
        if self.root_without_sys_admin {
            signs.push("root without CAP_SYS_ADMIN".into());
        }
        signs
    }

    /// Which runtime options give the lost layers back.
    fn remedy(&self) -> Option<String> {
        let mut parts = Vec::new();
        if self.namespaces_lost() {
            parts.push(
                "namespaces: run the container with a seccomp profile that allows clone and clone3 with namespace flags, unshare, setns, mount and sethostname (Docker's default plus these; or `--security-opt seccomp=unconfined`), and on AppArmor hosts an AppArmor profile that allows `userns` and mounts (or `--security-opt apparmor=unconfined`); in Kubernetes, `securityContext.seccompProfile` (type Localhost with that profile, or Unconfined) and `securityContext.appArmorProfile` likewise. CAP_SYS_ADMIN and privileged mode are not needed: codejail makes its namespaces inside a user namespace of its own"
                    .to_owned(),
            );
        }
        if self.lost.contains(&codejail::Layer::Cgroup) {
            parts.push(format!(
                "cgroup (per-run memory limits): a writable cgroup tree of the container's own, or {} naming a writable delegated cgroup; without it, bound the whole container (`docker run --memory`, `resources.limits.memory`)",
                codejail::CGROUP_ENV
            ));
        }
        (!parts.is_empty()).then(|| format!("{} (README, \"Hosts\")", parts.join("; ")))
    }
}

fn container_text(probe: &codejail::Probe) -> String {
    let c = Container::look(probe);
    if !c.likely() {
        return format!("{:<19} no sign of one\n", "container");
    }
    let names: Vec<&str> = c.lost.iter().map(|l| l.name()).collect();
    let mut t = format!(
        "{:<19} likely ({})\n{:<19} {}\n",
        "container",
        c.signs().join("; "),
        "lost in it",
        if names.is_empty() {
            "nothing".to_owned()
        } else {
            names.join(", ")
        }
    );
    if let Some(remedy) = c.remedy() {
        t.push_str(&format!("{:<19} {remedy}\n", "to get them back"));
    }
    t
}

fn container_json(probe: &codejail::Probe) -> Value {
    let c = Container::look(probe);
    json!({
        "likely": c.likely(),
        "signs": c.signs(),
        "lost": c.lost.iter().map(|l| l.name()).collect::<Vec<_>>(),
        "remedy": c.remedy(),
    })
}

/// The end of the trial's stderr, bounded and escaped.
fn codejail_excerpt(stderr: &[u8]) -> String {
    let start = stderr.len().saturating_sub(300);
    String::from_utf8_lossy(&stderr[start..])
        .chars()
        .map(|c| if c.is_control() { ' ' } else { c })
        .collect::<String>()
        .trim()
        .to_owned()
}
