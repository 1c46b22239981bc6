"""codejail.safe_exec: CodeJail 4.x's behaviour, its exception text byte for
byte, and values crossing the boundary exactly."""

import json
import math
import os
import subprocess
import sys
import textwrap
import zipfile

import pytest

from codejail import _api, jail_code, safe_exec
from codejail.safe_exec import SafeExecException, json_safe, not_safe_exec

from conftest import file_here


def test_set_values_in_place():
    globs = {}
    same = globs
    safe_exec.safe_exec("a = 17", globs)
    assert globs is same
    assert globs["a"] == 17


def test_files_are_copied():
    globs = {}
    safe_exec.safe_exec("a = 'Look: ' + open('hello.txt').read()", globs, files=[file_here("hello.txt")])
    assert globs["a"] == "Look: Hello there.\n"


def test_python_path_directory_and_zip(tmp_dir):
    globs = {}
    safe_exec.safe_exec("import module; a = module.const", globs, python_path=[file_here("pylib")])
    assert globs["a"] == 42
    archive = tmp_dir / "lib.zip"
    with zipfile.ZipFile(str(archive), "w") as z:
        z.writestr("zipped.py", "value = 'from a zip'\n")
    globs = {}
    safe_exec.safe_exec("import zipped; a = zipped.value", globs, python_path=[str(archive)])
    assert globs["a"] == "from a zip"
    # An extra file of that name is used rather than a copy of the path.
    globs = {}
    safe_exec.safe_exec("import zipped; a = zipped.value", globs, python_path=["python_lib.zip"],
                        extra_files=[("python_lib.zip", archive.read_bytes())])
    assert globs["a"] == "from a zip"


def test_functions_calling_each_other():
    globs = {}
    safe_exec.safe_exec(textwrap.dedent("""\
        def f():
            return 1723
        def g():
            return f()
        x = g()
        """), globs)
    assert globs["x"] == 1723


def test_printing_does_not_corrupt_the_globals():
    globs = {}
    safe_exec.safe_exec("a = 17; print('hi!'); import os; os.write(1, b'{garbage')", globs)
    assert globs["a"] == 17


def test_the_exception_text_is_codejails_byte_for_byte():
    with pytest.raises(SafeExecException) as info:
        safe_exec.safe_exec("raise ValueError(\"That's not how you pour soup!\")", {})
    msg = str(info.value)
    assert msg.startswith("Couldn't execute jailed code: stdout: b'', stderr: b'Traceback (most recent call last):\\n")
    assert msg.endswith("ValueError: That\\'s not how you pour soup!\\n' with status code: 1")
    assert "ValueError: That\\'s not how you pour soup!" in msg


@pytest.mark.parametrize("code", [
    "import sys; sys.stderr.write('q\\'d \"both\" \\t\\r\\x00\\x7f'); sys.exit(3)",
    "import sys; sys.stderr.buffer.write(bytes(range(256))); sys.exit(2)",
    "import sys; sys.stderr.write('only \\'single\\''); sys.exit(1)",
    "import sys; sys.stderr.write('only \"double\"'); sys.exit(1)",
    "import os, signal; os.kill(os.getpid(), signal.SIGSEGV)",
])
def test_the_rust_text_and_pythons_repr_agree(code):
    """The package writes the message with Python's own repr of the bytes;
    the binary's codejail_message must be the same text."""
    request = jail_code.COMMANDS["python"].request("safe_exec", code, None, None, None, None)
    request["globals_json"] = "{}"
    response = _api.call(request)
    stdout, stderr = _api.unb64(response.get("stdout_b64")), _api.unb64(response.get("stderr_b64"))
    expected = "Couldn't execute jailed code: stdout: {!r}, stderr: {!r} with status code: {}".format(
        stdout, stderr, response["status"])
    assert response["codejail_message"] == expected
    with pytest.raises(SafeExecException) as info:
        safe_exec.safe_exec(code, {})
    assert str(info.value).split(" with status code: ")[1] == str(response["status"])


def test_limits_and_overrides_apply():
    jail_code.set_limit("REALTIME", 1)
    with pytest.raises(SafeExecException, match="status code: -9"):
        safe_exec.safe_exec("import time; time.sleep(1.5)", {})
    jail_code.override_limit("REALTIME", 3, "slow-course")
    globs = {}
    safe_exec.safe_exec("import time; time.sleep(1.5); ok = True", globs, limit_overrides_context="slow-course")
    assert globs["ok"] is True


