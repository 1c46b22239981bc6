//! The Python package (`python/`, distribution `codejail-rs`): built and
//! installed with pip into a fresh virtualenv, then its tests; and its
//! bench (`python/bench/bench.py`) after the Rust one.

use std::path::{Path, PathBuf};
use std::process::Command;

use crate::{root, run};

/// The interpreter the virtualenvs are made from.
const PYTHON: &str = "/usr/bin/python3";

fn target(name: &str) -> PathBuf {
    root().join("target").join(name)
}

/// A new virtualenv at `dir` (an old one is removed first).
fn fresh_venv(dir: &Path) -> Result<(), String> {
    if dir.exists() {
        std::fs::remove_dir_all(dir).map_err(|e| format!("remove {}: {e}", dir.display()))?;
    }
    let mut venv = Command::new(PYTHON);
    venv.args(["-m", "venv"]).arg(dir);
    run(venv)
}

fn pip(venv: &Path, args: &[&str]) -> Result<(), String> {
    let mut pip = Command::new(venv.join("bin/python"));
    pip.args(["-m", "pip", "--disable-pip-version-check"])
        .args(args);
    run(pip)
}

/// `pip install ./python` (maturin builds the `codejail` binary into the
/// wheel) into a fresh virtualenv with pytest and Django, then the
/// package's tests, against the installed package. As root, the jail runs
/// the sandbox virtualenv as its user (CodeJail's CODEJAIL_TEST_VENV and
/// CODEJAIL_TEST_USER); strace shows the spawn path of a 2 GB caller.
pub(crate) fn tests(test_env: &[(String, String)]) -> Result<(), String> {
    let venv = target("python-ci-venv");
    fresh_venv(&venv)?;
    pip(&venv, &["install", "-q", "pytest", "Django"])?;
    let package = root().join("python");
    pip(&venv, &["install", "-q", &package.display().to_string()])?;
    let mut pytest = Command::new(venv.join("bin/pytest"));
    pytest
        .args(["-q", "-p", "no:cacheprovider", "."])
        .current_dir(package.join("tests"))
        .env_remove("CODEJAIL_BIN")
        .env_remove("CODEJAIL_SERVICE_URL");
    for (key, value) in test_env {
        match key.as_str() {
            "CODEJAIL_SANDBOX_PYTHON" => {
                let venv_dir = Path::new(value).parent().and_then(Path::parent);
                if let Some(dir) = venv_dir {
                    pytest.env("CODEJAIL_TEST_VENV", dir);
                }
            }
            "CODEJAIL_SANDBOX_USER" => {
                pytest.env("CODEJAIL_TEST_USER", value);
            }
            _ => {}
        }
    }
    run(pytest)
}

/// The Python rows of `cargo xtask bench`: the package one-shot against
/// the bare interpreter, the Rust library (`examples/lib_worker`) and,
/// when pip can install it, edx-codejail, all in one interleaved run.
pub(crate) fn bench(args: &[String]) -> Result<(), String> {
    let quick = args.iter().any(|a| a == "--quick");
    if let Some(i) = args.iter().position(|a| a == "--only") {
        let only = args.get(i + 1).map(String::as_str).unwrap_or("");
        if !"package python edx-codejail".contains(only) {
            return Ok(());
        }
    }
    let mut worker = crate::cargo();
    worker.args([
        "build",
        "-q",
        "--release",
        "-p",
        "codejail-cli",
        "--example",
        "lib_worker",
    ]);
    run(worker)?;
    let venv = target("python-bench-venv");
    if !venv.join("bin/python").is_file() {
        fresh_venv(&venv)?;
    }
    let package = root().join("python").display().to_string();
    pip(
        &venv,
        &["install", "-q", "--force-reinstall", "--no-deps", &package],
    )?;
    let edx = target("edx-codejail-venv");
    let has_edx = edx.join("bin/python").is_file() && {
        let check = Command::new(edx.join("bin/python"))
            .args(["-c", "import codejail.safe_exec"])
            .output();
        check.is_ok_and(|o| o.status.success())
    };
    let has_edx = has_edx
        || (fresh_venv(&edx).is_ok() && pip(&edx, &["install", "-q", "edx-codejail"]).is_ok());
    if !has_edx {
        eprintln!("xtask: edx-codejail could not be installed; its rows are left out");
    }
    let mut bench = Command::new(venv.join("bin/python"));
    bench
        .arg(root().join("python/bench/bench.py"))
        .arg("--lib-worker")
        .arg(target("release/examples/lib_worker"));
    if has_edx {
        bench.arg("--edx-python").arg(edx.join("bin/python"));
    }
    if quick {
        bench.arg("--quick");
    }
    run(bench)
}
