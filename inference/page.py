"""Saved web pages: which parts of an HTML page are the article.

A page saved from a news site holds much besides the story: the site's menu, a cookie notice, share buttons,
"related" and "most read" lists, the footer. Left in, they become brief sentences ("We use cookies to improve
your experience.") and entities, and their numbers would pass the faithfulness guard as "in the article".
``boilerplate(text)`` gives the character ranges of ``text`` to leave out; ``clean`` drops them before the
rest of the markup, keeping its offset map, so entities keep their offsets into the page as given.

Two rules, both cautious (a page is read whole unless they are sure):

* The article's container. Of the ``<article>``, ``<main>``, ``itemprop="articleBody"`` and ``role="main"``
  elements, the one holding the most text is the story, when it holds at least ``MAIN_SHARE`` of the page's
  text (after the second rule); everything outside it goes. Of nested containers holding about as much, the
  innermost. When a container beside it holds half as much or more (a listing page of teasers, two stories),
  none is chosen.
* Boilerplate elements: ``<head>`` (the ``<title>`` is the site's, "... | World | Daily Example"), ``<nav>``,
  ``<aside>``, ``<footer>``, ``<form>``, ``<button>``, ``<select>``, ``<iframe>``, ``<svg>``, ``<dialog>``,
  a ``<header>`` without a ``<h1>`` (a site header: logo and menu), hidden elements, and elements whose class
  or id names a part of a page that is not the story (``BOILERPLATE_WORDS``: "cookie", "share", "related",
  "newsletter", "ad", "comments"...). Of these, only ``<head>`` goes when it holds more than half of the
  page's text: an ASP.NET page wraps everything in one ``<form>``, a theme may call its content column
  "sidebar-left".

Elements are matched by name, open and close tags counted per name; one whose end tag is missing is kept.
"""
from __future__ import annotations

import bisect
import codecs
import re

MAIN_SHARE = 0.4
# Words of a class or id (split at spaces, "-" and "_") that name a part of a page that is not the story.
BOILERPLATE_WORDS = frozenset("""
ad ads adslot advert adverts advertisement advertising banner breadcrumb breadcrumbs comment comments consent
cookie cookies disqus gdpr masthead menu modal nav navbar navigation newsletter outbrain paywall popular popup
promo promotion recommended recommendations related share sharing sidebar signup skip social sponsor sponsored
subscribe subscription taboola toolbar trending most-read mostread hidden sr-only visually-hidden
""".split())
_DROPPED_TAGS = frozenset("head nav aside footer form button select iframe svg dialog canvas audio video object "
                          "menu".split())
_CONTAINER_TAGS = frozenset({"article", "main"})
_VOID = frozenset("area base br col embed hr img input link meta param source track wbr".split())

# A comment, a raw-text element (whose body is not markup), or a tag with its attributes.
_TOKEN = re.compile(
    r"<!--.*?(?:-->|\Z)|<!\[CDATA\[.*?(?:\]\]>|\Z)|<!DOCTYPE[^>]*>"
    r"|<(?P<raw>script|style|noscript|template|textarea)\b[^>]*>.*?(?:</(?P=raw)\s*>|\Z)"
    r"|<(?P<close>/?)(?P<name>[a-zA-Z][a-zA-Z0-9:-]*)(?P<attrs>(?:[^<>\"']|\"[^\"]*\"|'[^']*')*)>",
    re.S | re.I)
_ATTR = re.compile(r"""(?P<key>[^\s"'<>/=]+)(?:\s*=\s*(?:"(?P<v1>[^"]*)"|'(?P<v2>[^']*)'|(?P<v3>[^\s"'>]+)))?""")
_LOOKS_LIKE_PAGE = re.compile(r"<(?:html|body|div|article|main|nav|aside|footer|header|section|p|span|a|form)\b",
                              re.I)


def _attrs(text: str) -> dict[str, str]:
    out = {}
    for m in _ATTR.finditer(text):  # one attribute at a time, values consumed: "hidden" in a title is no key
        out.setdefault(m.group("key").lower(), (m.group("v1") or m.group("v2") or m.group("v3") or "").lower())
    return out


def _words(value: str) -> set[str]:
    """The class names of ``value`` and their words ("share-tools": share-tools, share, tools); "hidden" only as
    a whole name, as Bootstrap's "hidden-xs" hides an element on small screens only."""
    parts = value.split()
    return set(parts) | {w for p in parts for w in re.split(r"[-_]", p) if w and w != "hidden"}


def _is_boilerplate(name: str, attrs: dict[str, str], contains_h1: bool) -> bool:
    if name in _DROPPED_TAGS or (name == "header" and not contains_h1):
        return True
    if "hidden" in attrs or attrs.get("aria-hidden") == "true":
        return True
    if re.search(r"display\s*:\s*none|visibility\s*:\s*hidden", attrs.get("style", "")):
        return True
    return bool((_words(attrs.get("class", "")) | _words(attrs.get("id", ""))) & BOILERPLATE_WORDS)


