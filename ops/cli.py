"""The ``loyalty`` command: API keys, migrations and topics for operators and scripts."""

from __future__ import annotations

import asyncio
import importlib
import os
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated

import typer
from pydantic import ValidationError

from ops.commands import register as register_operator_commands
from ops.dlt import list_dead_letters, replay_dead_letters
from shared.db.database import Database
from shared.db.migrations import upgrade
from shared.http.auth import KeyRecord, Scope, hash_key, new_key, read_keys_file, write_keys_file
from shared.messaging.asyncapi import DOCS_DIR, write_event_docs
from shared.messaging.kafka import all_topic_names, ensure_topics
from shared.settings import ServiceSettings

SERVICES = ("points", "rewards", "tiers")

app = typer.Typer(help="Operate the loyalty platform.", no_args_is_help=True)
keys_app = typer.Typer(help="Create, list and revoke API keys (the keys file the services re-read).",
                       no_args_is_help=True)
app.add_typer(keys_app, name="keys")
jobs_app = typer.Typer(help="Run a scheduled job now (each service also runs it on its own schedule).",
                       no_args_is_help=True)
app.add_typer(jobs_app, name="jobs")
register_operator_commands(app)  # apply, import, demo: through the public HTTP API


def service_settings(service: str) -> ServiceSettings:
    module = importlib.import_module(f"services.{service}.settings")
    settings: ServiceSettings = module.Settings()
    return settings


def _keys_file(path: Path | None) -> Path:
    if path is not None:
        return path
    configured = os.environ.get("LOYALTY_API_KEYS_FILE")
    if not configured:
        raise typer.BadParameter("give --file or set LOYALTY_API_KEYS_FILE")
    return Path(configured)


KeysFile = Annotated[Path | None, typer.Option("--file", help="Keys file (default: $LOYALTY_API_KEYS_FILE)")]


@keys_app.command("create")
def keys_create(
    name: Annotated[str, typer.Argument(help="Who holds the key, e.g. pos-store-12; recorded as the actor")],
    scope: Annotated[list[Scope], typer.Option("--scope", "-s", help="Repeat for several scopes")],
    store: Annotated[list[str] | None, typer.Option(
        "--store", help="Bind the key to this store (repeat for several): it then acts only for those stores "
                        "and reads no e-mail or phone. Without it the key is one of the whole program")] = None,
    file: KeysFile = None,
) -> None:
    """Create a key, store its hash, and print the key once (it cannot be shown again)."""
    path = _keys_file(file)
    records = read_keys_file(path)
    if any(r.name == name for r in records):
        raise typer.BadParameter(f"a key named {name!r} exists; revoke it first")
    key = new_key()
    try:
        record = KeyRecord(name=name, key_sha256=hash_key(key), scopes=list(scope),
                           stores=sorted(set(store)) if store else None)
    except ValidationError as exc:
        raise typer.BadParameter(f"not a valid key: {exc.errors()[0]['msg']}") from None
    records.append(record)
    write_keys_file(path, records)
    typer.echo(key)


@keys_app.command("list")
def keys_list(file: KeysFile = None) -> None:
    """List key names, scopes and stores (never the keys); a key of the whole program shows `*` as its stores."""
    for record in read_keys_file(_keys_file(file)):
        stores = ",".join(record.stores) if record.stores is not None else "*"
        typer.echo(f"{record.name}\t{','.join(record.scopes)}\t{stores}")


@keys_app.command("revoke")
def keys_revoke(name: str, file: KeysFile = None) -> None:
    """Remove a key; the services stop accepting it within seconds."""
    path = _keys_file(file)
    records = read_keys_file(path)
    kept = [r for r in records if r.name != name]
    if len(kept) == len(records):
        raise typer.BadParameter(f"no key named {name!r}")
    write_keys_file(path, kept)
    typer.echo(f"revoked {name}")


async def _with_database(service: str, job: Callable[[Database], Awaitable[int]]) -> int:
    db = Database(service_settings(service).database_url)
    try:
        return await job(db)
    finally:
        await db.dispose()


@jobs_app.command("expire-points")
def expire_points() -> None:
    """Release pending points whose return window closed and expire lots past their date. Safe to repeat."""
    from services.points.jobs import settle_due_members

    settled = asyncio.run(_with_database("points", settle_due_members))
    typer.echo(f"points: settled {settled} members")


@jobs_app.command("expiry-reminders")
def expiry_reminders() -> None:
    """Send ``points.expiring`` about the lots that expire within the program's ``expiry_reminder_days`` (points'
    minute job does it too). Safe to repeat: each lot is reminded of once."""
    from services.points.service.reminders import send_reminders

    sent = asyncio.run(_with_database("points", send_reminders))
    typer.echo(f"points: {sent} expiry reminders sent")


@jobs_app.command("settle-goals")
def settle_goals() -> None:
    """Settle the goals' periods that have closed and the stamp cards filled (points' minute job does it
    too). Safe to repeat: each member's period is settled once."""
    from services.points.service.goals import settle_goals as settle

    made = asyncio.run(_with_database("points", settle))
    typer.echo(f"points: {made} goals reached")


