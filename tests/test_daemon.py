"""The real ``twistd lrrd`` process: embedded Redis, persistence, self-healing, clean stop."""

from __future__ import annotations

import base64
import json
import os
import signal
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import treq
from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.task import deferLater
from twisted.trial import unittest
from twisted.web.client import HTTPConnectionPool

from tests.fixtures.redis import RedisServer, free_tcp_port, pid_alive

TWISTD = str(Path(sys.executable).with_name("twistd"))


def _sleep(seconds: float) -> Deferred[None]:
    return deferLater(reactor, seconds, lambda: None)


class Daemon:
    """One ``twistd -n lrrd`` child process on a loopback port."""

    def __init__(self, case: unittest.TestCase, root: Path, *extra: str) -> None:
        self.port = free_tcp_port()
        self.content = root / "content"
        self.data = root / "data"
        self.log_path = root / f"twistd-{self.port}.log"
        self.log = open(self.log_path, "wb")
        case.addCleanup(self.log.close)
        args = [TWISTD, "-n", "--pidfile=", "--logfile=-", "lrrd",
                "--listen", f"tcp:{self.port}:interface=127.0.0.1",
                "--content", str(self.content), "--data", str(self.data), *extra]
        self.process = subprocess.Popen(args, stdout=self.log, stderr=subprocess.STDOUT,
                                        cwd=root)
        case.addCleanup(self.kill)

    @property
    def base(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def redis_pid(self) -> int | None:
        try:
            return int((self.data / "redis" / "redis.pid").read_text().strip())
        except (OSError, ValueError):
            return None

    def stop(self, timeout: float = 30) -> bool:
        """SIGTERM, as systemd sends; True when twistd shut down cleanly.

        twistd re-raises the stopping signal after a clean shutdown, so the exit status is
        -SIGTERM either way; the log tells a clean stop from a crash.
        """
        self.process.send_signal(signal.SIGTERM)
        code = self.process.wait(timeout)
        self.log.flush()
        text = self.log_path.read_text(errors="replace")
        return code in (0, -signal.SIGTERM) and "Server Shut Down." in text \
            and "Traceback" not in text

    def kill(self) -> None:
        if self.process.poll() is None:
            self.process.kill()
            self.process.wait()
        pid = self.redis_pid()
        if pid and pid_alive(pid):
            os.kill(pid, signal.SIGKILL)


class DaemonTestCase(unittest.TestCase):
    timeout = 120

    def setUp(self) -> None:
        self.pool = HTTPConnectionPool(reactor, persistent=False)
        self.addCleanup(self.pool.closeCachedConnections)
        self.root = Path(self.mktemp()).resolve()
        self.root.mkdir(parents=True)

    async def fetch(self, daemon: Daemon, path: str, key: str | None = None) -> tuple[int, Any]:
        headers = {}
        if key is not None:
            headers["Authorization"] = "Bearer " + base64.b64encode(key.encode()).decode()
        response = await treq.get(daemon.base + path, headers=headers, pool=self.pool)
        body = await treq.content(response)
        try:
            return response.code, json.loads(body)
        except ValueError:
            return response.code, body

    async def wait_for(self, daemon: Daemon, path: str = "/api/info", status: int = 200,
                       key: str | None = None, timeout: float = 30) -> tuple[int, Any, float]:
        started = time.monotonic()
        last: Any = None
        while time.monotonic() - started < timeout:
            if daemon.process.poll() is not None:
                self.fail(f"twistd exited with {daemon.process.returncode}")
            try:
                code, body = await self.fetch(daemon, path, key)
                last = (code, body)
                if code == status:
                    return code, body, time.monotonic() - started
            except Exception as exc:  # connection refused while starting
                last = exc
            await _sleep(0.05)
        self.fail(f"{path} did not answer {status} within {timeout}s (last: {last!r})")


class EmbeddedDaemonTests(DaemonTestCase):
    def test_embedded_lifecycle(self) -> Deferred[None]:
        """Start on the embedded Redis, survive a SIGKILLed redis-server, persist the key, leave no child."""
        async def run() -> None:
            daemon = Daemon(self, self.root, "--api-key", "s3cret")
            await self.wait_for(daemon)
            code, _ = await self.fetch(daemon, "/api/database/backup", key="s3cret")
            self.assertNotEqual(code, 401)
            self.assertEqual((await self.fetch(daemon, "/api/database/backup"))[0], 401)
            info_before = (await self.fetch(daemon, "/api/info"))[1]

            # The embedded Redis dies hard: within 5 s the API answers again with the same data.
            redis_pid = daemon.redis_pid()
            self.assertIsNotNone(redis_pid)
            assert redis_pid is not None
            os.kill(redis_pid, signal.SIGKILL)
            _, info_after, took = await self.wait_for(daemon, timeout=5)
            self.assertLess(took, 5)
            self.assertNotEqual(daemon.redis_pid(), redis_pid)
            self.assertEqual(info_after["name"], info_before["name"])
            code, _ = await self.fetch(daemon, "/api/database/backup", key="s3cret")
            self.assertNotEqual(code, 401)

            # A clean stop takes the embedded Redis with it.
            second_redis = daemon.redis_pid()
            self.assertTrue(daemon.stop())
            assert second_redis is not None
            self.assertFalse(pid_alive(second_redis), "redis-server outlived lrrd")

            # Restarted without --api-key: the key set before is still there.
            again = Daemon(self, self.root)
            await self.wait_for(again)
            code, _ = await self.fetch(again, "/api/database/backup", key="s3cret")
            self.assertNotEqual(code, 401)
            self.assertTrue(again.stop())
        return Deferred.fromCoroutine(run())


class ExternalRedisTests(DaemonTestCase):
    def test_key_written_by_another_program(self) -> Deferred[None]:
        """With --redis, lrrd uses LRR_CONFIG.apikey that another program wrote in DB 2."""
        async def run() -> None:
            server = RedisServer(port=free_tcp_port()).start()
            self.addCleanup(server.stop)
            server.commands(["SELECT", "2"], ["HSET", "LRR_CONFIG", "apikey", "lrr-test"])
            daemon = Daemon(self, self.root, "--redis", server.tcp_url)
            await self.wait_for(daemon)
            code, _ = await self.fetch(daemon, "/api/database/backup", key="lrr-test")
            self.assertNotEqual(code, 401)
            self.assertEqual((await self.fetch(daemon, "/api/database/backup", key="x"))[0], 401)
            self.assertFalse((self.root / "data" / "redis").exists(), "started a Redis of its own")
            self.assertTrue(daemon.stop())
        return Deferred.fromCoroutine(run())

    def test_no_redis_binary(self) -> None:
        """Without any redis-server, lrrd exits at start with one line saying how to get one."""
        env = dict(os.environ, PATH=str(Path(sys.executable).parent))
        result = subprocess.run(
            [TWISTD, "-n", "--pidfile=", "lrrd", "--listen", "tcp:0:interface=127.0.0.1",
             "--content", str(self.root / "c"), "--data", str(self.root / "d"),
             "--redis-server", "/nonexistent/redis-server"],
            capture_output=True, env=env, timeout=60, cwd=self.root,
        )
        self.assertNotEqual(result.returncode, 0)
        self.assertIn(b"no redis-server found", result.stderr + result.stdout)
