# ---------------------------------------------------------------------------
# codejail warm path: the zygote. Appended to driver.py (with ZYGOTE = True
# before it) and run inside a fully confined jail, every layer on, as the
# jail's code: `jailed_code POOL MAX_CALLS [MODULE...]`.
#
# Its channel to the pool is its stdin: one end of a socketpair the pool
# made and kept the other end of, so no other process can talk to it.
# Before it serves it rehearses a call, then imports the jail's preload
# (the MODULEs), with every variable that tells a numerical library how
# many threads to start set to 1: it must have one thread when it forks.
# When it is ready it says "ready\n" (a preload that failed: one JSON line
# naming the module, then it exits); then it serves one call at a time. A
# request is one JSON line, {"home", "tmp", "tmpdir", "mode", "limits",
# "tmp_access"},
# sent with five descriptors (SCM_RIGHTS): the worker's stdin, stdout,
# stderr and result pipes, whose other ends the caller reads, and the
# call's Landlock ruleset, built by the caller. The zygote never reads a
# call's code, data or output: code and data are files in the call's own
# directory, read by the worker; output goes straight to the caller; the
# names of what a call left in its tmp/ are read by a child forked to
# remove them. So nothing of one call is in the zygote's memory for a
# later call (forked from it) to find, but what the zygote learns of it
# to answer: its status, CPU time and peak memory, and its tmp/'s path.
#
# Ahead of each call (before "ready", then after each answer):
#             zygote --fork--> worker: new session, generators reseeded;
#             it waits for its call on a socketpair of its own. Forking
#             here, between calls, takes the fork and the first writes to
#             the zygote's pages out of the call's time.
# Per call:   zygote: makes the call's tmp/ (a directory of its own tmp/,
#             the tmpfs with the pool's quota where there is one), adds
#             it to the call's ruleset, read-write without execute, and
#             hands the request and its descriptors to the waiting worker;
#             worker: the nested Landlock domain (its own directory and
#             tmp/ only; it cannot signal the zygote), rlimits, cwd,
#             TMPDIR, stdio on the pipes; runs the code.
#   zygote:   waits for the worker to end, or for "k" from the caller (a
#             cap, the deadline, a cancel: the caller enforces them all),
#             then kill(-1, SIGKILL): Landlock's signal scope confines that
#             to the zygote's domain, where only this call's processes live
#             (the zygote is a child subreaper, so orphans of the call are
#             its children); reaps them all; removes the call's tmp/
#             (in a child forked for it, unless it is empty and has no
#             extended attributes) and puts its
#             own tmp/ back as it was (mode, times, extended attributes);
#             checks that nothing of its own was changed; answers one JSON
#             line (retiring if the tmp/ could not be cleared); forks the
#             next worker.
# A worker cannot act on its zygote by pid (seccomp refuses prlimit,
# setpriority, sched_set*, ioprio_set and pidfd_open aimed at another
# process), but the zygote checks anyway, and retires (answers "retire",
# then exits) when anything of its own changed, or after MAX_CALLS calls.
# ---------------------------------------------------------------------------
import atexit
import ctypes
import importlib
import resource
import select
import signal
import socket
import stat
import time

_libc = ctypes.CDLL(None, use_errno=True)
SYS_LANDLOCK_ADD_RULE = 445
SYS_LANDLOCK_RESTRICT_SELF = 446
LANDLOCK_RULE_PATH_BENEATH = 1
PR_SET_CHILD_SUBREAPER = 36

# What a worker ends with, taken before any call's code runs: the code may
# replace os.getpid, os.kill, signal.signal or os._exit in their modules.
_exit = os._exit
_getpid = os.getpid
_kill = os.kill
_signal = signal.signal


class _PathBeneath(ctypes.Structure):
    _pack_ = 1
    _fields_ = [("allowed_access", ctypes.c_uint64), ("parent_fd", ctypes.c_int32)]


def _check(ret, what):
    if ret < 0:
        err = ctypes.get_errno()
        raise OSError(err, "%s: %s" % (what, os.strerror(err)))
    return ret


