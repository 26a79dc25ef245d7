"""The load generator: wrk (compiled, from Debian's packages) driven by the Lua scripts in bench/wrk/."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import time
from dataclasses import dataclass, field, fields
from pathlib import Path

SCRIPTS = Path(__file__).resolve().parent / "wrk"


def ensure_wrk() -> str:
    """The path of wrk, installed with apt-get when it is missing (root only)."""
    found = shutil.which("wrk")
    if found:
        return found
    if os.geteuid() != 0:
        raise SystemExit("bench: wrk is missing; as root run: apt-get install -y wrk")
    env = dict(os.environ, DEBIAN_FRONTEND="noninteractive")
    install = ["apt-get", "-o", "DPkg::Lock::Timeout=300", "install", "-y", "-q", "wrk"]
    if subprocess.run(install, env=env, stdout=subprocess.DEVNULL).returncode != 0:
        subprocess.run(["apt-get", "-o", "DPkg::Lock::Timeout=300", "update", "-q"], env=env,
                       stdout=subprocess.DEVNULL, check=True)
        subprocess.run(install, env=env, stdout=subprocess.DEVNULL, check=True)
    return shutil.which("wrk") or "/usr/bin/wrk"


@dataclass
class LoadResult:
    requests: int
    seconds: float
    per_second: float
    p50_ms: float
    p99_ms: float
    mean_ms: float
    errors: int
    load_cpu_cores: float  # wrk's utime+stime over wall time: 1.0 is one core busy all along
    output: str = field(default="", repr=False)  # what wrk printed (a script's own lines), not in as_dict()

    @property
    def valid(self) -> bool:
        return self.errors == 0 and self.requests > 0

    def as_dict(self) -> dict[str, object]:
        return {f.name: getattr(self, f.name) for f in fields(self) if f.name != "output"} | {"valid": self.valid}


def parse_report(output: str) -> dict[str, float]:
    """The JSON line that report.lua's done() prints after wrk's own summary."""
    for line in output.splitlines():
        if line.startswith("BENCH_JSON "):
            parsed: dict[str, float] = json.loads(line.removeprefix("BENCH_JSON "))
            return parsed
    raise RuntimeError(f"wrk printed no BENCH_JSON line:\n{output[-2000:]}")


def run_wrk(url: str, script: str, *, connections: int, seconds: float, env: dict[str, str],
            threads: int = 2) -> LoadResult:
    """Runs ``wrk -s bench/wrk/<script>`` against ``url``; ``env`` carries the script's BENCH_* settings."""
    command = [ensure_wrk(), f"-t{threads}", f"-c{connections}", f"-d{max(1, round(seconds))}s", "--timeout", "10s",
               "-s", script, url]
    started = time.monotonic()
    proc = subprocess.Popen(command, cwd=SCRIPTS, env=dict(os.environ, **env), stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True, errors="replace")
    assert proc.stdout is not None
    output = proc.stdout.read()
    # wait4 rather than wait: the kernel's utime+stime of the finished wrk (what /proc/<pid>/stat showed).
    _, status, usage = os.wait4(proc.pid, 0)
    proc.returncode = os.waitstatus_to_exitcode(status)
    wall = time.monotonic() - started
    if proc.returncode != 0:
        raise RuntimeError(f"wrk exited with {proc.returncode}:\n{output[-2000:]}")
    report = parse_report(output)
    seconds_run = report["duration_us"] / 1e6
    errors = sum(int(report[k]) for k in ("errors_connect", "errors_read", "errors_write", "errors_status",
                                           "errors_timeout"))
    return LoadResult(
        requests=int(report["requests"]), seconds=round(seconds_run, 2),
        per_second=round(report["requests"] / seconds_run, 1),
        p50_ms=round(report["latency_p50_us"] / 1000, 2), p99_ms=round(report["latency_p99_us"] / 1000, 2),
        mean_ms=round(report["latency_mean_us"] / 1000, 2), errors=errors,
        load_cpu_cores=round((usage.ru_utime + usage.ru_stime) / wall, 3), output=output,
    )
