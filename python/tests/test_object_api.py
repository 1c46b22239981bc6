"""The object API of CodeJail's newer line, sharing one registry with
codejail.jail_code."""

import pytest

import codejail
from codejail import jail_code
from codejail.exceptions import CodeJailException, JailError, SafeExecException


def test_configure_returns_a_registered_jail():
    jail = codejail.configure("python78", "/usr/bin/python3", user=None, lang=codejail.python3)
    assert codejail.is_configured("python78")
    assert codejail.get_codejail("python78") is jail
    assert jail_code.COMMANDS["python78"] is jail
    assert jail.cmdline_start == ["/usr/bin/python3", "-E", "-B"]
    assert jail["cmdline_start"] == jail.cmdline_start and jail["user"] is None
    with pytest.raises(KeyError):
        jail["colour"]  # pylint: disable=pointless-statement


def test_the_readme_example():
    codejail.configure("python78", "/usr/bin/python3", user=None, lang=codejail.python3)
    try:
        jail = codejail.get_codejail("python78")
    except JailError:
        raise
    globs = {"n": 6}
    jail.safe_exec("m = n * 7", globs, slug="hotcode")
    assert globs["m"] == 42
    res = jail.jail_code("print('foo')", slug="hotcode")
    assert res == (0, b"foo\n", b"")
    assert (res.status, res.stdout, res.stderr) == (0, b"foo\n", b"")


def test_unknown_jails_are_jail_errors():
    with pytest.raises(JailError) as info:
        codejail.get_codejail("nope")
    assert str(info.value) == "CodeJail not found for nope"
    assert not codejail.is_configured("nope")


def test_exception_hierarchy():
    assert issubclass(JailError, CodeJailException)
    assert issubclass(SafeExecException, CodeJailException)
    from codejail import safe_exec
    assert safe_exec.SafeExecException is SafeExecException


def test_languages():
    assert codejail.other == codejail.Language("other", [], None)
    assert codejail.python3.argv == ["-E", "-B"] and codejail.python3.safe_exec_template
    assert codejail.python2.name == "python2"
    jail = codejail.configure("py2", "/usr/bin/python3", lang=codejail.python2)
    globs = {}
    jail.safe_exec("a = 2", globs)
    assert globs == {"a": 2}
    assert codejail.configure("python", "/usr/bin/python3").lang is codejail.python3
    assert codejail.configure("node", "/usr/bin/node").lang is codejail.other


def test_a_language_without_safe_exec_is_a_jail_error_and_runs_jail_code():
    jail = codejail.configure("sh", "/bin/sh", lang=codejail.other)
    with pytest.raises(JailError) as info:
        jail.safe_exec("a = 1", {})
    assert str(info.value) == "Code Jail sh not configured to run in safe_exec mode.  Try jail_code() instead"
    assert jail.jail_code('echo "$@"', argv=["hi"]).stdout == b"hi\n"


def test_a_custom_language():
    shell = codejail.Language(name="sh-x", argv=["-e"], safe_exec_template=None)
    jail = codejail.configure("strict-sh", "/bin/sh", lang=shell)
    res = jail.jail_code("false\necho unreachable")
    assert (res.status, res.stdout) == (1, b"")


def test_the_registry_is_shared_both_ways():
    jail_code.configure("sh", "/bin/sh")
    assert codejail.get_codejail("sh").cmdline_start == ["/bin/sh"]
    codejail.configure("sh2", "/bin/sh")
    assert jail_code.is_configured("sh2")
    assert jail_code.jail_code("sh2", "echo shared").stdout == b"shared\n"
    # CodeJail 4.x kept dictionaries; they still work, read at call time.
    jail_code.COMMANDS = {"python": {"cmdline_start": ["/usr/bin/python3", "-E", "-B"], "user": None}}
    assert codejail.is_configured("python") and not codejail.is_configured("sh2")
    globs = {}
    codejail.get_codejail("python").safe_exec("a = 3", globs)
    assert globs == {"a": 3}
    assert codejail.jail.COMMANDS is jail_code.COMMANDS


def test_jail_code_of_the_object_api_uses_the_limits():
    jail = codejail.configure("python", "/usr/bin/python3")
    jail_code.set_limit("REALTIME", 1)
    res = jail.jail_code("import time; time.sleep(3)")
    assert res.status == -9
    from codejail import limits
    assert limits.LIMITS is jail_code.LIMITS


def test_a_jail_reads_as_a_codejail_4_commands_entry():
    """``COMMANDS[...]`` entries were dicts in CodeJail 4.x: ``dict()``,
    ``.get``, ``in`` and comparison work on a Jail."""
    from codejail import jail_code

    jail = jail_code.Jail("python", "/usr/bin/python3", "sandbox")
    entry = {"cmdline_start": ["/usr/bin/python3", "-E", "-B"], "user": "sandbox"}
    assert dict(jail) == entry
    assert jail == entry
    assert jail.get("user") == "sandbox" and jail.get("nothing") is None
    assert "user" in jail and "cmdline_start" in jail and "bin" not in jail
    assert len(jail) == 2
