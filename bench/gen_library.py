"""Write a synthetic library of N archives straight into Redis, in LANraragi's layout.

Run from the repository root::

    .venv/bin/python bench/gen_library.py --redis unix:///tmp/r.sock --count 100000 \\
        --content /tmp/lib [--flush] [--seed 1]

Tags follow issue 5's acceptance: per archive Poisson(7) general tags clamped to 1..20, drawn by
Zipf(1.1) rank from a pool of 100,000; artist Poisson(0.6) clamped to 0..1 from 5,000; series
Poisson(0.2) from 10,000; source Poisson(0.4) from 3,000; and a ``date_added``. ``--untagged``
makes that fraction of archives carry no general tag (0 by default, as the acceptance says).
Every archive's ``file`` is a hard link (in ``--content``) to one small real cbz, so "the file
exists" holds for all of them. A few tankoubons and categories are written too, and the search
database (DB3) as ``build_stat_hashes`` leaves it, so search is ready at once.

Commands go over one blocking socket, pipelined in batches; replies are parsed with hiredis.
"""

from __future__ import annotations

import argparse
import hashlib
import io
import json
import math
import os
import random
import socket
import sys
import time
import zipfile
from itertools import accumulate
from pathlib import Path
from typing import Sequence
from urllib.parse import urlsplit

import hiredis

sys.path.insert(0, str(Path(__file__).resolve().parent.parent))

from lrrd.store.archives import is_untagged  # noqa: E402

SYLLABLES = ("ka", "ri", "no", "sa", "to", "mi", "ru", "ne", "ko", "ha", "yu", "ki", "ta", "shi",
             "ma", "ra", "na", "se", "fu", "mo", "ga", "zu", "be", "po", "ti", "lo", "ve", "qua",
             "dor", "fen", "gal", "hem", "ix", "jun", "kel", "lum", "mar", "nov", "orb", "pel",
             "quin", "rhe", "sol", "tor", "umb", "vex", "wyn", "xan", "yor", "zel")
WORDS = ("Blue", "Night", "Summer", "Winter", "Cat", "Dream", "Ocean", "Star", "School", "Garden",
         "Moon", "Train", "Memory", "Castle", "Festival", "Letter", "Journey", "Café", "Door",
         "Story", "Rain", "Forest", "Sky", "Mirror", "Spring", "Shadow", "Light", "River",
         "夏", "Ōkami")


def syllable_word(n: int, parts: int) -> str:
    out = []
    for _ in range(parts):
        out.append(SYLLABLES[n % len(SYLLABLES)])
        n //= len(SYLLABLES)
    return "".join(out)


