"""OPDS 1.2 + PSE 1.1 (LRR-NOTES §5): the feeds parse strictly, carry every namespace, relation
and media type, match the original's entry element by element, survive hostile text, keep
``?key=`` in their links, and PSE serves pages as ``/page`` does."""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, unquote, urlsplit

from lxml import etree
from twisted.internet.defer import Deferred
from twisted.trial.unittest import SynchronousTestCase

from lrrd.opds import (
    ATOM_NS, DCTERMS_NS, OPDS_NS, PSE_NS, THR_NS, Facet, Links, OpdsArchive, Server,
    acquisition_type, catalog_feed, entry_document, first_values, iso_time, tag_with_namespace,
    xml_text,
)
from tests.fixtures.archives import make_cbz, numbered_pages, png_bytes
from tests.fixtures.reading import IndexedLibraryApiTestCase, d

GOLDEN = Path(__file__).resolve().parent.parent.parent / "shared" / "spec" / "golden"
A = "{%s}" % ATOM_NS
NS = {"a": ATOM_NS, "opds": OPDS_NS, "pse": PSE_NS, "thr": THR_NS, "dcterms": DCTERMS_NS}
STRICT = etree.XMLParser(recover=False, resolve_entities=False, no_network=True)
ACQ = "application/atom+xml;profile=opds-catalog;kind=acquisition"
NAV = "application/atom+xml;profile=opds-catalog;kind=navigation"
ENTRY = "application/atom+xml;type=entry;profile=opds-catalog"

HOSTILE_TITLE = "<script>alert('x')</script> & ]]> \x00\x01\x0b\x1b\x7f end \ufffe"
HOSTILE_TAGS = 'artist:<b>&amp;</b>,group:"q" & \'s\',event:]]>,language:\x07bell,x:\udcff'


def parse(body: bytes) -> Any:
    """Strict parse: a single ill-formed byte fails the test."""
    return etree.fromstring(body, STRICT)


def archive(**overrides: Any) -> OpdsArchive:
    values: dict[str, Any] = dict(
        arcid="8dc6167b2f18e196cbbaf915aeb65d4273c43cb0", title="Blue",
        tags="date_added:1795822089,action,artist:Kuro Neko,event:C101,language:Japanese,mystery",
        isnew=True, pagecount=28, progress=0, lastreadtime=0, file="/srv/Blue.zip")
    values.update(overrides)
    return OpdsArchive(**values)


SERVER = Server("LANraragi", "Welcome to this Library running LANraragi!", "0.9.81")


def links_of(root: Any) -> list[Any]:
    return root.findall(A + "link")


def hrefs(root: Any) -> list[str]:
    return [link.get("href") for link in root.iter(A + "link")]


def normalise(element: Any) -> tuple[Any, ...]:
    """An element as (tag, attributes, stripped text, children) with the PSE template's
    percent-encoding (the original's url_for) undone, for comparison with the golden file."""
    attrs = {k: unquote(v) if k == "href" else v for k, v in element.attrib.items()}
    return (element.tag, attrs, (element.text or "").strip(),
            [normalise(child) for child in element])


