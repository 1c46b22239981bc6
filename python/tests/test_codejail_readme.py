"""Code written for edx-codejail 4.x, unchanged: CodeJail's README usage."""

import textwrap

from codejail import jail_code


def test_codejails_readme_snippet():
    # CodeJail's README: configure, then safe_exec with a globals dict.
    from codejail.safe_exec import safe_exec, SafeExecException  # noqa: F401

    jail_code.configure("python", "/usr/bin/python3")
    globals_dict = {}
    code = textwrap.dedent("""\
        import math
        x = math.sqrt(16)
        y = [i * i for i in range(5)]
        """)
    safe_exec(code, globals_dict)
    assert globals_dict["x"] == 4.0 and globals_dict["y"] == [0, 1, 4, 9, 16]
    jail_code.set_limit("CPU", 2)
    jail_code.override_limit("REALTIME", 3, "course-v1:edX+DemoX+Demo_Course")
    res = jail_code.jail_code("python", "print(6 * 7)", limit_overrides_context="course-v1:edX+DemoX+Demo_Course",
                              slug="demo")
    assert (res.status, res.stdout, res.stderr) == (0, b"42\n", b"")
