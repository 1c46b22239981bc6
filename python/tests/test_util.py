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
