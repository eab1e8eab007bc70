"""Scale-out on PostgreSQL: several `uproar run` processes share one archive, and still each poll
and each alert is done once.

Two kinds of PostgreSQL session advisory locks, all held on one dedicated connection per process
(``application_name=uproar-coordinator``), so they vanish the moment a process dies or loses its
connection and another process picks them up on its next :meth:`Coordinator.refresh` (every
:data:`REFRESH_EVERY`):

* **one lock per source** — the process holding ``uproar:source:<name>`` is the only one that
  polls that source; a process takes at most its share (sources / live processes, rounded up),
  so processes started together split the sources, and a survivor takes over a dead one's.
  Ownership is sticky: a process that joins later does not take sources away from a live one.
* **one leader lock** — only the leader runs detection and alert delivery. It feeds its detector
  with the complaints the other processes archived (:class:`ArchiveFollower`), so a spike is seen
  whoever polled it.

With SQLite there is one process by construction: :class:`SoloCoordinator` owns everything.
"""

from __future__ import annotations

import logging
import math
import threading
import zlib
from abc import ABC, abstractmethod
from collections import OrderedDict
from collections.abc import Iterable, Sequence
from datetime import UTC, datetime, timedelta
from typing import TYPE_CHECKING, Any

from apscheduler.jobstores.base import JobLookupError
from apscheduler.schedulers.base import BaseScheduler
from apscheduler.triggers.interval import IntervalTrigger
from sqlalchemy import Engine, create_engine, select, text
from sqlalchemy.engine import Connection
from sqlalchemy.pool import NullPool

from connectors.base import Author, Engagement, Mention
from monitor.archive import schema
from monitor.daemon.health import HealthState
from monitor.pipeline import Pipeline, example_of

if TYPE_CHECKING:
    from monitor.daemon.app import App

log = logging.getLogger("uproar.leader")

# How often locks are checked and free ones taken: a dead process's work moves within this.
REFRESH_EVERY = timedelta(seconds=15)
# The coordinator connection's name in pg_stat_activity; live processes are counted by it.
APPLICATION_NAME = "uproar-coordinator"
# Rows archived by other processes are re-read this far back, since PostgreSQL ids are handed out
# before commit (a row with a smaller id can appear after a larger one).
FOLLOW_OVERLAP = timedelta(minutes=2)
# Keys of mentions already fed to the detector, remembered to skip them in the overlap.
FOLLOW_MEMORY = 50_000
# TCP keepalives on the coordinator connection: a host that vanishes loses its locks in ~40s.
KEEPALIVES = {"keepalives": 1, "keepalives_idle": 10, "keepalives_interval": 5,
              "keepalives_count": 5}


def lock_key(name: str) -> int:
    """A stable signed 64-bit advisory-lock key for ``name`` (same in every process)."""
    digest = zlib.crc32(f"uproar:{name}".encode())
    return (0x5550_524F << 32 | digest) - (1 << 63)  # "UPRO" in the high bits, signed


LEADER_KEY = lock_key("leader")


class Coordinator(ABC):
    """Decides, per process, which sources it polls and whether it runs detection and alerts."""

    @abstractmethod
    def refresh(self) -> None:
        """Check held locks and take free ones; called every :data:`REFRESH_EVERY`."""

    @abstractmethod
    def owns(self, source: str) -> bool:
        """Whether this process polls ``source`` now."""

    @property
    @abstractmethod
    def is_leader(self) -> bool:
        """Whether this process runs detection and alert delivery now."""

    def close(self) -> None:  # noqa: B027  (optional: only lock holders have work to release)
        """Release everything (a clean shutdown hands work over at once)."""


class SoloCoordinator(Coordinator):
    """One process (SQLite, or PostgreSQL with a single daemon): it does everything."""

    def refresh(self) -> None:
        return None

    def owns(self, source: str) -> bool:
        return True

    @property
    def is_leader(self) -> bool:
        return True


