"""Gold: daily aggregates per region and UTC date, computed from silver's day files.

assets.py   the gold_carbon_intensity_daily asset (Parquet and a CSV export)
checks.py   its asset checks (18 regions a date, 48 half-hours, unique key)
rows.py     one silver day file -> its gold rows as Arrow (pure, runs in Spark's workers)
"""
