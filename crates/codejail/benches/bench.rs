//! `cargo xtask bench [--quick]`: codejail against the bare interpreter,
//! measured in one process and one run, interleaved, after a warm-up.
//!
//! Rows: fork+exec of /bin/true, `codejail-proc` running /bin/true with
//! no layer, with every layer, and with every layer but `no_exec`, and `python3 -E -B -c pass` (the floor;
//! `-S` too, for how much of it the site hooks take), `jail_code("print(1)")`
//! (and again in a jail with `allow_exec`, which leaves out the `no_exec`
//! layer: the exec guard's cost), `safe_exec("x = 1 + 1")` with empty
//! and with 100 KB globals, and the warm path. Where there is a sandbox
//! virtualenv with numpy, random2 and six (`CODEJAIL_SANDBOX_PYTHON`, else
//! `cargo xtask setup-sandbox`'s default place), a problem's realistic
//! code (a prolog like Open edX's, then numpy): the bare interpreter
//! running it, cold, warm, and warm with the jail's `preload`. Each row: median, p90, p99,
//! calls/s with one caller and with one caller per core, and the median's
//! ratio to the bare interpreter spawn. Then a soak: many more calls on
//! the cold and on the warm path, with what the bench holds (its RSS and
//! descriptors, its children, the warm pool's processes, jail directories,
//! cgroups) measured before and after with the same objects alive, and
//! once more when the pool is gone. Timings are printed, never asserted:
//! CI runs `--quick` and fails only on errors.
//!
//! `--only TEXT`: the rows whose name has TEXT (and the bare spawn), no
//! soak. `--no-soak`: every row, no soak (for repeated runs: the spread
//! between them). `--shuffle`: a new row order every round. `--settle MS`: a pause
//! before each sample (so that one row's after-effects, a namespace's
//! teardown, do not land on the next).

use std::path::{Path, PathBuf};
use std::process::{Command, Stdio};
use std::sync::Arc;
use std::time::{Duration, Instant};

use codejail::{CallOptions, Jail, JailCode, LimitName, SafeExecOptions, Warm};
use serde_json::{Map, Value, json};

const PYTHON: &str = "/usr/bin/python3";

type Call = Arc<dyn Fn() + Send + Sync>;

struct Row {
    name: &'static str,
    call: Call,
    samples: Vec<Duration>,
}

/// The whole `codejail run --code 'print(1)'` command, with built-in
/// defaults (the `python` jail of `/usr/bin/python3`, every layer there
/// is): what a shell script or another language's caller pays per run.
fn cli_run(bin: std::path::PathBuf) -> Call {
    Arc::new(move || {
        let out = Command::new(&bin)
            .args(["run", "--code", "print(1)"])
            .env_remove("CODEJAIL_CONFIG")
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .expect("spawn codejail");
        assert!(out.status.success() && out.stdout == b"1\n", "{out:?}");
    })
}

