//! Project automation: `cargo xtask <command>`.
//!
//! One small binary, in the style of rust-analyzer's xtask. Its
//! dependencies are the project's own AppArmor crate, the `codejail`
//! command's clap definitions with `clap_mangen` (the man pages) and
//! `serde_json` (to read cargo's `--message-format=json`). Each command
//! prints what it runs and stops at the first failure.

use std::env;
use std::path::{Path, PathBuf};
use std::process::{Command, ExitCode};

mod deb;
mod man;
mod profile;
mod python;
mod sandbox;

const USAGE: &str = "\
usage: cargo xtask <command>

commands:
  ci               fmt --check, clippy -D warnings, test (as root, then again
                   as an unprivileged user), the Python package (pip install
                   ./python into a fresh virtualenv, pytest), bench --quick, the AppArmor profile for
                   /usr/bin/python3 through apparmor_parser, deny (licenses
                   bans sources), deb --install-test
  install-profile  --python PATH [--name NAME] [--extra-read DIR]...
                   [--jail-parent DIR] [--complain] [--dry-run]
                   render, validate, write /etc/apparmor.d/<dotted path>, load
                   --codejail PATH [--dry-run]: the profile granting user
                   namespaces to the codejail program (Ubuntu's
                   kernel.apparmor_restrict_unprivileged_userns = 1)
  remove-profile   --python PATH | --codejail PATH
                                       unload and delete the profile
  profile-mode     enforce|complain --python PATH [--name NAME] ... [--dry-run]
  gen-profile      regenerate apparmor/ (the default layout's profile)
  deb              [--install-test]
                   the .deb (cargo-deb; installed if missing) in
                   target/debian/; --install-test (as root, as CI does):
                   dpkg -i it, run the installed codejail doctor and
                   selftest with its settings, dpkg --purge it
  man              regenerate crates/cli/man/ (the man pages, from the
                   clap definitions of the codejail command)
  bench            [--quick] [--only ROW] [--no-soak] [--shuffle] [--settle MS]
                   codejail against the bare interpreter (see
                   crates/codejail/benches/bench.rs), then the Python
                   package (python/bench/bench.py); --quick fits in a minute
  bench --service  [--quick] [--requests N]
                   codejail serve over HTTP on loopback, 1/2/4/8 callers,
                   against the bare interpreter (crates/service/benches)
  setup-sandbox    [--venv PATH] [--user NAME] [--requirements FILE]
                   [--python PATH] [--dry-run]
                   sandbox user and group, a virtualenv with copied binaries,
                   its requirements, precompiled bytecode; prints the settings
  help             this text

environment:
  CODEJAIL_EXPECT_LAYERS               layers the tests must find (as the caller)
  CODEJAIL_EXPECT_LAYERS_UNPRIVILEGED  the same for the unprivileged pass";

fn main() -> ExitCode {
    let args: Vec<String> = env::args().skip(1).collect();
    let result = match args.first().map(String::as_str) {
        Some("ci") => ci(),
        Some("install-profile") => profile::install(&args[1..]),
        Some("remove-profile") => profile::remove(&args[1..]),
        Some("profile-mode") => profile::mode(&args[1..]),
        Some("gen-profile") => profile::generate(),
        Some("man") => man::generate(),
        Some("deb") => deb::deb(&args[1..]),
        Some("setup-sandbox") => sandbox::setup(&args[1..]),
        Some("bench") => bench(&args[1..]),
        Some("help" | "-h" | "--help") | None => {
            println!("{USAGE}");
            Ok(())
        }
        Some(other) => Err(format!("unknown command `{other}`; run `cargo xtask help`")),
    };
    match result {
        Ok(()) => ExitCode::SUCCESS,
        Err(msg) => {
            eprintln!("xtask: {msg}");
            ExitCode::FAILURE
        }
    }
}

fn root() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR"))
        .parent()
        .expect("xtask lives in the workspace root")
        .to_owned()
}

fn cargo() -> Command {
    let mut cmd = Command::new(env::var_os("CARGO").unwrap_or_else(|| "cargo".into()));
    cmd.current_dir(root());
    cmd
}

