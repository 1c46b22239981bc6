"""The bundled ``codejail`` binary and its machine interface, ``codejail api``.

One call is one run of the binary: the request (protocol version 1, see
the package README) is written on its stdin, the answer read from its
stdout. The binary is started by ``subprocess`` on its ``vfork`` path
(``close_fds``, no ``preexec_fn``, no user or group change, no new
session): the caller's memory is never copied, however large it is.
"""

import base64
import json
import os
import shutil
import subprocess
import sys
import sysconfig
import threading

from .exceptions import JailError

PROTOCOL = 1

#: The distribution this package is installed as.
DISTRIBUTION = "codejail-rs"

_found = None
_found_lock = threading.Lock()


def _from_record():
    """The binary the wheel installed, from its RECORD (any install scheme)."""
    try:
        from importlib import metadata  # pylint: disable=import-outside-toplevel
    except ImportError:  # pragma: no cover (Python < 3.8)
        return None
    try:
        dist = metadata.distribution(DISTRIBUTION)
    except metadata.PackageNotFoundError:
        return None
    for entry in dist.files or ():
        if entry.name == "codejail" and entry.parent.name in ("bin", "scripts"):
            path = str(dist.locate_file(entry))
            if os.access(path, os.X_OK):
                return os.path.realpath(path)
    return None


def _search():
    candidates = [_from_record()]
    for scheme in (None, "posix_user"):
        try:
            scripts = sysconfig.get_path("scripts", scheme) if scheme else sysconfig.get_path("scripts")
        except KeyError:  # pragma: no cover
            continue
        candidates.append(os.path.join(scripts, "codejail"))
    candidates.append(os.path.join(os.path.dirname(sys.executable), "codejail"))
    candidates.append(shutil.which("codejail"))
    for path in candidates:
        if path and os.path.isfile(path) and os.access(path, os.X_OK):
            return path
    return None


def binary():
    """The ``codejail`` binary: ``$CODEJAIL_BIN`` if set, else the one the
    package installed (found once)."""
    global _found  # pylint: disable=global-statement
    override = os.environ.get("CODEJAIL_BIN")
    if override:
        return override
    if _found is None:
        with _found_lock:
            if _found is None:
                _found = _search()
    if _found is None:
        raise JailError(
            "the codejail binary was not found; reinstall the package "
            "(pip install codejail-rs) or set CODEJAIL_BIN to its path"
        )
    return _found


def b64(data):
    """Base64 text of bytes."""
    return base64.b64encode(data).decode("ascii")


def unb64(text):
    """Bytes of base64 text (None: empty)."""
    return base64.b64decode(text) if text else b""


class Call:
    """One run of ``codejail api``: started at once, answered by
    :meth:`finish`. ``pid`` is the binary's process id."""

    def __init__(self, request):
        data = json.dumps(request).encode("ascii")
        # The defaults keep subprocess on its vfork path: close_fds=True,
        # no preexec_fn, no cwd change, no new session, no uid/gid/groups.
        self.process = subprocess.Popen(  # pylint: disable=consider-using-with
            [binary(), "api"],
            stdin=subprocess.PIPE,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
        )
        self.pid = self.process.pid
        self._data = data

    def finish(self):
        """Waits for the answer; returns the response (a dict).

        Raises ``JailError`` for a request the binary refused or a jail it
        could not set up. If this thread is interrupted while waiting, the
        run is ended (SIGTERM: the binary kills it and removes its jail).
        """
        process = self.process
        try:
            stdout, stderr = process.communicate(self._data)
        except BaseException:
            process.terminate()
            try:
                process.wait(timeout=10)
            except subprocess.TimeoutExpired:  # pragma: no cover
                process.kill()
                process.wait()
            raise
        finally:
            self._data = None
        try:
            response = json.loads(stdout) if stdout else None
        except ValueError:
            response = None
        if not isinstance(response, dict):
            raise JailError(
                "codejail api exited with status %s and no answer: %s"
                % (process.returncode, stderr.decode("utf-8", "replace").strip()[-2000:])
            )
        if "error" in response:
            error = JailError(response["error"])
            error.kind = response.get("kind")
            raise error
        return response


def call(request):
    """One request, one response (see :class:`Call`)."""
    return Call(request).finish()
