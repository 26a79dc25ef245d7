"""deploy/k8s checked offline: every object against the Kubernetes JSON schemas (strict: an unknown or
misspelt field fails), then the project's own rules: readiness on /readyz, resources, a PodDisruptionBudget
and a Service per service, env names the settings classes read, and Jobs that run real `loyalty` commands."""

from __future__ import annotations

import copy
import importlib
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from pydantic import ValidationError
from typer.testing import CliRunner

from ops.cli import app as cli
from shared.http.server import CONCURRENCY_LIMIT, PROTOCOL, uvicorn_args
from shared.settings import ServiceSettings
from tests.support import ROOT, SERVICES

K8S = ROOT / "deploy/k8s"
# The oldest Kubernetes the manifests promise to work on, and the newest the pinned schemas know.
KUBERNETES_VERSIONS = ("1.29.0", kubernetes_validate.latest_version())
PORTS = {"points": 8001, "rewards": 8002, "tiers": 8003}  # the contract's default ports
SECRETS = "secret.yaml"  # applied once by hand, never by the kustomization (it would reset the real values)


def load(path: Path) -> list[dict[str, Any]]:
    return [doc for doc in yaml.safe_load_all(path.read_text()) if doc]


def kustomization() -> dict[str, Any]:
    return load(K8S / "kustomization.yaml")[0]


def objects() -> list[tuple[str, dict[str, Any]]]:
    return [(name, obj) for name in [*kustomization()["resources"], SECRETS] for obj in load(K8S / name)]


def find(kind: str, name: str | None = None) -> list[dict[str, Any]]:
    return [o for _, o in objects() if o["kind"] == kind and (name is None or o["metadata"]["name"] == name)]


def one(kind: str, name: str) -> dict[str, Any]:
    found = find(kind, name)
    assert len(found) == 1, f"{kind}/{name}: {len(found)} found"
    return found[0]


def pod_spec(obj: dict[str, Any]) -> dict[str, Any]:
    spec: dict[str, Any] = obj["spec"]["template"]["spec"]
    return spec


def settings_class(service: str) -> type[ServiceSettings]:
    cls: type[ServiceSettings] = importlib.import_module(f"services.{service}.settings").Settings
    return cls


def env_names(service: str) -> set[str]:
    """The environment variables the service's settings read: an alias as it is, else prefix + field name."""
    cls = settings_class(service)
    prefix = cls.model_config.get("env_prefix", "")
    return {field.validation_alias if isinstance(field.validation_alias, str) else f"{prefix}{name}".upper()
            for name, field in cls.model_fields.items()}


def all_env_names() -> set[str]:
    return set().union(*(env_names(s) for s in SERVICES))


# --- schema ----------------------------------------------------------------------------------------------


def test_kustomization_lists_every_manifest_but_the_secrets() -> None:
    files = {p.name for p in K8S.glob("*.yaml")} - {"kustomization.yaml", SECRETS}
    assert sorted(kustomization()["resources"]) == sorted(files)
    assert all("namespace" not in obj["metadata"] for _, obj in objects()), "namespace-less: -n picks it"


@pytest.mark.parametrize("version", KUBERNETES_VERSIONS)
@pytest.mark.parametrize(("path", "obj"), objects(), ids=lambda v: v if isinstance(v, str) else
                         f"{v['kind']}/{v['metadata']['name']}")
def test_object_matches_the_kubernetes_schema(path: str, obj: dict[str, Any], version: str) -> None:
    kubernetes_validate.validate(obj, version, strict=True)


def test_the_schema_check_rejects_a_misspelt_field() -> None:
    broken = copy.deepcopy(one("Deployment", "points"))
    container = pod_spec(broken)["containers"][0]
    container["readinessprobe"] = container.pop("readinessProbe")
    with pytest.raises(kubernetes_validate.ValidationError, match="readinessprobe"):
        kubernetes_validate.validate(broken, KUBERNETES_VERSIONS[0], strict=True)


# --- the services ----------------------------------------------------------------------------------------


@pytest.mark.parametrize("service", SERVICES)
def test_deployment_probes_resources_and_security(service: str) -> None:
    deployment = one("Deployment", service)
    spec = pod_spec(deployment)
    assert spec["securityContext"]["runAsNonRoot"] is True and spec["securityContext"]["runAsUser"] != 0
    (container,) = spec["containers"]
    assert container["image"] == "loyalty", "the image deploy/Dockerfile builds (kustomization images: sets it)"
    command = container["command"]
    assert command == ["uvicorn", *uvicorn_args(f"services.{service}.app:create_app", host="0.0.0.0",
                                                port=PORTS[service])], "the services' command line, literally"
    assert command[command.index("--http") + 1] == PROTOCOL, "request deadlines against slow clients"
    assert command[command.index("--limit-concurrency") + 1] == str(CONCURRENCY_LIMIT)
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert ports == {"http": PORTS[service]}
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}
    for c in [*spec.get("initContainers", []), container]:
        assert {"cpu", "memory"} <= set(c["resources"]["requests"]), c["name"]
        assert "memory" in c["resources"]["limits"], c["name"]
        assert c["securityContext"]["allowPrivilegeEscalation"] is False, c["name"]
    assert deployment["spec"]["replicas"] >= 2, "one pod may be drained while the other serves"
    (migrate,) = spec["initContainers"]
    assert migrate["command"] == ["loyalty", "migrate", service], "no pod runs on an older schema than its code"