fn bare(program: &'static str, args: &'static [&'static str]) -> Call {
    Arc::new(move || {
        let status = Command::new(program)
            .args(args)
            .stdin(Stdio::null())
            .stdout(Stdio::null())
            .stderr(Stdio::null())
            .status()
            .expect("spawn");
        assert!(status.success());
    })
}

fn jail_code(jail: Arc<Jail>) -> Call {
    jail_code_with(jail, None)
}

/// `jail_code` with the jail's planned layers but `without` one.
fn jail_code_without(jail: Arc<Jail>, without: codejail::Layer) -> Call {
    let layers = jail
        .planned_layers()
        .expect("planned layers")
        .without(without);
    jail_code_with(jail, Some(layers))
}

fn jail_code_with(jail: Arc<Jail>, layers: Option<codejail::LayerSet>) -> Call {
    Arc::new(move || {
        let mut request = JailCode {
            code: Some("print(1)".into()),
            ..JailCode::default()
        };
        request.call.layers = layers;
        let r = jail.jail_code(&request).expect("jail_code");
        assert_eq!(
            r.stdout,
            b"1\n",
            "status {} killed {:?} {}",
            r.status,
            r.killed_by,
            String::from_utf8_lossy(&r.stderr)
        );
    })
}

fn safe_exec(jail: Arc<Jail>, globals: Map<String, Value>) -> Call {
    Arc::new(move || {
        let mut g = globals.clone();
        jail.safe_exec("x = 1 + 1", &mut g, &SafeExecOptions::default())
            .expect("safe_exec");
        assert_eq!(g["x"], 2);
    })
}

fn warm_safe_exec(warm: Arc<Warm>) -> Call {
    Arc::new(move || {
        let mut g = Map::new();
        warm.safe_exec("x = 1 + 1", &mut g, &SafeExecOptions::default())
            .expect("warm safe_exec");
        assert_eq!(g["x"], 2);
    })
}

/// A problem's code as Open edX runs it: a prolog (one thread for
/// OpenBLAS, `random2` as `random`, seeded, `six`), then numpy.
const PROLOG: &str = "import os\n\
os.environ['OPENBLAS_NUM_THREADS'] = '1'\n\
import random2 as random\n\
random.seed(42)\n\
import six\n\
import numpy as np\n\
answer = float(np.sqrt(16))\n\
print(answer)\n";

/// What the prolog needs preloaded.
const PRELOAD: &[&str] = &["numpy", "random2", "six"];

/// The sandbox virtualenv's interpreter, where there is one.
fn sandbox_python() -> Option<String> {
    let bin = std::env::var("CODEJAIL_SANDBOX_PYTHON")
        .unwrap_or_else(|_| "/opt/codejail/sandbox-venv/bin/python".to_owned());
    Path::new(&bin).is_file().then_some(bin)
}

fn prolog_cold(jail: Arc<Jail>) -> Call {
    Arc::new(move || {
        let r = jail.jail_code(&JailCode::code(PROLOG)).expect("jail_code");
        assert_eq!(r.stdout, b"4.0\n", "{}", String::from_utf8_lossy(&r.stderr));
    })
}

fn prolog_warm(warm: Arc<Warm>) -> Call {
    Arc::new(move || {
        let r = warm
            .jail_code(&JailCode::code(PROLOG))
            .expect("warm jail_code");
        assert_eq!(r.stdout, b"4.0\n", "{}", String::from_utf8_lossy(&r.stderr));
        assert!(r.warm, "the warm pool ran it cold");
    })
}

fn prolog_bare(bin: String) -> Call {
    Arc::new(move || {
        let out = Command::new(&bin)
            .args(["-E", "-B", "-c", PROLOG])
            .stdin(Stdio::null())
            .stderr(Stdio::null())
            .output()
            .expect("spawn");
        assert_eq!(out.stdout, b"4.0\n");
    })
}

/// The prolog's rows: bare, cold, warm, warm with the preload; `None`
/// (said) without a sandbox virtualenv.
fn prolog_rows(parent: &Path, cores: usize) -> Option<Vec<Row>> {
    let Some(bin) = sandbox_python() else {
        println!(
            "no sandbox virtualenv (CODEJAIL_SANDBOX_PYTHON, or cargo xtask setup-sandbox): no prolog rows\n"
        );
        return None;
    };
    let mut config = codejail::JailConfig::new(&bin);
    config.user = std::env::var("CODEJAIL_SANDBOX_USER").ok();
    config.jail_parent = Some(parent.to_owned());
    let jail = Arc::new(Jail::new("python-sandbox", config.clone()).expect("configure"));
    config.preload = PRELOAD.iter().map(|m| (*m).to_owned()).collect();
    let preloaded = Arc::new(Jail::new("python-preload", config).expect("configure"));
    let warm = Arc::new(jail.warm(cores).expect("warm pool"));
    let warm_preloaded = Arc::new(preloaded.warm(cores).expect("warm pool with a preload"));
    let row = |name, call| Row {
        name,
        call,
        samples: vec![],
    };
    Some(vec![
        row("prolog+numpy, bare", prolog_bare(bin)),
        row("prolog+numpy, cold", prolog_cold(jail)),
        row("prolog+numpy, warm", prolog_warm(warm)),
        row("prolog+numpy, warm, preload", prolog_warm(warm_preloaded)),
    ])
}

fn proc_true(policy: codejail_proc::Policy, allow_exec: bool) -> Call {
    Arc::new(move || {
        let out = codejail_proc::Spawn::new("/bin/true")
            .policy(policy)
            .allow_exec(allow_exec)
            .run()
            .expect("spawn");
        assert_eq!(out.status, 0);
    })
}

fn percentile(sorted: &[Duration], p: f64) -> Duration {
    let i = ((sorted.len() as f64 - 1.0) * p).round() as usize;
    sorted[i.min(sorted.len() - 1)]
}

fn ms(d: Duration) -> String {
    format!("{:.2}", d.as_secs_f64() * 1000.0)
}

/// Calls per second with `threads` callers making `each` calls.
fn throughput(call: &Call, threads: usize, each: usize) -> f64 {
    let start = Instant::now();
    std::thread::scope(|s| {
        for _ in 0..threads {
            s.spawn(|| {
                for _ in 0..each {
                    call();
                }
            });
        }
    });
    (threads * each) as f64 / start.elapsed().as_secs_f64()
}

fn rss_kib() -> u64 {
    std::fs::read_to_string("/proc/self/status")
        .ok()
        .and_then(|s| {
            s.lines().find_map(|l| {
                l.strip_prefix("VmRSS:")
                    .map(|v| v.trim().trim_end_matches(" kB").trim().parse().ok())
            })
        })
        .flatten()
        .unwrap_or(0)
}

fn fds() -> usize {
    std::fs::read_dir("/proc/self/fd")
        .map(|d| d.count())
        .unwrap_or(0)
}

/// `(pid, ppid, command line)` of every process.
fn processes() -> Vec<(u32, u32, String)> {
    std::fs::read_dir("/proc")
        .into_iter()
        .flatten()
        .flatten()
        .filter_map(|e| {
            let pid: u32 = e.file_name().to_string_lossy().parse().ok()?;
            let stat = std::fs::read_to_string(e.path().join("stat")).ok()?;
            let ppid = stat
                .rsplit_once(')')?
                .1
                .split_whitespace()
                .nth(1)?
                .parse()
                .ok()?;
            let cmdline = std::fs::read(e.path().join("cmdline")).unwrap_or_default();
            Some((pid, ppid, String::from_utf8_lossy(&cmdline).into_owned()))
        })
        .collect()
}

/// What the bench holds of the machine.
#[derive(Clone, Copy, Debug, PartialEq, Eq)]
struct Held {
    rss_kib: u64,
    descriptors: usize,
    /// Children of this process, zombies included.
    children: usize,
    /// Processes with the warm pool's directory in their command line.
    pool_processes: usize,
    /// Entries in the jail parent, and in the pool's directory.
    jail_directories: usize,
    /// This process's run cgroups (`codejail-<pid>-*`).
    cgroups: usize,
}

fn held(parent: &Path, pool: Option<&Path>) -> Held {
    let me = std::process::id();
    let procs = processes();
    let count = |dir: &Path| std::fs::read_dir(dir).map(|d| d.count()).unwrap_or(0);
    let prefix = format!("codejail-{}-", codejail::owner::stamp());
    let cg = &codejail::Probe::get().cgroups;
    let cgroups = cg
        .run_parents()
        .into_iter()
        .map(|dir| {
            std::fs::read_dir(dir)
                .into_iter()
                .flatten()
                .flatten()
                .filter(|e| e.file_name().to_string_lossy().starts_with(&prefix))
                .count()
        })
        .sum();
    Held {
        rss_kib: rss_kib(),
        descriptors: fds(),
        children: procs.iter().filter(|(_, ppid, _)| *ppid == me).count(),
        pool_processes: pool.map_or(0, |p| {
            let p = p.to_string_lossy();
            procs
                .iter()
                .filter(|(_, _, c)| c.contains(p.as_ref()))
                .count()
        }),
        jail_directories: count(parent) + pool.map_or(0, count),
        cgroups,
    }
}

/// The warm pool's directory under the jail parent.
fn pool_dir(parent: &Path) -> Option<PathBuf> {
    std::fs::read_dir(parent)
        .ok()?
        .flatten()
        .map(|e| e.path())
        .find(|p| p.to_string_lossy().contains("codejail-warm-"))
}

fn warm_jail_code(warm: Arc<Warm>) -> Call {
    Arc::new(move || {
        let r = warm
            .jail_code(&JailCode::code("print(1)"))
            .expect("warm jail_code");
        assert_eq!(r.stdout, b"1\n", "{}", String::from_utf8_lossy(&r.stderr));
        assert!(r.warm, "the warm pool ran it cold");
    })
}

/// A cold run with a memory limit (a cgroup of its own), where the caller
/// may have one.
fn cold_with_cgroup(jail: Arc<Jail>) -> Option<Call> {
    let probe = codejail::Probe::get();
    if !probe.availability(codejail::Layer::Cgroup).is_yes() || !probe.cgroups.has_memory() {
        return None;
    }
    Some(Arc::new(move || {
        let r = jail
            .jail_code(&JailCode {
                call: CallOptions {
                    limits: vec![(LimitName::Memory, 256 << 20)],
                    ..CallOptions::default()
                },
                ..JailCode::code("print(1)")
            })
            .expect("jail_code with a memory limit");
        assert_eq!(r.stdout, b"1\n", "{}", String::from_utf8_lossy(&r.stderr));
    }))
}

fn main() {
    let args: Vec<String> = std::env::args().collect();
    let quick = args.iter().any(|a| a == "--quick");
    // `--only TEXT`: just the rows whose name has TEXT (and the bare
    // interpreter, for the ratio), and no soak; for working on one row.
    let only = args
        .iter()
        .position(|a| a == "--only")
        .and_then(|i| args.get(i + 1).cloned());
    let no_soak = args.iter().any(|a| a == "--no-soak");
    let (warmup, rounds, each, soak) = if quick {
        (3, 30, 10, 300)
    } else {
        (10, 200, 50, 10_000)
    };
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());

    // A jail parent of the bench's own, so that the soak counts only its
    // jail directories.
    let parent = std::env::temp_dir().join(format!("codejail-bench-{}", std::process::id()));
    std::fs::create_dir_all(&parent).expect("the bench's jail parent");
    std::fs::set_permissions(&parent, std::os::unix::fs::PermissionsExt::from_mode(0o755))
        .expect("chmod the bench's jail parent");
    let mut config = codejail::JailConfig::new(PYTHON);
    config.jail_parent = Some(parent.clone());
    let jail = codejail::configure_with("python", config.clone()).expect("configure");
    // The same jail without the no_exec layer (its cost is the difference).
    let mut exec_config = config;
    exec_config.allow_exec = true;
    let exec_jail = Arc::new(codejail::Jail::new("python-exec", exec_config).expect("configure"));
    let big: Map<String, Value> = (0..1000)
        .map(|i| (format!("k{i}"), json!("v".repeat(90))))
        .collect();
    let big_len = serde_json::to_vec(&big).map(|v| v.len()).unwrap_or(0);
    let warm = Arc::new(jail.warm(cores).expect("warm pool"));

    let mut rows = vec![
        Row {
            name: "fork+exec /bin/true",
            call: bare("/bin/true", &[]),
            samples: vec![],
        },
        Row {
            name: "proc /bin/true, no layer",
            call: proc_true(codejail_proc::Policy::None, false),
            samples: vec![],
        },
        Row {
            name: "proc /bin/true, every layer",
            call: proc_true(codejail_proc::Policy::Auto, false),
            samples: vec![],
        },
        Row {
            name: "proc /bin/true, exec allowed",
            call: proc_true(codejail_proc::Policy::Auto, true),
            samples: vec![],
        },
        Row {
            name: "bare python3 -E -B -S -c pass",
            call: bare(PYTHON, &["-E", "-B", "-S", "-c", "pass"]),
            samples: vec![],
        },
        Row {
            name: "bare python3 -E -B -c pass",
            call: bare(PYTHON, &["-E", "-B", "-c", "pass"]),
            samples: vec![],
        },
        Row {
            name: "jail_code print(1)",
            call: jail_code(jail.clone()),
            samples: vec![],
        },
        Row {
            name: "jail_code print(1), without rootfs",
            call: jail_code_without(jail.clone(), codejail::Layer::RootFs),
            samples: vec![],
        },
        Row {
            name: "jail_code, exec allowed",
            call: jail_code(exec_jail.clone()),
            samples: vec![],
        },
        Row {
            name: "safe_exec x = 1 + 1",
            call: safe_exec(jail.clone(), Map::new()),
            samples: vec![],
        },
        Row {
            name: "safe_exec, 100 KB globals",
            call: safe_exec(jail.clone(), big.clone()),
            samples: vec![],
        },
        Row {
            name: "safe_exec x = 1 + 1, warm",
            call: warm_safe_exec(warm.clone()),
            samples: vec![],
        },
    ];
    // The command's row needs the release binary, which `cargo xtask
    // bench` builds and names here.
    match std::env::var_os("CODEJAIL_BIN") {
        Some(bin) => rows.push(Row {
            name: "codejail run --code print(1)",
            call: cli_run(bin.into()),
            samples: vec![],
        }),
        None => println!(
            "the `codejail run` row is left out: CODEJAIL_BIN is unset (cargo xtask bench sets it)"
        ),
    }
    rows.extend(prolog_rows(&parent, cores).into_iter().flatten());
    if let Some(only) = &only {
        rows.retain(|r| r.name.contains(only.as_str()) || r.name == "bare python3 -E -B -c pass");
    }
    let settle: u64 = args
        .iter()
        .position(|a| a == "--settle")
        .and_then(|i| args.get(i + 1)?.parse().ok())
        .unwrap_or(0);
    let shuffle = args.iter().any(|a| a == "--shuffle");
    let mut seed: u64 = 0x2545_f491_4f6c_dd1d;
    let mut order: Vec<usize> = (0..rows.len()).collect();
    for round in 0..warmup + rounds {
        if shuffle {
            for i in (1..order.len()).rev() {
                seed ^= seed << 13;
                seed ^= seed >> 7;
                seed ^= seed << 17;
                order.swap(i, (seed % (i as u64 + 1)) as usize);
            }
        }
        for &i in &order {
            let row = &mut rows[i];
            std::thread::sleep(Duration::from_millis(settle));
            let start = Instant::now();
            (row.call)();
            if round >= warmup {
                row.samples.push(start.elapsed());
            }
        }
    }
    let layers = jail
        .planned_layers()
        .map(|l| l.to_string())
        .unwrap_or_else(|e| e.to_string());
    println!(
        "codejail bench{}: {rounds} interleaved rounds after {warmup} warm-up rounds, {cores} cores",
        if quick { " --quick" } else { "" }
    );
    println!("layers on: {layers}");
    println!("100 KB globals: {big_len} bytes of JSON; warm pool: {cores} interpreters\n");
    println!(
        "{:<28} {:>8} {:>8} {:>8} {:>10} {:>12} {:>8}",
        "operation",
        "median",
        "p90",
        "p99",
        "calls/s",
        format!("calls/s x{cores}"),
        "ratio"
    );
    for row in &mut rows {
        row.samples.sort();
    }
    let bare_median = rows
        .iter()
        .find(|r| r.name == "bare python3 -E -B -c pass")
        .map_or(Duration::ZERO, |r| percentile(&r.samples, 0.5));
    let mut bare_rate = 0.0;
    for row in &mut rows {
        let median = percentile(&row.samples, 0.5);
        let seq = throughput(&row.call, 1, each);
        let par = throughput(&row.call, cores, each);
        if row.name == "bare python3 -E -B -c pass" {
            bare_rate = par;
        }
        let ratio = if bare_median.is_zero() {
            f64::NAN
        } else {
            median.as_secs_f64() / bare_median.as_secs_f64()
        };
        println!(
            "{:<28} {:>8} {:>8} {:>8} {:>10.0} {:>12.0} {:>8.2}",
            row.name,
            ms(median),
            ms(percentile(&row.samples, 0.9)),
            ms(percentile(&row.samples, 0.99)),
            seq,
            par,
            ratio
        );
    }
    println!("\n(times in ms; ratio = median / bare python3 median, same run)");
    let median_of = |name: &str| {
        rows.iter()
            .find(|r| r.name == name)
            .map(|r| percentile(&r.samples, 0.5))
    };
    if let (Some(cold), Some(preloaded)) = (
        median_of("prolog+numpy, cold"),
        median_of("prolog+numpy, warm, preload"),
    ) {
        println!(
            "prolog+numpy warm with preload: {} ms median, {:.3}x the same code cold (target: <= 5 ms, <= 0.1x)",
            ms(preloaded),
            preloaded.as_secs_f64() / cold.as_secs_f64()
        );
    }
    if let Some(warm_row) = rows.iter().find(|r| r.name == "safe_exec x = 1 + 1, warm") {
        let warm_rate = throughput(&warm_row.call, cores, each);
        println!(
            "warm safe_exec with {cores} callers: {:.1}x the bare spawn rate with {cores} callers",
            warm_rate / bare_rate
        );
    }
    // The rows hold the pools too (the prolog's among them): only the
    // soak's handle is left, and with `--only` none, so that the jail
    // parent is empty when it is removed.
    drop(rows);
    if only.is_none() && !no_soak {
        soak_test(&jail, warm, &parent, soak);
    } else {
        drop(warm);
    }
    let _ = std::fs::remove_dir(&parent);
}