class FeedTests(SynchronousTestCase):
    """``lrrd.opds`` on its own."""

    def feed(self, archives: list[OpdsArchive] | None = None, facets: list[Facet] | None = None,
             key: str | None = None, start: int = 0, category: str = "") -> Any:
        return parse(catalog_feed(SERVER, archives if archives is not None else [archive()],
                                  facets or [], Links(key=key), start, category))

    def test_namespaces_and_feed_links(self) -> None:
        """Atom root with the OPDS, PSE, dcterms and thr prefixes; self/start/next as the
        original's, ``next`` at start + entries even on a short page."""
        body = catalog_feed(SERVER, [archive()], [], Links(), 40)
        self.assertTrue(body.startswith(b'<?xml version="1.0" encoding="UTF-8"?>'))
        root = parse(body)
        self.assertEqual(root.tag, A + "feed")
        self.assertEqual(root.nsmap, {None: ATOM_NS, "dcterms": DCTERMS_NS, "opds": OPDS_NS,
                                      "pse": PSE_NS, "thr": THR_NS})
        self.assertEqual(root.findtext(A + "id"), "urn:lrr:0")
        self.assertEqual(root.findtext(A + "title"), "LANraragi")
        self.assertEqual(root.findtext(A + "subtitle"), SERVER.motd)
        self.assertEqual(root.findtext(A + "icon"), "/favicon.ico")
        self.assertEqual(root.findtext(A + "author/" + A + "name"), "0.9.81")
        by_rel = {link.get("rel"): link for link in links_of(root)
                  if link.get("rel") in ("self", "start", "next")}
        self.assertEqual(by_rel["self"].attrib, {"rel": "self", "href": "/api/opds", "type": ACQ})
        self.assertEqual(by_rel["start"].attrib, {"rel": "start", "href": "/api/opds", "type": ACQ})
        self.assertEqual(by_rel["next"].attrib,
                         {"rel": "next", "href": "/api/opds?start=41", "type": NAV})
        empty = self.feed(archives=[], start=7)
        self.assertEqual(empty.find("a:link[@rel='next']", NS).get("href"), "/api/opds?start=7")

    def test_facets(self) -> None:
        """All Archives first, then categories by lowercased name; thr:count only for static
        categories holding something; activeFacet on the selected one."""
        facets = [Facet("SET_0000000003", "zeta", 2, False),
                  Facet("SET_0000000001", "Beta", 0, False),
                  Facet("SET_0000000002", "alpha", None, True)]
        root = self.feed(facets=facets, category="SET_0000000002")
        found = root.findall("a:link[@rel='http://opds-spec.org/facet']", NS)
        self.assertEqual([f.get("title") for f in found], ["All Archives", "alpha", "Beta", "zeta"])
        self.assertTrue(all(f.get("{%s}facetGroup" % OPDS_NS) == "Categories" for f in found))
        self.assertEqual([f.get("{%s}activeFacet" % OPDS_NS) for f in found],
                         [None, "true", None, None])
        self.assertEqual([f.get("{%s}count" % THR_NS) for f in found], [None, None, None, "2"])
        self.assertEqual([f.get("href") for f in found],
                         ["/api/opds", "/api/opds?category=SET_0000000002",
                          "/api/opds?category=SET_0000000001", "/api/opds?category=SET_0000000003"])
        self.assertIsNone(found[0].get("type"))
        everything = self.feed(facets=facets)
        first = everything.find("a:link[@rel='http://opds-spec.org/facet']", NS)
        self.assertEqual(first.get("{%s}activeFacet" % OPDS_NS), "true")
        # Paging a category's feed stays in the category.
        self.assertEqual(root.find("a:link[@rel='next']", NS).get("href"),
                         "/api/opds?start=1&category=SET_0000000002")

    def test_entry_links_and_fields(self) -> None:
        """Every entry link with its relation and media type, PSE attributes, fields from tags."""
        root = self.feed(archives=[archive(progress=5, lastreadtime=1600000000, isnew=False)])
        entry = root.find(A + "entry")
        arcid = archive().arcid
        self.assertEqual(entry.findtext(A + "id"), "urn:lrr:" + arcid)
        self.assertEqual(entry.findtext(A + "updated"), "2026-11-27T23:28:09Z")
        self.assertEqual(entry.findtext(A + "published"), "2026-11-27T23:28:09Z")
        self.assertEqual(entry.findtext("a:author/a:name", namespaces=NS), "Kuro Neko")
        self.assertEqual(entry.findtext("dcterms:language", namespaces=NS), "Japanese")
        self.assertEqual(entry.findtext("dcterms:publisher", namespaces=NS), "")
        self.assertEqual(entry.findtext("dcterms:issued", namespaces=NS), "C101")
        self.assertEqual(entry.find(A + "category").get("term"), "Archive")
        self.assertEqual(entry.findtext(A + "summary"), archive().tags)
        got = [(link.get("rel"), link.get("type"), link.get("href")) for link in links_of(entry)]
        self.assertEqual(got, [
            ("alternate", ENTRY, f"/api/opds/{arcid}"),
            ("http://opds-spec.org/image", "image/jpeg", f"/api/archives/{arcid}/thumbnail"),
            ("http://opds-spec.org/image/thumbnail", "image/jpeg",
             f"/api/archives/{arcid}/thumbnail"),
            ("http://opds-spec.org/acquisition", "application/x-cbz",
             f"/api/archives/{arcid}/download"),
            ("http://vaemendis.net/opds-pse/stream", "image/jpeg",
             f"/api/opds/{arcid}/pse?page={{pageNumber}}"),
            ("alternate", "text/html", f"/reader?id={arcid}"),
        ])
        pse = links_of(entry)[4]
        self.assertEqual(pse.get("{%s}count" % PSE_NS), "28")
        self.assertEqual(pse.get("{%s}lastRead" % PSE_NS), "5")
        self.assertEqual(pse.get("{%s}lastReadDate" % PSE_NS), "2020-09-13T12:26:40Z")
        unread = links_of(self.feed().find(A + "entry"))[4]
        self.assertIsNone(unread.get("{%s}lastRead" % PSE_NS))
        self.assertIsNone(unread.get("{%s}lastReadDate" % PSE_NS))
        self.assertEqual(self.feed().find("a:entry/a:category", NS).get("term"), "New Archive")

    def test_entries_sorted_by_lowercased_title(self) -> None:
        """The page is re-sorted by lowercased title, as the original's list is."""
        titles = ["b", "C", "a", "B2"]
        root = self.feed(archives=[archive(arcid=str(i) * 40, title=t)
                                   for i, t in enumerate(titles)])
        self.assertEqual([e.findtext(A + "title") for e in root.findall(A + "entry")],
                         ["a", "b", "B2", "C"])

    def test_key_carried_into_every_link(self) -> None:
        """With ``?key=``, every href keeps it (encoded), and the PSE template stays literal."""
        key = "k&y =/?#ü"
        for root in (self.feed(facets=[Facet("SET_0000000001", "c", 1, False)], key=key,
                               category="SET_0000000001"),
                     parse(entry_document(archive(), Links(key=key)))):
            all_hrefs = hrefs(root)
            self.assertGreater(len(all_hrefs), 5)
            for href in all_hrefs:
                query = parse_qs(urlsplit(href).query, keep_blank_values=True)
                self.assertEqual(query.get("key"), [key], href)
            pse = root.find(".//a:link[@rel='http://vaemendis.net/opds-pse/stream']", NS)
            self.assertIn("page={pageNumber}", pse.get("href"))
        no_key = self.feed()
        self.assertFalse(any("key=" in h for h in hrefs(no_key)))

    def test_acquisition_types(self) -> None:
        """Download media type by extension, x-cbz otherwise."""
        self.assertEqual([acquisition_type(p) for p in (
            "a.pdf", "a.RAR", "a.cbr", "a.epub", "a.cbw", "a.zip", "a.cbz", "a.7z", "a.tar.gz")],
            ["application/pdf", "application/x-cbr", "application/x-cbr", "application/epub+zip",
             "application/xml", "application/x-cbz", "application/x-cbz", "application/x-cbz",
             "application/x-cbz"])

    def test_hostile_text_is_escaped_and_well_formed(self) -> None:
        """Markup, ampersands, ``]]>``, control characters, U+FFFE and a surrogate from an
        undecodable file name: the feed still parses strictly and the text reads back clean."""
        hostile = archive(title=HOSTILE_TITLE, tags=HOSTILE_TAGS,
                          arcid="8dc6167b2f18e196cbbaf915aeb65d4273c43cb0")
        facets = [Facet("SET_0000000001", "<cat> & \x01\"'", 1, False)]
        body = catalog_feed(Server("<t>&\x02", "]]>\x1f", "1"), [hostile], facets,
                            Links(key="<&\x00>"), 0)
        root = parse(body)
        self.assertNotIn(b"<script>", body)
        self.assertIn(b"&lt;script&gt;", body)
        entry = root.find(A + "entry")
        self.assertEqual(entry.findtext(A + "title"),
                         "<script>alert('x')</script> & ]]> \x7f end ")
        self.assertEqual(entry.findtext(A + "summary"), xml_text(HOSTILE_TAGS))
        self.assertIn("\ufffd", entry.findtext(A + "summary"))
        self.assertEqual(entry.findtext("a:author/a:name", namespaces=NS), "<b>&amp;</b>")
        self.assertEqual(entry.findtext("dcterms:publisher", namespaces=NS), "\"q\" & 's'")
        self.assertEqual(entry.findtext("dcterms:issued", namespaces=NS), "]]>")
        self.assertEqual(entry.findtext("dcterms:language", namespaces=NS), "bell")
        self.assertEqual(root.findtext(A + "title"), "<t>&")
        facet = root.findall("a:link[@rel='http://opds-spec.org/facet']", NS)[1]
        self.assertEqual(facet.get("title"), "<cat> & \"'")
        parse(entry_document(hostile, Links(key="\udcff")))

    def test_xml_text(self) -> None:
        """Allowed characters pass untouched; surrogates become U+FFFD; the rest is dropped."""
        self.assertEqual(xml_text("plain ü 夏 \U0001f600\t\n\r"), "plain ü 夏 \U0001f600\t\n\r")
        self.assertEqual(xml_text("a\x00b\x1fc\ud800d\uffffe"), "abc\ufffdde")

    def test_tag_and_date_rules(self) -> None:
        """The original's namespace lookup (first match, value up to the next colon, trimmed)
        and Perl's reading of date_added (leading number, else epoch 0)."""
        self.assertEqual(tag_with_namespace("artist", " artist : A B ,artist:C"), "A B")
        self.assertEqual(tag_with_namespace("artist", "artist:a:b"), "a")
        self.assertEqual(tag_with_namespace("artist", "Artist:x,female:artist"), "")
        self.assertEqual(tag_with_namespace("date_added", "x", "0"), "0")
        first = first_values(" artist : A B ,artist:C,group:g:h,solo")
        self.assertEqual(first, {"artist": "A B", "group": "g", "solo": ""})
        self.assertEqual(iso_time("1600000000"), "2020-09-13T12:26:40Z")
        self.assertEqual(iso_time(" 1600000000abc"), "2020-09-13T12:26:40Z")
        self.assertEqual(iso_time("1.6e9"), "2020-09-13T12:26:40Z")
        self.assertEqual(iso_time("soon"), "1970-01-01T00:00:00Z")
        self.assertEqual(iso_time("9" * 400), "1970-01-01T00:00:00Z")
        self.assertEqual(iso_time("-5"), "1969-12-31T23:59:55Z")

    def test_entry_document_matches_golden(self) -> None:
        """``/api/opds/{id}`` element by element against the original's answer for the same
        archive: same namespaces, elements, attributes and text."""
        golden = parse((GOLDEN / "get_opds_id.xml").read_bytes())
        ours = parse(entry_document(archive(), Links()))
        self.assertEqual(ours.nsmap, golden.nsmap)
        self.assertEqual(normalise(ours), normalise(golden))

    def test_catalog_entry_matches_golden(self) -> None:
        """The catalog's head and first entry against the original's feed (which is cut at
        4 KB, so only what it holds whole is compared)."""
        text = (GOLDEN / "get_opds.xml").read_bytes()
        head = text[:text.index(b"<entry>", text.index(b"<entry>") + 1)] + b"</feed>"
        golden = parse(head)
        blue = archive(arcid="a83f98b6e5aea41bb6397343baf56d27c66a50b7", pagecount=21,
                       tags="date_added:1795821965,action,artist:Kuro Neko,comedy,event:C99,"
                            "language:English,romance")
        facets = [Facet("SET_1795822274", "Dynamic Cat", None, False),
                  Facet("SET_1795822273", "Golden Cat", 1, False)]
        ours = parse(catalog_feed(Server("LANraragi", SERVER.motd, "0.9.81"), [blue], facets,
                                  Links(), 99))
        self.assertEqual(ours.nsmap, golden.nsmap)
        self.assertEqual(normalise(ours), normalise(golden))


