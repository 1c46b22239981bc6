//! The escape suite: every program of `fixtures/attacks/` against the jail,
//! judged on the evidence its header states (see `codejail-selftest`):
//! cold through the library, on the warm path, and through the real
//! `codejail` binary; every stated evidence shown by its own layers alone;
//! and every attack shown to get through with what stops it switched off,
//! so that the suite is shown able to fail, attack by attack.

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;

use codejail::{Confinement, Jail, JailConfig, Layer, LayerSet, LimitName};
use codejail_selftest::{
    self as selftest, Attack, Bait, Evidence, HostState, How, Job, Kind, Report, Seen, Stopper,
    Target,
};
use serde_json::Value;

/// The suites compare the caller's descriptors before and after: one at a
/// time, so that no other test of this binary opens any meanwhile.
static ONE_AT_A_TIME: std::sync::Mutex<()> = std::sync::Mutex::new(());

fn one_at_a_time() -> std::sync::MutexGuard<'static, ()> {
    ONE_AT_A_TIME.lock().unwrap_or_else(|e| e.into_inner())
}

/// A private jail parent, a jail that makes its runs there, and an unsafe
/// jail of the same interpreter for runs with no layer at all.
struct Suite {
    parent: tempfile::TempDir,
    jail: Arc<Jail>,
    unsafe_jail: Jail,
}

impl Suite {
    fn new(name: &str) -> Suite {
        let parent = tempfile::tempdir().unwrap();
        std::fs::set_permissions(
            parent.path(),
            std::os::unix::fs::PermissionsExt::from_mode(0o755),
        )
        .unwrap();
        let mut config = JailConfig::new("/usr/bin/python3");
        config.jail_parent = Some(parent.path().to_owned());
        let jail = Arc::new(Jail::new(name, config.clone()).unwrap());
        config.confinement = Confinement::Unsafe;
        let unsafe_jail = Jail::new(format!("{name}-unsafe"), config).unwrap();
        Suite {
            parent,
            jail,
            unsafe_jail,
        }
    }

    fn target<'a>(&'a self, warm: Option<&'a codejail::Warm>) -> Target<'a> {
        Target {
            jail: &self.jail,
            warm,
            unsafe_jail: Some(&self.unsafe_jail),
            jail_parent: self.parent.path(),
            cancel: None,
        }
    }
}

/// A not-tested verdict goes through the gate: said on stderr, or a
/// failure where CI declares the missing layer (or what the host lacks
/// that the attack needs).
fn gate_not_tested(report: &Report) {
    for v in report.verdicts.iter().filter(|v| v.kind == Kind::NotTested) {
        assert!(
            !v.missing.is_empty() || !v.lacking.is_empty(),
            "{}: not tested, but no missing layer named: {}",
            v.name,
            v.detail
        );
        for layer in &v.missing {
            codejail_tests::not_tested(layer.name(), &format!("{}: {}", v.name, v.detail));
        }
        for need in &v.lacking {
            codejail_tests::not_tested(need, &format!("{}: {}", v.name, v.detail));
        }
    }
}

/// Everything but contained and not tested, one line each, and the host.
fn failures(report: &Report) -> Vec<String> {
    let mut out: Vec<String> = report
        .verdicts
        .iter()
        .filter(|v| !matches!(v.kind, Kind::Contained | Kind::NotTested))
        .map(|v| {
            format!(
                "{} ({}): {}: {}\n  stderr: {}",
                v.name, v.class, v.kind, v.detail, v.stderr
            )
        })
        .collect();
    out.extend(report.host.iter().map(|h| format!("host: {h}")));
    out
}

/// Whether the warm path sends `attack` down the cold path: limits that
/// need a cgroup or a tmpfs.
fn needs_cold(attack: &Attack) -> bool {
    attack
        .limits
        .iter()
        .any(|(n, v)| *v > 0 && matches!(n, LimitName::Memory | LimitName::Disk | LimitName::Files))
}

