"""Outbound HTTP (DESIGN.md decision 8) and the ``download_url`` job (LRR-NOTES §8.2).

Every request lrrd makes to the outside goes through ``GuardedHttpClient``: treq over an agent whose
endpoint factory resolves the host itself, refuses loopback, private, link-local, multicast,
unspecified and reserved addresses (IPv4 and IPv6, embedded IPv4 included) and then connects to the
very address it checked, so a DNS answer cannot change between check and connect. Redirects go
through the same factory, so each hop is checked again. Bodies stream to a temporary file under a
size cap, with connect, idle and total time limits. Downloads end in the uploads' import path.
"""

from __future__ import annotations

import ipaddress
import os
import re
import socket
import uuid
from dataclasses import dataclass, field, replace
from http.cookiejar import Cookie, CookieJar
from pathlib import Path
from typing import TYPE_CHECKING, Any, Awaitable, Callable, Iterable, Mapping, Sequence, cast
from urllib.parse import unquote, urlsplit

from treq.client import HTTPClient
from twisted.internet.defer import CancelledError, Deferred
from twisted.internet.endpoints import TCP4ClientEndpoint, TCP6ClientEndpoint, wrapClientTLS
from twisted.internet.interfaces import IPushProducer, IStreamClientEndpoint
from twisted.internet.protocol import Protocol
from twisted.internet.threads import deferToThread
from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.client import (
    Agent,
    BrowserLikePolicyForHTTPS,
    CookieAgent,
    HTTPConnectionPool,
    PartialDownloadError,
    RedirectAgent,
    ResponseDone,
    ResponseFailed,
    ResponseNeverReceived,
)
from twisted.web.http import PotentialDataLoss
from twisted.web.http_headers import Headers
from twisted.web.iweb import IAgentEndpointFactory, IResponse
from zope.interface import implementer

from lrrd.logtext import log_text

if TYPE_CHECKING:
    from lrrd.jobs.worker import JobContext
    from lrrd.services import Services

__all__ = [
    "AddressRefused",
    "DownloadError",
    "DownloadTimeout",
    "DownloadTooLarge",
    "Downloaded",
    "GuardedHttpClient",
    "HttpLimits",
    "HttpResponse",
    "LoginSession",
    "download_url",
    "filename_from_response",
    "refusal_reason",
    "register_download_tasks",
]

log = Logger()

GiB = 1024 * 1024 * 1024
#: What a browser-ish client says unless a login plugin gives its own.
DEFAULT_USER_AGENT = "Mozilla/5.0 (compatible; lrrd; +LANraragi-compatible)"
_CHUNK_FLUSH = 1024 * 1024
_PAUSE_ABOVE = 8 * 1024 * 1024


class DownloadError(Exception):
    """The download failed; the message is what the job result shows."""


class AddressRefused(DownloadError):
    """The host resolves to an address lrrd must not contact (loopback, private, metadata...)."""


class DownloadTooLarge(DownloadError):
    """The response is (or announces itself as) larger than the cap."""


class DownloadTimeout(DownloadError):
    """The server did not connect, answer or send data in time."""


@dataclass(frozen=True)
class HttpLimits:
    """How much and how long: ``max_size`` bytes per body; seconds to connect, between two
    arrivals of data (including the wait for the response head), and for the whole request."""

    max_size: int = 4 * GiB
    connect_timeout: float = 30.0
    idle_timeout: float = 60.0
    total_timeout: float = 4 * 3600.0
    max_redirects: int = 5


@dataclass(frozen=True)
class LoginSession:
    """What a login plugin hands to the HTTP client: cookies per domain, user agent, headers."""

    cookies: Mapping[str, Mapping[str, str]] = field(default_factory=dict)
    user_agent: str | None = None
    headers: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class HttpResponse:
    """A small response read whole (pages, JSON APIs for scrapers)."""

    code: int
    headers: Headers
    body: bytes
    url: str

    def header(self, name: str) -> str | None:
        values = self.headers.getRawHeaders(name)
        return values[0] if values else None

    def text(self) -> str:
        return self.body.decode(_charset(self.header("content-type")) or "utf-8", "replace")


