"""`File` and `Dir`: local-path references with Flyte 2's methods (async and `_sync` twins).

    f = await File.from_local("data.csv")        # in an action: copied under the run's raw-data folder
    async with f.open("rb") as fh:
        data = bytes(await fh.read())
    with f.open_sync("rb") as fh: ...
    local = await f.download()                   # a path to read with any library
    async for part in Dir.from_local_sync("parts").walk(): ...

A value pickles as its path, name and hash (a few hundred bytes whatever the data's size). `hash` is
the content's SHA-256 when computed (`from_local`) or the `file_cache_key` given, and is what the
cache keys on instead of the path.
"""

from __future__ import annotations

import hashlib
import os
import shutil
import tempfile
from collections.abc import AsyncIterator, Iterator
from dataclasses import dataclass
from pathlib import Path
from typing import IO, Any

from flyte_decl import _context


def _raw_dir() -> Path:
    """The running action's raw-data folder, or a temporary folder outside a run."""
    current = _context.ctx()
    folder = Path(current.raw_data_path.path) if current else Path(tempfile.gettempdir()) / "flyte-decl-raw"
    folder.mkdir(parents=True, exist_ok=True)
    return folder


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with open(path, "rb") as fh:
        for block in iter(lambda: fh.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()


class _AsyncHandle:
    """An open file whose read and write are awaitable, as Flyte's async file objects are."""

    def __init__(self, handle: IO[Any]) -> None:
        self._handle = handle

    async def read(self, size: int = -1) -> Any:
        return self._handle.read(size)

    async def write(self, data: Any) -> int:
        return self._handle.write(data)

    async def readline(self) -> Any:
        return self._handle.readline()

    async def close(self) -> None:
        self._handle.close()

    def __getattr__(self, name: str) -> Any:
        return getattr(self._handle, name)


class _Opener:
    """What `File.open` returns: `async with` gives an awaitable handle, `with` a plain file."""

    def __init__(self, path: Path, mode: str) -> None:
        self._path, self._mode = path, mode
        self._handle: IO[Any] | None = None

    def _open(self) -> IO[Any]:
        if any(c in self._mode for c in "wa"):
            self._path.parent.mkdir(parents=True, exist_ok=True)
        self._handle = open(self._path, self._mode)  # noqa: SIM115 - closed on exit
        return self._handle

    async def __aenter__(self) -> _AsyncHandle:
        return _AsyncHandle(self._open())

    async def __aexit__(self, *_exc: object) -> None:
        assert self._handle is not None
        self._handle.close()

    def __enter__(self) -> IO[Any]:
        return self._open()

    def __exit__(self, *_exc: object) -> None:
        assert self._handle is not None
        self._handle.close()


@dataclass
class _Reference:
    """What File and Dir share: a `path` on this machine, its `name`, `format` and content `hash`."""

    path: str
    name: str | None = None
    format: str = ""
    hash: str | None = None

    def __post_init__(self) -> None:
        self.path = str(self.path)
        if self.name is None:
            self.name = Path(self.path).name

    def __class_getitem__(cls, _item: Any) -> Any:
        return cls  # File[pd.DataFrame] as in Flyte; the type parameter is documentation only

    def __fspath__(self) -> str:
        return self.path


@dataclass
class File(_Reference):
    """A file on this machine: `path`, `name` (the file's name), `format`, `hash` (content digest)."""

    # -- making files ----------------------------------------------------------------------------

    @classmethod
    def from_local_sync(cls, local_path: str | Path, remote_destination: str | None = None,
                        hash_method: Any = None) -> File:  # fmt: skip
        """Copy a local file to the run's raw-data folder (or `remote_destination`) and refer to the copy."""
        source = Path(local_path)
        if not source.is_file():
            raise ValueError(f"{source}: no such file")
        digest = _sha256(source)
        target = Path(remote_destination) if remote_destination else _raw_dir() / digest[:16] / source.name
        if target.resolve() != source.resolve():
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(source, target)
        return cls(path=str(target), name=source.name, hash=digest)

    @classmethod
    async def from_local(cls, local_path: str | Path, remote_destination: str | None = None,
                         hash_method: Any = None) -> File:  # fmt: skip
        return cls.from_local_sync(local_path, remote_destination, hash_method)

    @classmethod
    def from_existing_remote(cls, remote_path: str, file_cache_key: str | None = None) -> File:
        """Refer to a file that exists already, without copying it."""
        return cls(path=remote_path, hash=file_cache_key)

    @classmethod
    def new_remote(cls, file_name: str | None = None, hash_method: Any = None) -> File:
        """A new, not yet written file in the run's raw-data folder; write it with `open("wb")`."""
        return cls(path=str(_raw_dir() / (file_name or os.urandom(8).hex())))

    @classmethod
    def named_remote(cls, name: str) -> File:
        return cls.new_remote(name)

    # -- using files -----------------------------------------------------------------------------

    def open(self, mode: str = "rb", block_size: int | None = None, **_options: Any) -> _Opener:
        """`async with f.open("rb") as fh: await fh.read()`; also usable with plain `with`."""
        return _Opener(Path(self.path), mode)

    def open_sync(self, mode: str = "rb", block_size: int | None = None, **_options: Any) -> _Opener:
        return _Opener(Path(self.path), mode)

    def exists_sync(self) -> bool:
        return Path(self.path).is_file()

    async def exists(self) -> bool:
        return self.exists_sync()

    def download_sync(self, local_path: str | Path | None = None) -> str:
        """A local path holding the file: its own path, or a copy at `local_path`."""
        if local_path is None:
            return self.path
        target = Path(local_path)
        if target.is_dir():
            target = target / (self.name or Path(self.path).name)
        target.parent.mkdir(parents=True, exist_ok=True)
        shutil.copyfile(self.path, target)
        return str(target)

    async def download(self, local_path: str | Path | None = None) -> str:
        return self.download_sync(local_path)


@dataclass
class Dir(_Reference):
    """A folder on this machine: `path`, `name`, `format`, `hash`."""

    @classmethod
    def from_local_sync(cls, local_path: str | Path, remote_destination: str | None = None,
                        dir_cache_key: str | None = None) -> Dir:  # fmt: skip
        """Copy a local folder to the run's raw-data folder (or `remote_destination`) and refer to the copy."""
        source = Path(local_path)
        if not source.is_dir():
            raise ValueError(f"{source}: no such folder")
        target = (
            Path(remote_destination) if remote_destination else _raw_dir() / os.urandom(8).hex() / source.name
        )
        if target.resolve() != source.resolve():
            shutil.copytree(source, target, dirs_exist_ok=True)
        return cls(path=str(target), name=source.name, hash=dir_cache_key)

    @classmethod
    async def from_local(cls, local_path: str | Path, remote_destination: str | None = None,
                         dir_cache_key: str | None = None) -> Dir:  # fmt: skip
        return cls.from_local_sync(local_path, remote_destination, dir_cache_key)

    @classmethod
    def from_existing_remote(cls, remote_path: str, dir_cache_key: str | None = None) -> Dir:
        return cls(path=remote_path, hash=dir_cache_key)

    def walk_sync(
        self, recursive: bool = True, file_pattern: str = "*", max_depth: int | None = None
    ) -> Iterator[File]:  # noqa: E501
        """Every file below the folder (sorted), as Files; `max_depth` 1 is the top level only."""
        root = Path(self.path)
        pattern = f"**/{file_pattern}" if recursive else file_pattern
        for path in sorted(root.glob(pattern)):
            depth = len(path.relative_to(root).parts)
            if path.is_file() and (max_depth is None or depth <= max_depth):
                yield File(path=str(path))

    async def walk(self, recursive: bool = True, max_depth: int | None = None) -> AsyncIterator[File]:
        for file in self.walk_sync(recursive, max_depth=max_depth):
            yield file

    def list_files_sync(self) -> list[File]:
        return list(self.walk_sync(recursive=False))

    async def list_files(self) -> list[File]:
        return self.list_files_sync()

    def get_file_sync(self, file_name: str) -> File | None:
        path = Path(self.path) / file_name
        return File(path=str(path)) if path.is_file() else None

    async def get_file(self, file_name: str) -> File | None:
        return self.get_file_sync(file_name)

    def exists_sync(self) -> bool:
        return Path(self.path).is_dir()

    async def exists(self) -> bool:
        return self.exists_sync()

    def download_sync(self, local_path: str | Path | None = None) -> str:
        if local_path is None:
            return self.path
        shutil.copytree(self.path, local_path, dirs_exist_ok=True)
        return str(local_path)

    async def download(self, local_path: str | Path | None = None) -> str:
        return self.download_sync(local_path)
