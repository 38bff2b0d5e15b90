"""Dagster's event log in PostgreSQL, with its connections kept open (dagster.yaml uses it).

dagster-postgres opens a new connection for every event it stores, and two for an event about
an asset. A partitioned backfill writes one planned event per asset and day before its run
starts: on the whole history that is over fifteen thousand events, and new connections were
most of their cost (docs/performance.md). The webserver avoids this by asking the storage
for a small pool (`optimize_for_webserver`); this class asks for the same pool in every process
that loads the instance: the CLI, the daemon and each run.
"""

from __future__ import annotations

from collections.abc import Mapping
from typing import Any

from dagster_postgres import PostgresEventLogStorage

# What the webserver uses by default. No statement timeout: a run's own writes may be large.
POOL_RECYCLE_SECONDS = 3600
POOL_MAX_OVERFLOW = 20
NO_STATEMENT_TIMEOUT = 0


class PooledPostgresEventLogStorage(PostgresEventLogStorage):
    """`PostgresEventLogStorage`, configured the same way, holding one connection open per
    process (more only while threads write at once)."""

    @classmethod
    def from_config_value(cls, inst_data: Any, config_value: Mapping[str, Any]):
        storage = super().from_config_value(inst_data, config_value)
        storage.optimize_for_webserver(
            statement_timeout=NO_STATEMENT_TIMEOUT,
            pool_recycle=POOL_RECYCLE_SECONDS,
            max_overflow=POOL_MAX_OVERFLOW,
        )
        return storage
