# The driver's json_safe, dumps and loads against a reference: CodeJail's
# json_safe as CodeJail runs it, on the standard library's json module.
# Random namespaces (seeded; the seed and count come from argv) of the
# values safe_exec code makes: nested lists, tuples, dicts, bytes (valid
# UTF-8 or not), text with lone surrogates (and pairs of them), integers of
# any size (around 64 bits and the 4300-digit limit), floats with NaN and
# infinities, booleans, None, subclasses of str, int and float, and things
# JSON cannot carry; as values and as keys.
# Prints one line per mismatch and exits 1 if there was any.
import json
import random
import sys

DRIVER_SOURCE = sys.stdin.read()
driver = {"ZYGOTE": True}
exec(compile(DRIVER_SOURCE, "driver", "exec"), driver)


def reference_json_safe(d):
    ok_types = (type(None), int, float, bytes, str, list, tuple, dict)

    def decode_object(obj):
        if isinstance(obj, bytes):
            return obj.decode("utf-8")
        if isinstance(obj, (list, tuple)):
            out = []
            for i in obj:
                out.append(decode_object(i))
            return out
        if isinstance(obj, dict):
            out = {}
            for k, v in obj.items():
                nk = decode_object(k)
                nv = decode_object(v)
                out[nk] = nv
            return out
        return obj

    jd = {}
    for k, v in d.items():
        if not isinstance(v, ok_types):
            continue
        if k in ("__builtins__",):
            continue
        try:
            v = json.loads(json.dumps(decode_object(v)))
            k = json.loads(json.dumps(decode_object(k)))
        except Exception:
            continue
        else:
            jd[k] = v
    return json.loads(json.dumps(jd))


class Text(str):
    pass


class Number(int):
    pass


class Real(float):
    pass


def scalar(r):
    kind = r.randrange(17)
    if kind == 12:
        return Text(r.choice(["plain", "k1", "\u00e9"]))
    if kind == 13:
        return Number(r.randrange(-3, 3))
    if kind == 14:
        return Real(r.choice([0.5, float("nan")]))
    if kind == 15:
        # A pair of lone surrogates, and the character they make.
        return r.choice(["\ud83c\udf89", "\U0001f389", "a\ud83c\udf89"])
    if kind == 16:
        return r.choice([2 ** 63 - 1, 2 ** 63, -(2 ** 63), -(2 ** 63) - 1, 10 ** 4299, 10 ** 4300])
    if kind == 0:
        return None
    if kind == 1:
        return r.choice([True, False])
    if kind == 2:
        return r.randrange(-(10 ** r.randrange(1, 60)), 10 ** r.randrange(1, 60))
    if kind == 3:
        return r.choice([0.0, -0.0, 1.5, 1e300, float("nan"), float("inf"), float("-inf"), r.random()])
    if kind == 4:
        return "".join(chr(r.choice([r.randrange(32, 127), r.randrange(0xA0, 0x3000), r.randrange(0xD800, 0xE000), r.randrange(0, 32), 0x1F389])) for _ in range(r.randrange(6)))
    if kind == 5:
        return bytes(r.randrange(256) for _ in range(r.randrange(5)))
    if kind == 6:
        return "plain"
    if kind == 7:
        return {1, 2}
    if kind == 8:
        return len
    if kind == 9:
        return r.randrange(-5, 5)
    if kind == 10:
        return b"utf8 \xc3\xa9"
    return 10 ** 400


def value(r, depth):
    if depth > 3 or r.random() < 0.4:
        return scalar(r)
    kind = r.randrange(3)
    items = [value(r, depth + 1) for _ in range(r.randrange(4))]
    if kind == 0:
        return items
    if kind == 1:
        return tuple(items)
    out = {}
    for item in items:
        key = scalar(r)
        try:
            out[key] = item
        except TypeError:
            pass
    return out


def namespace(r):
    ns = {"__builtins__": {"x": 1}}
    for i in range(r.randrange(8)):
        key = r.choice(["k%d" % i, scalar(r)])
        try:
            ns[key] = value(r, 0)
        except TypeError:
            pass
    return ns


def show(x):
    """repr(x), or what kept it from being printed (an integer past the
    digit limit, which the driver must keep in force)."""
    try:
        return repr(x)[:300]
    except ValueError as e:
        return "<%s>" % e


def outcome(f, ns):
    try:
        return "ok", json.dumps(f(ns))
    except Exception as e:
        return "raised", type(e).__name__


seed, count = int(sys.argv[1]), int(sys.argv[2])
r = random.Random(seed)
bad = 0
for n in range(count):
    ns = namespace(r)
    want = outcome(reference_json_safe, ns)
    got = outcome(driver["json_safe"], ns)
    if want != got:
        bad += 1
        print("json_safe", n, show(ns), show(want)[:300], show(got)[:300])
    # dumps and loads are json.dumps and json.loads.
    v = value(r, 0)
    want, got = outcome(lambda x: json.dumps(x), v), outcome(lambda x: driver["dumps"](x), v)
    if want != got:
        bad += 1
        print("dumps", n, show(v), show(want)[:300], show(got)[:300])
    elif want[0] == "ok":
        text = json.loads(want[1])
        if repr(json.loads(text)) != repr(driver["loads"](text)):
            bad += 1
            print("loads", n, text[:300])
print("checked", count)
sys.exit(1 if bad else 0)
