"""No ``execve`` for the child: ``no_new_privs`` and a seccomp filter that makes ``execve``/``execveat`` fail.

``RLIMIT_NPROC`` = 0 stops ``fork`` but not ``execve``, which replaces the child with any program while
keeping its descriptors (the frame channel included). Nothing a program can import reaches ``exec*``; this
is the kernel-side backstop. The filter (classic BPF, installed with ``prctl`` through ``ctypes``):

* the audit architecture must be the interpreter's own (x86-64 or AArch64): a system call made through
  another ABI (``int 0x80`` i386 calls on x86-64, x32 numbers) fails with ``EPERM``;
* ``execve`` and ``execveat`` fail with ``EPERM`` (Python raises ``PermissionError``);
* everything else is allowed.

It is applied to the calling thread and inherited by everything it starts; :mod:`.main` applies it first,
before any other thread exists. The module imports only the stdlib, so tests can load it by path.
"""

from __future__ import annotations

import ctypes
import errno
import platform
import struct

PR_SET_NO_NEW_PRIVS = 38
PR_SET_SECCOMP = 22
SECCOMP_MODE_FILTER = 2
SECCOMP_RET_ALLOW = 0x7FFF0000
SECCOMP_RET_ERRNO = 0x00050000

_BPF_LD_W_ABS = 0x20
_BPF_JEQ_K = 0x15
_BPF_JGE_K = 0x35
_BPF_RET_K = 0x06
_X32_SYSCALL_BIT = 0x40000000

# machine: (AUDIT_ARCH_*, execve, execveat, whether x32 numbers exist)
_ARCHES = {
    "x86_64": (0xC000003E, 59, 322, True),
    "amd64": (0xC000003E, 59, 322, True),
    "aarch64": (0xC00000B7, 221, 281, False),
    "arm64": (0xC00000B7, 221, 281, False),
}


class _SockFprog(ctypes.Structure):
    _fields_ = (("len", ctypes.c_ushort), ("filter", ctypes.c_char_p))


def filter_program(machine: str) -> bytes:
    """The BPF program (``struct sock_filter[]``) for ``machine``; ``ValueError`` for other machines."""
    if machine.lower() not in _ARCHES:
        raise ValueError(f"no exec filter for {machine!r}")
    arch, execve, execveat, x32 = _ARCHES[machine.lower()]
    deny = SECCOMP_RET_ERRNO | errno.EPERM
    # (code, jump-if-true label, jump-if-false label, k); labels are "next", "allow", "deny".
    body: list[tuple[int, str, str, int]] = [
        (_BPF_LD_W_ABS, "next", "next", 4),  # seccomp_data.arch
        (_BPF_JEQ_K, "next", "deny", arch),
        (_BPF_LD_W_ABS, "next", "next", 0),  # seccomp_data.nr
    ]
    if x32:
        body.append((_BPF_JGE_K, "deny", "next", _X32_SYSCALL_BIT))
    body += [(_BPF_JEQ_K, "deny", "next", execve), (_BPF_JEQ_K, "deny", "next", execveat)]
    allow_at, deny_at = len(body), len(body) + 1

    def offset(at: int, label: str) -> int:
        return 0 if label == "next" else (allow_at if label == "allow" else deny_at) - at - 1

    code = b"".join(struct.pack("=HBBI", op, offset(i, jt), offset(i, jf), k) for i, (op, jt, jf, k) in enumerate(body))
    return (
        code + struct.pack("=HBBI", _BPF_RET_K, 0, 0, SECCOMP_RET_ALLOW) + struct.pack("=HBBI", _BPF_RET_K, 0, 0, deny)
    )


def deny_exec() -> str | None:
    """Set ``no_new_privs`` and install the exec-denying filter; None on success, else why not."""
    try:
        program = filter_program(platform.machine())
        libc = ctypes.CDLL(None, use_errno=True)
        prctl = libc.prctl
        prctl.restype = ctypes.c_int
        ulong = ctypes.c_ulong
        if prctl(PR_SET_NO_NEW_PRIVS, ulong(1), ulong(0), ulong(0), ulong(0)) != 0:
            return f"prctl(PR_SET_NO_NEW_PRIVS) failed: {errno.errorcode.get(ctypes.get_errno(), '?')}"
        buffer = ctypes.create_string_buffer(program, len(program))
        fprog = _SockFprog(len(program) // 8, ctypes.cast(buffer, ctypes.c_char_p))
        address = ulong(ctypes.addressof(fprog))
        if prctl(PR_SET_SECCOMP, ulong(SECCOMP_MODE_FILTER), address, ulong(0), ulong(0)) != 0:
            return f"prctl(PR_SET_SECCOMP) failed: {errno.errorcode.get(ctypes.get_errno(), '?')}"
    except (OSError, AttributeError, ValueError) as exc:
        return f"{type(exc).__name__}: {exc}"
    return None
