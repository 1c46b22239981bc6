//! How much each layer adds to a Python start (a development aid):
//! `cargo run --release -p codejail-proc --example layers_cost`.

use std::time::{Duration, Instant};

use codejail_proc::{Layer, LayerSet, Limits, Policy, Spawn};

fn median(mut v: Vec<Duration>) -> Duration {
    v.sort();
    v[v.len() / 2]
}

fn main() {
    let euid_root = rustix::process::geteuid().is_root();
    let base: Vec<Layer> = if euid_root {
        vec![]
    } else {
        vec![Layer::UserNs]
    };
    let sets: Vec<(&str, Policy)> = vec![
        ("none", Policy::None),
        (
            "landlock",
            Policy::Only([Layer::Landlock].into_iter().chain(base.clone()).collect()),
        ),
        (
            "seccomp",
            Policy::Only([Layer::Seccomp].into_iter().chain(base.clone()).collect()),
        ),
        (
            "namespaces",
            Policy::Only(
                std::iter::once(Layer::UserNs)
                    .chain(Layer::OTHER_NAMESPACES)
                    .collect::<LayerSet>(),
            ),
        ),
        (
            "identity",
            Policy::Only([Layer::Identity].into_iter().collect()),
        ),
        ("auto", Policy::Auto),
    ];
    let mut samples: Vec<Vec<Duration>> = vec![Vec::new(); sets.len()];
    for round in 0..60 {
        for (i, (_, policy)) in sets.iter().enumerate() {
            let mut s = Spawn::new("/usr/bin/python3");
            s.args(["-E", "-B", "-c", "print(1)"])
                .policy(*policy)
                .limits(Limits::default());
            let t = Instant::now();
            let out = s.run().expect("run");
            assert_eq!(out.stdout, b"1\n");
            if round >= 5 {
                samples[i].push(t.elapsed());
            }
        }
    }
    for ((name, _), s) in sets.iter().zip(samples) {
        println!("{name:<12} {:.2} ms", median(s).as_secs_f64() * 1000.0);
    }
}
