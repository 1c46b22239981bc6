"""Shared set-up: a configured python jail, and module state restored after
every test (tests replace COMMANDS, LIMITS and LIMIT_OVERRIDES)."""

import copy
import os
import pathlib
import shutil
import tempfile

import pytest

import codejail
from codejail import jail_code

# The tests are of the installed package (its binary, its files), never of
# the source tree: run them with the virtualenv's `pytest`, not `python -m`.
assert "site-packages" in codejail.__file__, codejail.__file__

#: The interpreter the jail runs: CODEJAIL_TEST_VENV/bin/python as
#: CODEJAIL_TEST_USER when set (CodeJail's variables, read at import),
#: else CODEJAIL_TEST_PYTHON or /usr/bin/python3.
if not jail_code.is_configured("python"):
    jail_code.configure("python", os.environ.get("CODEJAIL_TEST_PYTHON", "/usr/bin/python3"))

HERE = os.path.dirname(os.path.abspath(__file__))


def file_here(name):
    """A file of tests/files."""
    return os.path.join(HERE, "files", name)


_STATE = ("COMMANDS", "LIMITS", "LIMIT_OVERRIDES", "SERVICE_URL", "SERVICE_TIMEOUT")


@pytest.fixture(autouse=True)
def restore_module_state():
    """Every test starts with the configured state and leaves it as found."""
    saved = {name: getattr(jail_code, name) for name in _STATE}
    copies = {name: copy.deepcopy(value) for name, value in saved.items() if isinstance(value, dict)}
    yield
    for name, value in saved.items():
        if isinstance(value, dict):
            value.clear()
            value.update(copies[name])
        setattr(jail_code, name, value)


@pytest.fixture
def tmp_dir():
    """A temporary directory the sandbox user can reach and read (pytest's
    own are private to their owner)."""
    path = pathlib.Path(tempfile.mkdtemp(prefix="codejail-test-"))
    os.chmod(path, 0o755)
    yield path
    shutil.rmtree(path, ignore_errors=True)


def have(program):
    """Whether a program is on PATH."""
    return shutil.which(program) is not None
