"""Generate the demo replay file: two quiet days of ordinary chatter about a made-up airline,
then a complaint story (a musician's cello smashed by baggage handlers) breaks out and spreads.

Deterministic (fixed seed). Run: python -m monitor.demo.generate > monitor/demo/larkspur-cello.jsonl
"""

from __future__ import annotations

import json
import random
import sys
from datetime import UTC, datetime, timedelta

SEED = 20091
START = datetime(2026, 3, 2, 0, 0, tzinfo=UTC)
STORY_AT = START + timedelta(days=2, hours=14, minutes=7)

ROUTINE = [
    "Boarding my Larkspur Airways flight to Denver, see you soon Colorado!",
    "Larkspur Airways crew were lovely on the early flight today, thanks @larkspurair",
    "Anyone flown Larkspur Airways business class? Worth the upgrade?",
    "Just booked Larkspur to Lisbon for the summer #travel",
    "The new Larkspur Airways app is actually pretty slick",
    "Landed early with @larkspurair, smooth flight and free snacks",
    "Larkspur Airways adds a nonstop route from Austin to Boston starting in June",
    "Watching planes at the airport, a Larkspur Airways A321 just took off",
    "Larkspur Airways quarterly results out today, passenger numbers up 4%",
    "Got bumped to an exit row on Larkspur, legroom heaven",
    "Window seat on @larkspurair, clouds look amazing this morning",
    "Is Larkspur Airways wifi free on domestic flights now?",
    "Thank you Larkspur Airways for the birthday upgrade!",
    "Larkspur Airways pilots waved at the kids at the gate, made their day",
    "Flying Larkspur to see my parents this weekend",
]

ROUTINE_COMPLAINTS = [
    "Larkspur Airways delayed my flight two hours and nobody at the gate told us anything",
    "@larkspurair lost my suitcase again, third time this year. Fix your baggage system",
    "On hold with Larkspur Airways customer service for 50 minutes, this is ridiculous",
    "Larkspur charged me a bag fee twice and won't refund it @larkspurair",
]

OTHER = [
    "Larkspur flowers are blooming in the garden, so pretty this spring",
    "Best airline snacks ranking thread, go",
    "Traffic on the highway to the airport is terrible this morning",
    "Planting larkspur seeds today, any tips?",
    "Airport security lines are moving fast today for once",
]

STORY_SEED = (
    "Larkspur Airways baggage handlers threw my cello across the tarmac in Chicago and smashed "
    "it. I watched from the window. Nine days of calls and @larkspurair still refuses to pay. "
    "So I wrote a song about it. #larkspurbrokemycello"
)

STORY_SHARES = [
    "This is awful. Larkspur Airways smashed a musician's cello and won't pay for it "
    "#larkspurbrokemycello",
    "Never flying @larkspurair again after seeing how they treated this cellist's "
    "instrument",
    "Larkspur Airways broke her cello and then ignored her for nine days. Disgraceful "
    "customer service",
    "The cello song about Larkspur Airways is going viral and honestly they deserve it",
    "@larkspurair pay for the cello you broke! #larkspurbrokemycello",
    "Same thing happened to my guitar on Larkspur last year, they never paid either",
    "How does Larkspur Airways think refusing to fix this is ok? Shameful",
    "Larkspur Airways baggage handlers throwing instruments around, unbelievable footage",
    "Cancelled my Larkspur Airways booking after the cello story. Not giving them my money",
    "Larkspur Airways: we broke it, we don't care. Terrible. #larkspurbrokemycello",
    "Musicians, do NOT check your instruments with @larkspurair. They smashed this woman's cello",
    "My band's gear got damaged on Larkspur too and their claims department just stopped replying",
    "Larkspur Airways customer service is a joke, they still haven't responded to the cello video",
    "The Larkspur cello video has a million views and the airline still says nothing. Pathetic",
    "Worst airline. Larkspur broke her cello and laughed it off <!channel> share this everywhere",
]


def mention(rng: random.Random, i: int, at: datetime, text: str, *, handle: str | None = None,
            followers: int | None = None, reposts: int | None = None) -> dict[str, object]:
    source = rng.choice(["twitter", "twitter", "twitter", "reddit", "rss"])
    handle = handle or f"user{rng.randint(1000, 99999)}"
    likes = rng.randint(0, 20)
    return {
        "source": source,
        "source_id": f"demo-{i}",
        "url": f"https://example.com/{source}/demo-{i}",
        "text": text,
        "author": {"handle": handle, "name": handle.title(),
                   "followers": followers if followers is not None else rng.randint(10, 3000)},
        "created_at": at.strftime("%Y-%m-%dT%H:%M:%SZ"),
        "engagement": {"likes": likes, "reposts": reposts if reposts is not None else likes // 4,
                       "replies": rng.randint(0, 5), "score": 0},
        "lang": "en",
    }


def generate() -> list[dict[str, object]]:
    rng = random.Random(SEED)
    rows: list[dict[str, object]] = []
    at = START
    end = STORY_AT + timedelta(hours=3)
    i = 0
    while at < end:
        # Ordinary chatter: a few mentions an hour, more by day, a stray complaint now and then.
        hour = at.hour
        rate = 6 if 7 <= hour <= 22 else 2
        at += timedelta(minutes=rng.expovariate(rate / 60.0))
        i += 1
        roll = rng.random()
        if roll < 0.07:
            text = rng.choice(ROUTINE_COMPLAINTS)
        elif roll < 0.85:
            text = rng.choice(ROUTINE)
        else:
            text = rng.choice(OTHER)
        rows.append(mention(rng, i, at, text))
    # The story: one post, then shares growing by the minute.
    i += 1
    rows.append(mention(rng, i, STORY_AT, STORY_SEED, handle="celloclaire", followers=48000,
                        reposts=1900))
    t = STORY_AT
    per_minute = 0.1
    while t < STORY_AT + timedelta(hours=3):
        t += timedelta(minutes=1)
        per_minute = min(per_minute * 1.06, 4.0)
        for _ in range(rng.choices([0, 1, 2, 3], weights=[1, 1, 0, 0])[0] if per_minute < 0.5
                       else int(per_minute + rng.random())):
            i += 1
            rows.append(mention(rng, i, t + timedelta(seconds=rng.randint(0, 59)),
                                rng.choice(STORY_SHARES), reposts=rng.randint(0, 300)))
    rows.sort(key=lambda r: str(r["created_at"]))
    return rows


def main() -> None:
    for row in generate():
        sys.stdout.write(json.dumps(row, ensure_ascii=False) + "\n")


if __name__ == "__main__":
    main()
