//! `setup-sandbox`: CodeJail's README set-up as one idempotent command.

use std::path::{Path, PathBuf};
use std::process::Command;

/// The default layout (also the reference AppArmor profile's).
const DEFAULT_VENV: &str = codejail_apparmor::DEFAULT_VENV;
const DEFAULT_USER: &str = "sandbox";

struct Step {
    what: String,
    cmd: Option<Command>,
}

fn step(what: impl Into<String>, program: &str, args: &[&str]) -> Step {
    let mut cmd = Command::new(program);
    cmd.args(args);
    Step {
        what: what.into(),
        cmd: Some(cmd),
    }
}

fn exists_user(name: &str) -> bool {
    Command::new("getent")
        .args(["passwd", name])
        .output()
        .is_ok_and(|o| o.status.success())
}

fn exists_group(name: &str) -> bool {
    Command::new("getent")
        .args(["group", name])
        .output()
        .is_ok_and(|o| o.status.success())
}

pub(crate) fn setup(args: &[String]) -> Result<(), String> {
    let mut venv = PathBuf::from(DEFAULT_VENV);
    let mut user = DEFAULT_USER.to_owned();
    let mut requirements: Option<PathBuf> = None;
    let mut python = PathBuf::from("/usr/bin/python3");
    let mut dry_run = false;
    let mut it = args.iter();
    while let Some(arg) = it.next() {
        let mut value = |flag: &str| {
            it.next()
                .cloned()
                .ok_or_else(|| format!("{flag} needs a value"))
        };
        match arg.as_str() {
            "--venv" => venv = value("--venv")?.into(),
            "--user" => user = value("--user")?,
            "--requirements" => requirements = Some(value("--requirements")?.into()),
            "--python" => python = value("--python")?.into(),
            "--dry-run" => dry_run = true,
            "-h" | "--help" => {
                println!(
                    "usage: cargo xtask setup-sandbox [--venv PATH] [--user NAME] [--requirements FILE] [--python PATH] [--dry-run]"
                );
                return Ok(());
            }
            other => return Err(format!("unknown option `{other}`; run `cargo xtask help`")),
        }
    }
    if let Some(req) = requirements.as_ref().filter(|r| !r.is_file()) {
        return Err(format!(
            "--requirements {}: no such file (paths are relative to where you run it)",
            req.display()
        ));
    }
    if !venv.is_absolute() {
        return Err(format!(
            "--venv {} must be an absolute path",
            venv.display()
        ));
    }
    let venv_s = venv.to_string_lossy().into_owned();
    let bin = venv.join("bin/python");
    let bin_s = bin.to_string_lossy().into_owned();
    let mut steps = Vec::new();
    if exists_group(&user) {
        steps.push(Step {
            what: format!("group {user} exists"),
            cmd: None,
        });
    } else {
        steps.push(step(
            format!("create group {user}"),
            "groupadd",
            &["--system", &user],
        ));
    }
    if exists_user(&user) {
        steps.push(Step {
            what: format!("user {user} exists"),
            cmd: None,
        });
    } else {
        steps.push(step(
            format!("create user {user}"),
            "useradd",
            &[
                "--system",
                "--gid",
                &user,
                "--no-create-home",
                "--home-dir",
                "/nonexistent",
                "--shell",
                "/usr/sbin/nologin",
                &user,
            ],
        ));
    }
    if bin.is_file() && same_contents(&bin, &python) {
        steps.push(Step {
            what: format!("virtualenv {venv_s} exists"),
            cmd: None,
        });
    } else if bin.is_file() {
        // The system's Python was upgraded: the venv's copy is the old
        // interpreter (against the new standard library, or none).
        let py = python.to_string_lossy().into_owned();
        steps.push(step(
            format!("upgrade virtualenv {venv_s}: its python is not a copy of {py}"),
            &py,
            &["-m", "venv", "--copies", "--upgrade", &venv_s],
        ));
    } else {
        let py = python.to_string_lossy().into_owned();
        steps.push(step(
            format!("create virtualenv {venv_s} (copied binaries)"),
            &py,
            &["-m", "venv", "--copies", &venv_s],
        ));
    }
    if let Some(req) = &requirements {
        let req_s = req.to_string_lossy().into_owned();
        steps.push(step(
            format!("install {req_s}"),
            &bin_s,
            &[
                "-m",
                "pip",
                "install",
                "--quiet",
                "--disable-pip-version-check",
                "-r",
                &req_s,
            ],
        ));
    }
    steps.push(step(
        "precompile bytecode (the jail runs with -B)",
        &bin_s,
        &["-m", "compileall", "-q", "-j", "0", &venv_s],
    ));
    steps.push(step(
        format!("make {venv_s} readable by {user}"),
        "chmod",
        &["-R", "a+rX", &venv_s],
    ));

    for s in &mut steps {
        match (&mut s.cmd, dry_run) {
            (None, _) => eprintln!("= {}", s.what),
            (Some(cmd), true) => eprintln!("would {}: {}", s.what, shown(cmd)),
            (Some(cmd), false) => {
                eprintln!("- {}: {}", s.what, shown(cmd));
                let status = cmd
                    .status()
                    .map_err(|e| format!("could not run {}: {e}", shown(cmd)))?;
                if !status.success() {
                    return Err(format!("{} failed ({status})", s.what));
                }
            }
        }
    }
    if !dry_run {
        open_parents(&venv)?;
    }
    println!("# codejail settings for this sandbox (save as codejail.toml, pass with --config)");
    println!("[jails.python]\nbin = \"{bin_s}\"\nuser = \"{user}\"\npolicy = \"auto\"");
    Ok(())
}

