"""The `carbon-assets` command: the emulator, the warehouse schema and small operator tools.

Each sub-command's module is imported only when that sub-command runs, so `--help` is instant
and nothing starts Spark or a database by accident.
"""

from __future__ import annotations

import argparse
import importlib
import sys

from carbon_assets.gc_pause import skip_collection_at_exit

# sub-command -> (module, help). Each module provides add_arguments(parser) and run(args) -> int.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "emulate-api": (
        "carbon_assets.emulator.command",
        "serve an offline emulator of the Carbon Intensity API",
    ),
    "db-init": (
        "carbon_assets.cli.db_init",
        "apply the SQL schema in sql/ to the warehouse (idempotent)",
    ),
    "db-url": (
        "carbon_assets.cli.db_url",
        "start the embedded PostgreSQL if needed and print a URL (--tcp: one for tools)",
    ),
    "stop": ("carbon_assets.cli.stop", "stop the embedded PostgreSQL"),
    "backfill": (
        "carbon_assets.cli.backfill",
        "every asset for the days FIRST..LAST in one run (dg launch), then a summary",
    ),
    "demo": (
        "carbon_assets.cli.demo",
        "run the offline demo: emulator + every asset for January 2024",
    ),
    "dev": ("carbon_assets.cli.dev", "start `dg dev` (UI, daemon) with the instance on PostgreSQL"),
    "check": (
        "carbon_assets.cli.check",
        "check that the definitions load, as the code server loads them (dg check defs)",
    ),
}


def usage() -> str:
    lines = [
        "usage: carbon-assets COMMAND [options]   (carbon-assets COMMAND --help for its options)",
        "",
    ]
    lines += [f"  {name:<12} {help_text}" for name, (_, help_text) in SUBCOMMANDS.items()]
    return "\n".join(lines)


def main(argv: list[str] | None = None) -> int:
    argv = list(sys.argv[1:] if argv is None else argv)
    if not argv or argv[0] not in SUBCOMMANDS:
        asked_for_help = bool(argv) and argv[0] in ("-h", "--help")
        print(usage(), file=sys.stdout if asked_for_help else sys.stderr)
        return 0 if asked_for_help else 2
    module_name, help_text = SUBCOMMANDS[argv[0]]
    module = importlib.import_module(module_name)
    parser = argparse.ArgumentParser(prog=f"carbon-assets {argv[0]}", description=help_text)
    module.add_arguments(parser)
    skip_collection_at_exit()
    return int(module.run(parser.parse_args(argv[1:])) or 0)
