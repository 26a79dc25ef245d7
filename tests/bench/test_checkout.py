"""The checkout figure's harness (bench/checkout.py, bench/wrk/checkout.lua): the script chains the four steps
on each connection with matching ids, the reference sends only purchases, failures stop a checkout and are
counted, and the row's ratio is checkouts/s over purchases/s. No timings."""

from __future__ import annotations

import json
import math
import re
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, ClassVar

import pytest

from bench.checkout import SCRIPT, STEPS, parse_steps, row, summarize
from bench.load import LoadResult, run_wrk
from services.points.schemas import CaptureIn, HoldIn, PurchaseIn, QuoteIn

ENV = {"BENCH_KEY": "k-123", "BENCH_RUN_ID": "r1-checkout", "BENCH_MEMBERS": "20", "BENCH_MEMBER_PREFIX": "B-",
       "BENCH_HOLD_POINTS": "100"}


class _Shop(BaseHTTPRequestHandler):
    """Answers like points' checkout (HTTP/1.1, keep-alive) and keeps what each connection sent, in order."""

    protocol_version = "HTTP/1.1"
    disable_nagle_algorithm = True  # else each answer waits for the client's delayed ACK (40 ms)
    sent: ClassVar[dict[int, list[tuple[str, dict[str, Any]]]]] = {}
    fail_hold_every: ClassVar[int] = 0  # every n-th hold answers 422
    holds: ClassVar[int] = 0
    lock = threading.Lock()

    def do_POST(self) -> None:
        body = json.loads(self.rfile.read(int(self.headers.get("content-length") or 0)) or b"{}")
        cls = type(self)
        with cls.lock:
            cls.sent.setdefault(self.client_address[1], []).append((self.path, body))
            status = {"/v1/quotes": 200, "/v1/holds": 201, "/v1/purchases": 201}.get(self.path, 200)
            if self.path == "/v1/holds":
                cls.holds += 1
                if cls.fail_hold_every and cls.holds % cls.fail_hold_every == 0:
                    status = 422
        answer = json.dumps({"type": "/problems/insufficient-points"} if status == 422 else {"ok": True}).encode()
        self.send_response(status)
        self.send_header("content-type", "application/json")
        self.send_header("content-length", str(len(answer)))
        self.end_headers()
        self.wfile.write(answer)

    def log_message(self, *_: object) -> None:
        pass


class _QuietServer(ThreadingHTTPServer):
    def handle_error(self, *_: object) -> None:
        pass  # wrk resets its connections when it stops


@pytest.fixture
def shop() -> Iterator[str]:
    _Shop.sent, _Shop.holds, _Shop.fail_hold_every = {}, 0, 0
    server = _QuietServer(("127.0.0.1", 0), _Shop)
    thread = threading.Thread(target=server.serve_forever, daemon=True)
    thread.start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


def _kind(path: str) -> str:
    if path == "/v1/quotes":
        return "quote"
    if path == "/v1/holds":
        return "hold"
    if path == "/v1/purchases":
        return "purchase"
    assert re.fullmatch(r"/v1/holds/[A-Za-z0-9._:-]+/capture", path), path
    return "capture"


def test_each_connection_chains_quote_hold_purchase_capture(shop: str) -> None:
    result = run_wrk(shop, SCRIPT, connections=4, threads=4, seconds=1, env=ENV)
    steps = parse_steps(result.output)
    assert result.valid and steps["mode"] == "checkout" and steps["failures"] == {}
    assert len(_Shop.sent) == 4  # one keep-alive connection per wrk thread
    checkouts = 0
    for sent in _Shop.sent.values():
        for start in range(0, len(sent) - len(sent) % 4, 4):
            (_, quote), (_, hold), (_, purchase), (capture_path, capture) = sent[start:start + 4]
            assert [_kind(path) for path, _ in sent[start:start + 4]] == list(STEPS)
            basket, held = QuoteIn.model_validate(quote), HoldIn.model_validate(hold)
            assert held.member_id == basket.member_id and held.points == 100
            assert held.order_total == basket.total and held.currency == basket.currency
            paid = PurchaseIn.model_validate(purchase)
            assert paid.points_paid is not None and paid.points_paid.hold_id == held.hold_id
            assert paid.model_dump(exclude={"purchase_id", "points_paid"}) == basket.model_dump(exclude={"points_paid"})
            assert capture_path == f"/v1/holds/{held.hold_id}/capture"
            assert CaptureIn.model_validate(capture).purchase_id == paid.purchase_id
            checkouts += 1
    assert steps["completed"] in range(checkouts - 4, checkouts + 1)  # the last one may have been cut short
    holds = [body["hold_id"] for sent in _Shop.sent.values() for path, body in sent if path == "/v1/holds"]
    assert len(set(holds)) == len(holds) and all(h.startswith("r1-checkout-") for h in holds)
    members = {body["member_id"] for sent in _Shop.sent.values() for _, body in sent if "member_id" in body}
    assert members <= {f"B-{i}" for i in range(20)}
    assert set(steps["latency_us"]) == {*STEPS, "checkout"}
    assert len(steps["latency_us"]["checkout"]) == steps["completed"]
    assert all(v >= 0 for values in steps["latency_us"].values() for v in values)


