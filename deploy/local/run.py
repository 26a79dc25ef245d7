"""`make run`: local Kafka, migrated databases and the three services, stopped together by Ctrl-C.

Zero setup: SQLite files in .data/ unless POINTS_DATABASE_URL (and the other two) point elsewhere; an admin
key from LOYALTY_BOOTSTRAP_ADMIN_KEY, else one generated once and kept in .data/admin-key.
"""

from __future__ import annotations

import os
import secrets
import signal
import subprocess
import sys
import time
import urllib.error
import urllib.request
from pathlib import Path

from shared.http.server import uvicorn_args

ROOT = Path(__file__).resolve().parents[2]
DATA = Path(os.environ.get("LOYALTY_DATA_DIR", ROOT / ".data")).resolve()
BIN = Path(sys.executable).parent
HOST = os.environ.get("LOYALTY_HOST", "127.0.0.1")
SERVICES = {"points": 8001, "rewards": 8002, "tiers": 8003}


def say(message: str) -> None:
    print(f"run: {message}", flush=True)


def admin_key() -> str:
    key = os.environ.get("LOYALTY_BOOTSTRAP_ADMIN_KEY")
    if key:
        return key
    stored = DATA / "admin-key"
    if stored.exists():
        return stored.read_text().strip()
    key = "lk_admin_" + secrets.token_urlsafe(24)
    stored.write_text(key + "\n")
    stored.chmod(0o600)
    return key


def service_env(key: str) -> dict[str, str]:
    env = dict(os.environ)
    env["LOYALTY_BOOTSTRAP_ADMIN_KEY"] = key
    env.setdefault("LOYALTY_ENV", "development")  # a key of the user's choosing may be a weak one here
    env.setdefault("LOYALTY_API_KEYS_FILE", str(DATA / "api-keys.json"))
    for name in SERVICES:
        env.setdefault(f"{name.upper()}_DATABASE_URL", f"sqlite+aiosqlite:///{DATA / name}.db")
    return env


def wait_ready(name: str, port: int, proc: subprocess.Popen[bytes], timeout: float = 60) -> None:
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if proc.poll() is not None:
            log = DATA / "logs" / f"{name}.log"
            tail = "\n".join(log.read_text(errors="replace").splitlines()[-20:]) if log.exists() else ""
            raise RuntimeError(f"{name} exited with {proc.returncode} while starting:\n{tail}")
        try:
            with urllib.request.urlopen(f"http://{HOST}:{port}/healthz", timeout=1):
                return
        except (urllib.error.URLError, OSError):
            time.sleep(0.2)
    raise RuntimeError(f"{name} did not answer on port {port} within {timeout:.0f}s")


def main() -> int:
    DATA.mkdir(parents=True, exist_ok=True)
    kafka_sh = str(ROOT / "deploy/local/kafka.sh")
    kafka_was_running = subprocess.run([kafka_sh, "status"], capture_output=True).returncode == 0
    subprocess.run([kafka_sh, "start"], check=True)
    key = admin_key()
    env = service_env(key)
    subprocess.run([str(BIN / "loyalty"), "topics"], check=True, env=env, cwd=ROOT)
    subprocess.run([str(BIN / "loyalty"), "migrate"], check=True, env=env, cwd=ROOT)

    logs = DATA / "logs"
    logs.mkdir(exist_ok=True)
    procs: dict[str, subprocess.Popen[bytes]] = {}
    stopping = False

    def stop(*_: object) -> None:
        nonlocal stopping
        stopping = True

    signal.signal(signal.SIGINT, stop)
    signal.signal(signal.SIGTERM, stop)
    code = 0
    try:
        for name, port in SERVICES.items():
            with (logs / f"{name}.log").open("ab") as log:
                procs[name] = subprocess.Popen(
                    [str(BIN / "uvicorn"), *uvicorn_args(f"services.{name}.app:create_app", host=HOST, port=port)],
                    env=env, cwd=ROOT, stdout=log, stderr=subprocess.STDOUT,
                )
        for name, port in SERVICES.items():
            wait_ready(name, port, procs[name])
        print("\n  Loyalty platform is running (Ctrl-C stops it):", flush=True)
        for name, port in SERVICES.items():
            print(f"    {name:8} http://{HOST}:{port}/docs", flush=True)
        print(f"\n  Logs (JSON lines): {logs}/<service>.log", flush=True)
        print(f"  Admin key: {key}", flush=True)
        print(f"  Try: curl -H 'Authorization: Bearer {key}' http://{HOST}:8001/v1/program\n", flush=True)
        while not stopping:
            for name, proc in procs.items():
                if proc.poll() is not None:
                    say(f"{name} exited with {proc.returncode} (see {logs / name}.log); stopping everything")
                    code = 1
                    stopping = True
            time.sleep(0.3)
    except (RuntimeError, subprocess.CalledProcessError) as exc:
        say(str(exc))
        code = 1
    finally:
        say("stopping services")
        for proc in procs.values():
            if proc.poll() is None:
                proc.send_signal(signal.SIGTERM)
        for proc in procs.values():
            try:
                proc.wait(timeout=20)
            except subprocess.TimeoutExpired:
                proc.kill()
        if not kafka_was_running:
            subprocess.run([kafka_sh, "stop"], check=False)
        say("stopped")
    return code


if __name__ == "__main__":
    sys.exit(main())
