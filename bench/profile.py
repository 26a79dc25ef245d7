"""A sampling profile of a service under load (``--profile``): py-spy, when it is on the PATH or at
``BENCH_PY_SPY``, records the process while a figure runs; the top functions go to the JSON."""

from __future__ import annotations

import os
import shutil
import subprocess
from collections import Counter
from pathlib import Path

ROOT = Path(__file__).resolve().parents[1]


def py_spy() -> str | None:
    return os.environ.get("BENCH_PY_SPY") or shutil.which("py-spy")


def start(pid: int, seconds: float, out: Path) -> subprocess.Popen[bytes] | None:
    """py-spy record in the background for ``seconds`` (collapsed stacks, one line per distinct stack)."""
    binary = py_spy()
    if binary is None:
        return None
    with out.with_suffix(".log").open("wb") as log:  # py-spy's own messages, for when no profile appears
        return subprocess.Popen([binary, "record", "--pid", str(pid), "--duration", str(max(1, round(seconds))),
                                 "--rate", "200", "--format", "raw", "--output", str(out), "--nonblocking"],
                                stdout=log, stderr=subprocess.STDOUT)


def summary(path: Path, top: int = 20) -> dict[str, list[tuple[str, float]]]:
    """The functions most often on top of the stack (self), anywhere in it (total), and the project's own
    functions anywhere in it (project_total), as shares of the samples."""
    own: Counter[str] = Counter()
    anywhere: Counter[str] = Counter()
    total = 0
    for line in path.read_text(errors="replace").splitlines():  # py-spy copies raw bytes of names
        stack, _, count_text = line.rpartition(" ")
        if not stack or not count_text.isdigit():
            continue
        count = int(count_text)
        frames = stack.split(";")
        total += count
        own[_short(frames[-1])] += count
        for frame in {_short(f) for f in frames}:
            anywhere[frame] += count
    if not total:
        return {"self": [], "total": []}
    project = Counter({f: n for f, n in anywhere.items() if f.split(" (")[-1].startswith(("shared/", "services/"))})
    return {"self": [(f, round(n / total, 3)) for f, n in own.most_common(top)],
            "total": [(f, round(n / total, 3)) for f, n in anywhere.most_common(top)],
            "project_total": [(f, round(n / total, 3)) for f, n in project.most_common(top)],
            "samples": [("all", float(total))]}


def _short(frame: str) -> str:
    """``handle (sqlalchemy/engine/base.py:123)`` as ``handle (sqlalchemy/engine/base.py)``."""
    name, _, where = frame.partition(" (")
    where = where.rstrip(")")
    file = where.rsplit(":", 1)[0]
    for marker in ("site-packages/", f"{ROOT}/", "lib/python3.11/"):
        if marker in file:
            file = file.split(marker, 1)[1]
    return f"{name} ({file})" if file else name
