"""Limits and overrides: CodeJail's module state, read at call time, and
applied exactly."""

import logging

import pytest

from codejail import _api, jail, jail_code, safe_exec


def sent_limits(monkeypatch, run):
    """The limits of the request `run()` sends."""
    seen = []
    real = _api.call
    monkeypatch.setattr(_api, "call", lambda request: seen.append(request["limits"]) or real(request))
    run()
    return seen[-1]


def test_get_effective_limits():
    assert jail_code.get_effective_limits() == jail_code.DEFAULT_LIMITS
    jail_code.set_limit("REALTIME", 5)
    jail_code.override_limit("CPU", 7, "course-a")
    assert jail_code.get_effective_limits("course-a")["CPU"] == 7
    assert jail_code.get_effective_limits("course-a")["REALTIME"] == 5
    assert jail_code.get_effective_limits("course-b")["CPU"] == 1
    assert jail_code.get_effective_limits(None)["CPU"] == 1
    assert jail_code.LIMIT_OVERRIDES == {"course-a": {"CPU": 7}}


def test_the_effective_limits_are_sent_exactly(monkeypatch):
    jail_code.set_limit("VMEM", 123456789)
    jail_code.set_limit("MEMORY", 64 << 20)
    jail_code.set_limit("OUTPUT", 5000)
    jail_code.override_limit("NPROC", 3, "ctx")
    limits = sent_limits(monkeypatch, lambda: jail_code.jail_code("python", "pass", limit_overrides_context="ctx"))
    assert limits == {"cpu": 1, "realtime": 1, "vmem": 123456789, "fsize": 0, "nproc": 3,
                      "memory": 64 << 20, "output": 5000}


def test_module_state_replaced_wholesale_is_seen(monkeypatch):
    jail_code.LIMITS = {"CPU": 2, "REALTIME": 3, "VMEM": 0, "FSIZE": 10, "NPROC": 4, "PROXY": 0}
    jail_code.LIMIT_OVERRIDES = {"big": {"REALTIME": 9}}
    limits = sent_limits(monkeypatch, lambda: safe_exec.safe_exec("a = 1", {}, limit_overrides_context="big"))
    assert limits == {"cpu": 2, "realtime": 9, "vmem": 0, "fsize": 10, "nproc": 4}
    # And applied: a two-second sleep under REALTIME 3 finishes.
    globs = {}
    safe_exec.safe_exec("import time; time.sleep(2); done = 1", globs)
    assert globs["done"] == 1


def test_commands_replaced_wholesale_are_seen():
    jail_code.COMMANDS = {}
    assert not jail_code.is_configured("python")
    with pytest.raises(Exception, match="jail_code needs to be configured for 'python'"):
        jail_code.jail_code("python", "pass")
    jail_code.COMMANDS = {"python": {"cmdline_start": ["/usr/bin/python3", "-E", "-B"], "user": None}}
    assert jail_code.jail_code("python", "import sys; print(sys.flags.ignore_environment)").stdout == b"1\n"


def test_values_as_codejail_takes_them():
    assert jail.protocol_limits({"CPU": None, "REALTIME": 0.2, "VMEM": False, "FSIZE": 0, "NPROC": 15.0,
                                 "PROXY": 1}) == {"cpu": 0, "realtime": 1, "vmem": 0, "fsize": 0, "nproc": 15}
    assert jail.protocol_limits({"cpu": 2, "Disk": 1 << 20, "files": 10}) == {"cpu": 2, "disk": 1 << 20,
                                                                               "files": 10}


def test_an_unknown_limit_is_ignored_with_one_warning(caplog, monkeypatch):
    monkeypatch.setattr(jail, "_warned_limits", set())
    jail_code.set_limit("WALLTIME", 5)
    with caplog.at_level(logging.WARNING, logger="codejail"):
        jail_code.jail_code("python", "pass")
        jail_code.jail_code("python", "pass")
    warnings = [r for r in caplog.records if "WALLTIME" in r.getMessage()]
    assert len(warnings) == 1


def test_a_limit_out_of_range_is_a_jail_error():
    from codejail import JailError

    jail_code.set_limit("NPROC", 1 << 40)
    with pytest.raises(JailError, match="out of range"):
        jail_code.jail_code("python", "pass")
    # Negative, or past 64 bits: said with the limit's name (it was
    # "malformed request: invalid number").
    for name, value in (("VMEM", -1), ("REALTIME", -1), ("CPU", 2**64), ("REALTIME", -0.5), ("CPU", float("inf")),
                        ("VMEM", float("nan")), ("CPU", "2")):
        jail_code.set_limit(name, value)
        with pytest.raises(JailError, match=r"limit %s is .*: give a number from 0" % name):
            jail_code.jail_code("python", "pass")
        jail_code.set_limit(name, jail_code.DEFAULT_LIMITS.get(name, 0))


def test_disk_limit_gives_enospc():
    jail_code.set_limit("DISK", 1 << 20)
    jail_code.set_limit("FSIZE", 10 << 20)
    res = jail_code.jail_code("python", "import tempfile\nf = tempfile.TemporaryFile()\nf.write(b'x' * (4 << 20))\n"
                                        "f.flush()")
    assert res.status != 0
    assert b"No space left" in res.stderr
