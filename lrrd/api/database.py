"""The database area (LRR-NOTES §9.5–§9.6): tag statistics, backups, restore, clean, drop, isnew.

Backups are built from the stores and encoded in the I/O pool; a restore upload is parsed from
Twisted's spooled body in the I/O pool, checked, and handed whole to the ``restore_backup`` job
(the original's argument: the JSON text), so no half-read file is ever restored.
"""

from __future__ import annotations

import json
import os
from typing import IO, TYPE_CHECKING, Any, Callable, Collection, Iterable

from multipart import MultipartError, MultipartSegment, PushMultipartParser, parse_options_header
from twisted.web.iweb import IRequest

from lrrd.jsonbody import latin1_fallback
from lrrd.api.archives import disposition
from lrrd.api.area import area_app, arg
from lrrd.api.errors import JSON_TYPE, ApiError, api_response, write_json
from lrrd.api.streaming import send_file
from lrrd.library.backup import BackupError, build_backup, encode_backup, parse_backup
from lrrd.library.database import clean_database, clear_all_new, drop_database, queue_rebuild
from lrrd.store.stats import StatsStore

if TYPE_CHECKING:
    from lrrd.jobs.queue import JobQueue
    from lrrd.services import Services

#: The largest restore upload accepted: its text becomes one job argument in Redis.
MAX_RESTORE_BYTES = 256 * 1024 * 1024
_CHUNK = 1024 * 1024


class UploadTooLarge(Exception):
    """The ``file`` part is larger than ``MAX_RESTORE_BYTES``."""


def split_tag(tag: str) -> tuple[str, str]:
    """``namespace:text`` split at the first colon (Perl's ``/([^:]*):(.*)/``); no colon → ns ""."""
    namespace, sep, text = tag.partition(":")
    return (namespace, text) if sep else ("", tag)


def read_file_part(body: IO[bytes] | None, content_type: str | None,
                   limit: int = MAX_RESTORE_BYTES) -> tuple[bool, str | None, bytes]:
    """Stream-parse a multipart body for its ``file`` upload (blocking, for the I/O pool).

    Returns (found, the part's raw Content-Type header, its bytes). Only a part with a filename
    counts as an upload, as for Mojolicious's ``upload``.
    """
    if body is None or not content_type:
        return False, None, b""
    kind, options = parse_options_header(content_type)
    boundary = options.get("boundary")
    if kind != "multipart/form-data" or not boundary:
        return False, None, b""
    body.seek(0)
    parser = PushMultipartParser(boundary, max_segment_count=64)
    data = bytearray()
    found, part_type, done = False, None, False
    capturing = False
    for event in parser.parse_blocking(body.read, _CHUNK):
        if isinstance(event, MultipartSegment):
            capturing = not found and event.name == "file" and event.filename is not None
            if capturing:
                found = True
                part_type = event.header("Content-Type")
        elif event is None:
            if capturing:
                done = True
            capturing = False
        elif capturing:
            data += event
            if len(data) > limit:
                raise UploadTooLarge()
    if found and not done:
        raise MultipartError("The body ended inside the file part.")
    return found, part_type, bytes(data)


_quote: Callable[[str], str] = json.encoder.encode_basestring  # type: ignore[attr-defined]


def stats_body(stats: Iterable[tuple[str, int]], excluded: Collection[str]) -> bytes:
    """The stats JSON (``json_bytes`` of the ``{namespace,text,weight}`` list, byte for byte),
    written out directly: at 170,000 tags ``json.dumps`` of dicts took three times as long.
    Tags from undecodable bytes go out as those bytes, as everywhere in the API."""
    parts = []
    for tag, weight in stats:
        if not tag:
            continue
        namespace, text = split_tag(tag)
        if excluded and namespace.lower() in excluded:
            continue
        parts.append('{"namespace":' + _quote(latin1_fallback(namespace)) + ',"text":'
                     + _quote(latin1_fallback(text)) + ',"weight":' + str(weight) + "}")
    return ("[" + ",".join(parts) + "]").encode("utf-8")


class StatsBodies:
    """Encoded stats bodies of one stats version, by (minweight, excluded namespaces).

    At 100,000 archives the stats are 170,000 tags and 9 MB of JSON, half a second to read
    and encode; they change only when tags do. Bodies are kept for one version at a time,
    which every process reads from Redis per request (``StatsStore.stats_version``), so a
    write by any process is seen by the next request everywhere.
    """

    #: Variants kept per version (clients ask for one or two).
    limit = 8

    def __init__(self) -> None:
        self._version: str | None = None
        self._bodies: dict[tuple[int, frozenset[str]], bytes] = {}

    def get(self, version: str, variant: tuple[int, frozenset[str]]) -> bytes | None:
        if version != self._version:
            return None
        return self._bodies.get(variant)

    def put(self, version: str, variant: tuple[int, frozenset[str]], body: bytes) -> None:
        if version != self._version:
            self._version, self._bodies = version, {}
        elif len(self._bodies) >= self.limit:
            self._bodies.clear()
        self._bodies[variant] = body


