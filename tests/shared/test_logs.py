"""JSON log lines carry the correlation id of the request or event being handled."""

from __future__ import annotations

import json
import logging

from shared.context import correlation_id
from shared.logs import JsonFormatter


def test_json_line_with_correlation_id_and_extra_fields() -> None:
    record = logging.makeLogRecord({"name": "loyalty.http", "levelname": "INFO", "msg": "request",
                                    "status": 201, "route": "/v1/purchases"})
    token = correlation_id.set("corr-1")
    try:
        line = JsonFormatter("points").format(record)
    finally:
        correlation_id.reset(token)
    entry = json.loads(line)
    assert entry["service"] == "points" and entry["message"] == "request"
    assert entry["correlation_id"] == "corr-1" and entry["status"] == 201 and entry["route"] == "/v1/purchases"
    assert entry["time"].endswith("Z")