fn run(mut cmd: Command) -> Result<(), String> {
    let shown = format!("{cmd:?}").replace('"', "");
    eprintln!("\n$ {shown}");
    let status = cmd
        .status()
        .map_err(|e| format!("could not start `{shown}`: {e}"))?;
    if status.success() {
        Ok(())
    } else {
        Err(format!("`{shown}` failed ({status})"))
    }
}

fn ci() -> Result<(), String> {
    let test_env = prerequisites()?;
    let mut fmt = cargo();
    fmt.args(["fmt", "--all", "--check"]);
    run(fmt)?;

    let mut clippy = cargo();
    clippy.args([
        "clippy",
        "--workspace",
        "--all-targets",
        "--",
        "-D",
        "warnings",
    ]);
    run(clippy)?;

    let mut test = cargo();
    test.args(["test", "--workspace"]).envs(test_env.clone());
    run(test)?;
    unprivileged_tests(&test_env)?;
    python::tests(&test_env)?;

    // Timings are printed, never judged: this fails only on errors.
    bench(&["--quick".to_owned()])?;

    let mut dry_run = cargo();
    dry_run.args([
        "xtask",
        "install-profile",
        "--dry-run",
        "--python",
        "/usr/bin/python3",
        "--codejail",
    ]);
    // The user-namespace profile of the codejail program just built.
    // (`cargo test --workspace` built it above).
    let target =
        env::var_os("CARGO_TARGET_DIR").map_or_else(|| root().join("target"), |d| root().join(d));
    dry_run.arg(target.join("debug/codejail"));
    run(dry_run)?;

    ensure_cargo_tool("deny")?;
    let mut deny = cargo();
    // The advisories database cannot be fetched here, so only these checks.
    deny.args([
        "deny",
        "--all-features",
        "check",
        "licenses",
        "bans",
        "sources",
    ]);
    run(deny)?;

    // The package a fresh machine installs: built, installed, its
    // doctor and selftest run, removed again.
    deb::install_test()
}

/// What the tests need beyond cargo and Python: Debian's `apparmor`
/// (apparmor_parser validates every rendered profile), `python3-venv`
/// (the sandbox virtualenv), `haproxy` (the service's load-balancer
/// test), `systemd` (`systemd-analyze verify` of the unit in deploy/),
/// `iproute2` and `util-linux` (the service tests' network namespaces);
/// then the sandbox virtualenv with numpy and matplotlib, and a test
/// virtualenv with `jsonschema` and `requests` (the service's refusals
/// against the real jsonschema; a client as edx-platform's). As root they
/// are installed; otherwise the message says what to run. Returns the
/// variables that point the tests at the virtualenvs.
fn prerequisites() -> Result<Vec<(String, String)>, String> {
    let has_parser = ["/usr/sbin/apparmor_parser", "/sbin/apparmor_parser"]
        .iter()
        .any(|p| Path::new(p).is_file());
    let has_venv = Command::new("/usr/bin/python3")
        .args(["-c", "import ensurepip"])
        .output()
        .is_ok_and(|o| o.status.success());
    let mut missing = Vec::new();
    if !has_parser {
        missing.push("apparmor");
    }
    if !has_venv {
        missing.push("python3-venv");
    }
    let has = |paths: &[&str]| paths.iter().any(|p| Path::new(p).exists());
    for (package, paths) in [
        ("haproxy", &["/usr/sbin/haproxy", "/usr/bin/haproxy"][..]),
        (
            "systemd",
            &["/usr/bin/systemd-analyze", "/bin/systemd-analyze"],
        ),
        (
            "iproute2",
            &["/usr/sbin/ip", "/sbin/ip", "/usr/bin/ip", "/bin/ip"],
        ),
        ("util-linux", &["/usr/bin/unshare", "/bin/unshare"]),
    ] {
        if !has(paths) {
            missing.push(package);
        }
    }
    // The Python package's test of a 2 GB caller's spawn path reads strace.
    if !Path::new("/usr/bin/strace").is_file() {
        missing.push("strace");
    }
    if !missing.is_empty() {
        if !is_root() {
            return Err(format!(
                "missing Debian packages; run: sudo apt-get install -y {}",
                missing.join(" ")
            ));
        }
        let mut update = Command::new("apt-get");
        update.args(["update", "-q"]);
        run(update)?;
        let mut install = Command::new("apt-get");
        install
            .args(["install", "-y", "-q"])
            .args(&missing)
            .env("DEBIAN_FRONTEND", "noninteractive");
        run(install)?;
    }
    if !is_root() || env::var_os("CODEJAIL_SANDBOX_PYTHON").is_some() {
        return Ok(Vec::new());
    }
    // The sandbox user and virtualenv that one test imports numpy from.
    let requirements = root().join("fixtures/sandbox-requirements.txt");
    sandbox::setup(&[
        "--requirements".to_owned(),
        requirements.display().to_string(),
    ])?;
    let test_python = test_venv()?;
    Ok(vec![
        (
            "CODEJAIL_SANDBOX_PYTHON".to_owned(),
            format!("{}/bin/python", codejail_apparmor::DEFAULT_VENV),
        ),
        ("CODEJAIL_SANDBOX_USER".to_owned(), "sandbox".to_owned()),
        ("CODEJAIL_TEST_PYTHON".to_owned(), test_python),
    ])
}

