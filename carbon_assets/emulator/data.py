"""The emulator's data: synthetic but realistic regional and national records, and the range rule.

See emulator/__init__.py for what the emulator copies from the real API. Nothing starts at
import time.
"""

from __future__ import annotations

import dataclasses
import datetime as dt
import functools
import hashlib
import itertools
import json
import math
import re

import numpy as np

from carbon_assets.vocabulary import FUELS, INDEX_LABELS, REGIONS

# ================================================================================================
# Constants and data model
# ================================================================================================

UTC = dt.UTC
HALF_HOUR = dt.timedelta(minutes=30)
PERIODS_PER_DAY = 48

# Periods that start before this instant have no regional data (OBSERVED-3P, contract §3).
EARLIEST_PERIOD_START = dt.datetime(2018, 5, 10, 23, 30, tzinfo=UTC)

INVALID_DATETIME_MESSAGE = (
    "Please enter a valid datetime in ISO8601 format YYYY-MM-DDThh:mmZ"
    " e.g. /intensity/2017-08-25T15:30Z"
)
FROM_NOT_BEFORE_TO_MESSAGE = "The start datetime should be less than the end datetime"
SERVER_ERROR_MESSAGE = "Requested resource not found."

# gCO2/kWh per fuel, in FUELS order. Biomass, coal, gas (CCGT), other and the zero-carbon fuels
# are the published /intensity/factors values (contract §9). "imports" has no single factor:
# the API blends French (53), Dutch (474), Irish (458) and Belgian (~179) imports; a regression
# on the recorded regional responses gives 45-126, the national mix is usually nearer 200-300.
# 250 is a middle value that keeps imports-heavy regions (London, South East) plausible.
FUEL_FACTORS: tuple[float, ...] = (120.0, 937.0, 250.0, 394.0, 0.0, 300.0, 0.0, 0.0, 0.0)
FUEL_INDEX = {fuel: i for i, fuel in enumerate(FUELS)}

# Index bands as inclusive upper bounds of "very low", "low", "moderate" and "high"; anything
# above the last bound is "very high". Chosen per calendar year of the period start:
#   2018:       the official 2018 row of the methodology (contract §8).
#   2019-2020:  the official 2019 row; the recorded 2019-08 and 2020-05 responses fit it.
#   2021-2024:  the bands that fit the recorded 2024-01 regional response (low <= 109,
#               moderate 110-189, high 190-269, very high >= 270); the very low bound (< 40) is a
#               guess, as no 2024 "very low" value was recorded.
#   2025 on:    fitted to the 2026 national responses (low/moderate at 90, moderate/high at
#               170); the very low and very high bounds are guesses.
_INDEX_BANDS_BY_FIRST_YEAR: tuple[tuple[int, tuple[int, int, int, int]], ...] = (
    (2025, (29, 89, 169, 249)),
    (2021, (39, 109, 189, 269)),
    (2019, (59, 159, 259, 359)),
    (0, (79, 179, 279, 379)),
)


def index_bands(year: int) -> tuple[int, int, int, int]:
    """The inclusive upper bounds of very low/low/moderate/high for periods in ``year``."""
    for first_year, bands in _INDEX_BANDS_BY_FIRST_YEAR:
        if year >= first_year:
            return bands
    raise AssertionError("unreachable: the last row starts at year 0")


def index_label(forecast: int, year: int) -> str:
    """The API's index label for a regional forecast in ``year``."""
    for label, upper in zip(INDEX_LABELS, index_bands(year)):
        if forecast <= upper:
            return label
    return INDEX_LABELS[-1]


@dataclasses.dataclass(frozen=True)
class _RegionModel:
    """The generation a base region (1-14) can draw on, in units of its own mean demand.

    The API's regional mix is the mix of the electricity *consumed* in a region (its own plants
    plus flows from neighbours), so "capacity" here is the share of demand a fuel can cover when
    fully available, not nameplate capacity. Gas fills whatever the others leave, but never goes
    below ``gas_floor`` (plants kept running for system stability).
    """

    regionid: int
    latitude: float
    longitude: float
    weather_zone: int  # index into the wind/cloud/rain processes (neighbours share weather)
    demand_weight: float  # relative size, used to blend the aggregate regions 15-18
    biomass: float
    coal: float
    imports: float
    nuclear: float
    hydro: float
    solar: float
    wind: float
    gas_floor: float


