"""`dg dev` as a subprocess for the tests that drive the UI: bench/dagster_dev.py's, the one
the UI benchmark uses too (the tests may import from bench; bench imports nothing from them)."""

from bench.dagster_dev import REPO_ROOT, DagsterDev, GraphQLError, free_port

__all__ = ["REPO_ROOT", "DagsterDev", "GraphQLError", "free_port"]
