//! Development aid: runs attacks (those whose name contains the first
//! argument) in every mode and prints each verdict.
use std::sync::Arc;

use codejail::{Confinement, Jail, JailConfig};
use codejail_selftest as st;

fn main() {
    let filter = std::env::args().nth(1).unwrap_or_default();
    let modes = std::env::args()
        .nth(2)
        .unwrap_or("full,warm,alone,sabotage".into());
    let parent = std::env::temp_dir().join(format!("codejail-explore-{}", std::process::id()));
    std::fs::create_dir_all(&parent).unwrap();
    use std::os::unix::fs::PermissionsExt;
    std::fs::set_permissions(&parent, std::fs::Permissions::from_mode(0o755)).unwrap();
    let mut config = JailConfig::new("/usr/bin/python3");
    config.jail_parent = Some(parent.clone());
    let jail = Arc::new(Jail::new("explore", config.clone()).unwrap());
    let mut uconfig = config.clone();
    uconfig.confinement = Confinement::Unsafe;
    let unsafe_jail = Jail::new("explore-unsafe", uconfig).unwrap();
    let attacks: Vec<_> = st::corpus()
        .into_iter()
        .filter(|a| filter.split(',').any(|f| a.name().contains(f)))
        .collect();
    let planned = jail.planned_layers().unwrap();
    let target = st::Target {
        jail: &jail,
        warm: None,
        unsafe_jail: Some(&unsafe_jail),
        jail_parent: &parent,
    };
    let show = |title: &str, jobs: &[st::Job], r: &st::Report| {
        for (j, v) in jobs.iter().zip(&r.verdicts) {
            println!(
                "{title:9} {:28} {:?}\n    {:14} {} [from {}] layers={} warm={}",
                v.name,
                j.how,
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
        for h in &r.host {
            println!("HOST: {h}");
        }
    };
    if modes.contains("full") {
        let jobs = st::full_jobs(&attacks);
        let r = st::run_jobs(&target, &jobs, 2).unwrap();
        show("full", &jobs, &r);
    }
    if modes.contains("warm") {
        let warm = jail.warm(1).unwrap();
        let t = st::Target {
            warm: Some(&warm),
            ..target
        };
        let jobs = st::full_jobs(&attacks);
        let r = st::run_jobs(&t, &jobs, 1).unwrap();
        show("warm", &jobs, &r);
    }
    if modes.contains("alone") {
        let jobs: Vec<st::Job> = attacks
            .iter()
            .flat_map(|a| st::single_layer_jobs(a).into_iter().map(|(_, j)| j))
            .collect();
        let r = st::run_jobs(&target, &jobs, 2).unwrap();
        show("alone", &jobs, &r);
    }
    if modes.contains("sabotage") {
        let mut jobs = Vec::new();
        for a in &attacks {
            match st::sabotage_job(a, planned) {
                Ok(j) => jobs.push(j),
                Err((r, e)) => println!("sabotage  {:28} NOT TESTED {r}: {e}", a.name()),
            }
        }
        let r = st::run_sabotage(&target, &jobs, 2).unwrap();
        show("sabotage", &jobs, &r);
    }
    let _ = std::fs::remove_dir_all(&parent);
}
