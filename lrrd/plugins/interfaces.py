"""The four kinds of plugin, as ``zope.interface`` interfaces (DESIGN.md decision 7).

A plugin is a module-level object in ``lrrd_plugins`` (or an extra plugin folder) that provides
``twisted.plugin.IPlugin`` and exactly one of these. It declares ``info`` (a ``PluginInfo``) and one
async method; what it needs from lrrd comes in the context argument, what it decides goes back in
its return value. Plugins never touch Redis or HTTP routing.
"""

from __future__ import annotations

from zope.interface import Attribute, Interface

__all__ = [
    "ILoginPlugin",
    "ILrrdPlugin",
    "IDownloadPlugin",
    "IMetadataPlugin",
    "IScriptPlugin",
    "INTERFACE_BY_TYPE",
]


class ILrrdPlugin(Interface):
    """What every lrrd plugin declares."""

    info = Attribute("A lrrd.plugins.model.PluginInfo: name, namespace, type, parameters...")


class IMetadataPlugin(ILrrdPlugin):
    """Finds tags (and maybe a title and summary) for one archive: the original's ``get_tags``."""

    async def get_tags(context, params):  # type: ignore[no-untyped-def]  # noqa: N805
        """Return ``{"tags": "a, b:c", "title"?: str, "summary"?: str}`` or ``{"error": msg}``.

        ``context`` is a ``MetadataContext`` (archive id, title, existing tags, thumbnail hash,
        file path, one-shot argument, and helpers to read files inside or beside the archive);
        ``params`` a ``PluginParams``. Raising ``PluginError`` is the same as returning an error.
        """


class ILoginPlugin(ILrrdPlugin):
    """Logs in somewhere and hands back a session other plugins use (``do_login``)."""

    async def do_login(context, params):  # type: ignore[no-untyped-def]  # noqa: N805
        """Return a ``LoginSession`` (cookies, user agent, headers) for the HTTP client."""


class IScriptPlugin(ILrrdPlugin):
    """Runs a one-off job over the library (``run_script``)."""

    async def run_script(context, params):  # type: ignore[no-untyped-def]  # noqa: N805
        """Return any JSON-serialisable mapping; it is shown as-is to the client."""


class IDownloadPlugin(ILrrdPlugin):
    """Turns a page URL matching ``info.url_regex`` into something downloadable (``provide_url``)."""

    async def provide_url(context, params):  # type: ignore[no-untyped-def]  # noqa: N805
        """Return ``{"download_url": url}``, ``{"file_path": path}`` (already downloaded into the
        temp folder) or ``{"error": msg}``."""


INTERFACE_BY_TYPE = {
    "metadata": IMetadataPlugin,
    "login": ILoginPlugin,
    "script": IScriptPlugin,
    "download": IDownloadPlugin,
}
