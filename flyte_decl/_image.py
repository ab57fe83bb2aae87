"""`flyte.Image`: Flyte 2's container image spec, kept as metadata; never built or used locally.

Local actions run in this interpreter's environment, as in Flyte's local mode. The image is kept on
the environment (`TaskEnvironment.image`) so that `explain` can show it and an export to Flyte can
carry it; `to_config()` gives it in the shape of the `image:` key of environments.yaml::

    image = flyte.Image.from_debian_base(python_version=(3, 12)).with_pip_packages("pandas")
    image.to_config()    # {"python_version": "3.12", "pip_packages": ["pandas"]}
    flyte.Image.from_base("python:3.12-slim").to_config()   # "python:3.12-slim"

Every builder returns a new Image (the class is frozen, as Flyte's is). Layers with no config key
(commands, source folders, a Dockerfile, ...) are kept in `layers` as (kind, detail) pairs.
"""

from __future__ import annotations

import sys
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any

import tomllib

_PY = (sys.version_info.major, sys.version_info.minor)


def _version(value: tuple[int, int] | str | None) -> tuple[int, int]:
    if value is None:
        return _PY
    if isinstance(value, str):
        major, _, minor = value.partition(".")
        return int(major), int(minor)
    if isinstance(value, tuple) and len(value) == 2 and all(isinstance(v, int) for v in value):
        return value
    raise ValueError(f"python_version must be a (major, minor) tuple such as (3, 12), got {value!r}")


def _strings(name: str, values: tuple[Any, ...]) -> tuple[str, ...]:
    flat: list[Any] = []
    for value in values:
        flat.extend(value if isinstance(value, (list, tuple)) else [value])
    if not all(isinstance(v, str) for v in flat):
        raise TypeError(f"{name} must be strings, got {flat!r}")
    return tuple(flat)


