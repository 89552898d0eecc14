"""Guards between the briefer and the user: faithfulness of numbers and names, neutrality, provenance.

A brief that invents a casualty figure is worse than no brief, so the guards remove rather than repair:
a sentence with a number or a name the article does not support is dropped and reported; a loaded term
outside a quote is replaced by its neutral wording when the lexicon gives one, else the sentence is dropped.
"""
from __future__ import annotations

import re
from collections import Counter
from dataclasses import dataclass, field
from difflib import SequenceMatcher
from importlib import resources
from pathlib import Path

import yaml

from conflictbrief.inference.briefer import _STOP, content_words, fold
from conflictbrief.inference.clean import TextFileError
from conflictbrief.model.labels import label_role

_UNITS = {w: i for i, w in enumerate("zero one two three four five six seven eight nine ten eleven twelve "
                                     "thirteen fourteen fifteen sixteen seventeen eighteen nineteen".split())}
_TENS = {w: 10 * i for i, w in enumerate("_ _ twenty thirty forty fifty sixty seventy eighty ninety".split()) if i > 1}
_SCALES = {"hundred": 100, "thousand": 1_000, "million": 1_000_000, "billion": 1_000_000_000,
           "trillion": 1_000_000_000_000, "k": 1_000, "m": 1_000_000, "bn": 1_000_000_000}
_WORD_NUMBER = "|".join(sorted([*_UNITS, *_TENS], key=len, reverse=True))
NUMBER_RE = re.compile(
    rf"(?<![\w.])(?P<digits>\d+(?:(?:,|\u202f|\u00a0| )\d{{3}})*(?:\.\d+)?)"
    rf"(?:\s*(?P<scale>hundred|thousand|million|billion|trillion|bn|k|m)\b)?"
    rf"|\b(?P<word>(?:{_WORD_NUMBER})(?:[- ](?:{_WORD_NUMBER}))?)"
    rf"(?:\s+(?P<wscale>hundred|thousand|million|billion))?\b",
    re.I,
)
# Spelled numbers that are idiom far more often than quantity claims.
_IDIOMATIC = {"one", "zero"}


@dataclass(frozen=True)
class NumberMention:
    text: str
    start: int
    end: int
    values: frozenset[float]
    percent: bool = False  # "9%", "nine percent": only an article percentage supports it


_PERCENT_AFTER = re.compile(r"\s*(?:%|per\s?cent\b)", re.I)


def _word_value(word: str) -> float | None:
    total = 0
    for part in re.split(r"[- ]", word.lower()):
        if part in _UNITS:
            total += _UNITS[part]
        elif part in _TENS:
            total += _TENS[part]
        else:
            return None
    return float(total)


def numbers_in(text: str) -> list[NumberMention]:
    """Numeric claims in ``text`` with every value they may denote ("3.5 million" -> 3.5e6 and 3.5)."""
    mentions = []
    for m in NUMBER_RE.finditer(text):
        if m.group("digits"):
            if not m.group("scale") and _ORDINAL_DIGITS.match(text, m.end()):
                continue  # "3rd": an ordinal, read by ordinals_in
            base = float(re.sub(r"[,\u202f\u00a0 ]", "", m.group("digits")))
            scale = m.group("scale")
        else:
            if m.group("word").lower() in _IDIOMATIC and not m.group("wscale"):
                continue
            if not m.group("wscale") and (_FRACTION_AFTER.match(text, m.end()) or
                                          _ORDINAL_AFTER.match(text, m.end())):
                continue  # "two-thirds": a share, read by fractions_in; "twenty-first": an ordinal
            base = _word_value(m.group("word"))
            scale = m.group("wscale")
            if base is None:
                continue
        values = {base}
        if scale:
            values.add(base * _SCALES[scale.lower()])
        percent = bool(_PERCENT_AFTER.match(text, m.end()))
        mentions.append(NumberMention(m.group(), m.start(), m.end(), frozenset(values), percent))
    return mentions


