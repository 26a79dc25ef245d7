"""The checkout figure: quote -> hold -> purchase paid partly with the hold -> capture, for random members who
have the points, one checkout after another on each of 32 connections; beside plain purchases sent by the same
wrk script (bench/wrk/checkout.lua, ``BENCH_CHECKOUT_MODE=purchase``) at the same 32 connections in the same run.

The ratio is checkouts/s over purchases/s: a checkout that costs two purchases is 0.5. The script times every
step itself (wrk's own histogram mixes the four) and prints them as a ``BENCH_STEPS`` line; the pure parts
here read it and make the figure's JSON and its row."""

from __future__ import annotations

import json
import math
from typing import Any

from bench.kafka_figures import percentile
from bench.load import LoadResult
from bench.report import Row, ratio

SCRIPT = "checkout.lua"
CONNECTIONS = 32  # and as many wrk threads: one connection each, so each thread's state is one checkout
STEPS = ("quote", "hold", "purchase", "capture")
HOLD_POINTS = 100  # 1.00 at the default point value, of a 42.50 basket
GRANT_POINTS = 1_000_000  # each member's points before the figure: more than all its holds can take
MIN_RATIO = 0.5  # a checkout costs at most about two purchases


def parse_steps(output: str) -> dict[str, Any]:
    """The BENCH_STEPS line checkout.lua's done() prints after the BENCH_JSON one."""
    for line in output.splitlines():
        if line.startswith("BENCH_STEPS "):
            parsed: dict[str, Any] = json.loads(line.removeprefix("BENCH_STEPS "))
            return parsed
    raise RuntimeError(f"wrk printed no BENCH_STEPS line:\n{output[-2000:]}")


def latency_summary(samples_us: list[int]) -> dict[str, float]:
    """Nearest-rank percentiles (as every figure), in ms."""
    ms = [v / 1000 for v in samples_us]
    nan = float("nan")
    return {"count": len(ms), "p50_ms": round(percentile(ms, 50), 2), "p90_ms": round(percentile(ms, 90), 2),
            "p99_ms": round(percentile(ms, 99), 2), "max_ms": round(max(ms), 2) if ms else nan,
            "mean_ms": round(sum(ms) / len(ms), 2) if ms else nan}


def summarize(load: LoadResult, steps: dict[str, Any], service_cpu: dict[str, float]) -> dict[str, Any]:
    """What the figure adds to wrk's run: checkouts (or, for the reference, purchases) completed per second,
    each step's latency, the failures by step and status, and points' CPU per completed one (ms)."""
    completed = int(steps["completed"])
    per_second = round(completed / load.seconds, 1) if load.seconds > 0 else 0.0
    failures = {str(k): int(v) for k, v in steps.get("failures", {}).items()}
    points_cores = service_cpu.get("points")
    return {
        "mode": steps["mode"], "completed": completed, "completed_per_second": per_second,
        "steps": {str(name): latency_summary(values) for name, values in steps["latency_us"].items()},
        "failures": failures, "failure_samples": steps.get("failure_samples", {}),
        "points_cpu_ms_each": round(points_cores * 1000 / per_second, 3) if points_cores and per_second else None,
        "valid": load.valid and not failures and completed > 0,
    }


def _failures(figure: dict[str, Any]) -> str:
    listed = ", ".join(f"{what}: {count}" for what, count in sorted(figure["failures"].items()))
    return listed or f"{figure.get('errors', 0)} wrk errors, {figure['completed']} completed"


def row(checkout: dict[str, Any], reference: dict[str, Any]) -> Row:
    """checkouts/s beside purchases/s of the same script and connections; met when the ratio is at least 0.5."""
    rate, ref_rate = checkout["completed_per_second"], reference["completed_per_second"]
    r = ratio(rate, ref_rate)
    valid = bool(checkout["valid"] and reference["valid"])
    steps = checkout["steps"]
    whole = steps.get("checkout", {})
    text = (f"{rate:,.0f}/s p50 {whole.get('p50_ms')} p99 {whole.get('p99_ms')} ms (step p99 "
            + " / ".join(f"{name} {steps[name]['p99_ms']}" for name in STEPS if name in steps) + ")")
    cpu, ref_cpu = checkout.get("points_cpu_ms_each"), reference.get("points_cpu_ms_each")
    if cpu and ref_cpu:
        text += f"; points CPU {cpu / ref_cpu:.2f} purchases"
    if not valid:
        text += " INVALID (" + "; ".join(_failures(f) for f in (checkout, reference) if not f["valid"]) + ")"
    ref_p99 = reference["steps"].get("purchase", {}).get("p99_ms", float("nan"))
    return Row(f"checkout: quote, hold, purchase, capture ({CONNECTIONS} conns)", text,
               f"purchase, same script {ref_rate:,.0f}/s p99 {ref_p99} ms", r,
               f">= {MIN_RATIO} of ref (<= 2 purchases)", valid and not math.isnan(r) and r >= MIN_RATIO)
