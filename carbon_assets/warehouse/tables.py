"""The warehouse's tables as the loader sees them (the SQL files in sql/ create them)."""

from __future__ import annotations

from dataclasses import dataclass

from carbon_assets.gold.national import NATIONAL_GOLD_COLUMNS
from carbon_assets.gold.rows import GOLD_COLUMNS
from carbon_assets.vocabulary import FUEL_COLUMNS

SCHEMA = "carbon_data"
AUDIT_COLUMNS: tuple[str, ...] = ("loaded_at", "updated_at")
# Written to dim_region with the rows of a region it does not know yet.
REGION_NAMES: tuple[str, ...] = ("shortname", "dno")
# Written by the load itself on every row: the carbon_data.fetch_source of the rows.
STAMPED: tuple[str, ...] = ("source_id",)
# Where a row's values came from, not the values: a re-fetch that brings the same values
# refreshes these but is no change of the row (its updated_at stays).
PROVENANCE: tuple[str, ...] = ("fetched_at", *STAMPED)


@dataclass(frozen=True)
class WarehouseTable:
    """One table the warehouse IO manager loads: a range of days replaced in one transaction."""

    name: str
    columns: tuple[str, ...]  # what a load writes, in order
    key: tuple[str, ...]  # the primary key
    whole_numbers: tuple[str, ...] = ()  # integers, never NULL
    whole_numbers_or_null: tuple[str, ...] = ()
    moments: tuple[str, ...] = ()  # TIMESTAMPTZ columns (NULL allowed)
    day_column: str = "date_recorded"

    @property
    def qualified(self) -> str:
        return f"{SCHEMA}.{self.name}"

    @property
    def value_columns(self) -> tuple[str, ...]:
        return tuple(c for c in self.columns if c not in self.key)

    @property
    def measured_columns(self) -> tuple[str, ...]:
        """The values proper: what a change of the row is judged by."""
        return tuple(c for c in self.value_columns if c not in PROVENANCE)

    @property
    def regional(self) -> bool:
        """Whether its rows are per region (their regions go into dim_region)."""
        return "regionid" in self.columns

    @property
    def input_columns(self) -> tuple[str, ...]:
        """The columns a load takes: the table's but those it stamps itself, and the region
        names dim_region needs (of a regional table)."""
        given = tuple(c for c in self.columns if c not in STAMPED)
        if not self.regional:
            return given
        return given + tuple(c for c in REGION_NAMES if c not in self.columns)

    @property
    def staged_columns(self) -> tuple[str, ...]:
        """The columns of the rows a load COPYs: the input's, then the stamped ones."""
        return self.input_columns + STAMPED

    @property
    def holds_region_names(self) -> bool:
        return all(c in self.columns for c in REGION_NAMES)


DAILY = WarehouseTable(
    "carbon_intensity_daily",
    columns=(*GOLD_COLUMNS, *STAMPED),
    key=("regionid", "date_recorded"),
    whole_numbers=("regionid", "half_hours"),
    moments=("fetched_at",),
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
        "fetched_at",
        *STAMPED,
    ),
    key=("regionid", "period_start"),
    whole_numbers=("regionid",),
    whole_numbers_or_null=("intensity_forecast",),
    moments=("period_start", "fetched_at"),
)
NATIONAL_HALF_HOURLY = WarehouseTable(
    "carbon_intensity_national_halfhourly",
    columns=(
        "period_start",
        "date_recorded",
        "intensity_forecast",
        "intensity_actual",
        "intensity_index",
        "fetched_at",
        *STAMPED,
    ),
    key=("period_start",),
    whole_numbers_or_null=("intensity_forecast", "intensity_actual"),
    moments=("period_start", "fetched_at"),
)
NATIONAL_DAILY = WarehouseTable(
    "carbon_intensity_national_daily",
    columns=(*NATIONAL_GOLD_COLUMNS, *STAMPED),
    key=("date_recorded",),
    whole_numbers=("half_hours", "actual_half_hours"),
    moments=("fetched_at",),
)
TABLES = {table.name: table for table in (DAILY, HALF_HOURLY, NATIONAL_HALF_HOURLY, NATIONAL_DAILY)}
