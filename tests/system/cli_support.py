"""Running the operator commands (`loyalty apply`, `import`, `demo`) in-process against a running System."""

from __future__ import annotations

from typer.testing import CliRunner, Result

from ops.cli import app
from tests.support import ADMIN_KEY
from tests.system.harness import System


def loyalty(system: System, *args: str, key: str = ADMIN_KEY) -> Result:
    """`loyalty <args>` pointed at the system's three services."""
    urls = {"--points-url": system["points"].url, "--rewards-url": system["rewards"].url,
            "--tiers-url": system["tiers"].url}
    command = args[0]
    wanted = urls if command in ("apply", "demo") else {"--points-url": urls["--points-url"]}
    options = [part for name, url in wanted.items() for part in (name, url)]
    return CliRunner().invoke(app, [*args, *options, "--key", key])
