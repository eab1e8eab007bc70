"""RSS at scale: 200 feeds on three host names (127.0.0.1, localhost — the same local server —
and 127.0.0.2) read with per-host politeness on the injected clock: at most ``per_host``
requests at once and in any ``host_interval`` to one host, and a host's Retry-After holding
back all of that host's feeds while the other hosts are read as usual."""

from __future__ import annotations

import threading
from collections import defaultdict
from collections.abc import Iterator
from dataclasses import dataclass, field
from datetime import UTC, datetime, timedelta

import pytest

from connectors.rss import RSSConnector
from monitor.clock import SimulatedClock
from tests.fakes.feedserver import FeedServer, RecordedRequest, Response

NOW = datetime(2024, 6, 1, 12, 0, tzinfo=UTC)
PER_HOST = 2
INTERVAL = 1.0  # seconds between a lane's requests to one host
# How long a host's first request waits (real time, server side) for its second to arrive:
# both lanes of a host start at once, so this is only reached if they do not.
OVERLAP_WAIT = 2.0
AFTER_429 = 0.2  # seconds (real, server side): see Hosts.handler


def rss(n: int) -> str:
    return (f'<?xml version="1.0"?><rss version="2.0"><channel><title>Feed {n}</title>'
            f"<link>https://news.example/{n}</link><description>d</description>"
            f"<item><title>united lost my bag, story {n}</title>"
            f"<guid>https://news.example/{n}/1</guid>"
            f"<pubDate>Sat, 01 Jun 2024 11:00:00 GMT</pubDate></item></channel></rss>")


@dataclass
class Hosts:
    """The local servers, what each host name got, and the simulated clock."""

    clock: SimulatedClock
    servers: dict[str, FeedServer]
    arrivals: dict[str, list[datetime]] = field(default_factory=lambda: defaultdict(list))
    order: list[tuple[str, str]] = field(default_factory=list)  # (host, path) as they came
    in_flight: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    most: dict[str, int] = field(default_factory=lambda: defaultdict(int))
    most_overall: int = 0
    limited: dict[str, Response] = field(default_factory=dict)  # path -> answer instead
    limited_served: threading.Event = field(default_factory=threading.Event)
    lock: threading.Lock = field(default_factory=threading.Lock)
    second: dict[str, threading.Event] = field(
        default_factory=lambda: defaultdict(threading.Event))

    def handler(self, n: int):  # type: ignore[no-untyped-def]
        def serve(request: RecordedRequest) -> Response:
            host = request.headers["host"].rsplit(":", 1)[0]
            with self.lock:
                self.arrivals[host].append(self.clock.now())
                self.order.append((host, request.path))
                self.in_flight[host] += 1
                self.most[host] = max(self.most[host], self.in_flight[host])
                self.most_overall = max(self.most_overall, sum(self.in_flight.values()))
                first = len(self.arrivals[host]) == 1
                if self.in_flight[host] >= 2:
                    self.second[host].set()
            if first:
                self.second[host].wait(OVERLAP_WAIT)
            elif self.limited_served.is_set() and host == "127.0.0.2" \
                    and request.path not in self.limited:
                # Answers after a 429 take a moment, as a busy host's would, so the lane that
                # got the 429 holds the host back before its other lane asks again.
                threading.Event().wait(AFTER_429)
            with self.lock:
                self.in_flight[host] -= 1
            if request.path in self.limited:
                self.limited_served.set()
                return self.limited[request.path]
            return Response(rss(n))
        return serve

    def feeds(self, layout: dict[str, int]) -> list[str]:
        """``layout``: host name -> how many feeds; returns the feed URLs."""
        urls, n = [], 0
        for host, count in layout.items():
            server = self.servers[host]
            for _ in range(count):
                n += 1
                path = f"/feeds/{n}.xml"
                server.add_handler(path, self.handler(n))
                urls.append(f"http://{host}:{server.base_url.rsplit(':', 1)[1]}{path}")
        return urls

    def sleep(self, seconds: float) -> None:
        """The injected sleep: the simulated clock moves on, nobody waits."""
        with self.lock:
            self.clock.set(self.clock.now() + timedelta(seconds=seconds))


