"""A large caller does not pay for copying itself: the binary is started on
subprocess's vfork path (CodeJail needed its PROXY process for this)."""

import os
import re
import shutil
import subprocess
import sys
import textwrap

import pytest

from codejail import jail_code, safe_exec


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
    (args,) = calls
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
        print("rss_kib", rss, "a", g["a"])
    """) % jail_code.COMMANDS["python"]["cmdline_start"][0])
    trace = tmp_path / "trace"
    out = subprocess.run(["strace", "-f", "-qq", "-s", "4096", "-e", "trace=clone,clone3,fork,vfork,execve", "-o", str(trace),
                          sys.executable, str(script)], capture_output=True, text=True, check=False, timeout=120)
    assert out.returncode == 0, out.stderr
    rss = int(re.search(r"rss_kib (\d+) a 42", out.stdout).group(1))
    assert rss > 2 << 20, out.stdout
    lines = trace.read_text().splitlines()
    # The process that execs the codejail binary, and the call that made it.
    child = next(l.split()[0] for l in lines if re.search(r'execve\("[^"]*/codejail", \[[^]]*"api"', l))
    parent = next(l.split()[0] for l in lines if "execve(" in l and str(script) in l)
    made = [l for l in lines if l.startswith(parent + " ") and re.search(r"(clone3?|v?fork)", l)
            and re.search(r"= %s$" % child, l)]
    assert made, "\n".join(lines[:40])
    assert "vfork" in made[0] or ("CLONE_VM" in made[0] and "CLONE_VFORK" in made[0]), made[0]
