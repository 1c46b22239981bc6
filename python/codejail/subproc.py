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
"""

import logging

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
