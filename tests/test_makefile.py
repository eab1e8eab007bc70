"""The README's two commands (and `make demo`) change nothing outside the project: no package
manager runs; the browser tests' system packages are an explicit, separate target."""

from __future__ import annotations

import os
import shutil
import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(shutil.which("make") is None, reason="needs make")


def _planned(*targets: str) -> str:
    """What `make` would run for ``targets`` from scratch (-B: as on a fresh clone), unexecuted."""
    done = subprocess.run(
        ["make", "-n", "-B", *targets], cwd=ROOT, capture_output=True, text=True, check=True
    )
    return done.stdout


@pytest.mark.parametrize("target", ["run", "test", "demo"])
def test_readme_commands_touch_no_system_package_manager(target: str) -> None:
    planned = _planned(target)
    assert "python3 -m venv .venv" in planned
    for tool in ("apt-get", "apt ", "dpkg", "sudo"):
        assert tool not in planned, f"make {target} would run {tool!r}"


def test_browser_deps_is_the_explicit_target() -> None:
    assert "apt-get install -y chromium chromium-driver" in _planned("browser-deps")


def test_browser_tests_skip_naming_the_target(tmp_path: Path) -> None:
    """Without chromium on PATH the browser tests skip, and the reason says how to enable them."""
    bare = tmp_path / "bin"  # a PATH with python only: no chromium, no chromedriver
    bare.mkdir()
    (bare / "python").symlink_to(sys.executable)
    done = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-rs", "-p", "no:cacheprovider",
         "tests/serve/test_dashboard_browser.py", "tests/security/test_dashboard_inert.py"],
        cwd=ROOT, capture_output=True, text=True,
        env={**os.environ, "PATH": str(bare), "COLUMNS": "400"},
    )
    skipped = [line for line in done.stdout.splitlines()
               if line.startswith("SKIPPED") and "chromium" in line]
    assert skipped, done.stdout
    assert all("make browser-deps" in line for line in skipped), skipped


def test_dist_builds_a_wheel_and_the_docs_install_it() -> None:
    planned = _planned("dist")
    assert "pip wheel" in planned and "--wheel-dir dist" in planned
    version = next(line.split('"')[1] for line in (ROOT / "pyproject.toml").read_text().splitlines()
                   if line.startswith("version = "))
    wheel = f"dist/uproar-{version}-py3-none-any.whl"
    for doc in ("README.md", "deploy/uproar.service"):
        text = (ROOT / doc).read_text()
        assert f"pip install {wheel}" in text, doc
        assert "torch==2.13.0 uproar" not in text, f"{doc}: uproar is not on the index"
