"""LANraragi's API authentication (LRR-NOTES §1.2): Bearer base64(apikey), ``?key=``, or no password."""

from __future__ import annotations

import base64
import hmac

from twisted.web.iweb import IRequest

from lrrd.store.config import AccessSettings


def expected_bearer(apikey: str) -> bytes:
    return b"Bearer " + base64.b64encode(apikey.encode("utf-8"))


def has_valid_key(request: IRequest, settings: AccessSettings) -> bool:
    """True when the request carries the API key; an empty key never matches."""
    if not settings.apikey:
        return False
    header = request.getHeader(b"authorization")
    if header is not None:
        # The original compares the whole header as a string: no trimming, case-sensitive.
        if hmac.compare_digest(header.encode("latin-1", "replace") if isinstance(header, str)
                               else header, expected_bearer(settings.apikey)):
            return True
    args = getattr(request, "args", None) or {}
    for raw in args.get(b"key", ())[:4]:
        try:
            candidate = raw.decode("utf-8")
        except UnicodeDecodeError:
            continue
        if candidate and hmac.compare_digest(candidate.encode("utf-8"),
                                             settings.apikey.encode("utf-8")):
            return True
    return False


def is_authenticated(request: IRequest, settings: AccessSettings) -> bool:
    """What ``is_logged_in_api`` accepts: a valid key, or password protection switched off."""
    return (not settings.enablepass) or has_valid_key(request, settings)