def worker(chan):
    """The next call's worker: readies itself, waits for its call on
    `chan`, and runs it. Never returns."""
    status = 1
    first = False
    try:
        signal.set_wakeup_fd(-1)
        signal.signal(signal.SIGCHLD, signal.SIG_DFL)
        os.setsid()
        reseed()
        req, fds, _ = receive(chan, b"")
        chan.close()
        _check(_libc.syscall(SYS_LANDLOCK_RESTRICT_SELF, fds[4], 0), "landlock_restrict_self")
        # Out of the way of the targets first, then onto 0..3.
        moved = [os.dup(fd) for fd in fds[:4]]
        for target, fd in enumerate(moved):
            os.dup2(fd, target)
        # jail_code's program starts with 0..2 only, as on the cold path.
        os.closerange(3 if req["mode"] == "run" else 4, 65536)
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
        os.chdir(req["home"])
        # The zygote's environment is a cold run's; its sys.std* objects
        # wrap descriptors 0..2 with nothing buffered: both serve as they
        # are, now on this call's directory and pipes.
        os.environ["TMPDIR"] = req["tmpdir"]
        if req["mode"] == "exec":
            payload = loads(sys.stdin.buffer.read().decode("utf-8"))
            code, g_dict, finish = begin(payload, 3)
            first = shim(req["home"], len(payload["python_path"]))
            deepen()
            exec(first, {"code": code, "g_dict": g_dict})
            finish(g_dict)
            status = 0
        else:
            path = os.path.join(req["home"], "jailed_code")
            with open(".codejail-argv.json", "rb") as f:
                argv = loads(f.read().decode("utf-8"))
            sys.argv = ["jailed_code"] + argv
            # Bytes, as the interpreter reads a program: its coding cookie
            # and byte order mark hold.
            with open("jailed_code", "rb") as f:
                source = f.read()
            try:
                first = compile(source, path, "exec")
            except (SyntaxError, ValueError) as e:
                if isinstance(e, SyntaxError) and e.lineno == 0 and str(e.msg).startswith("unknown encoding: "):
                    # The words of the interpreter's file reader for a
                    # coding cookie it cannot use.
                    e = SyntaxError("encoding problem: " + e.msg[len("unknown encoding: "):])
                # The interpreter shows no frame for its program's syntax.
                status = uncaught(e, None)
            else:
                sys.path[0] = req["home"]
                deepen()
                exec(first, {"__name__": "__main__", "__file__": path, "__builtins__": __builtins__})
                status = 0
    except SystemExit as e:
        status = exit_status(e.code)
    except BaseException as e:
        status = uncaught(e, first)
    finally:
        # What the interpreter does at its exit: it waits for the code's
        # threads, runs its exit functions, flushes the streams; an
        # uncaught KeyboardInterrupt then ends it by SIGINT.
        try:
            threading = sys.modules.get("threading")
            if threading is not None:
                threading._shutdown()
        except BaseException:
            pass
        try:
            atexit._run_exitfuncs()
        except BaseException:
            pass
        try:
            sys.stdout.flush()
            sys.stderr.flush()
        except BaseException:
            pass
        if status is None:
            try:
                _signal(signal.SIGINT, signal.SIG_DFL)
                _kill(_getpid(), signal.SIGINT)
            except BaseException:
                pass
            status = 128 + signal.SIGINT
        _exit(status & 0xFF)


def deepen():
    """Raises the recursion limit by the depth the code starts at beyond
    CodeJail's: the zygote's frames below the worker, the worker's, and
    one more exec. The code recurses as deep as under CodeJail (a
    RecursionError's count, and what code that catches one computes, are
    the same); sys.getrecursionlimit() says that much more."""
    depth = 0
    frame = sys._getframe(1)
    while frame is not None:
        depth += 1
        frame = frame.f_back
    sys.setrecursionlimit(sys.getrecursionlimit() + depth + 1)


def exit_status(code):
    """The interpreter's exit for SystemExit(code): its status, after it
    wrote a code that is no integer, then a line break, to sys.stderr (or
    to descriptor 2 where there is none)."""
    if code is None:
        return 0
    if isinstance(code, int):
        value = int.__index__(code)
        # A value past a C long exits with -1.
        return value & 0xFF if -(1 << 63) <= value < (1 << 63) else 0xFF
    try:
        text = str(code)
    except BaseException:
        text = ""
    write_stderr(text + "\n")
    return 1


