"""The bridge's host calls against raw pointers, as a guest that had corrupted its own interpreter could pass.

Python inside the sandbox only hands the shims pointers to its own buffers. A program that broke the
interpreter's memory safety (a forged code object, say) could call ``fd_pwrite``/``fd_pread`` with any
numbers: the shims are then the last check before the host copies bytes to or from an address. Here a
small wasm module, linked exactly as python.wasm is (:func:`hostcalls.new_linker`), calls them with such
numbers; an unchecked pointer would make the host read or write outside the guest's memory (a crash, or
worse), so the answer must be an errno or an error frame, and the guest's memory stays as it was.
"""

from __future__ import annotations

import threading
import time
from collections.abc import Iterator

import pytest
import wasmtime

from codemode.executors.wasm import hostcalls
from codemode.executors.wasm.module import engine_config
from codemode.protocol import HEADER, MAGIC_OFFSET, encode_frame

PAGE = 65536
_MODULE = """
(module
  (import "wasi_snapshot_preview1" "fd_pwrite" (func $pwrite (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "fd_pread" (func $pread (param i32 i32 i32 i64 i32) (result i32)))
  (import "wasi_snapshot_preview1" "poll_oneoff" (func $poll (param i32 i32 i32 i32) (result i32)))
  (import "wasi_snapshot_preview1" "clock_time_get" (func $clock (param i32 i64 i32) (result i32)))
  (memory (export "memory") 1)
  (func (export "poll") (param i32 i32 i32 i32) (result i32)
    local.get 0 local.get 1 local.get 2 local.get 3 call $poll)
  (func (export "clock") (param i32 i64 i32) (result i32)
    local.get 0 local.get 1 local.get 2 call $clock)
  (func (export "pwrite") (param i32 i32 i32 i64 i32) (result i32)
    local.get 0 local.get 1 local.get 2 local.get 3 local.get 4 call $pwrite)
  (func (export "pread") (param i32 i32 i32 i64 i32) (result i32)
    local.get 0 local.get 1 local.get 2 local.get 3 local.get 4 call $pread))
"""


class Channel:
    """What the shims serve: the guest side of the bridge with no interpreter behind it (frames recorded)."""

    def __init__(self) -> None:
        self.memory: wasmtime.Memory | None = None
        self.pending = b""
        self.frame_limit = 1 << 20
        self.read_limit = 1 << 20
        self.wake = threading.Event()
        self.waiting = False
        self.timed_out = False
        self.frames: list[bytes] = []
        self.large: list[bytes] = []
        self.refused: list[int] = []

    def on_frame(self, caller: wasmtime.Caller, raw: bytes) -> bytes:
        self.frames.append(raw)
        return encode_frame({"ok": True})

    def on_refused(self, size: int, limit: int) -> bytes:
        self.refused.append(size)
        return encode_frame({"ok": False, "refused": size})

    def on_large_frame(self, caller: wasmtime.Caller, frame: hostcalls.GuestFrame) -> bytes:
        self.large.append(frame.read(0, frame.size))
        return encode_frame({"ok": True})


class Guest:
    def __init__(self) -> None:
        engine = wasmtime.Engine(engine_config())
        self.store = wasmtime.Store(engine)
        self.store.set_epoch_deadline(10**6)
        self.store.set_wasi(wasmtime.WasiConfig())
        instance = hostcalls.new_linker(engine).instantiate(self.store, wasmtime.Module(engine, _MODULE))
        self.exports = instance.exports(self.store)
        self.channel = Channel()
        memory = self.exports["memory"]
        assert isinstance(memory, wasmtime.Memory)
        self.channel.memory = self.memory = memory

    def call(self, name: str, *args: int) -> int:
        func = self.exports[name]
        assert isinstance(func, wasmtime.Func)
        result = func(self.store, *args)
        assert isinstance(result, int)
        return result

    def poke(self, address: int, data: bytes) -> None:
        self.memory.write(self.store, data, address)

    def snapshot(self) -> bytes:
        return bytes(self.memory.read(self.store, 0, self.memory.data_len(self.store)))


