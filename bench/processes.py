"""Subprocesses with their wall time and peak memory (Python process tree and JVM apart)."""

from __future__ import annotations

import ctypes
import os
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import psutil

PROJECT_DIR = Path(__file__).resolve().parent.parent


def is_jvm(label: str) -> bool:
    """Whether a "pid name" label is a Java process (local Spark's driver)."""
    return label.endswith(" java")


class PeakRssSampler(threading.Thread):
    """Samples the RSS of a process and all its descendants every `interval` seconds.

    Java processes (the local Spark driver, a child of the Python process) are counted apart
    from the rest of the tree. Peaks are of simultaneous samples. CPU seconds are each
    process's last sample (a process that lives less than `interval` may be missed).
    """

    def __init__(self, pid: int, interval: float = 0.2):
        super().__init__(name=f"rss-sampler-{pid}", daemon=True)
        self.pid, self.interval = pid, interval
        self.peak_python = self.peak_jvm = self.peak_total = 0
        self.peak_python_at = self.peak_jvm_at = 0.0  # epoch seconds of each peak
        self.peak_by_process: dict[str, int] = {}  # "pid name" -> peak RSS
        self.cpu_by_process: dict[str, float] = {}  # "pid name" -> latest user+system seconds
        self.samples = 0
        self._finished = threading.Event()

    def run(self) -> None:
        while not self._finished.is_set():
            self.sample()
            self._finished.wait(self.interval)

    def sample(self) -> None:
        try:
            root = psutil.Process(self.pid)
            tree = [root, *root.children(recursive=True)]
        except psutil.NoSuchProcess:
            return
        python = jvm = 0
        for process in tree:
            try:
                with process.oneshot():
                    rss, cpu, label = (
                        process.memory_info().rss,
                        process.cpu_times(),
                        f"{process.pid} {process.name()}",
                    )
            except (psutil.NoSuchProcess, psutil.AccessDenied):
                continue
            if is_jvm(label):
                jvm += rss
            else:
                python += rss
            self.peak_by_process[label] = max(self.peak_by_process.get(label, 0), rss)
            self.cpu_by_process[label] = cpu.user + cpu.system
        self.samples += 1
        now = time.time()  # the clock of Dagster's event timestamps: peaks map to steps
        if python > self.peak_python:
            self.peak_python, self.peak_python_at = python, now
        if jvm > self.peak_jvm:
            self.peak_jvm, self.peak_jvm_at = jvm, now
        self.peak_total = max(self.peak_total, python + jvm)

    def stop(self) -> None:
        self._finished.set()
        self.join()


@dataclass
class Measured:
    """How a subprocess went."""

    returncode: int
    wall_seconds: float
    peak_rss_python_bytes: int
    peak_rss_jvm_bytes: int
    peak_rss_total_bytes: int
    peak_rss_python_at: float  # epoch seconds
    peak_rss_jvm_at: float
    cpu_seconds_python: float  # user + system, the whole tree except the JVM
    cpu_seconds_jvm: float
    peak_rss_by_process: dict[str, int]
    log: str

    def as_dict(self) -> dict:
        return asdict(self)


# prctl(PR_SET_PDEATHSIG, SIGKILL), looked up now: the child calls it between fork and exec,
# where importing or taking locks could deadlock.
_PR_SET_PDEATHSIG = 1
_PRCTL = ctypes.CDLL(None, use_errno=True).prctl if sys.platform.startswith("linux") else None
_SIGKILL = int(signal.SIGKILL)


def die_with_parent() -> None:
    """In a child, before exec: be killed when the benchmark dies, even by SIGKILL (Linux).

    Without this, a benchmark killed from outside would leave its emulator serving forever.
    """
    if _PRCTL is not None:
        _PRCTL(_PR_SET_PDEATHSIG, _SIGKILL)


def bench_env() -> dict[str, str]:
    """The environment for bench subprocesses: the project importable, Python unbuffered."""
    env = dict(os.environ)
    env["PYTHONPATH"] = os.pathsep.join(filter(None, [str(PROJECT_DIR), env.get("PYTHONPATH")]))
    env["PYTHONUNBUFFERED"] = "1"
    return env


def python_module(module: str, *args: str) -> list[str]:
    return [sys.executable, "-m", module, *args]


def run_measured(command: list[str], log_path: Path, cwd: Path, timeout: float) -> Measured:
    """Run `command` to the end, sampling its memory; its output goes to `log_path`."""
    log_path.parent.mkdir(parents=True, exist_ok=True)
    with open(log_path, "wb") as log:
        started = time.perf_counter()
        process = subprocess.Popen(
            command,
            stdout=log,
            stderr=subprocess.STDOUT,
            cwd=cwd,
            env=bench_env(),
            start_new_session=True,
            preexec_fn=die_with_parent,  # noqa: PLW1509 - only calls prctl
        )
        sampler = PeakRssSampler(process.pid)
        sampler.start()
        try:
            returncode = process.wait(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)  # our own process group, started above
            returncode = process.wait()
        finally:
            wall = time.perf_counter() - started
            sampler.stop()
    cpu = sampler.cpu_by_process
    return Measured(
        returncode=returncode,
        wall_seconds=round(wall, 2),
        peak_rss_python_bytes=sampler.peak_python,
        peak_rss_jvm_bytes=sampler.peak_jvm,
        peak_rss_total_bytes=sampler.peak_total,
        peak_rss_python_at=sampler.peak_python_at,
        peak_rss_jvm_at=sampler.peak_jvm_at,
        cpu_seconds_python=round(sum(v for k, v in cpu.items() if not is_jvm(k)), 1),
        cpu_seconds_jvm=round(sum(v for k, v in cpu.items() if is_jvm(k)), 1),
        peak_rss_by_process=sampler.peak_by_process,
        log=str(log_path),
    )


def log_tail(path: str | Path, lines: int = 30) -> str:
    return "\n".join(Path(path).read_text(errors="replace").splitlines()[-lines:])
