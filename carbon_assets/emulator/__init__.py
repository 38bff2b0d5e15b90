"""An offline emulator of the Carbon Intensity API's regional range endpoint.

It serves ``GET /regional/intensity/{from}/{to}`` (plus ``{from}/fw24h``, ``{from}/fw48h`` and
``{from}/pt24h``, which follow the same rules) on loopback, with synthetic but realistic data, so
that tests, demos and benchmarks can talk real HTTP to something that behaves like
api.carbonintensity.org.uk without a network.

What it copies from the real API (see docs/api-contract.md):

* the compact JSON layout, key order, 18 regions in id order and 9 fuels in the real order;
* value types: ``forecast`` is an int, ``perc`` an int when whole and otherwise a float with
  one decimal, each mix sums to 100.0;
* the range rule (every half hour whose *end* lies in ``[from, to]``), the 14-day limit, the
  ``from >= to`` error, the year-boundary truncation and ``{"data": null}`` before the earliest
  regional data (periods starting before 2018-05-10T23:30Z);
* the error bodies ``{"error": {"code": "400 Bad Request", "message": ...}}``.

What it adds for testing resilience: seeded, reproducible faults (500, 429, 503, slow answers,
connection resets, truncated bodies, ``{}``), latency, missing dates, duplicated periods,
missing (period, region) pairs, a region the API does not have (id 19) on chosen dates, records
off the half-hour grid, and request statistics at ``GET /_stats``.

The package: ``data`` (the synthetic records and the range rule), ``server`` (faults,
statistics, the aiohttp server and ``start_emulator``) and ``command`` (the CLI). Nothing starts
at import time.
"""

from carbon_assets.emulator.data import (
    format_api_datetime,
    index_bands,
    index_label,
    regional_period_records,
)
from carbon_assets.emulator.server import (
    EmulatorConfig,
    EmulatorStats,
    FaultDraw,
    RunningEmulator,
    build_range_body,
    create_app,
    draw_fault,
    start_emulator,
)

__all__ = [
    "EmulatorConfig",
    "EmulatorStats",
    "FaultDraw",
    "RunningEmulator",
    "build_range_body",
    "create_app",
    "draw_fault",
    "format_api_datetime",
    "index_bands",
    "index_label",
    "regional_period_records",
    "start_emulator",
]
