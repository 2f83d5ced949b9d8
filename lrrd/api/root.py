"""The ``/api`` root: contract matching, authentication, No-Fun mode, CORS and error JSON in one place.

Each request is matched against the OpenAPI contract first, so every path of the spec answers
(501 until built), security follows the spec's per-operation flags exactly, and the area's Klein
app only ever sees requests that are authorised and well-formed.
"""

from __future__ import annotations

from typing import Any, Awaitable, Callable, Iterable, Mapping

from twisted.internet.defer import Deferred
from twisted.logger import Logger
from twisted.web import resource, server
from twisted.web.iweb import IRequest

from lrrd.api.auth import has_valid_key, is_authenticated
from lrrd.api.contract import Contract, validate_body, validate_request
from lrrd.api.errors import ValidationFailed, finish_with, finish_with_failure, write_json
from lrrd.store.config import AccessSettings
from lrrd.store.redis import StoreUnavailable

log = Logger()

CORS_HEADERS = (
    (b"Access-Control-Allow-Origin", b"*"),
    (b"Access-Control-Allow-Methods", b"GET, OPTIONS, POST, DELETE, PUT"),
    (b"Access-Control-Allow-Headers", b"Authorization"),
)

NOFUN_BODY = {"error": "This API is protected and requires login or an API Key."}

#: Set on the request for handlers: the matched operation, the access settings, and whether
#: the caller proved the API key (progress updates with ``authprogress`` need that).
OPERATION_ATTR = "lrrd_operation"
ACCESS_ATTR = "lrrd_access"
AUTHENTICATED_ATTR = "lrrd_authenticated"


def implemented_operations(area: Any) -> set[str]:
    """The operationIds an area's Klein app has routes for (its routes' endpoint names)."""
    return {rule.endpoint for rule in area.app.url_map.iter_rules()}


def decode_segments(segments: Iterable[bytes]) -> str | None:
    try:
        return "/" + "/".join(segment.decode("utf-8") for segment in segments)
    except UnicodeDecodeError:
        return None


def query_arguments(request: IRequest) -> dict[str, list[str]]:
    """Query and form fields decoded as UTF-8 (undecodable values are kept with replacement)."""
    args = getattr(request, "args", None) or {}
    return {
        key.decode("utf-8", "replace"): [value.decode("utf-8", "replace") for value in values]
        for key, values in args.items()
        if isinstance(key, bytes)
    }


def _has_body(request: IRequest) -> bool:
    content = getattr(request, "content", None)
    if content is None:
        return False
    try:
        position = content.tell()
        content.seek(0, 2)
        size = content.tell()
        content.seek(position)
    except (OSError, ValueError):
        return False
    return size > 0


class AsyncJsonResource(resource.Resource):
    """A leaf resource that answers from the coroutine ``_serve``; any failure answers JSON."""

    isLeaf = True

    def render(self, request: IRequest) -> int:
        d = Deferred.fromCoroutine(self._serve(request))
        d.addErrback(finish_with_failure, request)
        return server.NOT_DONE_YET

    async def _serve(self, request: IRequest) -> None:
        raise NotImplementedError

    def _finish(self, request: IRequest, body: bytes) -> None:
        finish_with(request, body)


