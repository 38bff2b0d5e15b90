"""The Carbon Intensity API's vocabulary: its regions, fuels, index labels and half-hours, and
the physical bounds of its values.

Every layer shares these facts. Source: the API contract, docs/api-contract.md
(sections 3, 4 and 8).
"""

from __future__ import annotations

# The 18 regions of the all-region endpoints, in the order the API lists them.
# Names as published in 2024; region 6 was "North Wales and Merseyside" in 2019.
REGIONS: tuple[tuple[int, str, str], ...] = (
    (1, "Scottish Hydro Electric Power Distribution", "North Scotland"),
    (2, "SP Distribution", "South Scotland"),
    (3, "Electricity North West", "North West England"),
    (4, "NPG North East", "North East England"),
    (5, "NPG Yorkshire", "Yorkshire"),
    (6, "SP Manweb", "North Wales & Merseyside"),
    (7, "WPD South Wales", "South Wales"),
    (8, "WPD West Midlands", "West Midlands"),
    (9, "WPD East Midlands", "East Midlands"),
    (10, "UKPN East", "East England"),
    (11, "WPD South West", "South West England"),
    (12, "SSE South", "South England"),
    (13, "UKPN London", "London"),
    (14, "UKPN South East", "South East England"),
    (15, "England", "England"),
    (16, "Scotland", "Scotland"),
    (17, "Wales", "Wales"),
    (18, "GB", "GB"),
)
REGION_IDS: tuple[int, ...] = tuple(r[0] for r in REGIONS)
REGION_COUNT = len(REGIONS)

# The nine fuels, always all nine and always in this order in real responses.
FUELS: tuple[str, ...] = (
    "biomass",
    "coal",
    "imports",
    "gas",
    "nuclear",
    "other",
    "hydro",
    "solar",
    "wind",
)
FUEL_COLUMNS: tuple[str, ...] = tuple(f"fuel_{fuel}" for fuel in FUELS)

# Index labels from the cleanest to the dirtiest; the order breaks ties in gold's index_mode.
INDEX_LABELS: tuple[str, ...] = ("very low", "low", "moderate", "high", "very high")

HALF_HOURS_PER_DAY = 48

# Physical bounds of the values (the dirtiest generation, unabated coal, is about 1,000
# gCO2/kWh): a value outside them is the answer's fault, never data. Bronze marks such
# half-hours invalid, silver's blocking checks refuse them, and the warehouse's CHECKs hold the
# same bounds (warehouse/sql/003_provenance_and_bounds.sql).
MAX_INTENSITY = 2000  # gCO2/kWh, for a forecast and a daily average alike
MAX_SHARE = 100.0  # percent of a region's generation
MIX_TOLERANCE = 0.5  # percentage points around 100; the API's own rounding stays within 0.2
