"""`validate` resolves every task but keeps no effective fields; YAML is composed as it is walked."""

from __future__ import annotations

import pytest

from flyte_decl.config.load import check
from flyte_decl.config.read import read_yaml
from flyte_decl.problems import ConfigLoadError

CONFIG = """
version: 1
environments:
  a:
    resources:
      memory: {request: 2Gi}
    tasks:
      t:
        fn: "m:t"
        resources: {memory: {limit: 1Gi}}
      u: {fn: "m:u"}
overrides:
  - {match: {task: nothing}, set: {timeout: 1h}}
"""


def test_without_fields_every_task_is_still_checked(write, tmp_path):
    write(CONFIG)
    full = check(cwd=tmp_path)
    lean = check(cwd=tmp_path, keep_fields=False)
    assert [str(p) for p in lean.problems] == [str(p) for p in full.problems]
    assert [p.message for p in lean.problems] == [
        "request 2Gi (environment a) is above the limit 1Gi (task)",
        "selector matches no task",
    ]
    assert lean.resolved is not None and full.resolved is not None
    assert [(t.name, t.fn, t.mark) for t in lean.resolved.tasks.values()] == [
        (t.name, t.fn, t.mark) for t in full.resolved.tasks.values()
    ]
    assert all(t.fields == {} for t in lean.resolved.tasks.values())
    assert full.resolved.tasks["a.u"].value("resources.memory.request") == "2Gi"


def test_an_anchor_inside_a_subtree_too_deep_to_walk_is_still_defined():
    text = "x: " + "[" * 40 + "&deep 1" + "]" * 40 + "\ny: *deep\n"
    with pytest.raises(ConfigLoadError) as raised:
        read_yaml(text, "environments.yaml")
    assert [str(p) for p in raised.value.problems] == [
        "environments.yaml:1:36: error: x"
        + "[0]" * 32
        + ": nested more than 32 levels deep (flatten the structure)"
    ]


def test_aliases_and_merges_keep_their_marks():
    doc = read_yaml("a: &x {b: 1}\nm:\n  <<: *x\n  c: [*x]\n", "environments.yaml")
    assert doc.data == {"a": {"b": 1}, "m": {"c": [{"b": 1}], "b": 1}}
    assert str(doc.mark(("m", "b"))) == "environments.yaml:1:11"
    assert str(doc.mark(("m", "c", 0, "b"))) == "environments.yaml:1:11"
    assert str(doc.key_mark(("m", "c"))) == "environments.yaml:4:3"
