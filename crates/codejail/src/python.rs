//! What a jail needs to know of its program: where it is, and for Python,
//! which directories it reads and the `safe_exec` driver's bytecode.

use std::path::{Path, PathBuf};

use crate::error::{ConfigError, ProbeError, excerpt};

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
#[derive(Clone, Debug, Default)]
pub(crate) struct PythonFacts {
    /// The directories it reads: its real location, `sys.prefix`,
    /// `sys.base_prefix`, `sys.exec_prefix`, `sys.base_exec_prefix`.
    pub read_exec: Vec<PathBuf>,
    /// The `safe_exec` driver compiled to its bytecode, if it can say
    /// which bytecode it runs.
    pub driver: Option<Vec<u8>>,
}

/// Asks the interpreter itself, once.
pub(crate) fn python_facts(bin: &Path) -> Result<PythonFacts, ConfigError> {
    let failed = |source| ConfigError::InterpreterFailed {
        bin: bin.to_owned(),
        source,
    };
    let out = std::process::Command::new(bin)
        .args(["-E", "-B", "-c", codejail_pyexec::probe_script()])
        .env_clear()
        .output()
        .map_err(|e| failed(ProbeError::Start(e)))?;
    if !out.status.success() {
        return Err(failed(ProbeError::Failed {
            status: out.status.code().unwrap_or(-1),
            stderr: excerpt(&out.stderr, 500).trim().to_owned(),
        }));
    }
    let (mut paths, driver) =
        codejail_pyexec::parse_probe(&out.stdout).ok_or_else(|| failed(ProbeError::Unreadable))?;
    if let Ok(real) = std::fs::canonicalize(bin) {
        paths.extend(real.parent().map(Path::to_owned));
    }
    paths.extend(bin.parent().map(Path::to_owned));
    paths.sort();
    paths.dedup();
    Ok(PythonFacts {
        read_exec: paths,
        driver,
    })
}
