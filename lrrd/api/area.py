"""What every API area's Klein app shares: one error handler rendering the original's JSON."""

from __future__ import annotations

from typing import Any, cast
from urllib.parse import parse_qs

from klein import Klein
from twisted.python.failure import Failure
from twisted.web import http
from twisted.web.iweb import IRequest

from lrrd.api.errors import render_failure


def _handle_errors(instance: Any, request: IRequest, failure: Failure) -> bytes:
    return render_failure(request, failure)


def area_app() -> Klein:
    """A Klein app whose handlers may raise ``ApiError`` (or fail at all) and still answer JSON."""
    app = Klein()
    # Klein's typing wants a bound method; it calls a plain function with the instance too.
    app.handle_errors(Exception)(cast(Any, _handle_errors))
    return app


def arg(request: IRequest, name: str, default: str | None = None) -> str | None:
    """First value of a query or form field, decoded as UTF-8 (None when absent)."""
    values = (getattr(request, "args", None) or {}).get(name.encode("ascii"))
    if not values:
        return default
    return values[0].decode("utf-8", "replace")


#: Form bodies of PUT/DELETE requests larger than this are left to their handler (uploads).
FORM_BODY_LIMIT = 1024 * 1024
_FORM_ATTR = "lrrd_form_fields"


def _form_body(request: IRequest) -> dict[bytes, list[bytes]]:
    """The urlencoded or multipart fields of a non-POST body (Twisted parses only POST's)."""
    cached = getattr(request, _FORM_ATTR, None)
    if cached is not None:
        return cached
    fields: dict[bytes, list[bytes]] = {}
    content = getattr(request, "content", None)
    header = request.getHeader(b"content-type") if hasattr(request, "getHeader") else None
    if content is not None and header and request.method != b"POST":
        ctype = header.encode("latin-1") if isinstance(header, str) else header
        kind = ctype.split(b";", 1)[0].strip().lower()
        if kind in (b"application/x-www-form-urlencoded", b"multipart/form-data"):
            position = content.tell()
            content.seek(0)
            body = content.read(FORM_BODY_LIMIT + 1)
            content.seek(position)
            if len(body) <= FORM_BODY_LIMIT:
                try:
                    if kind == b"multipart/form-data":
                        fields = dict(http._getMultiPartArgs(body, ctype))
                    else:
                        fields = parse_qs(body, keep_blank_values=True)
                except Exception:  # noqa: BLE001 - a malformed body simply has no fields
                    fields = {}
    setattr(request, _FORM_ATTR, fields)
    return fields


def field(request: IRequest, name: str, default: str | None = None) -> str | None:
    """Like ``arg``, but also reads the form body of PUT/DELETE requests, which the spec
    allows (``requestBody`` urlencoded or multipart) and Twisted does not parse."""
    value = arg(request, name)
    if value is not None:
        return value
    values = _form_body(request).get(name.encode("ascii"))
    if not values:
        return default
    return values[0].decode("utf-8", "replace")
