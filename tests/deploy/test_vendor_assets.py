"""deploy/local/vendor_assets.py: a pinned tarball fetched by name with npm's own client (a stand-in npm
here), used only with the sha256 pinned for it; once cached and in place, a run needs neither npm nor the
network and touches nothing."""

from __future__ import annotations

import hashlib
import io
import re
import tarfile
from pathlib import Path
from types import ModuleType

import pytest

from tests.support import ROOT, vendor_assets

FILES = {"package/dist/lib.js": b"console.log('lib');\n", "package/LICENSE": b"MIT\n"}


def tarball(files: dict[str, bytes]) -> bytes:
    data = io.BytesIO()
    with tarfile.open(fileobj=data, mode="w:gz") as tar:
        for name, content in files.items():
            member = tarfile.TarInfo(name)
            member.size = len(content)
            tar.addfile(member, io.BytesIO(content))
    return data.getvalue()


@pytest.fixture
def module(monkeypatch: pytest.MonkeyPatch, tmp_path: Path) -> ModuleType:
    """The script on a scratch root, with an npm on PATH that logs its arguments and packs ``lib.tgz``."""
    script = vendor_assets()
    monkeypatch.setattr(script, "ROOT", tmp_path)
    monkeypatch.setattr(script, "CACHE", tmp_path / ".cache" / "npm")
    (tmp_path / "lib.tgz").write_bytes(tarball(FILES))
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    npm = bin_dir / "npm"
    npm.write_text(f"""#!/bin/sh
echo "$@" >> {tmp_path}/npm.log
[ "$1" = pack ] && [ "$3" = --pack-destination ] || exit 2
exec /bin/cp {tmp_path}/lib.tgz "$4/lib-1.0.0.tgz"
""")
    npm.chmod(0o755)
    monkeypatch.setenv("PATH", str(bin_dir))
    return script


def pin(module: ModuleType, sha256: str) -> None:
    module.ASSETS[:] = [module.Asset(package="lib", version="1.0.0", sha256=sha256,
                                     files={"package/dist/lib.js": "static/vendor/lib.js",
                                            "package/LICENSE": "static/vendor/lib-LICENSE"})]


def npm_calls(root: Path) -> list[str]:
    log = root / "npm.log"
    return log.read_text().splitlines() if log.exists() else []


def test_fetched_once_by_name_then_used_from_the_cache(module: ModuleType, tmp_path: Path,
                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "ASSETS", [])
    pin(module, hashlib.sha256((tmp_path / "lib.tgz").read_bytes()).hexdigest())
    module.main()
    [call] = npm_calls(tmp_path)
    assert call.startswith("pack lib@1.0.0 --pack-destination ") and call.endswith(" --ignore-scripts")
    assert (tmp_path / "static/vendor/lib.js").read_bytes() == FILES["package/dist/lib.js"]
    assert (tmp_path / "static/vendor/lib-LICENSE").read_bytes() == FILES["package/LICENSE"]
    assert [p.name for p in (tmp_path / ".cache/npm").iterdir()] == ["lib-1.0.0.tgz"]  # no scratch left

    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))  # no npm now: nothing may need it
    vendored = tmp_path / "static/vendor/lib.js"
    before = vendored.stat().st_mtime_ns
    module.main()
    assert vendored.stat().st_mtime_ns == before  # in place: untouched
    vendored.unlink()
    module.main()  # vendored again, from the cache
    assert vendored.read_bytes() == FILES["package/dist/lib.js"]
    assert len(npm_calls(tmp_path)) == 1


def test_a_tarball_with_another_sha256_is_not_used(module: ModuleType, tmp_path: Path,
                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "ASSETS", [])
    pin(module, "0" * 64)
    with pytest.raises(SystemExit, match=r"expected 0{64}; not used"):
        module.main()
    assert not list((tmp_path / ".cache/npm").iterdir())
    assert not (tmp_path / "static").exists()


def test_without_npm_it_says_what_is_missing(module: ModuleType, tmp_path: Path,
                                             monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(module, "ASSETS", [])
    pin(module, "0" * 64)
    monkeypatch.setenv("PATH", str(tmp_path / "nowhere"))
    with pytest.raises(SystemExit, match=re.escape("npm is needed to fetch lib@1.0.0")):
        module.main()


def test_the_script_names_no_address_to_fetch_from() -> None:
    source = (ROOT / "deploy/local/vendor_assets.py").read_text()
    assert "://" not in source and "urllib" not in source
