"""``uproar serve``: the read-only HTTP API and the dashboard, on uvicorn."""

from __future__ import annotations

import socket
import sys
from pathlib import Path

import click

from monitor.cli.common import CONFIG_OPTION

DEFAULT_LISTEN = "127.0.0.1:8080"


@click.command("serve")
@CONFIG_OPTION
@click.option(
    "--listen",
    default=None,
    metavar="HOST:PORT",
    help=f"Address to serve on (default: serve.listen from the config, else {DEFAULT_LISTEN}). "
    "Beyond 127.0.0.1 a token (serve.token) is required.",
)
@click.option(
    "--archive",
    "archive_url",
    default=None,
    metavar="URL",
    help="Archive to read (default: archive.url from the config).",
)
def serve(config_path: Path, listen: str | None, archive_url: str | None) -> None:
    """Serve the archive read-only: the HTTP API (/api/..., schema at /openapi.json) and the
    dashboard (/) with search, volume and sentiment charts, stories and mention details.

    With serve.token set in the config, every /api request needs the header
    "Authorization: Bearer <token>" (the dashboard asks for it once). Without a token Uproar
    only serves on a loopback address. A SQLite archive is opened read-only.

    \b
    Examples:
      uproar serve -c config.yaml                       # http://127.0.0.1:8080/
      UPROAR_SERVE_TOKEN=s3cret uproar serve -c config.yaml --listen 0.0.0.0:8080
      curl -H "Authorization: Bearer s3cret" "http://host:8080/api/mentions?text=refund&since=7d"
    """
    import uvicorn

    from monitor.archive import Archive
    from monitor.config import load_config
    from monitor.serve import check_listen, create_app

    config = load_config(config_path).config
    listen = listen or config.serve.listen
    token = config.serve.token
    host, port = check_listen(listen, token)
    from monitor.replay import archive_place

    chosen = archive_url or config.archive.url
    archive = Archive(serving_url(chosen))
    try:
        app = create_app(
            archive, token=token, complaint_threshold=config.classifier.complaint_threshold
        )
        sock = _bind(host, port)
        shown = f"[{host}]" if ":" in host else host
        click.echo(
            f"uproar: serving {archive_place(chosen)} (read-only) on "
            f"http://{shown}:{sock.getsockname()[1]}/ "
            f"({'token required' if token else 'no token: loopback only'})",
            err=True,
        )
        sys.stderr.flush()
        server = uvicorn.Server(
            uvicorn.Config(app, log_level=config.logging.level.lower(), access_log=False)
        )
        server.run(sockets=[sock])
    finally:
        archive.close()


def serving_url(url: str) -> str:
    """``url`` opened so that nothing can write: SQLite ``mode=ro``; PostgreSQL sessions whose
    transactions are read-only (``default_transaction_read_only``)."""
    from sqlalchemy.engine import make_url
    from sqlalchemy.exc import ArgumentError

    from monitor.cli.analyst import read_only_url

    try:
        parsed = make_url(url)
    except ArgumentError:
        return url  # Archive explains what a database URL looks like
    if parsed.get_backend_name() != "postgresql":
        return read_only_url(url)
    options = str(parsed.query.get("options", ""))
    options = f"{options} -c default_transaction_read_only=on".strip()
    return parsed.update_query_dict({"options": options}).render_as_string(hide_password=False)


def _bind(host: str, port: int) -> socket.socket:
    """A listening socket (port 0: any free port); connections queue until uvicorn accepts."""
    from monitor.serve import ServeError

    family = socket.AF_INET6 if ":" in host else socket.AF_INET
    sock = socket.socket(family, socket.SOCK_STREAM)
    sock.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
    try:
        sock.bind((host, port))
    except OSError as exc:
        sock.close()
        raise ServeError(f"cannot listen on {host}:{port}: {exc.strerror or exc}") from exc
    sock.listen(128)
    return sock
