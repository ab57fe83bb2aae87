"""What a task may be bound to: every shape of `fn`, checked by `validate` (from the source, without
importing), `validate --check-imports` (importing) and `run` (importing, before any process starts)."""

from __future__ import annotations

import sys

import pytest

SHAPES = """
import functools
import pathlib
from os.path import join as joined

pathlib.Path("imported.txt").write_text("the module ran")
count = len


def ok():
    return 1


class Model:
    def predict(self):
        return 1

    @staticmethod
    def static():
        return 1

    @classmethod
    def build(cls):
        return cls.__name__


def numbers():
    yield 1


partial_ok = functools.partial(ok)


class Caller:
    def __call__(self):
        return 1


instance = Caller()
bound = Model().predict
"""

CONFIG = """
version: 1
environments:
  env1:
    tasks:
      ok: {fn: "shapes:ok"}
      typo: {fn: "shapes:okk"}
      builtin: {fn: "builtins:len"}
      alias: {fn: "shapes:count"}
      stdlib: {fn: "os.path:join"}
      imported: {fn: "shapes:joined"}
      klass: {fn: "shapes:Model"}
      method: {fn: "shapes:Model.predict"}
      static: {fn: "shapes:Model.static"}
      classmethod: {fn: "shapes:Model.build"}
      generator: {fn: "shapes:numbers"}
      partial: {fn: "shapes:partial_ok"}
      instance: {fn: "shapes:instance"}
      bound: {fn: "shapes:bound"}
      ours: {fn: "flyte_decl.quantity:parse_cpu"}
      nomodule: {fn: "nowhere:f"}
"""

P = "error: environments.env1.tasks."
WRAP = "(wrap it in a module-level function)"
# Found from the source alone.
STATIC = [
    f"environments.yaml:6:18: {P}typo.fn: module 'shapes' has no attribute 'okk' (did you mean 'ok'?)",
    f"environments.yaml:7:21: {P}builtin.fn: 'builtins:len' is the built-in function len {WRAP}",
    f"environments.yaml:8:19: {P}alias.fn: 'shapes:count' is the built-in function len {WRAP}",
    f"environments.yaml:11:19: {P}klass.fn: 'shapes:Model' is a class, not a function "
    "(bind a module-level function that uses it)",
    f"environments.yaml:12:20: {P}method.fn: 'shapes:Model.predict' is an instance method: an action has no "
    "instance to call it on (make it a @staticmethod or a module-level function)",
    f"environments.yaml:15:23: {P}generator.fn: 'shapes:numbers' is a generator function: an action's outputs "
    "are one value (return a list instead of yielding)",
]
# Objects that the source shows too: a partial, an instance and a bound method made at import time.
MADE = [
    f"environments.yaml:16:21: {P}partial.fn: 'shapes:partial_ok' is a functools.partial, not a function "
    "(bind a module-level function that calls it)",
    f"environments.yaml:17:22: {P}instance.fn: 'shapes:instance' is a Caller object, not a function {WRAP}",
    f"environments.yaml:18:19: {P}bound.fn: 'shapes:bound' is a method bound to a Model instance "
    "(bind a module-level function that calls it)",
]


@pytest.fixture(autouse=True)
def _forget_modules(tmp_path):
    """In-process commands import this folder's modules; the next test's folder has its own."""
    yield
    for name in ("shapes", "broken"):
        sys.modules.pop(name, None)
    while str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


@pytest.fixture
def shapes(write, tmp_path):
    write(SHAPES, "shapes.py")
    write(CONFIG)
    return tmp_path


def test_validate_checks_bindings_from_the_source_without_running_it(shapes, flyte_decl):
    result = flyte_decl("validate")
    assert result.code == 1
    assert result.out.splitlines() == [
        *STATIC[:3],
        f"environments.yaml:9:20: {P}stdlib.fn: module 'os.path' is part of the standard library {WRAP}",
        f"environments.yaml:10:22: {P}imported.fn: 'shapes:joined' is os.path.join from the standard library {WRAP}",
        *STATIC[3:],
        *MADE,
        f"environments.yaml:19:18: {P}ours.fn: module 'flyte_decl.quantity' is part of flyte-decl itself {WRAP}",
        "12 errors",
    ]
    assert result.err == (
        "note: not checked without importing: nowhere:f (module 'nowhere' is not importable from here); "
        "--check-imports imports them\n"
    )
    assert not (shapes / "imported.txt").exists()


def test_check_imports_checks_the_objects(shapes, flyte_decl):
    result = flyte_decl("validate", "--check-imports")
    assert result.code == 1
    assert result.out.splitlines() == [
        *STATIC[:3],
        f"environments.yaml:9:20: {P}stdlib.fn: 'os.path:join' is posixpath.join from the standard library {WRAP}",
        f"environments.yaml:10:22: {P}imported.fn: 'shapes:joined' is posixpath.join from the standard library {WRAP}",
        *STATIC[3:],
        *MADE,
        f"environments.yaml:19:18: {P}ours.fn: 'flyte_decl.quantity:parse_cpu' is "
        f"flyte_decl.quantity.parse_cpu from flyte-decl itself {WRAP}",
        f"environments.yaml:20:22: {P}nomodule.fn: cannot import module 'nowhere' "
        f"(is nowhere.py in {shapes} or installed?)",
        "13 errors",
    ]
    assert (shapes / "imported.txt").exists()  # --check-imports runs the module, as its help says


