"""Safe execution of untrusted Python code (CodeJail 4.x's
``codejail.safe_exec``).

``safe_exec(code, globals_dict, ...)`` is Python's ``exec(code,
globals_dict)`` run in a jail: ``globals_dict`` is updated in place with
the code's JSON-safe globals. Values cross exactly as through CodeJail's
JSON straw (``json_safe``): bytes that are UTF-8 become text, tuples
lists, integers of any size, NaN and infinities, lone surrogates survive.

As in edx-codejail 4.1, both are decided at each call: with
``ALWAYS_BE_UNSAFE`` set, ``safe_exec`` runs ``not_safe_exec`` (in this
process, unconfined, with a warning); with no ``python`` jail configured it
raises ``RuntimeError("safe_exec has not been configured for Python")``.
"""

import json
import logging
import os
import shutil
import sys

from . import jail_code
from .exceptions import SafeExecException
from .jail import Jail
from .util import change_directory, temp_directory

__all__ = [
    "ALWAYS_BE_UNSAFE",
    "LOG_ALL_CODE",
    "SafeExecException",
    "json_safe",
    "not_safe_exec",
    "safe_exec",
]

log = logging.getLogger("codejail")

#: Log the code and the globals of every call (at DEBUG).
LOG_ALL_CODE = False
#: Run every safe_exec unconfined, in this process (read at each call).
ALWAYS_BE_UNSAFE = False


# pylint: disable=too-many-arguments
def safe_exec(code, globals_dict, files=None, python_path=None, limit_overrides_context=None, slug=None,
              extra_files=None):
    """Executes ``code`` as ``exec`` does, with ``globals_dict`` as its
    globals, in a jail, and updates ``globals_dict`` with what the code left
    there that survives JSON.

    ``files`` are copied into the jail; ``python_path`` entries (directories
    or zip files) are put on ``sys.path``, and copied in unless an
    ``extra_files`` entry ``(name, bytes)`` has their name. The limits are
    ``jail_code.LIMITS`` with ``limit_overrides_context``'s overrides.

    Raises SafeExecException (CodeJail's message) when the code raises,
    crashes or hits a limit.
    """
    if ALWAYS_BE_UNSAFE:
        not_safe_exec(code, globals_dict, files=files, python_path=python_path,
                      limit_overrides_context=limit_overrides_context, slug=slug, extra_files=extra_files)
        return
    if not jail_code.is_configured("python"):
        raise RuntimeError("safe_exec has not been configured for Python")
    jail = Jail.from_entry("python", jail_code.COMMANDS["python"])
    # CodeJail's safe_exec runs through its jail_code, which says this.
    jail_code._log_preparing(slug, limit_overrides_context)  # pylint: disable=protected-access
    if LOG_ALL_CODE:
        log.debug("Exec: %s", code)
        log.debug("Globals: %r", globals_dict)
    result = jail.exec_globals(code, globals_dict, files, python_path, slug, extra_files, limit_overrides_context)
    if LOG_ALL_CODE:
        log.debug("Result: %r", result)
    globals_dict.update(result)


_KEPT = (type(None), int, float, bytes, str, list, tuple, dict)


def _as_text(value):
    """bytes decoded as UTF-8 (an error if they are not), tuples as lists,
    through lists, tuples and both sides of dicts; anything else as it is."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, (list, tuple)):
        return [_as_text(item) for item in value]
    if isinstance(value, dict):
        return {_as_text(key): _as_text(item) for key, item in value.items()}
    return value


def json_safe(d):
    """The part of the dict ``d`` that survives a JSON round trip, as it
    comes out of it: entries whose value is None, a number, text, bytes, a
    list, a tuple or a dict, and that ``json.dumps`` then ``json.loads``
    carry (bytes decoded first; entries that fail are left out), except
    ``__builtins__``."""
    kept = {}
    for key, value in d.items():
        if key == "__builtins__" or not isinstance(value, _KEPT):
            continue
        try:
            value = json.loads(json.dumps(_as_text(value)))
            key = json.loads(json.dumps(_as_text(key)))
        except Exception:  # pylint: disable=broad-except
            continue
        kept[key] = value
    return json.loads(json.dumps(kept))


def not_safe_exec(code, globals_dict, files=None, python_path=None, limit_overrides_context=None, slug=None,
                  extra_files=None):
    """``safe_exec`` without a jail, in this process, for debugging: the
    code runs with ``exec`` in a temporary directory holding the files, with
    ``python_path`` appended to ``sys.path``. Not thread-safe (it changes
    the directory and ``sys.path``); limits do not apply. An exception
    becomes SafeExecException("<class name>: <message>"). Logs a warning
    on every call."""
    del limit_overrides_context  # no limits here, as in CodeJail
    log.warning("DANGER: Executing code with `not_safe_exec` for %s", slug)
    namespace = json_safe(globals_dict)
    with temp_directory() as tmpdir, change_directory(tmpdir):
        for filename in files or ():
            shutil.copyfile(filename, os.path.join(tmpdir, os.path.basename(filename)))
        for filename, contents in extra_files or ():
            with open(os.path.join(tmpdir, filename), "wb") as out:
                out.write(contents)
        saved_path = list(sys.path)
        if python_path:
            sys.path.extend(python_path)
        try:
            exec(code, namespace)  # pylint: disable=exec-used
        except Exception as e:  # pylint: disable=broad-except
            # As CodeJail: raised while handling the code's exception, which
            # stays its context (a traceback shows both).
            raise SafeExecException("{0.__class__.__name__}: {0!s}".format(e))  # pylint: disable=raise-missing-from
        finally:
            sys.path = saved_path
    globals_dict.update(json_safe(namespace))


