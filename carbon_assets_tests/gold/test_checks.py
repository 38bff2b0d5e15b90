"""Gold's checks fail, naming the dates, when the rows are wrong (pure)."""

import datetime as dt

import pandas as pd

from carbon_assets.gold.checks import (
    GOLD_COMPLETE_DAYS,
    GOLD_REGIONS_PER_DATE,
    GOLD_UNIQUE_KEY,
    gold_problems,
)

DAY, OTHER = dt.date(2024, 1, 1), dt.date(2024, 1, 2)


def gold_rows(day, regions=range(1, 19), half_hours=48):
    return pd.DataFrame(
        [{"regionid": r, "date_recorded": day, "half_hours": half_hours} for r in regions]
    )


def test_gold_problems_name_short_days_missing_regions_and_duplicates():
    gold = pd.concat(
        [
            gold_rows(DAY, half_hours=47),
            gold_rows(OTHER, regions=range(1, 18)),
            gold_rows(OTHER, regions=[5]),
        ],
        ignore_index=True,
    )
    problems = gold_problems(gold, complete_days={str(DAY), str(OTHER)})
    assert problems[GOLD_COMPLETE_DAYS] == [str(DAY)]
    assert problems[GOLD_UNIQUE_KEY] == [str(OTHER)]
    assert problems[GOLD_REGIONS_PER_DATE] == [str(OTHER)]  # 17 distinct regions (5 twice)
    assert (
        gold_problems(gold_rows(DAY, half_hours=10), complete_days=set())[GOLD_COMPLETE_DAYS] == []
    )
