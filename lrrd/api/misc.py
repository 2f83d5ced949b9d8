"""The misc area: ``/api/info`` now; temp folder, downloads and thumbnails regeneration later."""

from __future__ import annotations

import time
from pathlib import Path
from typing import Any, Callable

from twisted.web.iweb import IRequest

import lrrd
from lrrd.api.area import area_app, arg
from lrrd.api.errors import ApiError, write_json, xml_escape
from lrrd.jobs.maintenance import clean_temp_folder, temp_folder_size
from lrrd.store.config import ConfigStore, as_int, flag
from lrrd.store.redis import DB, RedisStore, gather


class MiscApi:
    """Server-wide information and maintenance endpoints."""

    app = area_app()

    def __init__(self, redis: RedisStore, debug: bool = False, temp_dir: Path | None = None,
                 run_io: Callable[..., Any] | None = None, jobs: Any = None,
                 thumb_dir: Path | None = None) -> None:
        self._redis = redis
        self._jobs = jobs
        self._thumb_dir = thumb_dir
        self._config = ConfigStore(redis)
        self._debug = debug
        self._temp_dir = temp_dir
        self._run_io = run_io

    async def server_info(self) -> dict[str, Any]:
        """/api/info with the original's types: real booleans, integers for counts."""
        config = await self._config.get(
            "htmltitle", "motd", "enablepass", "devmode", "nofunmode", "pagesize",
            "enableresize", "localprogress", "authprogress", "excludednamespaces",
        )
        search = self._redis.db(DB.SEARCH)
        total_archives, cleared = await gather(
            search.scard("LRR_TANKGROUPED"),
            search.hget("LRR_SEARCHCACHE", "created"),
        )
        return {
            "name": xml_escape(config["htmltitle"]),
            "motd": xml_escape(config["motd"]),
            "version": lrrd.LRR_VERSION,
            "version_name": lrrd.LRR_VERSION_NAME,
            "version_desc": lrrd.LRR_VERSION_DESC,
            "has_password": flag(config["enablepass"]),
            "debug_mode": flag(config["devmode"]) or self._debug,
            "nofun_mode": flag(config["nofunmode"]),
            "archives_per_page": as_int(config["pagesize"], 100),
            "server_resizes_images": flag(config["enableresize"]),
            "server_tracks_progress": not flag(config["localprogress"]),
            "authenticated_progress": flag(config["authprogress"]),
            "total_pages_read": await self._config.total_pages_read(),
            "total_archives": int(total_archives or 0),
            # The original reads this from the wrong database and so always says "now";
            # lrrd reports the real last invalidation and "now" when there was none.
            "cache_last_cleared": as_int(cleared, 0) or int(time.time()),
            "excluded_namespaces": [
                ns.strip() for ns in config["excludednamespaces"].split(",") if ns.strip()
            ],
        }

    @app.route("/info", methods=["GET"], endpoint="getServerInfo")
    async def get_server_info(self, request: IRequest) -> bytes:
        return write_json(request, await self.server_info())

    @app.route("/tempfolder", methods=["DELETE"], endpoint="cleanTempfolder")
    async def clean_tempfolder(self, request: IRequest) -> bytes:
        """Empty the temp folder (uploads, downloads, extracted pages: the page cache lives
        there) and report what is left, in MB; errors are reported with a 200, as the original."""
        error, size = "", 0.0
        if self._temp_dir is not None and self._run_io is not None:
            error = await self._run_io(clean_temp_folder, self._temp_dir)
            size = await self._run_io(temp_folder_size, self._temp_dir)
        return write_json(request, {
            "operation": "cleantemp",
            "success": 0 if error else 1,
            "error": error,
            "newsize": size if size else 0,
        })

    @app.route("/regen_thumbs", methods=["POST"], endpoint="regenThumbnails")
    async def regen_thumbnails(self, request: IRequest) -> bytes:
        """Queue ``regen_all_thumbnails`` [thumbdir, force] as the original does (priority 0)."""
        if self._jobs is None:
            raise ApiError(503, "No job queue in this process.", operation="regen_thumbnails")
        force = (arg(request, "force") or "").strip().lower() in ("1", "true")
        job = await self._jobs.enqueue("regen_all_thumbnails",
                                       [str(self._thumb_dir or ""), 1 if force else 0])
        return write_json(request, {"operation": "regen_thumbnails", "success": 1, "job": job})
