"""One stage run in a child process, with its wall time, CPU and peak memory (trace.tsv fields)."""
from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

from ..logs import ERROR_FILE_ENV, RUN_LOG_ENV


@dataclass
class Usage:
    realtime_s: float = 0.0
    cpu_s: float = 0.0
    peak_rss: int = 0
    error: str | None = None  # the stage's own one-line message when it exited non-zero

    @property
    def pct_cpu(self) -> float:
        return 100.0 * self.cpu_s / self.realtime_s if self.realtime_s > 0 else 0.0


def run_child(args: list[str], run_log: Path, interval: float = 0.05) -> Usage:
    """Run ``fatescope <args>`` in a child process and measure it as Nextflow's trace does.

    The child shares this terminal (its logs and progress bars show as they come) and appends its log
    records to ``run_log``. Wall time from here; CPU time from the kernel's accounting of the child
    (``wait4``: the child and the processes it waited for, e.g. R); peak RSS sampled from /proc (the
    child's own high-water mark, and the resident memory of its process tree), since ``ru_maxrss``
    of a forked child counts the parent's memory at the fork.
    """
    env = dict(os.environ)
    with tempfile.TemporaryDirectory(prefix="fatescope-stage-") as tmp:
        error_file = Path(tmp) / "error.txt"
        env.update({RUN_LOG_ENV: str(run_log), ERROR_FILE_ENV: str(error_file)})
        start = time.perf_counter()
        proc = subprocess.Popen([sys.executable, "-m", "fatescope", *args], env=env)
        peak = 0
        while True:
            pid, status, rusage = os.wait4(proc.pid, os.WNOHANG)
            if pid:
                break
            peak = max(peak, _peak_kb(proc.pid), sum(_status_kb(p, "VmRSS") for p in _tree(proc.pid)))
            time.sleep(interval)
        proc.returncode = os.waitstatus_to_exitcode(status)
        usage = Usage(realtime_s=time.perf_counter() - start, cpu_s=rusage.ru_utime + rusage.ru_stime,
                      peak_rss=peak * 1024)
        if proc.returncode != 0:
            message = error_file.read_text().strip() if error_file.is_file() else ""
            usage.error = message or f"exit status {proc.returncode} (see the log above)"
    return usage


def _status_kb(pid: int, field: str) -> int:
    """A memory field (kB) of /proc/<pid>/status; 0 once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as fh:
            for line in fh:
                if line.startswith(field + ":"):
                    return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return 0


def _peak_kb(pid: int) -> int:
    return _status_kb(pid, "VmHWM")


def _tree(pid: int) -> list[int]:
    """``pid`` and its descendants (Linux /proc children lists)."""
    out, todo = [], [pid]
    while todo:
        p = todo.pop()
        out.append(p)
        try:
            for task in os.listdir(f"/proc/{p}/task"):
                with open(f"/proc/{p}/task/{task}/children") as fh:
                    todo += [int(c) for c in fh.read().split()]
        except (OSError, ValueError):
            pass
    return out


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
