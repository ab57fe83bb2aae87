"""Tests under tests/ray run flyte-decl's Ray backend on a real local Ray cluster (marker `ray`).

They are deselected from the main run (`-m 'not vm and not ray'`); run them with
``python -m pytest -m ray tests/ray`` after ``pip install -e '.[ray]'``. One cluster serves the
session: a head and three worker nodes (`ray.cluster_utils.Cluster`), one worker labelled for queue
`highmem`, one with a (declared, not real) A100 GPU labelled as Ray labels a GPU node, with Ray's
files under a temporary folder.
"""

from __future__ import annotations

import os
import tempfile
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest


def pytest_collection_modifyitems(config: pytest.Config, items: list[pytest.Item]) -> None:
    here = os.path.dirname(__file__)
    for item in items:
        if str(item.path).startswith(here):
            item.add_marker(pytest.mark.ray)


class TestCluster:
    """The running cluster: its address and the Ray node id of each node by role."""

    def __init__(self, cluster: Any, nodes: dict[str, str]) -> None:
        self.cluster = cluster
        self.address: str = cluster.address
        self.nodes = nodes  # "head", "worker", "highmem", "gpu" -> Ray node id


@pytest.fixture(scope="session")
def ray_cluster() -> Iterator[TestCluster]:
    ray = pytest.importorskip("ray", reason="the Ray tests need: pip install -e '.[ray]'")
    from ray.cluster_utils import Cluster

    # Short: Ray's socket paths live under it and must fit in 107 bytes.
    tmp = tempfile.mkdtemp(prefix="fdray-", dir="/tmp")
    os.environ["RAY_TMPDIR"] = tmp
    os.makedirs(os.path.join(tmp, "ray"))
    system = {"object_store_memory": 80 * 2**20}
    cluster = Cluster(
        initialize_head=True,
        head_node_args={"num_cpus": 1, **system},
    )
    worker = cluster.add_node(num_cpus=2, **system)
    highmem = cluster.add_node(num_cpus=1, labels={"flyte-decl.queue": "highmem"}, **system)
    # What Ray gives a node with one A100 (found from the device there; declared here).
    a100 = {"labels": {"ray.io/accelerator-type": "A100"}, "resources": {"accelerator_type:A100": 1}}
    gpu = cluster.add_node(num_cpus=1, num_gpus=1, **a100, **system)
    cluster.wait_for_nodes()
    nodes = {"head": cluster.head_node.node_id, "worker": worker.node_id, "highmem": highmem.node_id,
             "gpu": gpu.node_id}  # fmt: skip
    try:
        yield TestCluster(cluster, nodes)
    finally:
        if ray.is_initialized():
            ray.shutdown()
        cluster.shutdown()
        os.environ.pop("RAY_TMPDIR", None)
        import shutil

        shutil.rmtree(tmp, ignore_errors=True)


@pytest.fixture(scope="module")
def ray_backend(ray_cluster: TestCluster) -> Iterator[Any]:
    """A `RayCluster` connected to the session's cluster, for the tests of one module."""
    from flyte_decl.backends.ray import RayCluster

    cluster = RayCluster(ray_cluster.address)
    try:
        yield cluster
    finally:
        cluster.close()


@pytest.fixture
def workdir(tmp_path: Path) -> Path:
    return tmp_path
