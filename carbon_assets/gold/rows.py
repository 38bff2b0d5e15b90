"""Gold rows from one day of silver, as an Arrow table. Pure Python and Arrow, no Dagster, no Spark.

Spark runs this inside its Python workers (gold/assets.py), one silver day file at a time: a
day's aggregates need only that day's rows, and silver keeps each day in one file. Spark SQL
in a fresh JVM scanning the small files was several times slower than the workers silver has
already started (docs/performance.md).

Averages are exact: each value becomes an integer count of thousandths (the API sends whole
numbers and one-decimal shares, so nothing is lost), sums are integers, and the mean is rounded
half away from zero to the cent, as PostgreSQL's round() and DECIMAL(10,2) do.
"""

from __future__ import annotations

import datetime as dt
from decimal import Decimal

import pyarrow as pa
import pyarrow.compute as pc

from carbon_assets.lake_files import read_day_file
from carbon_assets.vocabulary import (
    FUEL_COLUMNS,
    INDEX_LABELS,
    MAX_INTENSITY,
    MAX_SHARE,
    REGION_IDS,
)

SCALE = 1000  # values are summed as integer thousandths
CENTS = Decimal("0.01")
AVERAGED = ("intensity_forecast", *FUEL_COLUMNS)
AVERAGE_NAMES = {"intensity_forecast": "intensity_avg"}
MONEY = pa.decimal128(10, 2)
SILVER_INPUT = (
    "regionid",
    "timestamp",
    "shortname",
    "dno",
    "intensity_index",
    *AVERAGED,
    "fetched_at",
)
# Gold holds the API's 18 regions only: a region id beyond them (the blocking silver check
# names it) never reaches gold, the warehouse or dim_region, even when gold is built alone.
KNOWN_REGION_IDS = pa.array(REGION_IDS, type=pa.int32())

GOLD_SCHEMA = pa.schema(
    [
        ("regionid", pa.int32()),
        ("date_recorded", pa.date32()),
        ("shortname", pa.string()),
        ("dno", pa.string()),
        ("intensity_avg", MONEY),
        ("index_mode", pa.string()),
        *((column, MONEY) for column in FUEL_COLUMNS),
        ("half_hours", pa.int32()),
        # The latest fetch behind the row's half-hours (provenance, as silver's fetched_at).
        ("fetched_at", pa.timestamp("us", tz="UTC")),
    ]
)
# Columns of the gold table and of carbon_data.carbon_intensity_daily, in order.
GOLD_COLUMNS: tuple[str, ...] = tuple(GOLD_SCHEMA.names)


def mean_to_the_cent(total: int, count: int) -> Decimal | None:
    """total / count thousandths, rounded half away from zero to 2 decimals, exactly."""
    if count == 0:
        return None
    # cents = total / (10 * count); halves go away from zero.
    cents = (2 * abs(total) + 10 * count) // (20 * count)
    return Decimal(-cents if total < 0 else cents) * CENTS


def index_mode(counts: dict[str, int]) -> str | None:
    """The most frequent label; a tie goes to the dirtier label (the conservative reading)."""
    if not counts:
        return None
    dirtiness = {label: rank for rank, label in enumerate(INDEX_LABELS)}
    return max(counts, key=lambda label: (counts[label], dirtiness.get(label, -1)))


