"""The `carbon-assets` command: the emulator, the warehouse schema and small operator tools.

Each sub-command's module is imported only when that sub-command runs, so `--help` is instant
and nothing starts Spark or a database by accident.
"""

from __future__ import annotations

import argparse
import importlib
import sys

# sub-command -> (module, help). Each module provides add_arguments(parser) and run(args) -> int.
SUBCOMMANDS: dict[str, tuple[str, str]] = {
    "emulate-api": ("carbon_assets.emulator", "serve an offline emulator of the Carbon Intensity API"),
    "db-init": ("carbon_assets.database", "apply the SQL schema in sql/ to the warehouse (idempotent)"),
    "db-url": ("carbon_assets.database_url_cli", "start the embedded PostgreSQL if needed and print a URL"),
    "demo": ("carbon_assets.demo", "run the offline demo: emulator + all four assets for January 2024"),
    "dev": ("carbon_assets.dev_server", "start `dagster dev` with the instance on PostgreSQL"),
}


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(prog="carbon-assets", description=__doc__.splitlines()[0])
    subparsers = parser.add_subparsers(dest="command", required=True)
    for name, (module_name, help_text) in SUBCOMMANDS.items():
        sub = subparsers.add_parser(name, help=help_text)
        sub.set_defaults(module_name=module_name)
    # Parse the command name first, then let its module declare its own arguments.
    known, _ = parser.parse_known_args(argv)
    module = importlib.import_module(known.module_name)
    sub_parser = argparse.ArgumentParser(prog=f"carbon-assets {known.command}")
    module.add_arguments(sub_parser)
    args = sub_parser.parse_args((argv if argv is not None else sys.argv[1:])[1:])
    return int(module.run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
