# codejail safe_exec: the jailed program (DRIVER_SOURCE is line 1; see below)
import marshal
try:
    from _frozen_importlib_external import MAGIC_NUMBER
except ImportError:
    MAGIC_NUMBER = None
try:
    with open(".codejail-driver", "rb") as _file:
        _driver = _file.read()
except OSError:
    _driver = b""
if MAGIC_NUMBER is not None and _driver[:len(MAGIC_NUMBER)] == MAGIC_NUMBER:
    _driver = marshal.loads(_driver[len(MAGIC_NUMBER):])
else:
    _driver = DRIVER_SOURCE
exec(_driver)
code, g_dict, _finish = begin(loads(sys.stdin.buffer.read().decode("utf-8")), os.dup(1))
#PYTHON_PATH
exec(code, g_dict)
_finish(g_dict)
# ---------------------------------------------------------------------------
# DRIVER_SOURCE (driver.py, as one line) is defined above the first line of
# this text. The caller compiled the driver once, when the jail was
# configured, and stages that bytecode next to this file: loading it costs
# microseconds where compiling the driver cost about a millisecond per run.
# Bytecode for another interpreter (say, one upgraded since) is ignored and
# the source is compiled instead.
#
# The code runs at the line where CodeJail's own program runs it,
# `exec(code, g_dict)` at module level on line 19, one line later per
# python_path entry (CodeJail writes one `sys.path.append` line for each;
# "#PYTHON_PATH" above becomes that many empty lines): a traceback of the
# code reads as under CodeJail, frame for frame, and the interpreter ends
# the run as it ends CodeJail's (the status, atexit, KeyboardInterrupt).