# Tuned by eye against the recorded 2019-08 and 2024-01 responses: Scotland is wind and hydro
# (and Torness/Hunterston nuclear in the south), the North West and North East have Heysham and
# Hartlepool, Yorkshire is Drax biomass plus gas, South Wales and the Midlands are gas (and coal
# while it lasted), the South West had Hinkley Point B, London and the South East import through
# the interconnectors, and solar is strongest in the south.
# Weather zones: 0 N Scotland, 1 S Scotland, 2 N England, 3 Wales/West, 4 Midlands, 5 East/SE,
# 6 South.
WEATHER_ZONES = 7
_BASE_REGIONS: tuple[_RegionModel, ...] = (
    # id  lat    lon  zone weight biomass coal imports nuclear hydro solar wind gas_floor
    _RegionModel(1, 57.5, -4.5, 0, 0.5, 0.00, 0.00, 0.00, 0.00, 0.45, 0.00, 2.42, 0.05),
    _RegionModel(2, 55.8, -3.8, 1, 1.2, 0.03, 0.00, 0.01, 0.75, 0.08, 0.12, 1.76, 0.02),
    _RegionModel(3, 53.8, -2.6, 2, 1.3, 0.15, 0.00, 0.02, 0.70, 0.01, 0.06, 0.55, 0.06),
    _RegionModel(4, 54.9, -1.6, 2, 0.8, 0.45, 0.00, 0.12, 0.65, 0.01, 0.18, 0.33, 0.01),
    _RegionModel(5, 53.9, -1.2, 2, 1.2, 0.45, 0.75, 0.00, 0.00, 0.00, 0.12, 0.33, 0.28),
    _RegionModel(6, 53.2, -3.2, 3, 0.9, 0.02, 0.38, 0.01, 0.10, 0.15, 0.45, 0.44, 0.20),
    _RegionModel(7, 51.6, -3.4, 3, 0.8, 0.00, 0.62, 0.00, 0.00, 0.00, 0.30, 0.11, 0.48),
    _RegionModel(8, 52.5, -2.0, 4, 1.3, 0.05, 0.38, 0.01, 0.35, 0.05, 0.30, 0.44, 0.16),
    _RegionModel(9, 52.9, -1.0, 4, 1.2, 0.03, 1.00, 0.00, 0.00, 0.00, 0.35, 0.22, 0.40),
    _RegionModel(10, 52.3, 0.8, 5, 1.5, 0.04, 0.20, 0.06, 0.20, 0.00, 0.55, 0.77, 0.24),
    _RegionModel(11, 50.7, -3.8, 3, 0.9, 0.00, 0.00, 0.00, 0.80, 0.00, 0.70, 0.07, 0.12),
    _RegionModel(12, 51.0, -1.3, 6, 1.6, 0.02, 0.25, 0.06, 0.12, 0.005, 0.60, 0.13, 0.36),
    _RegionModel(13, 51.5, -0.1, 5, 1.6, 0.06, 0.15, 0.35, 0.12, 0.01, 0.25, 0.18, 0.24),
    _RegionModel(14, 51.2, 0.8, 5, 1.0, 0.01, 0.05, 0.70, 0.05, 0.02, 0.25, 0.07, 0.16),
)
BASE_REGION_COUNT = len(_BASE_REGIONS)

# Aggregate regions as blends of base regions (ids). GB also gets a sliver of "other" (the
# recorded GB mixes show ~0.4 % "other" while no single region does).
_AGGREGATES: tuple[tuple[int, tuple[int, ...]], ...] = (
    (15, tuple(range(3, 15))),  # England
    (16, (1, 2)),  # Scotland
    (17, (6, 7)),  # Wales
    (18, tuple(range(1, 15))),  # GB
)
GB_OTHER_SHARE = 0.004

