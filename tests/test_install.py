"""Ops' install, as the README gives it: build the wheel, install it into a fresh virtualenv
outside the checkout, validate the example config and classify one line with the bundled model
(which must be inside the wheel). Slow (pip installs every dependency): CI runs it
(`.ci/run` sets UPROAR_TEST_INSTALL=1); elsewhere it skips, saying how to run it."""

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
    reason="installs the wheel into a fresh virtualenv (pip fetches the dependencies, a few "
    "minutes): set UPROAR_TEST_INSTALL=1 (.ci/run does)",
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

    # A fresh virtualenv; torch first (its CPU build, found through PIP_FIND_LINKS), then the
    # wheel with everything it needs.
    venv = tmp_path / "venv"
    _run([sys.executable, "-m", "venv", venv])
    pip = venv / "bin" / "pip"
    _run([pip, "install", "--quiet", "torch==2.13.0"])
    _run([pip, "install", "--quiet", wheel])

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