#[test]
fn the_gate_knows_every_layer_by_its_name() {
    let names: Vec<&str> = Layer::ALL.iter().map(|l| l.name()).collect();
    assert_eq!(names, codejail_tests::LAYERS);
}

/// Over 80 attacks in 8 classes or more, and each header's evidence is
/// one its program can print: the literal text, or the step and the errno
/// name it passes to `attempt`.
#[test]
fn the_corpus_has_139_attacks_in_10_classes_each_with_evidence_it_can_print() {
    let corpus = selftest::corpus();
    assert!(corpus.len() >= 139, "only {} attacks", corpus.len());
    for class in selftest::CLASSES {
        assert!(
            corpus.iter().any(|a| a.class == *class),
            "no attack of class {class}"
        );
    }
    assert!(selftest::CLASSES.len() >= 10);
    assert!(
        selftest::PRELUDE.is_ascii(),
        "the prelude is pasted as a literal"
    );
    for a in &corpus {
        assert!(
            a.code.contains("escaped(")
                || a.contained
                    .iter()
                    .all(|c| matches!(c.evidence, Evidence::Killed(_) | Evidence::Reaped(_))),
            "{}: no escaped() call, and evidence that is not a kill or a clean host",
            a.file
        );
        // An errno the program accepts is one its header states.
        let stated: Vec<String> = a.contained.iter().map(|c| c.evidence.to_string()).collect();
        for quoted in a.code.split('"').skip(1).step_by(2) {
            let errno_like = quoted.len() > 2
                && quoted.starts_with('E')
                && quoted
                    .chars()
                    .all(|c| c.is_ascii_uppercase() || c.is_ascii_digit());
            assert!(
                !errno_like || stated.iter().any(|e| e.contains(quoted)),
                "{}: the program accepts {quoted}, which no contained: line states",
                a.file
            );
        }
        for c in &a.contained {
            if let Evidence::Line(text) = &c.evidence {
                let literal = a.code.contains(&format!("\"{text}\""));
                let parts = text.split_once(": ").is_some_and(|(step, errno)| {
                    a.code.contains(&format!("\"{step}\""))
                        && a.code.contains(&format!("\"{errno}\""))
                });
                assert!(
                    literal || parts || a.code.contains(text.split(": ").next().unwrap_or(text)),
                    "{}: nothing in the program prints `{text}`",
                    a.file
                );
            }
        }
    }
}

#[test]
fn every_attack_is_contained_cold_through_the_library() {
    let _serial = one_at_a_time();
    let suite = Suite::new("escape-library");
    let corpus = selftest::corpus();
    let report = selftest::run_jobs(&suite.target(None), &selftest::full_jobs(&corpus), 4).unwrap();
    gate_not_tested(&report);
    assert_eq!(report.verdicts.len(), corpus.len());
    assert_eq!(failures(&report), Vec::<String>::new());
    assert!(report.verdicts.iter().all(|v| !v.warm));
}

/// A warm pool of `size` for the suite's jail; `None`, through the gate,
/// where this machine cannot have one (it needs Landlock's scopes).
fn warm_pool(suite: &Suite, size: usize) -> Option<codejail::Warm> {
    match suite.jail.warm(size) {
        Ok(w) => Some(w),
        Err(e) => {
            codejail_tests::not_tested("landlock_scopes", &format!("the warm path: {e}"));
            None
        }
    }
}

/// The same corpus through a pool of warm interpreters, one call at a time
/// so that the pool's process count is exact. The attacks whose limits
/// need a cgroup or a tmpfs go down the cold path, and the verdicts say
/// so; every other one ran warm.
#[test]
fn every_attack_is_contained_on_the_warm_path_or_its_cold_fallback() {
    let _serial = one_at_a_time();
    let suite = Suite::new("escape-warm");
    let Some(warm) = warm_pool(&suite, 1) else {
        return;
    };
    let corpus = selftest::corpus();
    let report =
        selftest::run_jobs(&suite.target(Some(&warm)), &selftest::full_jobs(&corpus), 1).unwrap();
    gate_not_tested(&report);
    assert_eq!(failures(&report), Vec::<String>::new());
    let mut fallbacks = 0;
    for (a, v) in corpus.iter().zip(&report.verdicts) {
        if v.kind != Kind::Contained {
            continue;
        }
        assert_eq!(
            v.warm,
            !needs_cold(a),
            "{}: ran {} (its limits: {:?})",
            a.name(),
            if v.warm { "warm" } else { "cold" },
            a.limits
        );
        fallbacks += u64::from(!v.warm);
    }
    assert!(fallbacks > 0, "no attack went down the cold path");
    assert_eq!(warm.cold_fallbacks(), fallbacks);
    assert_eq!(warm.stray_processes(), 0);
}

