"""Tokens never appear in logs or error messages: not ours, not a library's, not a traceback's.

The real CLI polls every source against fake servers that refuse the (wrong) credentials, and
replays alerts into a fake Slack that refuses the bot token; everything it prints is searched
for each secret.
"""

from __future__ import annotations

import io
import json
import logging
import os
import subprocess
import sys
from pathlib import Path

import pytest

from monitor.config import config_from_dict
from monitor.logging_setup import REDACTED, Redactor, config_secrets, configure, redact
from tests.fakes.bluesky import FakeBluesky, fake_bluesky  # noqa: F401
from tests.fakes.feedserver import FeedServer
from tests.fakes.mastodon import FakeMastodon, fake_mastodon  # noqa: F401
from tests.fakes.reddit import FakeReddit, fake_reddit  # noqa: F401
from tests.fakes.slack import FakeSlack
from tests.fakes.twitter import FakeTwitter, fake_twitter  # noqa: F401
from tests.fakes.youtube import FakeYouTube, fake_youtube  # noqa: F401
from tests.test_e2e import DEMO, DEMO_QUERY

ROOT = Path(__file__).resolve().parents[2]

# Wrong credentials shaped like real ones; none may ever be printed.
SECRETS = {
    "slack": "xoxb-2718281828-3141592653-SlackSecretValue0",
    "twitter": "AAAAAAAAAAAAAAAAAAAAAtwitterSecretBearer%2Fvalue",
    "reddit": "redditClientSecretValue42",
    "youtube": "AIzaSyYouTubeSecretKeyValue-0000000000",
    "bluesky": "bsky-pass-word-secret",
    "mastodon": "mastodonSecretAccessToken77",
    "feed": "feedQueryTokenSecret99",
}


def test_redactor_replaces_configured_values_and_credential_shapes() -> None:
    r = Redactor(["hunter2-value"])
    assert r("login with hunter2-value failed") == f"login with {REDACTED} failed"
    assert "xoxb-" not in r("token xoxb-1-2-abcdef rejected")
    assert r("Authorization: Bearer abc.def-ghi") == f"Authorization: Bearer {REDACTED}"
    assert r("postgresql+psycopg://uproar:pw@db/uproar") == (
        f"postgresql+psycopg://uproar:{REDACTED}@db/uproar"
    )
    assert r("GET https://x/y?part=id&key=AIzaSecret&q=1") == (
        f"GET https://x/y?part=id&key={REDACTED}&q=1"
    )
    assert r("access_token=abc123&limit=5") == f"access_token={REDACTED}&limit=5"
    # Short configured values would mangle ordinary words: they are not replaced.
    assert Redactor(["ab"])("a table") == "a table"
    # Ordinary text is left alone.
    assert r("poll rss: 3 new, 0 duplicates") == "poll rss: 3 new, 0 duplicates"


def test_config_secrets_finds_every_credential() -> None:
    config = config_from_dict({
        "brands": [{"key": "acme", "name": "Acme", "query": "acme"}],
        "archive": {"url": "postgresql+psycopg://uproar:db-password-1@db/uproar"},
        "alerts": {"slack": {"token": SECRETS["slack"]}},
        "sources": {
            "twitter": {"bearer_token": SECRETS["twitter"]},
            "reddit": {"client_id": "id", "client_secret": SECRETS["reddit"]},
            "youtube": {"api_key": SECRETS["youtube"]},
            "bluesky": {"handle": "h", "app_password": SECRETS["bluesky"]},
            "mastodon": {"access_token": SECRETS["mastodon"]},
        },
    })
    found = set(config_secrets(config))
    wanted = {"db-password-1"} | {v for k, v in SECRETS.items() if k != "feed"}
    assert wanted <= found
    assert "acme" not in found


@pytest.mark.parametrize("fmt", ["plain", "json"])
def test_log_records_and_tracebacks_are_redacted(fmt: str) -> None:
    stream = io.StringIO()
    configure("DEBUG", fmt, ["SuperSecretValue"], stream=stream)  # type: ignore[arg-type]
    log = logging.getLogger("uproar.test")
    try:
        log.error("auth failed for %s", "SuperSecretValue")
        try:
            raise RuntimeError("401 for https://api/x?token=SuperSecretValue")
        except RuntimeError:
            log.exception("poll failed with xoxb-1-2-zzzzzz")
    finally:
        configure("WARNING", "plain", [])
    out = stream.getvalue()
    assert "SuperSecretValue" not in out and "xoxb-1-2" not in out
    assert out.count(REDACTED) >= 3
    if fmt == "json":
        entries = [json.loads(line) for line in out.splitlines() if line.startswith("{")]
        assert entries[0]["level"] == "ERROR" and entries[0]["logger"] == "uproar.test"
        assert entries[0]["message"] == f"auth failed for {REDACTED}"
        assert "RuntimeError" in entries[1]["exc"]
    assert redact("x xoxb-9-9-abcdef") == f"x {REDACTED}"


