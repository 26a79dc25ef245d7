"""schemathesis against each service as a real process with an admin key: no 5xx, and every answer matches
the documented status codes, content types and schemas."""

from __future__ import annotations

import asyncio
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

from tests.faults.cluster import FAULT_DATABASES
from tests.support import ADMIN_KEY, ROOT, SERVICES, db_url, ensure_postgres, recreate_schema
from tests.system.harness import ServiceProcess, free_port

pytestmark = pytest.mark.slow

CHECKS = "not_a_server_error,status_code_conformance,content_type_conformance,response_schema_conformance"


@pytest.mark.parametrize("service", SERVICES)
def test_fuzzed_requests_get_documented_answers(service: str, tmp_path: Path) -> None:
    ensure_postgres(list(FAULT_DATABASES.values()))
    url = db_url(FAULT_DATABASES[service])
    asyncio.run(recreate_schema(url, service))
    env = {**os.environ, f"{service.upper()}_DATABASE_URL": url, "LOYALTY_KAFKA_ENABLED": "false",
           "LOYALTY_BOOTSTRAP_ADMIN_KEY": ADMIN_KEY}
    process = ServiceProcess(service, free_port(), env, tmp_path / f"{service}.log")
    process.start()
    try:
        process.wait_ready(want="ready")
        run = subprocess.run(
            [str(Path(sys.executable).parent / "st"), "run", f"{process.url}/openapi.json",
             "-H", f"Authorization: Bearer {ADMIN_KEY}", "--checks", CHECKS,
             "--phases", "examples,coverage,fuzzing", "--max-examples", "50", "--workers", "1",
             "--seed", "20261124", "--no-color", "--request-timeout", "15"],
            capture_output=True, text=True, cwd=ROOT, timeout=900,
        )
    finally:
        process.stop()
    summary = re.search(r"(\d+) generated", run.stdout)
    print(f"schemathesis {service}: {summary.group(0) if summary else 'no summary'}")
    assert run.returncode == 0, run.stdout[-6000:]
