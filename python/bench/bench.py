"""codejail-rs from Python, against the bare interpreter spawn, the Rust
library and edx-codejail, in one run, interleaved (run by
`cargo xtask bench`; run it with the Python of a virtualenv where the
package is installed).

Rows (each timed as one round trip from this process):

* ``bare python3 -E -B -c pass``: the floor, spawned from here.
* ``rust library safe_exec``: ``Jail::safe_exec("x = 1 + 1")`` in a
  long-lived Rust process (``crates/cli/examples/lib_worker.rs``), one line
  of pipe each way.
* ``package safe_exec``: ``codejail.safe_exec.safe_exec("x = 1 + 1", g)``
  in a long-lived Python worker, one-shot (one run of the binary per call,
  the binary started ahead of the call: the default), the same pipe round
  trip around it; ``started at call``: with ``CODEJAIL_PRESTART=0``.
* ``package safe_exec, 2 GB caller``: the same, the worker holding 2 GB
  resident.
* ``edx-codejail safe_exec`` (and with 2 GB) when ``--edx-python`` names a
  virtualenv with edx-codejail: ``python`` configured as ``--python`` run
  as ``--edx-user`` through sudo (root needs no sudoers rule), unconfined
  (no AppArmor on this machine), under its rlimits.

Before each sample every row pauses ``--settle`` ms (a caller's idle time,
when a process started ahead does its start-up). Prints median, p10, p90 per row, and the package's overhead against the
library (ratio and ms). Timings are printed, never asserted.
"""

import argparse
import os
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
WORKER = os.path.join(HERE, "worker.py")


class Worker:
    """A process that answers `go` with `ok` after one call."""

    def __init__(self, argv, env=None):
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1,
                                        env=None if env is None else dict(os.environ, **env))
        line = self.process.stdout.readline()
        if line.strip() != "ready":
            raise RuntimeError("%s did not start: %r" % (argv, line))

    def __call__(self):
        self.process.stdin.write("go\n")
        self.process.stdin.flush()
        line = self.process.stdout.readline()
        if line.strip() != "ok":
            raise RuntimeError("worker answered %r" % line)

    def close(self):
        self.process.stdin.close()
        self.process.wait(timeout=30)


class LibWorker(Worker):
    """The Rust helper prints nothing until asked."""

    def __init__(self, argv):  # pylint: disable=super-init-not-called
        self.process = subprocess.Popen(argv, stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True, bufsize=1)


def bare():
    subprocess.run(["/usr/bin/python3", "-E", "-B", "-c", "pass"], check=True)


def percentile(sorted_values, p):
    index = min(len(sorted_values) - 1, max(0, round(p * (len(sorted_values) - 1))))
    return sorted_values[index]


def main():
    parser = argparse.ArgumentParser()
    parser.add_argument("--quick", action="store_true", help="fewer rounds, for CI")
    parser.add_argument("--rounds", type=int, default=None)
    parser.add_argument("--python", default="/usr/bin/python3", help="the interpreter the jail runs")
    parser.add_argument("--lib-worker", help="target/release/examples/lib_worker")
    parser.add_argument("--edx-python", help="the python of a virtualenv with edx-codejail")
    parser.add_argument("--edx-user", default="sandbox", help="edx-codejail's sandbox user (it runs sudo)")
    parser.add_argument("--ballast-gb", type=float, default=2.0)
    parser.add_argument("--settle", type=float, default=5.0,
                        help="ms of pause before each sample, every row alike (a caller's idle time)")
    args = parser.parse_args()
    rounds = args.rounds or (15 if args.quick else 150)

    rows = [("bare python3 -E -B -c pass", bare)]
    workers = []

    def worker(name, argv, cls=Worker, env=None):
        try:
            w = cls(argv) if env is None else cls(argv, env)
        except Exception as e:  # pylint: disable=broad-except
            print("skipped %s: %s" % (name, e))
            return
        workers.append(w)
        rows.append((name, w))

    if args.lib_worker:
        worker("rust library safe_exec", [args.lib_worker, args.python], LibWorker)
    here = [sys.executable, WORKER, "package", "--python", args.python]
    worker("package safe_exec", here)
    worker("package safe_exec, started at call", here, env={"CODEJAIL_PRESTART": "0"})
    worker("package safe_exec, %g GB caller" % args.ballast_gb, here + ["--ballast-gb", str(args.ballast_gb)])
    if args.edx_python:
        edx = [args.edx_python, WORKER, "edx", "--python", args.python, "--user", args.edx_user]
        worker("edx-codejail safe_exec (unconfined)", edx)
        worker("edx-codejail, %g GB caller" % args.ballast_gb, edx + ["--ballast-gb", str(args.ballast_gb)])

    for _name, call in rows:  # warm-up
        for _ in range(3):
            call()
    samples = {name: [] for name, _ in rows}
    for _ in range(rounds):
        for name, call in rows:
            time.sleep(args.settle / 1000)
            start = time.perf_counter()
            call()
            samples[name].append((time.perf_counter() - start) * 1000)
    for w in workers:
        w.close()

    print("codejail-rs from Python: %d interleaved rounds after 3 warm-up rounds, %d cores, %g ms settle"
          % (rounds, os.cpu_count(), args.settle))
    print()
    base = statistics.median(samples[rows[0][0]])
    lib = statistics.median(samples["rust library safe_exec"]) if "rust library safe_exec" in samples else None
    print("%-40s %8s %8s %8s %8s %9s" % ("operation", "median", "p10", "p90", "ratio", "vs lib"))
    for name, _ in rows:
        xs = sorted(samples[name])
        median = statistics.median(xs)
        vs_lib = "%.2f" % (median / lib) if lib else "-"
        print("%-40s %8.2f %8.2f %8.2f %8.2f %9s" % (name, median, percentile(xs, 0.1), percentile(xs, 0.9),
                                                     median / base, vs_lib))
    print()
    print("(times in ms; ratio = median / bare python3 median; vs lib = median / rust library median)")
    if lib and "package safe_exec" in samples:
        package = statistics.median(samples["package safe_exec"])
        print("package one-shot overhead over the library: %.2f ms (%.2fx)" % (package - lib, package / lib))


if __name__ == "__main__":
    main()