ROUND_TRIPS = {
    "big": 123456789012345678901234567890123456789,
    "negbig": -(2 ** 200),
    "nan": float("nan"),
    "inf": float("inf"),
    "ninf": float("-inf"),
    "surrogate": "lone \ud800 and \udfff",
    "astral": "\U0001f600",
    "nested": {"a": [1, 2.5, None, True, {"b": "c"}]},
    "tenth": 0.1,
    "zero": -0.0,
}


def _same(a, b):
    if isinstance(a, float) and math.isnan(a):
        return isinstance(b, float) and math.isnan(b)
    if isinstance(a, dict):
        return isinstance(b, dict) and a.keys() == b.keys() and all(_same(a[k], b[k]) for k in a)
    if isinstance(a, list):
        return isinstance(b, list) and len(a) == len(b) and all(_same(x, y) for x, y in zip(a, b))
    return type(a) is type(b) and a == b and (not isinstance(a, float) or math.copysign(1, a) == math.copysign(1, b))


def test_values_cross_exactly_both_ways():
    globs = dict(ROUND_TRIPS)
    safe_exec.safe_exec("copies = {k: v for k, v in globals().items() if k != '__builtins__'}\n"
                        "made = [2 ** 100, float('nan'), '\\udc80', b'bytes', (1, (2,))]", globs)
    for key, value in ROUND_TRIPS.items():
        assert _same(globs[key], value), key
        assert _same(globs["copies"][key], value), key
    assert globs["made"][0] == 2 ** 100
    assert math.isnan(globs["made"][1])
    assert globs["made"][2:] == ["\udc80", "bytes", [1, [2]]]


def test_json_safe_is_codejails():
    class Thing:
        pass
    d = {
        "ok": 1, "b": b"utf8 \xc3\xa9", "badbytes": b"\xff", "t": (1, b"x"), "f": len, "thing": Thing(),
        "__builtins__": {}, "s": {1, 2}, "k": {b"key": (1,)}, 1: "int key", "m": os,
    }
    assert json_safe(d) == {"ok": 1, "b": "utf8 \u00e9", "t": [1, "x"], "k": {"key": [1]}, "1": "int key"}


def test_what_the_code_deletes_or_cannot_return_keeps_its_value():
    globs = {"keep": 1, "gone": 2, "obj": object()}
    obj = globs["obj"]
    safe_exec.safe_exec("del gone\nkeep = 5\nimport math\nfunc = len", globs)
    assert globs["keep"] == 5
    assert globs["gone"] == 2
    assert globs["obj"] is obj
    assert "math" not in globs and "func" not in globs


def test_an_early_exit_zero_is_a_safe_exec_exception():
    with pytest.raises(SafeExecException, match="before safe_exec could return"):
        safe_exec.safe_exec("import sys; sys.exit(0)", {})


def test_not_safe_exec_runs_here_with_codejails_messages():
    globs = {"x": 2}
    not_safe_exec("y = x * 21\nz = open('hello.txt').read()", globs, files=[file_here("hello.txt")])
    assert (globs["y"], globs["z"]) == (42, "Hello there.\n")
    with pytest.raises(SafeExecException) as info:
        not_safe_exec("raise ValueError(\"That's not how you pour soup!\")", {})
    assert str(info.value) == "ValueError: That's not how you pour soup!"
    # The code's exception is its context, shown in a traceback, as in CodeJail.
    assert isinstance(info.value.__context__, ValueError)
    assert not info.value.__suppress_context__
    globs = {}
    not_safe_exec("import module; a = module.const", globs, python_path=[file_here("pylib")])
    assert globs["a"] == 42
    assert file_here("pylib") not in sys.path


def test_log_all_code_logs_the_code(caplog, monkeypatch):
    monkeypatch.setattr(safe_exec, "LOG_ALL_CODE", True)
    with caplog.at_level("DEBUG", logger="codejail"):
        safe_exec.safe_exec("a = 'logged code'", {})
    assert any("a = 'logged code'" in r.getMessage() for r in caplog.records)


def test_not_configured_at_call_time_is_a_runtime_error():
    jail_code.COMMANDS = {}
    with pytest.raises(RuntimeError) as info:
        safe_exec.safe_exec("a = 1", {})
    assert str(info.value) == "safe_exec has not been configured for Python"


