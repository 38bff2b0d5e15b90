"""Facts about the Carbon Intensity API's data that every layer shares.

Source: ../shared/fixtures/carbon-intensity-api/API_CONTRACT.md (sections 3, 4 and 8).
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
    "biomass", "coal", "imports", "gas", "nuclear", "other", "hydro", "solar", "wind",
)
FUEL_COLUMNS: tuple[str, ...] = tuple(f"fuel_{fuel}" for fuel in FUELS)

# Index labels from the cleanest to the dirtiest; the order breaks ties in gold's index_mode.
INDEX_LABELS: tuple[str, ...] = ("very low", "low", "moderate", "high", "very high")

HALF_HOURS_PER_DAY = 48
RECORDS_PER_COMPLETE_DAY = HALF_HOURS_PER_DAY * REGION_COUNT  # 864 region-records

# Regional ranges of 14 days or more are rejected with this 400 message.
RANGE_TOO_LONG_MESSAGE = "The date range you have specified is greater than 14 days."
MAX_REGIONAL_RANGE_DAYS = 14

# The first full UTC day of regional data (the earliest period starts 2018-05-10T23:30Z).
FIRST_FULL_DAY = "2018-05-11"

# Columns of the gold table and of carbon_data.carbon_intensity_daily, in order.
GOLD_COLUMNS: tuple[str, ...] = (
    "regionid", "date_recorded", "shortname", "dno", "intensity_avg", "index_mode",
    *FUEL_COLUMNS, "half_hours",
)
