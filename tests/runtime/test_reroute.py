"""A declared function becomes an action in its own environment through every reference a caller holds."""

from __future__ import annotations

import inspect
import json
import sys

import pytest

from flyte_decl.runtime.reroute import reroute

MODULE = """
import asyncio
import functools
import os

REGISTRY = {}


def register(function):
    REGISTRY[function.__name__] = function
    return function


@register
def hog(tag):
    return [tag, os.environ["WHERE"], os.getpid()]


alias = hog
HANDLERS = {"h": hog}
partial_hog = functools.partial(hog, "partial")


def with_default(tag, f=hog):
    return f(tag)


def _closure():
    f = hog
    return lambda tag: f(tag)


closure = _closure()


@functools.lru_cache(maxsize=None)
def cached(tag):
    return [tag, os.environ["WHERE"], os.getpid()]


class Tools:
    @staticmethod
    def static(tag):
        return [tag, os.environ["WHERE"], os.getpid()]

    @classmethod
    def build(cls, tag):
        return [f"{tag}:{cls.__name__}", os.environ["WHERE"], os.getpid()]


async def ahog(tag):
    return [tag, os.environ["WHERE"], os.getpid()]


ASYNC_HANDLERS = [ahog]


def wf():
    calls = [
        hog("attribute"), alias("alias"), HANDLERS["h"]("dict"), partial_hog(), with_default("default"),
        REGISTRY["hog"]("registry"), closure("closure"), cached("lru_cache"), Tools.static("static"),
        Tools.build("classmethod"), asyncio.run(ASYNC_HANDLERS[0]("async")),
    ]
    return {"wf": [os.environ["WHERE"], os.getpid()], "calls": calls}


def greedy():
    return len(bytearray(300 * 1024 * 1024))


def calls_greedy():
    return HANDLERS_GREEDY["g"]()


HANDLERS_GREEDY = {"g": greedy}
"""

CONFIG = """
version: 1
environments:
  main:
    env_vars: {WHERE: main}
    tasks:
      wf: {fn: "shapes_rt:wf"}
      calls_greedy: {fn: "shapes_rt:calls_greedy"}
  small:
    env_vars: {WHERE: small}
    resources: {memory: 50Mi}
    tasks:
      hog: {fn: "shapes_rt:hog"}
      cached: {fn: "shapes_rt:cached"}
      static: {fn: "shapes_rt:Tools.static"}
      build: {fn: "shapes_rt:Tools.build"}
      ahog: {fn: "shapes_rt:ahog"}
      greedy: {fn: "shapes_rt:greedy"}
"""


@pytest.fixture
def project(write, tmp_path):
    write(MODULE, "shapes_rt.py")
    write(CONFIG)
    yield tmp_path
    sys.modules.pop("shapes_rt", None)
    while str(tmp_path) in sys.path:
        sys.path.remove(str(tmp_path))


def test_every_reference_to_a_declared_function_starts_an_action_in_its_environment(project, flyte_decl):
    result = flyte_decl("run", "wf", "--json")
    assert result.code == 0, result.err
    run = json.loads(result.out)
    outputs = run["outputs"]
    tags = [call[0] for call in outputs["calls"]]
    assert tags == ["attribute", "alias", "dict", "partial", "default", "registry", "closure", "lru_cache",
                    "static", "classmethod:Tools", "async"]  # fmt: skip
    assert {call[1] for call in outputs["calls"]} == {"small"}
    pids = {call[2] for call in outputs["calls"]}
    assert len(pids) == 11 and outputs["wf"][1] not in pids  # each call its own process
    children = sorted(a["task"] for a in run["actions"] if a["task"] != "main.wf")
    assert children == sorted(
        ["small.hog"] * 7 + ["small.cached", "small.static", "small.build", "small.ahog"]
    )


def test_a_handler_dict_does_not_escape_the_memory_limit(project, flyte_decl):
    result = flyte_decl("run", "calls_greedy", "--json")
    assert result.code == 1
    run = json.loads(result.out)
    greedy = next(a for a in run["actions"] if a["task"] == "small.greedy")
    assert (greedy["phase"], greedy["kind"]) == ("failed", "oom_killed")


def test_reroute_covers_references_made_before_it_and_keeps_the_original():
    def square(i: int, power: int = 2) -> int:
        return i**power

    held = {"f": square}
    copy = reroute(square, lambda args, kwargs: ("rerouted", args, kwargs), "env.square")
    assert held["f"](3, power=3) == ("rerouted", (3,), {"power": 3})
    assert copy(3) == 9
    assert inspect.signature(square) == inspect.signature(copy)  # what frameworks see is unchanged
    assert list(inspect.signature(square).parameters) == ["i", "power"]
