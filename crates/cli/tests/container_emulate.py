"""Runs a command under the restrictions of a default container runtime.

Usage: python3 container_emulate.py [--clone3-errno N] [--seccomp-unconfined]
       -- COMMAND [ARG...]

What Docker's (and containerd's, Podman's) defaults do to a container's
processes, as far as codejail can tell them apart:

* a seccomp filter that refuses, with EPERM, unshare(2), setns(2),
  mount(2), and clone(2) with any namespace flag (CLONE_NEWNS,
  CLONE_NEWCGROUP, CLONE_NEWUTS, CLONE_NEWIPC, CLONE_NEWUSER, CLONE_NEWPID,
  CLONE_NEWNET); clone3(2) refused outright, since a filter cannot read its
  flags (Docker answers ENOSYS so that the C library falls back to clone,
  older profiles EPERM, which breaks every threaded program, since the C
  library's pthread_create falls back to clone on ENOSYS only:
  --clone3-errno, default ENOSYS); none with --seccomp-unconfined (Docker's
  `--security-opt seccomp=unconfined`);
* no CAP_SYS_ADMIN: only Docker's default capabilities are left in the
  bounding set, so the command (root or not) cannot get the others back;
* the cgroup file systems mounted read-only (as root only: that takes a
  mount namespace of its own, made before the filter; an unprivileged
  caller cannot write them anyway).

No no_new_privs for root (Docker does not set it unless asked); an
unprivileged caller needs it to install a filter at all.
"""

import ctypes
import os
import sys

PR_SET_SECCOMP = 22
PR_CAPBSET_DROP = 24
PR_SET_NO_NEW_PRIVS = 38
SECCOMP_MODE_FILTER = 2
CLONE_NEWNS = 0x00020000
MS_REC = 0x4000
MS_PRIVATE = 1 << 18
MS_REMOUNT = 32
MS_BIND = 4096
MS_RDONLY = 1
EPERM = 1
ENOSYS = 38

# Namespace flags Docker's profile refuses in clone's first argument.
CLONE_NAMESPACES = 0x7E020000

# Docker's default capabilities: CHOWN, DAC_OVERRIDE, FOWNER, FSETID, KILL,
# SETGID, SETUID, SETPCAP, NET_BIND_SERVICE, NET_RAW, SYS_CHROOT, MKNOD,
# AUDIT_WRITE, SETFCAP.
DOCKER_CAPS = {0, 1, 3, 4, 5, 6, 7, 8, 10, 13, 18, 27, 29, 31}

MACHINES = {
    "x86_64": (0xC000003E, {"clone": 56, "unshare": 272, "setns": 308, "mount": 165, "clone3": 435}),
    "aarch64": (0xC00000B7, {"clone": 220, "unshare": 97, "setns": 268, "mount": 40, "clone3": 435}),
}

libc = ctypes.CDLL(None, use_errno=True)


def check(ret, what):
    if ret != 0:
        err = ctypes.get_errno()
        raise OSError(err, f"{what}: {os.strerror(err)}")


class SockFilter(ctypes.Structure):
    _fields_ = [("code", ctypes.c_ushort), ("jt", ctypes.c_ubyte), ("jf", ctypes.c_ubyte), ("k", ctypes.c_uint)]


class SockFprog(ctypes.Structure):
    _fields_ = [("len", ctypes.c_ushort), ("filter", ctypes.POINTER(SockFilter))]


def assemble(lines):
    """Classic BPF from (label, code, k, jump-true label, jump-false label)."""
    at = {line[0]: i for i, line in enumerate(lines) if line[0]}
    out = []
    for i, (_, code, k, jt, jf) in enumerate(lines):
        rel = lambda target: 0 if target is None else at[target] - i - 1
        out.append((code, rel(jt), rel(jf), k))
    return out


def filter_program(clone3_errno):
    ld_abs, jeq, jset, ret = 0x20, 0x15, 0x45, 0x06
    allow, errno = 0x7FFF0000, 0x00050000
    arch, nr = MACHINES[os.uname().machine]
    return assemble([
        (None, ld_abs, 4, None, None),  # seccomp_data.arch
        (None, jeq, arch, "native", "allow"),
        ("native", ld_abs, 0, None, None),  # seccomp_data.nr
        (None, jeq, nr["unshare"], "deny", None),
        (None, jeq, nr["setns"], "deny", None),
        (None, jeq, nr["mount"], "deny", None),
        (None, jeq, nr["clone3"], "deny_clone3", None),
        (None, jeq, nr["clone"], "clone", "allow"),
        ("clone", ld_abs, 16, None, None),  # args[0], low 32 bits
        (None, jset, CLONE_NAMESPACES, "deny", "allow"),
        ("allow", ret, allow, None, None),
        ("deny", ret, errno | EPERM, None, None),
        ("deny_clone3", ret, errno | clone3_errno, None, None),
    ])


def read_only_cgroups():
    check(libc.unshare(CLONE_NEWNS), "unshare(CLONE_NEWNS)")
    check(libc.mount(None, b"/", None, MS_REC | MS_PRIVATE, None), "make / private")
    with open("/proc/self/mountinfo") as f:
        points = [
            line.split(" - ")[0].split()[4]
            for line in f
            if line.split(" - ")[1].split()[0] in ("cgroup", "cgroup2")
            or line.split()[4] == "/sys/fs/cgroup"
        ]
    for point in points:
        check(
            libc.mount(None, point.encode(), None, MS_REMOUNT | MS_BIND | MS_RDONLY, None),
            f"remount {point} read-only",
        )


def main():
    args = sys.argv[1:]
    clone3_errno = ENOSYS
    seccomp = True
    while args[:1] in (["--clone3-errno"], ["--seccomp-unconfined"]):
        if args[0] == "--seccomp-unconfined":
            seccomp, args = False, args[1:]
        else:
            clone3_errno, args = int(args[1]), args[2:]
    if args[:1] == ["--"]:
        args = args[1:]
    if not args:
        sys.exit(__doc__)
    root = os.geteuid() == 0
    if root:
        read_only_cgroups()
    if seccomp:
        if not root:
            check(libc.prctl(PR_SET_NO_NEW_PRIVS, 1, 0, 0, 0), "PR_SET_NO_NEW_PRIVS")
        program = filter_program(clone3_errno)
        filters = (SockFilter * len(program))(*[SockFilter(*f) for f in program])
        fprog = SockFprog(len(program), filters)
        check(libc.prctl(PR_SET_SECCOMP, SECCOMP_MODE_FILTER, ctypes.byref(fprog), 0, 0), "seccomp filter")
    if root:
        with open("/proc/sys/kernel/cap_last_cap") as f:
            last = int(f.read())
        for cap in range(last + 1):
            if cap not in DOCKER_CAPS:
                check(libc.prctl(PR_CAPBSET_DROP, cap, 0, 0, 0), f"drop capability {cap}")
    os.execvp(args[0], args)


main()
