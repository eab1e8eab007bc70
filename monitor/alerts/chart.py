"""The volume chart posted into a new alert's Slack thread: a brand's last 24 hours at a glance.

``volume_series`` counts a brand's mentions and complaints per bucket (15 minutes by default)
with one ``GROUP BY`` on ``mention_brands``, which keeps copies of ``created_at`` and the
complaint score for exactly this kind of scan. ``render_chart`` draws the series as a PNG with
matplotlib's Agg backend: grey bars for every mention, red bars for the complaints among them,
and a vertical line where the alert fired. matplotlib is imported only when a chart is drawn,
and only through ``matplotlib.figure.Figure``, so no pyplot state is created or leaked.
"""

from __future__ import annotations

import io
import re
import warnings
from collections.abc import Sequence
from datetime import UTC, datetime, timedelta
from typing import Any

from sqlalchemy import (
    BigInteger,
    Engine,
    Integer,
    case,
    cast,
    extract,
    func,
    literal_column,
    select,
)

from monitor.archive.schema import mention_brands
from monitor.untrusted import displayable

#: One bucket of the series: (bucket start, aware UTC), mentions, complaints.
VolumeBucket = tuple[datetime, int, int]

EPOCH = datetime(1970, 1, 1, tzinfo=UTC)
# 1000x400 px: wide enough for 96 bars, and still legible when Slack shrinks it to a thumbnail.
FIGSIZE = (10.0, 4.0)
DPI = 100
# Untrusted brand names are cut to this many characters in the title.
MAX_TITLE_CHARS = 90

MENTION_COLOR = "#b8c2cc"
COMPLAINT_COLOR = "#d1242f"
MARKER_COLOR = "#1f2328"


def _utc(when: datetime) -> datetime:
    """SQLite hands datetimes back naive; every time the archive stores is UTC."""
    return when.replace(tzinfo=UTC) if when.tzinfo is None else when.astimezone(UTC)


