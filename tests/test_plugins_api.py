"""Plugins through the real site and store: /api/plugins, run_plugin, auto-plugins on import,
the folder-to-category script, extra plugin folders, and the runner's rules (§9.8)."""

from __future__ import annotations

import json
import shutil
from pathlib import Path
from typing import Any

from twisted.internet.defer import Deferred

from lrrd.jobs.worker import JobContext
from lrrd.plugins.discovery import PluginRegistry
from lrrd.plugins.tasks import run_plugin
from lrrd.store.plugins import PluginSettingsStore
from lrrd.store.redis import DB
from tests.fixtures.app import ApiTestCase
from tests.fixtures.archives import make_cbz, make_7z, numbered_pages

SAMPLES = Path(__file__).parent / "fixtures" / "samples"
REPO_ROOT = Path(__file__).resolve().parent.parent
GOLDEN = REPO_ROOT.parent / "shared" / "spec" / "golden"


def d(coro: Any) -> Deferred[Any]:
    return Deferred.fromCoroutine(coro)


def golden(name: str) -> Any:
    return json.loads((GOLDEN / name).read_text(encoding="utf-8"))


class PluginsApiTests(ApiTestCase):
    """Archives are imported through the real importer into the test's content folder."""

    async def add_archive(self, name: str, extra: list[tuple[str, bytes]] = (), *,
                          seed: int = 0, folder: str = "") -> str:
        services = self.services()
        target = services.settings.content / folder / name
        target.parent.mkdir(parents=True, exist_ok=True)
        pages = numbered_pages(2 + seed)
        if name.endswith(".cb7"):
            from tests.fixtures.archives import _pages  # noqa: PLC2701 - the 7z helper takes pages only
            make_7z(target, [*_pages(pages), *extra])
        else:
            make_cbz(target, pages, extra=list(extra))
        result = await services.importer.import_file(str(target))
        self.assertEqual(result.status, "added", result.message)
        assert result.arcid is not None
        return result.arcid

    async def use(self, **query: str) -> Any:
        from urllib.parse import urlencode

        response = await self.request("POST", "/api/plugins/use?" + urlencode(query), auth=True)
        self.assertEqual(response.status, 200, response.body)
        return response.json

    async def tags_of(self, arcid: str) -> str:
        fields = await self.services().archives.get_fields(arcid, "tags")
        return str(fields["tags"] or "")

    # -- listing -------------------------------------------------------------------------------
    def test_list_by_type(self) -> Deferred[None]:
        """GET /api/plugins/{type}: the original's fields; named parameters as an array with names."""
        async def run() -> None:
            metadata = (await self.get("/api/plugins/metadata", auth=True)).json
            spaces = [p["namespace"] for p in metadata]
            for ns in ("comicinfo", "regexplugin", "copytags", "DateAddedPlugin", "ezeplugin",
                       "Hdoujinplugin", "koromoplugin", "gallerydlplugin", "hentaiathome",
                       "ehd-info", "kskyamlmeta"):
                self.assertIn(ns, spaces)
            self.assertTrue(all(p["type"] == "metadata" for p in metadata))
            ehd = next(p for p in metadata if p["namespace"] == "ehd-info")
            self.assertEqual([p["name"] for p in ehd["parameters"]],
                             ["replace_title", "japanese_title", "save_summary"])
            script = (await self.get("/api/plugins/script", auth=True)).json
            self.assertEqual([p["namespace"] for p in script], ["fldr2cat"])
            self.assertEqual(set(script[0]), set(golden("get_plugins_script.json")[0]) - {"icon"})
            self.assertEqual(len(script[0]["parameters"]), 2)
            self.assertNotIn("name", script[0]["parameters"][0])
            self.assertEqual((await self.get("/api/plugins/download", auth=True)).json, [])
            every = (await self.get("/api/plugins/all", auth=True)).json
            self.assertEqual(len(every), len(metadata) + len(script))
            self.assertEqual((await self.get("/api/plugins/metadata")).status, 401)
        return d(run())

    # -- use -----------------------------------------------------------------------------------
    def test_use_does_not_save(self) -> Deferred[None]:
        """ComicInfo through /use: new tags only (existing substrings dropped), title; nothing
        written to the archive."""
        async def run() -> None:
            arcid = await self.add_archive(
                "comic.cbz", [("meta/ComicInfo.xml", (SAMPLES / "comicinfo/02_sample.xml").read_bytes())])
            await self.services().archives.set_tags(arcid, "Comedy, artist:あずまきよひこ")
            before = await self.tags_of(arcid)
            body = await self.use(plugin="comicinfo", id=arcid)
            self.assertEqual(body, {
                "operation": "use_plugin", "type": "metadata", "success": 1, "error": None,
                "data": {"new_tags": " group:あずまきよひこ, language:ja, Shounen, Slice of Life",
                         "title": "よつばと！ 第01巻"}})
            self.assertEqual(await self.tags_of(arcid), before)
        return d(run())

    def test_golden_shapes(self) -> Deferred[None]:
        """The regexplugin call of the golden file answers in its shape; unknown plugins answer
        exactly the golden body."""
        async def run() -> None:
            arcid = await self.add_archive("(C101) [Kuro Neko] Blue [Japanese] {action, mystery}.cbz")
            await self.services().archives.set_tags(
                arcid, "artist:kuro neko,event:c101,language:japanese")
            body = await self.use(plugin="regexplugin", id=arcid)
            self.assertEqual(body, golden("post_plugins_use.json"))
            unknown = await self.use(plugin="nosuchplugin", id=arcid)
            self.assertEqual(unknown, golden("err_post_plugins_use_unknown.json"))
        return d(run())

    def test_errors_and_settings(self) -> Deferred[None]:
        """No id → the original's message; replacetitles=0 drops the title; a malformed file in
        a 7z archive is a plugin error, not a crash."""
        async def run() -> None:
            body = await self.use(plugin="comicinfo")
            self.assertEqual((body["success"], body["error"]),
                             (0, "Tried to call a metadata plugin without providing an id."))
            arcid = await self.add_archive("broken.cb7", [("info.json", b'{"title": "Broken"')])
            body = await self.use(plugin="ezeplugin", id=arcid)
            self.assertEqual(body["success"], 0)
            self.assertIn("info.json is not valid JSON", body["error"])
            self.assertEqual(body["data"], {"error": body["error"]})
            missing = await self.use(plugin="comicinfo", id=arcid)
            self.assertEqual(missing["error"], "No ComicInfo.xml file found in the archive")
            await self.services().config.set({"replacetitles": "0"})
            other = await self.add_archive("[Artist] Title [English].cbz", seed=1)
            body = await self.use(plugin="regexplugin", id=other)
            self.assertEqual(body["data"], {"new_tags": " artist:Artist, language:english"})
        return d(run())

    def test_settings_and_oneshot(self) -> Deferred[None]:
        """Settings come from LRR_PLUGIN_<NS> (legacy customargs by position); the one-shot
        argument reaches the plugin."""
        async def run() -> None:
            await self.services().config.set({"usedateadded": "0"})
            arcid = await self.add_archive("plain.cbz")
            await PluginSettingsStore(self.redis).set("copytags", {"customargs": '["a:b, c"]'})
            body = await self.use(plugin="copytags", id=arcid)
            self.assertEqual(body["data"], {"new_tags": " a:b, c"})
            raw = await self.redis.db(DB.CONFIG).hgetall("LRR_PLUGIN_COPYTAGS")
            self.assertEqual(raw, {"customargs": '["a:b, c"]'})
            body = await self.use(plugin="DateAddedPlugin", id=arcid, arg="yes")
            mtime = int((self.services().settings.content / "plain.cbz").stat().st_mtime)
            self.assertEqual(body["data"]["new_tags"], f" date_added:{mtime}")
        return d(run())

    def test_tag_rules_apply(self) -> Deferred[None]:
        """With tagruleson=1 the rules rewrite plugin tags before the substring filter."""
        async def run() -> None:
            try:
                from lrrd.library.tagrules import set_tag_rules
            except ImportError:
                self.skipTest("tag rules are not in this checkout")
            arcid = await self.add_archive("rules.cbz", [("info.json", (SAMPLES / "eze/eze_lite_sample.json").read_bytes())])
            await set_tag_rules(self.redis, "-female:*\nparody:kanon -> series:kanon")
            body = await self.use(plugin="ezeplugin", id=arcid)
            tags = body["data"]["new_tags"]
            self.assertNotIn("female:", tags)
            self.assertIn("series:kanon", tags)
            await self.services().config.set({"tagruleson": "0"})
            self.assertIn("female:aunt", (await self.use(plugin="ezeplugin", id=arcid))["data"]["new_tags"])
        return d(run())

    def test_sidecar_file(self) -> Deferred[None]:
        """eze and gallery-dl read {archive_name}.json beside the archive when none is inside."""
        async def run() -> None:
            arcid = await self.add_archive("beside.cbz")
            shutil.copy(SAMPLES / "gallerydl/gallerydl_arraysingletags_sample.json",
                        self.services().settings.content / "beside.json")
            body = await self.use(plugin="gallerydlplugin", id=arcid)
            self.assertEqual(body["data"]["title"], "Quickie Gift")
            self.assertIn("sea bunny shrimp", body["data"]["new_tags"])
        return d(run())

    # -- queue ---------------------------------------------------------------------------------
    def test_queue_and_task(self) -> Deferred[None]:
        """POST /api/plugins/queue stores run_plugin [ns, id, arg]; the task's result has the
        golden job's shape."""
        async def run() -> None:
            arcid = await self.add_archive("(C1) [X] Y [English].cbz")
            response = await self.request(
                "POST", f"/api/plugins/queue?plugin=regexplugin&id={arcid}", auth=True)
            body = response.json
            self.assertEqual(set(body), set(golden("post_plugins_queue.json")))
            self.assertEqual(body["operation"], "queue_plugin_exec")
            detail = (await self.get(f"/api/minion/{body['job']}/detail", auth=True)).json
            self.assertEqual(detail["task"], "run_plugin")
            self.assertEqual(detail["args"], ["regexplugin", arcid, None])
            job = JobContext(id=1, task="run_plugin", args=detail["args"], retries=0, attempts=1,
                             queue=None, services=self.services())  # type: ignore[arg-type]
            result = await run_plugin(job, *detail["args"])
            expected = golden("get_minion_plugin_detail.json")["result"]
            self.assertEqual(set(result), set(expected))
            self.assertEqual((result["type"], result["success"], result["error"]), ("metadata", 1, None))
            self.assertEqual(result["data"]["title"], "Y")
        return d(run())

    # -- auto-plugins --------------------------------------------------------------------------
    def test_auto_plugins_on_import(self) -> Deferred[None]:
        """Enabled metadata plugins run on every new archive, regexplugin first; tags appended,
        title set; the upload message counts them."""
        async def run() -> None:
            settings = PluginSettingsStore(self.redis)
            await settings.set("regexplugin", {"enabled": "1", "customargs": "[false, false]"})
            await settings.set("hentaiathome", {"enabled": "1"})
            await settings.set("comicinfo", {"enabled": "1"})  # no ComicInfo.xml: one failure
            await settings.set("koromoplugin", {"enabled": "0"})
            services = self.services()
            from lrrd.library.uploads import handle_incoming_file

            temp = Path(self.mktemp())
            temp.mkdir()
            source = temp / "x.cbz"
            make_cbz(source, numbered_pages(2),
                     extra=[("galleryinfo.txt", (SAMPLES / "hath/galleryinfo.txt").read_bytes())])
            result = await handle_incoming_file(services, source, "(C9) [Circle] Name [English].cbz")
            self.assertEqual(result.message, "2 Plugins used successfully, 1 Plugins failed, "
                                             "9 tags added. ")
            fields = await services.archives.get_fields(result.arcid, "tags", "title")
            tags = str(fields["tags"]).split(",")
            self.assertEqual(tags[1:4], ["artist:Circle", "event:C9", "language:english"])
            self.assertTrue(tags[0].startswith("date_added:"))
            self.assertIn("uploader:Katlan", tags)
            self.assertIn("female:fox girl", tags)
            self.assertNotIn("language:english", tags[4:])  # already there: not appended again
            self.assertEqual(fields["title"], "xxxxxxxxxx")
        return d(run())

    # -- script --------------------------------------------------------------------------------
    def test_folders_to_categories(self) -> Deferred[None]:
        """fldr2cat makes one static category per subfolder holding archives (top level only
        when asked), replacing the old static ones when asked."""
        async def run() -> None:
            top = await self.add_archive("top.cbz")
            one = await self.add_archive("a.cbz", seed=1, folder="Series A")
            two = await self.add_archive("b.cbz", seed=2, folder="Series A/Vol 2")
            three = await self.add_archive("c.cbz", seed=3, folder="Other")
            categories = self.services().categories
            await categories.create("Old static")
            dynamic = await categories.create("Dyn", "artist:x")
            body = await self.use(plugin="fldr2cat")
            self.assertEqual(body["success"], 1, body)
            made = {c["name"]: sorted(c["archives"]) for c in await categories.list_all()
                    if c["id"] in body["data"]["created_categories"]}
            self.assertEqual(made, {"Series A": [one], "Vol 2": [two], "Other": [three]})
            await PluginSettingsStore(self.redis).set("fldr2cat", {"customargs": "[true, true]"})
            body = await self.use(plugin="fldr2cat")
            remaining = await categories.list_all()
            names = {c["name"] for c in remaining}
            self.assertNotIn("Old static", names)
            self.assertIn(dynamic, {c["id"] for c in remaining})
            made = {c["name"]: sorted(c["archives"]) for c in remaining if c["search"] == ""}
            self.assertEqual(made, {"Series A": sorted([one, two]), "Other": [three]})
            self.assertNotIn(top, [a for archives in made.values() for a in archives])
        return d(run())


