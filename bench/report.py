"""The table (figure, value, reference, ratio, target, met?) and the JSON file with every figure."""

from __future__ import annotations

import json
import math
from dataclasses import asdict, dataclass
from pathlib import Path
from typing import Any


@dataclass
class Row:
    figure: str
    value: str
    reference: str
    ratio: float | None
    target: str
    met: bool | None  # None: no target, or the figure was skipped

    def cells(self) -> list[str]:
        ratio = "-" if self.ratio is None or math.isnan(self.ratio) else f"{self.ratio:.2f}"
        met = {True: "yes", False: "NO", None: "-"}[self.met]
        return [self.figure, self.value, self.reference, ratio, self.target, met]


HEADER = ["figure", "value", "reference (same run)", "ratio", "target", "met"]


def ratio(value: float, reference: float) -> float:
    return round(value / reference, 3) if reference else float("nan")


def table(rows: list[Row]) -> str:
    """A Markdown table, readable in a terminal and pasteable into bench/README.md."""
    lines = [HEADER, ["---"] * len(HEADER), *(row.cells() for row in rows)]
    widths = [max(len(line[i]) for line in lines) for i in range(len(HEADER))]
    out = []
    for line in lines:
        if line[0] == "---":
            out.append("|" + "|".join("-" * (w + 2) for w in widths) + "|")
        else:
            out.append("| " + " | ".join(cell.ljust(w) for cell, w in zip(line, widths, strict=True)) + " |")
    return "\n".join(out)


def _finite(value: Any) -> Any:
    """NaN (a figure that could not be computed) as null, so the file is strict JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {str(k): _finite(v) for k, v in value.items()}
    if isinstance(value, list | tuple):
        return [_finite(v) for v in value]
    return value


def write(results_dir: Path, stamp: str, document: dict[str, Any], rows: list[Row]) -> Path:
    """bench/results/<stamp>.json and a copy as latest.json."""
    results_dir.mkdir(parents=True, exist_ok=True)
    document = {**document, "table": [asdict(row) for row in rows]}
    text = json.dumps(_finite(document), indent=2, default=str, allow_nan=False)
    path = results_dir / f"{stamp}.json"
    path.write_text(text + "\n")
    (results_dir / "latest.json").write_text(text + "\n")
    return path
