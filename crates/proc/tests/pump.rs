//! The pump with a target that is not a supervisor: a unix socket to a
//! fake zygote (a thread), as the warm path uses it. Three outputs with
//! different caps (stdout, stderr, result); the target is finished once
//! its answer line is complete; the kill request writes `k` to the socket.

use std::cell::Cell;
use std::fs::File;
use std::io::{self, Read, Write};
use std::os::fd::{AsFd, BorrowedFd, OwnedFd};
use std::os::unix::net::UnixStream;
use std::time::{Duration, Instant};

use codejail_proc::KillReason;
use codejail_proc::pump::{Pump, State, Target, deadline_after};

/// The caller's side of a fake zygote.
struct Zygote {
    socket: UnixStream,
    answer: Vec<u8>,
    kills: Vec<KillReason>,
    forced: usize,
    /// How many times the pump built its poll set: once per turn.
    turns: Cell<usize>,
}

impl Target for Zygote {
    fn fd(&self) -> BorrowedFd<'_> {
        self.turns.set(self.turns.get() + 1);
        self.socket.as_fd()
    }

    fn ready(&mut self) -> io::Result<State> {
        let mut buf = [0u8; 4096];
        match self.socket.read(&mut buf) {
            Ok(0) => Err(io::Error::other("the zygote closed its socket")),
            Ok(n) => {
                self.answer.extend_from_slice(&buf[..n]);
                Ok(match self.answer.as_slice() {
                    b"abandon\n" => State::Abandoned,
                    a if a.ends_with(b"\n") => State::Finished,
                    _ => State::Running,
                })
            }
            Err(e) if e.kind() == io::ErrorKind::WouldBlock => Ok(State::Running),
            Err(e) => Err(e),
        }
    }

    fn pid(&self) -> i32 {
        0
    }

    fn kill(&mut self, reason: KillReason) {
        self.kills.push(reason);
        let _ = self.socket.write_all(b"k");
    }

    fn force_kill(&mut self) {
        self.forced += 1;
    }
}

/// The zygote's side: the call's stdin, its three outputs, its socket.
struct Worker {
    stdin: File,
    outputs: [File; 3],
    socket: UnixStream,
}

/// One call: the target, the caller's ends (stdin's write end, the three
/// outputs' read ends) and the worker's.
struct Call {
    zygote: Zygote,
    stdin: OwnedFd,
    outputs: [OwnedFd; 3],
    worker: Worker,
}

fn call() -> Call {
    let pipe = || rustix::pipe::pipe_with(rustix::pipe::PipeFlags::CLOEXEC).unwrap();
    let (stdin_r, stdin_w) = pipe();
    let [(out_r, out_w), (err_r, err_w), (res_r, res_w)] = [pipe(), pipe(), pipe()];
    let (ours, theirs) = UnixStream::pair().unwrap();
    ours.set_nonblocking(true).unwrap();
    Call {
        zygote: Zygote {
            socket: ours,
            answer: Vec::new(),
            kills: Vec::new(),
            forced: 0,
            turns: Cell::new(0),
        },
        stdin: stdin_w,
        outputs: [out_r, err_r, res_r],
        worker: Worker {
            stdin: File::from(stdin_r),
            outputs: [File::from(out_w), File::from(err_w), File::from(res_w)],
            socket: theirs,
        },
    }
}

/// A pump over the call's three outputs with these caps.
fn pump(
    outputs: [OwnedFd; 3],
    caps: [Option<usize>; 3],
    deadline: Option<Instant>,
) -> Pump<'static> {
    outputs
        .into_iter()
        .zip(caps)
        .fold(Pump::new(deadline), |pump, (fd, cap)| pump.output(fd, cap))
}

fn in_30s() -> Option<Instant> {
    deadline_after(Instant::now(), Duration::from_secs(30))
}

#[test]
fn a_socket_target_is_finished_by_its_answer_line() {
    let Call {
        mut zygote,
        stdin,
        outputs,
        mut worker,
    } = call();
    let pump = pump(outputs, [Some(100), Some(100), Some(100)], in_30s()).stdin(stdin, b"input");
    let pumped = std::thread::scope(|s| {
        s.spawn(move || {
            let mut input = Vec::new();
            worker.stdin.read_to_end(&mut input).unwrap();
            let [out, err, res] = &mut worker.outputs;
            out.write_all(&input).unwrap();
            err.write_all(b"err").unwrap();
            res.write_all(b"{\"x\": 1}").unwrap();
            drop(worker.outputs);
            worker.socket.write_all(b"{\"status\": 0}\n").unwrap();
        });
        pump.run(&mut zygote).unwrap()
    });
    assert_eq!(pumped.target, State::Finished);
    assert_eq!(pumped.killed, None);
    let bytes: Vec<&[u8]> = pumped.outputs.iter().map(|c| &c.bytes[..]).collect();
    assert_eq!(bytes, [&b"input"[..], b"err", b"{\"x\": 1}"]);
    assert!(pumped.outputs.iter().all(|c| !c.truncated));
    assert_eq!(zygote.answer, b"{\"status\": 0}\n");
    assert!(zygote.kills.is_empty());
}

