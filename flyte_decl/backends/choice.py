"""Which backend a run uses: the `--backend`/`--address` flags (or `with_runcontext(backend=,
address=)`), else the config's `run:` section, else `local`.

    choice = choose_backend(resolved.document, backend=None, address=None)
    choice.name, choice.address, choice.source   # "ray", "auto", "run.backend at environments.yaml:3"

The config's `run:` section is layered like every other setting (file, `-c` overlays, `--profile`,
`--set run.backend=ray`), so `source` names the layer and place that chose it.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any

from flyte_decl.config.read import Document

BACKENDS = ("local", "ray")
DEFAULT_BACKEND = "local"


@dataclass(frozen=True)
class BackendChoice:
    """A run's backend: `name` ("local" or "ray"), Ray's `address` (None: Ray's own rule) and
    `source`, what chose it: "flag", "default", or the config's layer and place."""

    name: str
    address: str | None = None
    source: str = "default"

    def describe(self) -> str:
        """For the run header: "" when the flag or the default chose it, else "(run.backend at FILE:LINE)"."""
        return "" if self.source in ("flag", "default") else f"({self.source})"


class AddressWithoutRay(ValueError):
    """An address was given for a run whose backend is not Ray; the caller words it as its flag is named."""


def choose_backend(document: Document, backend: str | None, address: str | None) -> BackendChoice:
    """The backend of a run: `backend`/`address` as given by the caller (None: not given), else the
    document's `run:` section (already validated: `backend` is "local" or "ray"), else "local".

    Ray's address is the caller's, else the config's `run.address` (used only when the backend is
    Ray). Raises AddressWithoutRay when the caller gave an address and the backend is not Ray.
    """
    section: dict[str, Any] = document.data.get("run") or {}
    if backend is not None:
        name, source = backend, "flag"
    elif section.get("backend") is not None:
        name, source = str(section["backend"]), _where(document, ("run", "backend"))
    else:
        name, source = DEFAULT_BACKEND, "default"
    if name != "ray":
        if address is not None:
            raise AddressWithoutRay(address)
        return BackendChoice(name, None, source)
    configured = section.get("address")
    return BackendChoice(name, address if address is not None else configured, source)


def _where(document: Document, path: tuple[str, ...]) -> str:
    """`run.backend at environments.yaml:3`, `run.backend of profile gpu at environments.yaml:12`, or
    `run.backend at <cli --set>`."""
    mark, layer = document.mark(path), document.layer(path)
    of = f" of {layer}" if layer and not mark.file.startswith("<") else ""
    return f"{'.'.join(path)}{of} at {mark.short}"