@pytest.fixture
def guest() -> Iterator[Guest]:
    made = Guest()
    hostcalls.bind(made.channel)  # type: ignore[arg-type]  # the shims' Guest protocol, served by Channel
    yield made
    hostcalls.bind(None)


def _iovecs(*entries: tuple[int, int]) -> bytes:
    return b"".join(hostcalls._IOVEC.pack(ptr, length) for ptr, length in entries)


def _pending_reply(guest: Guest, size: int) -> None:
    guest.channel.pending = encode_frame({"ok": True, "result": "r" * size})


def test_a_read_into_a_buffer_past_the_end_of_memory_is_refused(guest: Guest) -> None:
    _pending_reply(guest, 4096)
    guest.poke(0, _iovecs((PAGE - 10, 4096)))  # starts inside, ends 4 KB past the end
    before = guest.snapshot()
    assert guest.call("pread", 1, 0, 1, MAGIC_OFFSET, 64) == 28  # EINVAL
    assert guest.snapshot() == before


def test_a_read_served_whole_when_the_buffer_fits(guest: Guest) -> None:
    _pending_reply(guest, 100)
    reply = guest.channel.pending
    guest.poke(0, _iovecs((1024, len(reply))))
    assert guest.call("pread", 1, 0, 1, MAGIC_OFFSET, 64) == 0
    assert bytes(guest.memory.read(guest.store, 1024, 1024 + len(reply))) == reply
    assert int.from_bytes(guest.memory.read(guest.store, 64, 68), "little") == len(reply)


@pytest.mark.parametrize("table", [-1, PAGE - 4, PAGE])
def test_an_iovec_table_outside_memory_is_not_read(guest: Guest, table: int) -> None:
    _pending_reply(guest, 10)
    before = guest.snapshot()
    assert guest.call("pread", 1, table, 1, MAGIC_OFFSET, 64) == 29  # EIO: nothing was copied
    assert guest.snapshot() == before


@pytest.mark.parametrize("count, errno", [(1024, 0), (1025, 28)])
def test_at_most_1024_buffers_in_one_read(guest: Guest, count: int, errno: int) -> None:
    _pending_reply(guest, 10)
    guest.poke(0, _iovecs(*[(16384, 0)] * count))
    assert guest.call("pread", 1, 0, count, MAGIC_OFFSET, 12000) == errno


@pytest.mark.parametrize(
    "entries",
    [[(PAGE - 2, 8)], [(-1 & 0xFFFFFFFF, 8)], [(1024, 8), (PAGE, 1)]],
    ids=["past-the-end", "wrapped-negative", "second-buffer-outside"],
)
def test_a_frame_from_buffers_outside_memory_is_never_read(guest: Guest, entries: list[tuple[int, int]]) -> None:
    guest.poke(0, _iovecs(*entries))
    assert guest.call("pwrite", 1, 0, len(entries), MAGIC_OFFSET, 64) == 0
    assert guest.channel.frames == []  # refused before anything reached the bridge
    assert b"a pointer outside guest memory" in guest.channel.pending


@pytest.mark.parametrize("table", [-1, PAGE - 4])
def test_a_frame_whose_iovec_table_is_outside_memory_is_never_read(guest: Guest, table: int) -> None:
    assert guest.call("pwrite", 1, table, 1, MAGIC_OFFSET, 64) == 0
    assert guest.channel.frames == []
    assert b"a pointer outside guest memory" in guest.channel.pending


@pytest.mark.parametrize("nwritten", [PAGE - 2, -1], ids=["past-the-end", "wrapped-negative"])
def test_a_reply_length_written_outside_memory_is_refused(guest: Guest, nwritten: int) -> None:
    # A guest pointer over 2**31 reaches the host as a negative i32: -1 would write just before the memory.
    frame = HEADER.pack(2) + b"{}"
    guest.poke(1024, frame)
    guest.poke(0, _iovecs((1024, len(frame))))
    before = guest.snapshot()
    assert guest.call("pwrite", 1, 0, 1, MAGIC_OFFSET, nwritten) == 29  # EIO
    assert guest.snapshot() == before


