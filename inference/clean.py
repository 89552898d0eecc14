"""Repairing dirty article text while keeping a map from every clean character back to the raw input.

Scraped dumps carry HTML-entity debris (``& # 39;``, ``,quot;``), ``%MINIFYHTML…%`` markers, tags, a
``date 2020-01-27`` header line, odd unicode and mangled spacing. ``clean`` repairs them with a fixed
sequence of substitutions; each substitution keeps, for every output character, the raw span it came from,
so an entity found in the clean text is reported at its exact place in the raw text too.
"""
from __future__ import annotations

import html
import re
import unicodedata
from dataclasses import dataclass
from typing import Callable


@dataclass(frozen=True)
class CleanText:
    raw: str
    text: str
    starts: tuple[int, ...]  # raw start offset of the source of each clean character
    ends: tuple[int, ...]  # raw end offset of the source of each clean character
    date: str | None = None  # from a leading 'date YYYY-MM-DD' header, if any

    def raw_span(self, start: int, end: int) -> tuple[int, int]:
        """Raw offsets of the clean span [start, end)."""
        if not 0 <= start < end <= len(self.text):
            raise ValueError(f"clean span ({start}, {end}) is outside the text (length {len(self.text)})")
        return self.starts[start], self.ends[end - 1]


def _substitute(pattern: re.Pattern, repl: Callable[[re.Match], str], text: str, starts: list[int],
                ends: list[int]) -> tuple[str, list[int], list[int]]:
    out, out_s, out_e, pos = [], [], [], 0
    for m in pattern.finditer(text):
        out.append(text[pos: m.start()])
        out_s.extend(starts[pos: m.start()])
        out_e.extend(ends[pos: m.start()])
        new = repl(m)
        if m.start() < m.end():
            s, e = starts[m.start()], ends[m.end() - 1]
        else:  # zero-width match: inserted text belongs to the next character
            s = starts[m.start()] if m.start() < len(starts) else (ends[-1] if ends else 0)
            e = s
        if new == m.group() and new:  # kept unchanged: keep character-exact offsets
            out_s.extend(starts[m.start(): m.end()])
            out_e.extend(ends[m.start(): m.end()])
        else:
            out.append(new)
            out_s.extend([s] * len(new))
            out_e.extend([e] * len(new))
            pos = m.end()
            continue
        out.append(new)
        pos = m.end()
    out.append(text[pos:])
    out_s.extend(starts[pos:])
    out_e.extend(ends[pos:])
    return "".join(out), out_s, out_e


_NAMED = {"quot": '"', "amp": "&", "apos": "'", "lt": "<", "gt": ">", "nbsp": " ", "ndash": "–",
          "mdash": "—", "hellip": "…", "rsquo": "’", "lsquo": "‘", "rdquo": "”", "ldquo": "“"}


def _entity(m: re.Match) -> str:
    if m.group("num"):
        code = int(m.group("num"))
        return chr(code) if 0 < code < 0x110000 and code not in range(0xD800, 0xE000) else ""
    if m.group("hex"):
        code = int(m.group("hex"), 16)
        return chr(code) if 0 < code < 0x110000 and code not in range(0xD800, 0xE000) else ""
    name = m.group("name").lower()
    return _NAMED.get(name) or html.unescape(f"&{name};")


def _nfkc(m: re.Match) -> str:
    return unicodedata.normalize("NFKC", m.group())


_CONTROL = "".join(chr(c) for c in range(32) if chr(c) not in "\n\t") + "\x7f\u200b\u200c\u200d\ufeff"