@pytest.fixture
def hosts() -> Iterator[Hosts]:
    with FeedServer() as local, FeedServer("127.0.0.2") as other:
        yield Hosts(SimulatedClock(NOW), {"127.0.0.1": local, "localhost": local,
                                          "127.0.0.2": other})


LAYOUT = {"127.0.0.1": 80, "localhost": 70, "127.0.0.2": 50}


def connector(hosts: Hosts, feeds: list[str]) -> RSSConnector:
    return RSSConnector(feeds, clock=hosts.clock.now, sleep=hosts.sleep, concurrency=6,
                        per_host=PER_HOST, host_interval=INTERVAL, timeout=10)


def test_200_feeds_are_read_politely_per_host(hosts: Hosts) -> None:
    feeds = hosts.feeds(LAYOUT)
    reader = connector(hosts, feeds)
    try:
        result = reader.fetch([], None)
    finally:
        reader.close()
    assert result.problems == []
    assert len(result.mentions) == 200
    assert {host: len(times) for host, times in hosts.arrivals.items()} == LAYOUT
    # Never more than PER_HOST requests at once to one host (and both lanes were used) ...
    assert dict(hosts.most) == dict.fromkeys(LAYOUT, PER_HOST)
    assert hosts.most_overall <= 6
    # ... nor more than PER_HOST in any INTERVAL, on the simulated clock.
    for host, times in hosts.arrivals.items():
        times = sorted(times)
        gaps = [times[i + PER_HOST] - times[i] for i in range(len(times) - PER_HOST)]
        assert min(gaps) >= timedelta(seconds=INTERVAL), host
    # The politeness cost simulated time, not wall-clock time: the busiest host alone needs
    # 80 / 2 - 1 intervals.
    assert hosts.clock.now() - NOW >= timedelta(seconds=39)


def test_retry_after_holds_back_one_host_and_not_the_others(hosts: Hosts) -> None:
    feeds = hosts.feeds(LAYOUT)
    held = [f for f in feeds if "//127.0.0.2:" in f]
    limited_path = "/" + held[4].split("/", 3)[3]
    hosts.limited[limited_path] = Response("slow down", status=429, content_type="text/plain",
                                          headers={"Retry-After": "600"})
    reader = connector(hosts, feeds)
    try:
        first = reader.fetch([], None)
        # Every feed of the other hosts was read; 127.0.0.2 stopped right after its 429
        # (at most the request its other lane already had in flight).
        assert len(hosts.arrivals["127.0.0.1"]) == 80 and len(hosts.arrivals["localhost"]) == 70
        after = hosts.order[hosts.order.index(("127.0.0.2", limited_path)) + 1:]
        assert sum(host == "127.0.0.2" for host, _ in after) <= PER_HOST - 1
        asked = len(hosts.arrivals["127.0.0.2"])
        assert asked <= 5 + PER_HOST  # the 5th was limited; the other lane was 1 ahead
        host_lines = [p for p in first.problems if p.startswith("host 127.0.0.2")]
        assert host_lines == [f"host 127.0.0.2 asked us to slow down ({held[4]} was rate "
                              f"limited): {50 - asked} more of its feeds not polled before "
                              "2024-06-01T12:10:00Z"]
        assert first.cursor["hosts"] == {"127.0.0.2": {"retry_after_until":
                                                       "2024-06-01T12:10:00Z"}}
        assert len(first.mentions) == 150 + asked - 1

        hosts.clock.set(NOW + timedelta(minutes=5))  # the next poll: still held back, quietly
        second = reader.fetch([], first.cursor)
        assert len(hosts.arrivals["127.0.0.2"]) == asked
        assert len(hosts.arrivals["127.0.0.1"]) == 160
        assert second.problems == []
        assert second.cursor["hosts"] == first.cursor["hosts"]

        del hosts.limited[limited_path]
        hosts.limited_served.clear()
        hosts.clock.set(NOW + timedelta(minutes=11))  # past Retry-After: the host is read again
        third = reader.fetch([], second.cursor)
        assert len(hosts.arrivals["127.0.0.2"]) == asked + 50
        assert "hosts" not in third.cursor
        assert {m.source_id for m in third.mentions} >= {
            f"https://news.example/{n}/1" for n in range(151, 201)}
    finally:
        reader.close()
