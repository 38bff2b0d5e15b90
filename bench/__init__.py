"""Benchmarks of the carbon-assets pipeline: `make bench` (= python -m bench.run, then
python -m bench.scaling).

Modules: run (the command), scenario (machine facts), processes (subprocesses and their peak
RSS), emulator_process (the API emulator as its own process), scratch_db (a throw-away
PostgreSQL database), dagster_run (one Dagster run, in a fresh process), spark_jobs (ours vs
the original Spark approach, in a fresh process), lake (rows per layer, gold agreement),
warehouse (the load alone), report (the Markdown table). bench_warehouse_load is a standalone
benchmark of the warehouse load on synthetic rows. cli_backfill runs the users' command
(`dagster asset materialize`) on a PostgreSQL instance and reports the time before RUN_START
and Dagster's cost per event apart; scaling runs it for 1, 3 and 8.5 years.
"""
