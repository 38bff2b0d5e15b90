"""Benchmarks of the carbon-assets pipeline: `make bench` (= python -m bench.run).

Modules: run (the command), scenario (machine facts), processes (subprocesses and their peak
RSS), emulator_process (the API emulator as its own process), scratch_db (a throw-away
PostgreSQL database), dagster_run (one Dagster run, in a fresh process), spark_jobs (ours vs
the original Spark approach, in a fresh process), lake (rows per layer, gold agreement),
warehouse (the load alone), report (the Markdown table). bench_warehouse_load is a standalone
benchmark of the warehouse load on synthetic rows.
"""
