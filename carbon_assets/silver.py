"""Silver: one typed row per (region, half-hour), flattened from bronze with Spark."""


from collections.abc import Sequence
from functools import reduce
from pathlib import Path

from dagster import AssetExecutionContext, AutomationCondition, BackfillPolicy, asset
from pyspark.sql import Column, DataFrame, SparkSession, Window
from pyspark.sql import functions as F
from pyspark.sql.types import (
    ArrayType,
    BooleanType,
    DoubleType,
    IntegerType,
    StringType,
    StructField,
    StructType,
)

from carbon_assets.lake import read_head
from carbon_assets.partitions import daily_partitions
from carbon_assets.schema import FUELS
from carbon_assets.spark import CarbonSparkResource

GENERATION_MIX = ArrayType(StructType([
    StructField("fuel", StringType()),
    StructField("perc", DoubleType()),
]))
REGION_RECORD = StructType([
    StructField("regionid", IntegerType()),
    StructField("dnoregion", StringType()),
    StructField("shortname", StringType()),
    # Doubles read both 176 and 176.0; silver casts the forecast back to an integer.
    StructField("intensity", StructType([
        StructField("forecast", DoubleType()),
        StructField("index", StringType()),
    ])),
    StructField("generationmix", GENERATION_MIX),
])
PERIOD_RECORD = StructType([
    StructField("from", StringType()),
    StructField("to", StringType()),
    StructField("regions", ArrayType(REGION_RECORD)),
])
# The bronze day document (see bronze_days.py), given explicitly: no schema-inference pass.
BRONZE_DAY = StructType([
    StructField("date", StringType()),
    StructField("complete", BooleanType()),
    StructField("half_hours", IntegerType()),
    StructField("sources", ArrayType(StructType([
        StructField("url", StringType()),
        StructField("status", IntegerType()),
        StructField("attempts", IntegerType()),
        StructField("fetched_at", StringType()),
        StructField("data", ArrayType(PERIOD_RECORD)),
    ]))),
])

SILVER_COLUMNS = (
    "timestamp", "date_recorded", "regionid", "shortname", "dno",
    "intensity_forecast", "intensity_index", *(f"fuel_{fuel}" for fuel in FUELS),
    "extra_fuels", "missing_fuels", "fetched_at",
)


def read_bronze(spark: SparkSession, paths: Sequence[str]) -> DataFrame:
    """The bronze day documents at `paths`, one row per file (FAILFAST: a bad file stops the run)."""
    return (
        spark.read.schema(BRONZE_DAY)
        .option("multiLine", True)
        .option("mode", "FAILFAST")
        .json(list(paths))
    )


def none_if_empty(collection: Column) -> Column:
    return F.when(F.size(collection) > 0, collection)


