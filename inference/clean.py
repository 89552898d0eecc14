"""Repairing dirty article text while keeping a map from every clean character back to the raw input.

Scraped dumps carry HTML-entity debris (``& # 39;``, ``,quot;``), ``%MINIFYHTML…%`` markers, tags, a
``date 2020-01-27`` header line, odd unicode and mangled spacing. ``clean`` repairs them with a fixed
sequence of substitutions; each substitution keeps, for every output character, the raw span it came from,
so an entity found in the clean text is reported at its exact place in the raw text too.
"""
from __future__ import annotations

import bisect
import html
import itertools
import re
import unicodedata
from dataclasses import dataclass, replace
from functools import cached_property
from typing import Callable

from .page import boilerplate


@dataclass(frozen=True)
class CleanText:
    raw: str
    text: str
    starts: tuple[int, ...]  # raw start offset of the source of each clean character
    ends: tuple[int, ...]  # raw end offset of the source of each clean character
    date: str | None = None  # YYYY-MM-DD from a leading 'date YYYY-MM-DD' or 'This story is from <date>' header
    reports: tuple[int, ...] = ()  # several reports of one event: where each starts in text (the first at 0)
    # ... and the same for each report as given, in order: None for one that left no clean text (a blank one)
    report_inputs: tuple[int | None, ...] = ()

    def report_of(self, offset: int) -> int | None:
        """Which of the reports as given (0-based, blank ones counted) holds clean ``offset``: the last that
        starts at or before it; None for one article."""
        if not self.reports:
            return None
        starts, given = self._starts
        k = bisect.bisect_right(starts, offset)
        return given[k - 1] if k else None

    @cached_property
    def _starts(self) -> tuple[list[int], list[int]]:
        """The starts of the reports that left clean text (they rise with their place in the list), and that place;
        an entity or a sentence of an event of a thousand reports is then found in log time, not by a scan."""
        kept = [(start, n) for n, start in enumerate(self.report_inputs) if start is not None]
        return [start for start, _ in kept], [n for _, n in kept]

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


# Mojibake: UTF-8 bytes read as Windows-1252 ("â€™" for "’", "Ã©" for "é"). A lead character and as many
# continuation characters as its UTF-8 lead byte asks for are put back when their bytes decode as UTF-8;
# anything else is left alone. The five bytes Windows-1252 leaves undefined pass through as C1 controls.
_UNDEFINED = {chr(b): b for b in (0x81, 0x8D, 0x8F, 0x90, 0x9D)}
_CONT = re.escape("".join(bytes([b]).decode("cp1252") for b in range(0x80, 0xC0) if chr(b) not in _UNDEFINED)
                  + "".join(_UNDEFINED))
_MOJIBAKE = re.compile(f"[\u00c2-\u00df][{_CONT}]|[\u00e0-\u00ef][{_CONT}]{{2}}|[\u00f0-\u00f4][{_CONT}]{{3}}")


def _unmojibake(m: re.Match) -> str:
    try:
        raw = b"".join(bytes([_UNDEFINED[c]]) if c in _UNDEFINED else c.encode("cp1252") for c in m.group())
        return raw.decode("utf-8")
    except UnicodeError:
        return m.group()


# The same mojibake after a second pass folded it to ASCII ("â€™" -> "aEUR(tm)"), as in some news archives.
_FOLDED = {"(tm)": "’", "~": "‘", "oe": "“", '"': "—", "C/": "•", "|": "…", "": "”"}
_FOLDED_MOJIBAKE = re.compile(r"aEUR(\(tm\)|~|oe|\"|C/|\||)")


def _doubled_quote(m: re.Match) -> str:
    """Two single quotes typed for a double one (‘‘barbaric’’, ``so'', ''he said''); between letters, where an
    archive doubled an apostrophe ("court''s"), one apostrophe."""
    text, i, j = m.string, m.start(), m.end()
    if m.group() == "''" and text[i - 1: i].isalnum() and text[j: j + 1].isalnum():
        return "'"
    return {"‘‘": "“", "’’": "”", "``": "“", "''": '"'}[m.group()]