/// Each `contained:` line of each attack, shown by its own layers alone:
/// a header cannot credit a layer with what another does (the single-layer
/// run of a wrongly credited layer lets the attack through).
#[test]
fn every_stated_evidence_is_shown_by_its_own_layers_alone() {
    let _serial = one_at_a_time();
    let suite = Suite::new("escape-alone");
    let mut jobs: Vec<Job> = Vec::new();
    for (_, job) in selftest::corpus()
        .iter()
        .flat_map(selftest::single_layer_jobs)
    {
        match job {
            Ok(job) => jobs.push(job),
            Err((requirement, why)) => codejail_tests::not_tested(&requirement, &why),
        }
    }
    assert!(jobs.len() >= 120, "only {} single-layer runs", jobs.len());
    let report = selftest::run_jobs(&suite.target(None), &jobs, 4).unwrap();
    gate_not_tested(&report);
    let mut bad = failures(&report);
    for (job, v) in jobs.iter().zip(&report.verdicts) {
        if v.kind == Kind::Contained {
            let from = job.attack.contained[0].by_names();
            if v.evidence_from != [from.clone()] {
                bad.push(format!(
                    "{}: evidence from {:?}, not {from}",
                    v.name, v.evidence_from
                ));
            }
        }
    }
    assert_eq!(bad, Vec::<String>::new());
}

/// With what stops it switched off, every attack gets through: its layers
/// narrowed away (an unsafe jail when nothing is left), its limits raised,
/// or, where the protection cannot be switched off (the supervisor: its
/// environment, descriptors and pipes, the kill of every process of the
/// run), the same program as a plain child of the caller, outside codejail.
/// Each escape is harmless (the bait's own files, processes and ports) and
/// undone: afterwards the host is as it was. An attack that cannot be made
/// to get through fails this test, by name.
#[test]
fn every_attack_gets_through_with_what_stops_it_switched_off() {
    let _serial = one_at_a_time();
    let suite = Suite::new("escape-sabotage");
    let planned = suite.jail.planned_layers().unwrap();
    let corpus = selftest::corpus();
    let mut jobs = Vec::new();
    for a in &corpus {
        match selftest::sabotage_job(a, planned) {
            Ok(job) => jobs.push(job),
            Err((requirement, why)) => codejail_tests::not_tested(
                &requirement,
                &format!("sabotage of {}: {why}", a.name()),
            ),
        }
    }
    assert!(
        jobs.len() >= 70,
        "only {} attacks can be sabotaged here",
        jobs.len()
    );
    let report = selftest::run_sabotage(&suite.target(None), &jobs, 2).unwrap();
    // Not tested before it ran (a memory limit without a cgroup): the
    // gate. Not tested after it ran: none of its stoppers was left, and it
    // was still stopped: it did not get through.
    let not_run = Report {
        verdicts: report.verdicts.iter().filter(|v| !v.ran).cloned().collect(),
        host: Vec::new(),
    };
    gate_not_tested(&not_run);
    let mut held = Vec::new();
    for (job, v) in jobs.iter().zip(&report.verdicts) {
        if v.kind != Kind::NotContained && v.ran {
            held.push(format!(
                "{} could not be made to get through ({:?}): {}: {}\n  stderr: {}",
                v.name, job.how, v.kind, v.detail, v.stderr
            ));
        }
        if let How::Only(_) | How::Unsafe = job.how {
            let still: Vec<&str> = job
                .attack
                .layers()
                .iter()
                .filter(|l| v.layers.contains(*l))
                .map(Layer::name)
                .collect();
            assert!(
                still.is_empty(),
                "{}: the sabotage run still applied {still:?}",
                v.name
            );
        }
    }
    assert_eq!(held, Vec::<String>::new());
    assert_eq!(
        report.host,
        Vec::<String>::new(),
        "the escapes were not undone"
    );
    // Every way of switching protection off was used.
    for how in ["Only", "Outside", "limits"] {
        assert!(
            jobs.iter().any(|j| match j.how {
                How::Only(_) => how == "Only",
                How::Unsafe => how == "Unsafe",
                How::Outside { .. } => how == "Outside",
                How::Full => how == "limits",
            }),
            "no sabotage by {how}"
        );
    }
}

