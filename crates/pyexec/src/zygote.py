
# ---------------------------------------------------------------------------
# codejail warm path: the zygote. Appended to driver.py (with ZYGOTE = True
# before it) and run inside a fully confined jail, every layer on.
#
# It connects to the unix socket named in argv[1] and reads one request line
# per call: {"home", "tmp", "mode", "limits", "landlock"}. It never reads a
# call's code or data: those are files in the call's own jail directory,
# read by the call's worker, so no call's data is ever in the zygote's
# memory for a later call to find.
#
# Per call:   zygote --fork--> leader --fork--> worker
#   leader: new session, child subreaper, its own Landlock domain (D1);
#           pumps the worker's output with the caps and the deadline, then
#           kill(-1, SIGKILL): Landlock's signal scope limits that to D1 and
#           the domains nested in it, i.e. exactly this call's processes;
#           reaps them all; writes the reply to the socket; exits.
#   worker: rlimits, a nested Landlock domain (D2: the worker cannot signal
#           its leader), cwd = its jail home, a clean environment, stdio on
#           the leader's pipes; runs the code; exits.
# ---------------------------------------------------------------------------
import ctypes
import resource
import select
import signal
import socket
import time

_libc = ctypes.CDLL(None, use_errno=True)
SYS_LANDLOCK_CREATE_RULESET, SYS_LANDLOCK_ADD_RULE, SYS_LANDLOCK_RESTRICT_SELF = 444, 445, 446
PR_SET_CHILD_SUBREAPER = 36


class _RulesetAttr(ctypes.Structure):
    _fields_ = [("fs", ctypes.c_uint64), ("net", ctypes.c_uint64), ("scoped", ctypes.c_uint64)]


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed", ctypes.c_uint64), ("fd", ctypes.c_int32)]


def _check(ret, what):
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, "%s: %s" % (what, os.strerror(err)))
    return ret


def landlock(spec):
    """Adds a Landlock domain: the rules the caller computed."""
    attr = _RulesetAttr(spec["fs"], spec["net"], spec["scoped"])
    fd = _check(_libc.syscall(SYS_LANDLOCK_CREATE_RULESET, ctypes.byref(attr), ctypes.sizeof(attr), 0), "landlock_create_ruleset")
    try:
        for path, access in spec["rules"]:
            try:
                pfd = os.open(path, os.O_PATH | os.O_CLOEXEC)
            except OSError:
                continue  # paths that do not exist are skipped, as in the cold path
            try:
                if not os.path.isdir(path):
                    access &= spec["file_mask"]
                rule = _PathBeneath(access, pfd)
                _check(_libc.syscall(SYS_LANDLOCK_ADD_RULE, fd, 1, ctypes.byref(rule), 0), "landlock_add_rule")
            finally:
                os.close(pfd)
        _check(_libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, fd, 0), "landlock_restrict_self")
    finally:
        os.close(fd)


def worker(req, out_w, err_w, res_w):
    """The call's code. Never returns."""
    status = 1
    try:
        os.dup2(out_w, 1)
        os.dup2(err_w, 2)
        os.dup2(res_w, 3)
        home = req["home"]
        stdin_path = os.path.join(home, ".codejail-stdin")
        fd = os.open(stdin_path if os.path.exists(stdin_path) else "/dev/null", os.O_RDONLY)
        os.dup2(fd, 0)
        os.closerange(4, 65536)
        limits = req["limits"]
        resource.setrlimit(resource.RLIMIT_CORE, (0, 0))
        if limits["cpu"]:
            resource.setrlimit(resource.RLIMIT_CPU, (limits["cpu"], limits["cpu"] + 1))
        if limits["vmem"]:
            resource.setrlimit(resource.RLIMIT_AS, (limits["vmem"], limits["vmem"]))
        resource.setrlimit(resource.RLIMIT_FSIZE, (limits["fsize"], limits["fsize"]))
        if limits["nproc"]:
            # The zygote and the leader have this uid in this namespace too.
            n = limits["nproc"] + 2
            resource.setrlimit(resource.RLIMIT_NPROC, (n, n))
        landlock(req["landlock"])
        os.chdir(home)
        os.environ.clear()
        os.environ["TMPDIR"] = req["tmp"]
        sys.stdout = open(1, "w", closefd=False)
        sys.stderr = open(2, "w", closefd=False)
        if req["mode"] == "exec":
            with open(".codejail-payload.json", "rb") as f:
                payload = loads(f.read().decode("utf-8"))
            os.dup2(2, 1)
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


