"""How the driver matches an attempt's Ray task options to a node's resources and labels."""

from __future__ import annotations

import pytest

from flyte_decl.backends.ray.backend import label_selector_matches, ray_demand


@pytest.mark.parametrize(
    ("selector", "labels", "matches"),
    [
        ({"flyte-decl.queue": "highmem"}, {"flyte-decl.queue": "highmem"}, True),
        ({"flyte-decl.queue": "highmem"}, {"flyte-decl.queue": "gpu"}, False),
        ({"flyte-decl.queue": "highmem"}, {}, False),
        ({"flyte-decl.queue": "!highmem"}, {}, True),
        ({"flyte-decl.queue": "!highmem"}, {"flyte-decl.queue": "highmem"}, False),
        ({"zone": "in(a, b)"}, {"zone": "b"}, True),
        ({"zone": "in(a, b)"}, {"zone": "c"}, False),
        ({"zone": "!in(a,b)"}, {"zone": "c"}, True),
        ({"zone": "!in(a,b)"}, {"zone": "a"}, False),
        ({}, {"zone": "a"}, True),
    ],
)
def test_a_label_selector_matches_as_rays_does(
    selector: dict[str, str], labels: dict[str, str], matches: bool
):
    assert label_selector_matches(selector, labels) is matches


def test_task_options_become_rays_resource_names():
    options = {"num_cpus": 0.5, "memory": 2**30, "num_gpus": 1, "accelerator_type": "A100"}
    assert ray_demand(options) == {"CPU": 0.5, "memory": 2**30, "GPU": 1, "accelerator_type:A100": 0.001}
    assert ray_demand({"num_cpus": 0, "resources": {"TPU": 4}}) == {"TPU": 4}