/// A warm call's own Landlock domain, its zygote's private root and
/// private `tmp/`: a call cannot reach another call going on at the same
/// time (its code in its directory, in the other zygote's home, which is
/// not in this zygote's root; its `tmp/`, which lives on the other
/// zygote's tmpfs, in another mount namespace), its zygote's home, or the
/// pool itself (where a file would outlive the call). Checked by taking
/// the worker's `landlock_restrict_self` out (the zygote's home is then
/// open to the call: this test fails on `..`); without a private root,
/// the other call's code is Landlock's to refuse.
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
                     time.sleep(3)\n\
                     print(sorted(os.listdir(os.environ['TMPDIR'])))\n"
                        .into(),
                ),
                call: codejail::CallOptions {
                    limits: vec![
                        (LimitName::Realtime, 20),
                        (LimitName::Cpu, 20),
                        (LimitName::Fsize, 1000),
                    ],
                    ..Default::default()
                },
                ..codejail::JailCode::default()
            })
        })
    };
    // Its directory, in its zygote's home: the one whose tmp/ is a link
    // (into its zygote's tmpfs).
    let started = std::time::Instant::now();
    let home = loop {
        let found = std::fs::read_dir(&pool)
            .unwrap()
            .flatten()
            .filter_map(|zygote| std::fs::read_dir(zygote.path()).ok())
            .flat_map(|calls| calls.flatten().map(|e| e.path()))
            .find(|p| p.join("tmp").is_symlink());
        if let Some(found) = found {
            break found;
        }
        assert!(
            started.elapsed() < std::time::Duration::from_secs(20),
            "the victim call never started"
        );
        std::thread::sleep(std::time::Duration::from_millis(20));
    };
    std::thread::sleep(std::time::Duration::from_millis(500));
    let targets = serde_json::json!({
        "pool": pool,
        "home": home,
        "secret": home.join("tmp/secret"),
    });
    let attacker = warm
        .jail_code(&codejail::JailCode {
            code: Some(
                r#"
import errno, json, os, sys
t = json.load(sys.stdin)
home = os.getcwd()
def attempt(what, f, *expected):
    try:
        f()
        print("ESCAPED", what)
    except OSError as e:
        if e.errno in expected:
            print("CONTAINED:", what, errno.errorcode[e.errno])
        else:
            raise
# In another mount namespace, and not in this zygote's private root: not
# even there (without a private root, its zygote's own uid refuses it).
attempt("read the other call's secret", lambda: open(t["secret"]).read(), errno.ENOENT, errno.EACCES)
attempt("plant a file in the other call's tmp/", lambda: open(os.path.join(os.path.dirname(t["secret"]), "planted"), "w").close(), errno.ENOENT, errno.EACCES)
# Not in this zygote's private root (another zygote's home); Landlock
# (only this call's own directory) where there is no private root.
attempt("read the other call's code", lambda: open(os.path.join(t["home"], "jailed_code")).read(), errno.ENOENT, errno.EACCES)
attempt("list the pool", lambda: os.listdir(t["pool"]), errno.EACCES)
attempt("leave a file in the pool", lambda: open(os.path.join(t["pool"], "left-behind"), "w").close(), errno.EACCES)
for name in ("..", "../.."):
    attempt("list " + name, lambda: os.listdir(os.path.join(home, name)), errno.EACCES)
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
        (victim.status, victim.stdout.as_slice()),
        (0, b"['secret']\n".as_slice()),
        "the victim's tmp/ was touched, or it failed: {}",
        String::from_utf8_lossy(&victim.stderr)
    );
    assert_eq!(
        (attacker.status, out.matches("CONTAINED:").count()),
        (0, 7),
        "every attempt must be refused: {out}\n{}",
        String::from_utf8_lossy(&attacker.stderr)
    );
    assert!(!out.contains("ESCAPED"), "{out}");
    assert!(!pool.join("left-behind").exists());
    assert_eq!(warm.stray_processes(), 0);
}

/// The judge on real runs of a broken attack: a typo, a wrong errno in the
/// header, a layer credited with what it does not stop, a layer taken
/// away. None of them may pass as contained.
#[test]
fn a_broken_attack_is_never_judged_contained() {
    let _serial = one_at_a_time();
    let suite = Suite::new("escape-broken");
    let original = selftest::corpus()
        .into_iter()
        .find(|a| a.name() == "fs_read_etc_passwd")
        .unwrap();
    // Its first line, Landlock's; the private root's whiteout refuses it
    // too.
    assert_eq!(
        original.contained.len(),
        2,
        "the test assumes two lines: {original:?}"
    );
    let mut typo = original.clone();
    typo.code = typo
        .code
        .replace("open(\"/etc/passwd\")", "opne(\"/etc/passwd\")");
    let mut wrong_errno = original.clone();
    wrong_errno.contained[0].evidence = Evidence::Line("open: EPERM".into());
    let mut wrong_layer = original.clone();
    wrong_layer.contained[0].by = vec![Stopper::Layer(Layer::Seccomp)];
    let planned = suite.jail.planned_layers().unwrap();
    let jobs = vec![
        Job {
            attack: typo,
            how: How::Full,
        },
        Job {
            attack: wrong_errno,
            how: How::Full,
        },
        // Credited to seccomp: seccomp alone lets it read the file.
        Job {
            attack: wrong_layer.clone(),
            how: How::Only(LayerSet::from_iter([Layer::Seccomp])),
        },
        // The layers that stop it taken away.
        Job {
            attack: original.clone(),
            how: How::Only(planned.without(Layer::Landlock).without(Layer::RootFs)),
        },
    ];
    if !codejail_tests::require(
        "landlock",
        (!planned.contains(Layer::Landlock)).then_some("the jail has no Landlock here"),
    ) {
        return;
    }
    let report = selftest::run_jobs(&suite.target(None), &jobs, 2).unwrap();
    let kinds: Vec<Kind> = report.verdicts.iter().map(|v| v.kind).collect();
    assert_eq!(
        kinds,
        [
            Kind::Inconclusive,
            Kind::Inconclusive,
            Kind::NotContained,
            Kind::NotContained
        ],
        "{:#?}",
        report.verdicts
    );
    assert!(
        report.verdicts[0].stderr.contains("NameError"),
        "{:?}",
        report.verdicts[0]
    );
    assert!(
        report.verdicts[1]
            .detail
            .contains("expected `CONTAINED: open: EPERM`")
            && report.verdicts[1]
                .detail
                .contains("got CONTAINED: open: EACCES"),
        "{}",
        report.verdicts[1].detail
    );
    assert_eq!(report.host, Vec::<String>::new());
}

/// The concurrency attacks judge the other run too: a victim run that
/// fails is not a contained attack.
#[test]
fn a_concurrency_attack_whose_victim_run_fails_is_not_contained() {
    let _serial = one_at_a_time();
    let suite = Suite::new("escape-victim");
    let attack = selftest::corpus()
        .into_iter()
        .find(|a| a.name() == "conc_write_other_tmp")
        .unwrap();
    let planned = suite.jail.planned_layers().unwrap();
    if !codejail_tests::require(
        "landlock",
        (!planned.contains(Layer::Landlock)).then_some("the jail has no Landlock here"),
    ) {
        return;
    }
    // Without Landlock, without the mount namespace that hides each run's
    // tmp/ from the others (and the private root built in it, which hides
    // the other runs), and without a uid of its own per run (for a root
    // caller: neither identity nor the user namespace that brings it
    // back), the attack plants its file: the victim's tmp/ changes, and
    // that alone says NOT CONTAINED even if the attack were quiet about it.
    let mut quiet = attack.clone();
    quiet.code = quiet.code.replace("escaped(", "len(");
    let report = selftest::run_jobs(
        &suite.target(None),
        &[Job {
            attack: quiet,
            how: How::Only(selftest::with_userns_if_needed(
                planned
                    .without(Layer::Landlock)
                    .without(Layer::MountNs)
                    .without(Layer::RootFs)
                    .without(Layer::Identity)
                    .without(Layer::UserNs),
            )),
        }],
        1,
    )
    .unwrap();
    let v = &report.verdicts[0];
    assert_eq!(v.kind, Kind::NotContained, "{v:?}");
    assert!(
        v.detail.contains("the victim run's tmp/ was changed"),
        "{}",
        v.detail
    );
}

/// The host's side of the attacks on what Landlock does not mediate:
/// each one quietened (its `escaped(` calls taken out), run where it gets
/// through (its sabotage run: the private root switched off, and the
/// sandbox uid where it stops the attack too), is still judged NOT
/// CONTAINED, on what the bait saw change: the mode, times, owner or
/// attributes of a host file, the jail parent, the other run's `tmp/`, a
/// message on the caller's socket. What an attack printed is not the only
/// evidence.
#[test]
fn a_quiet_escape_is_seen_on_the_hosts_side() {
    let _serial = one_at_a_time();
    let suite = Suite::new("escape-quiet");
    let planned = suite.jail.planned_layers().unwrap();
    // (attack, what the bait reports). The jail parent is the caller's own
    // directory only for an unprivileged caller: a root caller's jail uid
    // cannot change it, even without the private root, and its sabotage
    // run (as root) is not a quiet one to check.
    let mut cases = vec![
        ("fs_chmod_host_owned", "was changed: mode"),
        ("fs_utime_host_owned", "was changed: mtime"),
        ("fs_setxattr_host_owned", "was changed: extended attributes"),
        // Its own group: for an unprivileged caller (and root without a
        // uid switch) the same group, so only the change time says it.
        ("fs_chown_host_owned", "was changed: "),
        (
            "ipc_unix_socket_host_stream",
            "the caller's unix socket received a connection",
        ),
        (
            "ipc_unix_socket_host_dgram",
            "the caller's unix socket received a datagram",
        ),
        ("conc_chmod_other_tmp", "the other run's tmp/"),
    ];
    if codejail::Probe::get().euid != 0 {
        cases.push(("fs_chmod_jail_parent", "the jail parent"));
    }
    let corpus = selftest::corpus();
    let mut bad = Vec::new();
    for (name, seen) in cases {
        let attack = corpus.iter().find(|a| a.name() == name).unwrap();
        assert!(attack.layers().contains(Layer::RootFs), "{name}");
        let mut quiet = attack.clone();
        quiet.code = quiet.code.replace("escaped(", "len(");
        let job = match selftest::sabotage_job(&quiet, planned) {
            Ok(job) => job,
            Err((requirement, why)) => {
                codejail_tests::not_tested(&requirement, &format!("{name}: {why}"));
                continue;
            }
        };
        // Its own bait: what one run changed is not laid at another's door.
        let report = selftest::run_jobs(&suite.target(None), &[job], 1).unwrap();
        let v = &report.verdicts[0];
        if v.kind != Kind::NotContained || !v.detail.contains(seen) {
            bad.push(format!(
                "{name}: {}: {} (stderr: {})",
                v.kind, v.detail, v.stderr
            ));
        }
        // The bait saw it at the end too.
        if !report.host.iter().any(|h| h.contains(seen)) && !seen.starts_with("the other run") {
            bad.push(format!(
                "{name}: the host check missed it: {:?}",
                report.host
            ));
        }
    }
    assert_eq!(bad, Vec::<String>::new());
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

/// The kill reason in `codejail exec`'s one-line message.
fn killed_in_message(stderr: &str) -> Option<&str> {
    let start = stderr.find("(killed: ")? + "(killed: ".len();
    let rest = &stderr[start..];
    Some(&rest[..rest.find(" limit)")?])
}

/// `codejail run --json` (or `codejail exec` for a `safe_exec` attack)
/// with `attack`'s limits, `context` on stdin and `token` as its argument,
/// started.
fn start_binary(
    config: &Path,
    attack: &Attack,
    token: &str,
    context: Vec<u8>,
) -> std::process::Child {
    let program = attack.program();
    let mut cmd = Command::new(binary());
    let config = config.to_str().unwrap();
    if attack.safe_exec {
        cmd.args(["exec", "--config", config, "--code", &program]);
    } else {
        cmd.args([
            "run",
            "--json",
            "--config",
            config,
            "--code",
            &program,
            "--stdin-file",
            "-",
        ]);
    }
    for (name, value) in &attack.run_limits() {
        cmd.args(["--limit", &format!("{name}={value}")]);
    }
    if !attack.safe_exec {
        cmd.args(["--", token]);
    }
    cmd.stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped());
    let mut child = cmd.spawn().unwrap();
    let mut stdin = child.stdin.take().unwrap();
    std::thread::spawn(move || {
        let _ = std::io::Write::write_all(&mut stdin, &context);
    });
    child
}

/// The victim run of a concurrency attack through the binary, started:
/// the library suites' victim program, with their limits.
fn start_binary_victim(config: &Path, token: &str) -> std::process::Child {
    Command::new(binary())
        .args([
            "run",
            "--json",
            "--config",
            config.to_str().unwrap(),
            "--code",
            selftest::VICTIM_CODE,
            "--limit",
            "realtime=10",
            "--limit",
            "fsize=1000",
            "--",
            token,
        ])
        .stdin(Stdio::null())
        .stdout(Stdio::piped())
        .stderr(Stdio::piped())
        .spawn()
        .unwrap()
}

/// What went wrong with a victim run through the binary: it must end with
/// status 0 and print what it printed when nothing touched its tmp/.
fn victim_problem(out: &std::process::Output, token: &str) -> Option<String> {
    let v: Value = match serde_json::from_slice(&out.stdout) {
        Ok(v) => v,
        Err(e) => {
            return Some(format!(
                "the victim run's output is not JSON ({e}): {}",
                String::from_utf8_lossy(&out.stderr)
            ));
        }
    };
    let stdout = v["stdout"].as_str().unwrap_or_default();
    (v["status"] != 0 || stdout != selftest::victim_output(token)).then(|| {
        format!(
            "the victim run was disturbed: status {}, killed by {}, stdout {stdout:?}, stderr {}",
            v["status"], v["killed_by"], v["stderr"]
        )
    })
}

/// Every attack through `codejail run --json` or `codejail exec`, judged
/// like the library's runs; the concurrency class with its victim run
/// going on at the same time through the binary too, judged as well.
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
    let mut jail_config = JailConfig::new("/usr/bin/python3");
    jail_config.jail_parent = Some(jails.path().to_owned());
    let jail = Jail::new("escape-binary-plan", jail_config).unwrap();
    let before = HostState::take(jails.path());
    let bait = Bait::new(jails.path(), &jail).unwrap();
    let mut failed = Vec::new();
    let mut ran = 0;
    let mut concurrent = 0;
    for attack in selftest::corpus() {
        if let Some((requirement, why)) = selftest::lacking_needs(&attack) {
            codejail_tests::not_tested(&requirement, &format!("{}: {why}", attack.name()));
            continue;
        }
        let planned = match selftest::planned_for(&jail, &attack) {
            Ok(p) => p,
            Err((missing, why)) => {
                for l in missing {
                    codejail_tests::not_tested(l.name(), &format!("{}: {why}", attack.name()));
                }
                continue;
            }
        };
        if let Some((missing, why)) =
            selftest::not_tested(&attack, planned, false, &selftest::host_availability)
        {
            for l in missing {
                codejail_tests::not_tested(l.name(), &format!("{}: {why}", attack.name()));
            }
            continue;
        }
        ran += 1;
        let token = format!("codejail-binary-attack-{}-{ran:05}", std::process::id());
        let victim_token = format!("codejail-binary-victim-{}-{ran:05}", std::process::id());
        let mut victim = None;
        let mut home = None;
        if attack.class == "concurrency" {
            concurrent += 1;
            victim = Some(start_binary_victim(&config, &victim_token));
            home = selftest::victim_home(&victim_token);
            if home.is_none() {
                failed.push(format!("{}: the victim run never started", attack.name()));
            }
        }
        let tmp = home.as_ref().map(|h| h.join("tmp"));
        let tmp_before = tmp.as_deref().and_then(|t| std::fs::metadata(t).ok());
        let context = selftest::context(&bait, &victim_token, home.as_deref());
        let child = start_binary(&config, &attack, &token, context);
        let out = child.wait_with_output().unwrap();
        let survivors = selftest::processes_with(&token);
        let mut damage = bait.damage_of(&token, true);
        damage.extend(selftest::tmp_changed(tmp.as_deref(), tmp_before.as_ref()));
        if let Some(victim) = victim {
            let victim = victim.wait_with_output().unwrap();
            damage.extend(victim_problem(&victim, &victim_token));
            damage.extend(
                selftest::processes_with(&victim_token)
                    .into_iter()
                    .map(|p| format!("the victim run's process {p} outlived it")),
            );
        }
        let stderr = String::from_utf8_lossy(&out.stderr).into_owned();
        let verdict = if attack.safe_exec {
            // exec prints the globals (the flood got through) or exits 1
            // with one line that names the kill.
            if out.status.code() == Some(0) {
                damage.push("codejail exec returned the globals".into());
            }
            selftest::judge(
                &attack,
                &Seen {
                    stdout: "",
                    stderr: &stderr,
                    status: if out.status.code() == Some(1) { 1 } else { 0 },
                    killed_by: killed_in_message(&stderr),
                    layers: planned,
                    survivors: &survivors,
                    damage: &damage,
                    warm: false,
                },
            )
        } else {
            let v: Value = serde_json::from_slice(&out.stdout)
                .unwrap_or_else(|e| panic!("{}: {e}: {stderr}", attack.name()));
            let layers: LayerSet = v["layers"]
                .as_array()
                .unwrap()
                .iter()
                .filter_map(|l| l.as_str()?.parse().ok())
                .collect();
            selftest::judge(
                &attack,
                &Seen {
                    stdout: v["stdout"].as_str().unwrap(),
                    stderr: v["stderr"].as_str().unwrap(),
                    status: v["status"].as_i64().unwrap() as i32,
                    killed_by: v["killed_by"].as_str(),
                    layers,
                    survivors: &survivors,
                    damage: &damage,
                    warm: false,
                },
            )
        };
        if verdict.kind == Kind::NotTested {
            for l in &verdict.missing {
                codejail_tests::not_tested(
                    l.name(),
                    &format!("{}: {}", attack.name(), verdict.detail),
                );
            }
        } else if verdict.kind != Kind::Contained {
            failed.push(format!(
                "{}: {}: {}\n  stderr: {}",
                attack.name(),
                verdict.kind,
                verdict.detail,
                verdict.stderr
            ));
        }
    }
    assert!(ran >= 75, "only {ran} attacks ran");
    assert!(concurrent >= 3, "only {concurrent} concurrency attacks ran");
    failed.extend(bait.damage());
    drop(bait);
    failed.extend(HostState::take(jails.path()).changes_since(&before));
    assert_eq!(failed, Vec::<String>::new());
}
