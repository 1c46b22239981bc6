"""The exceptions of codejail (CodeJail's names and hierarchy)."""


class CodeJailException(Exception):
    """The root of codejail's exceptions."""


class JailError(CodeJailException):
    """A jail could not be found, configured or set up for a call."""


class SafeExecException(CodeJailException):
    """Code run by ``safe_exec`` failed: it raised, crashed or hit a limit.

    The message is CodeJail's: ``Couldn't execute jailed code: stdout:
    b'...', stderr: b'...' with status code: N``.
    """
