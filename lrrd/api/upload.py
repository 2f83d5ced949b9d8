"""``PUT /api/archives/upload``: a multipart archive plus optional metadata (LRR-NOTES §8.1).

Twisted has already spooled the body to a temporary file; it is parsed here as a stream, in the
I/O pool, so a 1 GB upload is copied to the temp folder chunk by chunk (hashed on the way for
``file_checksum``) and never held in memory.
"""

from __future__ import annotations

import hashlib
import os
import re
import tempfile
from dataclasses import dataclass, field
from pathlib import Path
from typing import IO, TYPE_CHECKING, Any

from multipart import MultipartError, MultipartSegment, PushMultipartParser, parse_options_header
from twisted.web.iweb import IRequest

from lrrd.api.area import area_app, arg
from lrrd.api.errors import ApiError, ValidationFailed, write_json
from lrrd.library.identity import is_archive_filename
from lrrd.library.uploads import (
    UploadRefused,
    byte_limit,
    clean_filename,
    handle_incoming_file,
    truncate_filename,
)
from lrrd.store.config import flag
from lrrd.store.locks import LockBusy

if TYPE_CHECKING:
    from lrrd.services import Services

OPERATION = "upload"
#: A text field (tags, summary...) larger than this is refused: they are metadata, not payload.
MAX_FIELD_BYTES = 1024 * 1024
#: How long ``upload:<filename>`` may be held: hashing, moving and the cover of a big archive.
UPLOAD_LOCK_TTL = 600
_CHUNK = 1024 * 1024
_CHECKSUM = re.compile(r"^[a-fA-F0-9]{40}$")

_STATUS = {"invalid": 400, "unsupported": 415, "duplicate": 409, "locked": 423, "not_moved": 500}


class BadBody(Exception):
    """The multipart body is malformed or breaks a limit."""


@dataclass
class Received:
    """The parsed body: text fields, and the ``file`` part spooled to ``path``."""

    fields: dict[str, str] = field(default_factory=dict)
    filename: str | None = None
    path: Path | None = None
    sha1: str = ""
    size: int = 0


def receive_multipart(body: IO[bytes] | None, content_type: str | None, temp_dir: Path) -> Received:
    """Stream-parse a multipart/form-data body (blocking). Anything else yields no fields."""
    received = Received()
    if body is None or not content_type:
        return received
    kind, options = parse_options_header(content_type)
    boundary = options.get("boundary")
    if kind != "multipart/form-data" or not boundary:
        return received
    body.seek(0)
    out: IO[bytes] | None = None
    digest = hashlib.sha1()
    target: str | None = None
    buffer = bytearray()
    try:
        parser = PushMultipartParser(boundary, max_segment_count=64)
        for event in parser.parse_blocking(body.read, _CHUNK):
            if isinstance(event, MultipartSegment):
                target = event.name or ""
                if target == "file" and event.filename and received.path is None:
                    temp_dir.mkdir(parents=True, exist_ok=True)
                    fd, name = tempfile.mkstemp(prefix="upload-", suffix=".part", dir=temp_dir)
                    out = open(fd, "wb")
                    received.path = Path(name)
                    received.filename = event.filename
                else:
                    buffer.clear()
            elif event is None:
                if out is not None:
                    out.close()
                    out = None
                    received.sha1 = digest.hexdigest()
                elif target is not None and target not in received.fields and target != "file":
                    received.fields[target] = bytes(buffer).decode("utf-8", "replace")
                target = None
            elif out is not None:
                out.write(event)
                digest.update(event)
                received.size += len(event)
            else:
                buffer += event
                if len(buffer) > MAX_FIELD_BYTES:
                    raise BadBody(f"The {target!r} field is larger than {MAX_FIELD_BYTES} bytes.")
    except (MultipartError, BadBody) as exc:
        if out is not None:
            out.close()
        if received.path is not None:
            _unlink(received.path)
        raise BadBody(str(exc)) from None
    if out is not None:  # the body ended inside the file part
        out.close()
        _unlink(received.path)  # type: ignore[arg-type]
        raise BadBody("The upload ended before the file did.")
    return received


def _unlink(path: Path) -> None:
    try:
        os.unlink(path)
    except FileNotFoundError:
        pass


class UploadApi:
    """The upload operation, over the importer and the stores."""

    app = area_app()

    def __init__(self, services: Services) -> None:
        self._services = services

    @app.route("/archives/upload", methods=["PUT"], endpoint="uploadArchive")
    async def upload(self, request: IRequest) -> bytes:
        services = self._services
        header = request.getHeader(b"content-type")
        content_type = header.decode("latin-1") if isinstance(header, bytes) else header
        try:
            received: Received = await services.pools.run_io(
                receive_multipart, getattr(request, "content", None), content_type,
                services.settings.temp_dir / "uploads")
        except BadBody as exc:
            raise ApiError(400, f"Malformed upload: {exc}", operation=OPERATION) from None
        try:
            return await self._handle(request, received)
        finally:
            if received.path is not None:
                await services.pools.run_io(_unlink, received.path)

    async def _handle(self, request: IRequest, received: Received) -> bytes:
        services = self._services

        def value(name: str) -> str | None:
            found = received.fields.get(name)
            return found if found is not None else arg(request, name)

        if received.path is None or received.filename is None:
            raise ApiError(400, "No file attached", operation=OPERATION)
        checksum = value("file_checksum")
        category_id = value("category_id")
        problems: list[tuple[str, str]] = []
        if checksum and not _CHECKSUM.match(checksum):
            problems.append((f"String does not match {_CHECKSUM.pattern}.", "/file_checksum"))
        if category_id and len(category_id) != 14:
            problems.append((f"String is too {'long' if len(category_id) > 14 else 'short'}: "
                             f"{len(category_id)}/14.", "/category_id"))
        if problems:
            raise ValidationFailed(problems)
        if checksum and checksum.lower() != received.sha1:
            raise ApiError(417, f"Checksum mismatch: expected {checksum}, got {received.sha1}.",
                           operation=OPERATION)
        try:
            filename = clean_filename(received.filename)
        except UploadRefused as refused:
            raise ApiError(400, refused.message, operation=OPERATION) from None
        try:
            async with services.locks.held(f"upload:{filename}", UPLOAD_LOCK_TTL):
                if not is_archive_filename(filename):
                    raise UploadRefused("unsupported", f"Unsupported file extension ({filename})")
                config = await services.config.get("enablecryptofs")
                final = truncate_filename(filename, byte_limit(flag(config["enablecryptofs"])))
                result = await handle_incoming_file(
                    services, received.path, final, category_id=category_id or None,
                    tags=value("tags"), title=value("title"), summary=value("summary"))
        except LockBusy:
            raise ApiError(423, f"Locked resource: {filename}.", operation=OPERATION) from None
        except UploadRefused as refused:
            extra: dict[str, Any] = {"id": refused.arcid} if refused.arcid else {}
            raise ApiError(_STATUS.get(refused.reason, 500), refused.message,
                           operation=OPERATION, extra=extra) from None
        return write_json(request, {"operation": OPERATION, "success": 1, "id": result.arcid})
