"""codejail.jail_code as code written for CodeJail 4.x uses it: CodeJail's
own test cases, rewritten, and what this package adds."""

import os
import signal
import textwrap

import pytest

from codejail import jail_code
from codejail.jail_code import LIMITS, jail_code as jailcode, set_limit

from conftest import file_here


def jailpy(code=None, *args, **kwargs):
    """jail_code on python, the code dedented."""
    if code:
        code = textwrap.dedent(code)
    return jailcode("python", code, *args, **kwargs)


def assert_ok(res):
    assert res.stderr == b"", res.stderr
    assert res.status == 0


def test_hello_world():
    res = jailpy("print('Hello, world!')")
    assert_ok(res)
    assert res.stdout == b"Hello, world!\n"
    assert isinstance(res, jail_code.JailResult)


def test_argv_and_slug():
    res = jailpy("import sys; print(':'.join(sys.argv[1:]))", argv=["Hello", "world", "-x"], slug="a/useful/slug")
    assert_ok(res)
    assert res.stdout == b"Hello:world:-x\n"


def test_an_exception_ends_with_status_one_and_a_traceback():
    res = jailpy("raise Exception('FAIL')")
    assert res.status == 1
    assert res.stdout == b""
    assert res.stderr.startswith(b"Traceback (most recent call last):\n")
    assert res.stderr.endswith(b"    raise Exception('FAIL')\nException: FAIL\n")


def test_stdin_is_text_and_can_be_large():
    res = jailpy("import json, sys; print(sum(json.load(sys.stdin)))", stdin="[1, 2.5, 33]")
    assert_ok(res)
    assert res.stdout == b"36.5\n"
    res = jailpy("import sys; print(sum(ord(c) for c in sys.stdin.read()))",
                 stdin="".join(chr(i) for i in range(256)) * 10000)
    assert_ok(res)
    assert res.stdout == b"326400000\n"


def test_stdin_may_be_bytes():
    res = jailpy("import sys; sys.stdout.buffer.write(sys.stdin.buffer.read()[::-1])", stdin=b"\x00\xffab")
    assert_ok(res)
    assert res.stdout == b"ba\xff\x00"


def test_outputs_are_bytes_and_binary():
    text = "".join(chr(i) for i in range(256)) * 1000
    res = jailpy("import sys\nsys.stdout.write(%r)\nsys.stderr.write(%r)" % (text, text[::-1]))
    assert res.status == 0
    assert res.stdout == text.encode("utf-8")
    assert res.stderr == text[::-1].encode("utf-8")


def test_output_past_the_output_limit_is_cut_and_the_run_ended():
    set_limit("OUTPUT", 10000)
    res = jailpy("import sys\nsys.stdout.write('x' * 100000)\nsys.stdout.flush()\nimport time; time.sleep(5)")
    assert res.stdout == b"x" * 10000
    assert res.status == -signal.SIGKILL


def test_files_are_copied():
    res = jailpy("print('Look:', open('hello.txt').read())", files=[file_here("hello.txt")])
    assert_ok(res)
    assert res.stdout == b"Look: Hello there.\n\n"


def test_directories_are_copied():
    res = jailpy(
        """\
        import os
        rows = []
        for path, dirs, files in os.walk("."):
            rows.append((path, sorted(dirs), sorted(f for f in files if f != "__pycache__")))
        for row in sorted(rows):
            print(row)
        """,
        files=[file_here("hello.txt"), file_here("pylib")],
    )
    assert_ok(res)
    assert res.stdout.decode().splitlines() == [
        "('.', ['pylib', 'tmp'], ['hello.txt', 'jailed_code'])",
        "('./pylib', [], ['module.py'])",
        "('./tmp', [], [])",
    ]


def test_executing_a_copied_file():
    res = jailpy(files=[file_here("doit.py")], argv=["doit.py", "1", "2", "3"])
    assert_ok(res)
    assert res.stdout == b"This is doit.py!\nMy args are ['doit.py', '1', '2', '3']\n"


def test_executing_extra_files_with_binary_content():
    res = jailpy(
        extra_files=[
            ("run.py", b"import os\nprint(sorted(os.listdir('.')))\nprint(open('also.txt', 'rb').read())\n"),
            ("also.txt", b"also here\xff\x00\xab"),
        ],
        argv=["run.py"],
    )
    assert_ok(res)
    assert res.stdout == b"['also.txt', 'run.py', 'tmp']\nb'also here\\xff\\x00\\xab'\n"


def test_temp_files_can_be_written_and_are_removed():
    set_limit("FSIZE", 1000)
    res = jailpy(
        """\
        import os, tempfile
        d = tempfile.mkdtemp()
        with open(os.path.join(d, "f.txt"), "w") as f:
            f.write("This is my file!")
        os.chmod(os.path.join(d, "f.txt"), 0)
        os.chmod(d, 0)
        print(os.environ["TMPDIR"].endswith("/tmp"))
        """
    )
    assert_ok(res)
    assert res.stdout == b"True\n"


