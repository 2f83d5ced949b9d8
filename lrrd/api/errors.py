"""API errors and JSON bodies: every failure becomes the JSON envelope the original uses.

Handlers raise ``ApiError``; ``render_failure`` turns any failure into a response, so no client
ever sees a traceback (unexpected ones are logged with theirs).
"""

from __future__ import annotations

from html import escape
from contextlib import contextmanager
from typing import Any, Iterator, Mapping

from twisted.logger import Logger
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from lrrd.jsonbody import encode_json
from lrrd.store.redis import StoreUnavailable

log = Logger()

JSON_TYPE = b"application/json;charset=UTF-8"


def json_bytes(obj: Any) -> bytes:
    """Keys sorted like Mojolicious's encoder, compact, UTF-8 (see ``lrrd.jsonbody``)."""
    return encode_json(obj)


def write_json(request: IRequest, obj: Any, status: int = 200) -> bytes:
    """Set status and type and hand back the body, for a Klein handler to return."""
    request.setResponseCode(status)
    request.setHeader(b"content-type", JSON_TYPE)
    return json_bytes(obj)


def xml_escape(text: str) -> str:
    """Mojo::Util::xml_escape, which the original applies to operation messages."""
    return escape(text, quote=True).replace("&#x27;", "&#39;")


def api_response(operation: str, error: str = "", success_message: str = "") -> dict[str, Any]:
    """The original's ``render_api_response`` body (its status is 400 when ``error`` is set)."""
    return {
        "operation": operation,
        "error": xml_escape(error),
        "success": 0 if error else 1,
        "successMessage": xml_escape(success_message),
    }


class ApiError(Exception):
    """An expected failure: answered with ``status`` and an ``{"operation","error","success":0}`` body."""

    def __init__(
        self,
        status: int,
        message: str,
        operation: str | None = None,
        extra: Mapping[str, Any] | None = None,
        envelope: str = "operation",
    ) -> None:
        super().__init__(message)
        self.status = status
        self.message = message
        self.operation = operation
        self.extra = dict(extra or {})
        self.envelope = envelope

    def body(self) -> dict[str, Any]:
        if self.envelope == "api_response":
            body = api_response(self.operation or "", self.message)
        elif self.envelope == "error":
            body = {"error": self.message}
        elif self.operation is None:
            body = {"error": self.message, "success": 0}
        else:
            body = {"operation": self.operation, "error": self.message, "success": 0}
        body.update(self.extra)
        return body


@contextmanager
def refusal_as_400(operation: str, *refusals: type[Exception]) -> Iterator[None]:
    """A store's refusal (an exception carrying ``.message``) as the original's 400
    ``render_api_response`` body for ``operation``."""
    try:
        yield
    except refusals as exc:
        raise ApiError(400, getattr(exc, "message", str(exc)), operation=operation,
                       envelope="api_response") from None


class ValidationFailed(Exception):
    """The request broke the contract: the plugin-style ``{"errors":[...],"status":N}`` body."""

    def __init__(self, errors: list[tuple[str, str]], status: int = 400) -> None:
        super().__init__("; ".join(message for message, _ in errors))
        self.errors = errors
        self.status = status

    def body(self) -> dict[str, Any]:
        return {
            "errors": [{"message": message, "path": path} for message, path in self.errors],
            "status": self.status,
        }


def error_body(failure: Failure) -> tuple[int, dict[str, Any]]:
    """Map any failure to (status, JSON body); unexpected ones are logged, never shown."""
    if failure.check(ApiError):
        err: ApiError = failure.value  # type: ignore[assignment]
        return err.status, err.body()
    if failure.check(ValidationFailed):
        verr: ValidationFailed = failure.value  # type: ignore[assignment]
        return verr.status, verr.body()
    if failure.check(StoreUnavailable):
        return 503, {"error": "The database is unavailable; try again shortly.", "success": 0}
    log.failure("Unhandled error while serving a request", failure)
    return 500, {"error": "Internal server error.", "success": 0}


def render_failure(request: IRequest, failure: Failure) -> bytes:
    status, body = error_body(failure)
    return write_json(request, body, status)


def request_gone(request: IRequest) -> bool:
    """Finished already, or the client went away: nothing more may be written."""
    return bool(getattr(request, "finished", False) or getattr(request, "_disconnected", False))


def finish_with(request: IRequest, body: bytes) -> None:
    """Write the body and finish, for resources that render asynchronously."""
    if not request_gone(request):
        request.write(body)
        request.finish()


def finish_with_failure(failure: Failure, request: IRequest) -> None:
    """An errback for asynchronous renders: the failure's JSON, never a hung request."""
    if not request_gone(request):
        finish_with(request, render_failure(request, failure))