class PostgresCoordinator(Coordinator):
    """Advisory locks on a dedicated connection; see the module docstring."""

    def __init__(self, engine: Engine, sources: Sequence[str]) -> None:
        self.engine = engine
        self.sources = list(sources)
        self._lock = threading.Lock()
        self._conn: Connection | None = None
        self._engine: Engine | None = None
        self._owned: set[str] = set()
        self._leader = False

    # -- the connection -----------------------------------------------------------------------

    def _connection(self) -> Connection:
        if self._conn is None:
            if self._engine is None:
                # Its own engine: no pool to hand the lock-holding session to anyone else, and
                # keepalives so a vanished host's session (and locks) end within a minute.
                self._engine = create_engine(
                    self.engine.url,
                    poolclass=NullPool,
                    isolation_level="AUTOCOMMIT",
                    connect_args={**KEEPALIVES, "application_name": APPLICATION_NAME},
                )
            self._conn = self._engine.connect()
        return self._conn

    def _drop_connection(self, why: str) -> None:
        if self._owned or self._leader:
            log.warning("coordination connection lost (%s): giving up %s", why,
                        ", ".join(sorted(self._owned)) + (" and leadership" if self._leader
                                                          else ""))
        self._owned.clear()
        self._leader = False
        if self._conn is not None:
            try:
                self._conn.invalidate()
                self._conn.close()
            except Exception:  # already broken; nothing more to release
                pass
            self._conn = None

    def _try_lock(self, conn: Connection, key: int) -> bool:
        return bool(conn.execute(text("SELECT pg_try_advisory_lock(:k)"), {"k": key}).scalar())

    def _live_processes(self, conn: Connection) -> int:
        count = conn.execute(
            text("SELECT count(*) FROM pg_stat_activity WHERE application_name = :name "
                 "AND datname = current_database()"),
            {"name": APPLICATION_NAME},
        ).scalar()
        return max(1, int(count or 1))

    # -- the decisions ------------------------------------------------------------------------

    def refresh(self) -> None:
        with self._lock:
            try:
                conn = self._connection()
                conn.execute(text("SELECT 1"))
                self._refresh(conn)
            except Exception as exc:  # PostgreSQL down or the connection cut: hold nothing
                self._drop_connection(f"{type(exc).__name__}: {str(exc).splitlines()[0]}")

    def _refresh(self, conn: Connection) -> None:
        if not self._leader and self._try_lock(conn, LEADER_KEY):
            self._leader = True
            log.info("this process is now the alerting leader (detection and Slack delivery)")
        share = math.ceil(len(self.sources) / self._live_processes(conn))
        for source in self.sources:
            if len(self._owned) >= share:
                break
            if source not in self._owned and self._try_lock(conn, lock_key(f"source:{source}")):
                self._owned.add(source)
                log.info("this process now polls %s", source)

    def owns(self, source: str) -> bool:
        with self._lock:
            return source in self._owned

    @property
    def is_leader(self) -> bool:
        with self._lock:
            return self._leader

    def close(self) -> None:
        with self._lock:
            if self._conn is not None:
                try:
                    self._conn.execute(text("SELECT pg_advisory_unlock_all()"))
                    self._conn.close()
                except Exception:
                    pass
                self._conn = None
            if self._engine is not None:
                self._engine.dispose()
                self._engine = None
            self._owned.clear()
            self._leader = False


def coordinator_for(engine: Engine, sources: Iterable[str]) -> Coordinator:
    """PostgreSQL: advisory-lock coordination; anything else: one process does everything."""
    if engine.dialect.name == "postgresql":
        return PostgresCoordinator(engine, list(sources))
    return SoloCoordinator()


class ArchiveFollower:
    """Feeds the leader's detector the mentions other processes archived.

    ``remember`` is told the mentions this process ingested itself (its pipeline already fed
    them); :meth:`new_mentions` returns the others' rows fetched since the last call (with
    :data:`FOLLOW_OVERLAP`), each once.
    """

    def __init__(self, engine: Engine, since: datetime) -> None:
        self.engine = engine
        self.since = since
        self._seen: OrderedDict[tuple[str, str], None] = OrderedDict()

    def remember(self, mentions: Iterable[Mention]) -> None:
        for mention in mentions:
            self._mark(mention.key)

    def _mark(self, key: tuple[str, str]) -> bool:
        if key in self._seen:
            return False
        self._seen[key] = None
        while len(self._seen) > FOLLOW_MEMORY:
            self._seen.popitem(last=False)
        return True

    def new_mentions(self, now: datetime) -> list[tuple[Mention, tuple[str, ...], float | None]]:
        """(mention, brands, complaint probability) for each row not seen yet, oldest first."""
        m, mb = schema.mentions, schema.mention_brands
        since = self.since - FOLLOW_OVERLAP
        with self.engine.connect() as conn:
            found = conn.execute(
                select(m.c.id, m.c.source, m.c.source_id, m.c.url, m.c.text, m.c.author_handle,
                       m.c.author_name, m.c.author_followers, m.c.created_at, m.c.likes,
                       m.c.reposts, m.c.replies, m.c.score, m.c.lang, m.c.complaint)
                .where(m.c.fetched_at >= since)
                .order_by(m.c.id)
            ).mappings().all()
            brands: dict[int, list[str]] = {}
            ids = [row["id"] for row in found]
            for start in range(0, len(ids), 500):
                chunk = ids[start : start + 500]
                for mention_id, brand in conn.execute(
                    select(mb.c.mention_id, mb.c.brand).where(mb.c.mention_id.in_(chunk))
                ):
                    brands.setdefault(mention_id, []).append(brand)
        self.since = now
        out = []
        for row in found:
            if not self._mark((row["source"], row["source_id"])):
                continue
            out.append((_mention(row), tuple(brands.get(row["id"], ())), row["complaint"]))
        return out


