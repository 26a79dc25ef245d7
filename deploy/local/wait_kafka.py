#!/usr/bin/env python3
"""Wait until a Kafka broker serves metadata; exit 0 when it does, 1 on timeout.

An open port is not enough: the broker must answer a metadata request, which is
what the services' clients need. Standard library + aiokafka only.

    python deploy/local/wait_kafka.py --bootstrap 127.0.0.1:9092 --timeout 60
"""

from __future__ import annotations

import argparse
import asyncio
import contextlib
import logging
import sys
import time

from aiokafka.admin import AIOKafkaAdminClient


async def _attempt(bootstrap: str, attempt_timeout: float) -> list[str]:
    # No api_version: aiokafka >= 0.13 negotiates per connection, and pinning
    # an old one makes Kafka 4 refuse some requests.
    admin = AIOKafkaAdminClient(
        bootstrap_servers=bootstrap,
        request_timeout_ms=int(attempt_timeout * 1000),
        client_id="wait-kafka",
    )
    try:
        await admin.start()
        return await admin.list_topics()
    finally:
        with contextlib.suppress(Exception):
            await admin.close()


async def wait(bootstrap: str, timeout: float, quiet: bool) -> bool:
    deadline = time.monotonic() + timeout
    last_error: BaseException | None = None
    while True:
        remaining = deadline - time.monotonic()
        if remaining <= 0:
            break
        attempt_timeout = max(0.5, min(5.0, remaining))
        try:
            topics = await asyncio.wait_for(
                _attempt(bootstrap, attempt_timeout), attempt_timeout + 1
            )
        except Exception as exc:  # connection refused, timeout, not ready yet...
            last_error = exc
        else:
            if not quiet:
                print(f"kafka at {bootstrap} is ready ({len(topics)} topics)")
            return True
        await asyncio.sleep(min(0.5, max(0.0, deadline - time.monotonic())))
    if not quiet:
        detail = f": {type(last_error).__name__}: {last_error}" if last_error else ""
        print(
            f"kafka at {bootstrap} not ready after {timeout:g}s{detail}",
            file=sys.stderr,
        )
    return False


def main(argv: list[str] | None = None) -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--bootstrap", default="127.0.0.1:9092")
    parser.add_argument("--timeout", type=float, default=60.0)
    parser.add_argument("--quiet", action="store_true", help="print nothing")
    parser.add_argument(
        "--verbose", action="store_true", help="show aiokafka's own log"
    )
    args = parser.parse_args(argv)
    # aiokafka logs every refused connection; while waiting that is just noise.
    logging.basicConfig(level=logging.DEBUG if args.verbose else logging.CRITICAL)
    try:
        ok = asyncio.run(wait(args.bootstrap, args.timeout, args.quiet))
    except KeyboardInterrupt:
        return 130
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
