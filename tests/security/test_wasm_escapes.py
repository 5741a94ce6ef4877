"""Escape attempts against the WASM executor: the filesystem, processes, the network and native code.

Each test runs an attack inside the sandbox, asserts the specific way it is contained, then checks that
the same executor still runs code and reaches a real tool (``assert_healthy``). The autouse fixture in
``conftest.py`` checks that no interpreter thread or child process outlives the test.
"""

from __future__ import annotations

import socket
import threading
import uuid
from pathlib import Path

import pytest

from codemode.executors import Executor, Limits
from tests.conftest import REPO, Sandbox
from tests.security.helpers import (
    ATTACK,
    assert_error,
    assert_healthy,
    child_processes,
    instance_threads,
    run,
    run_value,
)

pytestmark = pytest.mark.anyio

PROBE = """
import os
def probe(fn):
    try:
        return ['ok', repr(fn())[:300]]
    except BaseException as exc:
        return [type(exc).__name__, str(exc)[:300]]
"""
"""Defines ``probe(fn)`` in the session: ``['ok', repr]`` when ``fn`` worked, else ``[exception type, message]``."""


async def probe(ex: Executor, expr: str, *, session: str = ATTACK) -> list[str]:
    """Evaluate ``expr`` in the sandbox and say how it ended (``['ok', ...]`` or ``[error type, message]``)."""
    value = await run_value(ex, PROBE + f"probe(lambda: {expr})", session=session)
    assert isinstance(value, list) and len(value) == 2
    return [str(value[0]), str(value[1])]


# -- filesystem: reading the host --------------------------------------------------------------


