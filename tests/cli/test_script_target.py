"""`run FILE.py TASK` and `explain FILE.py TASK`: how TASK names a task declared in the file."""

from __future__ import annotations

PROGRAM = """
import flyte_decl as flyte

env = flyte.TaskEnvironment(name="env2")


@env.task
def square(i: int = 3) -> int:
    return i * i
"""


def test_a_task_of_the_file_is_named_by_its_variable_or_env_task(write, flyte_decl) -> None:
    write(PROGRAM, "prog.py")
    for name in ("square", "env2.square"):
        result = flyte_decl("explain", "prog.py", name)
        assert (result.code, result.out.splitlines()[0]) == (
            0,
            "env2.square  fn=prog:square  declared at prog.py:6",
        )


def test_a_file_with_no_task_says_so(write, flyte_decl) -> None:
    write("def main():\n    pass\n", "plain.py")
    result = flyte_decl("explain", "plain.py", "main")
    assert (result.code, result.err) == (
        2,
        "error: plain.py has no task 'main' (it declares none: decorate a function with @env.task)\n",
    )
