"""`python -m bench` (`make bench`, `make bench QUICK=1`): start the system (or use ``BENCH_TARGET``), seed,
run each figure beside its reference, print the table and write bench/results/<timestamp>.json."""

from __future__ import annotations

import argparse
import asyncio
import os
import platform
import signal
import sys
import time
import uuid
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from bench import checkout, kafka_figures, profile, saga, seed, simulation
from bench.load import LoadResult, ensure_wrk, run_wrk
from bench.procstat import CpuWatch, RssSampler
from bench.report import Row, ratio, table, write
from bench.system import System, start_local, target_from_env

RESULTS = Path(__file__).resolve().parent / "results"
CONNECTIONS = 64
RSS_LIMIT_MB = 300


@dataclass(frozen=True)
class Sizes:
    members: int
    load_seconds: float
    e2e_rate: float
    e2e_seconds: float
    e2e_sample_every: int
    round_trips: int
    saga_members: int
    saga_seconds: float
    checkout_members: int
    checkout_seconds: float
    backlog: int
    scale_members: int
    scale_entries: int
    simulation_purchases: int
    drain_timeout: float


FULL = Sizes(members=10_000, load_seconds=30, e2e_rate=200, e2e_seconds=30, e2e_sample_every=5, round_trips=300,
             saga_members=32, saga_seconds=30, checkout_members=10_000, checkout_seconds=30, backlog=200_000,
             scale_members=1_000_000, scale_entries=10_000_000, simulation_purchases=100_000, drain_timeout=1800)
QUICK = Sizes(members=2_000, load_seconds=8, e2e_rate=200, e2e_seconds=5, e2e_sample_every=4, round_trips=50,
              saga_members=32, saga_seconds=8, checkout_members=1_000, checkout_seconds=6, backlog=10_000,
              scale_members=20_000, scale_entries=100_000, simulation_purchases=20_000, drain_timeout=300)


def say(message: str) -> None:
    print(f"bench {datetime.now(UTC):%H:%M:%S} {message}", flush=True)