# Quantities without digits ("hundreds of people were killed"): as much a casualty figure as "500", so a
# brief may state one only when the article states the same ("hundreds"), one whose range overlaps it
# ("tens of thousands" supports "thousands"), or a number inside its range ("2,500" supports "thousands";
# "five" does not support "hundreds", nor "hundreds of thousands" "hundreds"). Ranges are [low, high).
VAGUE_RANGES = {
    "half a dozen": (5, 8), "a dozen": (10, 15), "dozens": (20, 200), "scores": (40, 200),
    "a hundred": (90, 150), "hundreds": (200, 1_000), "a thousand": (900, 1_500), "thousands": (2_000, 20_000),
    "tens of thousands": (10_000, 100_000), "hundreds of thousands": (100_000, 1_000_000),
    "a million": (900_000, 1_500_000), "millions": (2_000_000, 1e12), "tens of millions": (1e7, 1e8),
    "hundreds of millions": (1e8, 1e9), "a billion": (9e8, 1.5e9), "billions": (2e9, 1e15),
}
VAGUE_RE = re.compile(
    r"\b(?:(?P<multi>tens|hundreds)\s+of\s+(?P<of>thousands|millions)"
    r"|(?P<half>half\s+a\s+dozen)"
    r"|(?:an?|one)\s+(?P<single>dozen|hundred|thousand|million|billion)(?!\s*(?:and\s+)?\d)"
    r"|(?:several|a\s+few|some|many)\s+(?P<several>dozen|hundred|thousand|million|billion)"
    r"|(?P<plural>dozens|hundreds|thousands|millions|billions)"
    r"|(?P<scores>scores)(?=\s+of\s+(?!the\b|its\b|their\b|his\b|her\b)))\b",  # not "the scores of the match"
    re.I,
)
_PLURAL = {"dozen": "dozens", "hundred": "hundreds", "thousand": "thousands", "million": "millions",
           "billion": "billions"}


def vague_quantities(text: str) -> list[tuple[str, str]]:
    """(the words, their key in ``VAGUE_RANGES``) of each quantity stated without digits in ``text``."""
    found = []
    for m in VAGUE_RE.finditer(text):
        g = {k: (v.lower() if v else v) for k, v in m.groupdict().items()}
        if g["multi"]:
            key = f"{g['multi']} of {g['of']}"
        elif g["half"]:
            key = "half a dozen"
        elif g["single"]:
            if m.group().lower().startswith("one") and g["single"] != "dozen":
                continue  # "one hundred" is a number: numbers_in reads it
            key = f"a {g['single']}"
        elif g["several"]:
            key = _PLURAL[g["several"]]
        else:
            key = g["plural"] or g["scores"]
        found.append((m.group(), key))
    return found


# Shares ("half of the residents fled", "two-thirds of the city"): a brief may state one only when the article
# states the same share, in words or as a percentage within 5 points ("48%" supports "half"). Only a share of
# something counts ("half of", "a third of the", "half the"), not "the second half of 2019" or "half an hour".
_FRACTIONS = {"half": 2, "halves": 2, "third": 3, "thirds": 3, "quarter": 4, "quarters": 4, "fifth": 5,
              "fifths": 5}
FRACTION_RE = re.compile(
    r"(?<!first )(?<!second )(?<!third )(?<!fourth )(?<!last )(?<!final )(?<!other )(?<!latter )"
    r"\b(?:(?P<numerator>an?|one|two|three|four)[\s-]+)?(?P<fraction>half|thirds?|quarters?|fifths?)"
    r"(?=\s+(?:of\b|the\b|its\b|their\b|all\b))",
    re.I,
)
_FRACTION_AFTER = re.compile(r"[\s-]+(?:half|halves|thirds?|quarters?|fifths?)\b", re.I)


def fractions_in(text: str) -> list[tuple[str, float]]:
    """(the words, the share they state, 0-1) of each share of something stated in ``text``."""
    return [(m.group(), share) for m, share in _fraction_matches(text)]


def _fraction_matches(text: str) -> list[tuple[re.Match, float]]:
    found = []
    for m in FRACTION_RE.finditer(text):
        numerator, fraction = (m.group("numerator") or "").lower(), m.group("fraction").lower()
        if fraction == "half" and numerator not in ("", "a", "one") or fraction != "half" and not numerator:
            continue  # "two half ..." is no share; "the third of the attacks" is an ordinal, "quarters" districts
        count = 1 if numerator in ("", "a", "an", "one") else _UNITS[numerator]
        found.append((m, count / _FRACTIONS[fraction]))
    return found