@jobs_app.command("evaluate-tiers")
def evaluate_tiers() -> None:
    """Evaluate members whose tier retention has ended (downgrade or renew). Safe to repeat."""
    from services.tiers.service.members import evaluate_all

    changed = asyncio.run(_with_database("tiers", evaluate_all))
    typer.echo(f"tiers: {changed} members changed tier")


@jobs_app.command("segments")
def segments() -> None:
    """Recompute every member's RFM scores, value class, lifecycle and CLV; announce changes. Safe to repeat."""
    from services.tiers.service.segmentation import recompute_segments
    from services.tiers.settings import Settings

    params = Settings().segment_params()

    async def run(db: Database) -> int:
        done = await recompute_segments(db, params=params)
        typer.echo(f"tiers: {done.members} members segmented, {done.scored} scored, {done.changed} changed")
        return done.changed

    asyncio.run(_with_database("tiers", run))


rebuild_app = typer.Typer(help="Rebuild a service's state from the Kafka log into an empty database.",
                          no_args_is_help=True)
app.add_typer(rebuild_app, name="rebuild")


@rebuild_app.command("tiers")
def rebuild_tiers(
    database_url: Annotated[str, typer.Option("--database-url", help="An empty database; it is migrated first")],
    program: Annotated[Path | None, typer.Option(
        "--program", help="The tier program, as GET /v1/tiers answers it (default: the default program)")] = None,
    now: Annotated[str | None, typer.Option(
        "--now", help="RFC 3339 moment of the final evaluation and segmentation (default: the end of the replay)",
    )] = None,
) -> None:
    """Replay loyalty.members, loyalty.purchases and loyalty.points from the beginning, then evaluate tiers and
    segments: the same state as the live service's."""
    from datetime import datetime

    from ops.rebuild import RebuildError, read_program, rebuild
    from services.tiers.settings import Settings

    try:
        moment = datetime.fromisoformat(now) if now else None
    except ValueError as exc:
        raise typer.BadParameter(f"--now: {exc}") from exc
    if moment is not None and moment.tzinfo is None:
        raise typer.BadParameter("--now needs a UTC offset, e.g. 2026-11-20T10:15:00Z")
    try:
        body = read_program(program) if program is not None else None
        report = asyncio.run(rebuild(database_url, Settings(), program=body, now=moment))
    except RebuildError as exc:
        typer.echo(f"tiers rebuild: {exc}", err=True)
        raise typer.Exit(1) from exc
    typer.echo(str(report))


dlt_app = typer.Typer(help="Dead letters: events a consumer gave up on.", no_args_is_help=True)
app.add_typer(dlt_app, name="dlt")


@dlt_app.command("list")
def dlt_list(limit: int = 100) -> None:
    """Show dead letters: where they came from, their event type and the error."""
    settings = service_settings("points")
    letters = asyncio.run(list_dead_letters(settings.kafka_bootstrap_servers, settings.kafka_topic_prefix, limit,
                                            security=settings.kafka_security()))
    for letter in letters:
        origin = f"{letter.headers.get('dlt.original_topic', '?')}[{letter.headers.get('dlt.original_partition', '?')}]"
        typer.echo(f"{letter.topic}:{letter.partition}:{letter.offset}\t{origin}@"
                   f"{letter.headers.get('dlt.original_offset', '?')}\tkey={letter.key}\t{letter.event_type}\t"
                   f"{letter.headers.get('dlt.consumer', '?')}\t{letter.error}")
    typer.echo(f"{len(letters)} dead letters")


@dlt_app.command("replay")
def dlt_replay() -> None:
    """Send dead letters not replayed before back to their topics (after fixing what made them fail)."""
    settings = service_settings("points")
    count = asyncio.run(replay_dead_letters(settings.kafka_bootstrap_servers, settings.kafka_topic_prefix,
                                            security=settings.kafka_security()))
    typer.echo(f"replayed {count} dead letters")


@app.command()
def migrate(
    service: Annotated[list[str] | None, typer.Argument(help="points, rewards, tiers (default: all)")] = None,
) -> None:
    """Bring each service's database to the latest schema."""
    for name in service or SERVICES:
        if name not in SERVICES:
            raise typer.BadParameter(f"unknown service {name!r}")
        upgrade(name, service_settings(name).database_url)
        typer.echo(f"{name}: migrated")


@app.command()
def topics() -> None:
    """Create the loyalty topics and their dead-letter topics (kept forever) if missing."""
    settings = service_settings("points")
    names = all_topic_names(settings.kafka_topic_prefix)
    asyncio.run(ensure_topics(settings.kafka_bootstrap_servers, names, settings.kafka_partitions,
                              security=settings.kafka_security()))
    typer.echo(f"{len(names)} topics ready")


docs_app = typer.Typer(help="Generate the documents checked in under docs/.", no_args_is_help=True)
app.add_typer(docs_app, name="docs")


@docs_app.command("events")
def docs_events(
    out: Annotated[Path | None, typer.Option("--out", help="Folder (default: docs/events of the source tree)")] = None,
) -> None:
    """Write the AsyncAPI document and one JSON Schema per event type from the models in shared/messaging/events.py."""
    written = write_event_docs(out or DOCS_DIR)
    typer.echo(f"{len(written)} files written to {(out or DOCS_DIR)}")


if __name__ == "__main__":
    app()
