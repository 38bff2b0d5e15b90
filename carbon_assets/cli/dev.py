"""`carbon-assets dev`: `dg dev` (UI, daemon) on the real stack, or on the demo's (--demo).

One stack per instance: dev takes the lock of its DAGSTER_HOME (local_stack.instance_lock)
before it starts anything and keeps it for the life of Dagster, so a second `carbon-assets
dev` on the same instance exits at once with one line naming the first one's pid.
"""

from __future__ import annotations

import argparse
import os
import signal
import sys
from pathlib import Path

from carbon_assets import settings
from carbon_assets.cli import dagster_commands as dg
from carbon_assets.cli import local_stack
from carbon_assets.storage import storage_at


def add_arguments(parser: argparse.ArgumentParser) -> None:
    parser.add_argument("--port", type=int, default=3000)
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument(
        "--demo",
        action="store_true",
        help="open the demo's lake, warehouse and instance (what `carbon-assets demo` made)",
    )


def demo_lake_refusal(lake: str) -> str | None:
    """Why the demo's lake cannot be opened, or None: it must hold the demo's emulator data.

    An empty demo lake would take the first API a run calls as its source, so the daily
    schedule would fill it from the real API; a lake filled from the emulator makes every
    scheduled run stop at bronze's source check instead, before it fetches anything.
    """
    from carbon_assets.lake_source import read_lake_source

    source = read_lake_source(lake)
    if source is None:
        return f"The demo's lake {lake} is empty: run `carbon-assets demo` (make demo) first"
    if not source.emulator:
        return (
            f"The demo's lake {lake} holds data from {source.api_base_url}, not from the "
            "emulator: run `carbon-assets demo` (make demo) to make it again"
        )
    return None


def source_mismatch(lake: str, api: str) -> str | None:
    """Why the lake's runs will be refused (it holds another API's data), or None."""
    from carbon_assets.lake_source import LakeSourceMismatch, check_lake_source

    try:
        check_lake_source(lake, api)
    except (LakeSourceMismatch, ValueError) as error:
        return str(error)
    return None


def run(args: argparse.Namespace) -> int:
    from carbon_assets.postgres.secrets import describe_error, mask_url
    from carbon_assets.warehouse.resource import resolve_warehouse_url

    holder = "carbon-assets dev" + (" --demo" if args.demo else "")
    try:
        set_aside = local_stack.project_environment(demo=args.demo)
        home = Path(os.environ[local_stack.DAGSTER_HOME])
        # The descriptor stays open and inheritable: Dagster holds the lock after the exec.
        local_stack.instance_lock(home, holder)
        lake = storage_at(settings.lake_url()).url
        if args.demo and (refusal := demo_lake_refusal(lake)):
            print(refusal, file=sys.stderr)
            return 1
        env = local_stack.connect_environment(demo=args.demo)
        warehouse = resolve_warehouse_url(settings.database_url(), settings.data_dir())
    except local_stack.InstanceInUse as error:
        print(error, file=sys.stderr)
        return 1
    except Exception as error:  # noqa: BLE001 - any failure: one masked line and exit code 1
        urls = (os.environ.get(settings.DATABASE_URL), os.environ.get("DAGSTER_POSTGRES_URL"))
        print(f"dev failed: {describe_error(error, *urls)}", file=sys.stderr)
        return 1
    api = settings.api_base_url()
    real = " (the real Carbon Intensity API)" if api == settings.DEFAULT_API_BASE_URL else ""
    stack = "the demo's (what `carbon-assets demo` made)" if args.demo else "the real one"
    print(f"Stack:          {stack}; pid {os.getpid()} holds its instance")
    print(f"Lake:           {lake}")
    print(f"Warehouse:      {mask_url(warehouse)}")
    print(f"Dagster home:   {home} (instance on {mask_url(env['DAGSTER_POSTGRES_URL'])})")
    print(f"API:            {api}{real}")
    if set_aside:
        print(f"Set aside:      {', '.join(set_aside)} (the demo's stack is its own)")
    if args.demo and source_mismatch(lake, api):
        print(
            "Schedule:       on; the demo's lake holds the emulator's data, so its ticks skip "
            "(the lake's source check), fetching nothing"
        )
    elif args.demo:
        print("Schedule:       on; its runs fetch from the emulator the demo's lake came from")
    else:
        print("Schedule:       the daily refresh and the automation sensor are on (Automation)")
        if mismatch := source_mismatch(lake, api):
            print(f"warning: {mismatch}")
    print(f"UI:             http://{args.host}:{args.port}", flush=True)
    # `dg dev`, in this process: the lock's descriptor goes with it (see the module docstring).
    command = dg.dev_command(args.host, args.port)
    # In DAGSTER_HOME: started in a folder holding a dagster.yaml other than DAGSTER_HOME,
    # Dagster warns that the file "will not be used", although DAGSTER_HOME's is a link to it.
    # The workspace and the lake's paths are absolute, so they do not depend on the folder.
    os.chdir(home)
    # Dagster stops on SIGINT and treats SIGTERM as SIGINT, with whatever handler SIGINT had.
    # A shell that starts a job in the background without job control leaves SIGINT ignored,
    # and so both: `dg dev` would then not stop when asked. An ignored signal stays ignored
    # across exec; a default one becomes Python's own again.
    signal.signal(signal.SIGINT, signal.SIG_DFL)
    os.execve(command[0], command, dg.dg_environment(env))
