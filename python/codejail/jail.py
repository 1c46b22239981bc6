"""Jails as objects (the API of CodeJail's newer line).

``configure(command, bin_path, user=None, lang=None)`` makes a :class:`Jail`
and records it in the one registry both APIs share,
``codejail.jail_code.COMMANDS``; ``get_codejail(command)`` and
``is_configured(command)`` read it at call time.
"""

import collections
import collections.abc
import json
import os

from . import _api, languages, subproc
from .exceptions import JailError, SafeExecException

JailResult = collections.namedtuple("JailResult", ["status", "stdout", "stderr"])

#: This package's limits, by CodeJail's (upper-case) names.
KNOWN_LIMITS = ("CPU", "REALTIME", "VMEM", "FSIZE", "NPROC", "MEMORY", "DISK", "FILES", "OUTPUT")
_SECONDS = ("CPU", "REALTIME")
_warned_limits = set()


def _registry():
    from . import jail_code  # pylint: disable=import-outside-toplevel,cyclic-import

    return jail_code


class Jail(collections.abc.Mapping):
    """A configured jail: ``command`` (its name), ``bin_path``, ``user``
    and ``lang`` (a :class:`codejail.languages.Language`), as in CodeJail,
    and this project's settings: ``policy`` (``"auto"``, ``"unsafe"`` or
    ``"require:landlock,seccomp,..."``), ``apparmor_profile``,
    ``jail_parent``, ``allow_root_user`` and ``allow_exec`` (the code may
    start other programs; by default, as under CodeJail's AppArmor profile,
    it may not).

    It reads like an entry of CodeJail 4.x's ``COMMANDS``, a mapping of
    ``cmdline_start`` and ``user`` (``jail["user"]``, ``.get``, ``in``,
    ``dict(jail)``); changing the list ``jail["cmdline_start"]`` gives
    changes nothing (configure again instead).
    """

    default_language = languages.other
    known_commands = {"python": languages.python3, "python3": languages.python3}

    # pylint: disable=too-many-arguments
    def __init__(
        self,
        command,
        bin_path,
        user,
        lang=None,
        *,
        policy=None,
        apparmor_profile=None,
        jail_parent=None,
        allow_root_user=False,
        allow_exec=False,
    ):
        self.command = command
        self.bin_path = bin_path
        self.user = user
        self.lang = self.known_commands.get(command, self.default_language) if lang is None else lang
        self.policy = policy
        self.apparmor_profile = apparmor_profile
        self.jail_parent = jail_parent
        self.allow_root_user = allow_root_user
        self.allow_exec = allow_exec

    @property
    def cmdline_start(self):
        """The program and the language's arguments."""
        return [self.bin_path] + list(self.lang.argv)

    def __getitem__(self, item):
        if item == "user":
            return self.user
        if item == "cmdline_start":
            return self.cmdline_start
        raise KeyError(item)

    def __iter__(self):
        return iter(("cmdline_start", "user"))

    def __len__(self):
        return 2

    def __eq__(self, other):
        if isinstance(other, dict):
            return other == {"cmdline_start": self.cmdline_start, "user": self.user}
        if isinstance(other, Jail):
            return vars(self) == vars(other)
        return NotImplemented

    __hash__ = None

    def __repr__(self):
        return "Jail(%r, %r, user=%r, lang=%s)" % (self.command, self.bin_path, self.user, self.lang.name)

    @classmethod
    def from_entry(cls, command, entry):
        """A registry entry as a Jail: a Jail, or a 4.x-style dict
        ``{"cmdline_start": [bin, *args], "user": ...}``."""
        if isinstance(entry, Jail):
            return entry
        try:
            start = list(entry["cmdline_start"])
            user = entry.get("user") if hasattr(entry, "get") else entry["user"]
        except (KeyError, TypeError):
            raise JailError("COMMANDS[%r] is neither a Jail nor {'cmdline_start': [...], 'user': ...}" % (command,)) from None
        if not start:
            raise JailError("COMMANDS[%r] has an empty cmdline_start" % (command,))
        args = start[1:]
        if command in cls.known_commands and args == list(languages.python3.argv):
            lang = cls.known_commands[command]
        else:
            lang = languages.Language(name=str(command), argv=args, safe_exec_template=None)
        return cls(command, start[0], user, lang)

    # -- requests -----------------------------------------------------------

    def spec(self):
        """The jail as ``codejail api`` takes it."""
        lang = self.lang
        return {
            "name": str(self.command),
            "bin": os.fspath(self.bin_path),
            "user": None if self.user is None else str(self.user),
            "lang": {
                "name": str(lang.name),
                "args": [str(a) for a in lang.argv],
                "safe_exec": lang.safe_exec_template is not None,
            },
            "policy": self.policy,
            "apparmor_profile": self.apparmor_profile,
            "jail_parent": None if self.jail_parent is None else os.path.abspath(os.fspath(self.jail_parent)),
            "allow_root_user": bool(self.allow_root_user),
            "allow_exec": bool(self.allow_exec),
        }

    def request(self, op, code, files, extra_files, slug, limit_overrides_context):
        """The fields every request has."""
        files, extra_files = _as_codejail_stages(files, extra_files)
        request = {
            "v": _api.PROTOCOL,
            "op": op,
            "jail": self.spec(),
            "code": code if code else None,
            # Absolute: the binary may have been started ahead, elsewhere.
            "files": [_stage_path(f) for f in files],
            "extra_files": [[name, _api.b64(_as_bytes(content))] for name, content in extra_files],
            "limits": protocol_limits(_registry().get_effective_limits(limit_overrides_context)),
            "slug": None if slug is None else str(slug),
        }
        return request

    # -- jail_code ----------------------------------------------------------

    def run_code(self, code=None, files=None, extra_files=None, argv=None, stdin=None, slug=None,
                 limit_overrides_context=None):
        """One run; returns ``(status, stdout, stderr)``."""
        request = self.request("jail_code", code, files, extra_files, slug, limit_overrides_context)
        request["argv"] = [str(a) for a in argv or ()]
        if stdin:
            request["stdin_b64"] = _api.b64(_as_bytes(stdin))
        response = subproc.run_api(request, slug)
        return response["status"], _api.unb64(response.get("stdout_b64")), _api.unb64(response.get("stderr_b64"))

    def jail_code(self, code=None, files=None, extra_files=None, argv=None, stdin=None, slug=None):
        """Runs code (or a copied file named first in ``argv``) in a fresh
        jail directory; returns ``JailResult(status, stdout, stderr)``, the
        outputs as bytes, the status CodeJail's (exit code, or minus the
        signal that ended it)."""
        return JailResult(*self.run_code(code, files, extra_files, argv, stdin, slug))

    # -- safe_exec ----------------------------------------------------------

    def check_safe_exec(self):
        """A JailError when this jail's language has no safe_exec."""
        if self.lang.safe_exec_template is None and self.command in self.known_commands and self.lang.argv:
            # A 4.x-style dict entry whose interpreter arguments are not the
            # built-in driver's: say so, not that this is no Python jail.
            raise JailError(
                "COMMANDS[{!r}] runs the interpreter with {!r}: safe_exec runs it with -E -B only; "
                "use jail_code.configure({!r}, bin_path, user)".format(self.command, self.lang.argv, self.command)
            )
        if self.lang.safe_exec_template is None:
            raise JailError(
                "Code Jail {} not configured to run in safe_exec mode.  Try jail_code() instead".format(self.command)
            )

    def exec_globals(self, code, globals_dict, files=None, python_path=None, slug=None, extra_files=None,
                     limit_overrides_context=None):
        """``safe_exec``'s work: returns the code's JSON-safe globals."""
        from .safe_exec import json_safe  # pylint: disable=import-outside-toplevel,cyclic-import
        from . import _service  # pylint: disable=import-outside-toplevel

        self.check_safe_exec()
        globals_json = json.dumps(json_safe(globals_dict))
        served = _service.try_safe_exec(self, code, globals_json, files, python_path, slug, extra_files,
                                        limit_overrides_context)
        if served is not None:
            return served
        files, python_path = _python_path_as_codejail_stages(files, python_path, extra_files)
        request = self.request("safe_exec", code, files, extra_files, slug, limit_overrides_context)
        request["code"] = code
        request["python_path"] = [_stage_path(p) for p in python_path]
        request["globals_json"] = globals_json
        response = subproc.run_api(request, slug)
        if "globals_json" in response:
            return json.loads(response["globals_json"])
        raise SafeExecException(failure_message(response))

    def safe_exec(self, code, globals_dict, files=None, python_path=None, slug=None, extra_files=None):
        """Python's ``exec(code, globals_dict)`` in a jail: ``globals_dict``
        is updated with the code's JSON-safe globals; SafeExecException
        when the code fails; JailError when this jail has no safe_exec."""
        globals_dict.update(self.exec_globals(code, globals_dict, files, python_path, slug, extra_files))


