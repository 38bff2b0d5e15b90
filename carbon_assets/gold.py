"""Gold: daily aggregates per region and UTC date, computed with Spark from silver."""


from dagster import AssetExecutionContext, AutomationCondition, BackfillPolicy, asset
from pyspark.sql import Column, DataFrame
from pyspark.sql import functions as F
from pyspark.sql.types import DecimalType

from carbon_assets.partitions import daily_partitions
from carbon_assets.schema import FUEL_COLUMNS, GOLD_COLUMNS, INDEX_LABELS

MONEY = DecimalType(10, 2)
# The API sends integers and one-decimal shares; as decimal(10,1) they are exact, so the
# average of a day is exact too and rounds half-up like PostgreSQL's DECIMAL(10,2).
EXACT_INPUT = DecimalType(10, 1)


def exact_average(column: str) -> Column:
    """The mean, rounded half-up to 2 decimals, without binary floating point on the way."""
    return F.round(F.avg(F.col(column).cast(EXACT_INPUT)), 2).cast(MONEY)


def most_frequent_index() -> list[Column]:
    """Aggregates for index_mode: the most frequent label; a tie goes to the dirtier label.

    Reporting the higher-carbon label on a tie is the conservative choice for researchers.
    """
    return [
        F.sum(F.when(F.col("intensity_index") == label, 1).otherwise(0)).alias(f"_n{rank}")
        for rank, label in enumerate(INDEX_LABELS)
    ]


def pick_index_mode() -> Column:
    candidates = [
        F.struct(F.col(f"_n{rank}").alias("n"), F.lit(rank).alias("rank"), F.lit(label).alias("label"))
        for rank, label in enumerate(INDEX_LABELS)
    ]
    best = F.greatest(*candidates)
    return F.when(best["n"] > 0, best["label"]).alias("index_mode")


def aggregate_daily(silver: DataFrame) -> DataFrame:
    """One row per (regionid, date_recorded) from the half-hours that start on that date."""
    daily = silver.groupBy("date_recorded", "regionid").agg(
        # The name in force at the day's last half-hour (region 6 was renamed over the years).
        F.max_by("shortname", "timestamp").alias("shortname"),
        F.max_by("dno", "timestamp").alias("dno"),
        exact_average("intensity_forecast").alias("intensity_avg"),
        *(exact_average(column).alias(column) for column in FUEL_COLUMNS),
        F.count("*").cast("int").alias("half_hours"),
        *most_frequent_index(),
    )
    return daily.select(*(pick_index_mode() if c == "index_mode" else F.col(c) for c in GOLD_COLUMNS))


@asset(
    partitions_def=daily_partitions,
    backfill_policy=BackfillPolicy.single_run(),
    # Follows bronze: when the latest day's bronze is re-fetched, this layer is rebuilt.
    automation_condition=AutomationCondition.eager(),
    io_manager_key="spark_parquet_io_manager",
    metadata={"lake_folder": "gold", "csv_export": "gold_carbon_intensity_daily.csv"},
    kinds={"pyspark", "parquet", "csv"},
    group_name="carbon_intensity",
)
def gold_carbon_intensity_daily(
    context: AssetExecutionContext, silver_carbon_intensity: DataFrame
) -> DataFrame:
    """Daily carbon intensity per region: one row per region and UTC date.

    intensity_avg and fuel_biomass .. fuel_wind are means over the half-hours starting on
    that date, rounded half-up to 2 decimals exactly as PostgreSQL's DECIMAL(10,2) would;
    index_mode is the most frequent index label (a tie goes to the higher-carbon label);
    half_hours counts the half-hours behind the row (48 on a complete day). Stored as
    Parquet partitioned by date_recorded, with a CSV export of the whole table for analysts.
    """
    return aggregate_daily(silver_carbon_intensity)
