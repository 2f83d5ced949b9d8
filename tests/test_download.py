"""The guarded HTTP client and the download_url job, against loopback servers started here.

Every server listens on 127.0.0.1 or 127.0.0.2 only. Refusal tests point names (through an
injected resolver) or redirects at loopback servers that count their hits, and prove that none
arrives; the other refused addresses (169.254.169.254, 10.x) are refused before any connection.
"""

from __future__ import annotations

import io
import uuid
import zipfile
from pathlib import Path
from typing import Any

from twisted.internet import reactor
from twisted.internet.defer import Deferred
from twisted.internet.protocol import Factory, Protocol
from twisted.trial.unittest import SynchronousTestCase
from twisted.web import resource, server

from lrrd.config import Settings
from lrrd.download import (
    AddressRefused,
    DownloadError,
    DownloadTimeout,
    DownloadTooLarge,
    GuardedHttpClient,
    HttpLimits,
    download_url,
    filename_from_response,
    refusal_reason,
)
from tests.fixtures.app import ApiTestCase
from tests.fixtures.archives import numbered_pages
from tests.fixtures.library import LibraryTestCase

FAST = HttpLimits(max_size=1024 * 1024, connect_timeout=2.0, idle_timeout=0.5,
                  total_timeout=10.0)


def d(coro: Any) -> Deferred[Any]:
    return Deferred.fromCoroutine(coro)


def cbz_bytes(pages: int = 2) -> bytes:
    out = io.BytesIO()
    with zipfile.ZipFile(out, "w") as archive:
        for name, data in numbered_pages(pages):
            archive.writestr(name, data)
    return out.getvalue()


class Counting(resource.Resource):
    """Serves files, redirects, endless and stalled bodies; counts every request it sees."""

    isLeaf = True

    def __init__(self) -> None:
        super().__init__()
        self.hits = 0
        self.files: dict[bytes, tuple[bytes, dict[bytes, bytes]]] = {}
        self.redirects: dict[bytes, bytes] = {}
        self.pending: list[Any] = []

    def render(self, request: Any) -> Any:
        self.hits += 1
        path = request.path
        if path in self.redirects:
            request.redirect(self.redirects[path])
            return b""
        if path in self.files:
            body, headers = self.files[path]
            for name, value in headers.items():
                request.setHeader(name, value)
            return body
        if path == b"/endless":
            Endless(request).start()
            return server.NOT_DONE_YET
        if path == b"/announced-huge":
            request.setHeader(b"content-length", b"2147483648")
            request.write(b"x" * 1024)
            self.pending.append(request)
            return server.NOT_DONE_YET
        if path == b"/stall-body":
            request.setHeader(b"content-length", b"100000")
            request.write(b"x" * 10)
            self.pending.append(request)
            return server.NOT_DONE_YET
        request.setResponseCode(404)
        return b"no"


class Endless:
    """A body that never ends (a "2 GB" response), bounded at 64 MiB so the test cannot run away."""

    def __init__(self, request: Any) -> None:
        self.request = request
        self.sent = 0
        self.stopped = False
        request.notifyFinish().addBoth(self._gone)

    def _gone(self, _: Any) -> None:
        self.stopped = True

    def start(self) -> None:
        self.request.registerProducer(self, False)

    def resumeProducing(self) -> None:  # noqa: N802
        if self.stopped or self.sent > 64 * 1024 * 1024:
            return
        self.request.write(b"y" * 65536)
        self.sent += 65536

    def pauseProducing(self) -> None:  # noqa: N802
        pass

    def stopProducing(self) -> None:  # noqa: N802
        self.stopped = True


class Silent(Protocol):
    """Accepts the connection and never says a word."""


