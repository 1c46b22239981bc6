//! What one warm call can leave for the next on the same zygote: the
//! zygote's tmp/ (which the worker owns too, and whose metadata Landlock
//! does not cover), trees its removal must survive, and what of the call
//! the next worker's memory (forked from the zygote) could hold. Each of
//! these attacks got through before the zygote cleared its tmp/ as it
//! does now (a failing test is an attack that got through).

use codejail::{SafeExecError, SafeExecOptions, Warm, WarmOptions};
use serde_json::{Map, Value};

mod common;
use common::pool;

/// A warm safe_exec that stages nothing (so it runs in the shared exec
/// home); the code's `out` global, or the error.
fn exec(warm: &Warm, code: &str) -> Result<Value, String> {
    let mut globals = Map::new();
    match warm.safe_exec(code, &mut globals, &SafeExecOptions::default()) {
        Ok(()) => Ok(globals.get("out").cloned().unwrap_or(Value::Null)),
        Err(SafeExecError::Failed { message, result }) => Err(format!(
            "failed: {message}\nstderr: {}",
            String::from_utf8_lossy(&result.stderr)
        )),
        Err(e) => Err(format!("error: {e}")),
    }
}

/// Python that reads the call's own memory, page by page, through a pipe
/// (no `/proc`): `scan(needles)` is each needle's hits (the bytes around
/// it, where they have "xyzzy") within 32 MB of a few live objects, and
/// the number of pages looked at.
const SCAN: &str = "import ctypes, os\n\
libc = ctypes.CDLL(None, use_errno=True)\n\
pr, pw = os.pipe()\n\
def page(a):\n    \
n = libc.write(pw, ctypes.c_void_p(a), 4096)\n    \
return os.read(pr, 4096) if n == 4096 else None\n\
def scan(needles):\n    \
hits = {n: [] for n in needles}\n    \
seeds = {id(object()) & ~4095, id(b'x' * 100) & ~4095, id('y' * 100) & ~4095, id(os) & ~4095}\n    \
seen = set()\n    \
for s in seeds:\n        \
for a in range(s - (32 << 20), s + (32 << 20), 4096):\n            \
if a in seen or a <= 0:\n                continue\n            \
seen.add(a)\n            \
data = page(a)\n            \
if data is None:\n                continue\n            \
for n in needles:\n                \
i = data.find(n)\n                \
while i >= 0:\n                    \
h = data[max(0, i - 16):i + 100].decode('latin-1')\n                    \
if 'xyzzy' in h:\n                        hits[n].append(h)\n                    \
i = data.find(n, i + 1)\n    \
return hits, len(seen)\n";

const ZTMP: &str = "import os\nZ = os.path.dirname(os.readlink('tmp'))\n";

/// Runs `attack` on a pool of one (after a first call), then a plain
/// call, which must run on the same zygote: the attack's result, for the
/// test to check that it did what it meant (a crash is no attack).
fn attack_then_next(name: &str, attack: &str) -> Option<Result<Value, String>> {
    let (_parent, warm) = pool(name, WarmOptions::new(1))?;
    assert_eq!(exec(&warm, "out = 1"), Ok(Value::from(1)));
    let attacked = exec(&warm, attack);
    eprintln!("attack call: {attacked:?}");
    let next = exec(&warm, "out = 2");
    eprintln!("next call: {next:?}; health {:?}", warm.health());
    assert_eq!(next, Ok(Value::from(2)), "the call after the attack failed");
    assert_eq!(warm.health().restarts, 0, "the attack ended the zygote");
    Some(attacked)
}

/// The zygote's tmp/ (the parent of each call's) is owned by the call's
/// own uid, and Landlock does not mediate chmod: a call takes the
/// zygote's permissions on it away. The zygote gives them back before it
/// clears the call's tmp/; the next call runs on the same zygote.
#[test]
fn deny_a_chmod_of_the_zygote_tmp_breaking_the_next_call() {
    let Some(attacked) = attack_then_next(
        "wa-chmod",
        &format!("{ZTMP}os.chmod(Z, 0)\nout = oct(os.stat(Z).st_mode)"),
    ) else {
        return;
    };
    assert_eq!(
        attacked,
        Ok(Value::from("0o40000")),
        "the chmod did not happen"
    );
}

/// A call leaves a tree deeper than PATH_MAX in its tmp/ (relative mkdir
/// and chdir): the removal goes down by descriptor, so it is no matter.
#[test]
fn deny_a_tree_past_path_max_breaking_the_next_call() {
    let Some(attacked) = attack_then_next(
        "wa-deep",
        "import os\nos.chdir('tmp')\nfor i in range(24):\n    os.mkdir('d' * 200)\n    os.chdir('d' * 200)\nout = i + 1",
    ) else {
        return;
    };
    // 24 levels of 201 bytes: past PATH_MAX (4096).
    assert_eq!(attacked, Ok(Value::from(24)), "the tree was not made");
}

