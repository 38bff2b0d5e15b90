"""Warehouse: gold's daily rows and silver's half-hourly rows in PostgreSQL (schema carbon_data),
each stamped with the API it was fetched from (carbon_data.fetch_source) and when.

assets.py      the carbon_intensity_daily and carbon_intensity_halfhourly assets
checks.py      their asset checks, measured in SQL
io_manager.py  an asset's rows <-> its table (the load itself is load.py's)
load.py        the idempotent, all-or-nothing, range-replacing load (COPY, count, upsert)
tables.py      the tables as the load sees them (columns, key, types)
charts.py      the pictures of a load's range shown in the UI
resource.py    WarehouseDatabase: where the database is, pooled engines, schema applied
migrations.py  applies the numbered files in sql/ (shipped in this package)
"""