# Ordinals ("the third day of fighting", "the 2nd Armoured Division"): a brief may state one only when the
# article states the same ordinal, as a word or in digits ("third" = "3rd"); digits may also stand for a date
# the article writes without a suffix ("March 3rd" = "March 3"). Plain "first" is idiom more often than a count
# ("at first", "the first time") and is not read; "twenty-first" is.
_ORDINAL_UNITS = {w: i + 1 for i, w in enumerate("first second third fourth fifth sixth seventh eighth ninth tenth "
                                                 "eleventh twelfth thirteenth fourteenth fifteenth sixteenth "
                                                 "seventeenth eighteenth nineteenth".split())}
_ORDINAL_TENS = {"twentieth": 20, "thirtieth": 30, "fortieth": 40, "fiftieth": 50, "sixtieth": 60,
                 "seventieth": 70, "eightieth": 80, "ninetieth": 90, "hundredth": 100}
ORDINAL_RE = re.compile(
    r"\b(?:(?P<digits>\d+)(?:st|nd|rd|th)"
    r"|(?:(?P<tens>twenty|thirty|forty|fifty|sixty|seventy|eighty|ninety)[- ])?"
    rf"(?P<word>{'|'.join(sorted([*_ORDINAL_UNITS, *_ORDINAL_TENS], key=len, reverse=True))}))\b",
    re.I,
)
_ORDINAL_DIGITS = re.compile(r"(?:st|nd|rd|th)\b", re.I)
_ORDINAL_AFTER = re.compile(r"[- ](?:first|second|third|fourth|fifth|sixth|seventh|eighth|ninth)\b", re.I)


def ordinals_in(text: str, shares: list[tuple[re.Match, float]] | None = None) -> list[tuple[str, int, bool]]:
    """(the words, the ordinal, whether written in digits) of each ordinal in ``text``; the shares of
    ``fractions_in`` ("a third of") are not ordinals (``shares``: ``_fraction_matches(text)`` when the caller
    has them already)."""
    shares = [m.span() for m, _ in (_fraction_matches(text) if shares is None else shares)]
    found = []
    for m in ORDINAL_RE.finditer(text):
        if any(s < m.end() and m.start() < e for s, e in shares):
            continue
        if m.group("digits"):
            found.append((m.group(), int(m.group("digits")), True))
            continue
        word, tens = m.group("word").lower(), m.group("tens")
        if word == "first" and not tens:
            continue
        value = _ORDINAL_UNITS.get(word) or _ORDINAL_TENS[word]
        found.append((m.group(), value + (_TENS[tens.lower()] if tens and value < 10 else 0), False))
    return found


def supported_values(article: str) -> set:
    """Every value the article states, plus ``("%", value)`` for each value it states as a percentage,
    ``("~", key)`` for each quantity it states without digits (``vague_quantities``), ``("/", share)`` for
    each share it states (``fractions_in``) and ``("#", n)`` for each ordinal (``ordinals_in``)."""
    mentions, shares = numbers_in(article), _fraction_matches(article)
    ordinals = ordinals_in(article, shares)
    return ({v for m in mentions for v in m.values} | {("%", v) for m in mentions if m.percent for v in m.values}
            | {("~", key) for _, key in vague_quantities(article)}
            | {("/", round(share, 4)) for _, share in shares}
            | {("#", value) for _, value, _ in ordinals}
            | {float(value) for _, value, digits in ordinals if digits})  # "March 25th" supports "March 25"


def _share_supported(share: float, article_values: set) -> bool:
    return any(isinstance(v, tuple) and (v[0] == "/" and abs(v[1] - share) < 0.005
                                         or v[0] == "%" and abs(v[1] - 100 * share) <= 5)
               for v in article_values)


