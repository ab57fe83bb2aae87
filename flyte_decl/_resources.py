"""`Resources`: CPU, memory, GPU, disk and shared memory, with Flyte's argument checks and our unit grammar.

    Resources(cpu=1, memory="250Mi")                  # request and limit alike
    Resources(cpu=("500m", 1), memory=("200Mi", "250Mi"))   # (request, limit)

Unlike Flyte, quantities are parsed here (`memory="lots"` fails at once), and a scalar is both the
request and the enforced limit, as in environments.yaml.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Any, Literal

from flyte_decl.quantity import QuantityError, parse_cpu, parse_memory

CpuValue = int | float | str
_GPU_TYPES = (
    "A10", "A10G", "A100", "A100_80G", "B200", "H100", "H200", "L4", "L40s", "T4", "V100", "A2", "GB10",
    "RTX_PRO_4500", "RTX_PRO_6000",
)  # fmt: skip


def _check_cpu(value: Any) -> None:
    if isinstance(value, bool) or not isinstance(value, (int, float, str)):
        raise ValueError(
            "cpu must be a core count or a Kubernetes quantity string such as 1, 0.5 or '100m', "
            f"got {type(value).__name__}: {value!r}"
        )
    if isinstance(value, (int, float)) and value < 0:
        raise ValueError("cpu must be greater than or equal to 0")
    try:
        parse_cpu(value)
    except QuantityError as exc:
        raise ValueError(f"cpu: {exc.message} ({exc.hint})") from None


def _check_memory(field: str, value: Any) -> None:
    if not isinstance(value, str):
        raise ValueError(
            f"{field} must be a Kubernetes quantity string such as '1Gi', '512Mi' or '2G', "
            f"got {type(value).__name__}: {value!r}"
        )
    try:
        parse_memory(value, field=field)
    except QuantityError as exc:
        raise ValueError(f"{field}: {exc.message} ({exc.hint})") from None


def _check_pair(field: str, value: tuple[Any, ...], check: Any) -> None:
    if len(value) != 2:
        raise ValueError(f"{field} tuple must have exactly two elements")
    if value[0] is None or value[1] is None:
        raise ValueError(f"{field} pair elements must both be set, got None")
    for item in value:
        check(item)
    parse = parse_cpu if field == "cpu" else parse_memory
    if parse(value[0]) > parse(value[1]):
        raise ValueError(f"{field} request {value[0]!r} is above its limit {value[1]!r}")


@dataclass(frozen=True)
class Resources:
    """Compute resources of a task environment.

    Example::

        flyte_decl.Resources(cpu="500m", memory=("200Mi", "250Mi"), gpu="A100:1")
    """

    cpu: CpuValue | tuple[CpuValue, CpuValue] | None = None
    memory: str | tuple[str, str] | None = None
    gpu: int | str | None = None
    disk: str | None = None
    shm: str | Literal["auto"] | None = None

    def __post_init__(self) -> None:
        if isinstance(self.cpu, tuple):
            _check_pair("cpu", self.cpu, _check_cpu)
        elif self.cpu is not None:
            _check_cpu(self.cpu)
        if isinstance(self.memory, tuple):
            _check_pair("memory", self.memory, lambda v: _check_memory("memory", v))
        elif self.memory is not None:
            _check_memory("memory", self.memory)
        for field in ("disk", "shm"):
            value = getattr(self, field)
            if value is not None and not (field == "shm" and value == "auto"):
                _check_memory(field, value)
        self._check_gpu()

    def _check_gpu(self) -> None:
        gpu = self.gpu
        if gpu is None:
            return
        if isinstance(gpu, bool) or not isinstance(gpu, (int, str)):
            raise ValueError(
                "gpu must be an accelerator string such as 'A100:4', a device count, "
                f"got {type(gpu).__name__}: {gpu!r}"
            )
        if isinstance(gpu, int):
            if gpu < 0:
                raise ValueError("gpu must be greater than or equal to 0")
            return
        kind, _, count = gpu.partition(":")
        if kind not in _GPU_TYPES or not count.isdigit() or not 1 <= int(count) <= 16:
            raise ValueError(f"gpu must be an accelerator string such as 'A100:4' or 'T4:1', got {gpu!r}")

    def to_settings(self) -> dict[str, Any]:
        """The set fields in environments.yaml shape: tuples become {request, limit}."""
        settings: dict[str, Any] = {}
        for field in ("cpu", "memory", "gpu", "disk", "shm"):
            value = getattr(self, field)
            if isinstance(value, tuple):
                settings[field] = {"request": value[0], "limit": value[1]}
            elif value is not None:
                settings[field] = value
        return settings
