"""A small library of every archive format lrrd reads, for fuzzing: ``make_library.py CONTENT_DIR``."""

from __future__ import annotations

import sys
from pathlib import Path

from tests.fixtures.archives import (
    NESTED_PAGES,
    UNICODE_PAGES,
    make_7z,
    make_cbr,
    make_cbz,
    make_epub,
    make_pdf,
    make_tar,
    with_macosx_junk,
)


def main(content: Path) -> None:
    """Eleven archives: zip/cbz (plain, Unicode, nested, Mac junk), epub, tar, tar.gz, 7z, RAR4, pdf."""
    content.mkdir(parents=True, exist_ok=True)
    make_cbz(content / "plain.cbz", 5)
    make_cbz(content / "unicode 日本.cbz", UNICODE_PAGES)
    make_cbz(content / "nested.zip", NESTED_PAGES)
    make_cbz(content / "mac.cbz", with_macosx_junk(3))
    make_epub(content / "book.epub", 4)
    make_tar(content / "tarred.cbt", 3)
    make_tar(content / "gz.tar.gz", 3, compression="gzip")
    make_7z(content / "seven.cb7", 3)
    make_cbr(content / "rar4.cbr", 3)
    make_pdf(content / "doc.pdf", 2)
    (content / "sub").mkdir(exist_ok=True)
    make_cbz(content / "sub" / "deep.cbz", 2)


if __name__ == "__main__":
    main(Path(sys.argv[1]))