def write_stderr(text):
    """PySys_WriteStderr: to sys.stderr, else to descriptor 2."""
    try:
        sys.stderr.write(text)
    except BaseException:
        try:
            os.write(2, text.encode("utf-8", "backslashreplace"))
        except BaseException:
            pass


# The code objects whose one line, `exec(code, g_dict)`, is the line of
# CodeJail's program that runs the code (19, one more per python_path
# entry), by the number of entries: a call's traceback shows that frame,
# as CodeJail's does, in the call's `jailed_code` (the caller stages the
# jailed program there, whose line it is). Compiled once in the zygote
# for calls without a python_path (rehearse), in the worker for others.
SHIMS = {}


def shim(home, entries):
    """The code of CodeJail's frame for a call in `home` with `entries`
    python_path entries."""
    template = SHIMS.get(entries)
    if template is None:
        source = "\n" * (18 + entries) + "exec(code, g_dict)\n"
        template = SHIMS[entries] = compile(source, "jailed_code", "exec")
    return template.replace(co_filename=os.path.join(home, "jailed_code"))


def uncaught(e, first):
    """What the interpreter does with an exception no code caught, as if
    the code object `first` were the program (CPython's _PyErr_PrintEx):
    its traceback from `first`'s frame on (all of it when no frame is
    `first`'s; none for None) through sys.excepthook, which the code may
    have set, replaced with None or deleted; a hook that raises gets the
    interpreter's two tracebacks, one that raises SystemExit ends the run
    with its code. The exit status: 1, the hook's SystemExit's, or None
    for a KeyboardInterrupt (the interpreter ends by SIGINT)."""
    tb = e.__traceback__ if first is not None else None
    while tb is not None and tb.tb_frame.f_code is not first:
        tb = tb.tb_next
    if tb is None and first is not None:
        tb = e.__traceback__
    # The interpreter's hook prints the exception's own traceback.
    e.__traceback__ = tb
    sys.last_type, sys.last_value, sys.last_traceback = type(e), e, tb
    try:
        hook = sys.excepthook
    except AttributeError:
        write_stderr("sys.excepthook is missing\n")
        sys.__excepthook__(type(e), e, tb)
        return None if isinstance(e, KeyboardInterrupt) else 1
    try:
        hook(type(e), e, tb)
    except SystemExit as done:
        return exit_status(done.code)
    except BaseException as failed:
        # Called by the interpreter, the hook is the first frame, and no
        # exception is being handled.
        failed.__context__ = None
        if failed.__traceback__ is not None:
            failed.__traceback__ = failed.__traceback__.tb_next
        write_stderr("Error in sys.excepthook:\n")
        sys.__excepthook__(type(failed), failed, failed.__traceback__)
        write_stderr("\nOriginal exception was:\n")
        sys.__excepthook__(type(e), e, tb)
    return None if isinstance(e, KeyboardInterrupt) else 1


def receive(sock, pending):
    """One request line and its five descriptors; stray "k" bytes (a kill
    that came after its call had ended) are dropped. End of file: the
    pool is gone, and so is the zygote (or, in a worker waiting for its
    call, the zygote is gone, and so is the worker)."""
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


def fork_worker(sock):
    """The worker of the next call, forked now; its pid and the zygote's
    end of its channel."""
    ours, theirs = socket.socketpair(socket.AF_UNIX, socket.SOCK_STREAM)
    pid = os.fork()
    if pid == 0:
        sock.close()
        ours.close()
        worker(theirs)
    theirs.close()
    return pid, ours


def call_tmp(req):
    """The call's tmp/: a new directory in the zygote's own tmp/ (the
    tmpfs with the pool's quota, where there is one), and a descriptor of
    it for the call's ruleset (built outside the zygote's mount namespace,
    where that tmpfs is not)."""
    path = req["tmp"]
    os.mkdir(path, 0o700)
    return path, os.open(path, os.O_PATH | os.O_DIRECTORY | os.O_CLOEXEC)