_CONTROL = "".join(chr(c) for c in range(32) if chr(c) not in "\n\t") + "\x7f"
# Invisible format characters (Unicode Cf) that English news text has no use for: the soft hyphen
# ("Mos\u00adul" is Mosul), zero-width spaces and joiners, direction marks and overrides (an override left in
# a brief shows it reversed), word joiners, the byte-order mark, tag characters. As a character class.
_INVISIBLE = "\u00ad\u200b-\u200f\u202a-\u202e\u2060-\u2064\u2066-\u206f\ufeff\U000e0001\U000e0020-\U000e007f"
# What cleaning drops, as a character class: control and invisible characters, and lone UTF-16 surrogates (half
# an emoji, from a JSON "\ud83d" escape), which the tokenizers cannot encode. Training data read with its own
# offsets (span JSONL) is not cleaned; its word splitter skips these too.
DROPPED = f"{re.escape(_CONTROL)}{_INVISIBLE}\ud800-\udfff"
# What cleaning drops that may sit inside a word ("Mos\u00adul"): invisible characters and lone surrogates.
IN_WORD_DROPPED = f"{_INVISIBLE}\ud800-\udfff"

# (pattern, replacement) in order; each keeps the offset map.
_STEPS: list[tuple[re.Pattern, Callable[[re.Match], str]]] = [
    (re.compile(r"%MINIFYHTML[0-9a-fA-F]*%"), lambda m: " "),
    # A whole page: script and style bodies go; block tags end a line (a paragraph, a title), others a word.
    (re.compile(r"<(script|style|noscript|template)\b[^<>]{0,500}>.*?</\1\s*>", re.S | re.I), lambda m: " "),
    (re.compile(r"</?(?:p|div|br|h[1-6]|li|ul|ol|tr|td|th|table|title|article|section|header|footer|blockquote|"
                r"figcaption|figure|hr|aside|nav|main)\b[^<>]{0,500}>", re.I), lambda m: "\n"),
    (re.compile(r"<!--.*?-->|</?[a-zA-Z][^<>]{0,500}>", re.S), lambda m: " "),
    # '& # 39;', '&#39;', '&#x27;', '& quot ;', and the mangled ',quot;' / ' quot;' forms
    (re.compile(r"&\s*#\s*(?P<num>\d{1,7})\s*;|&\s*#\s*[xX](?P<hex>[0-9a-fA-F]{1,6})\s*;"
                r"|(?:&|,)\s?(?P<name>quot|amp|apos|lt|gt|nbsp|ndash|mdash|hellip|rsquo|lsquo|rdquo|ldquo)\s*;",
                re.I), _entity),
    (re.compile(r"\{dollar\}"), lambda m: "$"),  # a news archive's escape: "US{dollar}431.30"
    (_MOJIBAKE, _unmojibake),
    (_FOLDED_MOJIBAKE, lambda m: _FOLDED[m.group(1)]),
    (re.compile(f"[{DROPPED}]"), lambda m: ""),
    (re.compile(r"[^\x00-\x7f]"), _nfkc),
    (re.compile(r"‘‘|’’|``|''"), _doubled_quote),
    (re.compile(r"[ \t\u00a0]+"), lambda m: " "),
    (re.compile(r" (?=[,.;:!?)\]](?:\s|$))"), lambda m: ""),  # space before closing punctuation
    (re.compile(r"(?<=[^\W\d_]) (?=['’]s\b)"), lambda m: ""),  # "Venezuela 's capital"
    # A title run into its story: "Arming the Zetas?Guatemala admits", "in 2012.The"
    (re.compile(r"(?<=[a-z]{2})[.?!](?=[A-Z][a-z]|[AI] )|(?<=\d{4})\.(?=[A-Z][a-z])"), lambda m: m.group() + " "),
    (re.compile(r"(?<=[\(\[]) "), lambda m: ""),
    (re.compile(r"(?:(?<=\A)|(?<=[\s(]))(['\"‘“]) (?=\w)"), lambda m: m.group(1)),  # "' Completely"
    (re.compile(r"(?<=[\w.!?]) (['\"’”])(?=[\s:;,.]|\Z)"), lambda m: m.group(1)),  # "destroyed '"
    (re.compile(r" *\n[ \n]*"), lambda m: "\n\n" if m.group().count("\n") > 1 else "\n"),
]