def test_a_reply_length_written_at_the_end_of_memory_is_written(guest: Guest) -> None:
    frame = HEADER.pack(2) + b"{}"
    guest.poke(1024, frame)
    guest.poke(0, _iovecs((1024, len(frame))))
    assert guest.call("pwrite", 1, 0, 1, MAGIC_OFFSET, PAGE - 4) == 0
    assert int.from_bytes(guest.memory.read(guest.store, PAGE - 4, PAGE), "little") == len(guest.channel.pending)


def test_poll_answers_each_fd_subscription_under_its_own_userdata(guest: Guest) -> None:
    # An fd subscription's fd sits where a clock's id does; files are always ready.
    subs = hostcalls._SUBSCRIPTION.pack(0xABCDEF, 1, 0, 0, 0, 0) + hostcalls._SUBSCRIPTION.pack(0x1234, 2, 1, 0, 0, 0)
    guest.poke(0, subs)
    assert guest.call("poll", 0, 1024, 2, 2048) == 0
    out = bytes(guest.memory.read(guest.store, 1024, 1024 + 2 * hostcalls._EVENT.size))
    events = [hostcalls._EVENT.unpack_from(out, i * hostcalls._EVENT.size) for i in range(2)]
    # userdata, no error, the subscription's type, no byte count, and no flag: a set flag would say hang-up
    assert events == [(0xABCDEF, 0, 1, 0, 0), (0x1234, 0, 2, 0, 0)]
    assert int.from_bytes(guest.memory.read(guest.store, 2048, 2052), "little") == 2


@pytest.mark.parametrize("count, refused", [(1024, False), (1025, True)])
def test_at_most_1024_buffers_in_one_frame(guest: Guest, count: int, refused: bool) -> None:
    guest.poke(0, _iovecs(*[(16384, 0)] * count))
    assert guest.call("pwrite", 1, 0, count, MAGIC_OFFSET, 12000) == 0
    assert (b"a frame in 1,025 buffers; the limit is 1,024" in guest.channel.pending) is refused
    assert guest.channel.frames == ([] if refused else [b""])


@pytest.mark.parametrize("size, path", [(100, "whole"), (101, "large"), (200, "large"), (201, "refused")], ids=str)
def test_a_frame_is_read_whole_up_to_the_read_limit_then_left_in_memory_then_refused(
    guest: Guest, size: int, path: str
) -> None:
    # Sized before anything is copied, from two buffers (the count crosses their boundary).
    guest.channel.read_limit, guest.channel.frame_limit = 100, 200
    guest.poke(1024, bytes(range(256))[:size])
    guest.poke(0, _iovecs((1024, 60), (1084, size - 60)))
    assert guest.call("pwrite", 1, 0, 2, MAGIC_OFFSET, 64) == 0
    seen = {"whole": guest.channel.frames, "large": guest.channel.large, "refused": guest.channel.refused}
    assert {name: len(got) for name, got in seen.items()} == {name: int(name == path) for name in seen}
    if path != "refused":
        assert seen[path] == [bytes(range(256))[:size]]  # the frame's bytes, in order, across both buffers


@pytest.mark.parametrize("room, in_buffer", [(-1, False), (0, True)])
def test_a_reply_goes_to_the_guests_buffer_when_it_fits_else_waits_for_a_read(
    guest: Guest, room: int, in_buffer: bool
) -> None:
    reply = encode_frame({"ok": True})
    guest.channel.pending = b"stale"
    guest.poke(1024, HEADER.pack(2) + b"{}")
    guest.poke(0, _iovecs((1024, 6), (4096, len(reply) + room)))  # the frame, then the reply's buffer
    assert guest.call("pwrite", 1, 0, 2, MAGIC_OFFSET + 1, 64) == 0
    assert int.from_bytes(guest.memory.read(guest.store, 64, 68), "little") == len(reply)
    if in_buffer:
        assert bytes(guest.memory.read(guest.store, 4096, 4096 + len(reply))) == reply
        assert guest.channel.pending == b""
    else:
        assert guest.channel.pending == reply


