"""The ``codejail serve`` backend: codejail-service's v0 API.

``POST <SERVICE_URL>/api/v0/code-exec`` with a multipart form: the field
``payload`` holds JSON ``{"code", "globals_dict", "python_path",
"limit_overrides_context", "slug", "unsafely": false}`` and each extra file
is a file field named after it. A 200 answer is JSON (NaN and Infinity
allowed) with ``globals_dict`` and, when the code failed, ``emsg``.

Only ``safe_exec`` calls go there, and only those the API can carry: no
``files`` (paths on this machine), ``python_path`` entries only among the
extra files. The service applies its own limits (with the context sent).
Any failure to get an answer (refused, timed out, an error status, a
malformed answer) logs a warning and the call runs here instead.
"""

import json
import logging
import os
import urllib.error
import urllib.request
import uuid

from . import jail_code
from .exceptions import SafeExecException

log = logging.getLogger("codejail")

PATH = "/api/v0/code-exec"


def _eligible(files, python_path, extra_files):
    if files:
        return False
    names = {name for name, _ in extra_files or ()}
    return all(os.path.basename(os.fsdecode(p)) in names for p in python_path or ())


def _multipart(fields, files):
    boundary = "codejail-" + uuid.uuid4().hex
    parts = []
    for name, value in fields:
        parts.append(
            (
                '--%s\r\nContent-Disposition: form-data; name="%s"\r\n'
                "Content-Type: application/json; charset=utf-8\r\n\r\n" % (boundary, name)
            ).encode("utf-8")
            + value.encode("utf-8")
            + b"\r\n"
        )
    for name, content in files:
        if isinstance(content, str):
            content = content.encode("utf-8")
        quoted = name.replace("\\", "\\\\").replace('"', '\\"')
        parts.append(
            (
                '--%s\r\nContent-Disposition: form-data; name="%s"; filename="%s"\r\n'
                "Content-Type: application/octet-stream\r\n\r\n" % (boundary, quoted, quoted)
            ).encode("utf-8")
            + bytes(content)
            + b"\r\n"
        )
    parts.append(("--%s--\r\n" % boundary).encode("ascii"))
    return b"".join(parts), "multipart/form-data; boundary=" + boundary


# pylint: disable=too-many-arguments,too-many-locals
def try_safe_exec(jail, code, globals_json, files, python_path, slug, extra_files, limit_overrides_context):
    """The code's globals from the service, or None to run the call here."""
    url = jail_code.SERVICE_URL
    if not url or not _eligible(files, python_path, extra_files):
        return None
    del jail  # the service runs its own jail
    payload = '{"code": %s, "globals_dict": %s, "python_path": %s, "limit_overrides_context": %s, ' \
              '"slug": %s, "unsafely": false}' % (
                  json.dumps(code),
                  globals_json,
                  json.dumps([os.path.basename(os.fsdecode(p)) for p in python_path or ()]),
                  json.dumps(limit_overrides_context),
                  json.dumps(slug),
              )
    body, content_type = _multipart([("payload", payload)], list(extra_files or ()))
    timeout = jail_code.SERVICE_TIMEOUT
    if timeout is None:
        realtime = jail_code.get_effective_limits(limit_overrides_context).get("REALTIME") or 0
        timeout = float(realtime) + 10
    endpoint = url.rstrip("/") + PATH
    request = urllib.request.Request(endpoint, data=body, method="POST", headers={"Content-Type": content_type})
    try:
        with urllib.request.urlopen(request, timeout=timeout) as answer:  # nosec: the operator's address
            text = answer.read()
        response = json.loads(text)
        if not isinstance(response, dict) or not isinstance(response.get("globals_dict"), dict):
            raise ValueError("the answer has no globals_dict: %r" % (text[:200],))
    except (OSError, ValueError) as e:
        why = e
        if isinstance(e, urllib.error.HTTPError):
            why = "HTTP %s %s" % (e.code, _error_of(e))
        log.warning("codejail service at %s is unavailable (%s); running the code here instead", url, why)
        return None
    if response.get("emsg") is not None:
        raise SafeExecException(response["emsg"])
    return response["globals_dict"]


def _error_of(e):
    try:
        return json.loads(e.read()).get("error", "")
    except Exception:  # pylint: disable=broad-except
        return ""
