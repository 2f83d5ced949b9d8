"""The stamps area: notes pinned to archive pages (``/archives/{id}/stamps*`` and ``/stamps/{id}``)."""

from __future__ import annotations

from contextlib import AsyncExitStack
from typing import Any

from twisted.web.iweb import IRequest

from lrrd.api.area import area_app, field
from lrrd.api.errors import ApiError, api_response, write_json
from lrrd.store.locks import LockBusy, LockStore
from lrrd.store.stamps import (
    StampArchiveMissing,
    StampListCorrupt,
    StampPageOutOfRange,
    StampStore,
)


def _locked(operation: str, message: str) -> ApiError:
    return ApiError(423, message, operation=operation)


class StampsApi:
    """All six stamp operations, with the original's bodies (and proper errors where it had 500s)."""

    app = area_app()

    def __init__(self, stamps: StampStore, locks: LockStore) -> None:
        self._stamps = stamps
        self._locks = locks

    @app.route("/archives/<string:arcid>/stamps", methods=["GET"], endpoint="stampedPages")
    async def stamped_pages(self, request: IRequest, arcid: str) -> bytes:
        pages = await self._stamps.stamped_pages(arcid)
        if pages is None:
            raise ApiError(400, f"{arcid} does not exist in the database.",
                           operation="get_stamped_pages", envelope="api_response")
        return write_json(request, {"result": pages})

    @app.route("/archives/<string:arcid>/stamps/<string:index>", methods=["GET"],
               endpoint="stampsByPage")
    async def stamps_by_page(self, request: IRequest, arcid: str, index: str) -> bytes:
        stamps = await self._stamps.by_page(arcid, int(index))
        if stamps is None:
            raise ApiError(400, f"{arcid} does not exist in the database.",
                           operation="get_stamps_by_page", envelope="api_response")
        return write_json(request, {"result": stamps})

    @app.route("/archives/<string:arcid>/stamps/<string:index>", methods=["PUT"],
               endpoint="addStamp")
    async def add_stamp(self, request: IRequest, arcid: str, index: str) -> bytes:
        """Errors answer HTTP 200 with ``success: 0``, as the original's do.

        The original sends ``stamp_id: 0`` and its response validation coerces it to the spec's
        string type, so clients see ``"0"``.
        """
        content = field(request, "content") or ""
        position = field(request, "position") or ""
        page = int(index)
        try:
            async with self._locks.held(f"archive-write:{arcid}"):
                key = await self._stamps.add(arcid, page, content, position)
        except LockBusy:
            raise _locked("update_archive", f"Locked resource: {arcid}.") from None
        except StampArchiveMissing:
            return self._add_failed(request, f"{arcid} does not exist in the database.")
        except StampPageOutOfRange:
            return self._add_failed(request, f"Page {page} out of range.")
        except StampListCorrupt:
            return self._add_failed(request, f"Couldn't deserialize stamps in DB for {arcid}!")
        return write_json(request, {"operation": "add_stamp", "stamp_id": key, "success": 1})

    @staticmethod
    def _add_failed(request: IRequest, message: str) -> bytes:
        return write_json(request, {"operation": "add_stamp", "stamp_id": "0", "success": 0,
                                    "error": message})

    @app.route("/stamps/<string:stamp_id>", methods=["GET"], endpoint="getStamp")
    async def get_stamp(self, request: IRequest, stamp_id: str) -> bytes:
        """The original wraps the stamp in ``result`` and so always fails its own schema (500).

        lrrd answers both shapes at once: ``result`` for clients written against the code, and
        the stamp's fields at the top level as the spec's ``StampsData`` says.
        """
        stamp = await self._stamps.get(stamp_id)
        if stamp is None:
            raise ApiError(400, "The given stamp does not exist.", operation="get_stamp",
                           envelope="api_response")
        body: dict[str, Any] = {"result": stamp, **stamp}
        return write_json(request, body)

    @app.route("/stamps/<string:stamp_id>", methods=["PUT"], endpoint="updateStamp")
    async def update_stamp(self, request: IRequest, stamp_id: str) -> bytes:
        content = field(request, "content") or None
        position = field(request, "position") or None
        try:
            async with self._locks.held(f"stamp-write:{stamp_id}"):
                updated = await self._stamps.update(stamp_id, content, position)
        except LockBusy:
            raise _locked("update_stamp", f"Locked resource: {stamp_id}.") from None
        if not updated:
            raise ApiError(400, f"{stamp_id} doesn't exist in the database!",
                           operation="update_stamp", envelope="api_response")
        return write_json(request, api_response("update_stamp", "", f'Updated stamp "{stamp_id}"!'))

    @app.route("/stamps/<string:stamp_id>", methods=["DELETE"], endpoint="deleteStamp")
    async def delete_stamp(self, request: IRequest, stamp_id: str) -> bytes:
        """Locks the stamp's archive and the stamp itself, as the original does."""
        if await self._stamps.get(stamp_id) is None:
            raise ApiError(400, "The given stamp does not exist.", operation="delete_stamp",
                           envelope="api_response")
        arcid = await self._stamps.archive_of(stamp_id)
        try:
            async with AsyncExitStack() as held:
                if arcid is not None:
                    await held.enter_async_context(self._locks.held(f"archive-write:{arcid}"))
                await held.enter_async_context(self._locks.held(f"stamp-write:{stamp_id}"))
                removed = await self._stamps.remove(stamp_id)
        except LockBusy:
            raise _locked("delete_stamp", "Locked resource") from None
        if not removed:
            raise ApiError(400, "The given stamp does not exist.", operation="delete_stamp",
                           envelope="api_response")
        return write_json(request, api_response("delete_stamp"))
