//! What a jail needs to know of its program: where it is, and for Python,
//! which directories it reads and the `safe_exec` driver's bytecode.
//!
//! The interpreter is asked once, **confined**: a run under the jail's own
//! policy and identity, with a deadline, reading only the system's
//! directories and its own. The answer is cached per caller (see
//! [`cache`]), so a command that configures a jail and runs code once
//! starts the interpreter once.

use std::path::{Path, PathBuf};
use std::time::Duration;

use codejail_proc::{FsRules, Limits, Policy, Spawn};

use crate::error::{ConfigError, ProbeError, excerpt};

mod cache;

/// The program as an absolute path: a path is made absolute, a bare name
/// is looked up on `PATH`.
pub(crate) fn resolve_bin(bin: &Path) -> Result<PathBuf, ConfigError> {
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

/// What a jail knows of a Python interpreter.
#[derive(Clone, Debug, Default, PartialEq, Eq)]
pub(crate) struct PythonFacts {
    /// The directories it reads: `sys.prefix`, `sys.base_prefix`,
    /// `sys.exec_prefix`, `sys.base_exec_prefix`, and where the program is.
    pub read_exec: Vec<PathBuf>,
    /// The `safe_exec` driver compiled to its bytecode, if it can say
    /// which bytecode it runs.
    pub driver: Option<Vec<u8>>,
}

/// How the interpreter is asked: as the jail would run it.
#[derive(Clone, Copy, Debug)]
pub(crate) struct Asking<'a> {
    /// The jail's policy (`Policy::None` for an unsafe jail).
    pub policy: Policy,
    /// The uid and gid of the probe's run.
    pub identity: (u32, u32),
    /// Who the answer holds for, in the cache's key: the uid and gid, or
    /// any uid of a range with the gid (see `Jail::new`).
    pub cache_as: &'a str,
    /// The jail's AppArmor profile.
    pub apparmor_profile: Option<&'a str>,
}

/// The interpreter's facts: from the cache, or asked of it (confined) and
/// cached.
pub(crate) fn python_facts(bin: &Path, asking: Asking<'_>) -> Result<PythonFacts, ConfigError> {
    let key = cache::Key::of(bin, asking.cache_as);
    if let Some(facts) = key.as_ref().and_then(cache::load) {
        return Ok(facts);
    }
    let facts = ask(bin, asking)?;
    if let Some(key) = &key {
        cache::store(key, &facts);
    }
    Ok(facts)
}

/// Where a program and the tree it belongs to are: `/usr/bin/python3` ->
/// `/usr/bin/python3` and `/usr`; a virtualenv's `bin/python` -> the
/// virtualenv. The probe may read these, and the system's directories.
fn own_tree(bin: &Path) -> Vec<PathBuf> {
    let mut paths = vec![bin.to_owned()];
    if let Ok(real) = std::fs::canonicalize(bin) {
        paths.push(real);
    }
    let trees: Vec<PathBuf> = paths
        .iter()
        .filter_map(|p| p.parent()?.parent())
        .filter(|tree| tree.parent().is_some())
        .map(Path::to_owned)
        .collect();
    paths.extend(trees);
    paths.sort();
    paths.dedup();
    paths
}

/// Runs the probe script in a jail of its own and reads its answer.
fn ask(bin: &Path, asking: Asking<'_>) -> Result<PythonFacts, ConfigError> {
    let failed = |source| ConfigError::InterpreterFailed {
        bin: bin.to_owned(),
        uid: asking.identity.0,
        source,
    };
    let mut rules = FsRules::default();
    rules.read_exec.extend(own_tree(bin));
    let mut spawn = Spawn::new(bin);
    spawn
        .args(["-E", "-B", "-c", codejail_pyexec::probe_script()])
        .cwd("/")
        .policy(asking.policy)
        .identity(asking.identity.0, asking.identity.1)
        .fs_rules(rules)
        .limits(Limits {
            cpu_secs: Some(10),
            wall: Some(Duration::from_secs(10)),
            nproc: Some(15),
            output_bytes: Some(4 << 20),
            ..Limits::default()
        })
        .slug("interpreter probe");
    if let Some(profile) = asking.apparmor_profile {
        spawn.apparmor_profile(profile);
    }
    let out = spawn.run().map_err(|e| match e {
        // The host's, not the interpreter's: said as a run would say it.
        e @ codejail_proc::SpawnError::LayerUnavailable { .. } => ConfigError::Layer(e),
        e => failed(ProbeError::Spawn(e)),
    })?;
    if out.status != 0 || out.killed_by.is_some() {
        let mut stderr = excerpt(&out.stderr, 500).trim().to_owned();
        if let Some(reason) = out.killed_by {
            stderr = format!("{stderr} (killed: {reason} limit)");
        }
        return Err(failed(ProbeError::Failed {
            status: out.status,
            stderr,
        }));
    }
    let (mut paths, driver) =
        codejail_pyexec::parse_probe(&out.stdout).ok_or_else(|| failed(ProbeError::Unreadable))?;
    // The root directory is never one of an interpreter's prefixes: an
    // answer that says so would open the whole filesystem to Landlock.
    if paths
        .iter()
        .any(|p| !p.is_absolute() || p.parent().is_none())
    {
        return Err(failed(ProbeError::Unreadable));
    }
    paths.extend(own_tree(bin));
    paths.sort();
    paths.dedup();
    Ok(PythonFacts {
        read_exec: paths,
        driver,
    })
}
