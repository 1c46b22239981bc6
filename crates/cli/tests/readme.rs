//! Every shell command of README.md and deploy/README.md, tested so that
//! none can drift (the scheme is in the README's Development section).
//!
//! Each line of a ```` ```sh ```` block is one command (comments dropped).
//! [`COMMANDS`] says how each is tested, and the test fails for a command
//! it does not list, and for a listed one the READMEs no longer have:
//!
//! - `Run`: run for real with `sh -c`, from the workspace root; exit 0,
//!   and what the README shows of its output compared where stable;
//! - `DryRun`: run with `--dry-run` added (it checks its arguments and
//!   files, changes nothing);
//! - `Help`: run with `--help` added (its options parse);
//! - `Known`: a command of `cargo xtask` that CI runs itself (`ci`,
//!   `deb`): `cargo xtask help` must list it;
//! - `NotRun`: it changes the host or needs what a test cannot have, and
//!   the reason names where the same thing is checked.
//!
//! Before a command runs: `codejail` (also `cargo run -q -p codejail-cli
//! --`) is the binary under test, `/usr/local/bin/codejail` too;
//! `/opt/codejail/sandbox-venv/bin/python` is `$CODEJAIL_SANDBOX_PYTHON`;
//! `/etc/codejail/codejail.toml` is deploy/codejail.toml with that
//! interpreter and `$CODEJAIL_SANDBOX_USER`.

use std::path::{Path, PathBuf};
use std::process::{Command, Output};

const README: &str = include_str!("../../../README.md");
const DEPLOY_README: &str = include_str!("../../../deploy/README.md");
const DEPLOY_SETTINGS: &str = include_str!("../../../deploy/codejail.toml");

