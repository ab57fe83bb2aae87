"""The local backend: attempts forked by warm per-environment fork servers on this machine."""

from flyte_decl.backends.local.backend import LocalBackend

__all__ = ["LocalBackend"]