/// Where the test virtualenv goes: the tests' Python side (jsonschema as
/// codejail-service pins it, requests as edx-platform calls it), apart
/// from the sandbox's.
const TEST_VENV: &str = "/opt/codejail/test-venv";
/// What it holds.
const TEST_REQUIREMENTS: [&str; 2] = ["jsonschema==4.23.0", "requests==2.32.3"];

/// Makes the test virtualenv if it lacks its requirements; its python.
fn test_venv() -> Result<String, String> {
    let python = format!("{TEST_VENV}/bin/python");
    let ready = Command::new(&python)
        .args([
            "-c",
            "import importlib.metadata as m, jsonschema, requests, sys; sys.exit(m.version('jsonschema') != '4.23.0')",
        ])
        .output()
        .is_ok_and(|o| o.status.success());
    if ready {
        return Ok(python);
    }
    let mut venv = Command::new("/usr/bin/python3");
    venv.args(["-m", "venv", TEST_VENV]);
    run(venv)?;
    let mut pip = Command::new(format!("{TEST_VENV}/bin/pip"));
    pip.args(["install", "-q", "--disable-pip-version-check"])
        .args(TEST_REQUIREMENTS);
    run(pip)?;
    Ok(python)
}

fn bench(args: &[String]) -> Result<(), String> {
    if args.iter().any(|a| a == "--service") {
        return bench_service(args);
    }
    // The `codejail run` row times the release binary.
    let mut build = cargo();
    build.args(["build", "-q", "--release", "-p", "codejail-cli"]);
    run(build)?;
    let mut cmd = cargo();
    cmd.args(["bench", "-q", "-p", "codejail", "--bench", "bench", "--"])
        .args(args)
        .env("CODEJAIL_BIN", root().join("target/release/codejail"));
    run(cmd)?;
    python::bench(args)
}

/// `codejail serve` under load: the release binary, then the bench that
/// drives it (in a network namespace of its own: as root only).
fn bench_service(args: &[String]) -> Result<(), String> {
    if !is_root() {
        return Err("bench --service needs root (the server runs in a network namespace)".into());
    }
    let mut build = cargo();
    build.args(["build", "-q", "--release", "-p", "codejail-cli"]);
    run(build)?;
    let rest: Vec<&String> = args.iter().filter(|a| *a != "--service").collect();
    let mut cmd = cargo();
    cmd.args([
        "bench",
        "-q",
        "-p",
        "codejail-service",
        "--bench",
        "service",
        "--",
    ])
    .args(rest)
    .env("CODEJAIL_BIN", root().join("target/release/codejail"));
    if env::var_os("CODEJAIL_SANDBOX_PYTHON").is_none() {
        let venv = format!("{}/bin/python", codejail_apparmor::DEFAULT_VENV);
        if Path::new(&venv).is_file() {
            cmd.env("CODEJAIL_SANDBOX_PYTHON", venv)
                .env("CODEJAIL_SANDBOX_USER", "sandbox");
        }
    }
    run(cmd)
}

/// The cargo subcommand `cargo <name>` (crate `cargo-<name>`), installed
/// with `cargo install --locked` where it is missing.
pub(crate) fn ensure_cargo_tool(name: &str) -> Result<(), String> {
    let present = cargo()
        .args([name, "--version"])
        .output()
        .is_ok_and(|o| o.status.success());
    if present {
        return Ok(());
    }
    let mut install = cargo();
    install.args(["install", &format!("cargo-{name}"), "--locked"]);
    run(install)
}