def bucket_floor(when: datetime, bucket: timedelta) -> datetime:
    """The start of the bucket holding ``when`` (buckets are aligned to the Unix epoch)."""
    return EPOCH + ((_utc(when) - EPOCH) // bucket) * bucket


def series_end(fired_at: datetime, bucket: timedelta) -> datetime:
    """The end of the bucket in which the alert fired: the chart's right edge."""
    return bucket_floor(fired_at, bucket) + bucket


def _epoch_seconds(dialect: str) -> Any:
    """``mention_brands.created_at`` as whole seconds since the epoch, in this dialect's SQL."""
    if dialect == "sqlite":  # stored as 'YYYY-MM-DD HH:MM:SS.ffffff', UTC wall time
        return cast(func.strftime("%s", mention_brands.c.created_at), Integer)
    return cast(func.floor(extract("epoch", mention_brands.c.created_at)), BigInteger)


def volume_series(
    engine: Engine,
    brand: str,
    end: datetime,
    hours: int = 24,
    bucket: timedelta = timedelta(minutes=15),
    complaint_threshold: float = 0.5,
) -> list[VolumeBucket]:
    """Mentions and complaints of ``brand`` per ``bucket`` over the ``hours`` before ``end``.

    Returns every bucket of ``[end - hours, end)``, oldest first, empty ones as zeros; bucket
    starts are aware UTC datetimes. A complaint is a mention whose complaint score is at least
    ``complaint_threshold`` (unclassified mentions count as mentions only). ``end`` should sit on
    a bucket boundary (see ``series_end``); buckets are counted from ``end - hours`` either way.
    """
    step = int(bucket.total_seconds())
    if step <= 0 or hours <= 0:
        raise ValueError("volume_series needs a positive bucket and a positive number of hours")
    end = _utc(end)
    start = end - timedelta(hours=hours)
    count = int((end - start).total_seconds()) // step
    start_epoch = int((start - EPOCH).total_seconds())
    # Whole numbers we computed, inlined rather than bound: PostgreSQL would otherwise see the
    # SELECT's and the GROUP BY's parameters as different expressions.
    index = (
        (_epoch_seconds(engine.dialect.name) - literal_column(str(start_epoch), BigInteger))
        // literal_column(str(step), BigInteger)
    ).label("bucket")
    complaint = case((mention_brands.c.complaint >= complaint_threshold, 1), else_=0)
    query = (
        select(index, func.count().label("mentions"), func.sum(complaint).label("complaints"))
        .where(
            mention_brands.c.brand == brand,
            mention_brands.c.created_at >= start,
            mention_brands.c.created_at < end,
        )
        .group_by(index)
    )
    mentions = [0] * count
    complaints = [0] * count
    with engine.connect() as conn:
        for row in conn.execute(query):
            i = int(row.bucket)
            if 0 <= i < count:  # sub-second edges can round either way; never index outside
                mentions[i] += int(row.mentions)
                complaints[i] += int(row.complaints or 0)
    return [(start + i * bucket, mentions[i], complaints[i]) for i in range(count)]


def _plain(title: str) -> str:
    """Untrusted text as one short line (no invisible characters; controls and newlines are
    spaces)."""
    flat = re.sub(r"[\x00-\x1f\x7f-\x9f]+", " ", displayable(title)).strip()
    return flat if len(flat) <= MAX_TITLE_CHARS else flat[: MAX_TITLE_CHARS - 1] + "…"


def render_chart(
    series: Sequence[VolumeBucket],
    *,
    title: str,
    marker_at: datetime | None,
    bucket: timedelta | None = None,
) -> bytes:
    """The series as a ~1000x400 PNG: mentions, the complaints among them, the alert's time.

    ``title`` may hold untrusted text (a brand name from config): it is drawn as plain text,
    never as matplotlib mathtext. ``bucket`` is the bar width (by default the series' step).
    """
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.dates as mdates
    from matplotlib.backends.backend_agg import FigureCanvasAgg
    from matplotlib.figure import Figure
    from matplotlib.ticker import MaxNLocator

    if bucket is None:
        bucket = series[1][0] - series[0][0] if len(series) > 1 else timedelta(minutes=15)
    starts = [float(mdates.date2num(_utc(s[0]))) for s in series]  # days since the epoch
    mentions = [s[1] for s in series]
    complaints = [s[2] for s in series]
    step = bucket / timedelta(days=1)  # matplotlib dates are in days
    width = step * 0.9

    fig = Figure(figsize=FIGSIZE, dpi=DPI, layout="constrained")
    FigureCanvasAgg(fig)
    ax = fig.add_subplot()
    ax.bar(starts, mentions, width=width, align="edge", color=MENTION_COLOR, label="mentions")
    ax.bar(starts, complaints, width=width, align="edge", color=COMPLAINT_COLOR, label="complaints")
    if marker_at is not None:
        ax.axvline(
            float(mdates.date2num(_utc(marker_at))),
            color=MARKER_COLOR,
            linewidth=2.5,
            linestyle="--",
            label="alert",
        )
    if starts:
        ax.set_xlim(starts[0], starts[-1] + step * 1.5)  # room for a line at the edge
    ax.set_ylim(bottom=0, top=max([*mentions, 1]) * 1.3)  # headroom for the legend
    ax.xaxis.set_major_locator(mdates.HourLocator(byhour=range(0, 24, 3), tz=UTC))
    ax.xaxis.set_major_formatter(mdates.DateFormatter("%H:%M", tz=UTC))
    ax.yaxis.set_major_locator(MaxNLocator(integer=True))
    ax.tick_params(labelsize=13)
    ax.set_xlabel("UTC", fontsize=13)
    ax.set_ylabel(f"per {_bucket_label(bucket)}", fontsize=13)
    ax.spines[["top", "right"]].set_visible(False)
    ax.grid(axis="y", alpha=0.3)
    ax.legend(loc="upper left", ncols=3, fontsize=12, frameon=False)
    ax.set_title(_plain(title), fontsize=17, loc="left", parse_math=False)

    out = io.BytesIO()
    with warnings.catch_warnings():
        # A brand name with characters the bundled font lacks is drawn with boxes, not an error.
        warnings.filterwarnings("ignore", message=r"Glyph .* missing from")
        fig.savefig(out, format="png", dpi=DPI)
    return out.getvalue()


def _bucket_label(bucket: timedelta) -> str:
    minutes = int(bucket.total_seconds() // 60)
    if minutes and minutes % 60 == 0:
        hours = minutes // 60
        return "hour" if hours == 1 else f"{hours} h"
    return f"{minutes} min" if minutes else f"{int(bucket.total_seconds())} s"


def chart_title(brand_name: str, hours: int = 24) -> str:
    """The chart's title, also the uploaded file's title in Slack (so made inert here)."""
    return f"{displayable(brand_name, one_line=True)}: mentions and complaints, last {hours} h"
