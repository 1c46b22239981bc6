"""codejail: run untrusted code in throw-away jails, with CodeJail's API.

A drop-in for ``edx-codejail`` 4.x (``codejail.jail_code``,
``codejail.safe_exec``, ``codejail.django_integration``) and for the
object API of CodeJail's newer line::

    import codejail
    jail = codejail.configure("python", "/usr/bin/python3", lang=codejail.python3)
    globals_dict = {"x": 20}
    jail.safe_exec("y = x + 22", globals_dict)
    res = jail.jail_code("print(6 * 7)")          # JailResult(status, stdout, stderr)

Every call runs the ``codejail`` binary installed with this package once,
which confines the code with every layer the machine offers.
"""

from .exceptions import CodeJailException, JailError, SafeExecException
from .jail import Jail, configure, get_codejail, is_configured
from .languages import Language, other, python2, python3

__version__ = "0.1.0"

__all__ = [
    "CodeJailException",
    "Jail",
    "JailError",
    "Language",
    "SafeExecException",
    "configure",
    "get_codejail",
    "is_configured",
    "other",
    "python2",
    "python3",
]