def wait_for(sock, pid, chld):
    """Until the worker ends (its status), or the caller asks for the
    kill (None). The caller's end closing ends the zygote."""
    poller = select.poll()
    poller.register(sock.fileno(), select.POLLIN)
    poller.register(chld, select.POLLIN)
    while True:
        events = dict(poller.poll())
        if chld in events:
            try:
                while os.read(chld, 512):
                    pass
            except BlockingIOError:
                pass
            done = os.waitid(os.P_PID, pid, os.WEXITED | os.WNOHANG | os.WNOWAIT)
            if done is not None:
                return done
        if sock.fileno() in events:
            if not sock.recv(1, socket.MSG_DONTWAIT):
                os.kill(-1, signal.SIGKILL)
                os._exit(0)
            return None


def reap_all(pid):
    """Kills every process of the call (and nothing else: Landlock's
    scope) and reaps them; the worker's status and peak RSS."""
    try:
        os.kill(-1, signal.SIGKILL)
    except OSError:
        pass
    status, rss = signal.SIGKILL, 0
    while True:
        try:
            p, st, ru = os.wait4(-1, 0)
        except ChildProcessError:
            return status, rss
        except InterruptedError:
            continue
        if p == pid:
            status, rss = st, ru.ru_maxrss


def remove_tree(path):
    """Removes `path` and what is beneath it, never following a link, and
    giving back the permissions a call took away (the same owner). One
    open directory at a time, each reached from its parent's descriptor
    and left by "..": depth is no matter (past the recursion limit, past
    PATH_MAX); each directory is read once. Run only when no process of
    the call is left, in a child of the zygote (the names it reads die
    with it). The zygote's own: codejail-fs's removal (which also checks
    each ".." against a tree changed under it) runs outside the jail, and
    nothing changes this tree now."""
    flags = os.O_RDONLY | os.O_DIRECTORY | os.O_NOFOLLOW | os.O_CLOEXEC
    try:
        st = os.lstat(path)
    except FileNotFoundError:
        return
    if not stat.S_ISDIR(st.st_mode):
        os.unlink(path)
        return

    def scan(fd):
        """Unlinks what is not a directory; the directories' names."""
        below = []
        with os.scandir(fd) as entries:
            for entry in entries:
                if entry.is_dir(follow_symlinks=False):
                    below.append(entry.name)
                else:
                    os.unlink(entry.name, dir_fd=fd)
        return below

    os.chmod(path, 0o700)
    # Its own extended attributes: the call's ruleset holds its inode for
    # a while after the rmdir, and with it their room in the tmpfs.
    for name in os.listxattr(path, follow_symlinks=False):
        os.removexattr(path, name, follow_symlinks=False)
    fd = os.open(path, flags)
    # Each directory is read once: the directories still to go down into,
    # level by level, and the names of those gone down into.
    levels = [scan(fd)]
    depth = []
    while levels:
        if levels[-1]:
            child = levels[-1].pop()
            os.chmod(child, 0o700, dir_fd=fd)
            below = os.open(child, flags, dir_fd=fd)
            os.close(fd)
            fd = below
            depth.append(child)
            levels.append(scan(fd))
            continue
        levels.pop()
        if not depth:
            break
        above = os.open("..", flags & ~os.O_NOFOLLOW, dir_fd=fd)
        os.close(fd)
        fd = above
        os.rmdir(depth.pop(), dir_fd=fd)
    os.close(fd)
    os.rmdir(path)


class TmpRoot:
    """The zygote's tmp/, where each call's tmp/ is made: the worker owns
    it too (the same uid), and Landlock does not cover its metadata, so a
    call could change its mode (taking the zygote's own access away) or
    its times and extended attributes (a message to the next call), all
    by name. After each call they are put back as they were when the
    zygote started. (Its inode flags need a descriptor of it, which
    Landlock refuses the worker.)"""

    def __init__(self, path):
        self.path = path
        st = os.stat(path)
        self.mode = stat.S_IMODE(st.st_mode)
        self.times = (st.st_atime_ns, st.st_mtime_ns)
        room = os.statvfs(path)
        self.room = (room.f_bavail, room.f_ffree)

    def roomy(self, limits):
        """Whether the pool's quota (where there is one) has nine tenths of
        the room it had at start: room a call keeps after it ended (an
        inode the kernel frees later, a descriptor in flight in a unix
        socket) must not starve the next call."""
        room = os.statvfs(self.path)
        blocks, inodes = self.room
        return not (
            (limits["disk"] and room.f_bavail * 10 < blocks * 9)
            or (limits["files"] and room.f_ffree * 10 < inodes * 9)
        )

    def restore(self):
        os.chmod(self.path, self.mode)
        for name in os.listxattr(self.path):
            # What the owner may set; other names need privileges.
            if name.startswith(("user.", "system.posix_acl_")):
                os.removexattr(self.path, name)
        os.utime(self.path, ns=self.times)


