"""The ASGI app tests/shared/test_server_timeouts.py runs under a real uvicorn process.

``GET /`` answers ``ok``; ``POST /upload`` reads the body (``?wait=<seconds>`` first) and answers its length,
or notes ``disconnect`` when uvicorn reports one instead; ``GET /seen`` lists those notes."""

from __future__ import annotations

import asyncio
import json
from urllib.parse import parse_qs

from starlette.types import ASGIApp, Receive, Scope, Send


def create_app() -> ASGIApp:
    seen: list[str] = []

    async def app(scope: Scope, receive: Receive, send: Send) -> None:
        if scope["type"] == "lifespan":
            while (message := await receive())["type"] != "lifespan.shutdown":
                await send({"type": "lifespan.startup.complete"})
            await send({"type": "lifespan.shutdown.complete"})
            return
        if scope["path"] == "/upload":
            await asyncio.sleep(float(parse_qs(scope["query_string"].decode()).get("wait", ["0"])[0]))
            size = 0
            more = True
            while more:
                message = await receive()
                if message["type"] == "http.disconnect":
                    seen.append("disconnect")
                    return
                size += len(message.get("body", b""))
                more = message.get("more_body", False)
            body = str(size).encode()
        elif scope["path"] == "/seen":
            body = json.dumps(seen).encode()
        else:
            body = b"ok"
        await send({"type": "http.response.start", "status": 200,
                    "headers": [(b"content-type", b"text/plain"), (b"content-length", str(len(body)).encode())]})
        await send({"type": "http.response.body", "body": body})

    return app