def _vague_supported(key: str, article_values: set) -> bool:
    low, high = VAGUE_RANGES[key]
    for v in article_values:
        if isinstance(v, tuple):
            if v[0] == "~" and (v[1] == key or VAGUE_RANGES[v[1]][0] < high and low < VAGUE_RANGES[v[1]][1]):
                return True
        elif low <= v < high:
            return True
    return False


def unsupported_numbers(sentence: str, article_values: set) -> list[str]:
    """Numbers in ``sentence`` that denote no value the article states ("120 000" = "120,000"); a percentage
    needs the same percentage in the article ("nine%" is not supported by "nine-year"); a quantity without
    digits ("hundreds", "dozens of") needs the same one, an overlapping one or a number in its range; a share
    ("half of", "two-thirds of") needs the same share or a percentage within 5 points; an ordinal ("third",
    "3rd") the same ordinal (``ordinals_in``)."""
    bad = []
    for m in numbers_in(sentence):
        ok = any(("%", v) in article_values for v in m.values) if m.percent else bool(m.values & article_values)
        if not ok:
            bad.append(m.text + ("%" if m.percent and not m.text.endswith("%") else ""))
    bad += [words for words, key in vague_quantities(sentence) if not _vague_supported(key, article_values)]
    shares = _fraction_matches(sentence)
    bad += [m.group() for m, share in shares if not _share_supported(share, article_values)]
    bad += [words for words, value, digits in ordinals_in(sentence, shares)
            if ("#", value) not in article_values and not (digits and value in article_values)]
    return bad


_MONTHS = "january february march april may june july august september october november december".split()
_WEEKDAYS = "monday tuesday wednesday thursday friday saturday sunday".split()
_CALENDAR_RE = re.compile(r"\b(" + "|".join(_MONTHS + _WEEKDAYS) + r")\b", re.I)
# Abbreviations an article may date with ("Jan. 15", "Sept 3", "Tue."), read only before a dot or a number.
_ABBREVIATED = re.compile(r"\b(Jan|Feb|Mar|Apr|Jun|Jul|Aug|Sep|Sept|Oct|Nov|Dec|Mon|Tue|Tues|Wed|Thu|Thur|Thurs|Fri|Sat"
                          r"|Sun)(?:\.|\s*\d)")
# "may" and "march" are verbs too: a month only next to a number or after a preposition ("in May", "May 5").
_MONTH_CONTEXT = re.compile(r"(?:\b(?:in|since|until|till|by|from|to|through|last|next|early|late|mid|of|and)"
                            r"[\s-]+$|\d[\s,.]*$)", re.I)


# Days and periods named relative to the report ("yesterday", "last week"): as much a date as "Monday".
_RELATIVE_RE = re.compile(r"\b(?:yesterday|today|tonight|tomorrow"
                          r"|(?:last|next|this)\s+(?:week|weekend|month|year|night|morning|afternoon|evening))\b",
                          re.I)


def calendar_words(text: str) -> list[tuple[str, str]]:
    """(the words, the month, weekday or relative day they name, lower case) of each month and weekday name and
    each day or period named relative to the report ("yesterday", "last week") in ``text``."""
    found = [(m.group(), re.sub(r"\s+", " ", m.group().lower())) for m in _RELATIVE_RE.finditer(text)]
    for m in _CALENDAR_RE.finditer(text):
        name = m.group().lower()
        if name in ("may", "march") and not (_MONTH_CONTEXT.search(text[max(0, m.start() - 12): m.start()])
                                             or re.match(r"[\s,]*\d", text[m.end(): m.end() + 4])):
            continue
        found.append((m.group(), name))
    return found


def article_calendar(article: str) -> set[str]:
    """The months and weekdays an article names, written out or abbreviated ("Jan. 15", "Tue."), and the days
    and periods it names relative to the report ("yesterday", "last week")."""
    names = {name for _, name in calendar_words(article)}
    for abbreviation in _ABBREVIATED.findall(article):
        names |= {full for full in _MONTHS + _WEEKDAYS if full.startswith(abbreviation.lower())}
    return names


def unsupported_dates(sentence: str, article_names: set[str]) -> list[str]:
    """Month and weekday names and relative days ("yesterday", "last week") in ``sentence`` that the article does
    not name (see ``article_calendar``): an attack moved to another day is as false as a changed casualty
    figure."""
    return [word for word, name in calendar_words(sentence) if name not in article_names]


