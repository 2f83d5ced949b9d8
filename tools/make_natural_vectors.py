"""Writes tests/fixtures/sort_naturally_vectors.json: lists sorted by the real Sort::Naturally.

Run where perl and Debian's libsort-naturally-perl are installed; the tests then compare lrrd's
port against these recorded orders, so CI needs no perl module.
"""

from __future__ import annotations

import json
import os
import random
import subprocess
import sys
from pathlib import Path

PIECES = ["a", "B", "z", "0", "00", "1", "9", "10", "007", "99999999", "100000000",
          "0000000001", " ", "-", "_", ".", "!", "é", "É", "ä1", "マ", "\x00", "foo", "Foo", "x y"]


def perl_sort(items: list[str], utf8_bytes: bool) -> list[str]:
    script = (
        "use Sort::Naturally; binmode STDOUT; $/ = \"\\x01\"; my @s = <STDIN>; chomp @s;"
        + ("" if utf8_bytes else " utf8::decode($_) for @s;")
        + " my @o = nsort(@s);"
        + ("" if utf8_bytes else " utf8::encode($_) for @o;")
        + ' print map { "$_\\x01" } @o;'
    )
    data = "".join(item + "\x01" for item in items).encode("utf-8")
    env = dict(os.environ, LC_ALL="C.UTF-8")
    out = subprocess.run(["perl", "-e", script], input=data, capture_output=True, env=env,
                         check=True).stdout
    return out.decode("utf-8").split("\x01")[:-1]


def main() -> int:
    rng = random.Random(1)
    vectors = []
    for utf8_bytes in (False, True):
        for _ in range(60):
            items = ["".join(rng.choice(PIECES) for _ in range(rng.randint(0, 6))) for _ in range(40)]
            vectors.append({"utf8_bytes": utf8_bytes, "input": items,
                            "perl": perl_sort(items, utf8_bytes)})
    out = Path(__file__).resolve().parent.parent / "tests" / "fixtures" / "sort_naturally_vectors.json"
    out.write_text(json.dumps(vectors, ensure_ascii=False, indent=0) + "\n", encoding="utf-8")
    print(f"wrote {len(vectors)} vectors to {out}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
