"""One Dagster run of the daily assets and their checks over a day range, in this process.

    python -m bench.dagster_run --first 2022-01-01 --last 2024-12-31 --data-dir D \
        --api-base-url URL --database-url URL --out summary.json

The run is what `dagster asset materialize --select group:carbon_intensity --partition-range` does,
but in-process on an ephemeral instance so that its event log can be read back: the summary holds,
per step, the timestamps of its events (start, input loaded, output, first materialization, output
handled, end), the metadata of each asset's materialization and each check's result.
"""

from __future__ import annotations

import argparse
import json
import time
from collections import defaultdict
from pathlib import Path

from dagster import DagsterEventType, DagsterInstance, materialize

from carbon_assets.definitions import ALL_ASSETS, ALL_CHECKS, build_resources

MAX_CONCURRENCY = 5
RANGE_TAGS = ("dagster/asset_partition_range_start", "dagster/asset_partition_range_end")

# The first event of each type marks a phase of a step.
STEP_PHASES = {
    DagsterEventType.STEP_START: "start",
    DagsterEventType.LOADED_INPUT: "input_loaded",
    DagsterEventType.STEP_OUTPUT: "output",
    DagsterEventType.ASSET_MATERIALIZATION: "first_materialization",
    DagsterEventType.HANDLED_OUTPUT: "output_handled",
    DagsterEventType.STEP_SUCCESS: "end",
    DagsterEventType.STEP_FAILURE: "end",
}
RUN_PHASES = {
    DagsterEventType.RUN_START: "start",
    DagsterEventType.RUN_SUCCESS: "end",
    DagsterEventType.RUN_FAILURE: "end",
}


def plain(value):
    """A metadata value as JSON-ready data."""
    value = getattr(value, "value", value)
    return (
        value if isinstance(value, (int, float, str, bool, list, dict, type(None))) else str(value)
    )


def summarize(instance: DagsterInstance, run_id: str) -> dict:
    """Timestamps per step and of the run, materialization metadata, check results, errors."""
    steps: dict[str, dict[str, float]] = defaultdict(dict)
    run: dict[str, float] = {}
    materializations: dict[str, dict] = {}
    materialization_events: dict[str, int] = defaultdict(int)
    checks: dict[str, bool] = {}
    errors: list[str] = []
    for entry in instance.all_logs(run_id):
        event = entry.dagster_event
        if event is None:
            continue
        kind = event.event_type
        if kind in RUN_PHASES:
            run.setdefault(RUN_PHASES[kind], entry.timestamp)
        if event.step_key and kind in STEP_PHASES:
            steps[event.step_key].setdefault(STEP_PHASES[kind], entry.timestamp)
        if kind == DagsterEventType.ASSET_MATERIALIZATION:
            materialization = event.event_specific_data.materialization
            key = materialization.asset_key.to_user_string()
            materialization_events[key] += 1
            materializations.setdefault(
                key, {k: plain(v) for k, v in materialization.metadata.items()}
            )
        elif kind == DagsterEventType.ASSET_CHECK_EVALUATION:
            evaluation = event.event_specific_data
            checks[evaluation.check_name] = evaluation.passed
        elif kind == DagsterEventType.STEP_FAILURE:
            errors.append(f"{event.step_key}: {event.event_specific_data.error.message.strip()}")
    return {
        "run_id": run_id,
        "run": run,
        "steps": dict(steps),
        "materializations": materializations,
        "materialization_events": dict(materialization_events),
        "checks": checks,
        "errors": errors,
    }


def materialize_range(
    first: str, last: str, data_dir: str, api_base_url: str, database_url: str
) -> dict:
    resources = build_resources(
        data_dir=data_dir,
        api_base_url=api_base_url,
        database_url=database_url,
        max_concurrency=MAX_CONCURRENCY,
    )
    instance = DagsterInstance.ephemeral()
    started = time.time()
    result = materialize(
        [*ALL_ASSETS, *ALL_CHECKS],
        resources=resources,
        instance=instance,
        tags=dict(zip(RANGE_TAGS, (first, last))),
        raise_on_error=False,
    )
    summary = summarize(instance, result.run_id)
    summary |= {
        "success": result.success,
        "materialize_call_seconds": round(time.time() - started, 2),
    }
    return summary


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    for option in ("--first", "--last", "--data-dir", "--api-base-url", "--database-url", "--out"):
        parser.add_argument(option, required=True)
    args = parser.parse_args(argv)
    summary = materialize_range(
        args.first, args.last, args.data_dir, args.api_base_url, args.database_url
    )
    Path(args.out).write_text(json.dumps(summary, indent=1, default=str))


if __name__ == "__main__":
    main()
