
# ---------------------------------------------------------------------------
# codejail warm path: the zygote. Appended to driver.py (with ZYGOTE = True
# before it) and run inside a fully confined jail, every layer on.
#
# It connects to the unix socket named in argv[1] and serves one call at a
# time. A request is one line, {"home", "tmp", "mode", "limits"}, sent with
# five descriptors (SCM_RIGHTS): the worker's stdin, stdout, stderr and
# result pipes, whose other ends the caller reads, and the call's Landlock
# ruleset, built by the caller. The
# zygote never reads a call's code, data or output: code and data are files
# in the call's own jail directory, read by the worker; output goes straight
# to the caller. So nothing of one call is ever in the zygote's memory for a
# later call (forked from it) to find.
#
# Per call:   zygote --fork--> worker: new session, rlimits, a nested
#             Landlock domain (its own jail directory only; it cannot signal
#             the zygote), cwd, clean environment, stdio on the pipes; runs
#             the code.
#   zygote:   waits for the worker, the deadline, or a "k" from the caller
#             (output cap), then kill(-1, SIGKILL): Landlock's signal scope
#             confines that to the zygote's domain, in which only this call's
#             processes live (the zygote is a child subreaper, so orphans of
#             the call are its children); reaps them all; answers with one
#             JSON line.
# ---------------------------------------------------------------------------
import ctypes
import resource
import select
import signal
import socket
import time

_libc = ctypes.CDLL(None, use_errno=True)
SYS_LANDLOCK_RESTRICT_SELF = 446
PR_SET_CHILD_SUBREAPER = 36


def _check(ret, what):
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, "%s: %s" % (what, os.strerror(err)))
    return ret


def worker(req, fds):
    """The call's code. Never returns."""
    status = 1
    try:
        os.setsid()
        _check(_libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, fds[4], 0), "landlock_restrict_self")
        # Out of the way of the targets first, then onto 0..3.
        moved = [os.dup(fd) for fd in fds[:4]]
        for target, fd in enumerate(moved):
            os.dup2(fd, target)
        os.closerange(4, 65536)
        home = req["home"]
        limits = req["limits"]
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if limits["cpu"]:
            resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu"], limits["cpu"] + 1))
        if limits["vmem"]:
            resource.setrlimit(resource.RLIMIT_AS, (limits["vmem"], limits["vmem"]))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits["fsize"], limits["fsize"]))
        if limits["nproc"]:
            # The caller counted the zygote (and any supervisor) that share
            # this uid in this user namespace.
            n = limits["nproc"]
            resource.setrlimit(resource.RLIMIT_NPROC, (n, n))
        os.chdir(home)
        # The zygote's environment is a cold run's; its sys.std* objects
        # wrap descriptors 0..2 with nothing buffered: both serve as they
        # are, now on this call's directory and pipes.
        os.environ["TMPDIR"] = req["tmp"]
        if req["mode"] == "exec":
            payload = loads(sys.stdin.buffer.read().decode("utf-8"))
            safe_exec(payload, 3)
            status = 0
        else:
            with open(".codejail-argv.json", "rb") as f:
                argv = loads(f.read().decode("utf-8"))
            sys.argv = ["jailed_code"] + argv
            with open("jailed_code") as f:
                code = compile(f.read(), "jailed_code", "exec")
            sys.path[0] = home
            exec(code, {"__name__": "__main__", "__file__": "jailed_code", "__builtins__": __builtins__})
            status = 0
    except SystemExit as e:
        status = e.code if isinstance(e.code, int) else (0 if e.code is None else 1)
        if not isinstance(e.code, int) and e.code is not None:
            print(e.code, file=sys.stderr)
    except BaseException:
        import traceback
        traceback.print_exc()
        status = 1
    finally:
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except Exception:
            pass
        os._exit(status & 0xFF)


def receive(sock, pending):
    """One request line and its five descriptors; stray "k" bytes (a kill
    that came after its call had ended) are dropped."""
    fds = []
    while b"\n" not in pending or len(fds) < 5:
        data, more, _, _ = socket.recv_fds(sock, 65536, 5)
        if not data and not more:
            os._exit(0)
        pending += data
        fds += more
        pending = pending.lstrip(b"k")
    line, _, rest = pending.partition(b"\n")
    return loads(line.decode("utf-8")), fds, rest


def serve(sock, req, fds):
    """Runs one call; returns the answer."""
    answer = {"status": -9, "killed_by": None, "cpu_us": 0, "max_rss_kib": 0}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    pid = os.fork()
    if pid == 0:
        sock.close()
        worker(req, fds)
    for fd in fds:
        os.close(fd)
    pidfd = os.pidfd_open(pid)
    poller = select.poll()
    poller.register(pidfd, select.POLLIN)
    poller.register(sock.fileno(), select.POLLIN)
    deadline = time.monotonic() + (req["limits"]["realtime"] or 1e9)
    while True:
        left = deadline - time.monotonic()
        if left <= 0:
            answer["killed_by"] = "realtime"
            break
        events = dict(poller.poll(left * 1000))
        if pidfd in events:
            break
        if sock.fileno() in events:
            if not sock.recv(1, socket.MSG_DONTWAIT):
                os.kill(-1, signal.SIGKILL)
                os._exit(0)
            answer["killed_by"] = "output"
            break
    os.close(pidfd)
    # Every process of this call, and nothing else (Landlock scope).
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:
        pass
    status = signal.SIGKILL
    while True:
        try:
            p, st, ru = os.wait4(-1, 0)
        except ChildProcessError:
            break
        if p == pid:
            status = st
            answer["max_rss_kib"] = ru.ru_maxrss
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    answer["cpu_us"] = int((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1e6)
    answer["status"] = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    if answer["killed_by"] is None and answer["status"] == -signal.SIGXCPU:
        answer["killed_by"] = "cpu"
    return answer


def rehearse():
    """Runs once what every worker runs (the compiler, exec, the JSON
    codec, text files over pipes, a foreign call), with made-up data, so
    that what CPython builds on first use is built here, before the fork:
    in a worker it would cost copied pages, every call (about 1.5 ms for
    the first compile() alone)."""
    r, w = os.pipe()
    try:
        namespace = loads('{"a": [1, 2.5, "t", null, true, {"b": "c"}]}')
        exec(compile("x = 1 + 1\ny = [a, x, str(x)]\n", "<rehearsal>", "exec"), namespace)
        dumps(json_safe(namespace)).encode("utf-8")
        with open(w, "w", closefd=False) as out:
            out.write("rehearsal\n")
        with open(r, "r", closefd=False) as back:
            back.readline()
        _libc.syscall(39)  # getpid
    finally:
        os.close(r)
        os.close(w)


def zygote(path):
    import gc

    _check(_libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl")
    rehearse()
    # Everything imported so far lives on in every worker: keep the garbage
    # collector off those pages so that forked workers share them.
    gc.freeze()
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    pending = b""
    while True:
        req, fds, pending = receive(sock, pending)
        answer = serve(sock, req, fds)
        del req, fds
        sock.sendall(dumps(answer).encode("utf-8") + b"\n")


zygote(sys.argv[1])
