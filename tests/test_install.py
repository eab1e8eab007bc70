"""Ops' install, as the README gives it: build the wheel, install it into a fresh virtualenv
outside the checkout, validate the example config and classify one line with the bundled model
(which must be inside the wheel). No test reaches the internet: the fresh virtualenv sees this
test run's installed dependencies (a .pth line) instead of downloading them, and `pip check`
proves the wheel's declared requirements are met by them. CI runs it (`.ci/run` sets
UPROAR_TEST_INSTALL=1); elsewhere it skips, saying how to run it."""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import zipfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parent.parent

pytestmark = pytest.mark.skipif(
    not os.environ.get("UPROAR_TEST_INSTALL"),
    reason="builds the wheel and installs it into a fresh virtualenv (about a minute): set "
    "UPROAR_TEST_INSTALL=1 (.ci/run does)",
)


def _run(args: list[str | Path], **kwargs: object) -> subprocess.CompletedProcess[str]:
    done = subprocess.run(
        [str(a) for a in args], capture_output=True, text=True, timeout=1200, **kwargs
    )
    assert done.returncode == 0, f"{args}: {done.stdout[-2000:]}\n{done.stderr[-4000:]}"
    return done


@pytest.mark.timeout(1500)
def test_the_wheel_installs_and_runs_outside_the_checkout(tmp_path: Path) -> None:
    # The wheel, as `make dist` builds it.
    _run([sys.executable, "-m", "pip", "wheel", "--quiet", "--no-deps", "--no-build-isolation",
          "--wheel-dir", tmp_path / "dist", ROOT], cwd=ROOT)
    [wheel] = (tmp_path / "dist").glob("uproar-*.whl")
    inside = set(zipfile.ZipFile(wheel).namelist())
    for bundled in ("models/bundled/heads.npz", "models/bundled/meta.json",
                    "models/bundled/encoder-layers.safetensors", "monitor/demo/config.yaml",
                    "monitor/serve/static/index.html"):
        assert bundled in inside, f"{bundled} is not in {wheel.name}"
    metadata = next(n for n in inside if n.endswith(".dist-info/METADATA"))
    requires = zipfile.ZipFile(wheel).read(metadata).decode()
    for plain in ("tweepy", "praw"):  # ordinary dependencies, not behind an extra
        assert any(line.startswith(f"Requires-Dist: {plain}") and "extra ==" not in line
                   for line in requires.splitlines()), plain

    # A fresh virtualenv. Its dependencies are this run's installed packages, seen through a
    # .pth line (a plain path: their own .pth files, such as the checkout's editable finder,
    # are not run), so nothing is downloaded; the wheel itself goes in with pip, offline.
    # (Without a pip of its own, whose old setuptools would shadow the one torch requires; this
    # run's pip installs into it with --python.)
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", "--without-pip", venv])
    [site] = (venv / "lib").glob("python3.*/site-packages")
    here = [p for p in sys.path if p.endswith("site-packages")]
    (site / "uproar-test-dependencies.pth").write_text("\n".join(here) + "\n")
    pip = [sys.executable, "-m", "pip", "--python", venv / "bin" / "python"]
    _run([*pip, "install", "--quiet", "--no-index", "--no-deps", wheel])
    _run([*pip, "check"])  # every Requires-Dist of the wheel (tweepy, praw, torch, ...) is met

    # Outside the checkout, with nothing of it on the path.
    elsewhere = tmp_path / "etc-uproar"
    elsewhere.mkdir()
    shutil.copy(ROOT / "config.yaml", elsewhere / "config.yaml")
    env = {k: v for k, v in os.environ.items() if k not in ("PYTHONPATH", "VIRTUAL_ENV")}
    env.update(HF_HUB_OFFLINE="1", TRANSFORMERS_OFFLINE="1", PATH=f"{venv / 'bin'}:/usr/bin:/bin")
    uproar = venv / "bin" / "uproar"
    where = _run([venv / "bin" / "python", "-c",
                  "import monitor, models, connectors.twitter, connectors.reddit; "
                  "print(monitor.__file__); print(models.__file__)"],
                 cwd=elsewhere, env=env).stdout.split()
    assert all(path.startswith(str(venv)) for path in where), where

    checked = _run([uproar, "check-config", "-c", "config.yaml"], cwd=elsewhere, env=env)
    assert "brand" in checked.stdout.lower()
    classified = _run([uproar, "classify"], cwd=elsewhere, env=env,
                      input="@united you broke my guitar and nobody cares, worst airline ever\n")
    [line] = classified.stdout.splitlines()
    result = json.loads(line)
    assert result["sentiment"] == "negative" and result["complaint"] > 0.5
