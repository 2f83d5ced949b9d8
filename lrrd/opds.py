"""OPDS 1.2 catalog feeds with PSE 1.1 page streaming (LRR-NOTES §5), built as lxml trees.

Titles, tags and file names are user data and can hold anything, including characters XML 1.0
cannot carry at all (control characters, the lone surrogates an undecodable file name turns
into); every text and attribute value goes through :func:`xml_text` first so the output is
always well-formed, and lxml escapes the rest. Nothing here knows HTTP: the API layer gathers
the data and hands over plain values.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from datetime import datetime, timedelta, timezone
from typing import Iterable, Sequence
from urllib.parse import quote

from lxml import etree  # type: ignore[import-untyped]

ATOM_NS = "http://www.w3.org/2005/Atom"
DCTERMS_NS = "http://purl.org/dc/terms/"
OPDS_NS = "http://opds-spec.org/2010/catalog"
PSE_NS = "http://vaemendis.net/opds-pse/ns"
THR_NS = "http://purl.org/syndication/thread/1.0"
XSI_NS = "http://www.w3.org/2001/XMLSchema-instance"
SCHEMA_NS = "http://schema.org/"

FEED_NSMAP = {None: ATOM_NS, "dcterms": DCTERMS_NS, "opds": OPDS_NS, "pse": PSE_NS, "thr": THR_NS}
ENTRY_NSMAP = {None: ATOM_NS, "thr": THR_NS, "dcterms": DCTERMS_NS, "opds": OPDS_NS,
               "pse": PSE_NS, "xsi": XSI_NS, "schema": SCHEMA_NS}

ACQUISITION_FEED = "application/atom+xml;profile=opds-catalog;kind=acquisition"
NAVIGATION_FEED = "application/atom+xml;profile=opds-catalog;kind=navigation"
ENTRY_TYPE = "application/atom+xml;type=entry;profile=opds-catalog"
REL_FACET = "http://opds-spec.org/facet"
REL_IMAGE = "http://opds-spec.org/image"
REL_THUMBNAIL = "http://opds-spec.org/image/thumbnail"
REL_ACQUISITION = "http://opds-spec.org/acquisition"
REL_PSE = "http://vaemendis.net/opds-pse/stream"
#: The PSE URL template variable; clients substitute it, so it stays literal (not %7B...%7D).
PAGE_NUMBER = "{pageNumber}"

#: The original's feed carries this fixed date, not a real one.
FEED_UPDATED = "2010-01-10T10:03:10Z"
AUTHOR_URI = "http://github.org/Difegue/LANraragi"
XML_DECLARATION = b'<?xml version="1.0" encoding="UTF-8"?>\n'

_A = "{%s}" % ATOM_NS
_LINK = _A + "link"

# Characters XML 1.0 forbids: C0 controls but tab/LF/CR, surrogates, U+FFFE/U+FFFF.
_FORBIDDEN = re.compile("[^\t\n\r\u0020-\ud7ff\ue000-\ufffd\U00010000-\U0010ffff]")
_SURROGATES = re.compile("[\ud800-\udfff]")
_PERL_NUMBER = re.compile(r"\s*([+-]?(?:\d+(?:\.\d*)?|\.\d+)(?:[eE][+-]?\d+)?)")
_EPOCH = datetime(1970, 1, 1, tzinfo=timezone.utc)


def xml_text(value: str) -> str:
    """``value`` made representable in XML 1.0.

    Lone surrogates (the bytes of a file name that was not UTF-8, kept by ``surrogateescape``)
    become U+FFFD so the reader still sees that something was there; the other forbidden
    characters (controls) carry nothing and are dropped.
    """
    if _FORBIDDEN.search(value) is None:
        return value
    return _FORBIDDEN.sub("", _SURROGATES.sub("\ufffd", value))


def tag_with_namespace(namespace: str, tags: str, default: str = "") -> str:
    """The original's ``get_tag_with_namespace``: the first tag whose namespace is exactly
    ``namespace``. Its value is the text between the first and second colon, trimmed (the
    original splits on every colon and keeps two fields)."""
    for tag in tags.split(","):
        parts = tag.split(":")
        if parts[0].strip() == namespace:
            return parts[1].strip() if len(parts) > 1 else ""
    return default


def first_values(tags: str) -> dict[str, str]:
    """``tag_with_namespace`` for every namespace at once: namespace → its first value."""
    found: dict[str, str] = {}
    for tag in tags.split(","):
        parts = tag.split(":")
        namespace = parts[0].strip()
        if namespace not in found:
            found[namespace] = parts[1].strip() if len(parts) > 1 else ""
    return found


def iso_time(seconds: str | int) -> str:
    """``strftime("%Y-%m-%dT%H:%M:%SZ", gmtime(value))`` with Perl's reading of a number:
    its leading numeric part, 0 when there is none (out-of-range values read as 0 too)."""
    if isinstance(seconds, int):
        number = seconds
    else:
        match = _PERL_NUMBER.match(seconds)
        try:
            number = int(float(match.group(1))) if match else 0
        except (OverflowError, ValueError):
            number = 0
    try:
        moment = _EPOCH + timedelta(seconds=number)
    except OverflowError:
        moment = _EPOCH
    return moment.strftime("%Y-%m-%dT%H:%M:%SZ")


def acquisition_type(path: str) -> str:
    """The download's media type by extension: readers dislike application/zip, so x-cbz."""
    lowered = path.lower()
    if lowered.endswith(".pdf"):
        return "application/pdf"
    if lowered.endswith((".rar", ".cbr")):
        return "application/x-cbr"
    if lowered.endswith(".epub"):
        return "application/epub+zip"
    if lowered.endswith(".cbw"):
        return "application/xml"
    return "application/x-cbz"


