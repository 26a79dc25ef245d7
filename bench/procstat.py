"""What a process costs, read from /proc: resident memory (sampled, peak kept) and CPU time."""

from __future__ import annotations

import os
import threading
import time
from dataclasses import dataclass, field

CLOCK_TICKS = os.sysconf("SC_CLK_TCK")


def rss_mb(pid: int) -> float | None:
    """VmRSS of ``pid`` in MB, or None once the process is gone."""
    try:
        with open(f"/proc/{pid}/status") as status:
            for line in status:
                if line.startswith("VmRSS:"):
                    return int(line.split()[1]) / 1024
    except (FileNotFoundError, ProcessLookupError):
        return None
    return None


def cpu_seconds(pid: int) -> float | None:
    """utime + stime of ``pid`` (fields 14 and 15 of /proc/<pid>/stat), or None once it is gone."""
    try:
        with open(f"/proc/{pid}/stat") as stat:
            raw = stat.read()
    except (FileNotFoundError, ProcessLookupError):
        return None
    fields = raw[raw.rindex(")") + 2:].split()  # the command name may hold spaces; skip past it
    return (int(fields[11]) + int(fields[12])) / CLOCK_TICKS


@dataclass
class RssSampler:
    """Samples each named process's VmRSS every ``interval`` seconds in a thread; keeps the peak.

    A service restarted during the run (tiers, for the catch-up figure) is followed by ``watch`` again."""

    interval: float = 0.5
    pids: dict[str, int] = field(default_factory=dict)
    peak_mb: dict[str, float] = field(default_factory=dict)
    samples: int = 0
    _stop: threading.Event = field(default_factory=threading.Event)
    _thread: threading.Thread | None = None

    def watch(self, name: str, pid: int) -> None:
        self.pids[name] = pid

    def start(self) -> None:
        self._thread = threading.Thread(target=self._run, name="rss-sampler", daemon=True)
        self._thread.start()

    def stop(self) -> None:
        self._stop.set()
        if self._thread is not None:
            self._thread.join()

    def _run(self) -> None:
        while not self._stop.is_set():
            for name, pid in list(self.pids.items()):
                value = rss_mb(pid)
                if value is not None and value > self.peak_mb.get(name, 0.0):
                    self.peak_mb[name] = value
            self.samples += 1
            self._stop.wait(self.interval)


class CpuWatch:
    """CPU seconds that processes spent between ``__init__`` and ``stop()``, as a share of wall time."""

    def __init__(self, pids: dict[str, int]) -> None:
        self.pids = pids
        self.started = time.monotonic()
        self.before = {name: cpu_seconds(pid) or 0.0 for name, pid in pids.items()}

    def stop(self) -> dict[str, float]:
        """Cores used on average by each process (1.0 = one core busy all along)."""
        wall = time.monotonic() - self.started
        shares = {}
        for name, pid in self.pids.items():
            after = cpu_seconds(pid)
            if after is not None and wall > 0:
                shares[name] = round((after - self.before[name]) / wall, 3)
        return shares
