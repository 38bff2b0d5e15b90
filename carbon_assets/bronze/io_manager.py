"""Bronze day files (gzip JSON, one per UTC day) for whole partition ranges.

UPathIOManager refuses outputs that span several partitions, which a single-run backfill
produces; this manager takes the range and handles each day's file itself.

The bronze asset stores days as they arrive (so a failure late in a long backfill keeps
everything fetched before it) and returns {"YYYY-MM-DD": path of the day's file} for every day
of its range; handle_output checks that each of them is on disk.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path

from dagster import ConfigurableIOManager, InputContext, MetadataValue, OutputContext

from carbon_assets.bronze.store import BronzeStore
from carbon_assets.lake import LakeResource
from carbon_assets.partitions import day_range


class BronzeJsonIOManager(ConfigurableIOManager):
    """Gzip JSON day files under {data_dir}/bronze/YYYY/YYYY-MM-DD.json.gz."""

    lake: LakeResource

    def handle_output(self, context: OutputContext, obj: Mapping[str, str]) -> None:
        store = BronzeStore(self.lake.bronze_dir, on_damaged=context.log.warning)
        days = day_range(context)
        keys = [day.isoformat() for day in days.days()] if days else sorted(obj)
        missing = [key for key in keys if key not in obj]
        if missing:
            raise ValueError(f"bronze output has no value for day(s) {missing[:10]} of its range")
        total_bytes = 0
        for key in keys:
            path = Path(obj[key])
            if path != store.path(dt.date.fromisoformat(key)) or not path.exists():
                raise ValueError(f"bronze day {key}: expected a stored file, got {obj[key]!r}")
            total_bytes += path.stat().st_size
        context.add_output_metadata(
            {
                "files": len(keys),
                "bytes_on_disk": total_bytes,
                "path": MetadataValue.path(str(store.root)),
            }
        )

    def load_input(self, context: InputContext) -> dict[str, str]:
        """{date: path} for every day of the requested range; a day never stored is an error."""
        store = BronzeStore(self.lake.bronze_dir, on_damaged=context.log.warning)
        paths = {day.isoformat(): store.path(day) for day in day_range(context).days()}
        absent = [key for key, path in paths.items() if not path.exists()]
        if absent:
            raise FileNotFoundError(
                f"no bronze file for {len(absent)} day(s) ({', '.join(absent[:5])}"
                f"{', ...' if len(absent) > 5 else ''}): "
                "materialize bronze_carbon_intensity for them first"
            )
        return {key: str(path) for key, path in paths.items()}