def failure_message(response):
    """CodeJail's SafeExecException text for a failed safe_exec run."""
    if response.get("status") is None:
        return response.get("codejail_message") or response.get("message") or "safe_exec failed"
    return "Couldn't execute jailed code: stdout: {!r}, stderr: {!r} with status code: {}".format(
        _api.unb64(response.get("stdout_b64")), _api.unb64(response.get("stderr_b64")), response["status"]
    )


def _stage_path(path):
    """``path`` as the kernel resolves it, absolute: joined to the working
    directory, never simplified as text (``os.path.abspath`` would take
    ``link/..`` for the working directory, where the kernel goes to the
    link's parent). A path that is not UTF-8 cannot be sent: JailError."""
    path = os.fsdecode(path)
    try:
        path.encode("utf-8")
    except UnicodeEncodeError:
        raise JailError("file {!r} has a name that is not UTF-8; rename it to stage it".format(path)) from None
    return path if os.path.isabs(path) else os.path.join(os.getcwd(), path)


def _regular(path):
    return os.path.isfile(path) and not os.path.islink(path)


def _stage_name(path):
    """The name a file is staged under."""
    return os.path.basename(os.fsdecode(path).rstrip("/"))


def _last_of_each_name(paths, overwritten=()):
    """``paths`` as CodeJail's copies, in order, leave them: of regular
    files with one name the last, and none whose name is in
    ``overwritten`` (written after them). Directories and links stay: two
    of one name failed there, and are refused here too."""
    kept = []
    for path in paths or ():
        name, regular = _stage_name(path), _regular(path)
        if regular:
            if name in overwritten:
                continue
            kept = [(n, p, r) for (n, p, r) in kept if not (r and n == name)]
        kept.append((name, path, regular))
    return [path for _, path, _ in kept]