class ExtraFolderTests(ApiTestCase):
    def test_extra_plugin_folder(self) -> Deferred[None]:
        """A plugin module dropped in a configured folder is found like a built-in; a module
        that fails to import is logged and skipped."""
        async def run() -> None:
            folder = Path(self.mktemp())
            folder.mkdir()
            (folder / "shouter.py").write_text(
                "from twisted.plugin import IPlugin\n"
                "from zope.interface import implementer\n"
                "from lrrd.plugins.interfaces import IScriptPlugin\n"
                "from lrrd.plugins.model import PluginInfo\n"
                "@implementer(IPlugin, IScriptPlugin)\n"
                "class Shout:\n"
                "    info = PluginInfo(name='Shout', type='script', namespace='shout')\n"
                "    async def run_script(self, context, params):\n"
                "        return {'said': context.oneshot_param.upper()}\n"
                "plugin = Shout()\n")
            (folder / "broken.py").write_text("raise RuntimeError('nope')\n")
            import lrrd_plugins

            self.addCleanup(lrrd_plugins.__path__.remove, str(folder.resolve()))
            registry = PluginRegistry([folder])
            self.assertIsNotNone(registry.get("shout"))
            self.assertIsNotNone(registry.get("comicinfo"))
            self.flushLoggedErrors(RuntimeError)
            runner = self.services().plugins
            runner.registry = registry
            kind, result = await runner.use_plugin("shout", None, "hi")
            self.assertEqual((kind, result), ("script", {"said": "HI"}))
        return d(run())
