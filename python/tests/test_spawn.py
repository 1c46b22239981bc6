"""A large caller does not pay for copying itself: the binary is started on
subprocess's vfork path (CodeJail needed its PROXY process for this)."""

import os
import re
import shutil
import subprocess
import sys
import textwrap
import time

import pytest

from codejail import _api, jail_code, safe_exec


def test_subprocess_takes_the_vfork_path(monkeypatch):
    """_posixsubprocess uses vfork() when allowed and nothing needs a copy:
    no preexec_fn, no uid/gid/groups change, no new session."""
    assert subprocess._USE_VFORK  # pylint: disable=protected-access
    calls = []
    real = subprocess._fork_exec  # pylint: disable=protected-access

    def spy(*args):
        calls.append(args)
        return real(*args)

    monkeypatch.setattr(subprocess, "_fork_exec", spy)
    safe_exec.safe_exec("a = 1", {})
    safe_exec.safe_exec("a = 1", {})
    assert calls
    for args in calls:
        check_vfork_arguments(args)


def check_vfork_arguments(args):
    if sys.version_info[:2] == (3, 11):
        (_, _, close_fds, _, cwd, _, *_, restore_signals, call_setsid, pgid, gid, groups, uid, umask,
         preexec_fn, allow_vfork) = args
        assert (preexec_fn, gid, groups, uid, call_setsid, pgid, cwd) == (None, None, None, None, False, -1, None)
        assert allow_vfork is True and close_fds is True and umask == -1 and restore_signals
    else:  # the same conditions, wherever they are in other versions' signatures
        assert None in args and not any(callable(a) for a in args)


@pytest.mark.skipif(not shutil.which("strace"), reason="strace is not installed")
def test_a_two_gigabyte_caller_starts_the_binary_without_copying_itself(tmp_path):
    """strace shows the clone that starts `codejail` shares the caller's
    memory (CLONE_VM|CLONE_VFORK): nothing of its 2 GB is copied."""
    script = tmp_path / "big.py"
    script.write_text(textwrap.dedent("""
        from codejail import jail_code
        jail_code.configure("python", %r)
        from codejail import safe_exec
        ballast = bytearray(2 << 30)
        for i in range(0, len(ballast), 4096):
            ballast[i] = 1
        with open("/proc/self/status") as f:
            rss = [l for l in f if l.startswith("VmRSS")][0].split()[1]
        g = {}
        safe_exec.safe_exec("a = 6 * 7", g)
        safe_exec.safe_exec("a = 6 * 7", g)   # a process started ahead, by another thread
        print("rss_kib", rss, "a", g["a"])
    """) % jail_code.COMMANDS["python"]["cmdline_start"][0])
    trace = tmp_path / "trace"
    out = subprocess.run(["strace", "-f", "-qq", "-s", "4096", "-e", "trace=clone,clone3,fork,vfork,execve", "-o", str(trace),
                          sys.executable, str(script)], capture_output=True, text=True, check=False, timeout=120)
    assert out.returncode == 0, out.stderr
    rss = int(re.search(r"rss_kib (\d+) a 42", out.stdout).group(1))
    assert rss > 2 << 20, out.stdout
    lines = trace.read_text().splitlines()
    # Every process that execs the codejail binary, and the call that made it.
    children = [l.split()[0] for l in lines if re.search(r'execve\("[^"]*/codejail", \[[^]]*"api"', l)]
    assert children, "\n".join(lines[:40])
    for child in children:
        made = [l for l in lines if re.search(r"(clone3?|v?fork)", l) and re.search(r"= %s$" % child, l)]
        assert made, "\n".join(lines[:40])
        assert "vfork" in made[0] or ("CLONE_VM" in made[0] and "CLONE_VFORK" in made[0]), made[0]


def wait_for_ahead(timeout=5.0):
    """The process started ahead, once it exists."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        with _api._ahead.lock:  # pylint: disable=protected-access
            if _api._ahead.process is not None:  # pylint: disable=protected-access
                return _api._ahead.process  # pylint: disable=protected-access
        time.sleep(0.01)
    raise AssertionError("no process was started ahead")


def test_the_next_call_uses_the_process_started_ahead(monkeypatch):
    monkeypatch.setattr(_api, "PRESTART", True)
    jail_code.jail_code("python", "pass")
    ahead = wait_for_ahead()
    call = _api.Call({"v": 1, "op": "jail_code", "jail": jail_code.COMMANDS["python"].spec(), "code": "print(5)"})
    assert call.pid == ahead.pid
    assert _api.unb64(call.finish()["stdout_b64"]) == b"5\n"


def test_a_changed_environment_or_a_dead_process_is_not_used(monkeypatch, tmp_dir):
    monkeypatch.setattr(_api, "PRESTART", True)
    jail_code.jail_code("python", "pass")
    ahead = wait_for_ahead()
    monkeypatch.setenv("TMPDIR", str(tmp_dir))
    res = jail_code.jail_code("python", "import os; print(os.getcwd())")
    assert res.stdout.decode().startswith(str(tmp_dir)), res
    assert ahead.poll() == 0, "the process started ahead was not dismissed"
    ahead = wait_for_ahead()
    ahead.kill()
    ahead.wait()
    assert jail_code.jail_code("python", "print(7)").stdout == b"7\n"


def test_prestart_off_starts_nothing_ahead(monkeypatch):
    monkeypatch.setattr(_api, "PRESTART", False)
    monkeypatch.setattr(_api, "_ahead", _api._Ahead())  # pylint: disable=protected-access
    jail_code.jail_code("python", "pass")
    time.sleep(0.3)
    assert _api._ahead.process is None  # pylint: disable=protected-access


def test_a_forked_child_does_not_use_its_parents_process():
    jail_code.jail_code("python", "pass")
    parent_ahead = wait_for_ahead()
    read, write = os.pipe()
    pid = os.fork()
    if pid == 0:  # the child
        try:
            os.close(read)
            res = jail_code.jail_code("python", "print(8)")
            # The child has a helper thread of its own: it starts a process ahead.
            own = wait_for_ahead()
            os.write(write, b"ok" if (res.stdout == b"8\n" and own is not parent_ahead) else b"no")
        finally:
            os._exit(0)  # pylint: disable=protected-access
    os.close(write)
    answer = os.read(read, 10)
    os.waitpid(pid, 0)
    assert answer == b"ok"
    assert parent_ahead.poll() is None, "the child used or ended the parent's process"
