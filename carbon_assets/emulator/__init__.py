"""An offline emulator of the Carbon Intensity API's regional and national range endpoints.

It serves ``GET /regional/intensity/{from}/{to}`` and the national ``GET /intensity/{from}/{to}``
(each also with ``{from}/fw24h``, ``{from}/fw48h`` and ``{from}/pt24h``, which follow the same
rules) on loopback, with synthetic but realistic data, so that tests, demos and benchmarks can
talk real HTTP to something that behaves like api.carbonintensity.org.uk without a network.

What it copies from the real API (see docs/api-contract.md):

* the compact JSON layout, key order, 18 regions in id order and 9 fuels in the real order;
* value types: ``forecast`` is an int, ``perc`` an int when whole and otherwise a float with
  one decimal, each mix sums to 100.0;
* national records ``{"from","to","intensity":{"forecast","actual","index"}}``: the forecast is
  the GB regional (regionid 18) forecast, the actual differs from it like the real 2023 series
  and is ``null`` until ``actual_delay_hours`` after the period ends (or on
  ``pending_actual_dates``), the index follows the actual when present, else the forecast;
* the range rule (every half hour whose *end* lies in ``[from, to]``), the regional 14-day
  limit, the ``from >= to`` error, the year-boundary truncation and ``{"data": null}`` before
  the earliest regional data (periods starting before 2018-05-10T23:30Z; national uses the same
  start);
* the national range limit: 30 days accepted, 31 days or more rejected;
* the error bodies ``{"error": {"code": "400 Bad Request", "message": ...}}``.

What it adds for testing resilience: seeded, reproducible faults (500, 429, 503, slow answers,
connection resets, truncated bodies, ``{}``), latency, missing dates, duplicated periods,
missing (period, region) pairs, a region the API does not have (id 19) on chosen dates, records
off the half-hour grid (these four are regional only), and request statistics at ``GET /_stats``
(``by_path``, and ``by_endpoint`` counting "regional" and "national" requests). Faults, latency
and missing dates apply to both endpoints.

The package: ``data`` (the synthetic records and the range rule), ``server`` (faults,
statistics, the aiohttp server and ``start_emulator``) and ``command`` (the CLI). Nothing starts
at import time.
"""

from carbon_assets.emulator.data import (
    format_api_datetime,
    index_bands,
    index_label,
    national_period_record,
    regional_period_records,
)
from carbon_assets.emulator.server import (
    EmulatorConfig,
    EmulatorStats,
    FaultDraw,
    RunningEmulator,
    build_national_body,
    build_range_body,
    create_app,
    draw_fault,
    national_records,
    start_emulator,
)

__all__ = [
    "EmulatorConfig",
    "EmulatorStats",
    "FaultDraw",
    "RunningEmulator",
    "build_national_body",
    "build_range_body",
    "create_app",
    "draw_fault",
    "format_api_datetime",
    "index_bands",
    "index_label",
    "national_period_record",
    "national_records",
    "regional_period_records",
    "start_emulator",
]
