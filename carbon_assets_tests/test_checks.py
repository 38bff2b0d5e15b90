"""The checks fail, naming the dates, when the data is wrong (pure and real-PostgreSQL parts)."""

import datetime as dt

import pandas as pd
import sqlalchemy

from carbon_assets.gold.checks import (
    GOLD_COMPLETE_DAYS,
    GOLD_REGIONS_PER_DATE,
    GOLD_UNIQUE_KEY,
    gold_problems,
)
from carbon_assets.grid import FUEL_COLUMNS, FUELS, REGIONS
from carbon_assets.silver.checks import (
    SILVER_FUEL_MIX_SUMS_TO_100,
    SILVER_INDEX_LABELS_KNOWN,
    SILVER_INTENSITY_NON_NEGATIVE,
    SILVER_NO_UNKNOWN_FUELS,
    SILVER_UNIQUE_HALF_HOURS,
    silver_problems,
)
from carbon_assets.warehouse.checks import (
    WAREHOUSE_NO_NULLS,
    WAREHOUSE_REGIONS_KNOWN,
    WAREHOUSE_ROWS_MATCH_GOLD,
    WAREHOUSE_UNIQUE_KEY,
    warehouse_problems,
)
from carbon_assets.warehouse.migrations import apply_schema
from carbon_assets.warehouse.resource import create_warehouse_engine

DAY, OTHER = dt.date(2024, 1, 1), dt.date(2024, 1, 2)


def silver_rows(day=DAY, regions=range(1, 19), half_hours=48):
    rows = []
    for regionid in regions:
        for i in range(half_hours):
            rows.append({
                "timestamp": pd.Timestamp(day) + pd.Timedelta(minutes=30 * i), "date_recorded": day,
                "regionid": regionid, "intensity_forecast": 100, "intensity_index": "moderate",
                **{c: (100.0 if c == "fuel_gas" else 0.0) for c in FUEL_COLUMNS},
                "extra_fuels": [], "missing_fuels": [],
            })
    return pd.DataFrame(rows)


def test_clean_silver_passes_every_check():
    assert all(found.empty for found in silver_problems(silver_rows()).values())


def test_each_silver_problem_names_its_date():
    bad = pd.concat([silver_rows(DAY), silver_rows(OTHER)], ignore_index=True)
    bad = pd.concat([bad, bad.iloc[[0]]], ignore_index=True)  # a duplicate on DAY
    at_other = bad.index[bad.date_recorded == OTHER]
    bad.loc[at_other[0], "fuel_gas"] = 90.0
    bad.loc[at_other[1], "intensity_forecast"] = -5
    bad.loc[at_other[2], "intensity_index"] = "extreme"
    bad.at[at_other[3], "extra_fuels"] = [("storage", 1.0)]
    problems = {name: sorted(set(found)) for name, found in silver_problems(bad).items()}
    assert problems == {
        SILVER_UNIQUE_HALF_HOURS: [DAY],
        SILVER_FUEL_MIX_SUMS_TO_100: [OTHER],
        SILVER_INTENSITY_NON_NEGATIVE: [OTHER],
        SILVER_INDEX_LABELS_KNOWN: [OTHER],
        SILVER_NO_UNKNOWN_FUELS: [OTHER],
    }


def gold_rows(day, regions=range(1, 19), half_hours=48):
    return pd.DataFrame([{"regionid": r, "date_recorded": day, "half_hours": half_hours} for r in regions])


def test_gold_problems_name_short_days_missing_regions_and_duplicates():
    gold = pd.concat([gold_rows(DAY, half_hours=47), gold_rows(OTHER, regions=range(1, 18)),
                      gold_rows(OTHER, regions=[5])], ignore_index=True)
    problems = gold_problems(gold, complete_days={str(DAY), str(OTHER)})
    assert problems[GOLD_COMPLETE_DAYS] == [str(DAY)]
    assert problems[GOLD_UNIQUE_KEY] == [str(OTHER)]
    assert problems[GOLD_REGIONS_PER_DATE] == [str(OTHER)]  # 17 distinct regions (5 twice)
    assert gold_problems(gold_rows(DAY, half_hours=10), complete_days=set())[GOLD_COMPLETE_DAYS] == []


def test_warehouse_checks_measure_the_table_not_its_constraints(service_database_url):
    engine = create_warehouse_engine(service_database_url)
    apply_schema(engine)
    fuels = ", ".join(FUEL_COLUMNS)
    zeros = ", ".join("0" for _ in FUELS)
    with engine.begin() as connection:
        run = lambda statement: connection.execute(sqlalchemy.text(statement))  # noqa: E731
        for regionid, dno, shortname in REGIONS[:17]:
            run(f"INSERT INTO carbon_data.dim_region (regionid, shortname, dno) VALUES ({regionid}, '{shortname}', '{dno}')")
        # Someone dropped the key and the foreign key by hand; the checks must still see the damage.
        run("ALTER TABLE carbon_data.carbon_intensity_daily DROP CONSTRAINT carbon_intensity_daily_pkey CASCADE")
        run("ALTER TABLE carbon_data.carbon_intensity_daily DROP CONSTRAINT IF EXISTS carbon_intensity_daily_regionid_fkey")
        for day in (DAY, OTHER):
            for regionid in range(1, 19):
                run(f"INSERT INTO carbon_data.carbon_intensity_daily (regionid, date_recorded, shortname, dno, "
                    f"intensity_avg, index_mode, {fuels}, half_hours) VALUES ({regionid}, '{day}', 'x', 'y', "
                    f"100, 'low', {zeros}, 48)")
        run(f"INSERT INTO carbon_data.carbon_intensity_daily (regionid, date_recorded, shortname, dno, "
            f"intensity_avg, half_hours) VALUES (1, '{DAY}', 'x', 'y', 1, 48)")
    with engine.connect() as connection:
        problems = warehouse_problems(connection, {str(DAY): 18, str(OTHER): 18}, DAY, OTHER)
    assert problems == {
        WAREHOUSE_UNIQUE_KEY: [str(DAY)],
        WAREHOUSE_NO_NULLS: [],
        WAREHOUSE_REGIONS_KNOWN: [str(DAY), str(OTHER)],  # region 18 is not in dim_region
        WAREHOUSE_ROWS_MATCH_GOLD: [str(DAY)],
    }