class DatabaseApi:
    """The eight database operations, over the stores and the job queue."""

    app = area_app()

    def __init__(self, services: Services, jobs: JobQueue) -> None:
        self._services = services
        self._jobs = jobs
        self._stats = StatsStore(services.redis)
        self._stats_bodies = StatsBodies()

    # -- stats -----------------------------------------------------------------------------------
    @app.route("/database/stats", methods=["GET"], endpoint="getStatistics")
    async def stats(self, request: IRequest) -> bytes:
        """``[{"namespace","text","weight"}]`` of ``LRR_STATS`` at or above ``minweight``."""
        try:
            # The original's `param('minweight') || "1"`: an absent or 0 weight means 1.
            minweight = int(arg(request, "minweight") or 0) or 1
        except ValueError:
            minweight = 1
        hide = (arg(request, "hide_excluded_namespaces") or "").strip().lower() == "true"
        excluded: set[str] = set()
        if hide:
            config = await self._services.config.get("excludednamespaces")
            excluded = {ns.strip().lower() for ns in config["excludednamespaces"].split(",")
                        if ns.strip()}
        # The version first, then the stats: what is read after it is at least that new, so
        # a body kept under it is right for as long as the version stays the same.
        version = await self._stats.stats_version()
        variant = (minweight, frozenset(excluded))
        body = self._stats_bodies.get(version, variant)
        if body is None:
            body = stats_body(await self._stats.tag_stats(minweight), excluded)
            self._stats_bodies.put(version, variant, body)
        request.setResponseCode(200)
        request.setHeader(b"content-type", JSON_TYPE)
        return body

    # -- backups ---------------------------------------------------------------------------------
    @app.route("/database/backup", methods=["GET"], endpoint="getBackupJson")
    async def backup(self, request: IRequest) -> bytes:
        services = self._services
        backup = await build_backup(services)
        body: bytes = await services.pools.run_io(encode_backup, backup)
        request.setHeader(b"content-type", JSON_TYPE)
        return body

    @app.route("/database/backup", methods=["POST"], endpoint="queueBackupJob")
    async def queue_backup(self, request: IRequest) -> bytes:
        job = await self._jobs.enqueue("backup_json", [], priority=0)
        return write_json(request, {"operation": "queue_backup", "success": 1, "job": job})

    @app.route("/database/backup/<jobid>", methods=["GET"], endpoint="downloadBackup")
    async def download_backup(self, request: IRequest, jobid: str) -> Any:
        operation = "download_backup"

        def fail(message: str) -> ApiError:
            return ApiError(400, message, operation=operation, envelope="api_response")

        try:
            info = await self._jobs.info(int(jobid))
        except ValueError:
            info = None
        if info is None:
            raise fail("Job not found")
        if info["state"] != "finished":
            raise fail(f"Job not completed yet (state: {info['state']})")
        result = info.get("result")
        filename = result.get("filename") if isinstance(result, dict) else None
        if info["task"] != "backup_json" or not isinstance(filename, str) or not filename:
            raise fail("Backup file not available")
        # Only the temp folder's own backup files are served, whatever a job result says.
        path = self._services.settings.temp_dir / os.path.basename(filename)
        if not await self._services.pools.run_io(path.is_file):
            raise fail("Backup file not found on disk")
        wants_json = (arg(request, "format") or "file") == "json"
        headers = {b"content-type": JSON_TYPE}
        if not wants_json:
            headers[b"content-disposition"] = disposition("attachment", f"backup_{jobid}.json")
        try:
            await send_file(request, str(path), self._services.pools, headers)
        except OSError:
            raise fail("Backup file not found on disk") from None
        return None

    # -- restore ---------------------------------------------------------------------------------
    @app.route("/database/restore", methods=["POST"], endpoint="queueRestoreJob")
    async def restore(self, request: IRequest) -> bytes:
        operation = "queue_restore"

        def fail(message: str) -> ApiError:
            return ApiError(400, message, operation=operation, envelope="api_response")

        # Twisted parsed the form into memory as well; that copy is not needed.
        args = getattr(request, "args", None)
        if isinstance(args, dict):
            args.pop(b"file", None)
        header = request.getHeader(b"content-type")
        content_type = header.decode("latin-1") if isinstance(header, bytes) else header
        pools = self._services.pools
        try:
            found, part_type, data = await pools.run_io(
                read_file_part, getattr(request, "content", None), content_type)
        except UploadTooLarge:
            raise fail(f"File is larger than {MAX_RESTORE_BYTES} bytes") from None
        except MultipartError as exc:
            raise fail(f"Malformed upload: {exc}") from None
        if not found:
            raise fail("No file provided")
        if part_type != "application/json":
            raise fail("File must be JSON")
        try:
            # Checked here so a bad file is a 400 now rather than a failed job later.
            await pools.run_io(parse_backup, data)
        except BackupError as exc:
            raise fail(str(exc)) from None
        text = data.decode("utf-8")
        del data
        job = await self._jobs.enqueue("restore_backup", [text], priority=0)
        return write_json(request, {"operation": operation, "success": 1, "job": job})

    # -- maintenance -----------------------------------------------------------------------------
    @app.route("/database/isnew", methods=["DELETE"], endpoint="clearNewAll")
    async def clear_new(self, request: IRequest) -> bytes:
        await clear_all_new(self._services)
        return write_json(request, api_response("clear_new_all"))

    @app.route("/database/drop", methods=["POST"], endpoint="dropDatabase")
    async def drop(self, request: IRequest) -> bytes:
        await drop_database(self._services)
        await self._services.archives.invalidate_search_cache()
        await queue_rebuild(self._jobs)
        return write_json(request, api_response("drop_database"))

    @app.route("/database/clean", methods=["POST"], endpoint="cleanDatabase")
    async def clean(self, request: IRequest) -> bytes:
        deleted, unlinked = await clean_database(self._services)
        await self._services.archives.invalidate_search_cache()
        await queue_rebuild(self._jobs)
        return write_json(request, {"operation": "clean_database", "deleted": deleted,
                                    "unlinked": unlinked, "success": 1})

