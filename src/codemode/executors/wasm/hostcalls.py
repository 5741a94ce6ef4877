"""The host side of the WASI calls codemode shadows, and raw access to the guest's linear memory.

Two imports carry bridge frames (see ``codemode_runtime.protocol``): ``fd_pwrite`` and ``fd_pread`` at an
offset of ``MAGIC_OFFSET`` or more. ``poll_oneoff`` and ``clock_time_get`` are served here so that a
sleeping guest wakes when it is interrupted, and ``path_symlink`` is refused. Everything else is stock
WASI (:func:`new_linker`).

The shims run on the instance thread, inside wasmtime's host calls; they find their interpreter through
:func:`bind` and must never raise (an exception would trap the guest): failures become WASI errnos.
Guest memory is read and written through its host address with ``ctypes``, every pointer bounds-checked.
"""

from __future__ import annotations

import ctypes
import struct
import threading
import time
from typing import Protocol

import wasmtime

from codemode.protocol import MAGIC_OFFSET, FrameError, encode_frame, error_reply

# -- WASI errnos ------------------------------------------------------------------------------------

_ERRNO_INVAL = 28
_ERRNO_IO = 29
_ERRNO_NOTSUP = 58
_ERRNO_PERM = 63
_ERRNO_TIMEDOUT = 73
"""What a wait returns once the execution's wall-time limit is reached: CPython raises ``TimeoutError``."""

# -- layouts in guest memory (wasm32, little-endian) ------------------------------------------------

_U32 = struct.Struct("<I")
_U64 = struct.Struct("<Q")
_IOVEC = struct.Struct("<II")
"""WASI ``iovec``/``ciovec``: pointer, length."""
_SUBSCRIPTION = struct.Struct("<QB7xIxxxxQQH6x")
"""WASI ``subscription``: userdata, tag (0 clock, 1 fd_read, 2 fd_write), then clock id, timeout, precision,
flags (or the fd, read as the clock id field)."""
_EVENT = struct.Struct("<QHBxxxxxQH6x")
"""WASI ``event``: userdata, error, type, nbytes, flags."""
_BYTEARRAY = struct.Struct("<iIiiIIi")
"""CPython 3.12's ``PyByteArrayObject`` on wasm32: refcount, type, size, allocated, bytes, start, exports."""

_MAX_IOVS = 1024
"""The most buffers one bridge ``pwritev``/``preadv`` may name (Linux's ``IOV_MAX``; the runtime uses 3)."""
MAX_SUBSCRIPTIONS = 1024
"""The most subscriptions one ``poll_oneoff`` may pass: the host reads and walks the table in Python, so a
longer one (the count is the guest's, up to 2³¹) is refused before it is read."""
_CLOCKS = {0: time.time_ns, 1: time.monotonic_ns, 2: time.thread_time_ns, 3: time.thread_time_ns}
"""WASI clock ids: realtime, monotonic, process and thread CPU time."""


class Guest(Protocol):
    """What the shims need from the interpreter running on this thread."""

    memory: wasmtime.Memory | None
    """The guest's linear memory (None until it is instantiated)."""
    pending: bytes
    """A reply frame too large for the guest's buffer, read back with ``fd_pread``."""

    @property
    def frame_limit(self) -> int:
        """The largest frame the guest may send now (checked before its buffers are read)."""
        ...

    @property
    def read_limit(self) -> int:
        """The largest frame read whole at once; a larger one (up to :attr:`frame_limit`) is handed to
        :meth:`on_large_frame` still in guest memory."""
        ...

    wake: threading.Event
    """Set when the interpreter is interrupted: a guest sleeping in ``poll_oneoff`` wakes up."""
    waiting: bool
    """True while the guest sleeps in ``poll_oneoff`` (set here) or waits for a tool call's answer."""
    timed_out: bool
    """The running job reached its wall-time limit while waiting: every wait now fails at once with
    ``ETIMEDOUT`` (the program sees ``TimeoutError``)."""

    def on_frame(self, caller: wasmtime.Caller, raw: bytes) -> bytes:
        """Handle one frame from the guest and return the reply frame."""
        ...

    def on_refused(self, size: int, limit: int) -> bytes:
        """The reply to a frame of ``size`` bytes refused unread for being over ``limit``."""
        ...

    def on_large_frame(self, caller: wasmtime.Caller, frame: GuestFrame) -> bytes:
        """Handle a frame over :attr:`read_limit`, reading of it what it needs; return the reply frame."""
        ...


