"""The warehouse's checks measure the table itself, on a real PostgreSQL."""

import datetime as dt

import sqlalchemy

from carbon_assets.vocabulary import FUEL_COLUMNS, FUELS, REGIONS
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


def test_warehouse_checks_measure_the_table_not_its_constraints(service_database_url):
    engine = create_warehouse_engine(service_database_url)
    apply_schema(engine)
    fuels = ", ".join(FUEL_COLUMNS)
    zeros = ", ".join("0" for _ in FUELS)
    with engine.begin() as connection:
        run = lambda statement: connection.execute(sqlalchemy.text(statement))
        for regionid, dno, shortname in REGIONS[:17]:
            run(
                "INSERT INTO carbon_data.dim_region (regionid, shortname, dno) "
                f"VALUES ({regionid}, '{shortname}', '{dno}')"
            )
        # Someone dropped the key and the foreign key by hand;
        # the checks must still see the damage.
        run(
            "ALTER TABLE carbon_data.carbon_intensity_daily "
            "DROP CONSTRAINT carbon_intensity_daily_pkey CASCADE"
        )
        run(
            "ALTER TABLE carbon_data.carbon_intensity_daily "
            "DROP CONSTRAINT IF EXISTS carbon_intensity_daily_regionid_fkey"
        )
        for day in (DAY, OTHER):
            for regionid in range(1, 19):
                run(
                    "INSERT INTO carbon_data.carbon_intensity_daily "
                    "(regionid, date_recorded, shortname, dno, "
                    f"intensity_avg, index_mode, {fuels}, half_hours) "
                    f"VALUES ({regionid}, '{day}', 'x', 'y', "
                    f"100, 'low', {zeros}, 48)"
                )
        run(
            "INSERT INTO carbon_data.carbon_intensity_daily "
            "(regionid, date_recorded, shortname, dno, "
            f"intensity_avg, half_hours) VALUES (1, '{DAY}', 'x', 'y', 1, 48)"
        )
    with engine.connect() as connection:
        problems = warehouse_problems(connection, {str(DAY): 18, str(OTHER): 18}, DAY, OTHER)
    assert problems == {
        WAREHOUSE_UNIQUE_KEY: [str(DAY)],
        WAREHOUSE_NO_NULLS: [],
        WAREHOUSE_REGIONS_KNOWN: [str(DAY), str(OTHER)],  # region 18 is not in dim_region
        WAREHOUSE_ROWS_MATCH_GOLD: [str(DAY)],
    }