/// Whether two files (links followed) hold the same bytes: the venv's
/// copied interpreter and the one it was copied from.
fn same_contents(a: &Path, b: &Path) -> bool {
    match (std::fs::read(a), std::fs::read(b)) {
        (Ok(a), Ok(b)) => a == b,
        _ => false,
    }
}

fn shown(cmd: &Command) -> String {
    format!("{cmd:?}").replace('"', "")
}

/// The sandbox user must be able to reach the venv: every parent
/// directory gets o+x (search), nothing more.
fn open_parents(venv: &Path) -> Result<(), String> {
    use std::os::unix::fs::PermissionsExt;
    for dir in venv.ancestors().skip(1) {
        let meta = std::fs::metadata(dir).map_err(|e| format!("{}: {e}", dir.display()))?;
        let mode = meta.permissions().mode();
        if mode & 0o001 == 0 {
            std::fs::set_permissions(dir, std::fs::Permissions::from_mode(mode | 0o001))
                .map_err(|e| format!("chmod o+x {}: {e}", dir.display()))?;
        }
    }
    Ok(())
}

#[cfg(test)]
mod tests {
    use super::same_contents;

    /// A venv's copy of an interpreter that was since upgraded is told
    /// apart from a current one (links followed, as venv copies them).
    #[test]
    fn support_a_python_upgrade_is_noticed() {
        let dir = std::env::temp_dir().join(format!("xtask-sandbox-{}", std::process::id()));
        std::fs::create_dir_all(&dir).unwrap();
        let (system, link, copy) = (
            dir.join("python3.11"),
            dir.join("python3"),
            dir.join("copy"),
        );
        std::fs::write(&system, b"interpreter 3.11.2").unwrap();
        std::os::unix::fs::symlink(&system, &link).unwrap();
        std::fs::copy(&link, &copy).unwrap();
        let current = same_contents(&copy, &link);
        std::fs::write(&system, b"interpreter 3.11.9").unwrap();
        let upgraded = same_contents(&copy, &link);
        let missing = same_contents(&copy, &dir.join("gone"));
        std::fs::remove_dir_all(&dir).unwrap();
        assert!(current, "a fresh copy is current");
        assert!(
            !upgraded,
            "the system's interpreter changed: the copy is stale"
        );
        assert!(!missing, "no interpreter to compare with: not current");
    }
}