/// Many more calls on both paths, with the same objects alive when what
/// the bench holds is measured before and after; then the pool dropped.
fn soak_test(jail: &Arc<Jail>, warm: Arc<Warm>, parent: &Path, soak: usize) {
    let pool = pool_dir(parent);
    let calls: Vec<(&str, Call)> = vec![
        ("cold jail_code", jail_code(jail.clone())),
        ("cold safe_exec", safe_exec(jail.clone(), Map::new())),
        ("warm safe_exec", warm_safe_exec(warm.clone())),
        ("warm jail_code", warm_jail_code(warm.clone())),
    ];
    let cgroup_call = cold_with_cgroup(jail.clone());
    let before = held(parent, pool.as_deref());
    let start = Instant::now();
    for i in 0..soak {
        for (_, call) in &calls {
            call();
        }
        if let Some(call) = cgroup_call.as_ref().filter(|_| i % 25 == 0) {
            call();
        }
    }
    let elapsed = start.elapsed();
    let after = held(parent, pool.as_deref());
    let names: Vec<&str> = calls.iter().map(|(n, _)| *n).collect();
    println!(
        "\nsoak: {soak} rounds of {}{} in {:.1} s; the pool alive at both measures",
        names.join(", "),
        if cgroup_call.is_some() {
            ", and every 25th round a cold run with a memory limit (a cgroup)"
        } else {
            " (no cgroup for this caller: no run with a memory limit)"
        },
        elapsed.as_secs_f64()
    );
    let fallbacks = warm.cold_fallbacks();
    drop(calls);
    drop(warm);
    let gone = held(parent, pool.as_deref());
    println!(
        "{:<34} {:>10} {:>10} {:>16}",
        "", "before", "after", "pool dropped"
    );
    type Measure = fn(&Held) -> u64;
    let rows: [(&str, Measure); 6] = [
        ("RSS (KiB)", |h| h.rss_kib),
        ("open descriptors", |h| h.descriptors as u64),
        ("children of the bench", |h| h.children as u64),
        ("processes of the warm pool", |h| h.pool_processes as u64),
        ("jail directories (and the pool's)", |h| {
            h.jail_directories as u64
        }),
        ("run cgroups", |h| h.cgroups as u64),
    ];
    for (name, value) in rows {
        let (b, a) = (value(&before), value(&after));
        let note = if a > b && name != "RSS (KiB)" {
            "  GREW"
        } else {
            ""
        };
        println!("{name:<34} {b:>10} {a:>10} {:>16}{note}", value(&gone));
    }
    println!("warm calls sent down the cold path: {fallbacks}");
}
