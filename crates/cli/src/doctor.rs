//! `codejail doctor`: what this machine offers, and whether each
//! configured jail is confined and really runs. A health check: it exits 1
//! when any jail is not confined or cannot run.

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
            "cgroup": probe.cgroups.version(),
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
