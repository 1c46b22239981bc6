"""codejail.util, as CodeJail's."""

import os

import pytest

from codejail.util import change_directory, temp_directory


def test_temp_directory_is_made_and_removed_with_its_contents():
    with temp_directory() as path:
        assert os.path.basename(path).startswith("codejail-") and os.path.isdir(path)
        os.makedirs(os.path.join(path, "a", "b"))
        open(os.path.join(path, "a", "b", "f"), "w").close()
    assert not os.path.exists(path)


def test_change_directory_goes_back_even_after_an_error(tmp_path):
    before = os.getcwd()
    with pytest.raises(ValueError):
        with change_directory(str(tmp_path)) as where:
            assert os.getcwd() == os.path.realpath(str(tmp_path)) and where == str(tmp_path)
            raise ValueError
    assert os.getcwd() == before


def test_codejails_subprocess_helpers_are_there_for_code_that_imports_them():
    """CodeJail's run_subprocess, set_process_limits, ProcessKillerThread
    and create_rlimits, as CodeJail's (a grader imports run_subprocess)."""
    import resource
    import sys

    from codejail import jail_code
    from codejail.subproc import run_subprocess

    status, out, err = run_subprocess([sys.executable, "-c", "import sys; print(sys.stdin.read().upper())"],
                                      stdin=b"hi", rlimits=[(resource.RLIMIT_NOFILE, (64, 64))])
    assert (status, out, err) == (0, b"HI\n", b"")
    status, _, _ = run_subprocess([sys.executable, "-c", "import time; time.sleep(30)"], realtime=0.5)
    assert status == -9
    assert jail_code.run_subprocess is run_subprocess
    limits = {"NPROC": 15, "CPU": 1, "VMEM": 0, "FSIZE": 0}
    assert jail_code.create_rlimits(limits) == [
        (resource.RLIMIT_NPROC, (15, 15)),
        (resource.RLIMIT_CPU, (1, 2)),
        (resource.RLIMIT_FSIZE, (0, 0)),
    ]