@dataclass(frozen=True)
class Downloaded:
    """A body streamed to ``path``; ``filename`` follows the original's rules (§8.2)."""

    path: Path
    filename: str
    size: int
    code: int
    content_type: str | None


# ---- address policy -----------------------------------------------------------------------------

_IPAddress = ipaddress.IPv4Address | ipaddress.IPv6Address
_NAT64 = ipaddress.ip_network("64:ff9b::/96")


def _embedded_ipv4(ip: ipaddress.IPv6Address) -> list[ipaddress.IPv4Address]:
    """IPv4 addresses an IPv6 address leads to (mapped, 6to4, Teredo, NAT64, compatible)."""
    found = []
    if ip.ipv4_mapped is not None:
        found.append(ip.ipv4_mapped)
    if ip.sixtofour is not None:
        found.append(ip.sixtofour)
    if ip.teredo is not None:
        found.append(ip.teredo[1])
    if ip in _NAT64 or int(ip) >> 32 == 0:
        found.append(ipaddress.IPv4Address(int(ip) & 0xFFFFFFFF))
    return found


def refusal_reason(address: str | _IPAddress) -> str | None:
    """Why lrrd must not connect to ``address``, or None when it is an ordinary public address."""
    ip = ipaddress.ip_address(address) if isinstance(address, str) else address
    checks = (
        ("loopback", ip.is_loopback),
        ("unspecified", ip.is_unspecified),
        ("link-local", ip.is_link_local),
        ("multicast", ip.is_multicast),
        ("private", ip.is_private),
        ("reserved", ip.is_reserved),
        ("site-local", isinstance(ip, ipaddress.IPv6Address) and ip.is_site_local),
    )
    for reason, hit in checks:
        if hit:
            return reason
    if isinstance(ip, ipaddress.IPv6Address):
        for inner in _embedded_ipv4(ip):
            why = refusal_reason(inner)
            if why is not None:
                return f"{why} (embedded IPv4 {inner})"
    if not ip.is_global:
        return "not a public address"
    return None


Resolver = Callable[[str, int], Awaitable[list[str]]]


async def system_resolve(host: str, port: int) -> list[str]:
    """Every address ``getaddrinfo`` gives for ``host`` (in a thread: it blocks)."""
    infos = await deferToThread(socket.getaddrinfo, host, port, 0, socket.SOCK_STREAM)
    seen: list[str] = []
    for _family, _type, _proto, _name, sockaddr in infos:
        address = str(sockaddr[0]).split("%", 1)[0]
        if address not in seen:
            seen.append(address)
    return seen


def _literal(host: str) -> _IPAddress | None:
    try:
        return ipaddress.ip_address(host.strip("[]"))
    except ValueError:
        return None


@implementer(IStreamClientEndpoint)
class _GuardedEndpoint:
    """Resolve, check every address, connect to a checked one: no request reaches a refused host."""

    def __init__(self, factory: GuardedEndpointFactory, scheme: bytes, host: bytes, port: int) -> None:
        self._factory = factory
        self._scheme = scheme
        # Hosts arrive as the ASCII form (IDN names already punycoded, IPv6 without brackets).
        self._host = host.decode("ascii", "replace") if isinstance(host, bytes) else str(host)
        self._port = port

    def connect(self, protocol_factory: Any) -> Deferred[Any]:
        return Deferred.fromCoroutine(self._connect(protocol_factory))

    async def _connect(self, protocol_factory: Any) -> Any:
        factory = self._factory
        host = self._host
        literal = _literal(host)
        if literal is not None:
            addresses = [str(literal)]
        else:
            try:
                addresses = await factory.resolve(host, self._port)
            except OSError as exc:
                raise DownloadError(f"Cannot resolve {host}: {exc.strerror or exc}") from None
        if not addresses:
            raise DownloadError(f"Cannot resolve {host}: no addresses")
        usable = []
        for address in addresses:
            reason = factory.refusal(address)
            if reason is not None:
                # One refused answer is enough to distrust the name (rebinding tricks mix them).
                log.warn("Refusing to connect to {host} ({address}): {reason}", host=host,
                         address=address, reason=reason)
                raise AddressRefused(
                    f"Refused to connect to {host} ({address}): {reason} address. "
                    "Set allow_private_downloads to allow it.")
            usable.append(address)
        address = usable[0]
        endpoint_type = TCP6ClientEndpoint if ":" in address else TCP4ClientEndpoint
        endpoint: Any = endpoint_type(factory.reactor, address, self._port,
                                      timeout=factory.limits.connect_timeout)
        if self._scheme == b"https":
            creator = factory.tls_policy.creatorForNetloc(host.encode("ascii"), self._port)
            endpoint = wrapClientTLS(creator, endpoint)
        try:
            return await endpoint.connect(protocol_factory)
        except Exception as exc:
            if type(exc).__name__ == "TimeoutError":
                raise DownloadTimeout(f"Connecting to {host} timed out.") from None
            raise