_ALNUM = re.compile(r"[^0-9a-z]+")


def name_supported(name: str, article_folded: str, article_words: set[str], threshold: float = 0.8) -> bool:
    """Whether a name occurs in the article, allowing transliteration variants of words of five letters or
    more ("Maarat al-Numan" ~ "Maaret al-Nouman"); shorter words must match exactly ("Homs" is not "homes")."""
    key = _ALNUM.sub("", fold(name))
    if not key or key in article_folded:
        return True
    for word in re.findall(r"\w+", fold(name)):
        if len(word) < 3 or word in article_words or word.isdigit():
            continue
        if len(word) < 5 or not any(SequenceMatcher(None, word, w).ratio() >= threshold for w in article_words
                                    if abs(len(w) - len(word)) <= 2):
            return False
    return True


class LexiconError(ValueError):
    """A loaded-term lexicon that cannot be used (names the file and the problem)."""


@dataclass(frozen=True)
class Lexicon:
    terms: dict[str, dict]

    @classmethod
    def load(cls, path: str | Path | None = None) -> "Lexicon":
        name = str(path or "neutrality.yaml")
        try:
            if path is None:
                text = resources.files("conflictbrief.configs").joinpath("neutrality.yaml").read_text("utf-8")
            else:
                from conflictbrief.inference.clean import read_utf8

                text = read_utf8(path)
            data = yaml.safe_load(text) or {}
        except TextFileError as e:  # no such file; not UTF-8, with line and column
            raise LexiconError(f"{e.where}: cannot read the lexicon: {e.problem}") from None
        except (OSError, yaml.YAMLError) as e:
            raise LexiconError(f"{name}: cannot read the lexicon: {e}") from None
        terms = data.get("terms") if isinstance(data, dict) else None
        if not isinstance(terms, dict):
            raise LexiconError(f"{name}: 'terms' must map each term to {{why, neutral, omit}}")
        entries = {str(k).lower(): (v or {}) for k, v in terms.items()}
        for term, entry in entries.items():
            if not isinstance(entry, dict) or entry.get("omit", False) not in (True, False, "always") \
                    or not isinstance(entry.get("neutral") or "", str):
                raise LexiconError(f"{name}: term {term!r}: expected {{why, neutral: text or null, omit: true, "
                                   f"false or 'always'}}, got {entry!r}")
        return cls(entries)

    def pattern(self) -> re.Pattern:
        words = sorted(self.terms, key=len, reverse=True)
        return re.compile(r"(?<![\w-])(" + "|".join(re.escape(w) for w in words) + r")(?![\w-])", re.I)


# A single quotation mark opens where no letter precedes it and closes where no letter follows it, so the
# apostrophes of "don't", "Assad's" and "It’s" are neither; a plural possessive ("rebels' positions") can
# close a quote early, which only shortens the quoted span.
_SINGLE_QUOTED = re.compile(r"(?<![\w'’])['‘](?=[\w\"“])[^\n]*?(?<=[\w.,!?;:\"”])['’](?![\w'’])")


def quoted_spans(text: str) -> list[tuple[int, int]]:
    """Character spans of quotations: "…", “…”, and '…' or ‘…’ (British and Daily Mail style quoting)."""
    double = [(m.start(), m.end()) for m in re.finditer(r"\"[^\"]*\"|“[^”]*”", text)]
    single = [(m.start(), m.end()) for m in _SINGLE_QUOTED.finditer(text)
              if not any(s <= m.start() < e for s, e in double)]
    return sorted(double + single)


def loaded_terms(text: str, lexicon: Lexicon) -> list[tuple[str, int, int]]:
    """Loaded terms outside quotation marks (a quoted, attributed use is reporting, not judging)."""
    quotes = quoted_spans(text)
    return [(m.group(), m.start(), m.end()) for m in lexicon.pattern().finditer(text)
            if not any(s <= m.start() < e for s, e in quotes)]


