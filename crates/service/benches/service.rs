//! `cargo xtask bench --service`: `codejail serve` over HTTP on loopback,
//! driven by a bounded load generator (1, 2, 4 and 8 callers, each on one
//! keep-alive connection, each sending its share of a fixed number of
//! requests), for `x = 1 + 1` and a small numpy problem; against the bare
//! interpreter's spawn rate (`/usr/bin/python3 -E -B -c pass`) with as
//! many callers, measured just before and just after each row. Prints
//! requests/s, p50 and p99; judges nothing.
//!
//! The server runs in a network namespace of its own (only loopback), as
//! in the tests; that needs root. `CODEJAIL_BIN` names the binary
//! (`cargo xtask bench --service` builds it in release);
//! `CODEJAIL_SANDBOX_PYTHON` the interpreter (else `/usr/bin/python3`, and
//! no numpy row). Options: `--quick` (fewer requests), `--requests N`.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

/// The bare interpreter, as the facade's bench spawns it.
const PYTHON: &str = "/usr/bin/python3";

fn main() {
    let args: Vec<String> = std::env::args().skip(1).collect();
    let quick = args.iter().any(|a| a == "--quick");
    let requests: usize = args
        .iter()
        .position(|a| a == "--requests")
        .and_then(|i| args.get(i + 1))
        .and_then(|n| n.parse().ok())
        .unwrap_or(if quick { 200 } else { 1000 });
    if !rustix::process::geteuid().is_root() {
        eprintln!("bench: needs root (a network namespace for the server)");
        std::process::exit(2);
    }
    let bin = std::env::var("CODEJAIL_BIN").unwrap_or_else(|_| "target/release/codejail".into());
    let python = std::env::var("CODEJAIL_SANDBOX_PYTHON").ok();
    let user = std::env::var("CODEJAIL_SANDBOX_USER").ok();
    let cores = std::thread::available_parallelism().map_or(2, |n| n.get());

    let mut netns = enter_netns();
    let dir = tempfile::tempdir().unwrap();
    let jails = dir.path().join("jails");
    std::fs::create_dir(&jails).unwrap();
    let interpreter = python.clone().unwrap_or_else(|| "/usr/bin/python3".into());
    let user_line = user
        .map(|u| format!("user = \"{u}\"\n"))
        .unwrap_or_default();
    let config = dir.path().join("codejail.toml");
    std::fs::write(
        &config,
        format!(
            "[jails.python]\nbin = \"{interpreter}\"\n{user_line}jail_parent = \"{}\"\n\n[limits]\nrealtime = 10\ncpu = 10\n\n[service]\nenabled = true\npool_size = {cores}\nqueue_length = 64\n",
            jails.display()
        ),
    )
    .unwrap();
    let mut server = Command::new(&bin)
        .arg("--config")
        .arg(&config)
        .args(["serve", "--listen", "127.0.0.1:0"])
        .stdout(Stdio::piped())
        .stderr(Stdio::inherit())
        .spawn()
        .unwrap_or_else(|e| panic!("{bin}: {e} (cargo xtask bench --service builds it)"));
    let mut line = String::new();
    BufReader::new(server.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    let addr: SocketAddr = line
        .trim()
        .strip_prefix("codejail serve: listening on http://")
        .unwrap_or_else(|| panic!("the server did not start: {line:?}"))
        .parse()
        .unwrap();
    let health = Client::connect(addr).get("/health/");
    if health.0 != 200 {
        let _ = server.kill();
        eprintln!(
            "bench: the service is not healthy ({}): its start-up checks failed (see above)",
            health.1
        );
        std::process::exit(1);
    }

    println!(
        "codejail serve bench: {cores} cores, pool of {cores}, {requests} requests per row after {} warm-up, interpreter {interpreter}",
        requests / 10
    );
    let mut problems = vec![("x = 1 + 1", "x = 1 + 1".to_owned())];
    if python.is_some() {
        problems.push((
            "numpy solve 2x2",
            "import numpy as np\nx = float(np.linalg.solve(np.array([[2.0, 1.0], [1.0, 3.0]]), np.array([3.0, 5.0])).sum())".to_owned(),
        ));
    }
    println!(
        "\n{:<18} {:>7} {:>9} {:>8} {:>8} {:>11} {:>8}",
        "problem", "callers", "req/s", "p50 ms", "p99 ms", "bare spawn/s", "x bare"
    );
    let spawns = if quick { 40 } else { 100 };
    for callers in [1, 2, 4, 8] {
        for (i, (name, code)) in problems.iter().enumerate() {
            let payload = format!(
                "{{\"code\": {}, \"globals_dict\": {{}}}}",
                json_string(code)
            );
            // numpy calls take tens of milliseconds: a quarter as many.
            let n = if i == 0 {
                requests
            } else {
                (requests / 4).max(callers)
            };
            // The bare interpreter with as many callers, just before and
            // just after the row: the machine's load moves (shared VM).
            let before = bare_spawn_rate(callers, spawns);
            let (rate, p50, p99) = load(addr, &payload, callers, n);
            let bare = (before + bare_spawn_rate(callers, spawns)) / 2.0;
            println!(
                "{name:<18} {callers:>7} {rate:>9.0} {p50:>8.2} {p99:>8.2} {bare:>11.0} {:>8.1}",
                rate / bare
            );
        }
    }
    let _ = rustix::process::kill_process(
        rustix::process::Pid::from_child(&server),
        rustix::process::Signal::TERM,
    );
    let _ = server.wait();
    // The namespace's holder ends when its stdin closes.
    drop(netns.stdin.take());
    let _ = netns.wait();
}

/// Spawns per second of `/usr/bin/python3 -E -B -c pass` with `callers`
/// threads.
fn bare_spawn_rate(callers: usize, per_caller: usize) -> f64 {
    let start = Instant::now();
    let threads: Vec<_> = (0..callers)
        .map(|_| {
            std::thread::spawn(move || {
                for _ in 0..per_caller {
                    let ok = Command::new(PYTHON)
                        .args(["-E", "-B", "-c", "pass"])
                        .status()
                        .is_ok_and(|s| s.success());
                    assert!(ok, "python3 -E -B -c pass failed");
                }
            })
        })
        .collect();
    for t in threads {
        t.join().unwrap();
    }
    (callers * per_caller) as f64 / start.elapsed().as_secs_f64()
}

/// `requests` POSTs split over `callers` keep-alive connections, after a
/// tenth as many to warm up: (requests/s, p50 ms, p99 ms).
fn load(addr: SocketAddr, payload: &str, callers: usize, requests: usize) -> (f64, f64, f64) {
    let body = format!("payload={}", urlencode(payload));
    let run = |total: usize| {
        let start = Instant::now();
        let threads: Vec<_> = (0..callers)
            .map(|c| {
                let body = body.clone();
                let n = total / callers + usize::from(c < total % callers);
                std::thread::spawn(move || {
                    let mut client = Client::connect(addr);
                    (0..n)
                        .map(|_| {
                            let t = Instant::now();
                            let (status, text) = client.post_form("/api/v0/code-exec", &body);
                            assert!(
                                status == 200 && !text.contains("\"emsg\""),
                                "{status}: {text}"
                            );
                            t.elapsed()
                        })
                        .collect::<Vec<Duration>>()
                })
            })
            .collect();
        let mut times: Vec<Duration> = threads
            .into_iter()
            .flat_map(|t| t.join().unwrap())
            .collect();
        let wall = start.elapsed();
        times.sort();
        (times, wall)
    };
    run((requests / 10).max(callers));
    let (times, wall) = run(requests);
    let pct = |p: f64| {
        let i = ((times.len() as f64 * p).ceil() as usize).clamp(1, times.len()) - 1;
        times[i].as_secs_f64() * 1000.0
    };
    (times.len() as f64 / wall.as_secs_f64(), pct(0.5), pct(0.99))
}

/// One keep-alive HTTP/1.1 connection.
struct Client {
    addr: SocketAddr,
    reader: BufReader<TcpStream>,
}

impl Client {
    fn connect(addr: SocketAddr) -> Client {
        let s = TcpStream::connect(addr).unwrap();
        s.set_nodelay(true).unwrap();
        s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
        Client {
            addr,
            reader: BufReader::new(s),
        }
    }

    fn send(&mut self, head: &str, body: &str) -> (u16, String) {
        let msg = format!(
            "{head}Host: {}\r\nContent-Length: {}\r\n\r\n{body}",
            self.addr,
            body.len()
        );
        self.reader.get_mut().write_all(msg.as_bytes()).unwrap();
        let mut status_line = String::new();
        self.reader.read_line(&mut status_line).unwrap();
        let status = status_line
            .split(' ')
            .nth(1)
            .and_then(|s| s.parse().ok())
            .unwrap_or(0);
        let mut length = 0;
        loop {
            let mut h = String::new();
            self.reader.read_line(&mut h).unwrap();
            if h.trim().is_empty() {
                break;
            }
            if let Some((k, v)) = h.split_once(':') {
                if k.eq_ignore_ascii_case("content-length") {
                    length = v.trim().parse().unwrap_or(0);
                }
            }
        }
        let mut buf = vec![0; length];
        self.reader.read_exact(&mut buf).unwrap();
        (status, String::from_utf8_lossy(&buf).into_owned())
    }

    fn get(&mut self, path: &str) -> (u16, String) {
        self.send(&format!("GET {path} HTTP/1.1\r\n"), "")
    }

    fn post_form(&mut self, path: &str, body: &str) -> (u16, String) {
        self.send(
            &format!("POST {path} HTTP/1.1\r\nContent-Type: application/x-www-form-urlencoded\r\n"),
            body,
        )
    }
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b => format!("%{b:02X}"),
        })
        .collect()
}

fn json_string(s: &str) -> String {
    let mut out = String::from("\"");
    for c in s.chars() {
        match c {
            '"' => out.push_str("\\\""),
            '\\' => out.push_str("\\\\"),
            '\n' => out.push_str("\\n"),
            c => out.push(c),
        }
    }
    out.push('"');
    out
}

/// Enters a new network namespace with loopback up (held by a child that
/// ends with the returned handle).
fn enter_netns() -> Child {
    let mut holder = Command::new("unshare")
        .args([
            "--net",
            "--",
            "sh",
            "-c",
            "ip link set lo up && echo up && exec cat",
        ])
        .stdin(Stdio::piped())
        .stdout(Stdio::piped())
        .spawn()
        .expect("unshare and ip");
    let mut line = String::new();
    BufReader::new(holder.stdout.take().unwrap())
        .read_line(&mut line)
        .unwrap();
    assert_eq!(line.trim(), "up");
    let ns = std::fs::File::open(format!("/proc/{}/ns/net", holder.id())).unwrap();
    rustix::thread::move_into_link_name_space(
        ns.as_fd(),
        Some(rustix::thread::LinkNameSpaceType::Network),
    )
    .unwrap();
    holder
}
