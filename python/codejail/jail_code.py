"""Run code in a jail (CodeJail 4.x's ``codejail.jail_code``).

Module state is read when a call is made: code that replaces ``COMMANDS``,
``LIMITS`` or ``LIMIT_OVERRIDES`` with new dictionaries is seen by the next
call, as is ``SERVICE_URL``.
"""

import logging
import os
import sys

import resource

from . import languages
from .jail import Jail
from .subproc import run_subprocess  # noqa: F401  (CodeJail's module had it)
from .util import temp_directory  # noqa: F401  (CodeJail's module had it)

log = logging.getLogger("codejail")

#: The configured jails by command name: :class:`codejail.jail.Jail`
#: objects, or dictionaries ``{"cmdline_start": [bin, *args], "user": ...}``
#: as CodeJail 4.x kept them. Shared with ``codejail.configure``.
COMMANDS = {}


def configure(command, bin_path, user=None, **settings):
    """Configures ``command`` to run ``bin_path`` (as ``user`` for a root
    caller; see the README). For ``python`` the interpreter gets ``-E -B``
    and ``safe_exec``. ``settings``: this project's ``policy``,
    ``apparmor_profile``, ``jail_parent``, ``allow_root_user``,
    ``allow_exec``."""
    lang = languages.python3 if command == "python" else languages.other
    COMMANDS[command] = Jail(command, bin_path, user, lang, **settings)


def is_configured(command):
    """Whether ``command`` has been configured."""
    return command in COMMANDS


# As CodeJail does: inside a virtualenv, python comes from
# CODEJAIL_TEST_VENV as CODEJAIL_TEST_USER, or from a sibling
# "<venv>-sandbox" as "sandbox".
running_in_virtualenv = hasattr(sys, "real_prefix") or (
    hasattr(sys, "base_prefix") and sys.base_prefix != sys.prefix
)
if running_in_virtualenv:
    sandbox_user = os.getenv("CODEJAIL_TEST_USER")
    sandbox_env = os.getenv("CODEJAIL_TEST_VENV")
    if sandbox_env and sandbox_user:
        configure("python", "{}/bin/python".format(sandbox_env), sandbox_user)
    elif os.path.isdir(sys.prefix + "-sandbox"):
        configure("python", sys.prefix + "-sandbox/bin/python", "sandbox")


#: CodeJail's defaults. This package also knows MEMORY (bytes of the whole
#: run, a cgroup), DISK and FILES (bytes and files in the jail's tmp/) and
#: OUTPUT (bytes kept per output stream, 4 MiB when unset): set them with
#: set_limit to use them.
DEFAULT_LIMITS = {
    "CPU": 1,
    "REALTIME": 1,
    "VMEM": 0,
    "FSIZE": 0,
    "NPROC": 15,
    "PROXY": None,
}

#: The limits in force; set_limit changes them.
LIMITS = DEFAULT_LIMITS.copy()

#: Limits per context (such as a course): {context: {name: value}}.
LIMIT_OVERRIDES = {}

#: The address of a ``codejail serve`` (codejail-service's v0 API), such as
#: ``http://127.0.0.1:8550``; safe_exec calls go there, and run here when it
#: is down. None: every call runs here. Default: $CODEJAIL_SERVICE_URL.
SERVICE_URL = os.environ.get("CODEJAIL_SERVICE_URL") or None

#: Seconds to wait for the service; None: the effective REALTIME limit
#: plus 10.
SERVICE_TIMEOUT = None


def set_limit(limit_name, value):
    """Sets a limit for every later call: ``CPU`` (seconds), ``REALTIME``
    (seconds), ``VMEM`` (bytes), ``FSIZE`` (bytes, 0: no file may be
    written), ``NPROC`` (processes), and this package's ``MEMORY``,
    ``DISK``, ``FILES``, ``OUTPUT``; ``PROXY`` is accepted and ignored. 0
    turns a limit off, except FSIZE."""
    LIMITS[limit_name] = value


def get_effective_limits(overrides_context=None):
    """``LIMITS`` with the context's overrides applied (none for an unknown
    or missing context)."""
    overrides = LIMIT_OVERRIDES.get(overrides_context, {}) if overrides_context else {}
    return {**LIMITS, **overrides}


def override_limit(limit_name, value, limit_overrides_context):
    """Overrides a limit for one context. PROXY cannot be overridden: the
    attempt is logged and ignored."""
    if limit_name == "PROXY" and LIMITS["PROXY"] != value:
        log.error(
            "Tried to override value of PROXY to %s. "
            "Overriding PROXY on a per-context basis is not permitted. "
            "Will use globally-configured value instead: %s.",
            value,
            LIMITS["PROXY"],
        )
        return
    LIMIT_OVERRIDES.setdefault(limit_overrides_context, {})[limit_name] = value


class JailResult:
    """What jail_code returns: ``stdout`` and ``stderr`` (bytes) and
    ``status`` (the exit code, or minus the signal that ended the run)."""

    def __init__(self):
        self.stdout = self.stderr = self.status = None

    def __repr__(self):
        return "JailResult(status=%r, stdout=%r, stderr=%r)" % (self.status, self.stdout, self.stderr)


# pylint: disable=too-many-arguments
def _log_preparing(slug, limit_overrides_context):
    """CodeJail's line before a run with a slug (INFO)."""
    if slug:
        log.info(
            "Preparing to execute jailed code %r (overrides context = %r, resource limits = %r).",
            slug,
            limit_overrides_context,
            get_effective_limits(limit_overrides_context),
        )


def jail_code(command, code=None, files=None, extra_files=None, argv=None, stdin=None,
              limit_overrides_context=None, slug=None):
    """Runs ``code`` (or a copied file named first in ``argv``) with the
    program configured as ``command``, in a fresh jail directory that holds
    ``jailed_code``, copies of ``files`` (links stay links), the
    ``extra_files`` ``(name, bytes)`` and a writable ``tmp/`` (``TMPDIR``).
    ``stdin`` is text (or bytes). The limits are ``LIMITS`` with the
    overrides of ``limit_overrides_context``. Returns a JailResult."""
    if not is_configured(command):
        raise Exception("jail_code needs to be configured for %r" % command)  # pylint: disable=broad-exception-raised
    jail = Jail.from_entry(command, COMMANDS[command])
    _log_preparing(slug, limit_overrides_context)
    status, stdout, stderr = jail.run_code(
        code, files, extra_files, argv, stdin, slug, limit_overrides_context
    )
    result = JailResult()
    result.status = status
    result.stdout = stdout
    result.stderr = stderr
    return result


def create_rlimits(effective_limits):
    """CodeJail's resource limits for its jailed processes, from its
    effective limits (``NPROC``, ``CPU``, ``VMEM``, ``FSIZE``): a list of
    ``(resource, (soft, hard))`` for ``resource.setrlimit``. This package's
    runs set their own; kept for code that calls it."""
    rlimits = []
    nproc = effective_limits["NPROC"]
    if nproc:
        rlimits.append((resource.RLIMIT_NPROC, (nproc, nproc)))
    cpu = effective_limits["CPU"]
    if cpu:
        # A soft limit below the hard one: SIGXCPU, not SIGKILL.
        rlimits.append((resource.RLIMIT_CPU, (cpu, cpu + 1)))
    vmem = effective_limits["VMEM"]
    if vmem:
        rlimits.append((resource.RLIMIT_AS, (vmem, vmem)))
    fsize = effective_limits["FSIZE"]
    rlimits.append((resource.RLIMIT_FSIZE, (fsize, fsize)))
    return rlimits