def _quote(value: str) -> str:
    """Percent-encoded, every byte but unreserved ones; a lone surrogate (an undecodable byte
    kept by ``surrogateescape``) goes back to that byte."""
    return quote(value.encode("utf-8", "surrogateescape"), safe="")


@dataclass(frozen=True)
class OpdsArchive:
    """What an entry shows of one archive."""

    arcid: str
    title: str
    tags: str
    isnew: bool
    pagecount: int
    progress: int
    lastreadtime: int
    file: str


@dataclass(frozen=True)
class Facet:
    """A category as a facet link; ``count`` is set for static categories only."""

    cat_id: str
    name: str
    count: int | None
    active: bool


@dataclass(frozen=True)
class Links:
    """How hrefs are made: the base-URL prefix and the ``?key=`` the request carried.

    The original appends the request's ``key`` to every link so a client that authenticated
    that way (OPDS readers often cannot send headers) stays authenticated when it follows them.
    """

    prefix: str = ""
    key: str | None = None

    def href(self, path: str, *params: tuple[str, str]) -> str:
        query = [f"{name}={_quote(value)}" for name, value in params]
        if self.key:
            query.append("key=" + _quote(self.key))
        return self.prefix + path + ("?" + "&".join(query) if query else "")

    def pse_href(self, arcid: str) -> str:
        # Built by hand: quoting would turn the template's braces into %7B...%7D.
        return self.href(f"/api/opds/{_quote(arcid)}/pse") + \
            ("&" if self.key else "?") + "page=" + PAGE_NUMBER


@dataclass(frozen=True)
class Server:
    """The feed's own metadata: ``htmltitle``, ``motd`` and the version."""

    title: str
    motd: str
    version: str


def _link(parent: etree._Element, rel: str, href: str, type_: str | None,
          **extra: str) -> etree._Element:
    attrib = {"rel": rel, "href": xml_text(href)}
    if type_ is not None:
        attrib["type"] = type_
    for name, value in extra.items():
        attrib[name] = xml_text(value)
    return etree.SubElement(parent, _LINK, attrib)


def _text(parent: etree._Element, tag: str, text: str) -> etree._Element:
    element = etree.SubElement(parent, tag)
    element.text = xml_text(text)
    return element