class GuestFrame:
    """A frame still in guest memory: the buffers a ``pwritev`` named, read on demand and never joined
    whole unless asked. Valid only during the host call that received it (the guest cannot run meanwhile)."""

    __slots__ = ("_base", "_entries", "_memory_size", "size")

    def __init__(self, base: int, memory_size: int, entries: list[tuple[int, int]], size: int) -> None:
        self._base = base
        self._memory_size = memory_size
        self._entries = entries
        self.size = size
        """The frame's length in bytes, its header included (the sum of the buffers' lengths)."""

    def read(self, start: int, length: int) -> bytes:
        """``length`` bytes from ``start`` (fewer at the end of the frame), across buffer boundaries."""
        parts: list[bytes] = []
        position = 0
        end = min(start + length, self.size)
        for ptr, size in self._entries:
            if position >= end:
                break
            lo, hi = max(start, position), min(end, position + size)
            if lo < hi:
                parts.append(_read(self._base, self._memory_size, ptr + lo - position, hi - lo))
            position += size
        return b"".join(parts)


class _Local(threading.local):
    guest: Guest | None = None


_local = _Local()


def bind(guest: Guest | None) -> None:
    """Serve this thread's host calls for ``guest`` (its instance thread binds it; None unbinds)."""
    _local.guest = guest


def new_linker(engine: wasmtime.Engine) -> wasmtime.Linker:
    """A linker with stock WASI and codemode's shims in place of the calls they shadow."""
    linker = wasmtime.Linker(engine)
    linker.define_wasi()
    linker.allow_shadowing = True
    linker.define_func("wasi_snapshot_preview1", "fd_pwrite", _pwrite_type(), _host_pwrite, access_caller=True)
    linker.define_func("wasi_snapshot_preview1", "fd_pread", _pwrite_type(), _host_pread, access_caller=True)
    linker.define_func("wasi_snapshot_preview1", "poll_oneoff", _poll_type(), _host_poll_oneoff, access_caller=True)
    linker.define_func(
        "wasi_snapshot_preview1", "clock_time_get", _clock_type(), _host_clock_time_get, access_caller=True
    )
    linker.define_func("wasi_snapshot_preview1", "path_symlink", _symlink_type(), _host_path_symlink)
    return linker


# -- memory access ----------------------------------------------------------------------------------


def _address(memory: wasmtime.Memory, caller: wasmtime.Caller | wasmtime.Store) -> tuple[int, int]:
    """The host address of the guest's linear memory and its size (valid until the memory grows)."""
    base = ctypes.cast(memory.data_ptr(caller), ctypes.c_void_p).value or 0
    return base, memory.data_len(caller)


def _read(base: int, size: int, ptr: int, length: int) -> bytes:
    if ptr < 0 or length < 0 or ptr + length > size:
        raise FrameError("a pointer outside guest memory")
    return ctypes.string_at(base + ptr, length)


def _write(base: int, size: int, ptr: int, data: bytes) -> None:
    if ptr < 0 or ptr + len(data) > size:
        raise FrameError("a pointer outside guest memory")
    ctypes.memmove(base + ptr, data, len(data))


