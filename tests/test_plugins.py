"""The built-in metadata plugins on the real downloaders' samples, hostile XML, and the plugin model."""

from __future__ import annotations

import json
from pathlib import Path

from twisted.trial.unittest import SynchronousTestCase

from lrrd.plugins.context import ArchiveFile
from lrrd.plugins.helpers import parse_json
from lrrd.plugins.model import PluginError, PluginInfo, PluginParams
from lrrd.plugins.runner import format_new_tags, new_tags_of
from lrrd_plugins.comicinfo import parse_comicinfo
from lrrd_plugins.ehdlinfo import read_info
from lrrd_plugins.eze import tags_from_eze
from lrrd_plugins.gallerydl import tags_from_gallerydl
from lrrd_plugins.hath import tags_from_galleryinfo
from lrrd_plugins.hdoujin import tags_from_json, tags_from_txt
from lrrd_plugins.koromo import tags_from_koromo
from lrrd_plugins.ksk import load_yaml, tags_from_ksk
from lrrd_plugins.regexparse import parse_filename

SAMPLES = Path(__file__).parent / "fixtures" / "samples"


def sample(name: str) -> bytes:
    return (SAMPLES / name).read_bytes()


def sample_json(name: str) -> object:
    return json.loads(sample(name))


class ComicInfoTests(SynchronousTestCase):
    def test_anthology(self) -> None:
        """Writers become groups, pencillers artists, Web the source, then language and genres."""
        result = parse_comicinfo(sample("comicinfo/00_sample.xml"))
        tags = result["tags"].split(", ")
        self.assertEqual(tags[:2], ["group:Achumuchi", "group:Ashita"])
        self.assertIn("artist:Yamamoto Zenzen", tags)
        self.assertIn("source:https://nhentai.net/g/369909/", tags)
        self.assertEqual(tags[tags.index("language:ja") + 1:][:3], ["Anal", "Anthology", "Beauty Mark"])
        self.assertEqual(result["title"], "COMIC Anthurium 2021-09 [Digital]")

    def test_unicode_and_empty_fields(self) -> None:
        """Japanese names survive; empty elements add nothing."""
        self.assertEqual(parse_comicinfo(sample("comicinfo/02_sample.xml")), {
            "tags": "group:あずまきよひこ, artist:あずまきよひこ, language:ja, Comedy, Shounen, Slice of Life",
            "title": "よつばと！ 第01巻",
        })
        self.assertTrue(parse_comicinfo(sample("comicinfo/01_sample.xml"))["tags"].startswith(
            "group:Remu, artist:Remu, source:https://e-hentai.org/g/2470908/3dd0f5801e/, language:ja, Ahegao"))

    def test_calibre_tags(self) -> None:
        """A Calibre-style <Tags> element is appended after the genres."""
        self.assertEqual(parse_comicinfo(sample("comicinfo/03_sample.xml")), {
            "tags": "group:7zu7, language:zh, translated, artist:7zu7, male:monster, Manga, Uploaded",
            "title": "異種姦オーガズム",
        })

    def test_external_entity_is_not_resolved(self) -> None:
        """An external entity pointing at a local file is neither read nor expanded."""
        secret = Path(self.mktemp())
        secret.write_text("TOP-SECRET")
        hostile = (f'<?xml version="1.0"?><!DOCTYPE c [<!ENTITY x SYSTEM "file://{secret}">]>'
                   '<ComicInfo><Title>t</Title><Genre>&x;</Genre></ComicInfo>').encode()
        result = parse_comicinfo(hostile)
        self.assertNotIn("TOP-SECRET", json.dumps(result))

    def test_network_entity_is_not_fetched(self) -> None:
        """A DTD or entity on the network is not loaded (no_network, load_dtd off)."""
        hostile = (b'<?xml version="1.0"?><!DOCTYPE c SYSTEM "http://127.0.0.1:9/evil.dtd">'
                   b'<ComicInfo><Genre>a</Genre></ComicInfo>')
        self.assertEqual(parse_comicinfo(hostile)["tags"], "a")

    def test_billion_laughs_is_not_expanded(self) -> None:
        """Nested internal entities stay unexpanded: no exponential blow-up, no huge tags."""
        entities = '<!ENTITY a0 "lol">' + "".join(
            f'<!ENTITY a{i} "{("&a" + str(i - 1) + ";") * 10}">' for i in range(1, 10))
        hostile = (f'<?xml version="1.0"?><!DOCTYPE c [{entities}]>'
                   '<ComicInfo><Genre>x, &a9;</Genre></ComicInfo>').encode()
        try:
            result = parse_comicinfo(hostile)
        except PluginError:
            return  # refusing the document outright is as good as not expanding it
        self.assertLess(len(result["tags"]), 1000)

    def test_malformed(self) -> None:
        """Broken XML is a plugin error with a clear message."""
        with self.assertRaises(PluginError) as caught:
            parse_comicinfo(b"<ComicInfo><Genre>oops</ComicInfo")
        self.assertIn("ComicInfo.xml is not valid XML", caught.exception.message)


