"""`python -m carbon_assets.cli`: the same as the `carbon-assets` command."""

import sys

from carbon_assets.cli import main

sys.exit(main())