# (pattern, replacement) in order; each keeps the offset map.
_STEPS: list[tuple[re.Pattern, Callable[[re.Match], str]]] = [
    (re.compile(r"%MINIFYHTML[0-9a-fA-F]*%"), lambda m: " "),
    (re.compile(r"<!--.*?-->|</?[a-zA-Z][^<>]{0,500}>", re.S), lambda m: " "),
    # '& # 39;', '&#39;', '&#x27;', '& quot ;', and the mangled ',quot;' / ' quot;' forms
    (re.compile(r"&\s*#\s*(?P<num>\d{1,7})\s*;|&\s*#\s*[xX](?P<hex>[0-9a-fA-F]{1,6})\s*;"
                r"|(?:&|,)\s?(?P<name>quot|amp|apos|lt|gt|nbsp|ndash|mdash|hellip|rsquo|lsquo|rdquo|ldquo)\s*;",
                re.I), _entity),
    (re.compile(f"[{re.escape(_CONTROL)}]"), lambda m: ""),
    (re.compile(r"[^\x00-\x7f]"), _nfkc),
    (re.compile(r"[ \t\u00a0]+"), lambda m: " "),
    (re.compile(r" (?=[,.;:!?)\]](?:\s|$))"), lambda m: ""),  # space before closing punctuation
    (re.compile(r"(?<=[\(\[]) "), lambda m: ""),
    (re.compile(r"(?:(?<=\A)|(?<=[\s(]))(['\"‘“]) (?=\w)"), lambda m: m.group(1)),  # "' Completely"
    (re.compile(r"(?<=[\w.!?]) (['\"’”])(?=[\s:;,.]|\Z)"), lambda m: m.group(1)),  # "destroyed '"
    (re.compile(r" *\n[ \n]*"), lambda m: "\n\n" if m.group().count("\n") > 1 else "\n"),
]

_DATE_HEADER = re.compile(r"\A\s*date:?\s+(\d{4}-\d{2}-\d{2})[^\n]*\n")


def clean(raw: str) -> CleanText:
    """Repair ``raw`` and keep the clean->raw offset map (see module doc)."""
    if not isinstance(raw, str):
        raise TypeError(f"article text must be a string, got {type(raw).__name__}")
    text, starts, ends = raw, list(range(len(raw))), list(range(1, len(raw) + 1))
    date = None
    header = _DATE_HEADER.match(text)
    if header:
        date = header.group(1)
        text, starts, ends = text[header.end():], starts[header.end():], ends[header.end():]
    for pattern, repl in _STEPS:
        text, starts, ends = _substitute(pattern, repl, text, starts, ends)
    lead = len(text) - len(text.lstrip())
    trail = len(text.rstrip())
    text, starts, ends = text[lead:trail], starts[lead:trail], ends[lead:trail]
    return CleanText(raw, text, tuple(starts), tuple(ends), date)


# ------------------------------------------------------------------------------------- sentences

_ABBREV = {"mr", "mrs", "ms", "dr", "prof", "gen", "col", "lt", "sgt", "capt", "maj", "gov", "sen", "rep",
           "st", "jr", "sr", "inc", "co", "corp", "ltd", "vs", "no", "jan", "feb", "mar", "apr", "jun", "jul",
           "aug", "sep", "sept", "oct", "nov", "dec", "u.s", "u.n", "u.k", "e.g", "i.e", "etc", "approx"}
_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s+|$)|\n+")


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans of clean text; line breaks end sentences (headlines, captions)."""
    spans, start = [], 0
    for m in _END.finditer(text):
        end = m.end()
        if m.group().startswith("."):
            word = re.search(r"([\w.]+)\.$", text[start: m.start() + 1])
            if word and (word.group(1).lower() in _ABBREV or re.fullmatch(r"[A-Z]", word.group(1))):
                continue
            nxt = text[end: end + 3].lstrip()
            if nxt[:1].islower():
                continue
        piece = text[start:end]
        if piece.strip():
            lead = len(piece) - len(piece.lstrip())
            spans.append((start + lead, start + len(piece.rstrip())))
        start = end
    if text[start:].strip():
        piece = text[start:]
        lead = len(piece) - len(piece.lstrip())
        spans.append((start + lead, start + len(piece.rstrip())))
    return spans