class Bench:
    def __init__(self, system: System, sizes: Sizes, run_id: str, profile_dir: Path | None = None) -> None:
        self.system = system
        self.profile_dir = profile_dir
        self.sizes = sizes
        self.run_id = run_id
        self.figures: dict[str, Any] = {}
        self.failures: dict[str, str] = {}
        self.rss = RssSampler()
        self.service_pids = {name: s.pid for name, s in system.services.items() if s.pid is not None}

    def wrk(self, figure: str, service: str, script: str, **env: str) -> LoadResult:
        """One wrk run at 64 connections, with the CPU each service used meanwhile."""
        return self.load(figure, service, script, env, connections=CONNECTIONS, threads=2,
                         seconds=self.sizes.load_seconds)

    def load(self, figure: str, service: str, script: str, env: dict[str, str], *, connections: int, threads: int,
             seconds: float) -> LoadResult:
        """One wrk run at ``connections`` over ``threads``, with the CPU each service used meanwhile."""
        watch = CpuWatch(self.service_pids)
        points_pid = self.system["points"].pid
        profiler = profile_path = None
        if self.profile_dir is not None and service == "points" and points_pid is not None:
            profile_path = self.profile_dir / f"{figure}.txt"
            profiler = profile.start(points_pid, seconds, profile_path)
        base = {"BENCH_KEY": self.system.admin_key, "BENCH_RUN_ID": f"{self.run_id}-{figure}",
                "BENCH_MEMBERS": str(self.sizes.members), "BENCH_MEMBER_PREFIX": "B-"}
        result = run_wrk(self.system[service].url, script, connections=connections, threads=threads,
                         seconds=seconds, env={**base, **env})
        service_cpu = watch.stop()
        # The machine's load average beside each figure: other work on the machine shows here.
        self.figures[figure] = {**result.as_dict(), "service_cpu_cores": service_cpu,
                                "load_average_1m": round(os.getloadavg()[0], 2)}
        if profiler is not None and profile_path is not None:
            profiler.wait()
            if profile_path.exists():
                self.figures[figure]["points_profile"] = profile.summary(profile_path)
        say(f"  {figure}: {result.per_second:,.0f}/s p50 {result.p50_ms} ms p99 {result.p99_ms} ms, "
            f"errors {result.errors}, wrk {result.load_cpu_cores} cores, services {service_cpu}")
        return result

    async def drain(self, why: str) -> None:
        seconds = await kafka_figures.wait_drained(self.system, self.sizes.drain_timeout, say)
        self.figures.setdefault("drain_seconds", {})[why] = round(seconds, 1)
        say(f"  consumers caught up ({why}) in {seconds:.1f}s")

    async def run(self) -> None:
        """Seeding must work; each later stage that fails is recorded and the run goes on to the next."""
        for name, pid in self.service_pids.items():
            self.rss.watch(name, pid)
        self.rss.start()
        try:
            await self.seed_data()
            for stage in (self.http_figures, self.checkout, self.end_to_end, self.redemption_saga, self.scale,
                          self.rule_simulation, self.catch_up):
                try:
                    await stage()
                except Exception as exc:
                    self.failures[stage.__name__] = f"{type(exc).__name__}: {exc}"[:500]
                    say(f"  {stage.__name__} failed: {self.failures[stage.__name__]}")
        finally:
            self.rss.stop()
            self.figures["rss_peak_mb"] = {k: round(v, 1) for k, v in self.rss.peak_mb.items()}
            self.figures["rss_samples"] = self.rss.samples
            self.figures["failures"] = self.failures

    @property
    def e2e_members(self) -> list[str]:
        return [f"E{self.run_id}-{i}" for i in range(int(self.sizes.e2e_rate * self.sizes.e2e_seconds))]

    async def seed_data(self) -> None:
        sizes, system = self.sizes, self.system
        say("seeding: tier program, reward, members")
        await seed.program(system)
        await seed.tier_program(system)
        await seed.reward(system)
        rate = await seed.enroll(system, (f"B-{i}" for i in range(sizes.members)))
        self.figures["enrollment_per_second"] = round(rate, 1)
        say(f"  {sizes.members:,} members enrolled ({rate:,.0f}/s)")
        await seed.enroll(system, self.e2e_members)
        await self.drain("after seeding")

    async def http_figures(self) -> None:
        say("purchase ingestion and its reference")
        self.wrk("ingestion", "points", "purchase.lua")
        self.wrk("reference_write", "points", "reference_write.lua")
        say("balance reads, /healthz, ledger pages")
        self.wrk("balance", "points", "read.lua", BENCH_PATH="/v1/members/%s/balance")
        self.wrk("healthz", "points", "read.lua", BENCH_PATH="/healthz")
        self.wrk("ledger", "points", "read.lua", BENCH_PATH="/v1/members/%s/ledger?limit=50")
        await self.drain("after ingestion")

    async def checkout(self) -> None:
        """Plain purchases, then checkouts, from the same script at the same connections (bench/checkout.py);
        the consumers catch up before each, so neither runs beside the other's backlog."""
        sizes = self.sizes
        members = [f"B-{i}" for i in range(min(sizes.checkout_members, sizes.members))]
        say(f"checkout: {checkout.GRANT_POINTS:,} points to {len(members):,} members, then purchases and "
            f"checkouts at {checkout.CONNECTIONS} connections")
        await seed.grant(self.system, members, checkout.GRANT_POINTS, self.run_id, purpose="checkout",
                         concurrency=32)
        await self.drain("after checkout grants")
        env = {"BENCH_MEMBERS": str(len(members)), "BENCH_HOLD_POINTS": str(checkout.HOLD_POINTS)}
        for figure, mode in (("checkout_purchase", "purchase"), ("checkout", "checkout")):
            result = self.load(figure, "points", checkout.SCRIPT, {**env, "BENCH_CHECKOUT_MODE": mode},
                               connections=checkout.CONNECTIONS, threads=checkout.CONNECTIONS,
                               seconds=sizes.checkout_seconds)
            measured = self.figures[figure]
            measured.update(checkout.summarize(result, checkout.parse_steps(result.output),
                                               measured["service_cpu_cores"]))
            say(f"  {figure}: {measured['completed_per_second']:,.1f} {mode}s/s, steps "
                + ", ".join(f"{k} p50 {v['p50_ms']} p99 {v['p99_ms']} ms" for k, v in measured["steps"].items())
                + (f", failures {measured['failures']} {measured['failure_samples']}" if measured["failures"] else ""))
            await self.drain(f"after {figure}")

    async def end_to_end(self) -> None:
        sizes, system = self.sizes, self.system
        say(f"end to end at {sizes.e2e_rate:.0f} purchases/s, and the bare Kafka round trip")
        self.figures["round_trip"] = await kafka_figures.round_trip_reference(system, sizes.round_trips)
        self.figures["end_to_end"] = await kafka_figures.end_to_end(
            system, self.e2e_members, sizes.e2e_rate, sizes.e2e_sample_every, self.run_id, self.service_pids)
        say(f"  {self.figures['end_to_end']}; round trip {self.figures['round_trip']}")
        await self.drain("after end to end")

    async def redemption_saga(self) -> None:
        sizes, system = self.sizes, self.system
        say(f"redemption saga, {sizes.saga_members} members at once")
        saga_members = [f"B-{i}" for i in range(sizes.saga_members)]
        await seed.grant(system, saga_members, 1_000_000, self.run_id)
        await self.drain("after grants")
        watch = CpuWatch(self.service_pids)
        self.figures["saga"] = await saga.redemptions(system, saga_members, sizes.saga_seconds, self.run_id)
        self.figures["saga"]["service_cpu_cores"] = watch.stop()
        say(f"  {self.figures['saga']}")
        await self.drain("after saga")

    async def catch_up(self) -> None:
        sizes, system = self.sizes, self.system
        if not system.managed:
            self.figures["catch_up"] = {"skipped": "needs the benchmark to stop and start tiers"}
            return
        say(f"consumer catch-up: {sizes.backlog:,} purchase.recorded with tiers stopped")
        try:
            self.figures["catch_up"] = await kafka_figures.catch_up(
                system, sizes.backlog, [f"B-{i}" for i in range(sizes.members)], say)
        finally:
            tiers_pid = system["tiers"].pid
            if tiers_pid is not None:
                self.rss.watch("tiers", tiers_pid)
        say(f"  {self.figures['catch_up']}")

    async def scale(self) -> None:
        sizes, system = self.sizes, self.system
        db_url = system["points"].db_url
        if db_url is None:
            self.figures["scale"] = {"skipped": "needs points_db= in BENCH_TARGET for the bulk seeding"}
            return
        before = await seed.counts(db_url)
        extra = sizes.scale_members - before["member"]
        per_member = max(1, round((sizes.scale_entries - before["ledger_entry"]) / max(extra, 1)))
        say(f"scale: seeding {extra:,} members with {per_member} ledger entries and lots each (SQL in bulk)")
        began = time.monotonic()
        await seed.bulk_members(db_url, f"S{self.run_id}-", 0, extra, per_member, say=say)
        after = await seed.counts(db_url)
        self.figures["scale_seed"] = {"before": before, "after": after, "seconds": round(time.monotonic() - began, 1)}
        say(f"  {after} in {self.figures['scale_seed']['seconds']}s")
        prefix = {"BENCH_MEMBER_PREFIX": f"S{self.run_id}-", "BENCH_MEMBERS": str(extra)}
        self.wrk("balance_at_scale", "points", "read.lua", BENCH_PATH="/v1/members/%s/balance", **prefix)
        self.wrk("ledger_at_scale", "points", "read.lua", BENCH_PATH="/v1/members/%s/ledger?limit=50", **prefix)

    async def rule_simulation(self) -> None:
        """After the load figures: its rules and seeded purchases (90 days back) are then in the way of none."""
        sizes, system = self.sizes, self.system
        db_url = system["points"].db_url
        if db_url is None:
            self.figures["simulation"] = {"skipped": "needs points_db= in BENCH_TARGET for the bulk seeding"}
            return
        say(f"rule simulation over {sizes.simulation_purchases:,} purchases seeded in bulk, and a plain SELECT")
        self.figures["simulation"] = await simulation.figure(
            system, db_url, members=sizes.members, count=sizes.simulation_purchases, run_id=self.run_id, say=say)
        say(f"  {self.figures['simulation']}")

    def rows(self) -> list[Row]:
        """One row per figure; a figure its stage did not produce is a row saying so (and not met)."""
        f = self.figures
        rows: list[Row] = []

        def load_row(name: str, what: str, ref_name: str, min_ratio: float, max_p99: float) -> None:
            value, ref = f[name], f[ref_name]
            r = ratio(value["per_second"], ref["per_second"])
            valid = value["valid"] and ref["valid"]
            text = f"{value['per_second']:,.0f}/s p50 {value['p50_ms']} p99 {value['p99_ms']} ms"
            if not valid:
                text += f" INVALID ({value['errors']}+{ref['errors']} errors)"
            rows.append(Row(what, text, f"{ref_name} {ref['per_second']:,.0f}/s p99 {ref['p99_ms']} ms", r,
                            f">= {min_ratio} of ref, p99 < {max_p99:g} ms",
                            valid and r >= min_ratio and value["p99_ms"] < max_p99))

        def end_to_end() -> None:
            e2e, trip = f["end_to_end"], f["round_trip"]
            valid = e2e["errors"] == 0 and e2e["samples"] > 0
            rows.append(Row(
                f"end to end, sent at {e2e['achieved_rate']:.0f}/s, answered at {e2e['answered_rate']:.0f}/s",
                f"p50 {e2e['p50_ms']} p99 {e2e['p99_ms']} ms (tiers alone p99 {e2e['tiers_p99_ms']}; "
                f"{e2e['samples']} samples; generator {e2e['generator_cpu_cores']} cores)"
                + ("" if valid else f" INVALID ({e2e['errors']} errors)"),
                f"aiokafka round trip p50 {trip['p50_ms']} ms", ratio(e2e["p50_ms"], trip["p50_ms"]),
                "p99 < 250 ms", valid and e2e["p99_ms"] < 250))

        def catch_up() -> None:
            catch = f["catch_up"]
            if "skipped" in catch:
                rows.append(Row("consumer catch-up", "skipped", catch["skipped"], None, ">= 0.3 of ref", None))
                return
            r = ratio(catch["per_second"], catch["reference_per_second"])
            rows.append(Row(f"consumer catch-up ({catch['events']:,} events)", f"{catch['per_second']:,.0f} events/s",
                            f"bare aiokafka consumer {catch['reference_per_second']:,.0f}/s", r, ">= 0.3 of ref",
                            r >= 0.3))

        def redemptions() -> None:
            sg = f["saga"]
            e2e_p99 = f.get("end_to_end", {}).get("p99_ms", float("nan"))
            valid = sg["errors"] == 0 and sg["redemptions"] > 0
            rows.append(Row(f"redemption saga ({sg['members']} members)",
                            f"p50 {sg['p50_ms']} p99 {sg['p99_ms']} ms"
                            + ("" if valid else f" INVALID ({sg['outcomes']})"),
                            f"end to end p99 {e2e_p99} ms", ratio(sg["p99_ms"], e2e_p99), "p99 < 300 ms",
                            valid and sg["p99_ms"] < 300))

        def scale() -> None:
            if "skipped" in f.get("scale", {}):
                rows.append(Row("scale", "skipped", f["scale"]["skipped"], None, "within 2x", None))
                return
            after = f["scale_seed"]["after"]
            for small, large, what in (("balance", "balance_at_scale", "balance"),
                                       ("ledger", "ledger_at_scale", "ledger page")):
                value, ref = f[large], f[small]
                r = ratio(value["p99_ms"], ref["p99_ms"])
                valid = value["valid"] and ref["valid"]
                rows.append(Row(
                    f"{what} p99 at {after['member']:,} members / {after['ledger_entry']:,} entries",
                    f"p99 {value['p99_ms']} ms ({value['per_second']:,.0f}/s)" + ("" if valid else " INVALID"),
                    f"{self.sizes.members:,} members p99 {ref['p99_ms']} ms", r, "<= 2x ref", valid and r <= 2))

        sections = [
            ("purchase ingestion", "http_figures", lambda: load_row(
                "ingestion", "purchase ingestion (64 conns)", "reference_write", 0.5, 50)),
            ("balance reads", "http_figures", lambda: load_row(
                "balance", "balance reads (64 conns)", "healthz", 0.5, 20)),
            ("checkout", "checkout", lambda: rows.append(checkout.row(f["checkout"], f["checkout_purchase"]))),
            ("end to end", "end_to_end", end_to_end),
            ("consumer catch-up", "catch_up", catch_up),
            ("redemption saga", "redemption_saga", redemptions),
            ("scale", "scale", scale),
            ("rule simulation", "rule_simulation", lambda: rows.append(
                Row("rule simulation", "skipped", f["simulation"]["skipped"], None, "-", None)
                if "skipped" in f["simulation"] else simulation.row(f["simulation"]))),
        ]
        for label, stage, build in sections:
            try:
                build()
            except KeyError:
                rows.append(Row(label, "not measured", self.failures.get(stage, "stage did not run")[:80], None,
                                "-", False))
        for name, peak in f.get("rss_peak_mb", {}).items():
            rows.append(Row(f"{name} peak RSS", f"{peak:.0f} MB", "-", None, f"< {RSS_LIMIT_MB} MB",
                            peak < RSS_LIMIT_MB))
        wrk_runs = [v["load_cpu_cores"] for v in f.values() if isinstance(v, dict) and "load_cpu_cores" in v]
        if wrk_runs:
            rows.append(Row("load generator (wrk) CPU, busiest run", f"{max(wrk_runs):.2f} cores of {os.cpu_count()}",
                            "-", None, "not saturated (< 1 core)", max(wrk_runs) < 1.0))
        return rows


