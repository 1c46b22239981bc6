//! `cargo xtask deb`: the .deb of the `codejail` command (cargo-deb, from
//! `[package.metadata.deb]` in crates/cli/Cargo.toml), and in CI its
//! installation: `dpkg -i`, the installed `codejail doctor` and
//! `codejail selftest` with the packaged settings, `dpkg --purge`.

use std::path::{Path, PathBuf};
use std::process::Command;
use std::time::Instant;

use crate::{cargo, is_root, run};

/// What the package installs that must not be there before (so that
/// removing it leaves the machine as it was found).
const INSTALLED: [&str; 3] = [
    "/usr/bin/codejail",
    "/etc/codejail/codejail.toml",
    "/usr/lib/systemd/system/codejail.service",
];

/// The settings file the package installs.
const SETTINGS: &str = "/etc/codejail/codejail.toml";

/// Layers the packaged settings never ask for: no `apparmor_profile` is
/// set, so selftest's attacks that AppArmor alone would judge are not
/// tested.
const ACCEPTED_MISSING: &str = "apparmor";

/// Builds the package (installing cargo-deb when missing); its path.
pub(crate) fn build() -> Result<PathBuf, String> {
    crate::ensure_cargo_tool("deb")?;
    let mut cmd = cargo();
    cmd.args(["deb", "-p", "codejail-cli"]);
    let shown = format!("{cmd:?}").replace('"', "");
    eprintln!("\n$ {shown}");
    let out = cmd
        .stderr(std::process::Stdio::inherit())
        .output()
        .map_err(|e| format!("could not start `{shown}`: {e}"))?;
    if !out.status.success() {
        return Err(format!("`{shown}` failed ({})", out.status));
    }
    // cargo-deb prints the package's path as its last line.
    let stdout = String::from_utf8_lossy(&out.stdout);
    let path = stdout
        .lines()
        .rev()
        .map(str::trim)
        .find(|l| l.ends_with(".deb"))
        .ok_or_else(|| format!("`{shown}` did not say where the package is: {stdout}"))?;
    eprintln!("{path}");
    Ok(PathBuf::from(path))
}

/// `cargo xtask deb [--install-test]`.
pub(crate) fn deb(args: &[String]) -> Result<(), String> {
    match args {
        [] => build().map(drop),
        [flag] if flag == "--install-test" => install_test(),
        _ => Err("usage: cargo xtask deb [--install-test]".into()),
    }
}

/// Builds the package, installs it, runs the installed command's checks,
/// and purges it again, whatever the checks said. As root only, and only
/// on a machine without a codejail of its own.
pub(crate) fn install_test() -> Result<(), String> {
    let started = Instant::now();
    let deb = build()?;
    if !is_root() {
        eprintln!("\nxtask: not root: the .deb was built, not installed");
        return Ok(());
    }
    let installed = Command::new("dpkg")
        .args(["-s", "codejail"])
        .output()
        .is_ok_and(|o| o.status.success());
    if let Some(found) = INSTALLED.iter().find(|p| Path::new(p).exists()) {
        return Err(format!(
            "{found} exists: this machine has a codejail of its own, which installing and removing the package would replace; test the package on another machine"
        ));
    }
    if installed {
        return Err("the codejail package is installed here; remove it (dpkg --purge codejail) before CI installs its own".into());
    }
    let mut install = Command::new("dpkg");
    install.arg("-i").arg(&deb);
    run(install)?;
    let checks = checks();
    // --purge, not -r: the settings file is a conffile, which -r keeps.
    let mut purge = Command::new("dpkg");
    purge.args(["--purge", "codejail"]);
    let purged = run(purge);
    checks?;
    purged?;
    if let Some(left) = INSTALLED.iter().find(|p| Path::new(p).exists()) {
        return Err(format!("{left} is still there after dpkg --purge"));
    }
    eprintln!(
        "\nxtask: the .deb built, installed, checked and purged in {:.0} s",
        started.elapsed().as_secs_f64()
    );
    Ok(())
}

/// The installed command, from outside the source tree, with the
/// packaged settings.
fn checks() -> Result<(), String> {
    let installed = |args: &[&str]| {
        let mut cmd = Command::new("/usr/bin/codejail");
        cmd.args(["--config", SETTINGS])
            .args(args)
            .current_dir("/")
            .env_remove("CODEJAIL_CONFIG");
        cmd
    };
    let mut version = Command::new("/usr/bin/codejail");
    version.arg("--version");
    run(version)?;
    // The packaged unit, with its `ExecStart=codejail` found in systemd's
    // search path (the tests verify the unit in deploy/ with the binary
    // they built).
    let mut verify = Command::new("systemd-analyze");
    verify.args([
        "verify",
        "--man=no",
        "/usr/lib/systemd/system/codejail.service",
    ]);
    run(verify)?;
    run(installed(&["doctor"]))?;
    run(installed(&[
        "selftest",
        "--accept-missing",
        ACCEPTED_MISSING,
    ]))
}
