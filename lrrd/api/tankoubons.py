"""The tankoubons area: the eleven tankoubon operations of the spec, with the original's rules.

LRR-NOTES §9.2: ``GET /tankoubons?page=`` takes a page *index* (absent = 0, -1 = all) and its
``filtered`` always equals ``total``; ``/full`` pages the archive list (default all) and adds the
members' archive JSON; ``PUT /{id}`` takes a JSON body; progress follows the archive rules of
authprogress/localprogress; thumbnails live in ``TA/<id>.<fmt>`` and are made by
``tank_thumbnail_task``.
"""

from __future__ import annotations

import json
import os
import time
from typing import Any, Sequence

from twisted.logger import Logger
from twisted.web.iweb import IRequest

from lrrd.api.area import area_app, arg, field
from lrrd.api.contract import json_type_name
from lrrd.api.errors import ApiError, ValidationFailed, api_response, refusal_as_400, write_json
from lrrd.api.locking import write_lock
from lrrd.api.root import ACCESS_ATTR, AUTHENTICATED_ATTR
from lrrd.images import tank_cover_path
from lrrd.store.archives import archive_json, as_text
from lrrd.store.config import as_int, flag
from lrrd.store.tankoubons import TANK_ID_RE, TankError

log = Logger()

NO_TANK = "The given tankoubon does not exist."
NO_THUMB = os.path.join(os.path.dirname(os.path.dirname(__file__)), "static", "noThumb.png")


def _existing(paths: Sequence[str]) -> list[bool]:
    """Which archive files exist (blocking: the I/O pool runs it)."""
    return [bool(path) and os.path.exists(path) for path in paths]


def _read_file(path: str) -> bytes | None:
    try:
        with open(path, "rb") as handle:
            return handle.read()
    except FileNotFoundError:
        return None


def _expect(value: Any, kind: str, path: str) -> None:
    """Refuse a body field of the wrong JSON type the way the original's validator words it."""
    if json_type_name(value) != kind:
        raise ValidationFailed([(f"Expected {kind} - got {json_type_name(value)}.", path)])


def parse_update_body(raw: bytes) -> dict[str, Any]:
    """``PUT /tankoubons/{id}``: the JSON body checked against the spec's shape."""
    if not raw.strip():
        return {}
    try:
        data = json.loads(raw)
    except (ValueError, RecursionError):  # nesting past the decoder's depth is no body either
        raise ValidationFailed([("Invalid JSON body.", "/body")]) from None
    _expect(data, "object", "/body")
    if "archives" in data:
        _expect(data["archives"], "array", "/body/archives")
        for index, item in enumerate(data["archives"]):
            _expect(item, "string", f"/body/archives/{index}")
    if "metadata" in data:
        _expect(data["metadata"], "object", "/body/metadata")
        for name in ("name", "summary", "tags"):
            if name in data["metadata"]:
                _expect(data["metadata"][name], "string", f"/body/metadata/{name}")
    return data


def _truthy(value: Any) -> bool:
    return value is True or value == 1 or value in ("1", "true")


