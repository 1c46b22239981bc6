//! `codejail selftest`: the built-in escape corpus against this host.

use std::path::PathBuf;

use codejail::{Confinement, Layer, LayerSet};
use codejail_selftest::{self as selftest, Kind, Report, Verdict};
use serde_json::{Value, json};

use crate::{Fail, settings, setup, usage};

/// The most bytes of an inconclusive attack's stderr the table shows.
const STDERR_SHOWN: usize = 600;

pub(crate) fn selftest(
    config: Option<PathBuf>,
    as_json: bool,
    name: &str,
    accept_missing: Option<&str>,
    stop: &crate::Stop,
) -> Result<u8, Fail> {
    let accepted: LayerSet = match accept_missing {
        None => LayerSet::empty(),
        Some(list) => list
            .parse()
            .map_err(|e| usage(format!("--accept-missing: {e}")))?,
    };
    let settings = settings(config)?;
    let mut config = settings.jails.get(name).cloned().ok_or_else(|| {
        setup(format!(
            "no jail `{name}` is configured; add [jails.{name}] to the settings file"
        ))
    })?;
    // Nothing of the attacks may run where nothing would contain them.
    let planned = if config.confinement == Confinement::Unsafe {
        Ok(LayerSet::empty())
    } else {
        codejail::Jail::new(name, config.clone())
            .map_err(setup)?
            .planned_layers()
            .map_err(|e| e.to_string())
    };
    if let Some(why) = refusal(name, &config.confinement, &planned) {
        return Err(setup(why));
    }
    if !config.lang.has_safe_exec() {
        return Err(setup(format!(
            "refusing to attack jail `{name}`: it runs {}, and the corpus is Python",
            config.lang
        )));
    }
    let planned = planned.unwrap_or_default();
    // A parent of its own, so that leftovers are the selftest's.
    let parent = std::env::temp_dir().join(format!("codejail-selftest-{}", std::process::id()));
    std::fs::create_dir_all(&parent).map_err(|e| setup(format!("{}: {e}", parent.display())))?;
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o755));
    config.jail_parent = Some(parent.clone());
    let jail = codejail::Jail::new(format!("{name}-selftest"), config).map_err(setup);
    let report = jail.and_then(|jail| {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get() * 2);
        let target = selftest::Target {
            jail: &jail,
            warm: None,
            unsafe_jail: None,
            jail_parent: &parent,
            // A stop signal ends the attacks under way and starts no more.
            cancel: Some(&stop.cancel),
        };
        selftest::run_jobs(&target, &selftest::full_jobs(&selftest::corpus()), threads)
            .map_err(setup)
    });
    let _ = std::fs::remove_dir(&parent);
    let report = report?;
    if stop.signal().is_some() {
        // Partial: not a verdict on this host. The caller says why.
        return Ok(0);
    }
    let passed = report.passed(accepted);
    if as_json {
        say!("{}", as_json_value(&report, name, planned, accepted));
    } else {
        print_table(&report, planned, accepted);
    }
    Ok(if passed { 0 } else { 1 })
}

/// Why a jail must not be attacked (its policy cannot contain anything, so
/// the attacks would run for real on this host), or `None`.
fn refusal(
    name: &str,
    confinement: &Confinement,
    planned: &Result<LayerSet, String>,
) -> Option<String> {
    let why = match (confinement, planned) {
        (Confinement::Unsafe, _) => {
            "it is configured unsafe, so the attacks would run unconfined on this host".to_owned()
        }
        (_, Err(e)) => e.clone(),
        (_, Ok(layers))
            if !layers.contains(Layer::Landlock) && !layers.contains(Layer::AppArmor) =>
        {
            format!(
                "its layers ({}) have no filesystem confinement (landlock or apparmor), so the attacks would reach this host's files",
                list(*layers)
            )
        }
        _ => return None,
    };
    Some(format!("refusing to attack jail `{name}`: {why}"))
}

fn names(set: LayerSet) -> Vec<&'static str> {
    set.names()
}

fn list(set: LayerSet) -> String {
    if set.is_empty() {
        "none".into()
    } else {
        set.names().join(", ")
    }
}

/// What the verdict column says: `(accepted)` for a not-tested verdict
/// the operator accepts, `(not here)` for one whose target this host does
/// not have (a system call, a file).
fn verdict_text(v: &Verdict, accepted: LayerSet) -> String {
    if v.kind == Kind::NotTested && v.missing.is_empty() && !v.lacking.is_empty() {
        format!("{} (not here)", v.kind)
    } else if Report::is_accepted(v, accepted) {
        format!("{} (accepted)", v.kind)
    } else {
        v.kind.to_string()
    }
}