@implementer(IAgentEndpointFactory)
class GuardedEndpointFactory:
    """The agent's only way to the network."""

    def __init__(self, reactor: Any, limits: HttpLimits, allow_private: bool,
                 allowed: Sequence[ipaddress.IPv4Network | ipaddress.IPv6Network] = (),
                 resolver: Resolver | None = None) -> None:
        self.reactor = reactor
        self.limits = limits
        self.allow_private = allow_private
        self.allowed = tuple(allowed)
        self.resolve: Resolver = resolver or system_resolve
        self.tls_policy = BrowserLikePolicyForHTTPS()

    def refusal(self, address: str) -> str | None:
        if self.allow_private:
            return None
        ip = ipaddress.ip_address(address)
        if any(ip in network for network in self.allowed):
            return None
        return refusal_reason(ip)

    def endpointForURI(self, uri: Any) -> IStreamClientEndpoint:  # noqa: N802 (Twisted's name)
        if uri.scheme not in (b"http", b"https"):
            raise DownloadError(f"Unsupported URL scheme: {uri.scheme.decode('ascii', 'replace')}")
        return _GuardedEndpoint(self, uri.scheme, uri.host, uri.port)  # type: ignore[return-value]


# ---- streaming a body ---------------------------------------------------------------------------

class _BodyReceiver(Protocol):
    """Counts, caps and times a response body; hands full chunks to ``sink`` (a pool thread)."""

    def __init__(self, client: GuardedHttpClient, limit: int, sink: Callable[[bytes], Deferred[Any]],
                 done: Deferred[int]) -> None:
        self._client = client
        self._limit = limit
        self._sink = sink
        self._done = done
        self._buffer = bytearray()
        self._writing: Deferred[Any] | None = None
        self._paused = False
        self._received = 0
        self._ended: Failure | None = None
        self._finished = False
        self._idle: Any = None

    def connectionMade(self) -> None:  # noqa: N802
        self._arm()

    def _arm(self) -> None:
        if self._idle is not None and self._idle.active():
            self._idle.reset(self._client.limits.idle_timeout)
        else:
            self._idle = self._client.reactor.callLater(self._client.limits.idle_timeout,
                                                        self._timed_out)

    def _timed_out(self) -> None:
        self.abort(DownloadTimeout("The server stopped sending data."))

    def abort(self, reason: DownloadError) -> None:
        """Stop reading (the connection is dropped) and fail with ``reason``."""
        if self._ended is None:
            self._ended = Failure(reason)
            if self.transport is not None:
                cast(IPushProducer, self.transport).stopProducing()
            self._settle()

    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if self._ended is not None:
            return
        self._received += len(data)
        if self._received > self._limit:
            self.abort(DownloadTooLarge(
                f"The download is larger than the limit of {self._limit} bytes; it was cut."))
            return
        self._arm()
        self._buffer += data
        self._flush()
        if len(self._buffer) > _PAUSE_ABOVE and not self._paused and self.transport is not None:
            self._paused = True
            cast(IPushProducer, self.transport).pauseProducing()

    def _flush(self, final: bool = False) -> None:
        if self._writing is not None or not (len(self._buffer) >= _CHUNK_FLUSH or (final and self._buffer)):
            return
        chunk, self._buffer = bytes(self._buffer), bytearray()
        self._writing = self._sink(chunk)
        self._writing.addCallbacks(self._written, self._write_failed)

    def _written(self, _: Any) -> None:
        self._writing = None
        if self._paused and len(self._buffer) <= _PAUSE_ABOVE and self._ended is None:
            self._paused = False
            if self.transport is not None:
                cast(IPushProducer, self.transport).resumeProducing()
        self._flush(final=self._ended is not None)
        self._settle()

    def _write_failed(self, failure: Failure) -> None:
        self._writing = None
        self.abort(DownloadError(f"Cannot write the download: {failure.getErrorMessage()}"))

    def connectionLost(self, reason: Failure = Failure(ResponseDone())) -> None:  # noqa: N802
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        if self._ended is None:
            if reason.check(ResponseDone, PotentialDataLoss):
                self._ended = Failure(ResponseDone())
            else:
                self._ended = Failure(DownloadError(
                    f"The connection broke during the download: {reason.getErrorMessage()}"))
        self._flush(final=True)
        self._settle()

    def _settle(self) -> None:
        if self._finished or self._writing is not None or self._ended is None:
            return
        if self._ended.check(ResponseDone) and self._buffer:
            return
        self._finished = True
        if self._idle is not None and self._idle.active():
            self._idle.cancel()
        if self._ended.check(ResponseDone):
            self._done.callback(self._received)
        else:
            self._done.errback(self._ended)


