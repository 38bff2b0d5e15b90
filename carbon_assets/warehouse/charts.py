"""Pictures of the daily table for the Dagster UI and the README: PNG bytes, no display needed.

- a heatmap of intensity_avg, one row per region and one column per day;
- the GB-wide generation mix over the days (region 18), as stacked shares;
- the national forecast against the actual, day by day, from the national daily table.
"""

from __future__ import annotations

import base64
import io
from typing import TYPE_CHECKING

import pandas as pd

from carbon_assets.vocabulary import FUEL_COLUMNS, FUELS, REGIONS

if TYPE_CHECKING:
    from matplotlib.axes import Axes
    from matplotlib.figure import Figure

GB = 18
# Fossil fuels warm, low-carbon ones cool, imports and other in greys.
FUEL_COLOURS = {
    "biomass": "#8c6d31",
    "coal": "#3b3b3b",
    "imports": "#9e9e9e",
    "gas": "#e6550d",
    "nuclear": "#756bb1",
    "other": "#c7c7c7",
    "hydro": "#3182bd",
    "solar": "#fdd835",
    "wind": "#31a354",
}
DPI = 80
WEEKLY_BEYOND_DAYS = 366


def _figure(width: float, height: float) -> Figure:
    """A Figure without pyplot: no global state and no display backend, safe in any thread.
    matplotlib is imported here, when a chart is drawn: every process that loads the
    definitions would otherwise import it."""
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height))


def _dates_on_x(axes: Axes) -> None:
    from matplotlib.dates import AutoDateLocator, ConciseDateFormatter

    locator = AutoDateLocator()
    axes.xaxis.set_major_locator(locator)
    axes.xaxis.set_major_formatter(ConciseDateFormatter(locator))


def _png(figure: Figure) -> bytes:
    buffer = io.BytesIO()
    figure.savefig(buffer, format="png", dpi=DPI, bbox_inches="tight")
    return buffer.getvalue()


def intensity_heatmap(daily: pd.DataFrame) -> bytes:
    """Regions x days of intensity_avg (gCO2/kWh): where and when the grid was clean."""
    grid = daily.pivot_table(
        index="regionid", columns="date_recorded", values="intensity_avg", aggfunc="first"
    ).astype(float)
    names = {regionid: shortname for regionid, _, shortname in REGIONS}
    figure = _figure(10, 5)
    axes = figure.subplots()
    image = axes.imshow(grid.to_numpy(), aspect="auto", cmap="RdYlGn_r", interpolation="nearest")
    axes.set_yticks(range(len(grid.index)), [names.get(r, str(r)) for r in grid.index], fontsize=8)
    days = list(grid.columns)
    step = max(1, len(days) // 10)
    axes.set_xticks(range(0, len(days), step), [str(d) for d in days[::step]], rotation=45)
    axes.set_title(f"Carbon intensity by region and day, {days[0]} to {days[-1]}")
    figure.colorbar(image, ax=axes, label="intensity_avg, gCO2/kWh")
    return _png(figure)


def gb_fuel_mix(daily: pd.DataFrame) -> bytes:
    """The GB-wide generation mix (region 18) over the days, as stacked percentages."""
    gb = daily[daily["regionid"] == GB]
    shares = gb[list(FUEL_COLUMNS)].astype(float).fillna(0.0)
    shares.index = pd.to_datetime(gb["date_recorded"])
    shares = shares.sort_index()
    if len(shares) > WEEKLY_BEYOND_DAYS:  # weekly means keep a long range readable and small
        shares = shares.resample("W").mean()
    figure = _figure(10, 4)
    axes = figure.subplots()
    axes.stackplot(
        shares.index,
        *(shares[column] for column in FUEL_COLUMNS),
        labels=list(FUELS),
        colors=[FUEL_COLOURS[fuel] for fuel in FUELS],
    )
    axes.set_ylim(0, 100)
    axes.set_ylabel("share of generation, %")
    step = "week" if len(shares) < len(gb) else "day"
    axes.set_title(f"GB generation mix by {step}")
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    _dates_on_x(axes)
    return _png(figure)


def national_forecast_vs_actual(national_daily: pd.DataFrame) -> bytes:
    """The national daily forecast and actual averages over the days, and the day's mean
    absolute error under them: how good the forecasts were."""
    days = national_daily.assign(date_recorded=pd.to_datetime(national_daily["date_recorded"]))
    days = days.sort_values("date_recorded").set_index("date_recorded")
    values = days[["forecast_avg", "actual_avg", "mean_absolute_error"]].astype(float)
    figure = _figure(10, 4)
    axes = figure.subplots()
    axes.plot(values.index, values["forecast_avg"], label="forecast", color="#e6550d")
    axes.plot(values.index, values["actual_avg"], label="actual", color="#3b3b3b")
    axes.bar(
        values.index, values["mean_absolute_error"], label="mean absolute error", color="#9ecae1"
    )
    axes.set_ylabel("gCO2/kWh")
    axes.set_title("National carbon intensity: daily forecast vs actual")
    axes.legend(loc="upper left", bbox_to_anchor=(1.0, 1.0), fontsize=8)
    _dates_on_x(axes)
    return _png(figure)


def as_markdown_image(png: bytes, alt: str) -> str:
    """A Markdown image the Dagster UI shows inline (the PNG travels in the metadata)."""
    return f"![{alt}](data:image/png;base64,{base64.b64encode(png).decode()})"
