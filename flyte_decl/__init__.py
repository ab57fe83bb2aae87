"""flyte-decl: declarative task environments with locally enforced limits."""

__version__ = "0.1.0"
