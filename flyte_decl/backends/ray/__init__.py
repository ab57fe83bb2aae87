"""The Ray backend (`flyte-decl run --backend ray`, the `flyte-decl[ray]` extra); see `backend` and `node`.

Importing this package does not import Ray: `RayCluster` does, and says how to install it if missing.
"""

from flyte_decl.backends.ray.backend import INSTALL_HINT, QUEUE_LABEL, RayBackend, RayCluster, import_ray

__all__ = ["INSTALL_HINT", "QUEUE_LABEL", "RayBackend", "RayCluster", "import_ray"]