def boilerplate(text: str) -> list[tuple[int, int]]:
    """Sorted, disjoint [start, end) ranges of ``text`` that are not the article (see module doc); [] for text
    that is not a page or where nothing is sure."""
    if "<" not in text or not _LOOKS_LIKE_PAGE.search(text):
        return []
    tags = []  # (start, end, name, closing, attrs text)
    # Text characters (outside tags) before each token boundary, to measure the text an element holds.
    marks, counts, total, pos = [0], [0], 0, 0
    for m in _TOKEN.finditer(text):
        total += sum(map(len, text[pos: m.start()].split()))
        marks.append(m.start())
        counts.append(total)
        pos = m.end()
        marks.append(pos)
        counts.append(total)
        if m.group("name"):
            tags.append((m.start(), m.end(), m.group("name").lower(), bool(m.group("close")), m.group("attrs")))
    total += sum(map(len, text[pos:].split()))
    marks.append(len(text))
    counts.append(total)
    if not total:
        return []

    def text_in(start: int, end: int) -> int:  # text characters between two token boundaries
        return counts[bisect.bisect_right(marks, end) - 1] - counts[bisect.bisect_left(marks, start)]

    # Elements: open and close tags paired per name.
    elements, open_ = [], {}
    for start, end, name, closing, attrs in tags:
        if name in _VOID:
            continue
        if not closing:
            if not attrs.rstrip().endswith("/"):
                open_.setdefault(name, []).append((start, attrs))
        elif open_.get(name):
            s, a = open_[name].pop()
            elements.append((s, end, name, _attrs(a)))
    elements.sort(key=lambda el: el[:2])
    h1_starts = [s for s, _, name, _, _ in tags if name == "h1"]

    def contains_h1(s: int, e: int) -> bool:
        i = bisect.bisect_left(h1_starts, s)
        return i < len(h1_starts) and h1_starts[i] < e

    containers = [(s, e) for s, e, name, a in elements if name in _CONTAINER_TAGS
                  or a.get("itemprop") == "articlebody" or a.get("role") in ("main", "article")]
    large = [(s, e) for s, e in containers if text_in(s, e) >= MAIN_SHARE * total]
    candidates = []
    for s, e, name, a in elements:
        if name == "head" or (_is_boilerplate(name, a, contains_h1(s, e)) and text_in(s, e) <= total / 2
                              and not any(s <= cs and ce <= e for cs, ce in large)):
            candidates.append((s, e))
    dropped = _merge(candidates)
    drop_starts = [ds for ds, _ in dropped]
    drop_text = [0]  # text of the dropped ranges before each one
    for ds, de in dropped:
        drop_text.append(drop_text[-1] + text_in(ds, de))

    def kept_text(s: int, e: int) -> int:  # text of [s, e) outside the dropped ranges
        i, j = bisect.bisect_right(drop_starts, s), bisect.bisect_left(drop_starts, e)
        inside = drop_text[j] - drop_text[i]  # ranges starting in (s, e); the last may run past e
        if j > i and dropped[j - 1][1] > e:
            inside -= text_in(e, dropped[j - 1][1])
        if i and dropped[i - 1][1] > s:  # a range starting at or before s that runs into [s, e)
            inside += text_in(s, min(e, dropped[i - 1][1]))
        return text_in(s, e) - inside

    page_text = kept_text(0, len(text))
    scored = [(kept_text(s, e), s, e) for s, e in containers]
    if scored and page_text:
        best = max(c[0] for c in scored)
        _, s, e = min((c for c in scored if c[0] >= 0.9 * best), key=lambda c: c[2] - c[1])
        # a container beside it holding half as much: two stories, or teasers of a listing page, not one story
        rival = any(c[0] >= 0.5 * best and (c[2] <= s or c[1] >= e) for c in scored)
        if best >= MAIN_SHARE * page_text and not rival:
            dropped = _merge([(0, s), (e, len(text))]
                             + [(max(s, ds), min(e, de)) for ds, de in dropped if ds < e and de > s])
    return [(s, e) for s, e in dropped if s < e]


def _merge(ranges: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out = []
    for s, e in sorted(ranges):
        if out and s <= out[-1][1]:
            out[-1] = (out[-1][0], max(out[-1][1], e))
        else:
            out.append((s, e))
    return out


_META_CHARSET = re.compile(rb"""<meta\b[^>]*?charset\s*=\s*["']?\s*([A-Za-z0-9_.:-]+)""", re.I)
# What browsers read for these labels (the WHATWG Encoding Standard): Windows-1252, whose printable
# characters in 0x80-0x9F (curly quotes, dashes) Latin-1 and ASCII leave undefined.
_AS_WINDOWS_1252 = {"latin_1", "iso8859-1", "ascii", "cp1252"}


def declared_charset(data: bytes) -> str | None:
    """The Python codec for the charset a page's ``<meta charset>`` or ``http-equiv`` Content-Type declares
    in its first 4 KB, or None (none declared, or one Python does not know)."""
    m = _META_CHARSET.search(data[:4096])
    if not m:
        return None
    try:
        name = codecs.lookup(m.group(1).decode("ascii")).name
    except (LookupError, UnicodeDecodeError):
        return None
    return "cp1252" if name in _AS_WINDOWS_1252 else name


def page_charset(data: bytes) -> str | None:
    """The charset to read a saved page's bytes in, when it is not UTF-8: the one its ``<meta>`` declares
    (a Windows-1251 or KOI8-R page), or None. Bytes that are valid UTF-8 are read as UTF-8 whatever the page
    declares (a page re-saved as UTF-8 may keep its old <meta>; text in another charset is practically never
    valid UTF-8 once it has bytes above 0x7F)."""
    try:
        data.removeprefix(b"\xef\xbb\xbf").decode("utf-8")
        return None
    except UnicodeDecodeError:
        declared = declared_charset(data)
    return None if declared is None or codecs.lookup(declared).name == "utf-8" else declared