# Coal: a GB-wide decline (relative availability at each date, linearly interpolated; the last
# unit, Ratcliffe-on-Soar, closed on 2024-09-30) and earlier closures of some regions' plants.
_COAL_TREND: tuple[tuple[dt.date, float], ...] = (
    (dt.date(2018, 1, 1), 1.00),
    (dt.date(2019, 1, 1), 0.50),
    (dt.date(2020, 1, 1), 0.30),
    (dt.date(2021, 1, 1), 0.25),
    (dt.date(2022, 1, 1), 0.20),
    (dt.date(2024, 9, 30), 0.18),
    (dt.date(2024, 10, 1), 0.00),
)
_COAL_CLOSURES: dict[int, dt.date] = {
    5: dt.date(2021, 4, 1),  # Drax's last coal units (Yorkshire)
    6: dt.date(2020, 4, 1),  # Fiddler's Ferry (Merseyside)
    7: dt.date(2020, 4, 1),  # Aberthaw B (South Wales)
}
# Nuclear closures: (region, from date, remaining fraction).
_NUCLEAR_CHANGES: tuple[tuple[int, dt.date, float], ...] = (
    (14, dt.date(2021, 6, 7), 0.2),  # Dungeness B
    (2, dt.date(2022, 1, 7), 0.55),  # Hunterston B (Torness remains)
    (11, dt.date(2022, 8, 1), 0.0),  # Hinkley Point B
)

# Yearly trends since 2018, as fractions per year (linear): demand falls (efficiency), wind,
# solar and interconnector capacity grow, the ageing nuclear fleet produces less. Together with
# the coal phase-out they take the GB mean intensity from ~200 in 2018 to ~170 in 2024 and the GB
# wind share from ~17 % to ~27 % (the real national decline is steeper, ~250 to ~150).
DEMAND_TREND_PER_YEAR = -0.02
WIND_GROWTH_PER_YEAR = 0.16
SOLAR_GROWTH_PER_YEAR = 0.05
IMPORTS_GROWTH_PER_YEAR = 0.15
NUCLEAR_TREND_PER_YEAR = -0.02

# Time origin for the smooth weather processes; any fixed instant works.
_PROCESS_EPOCH = dt.datetime(2018, 1, 1, tzinfo=UTC)

# ------------------------------------------------------------------------------------------------
# JSON templates. Responses are assembled from pre-formatted text instead of dicts passed to
# json.dumps because a 13-day, all-region response has ~100k small objects; the text is
# byte-identical to json.dumps(obj, separators=(",", ":")) of the same data (a test checks it).
# ------------------------------------------------------------------------------------------------