def _write(path: Path, text: str) -> Path:
    path.write_text(text)
    return path


def _leaks(output: str) -> list[str]:
    return [name for name, secret in SECRETS.items() if secret in output]


@pytest.mark.parametrize("fmt", ["plain", "json"])
def test_poll_with_rejected_credentials_never_prints_a_token(
    tmp_path: Path,
    fmt: str,
    feed_server: FeedServer,
    fake_twitter: FakeTwitter,  # noqa: F811
    fake_reddit: FakeReddit,  # noqa: F811
    fake_youtube: FakeYouTube,  # noqa: F811
    fake_bluesky: FakeBluesky,  # noqa: F811
    fake_mastodon: FakeMastodon,  # noqa: F811
) -> None:
    feed = feed_server.url(f"/private.rss?token={SECRETS['feed']}")
    config = _write(tmp_path / "config.yaml", f"""\
brands: [{{key: acme, name: Acme, query: acme}}]
archive: {{url: "sqlite:///{tmp_path}/uproar.db"}}
logging: {{level: DEBUG, format: {fmt}}}
alerts:
  slack: {{token: "{SECRETS['slack']}", api_url: "http://127.0.0.1:9/api/"}}
sources:
  rss: {{enabled: true, feeds: ["{feed}"]}}
  twitter: {{enabled: true, api_url: "{fake_twitter.api_url}",
            bearer_token: "{SECRETS['twitter']}"}}
  reddit: {{enabled: true, api_url: "{fake_reddit.api_url}", auth_url: "{fake_reddit.auth_url}",
           client_id: "{fake_reddit.client_id}", client_secret: "{SECRETS['reddit']}"}}
  youtube: {{enabled: true, api_url: "{fake_youtube.api_url}", api_key: "{SECRETS['youtube']}"}}
  bluesky: {{enabled: true, api_url: "{fake_bluesky.api_url}", handle: "{fake_bluesky.handle}",
            app_password: "{SECRETS['bluesky']}"}}
  mastodon: {{enabled: true, api_url: "{fake_mastodon.api_url}",
             access_token: "{SECRETS['mastodon']}", hashtags: [acme]}}
""")
    result = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "poll", "-c", str(config)],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output  # every source failed to authenticate
    assert _leaks(output) == [], output
    # The failures are still explained, source by source.
    for source in ("twitter", "reddit", "youtube", "bluesky", "mastodon"):
        assert f"source {source} failing" in output, output
    assert f"private.rss?token={REDACTED} HTTP 404" in output, output
    # The credentials were really sent (so there was something to leak).
    assert [r.headers.get("authorization") for r in fake_twitter.http.requests] == [
        f"Bearer {SECRETS['twitter']}"
    ]


def test_replay_into_slack_with_a_wrong_token_never_prints_it(
    tmp_path: Path, fake_slack: FakeSlack
) -> None:
    config = _write(tmp_path / "config.yaml", f"""\
brands: [{{key: larkspur, name: Larkspur Airways, query: {DEMO_QUERY}}}]
alerts:
  slack: {{token: "{SECRETS['slack']}", api_url: "{fake_slack.url}"}}
""")
    result = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "replay", str(DEMO), "-c", str(config), "--instant",
         "--throwaway"],
        cwd=ROOT, capture_output=True, text=True, timeout=300,
    )
    output = result.stdout + result.stderr
    assert result.returncode == 1, output
    assert "invalid_auth" in output
    assert _leaks(output) == [], output
    assert {c.token for c in fake_slack.calls("chat.postMessage")} == {SECRETS["slack"]}


def test_cli_error_messages_are_redacted(tmp_path: Path) -> None:
    config = _write(tmp_path / "config.yaml", f"""\
brands: [{{key: acme, name: Acme, query: acme}}]
archive: {{url: "postgresql+psycopg://uproar:{SECRETS['reddit']}@127.0.0.1:9/uproar"}}
""")
    result = subprocess.run(
        [sys.executable, "-m", "monitor.cli", "poll", "-c", str(config)],
        cwd=ROOT, capture_output=True, text=True, timeout=120,
    )
    output = result.stdout + result.stderr
    assert result.returncode != 0
    assert "Traceback" not in output, output
    assert _leaks(output) == [], output
