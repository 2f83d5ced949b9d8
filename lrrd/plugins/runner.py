"""Running plugins as the original does (``Model/Plugins.pm``, ``Utils/Plugins.pm``; LRR-NOTES §9.8).

The runner gathers what a plugin needs (settings from ``LRR_PLUGIN_<NS>``, the archive's fields,
a login session), calls it, and turns its answer into the original's result: for metadata plugins
tag rules, the "kept only if not already a case-insensitive substring" filter, ``new_tags`` with a
leading space per tag, and ``title`` only when ``replacetitles`` is on. A plugin that raises is a
plugin error, never a crash. ``run_auto_plugins`` is the importer's hook for new archives.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any, Awaitable, Callable, Mapping

from twisted.logger import Logger

from lrrd.library.importer import AutoPluginReport
from lrrd.library.tank_upkeep import set_archive_tags
from lrrd.plugins.context import (
    DownloadContext,
    LibraryAccess,
    LoginContext,
    MetadataContext,
    ScriptContext,
)
from lrrd.plugins.discovery import PluginRegistry
from lrrd.plugins.model import PluginError, PluginParams
from lrrd.store.archives import as_text
from lrrd.store.config import flag
from lrrd.store.plugins import PluginSettingsStore

if TYPE_CHECKING:
    from lrrd.download import GuardedHttpClient, LoginSession
    from lrrd.services import Services

__all__ = ["PluginRunner", "format_new_tags", "new_tags_of"]

log = Logger()

#: The namespace the original always runs first among auto-plugins.
FIRST_AUTO_PLUGIN = "regexplugin"

NO_ID = "Tried to call a metadata plugin without providing an id."
NOT_FOUND = "Plugin not found on system."


def new_tags_of(found: list[str], existing: str) -> list[str]:
    """The tags worth adding: trimmed, without line breaks, and not already a case-insensitive
    substring of the existing tags string (so ``artist:foo`` is dropped when ``artist:foobar``
    is there, exactly as the original's ``index(uc($tags), uc($tag))``). Empty tags always are."""
    haystack = existing.upper()
    kept = []
    for raw in found:
        tag = raw.replace("\r", "").replace("\n", "").strip()
        if tag.upper() not in haystack:
            kept.append(tag)
    return kept


def format_new_tags(tags: list[str]) -> str:
    """``" tag1, tag2"``: the original appends ``" $tag,"`` per tag and chops the last comma."""
    return ",".join(" " + tag for tag in tags)


async def _call(plugin: Any, method: str, *args: Any) -> dict[str, Any]:
    """Call a plugin method; any exception becomes ``{"error": ...}`` (the original evals it)."""
    try:
        result = await getattr(plugin, method)(*args)
    except PluginError as exc:
        return {"error": exc.message}
    except Exception as exc:  # noqa: BLE001 - a plugin bug must not take the request down
        log.failure("Plugin {ns} failed", ns=plugin.info.namespace)
        return {"error": f"Plugin {plugin.info.namespace} failed: {exc or type(exc).__name__}"}
    if result is None:
        return {}
    if not isinstance(result, Mapping):
        return {"error": f"Plugin {plugin.info.namespace} returned {type(result).__name__}, "
                         "not a mapping."}
    return dict(result)


class PluginRunner:
    """Runs plugins for the API (``/api/plugins/use``, ``run_plugin``), downloads and imports."""

    def __init__(self, services: Services, registry: PluginRegistry | None = None) -> None:
        self.services = services
        self.registry = registry or PluginRegistry(services.settings.plugin_dirs)
        self.settings = PluginSettingsStore(services.redis)
        self._enabled: tuple[float, list[tuple[Any, PluginParams]]] | None = None

    #: How long the list of auto-plugins is reused: an import of thousands of files would
    #: otherwise read every plugin's settings once per file (it halved the import rate).
    ENABLED_TTL = 1.0

    # -- settings and sessions -------------------------------------------------------------------
    async def params_for(self, plugin: Any) -> PluginParams:
        """Defaults filled in, then what ``LRR_PLUGIN_<NS>`` holds."""
        return PluginParams(plugin.info, await self.settings.get(plugin.info.namespace))

    def _base_client(self) -> GuardedHttpClient | None:
        return getattr(self.services, "http", None)

    async def login_session(self, namespace: str | None) -> LoginSession | None:
        """Run the login plugin named by ``login_from`` and return its session (None if none).

        A failing login is logged, and the plugin then runs without a session, as the original
        falls back to a bare user agent.
        """
        if not namespace:
            return None
        plugin = self.registry.get(namespace)
        if plugin is None or plugin.info.type != "login":
            log.warn("Login plugin {ns} not found", ns=namespace)
            return None
        context = LoginContext(namespace=namespace, oneshot_param="", http=self._base_client(),
                               run_io=self.services.pools.run_io)
        try:
            session = await plugin.do_login(context, await self.params_for(plugin))
        except Exception:  # noqa: BLE001
            log.failure("Login plugin {ns} failed", ns=namespace)
            return None
        return session

    async def _client_for(self, plugin: Any) -> GuardedHttpClient | None:
        client = self._base_client()
        session = await self.login_session(plugin.info.login_from)
        if client is not None and session is not None:
            client = client.with_session(session)
        return client

    # -- use_plugin ----------------------------------------------------------------------------
    async def use_plugin(self, namespace: str, arcid: str | None,
                         arg: str | None) -> tuple[str | None, dict[str, Any]]:
        """The original's ``use_plugin``: (type or None when unknown, result). Saves nothing."""
        plugin = self.registry.get(namespace or "")
        if plugin is None:
            return None, {"error": NOT_FOUND}
        params = await self.params_for(plugin)
        kind = plugin.info.type
        if kind == "metadata":
            result = await self.exec_metadata(plugin, arcid or "", arg or "", params)
        elif kind == "script":
            result = await self.exec_script(plugin, arg or "", params)
        elif kind == "download":
            result = await self.exec_download(plugin, arg or "", params)
            result.pop("client", None)
        else:
            result = {}
        return kind, result

    # -- metadata --------------------------------------------------------------------------------
    async def exec_metadata(self, plugin: Any, arcid: str, oneshot: str = "",
                            params: PluginParams | None = None) -> dict[str, Any]:
        """Run a metadata plugin on one archive; returns ``{"new_tags", "title"?, "summary"?}``
        or ``{"error"}``. Writes nothing but a regenerated cover."""
        if not arcid or arcid == "0":
            return {"error": NO_ID}
        services = self.services
        fields = await services.archives.get(arcid)
        if fields is None:
            return {"error": f"No archive with ID {arcid}."}
        thumbhash = as_text(fields.get("thumbhash"))
        if not thumbhash:
            thumbhash = await self._regenerate_cover(arcid)
        if params is None:
            params = await self.params_for(plugin)
        context = MetadataContext(
            namespace=plugin.info.namespace,
            oneshot_param=oneshot,
            http=await self._client_for(plugin),
            run_io=services.pools.run_io,
            archive_id=arcid,
            archive_title=as_text(fields.get("title")),
            existing_tags=as_text(fields.get("tags")),
            thumbnail_hash=thumbhash,
            file_path=as_text(fields.get("file")),
        )
        raw = await _call(plugin, "get_tags", context, params)
        if "error" in raw:
            return {"error": str(raw["error"])}
        config = await services.config.get("tagruleson", "replacetitles")
        found = [tag for tag in str(raw.get("tags") or "").split(",")]
        if flag(config["tagruleson"]):
            found = await self._apply_tag_rules(
                [t.replace("\r", "").replace("\n", "").strip() for t in found])
        result: dict[str, Any] = {
            "new_tags": format_new_tags(new_tags_of(found, context.existing_tags)),
        }
        title = raw.get("title")
        if title is not None and flag(config["replacetitles"]):
            result["title"] = str(title).strip()
        summary = raw.get("summary")
        if summary is not None:
            result["summary"] = str(summary)
        return result

    async def _apply_tag_rules(self, tags: list[str]) -> list[str]:
        try:
            from lrrd.library.tagrules import apply_tag_rules, current_tag_rules
        except ImportError:  # the tag rules module is not in this checkout
            return tags
        rules = await current_tag_rules(self.services.redis)
        return apply_tag_rules([t for t in tags if t], rules)

    async def _regenerate_cover(self, arcid: str) -> str:
        """The original rebuilds a missing thumbnail hash before calling the plugin."""
        from lrrd.library.thumbnails import ThumbnailError, make_cover

        try:
            await make_cover(self.services, arcid)
        except ThumbnailError as exc:
            log.warn("Error building thumbnail of {arcid}: {error}", arcid=arcid, error=str(exc))
            return ""
        return as_text((await self.services.archives.get_fields(arcid, "thumbhash"))["thumbhash"])

    # -- scripts and downloads -------------------------------------------------------------------
    async def exec_script(self, plugin: Any, arg: str = "",
                          params: PluginParams | None = None) -> dict[str, Any]:
        context = ScriptContext(namespace=plugin.info.namespace, oneshot_param=arg,
                                http=await self._client_for(plugin),
                                run_io=self.services.pools.run_io,
                                library=LibraryAccess(self.services))
        return await _call(plugin, "run_script", context,
                           params if params is not None else await self.params_for(plugin))

    async def exec_download(self, plugin: Any, url: str,
                            params: PluginParams | None = None) -> dict[str, Any]:
        """``provide_url``: ``{"download_url", "client"}`` (the logged-in client to fetch it
        with), ``{"file_path"}`` or ``{"error"}``."""
        client = await self._client_for(plugin)
        context = DownloadContext(namespace=plugin.info.namespace, oneshot_param=url, http=client,
                                  run_io=self.services.pools.run_io, url=url,
                                  temp_dir=self.services.settings.temp_dir / "downloads")
        result = await _call(plugin, "provide_url", context,
                             params if params is not None else await self.params_for(plugin))
        if "error" in result:
            return {"error": str(result["error"])}
        if not result.get("download_url") and not result.get("file_path"):
            return {"error": "Plugin ran to completion but didn't provide a final URL for us "
                             "to download."}
        if client is not None:
            result["client"] = client
        return result

    # -- auto-plugins on import ------------------------------------------------------------------
    async def enabled_metadata_plugins(self) -> list[tuple[Any, PluginParams]]:
        """Metadata plugins with ``enabled=1``, ``regexplugin`` first; settings read in one trip
        and reused for ``ENABLED_TTL`` seconds (a settings change applies within a second)."""
        now = self.services.reactor.seconds() if self.services.reactor is not None else 0.0
        if self._enabled is not None and 0 <= now - self._enabled[0] < self.ENABLED_TTL:
            return list(self._enabled[1])
        enabled = await self._read_enabled_metadata_plugins()
        self._enabled = (now, enabled)
        return list(enabled)

    async def _read_enabled_metadata_plugins(self) -> list[tuple[Any, PluginParams]]:
        plugins = self.registry.of_type("metadata")
        if not plugins:
            return []
        stored = await self.settings.get_many(p.info.namespace for p in plugins)
        enabled = []
        for plugin in plugins:
            params = PluginParams(plugin.info, stored.get(plugin.info.namespace))
            if params.enabled:
                enabled.append((plugin, params))
        enabled.sort(key=lambda pair: pair[0].info.namespace != FIRST_AUTO_PLUGIN)
        return enabled

    async def run_auto_plugins(self, arcid: str) -> AutoPluginReport:
        """``exec_enabled_plugins_on_file``: each enabled metadata plugin, its tags appended and
        its title/summary set. The importer calls this while it holds the archive's write lock,
        so the writes here take no lock of their own."""
        enabled = await self.enabled_metadata_plugins()
        if not enabled:
            return AutoPluginReport()
        archives = self.services.archives
        succeeded = failed = added = 0
        new_title = ""
        for plugin, params in enabled:
            result = await self.exec_metadata(plugin, arcid, "", params)
            if "error" in result:
                failed += 1
                log.warn("Auto-plugin {ns} on {arcid}: {error}", ns=plugin.info.namespace,
                         arcid=arcid, error=result["error"])
                continue
            succeeded += 1
            new_tags = result.get("new_tags", "")
            if new_tags.strip():
                await set_archive_tags(archives, self.services.tankoubons, arcid, new_tags,
                                       append=True)
                added += len([t for t in new_tags.split(",") if t.strip()])
            title = result.get("title")
            if title and await archives.set_title(arcid, title):
                new_title = title
            if result.get("summary"):
                await archives.set_summary(arcid, result["summary"])
        return AutoPluginReport(succeeded=succeeded, failed=failed, tags_added=added,
                                new_title=new_title)


def auto_plugins_hook(services: Services) -> Callable[[str], Awaitable[AutoPluginReport]]:
    """What ``Importer.auto_plugins`` is set to."""
    return lambda arcid: services.plugins.run_auto_plugins(arcid)
