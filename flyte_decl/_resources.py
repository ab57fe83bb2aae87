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

# Accelerators Flyte 2 knows, by device class: (name, largest count in an accelerator string).
# Both of Flyte's spellings of the multi-word names are accepted ("A100 80G" and "A100_80G").
_GPUS = {"A10": 8, "A10G": 8, "A100": 8, "A100 80G": 8, "A100_80G": 8, "B200": 8, "H100": 8, "H200": 8, "L4": 8,
         "L40s": 8, "T4": 8, "V100": 8, "RTX PRO 6000": 1, "RTX_PRO_6000": 2, "RTX_PRO_4500": 1, "GB10": 1,
         "A2": 1}  # fmt: skip
_NEURONS = {"Inf1": 16, "Inf2": 12, "Trn1": 16, "Trn1n": 16, "Trn2": 16, "Trn2u": 16}
_AMD_GPUS = dict.fromkeys(
    ("MI100", "MI210", "MI250", "MI250X", "MI300A", "MI300X", "MI325X", "MI350X", "MI355X"), 1
)
_GAUDIS = {"Gaudi1": 1}
_NEURON_COUNTS = {
    "Trn1": (1, 4, 8, 16),
    "Trn1n": (1, 4, 8, 16),
    "Trn2": (1, 4, 8, 16),
    "Trn2u": (1, 4, 8, 16),
}
_PARTITIONS = {
    "A100": ("1g.5gb", "2g.10gb", "3g.20gb", "4g.20gb", "7g.40gb"),
    "A100 80G": ("1g.10gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"),
    "H100": ("1g.10gb", "1g.20gb", "2g.20gb", "3g.40gb", "4g.40gb", "7g.80gb"),
    "H200": ("1g.18gb", "1g.35gb", "2g.35gb", "3g.71gb", "4g.71gb", "7g.141gb"),
}
_PARTITIONS["A100_80G"] = _PARTITIONS["A100 80G"]
_TPU_SLICES = {
    "V5P": (
        "2x2x1",
        "2x2x2",
        "2x4x4",
        "4x4x4",
        "4x4x8",
        "4x8x8",
        "8x8x8",
        "8x8x16",
        "8x16x16",
        "16x16x16",
        "16x16x24",
    ),
    "V6E": ("1x1", "2x2", "2x4", "4x4", "4x8", "8x8", "8x16", "16x16"),
}
_CLASSES = {"GPU": _GPUS, "NEURON": _NEURONS, "AMD_GPU": _AMD_GPUS, "HABANA_GAUDI": _GAUDIS}


def _counts(name: str, largest: int) -> tuple[int, ...]:
    return _NEURON_COUNTS.get(name, tuple(range(1, largest + 1)))


GPUType = Literal[tuple(_GPUS)]  # type: ignore[valid-type]
TPUType = Literal[tuple(_TPU_SLICES)]  # type: ignore[valid-type]
NeuronType = Literal[tuple(_NEURONS)]  # type: ignore[valid-type]
AMD_GPUType = Literal[tuple(_AMD_GPUS)]  # type: ignore[valid-type]
HABANA_GAUDIType = Literal[tuple(_GAUDIS)]  # type: ignore[valid-type]
ACCELERATORS = tuple(
    f"{name}:{count}"
    for table in _CLASSES.values()
    for name, largest in table.items()
    for count in _counts(name, largest)
)
Accelerators = Literal[ACCELERATORS]  # type: ignore[valid-type]
DeviceClass = Literal["GPU", "TPU", "NEURON", "AMD_GPU", "HABANA_GAUDI"]


@dataclass(frozen=True)
class Device:
    """An accelerator request, as Flyte's: `quantity` of `device` ("A100") in `device_class`, maybe a
    `partition` (a MIG profile such as "1g.5gb", or a TPU slice such as "2x2x1")."""

    quantity: int
    device_class: str
    device: str | None = None
    partition: str | None = None

    def __post_init__(self) -> None:
        if self.quantity < 1:
            raise ValueError("GPU quantity must be at least 1")

    def accelerator(self) -> int | str:
        """The `gpu:` config value: "A100:2", or a plain count when no device type is named."""
        return f"{self.device}:{self.quantity}" if self.device else self.quantity