@dataclass(frozen=True)
class Image:
    """A container image spec: a base (`from_*`) and layers (`with_*`), as in Flyte 2.

    Fields: `base_image` (a URI), `name`, `registry`, `python_version` ((3, 12)), `pip_packages`,
    `apt_packages`, `requirements` (a path), `env` (pairs), `layers` (the rest, for `explain`).
    """

    base_image: str | None = None
    name: str | None = None
    registry: str | None = None
    python_version: tuple[int, int] = field(default_factory=lambda: _PY)
    pip_packages: tuple[str, ...] = ()
    apt_packages: tuple[str, ...] = ()
    requirements: str | None = None
    env: tuple[tuple[str, str], ...] = ()
    layers: tuple[tuple[str, str], ...] = ()
    ref_name: str | None = None

    # -- bases ----------------------------------------------------------------------------------

    @classmethod
    def from_debian_base(cls, python_version: tuple[int, int] | None = None, flyte_version: str | None = None,
                         install_flyte: bool = True, registry: str | None = None, registry_secret: Any = None,
                         name: str | None = None, platform: Any = None, python: str | None = None,
                         **_options: Any) -> Image:  # fmt: skip
        """Flyte's default Debian image with this Python (default: the running interpreter's)."""
        return cls(name=name, registry=registry, python_version=_version(python_version or python))

    @classmethod
    def from_base(cls, image_uri: str) -> Image:
        """Any existing image by URI, e.g. "python:3.12-slim"."""
        if not isinstance(image_uri, str) or not image_uri:
            raise ValueError(f"image_uri must be a non-empty string, got {image_uri!r}")
        return cls(base_image=image_uri)

    @classmethod
    def from_ref_name(cls, name: str = "default") -> Image:
        """An image named in Flyte's config (`image.image_refs`)."""
        return cls(ref_name=name, name=name)

    @classmethod
    def from_uv_script(cls, script: Path | str, *, name: str, registry: str | None = None,
                       python_version: tuple[int, int] | None = None, **_options: Any) -> Image:  # fmt: skip
        """An image with the dependencies of a script's inline metadata (PEP 723 `# /// script`)."""
        return cls(name=name, registry=registry, python_version=_version(python_version),
                   pip_packages=_script_dependencies(Path(script)), layers=(("uv_script", str(script)),))  # fmt: skip

    @classmethod
    def from_pixi_script(cls, script: Path | str, *, name: str, registry: str | None = None,
                         **_options: Any) -> Image:  # fmt: skip
        """An image from a pixi script (kept as a layer)."""
        return cls(name=name, registry=registry, layers=(("pixi_script", str(script)),))

    @classmethod
    def from_dockerfile(cls, file: Path | str, registry: str, name: str, **_options: Any) -> Image:
        """An image from a Dockerfile (kept as a layer)."""
        return cls(name=name, registry=registry, layers=(("dockerfile", str(file)),))

    def clone(self, registry: str | None = None, name: str | None = None,
              python_version: tuple[int, int] | None = None, **_options: Any) -> Image:  # fmt: skip
        """A copy under another name or registry."""
        return replace(self, registry=registry or self.registry, name=name or self.name,
                       python_version=_version(python_version) if python_version else self.python_version)  # fmt: skip

    # -- layers ---------------------------------------------------------------------------------

    def with_pip_packages(self, *packages: str, **_options: Any) -> Image:
        return replace(self, pip_packages=self.pip_packages + _strings("pip packages", packages))

    def with_apt_packages(self, *packages: str, **_options: Any) -> Image:
        return replace(self, apt_packages=self.apt_packages + _strings("apt packages", packages))

    def with_requirements(self, file: str | Path, **_options: Any) -> Image:
        return replace(self, requirements=str(file))

    def with_env_vars(self, env_vars: dict[str, str]) -> Image:
        if not isinstance(env_vars, dict):
            raise TypeError(f"env_vars must be a dict, got {type(env_vars).__name__}")
        return replace(self, env=self.env + tuple((str(k), str(v)) for k, v in env_vars.items()))

    def _layer(self, kind: str, detail: Any) -> Image:
        return replace(self, layers=(*self.layers, (kind, str(detail))))

    def with_commands(self, commands: list[str], **_options: Any) -> Image:
        return self._layer("commands", "; ".join(commands))

    def with_workdir(self, workdir: str) -> Image:
        return self._layer("workdir", workdir)

    def with_source_folder(self, src: Path | str, dst: str = ".", copy_contents_only: bool = False) -> Image:
        return self._layer("source_folder", f"{src} -> {dst}")

    def with_source_file(self, src: Path | str | list[Path], dst: str = ".") -> Image:
        return self._layer("source_file", f"{src} -> {dst}")

    def with_code_bundle(self, *_args: Any, **_options: Any) -> Image:
        return self._layer("code_bundle", "")

    def with_dockerignore(self, path: Path | str) -> Image:
        return self._layer("dockerignore", path)

    def with_uv_project(self, pyproject_file: Path | str, *_args: Any, **_options: Any) -> Image:
        return self._layer("uv_project", pyproject_file)

    def with_poetry_project(self, pyproject_file: Path | str, *_args: Any, **_options: Any) -> Image:
        return self._layer("poetry_project", pyproject_file)

    def with_pixi_project(self, *args: Any, **_options: Any) -> Image:
        return self._layer("pixi_project", args[0] if args else "")

    def with_local_v2(self) -> Image:
        return self._layer("local_v2", "")

    # -- views ----------------------------------------------------------------------------------

    @property
    def uri(self) -> str:
        """The image's reference: the base URI, or registry/name (never built locally)."""
        if self.base_image and not (
            self.pip_packages or self.apt_packages or self.requirements or self.layers
        ):
            return self.base_image
        return "/".join(p for p in (self.registry, self.name or "flyte-decl-image") if p)

    def to_config(self) -> str | dict[str, Any]:
        """The `image:` config key: the URI for a plain `from_base`, else a mapping of the set keys.

        Keys among base_image, python_version ("3.12"), pip_packages, requirements, apt_packages, env,
        name, registry; layers with no key (commands, source folders, ...) are left out.
        """
        plain = not (self.pip_packages or self.apt_packages or self.requirements or self.env or self.layers)
        if self.base_image and plain and not (self.name or self.registry):
            return self.base_image
        out: dict[str, Any] = {}
        if self.base_image:
            out["base_image"] = self.base_image
        out["python_version"] = f"{self.python_version[0]}.{self.python_version[1]}"
        if self.pip_packages:
            out["pip_packages"] = list(self.pip_packages)
        if self.requirements:
            out["requirements"] = self.requirements
        if self.apt_packages:
            out["apt_packages"] = list(self.apt_packages)
        if self.env:
            out["env"] = dict(self.env)
        if self.name:
            out["name"] = self.name
        if self.registry:
            out["registry"] = self.registry
        return out


def _script_dependencies(script: Path) -> tuple[str, ...]:
    """The `dependencies` of a script's PEP 723 block; () when it has none or cannot be read."""
    try:
        lines = script.read_text().splitlines()
    except OSError:
        return ()
    inside, block = False, []
    for line in lines:
        if line.strip() == "# /// script":
            inside = True
        elif inside and line.strip() == "# ///":
            break
        elif inside:
            block.append(line[2:] if line.startswith("# ") else line.lstrip("#"))
    try:
        deps = tomllib.loads("\n".join(block)).get("dependencies", [])
    except tomllib.TOMLDecodeError:
        return ()
    return tuple(str(d) for d in deps)
