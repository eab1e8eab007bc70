"""`uproar alerts` against a live daemon: `uproar run` in a subprocess delivers to the fake
Slack on 127.0.0.1 while the CLI acknowledges through the same archive."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
from pathlib import Path
from typing import Any

from click.testing import CliRunner

from monitor.alerts import IncidentBook
from monitor.archive import Archive
from monitor.cli import cli
from monitor.clock import SystemClock
from tests.alerts.test_alerts import all_texts
from tests.alerts.test_alerts import signal as alert_signal
from tests.fakes.slack import FakeSlack
from tests.paths import ROOT

ROOT = ROOT


def texts(message: dict[str, Any]) -> str:
    return " ".join(all_texts(message["blocks"]))


def test_alerts_ack_reaches_a_running_daemon(tmp_path: Path, fake_slack: FakeSlack) -> None:
    db = f"sqlite:///{tmp_path / 'uproar.db'}"
    config = tmp_path / "config.yaml"
    config.write_text(
        f"""\
brands: [{{key: united, name: United Airlines, query: united}}]
archive: {{url: "{db}"}}
http: {{listen: "127.0.0.1:0"}}
alerts:
  slack: {{token: "{fake_slack.token}", channel: "#brand-alerts", api_url: "{fake_slack.url}"}}
  policies:
    pr: {{levels: [{{mention: [S0PRTEAM]}}, {{after: 15m, mention: [U0LEAD]}}]}}
  routes: [{{policy: pr}}]
sources: {{rss: {{enabled: false}}}}
"""
    )
    runner = CliRunner()
    with Archive(db) as archive:  # detection found a story a moment ago
        from monitor.alerts.rules import Router
        from monitor.config import load_config

        rules = load_config(config).config.alerts
        book = IncidentBook(archive.engine, SystemClock(), router=Router(rules, "#brand-alerts"))
        incident = book.record(alert_signal(SystemClock().now())).incident_id

    proc = subprocess.Popen(
        [sys.executable, "-m", "monitor.cli", "run", "-c", str(config)],
        cwd=ROOT, env={**os.environ, "PYTHONUNBUFFERED": "1"},
        stderr=subprocess.PIPE, text=True,
    )
    try:
        assert fake_slack.wait_for(lambda f: len(f.messages) >= 1, timeout=120)
        parent = fake_slack.messages[0]
        assert "<!subteam^S0PRTEAM>" in texts(parent)

        listed = runner.invoke(cli, ["alerts", "list", "-c", str(config)])
        assert f"{incident:>5}  open" in listed.output  # its escalation timer is running
        acked = runner.invoke(cli, ["alerts", "ack", str(incident), "-c", str(config),
                                    "--by", "dave"])
        assert acked.exit_code == 0, acked.output

        def acknowledged(fake: FakeSlack) -> bool:
            replies = fake.thread(parent["ts"])
            return any("Acknowledged by *dave*" in texts(r) for r in replies) and (
                "acknowledged by dave" in texts(parent)
            )

        assert fake_slack.wait_for(acknowledged, timeout=60)
        listed = runner.invoke(cli, ["alerts", "list", "-c", str(config)])
        assert "acknowledged" in listed.output and "by dave" in listed.output
        proc.send_signal(signal.SIGTERM)
        log = proc.communicate(timeout=60)[1]
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.communicate()
    assert proc.returncode == 0, log
    assert "stopped cleanly" in log
