"""The published schema equals the model, and validating with it agrees with `flyte-decl validate`."""

import json
from pathlib import Path

import jsonschema
import pytest
import yaml

from flyte_decl.config.load import check
from flyte_decl.config.schema import json_schema, schema_text

ROOT = Path(__file__).resolve().parents[2]


def test_checked_in_schema_matches_the_model():
    checked_in = (ROOT / "schemas" / "environments.schema.json").read_text()
    assert checked_in == schema_text(), "run: flyte-decl schema > schemas/environments.schema.json"


def test_schema_is_2020_12_with_a_versioned_id_and_descriptions():
    schema = json_schema()
    jsonschema.Draft202012Validator.check_schema(schema)
    assert schema["$id"].endswith("environments.v1.schema.json")
    missing = []

    def walk(node, where):
        if isinstance(node, dict):
            for name, prop in node.get("properties", {}).items():
                if "description" not in prop:
                    missing.append(f"{where}.{name}")
            for key, child in node.items():
                walk(child, f"{where}.{key}")
        elif isinstance(node, list):
            for child in node:
                walk(child, where)

    walk(schema, "")
    assert missing == []


def test_schema_command_prints_it(flyte_decl):
    result = flyte_decl("schema")
    assert result.code == 0
    assert json.loads(result.out) == json_schema()


AGREEMENT = [
    ("version: 1\n", True),
    ((ROOT / "environments.yaml").read_text(), True),
    ("version: 1\nenvironments: {Bad: {}}\n", False),
    ("version: 1\ndefaults: {resources: {memory: 1024}}\n", False),
    ("version: 1\ndefaults: {resources: {memory: 1gi}}\n", False),
    ("version: 1\ndefaults: {resources: {memory: 500m}}\n", False),
    ("version: 1\ndefaults: {resources: {cpu: 500m, memory: 1.5Gi}}\n", True),
    ("version: 1\ndefaults: {resources: {cpu: {request: 1, limit: 2}}}\n", True),
    ("version: 1\ndefaults: {timeout: 1h30m, retries: 3}\n", True),
    ("version: 1\ndefaults: {timeout: 1h 30m}\n", False),
    ("version: 1\ndefaults: {env_vars: {1X: a}}\n", False),
    ("version: 1\ndefaults: {env_vars: {X: 1}}\n", False),
    ("version: 1\ndefaults: {memory: 1Gi}\n", False),
    ("version: 1\nqueues: {q: {concurrency: 0}}\n", False),
    ("version: 2\n", False),
    ("version: 1\noverrides: [{match: {task: 'a*'}, set: {cache: auto}}]\n", True),
]


@pytest.mark.parametrize(("text", "valid"), AGREEMENT)
def test_json_schema_and_model_agree_on_shape(write, text, valid):
    data = yaml.safe_load(text)
    schema_ok = jsonschema.Draft202012Validator(json_schema()).is_valid(data)
    path = write(text)
    checked = check([path])
    shape_errors = [
        p
        for p in checked.errors
        if "unknown queue" not in p.message and "missing required key 'fn'" not in p.message
    ]
    assert schema_ok is valid
    assert (not shape_errors) is valid