def rmdir_if_bare(tmp):
    """Removes the call's tmp/ if it is empty and has no extended
    attributes (the size of their names' list is read, not the names):
    whether it is gone."""
    if _libc.listxattr(os.fsencode(tmp), None, 0) > 0:
        return False
    try:
        os.rmdir(tmp)
    except FileNotFoundError:
        pass
    except OSError:
        return False
    return True


def in_child(f, *args):
    """Runs f(*args) in a child forked for it: what it reads dies with it,
    out of the memory the next worker is forked from. Whether it
    returned."""
    pid = os.fork()
    if pid == 0:
        code = 1
        try:
            f(*args)
            code = 0
        finally:
            os._exit(code)
    _, status = os.waitpid(pid, 0)
    return os.WIFEXITED(status) and os.WEXITSTATUS(status) == 0


def clear_tmp(root, tmp, limits):
    """Removes the call's tmp/ (by rmdir when it is bare, else in a child:
    the names of what the call left never enter the zygote's memory) and
    puts the zygote's tmp/ back as it was. False when that failed, or when
    the quota's room did not come back: the zygote then retires."""
    try:
        os.chmod(root.path, 0o700)
        if not (rmdir_if_bare(tmp) or in_child(remove_tree, tmp)):
            return False
        root.restore()
        return root.roomy(limits)
    except OSError:
        return False


def full(path, limits):
    """Whether the zygote's tmpfs, limited by the pool's quota, is full."""
    try:
        st = os.statvfs(path)
    except OSError:
        return False
    return bool((limits["disk"] and st.f_bavail == 0) or (limits["files"] and st.f_ffree == 0))


def own_state():
    """What of the zygote a worker could try to change: its limits, its
    priority and scheduling, its CPUs."""
    limits = tuple(resource.getrlimit(r) for r in (
        resource.RLIMIT_NOFILE, resource.RLIMIT_NPROC, resource.RLIMIT_AS,
        resource.RLIMIT_CPU, resource.RLIMIT_FSIZE, resource.RLIMIT_STACK,
    ))
    return (limits, os.getpriority(os.PRIO_PROCESS, 0), os.sched_getscheduler(0),
            tuple(sorted(os.sched_getaffinity(0))))


def serve(sock, req, fds, chld, pid, chan):
    """Runs one call on the waiting worker `pid`: the answer, and the
    call's tmp/ to clear."""
    answer = {"status": -9, "cpu_us": 0, "max_rss_kib": 0, "disk_full": False}
    before = resource.getrusage(resource.RUSAGE_CHILDREN)
    tmp, tmp_fd = call_tmp(req)
    try:
        rule = _PathBeneath(req["tmp_access"], tmp_fd)
        _check(_libc.syscall(SYS_LANDLOCK_ADD_RULE, fds[4], LANDLOCK_RULE_PATH_BENEATH,
                             ctypes.byref(rule), 0), "landlock_add_rule")
    finally:
        os.close(tmp_fd)
    try:
        socket.send_fds(chan, [dumps(req).encode("ascii") + b"\n"], fds)
    except OSError:
        pass  # the worker is gone: its status says so
    chan.close()
    for fd in fds:
        os.close(fd)
    wait_for(sock, pid, chld)
    status, rss = reap_all(pid)
    after = resource.getrusage(resource.RUSAGE_CHILDREN)
    answer["cpu_us"] = int((after.ru_utime + after.ru_stime - before.ru_utime - before.ru_stime) * 1e6)
    answer["max_rss_kib"] = rss
    answer["status"] = -os.WTERMSIG(status) if os.WIFSIGNALED(status) else os.WEXITSTATUS(status)
    answer["disk_full"] = full(tmp, req["limits"])
    return answer, tmp