def test_always_be_unsafe_is_read_at_each_call(monkeypatch, caplog):
    monkeypatch.setattr(safe_exec, "ALWAYS_BE_UNSAFE", True)
    globs = {}
    with caplog.at_level("WARNING", logger="codejail"):
        safe_exec.safe_exec("import os; pid = os.getpid()", globs, slug="dev-1")
    assert globs["pid"] == os.getpid()
    assert "DANGER: Executing code with `not_safe_exec` for dev-1" in [r.getMessage() for r in caplog.records]
    monkeypatch.setattr(safe_exec, "ALWAYS_BE_UNSAFE", False)
    safe_exec.safe_exec("import os; pid = os.getpid()", globs)
    assert globs["pid"] != os.getpid()


def test_configured_on_import_in_a_virtualenv_from_codejails_variables():
    out = subprocess.run([sys.executable, "-c", "from codejail import jail_code; print(jail_code.COMMANDS)"],
                         capture_output=True, text=True, check=True, timeout=60,
                         env=dict(os.environ, CODEJAIL_TEST_VENV="/opt/venv", CODEJAIL_TEST_USER="sandbox"))
    assert out.stdout.strip() == "{'python': Jail('python', '/opt/venv/bin/python', user='sandbox', lang=python3)}"
    out = subprocess.run([sys.executable, "-c", "from codejail import jail_code; print(jail_code.COMMANDS)"],
                         capture_output=True, text=True, check=True, timeout=60,
                         env=dict(os.environ, CODEJAIL_TEST_VENV="", CODEJAIL_TEST_USER=""))
    assert out.stdout.strip() == "{}"
    sibling = sys.prefix + "-sandbox"
    assert not os.path.exists(sibling)
    os.makedirs(sibling)
    try:
        out = subprocess.run([sys.executable, "-c", "from codejail import jail_code; print(jail_code.COMMANDS)"],
                             capture_output=True, text=True, check=True, timeout=60,
                             env=dict(os.environ, CODEJAIL_TEST_VENV="", CODEJAIL_TEST_USER=""))
    finally:
        os.rmdir(sibling)
    assert out.stdout.strip() == "{'python': Jail('python', '%s/bin/python', user='sandbox', lang=python3)}" % sibling


def test_python_entry_with_other_interpreter_arguments_says_which(monkeypatch):
    from codejail import JailError

    monkeypatch.setitem(jail_code.COMMANDS, "python", {"cmdline_start": ["/usr/bin/python3", "-B", "-E"],
                                                       "user": None})
    with pytest.raises(JailError, match=r"runs the interpreter with \['-B', '-E'\]: safe_exec runs it with -E -B"):
        safe_exec.safe_exec("a = 1", {})


def test_python_configured_with_a_language_without_safe_exec_is_a_jail_error():
    from codejail import JailError, other

    jail_code.COMMANDS["python"] = jail_code.Jail("python", "/usr/bin/python3", None, other)
    with pytest.raises(JailError, match="not configured to run in safe_exec mode"):
        safe_exec.safe_exec("a = 1", {})


def test_globals_json_is_the_callers_json_dumps():
    """The request carries json.dumps(json_safe(globals)) as it is."""
    seen = {}
    real = _api.call

    def spy(request):
        seen.update(request)
        return real(request)

    _api.call = spy
    try:
        safe_exec.safe_exec("a = 1", {"x": float("nan"), "y": b"b"})
    finally:
        _api.call = real
    assert seen["globals_json"] == json.dumps({"x": float("nan"), "y": "b"})
    assert seen["limits"] == {"cpu": 1, "realtime": 1, "vmem": 0, "fsize": 0, "nproc": 15}


def test_python_path_entries_are_staged_after_the_files_as_in_codejail(tmp_path):
    """CodeJail appends python_path entries to the files: of regular files
    of one name the python_path entry given last is staged (this package
    refused them as staged twice)."""
    zips = []
    for i in (1, 2):
        d = tmp_path / ("z%d" % i)
        d.mkdir()
        with zipfile.ZipFile(str(d / "lib.zip"), "w") as z:
            z.writestr("which.py", "N = %d\n" % i)
        zips.append(str(d / "lib.zip"))
    for files, python_path, expected in (([zips[0]], [zips[1]], 2), ([], zips, 2), ([zips[0]], [zips[0]], 1)):
        globs = {}
        safe_exec.safe_exec("import which; n = which.N", globs, files=files, python_path=python_path)
        assert globs["n"] == expected, (files, python_path)