# ---- the client ---------------------------------------------------------------------------------

def _charset(content_type: str | None) -> str | None:
    if not content_type:
        return None
    match = re.search(r"charset\s*=\s*\"?([\w.:-]+)", content_type, re.IGNORECASE)
    return match.group(1) if match else None


def _cookie(domain: str, name: str, value: str) -> Cookie:
    return Cookie(version=0, name=name, value=value, port=None, port_specified=False,
                  domain=domain, domain_specified=True, domain_initial_dot=domain.startswith("."),
                  path="/", path_specified=True, secure=False, expires=None, discard=True,
                  comment=None, comment_url=None, rest={})


def _first_error(failure: Failure) -> BaseException:
    """The lrrd error hidden in a Twisted client failure (ResponseFailed wraps its reasons)."""
    value = failure.value
    if isinstance(value, (ResponseFailed, ResponseNeverReceived)):
        for reason in getattr(value, "reasons", []):
            if isinstance(reason, Failure) and isinstance(reason.value, DownloadError):
                return reason.value
    return value


class GuardedHttpClient:
    """treq behind the address guard, with limits and an optional login session.

    ``allowed`` lists networks that are let through even when ``allow_private`` is off (a NAS on
    the LAN, or the loopback test servers); ``resolver`` replaces DNS (tests). ``run_io`` runs
    blocking file writes; the reactor's thread pool when not given.
    """

    def __init__(
        self,
        reactor: Any,
        *,
        allow_private: bool = False,
        limits: HttpLimits = HttpLimits(),
        allowed: Iterable[str] = (),
        resolver: Resolver | None = None,
        session: LoginSession | None = None,
        run_io: Callable[..., Deferred[Any]] | None = None,
    ) -> None:
        self.reactor = reactor
        self.limits = limits
        self.allow_private = allow_private
        self.allowed = tuple(ipaddress.ip_network(net, strict=False) for net in allowed)
        self.resolver = resolver
        self.session = session or LoginSession()
        self._run_io = run_io or (lambda fn, *a, **k: deferToThread(fn, *a, **k))
        self.endpoints = GuardedEndpointFactory(reactor, limits, allow_private, self.allowed,
                                                resolver)

    def with_session(self, session: LoginSession | None) -> GuardedHttpClient:
        """The same guard and limits, with a login plugin's cookies and user agent."""
        return GuardedHttpClient(self.reactor, allow_private=self.allow_private,
                                 limits=self.limits, allowed=[str(n) for n in self.allowed],
                                 resolver=self.resolver, session=session, run_io=self._run_io)

    def with_limits(self, **changes: Any) -> GuardedHttpClient:
        client = self.with_session(self.session)
        client.limits = replace(self.limits, **changes)
        client.endpoints.limits = client.limits
        return client

    def _treq(self) -> tuple[HTTPClient, HTTPConnectionPool]:
        pool = HTTPConnectionPool(self.reactor, persistent=False)
        agent = Agent.usingEndpointFactory(self.reactor, self.endpoints, pool=pool)
        redirecting = RedirectAgent(agent, redirectLimit=self.limits.max_redirects)
        jar = CookieJar()
        for domain, cookies in self.session.cookies.items():
            for name, value in cookies.items():
                jar.set_cookie(_cookie(domain, name, value))
        return HTTPClient(redirecting, cookiejar=jar), pool  # type: ignore[arg-type]

    def _headers(self, extra: Mapping[str, str] | None) -> dict[str, list[str]]:
        headers = {"User-Agent": [self.session.user_agent or DEFAULT_USER_AGENT]}
        for source in (self.session.headers, extra or {}):
            for name, value in source.items():
                headers[name] = [value]
        return headers

    async def _open(self, method: str, url: str, headers: Mapping[str, str] | None,
                    **kwargs: Any) -> tuple[IResponse, HTTPConnectionPool]:
        """Send the request; the response head must arrive within the idle timeout."""
        parts = urlsplit(url)
        if parts.scheme.lower() not in ("http", "https") or not parts.hostname:
            raise DownloadError(f"Not a proper URL: {url}")
        client, pool = self._treq()
        if ":" in parts.hostname:
            # hyperlink (under treq) cannot put an IPv6 literal back into a URL; the agent
            # underneath can, and the guard is the same.
            agent = CookieAgent(client._agent, client._cookiejar)  # noqa: SLF001
            pending: Deferred[Any] = agent.request(method.encode("ascii"), url.encode("ascii"),
                                    Headers(self._headers(headers)))
        else:
            pending = client.request(method, url, headers=self._headers(headers),  # type: ignore[arg-type]
                                     allow_redirects=False, unbuffered=True, **kwargs)
        expired: list[bool] = []

        def expire() -> None:
            expired.append(True)
            pending.cancel()

        timer = self.reactor.callLater(self.limits.idle_timeout, expire)
        try:
            response = await pending
        except DownloadError:
            raise
        except Exception as exc:
            if expired or isinstance(exc, CancelledError):
                raise DownloadTimeout(f"{parts.hostname} did not answer in time.") from None
            error = _first_error(Failure(exc))
            if isinstance(error, DownloadError):
                raise error from None
            raise DownloadError(_describe(error)) from None
        finally:
            if timer.active():
                timer.cancel()
        return response, pool

    async def _body(self, response: IResponse, limit: int,
                    sink: Callable[[bytes], Deferred[Any]]) -> int:
        length = response.length
        if isinstance(length, int) and length > limit:
            response.deliverBody(_Discard())  # type: ignore[call-arg]
            raise DownloadTooLarge(
                f"The download announces {length} bytes, over the limit of {limit} bytes.")
        done: Deferred[int] = Deferred()
        receiver = _BodyReceiver(self, limit, sink, done)
        response.deliverBody(receiver)  # type: ignore[call-arg]
        deadline = self.reactor.callLater(
            self.limits.total_timeout,
            lambda: receiver.abort(DownloadTimeout("The download took too long.")))
        try:
            received = await done
        finally:
            if deadline.active():
                deadline.cancel()
        if isinstance(length, int) and received != length:
            raise DownloadError(f"Received {received} bytes where {length} were announced.")
        return received

    async def get(self, url: str, *, headers: Mapping[str, str] | None = None,
                  max_size: int = 16 * 1024 * 1024) -> HttpResponse:
        """A small document read into memory (scraper plugins): capped at ``max_size``."""
        response, pool = await self._open("GET", url, headers)
        chunks: list[bytes] = []

        def keep(chunk: bytes) -> Deferred[None]:
            chunks.append(chunk)
            return Deferred.fromCoroutine(_nothing())

        try:
            await self._body(response, min(max_size, self.limits.max_size), keep)
        finally:
            await pool.closeCachedConnections()
        return HttpResponse(response.code, response.headers, b"".join(chunks),
                            _final_url(response, url))

    async def download(self, url: str, folder: Path, *,
                       headers: Mapping[str, str] | None = None) -> Downloaded:
        """Stream ``url`` into a new file in ``folder`` (made if needed); raises DownloadError."""
        response, pool = await self._open("GET", url, headers)
        try:
            if response.code >= 400:
                response.deliverBody(_Discard())  # type: ignore[call-arg]
                raise DownloadError(f"The server answered {response.code} "
                                    f"{response.phrase.decode('latin-1', 'replace')}.")
            await self._run_io(folder.mkdir, parents=True, exist_ok=True)
            target = folder / f"download-{uuid.uuid4().hex}.part"
            handle = await self._run_io(open, target, "xb")
            try:
                size = await self._body(response, self.limits.max_size,
                                        lambda chunk: self._run_io(handle.write, chunk))
            except BaseException:
                await self._run_io(handle.close)
                await self._run_io(_unlink_quietly, target)
                raise
            await self._run_io(handle.close)
        finally:
            await pool.closeCachedConnections()
        content_type = _header(response.headers, "content-type")
        filename = filename_from_response(_header(response.headers, "content-disposition",
                                                  raw=True), content_type, url)
        return Downloaded(path=target, filename=filename, size=size, code=response.code,
                          content_type=content_type)


