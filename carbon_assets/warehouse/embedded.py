"""Moved to carbon_assets/postgres/embedded.py; this name is the same module, for the importers
not yet changed (carbon_assets.postgres.embedded is the one to import)."""

import sys

from carbon_assets.postgres import embedded

sys.modules[__name__] = embedded