def test_a_reply_is_read_from_any_offset_across_buffers(guest: Guest) -> None:
    guest.channel.pending = bytes(range(100))
    guest.poke(0, _iovecs((1024, 30), (2048, 100)))
    assert guest.call("pread", 1, 0, 2, MAGIC_OFFSET + 10, 64) == 0
    assert bytes(guest.memory.read(guest.store, 1024, 1054)) == bytes(range(10, 40))
    assert bytes(guest.memory.read(guest.store, 2048, 2108)) == bytes(range(40, 100))
    assert int.from_bytes(guest.memory.read(guest.store, 64, 68), "little") == 90


@pytest.mark.parametrize("name", ["pwrite", "pread"])
def test_a_write_or_read_at_an_ordinary_offset_is_not_a_frame(guest: Guest, name: str) -> None:
    # Below the magic offset the call is an ordinary positioned write or read, which the sandbox does not
    # offer: ENOTSUP, and nothing reaches the bridge.
    guest.poke(0, _iovecs((1024, 8)))
    before = guest.snapshot()
    assert guest.call(name, 1, 0, 1, MAGIC_OFFSET - 1, 64) == 58
    assert guest.snapshot() == before and guest.channel.frames == []


@pytest.mark.parametrize("count, errno", [(0, 28), (1024, 0), (1025, 28)])
def test_poll_takes_one_to_1024_subscriptions(guest: Guest, count: int, errno: int) -> None:
    # Clock subscriptions due now: however many there are, one event is written (the earliest).
    guest.poke(0, hostcalls._SUBSCRIPTION.pack(7, 0, 1, 0, 0, 0) * min(count, 1024))
    before = guest.snapshot()
    assert guest.call("poll", 0, 60_000, count, 60_100) == errno
    if errno:
        assert guest.snapshot() == before
    else:
        assert hostcalls._EVENT.unpack_from(bytes(guest.memory.read(guest.store, 60_000, 60_032)))[:3] == (7, 0, 0)
        assert int.from_bytes(guest.memory.read(guest.store, 60_100, 60_104), "little") == 1


def test_a_clock_read_into_memory_the_guest_does_not_have_is_refused(guest: Guest) -> None:
    before = guest.snapshot()
    assert guest.call("clock", 1, 0, PAGE - 4) == 29  # EIO: the 8 bytes would end past the memory
    assert guest.snapshot() == before
    assert guest.call("clock", 1, 0, 64) == 0
    assert int.from_bytes(guest.memory.read(guest.store, 64, 72), "little") > 0


@pytest.mark.parametrize(
    "subs_at, out_at, count_at",
    [(PAGE - 8, 1024, 2048), (0, PAGE - 8, 2048), (0, 1024, PAGE - 2)],
    ids=["subscriptions past the end", "events past the end", "event count past the end"],
)
def test_a_poll_with_memory_the_guest_does_not_have_is_refused(
    guest: Guest, subs_at: int, out_at: int, count_at: int
) -> None:
    # A clock subscription due now: the answer would be one event and its count.
    if subs_at == 0:
        guest.poke(0, hostcalls._SUBSCRIPTION.pack(7, 0, 1, 0, 0, 0))
    before = guest.snapshot()
    assert guest.call("poll", subs_at, out_at, 1, count_at) == 29  # EIO, not a trap that ends the interpreter
    if count_at != PAGE - 2:  # the event itself was written before its count was refused
        assert guest.snapshot() == before
    assert guest.call("poll", 0, 1024, 1, 2048) == 0  # the same guest goes on


