"""The `codejail serve` backend, against a fake codejail-service (v0 API) on
127.0.0.1: what is sent, what is done with the answers, and the fallback to
a one-shot run when the service is down. (The real service does not exist
yet; this fake follows codejail-service's views.py.)"""

import email.parser
import email.policy
import http.server
import json
import logging
import socket
import threading

import pytest

from codejail import jail_code, safe_exec
from codejail.safe_exec import SafeExecException


class FakeService(http.server.ThreadingHTTPServer):
    """Answers POST /api/v0/code-exec as told by `mode`; keeps each request."""

    daemon_threads = True

    def __init__(self):
        super().__init__(("127.0.0.1", 0), Handler)
        self.mode = "ok"
        self.requests = []
        self.url = "http://127.0.0.1:%d" % self.server_address[1]


class Handler(http.server.BaseHTTPRequestHandler):
    def log_message(self, *args):  # quiet
        pass

    def do_POST(self):  # noqa: N802
        body = self.rfile.read(int(self.headers["Content-Length"]))
        head = b"Content-Type: " + self.headers["Content-Type"].encode() + b"\r\n\r\n"
        message = email.parser.BytesParser(policy=email.policy.HTTP).parsebytes(head + body)
        fields, files = {}, {}
        for part in message.iter_parts():
            name = part.get_param("name", header="content-disposition")
            if part.get_filename() is not None:
                files[name] = part.get_payload(decode=True)
            else:
                fields[name] = part.get_payload(decode=True).decode("utf-8")
        server = self.server
        server.requests.append({"path": self.path, "fields": fields, "files": files})
        payload = json.loads(fields["payload"])
        if server.mode == "ok":
            out = dict(payload["globals_dict"], served=True, nan=float("nan"), big=2 ** 100)
            self.answer(200, {"globals_dict": out})
        elif server.mode == "emsg":
            self.answer(200, {"globals_dict": payload["globals_dict"], "emsg": "Couldn't execute jailed code: x"})
        elif server.mode == "500":
            self.answer(500, {"error": "Codejail service not enabled"})
        else:
            self.answer(200, "not json at all")

    def answer(self, status, value):
        data = (json.dumps(value) if not isinstance(value, str) else value).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)


@pytest.fixture
def service():
    server = FakeService()
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    jail_code.SERVICE_URL = server.url
    yield server
    server.shutdown()
    server.server_close()


def test_safe_exec_goes_to_the_service_with_codejail_services_payload(service):
    jail_code.set_limit("REALTIME", 2)
    globs = {"x": 1, "t": (1, 2), "n": float("inf")}
    safe_exec.safe_exec("y = x", globs, python_path=["python_lib.zip"], limit_overrides_context="course-1",
                        slug="p/1", extra_files=[("python_lib.zip", b"PK\x05\x06" + b"\0" * 18)])
    assert globs["served"] is True and globs["big"] == 2 ** 100 and globs["nan"] != globs["nan"]
    assert "y" not in globs  # the fake does not run code: nothing ran here either
    (request,) = service.requests
    assert request["path"] == "/api/v0/code-exec"
    assert request["files"] == {"python_lib.zip": b"PK\x05\x06" + b"\0" * 18}
    payload = json.loads(request["fields"]["payload"])
    assert payload == {"code": "y = x", "globals_dict": {"x": 1, "t": [1, 2], "n": float("inf")},
                       "python_path": ["python_lib.zip"], "limit_overrides_context": "course-1",
                       "slug": "p/1", "unsafely": False}


def test_emsg_is_a_safe_exec_exception(service):
    service.mode = "emsg"
    with pytest.raises(SafeExecException) as info:
        safe_exec.safe_exec("raise ValueError", {})
    assert str(info.value) == "Couldn't execute jailed code: x"


@pytest.mark.parametrize("mode", ["500", "garbage"])
def test_a_failing_service_falls_back_to_one_shot_with_a_warning(service, mode, caplog):
    service.mode = mode
    globs = {"x": 20}
    with caplog.at_level(logging.WARNING, logger="codejail"):
        safe_exec.safe_exec("y = x + 22", globs)
    assert globs == {"x": 20, "y": 42}
    assert len(service.requests) == 1
    warning = [r.getMessage() for r in caplog.records if "unavailable" in r.getMessage()]
    assert warning and warning[0].startswith("codejail service at %s is unavailable" % service.url)
    if mode == "500":
        assert "HTTP 500 Codejail service not enabled" in warning[0]


def test_a_service_that_is_down_falls_back(caplog):
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        port = s.getsockname()[1]
    jail_code.SERVICE_URL = "http://127.0.0.1:%d" % port  # nothing listens there
    globs = {"x": 20}
    with caplog.at_level(logging.WARNING, logger="codejail"):
        safe_exec.safe_exec("y = x + 22", globs)
    assert globs["y"] == 42
    assert any("unavailable" in r.getMessage() and "refused" in r.getMessage() for r in caplog.records)


def test_what_the_api_cannot_carry_runs_here(service, tmp_dir):
    data = tmp_dir / "data.txt"
    data.write_text("local")
    globs = {}
    safe_exec.safe_exec("d = open('data.txt').read()", globs, files=[str(data)])
    assert globs["d"] == "local"
    safe_exec.safe_exec("import module", {}, python_path=[__file__.rsplit("/", 1)[0] + "/files/pylib"])
    res = jail_code.jail_code("python", "print(1)")
    assert res.stdout == b"1\n"
    assert service.requests == []
