"""Bronze: the API's raw records, one gzip JSON file per UTC day.

    assets.py        the bronze_carbon_intensity asset
    checks.py        its asset checks (are the days complete and valid? on the grid?)
    io_manager.py    hands the day files of a range downstream
    request_plan.py  which requests fetch which days (pure)
    refresh.py       when a stored day is fetched again: until it settles, while it has holes
    client.py        the HTTP client: sends a plan's requests, yields what each brought
    records.py       the API's record shapes, their validation, the datetime format (pure)
    day_assembly.py  answers -> whole days (pure)
    day_files.py     the day file's format: build, encode, decode (pure)
    store.py         day files on disk, written atomically

Modules marked pure import no Dagster; silver's Spark workers import records and day_files.
Which API the lake holds is ../lake_source.py's.
"""
