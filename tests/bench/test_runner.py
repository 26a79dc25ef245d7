"""Cheap checks of the benchmark harness (bench/): it starts, its wrk scripts send what the API expects, and it
reads wrk's report and BENCH_TARGET. No timings."""

from __future__ import annotations

import re
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import ClassVar

import pytest

from bench.load import parse_report, run_wrk
from bench.profile import summary
from bench.report import Row, table
from bench.system import target_from_env
from services.points.schemas import PurchaseIn
from tests.support import ROOT


def test_help_runs() -> None:
    answer = subprocess.run([sys.executable, "-m", "bench", "--help"], cwd=ROOT, capture_output=True, text=True)
    assert answer.returncode == 0
    assert "BENCH_TARGET" in answer.stdout


def test_reads_the_report_line_of_the_lua_scripts() -> None:
    output = ("Running 1s test @ http://127.0.0.1:1\n  2 threads and 64 connections\n"
              'BENCH_JSON {"requests": 10, "duration_us": 1000000, "errors_status": 1}\n')
    assert parse_report(output) == {"requests": 10, "duration_us": 1000000, "errors_status": 1}
    with pytest.raises(RuntimeError):
        parse_report("wrk: script error")


def test_bench_target_needs_all_three_services_and_a_key(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BENCH_ADMIN_KEY", "k" * 20)
    system = target_from_env("points=http://h:1/,rewards=http://h:2,tiers=http://h:3,points_db=postgresql://x/y")
    assert system["points"].url == "http://h:1" and system["points"].db_url == "postgresql://x/y"
    assert system["tiers"].db_url is None and not system.managed
    with pytest.raises(SystemExit):
        target_from_env("points=http://h:1,rewards=http://h:2")
    monkeypatch.delenv("BENCH_ADMIN_KEY")
    with pytest.raises(SystemExit):
        target_from_env("points=http://h:1,rewards=http://h:2,tiers=http://h:3")


def test_table_marks_misses() -> None:
    rendered = table([Row("x", "1/s", "2/s", 0.5, ">= 0.6", False), Row("y", "-", "-", None, "-", None)])
    assert "| x " in rendered and "NO" in rendered and "0.50" in rendered


class _Recorder(BaseHTTPRequestHandler):
    """Answers every request (201 to a POST, 200 to a GET) and keeps what the scripts sent."""

    bodies: ClassVar[list[bytes]] = []
    paths: ClassVar[list[str]] = []
    auth: ClassVar[set[str]] = set()

    def _answer(self, status: int) -> None:
        length = int(self.headers.get("content-length") or 0)
        type(self).bodies.append(self.rfile.read(length))
        type(self).paths.append(self.path)
        type(self).auth.add(self.headers.get("authorization", ""))
        self.send_response(status)
        self.send_header("content-length", "2")
        self.end_headers()
        self.wfile.write(b"{}")

    def do_POST(self) -> None:
        self._answer(201)

    def do_GET(self) -> None:
        self._answer(200)

    def log_message(self, *_: object) -> None:
        pass


@pytest.fixture
def recorder() -> Iterator[str]:
    _Recorder.bodies, _Recorder.paths, _Recorder.auth = [], [], set()
    server = ThreadingHTTPServer(("127.0.0.1", 0), _Recorder)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


SCRIPT_ENV = {"BENCH_KEY": "k-123", "BENCH_RUN_ID": "r1", "BENCH_MEMBERS": "50", "BENCH_MEMBER_PREFIX": "B-"}


def test_purchase_script_sends_valid_purchases_with_unique_ids(recorder: str) -> None:
    result = run_wrk(recorder, "purchase.lua", connections=4, seconds=1, env=SCRIPT_ENV)
    assert result.requests > 0 and result.valid
    purchases = [PurchaseIn.model_validate_json(body) for body in _Recorder.bodies]
    assert len({p.purchase_id for p in purchases}) == len(purchases)
    assert all(p.lines is not None and len(p.lines) == 3 for p in purchases)
    assert {p.member_id for p in purchases} <= {f"B-{i}" for i in range(50)}
    assert _Recorder.auth == {"Bearer k-123"}


def test_read_script_fills_in_members(recorder: str) -> None:
    env = {**SCRIPT_ENV, "BENCH_PATH": "/v1/members/%s/balance"}
    assert run_wrk(recorder, "read.lua", connections=2, seconds=1, env=env).valid
    assert all(re.fullmatch(r"/v1/members/B-\d+/balance", path) for path in _Recorder.paths)


def test_reference_script_posts_to_the_reference(recorder: str) -> None:
    assert run_wrk(recorder, "reference_write.lua", connections=2, seconds=1, env=SCRIPT_ENV).valid
    assert set(_Recorder.paths) == {"/bench/reference-write"}


def test_profile_summary_counts_shares_and_survives_raw_bytes(tmp_path: Path) -> None:
    stacks = tmp_path / "stacks.txt"
    stacks.write_bytes(
        f"run (asyncio/runners.py:118);record_purchase ({ROOT}/services/points/service.py:220);"
        "execute (asyncpg/connection.py:377) 3\n"
        "run (asyncio/runners.py:118);name\xf6 (x.py:1) 1\n".encode("latin-1"))
    found = summary(stacks)
    assert found["self"][0] == ("execute (asyncpg/connection.py)", 0.75)
    assert ("record_purchase (services/points/service.py)", 0.75) in found["project_total"]
    assert ("run (asyncio/runners.py)", 1.0) in found["total"]