def leader(req, sock):
    """Runs one call in its own session and Landlock domain. Never returns."""
    reply = {"status": -9, "killed_by": None, "cpu_us": 0, "max_rss_kib": 0}
    bufs = [bytearray(), bytearray(), bytearray()]
    trunc = [False, False, False]
    try:
        os.setsid()
        _check(_libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl")
        landlock(req["landlock"])
        pipes = [os.pipe() for _ in range(3)]
        pid = os.fork()
        if pid == 0:
            sock.close()
            for r, _ in pipes:
                os.close(r)
            worker(req, pipes[0][1], pipes[1][1], pipes[2][1])
        for _, w in pipes:
            os.close(w)
        caps = [req["limits"]["output"] or (1 << 62)] * 2 + [req["max_result"]]
        deadline = time.monotonic() + (req["limits"]["realtime"] or 1e9)
        pidfd = os.pidfd_open(pid)
        open_fds = {pipes[i][0]: i for i in range(3)}
        status = None

        def take(fd):
            data = os.read(fd, 65536)
            i = open_fds[fd]
            if not data:
                del open_fds[fd]
                os.close(fd)
                return
            room = caps[i] - len(bufs[i])
            bufs[i] += data[:max(room, 0)]
            if len(data) > room:
                trunc[i] = True

        while status is None:
            timeout = deadline - time.monotonic()
            if timeout <= 0:
                reply["killed_by"] = reply["killed_by"] or "realtime"
                break
            watch = list(open_fds) + ([pidfd] if status is None else [])
            ready, _, _ = select.select(watch, [], [], timeout)
            for fd in ready:
                if fd == pidfd:
                    _, st, ru = os.wait4(pid, 0)
                    status = st
                    continue
                take(fd)
            if any(trunc):
                reply["killed_by"] = "output"
                break
        # Every process of this call, and nothing else (Landlock scope):
        # escapees that still hold the pipes die here.
        try:
            os.kill(-1, signal.SIGKILL)
        except OSError:
            pass
        cpu = 0.0
        rss = 0
        while True:
            try:
                p, st, ru = os.wait4(-1, 0)
            except ChildProcessError:
                break
            if p == pid:
                status = st
        usage = resource.getrusage(resource.RUSAGE_CHILDREN)
        cpu = usage.ru_utime + usage.ru_stime
        rss = usage.ru_maxrss
        # Every writer is dead: what is left in the pipes ends in EOF.
        for fd in list(open_fds):
            while fd in open_fds:
                take(fd)
        if status is None:
            status = signal.SIGKILL
        if os.WIFSIGNALED(status):
            reply["status"] = -os.WTERMSIG(status)
        else:
            reply["status"] = os.WEXITSTATUS(status)
        if reply["killed_by"] is None and reply["status"] == -signal.SIGXCPU:
            reply["killed_by"] = "cpu"
        reply["cpu_us"] = int(cpu * 1e6)
        reply["max_rss_kib"] = rss
    except BaseException as e:
        reply["error"] = "%s: %s" % (type(e).__name__, e)
    reply["truncated"] = trunc[:2]
    reply["lengths"] = [len(b) for b in bufs]
    try:
        sock.sendall(dumps(reply).encode("utf-8") + b"\n" + bytes(bufs[0]) + bytes(bufs[1]) + bytes(bufs[2]))
    finally:
        os._exit(0)


def zygote(path):
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.connect(path)
    requests = sock.makefile("rb")
    while True:
        line = requests.readline()
        if not line:
            os._exit(0)
        req = loads(line.decode("utf-8"))
        pid = os.fork()
        if pid == 0:
            leader(req, sock)
        del req, line
        os.waitpid(pid, 0)
        # The leader is gone: only now is the call over.
        sock.sendall(b".")


zygote(sys.argv[1])
