# codejail safe_exec driver: runs inside the jail as `jailed_code`.
#
# stdin: one JSON object {"code": str, "globals": dict, "python_path": [str]}.
# stdout: one JSON object, the JSON-safe globals after the code ran, and
# nothing else: the code's own output (Python's and any C library's writes
# to fd 1) goes to stderr, so printing cannot corrupt the result.
#
# Only the standard library is used, and not even the `json` package: its
# decoder and encoder import `re`, which costs milliseconds per run. The C
# accelerator `_json` that `json` itself uses does the same work.
import _json
import os
import sys

def _no_constant(name):
    raise ValueError("%s is not JSON" % name)


class _Context:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = staticmethod(_no_constant)
    memo = {}


_scan = _json.make_scanner(_Context())


def loads(text):
    value, end = _scan(text, 0)
    if text[end:].strip():
        raise ValueError("extra data after JSON")
    _Context.memo.clear()
    return value


def _refuse(value):
    raise TypeError("not JSON: %r" % type(value))


# allow_nan=False: NaN and infinities are not JSON.
_encode = _json.make_encoder({}, _refuse, _json.encode_basestring, None, ":", ",", False, False, False)


def dumps(value):
    return "".join(_encode(value, 0))


def decode(value):
    """Bytes become text (or fail); containers are decoded recursively."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, (list, tuple)):
        return [decode(v) for v in value]
    if isinstance(value, dict):
        return {decode(k): decode(v) for k, v in value.items()}
    return value


SAFE_TYPES = (type(None), bool, int, float, str, bytes, list, tuple, dict)


def json_safe(namespace):
    """CodeJail's json_safe: keep what survives a JSON round trip."""
    out = {}
    for key, value in namespace.items():
        if key == "__builtins__" or not isinstance(value, SAFE_TYPES):
            continue
        try:
            text = dumps(decode(value))
            text.encode("utf-8")  # lone surrogates do not survive
            out[str(decode(key))] = loads(text)
        except Exception:
            continue
    return out


def safe_exec(payload, result_fd):
    """exec() the payload's code with its globals; write the JSON-safe
    globals to result_fd."""
    for entry in reversed(payload["python_path"]):
        sys.path.insert(0, entry)
    namespace = payload["globals"]
    # exec() of the string, as CodeJail does: compile() would first build
    # the ast module's classes, about a millisecond in a fresh interpreter.
    exec(payload["code"], namespace)
    sys.stdout.flush()
    result = dumps(json_safe(namespace)).encode("utf-8")
    with os.fdopen(result_fd, "wb") as out:
        out.write(result)


if not globals().get("ZYGOTE"):
    result_fd = os.dup(1)
    os.dup2(2, 1)
    safe_exec(loads(sys.stdin.buffer.read().decode("utf-8")), result_fd)
