"""Moved to carbon_assets/postgres/acl.py; this name is the same module, for the importers
not yet changed (carbon_assets.postgres.acl is the one to import)."""

import sys

from carbon_assets.postgres import acl

sys.modules[__name__] = acl