def parse_args(argv: list[str] | None) -> argparse.Namespace:
    parser = argparse.ArgumentParser(
        prog="python -m bench", description=__doc__,
        epilog="BENCH_TARGET=points=URL,rewards=URL,tiers=URL[,points_db=URL][,tiers_db=URL] with BENCH_ADMIN_KEY "
               "runs against running services instead of starting them (bench/README.md).")
    parser.add_argument("--quick", action="store_true", default=os.environ.get("QUICK", "") not in ("", "0"),
                        help="smaller sizes and shorter runs, under 3 minutes (also QUICK=1)")
    parser.add_argument("--profile", action="store_true",
                        help="record points with py-spy (PATH or BENCH_PY_SPY) during each of its load figures")
    parser.add_argument("--results", type=Path, default=RESULTS, help="where the JSON files go (%(default)s)")
    return parser.parse_args(argv)


def main(argv: list[str] | None = None) -> int:
    args = parse_args(argv)
    sizes = QUICK if args.quick else FULL
    stamp = datetime.now(UTC).strftime("%Y%m%dT%H%M%SZ")
    started = time.monotonic()
    ensure_wrk()
    target = os.environ.get("BENCH_TARGET")
    log_dir = args.results / f"logs-{stamp}"
    log_dir.mkdir(parents=True, exist_ok=True)
    say(f"{'quick' if args.quick else 'full'} run; "
        + (f"target {target}" if target else f"starting PostgreSQL, Kafka and the services (logs in {log_dir})"))
    profile_dir = None
    if args.profile:
        if profile.py_spy() is None:
            raise SystemExit("bench: --profile needs py-spy on the PATH or at BENCH_PY_SPY (pip install py-spy)")
        profile_dir = args.results / f"profile-{stamp}"
        profile_dir.mkdir(parents=True, exist_ok=True)
    # A SIGTERM (a CI timeout, kill) unwinds like Ctrl-C, so the services started here are stopped too.
    signal.signal(signal.SIGTERM, lambda *_: sys.exit(143))
    system = target_from_env(target) if target else start_local(log_dir)
    bench = Bench(system, sizes, uuid.uuid4().hex[:6], profile_dir)
    try:
        asyncio.run(bench.run())
    finally:
        bench.rss.stop()
        system.stop()
    rows = bench.rows()
    document = {
        "started_at": stamp, "quick": args.quick, "seconds": round(time.monotonic() - started, 1),
        "sizes": sizes.__dict__, "connections": CONNECTIONS,
        "system": {"managed": system.managed, "urls": {n: s.url for n, s in system.services.items()},
                   "topic_prefix": system.topic_prefix},
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(), "platform": platform.platform(),
                    "load_average_at_end": os.getloadavg()},
        "figures": bench.figures,
    }
    path = write(args.results, stamp, document, rows)
    print()
    print(table(rows))
    print(f"\nbench: {document['seconds']:.0f}s; every figure in {path} (and latest.json)")
    return 0
