//! `codejail serve` end to end: the built binary in a network namespace of
//! its own (only loopback: the egress check passes without a packet
//! leaving), driven over real HTTP as edx-platform's `remote_exec` drives
//! codejail-service. Each test has its own namespace, settings, jail
//! parent and port (0, read back). Needs root (the namespace); as another
//! user these say NOT TESTED.
//!
//! Tests marked "healthy" need every start-up check to pass, which needs
//! the jail to refuse `socket(AF_INET)` with EACCES and to start no
//! program: they fail, naming the failed checks, where it does not.

use std::io::{BufRead, BufReader, Read, Write};
use std::net::{SocketAddr, TcpStream};
use std::os::fd::AsFd;
use std::path::{Path, PathBuf};
use std::process::{Child, Command, Stdio};
use std::time::{Duration, Instant};

fn is_root() -> bool {
    rustix::process::geteuid().is_root()
}

/// Skips (returns false) where the test cannot run: not root.
fn can_run(test: &str) -> bool {
    if is_root() {
        return true;
    }
    eprintln!("NOT TESTED as an unprivileged user: {test} needs root for a network namespace");
    false
}

/// A network namespace with only loopback, entered by the calling thread
/// (and inherited by every process it starts). Kept alive by a holder
/// process that ends when this is dropped.
struct Netns {
    holder: Child,
}

impl Netns {
    fn enter() -> Netns {
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
            .expect("unshare (util-linux) and ip (iproute2) are installed");
        let mut line = String::new();
        BufReader::new(holder.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        assert_eq!(
            line.trim(),
            "up",
            "the namespace's loopback did not come up"
        );
        let ns = std::fs::File::open(format!("/proc/{}/ns/net", holder.id())).unwrap();
        rustix::thread::move_into_link_name_space(
            ns.as_fd(),
            Some(rustix::thread::LinkNameSpaceType::Network),
        )
        .expect("setns into the test's network namespace");
        Netns { holder }
    }
}

impl Drop for Netns {
    fn drop(&mut self) {
        drop(self.holder.stdin.take());
        let _ = self.holder.wait();
    }
}

fn sandbox_python() -> (String, Option<String>) {
    match std::env::var("CODEJAIL_SANDBOX_PYTHON") {
        Ok(bin) => (bin, std::env::var("CODEJAIL_SANDBOX_USER").ok()),
        Err(_) => ("/usr/bin/python3".into(), None),
    }
}

/// A running `codejail serve`.
struct Server {
    child: Option<Child>,
    addr: SocketAddr,
    dir: tempfile::TempDir,
}

impl Server {
    /// Starts the server with `[service]` keys and whole sections added to
    /// the test's settings.
    fn start(service: &str, more: &str) -> Server {
        Server::start_with_env(service, more, &[])
    }

    fn start_with_env(service: &str, more: &str, env: &[(&str, &str)]) -> Server {
        Server::start_with_jail("", service, more, env)
    }

    /// The same, with `jail` keys added to the jail's section.
    fn start_with_jail(jail: &str, service: &str, more: &str, env: &[(&str, &str)]) -> Server {
        let (mut child, dir) = Server::spawn(jail, service, more, env);
        let jails = dir.path().join("jails");
        let mut line = String::new();
        BufReader::new(child.stdout.take().unwrap())
            .read_line(&mut line)
            .unwrap();
        let addr = line
            .trim()
            .strip_prefix("codejail serve: listening on http://")
            .unwrap_or_else(|| {
                let log = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
                panic!("the server did not start: {line:?}\n{log}")
            })
            .parse()
            .unwrap();
        assert!(
            !jails.join("codejail-999999999.1-leftov").exists(),
            "the server did not collect a dead owner's jail directory"
        );
        Server {
            child: Some(child),
            addr,
            dir,
        }
    }

    /// The server's process, started with these settings, not yet
    /// listening; its stdout piped, its log in the directory's `log`.
    fn spawn(
        jail: &str,
        service: &str,
        more: &str,
        env: &[(&str, &str)],
    ) -> (Child, tempfile::TempDir) {
        let dir = tempfile::tempdir().unwrap();
        let jails = dir.path().join("jails");
        std::fs::create_dir(&jails).unwrap();
        // What a dead codejail left: gone once the server has started.
        std::fs::create_dir_all(jails.join("codejail-999999999.1-leftov/tmp")).unwrap();
        let (bin, user) = sandbox_python();
        let user = user
            .map(|u| format!("user = \"{u}\"\n"))
            .unwrap_or_default();
        // The test's keys, then these defaults where it sets none.
        let mut section = service.to_owned();
        for (key, value) in [("enabled", "true"), ("pool_size", "2")] {
            if !service
                .lines()
                .any(|l| l.split('=').next().unwrap_or("").trim() == key)
            {
                section.push_str(&format!("\n{key} = {value}"));
            }
        }
        let settings = format!(
            "[jails.python]\nbin = \"{bin}\"\n{user}jail_parent = \"{}\"\n{jail}\n\n[service]\n{section}\n\n{more}\n",
            jails.display()
        );
        let config = dir.path().join("codejail.toml");
        std::fs::write(&config, settings).unwrap();
        let log = std::fs::File::create(dir.path().join("log")).unwrap();
        let child = Command::new(env!("CARGO_BIN_EXE_codejail"))
            .args(["--config"])
            .arg(&config)
            .args([
                "--log-format",
                "json",
                "--log-level",
                "info",
                "serve",
                "--listen",
                "127.0.0.1:0",
            ])
            .envs(env.iter().copied())
            .stdin(Stdio::null())
            .stdout(Stdio::piped())
            .stderr(log)
            .spawn()
            .unwrap();
        (child, dir)
    }

    fn log(&self) -> String {
        std::fs::read_to_string(self.dir.path().join("log")).unwrap()
    }

    fn jail_parent(&self) -> PathBuf {
        self.dir.path().join("jails")
    }

    /// The start-up checks that failed, from the log.
    fn failed_checks(&self) -> Vec<String> {
        self.log()
            .lines()
            .filter(|l| l.contains("startup check") && l.contains("failed"))
            .map(str::to_owned)
            .collect()
    }

    /// Panics, naming the failed checks, unless the service is healthy.
    fn require_healthy(&self) {
        let r = get(self.addr, "/health/");
        assert!(
            r.status == 200,
            "the service is not healthy ({}); its start-up checks failed:\n{}",
            r.text(),
            self.failed_checks().join("\n")
        );
    }

