"""`loyalty import`: members.csv (PUT each member) or purchases.csv (POST /v1/purchases/batch) through the
public API, in batches, with a checkpoint after each batch so that a re-run after Ctrl-C resumes.

A batch interrupted midway is sent again whole on resume; that is safe because members are PUT and every
purchase carries an id (from the file, or derived from the row), so what already landed is replayed, not
recorded twice.
"""

from __future__ import annotations

import asyncio
import csv
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from itertools import islice
from pathlib import Path
from typing import Any, TextIO
from urllib.parse import quote

from rich.console import Console
from rich.progress import BarColumn, MofNCompleteColumn, Progress, TextColumn, TimeRemainingColumn

from ops.client import Api
from ops.csv_rows import (
    Checkpoint,
    Kind,
    Rejected,
    Tally,
    check_header,
    detect_kind,
    member_card,
    member_request,
    purchase_body,
    rejection_reason,
    side_files,
)

MAX_BATCH = 1000
MEMBER_CONCURRENCY = 8


class ImportFailed(Exception):
    """The file cannot be imported at all (header, a changed file under a checkpoint)."""


@dataclass
class ImportResult:
    kind: Kind
    rows: int
    tally: Tally
    rejected_file: Path | None
    resumed_from: int


Row = tuple[int, dict[str, str | None]]  # (line number in the file, cells)


async def _send_members(api: Api, rows: list[Row]) -> tuple[Tally, list[tuple[Row, str]]]:
    tally, rejected = Tally(), []
    gate = asyncio.Semaphore(MEMBER_CONCURRENCY)

    async def one(row: Row) -> None:
        try:
            member_id, body = member_request(row[1])
            card = member_card(row[1])
        except Rejected as exc:
            rejected.append((row, str(exc)))
            return
        async with gate:
            response = await api.request("points", "PUT", f"/v1/members/{member_id}", json=body,
                                         ok_statuses=frozenset(range(400, 500)))
            if response.status_code < 300 and card is not None:
                # The member landed; a card already held by another member sends the row to the rejected file.
                given = await api.request("points", "PUT", f"/v1/members/{member_id}/identifiers/card/"
                                          f"{quote(card, safe='')}", ok_statuses=frozenset(range(400, 500)))
                if given.status_code >= 300:
                    rejected.append((row, "card: " + rejection_reason(given.status_code, given.json())))
                    return
        if response.status_code == 201:
            tally.created += 1
        elif response.status_code < 300:
            tally.existing += 1
        else:
            rejected.append((row, rejection_reason(response.status_code, response.json())))

    await asyncio.gather(*(one(row) for row in rows))
    rejected.sort(key=lambda item: item[0][0])
    tally.rejected = len(rejected)
    return tally, rejected


async def _send_purchases(api: Api, rows: list[Row], currency: str) -> tuple[Tally, list[tuple[Row, str]]]:
    tally, rejected = Tally(), []
    bodies: list[tuple[Row, dict[str, Any]]] = []
    for row in rows:
        try:
            bodies.append((row, purchase_body(row[1], currency)))
        except Rejected as exc:
            rejected.append((row, str(exc)))
    if bodies:
        answer = await api.send("points", "POST", "/v1/purchases/batch", {"purchases": [b for _, b in bodies]})
        for (row, _), result in zip(bodies, answer["results"], strict=True):
            if result["status"] == 201:
                tally.created += 1
            elif result["status"] < 300:
                tally.existing += 1
            else:
                rejected.append((row, rejection_reason(result["status"], result["body"])))
    rejected.sort(key=lambda item: item[0][0])
    tally.rejected = len(rejected)
    return tally, rejected


def _rows(handle: TextIO, skip: int) -> tuple[list[str], Iterator[Row]]:
    reader = csv.DictReader(handle)
    header = [name.strip() for name in reader.fieldnames or ()]
    reader.fieldnames = header
    rows = ((reader.line_num, row) for row in reader)
    return header, islice(rows, skip, None)