async def test_host_system_files_are_not_visible(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        for path in ("/etc/passwd", "/etc/shadow", "/proc/self/environ", "/proc/self/maps", "/root/.ssh/id_rsa",
                     "/dev/mem"):  # fmt: skip
            assert await probe(ex, f"open({path!r}, 'rb').read()") == [
                "FileNotFoundError",
                f"[Errno 44] No such file or directory: {path!r}",
            ]
            assert (await probe(ex, f"os.path.exists({path!r})"))[1] == "False"
        await assert_healthy(ex)


async def test_the_repository_is_not_visible_at_its_host_path(demo_sandbox: Sandbox) -> None:
    conftest = str(REPO / "tests" / "conftest.py")
    stubs = str(demo_sandbox.stubs_dir / "__init__.py")  # mounted at /stubs, but never at its host path
    async with demo_sandbox.executor() as ex:
        for path in (conftest, stubs, str(REPO), str(Path.home()), "/tmp"):
            outcome = await probe(ex, f"open({path!r}, 'rb').read()")
            assert outcome[0] in ("FileNotFoundError", "IsADirectoryError"), (path, outcome)
            assert (await probe(ex, f"os.listdir({path!r})"))[0] == "FileNotFoundError", path
        await assert_healthy(ex)


async def test_root_shows_nothing_but_the_mounts(demo_sandbox: Sandbox) -> None:
    # WASI has no "/" of its own: listing it fails; each mount is reachable by name only.
    async with demo_sandbox.executor() as ex:
        listed = await run(ex, "import os\nos.listdir('/')")
        if listed.ok:  # the guest's value comes back as data: never evaluated on the host
            assert isinstance(listed.value, list) and set(listed.value) <= {"runtime", "stubs", "skills", "scratch"}
        else:
            assert listed.error is not None and listed.error.type == "FileNotFoundError", listed.error
        visible = await run_value(
            ex,
            "import os\nsorted(p for p in ('/runtime', '/stubs', '/skills', '/scratch', '/usr') if os.path.isdir(p))",
        )
        assert visible == ["/runtime", "/scratch", "/skills", "/stubs", "/usr"]  # /usr: the stdlib in the binary
        assert await run_value(ex, "import os\nos.listdir('/runtime')") == ["codemode_runtime"]
        await assert_healthy(ex)


DOTDOT = [
    "/scratch/../../etc/passwd",
    "/scratch/..",
    "/runtime/../..",
    "/stubs/../scratch/../../etc/passwd",
    "/scratch/./../../../../../../../../etc/passwd",
]


async def test_dotdot_out_of_a_mount_is_refused(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        for path in DOTDOT:
            outcome = await probe(ex, f"os.listdir({path!r}) if os.path.isdir({path!r}) else open({path!r}).read()")
            assert outcome[0] in ("PermissionError", "FileNotFoundError"), (path, outcome)
            assert "root:" not in outcome[1]
        await assert_healthy(ex)


async def test_relative_dotdot_from_the_scratch_cwd_is_refused(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        assert await run_value(ex, "import os\nos.getcwd()") == "/scratch"
        assert await probe(ex, "open('../../../etc/passwd').read()") == [
            "PermissionError",
            "[Errno 63] Operation not permitted: '../../../etc/passwd'",
        ]
        assert (await probe(ex, "os.chdir('..') or os.listdir('.')"))[0] in ("PermissionError", "FileNotFoundError")
        await assert_healthy(ex)


# -- filesystem: writing -----------------------------------------------------------------------


READ_ONLY_WRITES = [
    "open('/stubs/__init__.py', 'w').write('raise SystemExit')",
    "open('/stubs/evil.py', 'w').write('x')",
    "open('/skills/evil.py', 'w').write('x')",
    "open('/runtime/codemode_runtime/__init__.py', 'a').write('x')",
    "open('/runtime/sitecustomize.py', 'w').write('x')",
    "os.remove('/stubs/__init__.py')",
    "os.rename('/stubs/__init__.py', '/scratch/moved.py')",
    "os.mkdir('/stubs/pkg')",
    "os.truncate('/runtime/codemode_runtime/transport.py', 0)",
    "os.utime('/stubs/__init__.py', (0, 0))",
    "os.open('/stubs/__init__.py', os.O_RDWR | os.O_CREAT | os.O_TRUNC)",
    "os.open('/runtime', os.O_WRONLY | os.O_DIRECTORY)",
]


async def test_read_only_mounts_refuse_every_write(demo_sandbox: Sandbox) -> None:
    before = (demo_sandbox.stubs_dir / "__init__.py").read_bytes()
    runtime = (REPO / "sandbox" / "codemode_runtime" / "transport.py").read_bytes()
    async with demo_sandbox.executor() as ex:
        for expr in READ_ONLY_WRITES:
            assert (await probe(ex, expr))[0] == "PermissionError", expr
        await assert_healthy(ex)
    assert (demo_sandbox.stubs_dir / "__init__.py").read_bytes() == before
    assert (REPO / "sandbox" / "codemode_runtime" / "transport.py").read_bytes() == runtime
    assert not (demo_sandbox.stubs_dir / "evil.py").exists() and not (demo_sandbox.root / "skills" / "evil.py").exists()


async def test_writes_outside_scratch_are_refused(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        for path in ("/tmp/x", "/x", "/scratch/../x", "../outside", "/usr/local/lib/x.py"):
            outcome = await probe(ex, f"open({path!r}, 'w').write('x')")
            assert outcome[0] in ("PermissionError", "FileNotFoundError", "OSError"), (path, outcome)
        await assert_healthy(ex)
    assert not (demo_sandbox.root / "x").exists() and not (demo_sandbox.root / "scratch-wasm" / "outside").exists()


async def test_scratch_is_writable_and_private_to_its_session(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor(pool_size=2) as ex:
        await run_value(ex, "open('/scratch/mine.txt', 'w').write('A')\nimport os\nos.listdir('/scratch')")
        other = await run_value(ex, "import os\nos.listdir('/scratch')", session="other")
        assert "mine.txt" not in other
        await assert_healthy(ex)


async def test_absolute_symlink_out_of_scratch_cannot_be_created(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        assert (await probe(ex, "os.symlink('/etc/passwd', '/scratch/l')"))[0] == "PermissionError"
        assert (await probe(ex, "os.symlink('/stubs/__init__.py', '/scratch/l')"))[0] == "PermissionError"
        assert (await probe(ex, "open('/scratch/l').read()"))[0] == "FileNotFoundError"
        await assert_healthy(ex)


async def test_relative_symlink_out_of_scratch_cannot_be_followed(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        created = await probe(ex, "os.symlink('../' * 30 + 'etc/passwd', '/scratch/up')")
        assert created[0] in ("ok", "PermissionError"), created  # refused outright, or made but unusable
        expected = "PermissionError" if created[0] == "ok" else "FileNotFoundError"
        assert (await probe(ex, "open('/scratch/up').read()"))[0] == expected
        assert (await probe(ex, "os.open('/scratch/up', os.O_RDONLY | os.O_NOFOLLOW)"))[0] in (
            "PermissionError",
            "FileNotFoundError",
            "OSError",
        )
        assert (await probe(ex, "os.listdir('/scratch/up/..')"))[0] in (
            "PermissionError",
            "NotADirectoryError",
            "FileNotFoundError",
        )
        await assert_healthy(ex)


async def test_guest_cannot_plant_a_symlink_that_resolves_outside_scratch_on_the_host(demo_sandbox: Sandbox) -> None:
    # wasmtime refuses absolute symlink targets but would create relative ones that climb out of the
    # preopen; the guest could not follow them, but the host would (a user's shell, any host-side write
    # under scratch). The sandbox refuses symlink creation in scratch altogether.
    session = f"plant-{uuid.uuid4().hex[:6]}"
    async with demo_sandbox.executor() as ex:
        await run(ex, "import os\nos.symlink('../' * 30 + 'etc', '/scratch/etc')", session=session)
        await assert_healthy(ex, (session,))
        planted = demo_sandbox.root / "scratch-wasm" / session / "etc"
        escapes = planted.is_symlink() and not planted.resolve().is_relative_to(planted.parent.resolve())
        assert not escapes, f"the guest planted {planted} -> {planted.resolve()} on the host"


async def test_symlink_planted_on_the_host_side_is_not_followed(demo_sandbox: Sandbox) -> None:
    secret = demo_sandbox.root / "host-secret.txt"
    secret.write_text("HOST-ONLY-CONTENT")
    session = f"planted-{uuid.uuid4().hex[:6]}"
    scratch = demo_sandbox.root / "scratch-wasm" / session
    scratch.mkdir(parents=True)
    (scratch / "abs").symlink_to(secret)
    (scratch / "rel").symlink_to(Path("..") / ".." / "host-secret.txt")
    (scratch / "dir").symlink_to(demo_sandbox.root)
    (scratch / "home").symlink_to(Path.home())
    async with demo_sandbox.executor() as ex:
        names = await run_value(ex, "import os\nsorted(os.listdir('/scratch'))", session=session)
        assert names == ["abs", "dir", "home", "rel"]  # the links were adopted with the scratch dir...
        for name in ("abs", "rel"):
            outcome = await probe(ex, f"open('/scratch/{name}').read()", session=session)
            assert outcome[0] == "PermissionError" and "HOST-ONLY" not in outcome[1], outcome
        for name in ("dir", "home"):
            outcome = await probe(ex, f"os.listdir('/scratch/{name}')", session=session)
            assert outcome[0] == "PermissionError", outcome
            outcome = await probe(ex, f"open('/scratch/{name}/host-secret.txt').read()", session=session)
            assert outcome[0] == "PermissionError", outcome
        await assert_healthy(ex, (session, "health-check"))


async def test_hard_links_cannot_reach_outside_scratch(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        assert (await probe(ex, "os.link('/stubs/__init__.py', '/scratch/h')"))[0] == "PermissionError"
        assert (await probe(ex, "os.link('/etc/passwd', '/scratch/h')"))[0] == "FileNotFoundError"
        assert (await probe(ex, "os.link('/scratch/../../x', '/scratch/h')"))[0] == "PermissionError"
        assert (await probe(ex, "os.link('/scratch/h', '/stubs/h')"))[0] in ("PermissionError", "FileNotFoundError")
        await assert_healthy(ex)


async def test_chmod_and_chown_change_nothing_on_the_host(demo_sandbox: Sandbox) -> None:
    target = demo_sandbox.stubs_dir / "__init__.py"
    mode = target.stat().st_mode
    async with demo_sandbox.executor() as ex:
        await probe(ex, "os.chmod('/stubs/__init__.py', 0o777)")  # a no-op under WASI
        assert (await probe(ex, "os.chown('/stubs/__init__.py', 0, 0)"))[0] == "AttributeError"
        assert (await probe(ex, "open('/stubs/__init__.py', 'a').write('x')"))[0] == "PermissionError"
        await assert_healthy(ex)
    assert target.stat().st_mode == mode


async def test_very_long_and_very_deep_paths_fail_cleanly(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        assert (await probe(ex, "open('/scratch/' + 'a' * 100_000, 'w')"))[0] == "OSError"
        assert (await probe(ex, "open('/scratch/' + '../' * 50_000 + 'etc/passwd')"))[0] in (
            "PermissionError",
            "OSError",
        )
        deep = await probe(ex, "os.makedirs('/scratch/' + '/'.join(['d'] * 3000))")
        assert deep[0] in ("RecursionError", "OSError"), deep
        await assert_healthy(ex)


async def test_raw_descriptors_give_nothing_beyond_the_mounts(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        fds = await run_value(
            ex,
            "import os\nfds = []\nfor fd in range(64):\n    try:\n        os.fstat(fd)\n        fds.append(fd)\n"
            "    except OSError:\n        pass\nfds",
        )
        assert fds == [0, 1, 2, 3, 4, 5, 6, 7], fds  # stdio, the four preopens and /usr (inside the binary)
        usr = await run_value(ex, "import os\n[os.fstat(7).st_dev, os.fstat(7).st_ino == os.stat('/usr').st_ino]")
        assert usr == [0, True]  # device 0: wasmtime's in-memory directory, not a host one
        assert (await probe(ex, "os.pwrite(os.open('/scratch/f', os.O_RDWR | os.O_CREAT), b'x', 0)"))[0] == "OSError"
        await assert_healthy(ex)


# -- processes ---------------------------------------------------------------------------------


PROCESS_ATTEMPTS = [
    ("os.system('id')", "AttributeError"),
    ("__import__('subprocess').run(['id'])", "OSError"),
    ("__import__('subprocess').Popen('id', shell=True)", "OSError"),
    ("os.popen('id').read()", "OSError"),
    ("os.fork()", "AttributeError"),
    ("os.execv('/bin/sh', ['sh'])", "AttributeError"),
    ("os.execvp('sh', ['sh'])", "NameError"),
    ("os.posix_spawn('/bin/sh', ['sh'], {})", "AttributeError"),
    ("os.kill(1, 9)", "AttributeError"),
    ("__import__('signal').alarm(1)", "AttributeError"),
    ("__import__('_posixsubprocess')", "ModuleNotFoundError"),
    ("__import__('multiprocessing').Process(target=print).start()", "ModuleNotFoundError"),
    ("__import__('pty').spawn('sh')", "ModuleNotFoundError"),
]


async def test_no_processes(demo_sandbox: Sandbox) -> None:
    children = child_processes()
    async with demo_sandbox.executor() as ex:
        for expr, error in PROCESS_ATTEMPTS:
            assert (await probe(ex, expr))[0] == error, expr
        await assert_healthy(ex)
    assert child_processes() <= children


async def test_signals_stay_inside_the_guest(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        await probe(ex, "__import__('signal').signal(2, lambda *a: None)")
        killed = await run(ex, "import signal\nsignal.raise_signal(9)")  # SIGKILL to itself: only the guest dies
        assert_error(killed, "SandboxCrashed", "the interpreter aborted")
        assert killed.instance_lost
        await assert_healthy(ex)


async def test_no_threads_and_no_host_threads(demo_sandbox: Sandbox) -> None:
    helper_threads = {"codemode-wasm-alarm", "AnyIO worker thread"}
    before = [t.name for t in threading.enumerate() if t.name not in helper_threads]
    async with demo_sandbox.executor() as ex:
        started = await run_value(
            ex,
            "import threading\nn = 0\nerr = None\nfor i in range(1000):\n    try:\n"
            "        threading.Thread(target=lambda: None).start()\n        n += 1\n"
            "    except RuntimeError as e:\n        err = str(e)\n        break\n[n, err]",
        )
        assert started == [0, "can't start new thread"]
        assert (await probe(ex, "__import__('_thread').start_new_thread(print, ())"))[0] == "RuntimeError"
        assert len(instance_threads()) <= 2  # the session's interpreter and the pool's spare
        await assert_healthy(ex)
    after = [t.name for t in threading.enumerate() if t.name not in helper_threads]
    assert len(after) <= len(before), (before, after)


# -- network -----------------------------------------------------------------------------------


async def test_no_connection_reaches_a_host_listener(demo_sandbox: Sandbox) -> None:
    listener = socket.socket(socket.AF_INET, socket.SOCK_STREAM)
    listener.bind(("127.0.0.1", 0))
    listener.listen(8)
    listener.setblocking(False)
    port = listener.getsockname()[1]
    try:
        async with demo_sandbox.executor() as ex:
            attempts = [
                f"__import__('socket').create_connection(('127.0.0.1', {port}), timeout=1)",
                f"__import__('socket').socket().connect(('127.0.0.1', {port}))",
                f"__import__('urllib.request').request.urlopen('http://127.0.0.1:{port}/', timeout=1)",
                f"__import__('http.client').client.HTTPConnection('127.0.0.1', {port}, timeout=1).request('GET', '/')",
            ]
            for expr in attempts:
                outcome = await probe(ex, expr)
                assert outcome[0] in ("OSError", "AttributeError", "URLError"), (expr, outcome)
            await assert_healthy(ex)
        with pytest.raises(BlockingIOError):
            listener.accept()
    finally:
        listener.close()


NETWORK_ATTEMPTS = [
    ("__import__('socket').socket()", "OSError"),
    ("__import__('socket').socket(2, 2).sendto(b'x', ('8.8.8.8', 53))", "OSError"),
    ("__import__('socket').getaddrinfo('example.com', 80)", "AttributeError"),
    ("__import__('socket').gethostbyname('localhost')", "AttributeError"),
    ("__import__('socket').socketpair()", "OSError"),
    ("__import__('ssl')", "ModuleNotFoundError"),
    ("__import__('asyncio').run(__import__('asyncio').open_connection('127.0.0.1', 80))", "OSError"),
]


async def test_no_sockets_dns_or_tls(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        for expr, error in NETWORK_ATTEMPTS:
            assert (await probe(ex, expr))[0] == error, expr
        await assert_healthy(ex)


async def test_cannot_bind_or_listen(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        outcome = await probe(ex, "(lambda s: (s.bind(('0.0.0.0', 8765)), s.listen(1)))(__import__('socket').socket())")
        assert outcome[0] == "OSError"
        await assert_healthy(ex)
    with socket.create_server(("127.0.0.1", 8765)) as probe_server:  # the port is still free on the host
        assert probe_server.getsockname()[1] == 8765


# -- native code and introspection ---------------------------------------------------------------


HOST_MODULES = ["ctypes", "_ctypes", "cffi", "fcntl", "mmap", "resource", "pwd", "grp", "termios", "_posixsubprocess",
     "codemode", "codemode.bridge", "wasmtime", "mcp", "pydantic", "anyio", "readline", "_multiprocessing"]  # fmt: skip


async def test_host_and_native_modules_are_absent(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        for module in HOST_MODULES:
            assert (await probe(ex, f"__import__({module!r})"))[0] == "ModuleNotFoundError", module
        await assert_healthy(ex)


async def test_sys_path_and_sys_modules_tricks_find_no_host_code(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        value = await run_value(
            ex,
            "import sys, importlib\n"
            f"sys.path[:0] = [{str(REPO / 'src')!r}, {str(REPO / '.venv')!r}, '/scratch/..', '/']\n"
            "importlib.invalidate_caches()\n"
            "try:\n    import codemode\n    found = codemode.__file__\nexcept ImportError as e:\n    found = repr(e)\n"
            "sys.modules['os'] = None\n"
            "try:\n    import os\n    os_ok = True\nexcept ImportError:\n    os_ok = False\n"
            "del sys.modules['os']\nimport os\n"
            "[found, os_ok, sorted(m for m in sys.modules if m.startswith(('codemode.', 'wasmtime')))]",
        )
        assert value == ["ModuleNotFoundError(\"No module named 'codemode'\")", False, []]
        await assert_healthy(ex)


async def test_subclasses_walk_finds_nothing_that_escapes(demo_sandbox: Sandbox) -> None:
    code = (
        "import os\n"
        "def walk(cls, seen):\n"
        "    for sub in type.__subclasses__(cls):\n"
        "        if sub not in seen:\n            seen.add(sub)\n            walk(sub, seen)\n"
        "    return seen\n"
        "classes = walk(object, set())\n"
        "names = {c.__module__ + '.' + c.__qualname__ for c in classes}\n"
        "escaped = []\n"
        "for c in classes:\n"
        "    init = getattr(c, '__init__', None)\n"
        "    g = getattr(init, '__globals__', None) or {}\n"
        "    for name in ('system', 'popen', 'fork', 'execv', 'spawnv'):\n"
        "        fn = g.get(name) if isinstance(g, dict) else None\n"
        "        if callable(fn):\n"
        "            try:\n                fn('id')\n                escaped.append((c.__qualname__, name))\n"
        "            except BaseException:\n                pass\n"
        "keys = ('ctypes', 'cffi', 'wasmtime', 'codemode.')\n"
        "danger = sorted(n for n in names if any(k in n.lower() for k in keys))\n"
        "[len(classes) > 100, escaped, danger]"
    )
    async with demo_sandbox.executor() as ex:
        assert await run_value(ex, code) == [True, [], []]
        await assert_healthy(ex)


async def test_gc_objects_hold_no_host_paths_or_host_objects(demo_sandbox: Sandbox) -> None:
    host_markers = [str(REPO), str(demo_sandbox.root), str(Path.home())]
    code = (
        "import gc, sys\n"
        f"markers = [m[::-1] for m in {[m[::-1] for m in host_markers]!r}]\n"
        "hits = set()\n"
        "def scan(s):\n"
        "    for m in markers:\n"
        "        if m in s:\n            hits.add(m)\n"
        "for o in gc.get_objects():\n"
        "    if o is markers or o is hits:\n        continue\n"
        "    if isinstance(o, dict):\n        items = list(o.keys()) + list(o.values())\n"
        "    elif isinstance(o, (list, tuple, set, frozenset)):\n        items = list(o)\n"
        "    else:\n        items = []\n"
        "    for x in items:\n"
        "        if isinstance(x, str):\n            scan(x)\n"
        "        elif isinstance(x, bytes):\n            scan(x.decode('latin-1'))\n"
        "mods = sorted({type(o).__module__ for o in gc.get_objects()} & {'wasmtime', 'codemode', 'anyio'})\n"
        "[sorted(hits), mods]"
    )
    async with demo_sandbox.executor() as ex:
        assert await run_value(ex, code) == [[], []]
        await assert_healthy(ex)


async def test_frames_reach_only_the_guest_runtime(demo_sandbox: Sandbox) -> None:
    code = (
        "import sys\n"
        "frames = []\nf = sys._getframe(0)\n"
        "while f is not None:\n    frames.append(f.f_code.co_filename)\n    f = f.f_back\n"
        "g = sys._getframe(1).f_globals\n"
        "[frames, g.get('__name__'), g.get('__file__'), 'transport' in g]"
    )
    async with demo_sandbox.executor() as ex:
        frames, name, file, has_transport = await run_value(ex, code)
        assert name == "codemode_runtime.repl" and file == "/runtime/codemode_runtime/repl.py" and has_transport
        assert all(f.startswith(("<", "/runtime/")) for f in frames), frames
        # Owning the runtime's globals gives the bridge the guest already has, and nothing more.
        outcome = await probe(ex, "__import__('sys')._getframe(1).f_globals['os'].listdir('/etc')")
        assert outcome[0] in ("FileNotFoundError", "KeyError"), outcome
        await assert_healthy(ex)


async def test_patching_the_runtime_in_memory_affects_only_that_session(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor(pool_size=2) as ex:
        await run_value(
            ex,
            "import codemode_runtime, statistics\n"
            "codemode_runtime.call = lambda *a, **k: 'hijacked'\n"
            "import stubs.notes as n\nn.list_tags = lambda: 'hijacked'\n"
            "statistics.mean = lambda *a, **k: 'hijacked'\n0",
        )
        assert await run_value(ex, "from stubs import notes\nnotes.list_tags()") == "hijacked"
        other = await run_value(ex, "from stubs import notes\nnotes.list_tags()", session="victim")
        assert isinstance(other, dict) and other
        assert await run_value(ex, "import statistics\nstatistics.mean([1, 3])", session="victim") == 2
        assert (REPO / "sandbox" / "codemode_runtime" / "__init__.py").read_text().count("hijacked") == 0
        await assert_healthy(ex, ("victim", "health-check"))


async def test_test_capi_crashes_only_lose_the_instance(demo_sandbox: Sandbox) -> None:
    # Surprising: _testcapi and _testinternalcapi are compiled into the interpreter.
    async with demo_sandbox.executor() as ex:
        for code in ("import _testcapi\n_testcapi.fatal_error(b'boom')", "import os\nos.abort()",
                     "import faulthandler\nfaulthandler._sigsegv()"):  # fmt: skip
            result = await run(ex, code)
            assert_error(result, "SandboxCrashed", "the interpreter aborted")
            assert result.instance_lost
        await assert_healthy(ex)


async def test_exit_only_ends_the_guest(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor() as ex:
        assert_error(await run(ex, "import sys\nsys.exit(3)"), "SystemExit", "3")
        result = await run(ex, "import os\nos._exit(7)")
        assert_error(result, "SandboxExited", "exit status 7")
        assert result.instance_lost
        await assert_healthy(ex)


async def test_limits_argument_has_no_effect_on_the_next_session(demo_sandbox: Sandbox) -> None:
    # A guard for the other tests: a tiny limit on one run must not stick to the executor.
    async with demo_sandbox.executor() as ex:
        assert_error(await run(ex, "while True: pass", limits=Limits(wall_s=0.5)), "SandboxTimeout")
        assert await run_value(ex, "sum(range(10**6))") == sum(range(10**6))
        await assert_healthy(ex)


async def test_sessions_cannot_see_each_others_scratch(demo_sandbox: Sandbox) -> None:
    async with demo_sandbox.executor(pool_size=2) as ex:
        await run(ex, "open('/scratch/mine.txt', 'w').write('alice only')", session="alice")
        code = (
            "import os\n"
            "def peek(path):\n"
            "    try:\n"
            "        return open(path).read()\n"
            "    except OSError as exc:\n"
            "        return type(exc).__name__\n"
            "[peek('/scratch/mine.txt'), peek('/scratch/../alice/mine.txt'), peek('../alice/mine.txt'),\n"
            " sorted(os.listdir('/scratch'))]"
        )
        seen = await run_value(ex, code, session="bob")
        assert "alice only" not in str(seen), seen
        assert seen[-1] == []
        assert await run_value(ex, "open('/scratch/mine.txt').read()", session="alice") == "alice only"
        await assert_healthy(ex, ("alice", "bob"))