    fn stop(&mut self) -> std::process::ExitStatus {
        let mut child = self.child.take().unwrap();
        let _ = rustix::process::kill_process(
            rustix::process::Pid::from_child(&child),
            rustix::process::Signal::TERM,
        );
        child.wait().unwrap()
    }
}

impl Drop for Server {
    /// A graceful stop, so that nothing of the test is left; a kill after
    /// ten seconds.
    fn drop(&mut self) {
        if let Some(mut child) = self.child.take() {
            let _ = rustix::process::kill_process(
                rustix::process::Pid::from_child(&child),
                rustix::process::Signal::TERM,
            );
            let end = Instant::now() + Duration::from_secs(10);
            while Instant::now() < end && matches!(child.try_wait(), Ok(None)) {
                std::thread::sleep(Duration::from_millis(20));
            }
            let _ = child.kill();
            let _ = child.wait();
        }
    }
}

struct Response {
    status: u16,
    headers: Vec<(String, String)>,
    body: Vec<u8>,
}

impl Response {
    fn text(&self) -> String {
        String::from_utf8_lossy(&self.body).into_owned()
    }
    fn header(&self, name: &str) -> Option<&str> {
        self.headers
            .iter()
            .find(|(k, _)| k.eq_ignore_ascii_case(name))
            .map(|(_, v)| v.as_str())
    }
    /// `(status, content type, body)`.
    fn all(&self) -> (u16, String, String) {
        (
            self.status,
            self.header("content-type").unwrap_or("").to_owned(),
            self.text(),
        )
    }
}

/// One HTTP/1.1 request on a fresh connection.
fn request(addr: SocketAddr, head: &str, body: &[u8]) -> Response {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_secs(5)).unwrap();
    s.set_read_timeout(Some(Duration::from_secs(60))).unwrap();
    let mut out = head.replace('\n', "\r\n").into_bytes();
    out.extend_from_slice(format!("Host: {addr}\r\nConnection: close\r\n\r\n").as_bytes());
    out.extend_from_slice(body);
    let _ = s.write_all(&out);
    let mut raw = Vec::new();
    let _ = s.read_to_end(&mut raw);
    parse_response(&raw)
}

fn parse_response(raw: &[u8]) -> Response {
    let split = raw
        .windows(4)
        .position(|w| w == b"\r\n\r\n")
        .unwrap_or_else(|| panic!("no response: {:?}", String::from_utf8_lossy(raw)));
    let head = String::from_utf8_lossy(&raw[..split]).into_owned();
    let mut lines = head.split("\r\n");
    let status = lines
        .next()
        .unwrap()
        .split(' ')
        .nth(1)
        .unwrap()
        .parse()
        .unwrap();
    let headers = lines
        .filter_map(|l| l.split_once(':'))
        .map(|(k, v)| (k.trim().to_owned(), v.trim().to_owned()))
        .collect();
    Response {
        status,
        headers,
        body: raw[split + 4..].to_vec(),
    }
}

fn get(addr: SocketAddr, path: &str) -> Response {
    request(addr, &format!("GET {path} HTTP/1.1\n"), b"")
}

/// A multipart/form-data body: fields, then files (part name = file name,
/// as `requests` writes `files=[(name, bytes)]`).
fn multipart(fields: &[(&str, &str)], files: &[(&str, &[u8])]) -> (String, Vec<u8>) {
    let boundary = "c0d3ja1lb0undary";
    let mut body = Vec::new();
    for (name, value) in fields {
        body.extend_from_slice(
            format!(
                "--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"\r\n\r\n{value}\r\n"
            )
            .as_bytes(),
        );
    }
    for (name, data) in files {
        body.extend_from_slice(
            format!("--{boundary}\r\nContent-Disposition: form-data; name=\"{name}\"; filename=\"{name}\"\r\n\r\n").as_bytes(),
        );
        body.extend_from_slice(data);
        body.extend_from_slice(b"\r\n");
    }
    body.extend_from_slice(format!("--{boundary}--\r\n").as_bytes());
    (format!("multipart/form-data; boundary={boundary}"), body)
}

fn post(addr: SocketAddr, content_type: &str, body: &[u8]) -> Response {
    request(
        addr,
        &format!(
            "POST /api/v0/code-exec HTTP/1.1\nContent-Type: {content_type}\nContent-Length: {}\n",
            body.len()
        ),
        body,
    )
}

/// POSTs a payload (and files) as multipart, as edx-platform does.
fn exec(addr: SocketAddr, payload: &str, files: &[(&str, &[u8])]) -> Response {
    let (ct, body) = multipart(&[("payload", payload)], files);
    post(addr, &ct, &body)
}

fn urlencode(s: &str) -> String {
    s.bytes()
        .map(|b| match b {
            b'A'..=b'Z' | b'a'..=b'z' | b'0'..=b'9' | b'-' | b'_' | b'.' | b'~' => {
                (b as char).to_string()
            }
            b' ' => "+".into(),
            b => format!("%{b:02X}"),
        })
        .collect()
}

const JSON: &str = "application/json";

fn error_body(text: &str) -> String {
    format!("{{\"error\":{}}}", serde_json::to_string(text).unwrap())
}

/// A zip with `course_library/__init__.py` defining
/// `triangular_number`, made by Python's zipfile.
fn course_library(dir: &Path) -> Vec<u8> {
    let zip = dir.join("python_lib.zip");
    let status = Command::new("python3")
        .args([
            "-c",
            "import sys, zipfile\nwith zipfile.ZipFile(sys.argv[1], 'w') as z:\n    z.writestr('course_library/__init__.py', 'def triangular_number(n):\\n    return n * (n + 1) // 2\\n')",
        ])
        .arg(&zip)
        .status()
        .unwrap();
    assert!(status.success());
    std::fs::read(zip).unwrap()
}

