//! The `codejail` binary under a default container runtime's restrictions,
//! emulated by `container_emulate.py` (no CAP_SYS_ADMIN; a seccomp filter
//! that refuses unshare, setns, mount, clone with namespace flags, and
//! clone3 with ENOSYS, as Docker's default profile does; the cgroup file
//! systems read-only): `auto` runs with the layers left, a required layer
//! that is missing fails closed with why, a memory limit fails with what to
//! configure, `doctor` says what the container lacks and which runtime
//! options give it back, and with the seccomp profile out of the way the
//! namespaces come back without CAP_SYS_ADMIN.

use std::path::PathBuf;
use std::process::{Command, Output};

use serde_json::Value;

const EMULATE: &str = include_str!("container_emulate.py");

/// The binary: `$CODEJAIL_BIN` (the unprivileged pass of `cargo xtask ci`
/// runs a copy of this test as `nobody`, with a copy of the binary), else
/// the one cargo built.
fn bin() -> PathBuf {
    std::env::var_os("CODEJAIL_BIN")
        .map_or_else(|| env!("CARGO_BIN_EXE_codejail").into(), Into::into)
}

/// `codejail args` in the emulated container (`options` for the
/// emulation first), one at a time: without a user namespace
/// `RLIMIT_NPROC` (15 by default) counts every process of the sandbox uid
/// on the machine, so runs of this binary's tests at once would count
/// against each other (and, run as `nobody`, against the test itself).
fn in_container(options: &[&str], args: &[&str]) -> Output {
    static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());
    let _serial = ONE_AT_A_TIME
        .lock()
        .unwrap_or_else(std::sync::PoisonError::into_inner);
    Command::new("/usr/bin/python3")
        .args(["-c", EMULATE])
        .args(options)
        .arg("--")
        .arg(bin())
        .args(args)
        .env_remove("CODEJAIL_CONFIG")
        .env_remove("CODEJAIL_CGROUP")
        .current_dir("/")
        .output()
        .unwrap()
}

fn text(b: &[u8]) -> String {
    String::from_utf8_lossy(b).into_owned()
}

fn json(out: &Output) -> Value {
    assert_eq!(
        out.status.code(),
        Some(0),
        "stdout: {}\nstderr: {}",
        text(&out.stdout),
        text(&out.stderr)
    );
    serde_json::from_slice(&out.stdout).unwrap_or_else(|e| panic!("{e}: {}", text(&out.stdout)))
}

fn root() -> bool {
    rustix::process::geteuid().is_root()
}

/// The filesystem layer the container leaves, through the gate: without
/// Landlock, `auto` refuses to run at all (no filesystem confinement).
fn have_landlock() -> bool {
    let why = codejail::Probe::get()
        .availability(codejail::Layer::Landlock)
        .why_not();
    codejail_tests::require("landlock", why)
}

const NAMESPACES: [&str; 6] = ["userns", "pidns", "netns", "mountns", "ipcns", "utsns"];

#[test]
fn auto_runs_with_the_layers_a_container_leaves() {
    if !have_landlock() {
        return;
    }
    let v = json(&in_container(
        &[],
        &[
            "run",
            "--json",
            "--code",
            "import os; print(6 * 7, os.getuid())",
        ],
    ));
    assert_eq!(v["status"], 0, "{v}");
    let layers: Vec<&str> = v["layers"]
        .as_array()
        .unwrap()
        .iter()
        .map(|l| l.as_str().unwrap())
        .collect();
    for layer in ["no_new_privs", "landlock", "seccomp"] {
        assert!(layers.contains(&layer), "{layer} missing: {v}");
    }
    for layer in NAMESPACES.iter().chain(&["cgroup"]) {
        assert!(!layers.contains(layer), "{layer} in a container: {v}");
    }
    // Root keeps CAP_SETUID there: the code runs as a uid of the default
    // range (a uid of its own per run); unprivileged, as the caller.
    assert_eq!(layers.contains(&"identity"), root(), "{v}");
    let stdout = v["stdout"].as_str().unwrap();
    let uid: u32 = stdout
        .strip_prefix("42 ")
        .and_then(|u| u.trim_end().parse().ok())
        .unwrap_or_else(|| panic!("{v}"));
    if root() {
        assert!(codejail::UidRange::DEFAULT.contains(uid), "{v}");
    } else {
        assert_eq!(uid, rustix::process::geteuid().as_raw(), "{v}");
    }
}

/// With Docker's older answer to clone3 (EPERM) the C library cannot make
/// a thread (it falls back to clone on ENOSYS only): no threaded program,
/// this one included, starts there. Said here so that it is not mistaken
/// for codejail's doing; codejail's own clones fall back on both.
#[test]
fn clone3_refused_with_eperm_stops_every_threaded_program() {
    let out = in_container(&["--clone3-errno", "1"], &["doctor"]);
    assert_ne!(out.status.code(), Some(0));
    assert!(
        text(&out.stderr).contains("failed to spawn thread"),
        "{}",
        text(&out.stderr)
    );
}

