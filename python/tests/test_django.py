"""Django: CODE_JAIL settings (CodeJail's keys and this package's), and the
middleware. Django is imported only by codejail.django_integration."""

import subprocess
import sys
import textwrap

import pytest

from codejail import jail_code
from codejail.django_integration_utils import apply_django_settings


def test_codejails_keys():
    apply_django_settings({
        "python_bin": "/usr/bin/python3",
        "user": "nobody",
        "limits": {"CPU": 3, "REALTIME": 4, "VMEM": 0, "MEMORY": 1 << 30},
        "limit_overrides": {"course-v1:a": {"REALTIME": 10}, "course-v1:b": {"CPU": 9, "PROXY": 1}},
    })
    python = jail_code.COMMANDS["python"]
    assert python["cmdline_start"] == ["/usr/bin/python3", "-E", "-B"] and python["user"] == "nobody"
    assert jail_code.LIMITS["CPU"] == 3 and jail_code.LIMITS["MEMORY"] == 1 << 30
    assert jail_code.LIMIT_OVERRIDES == {"course-v1:a": {"REALTIME": 10}, "course-v1:b": {"CPU": 9}}
    assert jail_code.jail_code("python", "import os; print(os.getuid())").stdout.strip().isdigit()


def test_no_python_bin_leaves_the_jail_alone():
    before = jail_code.COMMANDS["python"]
    apply_django_settings({"limits": {"CPU": 2}})
    assert jail_code.COMMANDS["python"] is before
    with pytest.raises(KeyError):
        apply_django_settings({"python_bin": "/usr/bin/python3"})  # CodeJail requires `user` then


def test_this_packages_keys():
    apply_django_settings({
        "python_bin": "/usr/bin/python3", "user": None, "policy": "require:landlock,seccomp",
        "jail_parent": "/tmp", "service_url": "http://127.0.0.1:9", "service_timeout": 3,
    })
    spec = jail_code.COMMANDS["python"].spec()
    assert spec["policy"] == "require:landlock,seccomp" and spec["jail_parent"] == "/tmp"
    assert (jail_code.SERVICE_URL, jail_code.SERVICE_TIMEOUT) == ("http://127.0.0.1:9", 3)
    apply_django_settings({"python_bin": "/usr/bin/python3", "user": None, "policy": "require:no-such-layer"})
    from codejail import JailError
    with pytest.raises(JailError, match="no-such-layer"):
        jail_code.jail_code("python", "pass")


def test_django_is_not_imported_by_the_package():
    out = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import sys
        import codejail, codejail.jail_code, codejail.safe_exec, codejail.django_integration_utils
        print("django" in sys.modules)
        """)], capture_output=True, text=True, check=True)
    assert out.stdout == "False\n"


def test_the_middleware_applies_the_settings_once_and_steps_aside():
    out = subprocess.run([sys.executable, "-c", textwrap.dedent("""
        import django, logging, sys
        logging.basicConfig(stream=sys.stdout, level=logging.DEBUG, format="%(name)s %(message)s")
        from django.conf import settings
        settings.configure(
            DEBUG=True, LOGGING_CONFIG=None,
            MIDDLEWARE=["codejail.django_integration.ConfigureCodeJailMiddleware"],
            ROOT_URLCONF=__name__, ALLOWED_HOSTS=["*"],
            CODE_JAIL={"python_bin": "/usr/bin/python3", "user": None, "limits": {"REALTIME": 4}},
        )
        urlpatterns = []
        django.setup()
        from django.core.handlers.wsgi import WSGIHandler
        handler = WSGIHandler()
        from codejail import jail_code
        print(jail_code.COMMANDS["python"]["cmdline_start"], jail_code.LIMITS["REALTIME"])
        from codejail import safe_exec
        g = {}
        safe_exec.safe_exec("x = 6 * 7", g)
        print(g, handler._middleware_chain is not None)
        """)], capture_output=True, text=True, check=False, env={"CODEJAIL_TEST_VENV": "", "PATH": "/usr/bin:/bin"})
    assert out.returncode == 0, out.stderr
    lines = out.stdout.splitlines()
    assert "django.request MiddlewareNotUsed: 'codejail.django_integration.ConfigureCodeJailMiddleware'" in lines
    printed = [line for line in lines if not line.startswith(("codejail ", "django.", "asyncio "))]
    assert printed == ["['/usr/bin/python3', '-E', '-B'] 4", "{'x': 42} True"]