def test_symlinks_stay_links_and_do_not_carry_data(tmp_dir):
    outside = tmp_dir / "not_copied"
    outside.mkdir()
    (outside / "linked.txt").write_text("Hi!")
    copied = tmp_dir / "copied"
    copied.mkdir()
    (copied / "here.txt").write_text("012345")
    os.symlink(str(outside / "linked.txt"), str(copied / "link.txt"))
    os.symlink("here.txt", str(copied / "herelink.txt"))
    res = jailpy(
        """\
        print(open('copied/here.txt').read())
        print(open('copied/herelink.txt').read())
        print(open('copied/link.txt').read())
        """,
        files=[str(copied)],
    )
    assert res.stdout == b"012345\n012345\n"
    assert b"ermission denied" in res.stderr or b"No such file" in res.stderr


class TestLimits:
    """CodeJail's limits, changed with set_limit."""

    def test_defaults_are_codejails(self):
        assert jail_code.DEFAULT_LIMITS == {"CPU": 1, "REALTIME": 1, "VMEM": 0, "FSIZE": 0, "NPROC": 15,
                                            "PROXY": None}
        assert LIMITS == jail_code.DEFAULT_LIMITS
        assert LIMITS is not jail_code.DEFAULT_LIMITS

    def test_vmem_limit(self):
        set_limit("VMEM", 80000000)
        res = jailpy("print(len(bytearray(100000000)))")
        assert res.stdout == b""
        assert b"MemoryError" in res.stderr
        assert res.status == 1
        set_limit("VMEM", 0)
        res = jailpy("print(len(bytearray(100000000)))")
        assert (res.status, res.stdout) == (0, b"100000000\n")

    def test_cpu_limit_ends_with_sigxcpu(self):
        set_limit("CPU", 1)
        set_limit("REALTIME", 10)
        res = jailpy("while True: pass")
        assert (res.status, res.stdout, res.stderr) == (-signal.SIGXCPU, b"", b"")

    def test_realtime_limit_kills_with_sigkill(self):
        set_limit("CPU", 100)
        set_limit("REALTIME", 1)
        res = jailpy("import time; time.sleep(1.5); print('Done!')")
        assert (res.status, res.stdout) == (-signal.SIGKILL, b"")

    def test_realtime_limit_raised_or_off(self):
        set_limit("REALTIME", 2)
        res = jailpy("import time; time.sleep(1.2); print('Done!')")
        assert_ok(res)
        set_limit("REALTIME", 0)
        res = jailpy("import time; time.sleep(1.2); print('Done!')")
        assert_ok(res)
        assert res.stdout == b"Done!\n"

    def test_a_fractional_realtime_limit_rounds_up(self):
        set_limit("REALTIME", 1.5)
        res = jailpy("import time; time.sleep(1.2); print('Done!')")
        assert res.stdout == b"Done!\n"

    def test_no_files_may_be_written_by_default(self):
        res = jailpy(
            """\
            print("Trying")
            with open("mydata.txt", "w") as f:
                f.write("hello")
            """
        )
        assert res.status != 0
        assert res.stdout == b"Trying\n"
        assert b"ermission denied" in res.stderr or b"Read-only" in res.stderr

    def test_fsize_limits_temp_files(self):
        set_limit("FSIZE", 1000)
        res = jailpy(
            """\
            import tempfile
            f = tempfile.NamedTemporaryFile("w", delete=False)
            f.write("hello"); f.close()
            print("small ok")
            with open(f.name, "w") as g:
                g.write("." * 5000)
            """
        )
        assert res.stdout == b"small ok\n"
        assert b"File too large" in res.stderr

    def test_nproc_one_means_no_fork(self):
        set_limit("NPROC", 1)
        res = jailpy("import os\nprint('Forking')\nos.fork()")
        assert res.stdout == b"Forking\n"
        assert b"BlockingIOError" in res.stderr
        assert res.status != 0

    def test_memory_limit_of_this_package(self):
        set_limit("MEMORY", 64 << 20)
        set_limit("REALTIME", 10)
        res = jailpy("x = bytearray(400 << 20)\nprint('survived')")
        assert res.stdout == b""
        assert res.status != 0