class ApiRoot(AsyncJsonResource):
    """Mounted at ``/api``; hands each authorised, valid request to its area's Klein app."""

    isLeaf = True

    def __init__(
        self,
        contract: Contract,
        areas: Iterable[Any],
        access_settings: Callable[[], Awaitable[AccessSettings]],
        is_ready: Callable[[], bool] = lambda: True,
        extra_routes: Mapping[tuple[str, str], resource.Resource] | None = None,
    ) -> None:
        super().__init__()
        self._is_ready = is_ready
        #: (method, path) → resource for routes outside the contract (``/info/metrics``); they
        #: pass the readiness and CORS gates and do their own authentication.
        self._extra_routes = dict(extra_routes or {})
        self._contract = contract
        self._access_settings = access_settings
        self._handlers: dict[str, resource.Resource] = {}
        for area in areas:
            area_resource = area.app.resource()
            for operation_id in implemented_operations(area):
                self._handlers[operation_id] = area_resource

    @property
    def implemented(self) -> frozenset[str]:
        return frozenset(self._handlers)

    async def admit(self, request: IRequest) -> AccessSettings:
        """The outer gates of every ``/api`` request and of the DataTables ``/search``:
        readiness, then the access settings (returned) and the CORS headers."""
        if not self._is_ready():
            # Start-up writes (first-start data, --api-key) are not done: answering now could
            # authenticate against a key about to change.
            raise StoreUnavailable("lrrd is starting")
        settings = await self._access_settings()
        if settings.enablecors:
            for name, value in CORS_HEADERS:
                request.setHeader(name, value)
        return settings

    async def _serve(self, request: IRequest) -> None:
        path = decode_segments(request.postpath)
        if path is None:
            self._finish(request, write_json(
                request, {"errors": [{"message": "Path is not valid UTF-8.", "path": "/"}],
                          "status": 400}, 400))
            return
        method = request.method.decode("latin-1").upper()
        settings = await self.admit(request)

        if method == "OPTIONS":
            self._options(request, path)
            return

        extra = self._extra_routes.get((method, path))
        if extra is not None:
            setattr(request, ACCESS_ATTR, settings)
            body = extra.render(request)
            if body is not server.NOT_DONE_YET:
                self._finish(request, body)
            return

        matched = self._contract.match(method, path)
        if matched is None:
            self._no_route(request, path)
            return
        operation, path_params = matched
        # Set before the gates so refused requests are counted under their endpoint too.
        setattr(request, OPERATION_ATTR, operation)

        authenticated = has_valid_key(request, settings)
        if settings.nofunmode and not authenticated:
            self._finish(request, write_json(request, NOFUN_BODY, 401))
            return
        if operation.protected and not is_authenticated(request, settings):
            self._finish(request, write_json(request, {
                "errors": [{"message": "Unauthorized", "path": "/security/0/api_key"}],
                "status": 401,
            }, 401))
            return

        problems = validate_request(operation, path_params, query_arguments(request))
        if not problems and _has_body(request):
            # Without a body the handler may take its fields from the query (old clients do).
            content_type = request.getHeader(b"content-type")
            problems = validate_body(
                operation,
                content_type.decode("latin-1") if isinstance(content_type, bytes) else content_type,
                True,
            )
        if problems:
            raise ValidationFailed(problems)

        handler = self._handlers.get(operation.operation_id)
        if handler is None:
            self._finish(request, write_json(request, {
                "operation": operation.operation_id,
                "error": "not implemented yet",
                "success": 0,
            }, 501))
            return

        setattr(request, ACCESS_ATTR, settings)
        setattr(request, AUTHENTICATED_ATTR, authenticated or not settings.enablepass)
        postpath = list(request.postpath or [])
        if len(postpath) > 1 and postpath[-1] == b"":
            # The contract ignored one trailing slash (as Mojolicious does); the Klein routes
            # have none, and their NotFound would surface as a 500.
            request.postpath = postpath[:-1]
        body = handler.render(request)
        if body is not server.NOT_DONE_YET:
            self._finish(request, body)

    def _options(self, request: IRequest, path: str) -> None:
        methods = self._contract.methods_for(path)
        if not methods:
            self._no_route(request, path)
            return
        request.setHeader(b"Allow", ", ".join(["OPTIONS", *methods]).encode("ascii"))
        request.setResponseCode(200)
        request.setHeader(b"content-length", b"0")
        request.finish()

    def _no_route(self, request: IRequest, path: str) -> None:
        methods = self._contract.methods_for(path)
        if methods:
            request.setHeader(b"Allow", ", ".join(["OPTIONS", *methods]).encode("ascii"))
            self._finish(request, write_json(request, {
                "errors": [{"message": "Method Not Allowed.", "path": "/"}], "status": 405,
            }, 405))
            return
        self._finish(request, write_json(request, {
            "errors": [{"message": "Not Found.", "path": "/"}], "status": 404,
        }, 404))


class NotFoundJson(resource.Resource):
    """Anything outside ``/api`` that lrrd does not serve: a JSON 404 rather than an HTML page."""

    isLeaf = True

    def render(self, request: IRequest) -> bytes:
        return write_json(request, {
            "errors": [{"message": "Not Found.", "path": "/"}], "status": 404,
        }, 404)


class SiteRoot(resource.Resource):
    """``/`` of the site: ``/api`` plus any extra top-level children (``/search``...)."""

    def __init__(self, api: ApiRoot, extra: Mapping[bytes, resource.Resource] | None = None) -> None:
        super().__init__()
        self.putChild(b"api", api)
        for name, child in (extra or {}).items():
            self.putChild(name, child)

    def getChild(self, path: bytes, request: IRequest) -> resource.Resource:
        return NotFoundJson()

    def render(self, request: IRequest) -> bytes:
        return NotFoundJson().render(request)
