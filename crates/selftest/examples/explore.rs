//! For writing an attack's header from what the layers really do: runs the
//! attacks whose name has one of the comma-separated NAMEs (all of them for
//! an empty one) in each mode and prints every verdict.
//!
//! ```text
//! cargo run -p codejail-selftest --example explore -- NAME[,NAME...] [full,warm,alone,sabotage]
//! ```

use std::sync::Arc;

use codejail::{Confinement, Jail, JailConfig};
use codejail_selftest as st;

fn show(mode: &str, jobs: &[st::Job], report: &st::Report) {
    for (job, v) in jobs.iter().zip(&report.verdicts) {
        println!(
            "{mode:9} {:28} {:?}\n    {:14} {} [from {}] layers={} warm={}",
            v.name,
            job.how,
            v.kind.as_str(),
            v.detail,
            v.evidence_from.join("|"),
            v.layers,
            v.warm
        );
        if !v.stderr.is_empty() {
            println!(
                "    stderr: {}",
                st::tail(&v.stderr, 400).replace('\n', "\n    ")
            );
        }
    }
    for h in &report.host {
        println!("HOST: {h}");
    }
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let filter = args.get(1).cloned().unwrap_or_default();
    let modes = args
        .get(2)
        .cloned()
        .unwrap_or_else(|| "full,warm,alone,sabotage".into());
    let parent = std::env::temp_dir().join(format!("codejail-explore-{}", std::process::id()));
    std::fs::create_dir_all(&parent).expect("a jail parent");
    std::fs::set_permissions(&parent, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod the jail parent");
    let mut config = JailConfig::new("/usr/bin/python3");
    config.jail_parent = Some(parent.clone());
    let jail = Arc::new(Jail::new("explore", config.clone()).expect("a jail"));
    config.confinement = Confinement::Unsafe;
    let unsafe_jail = Jail::new("explore-unsafe", config).expect("an unsafe jail");
    let attacks: Vec<st::Attack> = st::corpus()
        .into_iter()
        .filter(|a| filter.split(',').any(|f| a.name().contains(f)))
        .collect();
    let planned = jail.planned_layers().expect("the jail's layers");
    let target = st::Target {
        jail: &jail,
        warm: None,
        unsafe_jail: Some(&unsafe_jail),
        jail_parent: &parent,
        cancel: None,
    };
    if modes.contains("full") {
        let jobs = st::full_jobs(&attacks);
        show(
            "full",
            &jobs,
            &st::run_jobs(&target, &jobs, 2).expect("runs"),
        );
    }
    if modes.contains("warm") {
        let warm = jail.warm(1).expect("a warm pool");
        let t = st::Target {
            warm: Some(&warm),
            ..target
        };
        let jobs = st::full_jobs(&attacks);
        show("warm", &jobs, &st::run_jobs(&t, &jobs, 1).expect("runs"));
    }
    if modes.contains("alone") {
        let mut jobs = Vec::new();
        for (_, job) in attacks.iter().flat_map(st::single_layer_jobs) {
            match job {
                Ok(j) => jobs.push(j),
                Err((r, e)) => println!("alone     NOT TESTED {r}: {e}"),
            }
        }
        show(
            "alone",
            &jobs,
            &st::run_jobs(&target, &jobs, 2).expect("runs"),
        );
    }
    if modes.contains("sabotage") {
        let mut jobs = Vec::new();
        for a in &attacks {
            match st::sabotage_job(a, planned) {
                Ok(j) => jobs.push(j),
                Err((r, e)) => println!("sabotage  {:28} NOT TESTED {r}: {e}", a.name()),
            }
        }
        show(
            "sabotage",
            &jobs,
            &st::run_sabotage(&target, &jobs, 2).expect("runs"),
        );
    }
    let _ = std::fs::remove_dir_all(&parent);
}
