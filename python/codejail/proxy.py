"""Import compatibility with CodeJail's proxy process.

CodeJail started a long-lived proxy process so that a large web process did
not pay for copying itself at each fork. This package never copies its
caller: each call starts the ``codejail`` binary with ``vfork`` (see
``codejail.subproc``). The ``PROXY`` limit is accepted and ignored, and
there is no proxy process.
"""

#: Always None: there is no proxy process.
PROXY_PROCESS = None
