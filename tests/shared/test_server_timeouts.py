"""shared.http.server against slow clients: a real uvicorn process (started with the services' own command line,
`uvicorn_args`) on a loopback port, its deadlines shortened through their settings, and raw sockets sending
too little, too slowly. The tests of slow clients fail on uvicorn's own protocols (``http="httptools"`` or
``"h11"``), which hold such connections for ever; the last two (no false alarm, the settings) pass there too."""

from __future__ import annotations

import os
import select
import socket
import subprocess
import sys
import time
from collections.abc import Iterator
from pathlib import Path

import httpx
import pytest
from pydantic import ValidationError

from shared.http.server import PROTOCOL, ServerLimits, uvicorn_args
from tests.support import ROOT, port_open
from tests.system.harness import free_port

HEADER_TIMEOUT = 0.5
BODY_TIMEOUT = 0.5
SLACK = 2.0  # how much later than its deadline a connection may close on a busy machine
PROTOCOLS = [PROTOCOL, "shared.http.server:TimedH11Protocol"]
PARTIAL_HEADERS = b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n"


@pytest.fixture(scope="module", params=PROTOCOLS, ids=lambda p: p.rpartition(":")[2])
def port(request: pytest.FixtureRequest, tmp_path_factory: pytest.TempPathFactory) -> Iterator[int]:
    port = free_port()
    env = {**os.environ, "LOYALTY_HEADER_TIMEOUT_SECONDS": str(HEADER_TIMEOUT),
           "LOYALTY_BODY_TIMEOUT_SECONDS": str(BODY_TIMEOUT)}
    log_path = tmp_path_factory.mktemp("uvicorn") / "server.log"
    with log_path.open("wb") as log:
        proc = subprocess.Popen(
            [str(Path(sys.executable).parent / "uvicorn"),
             *uvicorn_args("tests.shared.slow_client_app:create_app", host="127.0.0.1", port=port,
                           http=request.param)],
            env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
        )
    try:
        deadline = time.monotonic() + 30
        while not port_open("127.0.0.1", port):
            assert proc.poll() is None and time.monotonic() < deadline, log_path.read_text(errors="replace")
            time.sleep(0.05)
        yield port
    finally:
        proc.terminate()
        try:
            proc.wait(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            proc.wait()


def connect(port: int) -> socket.socket:
    return socket.create_connection(("127.0.0.1", port), timeout=5)


def seconds_until_closed(sock: socket.socket, since: float, deadline: float) -> float | None:
    """Reads (and drops) what the server sends until it closes the connection: the seconds from ``since``
    to then, or None if it is still open ``deadline`` seconds after ``since``."""
    while (left := since + deadline - time.monotonic()) > 0:
        sock.settimeout(left)
        try:
            if not sock.recv(4096):
                return time.monotonic() - since
        except TimeoutError:
            return None
        except ConnectionResetError:
            return time.monotonic() - since
    return None


def assert_closed_after(sock: socket.socket, since: float, timeout: float) -> None:
    elapsed = seconds_until_closed(sock, since, timeout + SLACK)
    assert elapsed is not None, f"still open {timeout + SLACK:.1f}s later"
    assert elapsed >= timeout * 0.9, f"closed after {elapsed:.2f}s, before the {timeout}s deadline"


def read_response(sock: socket.socket) -> tuple[bytes, bytes]:
    """One response (with a Content-Length): its status line and body."""
    sock.settimeout(5)
    data = b""
    while b"\r\n\r\n" not in data:
        chunk = sock.recv(4096)
        assert chunk, f"closed mid-response: {data!r}"
        data += chunk
    head, _, body = data.partition(b"\r\n\r\n")
    lines = head.split(b"\r\n")
    length = next(int(line.split(b":")[1]) for line in lines if line.lower().startswith(b"content-length:"))
    while len(body) < length:
        chunk = sock.recv(4096)
        assert chunk, "closed mid-body"
        body += chunk
    return lines[0], body


def seen(port: int) -> list[str]:
    notes: list[str] = httpx.get(f"http://127.0.0.1:{port}/seen", timeout=5).json()
    return notes


@pytest.mark.parametrize("sent", [b"", b"GET /half-a-requ", PARTIAL_HEADERS],
                         ids=["nothing", "half-a-request-line", "headers-without-their-end"])
def test_a_request_whose_headers_do_not_arrive_is_closed_after_the_header_timeout(port: int, sent: bytes) -> None:
    with connect(port) as sock:
        since = time.monotonic()
        sock.sendall(sent)
        assert_closed_after(sock, since, HEADER_TIMEOUT)


def test_headers_trickling_in_steadily_are_closed_after_the_header_timeout(port: int) -> None:
    """The deadline is for the whole headers, so a byte every 0.1 s (never idle for long) does not extend it."""
    with connect(port) as sock:
        since = time.monotonic()
        sock.sendall(PARTIAL_HEADERS)
        closed = None
        while closed is None and time.monotonic() < since + HEADER_TIMEOUT + SLACK:
            readable, _, _ = select.select([sock], [], [], 0.1)
            try:
                if readable and not sock.recv(4096):
                    closed = time.monotonic() - since
                else:
                    sock.sendall(b"X")
            except (BrokenPipeError, ConnectionResetError):
                closed = time.monotonic() - since
        assert closed is not None, "still open while trickling"
        assert closed >= HEADER_TIMEOUT * 0.9


def test_a_body_not_sent_is_closed_after_the_body_timeout_and_the_app_sees_a_disconnect(port: int) -> None:
    before = seen(port).count("disconnect")
    with connect(port) as sock:
        since = time.monotonic()
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n" + b"x" * 10)
        assert_closed_after(sock, since, BODY_TIMEOUT)
    deadline = time.monotonic() + 5
    while seen(port).count("disconnect") == before:
        assert time.monotonic() < deadline, "the app waiting for the body was never told of the disconnect"
        time.sleep(0.05)


def test_normal_and_keep_alive_requests_work_and_each_request_has_its_own_header_deadline(port: int) -> None:
    assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text == "ok"
    with connect(port) as sock:
        sock.sendall(b"GET / HTTP/1.1\r\nHost: 127.0.0.1\r\n\r\n")
        assert read_response(sock) == (b"HTTP/1.1 200 OK", b"ok")
        # Idle longer than the header timeout (but not the keep-alive one): the next request is still welcome...
        time.sleep(HEADER_TIMEOUT * 1.6)
        sock.sendall(b"POST /upload HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 100\r\n\r\n" + b"x" * 100)
        assert read_response(sock) == (b"HTTP/1.1 200 OK", b"100")
        # ...and a third one, begun and not finished, is timed from its own first byte.
        since = time.monotonic()
        sock.sendall(b"GET /thi")
        assert_closed_after(sock, since, HEADER_TIMEOUT)


def test_a_hundred_half_open_connections_are_closed_in_time_while_a_normal_request_is_answered(port: int) -> None:
    socks: list[socket.socket] = []
    try:
        for _ in range(100):
            socks.append(connect(port))
            socks[-1].sendall(PARTIAL_HEADERS)
        since = time.monotonic()
        assert httpx.get(f"http://127.0.0.1:{port}/", timeout=5).text == "ok"
        open_after = [sock for sock in socks if seconds_until_closed(sock, since, HEADER_TIMEOUT + SLACK) is None]
        assert open_after == [], f"{len(open_after)} of 100 still open {HEADER_TIMEOUT + SLACK:.1f}s later"
    finally:
        for sock in socks:
            sock.close()


@pytest.mark.parametrize("held", ["100-continue", "flow-control"])
def test_a_body_the_server_holds_back_is_not_timed_against_the_client(port: int, held: str) -> None:
    """No false alarm: the app takes twice the body timeout before it reads, and meanwhile the server does not
    take the body (it has not sent ``100 Continue`` yet, or it stopped reading at its buffer's limit)."""
    wait = BODY_TIMEOUT * 2
    with connect(port) as sock:
        if held == "100-continue":
            sock.sendall(f"POST /upload?wait={wait} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: 10\r\n"
                         "Expect: 100-continue\r\n\r\n".encode())
            sock.settimeout(wait + SLACK)
            assert sock.recv(4096).startswith(b"HTTP/1.1 100 Continue")
            body = b"x" * 10
        else:  # more than the 256 KiB asyncio reads at once and the 64 KiB uvicorn buffers before it pauses
            body = b"x" * (4 * 1024 * 1024)
            sock.sendall(f"POST /upload?wait={wait} HTTP/1.1\r\nHost: 127.0.0.1\r\nContent-Length: {len(body)}\r\n"
                         "\r\n".encode())
        sock.sendall(body)
        assert read_response(sock) == (b"HTTP/1.1 200 OK", str(len(body)).encode())


def test_the_deadlines_are_settings(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.delenv("LOYALTY_HEADER_TIMEOUT_SECONDS", raising=False)
    monkeypatch.delenv("LOYALTY_BODY_TIMEOUT_SECONDS", raising=False)
    assert ServerLimits().model_dump() == {"header_timeout_seconds": 10.0, "body_timeout_seconds": 30.0}
    monkeypatch.setenv("LOYALTY_BODY_TIMEOUT_SECONDS", "60")
    assert ServerLimits().body_timeout_seconds == 60
    monkeypatch.setenv("LOYALTY_HEADER_TIMEOUT_SECONDS", "0")
    with pytest.raises(ValidationError, match="header_timeout_seconds"):
        ServerLimits()