@contextmanager
def _progress(show: bool, total: int, done: int, label: str) -> Iterator[Callable[[int], None]]:
    if not show:
        yield lambda advance: None
        return
    columns = (TextColumn(label), BarColumn(), MofNCompleteColumn(), TimeRemainingColumn())
    with Progress(*columns, console=Console(stderr=True), transient=False) as bar:
        task = bar.add_task(label, total=total, completed=done)
        yield lambda advance: bar.advance(task, advance)


def _start(source: Path, checkpoint_path: Path, restart: bool) -> tuple[Checkpoint, int]:
    """The checkpoint to go on from (a fresh one unless an import of this very file was interrupted) and
    the number of rows, for the progress bar."""
    size = source.stat().st_size
    checkpoint = None if restart else Checkpoint.load(checkpoint_path)
    if checkpoint is not None and checkpoint.source_size != size:
        raise ImportFailed(f"{source} changed since the interrupted import ({checkpoint_path}); "
                           "give --restart to import it from the start")
    with source.open(newline="", encoding="utf-8-sig") as handle:
        total = sum(1 for _ in csv.DictReader(handle))
    return checkpoint or Checkpoint(source_size=size), total


async def import_file(api: Api, source: Path, *, kind: Kind | None = None, batch_size: int = 500,
                      currency: str | None = None, restart: bool = False, show_progress: bool = False,
                      on_sent: Callable[[int], None] | None = None) -> ImportResult:
    """``on_sent(rows_done)`` runs after each batch is answered and before its checkpoint is written (tests
    interrupt there, the worst moment: the rows landed but the checkpoint does not know)."""
    if not 1 <= batch_size <= MAX_BATCH:
        raise ImportFailed(f"--batch-size must be 1 to {MAX_BATCH}")
    rejected_path, checkpoint_path = side_files(source)
    checkpoint, total = _start(source, checkpoint_path, restart)
    resumed_from = checkpoint.rows_done
    with source.open(newline="", encoding="utf-8-sig") as handle:
        header, rows = _rows(handle, checkpoint.rows_done)
        try:
            kind = kind or detect_kind(header)
            check_header(header, kind)
        except Rejected as exc:
            raise ImportFailed(f"{source}: {exc}") from None
        if kind == "purchases" and currency is None:
            currency = (await api.get("points", "/v1/program"))["currency"]
        with rejected_path.open("a+", newline="", encoding="utf-8") as rejected_file:
            rejected_file.truncate(checkpoint.rejected_bytes)
            rejected_file.seek(checkpoint.rejected_bytes)
            writer = csv.writer(rejected_file)
            if checkpoint.rejected_bytes == 0:
                writer.writerow(["line", *header, "reason"])
            with _progress(show_progress, total, checkpoint.rows_done, f"{kind} {source.name}") as advance:
                while batch := list(islice(rows, batch_size)):
                    if kind == "members":
                        tally, rejected = await _send_members(api, batch)
                    else:
                        tally, rejected = await _send_purchases(api, batch, currency or "")
                    if on_sent is not None:
                        on_sent(checkpoint.rows_done + len(batch))
                    for (line, cells), reason in rejected:
                        writer.writerow([line, *(cells.get(c) or "" for c in header), reason])
                    rejected_file.flush()
                    checkpoint.rows_done += len(batch)
                    checkpoint.rejected_bytes = rejected_file.tell()
                    checkpoint.tally.add(tally)
                    checkpoint.save(checkpoint_path)
                    advance(len(batch))
    checkpoint_path.unlink(missing_ok=True)
    if checkpoint.tally.rejected == 0:
        rejected_path.unlink(missing_ok=True)
    return ImportResult(kind, checkpoint.rows_done, checkpoint.tally,
                        rejected_path if checkpoint.tally.rejected else None, resumed_from)

