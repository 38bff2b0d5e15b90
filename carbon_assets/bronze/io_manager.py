"""Bronze day files (gzip JSON, one per UTC day) for whole partition ranges.

UPathIOManager refuses outputs that span several partitions, which a single-run backfill
produces; this manager takes the range and handles each day's file itself.

The bronze asset stores days as they arrive (so a failure late in a long backfill keeps
everything fetched before it) and returns {"YYYY-MM-DD": path or URL of the day's file} for
every day of its range; handle_output checks that each of them is stored.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping

from dagster import ConfigurableIOManager, InputContext, MetadataValue, OutputContext

from carbon_assets.bronze.store import BronzeStore
from carbon_assets.lake import LakeResource
from carbon_assets.partitions import day_range


class BronzeJsonIOManager(ConfigurableIOManager):
    """Gzip JSON day files under {lake}/{lake_folder}/YYYY/YYYY-MM-DD.json.gz, the folder named
    by the asset's `lake_folder` metadata (bronze, bronze_national)."""

    lake: LakeResource

    def _store(self, context: OutputContext | InputContext) -> BronzeStore:
        output = context.upstream_output if isinstance(context, InputContext) else context
        folder = self.lake.storage / output.definition_metadata["lake_folder"]
        return BronzeStore(folder, on_damaged=context.log.warning)

    def handle_output(self, context: OutputContext, obj: Mapping[str, str]) -> None:
        store = self._store(context)
        days = day_range(context)
        keys = [day.isoformat() for day in days.days()] if days else sorted(obj)
        missing = [key for key in keys if key not in obj]
        if missing:
            raise ValueError(f"bronze output has no value for day(s) {missing[:10]} of its range")
        sizes = store.sizes([dt.date.fromisoformat(key) for key in keys])
        for key in keys:
            day = dt.date.fromisoformat(key)
            if obj[key] != store.location(day) or day not in sizes:
                raise ValueError(f"bronze day {key}: expected a stored file, got {obj[key]!r}")
        context.add_output_metadata(
            {
                "files": len(keys),
                "bytes_on_disk": sum(sizes.values()),
                "path": MetadataValue.path(store.folder.url),
            }
        )

    def load_input(self, context: InputContext) -> dict[str, str]:
        """{date: path or URL} for every day of the requested range; a day never stored is an
        error."""
        store = self._store(context)
        days = day_range(context).days()
        stored = store.sizes(days)
        absent = [day.isoformat() for day in days if day not in stored]
        if absent:
            raise FileNotFoundError(
                f"no bronze file for {len(absent)} day(s) ({', '.join(absent[:5])}"
                f"{', ...' if len(absent) > 5 else ''}): "
                f"materialize {context.upstream_output.asset_key.to_user_string()} for them first"
            )
        return {day.isoformat(): store.location(day) for day in days}
