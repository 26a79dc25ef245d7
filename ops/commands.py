"""The `loyalty apply`, `loyalty import` and `loyalty demo` commands (registered in ops/cli.py)."""

from __future__ import annotations

import asyncio
import sys
from collections.abc import Awaitable, Callable
from pathlib import Path
from typing import Annotated, Any, Literal, TypeVar

import httpx
import typer

from ops.client import DEFAULT_URLS, Api, ApiError, Endpoints, KeyMissing, resolve_key

T = TypeVar("T")
Kind = Literal["members", "purchases"]

PointsUrl = Annotated[str, typer.Option("--points-url", envvar="LOYALTY_POINTS_URL", help="points service")]
RewardsUrl = Annotated[str, typer.Option("--rewards-url", envvar="LOYALTY_REWARDS_URL", help="rewards service")]
TiersUrl = Annotated[str, typer.Option("--tiers-url", envvar="LOYALTY_TIERS_URL", help="tiers service")]
Key = Annotated[str | None, typer.Option(
    "--key", envvar="LOYALTY_ADMIN_KEY", show_envvar=True,
    help="An admin key (default: .data/admin-key, as `make run` keeps it)")]


def _run(points: str, rewards: str, tiers: str, key: str | None, work: Callable[[Api], Awaitable[T]]) -> T:
    """Runs ``work`` with a client; an API error or an unreachable service ends the command with its reason."""
    try:
        api_key = resolve_key(key)
    except KeyMissing as exc:
        raise typer.BadParameter(str(exc), param_hint="--key") from None

    async def main() -> T:
        async with Api(Endpoints(points, rewards, tiers), api_key) as api:
            return await work(api)

    try:
        return asyncio.run(main())
    except ApiError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None
    except httpx.TransportError as exc:
        typer.echo(f"cannot reach {_url_of(exc)}: {exc!r} (is the system running? `make run`)", err=True)
        raise typer.Exit(1) from None


def _url_of(exc: httpx.TransportError) -> str:
    try:
        return str(exc.request.url)
    except RuntimeError:  # raised before a request was built
        return "a service"


def apply(
    file: Annotated[Path, typer.Argument(help="A program file (YAML): program, earning_rules, tiers, rewards")],
    dry_run: Annotated[bool, typer.Option("--dry-run", help="Show the differences; change nothing")] = False,
    prune: Annotated[bool, typer.Option(
        "--prune", help="Delete earning rules and deactivate rewards that the file does not list")] = False,
    simulate: Annotated[bool, typer.Option(
        "--simulate", help="Replay the purchases of --from..--to through the file's earning rules and print "
                           "the difference in points and liability; apply nothing")] = False,
    start: Annotated[str | None, typer.Option(
        "--from", help="With --simulate: purchases at or after this moment (RFC 3339)")] = None,
    end: Annotated[str | None, typer.Option(
        "--to", help="With --simulate: purchases before this moment (at most 366 days after --from)")] = None,
    points_url: PointsUrl = DEFAULT_URLS["points"], rewards_url: RewardsUrl = DEFAULT_URLS["rewards"],
    tiers_url: TiersUrl = DEFAULT_URLS["tiers"], key: Key = None,
) -> None:
    """Make the program, earning rules, tiers and rewards what a YAML file says.

    Only what differs is written, so applying the same file again changes nothing; sections the file leaves
    out are not touched. examples/ holds two programs. With --simulate, nothing is written: the file's
    earning rules (and with --prune, the stored ones it leaves out) are tried on the purchases of a range."""
    from ops.apply import apply_program
    from ops.program import ProgramFileError, load_program

    if simulate and (start is None or end is None):
        raise typer.BadParameter("--simulate needs --from and --to", param_hint="--simulate")
    if not simulate and (start is not None or end is not None):
        raise typer.BadParameter("--from and --to go with --simulate", param_hint="--from")
    try:
        desired = load_program(file)
    except ProgramFileError as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    if simulate and start is not None and end is not None:
        from ops.simulation import simulate_program

        if desired.earning_rules is None:
            typer.echo(f"{file}: no earning_rules section to simulate", err=True)
            raise typer.Exit(2)
        _run(points_url, rewards_url, tiers_url, key,
             lambda api: simulate_program(api, desired, start, end, prune=prune, echo=typer.echo))
        return
    plan = _run(points_url, rewards_url, tiers_url, key,
                lambda api: apply_program(api, desired, dry_run=dry_run, prune=prune, echo=typer.echo))
    if plan.conflicts:
        raise typer.Exit(1)


