# codejail safe_exec driver: runs inside the jail as `jailed_code`.
#
# stdin: one JSON object {"code": str, "globals": dict, "python_path": [str]}.
# stdout: one JSON object, the JSON-safe globals after the code ran, and
# nothing else: the code's own output (Python's and any C library's writes
# to fd 1) goes to stderr, so printing cannot corrupt the result.
# Only the standard library is used, and only `json` is imported beyond
# what the interpreter loads anyway.
import json
import os
import sys

result_fd = os.dup(1)
os.dup2(2, 1)

payload = json.loads(sys.stdin.buffer.read())
for entry in reversed(payload["python_path"]):
    sys.path.insert(0, entry)


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
            text = json.dumps(decode(value), allow_nan=False, ensure_ascii=False)
            text.encode("utf-8")  # lone surrogates do not survive
            out[str(decode(key))] = json.loads(text)
        except Exception:
            continue
    return out


namespace = payload["globals"]
exec(compile(payload["code"], "<jailed code>", "exec"), namespace)
sys.stdout.flush()
result = json.dumps(json_safe(namespace), ensure_ascii=False).encode("utf-8")
with os.fdopen(result_fd, "wb") as out:
    out.write(result)
