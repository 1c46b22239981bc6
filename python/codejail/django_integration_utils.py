"""Applying Django's ``settings.CODE_JAIL`` (without needing Django).

CodeJail's keys: ``python_bin`` (configures the ``python`` jail, as
``user``), ``limits`` (``set_limit``), ``limit_overrides`` (``{context:
{name: value}}``, ``override_limit``). This package's optional keys:
``policy`` (``"auto"``, ``"unsafe"``, ``"require:landlock,seccomp,..."``),
``apparmor_profile``, ``jail_parent`` (for the ``python`` jail, with
``python_bin``); ``service_url`` and ``service_timeout`` (the
``codejail serve`` backend). ``limits`` may also hold ``MEMORY``,
``DISK``, ``FILES`` and ``OUTPUT``.
"""

from . import jail_code

_JAIL_SETTINGS = ("policy", "apparmor_profile", "jail_parent", "allow_root_user", "allow_exec")


def apply_django_settings(code_jail_settings):
    """Applies a ``CODE_JAIL`` dictionary to ``codejail.jail_code``."""
    python_bin = code_jail_settings.get("python_bin")
    if python_bin:
        user = code_jail_settings["user"]
        settings = {k: code_jail_settings[k] for k in _JAIL_SETTINGS if code_jail_settings.get(k) is not None}
        jail_code.configure("python", python_bin, user=user, **settings)
    limits = code_jail_settings.get("limits", {})
    for name, value in limits.items():
        jail_code.set_limit(limit_name=name, value=value)
    limit_overrides = code_jail_settings.get("limit_overrides", {})
    for context, overrides in limit_overrides.items():
        for name, value in overrides.items():
            jail_code.override_limit(limit_name=name, value=value, limit_overrides_context=context)
    if "service_url" in code_jail_settings:
        jail_code.SERVICE_URL = code_jail_settings["service_url"] or None
    if "service_timeout" in code_jail_settings:
        jail_code.SERVICE_TIMEOUT = code_jail_settings["service_timeout"]
