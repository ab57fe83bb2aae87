"""Which configuration produced a run: the files read (with a content hash), profiles, `-c` overlays,
`--set` items, `-e` names and `--queue`, as recorded in the run's snapshot.

Values of `-e` items are never shown (only names), and `--set` items are stored with secret values
masked. Like Nextflow's run header (config files, profile) and Flyte's execution spec.

    sources = ConfigSources.from_snapshot(run.snapshot)
    sources.describe()   # "environments.yaml sha256:1a2b3c4d5e6f, profile prod, --set timeout=5s, -e TOKEN"
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from flyte_decl.config.read import display_path

HASH_CHARS = 12  # of the sha256, as shown; the JSON carries all of it


@dataclass(frozen=True)
class ConfigFile:
    """One config file a run read: its path, the sha256 and size of the text as read, and whether -c named it."""

    path: str
    sha256: str
    size: int
    given: bool

    def describe(self) -> str:
        return f"{display_path(self.path)} sha256:{self.sha256[:HASH_CHARS]}" + (
            " (-c)" if self.given else ""
        )


@dataclass(frozen=True)
class ConfigSources:
    """Everything besides code and inputs that decided a run's settings."""

    files: list[ConfigFile] = field(default_factory=list)
    profiles: list[str] = field(default_factory=list)
    sets: list[str] = field(default_factory=list)
    env: list[str] = field(default_factory=list)  # names of -e items, never their values
    queue: str | None = None
    backend: str = "local"  # what the run ran on ("local" or "ray") and Ray's address, if given
    address: str | None = None
    backend_flag: str | None = None  # --backend / --address as given
    address_flag: str | None = None

    @classmethod
    def from_snapshot(cls, snapshot: Mapping[str, Any]) -> ConfigSources:
        """From a run's stored request (`RunRequest.masked()`): texts, configs, profiles, sets, env, queue."""
        given = {str(Path(path).resolve()) for path in snapshot.get("configs") or ()}
        files = [
            ConfigFile(path, digest(text), len(text.encode()), path in given)
            for path, text in (snapshot.get("texts") or {}).items()
        ]
        return cls(
            files,
            list(snapshot.get("profiles") or ()),
            list(snapshot.get("sets") or ()),
            sorted(snapshot.get("env") or {}),
            snapshot.get("queue"),
            snapshot.get("used_backend") or "local",
            snapshot.get("used_address"),
            snapshot.get("backend"),
            snapshot.get("address"),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "files": [
                {"path": f.path, "sha256": f.sha256, "bytes": f.size, "given": f.given} for f in self.files
            ],
            "profiles": self.profiles,
            "sets": self.sets,
            "env": self.env,
            "queue": self.queue,
            "backend": self.backend,
            "address": self.address,
        }

    def flags(self) -> list[str]:
        """The run-level choices, as on the command line: `profile prod`, `--set a=b`, `-e NAME`, `--queue q`."""
        items = [f"profile {profile}" for profile in self.profiles]
        items += [f"--set {item}" for item in self.sets]
        items += [f"-e {name}" for name in self.env]
        if self.queue:
            items.append(f"--queue {self.queue}")
        if self.backend_flag:
            items.append(f"--backend {self.backend_flag}")
        if self.address_flag:
            items.append(f"--address {self.address_flag}")
        return items

    def describe(self) -> str:
        """One line: the files with their hashes, the flags, then the backend when not local;
        `no config file` for code-only runs."""
        files = [f.describe() for f in self.files] or ["no config file"]
        where = [f"backend {self.backend}" + (f" at {self.address}" if self.address else "")]
        return ", ".join(files + self.flags() + (where if self.backend != "local" else []))


def digest(text: str) -> str:
    """The sha256 of a config text as read (UTF-8)."""
    return hashlib.sha256(text.encode()).hexdigest()
