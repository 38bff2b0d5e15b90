"""`carbon-assets-dbt`: the dbt command the models' builds run (the dbt resource's executable).

Before every build, dagster-dbt runs `dbt --version` to learn which dbt it drives. dbt answers
only after importing itself and asking pypi.org for its latest release (two requests, with a
timeout of one second each): a second process and a look-up on the internet for every build,
from a run worker that may well be offline. This command answers `--version` from the
installed packages' metadata, in the form dbt prints it, and hands every other command to dbt
itself in this process, unchanged.

Nothing is imported at the top but the standard library and the small gc_pause: `--version`
must stay instant.
"""

from __future__ import annotations

import sys
from importlib.metadata import version

from carbon_assets.gc_pause import skip_collection_at_exit

COMMAND_NAME = "carbon-assets-dbt"


def version_text() -> str:
    """What `dbt --version` prints, less the latest release it looks up on pypi.org."""
    return (
        f"Core:\n  - installed: {version('dbt-core')}\n\n"
        f"Plugins:\n  - postgres: {version('dbt-postgres')}\n"
    )


def main() -> int:
    if sys.argv[1:] == ["--version"]:
        print(version_text(), end="")
        return 0
    from dbt.cli.main import cli

    sys.argv[0] = "dbt"  # dbt names itself after argv[0] in its help and errors
    skip_collection_at_exit()  # the build waits for this process to end
    return cli()


if __name__ == "__main__":
    sys.exit(main())