_DATE_HEADER = re.compile(r"\A\s*date:?\s+(\d{4}-\d{2}-\d{2})[^\n]*\n")
_MONTHS = ["jan", "feb", "mar", "apr", "may", "jun", "jul", "aug", "sep", "oct", "nov", "dec"]
_MONTH = r"(?P<month>(?:jan|feb|mar|apr|may|jun|jul|aug|sep|oct|nov|dec)[a-z]*\.?)"
# Archive boilerplate before the story: "This story is from March 9, 2002", "Published: 29 March 2013".
_DATE_LEAD = re.compile(r"\A\s*(?:this story is from|published|posted|updated)\s*:?\s+(?:on\s+)?"
                        rf"(?:{_MONTH}\s+(?P<day>\d{{1,2}}),?\s+(?P<year>\d{{4}})"
                        rf"|(?P<day2>\d{{1,2}})\s+{_MONTH.replace('month', 'month2')}\s+(?P<year2>\d{{4}}))"
                        r"\b[\s.:|-]*", re.I)


def _lead_date(m: re.Match) -> str | None:
    month = (m.group("month") or m.group("month2"))[:3].lower()
    day, year = int(m.group("day") or m.group("day2")), int(m.group("year") or m.group("year2"))
    return f"{year:04d}-{_MONTHS.index(month) + 1:02d}-{day:02d}" if 1 <= day <= 31 else None


# Hard-wrapped text: wire copy, e-mail and plain-text archives break lines at a fixed width, mid-sentence.
# What a sentence or a whole line ends with (a line that ends otherwise ends mid-sentence).
TERMINAL = tuple(".!?…:;\"'”’)]")
_CONTINUES = set("""a an the of to in on at for from by with and or but as that which who whom whose than into
over under after before about against between during near said says is are was were be been has have had
will would not no its his her their our when where while because although though if since until whether""".split())
_LINE_BREAK = re.compile(r"(?<=[^\n])\n(?=[^\n])")


def hard_wrap_breaks(text: str) -> set[int]:
    """Offsets of the single line breaks that a fixed line width put inside a paragraph, where the text was
    hard-wrapped; an empty set otherwise. A text counts as hard-wrapped when at least 3 lines of 40-110
    characters are followed by another line of the same paragraph and at least half of those end
    mid-sentence (a scraped article's lines are whole paragraphs, and they end with a full stop). A break is
    a wrap where the line before fills most of the width, or ends mid-sentence with a comma, a hyphen or a
    word such as "of" or "that", or ends mid-sentence before a lower-case word or one such as "of", or opens a
    paragraph, ends mid-sentence, has 4 words or more and is followed by a full line (MUC-4 documents, whose
    first line is short where the dateline was cut: "THE NEW SECOND IN COMMAND OF THE 3D" / "INFANTRY
    REGIMENT BASED AT LA TABLADA, ..."); a short line that ends otherwise is a heading or a paragraph's end."""
    breaks = [m.start() for m in _LINE_BREAK.finditer(text)]
    if len(breaks) < 3:
        return set()
    lines = []  # (offset of the break, offset of the line before it, that line)
    for b in breaks:
        start = text.rfind("\n", 0, b) + 1
        lines.append((b, start, text[start:b].rstrip()))
    full = [line for _, _, line in lines if 40 <= len(line) <= 110]
    mid = [line for line in full if not line.endswith(TERMINAL)]
    if len(full) < 3 or len(mid) < 0.5 * len(full) or len(full) < 0.5 * len(lines):
        return set()
    width = sorted(len(line) for line in full)[int(0.9 * (len(full) - 1))]
    joins = set()
    for b, start, line in lines:
        last = line.rsplit(None, 1)[-1].lower() if line.split() else ""
        following = text[b + 1: b + 40].split()
        first = following[0].strip(",;") if following else ""
        mid_sentence = not line.endswith(TERMINAL)
        opens = start == 0 or text[start - 2: start] == "\n\n"  # the line opens a paragraph
        end = text.find("\n", b + 1)
        next_len = len(text[b + 1: end if end >= 0 else len(text)].rstrip())
        if len(line) >= 0.7 * width or line.endswith((",", "-")) or last in _CONTINUES or mid_sentence and (
                first[:1].islower() or first.lower() in _CONTINUES - {"a", "an", "the", "no"}
                or opens and len(line.split()) >= 4 and next_len >= 0.7 * width):
            joins.add(b)
    return joins


