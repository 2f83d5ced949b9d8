"""PUT /api/archives/upload over real HTTP: every status code of §8.1, names, checksums, metadata."""

from __future__ import annotations

import hashlib
import os
from pathlib import Path
from typing import Any

from lrrd.images import cover_path
from lrrd.library.identity import compute_id
from lrrd.library.uploads import truncate_filename
from lrrd.store.archives import as_text
from tests.fixtures.app import ApiTestCase
from tests.fixtures.archives import make_cbz, png_bytes
from tests.fixtures.library import d

BOUNDARY = "lrrdTestBoundary7MA4YWxkTrZu0gW"


def multipart(fields: dict[str, str], file: tuple[str, bytes] | None) -> tuple[str, bytes]:
    """A multipart/form-data body built by hand, so filenames go out exactly as written."""
    parts = []
    for name, value in fields.items():
        parts.append(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="{name}"\r\n\r\n'
                     .encode() + value.encode() + b"\r\n")
    if file is not None:
        filename, data = file
        parts.append(f'--{BOUNDARY}\r\nContent-Disposition: form-data; name="file"; '
                     f'filename="{filename}"\r\nContent-Type: application/zip\r\n\r\n'
                     .encode() + data + b"\r\n")
    parts.append(f"--{BOUNDARY}--\r\n".encode())
    return f"multipart/form-data; boundary={BOUNDARY}", b"".join(parts)