@pytest.mark.parametrize("service", SERVICES)
def test_service_and_disruption_budget_select_the_pods(service: str) -> None:
    labels = one("Deployment", service)["spec"]["template"]["metadata"]["labels"]
    budget = one("PodDisruptionBudget", service)
    assert budget["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert budget["spec"].get("minAvailable", 0) >= 1 or "maxUnavailable" in budget["spec"]
    svc = one("Service", service)
    assert svc["spec"]["selector"].items() <= labels.items()
    assert [(p["port"], p["targetPort"]) for p in svc["spec"]["ports"]] == [(PORTS[service], "http")]


# --- settings ------------------------------------------------------------------------------------------


def test_config_and_secret_hold_only_names_the_settings_read() -> None:
    known = all_env_names()
    assert set(one("ConfigMap", "loyalty-config")["data"]) <= known
    assert set(one("Secret", "loyalty-secrets")["stringData"]) <= known


@pytest.mark.parametrize("service", SERVICES)
def test_each_service_gets_its_own_database_and_known_env(service: str) -> None:
    spec = pod_spec(one("Deployment", service))
    secret = one("Secret", "loyalty-secrets")["stringData"]
    prefix = settings_class(service).model_config.get("env_prefix", "")
    for container in [*spec.get("initContainers", []), *spec["containers"]]:
        names = {e["name"] for e in container.get("env", [])}
        assert names <= env_names(service), f"{container['name']}: {names - env_names(service)}"
        assert f"{prefix}DATABASE_URL" in names
        assert not any(n.endswith("_DATABASE_URL") and n != f"{prefix}DATABASE_URL" for n in names), \
            "a service never sees another service's database credentials"
        for env in container.get("env", []):
            ref = env["valueFrom"]["secretKeyRef"]
            assert ref["name"] == "loyalty-secrets" and ref["key"] in secret
        assert [e["configMapRef"]["name"] for e in container["envFrom"]] == ["loyalty-config"]
    mounted = {v["secret"]["secretName"] for v in spec["volumes"] if "secret" in v}
    assert mounted == {"loyalty-api-keys"}
    keys_file = Path(one("ConfigMap", "loyalty-config")["data"]["LOYALTY_API_KEYS_FILE"])
    mounts = {m["mountPath"] for m in spec["containers"][0]["volumeMounts"]}
    assert str(keys_file.parent) in mounts
    assert keys_file.name in one("Secret", "loyalty-api-keys")["stringData"]


@pytest.mark.parametrize("service", SERVICES)
def test_config_values_are_valid_settings_and_the_placeholder_key_is_refused(
    service: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    for name, value in one("ConfigMap", "loyalty-config")["data"].items():
        monkeypatch.setenv(name, value)
    prefix = settings_class(service).model_config.get("env_prefix", "")
    monkeypatch.setenv(f"{prefix}DATABASE_URL", one("Secret", "loyalty-secrets")["stringData"][f"{prefix}DATABASE_URL"])
    monkeypatch.setenv("LOYALTY_BOOTSTRAP_ADMIN_KEY", one("Secret", "loyalty-secrets")["stringData"][
        "LOYALTY_BOOTSTRAP_ADMIN_KEY"])
    with pytest.raises(ValidationError, match="placeholder"):
        settings_class(service)()
    monkeypatch.setenv("LOYALTY_BOOTSTRAP_ADMIN_KEY", "a-real-key-of-enough-length-1234")
    settings = settings_class(service)()
    assert settings.environment == "production" and settings.database_url.startswith("postgresql+asyncpg://")


# --- jobs ------------------------------------------------------------------------------------------------


@pytest.mark.parametrize(("job", "command"), [("loyalty-migrate", ["loyalty", "migrate"]),
                                              ("loyalty-topics", ["loyalty", "topics"])])
def test_jobs_run_real_cli_commands(job: str, command: list[str]) -> None:
    (container,) = pod_spec(one("Job", job))["containers"]
    assert container["command"] == command
    assert CliRunner().invoke(cli, [*command[1:], "--help"]).exit_code == 0
    assert {"cpu", "memory"} <= set(container["resources"]["requests"])


def test_migration_job_reaches_every_database() -> None:
    (container,) = pod_spec(one("Job", "loyalty-migrate"))["containers"]
    names = {e["name"] for e in container["env"]}
    assert names == {"POINTS_DATABASE_URL", "REWARDS_DATABASE_URL", "TIERS_DATABASE_URL"}
