"""Bronze day files (gzip JSON, one per UTC day) for whole partition ranges.

UPathIOManager refuses outputs that span several partitions, which a single-run backfill
produces; this manager takes the range and handles each day's file itself.

The bronze asset's value is {"YYYY-MM-DD": day} for every day of its range, where a day is
either a day document still to store or the path of a file already stored. The asset stores
days as they arrive (so a failure late in a long backfill keeps everything fetched before
it), and hands over paths; handle_output checks that each day of the range is on disk.
"""

from __future__ import annotations

import datetime as dt
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from dagster import ConfigurableIOManager, InputContext, MetadataValue, OutputContext

from carbon_assets.lake import LakeResource

BronzeDays = Mapping[str, Any]  # date -> path of a stored file, or a day document to store


class BronzeJsonIOManager(ConfigurableIOManager):
    """Gzip JSON day files under {data_dir}/bronze/YYYY/YYYY-MM-DD.json.gz."""

    lake: LakeResource

    def handle_output(self, context: OutputContext, obj: BronzeDays) -> None:
        store = self.lake.bronze
        keys = list(context.asset_partition_keys) if context.has_asset_partitions else sorted(obj)
        missing = [key for key in keys if key not in obj]
        if missing:
            raise ValueError(f"bronze output has no value for day(s) {missing[:10]} of its range")
        total_bytes = 0
        for key in keys:
            value = obj[key]
            if isinstance(value, Mapping):
                total_bytes += store.write(value)
            else:
                path = Path(value)
                if path != store.path(dt.date.fromisoformat(key)) or not path.exists():
                    raise ValueError(f"bronze day {key}: expected a stored file, got {value!r}")
                total_bytes += path.stat().st_size
        context.add_output_metadata(
            {"files": len(keys), "bytes_on_disk": total_bytes, "path": MetadataValue.path(str(store.root))}
        )

    def load_input(self, context: InputContext) -> dict[str, str]:
        """{date: path} for every day of the requested range; a day never stored is an error."""
        store = self.lake.bronze
        keys = list(context.asset_partition_keys)
        paths = {key: store.path(dt.date.fromisoformat(key)) for key in keys}
        absent = [key for key, path in paths.items() if not path.exists()]
        if absent:
            raise FileNotFoundError(
                f"no bronze file for {len(absent)} day(s) ({', '.join(absent[:5])}"
                f"{', ...' if len(absent) > 5 else ''}): materialize bronze_carbon_intensity for them first"
            )
        return {key: str(path) for key, path in paths.items()}
