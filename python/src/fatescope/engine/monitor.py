"""Wall time, CPU and peak memory of one stage run in this process (trace.tsv fields)."""
from __future__ import annotations

import threading
import time
from dataclasses import dataclass

import psutil


@dataclass
class Usage:
    realtime_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss: int = 0

    @property
    def pct_cpu(self) -> float:
        return 100.0 * self.cpu_s / self.realtime_s if self.realtime_s > 0 else 0.0


class ResourceMonitor:
    """Context manager sampling this process's RSS (20 Hz) while a stage runs."""

    def __init__(self, interval: float = 0.05):
        self.interval = interval
        self.usage = Usage()
        self._proc = psutil.Process()
        self._stop = threading.Event()

    def _sample(self) -> None:
        while not self._stop.is_set():
            self.usage.peak_rss = max(self.usage.peak_rss, self._proc.memory_info().rss)
            self._stop.wait(self.interval)

    def __enter__(self) -> Usage:
        self._t0, self._c0 = time.perf_counter(), sum(self._proc.cpu_times()[:2])
        self._thread = threading.Thread(target=self._sample, daemon=True)
        self._thread.start()
        return self.usage

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join()
        self.usage.peak_rss = max(self.usage.peak_rss, self._proc.memory_info().rss)
        self.usage.realtime_s = time.perf_counter() - self._t0
        self.usage.cpu_s = sum(self._proc.cpu_times()[:2]) - self._c0


def human_bytes(n: int) -> str:
    for unit in ("B", "KB", "MB", "GB", "TB"):
        if n < 1024 or unit == "TB":
            return f"{n:.1f} {unit}" if unit != "B" else f"{n} B"
        n /= 1024
    return f"{n} B"


def human_seconds(s: float) -> str:
    if s < 60:
        return f"{s:.1f}s"
    m, sec = divmod(s, 60)
    return f"{int(m)}m {sec:.0f}s" if m < 60 else f"{int(m // 60)}h {int(m % 60)}m"
