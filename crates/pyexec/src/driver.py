# codejail safe_exec driver: its functions, which the jailed program
# (program.py) and the warm path's worker (zygote.py) run: begin(), then
# the code as CodeJail runs it, exec(code, g_dict), then finish().
#
# stdin: one JSON object {"code": str, "python_path": [str], "merge": bool,
# "globals": {...}}, in Python's dialect (NaN, Infinity and integers of any
# size allowed): the caller's globals, as CodeJail sends them.
# The result descriptor: the JSON-safe globals after the code ran, as
# CodeJail's `json_safe` makes them and as Python's `json.dumps` writes
# them, and nothing else. With "merge", the caller's globals updated with
# them (what CodeJail's caller holds after `globals_dict.update(...)`).
#
# As in CodeJail, the code's printing goes nowhere (`sys.stdout` is a
# DevNull); writes to descriptor 1 from C go to /dev/null rather than into
# the result.
#
# Only the standard library is used, and not even the `json` package: its
# decoder and encoder import `re`, which costs milliseconds per run. The C
# accelerator `_json` that `json` itself uses does the same work, set up
# as `json.loads` and `json.dumps` set it up.
import _json
import os
import sys

_CONSTANTS = {"NaN": float("nan"), "Infinity": float("inf"), "-Infinity": float("-inf")}


class _Context:
    strict = True
    object_hook = None
    object_pairs_hook = None
    parse_float = float
    parse_int = int
    parse_constant = _CONSTANTS.__getitem__
    memo = {}


_scan = _json.make_scanner(_Context())
_SPACE = " \t\n\r"


def loads(text):
    """json.loads(text)."""
    start = len(text) - len(text.lstrip(_SPACE))
    try:
        value, end = _scan(text, start)
    except StopIteration as e:
        raise ValueError("Expecting value at %d" % e.value) from None
    finally:
        _Context.memo.clear()
    if text[end:].strip(_SPACE):
        raise ValueError("Extra data at %d" % end)
    return value


def _refuse(value):
    raise TypeError("Object of type %s is not JSON serializable" % type(value).__name__)


# json.dumps's defaults: circular references checked, ensure_ascii (lone
# surrogates are written as \ud800 escapes), ", " and ": ", NaN allowed.
def dumps(value):
    """json.dumps(value)."""
    encode = _json.make_encoder(
        {}, _refuse, _json.encode_basestring_ascii, None, ": ", ", ", False, False, True
    )
    return "".join(encode(value, 0))


_KEPT_TYPES = (type(None), int, float, bytes, str, list, tuple, dict)


def _as_text(value):
    """bytes become str (UTF-8, else an error), tuples lists, recursively
    through lists, tuples and dict keys and values; anything else is left
    for the encoder to accept or refuse."""
    if isinstance(value, bytes):
        return value.decode("utf-8")
    if isinstance(value, (list, tuple)):
        return [_as_text(item) for item in value]
    if isinstance(value, dict):
        return {_as_text(k): _as_text(v) for k, v in value.items()}
    return value


# Values a dumps+loads round trip gives back as they are, which json_safe
# then keeps without one: exactly these types (a subclass comes back as its
# base type), text without surrogates (ASCII: a pair of lone surrogates
# comes back as one character), integers far from the digit limit.
_BIG = 1 << 63


def _same_after_trip(value):
    kind = type(value)
    if kind is str:
        return value.isascii()
    if kind is int:
        return -_BIG < value < _BIG
    return kind is float or kind is bool or value is None


def json_safe(namespace):
    """What of a namespace crosses a JSON round trip, exactly as CodeJail's
    json_safe keeps it: entries whose value is of a JSON-like type (None,
    numbers, text, bytes, lists, tuples, dicts) and survives dumps+loads
    after bytes are decoded, under their key as it survives the same;
    `__builtins__` never. A key that comes back unhashable fails the run,
    as it does in CodeJail. Values and keys the trip gives back as they
    are skip it; so does the last trip of the whole, when every key is
    text (each value has made the trip, or needs none)."""
    kept = {}
    text_keys = True
    for key, value in namespace.items():
        if not isinstance(value, _KEPT_TYPES) or key in ("__builtins__",):
            continue
        try:
            if not _same_after_trip(value):
                value = loads(dumps(_as_text(value)))
            if not _same_after_trip(key):
                key = loads(dumps(_as_text(key)))
        except Exception:
            continue
        kept[key] = value
        text_keys = text_keys and type(key) is str
    return kept if text_keys else loads(dumps(kept))


class DevNull(object):
    def write(self, *args, **kwargs):
        pass

    def flush(self, *args, **kwargs):
        pass


def begin(payload, result_fd):
    """Sets the run up as CodeJail's program does (the code's printing goes
    nowhere, the python_path entries on sys.path) and returns the code, its
    globals and what ends the run: the JSON-safe globals written to
    result_fd. The caller runs the code in between, as CodeJail does:
    exec(code, g_dict)."""
    null = os.open(os.devnull, os.O_WRONLY)
    os.dup2(null, 1)
    os.close(null)
    sys.stdout = DevNull()
    for entry in payload["python_path"]:
        sys.path.append(entry)
    namespace = payload["globals"]
    merged = loads(dumps(namespace)) if payload.get("merge") else None

    def finish(namespace):
        result = json_safe(namespace)
        if merged is not None:
            merged.update(result)
            result = merged
        data = dumps(result).encode("ascii")
        with os.fdopen(result_fd, "wb") as out:
            out.write(data)

    return payload["code"], namespace, finish