class _Discard(Protocol):
    def dataReceived(self, data: bytes) -> None:  # noqa: N802
        if self.transport is not None:
            cast(IPushProducer, self.transport).stopProducing()

    def connectionLost(self, reason: Failure | None = None) -> None:  # noqa: N802
        pass


async def _nothing() -> None:
    return None


def _unlink_quietly(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


def _header(headers: Headers, name: str, raw: bool = False) -> Any:
    values = headers.getRawHeaders(name.encode("ascii"))
    if not values:
        return None
    return values[0] if raw else values[0].decode("latin-1")


def _final_url(response: IResponse, fallback: str) -> str:
    request = getattr(response, "request", None)
    uri = getattr(request, "absoluteURI", None)
    return uri.decode("utf-8", "replace") if isinstance(uri, bytes) else fallback


def _describe(error: BaseException) -> str:
    if isinstance(error, PartialDownloadError):
        return "The download was cut short."
    text = str(error) or type(error).__name__
    if isinstance(error, ResponseFailed):
        reasons = [r.getErrorMessage() for r in getattr(error, "reasons", []) if isinstance(r, Failure)]
        text = "; ".join(reasons) or text
    if "Connection was refused" in text or "ConnectionRefused" in text:
        return "Connection refused"
    return text


# ---- file names (§8.2) ----------------------------------------------------------------------------

_WINDOWS_INVALID = re.compile(r'[\\/:"*?<>|]')


def filename_from_response(disposition: bytes | None, content_type: str | None, url: str) -> str:
    """The original's rules: ``filename="…"`` (UTF-8 when the Content-Type charset says so, else
    Latin-1), then ``filename*=UTF-8''…`` (percent-decoded), then the last URL segment; Windows-
    invalid characters and control characters removed. Truncation is left to the caller, which
    knows the content folder's byte limit.
    """
    name = ""
    if disposition:
        charset = (_charset(content_type) or "").lower().replace("_", "-")
        text = disposition.decode("utf-8" if charset in ("utf-8", "utf8") else "latin-1", "replace")
        quoted = re.search(r'filename="(.*)"', text, re.IGNORECASE)
        extended = re.search(r"filename\*\s*=\s*UTF-8''([^;\s]*)", text, re.IGNORECASE)
        if quoted and quoted.group(1).strip():
            name = quoted.group(1)
        elif extended and extended.group(1):
            name = unquote(extended.group(1), encoding="utf-8", errors="replace")
    if not name:
        # The original takes the last segment of the whole URL, so a bare host names the file.
        parts = urlsplit(url)
        path = (parts.netloc + parts.path).rstrip("/")
        name = unquote(path.rsplit("/", 1)[-1], encoding="utf-8", errors="replace")
    name = name.replace("\\", "/").rsplit("/", 1)[-1]
    name = _WINDOWS_INVALID.sub("", name)
    name = "".join(ch for ch in name if ord(ch) >= 32 and ord(ch) != 127).strip()
    return name if name not in ("", ".", "..") else "download"


# ---- the download_url job -----------------------------------------------------------------------

def _result(**fields: Any) -> dict[str, Any]:
    return {name: value for name, value in fields.items()}


async def download_url(services: Services, url: str, catid: str | None) -> dict[str, Any]:
    """Everything ``download_url`` does (§8.2); returns the original's job result, never raises
    for a failed download (the job then finishes with ``success: 0`` and a message)."""
    from lrrd.library.uploads import (
        UploadRefused,
        byte_limit,
        handle_incoming_file,
        truncate_filename,
    )
    from lrrd.store.archives import trim_url
    from lrrd.store.config import flag

    url = url.strip()
    trimmed = trim_url(url)
    if not url:
        return _result(success=0, url=trimmed, message="No URL specified.")
    existing = await services.archives.url_owner(trimmed)
    if existing:
        return _result(success=0, url=trimmed, id=existing, message="URL already downloaded!")

    client: GuardedHttpClient = services.http
    folder = services.settings.temp_dir / "downloads" / uuid.uuid4().hex
    target_url = url
    already: Path | None = None
    runner = services.plugins
    plugin = runner.registry.downloader_for(url)
    if plugin is not None:
        log.info("Download of {url}: using plugin {ns}", url=url, ns=plugin.info.namespace)
        provided = await runner.exec_download(plugin, url)
        if "error" in provided:
            return _result(success=0, url=url, message=str(provided["error"]))
        client = provided.get("client", client)
        if provided.get("file_path"):
            already = Path(str(provided["file_path"]))
        else:
            target_url = str(provided.get("download_url") or "")
            if not target_url:
                return _result(success=0, url=url, message=(
                    "Plugin ran to completion but didn't provide a final URL for us to download."))
            log.info("URL transformed by plugin to {url}", url=target_url)

    try:
        if already is not None:
            path, filename = already, already.name
        else:
            downloaded = await client.download(target_url, folder)
            path, filename = downloaded.path, downloaded.filename
            log.info("Downloaded {url}: {size} bytes as {name!r}", url=log_text(target_url),
                     size=downloaded.size, name=filename)
        config = await services.config.get("enablecryptofs")
        try:
            filename = truncate_filename(filename, byte_limit(flag(config["enablecryptofs"])))
        except UploadRefused as refused:
            return _result(success=0, url=trimmed, message=refused.message)
        try:
            result = await handle_incoming_file(services, path, filename, category_id=catid,
                                                tags=f"source:{trimmed}")
        except UploadRefused as refused:
            return _result(success=0, url=trimmed, id=refused.arcid, category=catid,
                           title=filename, message=refused.message)
        return _result(success=1, url=trimmed, id=result.arcid, category=catid,
                       title=result.title, message=result.message)
    except DownloadError as exc:
        log.warn("Download of {url} failed: {error}", url=log_text(target_url),
                 error=log_text(str(exc)))
        return _result(success=0, url=trimmed, message=str(exc))
    finally:
        await services.pools.run_io(_remove_folder, folder)


def _remove_folder(folder: Path) -> None:
    import shutil

    shutil.rmtree(folder, ignore_errors=True)


async def download_url_task(job: JobContext, url: Any = "", catid: Any = None) -> dict[str, Any]:
    """The ``download_url`` Minion task: args ``[url, catid]`` as the original queues them."""
    category = str(catid) if catid not in (None, "") else None
    return await download_url(job.services, str(url or ""), category)


def register_download_tasks(registry: Any) -> None:
    registry.register("download_url", download_url_task)
