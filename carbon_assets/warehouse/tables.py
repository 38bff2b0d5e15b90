"""The warehouse's tables as the loader sees them (the SQL files in sql/ create them)."""

from __future__ import annotations

from dataclasses import dataclass

from carbon_assets.gold.rows import GOLD_COLUMNS
from carbon_assets.grid import FUEL_COLUMNS

SCHEMA = "carbon_data"
AUDIT_COLUMNS: tuple[str, ...] = ("loaded_at", "updated_at")
# Written to dim_region with the rows of a region it does not know yet.
REGION_NAMES: tuple[str, ...] = ("shortname", "dno")


@dataclass(frozen=True)
class WarehouseTable:
    """One table the warehouse IO manager loads: a range of days replaced in one transaction."""

    name: str
    columns: tuple[str, ...]  # what a load writes, in order
    key: tuple[str, ...]  # the primary key
    whole_numbers: tuple[str, ...] = ()  # integers, never NULL
    whole_numbers_or_null: tuple[str, ...] = ()
    moments: tuple[str, ...] = ()  # TIMESTAMPTZ columns
    day_column: str = "date_recorded"

    @property
    def qualified(self) -> str:
        return f"{SCHEMA}.{self.name}"

    @property
    def value_columns(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c not in self.key)

    @property
    def input_columns(self) -> tuple[str, ...]:
        """The columns a load takes: the table's, and the region names dim_region needs."""
        return self.columns + tuple(c for c in REGION_NAMES if c not in self.columns)

    @property
    def holds_region_names(self) -> bool:
        return all(c in self.columns for c in REGION_NAMES)


DAILY = WarehouseTable(
    "carbon_intensity_daily",
    columns=GOLD_COLUMNS,
    key=("regionid", "date_recorded"),
    whole_numbers=("regionid", "half_hours"),
)
HALF_HOURLY = WarehouseTable(
    "carbon_intensity_halfhourly",
    columns=(
        "regionid",
        "period_start",
        "date_recorded",
        "intensity_forecast",
        "intensity_index",
        *FUEL_COLUMNS,
    ),
    key=("regionid", "period_start"),
    whole_numbers=("regionid",),
    whole_numbers_or_null=("intensity_forecast",),
    moments=("period_start",),
)
TABLES = {table.name: table for table in (DAILY, HALF_HOURLY)}
