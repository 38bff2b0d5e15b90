"""Silver: one typed row per region and half-hour, flattened from bronze in Spark's workers.

assets.py   the silver_carbon_intensity asset
checks.py   its asset checks (unique half-hours, known fuels and labels, sane values)
rows.py     one bronze day file -> its silver rows as Arrow (pure, runs in Spark's workers)
"""
