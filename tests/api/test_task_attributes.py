"""Flyte's task attributes (`task.resources`, `.cache`, `.reusable`, ...) and override's reuse rule."""

from __future__ import annotations

import pytest

from flyte_decl import Cache, PodTemplate, Resources, RetryStrategy, ReusePolicy, TaskEnvironment

env = TaskEnvironment(name="attrs", resources=Resources(cpu=1, memory="250Mi"), env_vars={"A": "1"})
pooled = TaskEnvironment(name="attrs-pool", resources=Resources(cpu=1), reusable=ReusePolicy(replicas=2))
pod = PodTemplate(labels={"team": "ml"})


@env.task(retries=2, pod_template=pod)
def plain(x: int) -> int:
    return x


@pooled.task
def warm(x: int) -> int:
    return x


def test_defaults_come_from_the_environment_and_flyte():
    assert plain.resources == Resources(cpu=1, memory="250Mi")
    assert plain.cache == Cache(behavior="disable")
    assert plain.retries == RetryStrategy(count=2)
    assert plain.reusable is None and plain.timeout is None and plain.interruptible is False
    assert plain.pod_template is pod
    assert plain.env_vars == {"A": "1"}
    assert warm.reusable == ReusePolicy(replicas=2)
    assert warm.reusable.replicas == (2, 2)


def test_override_sets_attributes_merging_resources_and_env_vars_as_a_run_does():
    new = plain.override(resources=Resources(memory="500Mi"), env_vars={"B": "2"}, cache="auto", retries=0)
    assert new.resources == Resources(cpu=1, memory="500Mi")
    assert new.env_vars == {"A": "1", "B": "2"}
    assert new.cache == Cache(behavior="auto")
    assert new.retries == RetryStrategy(count=0)
    assert new != plain
    assert plain.resources == Resources(cpu=1, memory="250Mi")  # the original is untouched


def test_a_short_name_override_keeps_the_pod_template():
    renamed = plain.override(short_name="again").override(short_name="twice")
    assert renamed.short_name == "twice"
    assert renamed.pod_template is pod


def test_reuse_off_then_resources_may_change_and_a_new_policy_blocks_them():
    off = warm.override(reusable="off", resources=Resources(cpu=2))
    assert off.reusable is None
    assert off.resources == Resources(cpu=2)
    assert off.override(resources=Resources(cpu=3)).resources == Resources(cpu=3)  # reuse stays off

    on = plain.override(reusable=ReusePolicy(replicas=2))
    with pytest.raises(ValueError) as caught:
        on.override(env_vars={"C": "3"})
    assert str(caught.value) == (
        "Cannot override env_vars when reusable is set: a reusable task's env_vars come from its environment "
        "(set reusable='off' in the same override to change them)"
    )


def test_one_secret_object_is_a_secret_request():
    from flyte_decl import Secret

    secret = Secret(key="api-key")
    holder = TaskEnvironment(name="attrs-secret", secrets=secret)
    assert holder.settings == {"secrets": ["API_KEY"]}

    @holder.task
    def uses() -> None: ...

    assert uses.secrets is secret
