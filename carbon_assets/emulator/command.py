"""`carbon-assets emulate-api`: serve the emulator until interrupted."""

from __future__ import annotations

import argparse
import asyncio
import datetime as dt
import signal
import sys

from aiohttp import web

from carbon_assets.emulator.data import (
    parse_api_datetime,
)
from carbon_assets.emulator.server import (
    EmulatorConfig,
    _make_runner,
    create_app,
)

# ================================================================================================
# CLI: carbon-assets emulate-api
# ================================================================================================


def _parse_date_argument(text: str) -> dt.date:
    try:
        return dt.date.fromisoformat(text)
    except ValueError as error:
        raise argparse.ArgumentTypeError(f"expected YYYY-MM-DD, got {text!r}") from error


def _parse_period_argument(text: str) -> dt.datetime:
    moment = parse_api_datetime(text)
    if moment is None or moment.minute not in (0, 30) or moment.second:
        raise argparse.ArgumentTypeError(f"expected a period start YYYY-MM-DDThh:mmZ, got {text!r}")
    return moment


def _parse_off_grid_argument(text: str) -> dt.datetime:
    moment = parse_api_datetime(text)
    if moment is None or (moment.minute in (0, 30) and not moment.second):
        raise argparse.ArgumentTypeError(
            f"expected a moment off the half-hour grid (e.g. 2024-01-01T09:15Z), got {text!r}"
        )
    return moment


def add_arguments(parser: argparse.ArgumentParser) -> None:
    """Declare the ``emulate-api`` options."""
    parser.description = (
        "Serve an offline emulator of the Carbon Intensity API (regional and national)."
    )
    parser.add_argument("--port", type=int, default=8765, help="TCP port (0 = any free port)")
    parser.add_argument("--host", default="127.0.0.1", help="address to bind (default loopback)")
    parser.add_argument("--seed", type=int, default=42, help="seed for data, latency and faults")
    parser.add_argument("--latency-min", type=float, default=0.2, help="seconds (default 0.2)")
    parser.add_argument("--latency-max", type=float, default=2.0, help="seconds (default 2.0)")
    parser.add_argument(
        "--latency-per-day", type=float, default=0.0, metavar="SECONDS",
        help="more latency per day a request asks for (default 0)",
    )  # fmt: skip
    parser.add_argument("--latency-scale", type=float, default=1.0, help="multiplies the latency")
    for fault in ("500", "429", "503", "slow", "reset", "truncated", "empty"):
        parser.add_argument(
            f"--rate-{fault}", type=float, default=0.0, metavar="P",
            help=f"probability of a {fault} fault per request (default 0)",
        )  # fmt: skip
    parser.add_argument("--retry-after-seconds", type=float, default=1.0)
    parser.add_argument(
        "--retry-after-http-date", action="store_true", help="send Retry-After as an HTTP date"
    )
    parser.add_argument("--slow-seconds", type=float, default=30.0, help="delay of a slow answer")
    parser.add_argument(
        "--empty-date", type=_parse_date_argument, action="append", default=[],
        metavar="YYYY-MM-DD", help="a UTC date with no data (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--duplicate-period", type=_parse_period_argument, action="append", default=[],
        metavar="YYYY-MM-DDThh:mmZ", help="a period start served twice (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--unknown-region-date", type=_parse_date_argument, action="append", default=[],
        metavar="YYYY-MM-DD",
        help="a UTC date whose periods also carry region 19 'Atlantis' (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--off-grid-period", type=_parse_off_grid_argument, action="append", default=[],
        metavar="YYYY-MM-DDThh:mmZ",
        help="an extra record starting off the half-hour grid, e.g. 09:15 (repeatable)",
    )  # fmt: skip
    parser.add_argument(
        "--actual-delay-hours", type=float, default=2.0, metavar="H",
        help="national actuals stay null until this long after a period ends (default 2)",
    )  # fmt: skip
    parser.add_argument(
        "--pending-actual-date", type=_parse_date_argument, action="append", default=[],
        metavar="YYYY-MM-DD", help="a UTC date whose national actuals are all null (repeatable)",
    )  # fmt: skip


def config_from_args(args: argparse.Namespace) -> EmulatorConfig:
    """The EmulatorConfig described by parsed ``emulate-api`` arguments."""
    return EmulatorConfig(
        seed=args.seed,
        latency_min=args.latency_min,
        latency_max=args.latency_max,
        latency_per_day=args.latency_per_day,
        latency_scale=args.latency_scale,
        rate_500=args.rate_500,
        rate_429=args.rate_429,
        rate_503=args.rate_503,
        rate_slow=args.rate_slow,
        rate_reset=args.rate_reset,
        rate_truncated=args.rate_truncated,
        rate_empty=args.rate_empty,
        retry_after_seconds=args.retry_after_seconds,
        retry_after_http_date=args.retry_after_http_date,
        slow_seconds=args.slow_seconds,
        empty_dates=frozenset(args.empty_date),
        duplicate_periods=frozenset(args.duplicate_period),
        unknown_region_dates=frozenset(args.unknown_region_date),
        off_grid_periods=frozenset(args.off_grid_period),
        actual_delay_hours=args.actual_delay_hours,
        pending_actual_dates=frozenset(args.pending_actual_date),
    )


async def _serve_until_signalled(config: EmulatorConfig, host: str, port: int) -> None:
    runner = _make_runner(create_app(config), shutdown_timeout=2.0)
    await runner.setup()
    try:
        site = web.TCPSite(runner, host, port)
        await site.start()
        bound_port = runner.addresses[0][1]
        print(f"Carbon Intensity API emulator on http://{host}:{bound_port}", flush=True)
        stop = asyncio.Event()
        loop = asyncio.get_running_loop()
        for signal_number in (signal.SIGINT, signal.SIGTERM):
            loop.add_signal_handler(signal_number, stop.set)
        await stop.wait()
    finally:
        await runner.cleanup()


def run(args: argparse.Namespace) -> int:
    """Serve until SIGINT or SIGTERM."""
    try:
        config = config_from_args(args)
    except ValueError as error:
        print(f"emulate-api: {error}", file=sys.stderr)
        return 2
    asyncio.run(_serve_until_signalled(config, args.host, args.port))
    return 0
