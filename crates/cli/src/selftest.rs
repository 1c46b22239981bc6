//! `codejail selftest`: the built-in escape corpus against this host.

use std::path::PathBuf;

use codejail_selftest as selftest;
use serde_json::{Value, json};

use crate::{Fail, settings, setup};

pub(crate) fn selftest(config: Option<PathBuf>, as_json: bool, name: &str) -> Result<u8, Fail> {
    let settings = settings(config)?;
    let mut config = settings.jails.get(name).cloned().ok_or_else(|| {
        setup(format!(
            "no jail `{name}` is configured; add [jails.{name}] to the settings file"
        ))
    })?;
    // A parent of its own, so that leftovers are the selftest's.
    let parent = std::env::temp_dir().join(format!("codejail-selftest-{}", std::process::id()));
    std::fs::create_dir_all(&parent).map_err(|e| setup(format!("{}: {e}", parent.display())))?;
    use std::os::unix::fs::PermissionsExt;
    let _ = std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o755));
    config.jail_parent = Some(parent.clone());
    let jail = codejail::Jail::new(format!("{name}-selftest"), config).map_err(setup);
    let report = jail.and_then(|jail| {
        let threads = std::thread::available_parallelism().map_or(2, |n| n.get() * 2);
        selftest::run_suite(
            &jail,
            None,
            &parent,
            &selftest::corpus(),
            &|_| Some(None),
            threads,
        )
        .map_err(setup)
    });
    let _ = std::fs::remove_dir(&parent);
    let report = report?;
    if as_json {
        let attacks: Vec<Value> = report
            .verdicts
            .iter()
            .map(|v| json!({"class": v.class, "attack": v.name, "contained": v.contained, "stopped_by": v.stopped_by, "detail": v.detail}))
            .collect();
        let skipped: Vec<Value> = report
            .skipped
            .iter()
            .map(|(n, why)| json!({"attack": n, "why": why}))
            .collect();
        say!(
            "{}",
            json!({"contained": report.all_contained(), "attacks": attacks, "skipped": skipped, "host": report.host})
        );
    } else {
        say!(
            "{:<12} {:<30} {:<14} stopped by",
            "class",
            "attack",
            "result"
        );
        for v in &report.verdicts {
            let result = if v.contained {
                "contained"
            } else {
                "NOT CONTAINED"
            };
            let by = if v.contained {
                v.stopped_by.join(", ")
            } else {
                v.detail.clone()
            };
            say!("{:<12} {:<30} {:<14} {by}", v.class, v.name, result);
        }
        for (n, why) in &report.skipped {
            say!("{:<12} {:<30} {:<14} {why}", "-", n, "skipped");
        }
        let bad = report.verdicts.iter().filter(|v| !v.contained).count();
        say!(
            "\n{} attacks: {} contained, {bad} NOT CONTAINED, {} skipped",
            report.verdicts.len() + report.skipped.len(),
            report.verdicts.len() - bad,
            report.skipped.len()
        );
        if report.host.is_empty() {
            say!(
                "host: clean (no process, jail directory or cgroup left; descriptors and files unchanged)"
            );
        } else {
            for h in &report.host {
                say!("host: NOT CLEAN: {h}");
            }
        }
    }
    Ok(if report.all_contained() { 0 } else { 1 })
}
