"""Running one jailed program, with CodeJail's log lines.

The ``codejail`` logger gets, from this module as in CodeJail:

* ``Executed jailed code <slug> in <dir>, with PID <pid>`` (INFO, for a call
  with a slug): the jail directory the run used and the pid of its
  supervisor, the process the kill line names;
* every line the binary logged during the run, at its level: among them
  ``Killing process <pid>: wall-clock limit reached`` (WARNING) when the
  wall-clock limit ends a run, warnings about unconfined runs or a sandbox
  user that cannot be used, and ``ran jailed code`` (INFO).

The lines are emitted when the run has ended (CodeJail logged the first one
as the program started).

CodeJail's helpers ``run_subprocess``, ``set_process_limits`` and
``ProcessKillerThread`` are here too, for code that imports them; they
confine nothing, and this package's runs do not use them.
"""

import functools
import logging
import os
import resource
import signal
import subprocess
import threading
import time

from . import _api

log = logging.getLogger("codejail")

_LEVELS = {
    "error": logging.ERROR,
    "warn": logging.WARNING,
    "info": logging.INFO,
    "debug": logging.DEBUG,
    "trace": logging.DEBUG,
}


#: Lines the binary says once per process: said once per caller here too.
_ONCE = ("the configured sandbox user",)
_said = set()


def run_api(request, slug=None):
    """Sends ``request`` to a new ``codejail api`` process; logs the run;
    returns the response."""
    response = _api.call(request)
    log_run(response, slug)
    return response


def log_run(response, slug):
    """CodeJail's lines for a finished run, then the binary's own."""
    if slug:
        log.info(
            "Executed jailed code %s in %s, with PID %s",
            slug,
            response.get("jail_dir"),
            response.get("pid"),
        )
    for line in response.get("logs") or ():
        message = line.get("message", "")
        if message.startswith(_ONCE):
            # Said once per process by the binary, which is new at each call.
            if message in _said:
                continue
            _said.add(message)
        level = _LEVELS.get(line.get("level"), logging.INFO)
        fields = line.get("fields") or {}
        extra = {"codejail_fields": fields}
        shown = {k: v for k, v in fields.items() if k not in ("jail", "slug", "pid")}
        if shown:
            log.log(level, "%s (%s)", message, _words(shown), extra=extra)
        else:
            log.log(level, "%s", message, extra=extra)


def _words(fields):
    return ", ".join("%s=%s" % (k, v) for k, v in sorted(fields.items()))


# CodeJail's own helpers, for code that imports them. They confine
# nothing: under CodeJail the confinement came from the command given
# (sudo, AppArmor); this package's runs do not use them.


def run_subprocess(cmd, stdin=None, cwd=None, env=None, rlimits=None, realtime=None, slug=None):
    """CodeJail's ``run_subprocess``: runs ``cmd`` (as ``subprocess.Popen``
    takes it, in a session of its own, with ``rlimits`` set in the child)
    with ``stdin`` as its input, its process group killed after
    ``realtime`` seconds; returns ``(status, stdout, stderr)``."""
    subproc = subprocess.Popen(  # pylint: disable=subprocess-popen-preexec-fn,consider-using-with
        cmd, cwd=cwd, env=env,
        preexec_fn=functools.partial(set_process_limits, rlimits or ()),
        stdin=subprocess.PIPE, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
    )
    if slug:
        log.info("Executed jailed code %s in %s, with PID %s", slug, cwd, subproc.pid)
    if realtime:
        ProcessKillerThread(subproc, limit=realtime).start()
    stdout, stderr = subproc.communicate(stdin)
    return subproc.returncode, stdout, stderr


def set_process_limits(rlimits):
    """CodeJail's: in the child, a new session, then each
    ``(resource, (soft, hard))`` of ``rlimits`` set."""
    os.setsid()
    for limit, value in rlimits:
        resource.setrlimit(limit, value)


class ProcessKillerThread(threading.Thread):
    """CodeJail's: kills the process group of ``subproc`` once it has run
    ``limit`` seconds (CodeJail ran ``sudo pkill``; the group is killed
    directly here)."""

    def __init__(self, subproc, limit):
        super().__init__()
        self.subproc = subproc
        self.limit = limit

    def run(self):
        start = time.time()
        while (time.time() - start) < self.limit:
            time.sleep(.25)
            if self.subproc.poll() is not None:
                return
        if self.subproc.poll() is None:
            pgid = os.getpgid(self.subproc.pid)
            log.warning("Killing process %r (group %r), ran too long: %.1fs",
                        self.subproc.pid, pgid, time.time() - start)
            try:
                os.killpg(pgid, signal.SIGKILL)
            except ProcessLookupError:
                pass