def _entry_body(entry: etree._Element, archive: OpdsArchive, links: Links,
                catalog: bool) -> None:
    """The children every entry has, in the original's order; the catalog's entries also
    link to their standalone document."""
    arcid = archive.arcid
    tags = archive.tags
    first = first_values(tags)
    date = iso_time(first.get("date_added", "0"))
    _text(entry, _A + "title", archive.title)
    _text(entry, _A + "id", "urn:lrr:" + arcid)
    _text(entry, _A + "updated", date)
    _text(entry, _A + "published", date)
    author = etree.SubElement(entry, _A + "author")
    _text(author, _A + "name", first.get("artist", ""))
    _text(entry, _A + "rights", "")
    _text(entry, "{%s}language" % DCTERMS_NS, first.get("language", ""))
    _text(entry, "{%s}publisher" % DCTERMS_NS, first.get("group", ""))
    _text(entry, "{%s}issued" % DCTERMS_NS, first.get("event", ""))
    etree.SubElement(entry, _A + "category",
                     {"term": "New Archive" if archive.isnew else "Archive"})
    _text(entry, _A + "summary", tags)
    quoted = _quote(arcid)
    if catalog:
        _link(entry, "alternate", links.href(f"/api/opds/{quoted}"), ENTRY_TYPE)
    thumbnail = links.href(f"/api/archives/{quoted}/thumbnail")
    _link(entry, REL_IMAGE, thumbnail, "image/jpeg")
    _link(entry, REL_THUMBNAIL, thumbnail, "image/jpeg")
    _link(entry, REL_ACQUISITION, links.href(f"/api/archives/{quoted}/download"),
          acquisition_type(archive.file), title="Download/Read")
    pse = {"{%s}count" % PSE_NS: str(archive.pagecount)}
    if archive.progress:
        pse["{%s}lastRead" % PSE_NS] = str(archive.progress)
    if archive.lastreadtime > 0:
        pse["{%s}lastReadDate" % PSE_NS] = iso_time(archive.lastreadtime)
    _link(entry, REL_PSE, links.pse_href(arcid), "image/jpeg", **pse)
    _link(entry, "alternate", links.href("/reader", ("id", arcid)), "text/html",
          title="Open in LANraragi")


def _serialize(root: etree._Element) -> bytes:
    return XML_DECLARATION + etree.tostring(root, encoding="UTF-8", xml_declaration=False)


def catalog_feed(server: Server, archives: Iterable[OpdsArchive], facets: Sequence[Facet],
                 links: Links, start: int, category: str = "") -> bytes:
    """``/api/opds``: the acquisition feed of one page of archives.

    ``next`` is always there (the original never knows it is on the last page; a client that
    follows it past the end gets an empty page). It points at ``start`` plus the entries shown,
    so archives dropped for a missing file are not skipped twice.
    """
    entries = list(archives)
    feed = etree.Element(_A + "feed", nsmap=FEED_NSMAP)
    _text(feed, _A + "id", "urn:lrr:0")
    # The original's self and next links forget the category, so paging a category's feed
    # fell back to the whole library; lrrd keeps it.
    scope = (("category", category),) if category else ()
    _link(feed, "self", links.href("/api/opds", *scope), ACQUISITION_FEED)
    _link(feed, "start", links.href("/api/opds"), ACQUISITION_FEED)
    _link(feed, "next", links.href("/api/opds", ("start", str(start + len(entries))), *scope),
          NAVIGATION_FEED)
    _text(feed, _A + "title", server.title)
    _text(feed, _A + "updated", FEED_UPDATED)
    _text(feed, _A + "subtitle", server.motd)
    _text(feed, _A + "icon", "/favicon.ico")
    author = etree.SubElement(feed, _A + "author")
    _text(author, _A + "name", server.version)
    _text(author, _A + "uri", AUTHOR_URI)
    facet_group = "{%s}facetGroup" % OPDS_NS
    active_facet = "{%s}activeFacet" % OPDS_NS
    everything = {"title": "All Archives", facet_group: "Categories"}
    if not category:
        everything[active_facet] = "true"
    _link(feed, REL_FACET, links.href("/api/opds"), None, **everything)
    for facet in sorted(facets, key=lambda f: f.name.lower()):
        attrib = {"title": facet.name, facet_group: "Categories"}
        if facet.count:
            attrib["{%s}count" % THR_NS] = str(facet.count)
        if facet.active:
            attrib[active_facet] = "true"
        _link(feed, REL_FACET, links.href("/api/opds", ("category", facet.cat_id)), None,
              **attrib)
    for archive in sorted(entries, key=lambda a: a.title.lower()):
        entry = etree.SubElement(feed, _A + "entry")
        _entry_body(entry, archive, links, catalog=True)
    return _serialize(feed)


def entry_document(archive: OpdsArchive, links: Links) -> bytes:
    """``/api/opds/{id}``: one archive as a standalone Atom entry document."""
    entry = etree.Element(_A + "entry", nsmap=ENTRY_NSMAP)
    _link(entry, "start", links.href("/api/opds"), NAVIGATION_FEED)
    _link(entry, "self", links.href(f"/api/opds/{_quote(archive.arcid)}"), ENTRY_TYPE)
    _entry_body(entry, archive, links, catalog=False)
    return _serialize(entry)
