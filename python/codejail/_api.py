"""The bundled ``codejail`` binary and its machine interface, ``codejail api``.

One call is one run of the binary: the request (protocol version 1, see
the package README) is written on its stdin, the answer read from its
stdout. The binary is started by ``subprocess`` on its ``vfork`` path
(``close_fds``, no ``preexec_fn``, no user or group change, no new
session): the caller's memory is never copied, however large it is.

With ``PRESTART`` (the default), the binary of the next call is started
ahead of it by a helper thread, as soon as a call has ended (not during
the call, whose run it would slow): it asks the kernel what this machine offers (a few namespaces tried, 2 ms
or more) while the caller does something else, then waits for its request.
It is still one fresh process per call. A process started ahead is used
only by the process that started it (not after ``fork``) and only if the
binary and the environment it reads (``TMPDIR``, ``PATH``, ``HOME``,
``XDG_CACHE_HOME``, ``CODEJAIL_CACHE_DIR``) are unchanged; one that was not
used gets end-of-input and exits quietly.
"""

import atexit
import base64
import json
import os
import selectors
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


#: Start each call's binary ahead of the call (see the module's doc).
#: $CODEJAIL_PRESTART=0 turns it off.
PRESTART = os.environ.get("CODEJAIL_PRESTART", "1") != "0"

_ENVIRONMENT = ("TMPDIR", "PATH", "HOME", "XDG_CACHE_HOME", "CODEJAIL_CACHE_DIR")


def _start(program):
    # The defaults keep subprocess on its vfork path: close_fds=True, no
    # preexec_fn, no cwd change, no new session, no uid/gid/groups.
    return subprocess.Popen(  # pylint: disable=consider-using-with
        [program, "api"],
        stdin=subprocess.PIPE,
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
    )


def _key(program):
    return (program, os.getpid(), tuple(os.environ.get(name) for name in _ENVIRONMENT))


def _finish(process):
    """Waits for a process that has answered; closes its pipes."""
    try:
        process.wait(timeout=30)
    except subprocess.TimeoutExpired:
        process.kill()
        process.wait()
    for pipe in (process.stdout, process.stderr):
        pipe.close()


def _dismiss(process):
    """Ends a process started ahead and never used: end of input."""
    try:
        process.stdin.close()
        process.wait(timeout=10)
    except Exception:  # pylint: disable=broad-except
        process.kill()
    for pipe in (process.stdout, process.stderr):
        pipe.close()


class _Ahead:
    """The process started ahead of the next call, and the thread that
    starts it."""

    def __init__(self):
        self.lock = threading.Lock()
        self.wanted = threading.Condition(self.lock)
        self.process = None
        self.key = None
        self.want = None
        self.thread = None
        self.answered = []

    def _wake(self):
        if self.thread is None:
            self.thread = threading.Thread(target=self._run, name="codejail-helper", daemon=True)
            self.thread.start()
        self.wanted.notify()

    def reap(self, process):
        """Waits for a process that has answered (it is exiting), in the
        helper thread, so that the caller need not."""
        with self.lock:
            self.answered.append(process)
            self._wake()

    def take(self, key):
        """The process started ahead for `key`, if there is a usable one."""
        with self.lock:
            process, its_key = self.process, self.key
            self.process = self.key = None
        if process is None:
            return None
        if its_key != key or process.poll() is not None:
            _dismiss(process)
            return None
        return process

    def ask(self, key):
        """Start a process for the next call, in the helper thread. Asked
        when a call has ended, so that its start-up does not compete with
        the call's run for the CPU."""
        with self.lock:
            self.want = key
            self._wake()

    def _run(self):
        while True:
            with self.lock:
                while not self.answered and (self.want is None or self.process is not None):
                    self.wanted.wait()
                answered, self.answered = self.answered, []
                key = None if self.process is not None else self.want
                self.want = None
            for process in answered:
                _finish(process)
            if key is None:
                continue
            try:
                process = _start(key[0])
            except OSError:
                continue
            with self.lock:
                if self.process is None and key[1] == os.getpid():
                    self.process, self.key = process, key
                    continue
            _dismiss(process)

    def close(self):
        """At exit: the process started ahead gets end of input."""
        with self.lock:
            process, self.process = self.process, None
        if process is not None:
            _dismiss(process)


_ahead = _Ahead()
atexit.register(lambda: _ahead.close())  # pylint: disable=unnecessary-lambda


def _after_fork_in_child():
    global _ahead  # pylint: disable=global-statement
    # The parent's process started ahead and its thread are the parent's.
    _ahead = _Ahead()


if hasattr(os, "register_at_fork"):
    os.register_at_fork(after_in_child=_after_fork_in_child)


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
        program = binary()
        self._key = _key(program)
        process = _ahead.take(self._key) if PRESTART else None
        self.process = process or _start(program)
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
            stdout, stderr = self._exchange()
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
            if PRESTART:
                _ahead.ask(self._key)
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

    def _exchange(self):
        """Writes the request, reads the response line; returns (stdout,
        stderr). The process is left to exit on its own once it has
        answered (the helper thread reaps it): its jail is removed before it
        answers."""
        process = self.process
        try:
            process.stdin.write(self._data)
            process.stdin.close()
        except BrokenPipeError:  # it refused the request before reading it all
            pass
        out, err = bytearray(), bytearray()
        streams = {process.stdout.fileno(): out, process.stderr.fileno(): err}
        with selectors.DefaultSelector() as selector:
            for fd in streams:
                selector.register(fd, selectors.EVENT_READ)
            while selector.get_map():
                for key, _ in selector.select():
                    chunk = os.read(key.fd, 1 << 20)
                    if not chunk:
                        selector.unregister(key.fd)
                        continue
                    streams[key.fd] += chunk
                    if key.fd == process.stdout.fileno() and b"\n" in chunk:
                        _ahead.reap(process)
                        return bytes(out), bytes(err)
        process.wait()
        for pipe in (process.stdout, process.stderr):
            pipe.close()
        return bytes(out), bytes(err)


def call(request):
    """One request, one response (see :class:`Call`)."""
    return Call(request).finish()