#[derive(Clone, Copy, Debug)]
enum How {
    Run,
    DryRun,
    Help,
    Known,
    NotRun(&'static str),
}

/// What a command needs of the machine before it can run here.
#[derive(Clone, Copy, Debug, PartialEq)]
enum Needs {
    Nothing,
    /// Root (the `identity` layer): the README runs it as root.
    Root,
    /// The sandbox virtualenv (`sandbox_venv`), and root.
    Sandbox,
    /// `apparmor_parser`.
    Parser,
    /// The sandbox virtualenv and `apparmor_parser`.
    SandboxParser,
}

const INSTALLS: &str = "installs into /usr/local (the host); cargo xtask ci builds, installs and checks the package instead (cargo xtask deb --install-test)";

/// Every command of the READMEs' shell blocks, and how it is tested.
const COMMANDS: &[(&str, How, Needs)] = &[
    (
        "cargo run -q -p codejail-cli -- exec --code 'y = x * 2' --globals '{\"x\": 21}'",
        How::Run,
        Needs::Nothing,
    ),
    ("cargo xtask ci", How::Known, Needs::Nothing),
    (
        "cargo build --release -p codejail-cli",
        How::NotRun(
            "a release build of minutes; cargo xtask deb (in cargo xtask ci) makes the same one",
        ),
        Needs::Nothing,
    ),
    (
        "cargo install --locked --path crates/cli --root /usr/local",
        How::NotRun(INSTALLS),
        Needs::Nothing,
    ),
    ("codejail doctor", How::Run, Needs::Root),
    (
        "codejail selftest --accept-missing apparmor",
        How::Run,
        Needs::Root,
    ),
    ("codejail gc --dry-run", How::Run, Needs::Nothing),
    ("codejail gc", How::Run, Needs::Nothing),
    (
        "codejail --config /etc/codejail/codejail.toml --log-format json --log-level info serve",
        How::Help,
        Needs::Nothing,
    ),
    (
        "cargo xtask setup-sandbox --requirements fixtures/sandbox-requirements.txt",
        How::DryRun,
        Needs::Nothing,
    ),
    (
        "docker run --security-opt seccomp=codejail.json --security-opt apparmor=codejail ...",
        How::NotRun(
            "an outline for a container host: the image and the profiles are the operator's",
        ),
        Needs::Nothing,
    ),
    (
        "apt-get install -y apparmor",
        How::NotRun("installs a Debian package; cargo xtask ci installs it (as root)"),
        Needs::Nothing,
    ),
    (
        "cargo xtask install-profile --python /opt/codejail/sandbox-venv/bin/python",
        How::DryRun,
        Needs::SandboxParser,
    ),
    (
        "cargo xtask profile-mode complain --python /opt/codejail/sandbox-venv/bin/python",
        How::DryRun,
        Needs::SandboxParser,
    ),
    (
        "cargo xtask install-profile --codejail /usr/local/bin/codejail",
        How::DryRun,
        Needs::Parser,
    ),
    (
        "cargo xtask deb && dpkg -i target/debian/codejail_*.deb",
        How::NotRun(
            "installs a package; cargo xtask deb --install-test (in cargo xtask ci) builds, installs, checks and purges it",
        ),
        Needs::Nothing,
    ),
    (
        "codejail --config /etc/codejail/codejail.toml doctor",
        How::Run,
        Needs::Sandbox,
    ),
    (
        "codejail --config /etc/codejail/codejail.toml selftest --accept-missing apparmor",
        How::Run,
        Needs::Sandbox,
    ),
    (
        "systemctl daemon-reload && systemctl enable --now codejail",
        How::NotRun(
            "starts a service on the host; the unit passes systemd-analyze verify in the serve tests and, installed, in cargo xtask deb --install-test",
        ),
        Needs::Nothing,
    ),
    (
        "curl -s http://127.0.0.1:8550/health/",
        How::NotRun("needs the service running; the serve tests check /health/"),
        Needs::Nothing,
    ),
    (
        "install -D -m 0644 deploy/codejail.toml /etc/codejail/codejail.toml",
        How::NotRun(
            "writes to /etc; the package installs the same file (cargo xtask deb --install-test)",
        ),
        Needs::Nothing,
    ),
    (
        "install -m 0644 deploy/codejail.service /etc/systemd/system/",
        How::NotRun(
            "writes to /etc; the package installs the same unit (cargo xtask deb --install-test)",
        ),
        Needs::Nothing,
    ),
];

/// The commands of the ```` ```sh ```` blocks of `text`.
fn commands(text: &str) -> Vec<String> {
    let mut out = Vec::new();
    let mut in_sh = false;
    for line in text.lines() {
        let trimmed = line.trim();
        if !in_sh {
            in_sh = trimmed == "```sh";
            continue;
        }
        if trimmed.starts_with("```") {
            in_sh = false;
            continue;
        }
        // A comment starts at ` #` outside quotes (no command here has a
        // `#` of its own).
        let command = match line.find(" #") {
            Some(i) => &line[..i],
            None => line,
        }
        .trim();
        if !command.is_empty() && !command.starts_with('#') {
            out.push(command.to_owned());
        }
    }
    out
}

fn workspace() -> PathBuf {
    Path::new(env!("CARGO_MANIFEST_DIR")).join("../..")
}

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Whether this machine has what `needs` asks for; through the one gate.
fn can_run(needs: Needs) -> bool {
    let root = || {
        codejail_tests::require(
            "identity",
            (!is_root()).then_some("the README runs this command as root"),
        )
    };
    let sandbox = || {
        codejail_tests::require(
            "sandbox_venv",
            std::env::var_os("CODEJAIL_SANDBOX_PYTHON")
                .is_none()
                .then_some("CODEJAIL_SANDBOX_PYTHON is not set"),
        )
    };
    let parser = || {
        let found = ["/usr/sbin/apparmor_parser", "/sbin/apparmor_parser"]
            .iter()
            .any(|p| Path::new(p).is_file());
        codejail_tests::require(
            "apparmor_parser",
            (!found).then_some("apparmor_parser is not installed"),
        )
    };
    match needs {
        Needs::Nothing => true,
        Needs::Root => root(),
        Needs::Sandbox => root() && sandbox(),
        Needs::Parser => parser(),
        Needs::SandboxParser => sandbox() && parser(),
    }
}

/// The scratch space of one test: a `bin/codejail` link to the binary
/// under test, the packaged settings pointed at this machine's sandbox.
struct Scratch {
    dir: tempfile::TempDir,
}

impl Scratch {
    fn new() -> Scratch {
        let dir = tempfile::tempdir().unwrap();
        std::fs::create_dir(dir.path().join("bin")).unwrap();
        std::os::unix::fs::symlink(
            env!("CARGO_BIN_EXE_codejail"),
            dir.path().join("bin/codejail"),
        )
        .unwrap();
        let python = std::env::var("CODEJAIL_SANDBOX_PYTHON").unwrap_or_default();
        let user = std::env::var("CODEJAIL_SANDBOX_USER").unwrap_or_else(|_| "sandbox".into());
        let settings = DEPLOY_SETTINGS
            .replace("/opt/codejail/sandbox-venv/bin/python", &python)
            .replace("user = \"sandbox\"", &format!("user = \"{user}\""));
        std::fs::write(dir.path().join("codejail.toml"), settings).unwrap();
        Scratch { dir }
    }