/// A call nests short names past Python's recursion limit (as many as the
/// inodes allow): the removal is iterative.
#[test]
fn deny_a_tree_past_the_recursion_limit_breaking_the_next_call() {
    let Some(attacked) = attack_then_next(
        "wa-rec",
        "import os, sys\nos.chdir('tmp')\nn = 0\ntry:\n    for i in range(1200):\n        os.mkdir('d')\n        os.chdir('d')\n        n += 1\nexcept OSError:\n    pass\nout = [n, sys.getrecursionlimit()]",
    ) else {
        return;
    };
    let out = attacked.expect("the attack ran");
    assert!(
        out[0].as_u64() > out[1].as_u64(),
        "the tree is not deeper than the recursion limit: {out}"
    );
}

/// A call sets the zygote's tmp/'s mode, atime and an extended attribute
/// (it owns it; Landlock does not cover what is done by name): a message
/// to the next call, unless the zygote puts them back after each call, as
/// it does. Its inode flags (no-atime, no-dump) would need a descriptor of
/// it, which Landlock refuses (EACCES, printed).
#[test]
fn deny_a_message_in_the_zygote_tmp_metadata() {
    let Some((_parent, warm)) = pool("wa-meta", WarmOptions::new(1)) else {
        return;
    };
    let send = exec(
        &warm,
        &format!(
            "{ZTMP}st = os.stat(Z)\nr = {{}}\n\
             try:\n    os.chmod(Z, 0o7755); r['chmod'] = 'ok'\nexcept OSError as e:\n    r['chmod'] = str(e)\n\
             try:\n    os.utime(Z, ns=(1234567890123456789, st.st_mtime_ns)); r['utime'] = 'ok'\nexcept OSError as e:\n    r['utime'] = str(e)\n\
             try:\n    os.setxattr(Z, 'user.secret', b'from call N'); r['xattr'] = 'ok'\nexcept OSError as e:\n    r['xattr'] = str(e)\n\
             import fcntl, struct\n\
             try:\n    fd = os.open(Z, os.O_RDONLY)\n    f = struct.unpack('i', fcntl.ioctl(fd, 0x80086601, b'\\0' * 4))[0]\n    fcntl.ioctl(fd, 0x40086602, struct.pack('i', f | 0x80 | 0x40))\n    r['flags'] = struct.unpack('i', fcntl.ioctl(fd, 0x80086601, b'\\0' * 4))[0]\nexcept OSError as e:\n    r['flags'] = str(e)\n\
             out = r"
        ),
    );
    eprintln!("sender: {send:?}");
    let send = send.expect("the sender ran");
    assert_eq!(
        (&send["chmod"], &send["utime"]),
        (&Value::from("ok"), &Value::from("ok")),
        "the sender could not set the mode and times: {send}"
    );
    // Inode flags need a descriptor of the directory: Landlock's EACCES.
    assert!(
        send["flags"]
            .as_str()
            .is_some_and(|e| e.contains("Errno 13")),
        "the sender's inode flags: {send}"
    );
    if send["xattr"] != "ok" {
        codejail_tests::not_tested(
            "tmpfs_user_xattr",
            &format!("the message by extended attribute: {}", send["xattr"]),
        );
    }
    let recv = exec(
        &warm,
        &format!(
            "{ZTMP}st = os.stat(Z)\nr = {{'mode': oct(st.st_mode), 'atime_ns': st.st_atime_ns}}\n\
             try:\n    r['xattr'] = os.getxattr(Z, 'user.secret').decode()\nexcept OSError as e:\n    r['xattr'] = str(e)\n\
             import fcntl, struct\n\
             try:\n    fd = os.open(Z, os.O_RDONLY)\n    r['flags'] = struct.unpack('i', fcntl.ioctl(fd, 0x80086601, b'\\0' * 4))[0]\nexcept OSError as e:\n    r['flags'] = str(e)\nout = r"
        ),
    )
    .unwrap();
    eprintln!("receiver: {recv}");
    let got: Vec<&str> = [
        (recv["mode"] == "0o47755").then_some("mode"),
        (recv["atime_ns"] == 1234567890123456789_u64).then_some("atime"),
        (recv["xattr"] == "from call N").then_some("xattr"),
        (recv["flags"].as_i64().is_some_and(|f| f & 0xc0 != 0)).then_some("inode flags"),
    ]
    .into_iter()
    .flatten()
    .collect();
    assert!(
        got.is_empty(),
        "call N+1 read what call N set on {got:?}: {recv}"
    );
}