def _python_path_as_codejail_stages(files, python_path, extra_files):
    """``files`` and ``python_path`` as CodeJail stages them: it appends
    each python_path entry that no extra file names to the files, so of
    regular files of one name the python_path entry given last is the one
    staged (and put on ``sys.path``, once)."""
    extra_names = {name for name, _ in extra_files or ()}
    entries = _last_of_each_name(python_path)
    later = {_stage_name(e) for e in entries if _regular(e) and _stage_name(e) not in extra_names}
    return _last_of_each_name(files, later), entries


def _as_codejail_stages(files, extra_files):
    """``files`` and ``extra_files`` as CodeJail leaves them in the jail,
    which copies the files, then writes the extra files: of extra files
    with one name the last, and an extra file over a regular file of its
    name."""
    extra = {}
    for name, content in extra_files or ():
        extra.pop(name, None)
        extra[name] = content
    return _last_of_each_name(files, extra), list(extra.items())


def _as_bytes(content):
    if isinstance(content, str):
        return content.encode("utf-8")
    return bytes(content)


def protocol_limits(limits):
    """Effective limits (CodeJail's names and values) as the protocol
    takes them: lower-case names, whole numbers; ``None`` or ``False`` is 0
    (off); seconds round up; PROXY is ignored, as is any name this package
    does not know (with a warning, once)."""
    out = {}
    for name, value in limits.items():
        key = str(name).upper()
        if key == "PROXY":
            continue
        if key not in KNOWN_LIMITS:
            if key not in _warned_limits:
                _warned_limits.add(key)
                subproc.log.warning("Ignoring unknown limit %r; known: %s", name, ", ".join(KNOWN_LIMITS))
            continue
        refused = JailError(
            "limit {} is {!r}: give a number from 0 to 2**64 - 1 (0 or None: no limit)".format(key, value)
        )
        if value is None or value is False:
            value = 0
        elif not isinstance(value, (int, float)):
            raise refused
        elif isinstance(value, float):
            # NaN, infinities and negative numbers are no limit to round.
            if not 0 <= value < 2.0**64:
                raise refused
            value = int(-(-value // 1)) if key in _SECONDS else int(value)
        value = int(value)
        if not 0 <= value < 2**64:
            raise refused
        out[key.lower()] = value
    return out


def configure(command, bin_path, user=None, lang=None, **settings):
    """Configures a jail called ``command`` and records it (replacing one of
    that name); returns it. ``settings``: ``policy``, ``apparmor_profile``,
    ``jail_parent``, ``allow_root_user``, ``allow_exec``."""
    jail = Jail(command, bin_path, user, lang, **settings)
    _registry().COMMANDS[command] = jail
    return jail


def get_codejail(command):
    """The jail configured as ``command``; JailError if there is none."""
    registry = _registry().COMMANDS
    try:
        entry = registry[command]
    except KeyError:
        raise JailError("CodeJail not found for {}".format(command)) from None
    return Jail.from_entry(command, entry)


def is_configured(command):
    """Whether a jail is configured as ``command``."""
    return command in _registry().COMMANDS


def __getattr__(name):
    if name == "COMMANDS":
        return _registry().COMMANDS
    raise AttributeError(name)
