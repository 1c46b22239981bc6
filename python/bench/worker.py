"""A bench worker: prints `ready`, then answers each `go` line with `ok`
after one `safe_exec("x = 1 + 1", g)`, through this package (`package`)
or through edx-codejail (`edx`), optionally holding a ballast of resident
memory (a large web process)."""

import argparse
import sys


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("flavour", choices=["package", "edx"])
    parser.add_argument("--python", default="/usr/bin/python3")
    parser.add_argument("--ballast-gb", type=float, default=0)
    parser.add_argument("--user", default=None, help="the sandbox user (edx-codejail needs one: it runs sudo)")
    args = parser.parse_args()

    from codejail import jail_code  # pylint: disable=import-outside-toplevel

    # edx-codejail runs `sudo -u USER TMPDIR=tmp python ...` (without a
    # user it cannot run at all); as root no sudoers rule is needed. This
    # machine has no AppArmor, so it runs unconfined, under its rlimits.
    jail_code.configure("python", args.python, args.user)
    from codejail import safe_exec  # pylint: disable=import-outside-toplevel

    assert not getattr(safe_exec, "UNSAFE", False)
    ballast = None
    if args.ballast_gb:
        ballast = bytearray(int(args.ballast_gb * (1 << 30)))
        for i in range(0, len(ballast), 4096):
            ballast[i] = 1
    g = {}
    safe_exec.safe_exec("x = 1 + 1", g)  # fails here, before `ready`, if it cannot run
    print("ready", flush=True)
    for line in sys.stdin:
        if line.strip() != "go":
            continue
        g = {}
        safe_exec.safe_exec("x = 1 + 1", g)
        assert g["x"] == 2, g
        print("ok", flush=True)
    del ballast


if __name__ == "__main__":
    main()
