"""Languages a jail can run (CodeJail's ``codejail.languages``).

A ``Language`` is ``(name, argv, safe_exec_template)``: ``argv`` comes after
the program, before the code file. A language whose
``safe_exec_template`` is ``None`` has no ``safe_exec``; any other value
means Python's ``safe_exec``, which this package always runs with its own
driver (the template's text is not used), and which takes exactly
``-E -B`` as ``argv``.
"""

from collections import namedtuple

Language = namedtuple("Language", ["name", "argv", "safe_exec_template"])

#: Marks a language as having ``safe_exec``: the driver is codejail's own.
BUILTIN_SAFE_EXEC = "codejail-rs: the built-in safe_exec driver"

# pylint: disable=invalid-name
other = Language(name="other", argv=[], safe_exec_template=None)
python3 = Language(name="python3", argv=["-E", "-B"], safe_exec_template=BUILTIN_SAFE_EXEC)
#: Accepted as a name: it runs the configured interpreter exactly as python3.
python2 = Language(name="python2", argv=["-E", "-B"], safe_exec_template=BUILTIN_SAFE_EXEC)
