"""`codejail api` from Python: the protocol the package speaks."""

import json
import subprocess
import threading

import pytest

from codejail import JailError, _api, jail_code


def run(request_bytes):
    out = subprocess.run([_api.binary(), "api"], input=request_bytes, capture_output=True, check=False)
    return out.returncode, json.loads(out.stdout)


def test_the_installed_binary_is_the_wheels():
    assert _api.binary().endswith("/bin/codejail")
    out = subprocess.run([_api.binary(), "--version"], capture_output=True, text=True, check=True)
    assert out.stdout.startswith("codejail ")


def test_a_request_round_trip():
    request = jail_code.COMMANDS["python"].request("jail_code", "print(input()[::-1])", None, None, "s", None)
    request["stdin_b64"] = _api.b64(b"abc\n")
    code, response = run(json.dumps(request).encode())
    assert code == 0
    assert response["v"] == 1 and response["status"] == 0
    assert _api.unb64(response["stdout_b64"]) == b"cba\n"
    assert set(response) >= {"stderr_b64", "killed_by", "truncated", "wall_ms", "cpu_ms", "max_rss_kib",
                              "layers", "pid", "jail_dir", "logs"}


@pytest.mark.parametrize("request_bytes,code,kind", [
    (b"{", 2, "usage"),
    (b'{"v": 1, "op": "jail_code"}', 2, "usage"),
    (b'{"v": 1, "op": "jail_code", "jail": {"bin": "/nonexistent/python"}}', 3, "setup"),
])
def test_refusals_are_one_json_line_with_a_kind(request_bytes, code, kind):
    got, response = run(request_bytes)
    assert (got, response["kind"]) == (code, kind)
    assert "\n" not in response["error"]


def test_refusals_become_jail_errors():
    jail_code.configure("python", "/nonexistent/python")
    with pytest.raises(JailError) as info:
        jail_code.jail_code("python", "pass")
    assert "interpreter /nonexistent/python not found" in str(info.value)
    assert info.value.kind == "setup"


def test_an_interrupted_caller_ends_the_run(monkeypatch, tmp_dir):
    """KeyboardInterrupt while waiting: the binary is told (SIGTERM), the
    run is killed and its jail removed before the exception goes on."""
    jail_code.COMMANDS["python"].jail_parent = str(tmp_dir)
    jail_code.set_limit("REALTIME", 30)
    real = _api.Call._exchange  # pylint: disable=protected-access
    seen = []

    def interrupted(self):
        exchange = threading.Thread(target=real, args=(self,), daemon=True)
        exchange.start()
        exchange.join(1.0)
        seen.extend(tmp_dir.iterdir())  # the run's jail, while it runs
        raise KeyboardInterrupt

    monkeypatch.setattr(_api.Call, "_exchange", interrupted)
    with pytest.raises(KeyboardInterrupt):
        jail_code.jail_code("python", "import time; time.sleep(30)")
    assert len(seen) == 1, "the run had not started"
    assert list(tmp_dir.iterdir()) == []


def test_a_caller_that_dies_ends_its_run(tmp_dir):
    """SIGKILL to the caller mid-run: the binary gets SIGTERM (its parent
    died), kills the run and removes its jail; nothing is left."""
    import os
    import signal
    import sys
    import textwrap
    import time

    script = textwrap.dedent("""
        from codejail import jail_code
        jail_code.configure("python", %r, jail_parent=%r)
        jail_code.set_limit("REALTIME", 60)
        jail_code.jail_code("python", "import time; time.sleep(60)")
    """) % (jail_code.COMMANDS["python"]["cmdline_start"][0], str(tmp_dir))
    caller = subprocess.Popen([sys.executable, "-c", script])
    deadline = time.monotonic() + 20
    while not list(tmp_dir.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(tmp_dir.iterdir()), "the run did not start"
    time.sleep(0.3)
    os.kill(caller.pid, signal.SIGKILL)
    caller.wait()
    deadline = time.monotonic() + 10
    while list(tmp_dir.iterdir()) and time.monotonic() < deadline:
        time.sleep(0.05)
    assert list(tmp_dir.iterdir()) == [], "the run outlived its caller"
