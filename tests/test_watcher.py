"""Shinobu: the startup scan, inotify, rescans, settling, leadership and the control operations."""

from __future__ import annotations

import os
import time
from pathlib import Path
from typing import Any, Awaitable, Callable

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater

from lrrd.library.identity import compute_id
from lrrd.store.archives import as_text
from lrrd.watcher import Watcher, walk_library
from tests.fixtures.app import ApiTestCase
from tests.fixtures.archives import make_cbz, make_not_archive, png_bytes
from tests.fixtures.library import LibraryTestCase, d
from tests.test_daemon import Daemon, DaemonTestCase


def one_page(path: Path, index: int) -> Path:
    """A tiny cbz whose content (hence id) is unique to ``index``."""
    return make_cbz(path, [("1.png", png_bytes(1, 1, (index % 256, index // 256, 7)))])


async def wait_until(check: Callable[[], Awaitable[bool]], timeout: float = 10.0) -> float:
    """Poll ``check`` until true; returns the seconds it took (fails the test on timeout)."""
    started = time.monotonic()
    while not await check():
        if time.monotonic() - started > timeout:
            raise AssertionError(f"condition not met within {timeout}s")
        await deferLater(reactor, 0.02, lambda: None)
    return time.monotonic() - started


class WatcherTests(LibraryTestCase):
    timeout = 60

    def start_watcher(self, **kwargs: Any) -> Watcher:
        options: dict[str, Any] = dict(rescan_interval=0, settle_delay=0.2, lease_ttl=3)
        options.update(kwargs)
        watcher = Watcher(self.services, **options)
        watcher.startService()
        self.addCleanup(watcher.stopService)
        return watcher

    async def filemap(self) -> dict[str, str]:
        return await self.services.archives.filemap()

    def test_walk_follows_symlinks_once_and_skips_thumb(self) -> None:
        """The walk follows symlinked folders, survives a symlink loop, skips thumb/ folders."""
        root = self.content
        (root / "a" / "b").mkdir(parents=True)
        (root / "thumb").mkdir()
        one_page(root / "a" / "b" / "x.cbz", 1)
        one_page(root / "thumb" / "t.cbz", 2)
        make_not_archive(root / "a" / "readme.txt")
        outside = Path(self.mktemp()).resolve()
        outside.mkdir()
        one_page(outside / "linked.cbz", 3)
        (root / "link").symlink_to(outside, target_is_directory=True)
        (root / "a" / "b" / "loop").symlink_to(root, target_is_directory=True)
        tree = walk_library(str(root))
        self.assertEqual(sorted(os.path.relpath(p, root) for p in tree.files),
                         ["a/b/x.cbz", "link/linked.cbz"])

    def test_startup_scan_of_a_library(self):  # noqa: ANN201
        """A few hundred archives in nested folders are all imported by the startup scan; a
        junk file is skipped; files gone since last time leave the filemap only."""
        async def run() -> None:
            paths = []
            for i in range(300):
                folder = self.content / f"series {i % 10}" / f"vol {i % 3}"
                folder.mkdir(parents=True, exist_ok=True)
                paths.append(one_page(folder / f"book {i}.cbz", i))
            make_not_archive(self.content / "broken.cbz")
            ghost = "f" * 40
            await self.services.archives.create(ghost, str(self.content / "ghost.cbz"))
            await self.services.archives.filemap_set(str(self.content / "ghost.cbz"), ghost)
            started = time.monotonic()
            watcher = self.start_watcher()
            await wait_until(lambda: self._count_ids(301), timeout=30)
            await watcher.when_idle()
            elapsed = time.monotonic() - started
            filemap = await self.filemap()
            self.assertEqual(sorted(filemap), sorted(str(p) for p in paths))
            self.assertIsNotNone(await self.services.archives.get(ghost))
            self.assertLess(elapsed, 30)
        return d(run())

    async def _count_ids(self, n: int) -> bool:
        return len(await self.services.archives.ids()) >= n

    def test_move_100_in_rename_modify_delete(self):  # noqa: ANN201
        """100 archives moved into a running watcher are all imported within 10 s; a rename keeps
        tags, a modification moves them to the new id, a deletion keeps the metadata."""
        async def run() -> None:
            watcher = self.start_watcher()
            await wait_until(lambda: d(_true(watcher.active)))
            await watcher.when_idle()
            staging = Path(self.mktemp()).resolve()
            (staging / "drop").mkdir(parents=True)
            sources = [one_page(staging / f"m{i:03d}.cbz", 1000 + i) for i in range(100)]
            ids = {compute_id(p) for p in sources}
            nested = [one_page(staging / "drop" / f"n{i}.cbz", 2000 + i) for i in range(5)]
            started = time.monotonic()
            for source in sources:
                source.rename(self.content / source.name)
            (staging / "drop").rename(self.content / "drop")
            ids |= {compute_id(self.content / "drop" / p.name) for p in nested}

            async def all_in() -> bool:
                return set(await self.services.archives.ids()) >= ids
            await wait_until(all_in, timeout=10)
            elapsed = time.monotonic() - started
            self.assertLess(elapsed, 10)
            await watcher.when_idle()

            # rename: same id, new file and name, tags kept
            first = self.content / "m000.cbz"
            arcid = compute_id(first)
            await self.services.archives.set_tags(arcid, "artist:kept", append=True)
            renamed = self.content / "drop" / "renamed.cbz"
            first.rename(renamed)

            async def moved() -> bool:
                fields = await self.services.archives.get(arcid)
                return as_text(fields["file"]) == str(renamed)
            await wait_until(moved)
            await watcher.when_idle()
            fields = await self.services.archives.get(arcid)
            self.assertEqual(fields["name"], "renamed")
            self.assertIn("artist:kept", fields["tags"])
            filemap = await self.filemap()
            self.assertNotIn(str(first), filemap)
            self.assertEqual(filemap[str(renamed)], arcid)

            # modify: new id, tags carried over
            make_cbz(renamed, 3)
            new_id = compute_id(renamed)

            async def modified() -> bool:
                return (await self.filemap()).get(str(renamed)) == new_id
            await wait_until(modified)
            await watcher.when_idle()
            self.assertIsNone(await self.services.archives.get(arcid))
            self.assertIn("artist:kept", (await self.services.archives.get(new_id))["tags"])

            # delete: filemap only
            renamed.unlink()

            async def forgotten() -> bool:
                return str(renamed) not in await self.filemap()
            await wait_until(forgotten)
            self.assertIsNotNone(await self.services.archives.get(new_id))

            # a folder removed: its files leave the filemap, metadata stays
            for path in (self.content / "drop").iterdir():
                path.unlink()
            (self.content / "drop").rmdir()

            async def folder_forgotten() -> bool:
                return not any(p.startswith(str(self.content / "drop")) for p in await self.filemap())
            await wait_until(folder_forgotten)
            # and the watcher still sees new files after that
            late = one_page(self.content / "late.cbz", 3000)
            await wait_until(lambda: self._has(compute_id(late)))
        return d(run())

    async def _has(self, arcid: str) -> bool:
        return await self.services.archives.get(arcid) is not None

    def test_growing_file_waits(self):  # noqa: ANN201
        """A file still being written is imported once complete, under its final id."""
        async def run() -> None:
            watcher = self.start_watcher(settle_delay=0.3)
            await wait_until(lambda: d(_true(watcher.active)))
            await watcher.when_idle()
            whole = one_page(Path(self.mktemp() + ".cbz"), 77)
            data = whole.read_bytes()
            target = self.content / "slow.cbz"
            handle = open(target, "wb")
            try:
                for i in range(0, len(data), 16):
                    handle.write(data[i:i + 16])
                    handle.flush()
                    await deferLater(reactor, 0.01, lambda: None)
            finally:
                handle.close()
            await wait_until(lambda: self._has(compute_id(whole)))
            await watcher.when_idle()
            self.assertEqual(list((await self.filemap()).values()), [compute_id(whole)])
            self.assertEqual(len(await self.services.archives.ids()), 1)
        return d(run())

    def test_periodic_rescan_without_inotify(self):  # noqa: ANN201
        """On a network mount (no inotify), the periodic rescan finds new and changed files."""
        async def run() -> None:
            watcher = self.start_watcher(use_inotify=False, rescan_interval=0.3, settle_delay=0.05)
            await wait_until(lambda: d(_true(watcher.active)))
            path = one_page(self.content / "net.cbz", 5)
            os.utime(path, (1_000_000_000, 1_000_000_000))
            await wait_until(lambda: self._has(compute_id(path)))
            await self.services.archives.set_tags(compute_id(path), "k:v", append=True)
            make_cbz(path, 2)
            os.utime(path, (1_000_000_100, 1_000_000_100))
            new_id = compute_id(path)
            await wait_until(lambda: self._has(new_id))
            self.assertIn("k:v", (await self.services.archives.get(new_id))["tags"])
        return d(run())

    def test_one_leader_and_takeover(self):  # noqa: ANN201
        """Two watchers on one Redis: one watches; when it stops, the other takes over."""
        async def run() -> None:
            first = self.start_watcher(lease_ttl=1)
            await wait_until(lambda: d(_true(first.active)))
            second = Watcher(self.services, rescan_interval=0, settle_delay=0.2, lease_ttl=1)
            second.startService()
            self.addCleanup(second.stopService)
            await deferLater(reactor, 0.5, lambda: None)
            self.assertTrue(first.active)
            self.assertFalse(second.active)
            await first.stopService()
            await wait_until(lambda: d(_true(second.active)), timeout=5)
            path = one_page(self.content / "after.cbz", 9)
            await wait_until(lambda: self._has(compute_id(path)))
        return d(run())

    def test_stop_restart_rescan(self):  # noqa: ANN201
        """stop halts watching (status 0); restart resumes with a scan; rescan rebuilds the filemap."""
        async def run() -> None:
            watcher = self.start_watcher()
            await wait_until(lambda: d(_true(watcher.active)))
            self.assertTrue(await watcher.status())
            await watcher.stop()
            self.assertFalse(watcher.active)
            self.assertFalse(await watcher.status())
            path = one_page(self.content / "while-stopped.cbz", 11)
            await deferLater(reactor, 0.3, lambda: None)
            self.assertFalse(await self._has(compute_id(path)))
            self.assertTrue(await watcher.restart())
            await wait_until(lambda: self._has(compute_id(path)))
            await watcher.when_idle()
            await self.services.archives.filemap_set("/nowhere/x.cbz", compute_id(path))
            self.assertTrue(await watcher.rescan())
            await wait_until(lambda: self._filemap_is({str(path): compute_id(path)}))
        return d(run())

    def test_stop_lasts_until_a_process_starts(self):  # noqa: ANN201
        """A stopped watcher stays stopped until restarted, or until an lrrd process starts."""
        async def run() -> None:
            first = self.start_watcher()
            await wait_until(lambda: d(_true(first.active)))
            await first.stop()
            await first.tick()
            self.assertFalse(first.active)
            await first.stopService()
            second = self.start_watcher()
            await wait_until(lambda: d(_true(second.active)))
        return d(run())

    async def _filemap_is(self, expected: dict[str, str]) -> bool:
        return await self.filemap() == expected


async def _true(value: bool) -> bool:
    return value


class ShinobuApiTests(ApiTestCase):
    timeout = 30

    def test_operations(self):  # noqa: ANN201
        """status/stop/restart/rescan answer the original's shapes with this process's pid."""
        async def run() -> None:
            watcher = self.services().watcher
            watcher.rescan_interval = 0
            watcher.lease_ttl = 3
            watcher.startService()
            self.addCleanup(watcher.stopService)
            await wait_until(lambda: d(_true(watcher.active)))
            status = await self.get("/api/shinobu", auth=True)
            self.assertEqual(status.json, {"operation": "shinobu_status", "success": 1,
                                           "is_alive": 1, "pid": os.getpid()})
            stop = await self.request("POST", "/api/shinobu/stop", auth=True)
            self.assertEqual(stop.json, {"operation": "shinobu_stop", "success": 1, "error": "",
                                         "successMessage": ""})
            self.assertEqual((await self.get("/api/shinobu", auth=True)).json["is_alive"], 0)
            restart = await self.request("POST", "/api/shinobu/restart", auth=True)
            self.assertEqual(restart.json, {"operation": "shinobu_restart", "success": 1,
                                            "new_pid": os.getpid()})
            await self.services().archives.filemap_set("/gone.cbz", "a" * 40)
            rescan = await self.request("POST", "/api/shinobu/rescan", auth=True)
            self.assertEqual(rescan.json, {"operation": "shinobu_rescan", "success": 1,
                                           "new_pid": os.getpid()})
            self.assertEqual(await self.services().archives.filemap(), {})
            self.assertEqual((await self.get("/api/shinobu")).status, 401)
        return d(run())

    def test_removed_file_hidden_from_listing(self):  # noqa: ANN201
        """Through HTTP: a removed archive leaves /api/archives while its metadata stays."""
        async def run() -> None:
            services = self.services()
            watcher = services.watcher
            watcher.rescan_interval = 0
            watcher.startService()
            self.addCleanup(watcher.stopService)
            await wait_until(lambda: d(_true(watcher.active)))
            content = services.settings.content
            a = one_page(content / "a.cbz", 1)
            b = one_page(content / "b.cbz", 2)

            async def listed(n: int) -> bool:
                return len((await self.get("/api/archives")).json) == n
            await wait_until(lambda: listed(2))
            a_id = compute_id(a)
            a.unlink()
            await wait_until(lambda: listed(1))
            self.assertEqual((await self.get("/api/archives")).json[0]["arcid"], compute_id(b))
            self.assertEqual((await services.archives.get(a_id))["name"], "a")
        return d(run())


class DaemonWatcherTests(DaemonTestCase):
    """The watcher inside a real ``twistd lrrd``: what a user sees through /api/archives."""

    def test_move_100_into_running_lrrd(self):  # noqa: ANN201
        """The startup scan lists the library; 100 archives moved in are all listed within
        10 s; a removed one leaves the listing; a renamed one keeps its tags; stop is clean."""
        async def run() -> None:
            content = self.root / "content"
            content.mkdir()
            for i in range(20):
                one_page(content / f"start {i}.cbz", 5000 + i)
            daemon = Daemon(self, self.root, "--api-key", "k")
            await self.wait_for(daemon)

            async def listed() -> list[dict[str, Any]]:
                code, body = await self.fetch(daemon, "/api/archives")
                return body if code == 200 else []

            async def count_is(n: int) -> bool:
                return len(await listed()) == n
            await wait_until(lambda: count_is(20), timeout=20)

            staging = self.root / "staging"
            staging.mkdir()
            moved = [one_page(staging / f"new {i:03d}.cbz", 6000 + i) for i in range(100)]
            started = time.monotonic()
            for path in moved:
                path.rename(content / path.name)
            await wait_until(lambda: count_is(120), timeout=10)
            self.assertLess(time.monotonic() - started, 10)

            (content / "new 000.cbz").unlink()
            await wait_until(lambda: count_is(119))

            renamed_id = compute_id(content / "new 001.cbz")
            code, _ = await self.put(daemon, f"/api/archives/{renamed_id}/metadata?tags=artist:x")
            self.assertEqual(code, 200)
            (content / "new 001.cbz").rename(content / "renamed.cbz")

            async def renamed() -> bool:
                entry = [a for a in await listed() if a["arcid"] == renamed_id]
                return bool(entry) and entry[0]["filename"] == "renamed"
            await wait_until(renamed)
            entry = [a for a in await listed() if a["arcid"] == renamed_id][0]
            self.assertIn("artist:x", entry["tags"])
            self.assertTrue(daemon.stop())
        return Deferred.fromCoroutine(run())

    async def put(self, daemon: Daemon, path: str) -> tuple[int, Any]:
        import base64

        import treq

        response = await treq.put(daemon.base + path, pool=self.pool, headers={
            "Authorization": "Bearer " + base64.b64encode(b"k").decode()})
        return response.code, await treq.content(response)