def import_csv(
    file: Annotated[Path, typer.Argument(exists=True, dir_okay=False, help="members.csv or purchases.csv")],
    kind: Annotated[Kind | None, typer.Option(
        "--kind", help="members or purchases (default: told by the header)")] = None,
    batch_size: Annotated[int, typer.Option("--batch-size", min=1, max=1000, help="Rows per batch")] = 500,
    currency: Annotated[str | None, typer.Option(
        "--currency", help="For purchase rows without one (default: the program's)")] = None,
    restart: Annotated[bool, typer.Option(
        "--restart", help="Ignore the checkpoint of an interrupted import and start from the first row")] = False,
    progress: Annotated[bool | None, typer.Option(
        "--progress/--no-progress", help="Show a progress bar (default: on a terminal)", show_default=False)] = None,
    points_url: PointsUrl = DEFAULT_URLS["points"], key: Key = None,
) -> None:
    """Import members or purchases from a CSV file through the points API, resumably.

    Members are PUT one by one; purchases go in POST /v1/purchases/batch calls.
    Members: member_id, name, email, phone, birth_date, referred_by, status. Purchases: member_id, occurred_at
    (RFC 3339 with an offset), total, and optionally purchase_id (else derived from the row, so a re-run
    replays), currency, store_id, channel, category, sku. Rows the API refuses go to FILE.rejected.csv with
    the reason; after Ctrl-C the same command resumes from FILE.checkpoint.json."""
    from ops.importer import ImportFailed, ImportResult, import_file

    async def work(api: Api) -> ImportResult:
        return await import_file(api, file, kind=kind, batch_size=batch_size, currency=currency,
                                 restart=restart,
                                 show_progress=sys.stderr.isatty() if progress is None else progress)

    try:
        result = _run(points_url, DEFAULT_URLS["rewards"], DEFAULT_URLS["tiers"], key, work)
    except ImportFailed as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(2) from None
    except KeyboardInterrupt:
        from ops.csv_rows import Checkpoint, side_files

        checkpoint = Checkpoint.load(side_files(file)[1])
        settled = checkpoint.rows_done if checkpoint else 0
        typer.echo(f"interrupted after {settled} settled rows: run the same command again to resume", err=True)
        raise typer.Exit(130) from None
    tally = result.tally
    resumed = f" (resumed at row {result.resumed_from + 1})" if result.resumed_from else ""
    already = "updated" if result.kind == "members" else "already recorded"
    typer.echo(f"{result.kind}: {result.rows} rows{resumed}: {tally.created} created, {tally.existing} {already}, "
               f"{tally.rejected} rejected" + (f" (see {result.rejected_file})" if result.rejected_file else ""))


def demo(
    members: Annotated[int, typer.Option(
        "--members", min=1, max=100_000, help="How many members (1000 load in about 50 s on 2 cores)")] = 1000,
    seed: Annotated[int, typer.Option("--seed", help="Same seed, same data")] = 7,
    points_url: PointsUrl = DEFAULT_URLS["points"], rewards_url: RewardsUrl = DEFAULT_URLS["rewards"],
    tiers_url: TiersUrl = DEFAULT_URLS["tiers"], key: Key = None,
) -> None:
    """Load a generated coffee-shop program with members and a year of purchases into a running system.

    Tiers, rules and rewards, members (a few heavy buyers, many light ones, some lapsed) with a year of
    purchases, a few redemptions, then the segmentation run, so tiers, segments and analytics show real
    figures at once. Running it again the same day (same seed) changes nothing."""
    from ops.demo import DemoFailed, run_demo

    async def work(api: Api) -> dict[str, Any]:
        return await run_demo(api, members=members, seed=seed, echo=typer.echo)

    try:
        _run(points_url, rewards_url, tiers_url, key, work)
    except DemoFailed as exc:
        typer.echo(str(exc), err=True)
        raise typer.Exit(1) from None


def register(app: typer.Typer) -> None:
    app.command("apply")(apply)
    app.command("import")(import_csv)
    app.command("demo")(demo)
