"""What every API area's Klein app shares: one error handler rendering the original's JSON."""

from __future__ import annotations

from typing import Any

from klein import Klein
from twisted.python.failure import Failure
from twisted.web.iweb import IRequest

from lrrd.api.errors import render_failure


def _handle_errors(instance: Any, request: IRequest, failure: Failure) -> bytes:
    return render_failure(request, failure)


def area_app() -> Klein:
    """A Klein app whose handlers may raise ``ApiError`` (or fail at all) and still answer JSON."""
    app = Klein()
    app.handle_errors(Exception)(_handle_errors)
    return app


def arg(request: IRequest, name: str, default: str | None = None) -> str | None:
    """First value of a query or form field, decoded as UTF-8 (None when absent)."""
    values = (getattr(request, "args", None) or {}).get(name.encode("ascii"))
    if not values:
        return default
    return values[0].decode("utf-8", "replace")
