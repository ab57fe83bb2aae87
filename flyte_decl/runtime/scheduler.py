"""Admission of actions against the machine's capacity and the queues' concurrency.

An action's *demand* is its requests (a request left unset falls back to the limit, else 0) and
its queue. The scheduler keeps one FIFO per queue and starts the head of each queue when its demand
fits what is free; a head that does not fit waits, so a large request is not starved by a stream of
small ones behind it. A demand that could never fit fails at once (`problem`).

Deadlock: a parent that awaits child actions holds resources the children may need (capacity cpu 1,
a parent with cpu 1, children with cpu 1). Like Ray's blocked workers, a parent waiting on children
is `block`ed: its reservation and queue slot go back to the pool. When its last child is done it is
`unblock`ed and takes them back at once, even past capacity, because its process is already running;
nothing new starts until usage is back under capacity.

Example::

    scheduler = Scheduler(Resources(cpu=2, memory=8 << 30, gpu=0), config.queues)
    scheduler.enqueue("a1", demand_of(spec, "default"))
    scheduler.ready()                       # ["a1"], now holding its reservation
    scheduler.done("a1")
"""

from __future__ import annotations

import os
from collections import deque
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Generic, TypeVar

from flyte_decl.quantity import format_bytes, format_cpu
from flyte_decl.spec import DEFAULT_QUEUE, Capacity, QueueSpec, TaskSpec

Key = TypeVar("Key")


@dataclass(frozen=True)
class Resources:
    """Amounts of cpu (millicores, so sums stay exact), memory (bytes) and GPUs."""

    cpu: int = 0
    memory: int = 0
    gpu: int = 0

    def __add__(self, other: Resources) -> Resources:
        return Resources(self.cpu + other.cpu, self.memory + other.memory, self.gpu + other.gpu)

    def __sub__(self, other: Resources) -> Resources:
        return Resources(self.cpu - other.cpu, self.memory - other.memory, self.gpu - other.gpu)

    def fits_in(self, other: Resources) -> bool:
        """Whether every amount here is at most the one in `other`."""
        return self.cpu <= other.cpu and self.memory <= other.memory and self.gpu <= other.gpu


@dataclass(frozen=True)
class Demand:
    """What one action needs to start: resources and a queue."""

    task: str
    resources: Resources
    queue: str


def demand_of(spec: TaskSpec, queue: str) -> Demand:
    """The requests of a task, each falling back to its limit and then to 0."""
    cpu = spec.cpu_request if spec.cpu_request is not None else spec.cpu_limit
    memory = spec.memory_request if spec.memory_request is not None else spec.memory_limit
    return Demand(spec.name, Resources(round((cpu or 0) * 1000), memory or 0, spec.gpu), queue)


def machine_capacity(capacity: Capacity) -> Resources:
    """The configured capacity, with this machine's CPUs, memory and NVIDIA GPUs filling the gaps."""
    cpu = capacity.cpu if capacity.cpu is not None else len(os.sched_getaffinity(0))
    memory = capacity.memory
    if memory is None:
        memory = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES")
    gpus = Path("/proc/driver/nvidia/gpus")
    gpu = len(list(gpus.iterdir())) if gpus.is_dir() else 0
    return Resources(round(cpu * 1000), memory, gpu)


class Scheduler(Generic[Key]):
    """Reserves capacity and queue slots for actions, identified by any hashable key."""

    def __init__(self, capacity: Resources, queues: Mapping[str, QueueSpec]) -> None:
        self.capacity = capacity
        self._queues = dict(queues)
        self._free = capacity
        self._running: dict[str, int] = {}
        self._waiting: dict[str, deque[tuple[Key, Demand]]] = {}
        self._holding: dict[Key, Demand] = {}
        self._blocked: dict[Key, Demand] = {}

    def problem(self, demand: Demand) -> str | None:
        """Why this demand can never start, or None if it can."""
        queue = self._queues.get(demand.queue)
        if queue is None and demand.queue != DEFAULT_QUEUE:
            known = ", ".join(sorted({DEFAULT_QUEUE, *self._queues}))
            return f"{demand.task}: queue {demand.queue!r} is not declared (known: {known})"
        if queue is not None and queue.concurrency is not None and queue.concurrency < 1:
            return f"{demand.task}: queue {demand.queue!r} has concurrency {queue.concurrency}"
        want, have = demand.resources, self.capacity
        if want.cpu > have.cpu:
            return (
                f"{demand.task} requests cpu {format_cpu(want.cpu / 1000)} but the capacity is "
                f"cpu {format_cpu(have.cpu / 1000)}; lower the task's cpu request or raise capacity.cpu"
            )
        if want.memory > have.memory:
            return (
                f"{demand.task} requests memory {format_bytes(want.memory)} but the capacity is "
                f"memory {format_bytes(have.memory)}; lower the task's memory request or raise capacity.memory"
            )
        if want.gpu > have.gpu:
            return f"{demand.task} requests {want.gpu} gpu but this machine has {have.gpu}"
        return None

    def enqueue(self, key: Key, demand: Demand) -> None:
        """Wait for room; the caller has checked `problem` first."""
        self._waiting.setdefault(demand.queue, deque()).append((key, demand))

    def ready(self) -> list[Key]:
        """Start every queue head that fits now, reserving for it; returns their keys in order."""
        started: list[Key] = []
        progress = True
        while progress:
            progress = False
            for name, waiting in self._waiting.items():
                if not waiting or not self._queue_has_room(name):
                    continue
                key, demand = waiting[0]
                if demand.resources.fits_in(self._free):
                    waiting.popleft()
                    self._take(key, demand)
                    started.append(key)
                    progress = True
        return started

    def block(self, key: Key) -> None:
        """The action waits on children: lend its reservation and queue slot to them."""
        demand = self._holding.pop(key, None)
        if demand is not None:
            self._give_back(demand)
            self._blocked[key] = demand

    def unblock(self, key: Key) -> None:
        """The action runs again: take its reservation back at once, even past capacity."""
        demand = self._blocked.pop(key, None)
        if demand is not None:
            self._take(key, demand)

    def done(self, key: Key) -> None:
        """Forget the action wherever it is: waiting, holding a reservation, or blocked."""
        self._blocked.pop(key, None)
        demand = self._holding.pop(key, None)
        if demand is not None:
            self._give_back(demand)
            return
        for waiting in self._waiting.values():
            for entry in waiting:
                if entry[0] == key:
                    waiting.remove(entry)
                    return

    def _queue_has_room(self, name: str) -> bool:
        queue = self._queues.get(name)
        limit = queue.concurrency if queue else None
        return limit is None or self._running.get(name, 0) < limit

    def _take(self, key: Key, demand: Demand) -> None:
        self._free = self._free - demand.resources
        self._running[demand.queue] = self._running.get(demand.queue, 0) + 1
        self._holding[key] = demand

    def _give_back(self, demand: Demand) -> None:
        self._free = self._free + demand.resources
        self._running[demand.queue] -= 1