def _mention(row: Any) -> Mention:
    created = row["created_at"]
    return Mention(
        source=row["source"],
        source_id=row["source_id"],
        url=row["url"],
        text=row["text"],
        author=Author(handle=row["author_handle"], name=row["author_name"],
                      followers=row["author_followers"]),
        created_at=created if created.tzinfo else created.replace(tzinfo=UTC),
        engagement=Engagement(likes=row["likes"], reposts=row["reposts"], replies=row["replies"],
                              score=row["score"]),
        lang=row["lang"],
    )


def feed_detector(
    pipeline: Pipeline, items: Sequence[tuple[Mention, tuple[str, ...], float | None]],
    now: datetime,
) -> int:
    """Observe other processes' fresh complaints in the leader's detector, as its own ingest
    would have (same threshold, same freshness rule); returns how many were observed."""
    observed = 0
    with pipeline._lock:  # the detector is not thread-safe; ingest and evaluate hold this too
        for mention, brands, complaint in items:
            if complaint is None or complaint < pipeline.complaint_threshold:
                continue
            at = min(mention.created_at, now)
            if now - at > pipeline.fresh_within:
                continue
            example = example_of(mention)
            for brand in brands:
                pipeline.monitor.observe(brand, pipeline.brand_names.get(brand, brand), at, example)
            observed += 1
    return observed


class ScaleOut:
    """The daemon's side of coordination: which polls to run, whether to detect and alert.

    With SQLite (or one process) every answer is yes and nothing else happens.
    """

    def __init__(self, app: App, sources: Sequence[str], health: HealthState) -> None:
        self.app = app
        self.sources = list(sources)
        self.health = health
        self.coordinator = coordinator_for(app.archive.engine, self.sources)
        self.shared = isinstance(self.coordinator, PostgresCoordinator)
        self.follower = ArchiveFollower(app.archive.engine, app.clock.now())
        self._was_leader = False
        self._scheduler: BaseScheduler | None = None
        self._owned: set[str] = set()

    def start(self, scheduler: BaseScheduler) -> None:
        if not self.shared:
            return
        self.refresh()
        self._scheduler = scheduler
        scheduler.add_job(self.refresh, IntervalTrigger(seconds=REFRESH_EVERY.total_seconds()),
                          id="coordinate", name="scale-out locks")

    def refresh(self) -> None:
        self.coordinator.refresh()
        now = self.app.clock.now()
        for source in self.sources:
            owned = self.coordinator.owns(source)
            self.health.set_standby(source, not owned, now)
            if owned and source not in self._owned and self._scheduler is not None:
                self._poll_now(source)  # taken over: poll now, not at the next interval
        self._owned = {s for s in self.sources if self.coordinator.owns(s)}
        self.health.beat(now)  # a standby runs no other job: this keeps the watchdog fed

    def _poll_now(self, source: str) -> None:
        assert self._scheduler is not None
        try:
            self._scheduler.modify_job(f"poll:{source}", next_run_time=datetime.now(UTC))
        except JobLookupError:
            log.debug("no poll job for %s yet", source)

    def may_poll(self, source: str) -> bool:
        return self.coordinator.owns(source)

    def after_poll(self, mentions: Iterable[Mention]) -> None:
        if self.shared:
            self.follower.remember(mentions)  # this process's pipeline already observed them

    def lead(self) -> bool:
        """Before detection: whether to run it, having fed in other processes' complaints."""
        leader = self.coordinator.is_leader
        if not (leader and self.shared):
            self._was_leader = leader
            return leader
        now = self.app.clock.now()
        pipeline = self.app.pipeline
        if not self._was_leader:
            self.follower.since = max(self.follower.since, now - pipeline.fresh_within)
            self._was_leader = True
        observed = feed_detector(pipeline, self.follower.new_mentions(now), now)
        if observed:
            log.debug("fed %d complaints archived by other processes to detection", observed)
        return True

    @property
    def is_leader(self) -> bool:
        return self.coordinator.is_leader

    def close(self) -> None:
        self.coordinator.close()