# Text of every perc value, indexed by tenths 0..1000: "0", "0.1", ..., "44.7", ..., "100".
_PERC_TEXT = np.array(
    [json.dumps(t // 10) if t % 10 == 0 else json.dumps(t / 10) for t in range(1001)], dtype=object
)
# Text of every forecast, indexed by value (the dirtiest fuel, coal, is 937 g/kWh).
_FORECAST_TEXT = np.array([str(value) for value in range(2000)], dtype=object)
_LABEL_TEXT = np.array(INDEX_LABELS, dtype=object)
# One %-template for a whole period: from, to, then per region (in id order) the forecast, the
# index label and the nine perc texts. A single % operation per period keeps formatting cheap.
_MIX_TEMPLATE = ",".join('{"fuel":"' + fuel + '","perc":%s}' for fuel in FUELS)
_REGION_TEMPLATE_TEXT = ",".join(
    (
        f'{{"regionid":{regionid},"dnoregion":{json.dumps(dno)},'
        f'"shortname":{json.dumps(shortname)},"intensity":{{"forecast":'
    ).replace("%", "%%")  # names are data, not template fields
    + '%s,"index":"%s"},"generationmix":['
    + _MIX_TEMPLATE
    + "]}"
    for regionid, dno, shortname in REGIONS
)
_PERIOD_TEMPLATE = '{"from":"%s","to":"%s","regions":[' + _REGION_TEMPLATE_TEXT + "]}"
_FIELDS_PER_REGION = 2 + len(FUELS)


def format_api_datetime(moment: dt.datetime) -> str:
    """``YYYY-MM-DDThh:mmZ``, the API's own datetime format."""
    return moment.astimezone(UTC).strftime("%Y-%m-%dT%H:%MZ")


# ================================================================================================
# Data generator
# ================================================================================================


def stable_int(*parts: object) -> int:
    """A 64-bit integer hash of ``parts`` that is the same in every process (unlike hash())."""
    text = "|".join(str(part) for part in parts).encode()
    return int.from_bytes(hashlib.blake2b(text, digest_size=8).digest(), "big")


@functools.lru_cache(maxsize=4096)
def _anchor_values(seed: int, process: str, knot: int, channels: int) -> np.ndarray:
    """Seeded random values in [0, 1) at one knot of a smooth process (one per channel, <= 16).

    Straight from a 64-byte BLAKE2b digest: 30x cheaper than seeding a numpy Generator.
    """
    digest = hashlib.blake2b(f"{seed}|{process}|{knot}".encode(), digest_size=64).digest()
    values = np.frombuffer(digest, dtype="<u4")[:channels] / 2.0**32
    values.flags.writeable = False
    return values


def _smooth_process(
    seed: int, process: str, hours: np.ndarray, spacing_hours: float, channels: int
) -> np.ndarray:
    """A smooth random signal in [0, 1], shape (len(hours), channels).

    Random knots every ``spacing_hours`` joined by smoothstep curves. Knot values depend only on
    (seed, process, knot number), so the signal at any instant is the same whichever day or
    request asks for it, and days join without seams.
    """
    position = hours / spacing_hours
    knot = np.floor(position).astype(np.int64)
    fraction = position - knot
    ease = fraction * fraction * (3.0 - 2.0 * fraction)
    first = int(knot.min())
    knots = np.stack(
        [_anchor_values(seed, process, k, channels) for k in range(first, int(knot.max()) + 2)]
    )
    start = knots[knot - first]
    end = knots[knot - first + 1]
    return start + (end - start) * ease[:, None]


def _interpolate_trend(day: dt.date, points: tuple[tuple[dt.date, float], ...]) -> float:
    """Piecewise-linear value of a dated trend, flat before the first and after the last point."""
    if day <= points[0][0]:
        return points[0][1]
    for (day0, value0), (day1, value1) in itertools.pairwise(points):
        if day <= day1:
            span = (day1 - day0).days
            return value0 + (value1 - value0) * ((day - day0).days / span if span else 1.0)
    return points[-1][1]


def _largest_remainder_tenths(shares: np.ndarray) -> np.ndarray:
    """Round shares (last axis sums to 1) to integer tenths of a percent summing to exactly 1000.

    Fuels with a share of exactly 0 stay 0: the leftover tenths go to the largest fractional
    parts, and there are always fewer leftovers than fuels with a fractional part.
    """
    scaled = shares * 1000.0
    floored = np.floor(scaled)
    leftover = (1000.0 - floored.sum(axis=-1)).round().astype(np.int64)
    rank = np.argsort(np.argsort(-(scaled - floored), axis=-1, kind="stable"), axis=-1)
    return (floored + (rank < leftover[..., None])).astype(np.int64)


def _day_model(seed: int, day: dt.date) -> tuple[np.ndarray, np.ndarray]:
    """Generate one UTC day: (tenths (48, 18, 9) int, forecast (48, 18) int), regions in id
    order."""
    midnight = dt.datetime(day.year, day.month, day.day, tzinfo=UTC)
    hour_of_day = np.arange(PERIODS_PER_DAY) * 0.5 + 0.25  # period midpoints, UTC hours
    hours = (midnight - _PROCESS_EPOCH).total_seconds() / 3600.0 + hour_of_day
    day_of_year = day.timetuple().tm_yday
    # The linear trends hold from 2018 to 2030 and stay flat outside, so that any date (even one
    # that is never served) gives non-negative amounts.
    years_since_2018 = min(max((day - dt.date(2018, 1, 1)).days / 365.25, 0.0), 12.0)
    # 1 in mid-January, 0 in mid-July: drives demand, wind strength, hydro and coal use.
    winterness = 0.5 * (1.0 + math.cos(2.0 * math.pi * (day_of_year - 15) / 365.25))
    day_rng = np.random.default_rng(stable_int(seed, "day", day.isoformat()))

    # Demand: overnight trough around 04:00, a winter evening peak around 17:30, a little lower at
    # weekends and in summer. Same shape in every region (each region is in its own units).
    demand = (
        (0.88 + 0.2 * winterness)
        * (
            0.92
            + 0.12 * np.cos(2.0 * math.pi * (hour_of_day - 13.0) / 24.0)
            - 0.12 * np.exp(-(((hour_of_day - 4.0) / 2.5) ** 2))
            + 0.12 * winterness * np.exp(-(((hour_of_day - 17.5) / 1.6) ** 2))
        )
        * (0.9 if day.weekday() >= 5 else 1.0)
        * (1.0 + DEMAND_TREND_PER_YEAR * years_since_2018)
    )

    # Weather, shared between neighbouring regions through their weather zone.
    wind_national = _smooth_process(seed, "wind-gb", hours, 30.0, 1)
    wind_local = _smooth_process(seed, "wind-zone", hours, 10.0, WEATHER_ZONES)
    wind_mix = np.clip((0.65 * wind_national + 0.35 * wind_local - 0.22) / 0.56, 0.0, 1.0)
    wind_factor = np.minimum(0.95, (0.03 + 0.85 * wind_mix**1.3) * (0.75 + 0.35 * winterness))
    clear_sky = 0.3 + 0.7 * _smooth_process(seed, "cloud", hours, 8.0, WEATHER_ZONES)
    rain = 0.25 + 0.75 * _smooth_process(seed, "rain", hours, 48.0, WEATHER_ZONES)
    nuclear_available = 0.6 + 0.4 * _smooth_process(
        seed, "nuclear", hours, 240.0, BASE_REGION_COUNT
    )
    biomass_available = 0.6 + 0.4 * _smooth_process(
        seed, "biomass", hours, 120.0, BASE_REGION_COUNT
    )
    imports_available = 0.2 + 0.8 * _smooth_process(seed, "imports", hours, 16.0, 1)

    # Solar: clear-sky output from the sun's elevation at each region's latitude and longitude.
    declination = math.radians(23.44) * math.sin(2.0 * math.pi * (284 + day_of_year) / 365.0)
    latitude = np.radians([r.latitude for r in _BASE_REGIONS])
    longitude = np.array([r.longitude for r in _BASE_REGIONS])
    hour_angle = np.radians((hour_of_day[:, None] + longitude[None, :] / 15.0 - 12.0) * 15.0)
    sin_elevation = np.sin(latitude) * math.sin(declination) + np.cos(latitude) * math.cos(
        declination
    ) * np.cos(hour_angle)
    solar_factor = np.clip(sin_elevation - 0.03, 0.0, None) / 0.85

    zone = np.array([r.weather_zone for r in _BASE_REGIONS])
    coal_trend = _interpolate_trend(day, _COAL_TREND)
    wind_growth = 1.0 + WIND_GROWTH_PER_YEAR * years_since_2018
    solar_growth = 1.0 + SOLAR_GROWTH_PER_YEAR * years_since_2018
    imports_growth = 1.0 + IMPORTS_GROWTH_PER_YEAR * years_since_2018

    def capacity(fuel: str) -> np.ndarray:
        return np.array([getattr(r, fuel) for r in _BASE_REGIONS])

    coal_capacity = capacity("coal") * coal_trend
    for regionid, closed in _COAL_CLOSURES.items():
        if day >= closed:
            coal_capacity[regionid - 1] = 0.0
    nuclear_capacity = capacity("nuclear") * (1.0 + NUCLEAR_TREND_PER_YEAR * years_since_2018)
    for regionid, since, remaining in _NUCLEAR_CHANGES:
        if day >= since:
            nuclear_capacity[regionid - 1] *= remaining

    amounts = np.zeros((PERIODS_PER_DAY, BASE_REGION_COUNT, len(FUELS)))
    amounts[:, :, FUEL_INDEX["biomass"]] = capacity("biomass") * biomass_available
    # Coal ran mostly at winter peaks: scale by winterness and by how high demand is.
    peakiness = np.clip((demand - 0.8) / 0.4, 0.2, 1.0)[:, None]
    amounts[:, :, FUEL_INDEX["coal"]] = coal_capacity * (0.3 + 0.7 * winterness) * peakiness
    amounts[:, :, FUEL_INDEX["imports"]] = capacity("imports") * imports_growth * imports_available
    amounts[:, :, FUEL_INDEX["nuclear"]] = nuclear_capacity * nuclear_available
    amounts[:, :, FUEL_INDEX["hydro"]] = (
        capacity("hydro") * rain[:, zone] * (0.7 + 0.3 * winterness)
    )
    amounts[:, :, FUEL_INDEX["solar"]] = (
        capacity("solar") * solar_growth * solar_factor * clear_sky[:, zone]
    )
    amounts[:, :, FUEL_INDEX["wind"]] = capacity("wind") * wind_growth * wind_factor[:, zone]
    # A few percent of jitter so that neighbouring half hours are not perfectly smooth.
    amounts *= np.exp(0.04 * day_rng.standard_normal(amounts.shape))
    # Coal covers at most a third of a region's demand, which keeps even the 2018 East Midlands
    # winter peaks below ~600 g/kWh.
    coal = amounts[:, :, FUEL_INDEX["coal"]]
    np.minimum(coal, demand[:, None] / 3.0, out=coal)
    # Likewise solar: curtailment and exports keep its regional share below ~70 %.
    solar = amounts[:, :, FUEL_INDEX["solar"]]
    np.minimum(solar, 0.6 * demand[:, None], out=solar)
    # Gas covers the rest of demand, down to each region's floor.
    residual = demand[:, None] - amounts.sum(axis=-1)
    gas_floor = capacity("gas_floor") * demand[:, None]
    amounts[:, :, FUEL_INDEX["gas"]] = np.maximum(gas_floor, residual)

    base_shares = amounts / amounts.sum(axis=-1, keepdims=True)
    shares = np.empty((PERIODS_PER_DAY, len(REGIONS), len(FUELS)))
    shares[:, :BASE_REGION_COUNT] = base_shares
    weights = np.array([r.demand_weight for r in _BASE_REGIONS])
    for column, (regionid, members) in enumerate(_AGGREGATES, start=BASE_REGION_COUNT):
        member_index = np.array(members) - 1
        blend = (base_shares[:, member_index] * weights[member_index][None, :, None]).sum(axis=1)
        if regionid == 18:
            blend[:, FUEL_INDEX["other"]] += GB_OTHER_SHARE * blend.sum(axis=-1)
        shares[:, column] = blend / blend.sum(axis=-1, keepdims=True)

    tenths = _largest_remainder_tenths(shares)
    # Intensity consistent with the served (rounded) mix, plus a little forecast noise.
    intensity = tenths @ np.array(FUEL_FACTORS) / 1000.0
    intensity += day_rng.normal(0.0, 3.0, intensity.shape)
    forecast = np.maximum(0, np.rint(intensity)).astype(np.int64)
    return tenths, forecast


def perc_value(tenths: int) -> int | float:
    """The JSON value the API uses for an amount of tenths: an int when whole."""
    return tenths // 10 if tenths % 10 == 0 else tenths / 10


def _generate_day_periods(seed: int, day: dt.date) -> tuple[bytes, ...]:
    """The 48 period objects of one UTC day as compact JSON (UTF-8 bytes), in time order."""
    tenths, forecast = _day_model(seed, day)
    fields = np.empty((PERIODS_PER_DAY, len(REGIONS), _FIELDS_PER_REGION), dtype=object)
    fields[:, :, 0] = _FORECAST_TEXT[forecast]
    fields[:, :, 1] = _LABEL_TEXT[np.searchsorted(np.array(index_bands(day.year)), forecast)]
    fields[:, :, 2:] = _PERC_TEXT[tenths]
    # "from"/"to" texts: this day's date with each half-hour, the last "to" on the next day.
    date_text = day.isoformat()
    next_date_text = (
        (day + dt.timedelta(days=1)).isoformat() if day < dt.date.max else "10000-01-01"
    )
    times = [f"{date_text}T{p // 2:02d}:{p % 2 * 30:02d}Z" for p in range(PERIODS_PER_DAY)]
    times.append(f"{next_date_text}T00:00Z")
    periods = []
    for p, row in enumerate(fields.reshape(PERIODS_PER_DAY, -1).tolist()):
        periods.append((_PERIOD_TEMPLATE % (times[p], times[p + 1], *row)).encode())
    return tuple(periods)


# Generated days are cached: a benchmark re-reads the same few months, while a long-running
# emulator stays bounded.
DAY_CACHE_DAYS = 256
day_periods = functools.lru_cache(maxsize=DAY_CACHE_DAYS)(_generate_day_periods)


def as_utc(moment: dt.datetime) -> dt.datetime:
    """Treat naive datetimes as UTC and convert aware ones to UTC."""
    return moment.replace(tzinfo=UTC) if moment.tzinfo is None else moment.astimezone(UTC)


def _check_period_start(moment: dt.datetime) -> dt.datetime:
    moment = as_utc(moment)
    if moment.minute not in (0, 30) or moment.second or moment.microsecond:
        raise ValueError(f"period starts are on :00 or :30 UTC, got {moment.isoformat()}")
    return moment


def _period_text(period_start: dt.datetime, seed: int) -> bytes:
    period_start = _check_period_start(period_start)
    midnight = period_start.replace(hour=0, minute=0)
    index = (period_start - midnight) // HALF_HOUR
    return day_periods(seed, period_start.date())[index]


def regional_period_records(period_start: dt.datetime, seed: int = 42) -> list[dict]:
    """The 18 region records of one half hour, exactly as the emulator serves them (no faults).

    ``period_start`` must be on :00 or :30 (naive means UTC). Values depend only on
    (seed, period start, region), so a test can compute what any response will contain.
    Periods before the earliest regional data are generated too, but never served.
    """
    return json.loads(_period_text(period_start, seed))["regions"]


# ================================================================================================
# Request parsing and the range rule
# ================================================================================================

_DATETIME_PATTERN = re.compile(
    r"^(\d{4})-(\d{2})-(\d{2})"
    r"(?:T(\d{2}):(\d{2})(?::(\d{2})(?:\.\d+)?)?(?:Z|\+00:?00)?)?$"
)


def parse_api_datetime(text: str) -> dt.datetime | None:
    """Parse a datetime the way the API accepts it; None when invalid.

    ``YYYY-MM-DDThh:mmZ`` is the documented form. ``...Thh:mm:ssZ``, ``+00:00`` and a bare
    ``YYYY-MM-DD`` (midnight) are tolerated, as the real API does (contract §1).
    """
    match = _DATETIME_PATTERN.match(text)
    if not match:
        return None
    year, month, day, hour, minute, second = (int(g) if g else 0 for g in match.groups())
    try:
        return dt.datetime(year, month, day, hour, minute, second, tzinfo=UTC)
    except ValueError:
        return None


def period_starts_in_range(start: dt.datetime, end: dt.datetime) -> list[dt.datetime]:
    """Starts of the periods whose end lies in [start, end], with the year-boundary truncation."""
    first_end = _ceil_half_hour(start)
    last_end = floor_half_hour(end)
    if end.year > start.year:
        # The real API stops at the end of from's year and even loses the 23:30-00:00 period.
        last_end = min(last_end, dt.datetime(start.year, 12, 31, 23, 30, tzinfo=UTC))
    count = (last_end - first_end) // HALF_HOUR + 1
    return [first_end - HALF_HOUR + i * HALF_HOUR for i in range(max(0, count))]


def floor_half_hour(moment: dt.datetime) -> dt.datetime:
    return moment.replace(minute=moment.minute - moment.minute % 30, second=0, microsecond=0)


def _ceil_half_hour(moment: dt.datetime) -> dt.datetime:
    floored = floor_half_hour(moment)
    return floored if floored == moment else floored + HALF_HOUR


# ================================================================================================
# National series (GET /intensity/{from}/{to})
# ================================================================================================

# The national range limit (contract §6): 30 days are accepted, 31 and more rejected.
MAX_NATIONAL_RANGE_DAYS = 31
NATIONAL_RANGE_TOO_LONG_MESSAGE = (
    "The date range you have specified is greater than 31 days. Please select a smaller date range."
)
GB_REGION_COLUMN = 17  # regionid 18 (GB) in the (48, 18) forecast array

# Actual minus forecast, fitted on the 2023 national series
# (national_intensity_2023_halfhourly_DERIVED.csv): mean +0.85, standard deviation 14.5, MAE 9.9,
# autocorrelation 0.74 at one half hour and 0.53 at two, i.e. close to an AR(1) with phi 0.74.
ACTUAL_ERROR_BIAS = 0.85
ACTUAL_ERROR_SD = 14.5
ACTUAL_ERROR_AUTOCORRELATION = 0.74


def _generate_national_day(seed: int, day: dt.date) -> tuple[tuple[int, ...], tuple[int, ...]]:
    """(forecasts, actuals) of the 48 half hours of one UTC day, both ints >= 0.

    The forecast is exactly the GB regional (regionid 18) forecast of the same seed; the actual
    adds an AR(1) error that starts each day from its stationary distribution.
    """
    forecast = _day_model(seed, day)[1][:, GB_REGION_COLUMN]
    rng = np.random.default_rng(stable_int(seed, "national-actual-error", day.isoformat()))
    innovation_sd = ACTUAL_ERROR_SD * math.sqrt(1.0 - ACTUAL_ERROR_AUTOCORRELATION**2)
    shocks = rng.standard_normal(PERIODS_PER_DAY)
    error = np.empty(PERIODS_PER_DAY)
    error[0] = ACTUAL_ERROR_SD * shocks[0]
    for p in range(1, PERIODS_PER_DAY):
        error[p] = ACTUAL_ERROR_AUTOCORRELATION * error[p - 1] + innovation_sd * shocks[p]
    actual = np.maximum(0, np.rint(forecast + ACTUAL_ERROR_BIAS + error)).astype(np.int64)
    return tuple(forecast.tolist()), tuple(actual.tolist())


national_day_values = functools.lru_cache(maxsize=DAY_CACHE_DAYS)(_generate_national_day)


def national_period_record(
    period_start: dt.datetime, seed: int = 42, actual_published: bool = True
) -> dict:
    """One national record, exactly as the emulator serves it (no faults).

    ``{"from", "to", "intensity": {"forecast", "actual", "index"}}``: forecast is the GB regional
    forecast for the same half hour and seed, actual is forecast plus a realistic error, or None
    when not ``actual_published``; index is from the actual when present, else the forecast,
    with the bands of the period start's year (index_label).
    """
    period_start = _check_period_start(period_start)
    forecasts, actuals = national_day_values(seed, period_start.date())
    index = period_start.hour * 2 + period_start.minute // 30
    forecast = forecasts[index]
    actual = actuals[index] if actual_published else None
    return {
        "from": format_api_datetime(period_start),
        "to": format_api_datetime(period_start + HALF_HOUR),
        "intensity": {
            "forecast": forecast,
            "actual": actual,
            "index": index_label(forecast if actual is None else actual, period_start.year),
        },
    }
