"""Flyte's `Cache`: which calls of a task reuse recorded outputs, and the key they are found under.

    @env.task(cache=flyte.Cache(behavior="override", version_override="v1", ignored_inputs=("note",)))
    async def one(x: int, note: str) -> int: ...

    await one(1, "a")   # runs; its outputs are recorded under (task, "v1", x=1)
    await one(1, "b")   # cached: `note` is not part of the key

The key, as Flyte defines it (`flyte._cache.cache`, `generate_cache_key_hash`), is made of the task's
full name, a *version* and the inputs bound to their parameter names (defaults filled in):

- the version is `version_override` when given (with any behavior), else the hash of the cache
  policies' versions; the default policy (`FunctionBodyPolicy`) hashes the function's syntax tree, so
  comments and formatting do not change it, and mixes in `salt` (a `version_override` is used as is);
- inputs named in `ignored_inputs` are left out.

`behavior`: "auto" and "override" look the key up before an action is queued and record its outputs
under it ("override" is meant for a `version_override` that changes only when you say so; Flyte's own
local mode records but never looks up "override", its cluster does both); "disable" does neither.
`max_age` (seconds or a timedelta) ignores outputs recorded longer ago. `serialize` is accepted and kept:
concurrent calls with the same key each run (see the README's table of differences).
"""

from __future__ import annotations

import ast
import functools
import hashlib
import inspect
import textwrap
from collections.abc import Callable, Iterable
from dataclasses import dataclass, field
from datetime import timedelta
from typing import Any, Protocol, runtime_checkable

from flyte_decl.runtime.wire import dump_payload

BEHAVIORS = ("auto", "override", "disable")
# Spellings Flyte accepts for a behavior, as Flyte maps them.
ALIASES = {"enable": "auto", "enabled": "auto", "on": "auto", "true": "auto", "yes": "auto",
           "off": "disable", "false": "disable", "no": "disable", "none": "disable"}  # fmt: skip


@dataclass
class VersionParameters:
    """What a cache policy versions: the task's function (None when it has no Python body) and image."""

    func: Callable[..., Any] | None
    image: Any = None
    code_bundle: Any = None


@runtime_checkable
class CachePolicy(Protocol):
    """A strategy for the cache version: `get_version(salt, params) -> str`."""

    def get_version(self, salt: str, params: VersionParameters) -> str: ...


@dataclass(frozen=True)
class FunctionBodyPolicy:
    """The default policy: SHA-256 of the function's syntax tree (no positions) followed by `salt`."""

    def get_version(self, salt: str, params: VersionParameters) -> str:
        if params.func is None:
            return ""
        tree = ast.parse(textwrap.dedent(inspect.getsource(params.func)))
        return hashlib.sha256(ast.dump(tree, include_attributes=False).encode() + salt.encode()).hexdigest()


def behavior_of(value: Any) -> str:
    """The behavior a cache argument asks for ("auto", "override" or "disable"), aliases mapped.

    Raises ValueError for anything else, naming the accepted values.
    """
    behavior = getattr(value, "behavior", value)
    if isinstance(behavior, str):
        behavior = ALIASES.get(behavior.lower(), behavior)
    if behavior not in BEHAVIORS:
        raise ValueError(
            f"Invalid cache behavior {behavior!r}: use 'auto', 'override' or 'disable' "
            f"(aliases accepted: {', '.join(sorted(ALIASES))})"
        )
    return str(behavior)


