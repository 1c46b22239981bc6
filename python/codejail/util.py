"""Helpers (CodeJail's ``codejail.util``)."""

import contextlib
import os
import shutil
import tempfile


@contextlib.contextmanager
def temp_directory():
    """Make a directory (``codejail-XXXXXX`` in the temp dir), yield its
    path, and remove it, contents and all, afterwards."""
    path = tempfile.mkdtemp(prefix="codejail-")
    try:
        yield path
    finally:
        shutil.rmtree(path)


@contextlib.contextmanager
def change_directory(new_dir):
    """Work in ``new_dir`` for the block, then go back."""
    previous = os.getcwd()
    os.chdir(new_dir)
    try:
        yield new_dir
    finally:
        os.chdir(previous)