def rehearse():
    """Runs once what every worker runs (the compiler, exec, the JSON
    codec, text I/O over pipes, a foreign call), with made-up data, so
    that what CPython builds on first use is built here, before the fork:
    in a worker it would cost copied pages, every call (about 1.5 ms for
    the first compile() alone)."""
    r, w = os.pipe()
    try:
        namespace = loads('{"a": [1, 2.5, "t", null, true, {"b": "c"}]}')
        exec(compile("x = 1 + 1\ny = [a, x, str(x)]\n", "<rehearsal>", "exec"), namespace)
        dumps(json_safe(namespace)).encode("ascii")
        with open(w, "w", closefd=False) as out:
            out.write("rehearsal\n")
        with open(r, "r", closefd=False) as back:
            back.readline()
        _libc.syscall(39)  # getpid
        shim("/", 0)
    finally:
        os.close(r)
        os.close(w)


# What tells a library how many threads to start: OpenBLAS (which reads
# the OpenMP and GotoBLAS ones too), MKL, BLIS, numexpr, OpenMP.
THREAD_VARIABLES = (
    "OPENBLAS_NUM_THREADS",
    "GOTO_NUM_THREADS",
    "OMP_NUM_THREADS",
    "MKL_NUM_THREADS",
    "BLIS_NUM_THREADS",
    "NUMEXPR_NUM_THREADS",
)


def preload(modules):
    """Imports the jail's preload, with one thread per library (the
    variables are read when a library loads; afterwards the environment is
    a cold run's again). None, or what to tell the pool: the module that
    failed to import, or that left a thread of Python's running."""
    if not modules:
        return None
    import threading

    saved = {name: os.environ.get(name) for name in THREAD_VARIABLES}
    os.environ.update({name: "1" for name in THREAD_VARIABLES})
    try:
        for module in modules:
            try:
                importlib.import_module(module)
            except BaseException as e:  # SystemExit, too: a module's import must not end the zygote silently
                import traceback

                traceback.print_exc()
                return {"preload": module, "error": ("%s: %s" % (type(e).__name__, e))[:1000]}
            if threading.active_count() != 1:
                names = sorted(t.name for t in threading.enumerate() if t is not threading.current_thread())
                return {"preload": module, "threads": threading.active_count(), "names": names[:10]}
    finally:
        for name, value in saved.items():
            if value is None:
                os.environ.pop(name, None)
            else:
                os.environ[name] = value
    return None


# Preloaded modules that hold a random generator seeded at import: every
# worker would start from the zygote's state, so every call would draw the
# same numbers. Python's `random` reseeds itself at a fork; these are
# reseeded in each worker, as a cold run seeds them.
RESEEDED = ("random2", "numpy.random")


def reseed():
    for name in RESEEDED:
        seed = getattr(sys.modules.get(name), "seed", None)
        if callable(seed):
            seed()


def zygote(max_calls, modules):
    import gc

    _check(_libc.prctl(PR_SET_CHILD_SUBREAPER, 1, 0, 0, 0), "prctl")
    sock = socket.socket(fileno=os.dup(0))
    # The worker's SIGCHLD wakes the poll through this pipe.
    chld, chld_w = os.pipe2(os.O_NONBLOCK | os.O_CLOEXEC)
    signal.set_wakeup_fd(chld_w)
    signal.signal(signal.SIGCHLD, lambda *_: None)
    rehearse()
    failed = preload(modules)
    if failed is not None:
        sock.sendall(dumps(failed).encode("ascii") + b"\n")
        os._exit(1)
    # Everything imported so far lives on in every worker: keep the garbage
    # collector off those pages so that forked workers share them.
    gc.freeze()
    state = own_state()
    root = TmpRoot(os.environ["TMPDIR"])
    pid, chan = fork_worker(sock)
    sock.sendall(b"ready\n")
    pending = b""
    served = 0
    while True:
        req, fds, pending = receive(sock, pending)
        answer, tmp = serve(sock, req, fds, chld, pid, chan)
        # Before the answer: a zygote that could not clear the call's
        # tmp/ must not serve again, and says so (retire).
        cleared = clear_tmp(root, tmp, req["limits"])
        del req, fds
        served += 1
        retire = not cleared or served >= max_calls or own_state() != state
        answer["retire"] = retire
        sock.sendall(dumps(answer).encode("ascii") + b"\n")
        del answer
        if retire:
            os._exit(0)
        pid, chan = fork_worker(sock)


zygote(int(sys.argv[2]), sys.argv[3:])