def _join_line(m: re.Match, joins: set[int]) -> str:
    if m.start() not in joins:
        return m.group()
    before = m.string[m.start() - 2: m.start()]
    return "" if len(before) == 2 and before[0].isalpha() and before[1] == "-" else " "  # "CEASE-\nFIRE"


class TextFileError(ValueError):
    """A file that cannot be read as text: ``where`` (the file, or file:line) and ``problem``."""

    def __init__(self, where, problem: str):
        super().__init__(f"{where}: {problem}")
        self.where, self.problem = str(where), problem


# The first bytes of compressed data, and its kind: the batch job reads standard input by them, and read_utf8
# names a compressed file by them.
COMPRESSED_MAGIC = ((b"\x1f\x8b", "gzip"), (b"BZh", "bzip2"), (b"\xfd7zXZ\x00", "xz"),
                    (b"\x28\xb5\x2f\xfd", "zstd"))
DECOMPRESS_TOOLS = {"gzip": "gunzip", "bzip2": "bunzip2", "xz": "unxz", "zstd": "unzstd"}
# ... and the names of compressed files (the batch job's inputs, training files): "train.conll.gz"
COMPRESSED_SUFFIXES = (".gz", ".bz2", ".xz", ".zst")


def compression_suffix(name: str) -> str:
    """'.gz', '.bz2', '.xz' or '.zst' when the file name ends so, else ''."""
    return next((c for c in COMPRESSED_SUFFIXES if name.lower().endswith(c)), "")


def compression_of(head: bytes) -> str | None:
    """'gzip', 'bzip2', 'xz' or 'zstd' for data that starts so (and, bzip2's "BZh" being text, is no UTF-8
    there)."""
    kind = next((kind for magic, kind in COMPRESSED_MAGIC if head.startswith(magic)), None)
    return kind if kind and not _is_utf8(head[:64]) else None


def decompressed(data: bytes, kind: str, path) -> bytes:
    """gzip, bzip2, xz or zstd data decompressed (several members or streams one after another, as ``cat``
    makes); zstd needs the zstandard package (TextFileError saying so)."""
    import bz2
    import gzip
    import lzma
    import zlib

    from . import zstd

    try:
        return {"gzip": gzip.decompress, "bzip2": bz2.decompress, "xz": lzma.decompress,
                "zstd": zstd.decompress}[kind](data)
    except ImportError as e:
        raise TextFileError(path, f"is zstd-compressed; {e}") from None
    except (OSError, EOFError, ValueError, lzma.LZMAError, zlib.error) as e:  # zlib.error: damaged gzip data
        raise TextFileError(path, f"is {kind}-compressed but cannot be decompressed: it is cut short or damaged "
                                  f"({e})") from None


def _is_utf8(data: bytes) -> bool:
    """Whether ``data`` (the start of a file) decodes as UTF-8, a character cut at its end allowed."""
    try:
        data.decode("utf-8")
    except UnicodeDecodeError as e:
        return e.reason == "unexpected end of data"
    return True


def file_bytes(path, decompress: bool = False) -> bytes:
    """The bytes of a file; ``decompress``: a gzip, bzip2, xz or zstd file, told by its first bytes, decompressed,
    otherwise such a file is an error that says so. TextFileError naming the file and the problem."""
    from pathlib import Path

    path = Path(path)
    try:
        data = path.read_bytes()
    except FileNotFoundError:
        raise TextFileError(path, "no such file") from None
    except IsADirectoryError:
        raise TextFileError(path, "is a folder, not a file") from None
    except OSError as e:
        raise TextFileError(path, f"cannot be read ({e.strerror or e})") from None
    kind = compression_of(data[:64])
    if kind and not decompress:
        tool = DECOMPRESS_TOOLS[kind]
        raise TextFileError(path, f"is {kind}-compressed; these files are read as plain text: decompress it "
                                  f"first ({tool} -k {path})")
    return decompressed(data, kind, path) if kind else data