class LoopbackServers:
    """Mixin: start counting web servers on loopback addresses, stopped after each test."""

    def serve(self, interface: str = "127.0.0.1") -> tuple[Counting, str]:
        root = Counting()
        port = reactor.listenTCP(0, server.Site(root), interface=interface)
        self.addCleanup(port.stopListening)  # type: ignore[attr-defined]
        self.addCleanup(self._drop_pending, root)  # type: ignore[attr-defined]
        return root, f"http://{interface}:{port.getHost().port}"

    @staticmethod
    def _drop_pending(root: Counting) -> None:
        for request in root.pending:
            if request.channel is not None and request.channel.transport is not None:
                request.channel.transport.abortConnection()

    def serve_silent(self) -> str:
        factory = Factory.forProtocol(Silent)
        connections: list[Protocol] = []

        def build(addr: Any) -> Protocol:
            protocol = Silent()
            connections.append(protocol)
            return protocol

        factory.buildProtocol = build  # type: ignore[method-assign]
        port = reactor.listenTCP(0, factory, interface="127.0.0.1")
        self.addCleanup(port.stopListening)  # type: ignore[attr-defined]
        self.addCleanup(lambda: [p.transport.abortConnection() for p in connections
                                 if p.transport is not None])  # type: ignore[attr-defined]
        return f"http://127.0.0.1:{port.getHost().port}"


def resolver(table: dict[str, list[str]]) -> Any:
    async def resolve(host: str, port: int) -> list[str]:
        return table[host]
    return resolve


class PolicyTests(SynchronousTestCase):
    def test_refused_addresses(self) -> None:
        """Loopback, private, link-local, multicast, unspecified, reserved and embedded IPv4
        forms are refused; public addresses pass."""
        for address in ("127.0.0.1", "127.9.9.9", "10.1.2.3", "172.16.0.1", "192.168.1.1",
                        "169.254.169.254", "100.64.0.1", "224.0.0.1", "0.0.0.0", "240.0.0.1",
                        "255.255.255.255", "::1", "::", "fe80::1", "fc00::1", "fec0::1",
                        "ff02::1", "::ffff:127.0.0.1", "::ffff:10.0.0.1", "64:ff9b::a9fe:a9fe",
                        "2002:7f00:1::1", "::127.0.0.1"):
            self.assertIsNotNone(refusal_reason(address), address)
        for address in ("8.8.8.8", "1.1.1.1", "2606:4700:4700::1111", "93.184.216.34"):
            self.assertIsNone(refusal_reason(address), address)


class FilenameTests(SynchronousTestCase):
    def test_content_disposition_variants(self) -> None:
        """filename="…" (Latin-1 unless the charset says UTF-8), then filename*=UTF-8''…,
        then the last URL segment; Windows-invalid and control characters removed."""
        url = "http://h/dl/Last%20Segment.cbz?x=1"
        self.assertEqual(filename_from_response(b'attachment; filename="Plain.cbz"', None, url),
                         "Plain.cbz")
        utf8 = 'attachment; filename="日本.cbz"'.encode("utf-8")
        self.assertEqual(filename_from_response(utf8, "application/zip; charset=UTF-8", url),
                         "日本.cbz")
        self.assertEqual(filename_from_response(utf8, "application/zip", url),
                         "日本.cbz".encode("utf-8").decode("latin-1"))
        self.assertEqual(filename_from_response(b'attachment; filename="caf\xe9.cbz"', None, url),
                         "café.cbz")
        self.assertEqual(filename_from_response(
            b"attachment; filename*=UTF-8''%E6%97%A5%E6%9C%AC%20x.cbz", None, url), "日本 x.cbz")
        self.assertEqual(filename_from_response(None, None, url), "Last Segment.cbz")
        self.assertEqual(filename_from_response(b"inline", None, "http://h/a/b.zip/"), "b.zip")
        self.assertEqual(filename_from_response(
            b'attachment; filename="../a:b*c?d<e>f|g\\"h\x01.cbz"', None, url), 'h.cbz')
        self.assertEqual(filename_from_response(
            b'attachment; filename="a:b*c?d<e>f|g.cbz"', None, url), "abcdefg.cbz")
        self.assertEqual(filename_from_response(None, None, "http://h/"), "h")
        self.assertEqual(filename_from_response(b'filename=""', None, "http://h/x/"), "x")