class UploadTests(ApiTestCase):
    timeout = 60

    def archive_bytes(self, pages: int = 2, seed: int = 0) -> bytes:
        path = Path(self.mktemp() + ".cbz")
        make_cbz(path, [(f"{i}.png", png_bytes(3, 3, (seed, i, 9))) for i in range(pages)])
        return path.read_bytes()

    async def upload(self, filename: str | None, data: bytes | None = None,
                     auth: bool = True, **fields: str) -> Any:
        ctype, body = multipart(fields, None if filename is None else
                                (filename, data if data is not None else self.archive_bytes()))
        return await self.request("PUT", "/api/archives/upload", auth=auth,
                                  headers={"Content-Type": ctype}, data=body)

    @property
    def content(self) -> Path:
        return self.services().settings.content

    def test_success_with_metadata(self):  # noqa: ANN201
        """200 with the id; file in place (no .upload left), tags indexed, title, summary,
        date_added, pagecount, cover, filemap; the checksum of the whole file is accepted."""
        async def run() -> None:
            data = self.archive_bytes(3)
            response = await self.upload("My Upload.cbz", data, tags="artist:me, series:x",
                                         title="Nice Title", summary="about",
                                         file_checksum=hashlib.sha1(data).hexdigest().upper())
            self.assertEqual(response.status, 200, response.body)
            target = self.content / "My Upload.cbz"
            arcid = compute_id(target)
            self.assertEqual(response.json, {"operation": "upload", "success": 1, "id": arcid})
            self.assertEqual(target.read_bytes(), data)
            self.assertEqual(sorted(p.name for p in self.content.iterdir()), ["My Upload.cbz"])
            archives = self.services().archives
            fields = await archives.get(arcid)
            self.assertEqual(fields["title"], "Nice Title")
            self.assertEqual(fields["summary"], "about")
            self.assertEqual(fields["pagecount"], "3")
            self.assertRegex(fields["tags"], r"^artist:me,series:x,date_added:\d+$")
            self.assertEqual(as_text(fields["file"]), str(target))
            self.assertEqual(await archives.filemap_get(str(target)), arcid)
            self.assertTrue(cover_path(self.services().settings.thumb_dir, arcid, "jpg").exists())
            listed = await self.get(f"/api/archives/{arcid}")
            self.assertEqual(listed.json["title"], "Nice Title")
            self.assertEqual((await self.upload("x.cbz", data, auth=False)).status, 401)
            leftovers = list((self.services().settings.temp_dir / "uploads").iterdir())
            self.assertEqual(leftovers, [])
        return d(run())

    def test_400_no_file(self):  # noqa: ANN201
        """No body, or a multipart body without a file part: 400 "No file attached"."""
        async def run() -> None:
            expected = {"operation": "upload", "success": 0, "error": "No file attached"}
            bare = await self.request("PUT", "/api/archives/upload", auth=True)
            self.assertEqual((bare.status, bare.json), (400, expected))
            fields_only = await self.upload(None, tags="a")
            self.assertEqual((fields_only.status, fields_only.json), (400, expected))
            ctype, body = multipart({}, ("x.cbz", b"PK"))
            broken = await self.request("PUT", "/api/archives/upload", auth=True,
                                        headers={"Content-Type": ctype}, data=body[:-30])
            self.assertEqual(broken.status, 400)
            bad_sum = await self.upload("y.cbz", file_checksum="xyz")
            self.assertEqual(bad_sum.status, 400)
            self.assertEqual(bad_sum.json["errors"][0]["path"], "/file_checksum")
        return d(run())

    def test_417_checksum_mismatch(self):  # noqa: ANN201
        """A file_checksum that is not the SHA-1 of the whole file: 417, nothing written."""
        async def run() -> None:
            data = self.archive_bytes()
            wrong = "0" * 40
            response = await self.upload("c.cbz", data, file_checksum=wrong)
            self.assertEqual(response.status, 417)
            self.assertEqual(response.json, {
                "operation": "upload", "success": 0,
                "error": f"Checksum mismatch: expected {wrong}, got {hashlib.sha1(data).hexdigest()}."})
            self.assertEqual(list(self.content.iterdir()), [])
        return d(run())

    def test_415_not_an_archive(self):  # noqa: ANN201
        """A name without an archive extension: 415."""
        async def run() -> None:
            response = await self.upload("notes.txt", b"hello")
            self.assertEqual(response.status, 415)
            self.assertEqual(response.json["error"], "Unsupported file extension (notes.txt)")
            self.assertEqual(list(self.content.iterdir()), [])
        return d(run())

    def test_409_duplicates_and_replace(self):  # noqa: ANN201
        """Same content under another name, or another content under the same name: 409 with the
        id; with replacedupe=1 the old archive is replaced."""
        async def run() -> None:
            data = self.archive_bytes(seed=1)
            first = await self.upload("one.cbz", data)
            arcid = first.json["id"]
            same_id = await self.upload("other name.cbz", data)
            self.assertEqual(same_id.status, 409)
            self.assertEqual(same_id.json, {
                "operation": "upload", "success": 0, "id": arcid,
                "error": "This file already exists in the Library. Enable replace duplicated "
                         "archive in config to replace old ones."})
            other = self.archive_bytes(seed=2)
            same_name = await self.upload("one.cbz", other)
            self.assertEqual(same_name.status, 409)
            self.assertEqual(same_name.json["error"],
                             "A file with the same name is present in the Library. Enable "
                             "replace duplicated archive in config to replace old ones.")
            self.assertEqual(same_name.json["id"], hashlib.sha1(other[:512000]).hexdigest())
            await self.services().config.set({"replacedupe": "1"})
            replaced = await self.upload("one.cbz", other)
            self.assertEqual(replaced.status, 200, replaced.body)
            self.assertEqual((self.content / "one.cbz").read_bytes(), other)
            self.assertIsNone(await self.services().archives.get(arcid))
        return d(run())

    def test_423_locked(self):  # noqa: ANN201
        """Another upload of the same filename in progress: 423."""
        async def run() -> None:
            locks = self.services().locks
            token = await locks.acquire("upload:busy.cbz", 60)
            response = await self.upload("busy.cbz")
            self.assertEqual(response.status, 423)
            self.assertEqual(response.json, {"operation": "upload", "success": 0,
                                             "error": "Locked resource: busy.cbz."})
            await locks.release("upload:busy.cbz", token)
            self.assertEqual((await self.upload("busy.cbz")).status, 200)
        return d(run())

    def test_500_cannot_move(self):  # noqa: ANN201
        """The content folder refuses the file: 500 with the id, and no half entry left."""
        async def run() -> None:
            (self.content / "stuck.cbz.upload").mkdir(parents=True)
            data = self.archive_bytes(seed=5)
            response = await self.upload("stuck.cbz", data)
            self.assertEqual(response.status, 500)
            arcid = hashlib.sha1(data[:512000]).hexdigest()
            self.assertEqual(response.json, {
                "operation": "upload", "success": 0, "id": arcid,
                "error": "The file couldn't be moved to your content folder!"})
            self.assertIsNone(await self.services().archives.get(arcid))
            self.assertFalse((self.content / "stuck.cbz").exists())
        return d(run())

    def test_hostile_and_long_names(self):  # noqa: ANN201
        """Path parts are dropped, NULs refused, and long names cut to 255 (143) bytes with
        ".upload"."""
        async def run() -> None:
            escaped = await self.upload("../../evil.cbz", self.archive_bytes(seed=7))
            self.assertEqual(escaped.status, 200, escaped.body)
            self.assertTrue((self.content / "evil.cbz").exists())
            windows = await self.upload("C:\\dir\\win.cbz", self.archive_bytes(seed=8))
            self.assertEqual(windows.status, 200)
            self.assertTrue((self.content / "win.cbz").exists())
            nul = await self.upload("a\0b.cbz", self.archive_bytes(seed=9))
            self.assertEqual(nul.status, 400)
            long_name = "é" * 200 + ".cbz"
            response = await self.upload(long_name, self.archive_bytes(seed=10))
            self.assertEqual(response.status, 200)
            stored = as_text((await self.services().archives.get(response.json["id"]))["file"])
            self.assertEqual(len((os.path.basename(stored) + ".upload").encode()), 255)
            self.assertTrue(os.path.basename(stored).endswith(".cbz"))
            self.assertEqual(truncate_filename("x" * 300 + ".cbz", 143), "x" * 132 + ".cbz")
        return d(run())

    def test_category(self):  # noqa: ANN201
        """category_id puts the new archive in that static category."""
        async def run() -> None:
            from lrrd.store.categories import CategoryStore

            categories = CategoryStore(self.redis)
            cat_id = await categories.create("Shelf")
            response = await self.upload("cat.cbz", self.archive_bytes(seed=11),
                                         category_id=cat_id)
            self.assertEqual(response.status, 200, response.body)
            self.assertIn(response.json["id"], (await categories.get(cat_id))["archives"])
        return d(run())

    def test_large_upload_streams(self):  # noqa: ANN201
        """A 40 MB upload goes through the streaming parser with its checksum checked."""
        async def run() -> None:
            path = Path(self.mktemp() + ".cbz")
            make_cbz(path, [("1.png", png_bytes(2, 2)), ("big.bin", os.urandom(40 * 1024 * 1024))],
                     compression=0)
            data = path.read_bytes()
            response = await self.upload("big.cbz", data,
                                         file_checksum=hashlib.sha1(data).hexdigest())
            self.assertEqual(response.status, 200, response.body)
            self.assertEqual((self.content / "big.cbz").stat().st_size, len(data))
        return d(run())
