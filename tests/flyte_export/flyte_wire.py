"""What Flyte's own serializer (the one `flyte deploy` calls) puts on the wire for a task, offline."""

from __future__ import annotations

from pathlib import Path
from typing import Any

from flyte._internal.runtime.task_serde import translate_task_to_wire
from flyte.models import SerializationContext
from flyteidl2.core import tasks_pb2


def serialize(task: Any, root: Path) -> Any:
    """The wire TaskSpec `flyte deploy` would send for `task` (a local context; no client, no upload)."""
    return translate_task_to_wire(task, SerializationContext(version="v1", root_dir=root))


def wire(task: Any, root: Path) -> dict[str, Any]:
    """The deployed settings of a task, read back from its serialized TaskSpec."""
    template = serialize(task, root).task_template
    container, metadata = template.container, template.metadata

    def entries(items: Any) -> dict[str, str]:
        return {tasks_pb2.Resources.ResourceName.Name(e.name): e.value for e in items}

    return {
        "requests": entries(container.resources.requests),
        "limits": entries(container.resources.limits),
        "env": {kv.key: kv.value for kv in container.env},
        "secrets": [(s.key, s.env_var) for s in template.security_context.secrets],
        "retries": metadata.retries.retries,
        "backoff": (
            (
                metadata.retries.backoff.base.seconds,
                metadata.retries.backoff.factor,
                metadata.retries.backoff.cap.seconds,
            )
            if metadata.retries.HasField("backoff")
            else None
        ),
        "timeout": metadata.timeout.seconds if metadata.HasField("timeout") else None,
        "cache": metadata.discoverable,
        "interruptible": metadata.interruptible,
        "reuse": (
            (
                template.reuse_policy.min_replicas,
                template.reuse_policy.max_replicas,
                template.reuse_policy.idle_ttl.seconds,
            )
            if template.HasField("reuse_policy")
            else None
        ),
        "gpu": template.extended_resources.gpu_accelerator.device or None,
        "image": container.image,
        "resolver": list(container.args)[list(container.args).index("--resolver") + 1 :],
    }
