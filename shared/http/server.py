"""The HTTP server the services run under: uvicorn with request deadlines, and the command line that starts it.

uvicorn itself times out only the idle time between two requests of a connection (``--timeout-keep-alive``).
A client that opens a connection and then sends its request line or headers slowly (or not at all), or that
announces a body and never sends it, holds the connection for ever, and with a body also the application task
waiting for it. The protocols here close such a connection:

- **headers**: the request line and headers complete within ``LOYALTY_HEADER_TIMEOUT_SECONDS`` (10 s) of the
  request's first byte, or of the connection's opening for its first request, however steadily they trickle;
- **body**: the whole body within ``LOYALTY_BODY_TIMEOUT_SECONDS`` (30 s) of the end of the headers; the
  application waiting in ``receive()`` gets ``http.disconnect``. While the server itself does not read (flow
  control holds data the application has not taken yet, a pipelined request waits for the one before it, or
  the client waits for a ``100 Continue`` the application has not asked for), the deadline moves on by
  another period: that wait is not the client's.

Between requests uvicorn's keep-alive timeout applies as before; what happens after the body (the
application's own time, a client that reads the answer slowly) is not timed here.

``uvicorn --http shared.http.server:TimedHttpToolsProtocol`` (``TimedH11Protocol`` on h11); `uvicorn_args` is
the whole command line of a service, which deploy/compose.yaml and deploy/k8s repeat literally (tests/deploy
checks that they agree).
"""

from __future__ import annotations

import asyncio
import logging
from functools import cache
from typing import Literal

import h11
from pydantic import Field
from pydantic_settings import BaseSettings, SettingsConfigDict
from uvicorn.protocols.http.flow_control import FlowControl
from uvicorn.protocols.http.h11_impl import H11Protocol
from uvicorn.protocols.http.httptools_impl import HttpToolsProtocol

logger = logging.getLogger("uvicorn.error")

# More than one process serves at once with its pool of 20 database connections; beyond this many connections
# (or running requests) uvicorn answers 503 at once instead of queueing without bound.
CONCURRENCY_LIMIT = 1000
# uvicorn's default, stated: bench/system.py drops idle client connections before it ends.
KEEP_ALIVE_SECONDS = 5


class ServerLimits(BaseSettings):
    """How long a client may take to send a request; far beyond what a till or a web shop ever needs."""

    model_config = SettingsConfigDict(env_prefix="LOYALTY_", extra="ignore")

    header_timeout_seconds: float = Field(10.0, gt=0, description="request line and headers, from the first byte")
    body_timeout_seconds: float = Field(
        30.0, gt=0, description="the whole body, from the end of the headers (LOYALTY_MAX_BODY_BYTES at most)",
    )


@cache
def server_limits() -> ServerLimits:
    return ServerLimits()


Phase = Literal["idle", "headers", "body"]


class _RequestDeadlines(asyncio.Protocol):
    """The deadline of the request a connection is receiving: its headers', then its body's, none while idle.

    The subclasses move the phase from their parser's callbacks; this class keeps the one timer and closes the
    connection when it runs out (uvicorn's ``connection_lost`` then tells a waiting application)."""

    transport: asyncio.Transport
    flow: FlowControl
    client: tuple[str, int] | None
    _phase: Phase = "idle"
    _deadline: asyncio.TimerHandle | None = None
    _held: bool = False  # the server held the body back when the deadline last ran out

    def connection_made(self, transport: asyncio.BaseTransport) -> None:
        super().connection_made(transport)
        self._enter("headers")  # the first request's headers are timed from the connection's opening

    def connection_lost(self, exc: Exception | None) -> None:
        self._enter("idle")
        super().connection_lost(exc)

    def data_received(self, data: bytes) -> None:
        if self._phase == "idle":
            self._enter("headers")  # whatever arrives between two requests starts the next one
        super().data_received(data)

    def _server_holds_body(self) -> bool:
        """Whether the body is late because of the server, not the client."""
        raise NotImplementedError

    def _enter(self, phase: Phase) -> None:
        if phase == self._phase:
            return
        self._phase = phase
        self._held = False
        if self._deadline is not None:
            self._deadline.cancel()
            self._deadline = None
        if phase != "idle":
            self._arm()

    def _arm(self) -> None:
        limits = server_limits()
        delay = limits.header_timeout_seconds if self._phase == "headers" else limits.body_timeout_seconds
        self._deadline = asyncio.get_running_loop().call_later(delay, self._expired)

    def _expired(self) -> None:
        self._deadline = None
        if self.transport.is_closing():
            return
        if self._phase == "body" and (self._server_holds_body() or self._held):
            # While the server holds the body back the client is not late; once it stops (it sent
            # ``100 Continue`` or resumed reading, at some moment since the last check), the client gets a
            # whole period from now, so never less than one from that moment.
            self._held = self._server_holds_body()
            self._arm()
            return
        client = "{}:{}".format(*self.client) if self.client else "a client"
        logger.info("Closing the connection of %s: request %s not received in time", client, self._phase)
        # abort, not close, if an answer is still queued for the client: close would wait for it to read that.
        if self.transport.get_write_buffer_size():
            self.transport.abort()
        else:
            self.transport.close()


class TimedHttpToolsProtocol(_RequestDeadlines, HttpToolsProtocol):
    """uvicorn's httptools protocol with the request deadlines."""

    def on_message_begin(self) -> None:
        super().on_message_begin()
        self._enter("headers")

    def on_headers_complete(self) -> None:
        super().on_headers_complete()
        self._enter("body")

    def on_message_complete(self) -> None:
        super().on_message_complete()
        self._enter("idle")

    def handle_websocket_upgrade(self) -> None:
        self._enter("idle")
        super().handle_websocket_upgrade()

    def _server_holds_body(self) -> bool:
        return self.flow.read_paused or (self.cycle is not None and self.cycle.waiting_for_100_continue)


class TimedH11Protocol(_RequestDeadlines, H11Protocol):
    """uvicorn's h11 protocol with the request deadlines (h11 has no callbacks: the phase follows its state)."""

    def handle_events(self) -> None:
        super().handle_events()
        state = self.conn.their_state
        if state is h11.SEND_BODY:
            self._enter("body")
        elif state is h11.IDLE and (self._phase == "headers" or self.conn.trailing_data[0]):
            self._enter("headers")  # a request begun (buffered) or, on a new connection, awaited
        else:
            self._enter("idle")

    def handle_websocket_upgrade(self, event: h11.Request) -> None:
        self._enter("idle")
        super().handle_websocket_upgrade(event)

    def _server_holds_body(self) -> bool:
        return self.flow.read_paused or self.conn.they_are_waiting_for_100_continue


PROTOCOL = f"{__name__}:{TimedHttpToolsProtocol.__name__}"


def uvicorn_args(app: str, *, host: str, port: int, http: str = PROTOCOL) -> list[str]:
    """uvicorn's arguments for a service's app factory (``services.points.app:create_app``), after ``uvicorn``."""
    return ["--factory", app, "--host", host, "--port", str(port), "--http", http,
            "--limit-concurrency", str(CONCURRENCY_LIMIT), "--timeout-keep-alive", str(KEEP_ALIVE_SECONDS),
            "--no-access-log"]


server_limits()  # read (and refused, when invalid) as uvicorn imports the protocol, not at the first request