    /// The command as it runs here.
    fn rewrite(&self, command: &str) -> String {
        let python = std::env::var("CODEJAIL_SANDBOX_PYTHON").unwrap_or_default();
        command
            .replace("cargo run -q -p codejail-cli --", "codejail")
            .replace("/usr/local/bin/codejail", env!("CARGO_BIN_EXE_codejail"))
            .replace("/opt/codejail/sandbox-venv/bin/python", &python)
            .replace(
                "/etc/codejail/codejail.toml",
                &self.dir.path().join("codejail.toml").display().to_string(),
            )
    }

    fn sh(&self, command: &str, envs: &[(&str, &Path)]) -> Output {
        // The cargo that runs this test, for the `cargo xtask` commands.
        let cargo = std::env::var_os("CARGO").map_or_else(|| env!("CARGO").into(), PathBuf::from);
        let path = format!(
            "{}:{}:{}",
            self.dir.path().join("bin").display(),
            cargo.parent().unwrap_or(Path::new("/")).display(),
            std::env::var("PATH").unwrap_or_default()
        );
        let mut cmd = Command::new("/bin/sh");
        cmd.args(["-c", command])
            .current_dir(workspace())
            .env("PATH", path)
            .env_remove("CODEJAIL_CONFIG");
        for (k, v) in envs {
            cmd.env(k, v);
        }
        cmd.output().unwrap()
    }
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn assert_ok(command: &str, out: &Output) {
    assert!(
        out.status.success(),
        "README command `{command}` failed ({}):\n{}\n{}",
        out.status,
        text(&out.stdout),
        text(&out.stderr)
    );
}

/// The first column of the lines of `block` up to its first empty line.
fn labels(block: &str) -> Vec<String> {
    block
        .lines()
        .take_while(|l| !l.trim().is_empty())
        .filter_map(|l| l.split_whitespace().next().map(str::to_owned))
        .collect()
}

/// A `Run` command, with what the README shows of its output.
fn run(scratch: &Scratch, command: &str, shown: &str) {
    let here = scratch.rewrite(command);
    match command {
        "cargo run -q -p codejail-cli -- exec --code 'y = x * 2' --globals '{\"x\": 21}'" => {
            let out = scratch.sh(&here, &[]);
            assert_ok(command, &out);
            let printed = text(&out.stdout);
            assert!(
                shown.contains(&format!("The first prints `{}`", printed.trim_end())),
                "README's quick start says the first command prints something else than `{}`",
                printed.trim_end()
            );
        }
        "codejail doctor" => {
            let out = scratch.sh(&here, &[]);
            assert_ok(command, &out);
            // The layers' rows, as the README shows them.
            let start = shown
                .find("`codejail doctor` on this machine, as root:\n\n```\n")
                .expect("README shows codejail doctor's output");
            let block = &shown[start..];
            let block = &block[block.find("```\n").unwrap() + 4..];
            assert_eq!(
                labels(&text(&out.stdout)),
                labels(block),
                "codejail doctor's layer rows differ from the README's"
            );
        }
        "codejail gc --dry-run" | "codejail gc" => {
            // A jail parent of the test's own, with one leftover of a
            // dead owner (no process started at tick 1 after boot with
            // that pid) and one of this live process.
            let parent = scratch.dir.path().join("jails");
            std::fs::create_dir_all(&parent).unwrap();
            let dead = parent.join("codejail-4194303.1-abcdef");
            std::fs::create_dir_all(dead.join("tmp")).unwrap();
            let settings = scratch.dir.path().join("gc.toml");
            std::fs::write(
                &settings,
                format!(
                    "[jails.python]\nbin = \"/usr/bin/python3\"\njail_parent = \"{}\"\n",
                    parent.display()
                ),
            )
            .unwrap();
            let out = scratch.sh(&here, &[("CODEJAIL_CONFIG", &settings)]);
            assert_ok(command, &out);
            let said = text(&out.stdout);
            if command.ends_with("--dry-run") {
                assert!(
                    said.contains(&format!("would remove {}", dead.display())) && dead.exists(),
                    "{said}"
                );
            } else {
                assert!(
                    said.contains(&format!("removed {}", dead.display())) && !dead.exists(),
                    "{said}"
                );
            }
        }
        _ => {
            let out = scratch.sh(&here, &[]);
            assert_ok(command, &out);
        }
    }
}

#[test]
fn support_every_readme_command_is_listed_and_passes() {
    let mut found: Vec<String> = commands(README);
    found.extend(commands(DEPLOY_README));
    for command in &found {
        assert!(
            COMMANDS.iter().any(|(c, _, _)| c == command),
            "a README command this test does not know: `{command}`; add it to COMMANDS in crates/cli/tests/readme.rs with how it is tested"
        );
    }
    for (command, _, _) in COMMANDS {
        assert!(
            found.iter().any(|c| c == command),
            "`{command}` is no longer in the READMEs; remove it from COMMANDS"
        );
    }
    let scratch = Scratch::new();
    let shown = format!("{README}\n{DEPLOY_README}");
    let mut xtask_help: Option<String> = None;
    for &(command, how, needs) in COMMANDS {
        if let How::NotRun(why) = how {
            assert!(!why.is_empty(), "`{command}`: say why it is not run");
            eprintln!("README command not run: {command}: {why}");
            continue;
        }
        if !can_run(needs) {
            continue;
        }
        eprintln!("README command: {command} ({how:?})");
        let here = scratch.rewrite(command);
        match how {
            How::Run => run(&scratch, command, &shown),
            How::DryRun => assert_ok(command, &scratch.sh(&format!("{here} --dry-run"), &[])),
            How::Help => assert_ok(command, &scratch.sh(&format!("{here} --help"), &[])),
            How::Known => {
                let help = xtask_help.get_or_insert_with(|| {
                    let out = scratch.sh("cargo xtask help", &[]);
                    assert_ok("cargo xtask help", &out);
                    text(&out.stdout)
                });
                let name = command.strip_prefix("cargo xtask ").unwrap();
                assert!(
                    help.lines().any(|l| l.starts_with(&format!("  {name} "))),
                    "`cargo xtask help` does not list `{name}`:\n{help}"
                );
            }
            How::NotRun(_) => unreachable!(),
        }
    }
}

/// A command the READMEs would not be allowed to hold unlisted.
#[test]
fn deny_an_unlisted_command() {
    let found = commands("text\n```sh\ncodejail frobnicate   # new\n```\n");
    assert_eq!(found, ["codejail frobnicate"]);
    assert!(!COMMANDS.iter().any(|(c, _, _)| *c == found[0]));
}
