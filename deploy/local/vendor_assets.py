#!/usr/bin/env python3
"""Vendor the browser assets the services serve: fetch each pinned npm tarball once, check its sha256, and
copy the files the pages load into static dirs (gitignored; never fetched at run time).

    python3 deploy/local/vendor_assets.py      # `make install` and deploy/Dockerfile run it

A tarball is fetched by name with npm's own client (``npm pack NAME@VERSION``), from wherever the machine's
npm is set up to fetch packages; whatever it brings must have the sha256 pinned here. Tarballs are cached in
``.cache/npm/``; a run with everything in place touches nothing and needs neither npm nor the network.
Standard library only, so it runs in the slim image before the project is installed.
"""

from __future__ import annotations

import hashlib
import io
import shutil
import subprocess
import sys
import tarfile
import tempfile
from dataclasses import dataclass
from pathlib import Path

ROOT = Path(__file__).resolve().parents[2]
CACHE = ROOT / ".cache" / "npm"
DOCS_VENDOR = "shared/http/static/vendor"  # what every service's /docs and /redoc load (shared.http.apidocs)


@dataclass(frozen=True)
class Asset:
    package: str
    version: str
    sha256: str  # of the tarball
    files: dict[str, str]  # path inside the tarball -> path under ROOT

    @property
    def spec(self) -> str:
        return f"{self.package}@{self.version}"

    @property
    def cached(self) -> Path:
        return CACHE / f"{self.package.replace('/', '_')}-{self.version}.tgz"


ASSETS = [
    Asset(
        package="chart.js", version="4.5.1",
        sha256="f540d98468457ac7a0aabb32006dfb066297e096c5ea063a5d80aa973d1c337a",
        files={"package/dist/chart.umd.min.js": "services/tiers/static/vendor/chart.umd.min.js",
               "package/LICENSE.md": "services/tiers/static/vendor/chart.js-LICENSE.md"},
    ),
    Asset(
        package="swagger-ui-dist", version="5.36.0",
        sha256="685a2b38b5d6eab2dbc096a8596db11cc7409cdb671d2e3bec8f9b017d0d566b",
        files={"package/swagger-ui-bundle.js": f"{DOCS_VENDOR}/swagger-ui-bundle.js",
               "package/swagger-ui.css": f"{DOCS_VENDOR}/swagger-ui.css",
               "package/LICENSE": f"{DOCS_VENDOR}/swagger-ui-LICENSE",
               "package/NOTICE": f"{DOCS_VENDOR}/swagger-ui-NOTICE",
               "package/swagger-ui-bundle.js.LICENSE.txt": f"{DOCS_VENDOR}/swagger-ui-bundle.js.LICENSE.txt"},
    ),
    Asset(
        package="redoc", version="3.0.1",
        sha256="d9666cd5a1cb6c08c6d23f2433b025774a11354823d70357c8f506b988dac189",
        files={"package/bundles/redoc.standalone.js": f"{DOCS_VENDOR}/redoc.standalone.js",
               "package/LICENSE": f"{DOCS_VENDOR}/redoc-LICENSE"},
    ),
]


def npm_pack(asset: Asset, folder: Path) -> bytes:
    """The package's tarball as ``npm pack`` brings it into ``folder``."""
    npm = shutil.which("npm")
    if npm is None:
        raise SystemExit(f"vendor_assets: npm is needed to fetch {asset.spec} once (Debian: apt-get install npm)")
    print(f"vendor_assets: npm pack {asset.spec}", file=sys.stderr)
    result = subprocess.run([npm, "pack", asset.spec, "--pack-destination", str(folder), "--ignore-scripts"],
                            cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True, check=False)
    tarballs = list(folder.glob("*.tgz"))
    if result.returncode != 0 or len(tarballs) != 1:
        raise SystemExit(f"vendor_assets: npm pack {asset.spec} failed ({result.returncode}):\n{result.stderr[-2000:]}")
    return tarballs[0].read_bytes()


def fetch(asset: Asset) -> bytes:
    if asset.cached.exists() and hashlib.sha256(asset.cached.read_bytes()).hexdigest() == asset.sha256:
        return asset.cached.read_bytes()
    CACHE.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=CACHE, prefix="pack-") as folder:
        data = npm_pack(asset, Path(folder))
    digest = hashlib.sha256(data).hexdigest()
    if digest != asset.sha256:
        raise SystemExit(f"vendor_assets: {asset.spec} has sha256 {digest}, expected {asset.sha256}; not used")
    asset.cached.write_bytes(data)
    return data


def vendor(asset: Asset) -> None:
    with tarfile.open(fileobj=io.BytesIO(fetch(asset)), mode="r:gz") as tar:
        for member, target in asset.files.items():
            source = tar.extractfile(member)
            if source is None:
                raise SystemExit(f"vendor_assets: {member} is not a file in {asset.spec}")
            content = source.read()
            path = ROOT / target
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_bytes(content)


def in_place(asset: Asset) -> bool:
    """Whether every file is there, as extracted from the cached tarball of the pinned version."""
    if not asset.cached.exists() or not all((ROOT / target).exists() for target in asset.files.values()):
        return False
    data = asset.cached.read_bytes()
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
