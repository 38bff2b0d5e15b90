"""Resources that are not IO managers: the warehouse database for checks and tools.

(The API client lives in api_client.py, the lake in lake.py and Spark in spark.py, each
beside the code that knows its format.)
"""

from __future__ import annotations

import sqlalchemy
from dagster import ConfigurableResource
from pydantic import Field

from carbon_assets.database import create_warehouse_engine, ensure_schema, mask_url, resolve_warehouse_url


class WarehouseDatabase(ConfigurableResource):
    """The warehouse's PostgreSQL: CARBON_DATABASE_URL, or the embedded server under data_dir."""

    database_url: str | None = Field(default=None, description="CARBON_DATABASE_URL; unset = embedded")
    data_dir: str = Field(default="data", description="CARBON_DATA_DIR (the embedded server's home)")

    def engine(self) -> sqlalchemy.Engine:
        """A pooled, pre-pinging engine with the schema from sql/ applied."""
        engine = create_warehouse_engine(resolve_warehouse_url(self.database_url, self.data_dir))
        ensure_schema(engine)
        return engine

    def masked_url(self) -> str:
        return mask_url(resolve_warehouse_url(self.database_url, self.data_dir))
