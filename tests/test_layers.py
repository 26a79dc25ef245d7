"""The direction of imports (ARCHITECTURE.md): ``shared`` under the services, ``ops`` and ``bench`` on top, no
service importing another. Read from the source's syntax tree, so an import inside a function counts too."""

from __future__ import annotations

import ast
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SERVICES = sorted(p.name for p in (ROOT / "services").iterdir() if (p / "app.py").exists())


def imported_modules(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(), filename=str(path))
    found: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            found.update(alias.name for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.module and node.level == 0:
            found.add(node.module)
    return found


def violations(folder: Path, forbidden: tuple[str, ...]) -> list[str]:
    return [
        f"{path.relative_to(folder)} imports {module}"
        for path in sorted(folder.rglob("*.py"))
        for module in sorted(imported_modules(path))
        if any(module == name or module.startswith(f"{name}.") for name in forbidden)
    ]


def test_shared_imports_neither_the_services_nor_the_tools_on_top() -> None:
    assert violations(ROOT / "shared", ("services", "ops", "bench", "tests")) == []


@pytest.mark.parametrize("service", SERVICES)
def test_a_service_imports_no_other_service_and_nothing_on_top(service: str) -> None:
    others = tuple(f"services.{name}" for name in SERVICES if name != service)
    assert violations(ROOT / "services" / service, ("ops", "bench", "tests", *others)) == []


def test_the_walk_sees_imports_inside_functions(tmp_path: Path) -> None:
    module = tmp_path / "late.py"
    module.write_text("def f():\n    from services.points import service\n")
    assert violations(tmp_path, ("services",)) == ["late.py imports services.points"]


@pytest.mark.parametrize("service", SERVICES)
def test_every_service_has_the_same_roles(service: str) -> None:
    """app, settings, api, schemas, service, domain, models, consumers, jobs, errors: each a module or a
    package of the same name."""
    folder = ROOT / "services" / service
    roles = ("app", "settings", "api", "schemas", "service", "domain", "models", "consumers", "jobs", "errors")
    missing = [role for role in roles
               if not (folder / f"{role}.py").exists() and not (folder / role / "__init__.py").exists()]
    assert missing == []