class EzeTests(SynchronousTestCase):
    LITE_TAGS = ("artist:mitarashi kousei, character:akiko minase, character:yuuichi aizawa, "
                 "female:aunt, female:lingerie, female:sole female, group:mitarashi club, "
                 "language:english, language:translated, male:sole male, "
                 "misc:multi-work series, parody:kanon")

    def test_lite(self) -> None:
        """Namespaces sorted; the source from site/gid/token; timestamp only when asked."""
        document = sample_json("eze/eze_lite_sample.json")
        self.assertEqual(tags_from_eze(document, False, False)["tags"],
                         self.LITE_TAGS + ", source:website.org/g/1179590/7c5815c77b")
        self.assertEqual(tags_from_eze(document, True, True)["tags"],
                         self.LITE_TAGS + ", timestamp:1517540580, source:website.org/g/1179590/7c5815c77b")

    def test_full(self) -> None:
        """The full form adds category, uploader and the millisecond upload date; original title."""
        document = sample_json("eze/eze_full_sample.json")
        result = tags_from_eze(document, False, True)
        self.assertTrue(result["tags"].endswith(
            "parody:original, category:doujinshi, uploader:cocy, timestamp:1484412360, "
            "source:exhentai.org/g/1017975/49b3c275a1"))
        self.assertEqual(result["title"], "(C91) [HitenKei (Hiten)] R.E.I.N.A [Chinese] [無邪気漢化組]")
        self.assertEqual(tags_from_eze(document, True, False)["title"],
                         "(C91) [HitenKei (Hiten)] R.E.I.N.A [中国翻訳]")

    def test_broken(self) -> None:
        """A JSON file without gallery_info is not an eze file."""
        with self.assertRaises(PluginError) as caught:
            tags_from_eze(sample_json("eze/eze_broken.json"), False, False)
        self.assertIn("could not be parsed as an eze file", caught.exception.message)


class GalleryDLTests(SynchronousTestCase):
    def test_array_of_plain_tags(self) -> None:
        """Plain tags as they are; no source or category when absent."""
        self.assertEqual(tags_from_gallerydl(sample_json("gallerydl/gallerydl_arraysingletags_sample.json")), {
            "tags": "anthro, candy, cute, furry, krill, sea bunny shrimp, shrimp, sweet, treats",
            "title": "Quickie Gift",
        })

    def test_array_of_namespaced_tags(self) -> None:
        """``ns:tag`` strings kept in order, then category and source."""
        result = tags_from_gallerydl(sample_json("gallerydl/gallerydl_arrayfulltags_sample.json"))
        self.assertEqual(result["tags"], (
            "language:chinese, language:translated, parody:original, group:hitenkei, artist:hiten, "
            "male:sole male, female:defloration, female:pantyhose, female:sole female, female:x-ray, "
            "category:exhentai, source:https://exhentai.org/g/1017975/49b3c275a1"))

    def test_mapping_of_tags(self) -> None:
        """A namespace → list mapping, namespaces sorted, empty lists skipped."""
        result = tags_from_gallerydl(sample_json("gallerydl/gallerydl_hashtags_sample.json"))
        self.assertTrue(result["tags"].startswith(
            "artist:zummeng, character:leopold_(zummeng), character:miralle, general:anthro"))
        self.assertTrue(result["tags"].endswith(
            "species:pantherine, category:e621, source:https://e621.net/pools/19303"))
        self.assertEqual(result["title"], "Tree of Life [Zummeng]")

    def test_broken(self) -> None:
        """No tags at all is an error, not an empty success."""
        with self.assertRaises(PluginError):
            tags_from_gallerydl(sample_json("gallerydl/gallerydl_broken.json"))


