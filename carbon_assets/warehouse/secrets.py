"""Moved to carbon_assets/postgres/secrets.py; this name is the same module, for the importers
not yet changed (carbon_assets.postgres.secrets is the one to import)."""

import sys

from carbon_assets.postgres import secrets

sys.modules[__name__] = secrets