@dataclass
class Cache:
    """Flyte's cache policy of a task (see the module docstring for the key it defines).

    `behavior` "auto", "override" or "disable" (or an alias such as "on"/"off"); `version_override`
    replaces the source-derived version; `ignored_inputs` (a name or a tuple of names) are left out
    of the key; `salt` is mixed into policy-derived versions; `policies` (default: `FunctionBodyPolicy`)
    derive the version; `max_age` (seconds or a timedelta, >= 0; 0 or None: no limit) is the oldest
    recorded output a call reuses; `serialize` is kept.
    """

    behavior: str = "auto"
    version_override: str | None = None
    serialize: bool = False
    ignored_inputs: tuple[str, ...] | str = field(default_factory=tuple)
    salt: str = ""
    policies: list[CachePolicy] | CachePolicy | None = None
    max_age: timedelta | int | None = None

    def __post_init__(self) -> None:
        self.behavior = behavior_of(self.behavior)
        if isinstance(self.max_age, bool) or not isinstance(self.max_age, (int, timedelta, type(None))):
            raise TypeError("max_age must be an int (seconds), timedelta, or None")
        if isinstance(self.max_age, int):
            self.max_age = timedelta(seconds=self.max_age)
        if self.max_age is not None and self.max_age < timedelta(0):
            raise ValueError("max_age must be nonnegative")
        if self.version_override is not None and not isinstance(self.version_override, str):
            raise TypeError(f"version_override must be a str, got {self.version_override!r}")
        if not isinstance(self.salt, str):
            raise TypeError(f"salt must be a str, got {self.salt!r}")
        names = (self.ignored_inputs,) if isinstance(self.ignored_inputs, str) else tuple(self.ignored_inputs)
        if not all(isinstance(name, str) for name in names):
            raise TypeError(f"ignored_inputs must be input names, got {self.ignored_inputs!r}")
        self._ignored_inputs = names
        if self.behavior == "disable":
            return
        if self.policies is None:
            self.policies = [FunctionBodyPolicy()]
        elif not isinstance(self.policies, list):
            self.policies = [self.policies]

    def is_enabled(self) -> bool:
        """Whether calls look up and record outputs ("auto" or "override")."""
        return self.behavior in ("auto", "override")

    def get_ignored_inputs(self) -> tuple[str, ...]:
        return self._ignored_inputs

    def get_version(self, params: VersionParameters | None = None) -> str:
        """The cache version: "" when disabled, `version_override` when given, else the policies' hash.

        Raises ValueError without `params` when the version must be derived.
        """
        if not self.is_enabled():
            return ""
        if self.version_override is not None:
            return self.version_override
        if params is None:
            raise ValueError("Version parameters must be provided when version_override is not set.")
        policies = self.policies if isinstance(self.policies, list) else [self.policies]
        versions = "".join(policy.get_version(self.salt, params) for policy in policies if policy is not None)
        return hashlib.sha256(versions.encode()).hexdigest()

    def to_settings(self) -> dict[str, Any]:
        """The `cache:` config value of this policy (policies stay in code: they have no config key)."""
        out: dict[str, Any] = {"behavior": self.behavior}
        if self.version_override is not None:
            out["version_override"] = self.version_override
        if self._ignored_inputs:
            out["ignored_inputs"] = list(self._ignored_inputs)
        if self.salt:
            out["salt"] = self.salt
        if self.serialize:
            out["serialize"] = True
        if isinstance(self.max_age, timedelta) and self.max_age:
            out["max_age"] = self.max_age.total_seconds()
        return out


def cache_from_request(cache: Cache | str) -> Cache:
    """A Cache from Flyte's CacheRequest: a Cache as is, a behavior string as `Cache(behavior=...)`."""
    return cache if isinstance(cache, Cache) else Cache(behavior=cache)


def cache_key(task: str, version: str, inputs: dict[str, Any] | bytes, ignored: Iterable[str] = ()) -> str:
    """The key outputs are recorded under: SHA-256 of the task's name, the version and the inputs.

    `inputs` are the call's inputs by parameter name (the ignored ones are left out), or, when they
    could not be bound to names, their serialized bytes as they are.
    """
    if isinstance(inputs, dict):
        skip = set(ignored)
        inputs = dump_payload(sorted((name, value) for name, value in inputs.items() if name not in skip))
    digest = hashlib.sha256(inputs).hexdigest()
    return hashlib.sha256(f"{task}\0{version}\0{digest}".encode()).hexdigest()


def bound_inputs(func: Callable[..., Any], args: tuple[Any, ...], kwargs: dict[str, Any]) -> dict[str, Any]:
    """A call's arguments by parameter name, defaults filled in (raises TypeError if they do not bind)."""
    bound = _signature(func).bind(*args, **kwargs)
    bound.apply_defaults()
    return dict(bound.arguments)


_signature = functools.lru_cache(maxsize=1024)(inspect.signature)
