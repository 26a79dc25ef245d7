"""deploy/compose.yaml starts each service as the manifests do: migrated, then uvicorn with the services' own
command line (shared.http.server.uvicorn_args: request deadlines, concurrency limit, keep-alive)."""

from __future__ import annotations

import shlex

import pytest
import yaml

from shared.http.server import uvicorn_args
from tests.deploy.test_k8s_manifests import PORTS
from tests.support import ROOT, SERVICES


@pytest.mark.parametrize("service", SERVICES)
def test_compose_migrates_then_serves_with_the_services_command_line(service: str) -> None:
    compose = yaml.safe_load((ROOT / "deploy/compose.yaml").read_text())
    shell, option, script = compose["services"][service]["command"]
    assert (shell, option) == ("sh", "-c")
    migrate, _, serve = script.partition(" && exec ")
    assert migrate == f"loyalty migrate {service}"
    assert shlex.split(serve) == ["uvicorn", *uvicorn_args(f"services.{service}.app:create_app", host="0.0.0.0",
                                                           port=PORTS[service])]