fn print_table(report: &Report, planned: LayerSet, accepted: LayerSet) {
    say!(
        "{:<12} {:<28} {:<24} evidence",
        "class",
        "attack",
        "verdict"
    );
    for v in &report.verdicts {
        let mut evidence = match v.kind {
            Kind::Contained => format!("{} ({})", v.detail, v.evidence_from.join(" or ")),
            _ => v.detail.clone(),
        };
        // The run's layers, where they are not the planned ones (a memory
        // limit adds the cgroup).
        if v.ran && v.layers != planned {
            evidence.push_str(&format!(" [layers: {}]", list(v.layers)));
        }
        say!(
            "{:<12} {:<28} {:<24} {evidence}",
            v.class,
            v.name,
            verdict_text(v, accepted)
        );
        if v.kind == Kind::Inconclusive && !v.stderr.is_empty() {
            let stderr = selftest::tail(&v.stderr, STDERR_SHOWN);
            for line in stderr.lines() {
                say!("{:<12}   | {line}", "");
            }
        }
    }
    let count = |k| report.count(k);
    let accepted_count = report
        .verdicts
        .iter()
        .filter(|v| Report::is_accepted(v, accepted))
        .count();
    say!(
        "\n{} attacks: {} contained, {} NOT CONTAINED, {} inconclusive, {} not tested{}",
        report.verdicts.len(),
        count(Kind::Contained),
        count(Kind::NotContained),
        count(Kind::Inconclusive),
        count(Kind::NotTested),
        if accepted_count > 0 {
            format!(
                " ({accepted_count} accepted: --accept-missing {})",
                list(accepted)
            )
        } else {
            String::new()
        }
    );
    say!("layers planned: {}", list(planned));
    say!("verdicts rest on: {}", list(report.layers()));
    let mut sources: Vec<(String, usize)> = Vec::new();
    for v in report.verdicts.iter().filter(|v| v.contained()) {
        let from = v.evidence_from.join(" or ");
        match sources.iter_mut().find(|(f, _)| *f == from) {
            Some((_, n)) => *n += 1,
            None => sources.push((from, 1)),
        }
    }
    sources.sort_by(|a, b| b.1.cmp(&a.1).then_with(|| a.0.cmp(&b.0)));
    if !sources.is_empty() {
        let text: Vec<String> = sources.iter().map(|(f, n)| format!("{f} {n}")).collect();
        say!("evidence from: {}", text.join(", "));
    }
    if report.host.is_empty() {
        say!(
            "host: clean (no process, jail directory, mount or cgroup left; descriptors and files unchanged)"
        );
    } else {
        for h in &report.host {
            say!("host: NOT CLEAN: {h}");
        }
    }
    let not_tested_unaccepted = report
        .verdicts
        .iter()
        .any(|v| v.kind == Kind::NotTested && !Report::is_accepted(v, accepted));
    if not_tested_unaccepted {
        let mut missing = LayerSet::empty();
        for v in report.verdicts.iter().filter(|v| v.kind == Kind::NotTested) {
            for l in &v.missing {
                missing.insert(*l);
            }
        }
        say!(
            "not tested: layers this jail lacks here: {}; pass --accept-missing {} to accept that",
            list(missing),
            missing.names().join(",")
        );
    }
}

fn as_json_value(report: &Report, name: &str, planned: LayerSet, accepted: LayerSet) -> Value {
    let attacks: Vec<Value> = report
        .verdicts
        .iter()
        .map(|v| {
            json!({
                "class": v.class,
                "attack": v.name,
                "verdict": v.kind.as_str(),
                "detail": v.detail,
                "evidence_from": v.evidence_from,
                "layers": names(v.layers),
                "warm": v.warm,
                "missing": v.missing.iter().map(|l| l.name()).collect::<Vec<_>>(),
                "lacking": v.lacking,
                "accepted": Report::is_accepted(v, accepted),
                "stderr": v.stderr,
            })
        })
        .collect();
    json!({
        "passed": report.passed(accepted),
        "jail": name,
        "planned_layers": names(planned),
        "layers": names(report.layers()),
        "accepted_missing": names(accepted),
        "counts": {
            "contained": report.count(Kind::Contained),
            "not_contained": report.count(Kind::NotContained),
            "inconclusive": report.count(Kind::Inconclusive),
            "not_tested": report.count(Kind::NotTested),
        },
        "attacks": attacks,
        "host": report.host,
    })
}

#[cfg(test)]
mod tests {
    use super::*;

    fn set(names: &str) -> LayerSet {
        names.parse().unwrap()
    }

    #[test]
    fn a_jail_that_cannot_contain_anything_is_refused() {
        let auto = Confinement::Auto;
        let unsafe_ = Confinement::Unsafe;
        let full = Ok(set("identity,userns,landlock,seccomp"));
        assert_eq!(refusal("python", &auto, &full), None);
        assert_eq!(refusal("python", &auto, &Ok(set("apparmor,seccomp"))), None);
        let why = refusal("python", &unsafe_, &Ok(LayerSet::empty())).unwrap();
        assert!(why.contains("configured unsafe"), "{why}");
        let why = refusal("python", &auto, &Ok(set("identity,userns,seccomp"))).unwrap();
        assert!(
            why.contains("(identity, userns, seccomp) have no filesystem confinement"),
            "{why}"
        );
        let why = refusal("python", &auto, &Err("no Landlock here".into())).unwrap();
        assert_eq!(why, "refusing to attack jail `python`: no Landlock here");
    }
}