#[test]
fn a_stream_past_its_cap_asks_the_target_to_stop_once() {
    let Call {
        mut zygote,
        outputs,
        mut worker,
        ..
    } = call();
    let pump = pump(outputs, [Some(100), Some(100), Some(10)], in_30s());
    let pumped = std::thread::scope(|s| {
        s.spawn(move || {
            worker.outputs[2].write_all(&[b'r'; 100]).unwrap();
            worker.outputs[2].write_all(&[b'r'; 100]).unwrap();
            let mut k = [0u8; 1];
            worker.socket.read_exact(&mut k).unwrap();
            assert_eq!(&k, b"k");
            drop(worker.outputs);
            worker.socket.write_all(b"{\"killed\": true}\n").unwrap();
        });
        pump.run(&mut zygote).unwrap()
    });
    assert_eq!(pumped.killed, Some(KillReason::Output));
    assert_eq!(pumped.target, State::Finished);
    assert_eq!(pumped.outputs[2].bytes, [b'r'; 10]);
    assert!(pumped.outputs[2].truncated);
    assert!(!pumped.outputs[0].truncated && !pumped.outputs[1].truncated);
    assert_eq!(zygote.kills, [KillReason::Output]);
    assert_eq!(zygote.forced, 0);
}

/// The zygote never answers and keeps the outputs open: the deadline asks
/// it to stop, the grace period then forces it (once), a second grace
/// period later the pump gives up on it. Every turn of the loop waits on
/// the descriptors, so there are a handful of turns, not a spin.
#[test]
fn a_target_that_never_finishes_is_forced_once_then_given_up() {
    let Call {
        mut zygote,
        outputs,
        worker,
        ..
    } = call();
    let started = Instant::now();
    let deadline = deadline_after(started, Duration::from_millis(100));
    let pumped = pump(outputs, [None, None, None], deadline)
        .kill_grace(Duration::from_millis(200))
        .run(&mut zygote)
        .unwrap();
    let elapsed = started.elapsed();
    drop(worker);
    assert_eq!(pumped.target, State::Running, "the pump gave up on it");
    assert_eq!(pumped.killed, Some(KillReason::Wall));
    assert_eq!(zygote.kills, [KillReason::Wall]);
    assert_eq!(zygote.forced, 1);
    assert!(elapsed >= Duration::from_millis(500), "{elapsed:?}");
    assert!(elapsed < Duration::from_secs(5), "{elapsed:?}");
    assert!(
        zygote.turns.get() <= 20,
        "{} turns: a spin",
        zygote.turns.get()
    );
}

#[test]
fn a_cancel_descriptor_asks_the_target_to_stop() {
    let Call {
        mut zygote,
        outputs,
        mut worker,
        ..
    } = call();
    let (cancel_r, cancel_w) = rustix::pipe::pipe().unwrap();
    let pump = pump(outputs, [None, None, None], in_30s()).cancel_on(cancel_r.as_fd());
    let pumped = std::thread::scope(|s| {
        s.spawn(move || {
            drop(cancel_w);
            let mut k = [0u8; 1];
            worker.socket.read_exact(&mut k).unwrap();
            drop(worker.outputs);
            worker.socket.write_all(b"{}\n").unwrap();
        });
        pump.run(&mut zygote).unwrap()
    });
    assert_eq!(pumped.killed, Some(KillReason::Cancelled));
    assert_eq!(zygote.kills, [KillReason::Cancelled]);
    assert_eq!(pumped.target, State::Finished);
}

/// `EPIPE` on stdin is the program saying it wants no more, not an error.
#[test]
fn stdin_closed_early_by_the_program_is_not_an_error() {
    let Call {
        mut zygote,
        stdin,
        outputs,
        mut worker,
    } = call();
    let input = vec![b'i'; 4 << 20];
    let pump = pump(outputs, [None, None, None], in_30s()).stdin(stdin, &input);
    let pumped = std::thread::scope(|s| {
        s.spawn(move || {
            let mut first = [0u8; 1];
            worker.stdin.read_exact(&mut first).unwrap();
            drop(worker.stdin);
            drop(worker.outputs);
            worker.socket.write_all(b"{}\n").unwrap();
        });
        pump.run(&mut zygote).unwrap()
    });
    assert_eq!(pumped.target, State::Finished);
    assert_eq!(pumped.killed, None);
}

/// An abandoned target ends the pump at once, though the outputs stay
/// open (processes it should have killed hold them).
#[test]
fn an_abandoned_target_ends_the_pump_at_once() {
    let Call {
        mut zygote,
        outputs,
        mut worker,
        ..
    } = call();
    worker.socket.write_all(b"abandon\n").unwrap();
    let started = Instant::now();
    let pumped = pump(outputs, [None, None, None], None)
        .run(&mut zygote)
        .unwrap();
    assert_eq!(pumped.target, State::Abandoned);
    assert!(started.elapsed() < Duration::from_secs(1));
    drop(worker);
}

#[test]
fn an_unrepresentable_deadline_is_no_deadline() {
    let now = Instant::now();
    assert_eq!(deadline_after(now, Duration::MAX), None);
    assert_eq!(deadline_after(now, Duration::from_secs(u64::MAX)), None);
    assert!(deadline_after(now, Duration::from_secs(1)).is_some());
}
