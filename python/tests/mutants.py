"""Shows the tests can fail: breaks the installed package one way at a time
(a mutant), runs the tests that should catch it, and reports whether they
did. Run by hand with the test virtualenv's Python, from this directory:

    /tmp/v/bin/python mutants.py            # every mutant
    /tmp/v/bin/python mutants.py 3 7        # some of them

Each mutant edits one file of the installed `codejail` package and is
undone afterwards, whatever happens.
"""

import os
import subprocess
import sys

import codejail

PACKAGE = os.path.dirname(codejail.__file__)

# (file, text, replacement, tests that must fail)
MUTANTS = [
    ("jail.py", '"Couldn\'t execute jailed code: stdout: {!r}, stderr: {!r} with status code: {}"',
     '"Couldn\'t execute jailed code: stdout: {!r}, stderr: {!r} status code: {}"',
     "test_safe_exec.py::test_the_exception_text_is_codejails_byte_for_byte"),
    ("safe_exec.py", 'if key == "__builtins__" or not isinstance(value, _KEPT):',
     "if not isinstance(value, _KEPT):", "test_safe_exec.py::test_json_safe_is_codejails"),
    ("safe_exec.py", "        return value.decode(\"utf-8\")", "        return value.decode(\"latin-1\")",
     "test_safe_exec.py::test_json_safe_is_codejails"),
    ("jail_code.py", "def get_effective_limits(overrides_context=None):",
     "def get_effective_limits(overrides_context=None, LIMITS=LIMITS):",
     "test_limits.py::test_module_state_replaced_wholesale_is_seen"),
    ("jail_code.py", "    return {**LIMITS, **overrides}", "    return dict(LIMITS)",
     "test_limits.py::test_get_effective_limits test_safe_exec.py::test_limits_and_overrides_apply"),
    ("jail.py", 'out[key.lower()] = int(value)', 'out[key.lower()] = int(value) if key != "VMEM" else 0',
     "test_limits.py::test_the_effective_limits_are_sent_exactly test_jail_code.py::TestLimits::test_vmem_limit"),
    ("subproc.py", "    if slug:\n        log.info(", "    if False:\n        log.info(",
     "test_logging.py::test_slugs_get_logged"),
    ("subproc.py", 'level = _LEVELS.get(line.get("level"), logging.INFO)', "level = logging.DEBUG",
     "test_logging.py::test_the_wall_clock_kill_is_logged_with_the_pid"),
    ("_api.py", "        stderr=subprocess.PIPE,\n    )",
     "        stderr=subprocess.PIPE, preexec_fn=lambda: None,\n    )", "test_spawn.py"),
    ("_service.py", "        return None\n    if response.get", "        raise\n    if response.get",
     "test_service.py::test_a_failing_service_falls_back_to_one_shot_with_a_warning"
     " test_service.py::test_a_service_that_is_down_falls_back"),
    ("_service.py", "    if files:\n        return False", "    if False:\n        return False",
     "test_service.py::test_what_the_api_cannot_carry_runs_here"),
    ("safe_exec.py", "    globals_dict.update(result)", "    globals_dict = result",
     "test_safe_exec.py::test_set_values_in_place"),
    ("safe_exec.py", "    if ALWAYS_BE_UNSAFE:\n        not_safe_exec", "    if False:\n        not_safe_exec",
     "test_safe_exec.py::test_always_be_unsafe_is_read_at_each_call"),
    ("django_integration_utils.py", "    for context, overrides in limit_overrides.items():",
     "    for context, overrides in {}.items():", "test_django.py::test_codejails_keys"),
    ("subproc.py", "    response = _api.call(request)\n",
     "    global _LAST\n    _LAST = _api.call(request)\n    import time; time.sleep(0.02)\n    response = _LAST\n",
     "test_threads.py"),
    ("jail.py", "        if isinstance(entry, Jail):\n            return entry",
     "        if True:\n            return entry", "test_object_api.py::test_the_registry_is_shared_both_ways"),
    ("jail.py", '            return json.loads(response["globals_json"])',
     '            return json.loads(response["globals_json"], parse_constant=lambda c: None)',
     "test_safe_exec.py::test_values_cross_exactly_both_ways"),
    ("_api.py", "        except BaseException:\n            process.terminate()",
     "        except BaseException:\n            pass", "test_protocol.py::test_an_interrupted_caller_ends_the_run"),
    ("jail_code.py", 'raise Exception("jail_code needs to be configured for %r" % command)',
     'raise Exception("jail_code needs to be configured for %s" % command)',
     "test_jail_code.py::test_a_command_that_is_not_configured_is_codejails_error"),
    ("jail.py", 'raise JailError("CodeJail not found for {}".format(command)) from None',
     'raise JailError("CodeJail not found: {}".format(command)) from None',
     "test_object_api.py::test_unknown_jails_are_jail_errors"),
    ("jail.py", '"Code Jail {} not configured to run in safe_exec mode.  Try jail_code() instead"',
     '"Code Jail {} not configured to run in safe_exec mode. Try jail_code() instead"',
     "test_object_api.py::test_a_language_without_safe_exec_is_a_jail_error_and_runs_jail_code"),
    ("jail.py", 'known_commands = {"python": languages.python3, "python3": languages.python3}',
     'known_commands = {"python3": languages.python3}', "test_object_api.py::test_languages"),
    ("jail_code.py", 'lang = languages.python3 if command == "python" else languages.other',
     "lang = languages.python3", "test_jail_code.py::test_other_commands_run_their_program_as_it_is"),
    ("django_integration.py", "        raise MiddlewareNotUsed", "        pass",
     "test_django.py::test_the_middleware_applies_the_settings_once_and_steps_aside"),
    ("_api.py", '            error.kind = response.get("kind")', '            error.kind = None',
     "test_protocol.py::test_refusals_become_jail_errors"),
    ("subproc.py", "            if message in _said:\n                continue", "            pass",
     "test_logging.py::test_a_once_per_process_warning_of_the_binary_is_said_once"),
    ("_api.py", "        if its_key != key or process.poll() is not None:", "        if False:",
     "test_spawn.py::test_a_changed_environment_or_a_dead_process_is_not_used"),
    ("_api.py", "    os.register_at_fork(after_in_child=_after_fork_in_child)", "    pass",
     "test_spawn.py::test_a_forked_child_does_not_use_its_parents_process"),
    ("safe_exec.py", 'raise RuntimeError("safe_exec has not been configured for Python")',
     'raise Exception("safe_exec has not been configured for Python")',
     "test_safe_exec.py::test_not_configured_at_call_time_is_a_runtime_error"),
]


def main():
    chosen = [int(a) for a in sys.argv[1:]] or range(len(MUTANTS))
    survivors = []
    for i in chosen:
        name, text, replacement, tests = MUTANTS[i]
        path = os.path.join(PACKAGE, name)
        with open(path) as f:
            original = f.read()
        assert original.count(text) == 1, (i, name, text)
        try:
            with open(path, "w") as f:
                f.write(original.replace(text, replacement))
            out = subprocess.run([os.path.join(os.path.dirname(sys.executable), "pytest"), "-q", "-x",
                                  "-p", "no:cacheprovider"] + tests.split(), capture_output=True, text=True,
                                 check=False)
        finally:
            with open(path, "w") as f:
                f.write(original)
        caught = out.returncode == 1
        print("mutant %2d %-28s %s" % (i, name, "caught" if caught else "SURVIVED (exit %d)" % out.returncode))
        if not caught:
            survivors.append(i)
            print(out.stdout[-2000:])
    print("%d mutants, %d caught" % (len(chosen), len(chosen) - len(survivors)))
    sys.exit(1 if survivors else 0)


if __name__ == "__main__":
    main()