def flatten_bronze(bronze_days: DataFrame, deduplicate: bool = True) -> DataFrame:
    """One row per (regionid, half-hour) with the nine fuels as columns.

    The mix becomes a map and each fuel is one lookup in it, instead of exploding every
    (region, half-hour, fuel) into its own row and pivoting back (8.7M rows for three years).

    Each half-hour appears once even when bronze holds it twice (a re-fetch kept alongside an
    earlier one, or the API repeating a period with other values): the latest fetch wins,
    then the record that comes later in the stored order (later source, later position).
    `deduplicate=False` skips that step, for files known to hold each half-hour once.
    """
    sources = bronze_days.select(
        F.to_date("date").alias("file_date"),
        F.posexplode("sources").alias("source_position", "source"),
    )
    periods = sources.select(
        "file_date", "source_position",
        F.to_timestamp("source.fetched_at").alias("fetched_at"),
        F.posexplode("source.data").alias("record_position", "period"),
    )
    regions = periods.select(
        "file_date", "source_position", "record_position", "fetched_at",
        F.col("period.from").alias("period_from"),
        F.explode("period.regions").alias("region"),
    )
    mix = F.map_from_entries("region.generationmix")
    known = F.array(*(F.lit(fuel) for fuel in FUELS))
    rows = regions.select(
        # The API's "2024-01-01T00:00Z" is UTC; the X pattern reads the Z as the zone.
        F.to_timestamp("period_from", "yyyy-MM-dd'T'HH:mmX").alias("timestamp"),
        F.to_date(F.substring("period_from", 1, 10)).alias("date_recorded"),
        F.col("region.regionid").alias("regionid"),
        F.col("region.shortname").alias("shortname"),
        F.col("region.dnoregion").alias("dno"),
        F.round("region.intensity.forecast").cast(IntegerType()).alias("intensity_forecast"),
        F.col("region.intensity.index").alias("intensity_index"),
        *(mix[fuel].alias(f"fuel_{fuel}") for fuel in FUELS),
        # Schema drift is kept, never dropped: unknown fuels here, missing ones listed. NULL
        # when there are none (nearly always): empty maps cost a third of silver's time to move.
        none_if_empty(F.map_filter(mix, lambda fuel, _: ~F.array_contains(known, fuel))).alias("extra_fuels"),
        none_if_empty(F.filter(known, lambda fuel: ~F.map_contains_key(mix, fuel))).alias("missing_fuels"),
        "fetched_at", "file_date", "source_position", "record_position",
    ).where(F.col("date_recorded") == F.col("file_date"))
    if not deduplicate:
        return rows.select(*SILVER_COLUMNS)

    # Repartition by day first: the window below and the partitioned write reuse it.
    latest_first = Window.partitionBy("date_recorded", "regionid", "timestamp").orderBy(
        F.col("fetched_at").desc_nulls_last(),
        F.col("source_position").desc(),
        F.col("record_position").desc(),
    )
    return (
        rows.repartition("date_recorded")
        .withColumn("_rank", F.row_number().over(latest_first))
        .where(F.col("_rank") == 1)
        .select(*SILVER_COLUMNS)
    )


def silver_from_bronze(spark: SparkSession, paths: Sequence[str]) -> DataFrame:
    """Silver rows from the bronze day files at `paths`.

    Deduplicating shuffles and sorts every row. A file that says (in its head) it is complete
    with exactly 48 x 18 region records cannot hold a (region, half-hour) twice, so its rows
    skip that step; the others (incomplete days, re-fetches kept side by side, periods the API
    repeated) go through it. Each file is read once, in one of the two groups.
    """
    once, maybe_twice = [], []
    for path in paths:
        head = read_head(Path(path))
        (once if head is not None and head.holds_each_half_hour_once else maybe_twice).append(path)
    parts = [flatten_bronze(read_bronze(spark, group), deduplicate=group is maybe_twice)
             for group in (once, maybe_twice) if group]
    if not parts:
        return flatten_bronze(read_bronze(spark, []))
    return reduce(DataFrame.unionByName, parts)


@asset(
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    # Follows bronze: when the latest day's bronze is re-fetched, this layer is rebuilt.
    automation_condition=AutomationCondition.eager(),
    io_manager_key="spark_parquet_io_manager",
    metadata={"lake_folder": "silver"},
    kinds={"pyspark", "parquet"},
    group_name="carbon_intensity",
)
def silver_carbon_intensity(
    context: AssetExecutionContext,
    pyspark: CarbonSparkResource,
    bronze_carbon_intensity: dict[str, str],
) -> DataFrame:
    """Typed half-hourly carbon intensity: one row per region and half-hour (UTC).

    Columns: timestamp, date_recorded, regionid, shortname, dno, intensity_forecast,
    intensity_index, the nine fuel shares fuel_biomass .. fuel_wind (percent), extra_fuels
    (any fuel the API adds, kept rather than dropped; NULL when none), missing_fuels (NULL when
    none) and fetched_at (lineage).
    A half-hour fetched twice keeps its latest fetch. Stored as Parquet partitioned by
    date_recorded; re-materializing a range replaces exactly those days.
    """
    spark = pyspark.spark_session
    paths = [bronze_carbon_intensity[key] for key in sorted(bronze_carbon_intensity)]
    context.log.info(f"Flattening {len(paths)} bronze day files with Spark")
    return silver_from_bronze(spark, paths)