class GuardTests(LoopbackServers, ApiTestCase):
    """The client alone: what reaches the network, and what is cut."""

    def client(self, **kwargs: Any) -> GuardedHttpClient:
        kwargs.setdefault("limits", FAST)
        return GuardedHttpClient(reactor, **kwargs)

    async def assert_refused(self, client: GuardedHttpClient, url: str) -> str:
        folder = Path(self.mktemp())
        with self.assertRaises(AddressRefused) as caught:
            await client.download(url, folder)
        return str(caught.exception)

    def test_name_resolving_to_loopback(self) -> Deferred[None]:
        """A name that resolves to 127.0.0.1 is refused after resolution; the server there
        sees no request."""
        async def run() -> None:
            counter, base = self.serve()
            port = base.rsplit(":", 1)[1]
            client = self.client(resolver=resolver({"evil.test": ["127.0.0.1"]}))
            message = await self.assert_refused(client, f"http://evil.test:{port}/x.cbz")
            self.assertIn("loopback", message)
            self.assertIn("allow_private_downloads", message)
            self.assertEqual(counter.hits, 0)
        return d(run())

    def test_mixed_answers_are_refused(self) -> Deferred[None]:
        """One refused address among the answers is enough to refuse the name."""
        async def run() -> None:
            counter, base = self.serve()
            port = base.rsplit(":", 1)[1]
            client = self.client(resolver=resolver({"mixed.test": ["93.184.216.34", "127.0.0.1"]}))
            await self.assert_refused(client, f"http://mixed.test:{port}/x.cbz")
            self.assertEqual(counter.hits, 0)
        return d(run())

    def test_private_and_metadata_names(self) -> Deferred[None]:
        """Names resolving to 10.x or 169.254.169.254 are refused before any connection."""
        async def run() -> None:
            client = self.client(resolver=resolver({"lan.test": ["10.0.0.1"],
                                                    "meta.test": ["169.254.169.254"]}))
            self.assertIn("private", await self.assert_refused(client, "http://lan.test/x.cbz"))
            self.assertIn("link-local", await self.assert_refused(
                client, "http://meta.test/latest/meta-data"))
        return d(run())

    def test_literal_addresses(self) -> Deferred[None]:
        """Literal 127.0.0.1, ::1 and 169.254.169.254 URLs are refused; nothing reaches the
        loopback server."""
        async def run() -> None:
            counter, base = self.serve()
            port = base.rsplit(":", 1)[1]
            client = self.client()
            await self.assert_refused(client, f"http://127.0.0.1:{port}/x.cbz")
            await self.assert_refused(client, f"http://[::1]:{port}/x.cbz")
            await self.assert_refused(client, "http://169.254.169.254/latest/meta-data")
            await self.assert_refused(client, "http://[::ffff:127.0.0.1]:%s/x" % port)
            self.assertEqual(counter.hits, 0)
        return d(run())

    def test_redirect_to_refused_address(self) -> Deferred[None]:
        """An allowed server redirecting to 127.0.0.1 or 169.254.169.254 is refused on the hop;
        the redirect target never sees a request."""
        async def run() -> None:
            front, front_base = self.serve("127.0.0.2")
            target, target_base = self.serve("127.0.0.1")
            target.files[b"/x.cbz"] = (cbz_bytes(), {})
            front.redirects[b"/to-loopback"] = (target_base + "/x.cbz").encode()
            front.redirects[b"/to-metadata"] = b"http://169.254.169.254/latest/meta-data/"
            client = self.client(allowed=["127.0.0.2/32"])
            message = await self.assert_refused(client, front_base + "/to-loopback")
            self.assertIn("127.0.0.1", message)
            await self.assert_refused(client, front_base + "/to-metadata")
            self.assertEqual(front.hits, 2)
            self.assertEqual(target.hits, 0)
        return d(run())

    def test_allowed_when_configured(self) -> Deferred[None]:
        """With allow_private the same loopback download goes through and streams to a file."""
        async def run() -> None:
            counter, base = self.serve()
            payload = cbz_bytes()
            counter.files[b"/x.cbz"] = (payload, {b"content-disposition":
                                                  b'attachment; filename="Name.cbz"'})
            folder = Path(self.mktemp())
            result = await self.client(allow_private=True).download(base + "/x.cbz", folder)
            self.assertEqual((result.filename, result.size), ("Name.cbz", len(payload)))
            self.assertEqual(result.path.read_bytes(), payload)
            self.assertEqual(counter.hits, 1)
        return d(run())

    def test_allowed_ipv6_literal(self) -> Deferred[None]:
        """An IPv6 literal URL works when allowed (and is refused by default, as above)."""
        async def run() -> None:
            root = Counting()
            try:
                port = reactor.listenTCP(0, server.Site(root), interface="::1")
            except Exception:  # noqa: BLE001
                self.skipTest("no IPv6 loopback here")
            self.addCleanup(port.stopListening)
            root.files[b"/x.cbz"] = (b"PK", {})
            result = await self.client(allow_private=True).download(
                f"http://[::1]:{port.getHost().port}/x.cbz", Path(self.mktemp()))
            self.assertEqual((result.filename, result.size), ("x.cbz", 2))
        return d(run())

    def test_size_cap(self) -> Deferred[None]:
        """An announced 2 GB body is refused at once; an endless one is cut at the cap and
        its partial file removed."""
        async def run() -> None:
            counter, base = self.serve()
            client = self.client(allow_private=True)
            folder = Path(self.mktemp())
            with self.assertRaises(DownloadTooLarge) as caught:
                await client.download(base + "/announced-huge", folder)
            self.assertIn("2147483648", str(caught.exception))
            with self.assertRaises(DownloadTooLarge) as caught:
                await client.download(base + "/endless", folder)
            self.assertIn("cut", str(caught.exception))
            self.assertEqual(list(folder.iterdir()), [])
        return d(run())

    def test_timeouts(self) -> Deferred[None]:
        """A server that never answers, and one that stops mid-body, both time out."""
        async def run() -> None:
            silent = self.serve_silent()
            client = self.client(allow_private=True)
            folder = Path(self.mktemp())
            with self.assertRaises(DownloadTimeout):
                await client.download(silent + "/x.cbz", folder)
            counter, base = self.serve()
            with self.assertRaises(DownloadTimeout):
                await client.download(base + "/stall-body", folder)
            self.assertEqual(list(folder.iterdir()), [])
        return d(run())

    def test_http_errors_and_bad_urls(self) -> Deferred[None]:
        """A 404 and a non-HTTP URL are clear errors."""
        async def run() -> None:
            _, base = self.serve()
            client = self.client(allow_private=True)
            with self.assertRaises(DownloadError) as caught:
                await client.download(base + "/missing", Path(self.mktemp()))
            self.assertIn("404", str(caught.exception))
            with self.assertRaises(DownloadError):
                await client.download("ftp://example.com/x.cbz", Path(self.mktemp()))
        return d(run())