# Words after which an adjective qualifies the noun that follows it, so that leaving it out keeps the
# sentence grammatical: determiners, possessives and prepositions (a possessive "'s" is handled apart).
_BEFORE_QUALIFIER = set("""a an the this that these those another any some every each no such his her its their
our my your whose of in on at by with for from into after before during against over amid following about
despite under through to""".split())
_AFTER_QUALIFIER_NOT = {"and", "or", "but", "than", "as", "to", "that", "enough"}
_AN_EXCEPTIONS = ("uni", "use", "usu", "eu", "one", "once")


def omit_qualifier(sentence: str, start: int, end: int, anywhere: bool = False) -> str | None:
    """``sentence`` without the qualifier at [start, end) where it stands before the word it qualifies, with
    "a"/"an" agreeing with the new next word and a sentence-initial capital moved on; None where leaving it
    out would break the sentence. ``anywhere``: whatever word comes before it ("so-called")."""
    before = sentence[:start].rstrip()
    after = sentence[end:].lstrip()
    prev = re.search(r"([\w'’]+)\W*$", before)
    nxt = re.match(r"(['‘\"“]?)([A-Za-z][\w'’-]*)", after)  # the next word, maybe opening a quote
    if not nxt or nxt.group(2).lower() in _AFTER_QUALIFIER_NOT:
        return None
    if before:  # the word just before it (no punctuation between) must be one a qualifier may follow
        word = prev.group(1) if prev and prev.end(1) == len(before) else ""
        possessive = re.search(r"\w['’]s?$", word) is not None
        if not (anywhere and word or possessive or word.lower() in _BEFORE_QUALIFIER or word.isdigit()):
            return None
    next_word = nxt.group(2)
    if not before:
        i = nxt.start(2)
        return after[:i] + after[i].upper() + after[i + 1:]
    if prev and prev.group(1).lower() in ("a", "an"):
        article = "an" if next_word[0].lower() in "aeiou" and not next_word.lower().startswith(_AN_EXCEPTIONS) \
            or next_word.lower().startswith(("hour", "honest", "honour", "heir")) else "a"
        article = article.capitalize() if prev.group(1)[0].isupper() else article
        before = before[: prev.start(1)] + article + before[prev.end(1):]
    return before + " " + after


def provenance(sentence: str, sources: list[str], most: int = 3) -> list[int]:
    """Indices of the source sentences that cover the brief sentence's content words, best first."""
    want = set(content_words(sentence))
    if not want:
        return []
    source_words = [set(content_words(s)) for s in sources]
    chosen, covered = [], set()
    while len(chosen) < most:
        gains = [(len((want - covered) & sw), -i) for i, sw in enumerate(source_words) if i not in chosen]
        if not gains:
            break
        gain, neg_i = max(gains)
        if gain == 0 or (chosen and gain < 0.2 * len(want)):
            break
        chosen.append(-neg_i)
        covered |= source_words[-neg_i]
    return chosen


# "the daughter of the daughter", "the disease of the disease": a noun "of" itself, an undertrained briefer's
# filler that no written summary has (README: measured on reference summaries).
_SELF_OF = re.compile(r"\b(\w+) of (?:the |a |an |its |his |her |their )?\1\b")
_STOP_WORDS = set("the a an of to in on".split())
# A sentence that ends on an initial ("reported by the U.") was cut off where the model stopped ("World War I."
# was not).
_CUT_OFF = re.compile(r"(?:^|\s)(?!I\.)[A-Za-z]\.\W*$")
# Quotation marks: a quotation in a brief must be the article's words, as a number must be its number.
_QUOTE_MARKS = re.compile(r"[\"“”]")


def spaced_words(text: str) -> str:
    """The folded words of ``text`` joined by single spaces, with a space at each end: a phrase is in a text
    when its ``spaced_words`` are in the text's (whole words, whatever the punctuation and spacing)."""
    return " " + " ".join(re.findall(r"\w+", fold(text))) + " "