#[test]
fn refusals_that_need_no_healthy_jail() {
    if !can_run("refusals_that_need_no_healthy_jail") {
        return;
    }
    let _ns = Netns::enter();
    // Not enabled (codejail-service's default): 500, whatever is posted.
    let mut s = Server::start("enabled = false", "");
    let payload = r#"{"code": "x = 1", "globals_dict": {}}"#;
    assert_eq!(
        exec(s.addr, payload, &[]).all(),
        (500, JSON.into(), error_body("Codejail service not enabled"))
    );
    assert_eq!(
        post(s.addr, "application/json", b"{}").all(),
        (500, JSON.into(), error_body("Codejail service not enabled"))
    );
    // Methods, as DRF answers them.
    let r = get(s.addr, "/api/v0/code-exec");
    assert_eq!(
        (r.status, r.text(), r.header("allow")),
        (
            405,
            r#"{"detail":"Method \"GET\" not allowed."}"#.into(),
            Some("POST, OPTIONS")
        )
    );
    let r = request(
        s.addr,
        "PUT /api/v0/code-exec HTTP/1.1\nContent-Length: 0\n",
        b"",
    );
    assert_eq!(
        (r.status, r.text()),
        (405, r#"{"detail":"Method \"PUT\" not allowed."}"#.into())
    );
    let r = request(s.addr, "OPTIONS /api/v0/code-exec HTTP/1.1\n", b"");
    assert_eq!((r.status, r.header("allow")), (200, Some("POST, OPTIONS")));
    // Paths, as Django answers them (APPEND_SLASH for /health).
    let r = get(s.addr, "/api/v0/code-exec/");
    assert_eq!(r.status, 404);
    assert!(r.text().contains("<h1>Not Found</h1>"), "{}", r.text());
    let r = get(s.addr, "/health?x=1");
    assert_eq!(
        (r.status, r.header("location")),
        (301, Some("/health/?x=1"))
    );
    assert_eq!(s.stop().code(), Some(0));

    // A start-up check that fails makes health 503 and code-exec 500: here
    // the egress check, made to reach a port that answers.
    let listener = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let open = listener.local_addr().unwrap();
    let mut s = Server::start(&format!("egress_probes = [\"{open}\"]"), "");
    assert_eq!(
        get(s.addr, "/health/").all(),
        (503, JSON.into(), r#"{"status": "UNAVAILABLE"}"#.into())
    );
    assert_eq!(
        exec(s.addr, payload, &[]).all(),
        (
            500,
            JSON.into(),
            error_body("Codejail service is not correctly configured")
        )
    );
    assert!(
        s.log().contains("Block egress from webapp")
            && s.log().contains("Expected a refusal, but connected"),
        "{}",
        s.log()
    );
    assert_eq!(s.stop().code(), Some(0));

    // A token, when set: 401 first, then the usual answers.
    let s = Server::start("enabled = false\ntoken = \"s3cret-t0ken-0123\"", "");
    let r = exec(s.addr, payload, &[]);
    assert_eq!(
        (r.status, r.text(), r.header("www-authenticate")),
        (
            401,
            r#"{"detail":"Authentication credentials were not provided."}"#.into(),
            Some("Bearer")
        )
    );
    let with = |token: &str| {
        let (ct, body) = multipart(&[("payload", payload)], &[]);
        request(
            s.addr,
            &format!(
                "POST /api/v0/code-exec HTTP/1.1\nAuthorization: Bearer {token}\nContent-Type: {ct}\nContent-Length: {}\n",
                body.len()
            ),
            &body,
        )
    };
    assert_eq!(with("s3cret-t0ken-0124").status, 401);
    assert_eq!(
        with("s3cret-t0ken-0123").all(),
        (500, JSON.into(), error_body("Codejail service not enabled"))
    );
    assert_eq!(get(s.addr, "/metrics").status, 401);
    // Health needs no token: load balancers ask it.
    assert_ne!(get(s.addr, "/health/").status, 401);
}

/// Healthy: every refusal of the code-exec view, in its order and words.
#[test]
fn refusals_in_codejail_services_order_and_words() {
    if !can_run("refusals_in_codejail_services_order_and_words") {
        return;
    }
    let _ns = Netns::enter();
    let s = Server::start(
        "max_form_bytes = 4096\nmax_file_bytes = 2048\nmax_body_bytes = 8192",
        "",
    );
    s.require_healthy();
    let bad = |r: Response, text: &str| assert_eq!(r.all(), (400, JSON.into(), error_body(text)));
    let missing = "Missing 'payload' parameter in POST body";
    // An empty payload is there: json.loads('') refuses it.
    bad(
        exec(s.addr, "", &[]),
        "Unable to parse payload JSON: Expecting value: line 1 column 1 (char 0)",
    );
    let (ct, body) = multipart(&[("other", "1")], &[]);
    bad(post(s.addr, &ct, &body), missing);
    bad(
        post(s.addr, "application/x-www-form-urlencoded", b""),
        missing,
    );
    bad(post(s.addr, "application/json", b""), missing);
    // A payload sent as a file is no field.
    let (ct, body) = multipart(
        &[],
        &[("payload", br#"{"code": "x = 1", "globals_dict": {}}"#)],
    );
    bad(post(s.addr, &ct, &body), missing);
    // Not a form: DRF's 415.
    let r = post(s.addr, "application/json", br#"{"payload": "{}"}"#);
    assert_eq!(
        (r.status, r.text()),
        (
            415,
            r#"{"detail":"Unsupported media type \"application/json\" in request."}"#.into()
        )
    );
    for (payload, message) in [
        ("Not JSON", "Expecting value: line 1 column 1 (char 0)"),
        (
            "{\"code\": \"x\",\n \"globals_dict\": {}",
            "Expecting ',' delimiter: line 2 column 20 (char 33)",
        ),
        (
            "{\"code\" \"x\"}",
            "Expecting ':' delimiter: line 1 column 9 (char 8)",
        ),
        (
            "{code: 1}",
            "Expecting property name enclosed in double quotes: line 1 column 2 (char 1)",
        ),
        (
            "{\"é\": \"\\q\"}",
            "Invalid \\escape: line 1 column 8 (char 7)",
        ),
        (
            "{\"a\": \"x",
            "Unterminated string starting at: line 1 column 7 (char 6)",
        ),
        ("{} {}", "Extra data: line 1 column 4 (char 3)"),
    ] {
        bad(
            exec(s.addr, payload, &[]),
            &format!("Unable to parse payload JSON: {message}"),
        );
    }
    for (payload, message) in [
        ("[]", "$: [] is not of type 'object'"),
        (
            r#"{"globals_dict": {}}"#,
            "$: 'code' is a required property",
        ),
        (
            r#"{"code": "x"}"#,
            "$: 'globals_dict' is a required property",
        ),
        (
            r#"{"code": 3, "globals_dict": {}}"#,
            "$.code: 3 is not of type 'string'",
        ),
        (
            r#"{"code": "x", "globals_dict": [1, "a"]}"#,
            "$.globals_dict: [1, 'a'] is not of type 'object'",
        ),
        (
            r#"{"code": "x", "globals_dict": {}, "python_path": ["a", 2]}"#,
            "$.python_path[1]: 2 is not of type 'string'",
        ),
        (
            r#"{"code": "x", "globals_dict": {}, "python_path": "p"}"#,
            "$.python_path: 'p' is not valid under any of the given schemas",
        ),
        (
            r#"{"code": "x", "globals_dict": {}, "slug": 5}"#,
            "$.slug: 5 is not valid under any of the given schemas",
        ),
        (
            r#"{"code": "x", "globals_dict": {}, "limit_overrides_context": {}}"#,
            "$.limit_overrides_context: {} is not valid under any of the given schemas",
        ),
        (
            r#"{"code": "x", "globals_dict": {}, "unsafely": "yes"}"#,
            "$.unsafely: 'yes' is not of type 'boolean'",
        ),
    ] {
        bad(
            exec(s.addr, payload, &[]),
            &format!("Payload JSON did not match schema at path {message}"),
        );
    }
    let ok = r#"{"code": "x = 1", "globals_dict": {}}"#;
    bad(
        exec(
            s.addr,
            r#"{"code": "x = 1", "globals_dict": {}, "python_path": ["python_lib.zip", "/etc"]}"#,
            &[],
        ),
        "Only allowed entry in 'python_path' is 'python_lib.zip'",
    );
    bad(
        exec(
            s.addr,
            ok,
            &[("python_lib.zip", b"PK"), ("../evil.py", b"x")],
        ),
        "Only allowed name for uploaded file is 'python_lib.zip'",
    );
    bad(
        exec(
            s.addr,
            r#"{"code": "x = 1", "globals_dict": {}, "unsafely": true}"#,
            &[],
        ),
        "Refusing codejail execution with unsafely=true",
    );
    // The source's order: python_path before files before unsafely.
    bad(
        exec(
            s.addr,
            r#"{"code": "x", "globals_dict": {}, "python_path": ["a"], "unsafely": true}"#,
            &[("b", b"")],
        ),
        "Only allowed entry in 'python_path' is 'python_lib.zip'",
    );
    bad(
        exec(
            s.addr,
            r#"{"code": "x", "globals_dict": {}, "unsafely": true}"#,
            &[("b", b"")],
        ),
        "Only allowed name for uploaded file is 'python_lib.zip'",
    );
    // Caps: the body, the form's fields, one file.
    let r = post(
        s.addr,
        "application/x-www-form-urlencoded",
        &vec![b'a'; 9000],
    );
    assert_eq!(r.status, 413, "{}", r.text());
    // A form-encoded body's fields are capped by the body's cap alone, as
    // in codejail-service (DRF's FormParser is out of reach of Django's
    // cap); a multipart field by max_form_bytes, its name, its value and
    // two bytes counted, as Django counts them.
    let big = format!("payload={}", "a".repeat(5000));
    bad(
        post(s.addr, "application/x-www-form-urlencoded", big.as_bytes()),
        "Unable to parse payload JSON: Expecting value: line 1 column 1 (char 0)",
    );
    let (ct, body) = multipart(&[("payload", &"a".repeat(4096 - 9))], &[]);
    assert_eq!(post(s.addr, &ct, &body).status, 400);
    let (ct, body) = multipart(&[("payload", &"a".repeat(4096 - 8))], &[]);
    assert_eq!(post(s.addr, &ct, &body).status, 413);
    assert_eq!(
        exec(s.addr, ok, &[("python_lib.zip", &[0u8; 3000])]).status,
        413
    );
    let r = request(
        s.addr,
        "POST /api/v0/code-exec HTTP/1.1\nContent-Type: application/x-www-form-urlencoded\nContent-Length: 100000000\n",
        b"",
    );
    assert_eq!(r.status, 413);
    // A broken multipart body.
    let r = post(
        s.addr,
        "multipart/form-data; boundary=zz",
        b"--zz\r\nContent-Disposition: form-data; name=\"payload\"\r\n\r\nunterminated",
    );
    assert_eq!(r.status, 400);
    assert!(
        r.text()
            .starts_with("{\"detail\":\"Multipart form parse error - "),
        "{}",
        r.text()
    );
    // And the urlencoded form works like the multipart one.
    let body = format!(
        "payload={}",
        urlencode(r#"{"code": "y = x * 2", "globals_dict": {"x": 21}}"#)
    );
    assert_eq!(
        post(s.addr, "application/x-www-form-urlencoded", body.as_bytes()).all(),
        (
            200,
            JSON.into(),
            r#"{"globals_dict":{"x": 21, "y": 42}}"#.into()
        )
    );
    // Nothing was left in the jail parent but the pool's directory.
    let left: Vec<_> = std::fs::read_dir(s.jail_parent())
        .unwrap()
        .flatten()
        .map(|e| e.file_name())
        .collect();
    assert!(
        left.iter()
            .all(|n| n.to_string_lossy().starts_with("codejail-warm-")),
        "{left:?}"
    );
}

/// Healthy: values in both directions, errors with the input's globals,
/// the course library.
#[test]
fn globals_round_trip_and_errors_echo_the_input() {
    if !can_run("globals_round_trip_and_errors_echo_the_input") {
        return;
    }
    let _ns = Netns::enter();
    let s = Server::start("", "[limit_overrides.big-course]\nrealtime = 4\ncpu = 4\n");
    s.require_healthy();
    let r = exec(
        s.addr,
        r#"{"code": "out = [n, i, -i, big + 1, s]", "globals_dict": {"n": NaN, "i": Infinity, "big": 123456789012345678901234567890, "s": "\ud800 caf\u00e9"}, "python_path": null, "limit_overrides_context": null, "slug": null, "unsafely": false}"#,
        &[],
    );
    assert_eq!(
        r.all(),
        (
            200,
            JSON.into(),
            r#"{"globals_dict":{"n": NaN, "i": Infinity, "big": 123456789012345678901234567890, "s": "\ud800 caf\u00e9", "out": [NaN, Infinity, -Infinity, 123456789012345678901234567891, "\ud800 caf\u00e9"]}}"#.into()
        )
    );
    // An exception: the input's globals, exactly as sent, and CodeJail's
    // message.
    let globals = r#"{"keep": [1, 2.50, NaN],  "x": 1e400}"#;
    let r = exec(
        s.addr,
        &format!(r#"{{"code": "keep = 0\n1/0", "globals_dict": {globals}}}"#),
        &[],
    );
    assert_eq!(r.status, 200);
    let body = r.text();
    let prefix = format!(
        "{{\"globals_dict\":{globals},\"emsg\":\"Couldn't execute jailed code: stdout: b'', stderr: b'Traceback (most recent call last):\\\\n"
    );
    assert!(body.starts_with(&prefix), "{body}");
    assert!(
        body.ends_with("ZeroDivisionError: division by zero\\\\n' with status code: 1\"}"),
        "{body}"
    );
    // Exited with status 0 before its globals came back: what
    // codejail-service answers (CodeJail's `json.loads` of an empty stdout).
    for code in ["import sys\\nsys.exit(0)", "import os\\nos._exit(0)"] {
        let r = exec(
            s.addr,
            &format!(r#"{{"code": "{code}", "globals_dict": {{"a": 1}}}}"#),
            &[],
        );
        assert_eq!(
            r.all(),
            (
                200,
                JSON.into(),
                r#"{"globals_dict":{"a": 1},"emsg":"Expecting value: line 1 column 1 (char 0)"}"#
                    .into()
            ),
            "{code}"
        );
    }
    // python_lib.zip, as edx-platform sends it.
    let lib = course_library(s.dir.path());
    let payload = r#"{"code": "from course_library import triangular_number\nresult = triangular_number(6)", "globals_dict": {}, "python_path": ["python_lib.zip"]}"#;
    assert_eq!(
        exec(s.addr, payload, &[("python_lib.zip", &lib)]).all(),
        (
            200,
            JSON.into(),
            r#"{"globals_dict":{"result": 21}}"#.into()
        )
    );
    // The last of two files of one name wins.
    assert_eq!(
        exec(
            s.addr,
            payload,
            &[("python_lib.zip", b"not a zip"), ("python_lib.zip", &lib)]
        )
        .status,
        200
    );
    // python_path without the file: never a file of the server's own.
    assert_eq!(
        exec(s.addr, payload, &[]).all(),
        (
            200,
            JSON.into(),
            r#"{"globals_dict":{},"emsg":"[Errno 2] No such file or directory: 'python_lib.zip'"}"#
                .into()
        )
    );
    // A limit context's overrides apply; one that has none is accepted,
    // with the global limits.
    let slow = r#"import time\ntime.sleep(1.5)\nout = 1"#;
    assert_eq!(
        exec(s.addr, &format!(r#"{{"code": "{slow}", "globals_dict": {{}}, "limit_overrides_context": "big-course"}}"#), &[]).text(),
        r#"{"globals_dict":{"out": 1}}"#
    );
    assert!(
        exec(s.addr, &format!(r#"{{"code": "{slow}", "globals_dict": {{}}, "limit_overrides_context": "small-course"}}"#), &[])
            .text()
            .ends_with("with status code: -9\"}"),
    );
    // A limit context that has no overrides is accepted.
    assert_eq!(
        exec(s.addr, r#"{"code": "out = 1 + 1", "globals_dict": {}, "limit_overrides_context": "xxxxxxx some junk xxxxxxxx", "slug": "hw5"}"#, &[]).text(),
        r#"{"globals_dict":{"out": 2}}"#
    );
}

/// Healthy: what the jail denies, as CodeJail under AppArmor shows it.
#[test]
fn denials_look_like_codejails() {
    if !can_run("denials_look_like_codejails") {
        return;
    }
    let _ns = Netns::enter();
    let s = Server::start_with_env(
        "",
        "[limits]\nvmem = \"1G\"\nrealtime = 4\ncpu = 4\n",
        &[
            ("CJS_TEST_ENV_LEAKAGE", "1"),
            ("DJANGO_SETTINGS_MODULE", "x"),
            ("DEBIAN_FRONTEND", "noninteractive"),
        ],
    );
    s.require_healthy();
    let emsg = |code: &str| {
        let r = exec(
            s.addr,
            &serde_json::json!({"code": code, "globals_dict": {}}).to_string(),
            &[],
        );
        assert_eq!(r.status, 200);
        let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
        v["emsg"]
            .as_str()
            .unwrap_or_else(|| panic!("no emsg for {code:?}: {}", r.text()))
            .to_owned()
    };
    for code in [
        "open('/etc/passwd').read()",
        "import os; os.listdir('/')",
        "open('/etc/passwd', 'a')",
        "open('/var/tmp/codejail-probe', 'w')",
    ] {
        assert!(
            emsg(code).contains("PermissionError: [Errno 13] Permission denied"),
            "{code}"
        );
    }
    let e = emsg("arr = [bytearray(1024 * 32) for _ in range(32 * 1024)]");
    assert!(e.contains("MemoryError"), "{e}");
    let started = Instant::now();
    assert_eq!(
        emsg(
            "import signal, time\ndef ignore(s, f):\n    pass\nsignal.signal(signal.SIGINT, ignore)\nsignal.signal(signal.SIGTERM, ignore)\ntime.sleep(30.0)"
        ),
        "Couldn't execute jailed code: stdout: b'', stderr: b'' with status code: -9"
    );
    assert!(
        started.elapsed() < Duration::from_secs(10),
        "{:?}",
        started.elapsed()
    );
    let r = exec(
        s.addr,
        r#"{"code": "import os; out = {**os.environ}", "globals_dict": {}}"#,
        &[],
    );
    let v: serde_json::Value = serde_json::from_slice(&r.body).unwrap();
    let env = &v["globals_dict"]["out"];
    assert!(env["PATH"].is_string(), "{env}");
    for leaked in [
        "DEBIAN_FRONTEND",
        "DJANGO_SETTINGS_MODULE",
        "CJS_TEST_ENV_LEAKAGE",
        "HOME",
    ] {
        assert!(env.get(leaked).is_none(), "{leaked} leaked: {env}");
    }
    // No program starts (last: on a jail that lets programs start this is
    // what fails).
    for program in [
        "'/usr/bin/true'",
        "'/usr/bin/ls'",
        "sys.executable",
        "'python3'",
    ] {
        let e = emsg(&format!(
            "import subprocess, sys\nsubprocess.run({program})"
        ));
        assert!(
            e.contains("BlockingIOError: [Errno 11] Resource temporarily unavailable")
                || e.contains("PermissionError: [Errno 13] Permission denied"),
            "{program}: {e}"
        );
    }
}

/// Healthy: numpy and matplotlib (a PNG) from the sandbox virtualenv.
#[test]
fn numpy_and_matplotlib_in_the_sandbox_venv() {
    if !can_run("numpy_and_matplotlib_in_the_sandbox_venv") {
        return;
    }
    if std::env::var_os("CODEJAIL_SANDBOX_PYTHON").is_none() {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI sets CODEJAIL_SANDBOX_PYTHON"
        );
        eprintln!(
            "NOT TESTED: CODEJAIL_SANDBOX_PYTHON is not set (cargo xtask setup-sandbox makes one)"
        );
        return;
    }
    let _ns = Netns::enter();
    // matplotlib writes its cache under TMPDIR: files must be allowed.
    let s = Server::start("", "[limits]\nrealtime = 20\ncpu = 20\nfsize = \"10M\"\n");
    s.require_healthy();
    let r = exec(
        s.addr,
        r#"{"code": "import numpy as np\nout = int(np.linalg.solve(np.array([[2.0, 1.0], [1.0, 3.0]]), np.array([3.0, 5.0])).round().sum())", "globals_dict": {}}"#,
        &[],
    );
    assert_eq!(r.text(), r#"{"globals_dict":{"out": 2}}"#);
    let code = "import io, matplotlib\nmatplotlib.use('Agg')\nimport matplotlib.pyplot as plt\nplt.plot([1, 2, 3], [1, 4, 9])\nbuf = io.BytesIO()\nplt.savefig(buf, format='png')\npng = buf.getvalue()\nout = [png[:8].hex(), len(png) > 1000]";
    let r = exec(
        s.addr,
        &serde_json::json!({"code": code, "globals_dict": {}}).to_string(),
        &[],
    );
    assert_eq!(
        r.text(),
        r#"{"globals_dict":{"out": ["89504e470d0a1a0a", true]}}"#,
        "{}",
        r.text()
    );
}

/// The service's warm interpreters have imported the jail's `preload`
/// before a request's code runs (and a request that changes a preloaded
/// module changes nothing the next one sees). Shown able to fail: without
/// `preload` nothing of it is imported yet.
#[test]
fn support_the_service_serves_from_preloaded_interpreters() {
    if !can_run("support_the_service_serves_from_preloaded_interpreters") {
        return;
    }
    if codejail_tests::sandbox_python().is_none() {
        return;
    }
    let _ns = Netns::enter();
    let look = r#"{"code": "import sys\nout = sorted(m for m in ('numpy', 'random2', 'six') if m in sys.modules)\nimport six\nflag = six.PY3", "globals_dict": {}}"#;
    let preloaded =
        Server::start_with_jail("preload = [\"numpy\", \"random2\", \"six\"]", "", "", &[]);
    preloaded.require_healthy();
    let change = r#"{"code": "import six\nsix.PY3 = 'changed'\nout = 1", "globals_dict": {}}"#;
    assert_eq!(
        exec(preloaded.addr, change, &[]).text(),
        r#"{"globals_dict":{"out": 1}}"#
    );
    for _ in 0..2 {
        let r = exec(preloaded.addr, look, &[]);
        assert_eq!(
            r.text(),
            r#"{"globals_dict":{"out": ["numpy", "random2", "six"], "flag": true}}"#
        );
    }
    drop(preloaded);
    let plain = Server::start("", "");
    plain.require_healthy();
    assert_eq!(
        exec(plain.addr, look, &[]).text(),
        r#"{"globals_dict":{"out": [], "flag": true}}"#
    );
}

/// A client written for codejail-service: edx-platform's `remote_exec`
/// (requests, multipart with python_lib.zip or urlencoded without files,
/// its timeouts), unchanged.
#[test]
fn a_python_client_written_for_codejail_service() {
    if !can_run("a_python_client_written_for_codejail_service") {
        return;
    }
    let Ok(python) = std::env::var("CODEJAIL_TEST_PYTHON") else {
        assert!(
            std::env::var_os("CI").is_none(),
            "CI sets CODEJAIL_TEST_PYTHON"
        );
        eprintln!("NOT TESTED: CODEJAIL_TEST_PYTHON (a Python with requests) is not set");
        return;
    };
    let _ns = Netns::enter();
    let s = Server::start("", "");
    s.require_healthy();
    let lib = course_library(s.dir.path());
    const CLIENT: &str = r#"
import json, math, sys
import requests

url = sys.argv[1] + "/api/v0/code-exec"
lib = open(sys.argv[2], "rb").read()

def send_safe_exec_request_v0(data):
    # What edx-platform's remote_exec does.
    globals_dict = data["globals_dict"]
    extra_files = data.pop("extra_files")
    payload = json.dumps(data)
    response = requests.post(url, files=extra_files, data={"payload": payload}, timeout=(0.5, 3.5))
    response.raise_for_status()
    response_json = response.json()
    emsg = response_json.get("emsg")
    globals_dict.update(response_json.get("globals_dict"))
    return emsg, response

g = {"x": 20, "nan": float("nan"), "inf": float("inf"), "big": 10 ** 40}
emsg, r = send_safe_exec_request_v0({
    "code": "from course_library import triangular_number\ny = x + triangular_number(3) - 6 + 22",
    "globals_dict": g,
    "python_path": ["python_lib.zip"],
    "limit_overrides_context": None,
    "slug": "course-v1:edX+Demo+2024/problem/1",
    "unsafely": False,
    "extra_files": [("python_lib.zip", lib)],
})
assert emsg is None, emsg
assert r.headers["content-type"] == "application/json", r.headers
assert g["y"] == 42 and g["big"] == 10 ** 40 and math.isnan(g["nan"]) and g["inf"] == math.inf, g

g = {"x": 1}
emsg, r = send_safe_exec_request_v0({"code": "raise ValueError('nope')", "globals_dict": g, "python_path": [], "limit_overrides_context": None, "slug": None, "unsafely": False, "extra_files": None})
assert emsg.startswith("Couldn't execute jailed code: stdout: b'', stderr: b'Traceback") and "ValueError: nope" in emsg, emsg
assert g == {"x": 1}, g
print("client ok")
"#;
    let lib_path = s.dir.path().join("lib.zip");
    std::fs::write(&lib_path, lib).unwrap();
    let out = Command::new(python)
        .args(["-c", CLIENT, &format!("http://{}", s.addr)])
        .arg(&lib_path)
        .output()
        .unwrap();
    assert!(
        out.status.success() && String::from_utf8_lossy(&out.stdout).contains("client ok"),
        "{}{}",
        String::from_utf8_lossy(&out.stdout),
        String::from_utf8_lossy(&out.stderr)
    );
}

/// Healthy: the bounded queue turns requests away with 503 and
/// Retry-After, never queueing without end; metrics and logs say so.
#[test]
fn a_full_queue_answers_503_and_metrics_and_logs_tell() {
    if !can_run("a_full_queue_answers_503_and_metrics_and_logs_tell") {
        return;
    }
    let _ns = Netns::enter();
    let s = Server::start(
        "pool_size = 1\nqueue_length = 0",
        "[limits]\nrealtime = 3\n",
    );
    s.require_healthy();
    let addr = s.addr;
    let slow = std::thread::spawn(move || {
        exec(
            addr,
            r#"{"code": "import time\ntime.sleep(1.5)\ndone = 1", "globals_dict": {}, "slug": "slow-one"}"#,
            &[],
        )
    });
    std::thread::sleep(Duration::from_millis(500));
    let r = exec(s.addr, r#"{"code": "x = 1", "globals_dict": {}}"#, &[]);
    assert_eq!(
        (r.status, r.header("retry-after"), r.header("content-type")),
        (503, Some("1"), Some(JSON))
    );
    assert_eq!(
        slow.join().unwrap().text(),
        r#"{"globals_dict":{"done": 1}}"#
    );
    let killed = exec(
        s.addr,
        r#"{"code": "while True: pass", "globals_dict": {}, "slug": "spin"}"#,
        &[],
    );
    // The CPU limit (1 s) ends it first: SIGXCPU.
    assert!(
        killed.text().contains("with status code: -24"),
        "{}",
        killed.text()
    );
    let metrics = get(s.addr, "/metrics").text();
    for line in [
        "codejail_requests_total{outcome=\"busy\"} 1",
        "codejail_requests_total{outcome=\"success\"} 1",
        "codejail_requests_total{outcome=\"code_error\"} 1",
        "codejail_pool_size 1",
        "codejail_queue_length 0",
        "codejail_startup_checks_ok 1",
    ] {
        assert!(metrics.contains(line), "{line} not in:\n{metrics}");
    }
    assert!(
        metrics.contains("codejail_kills_total{reason="),
        "{metrics}"
    );
    assert!(
        metrics.contains("codejail_run_duration_seconds_count 2"),
        "{metrics}"
    );
    // JSON log lines with the request's id, slug, outcome; never the code.
    let log = s.log();
    let line = log
        .lines()
        .find(|l| l.contains("slow-one") && l.contains("\"message\":\"code-exec\""))
        .unwrap_or_else(|| panic!("no log line for the slow request:\n{log}"));
    let v: serde_json::Value = serde_json::from_str(line).unwrap();
    assert_eq!(v["outcome"], "success");
    assert!(
        v["request_id"].is_string() && v["duration_ms"].is_number(),
        "{v}"
    );
    let spin: serde_json::Value = serde_json::from_str(
        log.lines()
            .find(|l| l.contains("\"spin\"") && l.contains("\"message\":\"code-exec\""))
            .unwrap(),
    )
    .unwrap();
    assert!(spin["killed_by"].is_string(), "{spin}");
    assert!(!log.contains("time.sleep"), "the code was logged");
}

/// Healthy: SIGTERM lets a request in flight finish, then the server
/// exits 0 leaving no process and no directory behind.
#[test]
fn sigterm_finishes_requests_in_flight_and_leaves_nothing() {
    if !can_run("sigterm_finishes_requests_in_flight_and_leaves_nothing") {
        return;
    }
    let _ns = Netns::enter();
    let mut s = Server::start("", "[limits]\nrealtime = 3\n");
    s.require_healthy();
    let pid = s.child.as_ref().unwrap().id();
    let addr = s.addr;
    let in_flight = std::thread::spawn(move || {
        exec(
            addr,
            r#"{"code": "import time\ntime.sleep(1)\ndone = 1", "globals_dict": {}}"#,
            &[],
        )
    });
    std::thread::sleep(Duration::from_millis(300));
    assert_eq!(s.stop().code(), Some(0));
    assert_eq!(
        in_flight.join().unwrap().text(),
        r#"{"globals_dict":{"done": 1}}"#
    );
    // No process of the server (its children name its jail parent), no
    // directory in the jail parent.
    let parent = s.jail_parent();
    let stray: Vec<String> = std::fs::read_dir("/proc")
        .unwrap()
        .flatten()
        .filter_map(|e| std::fs::read(e.path().join("cmdline")).ok())
        .map(|c| String::from_utf8_lossy(&c).replace('\0', " "))
        .filter(|c| c.contains(&*parent.to_string_lossy()))
        .collect();
    assert!(stray.is_empty(), "left running after pid {pid}: {stray:?}");
    let left: Vec<_> = std::fs::read_dir(&parent)
        .unwrap()
        .flatten()
        .map(|e| e.path())
        .collect();
    assert!(left.is_empty(), "left behind: {left:?}");
}

/// SIGTERM past its grace: the call running is ended by the cancel and
/// says so, and a request still waiting for an interpreter is answered
/// 503 with Retry-After (it never ran, and another server may take it),
/// not an error in its globals (`the call was cancelled before it
/// started`, which a client shows as its code's error).
#[test]
fn support_a_stop_past_its_grace_answers_a_waiting_request_503() {
    if !can_run("support_a_stop_past_its_grace_answers_a_waiting_request_503") {
        return;
    }
    let _ns = Netns::enter();
    let mut s = Server::start(
        "pool_size = 1\nqueue_length = 1\nshutdown_grace = 1",
        "[limits]\nrealtime = 20\n",
    );
    s.require_healthy();
    let addr = s.addr;
    let running = std::thread::spawn(move || {
        exec(
            addr,
            r#"{"code": "import time\ntime.sleep(6)\ndone = 1", "globals_dict": {}}"#,
            &[],
        )
    });
    std::thread::sleep(Duration::from_millis(500));
    let waiting =
        std::thread::spawn(move || exec(addr, r#"{"code": "x = 1", "globals_dict": {}}"#, &[]));
    std::thread::sleep(Duration::from_millis(500));
    let stopped = Instant::now();
    assert_eq!(s.stop().code(), Some(0), "{}", s.log());
    let took = stopped.elapsed();
    let running = running.join().unwrap();
    let waiting = waiting.join().unwrap();
    assert_eq!(
        (waiting.status, waiting.header("retry-after")),
        (503, Some("1")),
        "{} (the running call: {})",
        waiting.text(),
        running.text()
    );
    assert_eq!(running.status, 200, "{}", running.text());
    let answer: serde_json::Value = serde_json::from_str(&running.text()).unwrap();
    assert!(answer["emsg"].is_string(), "{answer}");
    assert!(took < Duration::from_secs(5), "the stop took {took:?}");
}

/// A client that does not read its answer does not hold a stop: the
/// server exits about a second after its grace, the answer cut. (Waiting
/// for every connection to end, the stop took the whole 15 s bound.)
#[test]
fn support_a_client_that_does_not_read_does_not_hold_the_stop() {
    if !can_run("support_a_client_that_does_not_read_does_not_hold_the_stop") {
        return;
    }
    let _ns = Netns::enter();
    let mut s = Server::start("shutdown_grace = 1", "[limits]\nrealtime = 20\n");
    s.require_healthy();
    let (ct, body) = multipart(
        &[(
            "payload",
            r#"{"code": "big = 'a' * 8000000", "globals_dict": {}}"#,
        )],
        &[],
    );
    let mut c = TcpStream::connect_timeout(&s.addr, Duration::from_secs(5)).unwrap();
    let head = format!(
        "POST /api/v0/code-exec HTTP/1.1\r\nHost: {}\r\nContent-Type: {ct}\r\nContent-Length: {}\r\nConnection: close\r\n\r\n",
        s.addr,
        body.len()
    );
    c.write_all(head.as_bytes()).unwrap();
    c.write_all(&body).unwrap();
    // The answer's first bytes: the call has ended and the answer, more
    // than the sockets hold, is being written.
    let mut first = [0u8; 12];
    c.read_exact(&mut first).unwrap();
    assert_eq!(&first, b"HTTP/1.1 200");
    std::thread::sleep(Duration::from_millis(300));
    let stopped = Instant::now();
    assert_eq!(s.stop().code(), Some(0), "{}", s.log());
    let took = stopped.elapsed();
    assert!(took < Duration::from_secs(5), "the stop took {took:?}");
    drop(c);
}

/// Every stop signal ends the service: SIGHUP once it listens, and
/// SIGTERM while its pool starts, before it listens (it stops once it is
/// up). Both were ignored: the command's signal thread took them, and the
/// service listened for SIGTERM and SIGINT of its own only once it
/// served. Each fails on that code (it ran on past the 30 s bound).
#[test]
fn support_a_sighup_or_a_stop_signal_in_start_up_stops_the_service() {
    if !can_run("support_a_sighup_or_a_stop_signal_in_start_up_stops_the_service") {
        return;
    }
    let _ns = Netns::enter();
    let ends_within = |mut child: Child, what: &str| {
        codejail_tests::exit_within(&mut child, Duration::from_secs(30))
            .unwrap_or_else(|| panic!("{what}: the service still ran 30 s later"))
    };
    let mut s = Server::start("", "");
    s.require_healthy();
    let child = s.child.take().unwrap();
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::HUP,
    )
    .unwrap();
    let status = ends_within(child, "SIGHUP");
    assert_eq!(status.code(), Some(0), "{}", s.log());

    let (child, dir) = Server::spawn("", "", "", &[]);
    // SIGTERM as soon as the command catches it (a few ms after its
    // start; its pool takes far longer to start).
    let catches_term = || {
        let status = std::fs::read_to_string(format!("/proc/{}/status", child.id()));
        let caught = status.ok().and_then(|s| {
            let hex = s.lines().find_map(|l| l.strip_prefix("SigCgt:"))?.trim();
            u64::from_str_radix(hex, 16).ok()
        });
        caught.is_some_and(|mask| mask & (1 << (libc::SIGTERM - 1)) != 0)
    };
    let end = Instant::now() + Duration::from_secs(10);
    while !catches_term() {
        assert!(Instant::now() < end, "the command never caught SIGTERM");
        std::thread::sleep(Duration::from_micros(200));
    }
    rustix::process::kill_process(
        rustix::process::Pid::from_child(&child),
        rustix::process::Signal::TERM,
    )
    .unwrap();
    let status = ends_within(child, "SIGTERM in start-up");
    let log = std::fs::read_to_string(dir.path().join("log")).unwrap_or_default();
    assert_eq!(status.code(), Some(0), "{log}");
}

/// Healthy: two replicas behind haproxy (retrying on connection failure);
/// one is killed in the middle of a bounded load and every request still
/// gets a correct answer.
#[test]
fn two_replicas_behind_haproxy_survive_one_killed() {
    if !can_run("two_replicas_behind_haproxy_survive_one_killed") {
        return;
    }
    let haproxy = ["/usr/sbin/haproxy", "/usr/bin/haproxy"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(haproxy) = haproxy else {
        assert!(
            std::env::var_os("CI").is_none(),
            "cargo xtask ci installs haproxy"
        );
        eprintln!("NOT TESTED: haproxy is not installed (apt-get install haproxy)");
        return;
    };
    let _ns = Netns::enter();
    let a = Server::start("", "");
    let mut b = Server::start("", "");
    a.require_healthy();
    b.require_healthy();
    let front = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let front_addr = front.local_addr().unwrap();
    drop(front);
    let cfg = a.dir.path().join("haproxy.cfg");
    std::fs::write(
        &cfg,
        format!(
            "global\n  maxconn 256\n  tune.bufsize 65536\ndefaults\n  mode http\n  timeout connect 500ms\n  timeout client 30s\n  timeout server 30s\n  retries 3\n  option redispatch 1\n  option http-buffer-request\n  retry-on all-retryable-errors\n\
             frontend f\n  bind {front_addr}\n  default_backend codejail\n\
             backend codejail\n  balance roundrobin\n  option httpchk GET /health/\n  server a {} check inter 200ms fall 1 rise 1\n  server b {} check inter 200ms fall 1 rise 1\n",
            a.addr, b.addr
        ),
    )
    .unwrap();
    let mut lb = Command::new(haproxy)
        .args(["-f"])
        .arg(&cfg)
        .args(["-db"])
        .stdout(Stdio::null())
        .stderr(Stdio::null())
        .spawn()
        .unwrap();
    let ready = Instant::now();
    while get_ok(front_addr).is_none() {
        assert!(
            ready.elapsed() < Duration::from_secs(10),
            "haproxy did not start"
        );
        std::thread::sleep(Duration::from_millis(50));
    }
    // 4 clients, 40 requests each; replica b is killed after 30 answers.
    let answered = std::sync::Arc::new(std::sync::atomic::AtomicUsize::new(0));
    let clients: Vec<_> = (0..4)
        .map(|c| {
            let answered = answered.clone();
            std::thread::spawn(move || {
                (0..40)
                    .map(|i| {
                        let n = c * 1000 + i;
                        let r = exec(
                            front_addr,
                            &format!(r#"{{"code": "import time\ntime.sleep(0.01)\ny = x * 2", "globals_dict": {{"x": {n}}}}}"#),
                            &[],
                        );
                        answered.fetch_add(1, std::sync::atomic::Ordering::SeqCst);
                        (n, r.status, r.text())
                    })
                    .collect::<Vec<_>>()
            })
        })
        .collect();
    while answered.load(std::sync::atomic::Ordering::SeqCst) < 30 {
        std::thread::sleep(Duration::from_millis(5));
    }
    b.child.as_mut().unwrap().kill().unwrap();
    let results: Vec<_> = clients
        .into_iter()
        .flat_map(|c| c.join().unwrap())
        .collect();
    let _ = lb.kill();
    let _ = lb.wait();
    assert_eq!(results.len(), 160);
    for (n, status, text) in results {
        assert_eq!(
            (status, text),
            (
                200,
                format!(r#"{{"globals_dict":{{"x": {n}, "y": {}}}}}"#, n * 2)
            ),
            "request {n}"
        );
    }
    assert!(a.log().contains("\"outcome\":\"success\""));
}

fn get_ok(addr: SocketAddr) -> Option<()> {
    let mut s = TcpStream::connect_timeout(&addr, Duration::from_millis(200)).ok()?;
    s.set_read_timeout(Some(Duration::from_secs(2))).ok()?;
    s.write_all(
        format!("GET /health/ HTTP/1.1\r\nHost: {addr}\r\nConnection: close\r\n\r\n").as_bytes(),
    )
    .ok()?;
    let mut raw = Vec::new();
    s.read_to_end(&mut raw).ok()?;
    raw.starts_with(b"HTTP/1.1 200").then_some(())
}

/// The systemd unit in deploy/ passes `systemd-analyze verify`.
#[test]
fn the_systemd_unit_verifies() {
    if !can_run("the_systemd_unit_verifies") {
        return;
    }
    let analyze = ["/usr/bin/systemd-analyze", "/bin/systemd-analyze"]
        .into_iter()
        .find(|p| Path::new(p).exists());
    let Some(analyze) = analyze else {
        assert!(
            std::env::var_os("CI").is_none(),
            "cargo xtask ci installs systemd"
        );
        eprintln!("NOT TESTED: systemd-analyze is not installed (apt-get install systemd)");
        return;
    };
    let root = Path::new(env!("CARGO_MANIFEST_DIR")).join("../..");
    let unit = std::fs::read_to_string(root.join("deploy/codejail.service")).unwrap();
    // The unit as installed, with the binary where this build put it.
    let dir = tempfile::tempdir().unwrap();
    let bin = env!("CARGO_BIN_EXE_codejail");
    let unit = unit.replace("ExecStart=codejail ", &format!("ExecStart={bin} "));
    assert!(
        unit.contains(bin),
        "the unit runs `codejail` from systemd's search path"
    );
    let path = dir.path().join("codejail.service");
    std::fs::write(&path, unit).unwrap();
    let out = Command::new(analyze)
        .args(["verify", "--man=no"])
        .arg(&path)
        .output()
        .unwrap();
    let err = String::from_utf8_lossy(&out.stderr);
    // Without systemd as pid 1, verify still parses every directive and
    // says which it does not know.
    let complaints: Vec<&str> = err
        .lines()
        .filter(|l| {
            !l.contains("System has not been booted with systemd")
                && !l.contains("Failed to connect")
                && !l.trim().is_empty()
        })
        .collect();
    assert!(out.status.success() && complaints.is_empty(), "{err}");
}

/// Healthy: a client that sends its body slowly holds a place in the
/// queue, never the interpreter; at the deadline it gets 408.
#[test]
fn a_slow_client_holds_no_interpreter() {
    if !can_run("a_slow_client_holds_no_interpreter") {
        return;
    }
    let _ns = Netns::enter();
    let s = Server::start("pool_size = 1\nqueue_length = 1\nrequest_deadline = 2", "");
    s.require_healthy();
    let mut slow = TcpStream::connect(s.addr).unwrap();
    slow.write_all(
        format!(
            "POST /api/v0/code-exec HTTP/1.1\r\nHost: {}\r\nContent-Type: application/x-www-form-urlencoded\r\nContent-Length: 100\r\nConnection: close\r\n\r\npayload=",
            s.addr
        )
        .as_bytes(),
    )
    .unwrap();
    std::thread::sleep(Duration::from_millis(200));
    let started = Instant::now();
    assert_eq!(
        exec(s.addr, r#"{"code": "x = 1", "globals_dict": {}}"#, &[]).all(),
        (200, JSON.into(), r#"{"globals_dict":{"x": 1}}"#.into())
    );
    assert!(started.elapsed() < Duration::from_secs(1));
    slow.set_read_timeout(Some(Duration::from_secs(10)))
        .unwrap();
    let mut raw = Vec::new();
    let _ = slow.read_to_end(&mut raw);
    let r = parse_response(&raw);
    assert_eq!(
        (r.status, r.text()),
        (408, error_body("Request body not received in time"))
    );
}

/// Settings that cannot serve are refused before anything starts, with
/// one line naming the file, the line and the key, or the jail.
#[test]
fn serve_refuses_bad_settings_with_one_line() {
    let dir = tempfile::tempdir().unwrap();
    let run = |settings: &str| {
        let config = dir.path().join("codejail.toml");
        std::fs::write(&config, settings).unwrap();
        let out = Command::new(env!("CARGO_BIN_EXE_codejail"))
            .arg("--config")
            .arg(&config)
            .arg("serve")
            .output()
            .unwrap();
        let err = String::from_utf8_lossy(&out.stderr).into_owned();
        assert_eq!(err.trim_end().lines().count(), 1, "{err}");
        (out.status.code(), err)
    };
    let (code, err) = run("[service]\nlisten = \"localhost:80\"\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(
        err.contains("codejail.toml:2: service.listen: `localhost:80` is not an address"),
        "{err}"
    );
    let (code, err) =
        run("[jails.python]\nbin = \"/usr/bin/python3\"\n[service]\njail = \"ruby\"\n");
    assert_eq!(code, Some(2), "{err}");
    assert!(err.contains("no jail `ruby` is configured"), "{err}");
    // An address in use fails at once, before the pool starts (it failed
    // after the pool's start and its checks, with five lines).
    let held = std::net::TcpListener::bind("127.0.0.1:0").unwrap();
    let addr = held.local_addr().unwrap();
    let (code, err) = run(&format!("[service]\nenabled = true\nlisten = \"{addr}\"\n"));
    assert_eq!(code, Some(3), "{err}");
    assert!(err.contains(&format!("cannot listen on {addr}")), "{err}");
}