class DownloadJobTests(LoopbackServers, LibraryTestCase):
    """The download_url job end to end: loopback allowed by setting, then the import path."""

    def make_settings(self, root: Path) -> Settings:
        return Settings(content=root / "content", data=root / "data", allow_private_downloads=True)

    def test_download_imports_and_dedups(self) -> Deferred[None]:
        """A download is imported with its source tag and category; the same URL again is
        "URL already downloaded!" without a request."""
        async def run() -> None:
            counter, base = self.serve()
            counter.files[b"/dl/file"] = (cbz_bytes(3), {
                b"content-disposition": b'attachment; filename="My Comic.cbz"'})
            category = await self.services.categories.create("Downloads")
            url = base + "/dl/file?token=1"
            result = await download_url(self.services, url, category)
            trimmed = url.split("://", 1)[1].split("?", 1)[0]
            self.assertEqual(result["success"], 1, result)
            self.assertEqual((result["url"], result["title"], result["category"]),
                             (trimmed, "My Comic", category))
            self.assertIn("Plugins used successfully", result["message"])
            self.assertIn("Added to Category 'Downloads'!", result["message"])
            fields = await self.services.archives.get_fields(result["id"], "tags", "file")
            self.assertIn(f"source:{trimmed}", str(fields["tags"]))
            self.assertTrue((self.content / "My Comic.cbz").exists())
            again = await download_url(self.services, url.replace("?token=1", "/"), None)
            self.assertEqual(again, {"success": 0, "url": trimmed, "id": result["id"],
                                     "message": "URL already downloaded!"})
            self.assertEqual(counter.hits, 1)
            self.assertEqual(list((self.settings.temp_dir / "downloads").iterdir()), [])
        return d(run())

    def test_refused_download_result(self) -> Deferred[None]:
        """With private downloads off, the job finishes with success 0 and a clear message,
        and the loopback server sees nothing."""
        async def run() -> None:
            counter, base = self.serve()
            port = base.rsplit(":", 1)[1]
            self.services.http = GuardedHttpClient(
                reactor, limits=FAST, resolver=resolver({"evil.test": ["127.0.0.1"]}))
            result = await download_url(self.services, f"http://evil.test:{port}/x.cbz", None)
            self.assertEqual(result, {
                "success": 0, "url": f"evil.test:{port}/x.cbz",
                "message": "Refused to connect to evil.test (127.0.0.1): loopback address. "
                           "Set allow_private_downloads to allow it."})
            self.assertEqual(counter.hits, 0)
        return d(run())

    def test_not_an_archive(self) -> Deferred[None]:
        """A downloaded file with no archive extension is refused as an upload would be."""
        async def run() -> None:
            counter, base = self.serve()
            counter.files[b"/page.html"] = (b"<html></html>", {})
            result = await download_url(self.services, base + "/page.html", None)
            self.assertEqual(result["success"], 0)
            self.assertEqual(result["message"], "Unsupported file extension (page.html)")
        return d(run())