class HathTests(SynchronousTestCase):
    def test_galleryinfo(self) -> None:
        """Upload time and uploader, then the Tags line; the title."""
        self.assertEqual(tags_from_galleryinfo(sample("hath/galleryinfo.txt").decode()), {
            "tags": "upload_time:2020-11-11 00:00, uploader:Katlan, language:english, "
                    "language:translated, artist:yyyy, male:dark skin, female:fox girl",
            "title": "xxxxxxxxxx",
        })

    def test_no_tags_line(self) -> None:
        """A file without a Tags line is an error."""
        with self.assertRaises(PluginError):
            tags_from_galleryinfo("Title: x\nUploaded By: y\n")


class KoromoTests(SynchronousTestCase):
    def test_sample(self) -> None:
        """Plain tags, parody as series, artist, magazine, language, source; title."""
        self.assertEqual(tags_from_koromo(sample_json("koromo/koromo_sample.json")), {
            "tags": "Teacher, Schoolgirl Outfit, Cheating, Hentai, Ahegao, Creampie, Uncensored, "
                    "Condom, Unlimited, Heart Pupils, Love Hotel, series:Original Work, "
                    "artist:▲ Chimaki, magazine:Comic Bavel 2021-11, language:English, "
                    "source:https://www.fakku.net/hentai/after-school-english_1632947200",
            "title": "After School",
        })

    def test_lists(self) -> None:
        """Artist and Magazine may be lists: one tag each, never a stringified list."""
        self.assertIn("artist:First, artist:Second",
                      tags_from_koromo(sample_json("koromo/koromo_multiauthor.json"))["tags"])
        self.assertEqual(tags_from_koromo(sample_json("koromo/koromo_multimag.json")),
                         {"tags": "magazine:Comic Koromo #1, magazine:Comic Koromo #2"})


class EHDLTests(SynchronousTestCase):
    def test_translated(self) -> None:
        """The Tags section's language replaces the Language line; source, category, timestamp."""
        result = read_info(sample("ehdl/info_translated.txt").decode(), False)
        self.assertTrue(result["title"].startswith("[Peter Mittsuru] Married Couple Swap"))
        tags = result["tags"].split(",")
        for tag in ("source:e-hentai.org/g/3369723/aac84d00cc", "category:Manga",
                    "artist:peter mitsuru", "male:kimono", "female:big breasts",
                    "other:multi-work series", "language:english", "timestamp:1748175840"):
            self.assertIn(tag, tags)
        self.assertNotIn("language:japanese", tags)
        self.assertEqual(tags, sorted(tags))
        self.assertNotIn("summary", result)

    def test_original_title(self) -> None:
        """The second line is the Japanese title when asked; missing, the first stays."""
        self.assertEqual(read_info(sample("ehdl/info_original.txt").decode(), True)["title"],
                         "[遠藤弘土] つながりざかり〜12娘12色〜 [無修正] [進行中] [DL版]")
        self.assertTrue(read_info(sample("ehdl/info_translated.txt").decode(), True)["title"]
                        .startswith("[Peter Mittsuru]"))
        self.assertIn("source:exhentai.org/g/3363593/53d6de68b9",
                      read_info(sample("ehdl/info_original.txt").decode(), False)["tags"])

    def test_pipes_and_dots(self) -> None:
        """Tag values keep their pipes and dots."""
        tags = read_info(sample("ehdl/info_pipe.txt").decode(), True)["tags"].split(",")
        self.assertIn("artist:kemigawa mondo | kemigawa", tags)
        self.assertIn("parody:super mario brothers | super mario bros.", tags)
        self.assertIn("parody:ssss.gridman", tags)
        self.assertIn("female:swimsuit", tags)

    def test_flat(self) -> None:
        """The flat layout: title, description as summary, ``tag:`` lines as plain tags."""
        result = read_info(sample("ehdl/info_flat.txt").decode(), False)
        self.assertEqual(result["title"], "Chika-chan's Funtime")
        self.assertEqual(result["summary"], "endless pleasure...")
        self.assertIn("artist:Arai Togami", result["tags"])
        self.assertIn("creampie", result["tags"].split(","))
        self.assertNotIn("tag:", result["tags"])

    def test_invalid(self) -> None:
        """A file whose third line is no gallery URL is an unknown format."""
        with self.assertRaises(PluginError) as caught:
            read_info(sample("ehdl/info_invalid.txt").decode(), False)
        self.assertEqual(caught.exception.message, "Unknown file format")


