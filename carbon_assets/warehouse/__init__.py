"""Warehouse: gold's daily rows in PostgreSQL, carbon_data.carbon_intensity_daily.

assets.py      the carbon_intensity_daily asset
checks.py      its asset checks, measured in SQL
io_manager.py  the idempotent, all-or-nothing load (COPY, count, upsert in one transaction)
resource.py    WarehouseDatabase: where the database is, pooled engines, schema applied
migrations.py  applies the numbered files in sql/ (shipped in this package)
embedded.py    the embedded PostgreSQL used when CARBON_DATABASE_URL is unset, private to its owner
acl.py         one OS user allowed to traverse a folder (an ACL entry), nobody else's rights changed
secrets.py     database URLs parsed before use; passwords masked in URLs and error messages
"""
