"""Make `import flyte` resolve to flyte_decl, so a Flyte 2 program runs with no edit.

`flyte-decl run prog.py TASK` installs this in its own process before importing the program, and
sets `FLYTE_DECL_AS_FLYTE=1` so the fork servers install it too. Then `import flyte`,
`import flyte.errors`, `from flyte.io import File` and Flyte's private paths that programs use
(`flyte._image`, ...) give flyte_decl's modules, even when the real `flyte` package is installed.
A Flyte module flyte-decl does not have (e.g. `flyte.remote`) is a ModuleNotFoundError that says so.

A program that says `import flyte_decl as flyte` (`python prog.py`) gets the same alias, installed when
that statement first imports flyte_decl (`install_if_imported_as_flyte`): its `import flyte.errors` or
`from flyte.io import File` must not rebind `flyte` to the real package, which would run the program
under Flyte's local mode with no limit enforced.

    install()
    import flyte                 # flyte_decl
    import flyte.errors          # flyte_decl.errors
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import linecache
import os
import re
import sys
from types import ModuleType

ENV_AS_FLYTE = "FLYTE_DECL_AS_FLYTE"

# Flyte's private module paths that programs (and Flyte's own tests) import, by their flyte_decl home.
PRIVATE = {
    "_image": "_image",
    "_resources": "_resources",
    "_retry": "_task_environment",
    "_timeout": "_task_environment",
    "_reusable_environment": "_task_environment",
    "_task_environment": "_task_environment",
    "_environment": "_task_environment",
    "_secret": "_task_environment",
    "_cache": "_task_environment",
    "_task": "_task",
    "_run": "_run",
    "_context": "_context",
    "_group": "_context",
    "_custom_context": "_context",
    "_trace": "_trace",
    "_initialize": "_initialize",
    "_map": "_run",
}


def target_of(name: str) -> str:
    """The flyte_decl module a `flyte...` module name resolves to."""
    if name == "flyte":
        return "flyte_decl"
    first, _, rest = name.removeprefix("flyte.").partition(".")
    first = PRIVATE.get(first, first)
    return f"flyte_decl.{first}" + (f".{rest}" if rest else "")


class _Loader(importlib.abc.Loader):
    def __init__(self, module: ModuleType) -> None:
        self.module = module
        self.spec = module.__spec__

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        return self.module

    def exec_module(self, module: ModuleType) -> None:
        module.__spec__ = self.spec  # the import system set the alias spec; the module keeps its own


class FlyteAlias(importlib.abc.MetaPathFinder):
    """A meta path finder that answers for `flyte` and `flyte.*` with flyte_decl's modules."""

    def find_spec(
        self, fullname: str, path: object = None, target: object = None
    ) -> importlib.machinery.ModuleSpec | None:  # noqa: E501
        if fullname != "flyte" and not fullname.startswith("flyte."):
            return None
        real = target_of(fullname)
        try:
            module = importlib.import_module(real)
        except ModuleNotFoundError as exc:
            if exc.name != real:
                raise
            raise ModuleNotFoundError(
                f"No module named {fullname!r}: flyte-decl runs Flyte programs locally and has no {fullname}",
                name=fullname,
            ) from None
        return importlib.machinery.ModuleSpec(
            fullname, _Loader(module), is_package=hasattr(module, "__path__")
        )


# The real flyte modules `install` set aside, for `uninstall` to put back as they were (their
# classes are the ones already-built objects are instances of).
_set_aside: dict[str, ModuleType] = {}


def install() -> None:
    """Make `flyte` mean flyte_decl in this process and (through the environment) its fork servers."""
    os.environ[ENV_AS_FLYTE] = "1"
    if any(isinstance(finder, FlyteAlias) for finder in sys.meta_path):
        return
    for name in [n for n in sys.modules if n == "flyte" or n.startswith("flyte.")]:
        _set_aside[name] = sys.modules.pop(name)  # a real flyte imported earlier must not answer
    sys.meta_path.insert(0, FlyteAlias())


def uninstall() -> None:
    """Undo `install` in this process: `import flyte` finds the real package again (if installed)."""
    os.environ.pop(ENV_AS_FLYTE, None)
    sys.meta_path[:] = [finder for finder in sys.meta_path if not isinstance(finder, FlyteAlias)]
    for name in [n for n in sys.modules if n == "flyte" or n.startswith("flyte.")]:
        if getattr(sys.modules[name], "__name__", "").startswith("flyte_decl"):
            del sys.modules[name]
    sys.modules.update(_set_aside)
    _set_aside.clear()


def installed() -> bool:
    """Whether `import flyte` gives flyte_decl in this process."""
    return any(isinstance(finder, FlyteAlias) for finder in sys.meta_path)


def install_if_asked() -> None:
    """In a fork server: install the alias when the runner's process did."""
    if os.environ.get(ENV_AS_FLYTE) == "1":
        install()


# The statement that means Flyte by `flyte`: `import flyte_decl as flyte` (a comment may follow).
_IMPORTED_AS_FLYTE = re.compile(r"\s*import\s+flyte_decl\s+as\s+flyte\s*(#.*)?$")


def install_if_imported_as_flyte() -> None:
    """Install the alias when the statement importing flyte_decl (now) is `import flyte_decl as flyte`.

    Called once, from flyte_decl's own import: the first frame outside the import system and
    flyte_decl is the importing module's, and its current source line is that statement.
    """
    frame = sys._getframe(1)
    while frame is not None and (
        frame.f_code.co_filename.startswith("<frozen ")
        or str(frame.f_globals.get("__name__", "")).startswith("flyte_decl")
    ):
        frame = frame.f_back  # type: ignore[assignment]
    if frame is not None and _IMPORTED_AS_FLYTE.match(
        linecache.getline(frame.f_code.co_filename, frame.f_lineno)
    ):
        install()
