"""Settings layering, INI parsing and Redis address parsing."""

from __future__ import annotations

from pathlib import Path

from twisted.python import usage
from twisted.trial.unittest import SynchronousTestCase

from lrrd.config import ConfigError, Settings, lrr_redis_address_to_url, resolve_settings
from lrrd.store.config import DEFAULTS, with_defaults
from lrrd.store.redis import RedisAddress
from lrrd.tap import Options


class SettingsLayeringTests(SynchronousTestCase):
    def test_defaults(self) -> None:
        """With nothing given, lrrd listens on LANraragi's port 3000 and uses ./content and ./data."""
        settings = resolve_settings({}, environ={})
        self.assertEqual(settings.listen, "tcp:3000")
        self.assertEqual(settings.content, Path("./content"))
        self.assertEqual(settings.data, Path("./data"))
        self.assertIsNone(settings.redis)
        self.assertEqual(settings.role, "all")
        self.assertGreaterEqual(settings.workers, 1)
        self.assertEqual(settings.thumb_dir, Path("./data/thumb"))

    def test_order_of_sources(self) -> None:
        """LRR_* < config file < LRRD_* < command line, each overriding the one before."""
        ini = Path(self.mktemp())
        ini.write_text("[lrrd]\ncontent = /from/file\ndata = /data/file\nlisten = tcp:1\n")
        env = {
            "LRR_DATA_DIRECTORY": "/from/lrr",
            "LRR_THUMB_DIRECTORY": "/thumbs/lrr",
            "LRR_REDIS_ADDRESS": "10.0.0.1:6380",
            "LRRD_DATA": "/data/env",
        }
        settings = resolve_settings({"config": str(ini), "listen": "tcp:2"}, environ=env)
        self.assertEqual(settings.content, Path("/from/file"))
        self.assertEqual(settings.data, Path("/data/env"))
        self.assertEqual(settings.listen, "tcp:2")
        self.assertEqual(settings.thumb_dir, Path("/thumbs/lrr"))
        self.assertEqual(settings.redis, "redis://10.0.0.1:6380")

    def test_lrr_redis_socket(self) -> None:
        """LANraragi's LRR_REDIS_ADDRESS may be a socket path; it becomes a unix:// URL."""
        self.assertEqual(lrr_redis_address_to_url("/run/redis.sock"), "unix:///run/redis.sock")

    def test_bad_values_are_named(self) -> None:
        """A bad setting fails with a message naming it, not a traceback from deep inside."""
        for given, word in [({"workers": "many"}, "workers"), ({"role": "boss"}, "role")]:
            with self.assertRaises(ConfigError) as caught:
                resolve_settings(given, environ={})
            self.assertIn(word, str(caught.exception))

    def test_unknown_ini_key(self) -> None:
        """A typo in the config file is reported instead of silently ignored."""
        ini = Path(self.mktemp())
        ini.write_text("[lrrd]\nlisen = tcp:1\n")
        with self.assertRaises(ConfigError):
            resolve_settings({"config": str(ini)}, environ={})

    def test_options_reject_bad_redis_url(self) -> None:
        """``twistd lrrd --redis`` with a malformed URL is a usage error."""
        with self.assertRaises(usage.UsageError):
            Options().parseOptions(["--redis", "http://x"])

    def test_options_settings(self) -> None:
        """The twistd options produce Settings from the command line."""
        options = Options()
        options.parseOptions(["--listen", "tcp:0", "--api-key", "K", "--workers", "3"])
        self.assertIsInstance(options.settings, Settings)
        self.assertEqual(options.settings.api_key, "K")
        self.assertEqual(options.settings.workers, 3)


class RedisAddressTests(SynchronousTestCase):
    def test_tcp(self) -> None:
        """redis://host:port/db parses into host, port and base database."""
        address = RedisAddress.parse("redis://127.0.0.1:7000/2")
        self.assertEqual((address.host, address.port, address.base_db), ("127.0.0.1", 7000, 2))

    def test_defaults(self) -> None:
        """A bare redis://host uses port 6379 and database 0, as LANraragi does."""
        address = RedisAddress.parse("redis://example")
        self.assertEqual((address.port, address.base_db, address.path), (6379, 0, None))

    def test_unix(self) -> None:
        """unix:///path selects a socket."""
        self.assertEqual(RedisAddress.parse("unix:///tmp/r.sock").path, "/tmp/r.sock")

    def test_password(self) -> None:
        """Credentials in the URL are passed on."""
        self.assertEqual(RedisAddress.parse("redis://:s3cret@h:1/").password, "s3cret")

    def test_rejects(self) -> None:
        """Wrong schemes, ports and databases are refused with ValueError."""
        for url in ["http://x", "redis://h:notaport/", "redis://h/x", "redis://h/15", "unix://"]:
            with self.assertRaises(ValueError, msg=url):
                RedisAddress.parse(url)


class ConfigDefaultsTests(SynchronousTestCase):
    def test_blank_means_default(self) -> None:
        """Missing or whitespace-only LRR_CONFIG fields fall back to the defaults, like the original."""
        merged = with_defaults({"pagesize": "  ", "htmltitle": "Mine", "apikey": None})
        self.assertEqual(merged["pagesize"], "100")
        self.assertEqual(merged["htmltitle"], "Mine")
        self.assertEqual(merged["apikey"], "")
        self.assertEqual(merged["enablepass"], "1")

    def test_every_documented_field(self) -> None:
        """Every field of LRR-NOTES §2.4 has a default."""
        for name in ["htmltitle", "motd", "dirname", "thumbdir", "pagesize", "enablepass",
                     "password", "nofunmode", "enablecors", "enablemetrics", "disableopenapi",
                     "apikey", "localprogress", "authprogress", "tagruleson", "tagrules",
                     "enableresize", "sizethreshold", "readerquality", "theme", "usedateadded",
                     "usedatemodified", "enablecryptofs", "hqthumbpages", "jxlthumbpages",
                     "replacedupe", "replacetitles", "language", "excludednamespaces", "devmode"]:
            self.assertIn(name, DEFAULTS)
