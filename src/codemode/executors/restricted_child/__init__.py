"""The RestrictedPython child process: one session's interpreter for :mod:`codemode.executors.restricted`.

The host starts ``python -I restricted_child/__main__.py RUNTIME_DIR STUBS_DIR SKILLS_DIR MEMORY_BYTES``
with a minimal environment and the session's scratch directory as its working directory. The child
imports only the stdlib, RestrictedPython and the guest runtime (``codemode_runtime``), so it is run by
path rather than with ``-m``: importing the ``codemode`` package would pull in the MCP client stack
(~0.5 s and ~60 MB of address space per child) for nothing. ``__main__.py`` registers this directory as
the package ``restricted_child`` (nothing is put on ``sys.path``), so the modules here import each other
relatively and import nothing from ``codemode``:

* :mod:`.limits`: the child's resource limits (``setrlimit``);
* :mod:`.seccomp`: no ``execve``/``execveat`` for the child (``prctl`` and a seccomp BPF filter);
* :mod:`.guards`: what user code is handed: the attribute, item, write and import guards, ``type``,
  ``print``, and the list of importable modules;
* :mod:`.modules`: the trimmed copies of stdlib modules with escape hatches, and the ``copy`` guard;
* :mod:`.transformer`: RestrictedPython's compiler with codemode's additions (``compile_user``);
* :mod:`.namespace`: the restricted ``__builtins__`` and module globals;
* :mod:`.skills`: the finder that imports saved skills as restricted code;
* :mod:`.main`: the session: set-up in a fixed order (see its docstring), then ``repl.serve``.

The guards are RestrictedPython's (compile-time: no ``_``-prefixed names or attributes, no
exec/eval; run-time: ``_getattr_``, ``_write_`` ...) plus what these modules add: a whitelist ``__import__``
that hands out trimmed copies of modules with escape hatches (``operator.attrgetter``,
``string.Formatter``, ``typing.get_type_hints``, ``functools.singledispatch``; ``enum.global_enum`` and
``functools.update_wrapper``/``wraps``, which write attributes or module dicts by caller-chosen names, are
dropped or wrapped, in every whitelisted module that re-exports them), an attribute guard that
never returns a non-whitelisted module, frame, code object or metaclass, a ``type`` that cannot build
classes (use ``class``), a ``dataclass`` that checks field names (its generated ``__init__`` is ``exec``'d
source), a ``copy`` that refuses user-defined ``__reduce__`` (it would be an unguarded ``setattr``), and
restricted compilation for skills. The builtins the guards call are pinned into their modules' globals,
so rebinding ``builtins.isinstance`` could not change them. :mod:`.seccomp` denies ``execve`` to the child
(``no_new_privs`` and a seccomp filter) where the kernel allows it. Every module lives in this one
directory, which the session hides from tracebacks (``repl.HIDDEN_FRAME_DIRS``): keep it flat.
"""