def read_capture(
    memory: wasmtime.Memory, store: wasmtime.Store, addresses: tuple[int, int], cap_chars: int
) -> tuple[str, str]:
    """The text in the guest's two capture bytearrays at ``addresses`` ("", "" if unreadable).

    The guest is untrusted and may have been stopped mid-write: every field is bounds-checked and the
    bytes are decoded leniently.
    """
    texts: list[str] = []
    try:
        base, size = _address(memory, store)
        for address in addresses:
            _, _, length, allocated, _, start, _ = _BYTEARRAY.unpack(_read(base, size, address, _BYTEARRAY.size))
            if not 0 <= length <= min(allocated, cap_chars * 4):
                texts.append("")
                continue
            texts.append(_read(base, size, start, length).decode("utf-8", "replace")[:cap_chars])
    except (FrameError, struct.error, wasmtime.WasmtimeError):
        return "", ""
    return texts[0], texts[1]


# -- the shims --------------------------------------------------------------------------------------


def _host_pwrite(caller: wasmtime.Caller, fd: int, iovs: int, iovs_len: int, offset: int, nwritten: int) -> int:
    # Host callbacks must never raise: an exception here would trap the guest. Guest memory is read and
    # written through its host address (bounds checked here): this runs on every tool call.
    guest = _local.guest
    if offset not in (MAGIC_OFFSET, MAGIC_OFFSET + 1) or guest is None or guest.memory is None:
        return _ERRNO_NOTSUP
    memory = guest.memory
    reply_buffer: tuple[int, int] | None = None
    try:
        if iovs_len > _MAX_IOVS:
            raise FrameError(f"a frame in {iovs_len:,} buffers; the limit is {_MAX_IOVS:,}")
        base, size = _address(memory, caller)
        table = _read(base, size, iovs, _IOVEC.size * iovs_len)
        entries = [_IOVEC.unpack_from(table, i * _IOVEC.size) for i in range(iovs_len)]
        if offset == MAGIC_OFFSET + 1 and entries:
            reply_buffer = entries.pop()  # the guest's buffer for a reply that fits
        # Before anything is copied: the same buffer named many times would be joined many times over.
        total = sum(length for _, length in entries)
        limit = guest.frame_limit
        if total > limit:
            response = guest.on_refused(total, limit)
        elif total > guest.read_limit:
            response = guest.on_large_frame(caller, GuestFrame(base, size, entries, total))
        else:
            request = b"".join(_read(base, size, ptr, length) for ptr, length in entries)
            response = guest.on_frame(caller, request)
    except BaseException as exc:
        response = encode_frame(error_reply("bridge", f"{type(exc).__name__}: {exc}"))
    try:
        base, size = _address(memory, caller)
        if reply_buffer is not None and len(response) <= reply_buffer[1]:
            _write(base, size, reply_buffer[0], response)
            guest.pending = b""
        else:
            guest.pending = response
        _write(base, size, nwritten, _U32.pack(len(response)))
    except BaseException:
        return _ERRNO_IO
    return 0


def _host_pread(caller: wasmtime.Caller, fd: int, iovs: int, iovs_len: int, offset: int, nread: int) -> int:
    guest = _local.guest
    if offset < MAGIC_OFFSET or guest is None or guest.memory is None:
        return _ERRNO_NOTSUP
    try:
        if iovs_len > _MAX_IOVS:
            return _ERRNO_INVAL
        pending = guest.pending
        source = ctypes.cast(ctypes.c_char_p(pending), ctypes.c_void_p).value or 0
        base, size = _address(guest.memory, caller)
        table = _read(base, size, iovs, _IOVEC.size * iovs_len)
        position = offset - MAGIC_OFFSET
        total = 0
        for i in range(iovs_len):
            ptr, length = _IOVEC.unpack_from(table, i * _IOVEC.size)
            count = max(0, min(length, len(pending) - position))
            if ptr < 0 or ptr + count > size:
                return _ERRNO_INVAL
            if count:
                ctypes.memmove(base + ptr, source + position, count)  # no intermediate copies
            position += count
            total += count
        _write(base, size, nread, _U32.pack(total))
    except BaseException:
        return _ERRNO_IO
    return 0