class DownloadApiTests(ApiTestCase):
    def test_queue(self) -> Deferred[None]:
        """multipart url/catid → the original's body; the job holds [url, catid] at priority 1
        with 5 attempts; query parameters work too."""
        async def run() -> None:
            boundary = uuid.uuid4().hex
            url = "http://127.0.0.1:9/nothing.cbz"
            body = (f"--{boundary}\r\nContent-Disposition: form-data; name=\"url\"\r\n\r\n{url}\r\n"
                    f"--{boundary}--\r\n").encode()
            response = await self.request(
                "POST", "/api/download_url", auth=True, data=body,
                headers={"Content-Type": f"multipart/form-data; boundary={boundary}"})
            self.assertEqual(response.status, 200, response.body)
            self.assertEqual({k: v for k, v in response.json.items() if k != "job"},
                             {"operation": "download_url", "url": url, "category": None,
                              "success": 1})
            detail = (await self.get(f"/api/minion/{response.json['job']}/detail", auth=True)).json
            self.assertEqual((detail["task"], detail["args"], detail["priority"], detail["attempts"]),
                             ("download_url", [url, None], 1, 5))
            query = await self.request("POST", "/api/download_url?url=http%3A%2F%2Fa.b%2Fc.zip"
                                               "&catid=SET_1234567890", auth=True)
            self.assertEqual((query.json["url"], query.json["category"]),
                             ("http://a.b/c.zip", "SET_1234567890"))
        return d(run())

    def test_missing_url(self) -> Deferred[None]:
        """No url → 400 "No URL specified."."""
        async def run() -> None:
            response = await self.request("POST", "/api/download_url", auth=True)
            self.assertEqual(response.status, 400)
            self.assertEqual(response.json["error"], "No URL specified.")
            self.assertEqual(response.json["operation"], "download_url")
        return d(run())