class KskTests(SynchronousTestCase):
    def test_koushoku(self) -> None:
        """Koushoku's capitalised keys; "assume english" adds the language before the source."""
        document = load_yaml(sample("ksk/fake.yaml").decode(), "fake.yaml")
        expected = ("Harry Potter, Ebony Dark'ness Dementia Raven Way, Draco Malfoy, "
                    "artist:xXMidnightEssenceXx, artist:bloodytearz666, series:Harry Potter, "
                    "magazine:My Immortal - Genesis")
        source = "source:https://www.fanfiction.net/s/6829556/1/My-Immortal"
        self.assertEqual(tags_from_ksk(document, False),
                         {"tags": f"{expected}, {source}", "title": "My Immortal"})
        self.assertEqual(tags_from_ksk(document, True)["tags"],
                         f"{expected}, language:english, {source}")

    def test_koharu(self) -> None:
        """Koharu's lower-case namespace lists; general tags plain, circle as group."""
        document = load_yaml(sample("ksk/fake_koharu.yaml").decode(), "fake_koharu.yaml")
        result = tags_from_ksk(document, True)
        self.assertEqual(result["title"], "[Marcus Aurelius] Meditations")
        tags = result["tags"].split(", ")
        self.assertEqual(tags[:3], ["first", "second", "third"])
        for tag in ("artist:marcus aurelius", "group:square", "male:stoic", "language:greek",
                    "source:SchaleNetwork:/g/1337/b00b1e5"):
            self.assertIn(tag, tags)
        self.assertNotIn("language:english", tags)

    def test_unsafe_yaml_is_refused(self) -> None:
        """Python object tags are refused by the safe loader, as a plugin error."""
        with self.assertRaises(PluginError):
            load_yaml("!!python/object/apply:os.system ['true']", "info.yaml")
        with self.assertRaises(PluginError):
            tags_from_ksk(load_yaml("- just\n- a list\n", "info.yaml"), False)

    def test_yaml_nested_too_deep(self) -> None:
        """YAML nested past the composer's depth is a plugin error, not a RecursionError."""
        for text in ("[" * 50000, "- " * 50000):
            with self.assertRaises(PluginError):
                load_yaml(text, "info.yaml")


class HDoujinTests(SynchronousTestCase):
    def test_json(self) -> None:
        """Fields under manga_info, single or list values, namespaced tag maps, URL trimmed."""
        document = {"manga_info": {
            "title": "T", "description": "D", "artist": ["A1", "a1"], "circle": "C",
            "characters": ["X"], "language": "english", "url": "https://www.site.net/g/1/?x=1",
            "tags": {"female": ["f1"], "misc": ["m1"]}, "pages": 20,
        }}
        result = tags_from_json(document)
        self.assertEqual(result["title"], "T")
        self.assertEqual(result["summary"], "D")
        self.assertEqual(result["tags"], "artist:A1, circle:C, character:X, language:english, "
                                         "source:site.net/g/1, female:f1, other:m1")

    def test_txt(self) -> None:
        """``Key: value`` lines; plain TAGS without namespace; description as summary."""
        text = ("Title: My Title\nArtist: Someone\nTags: big, small, Big\nURL: https://x.org/g/2/\n"
                "Description: hello\nPages: 3\n")
        self.assertEqual(tags_from_txt(text), {
            "title": "My Title", "summary": "hello",
            "tags": "artist:Someone, big, small, source:x.org/g/2"})

    def test_nothing(self) -> None:
        """No tag fields is an error."""
        with self.assertRaises(PluginError):
            tags_from_json({"title": "only"})

    def test_json_nested_too_deep(self) -> None:
        """A JSON file nested past the decoder's depth is a plugin error, not a RecursionError."""
        with self.assertRaises(PluginError):
            parse_json(ArchiveFile("info.json", b"[" * 50000))