/// The uid and gid of the unprivileged pass (`nobody`).
const NOBODY: &str = "65534";

/// Runs the process and filesystem layers', the facade's and the
/// end-to-end test binaries again as `nobody`, so that the unprivileged paths (user namespaces, no uid
/// switch, no cgroups; removal that must restore permissions) are tested
/// too. Only a root caller can do this.
fn unprivileged_tests(test_env: &[(String, String)]) -> Result<(), String> {
    if !is_root() {
        eprintln!("\nxtask: not root: the unprivileged pass is the one just run");
        return Ok(());
    }
    let output = cargo()
        .args([
            "test",
            "-p",
            "codejail-proc",
            "-p",
            "codejail-fs",
            "-p",
            "codejail-tests",
            "-p",
            "codejail",
            "-p",
            "codejail-cli",
            "--no-run",
            "--message-format=json",
        ])
        .output()
        .map_err(|e| format!("could not list the test binaries: {e}"))?;
    if !output.status.success() {
        return Err("could not build the test binaries".into());
    }
    let artifacts: Vec<serde_json::Value> = output
        .stdout
        .split(|&b| b == b'\n')
        .filter_map(|line| serde_json::from_slice(line).ok())
        .filter(|v: &serde_json::Value| v["reason"] == "compiler-artifact")
        .collect();
    let executable = |v: &serde_json::Value| v["executable"].as_str().map(PathBuf::from);
    let binaries: Vec<PathBuf> = artifacts
        .iter()
        .filter(|v| v["profile"]["test"] == true)
        .filter_map(executable)
        // The command's own tests need the binary at its build path; the
        // service's need root (a network namespace per test); the README's
        // commands run from the workspace, with cargo, as the README's
        // reader (root).
        .filter(|p| {
            !p.file_name().is_some_and(|n| {
                let n = n.to_string_lossy();
                n.starts_with("cli-") || n.starts_with("serve-") || n.starts_with("readme-")
            })
        })
        .collect();
    let codejail_bin = artifacts
        .iter()
        .filter(|v| v["profile"]["test"] != true)
        .filter_map(executable)
        .find(|p| p.file_name().is_some_and(|n| n == "codejail"))
        .ok_or("the codejail binary was not built")?;
    if binaries.is_empty() {
        return Err("no test binary found for the unprivileged pass".into());
    }
    // A directory nobody can read, outside the (possibly private) tree.
    let dir = env::temp_dir().join(format!("codejail-unprivileged-{}", std::process::id()));
    std::fs::create_dir_all(&dir).map_err(|e| format!("{}: {e}", dir.display()))?;
    let bin_copy = dir.join("codejail");
    std::fs::copy(&codejail_bin, &bin_copy)
        .map_err(|e| format!("copy {}: {e}", codejail_bin.display()))?;
    set_mode(&bin_copy, 0o755)?;
    let result = binaries.iter().try_for_each(|bin| {
        let copy = dir.join(bin.file_name().unwrap_or_default());
        std::fs::copy(bin, &copy).map_err(|e| format!("copy {}: {e}", bin.display()))?;
        let mut cmd = Command::new("setpriv");
        cmd.args([
            &format!("--reuid={NOBODY}"),
            &format!("--regid={NOBODY}"),
            "--clear-groups",
            "--",
        ])
        .arg(&copy)
        .current_dir(&dir)
        .env("CODEJAIL_BIN", &bin_copy)
        .envs(test_env.iter().cloned())
        .env(
            "CODEJAIL_EXPECT_LAYERS",
            env::var("CODEJAIL_EXPECT_LAYERS_UNPRIVILEGED").unwrap_or_default(),
        );
        set_mode(&dir, 0o755)?;
        set_mode(&copy, 0o755)?;
        run(cmd)
    });
    let _ = std::fs::remove_dir_all(&dir);
    result
}

fn is_root() -> bool {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines()
                .find_map(|l| l.strip_prefix("Uid:"))
                .and_then(|ids| ids.split_whitespace().nth(1).map(|e| e == "0"))
        })
        .unwrap_or(false)
}

fn set_mode(path: &Path, mode: u32) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(path, std::fs::Permissions::from_mode(mode))
        .map_err(|e| format!("chmod {}: {e}", path.display()))
}