def read_utf8(path, decompress: bool = False) -> str:
    """The text of a UTF-8 file (configs, lexicons, label schemas, training data), a byte-order mark dropped.
    ``decompress`` (training and evaluation data): a compressed file is read decompressed (``file_bytes``).
    TextFileError naming the file, and for bytes that are not UTF-8 the line, the column and the byte."""
    data = file_bytes(path, decompress)
    try:
        return data.decode("utf-8-sig")
    except UnicodeDecodeError as e:
        line = data.count(b"\n", 0, e.start) + 1
        column = e.start - data.rfind(b"\n", 0, e.start)
        raise TextFileError(f"{path}:{line}", f"not UTF-8 (column {column}: {data[e.start:e.start + 1]!r}); save "
                            "the file as UTF-8 (from Windows-1252: iconv -f cp1252 -t utf-8)") from None


def _drop(ranges: list[tuple[int, int]], text: str, starts: list[int],
          ends: list[int]) -> tuple[str, list[int], list[int]]:
    """``text`` without the [start, end) ranges (a saved page's menus and footers), each replaced by a line
    break (mapped to the range's raw span) so that the text on either side does not run together."""
    if not ranges:
        return text, starts, ends
    out, out_s, out_e, pos = [], [], [], 0
    for s, e in ranges:
        out.append(text[pos:s] + "\n")
        out_s.extend(starts[pos:s] + [starts[s]])
        out_e.extend(ends[pos:s] + [ends[e - 1]])
        pos = e
    out.append(text[pos:])
    out_s.extend(starts[pos:])
    out_e.extend(ends[pos:])
    return "".join(out), out_s, out_e


REPORT_JOIN = "\n\n"
"""Several reports of one event are read as one text, joined by a blank line; raw offsets count in it."""
REPORTS_FIELD = "reports"  # the field of a record (batch, pair files, HTTP) that holds the reports of one event


def joined(text: str | list[str]) -> str:
    """An article's text, or the reports of one event joined as ``clean`` joins them (the raw text)."""
    return text if isinstance(text, str) else REPORT_JOIN.join(text)


def text_chars(text) -> int:
    """Characters of an article, or of the reports of one event together (as ``joined``); 0 for what is neither."""
    if isinstance(text, str):
        return len(text)
    if isinstance(text, (list, tuple)):
        return sum(len(r) for r in text if isinstance(r, str)) + len(REPORT_JOIN) * max(0, len(text) - 1)
    return 0


def clean(raw: str | list[str]) -> CleanText:
    """Repair ``raw`` and keep the clean->raw offset map (see module doc). ``raw`` may be a list of several
    reports of one event (outlets of different leanings, as in NeuS): they are joined by ``REPORT_JOIN``,
    and ``reports`` says where each starts in the clean text, so that a brief can draw on each."""
    if isinstance(raw, (list, tuple)):
        return _clean_reports(list(raw))
    if not isinstance(raw, str):
        raise TypeError(f"article text must be a string or a list of strings, got {type(raw).__name__}")
    text, starts, ends = raw, list(range(len(raw))), list(range(1, len(raw) + 1))
    date = None
    header = _DATE_HEADER.match(text)
    if header:
        date = header.group(1)
    else:
        header = _DATE_LEAD.match(text)
        date = _lead_date(header) if header else None
        header = header if date else None
    if header:
        text, starts, ends = text[header.end():], starts[header.end():], ends[header.end():]
    text, starts, ends = _drop(boilerplate(text), text, starts, ends)
    for pattern, repl in _STEPS:
        text, starts, ends = _substitute(pattern, repl, text, starts, ends)
    joins = hard_wrap_breaks(text)
    if joins:
        text, starts, ends = _substitute(_LINE_BREAK, lambda m: _join_line(m, joins), text, starts, ends)
    lead = len(text) - len(text.lstrip())
    trail = len(text.rstrip())
    text, starts, ends = text[lead:trail], starts[lead:trail], ends[lead:trail]
    return CleanText(raw, text, tuple(starts), tuple(ends), date)