def general_tag(rank: int) -> str:
    """Rank r (0-based) of the 100k pool: two two-syllable words, distinct for every rank."""
    return syllable_word(rank, 2) + " " + syllable_word(rank // 2500, 2)


def person(n: int) -> str:
    return syllable_word(n, 2).capitalize() + " " + syllable_word(n // 2500 + 7, 2).capitalize()


def poisson(rng: random.Random, lam: float) -> int:
    limit, k, p = math.exp(-lam), 0, 1.0
    while True:
        p *= rng.random()
        if p <= limit:
            return k
        k += 1


class Pipe:
    """RESP over a blocking socket: queue commands, flush in batches, check every reply."""

    def __init__(self, url: str) -> None:
        parts = urlsplit(url)
        if parts.scheme == "unix":
            self.sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
            self.sock.connect(parts.path)
        else:
            self.sock = socket.create_connection((parts.hostname or "127.0.0.1", parts.port or 6379))
        self.base = int(parts.path.strip("/") or 0) if parts.scheme != "unix" else 0
        self.buffer: list[bytes] = []
        self.pending = 0

    def __call__(self, *args: str | bytes | int) -> None:
        parts = [a if isinstance(a, bytes) else str(a).encode("utf-8") for a in args]
        self.buffer.append(b"*%d\r\n" % len(parts)
                           + b"".join(b"$%d\r\n%s\r\n" % (len(p), p) for p in parts))
        self.pending += 1
        if self.pending >= 5000:
            self.flush()

    def select(self, offset: int) -> None:
        self("SELECT", self.base + offset)

    def flush(self) -> None:
        if not self.pending:
            return
        self.sock.sendall(b"".join(self.buffer))
        reader = hiredis.Reader()
        got = 0
        while got < self.pending:
            data = self.sock.recv(1 << 20)
            if not data:
                raise ConnectionError("Redis closed the connection")
            reader.feed(data)
            while True:
                reply = reader.gets()
                if reply is False:
                    break
                if isinstance(reply, hiredis.ReplyError):
                    raise RuntimeError(f"Redis error: {reply}")
                got += 1
        self.buffer.clear()
        self.pending = 0


def sample_cbz() -> bytes:
    """A real, tiny cbz: one 2x2 PNG page."""
    from PIL import Image

    page = io.BytesIO()
    Image.new("RGB", (2, 2), (200, 30, 30)).save(page, "PNG")
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as zf:
        zf.writestr("001.png", page.getvalue())
    return out.getvalue()


def generate(url: str, count: int, content: Path, seed: int = 1, flush: bool = False,
             untagged: float = 0.0, tank_every: int = 500, now: int | None = None) -> dict[str, float]:
    rng = random.Random(seed)
    now = now or int(time.time())
    content.mkdir(parents=True, exist_ok=True)
    source_file = content / "sample.cbz"
    if not source_file.exists():
        source_file.write_bytes(sample_cbz())
    size = source_file.stat().st_size
    links = content / "lib"
    links.mkdir(exist_ok=True)

    weights = list(accumulate(1.0 / (k ** 1.1) for k in range(1, 100_001)))
    ranks = range(100_000)
    pipe = Pipe(url)
    if flush:
        for db in (0, 2, 3):
            pipe.select(db)
            pipe("FLUSHDB")
        pipe.flush()

    started = time.monotonic()
    index: dict[str, list[str]] = {}
    records: list[tuple[str, str, str, bool]] = []  # id, title lc member, tags, isnew
    pipe.select(0)
    for i in range(count):
        arcid = hashlib.sha1(f"lrrd-bench-{seed}-{i}".encode()).hexdigest()
        n_general = 0 if rng.random() < untagged else min(20, max(1, poisson(rng, 7)))
        general: list[str] = []
        chosen: set[int] = set()
        while len(chosen) < n_general:
            rank = rng.choices(ranks, cum_weights=weights)[0]
            if rank not in chosen:
                chosen.add(rank)
                general.append(general_tag(rank))
        tags: list[str] = []
        artist = None
        if min(1, poisson(rng, 0.6)):
            artist = person(rng.randrange(5000))
            tags.append("artist:" + artist)
        for _ in range(poisson(rng, 0.2)):
            tags.append("series:" + syllable_word(rng.randrange(10_000) + 11, 3).capitalize())
        for _ in range(poisson(rng, 0.4)):
            tags.append(f"source:example{rng.randrange(3000)}.org")
        tags += general
        tags.append(f"date_added:{now - rng.randrange(3 * 365 * 86400)}")
        tags = list(dict.fromkeys(tags))
        words = rng.sample(WORDS, rng.randint(1, 3))
        title = " ".join(words)
        roll = rng.random()
        if roll < 0.3:
            title += f" vol {rng.randint(1, 30)}"
        elif roll < 0.5:
            title += f" ch.{rng.randint(1, 120)}"
        name = (f"[{artist}] " if artist else "") + title
        path = links / f"{i:07d}.cbz"
        if not path.exists():
            # ext4 allows 65,000 links to one inode: a fresh copy of the file every 50,000.
            origin = source_file.with_name(f"sample-{i // 50_000}.cbz")
            if not origin.exists():
                origin.write_bytes(source_file.read_bytes())
            os.link(origin, path)
        isnew = rng.random() < 0.3
        pagecount = rng.randint(8, 60)
        fields = ["name", name, "title", title, "tags", ",".join(tags), "summary", "",
                  "file", str(path), "isnew", "true" if isnew else "false",
                  "arcsize", str(size), "pagecount", str(pagecount)]
        if rng.random() < 0.15:
            fields += ["progress", str(rng.randint(1, pagecount)),
                       "lastreadtime", str(now - rng.randrange(90 * 86400))]
        else:
            fields += ["progress", "0", "lastreadtime", "0"]
        pipe("HSET", arcid, *fields)
        records.append((arcid, title.lower() + "\x00" + arcid, ",".join(tags), isnew))
    pipe.flush()

    # Tankoubons: every `tank_every`-th archive starts one holding it and the next few.
    tanks: dict[str, list[str]] = {}
    tank_names: dict[str, str] = {}
    if tank_every:
        for t, first in enumerate(range(0, count - 8, tank_every)):
            tank_id = f"TANK_{1700000000 + t:010d}"
            members = [records[first + k][0] for k in range(rng.randint(2, 8))]
            tanks[tank_id] = members
            tank_names[tank_id] = f"Tank {t} {rng.choice(WORDS)}"
            pipe("ZADD", tank_id, 0, "name_" + tank_names[tank_id], -1, "summary_",
                 -2, "tags_", -3, "progress_0", *[x for k, m in enumerate(members, 1) for x in (k, m)])
    in_tank = {m for members in tanks.values() for m in members}
    # Categories: two static, one dynamic.
    sample_ids = [r[0] for r in rng.sample(records, min(200, len(records)))]
    pipe("HSET", "SET_1700000001", "name", "Static A", "search", "", "pinned", "1",
         "archives", json.dumps(sample_ids[:100]))
    pipe("HSET", "SET_1700000002", "name", "Static B", "search", "", "pinned", "0",
         "archives", json.dumps(sample_ids[100:]))
    pipe("HSET", "SET_1700000003", "name", "Dynamic", "search", general_tag(0), "pinned", "0",
         "archives", "[]")
    pipe.flush()

    # The search database as build_stat_hashes leaves it.
    pipe.select(3)
    stats: dict[str, int] = {}
    member_tags: dict[str, str] = {}
    for arcid, member, tags, isnew in records:
        member_tags[arcid] = tags
        lowered = {t.strip().lower() for t in tags.split(",") if t.strip()}
        for tag in lowered:
            index.setdefault(tag, []).append(arcid)
            stats[tag] = stats.get(tag, 0) + 1
        pipe("ZADD", "LRR_TITLES", 0, member)
        if isnew:
            pipe("SADD", "LRR_NEW", arcid)
        if is_untagged(tags):
            pipe("SADD", "LRR_UNTAGGED", arcid)
        if arcid not in in_tank:
            pipe("SADD", "LRR_TANKGROUPED", arcid)
    for tank_id, members in tanks.items():
        pipe("SADD", "LRR_TANKGROUPED", tank_id)
        pipe("ZADD", "LRR_TITLES", 0, tank_names[tank_id].lower() + "\x00" + tank_id)
        for arcid in members:
            for tag in {t.strip().lower() for t in member_tags[arcid].split(",") if t.strip()}:
                index.setdefault(tag, []).append(tank_id)
    for tag, ids in index.items():
        pipe("SADD", "INDEX_" + tag, *ids)
    for tag, n in stats.items():
        pipe("ZADD", "LRR_STATS", n, tag)
    pipe("SET", "LAST_JOB_TIME", now)
    pipe("HSET", "LRR_SEARCHCACHE", "created", now)
    pipe.flush()
    pipe.select(2)
    for k, (arcid, *_rest) in enumerate(records):
        pipe("HSET", "LRR_FILEMAP", str(links / f"{k:07d}.cbz"), arcid)
    pipe.flush()
    return {"seconds": time.monotonic() - started, "tags": len(index), "tanks": len(tanks)}


def main(argv: Sequence[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--redis", required=True, help="redis://HOST:PORT/DB or unix:///PATH")
    parser.add_argument("--count", type=int, default=10_000)
    parser.add_argument("--content", type=Path, required=True)
    parser.add_argument("--seed", type=int, default=1)
    parser.add_argument("--untagged", type=float, default=0.0)
    parser.add_argument("--flush", action="store_true", help="empty DB 0, 2 and 3 first")
    args = parser.parse_args(argv)
    info = generate(args.redis, args.count, args.content, args.seed, args.flush, args.untagged)
    print(f"{args.count} archives, {info['tags']} distinct tags, {info['tanks']} tanks "
          f"in {info['seconds']:.1f} s", file=sys.stderr)


if __name__ == "__main__":
    main()