def test_the_reference_sends_plain_purchases(shop: str) -> None:
    result = run_wrk(shop, SCRIPT, connections=2, threads=2, seconds=1,
                     env={**ENV, "BENCH_CHECKOUT_MODE": "purchase"})
    steps = parse_steps(result.output)
    sent = [body for bodies in _Shop.sent.values() for path, body in bodies if path == "/v1/purchases"]
    assert sum(len(bodies) for bodies in _Shop.sent.values()) == len(sent) > 0
    assert all(PurchaseIn.model_validate(body).points_paid is None for body in sent)
    assert len({body["purchase_id"] for body in sent}) == len(sent)
    assert set(steps["latency_us"]) == {"purchase", "checkout"} and steps["latency_us"]["checkout"] == []
    assert steps["completed"] in range(len(sent) - 2, len(sent) + 1)


def test_a_failed_step_stops_its_checkout_and_is_counted(shop: str) -> None:
    _Shop.fail_hold_every = 3
    result = run_wrk(shop, SCRIPT, connections=2, threads=2, seconds=1, env=ENV)
    steps = parse_steps(result.output)
    assert steps["failures"]["hold 422"] == result.errors > 0
    assert "insufficient-points" in steps["failure_samples"]["hold 422"]
    for sent in _Shop.sent.values():
        kinds = [_kind(path) for path, _ in sent]
        # After a refused hold the next request is a new checkout's quote, never that checkout's purchase.
        failed = {body["hold_id"] for path, body in sent if path == "/v1/holds"} - {
            body["points_paid"]["hold_id"] for path, body in sent if path == "/v1/purchases"}
        assert failed and kinds.count("purchase") == kinds.count("hold") - len(failed)
    figure = summarize(result, steps, {"points": 0.5})
    assert not figure["valid"] and figure["failures"]["hold 422"] > 0


def test_reads_the_steps_line() -> None:
    output = ('BENCH_JSON {"requests": 4}\nBENCH_STEPS {"mode": "checkout", "completed": 1, '
              '"latency_us": {"quote": [1000]}, "failures": {}, "failure_samples": {}}\n')
    assert parse_steps(output)["latency_us"] == {"quote": [1000]}
    with pytest.raises(RuntimeError):
        parse_steps('BENCH_JSON {"requests": 4}\n')


def _load(errors: int = 0) -> LoadResult:
    return LoadResult(requests=400, seconds=10.0, per_second=40.0, p50_ms=1, p99_ms=2, mean_ms=1, errors=errors,
                      load_cpu_cores=0.01)


def _figure(mode: str, completed: int, cpu: float, failures: dict[str, int] | None = None) -> dict[str, Any]:
    step_names = STEPS if mode == "checkout" else ("purchase",)
    samples = {name: [1000 * (i + 1) for i in range(100)] for name in step_names}
    samples["checkout"] = [4000 * (i + 1) for i in range(100)] if mode == "checkout" else []
    steps = {"mode": mode, "completed": completed, "latency_us": samples, "failures": failures or {}}
    return summarize(_load(sum((failures or {}).values())), steps, {"points": cpu, "tiers": 0.1})


def test_summary_is_completed_per_second_percentiles_and_cpu_per_one() -> None:
    figure = _figure("checkout", 1500, 0.9)
    assert figure["completed_per_second"] == 150.0 and figure["valid"]
    assert figure["steps"]["hold"] == {"count": 100, "p50_ms": 50.0, "p90_ms": 90.0, "p99_ms": 100.0,
                                       "max_ms": 100.0, "mean_ms": 50.5}
    assert figure["points_cpu_ms_each"] == 6.0
    reference = _figure("purchase", 4000, 0.9)
    assert math.isnan(reference["steps"]["checkout"]["p99_ms"]) and reference["steps"]["checkout"]["count"] == 0
    assert not _figure("checkout", 0, 0.9)["valid"]


def test_row_is_checkouts_over_purchases_and_met_at_half() -> None:
    reference = _figure("purchase", 3000, 0.9)  # 300/s, 3 ms of points' CPU each
    met = row(_figure("checkout", 1500, 0.9), reference)  # 150/s, 6 ms each: two purchases
    assert met.ratio == 0.5 and met.met
    assert "150/s" in met.value and "points CPU 2.00 purchases" in met.value and "300/s" in met.reference
    assert "hold 100.0" in met.value and "INVALID" not in met.value
    missed = row(_figure("checkout", 1000, 0.9), reference)
    assert missed.ratio == 0.333 and missed.met is False
    invalid = row(_figure("checkout", 1500, 0.9, {"capture 409": 2}), reference)
    assert invalid.met is False and "INVALID (capture 409: 2)" in invalid.value
    assert row(_figure("checkout", 10, 0.9), _figure("purchase", 0, 0.9)).met is False  # no reference: nan