class OpdsApiTests(IndexedLibraryApiTestCase):
    """The three operations over real HTTP, with the search index loaded."""

    timeout = 60

    async def library(self) -> dict[str, str]:
        archives = self.services().archives
        ids = {}
        for name, count in (("Zeta.cbz", 3), ("alpha.cbz", 2), ("Beta.cbz", 4)):
            ids[name] = await self.add(self.make(name, make_cbz, numbered_pages(count)))
        await archives.set_tags(ids["alpha.cbz"], "artist:Ann,language:English", append=True)
        return ids

    def test_catalog_over_http(self) -> Deferred[None]:
        """``application/xml``, strict XML, entries in title order, pagination by ``start``
        and ``pagesize`` with ``next``, and the category facet selecting its archives."""
        async def run() -> None:
            ids = await self.library()
            categories = self.services().categories
            cat = await categories.create("My Cat")
            await categories.add_archive(cat, ids["Beta.cbz"])
            await categories.create("dyn", search="artist:ann")
            response = await self.get("/api/opds")
            self.assertEqual(response.status, 200)
            self.assertEqual(response.header("content-type"), "application/xml")
            root = parse(response.body)
            self.assertEqual([e.findtext(A + "title") for e in root.findall(A + "entry")],
                             ["alpha", "Beta", "Zeta"])
            facets = root.findall("a:link[@rel='http://opds-spec.org/facet']", NS)
            titles = [f.get("title") for f in facets]
            self.assertEqual(titles[0], "All Archives")
            self.assertIn("My Cat", titles)
            mine = facets[titles.index("My Cat")]
            self.assertEqual(mine.get("{%s}count" % THR_NS), "1")
            self.assertIsNone(facets[titles.index("dyn")].get("{%s}count" % THR_NS))

            await self.set_config(pagesize="2")
            page1 = parse((await self.get("/api/opds")).body)
            self.assertEqual(len(page1.findall(A + "entry")), 2)
            nxt = page1.find("a:link[@rel='next']", NS).get("href")
            self.assertEqual(nxt, "/api/opds?start=2")
            page2 = parse((await self.get(nxt)).body)
            self.assertEqual([e.findtext(A + "title") for e in page2.findall(A + "entry")],
                             ["Zeta"])
            self.assertEqual(page2.find("a:link[@rel='next']", NS).get("href"),
                             "/api/opds?start=3")

            in_cat = parse((await self.get(f"/api/opds?category={cat}")).body)
            self.assertEqual([e.findtext(A + "id") for e in in_cat.findall(A + "entry")],
                             ["urn:lrr:" + ids["Beta.cbz"]])
            active = [f.get("title") for f in in_cat.findall(
                "a:link[@opds:activeFacet='true']", NS)]
            self.assertEqual(active, ["My Cat"])
            dyn_href = facets[titles.index("dyn")].get("href")
            dyn = parse((await self.get(dyn_href)).body)
            self.assertEqual([e.findtext(A + "title") for e in dyn.findall(A + "entry")], ["alpha"])
            junk = await self.get("/api/opds?start=abc")
            self.assertEqual(junk.status, 200)
        return d(run())

    def test_missing_files_left_out(self) -> None:
        """An archive whose file is gone is not in the feed, and its entry is a 404."""
        async def run() -> None:
            ids = await self.library()
            os.unlink(self.content / "Zeta.cbz")
            root = parse((await self.get("/api/opds")).body)
            self.assertEqual([e.findtext(A + "title") for e in root.findall(A + "entry")],
                             ["alpha", "Beta"])
            self.assertEqual((await self.get(f"/api/opds/{ids['Zeta.cbz']}")).status, 404)
            self.assertEqual((await self.get("/api/opds/" + "0" * 40)).status, 400)
        return d(run())

    def test_item_over_http(self) -> Deferred[None]:
        """The standalone entry: its fields from Redis, start and self links."""
        async def run() -> None:
            ids = await self.library()
            arcid = ids["alpha.cbz"]
            response = await self.get(f"/api/opds/{arcid}?key=test-key")
            self.assertEqual(response.status, 200)
            self.assertEqual(response.header("content-type"), "application/xml")
            root = parse(response.body)
            self.assertEqual(root.tag, A + "entry")
            self.assertEqual(root.findtext(A + "title"), "alpha")
            self.assertEqual(root.findtext("a:author/a:name", namespaces=NS), "Ann")
            self.assertEqual(root.find("a:link[@rel='self']", NS).get("href"),
                             f"/api/opds/{arcid}?key=test-key")
            self.assertEqual(root.find("a:link[@rel='start']", NS).get("type"), NAV)
            pse = root.find("a:link[@rel='http://vaemendis.net/opds-pse/stream']", NS)
            self.assertEqual(pse.get("{%s}count" % PSE_NS), "2")
            self.assertEqual(pse.get("href"),
                             f"/api/opds/{arcid}/pse?key=test-key&page={{pageNumber}}")
        return d(run())

    def test_pse_serves_pages(self) -> Deferred[None]:
        """PSE page N is page N of ``/files``, served as ``/page`` serves it (labelled ``pse``);
        absent, 0 or past the end is page 1; unknown ids are the usual 400."""
        async def run() -> None:
            ids = await self.library()
            arcid = ids["Beta.cbz"]
            pages = numbered_pages(4)
            for number in (1, 2, 4):
                response = await self.get(f"/api/opds/{arcid}/pse?page={number}")
                self.assertEqual(response.status, 200)
                self.assertEqual(response.body, pages[number - 1][1])
                self.assertEqual(response.header("content-type"), 'image/png;name="pse"')
                self.assertEqual(response.header("content-disposition"), 'inline;filename="pse"')
                self.assertTrue(response.header("etag"))
            for query in ("", "?page=0", "?page=5", "?page=-3"):
                response = await self.get(f"/api/opds/{arcid}/pse{query}")
                self.assertEqual(response.body, pages[0][1], query)
            direct = await self.get(f"/api/archives/{arcid}/page?path={pages[1][0]}")
            via_pse = await self.get(f"/api/opds/{arcid}/pse?page=2")
            self.assertEqual(direct.header("etag"), via_pse.header("etag"))
            self.assertEqual((await self.get("/api/opds/" + "0" * 40 + "/pse")).status, 400)
            self.assertEqual((await self.get(f"/api/opds/{arcid}/pse?page=x")).status, 400)
        return d(run())

    def test_tank_and_category_ids_are_unknown(self) -> Deferred[None]:
        """A tankoubon's or category's id as an OPDS archive id is the usual 400, not a 500."""
        async def run() -> None:
            await self.library()
            tank = (await self.request("PUT", "/api/tankoubons?name=T", auth=True)).json["tankoubon_id"]
            category = (await self.request("PUT", "/api/categories?name=C", auth=True)).json["category_id"]
            for key in (tank, category):
                for path in (f"/api/opds/{key}", f"/api/opds/{key}/pse?page=2"):
                    response = await self.get(path)
                    self.assertEqual((response.status, response.json["success"]), (400, 0), path)
        return d(run())

    def test_pse_resizes(self) -> Deferred[None]:
        """With server resizing on, a PSE page over the threshold comes back as JPEG."""
        async def run() -> None:
            from tests.test_api_pages import noisy_png

            big = noisy_png(1400, 300)
            arcid = await self.add(self.make("big.cbz", make_cbz, [("001.png", big)]))
            await self.set_config(enableresize="1", sizethreshold="10")
            response = await self.get(f"/api/opds/{arcid}/pse?page=1")
            self.assertEqual(response.status, 200)
            self.assertEqual(response.header("content-type"), 'image/jpeg;name="pse"')
            self.assertEqual(response.body[:2], b"\xff\xd8")
        return d(run())

    def test_hostile_names_over_http(self) -> Deferred[None]:
        """A file name that is not UTF-8 and tags full of markup still give a strict feed."""
        async def run() -> None:
            raw = os.fsencode(self.content) + b"/bad \xff\xfe <x> & name.cbz"
            make_cbz(os.fsdecode(raw), [("001.png", png_bytes())])
            # Registered rather than imported: the importer's log line cannot carry the name.
            arcid = await self.register(Path(os.fsdecode(raw)), pagecount=1)
            archives = self.services().archives
            await archives.set_fields(arcid, {"name": os.fsdecode(raw).rsplit("/", 1)[1]})
            await archives.set_tags(arcid, HOSTILE_TAGS.replace("\udcff", ""))
            await self.services().search_index.sync()
            # The title is the file name read as Latin-1 (filename_stem), in the catalog too.
            for path in (f"/api/opds/{arcid}", f"/api/opds/{arcid}?key=%3C%26%3E", "/api/opds"):
                response = await self.get(path)
                self.assertEqual(response.status, 200, path)
                titles = [t.text for t in parse(response.body).iter(A + "title")]
                self.assertIn("bad \u00ff\u00fe <x> & name", titles, (path, titles))
            await archives.set_title(arcid, HOSTILE_TITLE)
            await self.services().search_index.sync()
            for path in ("/api/opds", f"/api/opds/{arcid}", "/api/opds?key=%3C%26%3E"):
                root = parse((await self.get(path)).body)
                self.assertIn("<script>alert('x')</script> & ]]> \x7f end ",
                              [t.text for t in root.iter(A + "title")], path)
        return d(run())

    def test_no_fun_mode(self) -> Deferred[None]:
        """OPDS is public, except in No-Fun mode, where ``?key=`` lets a reader in."""
        async def run() -> None:
            await self.library()
            await self.set_config(nofunmode="1")
            self.assertEqual((await self.get("/api/opds")).status, 401)
            response = await self.get("/api/opds?key=test-key")
            self.assertEqual(response.status, 200)
            root = parse(response.body)
            for href in hrefs(root):
                self.assertIn("key=test-key", href)
        return d(run())