@pytest.mark.parametrize("name", ["pwrite", "pread"])
@pytest.mark.parametrize("unbound", ["no guest on the thread", "a guest without its memory"])
def test_a_frame_with_no_guest_to_serve_it_is_not_supported(guest: Guest, name: str, unbound: str) -> None:
    # The shims serve the guest bound to their thread: with none (or one not booted yet), a frame is refused
    # as an ordinary write is, not answered with a trap that ends the interpreter.
    guest.poke(0, _iovecs((256, 16)))
    if unbound == "no guest on the thread":
        hostcalls.bind(None)
    else:
        guest.channel.memory = None
    before = guest.snapshot()
    assert guest.call(name, 1, 0, 1, MAGIC_OFFSET, 512) == 58  # ENOTSUP
    assert guest.snapshot() == before and guest.channel.frames == []


@pytest.mark.parametrize("clock", [0, 1])
def test_an_absolute_deadline_is_read_on_its_own_clock(guest: Guest, clock: int) -> None:
    # Realtime (0) and monotonic (1) deadlines each against their own clock: a realtime one already past, read
    # against the monotonic clock, would be decades away and the poll would wait (here: ETIMEDOUT, the limit).
    now = time.time_ns() if clock == 0 else time.monotonic_ns()
    guest.poke(0, hostcalls._SUBSCRIPTION.pack(9, 0, clock, now - 1_000_000, 0, 1))  # flags 1: absolute
    guest.channel.timed_out = True  # a wait would be refused: only a deadline already past answers at once
    assert guest.call("poll", 0, 1024, 1, 2048) == 0
    assert hostcalls._EVENT.unpack_from(bytes(guest.memory.read(guest.store, 1024, 1056)))[:3] == (9, 0, 0)


def _bytearray(guest: Guest, at: int, text: bytes, *, allocated: int | None = None) -> None:
    start = at + hostcalls._BYTEARRAY.size
    size = len(text) if allocated is None else allocated
    guest.poke(at, hostcalls._BYTEARRAY.pack(1, 0, len(text), size, start, start, 0) + text)


def test_a_corrupt_capture_buffer_costs_only_its_own_text(guest: Guest) -> None:
    # The guest may have been stopped mid-write, or have written its own headers: one unreadable buffer gives
    # "" for itself, the other is still read.
    _bytearray(guest, 4096, b"partial stdout", allocated=4)  # a length past what it allocated
    _bytearray(guest, 8192, b"the stderr")
    assert hostcalls.read_capture(guest.memory, guest.store, (4096, 8192), 100) == ("", "the stderr")
    _bytearray(guest, 4096, b"out")
    assert hostcalls.read_capture(guest.memory, guest.store, (4096, 8192), 100) == ("out", "the stderr")
    guest.poke(4096, hostcalls._BYTEARRAY.pack(1, 0, -1, 16, 4096, 4096, 0))  # a negative length
    assert hostcalls.read_capture(guest.memory, guest.store, (4096, 8192), 100) == ("", "the stderr")


@pytest.mark.parametrize("addresses", [(PAGE - 8, 8192), (8192, -1)], ids=["header-past-the-end", "negative"])
def test_capture_buffers_outside_memory_are_not_read(guest: Guest, addresses: tuple[int, int]) -> None:
    # Read after a trap, from addresses the guest named at boot: an answer, never an exception in the
    # host's cleanup of the run.
    _bytearray(guest, 8192, b"the stderr")
    assert hostcalls.read_capture(guest.memory, guest.store, addresses, 100) == ("", "")


def test_each_wasi_clock_reads_its_own_host_clock(guest: Guest) -> None:
    # Realtime is the epoch's (time.time() in a program), monotonic the host's monotonic clock.
    before = time.time_ns(), time.monotonic_ns()
    assert guest.call("clock", 0, 0, 64) == 0 and guest.call("clock", 1, 0, 72) == 0
    after = time.time_ns(), time.monotonic_ns()
    realtime, monotonic = (int.from_bytes(guest.memory.read(guest.store, at, at + 8), "little") for at in (64, 72))
    assert before[0] <= realtime <= after[0] and before[1] <= monotonic <= after[1]
    assert guest.call("clock", 4, 0, 80) == 28  # no such clock: EINVAL
    for clock in (2, 3):  # process and thread CPU time (this test's thread is the guest's)
        assert guest.call("clock", clock, 0, 88) == 0, clock
        assert 0 < int.from_bytes(guest.memory.read(guest.store, 88, 96), "little") <= time.thread_time_ns()


