"""Every query of the README's "Query the data" runs against the demo's month and answers.

The demo's data is made the way `make demo` makes it (all assets for January 2024 from the
emulator with the demo's seed, then the dbt models); the PostgreSQL queries run on the
warehouse, the DuckDB one over the lake, with `data/` pointing at it. The README's queries that
average over regions keep to the 14 DNO regions, so the greenest-hour queries answer one row
per DNO region, and the model's greenest hours agree with the hand-written query's.
"""

from __future__ import annotations

import re

import duckdb
import pytest
import sqlalchemy

from carbon_assets.analytics import build_analytics
from carbon_assets.definitions import build_resources
from carbon_assets.emulator import EmulatorConfig, start_emulator
from carbon_assets_tests.helpers import REPO, materialize_range

# The tests over the demo's month need Spark and the PostgreSQL service; the others only read
# the README.
OVER_THE_DEMO = [pytest.mark.spark, pytest.mark.postgres, pytest.mark.slow]

DEMO_SEED, FIRST, LAST = 42, "2024-01-01", "2024-01-31"
DNO_REGIONS = 14
# What each query answers for the demo's month: (rows, a column that must be there).
POSTGRES_EXPECTED = [
    (31, "intensity_avg"),  # London's month
    (DNO_REGIONS, "mean_intensity"),  # the greenest hour of each DNO region
    (1, "mean_absolute_error"),  # the dbt model of forecast accuracy: one month
    (DNO_REGIONS, "intensity_mean"),  # the dbt model of the greenest local hours
    (1, "wind"),  # GB's shares by year
    (1, "api_base_url"),  # where the rows came from: the emulator, one source
]
DUCKDB_EXPECTED = POSTGRES_EXPECTED[:1]


def readme_queries() -> dict[str, list[str]]:
    """{"PostgreSQL": [sql, ...], "DuckDB": [...]} from the README's "Query the data"."""
    section = (REPO / "README.md").read_text().split("## Query the data", 1)[1]
    section = section.split("\n## ", 1)[0]
    postgres, duck = section.split("### DuckDB", 1)
    blocks = re.compile(r"```sql\n(.*?)```", re.DOTALL)
    return {"PostgreSQL": blocks.findall(postgres), "DuckDB": blocks.findall(duck)}


@pytest.fixture(scope="module")
def demo_month(tmp_path_factory, spark):
    """The demo's lake and warehouse: (data dir, warehouse URL)."""
    from carbon_assets_tests.postgres_helpers import create_database, drop_database

    name, url = create_database("service", None)
    data_dir = tmp_path_factory.mktemp("demo") / "data"
    with start_emulator(EmulatorConfig(seed=DEMO_SEED)) as emulator:
        resources = build_resources(str(data_dir), emulator.base_url, url)
        materialize_range(resources, FIRST, LAST, raise_on_error=True)
    build_analytics(resources["warehouse"])  # what the demo launches after the days
    yield data_dir, url
    drop_database("service", None, name)


def test_the_readme_has_the_queries_this_test_expects():
    queries = readme_queries()
    assert [len(queries["PostgreSQL"]), len(queries["DuckDB"])] == [
        len(POSTGRES_EXPECTED),
        len(DUCKDB_EXPECTED),
    ]


def test_the_readme_averages_over_dno_regions_only():
    assert "region_kind = 'dno'" in readme_queries()["PostgreSQL"][1]


@pytest.mark.parametrize(
    "number", [pytest.param(n, marks=OVER_THE_DEMO) for n in range(len(POSTGRES_EXPECTED))]
)
def test_the_postgresql_query_answers(demo_month, number):
    _, url = demo_month
    query = readme_queries()["PostgreSQL"][number]
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            result = connection.exec_driver_sql(query)
            columns, rows = list(result.keys()), result.all()
    finally:
        engine.dispose()
    count, column = POSTGRES_EXPECTED[number]
    assert len(rows) == count and column in columns, (columns, rows[:3])
    if column == "api_base_url":  # the demo's rows say they are the emulator's
        assert rows[0][columns.index("emulator")] is True, rows


@pytest.mark.spark
@pytest.mark.postgres
@pytest.mark.slow
def test_the_dbt_greenest_hours_agree_with_the_readme_sql(demo_month):
    """In January UK local time is UTC: the model's greenest local hour of each DNO region is
    the hand-written query's greenest UTC hour."""
    _, url = demo_month
    queries = readme_queries()["PostgreSQL"]
    engine = sqlalchemy.create_engine(url)
    try:
        with engine.connect() as connection:
            by_sql = [row[1] for row in connection.exec_driver_sql(queries[1])]
            by_model = [row[1] for row in connection.exec_driver_sql(queries[3])]
    finally:
        engine.dispose()
    assert by_model == by_sql and len(by_sql) == DNO_REGIONS


@pytest.mark.parametrize(
    "number", [pytest.param(n, marks=OVER_THE_DEMO) for n in range(len(DUCKDB_EXPECTED))]
)
def test_the_duckdb_query_answers_the_same_over_the_lake(demo_month, number):
    data_dir, _ = demo_month
    query = readme_queries()["DuckDB"][number].replace("'data/", f"'{data_dir}/")
    answer = duckdb.sql(query)
    columns, rows = answer.columns, answer.fetchall()
    count, column = DUCKDB_EXPECTED[number]
    assert len(rows) == count and column in columns, (columns, rows[:3])