/// The names a call left in its tmp/ are read only by a child the zygote
/// forks to remove them: the next worker, forked from the zygote, cannot
/// find them in its memory (it reads its own pages through a pipe).
#[test]
fn deny_the_previous_calls_file_names_in_the_next_workers_memory() {
    let Some((_parent, warm)) = pool("wa-names", WarmOptions::new(1)) else {
        return;
    };
    exec(
        &warm,
        "for i in range(3):\n    open('tmp/SECRET_victim_filename_%d_xyzzy' % i, 'w').close()\nout = 0",
    )
    .unwrap();
    // The scan finds what the call itself holds (so it can find), and
    // nothing of the previous call.
    let out = exec(
        &warm,
        &format!(
            "{SCAN}held = ('MARKER_' + 'own_xyzzy ') * 4\n\
             own, victim = b'MARKER_' + b'own', b'SECRET_' + b'vic'\n\
             hits, pages = scan([own, victim])\n\
             out = [pages, len(hits[own])] + hits[victim][:5]"
        ),
    );
    eprintln!("hits: {out:?}");
    let out = out.unwrap();
    let out = out.as_array().unwrap();
    assert!(
        out[1].as_u64().unwrap() > 0,
        "the scan found nothing at all: {out:?}"
    );
    assert_eq!(
        out.len(),
        2,
        "the next call found the previous call's file names: {out:?}"
    );
}

/// A call fills the zygote's tmpfs with extended attributes on its own
/// tmp/, which stays in the tmpfs after the rmdir while the call's
/// Landlock ruleset still holds it: the next call's tmp/ could not be
/// made, and the zygote ended without answering. The zygote now removes
/// them (in the child that clears a non-empty or attributed tmp/) and
/// retires when the room does not come back; the next call runs.
#[test]
fn deny_extended_attributes_on_a_calls_tmp_starving_the_next_call() {
    let Some((_parent, warm)) = pool("wa-xspace", WarmOptions::new(1)) else {
        return;
    };
    let sent = exec(
        &warm,
        "import os\nn = 0\nerr = None\ni = 0\nfor size in [65536, 16384, 4096, 1024, 256, 64, 16, 1]:\n    \
         while True:\n        i += 1\n        \
         try:\n            os.setxattr('tmp', 'user.%d' % i, b'v' * size)\n            n += size\n        \
         except OSError as e:\n            err = str(e)\n            break\n\
         out = [n, err, os.statvfs('tmp').f_ffree]",
    );
    eprintln!("attack call: {sent:?}");
    let sent = sent.expect("the attack ran");
    if !sent[1].as_str().is_some_and(|e| e.contains("Errno 28")) {
        // Only a tmpfs with user extended attributes (Linux 6.6) fills so.
        codejail_tests::not_tested(
            "tmpfs_user_xattr",
            &format!("the attack did not fill the tmpfs: {sent}"),
        );
        return;
    }
    let next = exec(
        &warm,
        "made = 0\nfor i in range(50):\n    open('tmp/f%d' % i, 'w').close()\n    made += 1\nout = made",
    );
    eprintln!("next call: {next:?}; health {:?}", warm.health());
    assert_eq!(next, Ok(Value::from(50)), "the next call was starved");
}

/// A call keeps 300 of its tmp/'s files alive past its end, their
/// descriptors in flight in unix sockets that are themselves in flight in
/// each other (a cycle the kernel's collector frees later): the next call
/// would find the quota's inodes taken. The
/// zygote retires when less than nine tenths of its room came back; the
/// next call, on a new zygote, has it all. (Less than a tenth held is a
/// count one call can pass to the next: decision 0015.)
#[test]
fn deny_descriptors_in_flight_starving_the_next_call() {
    let Some((_parent, warm)) = pool("wa-inflight", WarmOptions::new(1)) else {
        return;
    };
    let free = "out = __import__('os').statvfs('tmp').f_ffree";
    let base = exec(&warm, free).unwrap();
    let sent = exec(
        &warm,
        "import os, socket\n\
         fds = [os.open('tmp/f%d' % k, os.O_CREAT | os.O_RDWR, 0o600) for k in range(300)]\n\
         a, b = socket.socketpair()\n\
         for k in range(0, 300, 200):\n    socket.send_fds(a, [b'x'], fds[k:k + 200])\n\
         socket.send_fds(a, [b'y'], [a.fileno(), b.fileno()])\n\
         c, d = socket.socketpair()\n\
         socket.send_fds(c, [b'z'], [c.fileno(), d.fileno(), a.fileno(), b.fileno()])\n\
         out = os.statvfs('tmp').f_ffree",
    );
    eprintln!("base {base:?}; attack call: {sent:?}");
    let next = exec(&warm, free);
    eprintln!("next call: {next:?}; health {:?}", warm.health());
    let base = base.as_u64().unwrap();
    let held = sent.expect("the attack ran").as_u64().unwrap();
    assert!(
        held + 300 <= base,
        "the attack made no 300 files: {held} of {base} free"
    );
    let next = next.unwrap().as_u64().unwrap();
    assert!(
        next * 10 >= base * 9,
        "the next call found {next} inodes free of {base}"
    );
}
