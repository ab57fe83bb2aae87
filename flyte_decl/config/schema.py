"""The published JSON Schema, generated from the pydantic model.

flyte-decl schema > schemas/environments.schema.json
"""

from __future__ import annotations

import json
from functools import cache
from typing import Any

from flyte_decl.config.model import FORMAT_VERSION, Document

SCHEMA_ID = f"https://flyte-decl.dev/schemas/environments.v{FORMAT_VERSION}.schema.json"


@cache
def json_schema() -> dict[str, Any]:
    """The JSON Schema (2020-12) of the environments file."""
    generated = Document.model_json_schema(mode="validation")
    _close_pattern_maps(generated)
    return {
        "$schema": "https://json-schema.org/draft/2020-12/schema",
        "$id": SCHEMA_ID,
        **generated,
    }


def schema_text() -> str:
    return json.dumps(json_schema(), indent=2, sort_keys=False) + "\n"


def _close_pattern_maps(node: Any) -> None:
    """Name-keyed maps (environments, tasks, env_vars) refuse keys that miss the name pattern, as the model does."""
    if isinstance(node, dict):
        if "patternProperties" in node and "additionalProperties" not in node:
            node["additionalProperties"] = False
        for child in node.values():
            _close_pattern_maps(child)
    elif isinstance(node, list):
        for child in node:
            _close_pattern_maps(child)