def test_run_refuses_every_unbindable_task_before_any_process_starts(shapes, flyte_decl):
    result = flyte_decl("run", "ok")
    assert result.code == 1
    lines = result.err.splitlines()
    assert lines[:3] + lines[5:8] == STATIC
    assert lines[8:11] == MADE
    assert len(lines) == 13
    assert not (shapes / ".flyte-decl").exists()  # no run started, none recorded


def test_static_and_class_methods_can_be_bound_and_run(write, flyte_decl, tmp_path):
    write(SHAPES, "shapes.py")
    write(
        """
        version: 1
        environments:
          env1:
            tasks:
              static: {fn: "shapes:Model.static"}
              classmethod: {fn: "shapes:Model.build"}
        """
    )
    assert flyte_decl("validate").out == "ok: 2 tasks in 1 environment\n"
    assert flyte_decl("validate", "--check-imports").out == "ok: 2 tasks in 1 environment\n"
    result = flyte_decl("run", "classmethod")
    assert (result.code, result.out) == (0, '"Model"\n'), result.err


@pytest.mark.parametrize(
    ("source", "note"),
    [
        ("from helpers import *\n", "shapes makes names at import time"),
        ("def __getattr__(name):\n    return print\n", "shapes makes names at import time"),
        ("globals()['okk'] = print\n", "shapes makes names at import time"),
        ("def make():\n    return len\n\n\nokk = make()\n", "okk is what make(...) returns at import time"),
        ("def g():\n    return 1\n\n\nokk = [g][0]\n", "okk is computed at import time"),
        (
            "import click\n\n\n@click.command()\ndef okk():\n    pass\n",
            "okk is what @click.command makes of it at import time",
        ),
    ],
)
def test_names_made_at_import_time_are_left_to_check_imports(write, flyte_decl, source, note):
    write(source, "shapes.py")
    write('version: 1\nenvironments:\n  env1:\n    tasks:\n      t: {fn: "shapes:okk"}\n')
    result = flyte_decl("validate")
    assert (result.code, result.out) == (0, "ok: 1 task in 1 environment\n")
    assert (
        result.err
        == f"note: not checked without importing: shapes:okk ({note}); --check-imports imports them\n"
    )


def test_a_module_that_fails_to_import_is_refused_by_run_with_its_error(write, flyte_decl, tmp_path):
    write("raise RuntimeError('no database here')\n\n\ndef t():\n    pass\n", "broken.py")
    write('version: 1\nenvironments:\n  env1:\n    tasks:\n      t: {fn: "broken:t"}\n')
    assert flyte_decl("validate").code == 0  # the source defines `t`; only importing finds the error
    result = flyte_decl("run", "t")
    assert result.code == 1
    assert result.err == (
        "environments.yaml:5:15: error: environments.env1.tasks.t.fn: importing 'broken' raised "
        "RuntimeError: no database here (run `python -c 'import broken'` to see the traceback)\n"
    )


PARTIAL = "'shapes:t' is a functools.partial, not a function (bind a module-level function that calls it)"


@pytest.mark.parametrize(
    ("source", "error"),
    [
        ("from functools import partial\n\n\ndef g():\n    return 1\n\n\nt = partial(g)\n", PARTIAL),
        ("import functools as ft\n\n\ndef g():\n    return 1\n\n\nt = ft.partial(g)\n", PARTIAL),
        ("import functools\n\n\ndef g():\n    return 1\n\n\np = functools.partial(g)\nt = p\n", PARTIAL),
        ("t = {'a': 1}\n", "'shapes:t' is not callable (it is 'dict') (bind the task to a function)"),
        ("t = None\n", "'shapes:t' is not callable (it is 'NoneType') (bind the task to a function)"),
        (
            "class C:\n    pass\n\n\nt = C()\n",
            "'shapes:t' is not callable (it is 'C') (bind the task to a function)",
        ),
        (
            "class C:\n    @staticmethod\n    def __call__():\n        return 1\n\n\nt = C()\n",
            f"'shapes:t' is a C object, not a function {WRAP}",
        ),
    ],
)
def test_validate_refuses_from_the_source_what_run_refuses(write, flyte_decl, source, error):
    write(source, "shapes.py")
    write('version: 1\nenvironments:\n  env1:\n    tasks:\n      t: {fn: "shapes:t"}\n')
    line = f"environments.yaml:5:15: {P}t.fn: {error}"
    assert flyte_decl("validate").out.splitlines() == [line, "1 error"]
    assert flyte_decl("validate").code == 1
    assert flyte_decl("validate", "--check-imports").out.splitlines() == [line, "1 error"]
    result = flyte_decl("run", "t")
    assert (result.code, result.err.splitlines()) == (1, [line])


def test_a_function_under_a_decorator_that_keeps_it_is_checked(write, flyte_decl):
    write("import functools\n\n\n@functools.lru_cache\ndef t():\n    return 1\n", "shapes.py")
    write('version: 1\nenvironments:\n  env1:\n    tasks:\n      t: {fn: "shapes:t"}\n')
    result = flyte_decl("validate")
    assert (result.code, result.out, result.err) == (0, "ok: 1 task in 1 environment\n", "")
    assert flyte_decl("run", "t").out == "1\n"
