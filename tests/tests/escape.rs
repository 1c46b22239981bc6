//! The escape suite: every program of `fixtures/attacks/` against the jail,
//! through the library and through the real `codejail` binary; each layer
//! alone against the attacks it is meant to stop on its own; and a sabotage
//! mode that shows the suite can fail.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use codejail::{Confinement, Jail, JailConfig, Layer, LayerSet, Probe};
use codejail_selftest::{self as selftest, Attack, Bait, HostState, Report};
use serde_json::Value;

/// The suites compare the caller's descriptors before and after: one at a
/// time, so that no other test of this binary opens any meanwhile.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// A private jail parent and a jail that makes its runs there.
struct Suite {
    parent: tempfile::TempDir,
    jail: Arc<Jail>,
}

impl Suite {
    fn new(name: &str) -> Suite {
        Suite::with(name, Confinement::Auto)
    }

    fn with(name: &str, confinement: Confinement) -> Suite {
        let parent = tempfile::tempdir().unwrap();
        std::fs::set_permissions(
            parent.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let mut config = JailConfig::new("/usr/bin/python3");
        config.jail_parent = Some(parent.path().to_owned());
        config.confinement = confinement;
        let jail = Arc::new(Jail::new(name, config).unwrap());
        Suite { parent, jail }
    }

    fn run(&self, policy_for: &selftest::PolicyFor<'_>) -> Report {
        let report = selftest::run_suite(
            &self.jail,
            None,
            self.parent.path(),
            &selftest::corpus(),
            policy_for,
            4,
        )
        .unwrap();
        check_skips(&report);
        report
    }
}

fn expected_layers() -> LayerSet {
    std::env::var("CODEJAIL_EXPECT_LAYERS")
        .ok()
        .and_then(|v| v.parse().ok())
        .unwrap_or_default()
}

/// A skipped attack is said out loud, and fails where CI expects its layer.
fn check_skips(report: &Report) {
    for (name, why) in &report.skipped {
        let attack = selftest::corpus()
            .into_iter()
            .find(|a| a.name() == name)
            .unwrap();
        for layer in attack.needs.into_iter().chain(attack.alone) {
            assert!(
                !expected_layers().contains(layer),
                "{name}: layer {layer} is expected but {why}"
            );
        }
        let note = format!("NOT TESTED on this machine: {name}: {why}\n");
        let _ = std::io::Write::write_all(&mut std::io::stderr(), note.as_bytes());
    }
}

fn failures(report: &Report) -> Vec<String> {
    let mut out: Vec<String> = report
        .verdicts
        .iter()
        .filter(|v| !v.contained)
        .map(|v| format!("{} ({}): {}", v.name, v.class, v.detail))
        .collect();
    out.extend(report.host.iter().map(|h| format!("host: {h}")));
    out
}

#[test]
fn the_corpus_covers_every_class() {
    let corpus = selftest::corpus();
    for class in [
        "filesystem",
        "resources",
        "process",
        "kernel",
        "network",
        "leaks",
        "concurrency",
    ] {
        assert!(
            corpus.iter().any(|a| a.class == class),
            "no attack of class {class}"
        );
    }
    for a in &corpus {
        assert!(
            a.code.contains("ESCAPED")
                || a.stopped_by
                    .iter()
                    .any(|s| s == "supervisor" || s == "limits"),
            "{}",
            a.file
        );
    }
}

#[test]
fn every_attack_is_contained_through_the_library() {
    let _serial = one_at_a_time();
    let suite = Suite::new("escape-library");
    let report = suite.run(&|_| Some(None));
    assert!(
        report.verdicts.len() >= 50,
        "only {} attacks ran",
        report.verdicts.len()
    );
    assert_eq!(failures(&report), Vec::<String>::new());
}

/// A warm pool of `size` for the suite's jail; `None`, said on stderr,
/// where this machine cannot have one (and is not expected to).
fn warm_pool(suite: &Suite, size: usize) -> Option<codejail::Warm> {
    match suite.jail.warm(size) {
        Ok(w) => Some(w),
        Err(e) => {
            assert!(
                !expected_layers().contains(Layer::Landlock),
                "the warm path is unavailable: {e}"
            );
            let note = format!("NOT TESTED on this machine: {e}\n");
            let _ = std::io::Write::write_all(&mut std::io::stderr(), note.as_bytes());
            None
        }
    }
}

/// The warm path: the same corpus through a pool of warm interpreters,
/// one call at a time so that the pool's process count is exact.
#[test]
fn every_attack_is_contained_on_the_warm_path() {
    let _serial = one_at_a_time();
    let suite = Suite::new("escape-warm");
    let Some(warm) = warm_pool(&suite, 1) else {
        return;
    };
    let report = selftest::run_suite(
        &suite.jail,
        Some(&warm),
        suite.parent.path(),
        &selftest::corpus(),
        &|_| Some(None),
        1,
    )
    .unwrap();
    check_skips(&report);
    assert!(
        report.verdicts.len() >= 50,
        "only {} attacks ran",
        report.verdicts.len()
    );
    assert_eq!(failures(&report), Vec::<String>::new());
    assert_eq!(warm.stray_processes(), 0);
}

/// A warm call's own Landlock domain: the zygote's domain lets it read and
/// write the whole pool directory, so only the call's nested domain keeps
/// it from another call going on at the same time, from its zygote's home
/// and from the pool itself (where a file would outlive the call). Checked
/// by taking the worker's `landlock_restrict_self` out: this test then
/// fails on every target.
#[test]
fn warm_calls_cannot_reach_each_other_or_the_pool() {
    let _serial = one_at_a_time();
    let suite = Suite::new("escape-warm-siblings");
    let Some(warm) = warm_pool(&suite, 2).map(Arc::new) else {
        return;
    };
    let pool = std::fs::read_dir(suite.parent.path())
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("codejail-warm-"))
        .expect("the pool's directory");
    // The victim: a call that keeps a secret in its tmp/ for a while.
    let victim = {
        let warm = warm.clone();
        std::thread::spawn(move || {
            warm.jail_code(&codejail::JailCode {
                code: Some(
                    "import os, time\n\
                     open(os.path.join(os.environ['TMPDIR'], 'secret'), 'w').write('call-secret')\n\
                     time.sleep(2)\n\
                     print(sorted(os.listdir(os.environ['TMPDIR'])))\n"
                        .into(),
                ),
                call: codejail::CallOptions {
                    limits: vec![
                        (codejail::LimitName::Realtime, 20),
                        (codejail::LimitName::Cpu, 20),
                    ],
                    ..Default::default()
                },
                ..codejail::JailCode::default()
            })
        })
    };
    let started = std::time::Instant::now();
    let secret = loop {
        let found = std::fs::read_dir(&pool)
            .unwrap()
            .flatten()
            .map(|e| e.path().join("tmp/secret"))
            .find(|p| p.exists());
        if let Some(found) = found {
            break found;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the victim call never wrote its secret"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    let targets = serde_json::json!({ "pool": pool, "secret": secret });
    let attacker = warm
        .jail_code(&codejail::JailCode {
            code: Some(
                r#"
import json, os, sys
t = json.load(sys.stdin)
home = os.getcwd()
def attempt(what, f):
    try:
        f()
        print("ESCAPED", what)
    except OSError as e:
        print("contained:", what, e.errno)
attempt("read the other call's secret", lambda: open(t["secret"]).read())
attempt("plant a file in the other call's tmp/", lambda: open(os.path.join(os.path.dirname(t["secret"]), "planted"), "w").close())
attempt("list the pool", lambda: os.listdir(t["pool"]))
attempt("leave a file in the pool", lambda: open(os.path.join(t["pool"], "left-behind"), "w").close())
for name in ("..", "../.."):
    attempt("list " + name, lambda: os.listdir(os.path.join(home, name)))
"#
                .into(),
            ),
            stdin: targets.to_string().into_bytes(),
            ..codejail::JailCode::default()
        })
        .unwrap();
    let out = String::from_utf8_lossy(&attacker.stdout).to_string();
    let victim = victim.join().unwrap().unwrap();
    assert_eq!(
        victim.stdout,
        b"['secret']\n",
        "the victim's tmp/ was touched, or it failed: {}",
        String::from_utf8_lossy(&victim.stderr)
    );
    assert_eq!(
        out.matches("contained:").count(),
        6,
        "{out}\n{}",
        String::from_utf8_lossy(&attacker.stderr)
    );
    assert!(!out.contains("ESCAPED"), "{out}");
    assert!(!pool.join("left-behind").exists());
    assert_eq!(warm.stray_processes(), 0);
}

/// The layers a policy of "only this layer" needs: without privilege a
/// namespace hangs off a user namespace.
fn alone(layer: Layer) -> LayerSet {
    let mut set: LayerSet = [layer].into_iter().collect();
    if Probe::get().euid != 0 && Layer::OTHER_NAMESPACES.contains(&layer) {
        set.insert(Layer::UserNs);
    }
    set
}

#[test]
fn each_layer_alone_stops_the_attacks_it_is_meant_to() {
    let _serial = one_at_a_time();
    let suite = Suite::new("escape-alone");
    let report = suite.run(&|a: &Attack| a.alone.map(|l| Some(alone(l))));
    assert!(
        report.verdicts.len() >= 30,
        "only {} attacks ran",
        report.verdicts.len()
    );
    assert_eq!(failures(&report), Vec::<String>::new());
}

/// With the layer (or, for resources, the limit) switched off, each class's
/// representative gets through: the suite can fail. The process class has
/// none: the supervisor's kill of the whole run is not a layer that can be
/// switched off, even in unsafe mode.
#[test]
fn sabotage_mode_shows_the_suite_can_fail() {
    let _serial = one_at_a_time();
    let suite = Suite::with("escape-sabotage", Confinement::Unsafe);
    let mut representatives: Vec<Attack> = selftest::corpus()
        .into_iter()
        .filter(|a| a.sabotage)
        .collect();
    for a in &mut representatives {
        if a.class == "resources" {
            a.limits = vec![
                (codejail::LimitName::Realtime, 20),
                (codejail::LimitName::Cpu, 20),
            ];
        }
    }
    let classes: Vec<&str> = representatives.iter().map(|a| a.class.as_str()).collect();
    for class in [
        "filesystem",
        "resources",
        "kernel",
        "network",
        "leaks",
        "concurrency",
    ] {
        assert!(
            classes.contains(&class),
            "no sabotage representative for {class}"
        );
    }
    let report = selftest::run_suite(
        &suite.jail,
        None,
        suite.parent.path(),
        &representatives,
        &|_| Some(None),
        2,
    )
    .unwrap();
    for v in &report.verdicts {
        assert!(
            !v.contained,
            "{} was contained with confinement off: {}",
            v.name, v.detail
        );
    }
    assert_eq!(report.verdicts.len(), representatives.len());
}

// Through the real binary.

fn binary() -> PathBuf {
    if let Some(bin) = std::env::var_os("CODEJAIL_BIN") {
        return bin.into();
    }
    // target/debug/deps/escape-* -> target/debug/codejail, built by
    // `cargo test --workspace` with the codejail-cli package.
    let exe = std::env::current_exe().unwrap();
    let bin = exe
        .parent()
        .and_then(Path::parent)
        .unwrap()
        .join("codejail");
    assert!(
        bin.is_file(),
        "{} is missing: build it with `cargo build -p codejail-cli` or set CODEJAIL_BIN",
        bin.display()
    );
    bin
}

#[test]
fn every_attack_is_contained_through_the_binary() {
    let _serial = one_at_a_time();
    let parent = tempfile::tempdir().unwrap();
    std::fs::set_permissions(
        parent.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    let config = parent.path().join("codejail.toml");
    let jails = tempfile::tempdir_in(parent.path()).unwrap();
    std::fs::set_permissions(
        jails.path(),
        std::os::unix::fs::PermissionsExt::from_mode(0o755),
    )
    .unwrap();
    std::fs::write(
        &config,
        format!(
            "[jails.python]\nbin = \"/usr/bin/python3\"\njail_parent = \"{}\"\n",
            jails.path().display()
        ),
    )
    .unwrap();
    let before = HostState::take(jails.path());
    let mut bait = Bait::new(jails.path()).unwrap();
    let mut failed = Vec::new();
    let mut ran = 0;
    for attack in selftest::corpus() {
        if selftest::unavailable(&attack).is_some() || attack.class == "concurrency" {
            continue; // reported by the library run; concurrency needs two runs at once
        }
        ran += 1;
        let token = format!("codejail-binary-attack-{}-{ran}", std::process::id());
        let mut cmd = Command::new(binary());
        if attack.safe_exec {
            cmd.args([
                "exec",
                "--config",
                config.to_str().unwrap(),
                "--code",
                attack.code,
            ]);
        } else {
            cmd.args([
                "run",
                "--json",
                "--config",
                config.to_str().unwrap(),
                "--code",
                attack.code,
                "--stdin-file",
                "-",
            ]);
        }
        for (name, value) in &attack.limits {
            cmd.args(["--limit", &format!("{name}={value}")]);
        }
        if !attack.safe_exec {
            cmd.args(["--", &token]);
        }
        cmd.stdin(Stdio::piped())
            .stdout(Stdio::piped())
            .stderr(Stdio::piped());
        let mut child = cmd.spawn().unwrap();
        let context = bait.context();
        let mut stdin = child.stdin.take().unwrap();
        let feeder = std::thread::spawn(move || {
            let _ = std::io::Write::write_all(&mut stdin, &context);
        });
        let out = child.wait_with_output().unwrap();
        feeder.join().unwrap();
        let verdict = if attack.safe_exec {
            // exec exits 1 with the message when the code was stopped.
            let contained = out.status.code() == Some(1);
            (contained, String::from_utf8_lossy(&out.stderr).into_owned())
        } else {
            let v: Value = serde_json::from_slice(&out.stdout).unwrap_or_else(|e| {
                panic!(
                    "{}: {e}: {}",
                    attack.name(),
                    String::from_utf8_lossy(&out.stderr)
                )
            });
            let layers: LayerSet = v["layers"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|l| l.as_str()?.parse().ok())
                .collect();
            let verdict = selftest::judge(
                &attack,
                v["stdout"].as_str().unwrap(),
                v["killed_by"].as_str(),
                layers,
            );
            (verdict.contained, verdict.detail)
        };
        if !verdict.0 {
            failed.push(format!("{}: {}", attack.name(), verdict.1));
        }
        let left = selftest::processes_with(&token);
        if !left.is_empty() {
            failed.push(format!(
                "{}: processes {left:?} outlived the run",
                attack.name()
            ));
        }
    }
    assert!(ran >= 45, "only {ran} attacks ran");
    if let Err(e) = bait.check() {
        failed.push(e);
    }
    drop(bait);
    failed.extend(HostState::take(jails.path()).changes_since(&before));
    assert_eq!(failed, Vec::<String>::new());
}
