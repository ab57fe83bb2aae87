"""`explain TASK` checks the whole file but resolves only TASK: its own problems fail it, other tasks' do not."""

from __future__ import annotations

from flyte_decl.config.load import check

CONFIG = """
version: 1
environments:
  a:
    resources: {memory: {request: 2Gi}}
    tasks:
      t: {fn: "m:t", resources: {memory: {limit: 1Gi}}}
      u: {fn: "m:u"}
  b:
    tasks:
      u: {fn: "m:v"}
"""

T_PROBLEM = (
    "environments.yaml:4:35: error: a.t.resources.memory: request 2Gi (environment a) is above the "
    "limit 1Gi (task) (a request cannot exceed its limit)"
)


def test_explain_resolves_only_its_task(write, tmp_path):
    write(CONFIG)
    checked = check(cwd=tmp_path, root_task="a.u", only_root=True)
    assert checked.resolved is not None and list(checked.resolved.tasks) == ["a.u"]
    assert checked.errors == []
    everything = check(cwd=tmp_path, root_task="a.u")
    assert everything.resolved is not None and len(everything.resolved.tasks) == 3
    assert [str(p).rpartition("/")[2] for p in everything.errors] == [T_PROBLEM]


def test_explain_of_a_task_shows_it_while_another_task_has_a_problem(write, flyte_decl):
    write(CONFIG)
    result = flyte_decl("explain", "a.u")
    assert result.code == 0, result.err
    assert result.out.splitlines()[0] == "a.u  fn=m:u  declared at environments.yaml:7"


def test_explain_of_a_task_with_a_problem_fails_with_it(write, flyte_decl):
    write(CONFIG)
    result = flyte_decl("explain", "t")
    assert (result.code, result.err.strip()) == (2, T_PROBLEM)


def test_explain_of_an_unknown_or_ambiguous_task_names_every_declared_task(write, flyte_decl):
    write(CONFIG)
    result = flyte_decl("explain", "x")
    assert (result.code, result.err.strip()) == (
        2,
        "error: unknown task 'x' (expected one of: a.t, a.u, b.u, t, u)",
    )
    result = flyte_decl("explain", "u")
    assert (result.code, result.err.strip()) == (
        2,
        "error: task 'u' is ambiguous: a.u, b.u (use the full ENV.TASK name)",
    )