def _clean_reports(reports: list) -> CleanText:
    for n, report in enumerate(reports, 1):
        if not isinstance(report, str):
            raise TypeError(f"report {n} of {len(reports)} must be a string, got {type(report).__name__}")
    article = clean(joined(reports))
    text, inputs, at = article.text, [], 0
    for report in reports:  # a report starts at the first clean character from it (or after it) that is no space
        offset = None
        if report.strip():
            offset = bisect.bisect_left(article.starts, at)
            while offset < len(text) and text[offset].isspace():  # (U+0085, which cleaning keeps, too)
                offset += 1
            # one that left no clean character of its own starts where the next one does, or past the end
            offset = offset if offset < len(text) and article.starts[offset] < at + len(report) else None
        inputs.append(offset)
        at += len(report) + len(REPORT_JOIN)
    offsets = sorted({o for o in inputs if o is not None})
    if len(offsets) < 2:
        return replace(article, reports=(), report_inputs=())
    return replace(article, reports=tuple(offsets), report_inputs=tuple(inputs))


# ------------------------------------------------------------------------------------- sentences

_ABBREV = {"mr", "mrs", "ms", "dr", "prof", "gen", "col", "lt", "sgt", "capt", "maj", "gov", "sen", "rep",
           "st", "jr", "sr", "inc", "co", "corp", "ltd", "vs", "no", "jan", "feb", "mar", "apr", "jun", "jul",
           "aug", "sep", "sept", "oct", "nov", "dec", "u.s", "u.n", "u.k", "e.g", "i.e", "etc", "approx", "v"}


def is_abbreviation(word: str) -> bool:
    """Whether a full stop after ``word`` (given without it) may end no sentence: "Sen", "U.S", "v", an
    initial "J"."""
    return word.lower() in _ABBREV or bool(re.fullmatch(r"[A-Z]", word))

_END = re.compile(r"[.!?…]+[\"'”’)\]]*(?=\s+|$)|\n+")


# "friday. five", 'law". bhure', not "U.S. economy"
_LOWER_START = re.compile(r"(?<![\w.])[a-z0-9]+[\"'”’)]*[.!?][\"'”’)]*\s+[\"'“‘]?[a-z]")
_UPPER_START = re.compile(r"[.!?][\"'”’)]*\s+[A-Z]")


def is_lower_cased(text: str) -> bool:
    """Whether a text was lower-cased as a whole, as some archives and corpora are: a lower-case word ends a
    sentence and the next starts lower case, either at least twice and more than twice as often as a
    sentence starts with a capital, or in a text with fewer than 2 capitals per 100 letters. (In cased text
    a full stop before a lower-case word follows an abbreviation: "approx. two", "(D-Calif.) asked".)

    Once is enough where capitals are that rare: in 27 IndiaPoliceEvents documents, 19 of them ending in a
    share line ("... its report. Facebook Twitter Linkedin Mail"), such a full stop ended no sentence, and 4 of
    them got no brief (docs/measurements.md, "Short lower-cased reports")."""
    lower = len(_LOWER_START.findall(text))
    if not lower:
        return False
    if lower >= 2 and lower > 2 * len(_UPPER_START.findall(text)):
        return True
    return sum(c.isupper() for c in text) < 0.02 * sum(c.isalpha() for c in text)


