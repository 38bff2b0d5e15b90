"""The API emulator as a separate process (`carbon-assets emulate-api` on a free port)."""

from __future__ import annotations

import datetime as dt
import json
import re
import subprocess
import time
import urllib.request
from dataclasses import dataclass, field
from pathlib import Path
from typing import Self

from bench.processes import bench_env, die_with_parent, python_module

READY_LINE = re.compile(r"emulator on (http://\S+)")


@dataclass(frozen=True)
class EmulatorSettings:
    """The benchmark's API: slow, a little faulty, one day without data."""

    latency_min: float = 0.2
    latency_max: float = 2.0
    # Bigger ranges answer more slowly, as the real API's do (the case study's profile).
    latency_per_day: float = 0.05
    rate_500: float = 0.03
    rate_429: float = 0.01
    retry_after_seconds: float = 1.0
    empty_dates: tuple[str, ...] = ("2023-10-22",)
    seed: int = 42

    def arguments(self) -> list[str]:
        args = [
            "--port", "0", "--seed", str(self.seed),
            "--latency-min", str(self.latency_min), "--latency-max", str(self.latency_max),
            "--latency-per-day", str(self.latency_per_day),
            "--rate-500", str(self.rate_500), "--rate-429", str(self.rate_429),
            "--retry-after-seconds", str(self.retry_after_seconds),
        ]  # fmt: skip
        for day in self.empty_dates:
            args += ["--empty-date", dt.date.fromisoformat(day).isoformat()]
        return args


# The API profiles of the CLI benchmarks: "fast" (no faults) and "slow" (the benchmark's API).
FAST_API = EmulatorSettings(
    latency_min=0.02,
    latency_max=0.1,
    latency_per_day=0.0,
    rate_500=0.0,
    rate_429=0.0,
    empty_dates=(),
)
APIS = {"fast": FAST_API, "slow": EmulatorSettings()}


@dataclass
class EmulatorProcess:
    """Starts the emulator CLI, waits until it listens, and stops it on exit."""

    settings: EmulatorSettings
    log_path: Path
    base_url: str = ""
    _process: subprocess.Popen | None = field(default=None, repr=False)

    def __enter__(self) -> Self:
        self.log_path.parent.mkdir(parents=True, exist_ok=True)
        command = python_module("carbon_assets.cli", "emulate-api", *self.settings.arguments())
        self._log = open(self.log_path, "w")
        self._process = subprocess.Popen(
            command,
            stdout=self._log,
            stderr=subprocess.STDOUT,
            env=bench_env(),
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - only calls prctl
        )
        self.base_url = self._wait_until_listening()
        return self

    def _wait_until_listening(self, timeout: float = 60.0) -> str:
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            if match := READY_LINE.search(self.log_path.read_text()):
                return match.group(1)
            if self._process.poll() is not None:
                break
            time.sleep(0.1)
        self.__exit__()
        raise RuntimeError(
            f"the emulator did not start; see {self.log_path}:\n{self.log_path.read_text()}"
        )

    def __exit__(self, *exc_info) -> None:
        if self._process is not None and self._process.poll() is None:
            self._process.terminate()
            try:
                self._process.wait(timeout=15)
            except subprocess.TimeoutExpired:
                self._process.kill()
                self._process.wait()
        self._log.close()

    @property
    def pid(self) -> int:
        return self._process.pid

    def stats(self) -> dict:
        """GET /_stats: requests_total, by_status, peak_in_flight, latency_seconds_total..."""
        with urllib.request.urlopen(self.base_url + "/_stats", timeout=30) as response:
            stats = json.load(response)
        stats.pop("by_path", None)  # one entry per URL: too long for the results
        return stats

    def reset_stats(self) -> None:
        request = urllib.request.Request(self.base_url + "/_stats/reset", method="POST")
        urllib.request.urlopen(request, timeout=30).close()