def test_a_frame_ending_exactly_at_the_end_of_memory_is_read(guest: Guest) -> None:
    # The bound is the memory's last byte, not one before it: a buffer that ends there is the guest's own.
    guest.poke(PAGE - 8, b"lastbyte")
    guest.poke(0, _iovecs((PAGE - 8, 8)))
    assert guest.call("pwrite", 1, 0, 1, MAGIC_OFFSET, 64) == 0
    assert guest.channel.frames == [b"lastbyte"]


def test_a_reply_read_into_a_buffer_ending_exactly_at_the_end_of_memory_is_filled(guest: Guest) -> None:
    # The reply's bound is the memory's last byte too: a buffer that ends there gets the whole reply.
    guest.channel.pending = b"the reply"
    guest.poke(0, _iovecs((PAGE - 9, 9)))
    assert guest.call("pread", 1, 0, 1, MAGIC_OFFSET, 64) == 0
    assert bytes(guest.memory.read(guest.store, PAGE - 9, PAGE)) == b"the reply"
    assert int.from_bytes(guest.memory.read(guest.store, 64, 68), "little") == 9


def test_a_poll_with_no_guest_bound_is_refused(guest: Guest) -> None:
    # A poll serves the guest bound to its thread (its deadline, its wake): with none, even a subscription
    # due now is refused (EINVAL), not answered as though some guest's clock allowed it.
    guest.poke(0, hostcalls._SUBSCRIPTION.pack(7, 0, 1, 0, 0, 0))
    hostcalls.bind(None)
    before = guest.snapshot()
    assert guest.call("poll", 0, 1024, 1, 2048) == 28
    assert guest.snapshot() == before


def test_a_capture_buffer_longer_than_its_cap_could_need_is_not_read(guest: Guest) -> None:
    # A character is at most 4 bytes of UTF-8: a buffer longer than 4 bytes per character of the cap is not
    # the program's output as the runtime keeps it, and the host does not read it (nor copy it) at all.
    _bytearray(guest, 8192, b"the stderr")
    _bytearray(guest, 4096, b"y" * 400)
    assert hostcalls.read_capture(guest.memory, guest.store, (4096, 8192), 100) == ("y" * 100, "the stderr")
    _bytearray(guest, 4096, b"y" * 401)
    assert hostcalls.read_capture(guest.memory, guest.store, (4096, 8192), 100) == ("", "the stderr")


@pytest.mark.parametrize("unbound", ["no guest on the thread", "a guest without its memory"])
def test_a_clock_read_with_no_guest_to_serve_it_is_refused(guest: Guest, unbound: str) -> None:
    # As for a frame: the clock writes into the memory of the guest bound to its thread; with none (or one not
    # booted yet) the answer is EINVAL, not an exception in the host call (a trap that ends the interpreter).
    if unbound == "no guest on the thread":
        hostcalls.bind(None)
    else:
        guest.channel.memory = None
    before = guest.snapshot()
    assert guest.call("clock", 1, 0, 64) == 28
    assert guest.snapshot() == before


def test_an_absolute_deadline_on_another_clock_is_read_on_the_monotonic_clock(guest: Guest) -> None:
    # The CPU-time clocks have no deadline of their own here: an absolute one is read against the monotonic
    # clock, so a deadline 5 s ahead is a wait (refused here: ETIMEDOUT), not one decades past on the epoch's.
    guest.poke(0, hostcalls._SUBSCRIPTION.pack(9, 0, 2, time.monotonic_ns() + 5_000_000_000, 0, 1))
    guest.channel.timed_out = True
    assert guest.call("poll", 0, 1024, 1, 2048) == 73