class TankoubonsApi:
    """``/api/tankoubons*``: the tanks, their archives, progress and covers."""

    app = area_app()

    def __init__(self, services: Any, jobs: Any = None) -> None:
        self._services = services
        self._tanks = services.tankoubons
        self._archives = services.archives
        self._config = services.config
        self._locks = services.locks
        self._jobs = jobs

    async def _pagesize(self) -> int:
        return max(1, as_int((await self._config.get("pagesize"))["pagesize"], 100))

    async def _queue_thumbnail(self, tank_id: str) -> int | None:
        """Queue ``tank_thumbnail_task`` as the original does; a missing queue only logs."""
        if self._jobs is None:
            return None
        try:
            return int(await self._jobs.enqueue(
                "tank_thumbnail_task", [str(self._services.settings.thumb_dir), tank_id],
                priority=0, attempts=3))
        except Exception:  # noqa: BLE001 - the write succeeded; a lost cover job is not fatal
            log.failure("Could not queue the cover job of {tank}", tank=tank_id)
            return None

    # -- list, read ------------------------------------------------------------------------------
    @app.route("/tankoubons", methods=["GET"], endpoint="getTankoubonList")
    async def list_tankoubons(self, request: IRequest) -> bytes:
        page = as_int(arg(request, "page"), 0)
        pagesize = await self._pagesize()
        ids = await self._tanks.ids()
        chosen = ids if page < 0 else ids[page * pagesize:(page + 1) * pagesize]
        # Each tank's archive list is its first page, as the original's get_tankoubon($id) gives.
        tanks = await self._tanks.get_many(chosen, page=0, pagesize=pagesize)
        return write_json(request, {
            "result": [tank.as_json() for tank in tanks if tank is not None],
            "total": len(ids),
            # Quirk kept: "filtered" is the count of all tanks, not of this page.
            "filtered": len(ids),
        })

    @app.route("/tankoubons/<string:tank_id>", methods=["GET"], endpoint="getTankoubon")
    async def get_tankoubon(self, request: IRequest, tank_id: str) -> bytes:
        found = await self._tanks.get(tank_id, page=0, pagesize=await self._pagesize())
        if found is None:
            raise ApiError(400, NO_TANK, operation="get_tankoubon", envelope="api_response")
        return write_json(request, found[0].as_json())

    @app.route("/tankoubons/<string:tank_id>/full", methods=["GET"], endpoint="getTankoubonFull")
    async def get_tankoubon_full(self, request: IRequest, tank_id: str) -> bytes:
        page = as_int(arg(request, "page"), -1)
        found = await self._tanks.get(tank_id, page=page, pagesize=await self._pagesize())
        if found is None:
            raise ApiError(400, NO_TANK, operation="get_tankoubon", envelope="api_response")
        tank, total = found
        body = tank.as_json()
        body["full_data"] = await self.members_json(tank.archives)
        return write_json(request, {"result": body, "total": total,
                                    "filtered": len(tank.archives)})

    async def members_json(self, arcids: Sequence[str]) -> list[dict[str, Any]]:
        """Archive JSON of the members whose file exists, in tank order (one pipelined read)."""
        hashes = await self._archives.get_many(list(arcids))
        paths = [as_text((fields or {}).get("file")) for fields in hashes]
        present = await self._services.pools.run_io(_existing, paths)
        return [archive_json(arcid, fields) for arcid, fields, ok in zip(arcids, hashes, present)
                if fields and ok]

    # -- create, update, delete ------------------------------------------------------------------
    @app.route("/tankoubons", methods=["PUT"], endpoint="createTankoubon")
    async def create_tankoubon(self, request: IRequest) -> bytes:
        operation = "create_tankoubon"
        name = field(request, "name") or ""
        if name == "":
            raise ApiError(400, "Tankoubon name not specified.", operation=operation,
                           envelope="api_response")
        with refusal_as_400(operation, TankError):
            created = await self._tanks.create(name, field(request, "tankid") or None)
        return write_json(request, {"operation": operation, "tankoubon_id": created, "success": 1})

    @app.route("/tankoubons/<string:tank_id>", methods=["PUT"], endpoint="updateTankoubon")
    async def update_tankoubon(self, request: IRequest, tank_id: str) -> bytes:
        operation = "update_tankoubon"
        data = parse_update_body(request.content.read() if request.content is not None else b"")
        metadata = data.get("metadata") or {}
        archives = data.get("archives")
        async with write_lock(self._locks, "tankoubon", tank_id, operation):
            with refusal_as_400(operation, TankError):
                tank = await self._tanks.update(
                    tank_id,
                    archives=archives,
                    name=metadata.get("name") or None,
                    summary=metadata.get("summary"),
                    tags=metadata.get("tags"),
                    append=_truthy(metadata.get("append")),
                )
        if archives is not None:
            await self._queue_thumbnail(tank_id)
        return write_json(request, api_response(
            operation, success_message=f'Updated tankoubon "{tank.name}"!'))

    @app.route("/tankoubons/<string:tank_id>", methods=["DELETE"], endpoint="deleteTankoubon")
    async def delete_tankoubon(self, request: IRequest, tank_id: str) -> bytes:
        operation = "delete_tankoubon"
        if len(tank_id) != 15:
            raise ApiError(400, NO_TANK, operation=operation, envelope="api_response")
        async with write_lock(self._locks, "tankoubon", tank_id, operation):
            # A missing tank still "succeeds", as in the original.
            await self._tanks.delete(tank_id)
        return write_json(request, api_response(operation))

    # -- membership ------------------------------------------------------------------------------
    @app.route("/tankoubons/<string:tank_id>/<string:arcid>", methods=["PUT"],
               endpoint="addToTankoubon")
    async def add_to_tankoubon(self, request: IRequest, tank_id: str, arcid: str) -> bytes:
        operation = "add_to_tankoubon"
        async with write_lock(self._locks, "tankoubon", tank_id, operation):
            with refusal_as_400(operation, TankError):
                await self._tanks.add_archive(tank_id, arcid)
        return write_json(request, api_response(
            operation, success_message=await self._message("Added", "to", tank_id, arcid)))

    @app.route("/tankoubons/<string:tank_id>/<string:arcid>", methods=["DELETE"],
               endpoint="removeFromTankoubon")
    async def remove_from_tankoubon(self, request: IRequest, tank_id: str, arcid: str) -> bytes:
        operation = "remove_from_tankoubon"
        async with write_lock(self._locks, "tankoubon", tank_id, operation):
            with refusal_as_400(operation, TankError):
                was_first = await self._tanks.remove_archive(tank_id, arcid)
        body = api_response(
            operation, success_message=await self._message("Removed", "from", tank_id, arcid))
        if was_first:
            # The cover came from the first archive: make it again from the new first one.
            await self._queue_thumbnail(tank_id)
        return write_json(request, body)

    async def _message(self, verb: str, preposition: str, tank_id: str, arcid: str) -> str:
        found = await self._tanks.get(tank_id, page=0, pagesize=1)
        raw = (await self._archives.get_fields(arcid, "title")).get("title")
        if found is None or raw is None:
            return f"{verb} {arcid} {preposition} tankoubon {tank_id}!"
        return f'{verb} "{as_text(raw)}" {preposition} tankoubon "{found[0].name}"!'

    # -- progress --------------------------------------------------------------------------------
    @app.route("/tankoubons/<string:tank_id>/progress/<string:page>", methods=["PUT"],
               endpoint="updateTankoubonProgress")
    async def update_progress(self, request: IRequest, tank_id: str, page: str) -> bytes:
        operation = "update_tank_progress"
        access = getattr(request, ACCESS_ATTR, None)
        authprogress = bool(access and access.authprogress)
        if authprogress and not getattr(request, AUTHENTICATED_ATTR, False):
            raise ApiError(401, "This operation requires authentication.", operation=operation)
        localprogress = flag((await self._config.get("localprogress"))["localprogress"])
        if localprogress and not authprogress:
            raise ApiError(400, "Server-side Progress Tracking is disabled on this instance.",
                           operation=operation, envelope="api_response")
        number = as_int(page, 0)
        if number <= 0:
            raise ApiError(400, "Invalid progress value.", operation=operation,
                           envelope="api_response")
        now = int(time.time())
        with refusal_as_400(operation, TankError):
            await self._tanks.set_progress(tank_id, number)
        return write_json(request, {"operation": operation, "id": tank_id, "page": number,
                                    "lastreadtime": now, "success": 1})

    # -- thumbnails ------------------------------------------------------------------------------
    def _cover_candidates(self, tank_id: str, fmt: str) -> list[str]:
        other = "jxl" if fmt == "jpg" else "jpg"
        thumbdir = self._services.settings.thumb_dir
        return [str(tank_cover_path(thumbdir, tank_id, fmt)),
                str(tank_cover_path(thumbdir, tank_id, other))]

    async def _thumbnail_format(self) -> str:
        from lrrd.library.thumbnails import thumbnail_settings

        return (await thumbnail_settings(self._services)).fmt

    async def _send_image(self, request: IRequest, path: str) -> bytes | None:
        data = await self._services.pools.run_io(_read_file, path)
        if data is None:
            return None
        name = os.path.basename(path)
        # RenderFile's headers, as the golden responses show them.
        request.setHeader(b"content-type", b'application/x-download;name="%s"' % name.encode())
        request.setHeader(b"content-disposition", b'attachment;filename="%s"' % name.encode())
        return data

    @app.route("/tankoubons/<string:tank_id>/thumbnail", methods=["GET"],
               endpoint="getTankoubonThumbnail")
    async def get_thumbnail(self, request: IRequest, tank_id: str) -> bytes:
        if TANK_ID_RE.match(tank_id):
            for path in self._cover_candidates(tank_id, await self._thumbnail_format()):
                body = await self._send_image(request, path)
                if body is not None:
                    return body
        if arg(request, "no_fallback") == "true":
            if not TANK_ID_RE.match(tank_id) or not await self._tanks.exists(tank_id):
                raise ApiError(400, NO_TANK, operation="serve_tankoubon_thumbnail",
                               envelope="api_response")
            job = await self._queue_thumbnail(tank_id)
            if job is None:
                raise ApiError(503, "The job queue is unavailable; try again shortly.",
                               operation="serve_tankoubon_thumbnail")
            return write_json(request, {"operation": "serve_tankoubon_thumbnail", "success": 1,
                                        "job": job}, 202)
        body = await self._send_image(request, NO_THUMB)
        assert body is not None, "noThumb.png ships with lrrd"
        return body

    @app.route("/tankoubons/<string:tank_id>/thumbnail", methods=["PUT"],
               endpoint="updateTankoubonThumbnail")
    async def update_thumbnail(self, request: IRequest, tank_id: str) -> bytes:
        from lrrd.library.thumbnails import ThumbnailError, make_page_thumbnail

        operation = "update_tankoubon_thumbnail"
        page = as_int(arg(request, "page"), 1) or 1
        target = await self._tanks.translate_global_page(tank_id, page)
        if target is None:
            raise ApiError(400, f"Page {page} is out of range for this tankoubon.",
                           operation=operation, envelope="api_response")
        arcid, local_page = target
        fmt = await self._thumbnail_format()
        destination = tank_cover_path(self._services.settings.thumb_dir, tank_id, fmt)
        try:
            made = await make_page_thumbnail(self._services, arcid, local_page)
            await self._services.pools.run_io(_copy, str(made), str(destination))
        except (ThumbnailError, OSError) as exc:
            raise ApiError(400, str(exc), operation=operation, envelope="api_response") from None
        return write_json(request, {"operation": operation, "new_thumbnail": str(destination),
                                    "success": 1})


def _copy(source: str, target: str) -> None:
    """Copy through a temporary name so a reader never sees half a cover."""
    os.makedirs(os.path.dirname(target), exist_ok=True)
    partial = target + ".part"
    with open(source, "rb") as src, open(partial, "wb") as dst:
        dst.write(src.read())
    os.replace(partial, target)