class TestConfinement:
    """What CodeJail's AppArmor profile gave, given here without it."""

    def test_environment_is_not_seen(self):
        os.environ["HONEY_BOO_BOO"] = "Look!"
        try:
            res = jailpy("import os\nfor k, v in os.environ.items(): print(k, v)")
        finally:
            del os.environ["HONEY_BOO_BOO"]
        assert_ok(res)
        assert b"HONEY" not in res.stdout

    def test_etc_passwd_cannot_be_read(self):
        res = jailpy("print(len(open('/etc/passwd').read()))")
        assert res.status != 0
        assert b"ermission denied" in res.stderr

    def test_other_sandboxes_cannot_be_seen(self):
        res = jailpy(
            """\
            import os
            for place in ["..", "/tmp", "/", "/home", "/etc", "/var", "/root"]:
                try:
                    print(place, os.listdir(place))
                except Exception:
                    pass
            print("Done.")
            """
        )
        assert_ok(res)
        assert res.stdout == b"Done.\n"

    def test_no_network(self):
        res = jailpy(
            """\
            import socket
            print("Trying")
            socket.create_connection(("127.0.0.1", 22), timeout=1)
            """
        )
        assert res.status != 0
        assert res.stdout == b"Trying\n"


def test_a_command_that_is_not_configured_is_codejails_error():
    with pytest.raises(Exception) as info:
        jailcode("ruby", "puts 1")
    assert str(info.value) == "jail_code needs to be configured for 'ruby'"


def test_other_commands_run_their_program_as_it_is():
    jail_code.configure("sh", "/bin/sh")
    assert jail_code.COMMANDS["sh"]["cmdline_start"] == ["/bin/sh"]
    assert jail_code.COMMANDS["python"]["cmdline_start"][1:] == ["-E", "-B"]
    res = jailcode("sh", 'echo "$0" "$@"', argv=["a", "b"])
    assert (res.status, res.stdout) == (0, b"jailed_code a b\n")


def test_no_other_program_starts_unless_the_jail_allows_exec():
    code = """
        import subprocess
        try:
            subprocess.run(["/usr/bin/true"], check=True)
            print("ran")
        except PermissionError as e:
            print(e)
    """
    res = jailpy(code)
    assert (res.status, res.stdout) == (0, b"[Errno 13] Permission denied: '/usr/bin/true'\n"), res.stderr
    python = jail_code.COMMANDS["python"]
    jail_code.configure("python", python["cmdline_start"][0], user=python["user"], allow_exec=True)
    assert jail_code.COMMANDS["python"].spec()["allow_exec"] is True
    res = jailpy(code)
    assert (res.status, res.stdout) == (0, b"ran\n"), res.stderr


def test_a_missing_file_is_an_error_not_a_run():
    from codejail.exceptions import JailError

    with pytest.raises(JailError, match="/no/such/file"):
        jailpy("pass", files=["/no/such/file"])
    with pytest.raises(JailError, match=r"\.\./evil"):
        jailpy("pass", extra_files=[("../evil", b"x")])


def test_relative_paths_are_the_callers(monkeypatch):
    """Relative `files` and `python_path` entries are read from the
    caller's working directory at the call, wherever the binary was
    started (it may have been started ahead)."""
    from test_spawn import wait_for_ahead

    jail_code.jail_code("python", "pass")
    wait_for_ahead()  # a process is now started ahead, here
    monkeypatch.chdir(os.path.dirname(file_here("hello.txt")))
    res = jailpy("print(open('hello.txt').read())", files=["hello.txt"])
    assert res.stdout == b"Hello there.\n\n"
    from codejail import safe_exec
    globs = {}
    safe_exec.safe_exec("import module; a = module.const", globs, python_path=["pylib"])
    assert globs["a"] == 42


def test_files_and_extra_files_of_one_name_the_last_one_wins_as_in_codejail(tmp_path):
    """CodeJail copies the files in order, then writes the extra files: of
    regular files with one name the last is left, and an extra file over
    a file of its name (this package refused them as staged twice)."""
    first, second = tmp_path / "a", tmp_path / "b"
    for d, text in ((first, "A"), (second, "B")):
        d.mkdir()
        (d / "m.py").write_text(text)
    res = jailpy("print(open('m.py').read(), open('e').read())",
                 files=[str(first / "m.py"), str(second / "m.py"), str(second / "m.py")],
                 extra_files=[("e", b"1"), ("e", b"2")])
    assert_ok(res)
    assert res.stdout == b"B 2\n"
    res = jailpy("print(open('m.py').read())", files=[str(first / "m.py")], extra_files=[("m.py", b"OVER")])
    assert_ok(res)
    assert res.stdout == b"OVER\n"


def test_a_path_through_a_link_and_dotdot_stages_what_the_kernel_finds(tmp_path, monkeypatch):
    """``link/../f.txt`` is the file in the link target's parent, as the
    kernel resolves it and CodeJail copied it (it was simplified as text,
    to the working directory's ``f.txt``)."""
    (tmp_path / "real" / "sub").mkdir(parents=True)
    (tmp_path / "real" / "f.txt").write_text("REAL-PARENT")
    (tmp_path / "f.txt").write_text("CWD")
    os.symlink("real/sub", str(tmp_path / "link"))
    monkeypatch.chdir(tmp_path)
    res = jailpy("print(open('f.txt').read())", files=["link/../f.txt"])
    assert_ok(res)
    assert res.stdout == b"REAL-PARENT\n"