def daily_rows(silver_day: pa.Table, date: dt.date) -> pa.Table:
    """One gold row per region from the silver rows of one date (the half-hours starting on it).

    shortname and dno are those of the day's last half-hour (region 6 was renamed over the
    years); half_hours counts the region's half-hours (48 on a complete day); fetched_at is
    the latest of theirs; a mean skips missing values and is NULL when there are none. Rows of
    regions other than the API's 18 are left out.

    Raises ValueError, naming the day and the first such value, when a value is outside its
    physical range: silver's blocking checks keep such a day from gold in a run, and this
    keeps it out when gold is built on its own (by hand, or by automation after that run).
    """
    day = silver_day.select(list(SILVER_INPUT))
    day = day.filter(pc.is_in(day.column("regionid"), value_set=KNOWN_REGION_IDS))
    refuse_values_out_of_range(day, date)
    day = day.sort_by([("regionid", "ascending"), ("timestamp", "ascending")])
    for column in AVERAGED:
        position = day.schema.get_field_index(column)
        day = day.set_column(position, column, _thousandths(day.column(column)))
    # Without threads, Arrow aggregates in row order: "last" is the day's last half-hour.
    regions = (
        day.group_by("regionid", use_threads=False)
        .aggregate(
            [
                ("regionid", "count", pc.CountOptions(mode="all")),
                ("shortname", "last"),
                ("dno", "last"),
                ("fetched_at", "max"),
                *((column, "sum") for column in AVERAGED),
                *((column, "count") for column in AVERAGED),
            ]
        )
        .to_pylist()
    )
    labels = _label_counts(day)
    return pa.Table.from_pylist([
        {
            "regionid": region["regionid"], "date_recorded": date,
            "shortname": region["shortname_last"], "dno": region["dno_last"],
            "index_mode": index_mode(labels.get(region["regionid"], {})),
            **{AVERAGE_NAMES.get(column, column):
               mean_to_the_cent(region[f"{column}_sum"] or 0, region[f"{column}_count"])
               for column in AVERAGED},
            "half_hours": region["regionid_count"],
            "fetched_at": region["fetched_at_max"],
        }
        for region in regions
    ], schema=GOLD_SCHEMA)  # fmt: skip


def refuse_values_out_of_range(day: pa.Table, date: dt.date) -> None:
    """ValueError naming the first value of `day` outside its physical range, if any."""
    for column, top in (
        ("intensity_forecast", MAX_INTENSITY),
        *((c, MAX_SHARE) for c in FUEL_COLUMNS),
    ):
        values = day.column(column).cast(pa.float64())
        outside = pc.fill_null(
            pc.invert(pc.and_(pc.greater_equal(values, 0), pc.less_equal(values, top))), False
        )
        if pc.any(outside).as_py():
            row = day.filter(outside).slice(0, 1).to_pylist()[0]
            start = row["timestamp"].strftime("%Y-%m-%dT%H:%MZ")
            raise ValueError(
                f"silver of {date} holds {column} {row[column]:g} for region {row['regionid']} "
                f"at {start}, outside 0-{top:g}: gold is not built from it (silver's checks "
                f"name every such value; run `carbon-assets backfill {date} {date}` once the "
                "API has corrected the day)"
            )


def _thousandths(values: pa.ChunkedArray) -> pa.ChunkedArray:
    """Values as whole thousandths (exact for the API's integers and one-decimal shares)."""
    scaled = pc.multiply(values.cast(pa.float64()), SCALE)
    return pc.round(scaled, round_mode="half_towards_infinity").cast(pa.int64())


def _label_counts(day: pa.Table) -> dict[int, dict[str, int]]:
    """{regionid: {index label: half-hours with it}}."""
    counted = day.group_by(["regionid", "intensity_index"], use_threads=False)
    counts: dict[int, dict[str, int]] = {}
    for row in counted.aggregate([("intensity_index", "count")]).to_pylist():
        if (label := row["intensity_index"]) is not None:
            counts.setdefault(row["regionid"], {})[label] = row["intensity_index_count"]
    return counts


def date_of_day_file(path: str) -> dt.date:
    """The date in a silver day file's folder: .../date_recorded=2024-01-01/part-0.parquet."""
    folder = path.rstrip("/").rsplit("/", 2)[-2]
    key, _, value = folder.partition("=")
    if key != "date_recorded":
        raise ValueError(f"{path} is not in a date_recorded=YYYY-MM-DD folder")
    return dt.date.fromisoformat(value)


def gold_rows_of_file(path: str) -> pa.Table:
    """The gold rows of the silver day file at `path` (Spark's workers call this)."""
    silver_day = read_day_file(path, columns=SILVER_INPUT)
    return daily_rows(silver_day, date_of_day_file(path))
