"""Import compatibility with the newer CodeJail line's ``codejail.limits``:
the limits are ``codejail.jail_code``'s (``LIMITS`` here reads them)."""

from .jail_code import set_limit  # noqa: F401


def __getattr__(name):
    if name in ("LIMITS", "DEFAULT_LIMITS", "LIMIT_OVERRIDES"):
        from . import jail_code  # pylint: disable=import-outside-toplevel

        return getattr(jail_code, name)
    raise AttributeError(name)
