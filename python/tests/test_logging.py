"""Logging under the `codejail` logger, from codejail.subproc, with
CodeJail's messages; tested the way CodeJail's own tests capture them."""

import logging
import re
from unittest import mock

from codejail import jail_code, safe_exec


def text_of_logs(mock_calls):
    """The text of captured `log._log(level, msg, args)` calls."""
    return "".join(
        "%s: %s\n" % (logging.getLevelName(call[1][0]), call[1][1] % call[1][2]) for call in mock_calls
    )


@mock.patch("codejail.subproc.log._log")
def test_slugs_get_logged(log_log, caplog):
    with caplog.at_level(logging.INFO, logger="codejail"):
        res = jail_code.jail_code("python", "print('Hello, world!')", slug="HELLO")
    assert res.status == 0
    text = text_of_logs(log_log.mock_calls)
    assert re.search(r"INFO: Executed jailed code HELLO in /\S+/codejail-\S+, with PID \d+\n", text), text


@mock.patch("codejail.subproc.log._log")
def test_the_wall_clock_kill_is_logged_with_the_pid(log_log, caplog):
    jail_code.set_limit("CPU", 100)
    jail_code.set_limit("REALTIME", 1)
    with caplog.at_level(logging.INFO, logger="codejail"):
        res = jail_code.jail_code("python", "import time; time.sleep(1.5)", slug="SLOW")
    assert res.status == -9
    text = text_of_logs(log_log.mock_calls)
    executed = re.search(r"Executed jailed code SLOW in .*, with PID (\d+)", text)
    killed = re.search(r"WARNING: Killing process (\d+): wall-clock limit reached", text)
    assert executed and killed, text
    assert executed.group(1) == killed.group(1)


def test_records_come_from_codejail_subproc_and_the_preparing_line_from_jail_code(caplog):
    with caplog.at_level(logging.INFO, logger="codejail"):
        jail_code.jail_code("python", "pass", slug="S1", limit_overrides_context="ctx")
    records = [r for r in caplog.records if r.name == "codejail"]
    preparing = [r for r in records if r.getMessage().startswith("Preparing to execute jailed code 'S1'")]
    assert preparing and preparing[0].module == "jail_code"
    assert "(overrides context = 'ctx', resource limits = {'CPU': 1," in preparing[0].getMessage()
    executed = [r for r in records if r.getMessage().startswith("Executed jailed code S1")]
    assert executed and executed[0].module == "subproc"
    ran = [r for r in records if r.getMessage().startswith("ran jailed code")]
    assert ran and ran[0].module == "subproc" and ran[0].codejail_fields["slug"] == "S1"


def test_without_a_slug_there_is_no_executed_line(caplog):
    with caplog.at_level(logging.INFO, logger="codejail"):
        jail_code.jail_code("python", "pass")
    assert not [r for r in caplog.records if "Executed jailed code" in r.getMessage()]


def test_overriding_proxy_is_refused_with_codejails_error(caplog):
    with caplog.at_level(logging.ERROR, logger="codejail"):
        jail_code.override_limit("PROXY", 1, "ctx")
    assert "PROXY" not in jail_code.LIMIT_OVERRIDES.get("ctx", {})
    assert caplog.records[-1].getMessage() == (
        "Tried to override value of PROXY to 1. Overriding PROXY on a per-context basis is not permitted. "
        "Will use globally-configured value instead: None."
    )


def test_safe_exec_slugs_get_logged_too(caplog):
    with caplog.at_level(logging.INFO, logger="codejail"):
        safe_exec.safe_exec("a = 1", {}, slug="course-1/problem-2")
    messages = [r.getMessage() for r in caplog.records]
    # As CodeJail's safe_exec, which runs through its jail_code: the line
    # before the run, then the run's.
    preparing = [i for i, m in enumerate(messages)
                 if m.startswith("Preparing to execute jailed code 'course-1/problem-2' (overrides context = None, ")]
    executed = [i for i, m in enumerate(messages) if m.startswith("Executed jailed code course-1/problem-2 in ")]
    assert len(preparing) == 1 and len(executed) == 1 and preparing[0] < executed[0], messages


def test_a_once_per_process_warning_of_the_binary_is_said_once(caplog):
    from codejail import subproc

    response = {"logs": [{"level": "warn", "message": "the configured sandbox user `sandbox` cannot be used: ...",
                          "fields": {}},
                         {"level": "warn", "message": "running code WITHOUT confinement", "fields": {}}]}
    subproc._said.discard(response["logs"][0]["message"])  # pylint: disable=protected-access
    with caplog.at_level(logging.WARNING, logger="codejail"):
        subproc.log_run(response, None)
        subproc.log_run(response, None)
    messages = [r.getMessage() for r in caplog.records]
    assert messages.count("the configured sandbox user `sandbox` cannot be used: ...") == 1
    assert messages.count("running code WITHOUT confinement") == 2