def quotation_problems(sentence: str, article_spaced: str) -> tuple[str, list[str]] | None:
    """(reason, items) when a brief sentence quotes words that are not words of the article in that order
    (``article_spaced``: its ``spaced_words``), or its quotation marks enclose nothing or only function words
    ('he said "no-" "' from an undertrained briefer); None when it has no such problem.

    A quotation may run over sentences, so an unpaired mark is read both ways, as closing a quotation that
    began before the sentence or as opening one that ends after it, and the reading that finds more of the
    quoted words in the article is judged."""
    pieces = _QUOTE_MARKS.split(sentence)
    if len(pieces) == 1:
        return None
    readings = [range(1, len(pieces), 2)] if len(pieces) % 2 else [range(0, len(pieces), 2), range(1, len(pieces), 2)]
    best = None
    for reading in readings:
        quoted = [(i, pieces[i]) for i in reading]
        if any(not q.strip() and i in (0, len(pieces) - 1) for i, q in quoted):
            continue  # a mark at the very start cannot close a quotation, nor one at the very end open one
        empty = [q for i, q in quoted if not _said(q) and 0 < i < len(pieces) - 1]
        if empty:
            found = ("broken_quote", [f'"{q}"' for q in empty])
        else:
            invented = [q.strip() for i, q in quoted if _said(q) and spaced_words(q) not in article_spaced]
            found = ("unsupported_quote", invented) if invented else None
        if found is None:
            return None
        if best is None or sum(map(len, found[1])) < sum(map(len, best[1])):
            best = found
    return best or ("broken_quote", [sentence.strip()[:80]])


def _said(quoted: str) -> list[str]:
    """The words of a quotation that are not function words ("no", "not" and "the" alone say nothing)."""
    return [w for w in re.findall(r"\w+", fold(quoted)) if w not in _STOP]


@dataclass
class GuardReport:
    removed: list[dict] = field(default_factory=list)
    substituted: list[dict] = field(default_factory=list)
    loaded_terms_source: list[str] = field(default_factory=list)
    loaded_terms_brief: list[str] = field(default_factory=list)


NUMERIC_LABELS = {"Temporal", "Quantity", "Money"}