def GPU(device: str, quantity: int, partition: str | None = None) -> Device:  # noqa: N802 - Flyte's name
    """`quantity` NVIDIA GPUs of a type, optionally one MIG `partition` (checked against the type's list)."""
    if quantity < 1:
        raise ValueError("GPU quantity must be at least 1")
    if device not in _GPUS:
        raise ValueError(f"Invalid GPU type: {device}. Must be one of {tuple(_GPUS)}")
    if partition is not None and device in _PARTITIONS and partition not in _PARTITIONS[device]:
        raise ValueError(f"Invalid partition for {device}: {partition}. Must be one of {_PARTITIONS[device]}")
    return Device(quantity=quantity, device_class="GPU", device=device, partition=partition)


def TPU(device: str, partition: str | None = None) -> Device:  # noqa: N802 - Flyte's name
    """A Google TPU of a type, optionally one slice topology."""
    if device not in _TPU_SLICES:
        raise ValueError(f"Invalid TPU type: {device}. Must be one of {tuple(_TPU_SLICES)}")
    if partition is not None and partition not in _TPU_SLICES[device]:
        raise ValueError(f"Invalid partition for {device}: {partition}. Must be one of {_TPU_SLICES[device]}")
    return Device(quantity=1, device_class="TPU", device=device, partition=partition)


def _single(kind: str, label: str, table: dict[str, int]) -> Any:
    def make(device: str) -> Device:
        if device not in table:
            raise ValueError(f"Invalid {label} type: {device}. Must be one of {tuple(table)}")
        return Device(quantity=1, device_class=kind, device=device)

    make.__name__ = kind
    make.__doc__ = f"One {label} accelerator of a type (Flyte's `{kind}`)."
    return make


Neuron = _single("NEURON", "Neuron", _NEURONS)
AMD_GPU = _single("AMD_GPU", "AMD GPU", _AMD_GPUS)
HABANA_GAUDI = _single("HABANA_GAUDI", "Habana Gaudi", _GAUDIS)


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
    gpu: int | str | Device | None = None
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
        if gpu is None or isinstance(gpu, Device):
            return
        if isinstance(gpu, bool) or not isinstance(gpu, (int, str)):
            raise ValueError(
                "gpu must be an accelerator string such as 'A100:4', a device count or a flyte.GPU(...) device, "
                f"got {type(gpu).__name__}: {gpu!r}"
            )
        if isinstance(gpu, int):
            if gpu < 0:
                raise ValueError("gpu must be greater than or equal to 0")
            return
        if gpu not in ACCELERATORS:
            raise ValueError(
                f"gpu must be one of Flyte's accelerators such as 'A100:4' or 'T4:1', got {gpu!r}"
            )

    def get_device(self) -> Device | None:
        """The accelerator as a Device (None without one), as Flyte's `Resources.get_device`."""
        gpu = self.gpu
        if gpu is None or isinstance(gpu, Device):
            return gpu
        if isinstance(gpu, int):
            return Device(quantity=gpu, device_class="GPU")
        name, _, count = gpu.partition(":")
        kind = next(k for k, table in _CLASSES.items() if name in table)
        return Device(quantity=int(count), device_class=kind, device=name)

    def get_shared_memory(self) -> str | None:
        """The shared memory size; "" for "auto", None when unset (Flyte's `get_shared_memory`)."""
        if self.shm is None:
            return None
        return "" if self.shm == "auto" else self.shm

    def to_settings(self) -> dict[str, Any]:
        """The set fields in environments.yaml shape: tuples become {request, limit}."""
        settings: dict[str, Any] = {}
        for field in ("cpu", "memory", "gpu", "disk", "shm"):
            value = getattr(self, field)
            if isinstance(value, tuple):
                settings[field] = {"request": value[0], "limit": value[1]}
            elif isinstance(value, Device):
                settings[field] = value.accelerator()
            elif value is not None:
                settings[field] = value
        return settings