def _host_poll_oneoff(caller: wasmtime.Caller, in_ptr: int, out_ptr: int, count: int, nevents_ptr: int) -> int:
    # Replaces WASI's poll_oneoff so that a sleeping guest wakes at its deadline: wasmtime's own
    # implementation blocks in the host, where epoch interruption cannot reach it.
    guest = _local.guest
    memory = caller.get("memory")
    if guest is None or not isinstance(memory, wasmtime.Memory) or not 0 < count <= MAX_SUBSCRIPTIONS:
        return _ERRNO_INVAL
    try:
        raw = memory.read(caller, in_ptr, in_ptr + _SUBSCRIPTION.size * count)
        subs = [_SUBSCRIPTION.unpack_from(raw, i * _SUBSCRIPTION.size) for i in range(count)]
        fds = [sub for sub in subs if sub[1] in (1, 2)]
        events: list[bytes] = []
        if fds:
            # Files are always ready; the guest has no sockets or pipes that could block.
            events = [_EVENT.pack(sub[0], 0, sub[1], 0, 0) for sub in fds]
        else:
            now = {0: time.time_ns(), 1: time.monotonic_ns()}
            waits = []
            for userdata, _tag, clock_id, timeout, _precision, flags in subs:
                absolute = bool(flags & 1)
                remaining = timeout - now.get(clock_id, now[1]) if absolute else timeout
                waits.append((max(remaining, 0), userdata))
            wait_ns, userdata = min(waits)
            if wait_ns > 0:
                if guest.timed_out:
                    return _ERRNO_TIMEDOUT
                guest.waiting = True
                try:
                    guest.wake.wait(wait_ns / 1e9)
                finally:
                    guest.waiting = False
                if guest.timed_out:  # the limit came while it slept: raise in the program, keep the session
                    return _ERRNO_TIMEDOUT
            events = [_EVENT.pack(userdata, 0, 0, 0, 0)]
        memory.write(caller, b"".join(events), out_ptr)
        memory.write(caller, _U32.pack(len(events)), nevents_ptr)
    except BaseException:
        return _ERRNO_IO
    return 0


def _host_clock_time_get(caller: wasmtime.Caller, clock_id: int, precision: int, time_ptr: int) -> int:
    # Served here so that poll_oneoff's absolute deadlines and the guest's clocks share one time base.
    guest = _local.guest
    clock = _CLOCKS.get(clock_id)
    if guest is None or guest.memory is None or clock is None:
        return _ERRNO_INVAL
    try:
        base, size = _address(guest.memory, caller)
        _write(base, size, time_ptr, _U64.pack(clock()))
    except BaseException:
        return _ERRNO_IO
    return 0


def _host_path_symlink(old_ptr: int, old_len: int, fd: int, new_ptr: int, new_len: int) -> int:
    # No symlinks in scratch: one pointing outside could not be followed by the guest, but it would sit in
    # a host directory that host code (and the user) reads and writes.
    return _ERRNO_PERM


# -- their types (a fresh FuncType per engine, as wasmtime requires) -----------------------------


def _symlink_type() -> wasmtime.FuncType:
    i32 = wasmtime.ValType.i32()
    return wasmtime.FuncType([i32, i32, i32, i32, i32], [i32])


def _poll_type() -> wasmtime.FuncType:
    i32 = wasmtime.ValType.i32()
    return wasmtime.FuncType([i32, i32, i32, i32], [i32])


def _pwrite_type() -> wasmtime.FuncType:
    # (fd, iovs, iovs_len, offset, result_ptr) -> errno; a fresh type per engine, as wasmtime requires.
    i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
    return wasmtime.FuncType([i32, i32, i32, i64, i32], [i32])


def _clock_type() -> wasmtime.FuncType:
    i32, i64 = wasmtime.ValType.i32(), wasmtime.ValType.i64()
    return wasmtime.FuncType([i32, i64, i32], [i32])