class Guard:
    """Checks brief sentences against the article. ``tagger`` (optional) finds names in the brief."""

    def __init__(self, lexicon: Lexicon | None = None, tagger=None, name_labels=None, min_support: float = 0.6,
                 max_repetition: float = 0.15):
        self.lexicon = lexicon or Lexicon.load()
        self.min_support = min_support  # share of a sentence's content words the article must contain
        # Repeated content words per content word above which a sentence counts as degenerate. Calibrated on
        # validation data (README): written summaries almost never exceed it; word salad usually does.
        self.max_repetition = max_repetition
        self._pattern = self.lexicon.pattern()
        self.tagger = tagger
        # Names are the tagger's labels but the numeric ones (the number check covers those; "DATE" and
        # "CARDINAL" count as such, see label_role): re3d's seven, or the labels of a tagger trained on its own
        # (whose names would otherwise go unchecked).
        labels = getattr(tagger, "labels", None) or ("Person", "Location", "Organisation", "Nationality",
                                                     "MilitaryPlatform", "Weapon", "DocumentReference")
        self.name_labels = set(name_labels or {label for label in labels if label_role(label) not in NUMERIC_LABELS})

    def names(self, sentences: list[str]) -> list[list[str]]:
        if self.tagger is not None:
            return [[e.text for e in ents if e.label in self.name_labels] for ents in self.tagger.tag(sentences)]
        # Without a tagger: capitalised words after the first (the briefer copies article casing).
        return [re.findall(r"(?<=\s)[A-Z][\w'-]+(?:\s+[A-Z][\w'-]+)*", s) for s in sentences]

    def repetition(self, sentence: str, content: list[str]) -> list[str]:
        """The words that make a sentence degenerate, or []: a stutter ("the united united kingdom", "in prison
        in prison", "the daughter of the daughter"), or more repeated content words than ``max_repetition``
        allows ("the child is the child, who had been treated in the girl's years" from an undertrained briefer;
        "the army said the army said")."""
        own = re.findall(r"\w+", fold(sentence))
        stutter = [a for a, b in zip(own, own[1:]) if a == b and not a.isdigit()]
        stutter += [" ".join(own[i: i + n]) for n in (2, 3) for i in range(len(own) - 2 * n + 1)
                    if own[i: i + n] == own[i + n: i + 2 * n] and not all(w.isdigit() for w in own[i: i + n])]
        stutter += [m.group(1) for m in _SELF_OF.finditer(fold(sentence)) if m.group(1) not in _STOP_WORDS]
        counts = Counter(content)
        if stutter or sum(c - 1 for c in counts.values()) > self.max_repetition * len(content):
            return stutter or [w for w, c in counts.items() if c > 1]
        return []

    def neutralise(self, sentence: str, report: GuardReport) -> str | None:
        """The sentence with loaded terms replaced or omitted, or None when a term has neither remedy here.

        A term with a ``neutral`` wording is replaced, keeping a capital initial ("Regime forces" ->
        "Government forces"). A term marked ``omit: true`` (a qualifier: "brutal") is left out where it
        qualifies the next word ("in a brutal attack" -> "in an attack"); used otherwise ("the attack was
        brutal", "a long, brutal war") it drops the sentence like a term with no neutral wording. ``omit:
        always`` ("so-called") leaves it out after any word."""
        for term, start, end in reversed(loaded_terms(sentence, self.lexicon)):
            entry = self.lexicon.terms.get(term.lower(), {})
            neutral = entry.get("neutral")
            if neutral:
                neutral = neutral[:1].upper() + neutral[1:] if term[:1].isupper() else neutral
                report.substituted.append({"term": term, "neutral": neutral})
                sentence = sentence[:start] + neutral + sentence[end:]
                continue
            omitted = omit_qualifier(sentence, start, end, anywhere=entry.get("omit") == "always") \
                if entry.get("omit") else None
            if omitted is None:
                report.removed.append({"sentence": sentence, "reason": "loaded_term", "items": [term]})
                return None
            report.substituted.append({"term": term, "neutral": ""})
            sentence = omitted
        return sentence

    def check(self, brief_sentences: list[str], article: str,
              names: list[list[str]] | None = None) -> tuple[list[str], GuardReport]:
        """Keep the sentences whose numbers, names and content words the article supports, neutralised.

        ``names``: the names in each sentence when the caller already tagged them (one batched tagger pass
        for many briefs); found with the tagger here otherwise."""
        report = GuardReport(loaded_terms_source=[t for t, _, _ in loaded_terms(article, self.lexicon)])
        values, calendar = supported_values(article), article_calendar(article)
        folded = _ALNUM.sub("", fold(article))
        words, spaced = set(re.findall(r"\w+", fold(article))), spaced_words(article)
        kept = []
        if names is None:
            names = self.names(brief_sentences)
        for sentence, found in zip(brief_sentences, names):
            bad_numbers = unsupported_numbers(sentence, values)
            if bad_numbers:
                report.removed.append({"sentence": sentence, "reason": "unsupported_number", "items": bad_numbers})
                continue
            bad_dates = unsupported_dates(sentence, calendar)
            if bad_dates:
                report.removed.append({"sentence": sentence, "reason": "unsupported_date", "items": bad_dates})
                continue
            if _CUT_OFF.search(sentence):
                report.removed.append({"sentence": sentence, "reason": "cut_off", "items": [sentence.split()[-1]]})
                continue
            quote = quotation_problems(sentence, spaced)
            if quote:
                report.removed.append({"sentence": sentence, "reason": quote[0], "items": quote[1]})
                continue
            bad_names = [n for n in found if not name_supported(n, folded, words)]
            if bad_names:
                report.removed.append({"sentence": sentence, "reason": "unsupported_name", "items": bad_names})
                continue
            neutral = self.neutralise(sentence, report)
            if neutral is None:
                continue
            content = content_words(sentence)
            missing = [w for w in content if w not in words]
            if not content or len(missing) > (1 - self.min_support) * len(content):
                report.removed.append({"sentence": sentence, "reason": "unsupported_content", "items": missing[:10]})
                continue
            repeated = self.repetition(sentence, content)
            if repeated:
                report.removed.append({"sentence": sentence, "reason": "repetitive", "items": repeated[:10]})
                continue
            kept.append(neutral)
        report.loaded_terms_brief = [t for s in kept for t, _, _ in loaded_terms(s, self.lexicon)]
        return kept, report
