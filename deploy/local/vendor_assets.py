#!/usr/bin/env python3
"""Vendor the browser assets the services serve: fetch each pinned npm tarball once, check its sha256, and
copy the files the pages load into the service's static dir (gitignored; never fetched at run time).

    python3 deploy/local/vendor_assets.py      # `make install` and deploy/Dockerfile run it

Tarballs are cached in ``.cache/npm/``; a run with everything in place touches nothing. Standard library
only, so it runs in the slim image before the project is installed.
"""

from __future__ import annotations

import hashlib
import io
import sys
import tarfile
import urllib.request
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "npm"
REGISTRY = "https://registry.npmjs.org"


@dataclass(frozen=True)
class Asset:
    package: str
    version: str
    sha256: str  # of the tarball
    files: dict[str, str]  # path inside the tarball -> path under ROOT

    @property
    def tarball(self) -> str:
        name = self.package.rsplit("/", 1)[-1]
        return f"{REGISTRY}/{self.package}/-/{name}-{self.version}.tgz"


ASSETS = [
    Asset(
        package="chart.js", version="4.5.1",
        sha256="f540d98468457ac7a0aabb32006dfb066297e096c5ea063a5d80aa973d1c337a",
        files={"package/dist/chart.umd.min.js": "services/tiers/static/vendor/chart.umd.min.js",
               "package/LICENSE.md": "services/tiers/static/vendor/chart.js-LICENSE.md"},
    ),
]


def fetch(asset: Asset) -> bytes:
    cached = CACHE / f"{asset.package.replace('/', '_')}-{asset.version}.tgz"
    if cached.exists() and hashlib.sha256(cached.read_bytes()).hexdigest() == asset.sha256:
        return cached.read_bytes()
    print(f"vendor_assets: fetching {asset.tarball}", file=sys.stderr)
    with urllib.request.urlopen(asset.tarball, timeout=60) as answer:
        data: bytes = answer.read()
    digest = hashlib.sha256(data).hexdigest()
    if digest != asset.sha256:
        raise SystemExit(f"vendor_assets: {asset.tarball} has sha256 {digest}, expected {asset.sha256}; not used")
    CACHE.mkdir(parents=True, exist_ok=True)
    cached.write_bytes(data)
    return data


def vendor(asset: Asset) -> None:
    with tarfile.open(fileobj=io.BytesIO(fetch(asset)), mode="r:gz") as tar:
        for member, target in asset.files.items():
            source = tar.extractfile(member)
            if source is None:
                raise SystemExit(f"vendor_assets: {member} is not a file in {asset.package} {asset.version}")
            content = source.read()
            path = ROOT / target
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)


def in_place(asset: Asset) -> bool:
    """Whether every file is there, as extracted from the cached tarball of the pinned version."""
    cached = CACHE / f"{asset.package.replace('/', '_')}-{asset.version}.tgz"
    if not cached.exists() or not all((ROOT / target).exists() for target in asset.files.values()):
        return False
    data = cached.read_bytes()
    if hashlib.sha256(data).hexdigest() != asset.sha256:
        return False
    with tarfile.open(fileobj=io.BytesIO(data), mode="r:gz") as tar:
        for member, target in asset.files.items():
            source = tar.extractfile(member)
            if source is None or source.read() != (ROOT / target).read_bytes():
                return False
    return True


def main() -> None:
    for asset in ASSETS:
        if not in_place(asset):
            vendor(asset)
            print(f"vendor_assets: {asset.package} {asset.version} vendored", file=sys.stderr)


if __name__ == "__main__":
    main()
