"""Kafka's TLS and SASL settings reach every client the same way (shared.messaging.kafka.KafkaSecurity)."""

from __future__ import annotations

import ssl
import subprocess
from pathlib import Path

import pytest
from pydantic import ValidationError

from services.points.settings import Settings
from shared.messaging.kafka import KafkaSecurity, make_producer


def test_plaintext_by_default() -> None:
    assert Settings().kafka_security().client_options() == {"security_protocol": "PLAINTEXT"}


@pytest.fixture
def ca_file(tmp_path: Path) -> Path:
    key, cert = tmp_path / "ca.key", tmp_path / "ca.pem"
    subprocess.run(["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-keyout", str(key), "-out",
                    str(cert), "-days", "1", "-subj", "/CN=loyalty-test-ca"], check=True, capture_output=True)
    return cert


async def test_sasl_over_tls_with_a_ca(ca_file: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    cert = ca_file
    for name, value in {"KAFKA_SECURITY_PROTOCOL": "SASL_SSL", "KAFKA_SASL_MECHANISM": "SCRAM-SHA-512",
                        "KAFKA_SASL_USERNAME": "points", "KAFKA_SASL_PASSWORD": "s3cret-pass",
                        "KAFKA_SSL_CAFILE": str(cert)}.items():
        monkeypatch.setenv(name, value)
    options = Settings().kafka_security().client_options()
    assert options["security_protocol"] == "SASL_SSL" and options["sasl_mechanism"] == "SCRAM-SHA-512"
    assert options["sasl_plain_username"] == "points" and options["sasl_plain_password"] == "s3cret-pass"
    assert isinstance(options["ssl_context"], ssl.SSLContext)
    assert options["ssl_context"].verify_mode == ssl.CERT_REQUIRED
    producer = make_producer("127.0.0.1:9093", "t", Settings().kafka_security())  # the producer takes them
    assert producer.client._security_protocol == "SASL_SSL" and producer.client._sasl_mechanism == "SCRAM-SHA-512"
    assert "s3cret-pass" not in repr(Settings())  # a secret, not printed with the settings


def test_incomplete_settings_are_refused_at_start(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("KAFKA_SECURITY_PROTOCOL", "SASL_PLAINTEXT")
    with pytest.raises(ValidationError, match="KAFKA_SASL_MECHANISM"):
        Settings()
    with pytest.raises(ValidationError, match="KAFKA_SSL_KEYFILE"):
        KafkaSecurity(protocol="SSL", ssl_certfile=Path("/x.pem"))