# A wire dateline near the start: "CANBERRA, Australia (AP) — ", "March 11 (Xinhua) -- ", "(CNN) - ".
_DATELINE = r"\((?:[A-Z][A-Za-z.&/ ]{0,24}|[A-Z]{2,10}-[A-Za-z]+)\)\s*(?:--|[—–-])"
DATELINE = re.compile(_DATELINE + r"\s+(?=[\"“‘']?[A-Z0-9])")
# An agency byline in capitals where no dateline follows: "INVENTORY REPORT By GILLIAN WONG Oil prices fell".
_NAME = r"(?:Mc|Mac|O'|De|Di)?[A-Z][A-Z'-]+\.?"
_BYLINE = rf"\bBy (?:{_NAME} ){{0,3}}{_NAME}(?: (?:and|AND) (?:{_NAME} ){{0,3}}{_NAME})?"
BYLINE = re.compile(_BYLINE + r" (?=[A-Z][a-z])")
# A sentence that is all preamble: it ends with a dateline ("... N.J. (AP) —") or a byline ("By TED BRIDIS").
PREAMBLE_END = re.compile(f"(?:{_DATELINE}|{_BYLINE})$")
DATELINE_WITHIN = 400


def _split_dateline(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    """Headline, byline and dateline before a wire dateline's dash (or, without one, before the end of an
    agency byline in capitals) become a sentence of their own, so that the story's first sentence starts
    after them ("By ROD McGUIRK CANBERRA, Australia (AP) — Police fired..."), also where an abbreviation
    before the dateline ended a sentence ("NEW BRUNSWICK, N.J. (AP) —")."""
    m = DATELINE.search(text, 0, DATELINE_WITHIN) or BYLINE.search(text, 0, DATELINE_WITHIN)
    if not m:
        return spans
    out: list[tuple[int, int]] = []
    for s, e in spans:
        if e <= m.start() or s >= m.end():
            out.append((s, e))
            continue
        start = s
        if s >= m.start() and out and not text[out[-1][1]: m.start()].strip():
            start = out.pop()[0]  # "... N.J." + "(AP) — A grand jury ...": the dateline belongs with it
        out.append((start, m.end() - (len(m.group()) - len(m.group().rstrip()))))
        rest = text[m.end(): e]
        if rest.strip():
            out.append((m.end() + len(rest) - len(rest.lstrip()), e))
    return out


# Text whose punctuation was stripped (some corpora, transcripts): "... on May 17 reports Daily Excelsior A
# senior Police officer said ...". A run of more than 60 words with no sentence punctuation is cut before a
# capitalised word that starts sentences and seldom a name, after a word that ends none ("Excelsior", "17").
RUN_ON = 60
"""Words without sentence punctuation beyond which a stretch of text is a run-on, to be cut (``_split_run_ons``)."""
_STARTERS = re.compile(r"(?<=[\w)\]] )(?:He|She|They|It|We|His|Her|Their|Its|The|This|These|In|A|An|According|"
                       r"However|Meanwhile|Earlier|Later|Further|Also|More|Some)\b(?= [\w\"“])")


# not after a word that ends no sentence: "reports The Times"
_NO_END = re.compile(r"\b(?:of|and|the|to|in|on|at|by|from|with|for|a|an|as|reports|reported)\s$")


# South Asian wire reports end their first sentence on the paper's name ("... on February 6 reports The Asian Age
# Injured constables ..."), which a run-on is also cut after: the last word of the capitalised words after
# "reports"/"reported" (up to six, "of" allowed) that ends a paper's name, where a capitalised word or a number
# follows. The words: the last words of the 64 papers' names that SATP's punctuated records cite after "reports"
# ("Dawn", "The Times of India"), of other English-language dailies and of wire agencies.
_PAPER_ENDS = frozenset("""Times Tribune Post Express Excelsior Hindu Dawn News Standard Age Chronicle Herald Telegraph
Observer Star Journal Mail Guardian Monitor Today Sentinel Pioneer Nation Statesman Online Live India
Mirror Independent Republica Page Outlook Kanglaonline PTI ANI IANS UNI NDTV DNA Reuters AFP AP Xinhua BBC
Gazette""".split())
_REPORTS = re.compile(r"\breport(?:s|ed)\s+")
_PUNCTUATED = re.compile(r"[.!?;]\s")  # sentence punctuation inside a stretch: no run-on


def _paper_cuts(piece: str) -> list[int]:
    """Offsets in ``piece`` of the words that follow a paper's name after "reports" (see ``_PAPER_ENDS``)."""
    cuts = []
    for m in _REPORTS.finditer(piece):
        words = [(w.start(), w.group()) for w in itertools.islice(re.finditer(r"\S+", piece[m.end():]), 7)]
        last = None
        for k, (_, word) in enumerate(words[:6]):
            if not (word[:1].isupper() or word == "of"):
                break
            if word in _PAPER_ENDS and k + 1 < len(words) and (words[k + 1][1][:1].isupper()
                                                                 or words[k + 1][1][:1].isdigit()):
                last = k  # the last such word: "The Express Tribune", "The Times of India"
        if last is not None:
            cuts.append(m.end() + words[last + 1][0])
    return cuts


def _split_run_ons(text: str, spans: list[tuple[int, int]]) -> list[tuple[int, int]]:
    out = []
    for s, e in spans:
        piece = text[s:e]
        if len(piece.split()) <= RUN_ON or _PUNCTUATED.search(piece):
            out.append((s, e))
            continue
        cuts = {s, *(s + m.start() for m in _STARTERS.finditer(piece) if not _NO_END.search(piece[:m.start()])),
                *(s + c for c in _paper_cuts(piece))}
        bounds = sorted(cuts) + [e]
        out.extend((a, a + len(text[a:b].rstrip())) for a, b in zip(bounds, bounds[1:]) if text[a:b].strip())
    return out


_BREAK = re.compile(r"[.!?;](?=\s)|\n")


def in_run_on(text: str, start: int, end: int) -> bool:
    """Whether text[start:end] lies in a stretch of more than ``RUN_ON`` words without sentence punctuation or a
    line break, as the pieces ``_split_run_ons`` cuts do (looking 1,000 characters to either side): the tagger
    reads such pieces together, as prose (``tagger.shares_window``)."""
    before, after = text[max(0, start - 1000): start], text[end: end + 1000]
    breaks = [m.end() for m in _BREAK.finditer(before)]
    stop = _BREAK.search(after)
    words = len(before[breaks[-1] if breaks else 0:].split()) + len(text[start:end].split()) \
        + len(after[: stop.start() if stop else None].split())
    return words > RUN_ON


def split_sentences(text: str) -> list[tuple[int, int]]:
    """Sentence spans of clean text; line breaks end sentences (headlines, captions). A full stop before a
    lower-case word ends no sentence ("approx. two"), except in a lower-cased text (``is_lower_cased``).
    A wire dateline's dash near the start ends a sentence (``_split_dateline``); a long run without sentence
    punctuation is cut before words that start sentences (``_split_run_ons``)."""
    lower_cased = is_lower_cased(text)
    spans, start = [], 0
    for m in _END.finditer(text):
        end = m.end()
        if m.group().startswith("."):
            word = re.search(r"([\w.]+)\.$", text[start: m.start() + 1])
            if word and is_abbreviation(word.group(1)):
                continue
            nxt = text[end: end + 3].lstrip()
            if nxt[:1].islower() and not lower_cased:
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
    return _split_run_ons(text, _split_dateline(text, spans))


# ------------------------------------------------------------------------------------- language

_FUNCTION_WORDS = set("""the of and to in a is that for on was with as by at from it he his said were are has have
had be been an this which their they but not who its or after""".split())
ENGLISH_MIN = 0.08
"""Below this share of English function words a text is flagged: the lowest of 7,700 SumLLM, NeuS, MUC-4,
InsightCrime, IndiaPoliceEvents and SATP documents of 30 words or more is 0.13 (median 0.32-0.37); Spanish,
French and German news sentences score 0.00-0.04; in the GLOCON news sample price lists and league
standings score 0.00, weather reports and sports results 0.09-0.15."""


def english_share(text: str) -> float | None:
    """Share of the words of ``text`` that are common English function words ("the", "of", "said"...), or
    None for a text under 30 words, too short to tell."""
    words = re.findall(r"[^\W\d_]+", text.lower())
    if len(words) < 30:
        return None
    return sum(w in _FUNCTION_WORDS for w in words) / len(words)