#[test]
fn a_required_layer_fails_closed_with_the_reason() {
    if !have_landlock() {
        return;
    }
    let dir = tempfile::tempdir().unwrap();
    let config = dir.path().join("codejail.toml");
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(dir.path(), std::fs::Permissions::from_mode(0o755)).unwrap();
    // `exec` in the container with `settings`: its status, stderr, stdout.
    let exec = |settings: &str| {
        std::fs::write(&config, settings).unwrap();
        let out = in_container(
            &[],
            &[
                "exec",
                "--config",
                config.to_str().unwrap(),
                "--code",
                "x = 1",
            ],
        );
        (out.status.code(), text(&out.stderr), text(&out.stdout))
    };
    let (status, err, stdout) =
        exec("[jails.python]\nbin = \"/usr/bin/python3\"\npolicy = \"require:landlock,pidns\"\n");
    assert_eq!(status, Some(3), "{err}");
    assert!(err.contains("`pidns` is required but unavailable"), "{err}");
    assert!(err.contains("seccomp filter"), "{err}");
    assert!(stdout.is_empty());
    // The same with a sandbox user, whose interpreter is asked its facts
    // as that user when the jail is made: the layer is named, not the
    // interpreter's permissions (it said to make the interpreter readable).
    let Some(python) = codejail_tests::sandbox_python() else {
        return;
    };
    let (status, err, _) = exec(&format!(
        "[jails.python]\nbin = \"{python}\"\nuser = \"sandbox\"\npolicy = \"require:landlock,pidns\"\n"
    ));
    assert_eq!(status, Some(3), "{err}");
    // (An unprivileged caller is first warned that the user is not used.)
    assert!(
        err.lines()
            .any(|l| l
                .starts_with("codejail: confinement layer `pidns` is required but unavailable")),
        "{err}"
    );
    assert!(!err.contains("does not run as uid"), "{err}");
}

#[test]
fn a_memory_limit_fails_with_what_to_configure() {
    if !have_landlock() {
        return;
    }
    let out = in_container(&[], &["exec", "--limit", "memory=64M", "--code", "x = 1"]);
    let err = text(&out.stderr);
    assert_eq!(out.status.code(), Some(3), "{err}");
    assert!(
        err.contains("the memory limit needs the `cgroup` layer, which is unavailable here"),
        "{err}"
    );
    let says_what_to_do = if root() {
        err.contains("read-only") && err.contains("writable cgroup")
    } else {
        err.contains("not writable by uid") && err.contains("Delegate=yes")
    };
    assert!(says_what_to_do, "{err}");
}

#[test]
fn doctor_says_what_the_container_lacks_and_what_gives_it_back() {
    if !have_landlock() {
        return;
    }
    let out = in_container(&[], &["doctor"]);
    let t = text(&out.stdout);
    // Confined by what is left: healthy, with the missing layers said.
    assert_eq!(out.status.code(), Some(0), "{t}\n{}", text(&out.stderr));
    assert!(t.contains("a trial run worked"), "{t}");
    // A missing optional layer is a warning line, not a failure.
    assert!(
        t.contains("jail python: warning: unavailable here: userns, pidns"),
        "{t}"
    );
    let line = |key: &str| {
        t.lines()
            .find(|l| l.starts_with(key))
            .unwrap_or_else(|| panic!("no `{key}` line: {t}"))
            .to_owned()
    };
    assert!(line("container").contains("seccomp filter"), "{t}");
    let lost = line("lost in it");
    for layer in NAMESPACES.iter().chain(&["cgroup"]) {
        assert!(lost.contains(layer), "{layer}: {t}");
    }
    let remedy = line("to get them back");
    for needed in [
        "seccomp profile",
        "clone3 with namespace flags, unshare, setns",
        "seccompProfile",
        "CAP_SYS_ADMIN and privileged mode are not needed",
        "--memory",
    ] {
        assert!(remedy.contains(needed), "{needed}: {t}");
    }
    assert!(
        line("memory limits").starts_with("memory limits       no"),
        "{t}"
    );
    assert!(line("cgroup fix").len() > "cgroup fix".len() + 10, "{t}");

    let v = json(&in_container(&[], &["doctor", "--json"]));
    assert_eq!(v["container"]["likely"], true, "{v}");
    assert!(
        v["container"]["lost"]
            .as_array()
            .unwrap()
            .contains(&Value::from("userns")),
        "{v}"
    );
    assert_eq!(v["cgroups"]["memory_limits"], false, "{v}");
    assert!(v["cgroups"]["fix"].is_string(), "{v}");
    assert_eq!(v["jails"][0]["confined"], true, "{v}");
}

/// A container whose seccomp profile lets namespaces through gets them,
/// without CAP_SYS_ADMIN: inside a user namespace of codejail's own.
#[test]
fn without_the_seccomp_profile_namespaces_need_no_cap_sys_admin() {
    let why = codejail::Probe::get()
        .availability(codejail::Layer::UserNs)
        .why_not();
    if !have_landlock() || !codejail_tests::require("userns", why) {
        return;
    }
    let v = json(&in_container(
        &["--seccomp-unconfined"],
        &["run", "--json", "--code", "print(1)"],
    ));
    assert_eq!(v["stdout"], "1\n", "{v}");
    let layers = v["layers"].as_array().unwrap();
    for layer in NAMESPACES {
        assert!(layers.contains(&Value::from(layer)), "{layer}: {v}");
    }
    assert_eq!(layers.contains(&Value::from("identity")), root(), "{v}");
}