class RegexParseTests(SynchronousTestCase):
    CASES = [
        ("(NoNe) [Yanyanyo (Yanyo)] Reijo no Rei no... (Blue Archive) [English] [Digital]", False, False,
         "artist:Yanyo, event:NoNe, group:Yanyanyo, language:english, series:Blue Archive"),
        ("(NoNe) [Yanyanyo (Yanyo)] Reijo no Rei no... (ongoing) [Decensored]", True, True,
         "artist:Yanyo, event:NoNe, group:Yanyanyo, parsed:decensored, parsed:ongoing"),
        ("(NoNe) [Yanyanyo (Yanyo)] Reijo no Rei no... (ongoing) [Decensored]", True, False,
         "artist:Yanyo, event:NoNe, group:Yanyanyo"),
        ("[Yanyo] Reijo no Rei no... [english] {Team} Cap.01 (Digital) [Ongoing] [ ] () { } "
         "{big breasts, sole female}", True, True,
         "artist:Yanyo, big breasts, language:english, parsed:Team, parsed:digital, parsed:ongoing, "
         "sole female"),
        ("[Yanyo] Reijo no Rei no... [english] {Team} Cap.01 (Digital) [Ongoing] [ ] () { } "
         "{big breasts, sole female}", False, True,
         "artist:Yanyo, language:english, parsed:Team, parsed:big breasts, parsed:digital, "
         "parsed:ongoing, parsed:sole female"),
        ("(C24) [Atomic Diver Henshuubu (Tajima Shinobu, Yoko)] ART DANGER II (Various) [En,Textless]",
         True, True, "artist:Tajima Shinobu, artist:Yoko, event:C24, group:Atomic Diver Henshuubu, "
                     "language:english, language:textless, series:Various"),
        ("[Pixiv] 佐々(66526024) 2024.10.19", True, True, "parsed:66526024, parsed:pixiv"),
        ("(C101)_[Kuro_Neko]_Blue_[Japanese]", False, False,
         "artist:Kuro Neko, event:C101, language:japanese"),
    ]

    def test_filenames(self) -> None:
        """The original's test names give the original's tags."""
        for name, trailing, keep, expected in self.CASES:
            self.assertEqual(parse_filename(name, trailing, keep)[0], expected, name)

    def test_title(self) -> None:
        """The title is the trimmed text between the artist and the series."""
        self.assertEqual(parse_filename("(C24) [A (B)] ART DANGER II (Various) [En]")[1],
                         "ART DANGER II")
        self.assertEqual(parse_filename("[a, b] So many artists!")[1], "So many artists!")


class ModelTests(SynchronousTestCase):
    def test_hash_parameters_become_an_array(self) -> None:
        """Named parameters are listed with their name; legacy ones without."""
        named = PluginInfo(name="n", type="metadata", namespace="ns",
                           parameters={"a": {"type": "bool", "desc": "A", "default_value": True}})
        self.assertEqual(named.to_json()["parameters"],
                         [{"type": "bool", "desc": "A", "name": "a", "default_value": True}])
        legacy = PluginInfo(name="n", type="script", namespace="ns2",
                            parameters=[{"type": "string", "desc": "S"}])
        self.assertEqual(legacy.to_json()["parameters"], [{"type": "string", "desc": "S"}])
        self.assertNotIn("parameters", PluginInfo(name="n", type="login", namespace="x").to_json())

    def test_params_from_storage(self) -> None:
        """Stored strings are coerced by type; blanks fall back to defaults; customargs by position."""
        named = PluginInfo(name="n", type="metadata", namespace="ns", parameters={
            "flag": {"type": "bool", "desc": ""}, "count": {"type": "int", "desc": "", "default_value": 3},
            "text": {"type": "string", "desc": ""}})
        params = PluginParams(named, {"flag": "1", "count": " ", "enabled": "1"})
        self.assertEqual(dict(params), {"flag": True, "count": 3, "text": ""})
        self.assertTrue(params.enabled)
        legacy = PluginInfo(name="n", type="metadata", namespace="ns",
                            parameters=[{"type": "bool", "desc": ""}, {"type": "string", "desc": ""}])
        params = PluginParams(legacy, {"customargs": '[1, "tags"]'})
        self.assertEqual((params.flag(0), params.text(1), params.enabled), (True, "tags", False))
        self.assertEqual(dict(PluginParams(legacy, {"customargs": "not json"})), {0: False, 1: ""})

    def test_new_tags(self) -> None:
        """Tags already a case-insensitive substring of the existing string are dropped;
        the result has a leading space per tag."""
        kept = new_tags_of(["artist:foo", " Female:Glasses ", "", "male:new\n", "ARTIST:FOOBAR"],
                           "artist:foobar,female:glasses")
        self.assertEqual(kept, ["male:new"])
        self.assertEqual(format_new_tags(["a", "b:c"]), " a, b:c")
        self.assertEqual(format_new_tags([]), "")
