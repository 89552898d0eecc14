"""Brief sentences of an article written in capitals ("THE NATIONAL POLICE REPORTED TODAY THAT OVER 15,000
PEOPLE...", as in wire archives such as MUC-4) are put in sentence case, with capitals kept on names.

The capitals of such an article carry no information, so the names come from the tagger: a Person,
Location or Nationality mention (or PER, GPE, NORP ... of a tagger with its own labels: ``label_role``) is
capitalised word by word, an Organisation mention too unless its last
word is a generic group noun ("the authorities", "the armed forces", "journalists"; ``GENERIC``). Acronyms
stay in capitals: a word without a vowel ("FMLN", "DPRK") or in brackets ("(DIJIN)"). Months, weekdays and
"I" are capitalised, and so is each sentence start. What this cannot know, it leaves in lower case: a name
the tagger missed comes out as "shining path".
"""
from __future__ import annotations

import re

from conflictbrief.inference.tagger import BARE_WORDS
from conflictbrief.model.labels import label_role

NAME_LABELS = ("Person", "Location", "Nationality", "Organisation")
GENERIC = set("""people authorities members journalists nation country forces force troops soldiers residents
civilians officials rebels guerrillas guerrilla terrorists militants insurgents fighters police army military
government community population public crowd students workers peasants family families group groups leaders
sources callers security system sector side parties party unit units commandos gunmen men women children
individuals persons elements criminals agents personnel staff team assassins""".split())
PLACE_NOUNS = set("""border borders area areas city town village villages outskirts region zone post house home homes
street road highway building headquarters neighbourhood neighborhood district camp base side centre center
temples""".split())
_SMALL = {"of", "the", "de", "del", "la", "las", "los", "y", "and", "for", "on", "in", "at", "to", "a", "an", "da",
          "do", "dos", "das", "e", "van", "von", "der"}
_PARTICLES = {"al", "el", "ad", "ar", "as", "ash", "an", "ibn", "bin"}
_TITLES = {"dr", "mr", "mrs", "ms", "st", "lt", "sgt", "gen", "col", "capt", "maj", "jr", "sr", "ft"}
_ALWAYS = set("""january february march april may june july august september october november december monday
tuesday wednesday thursday friday saturday sunday""".split())
_VERBS = {"may", "march"}  # a month only next to a number: "MAY 1989", "26 MARCH", not "THEY MAY MARCH"
_COUNTRY_CODES = {"us", "uk", "un", "eu", "usa", "uae"}
_WORD = re.compile(r"[^\W\d_]+(?:['’][^\W\d_]+)?")


def is_upper_cased(text: str) -> bool:
    """Whether a text is written in capitals: at least 20 letters and over 90% of them capitals."""
    letters = [c for c in text if c.isalpha()]
    return len(letters) >= 20 and sum(c.isupper() for c in letters) > 0.9 * len(letters)


def _dated(text: str, start: int, end: int) -> bool:
    return bool(re.search(r"\d[\s,.]*$", text[max(0, start - 6): start]) or re.match(r"[\s,.]*\d", text[end: end + 4]))


def _lower(text: str) -> str:
    return "".join(c.lower() if len(c.lower()) == 1 else c for c in text)  # same length: offsets hold


def _upper(char: str) -> str:
    return char.upper() if len(char.upper()) == 1 else char  # "ß" stays, not "SS"


def _acronym(word: str, text: str = "", start: int = 0, end: int = 0) -> bool:
    """A word to keep in capitals: no vowel ("FMLN"), or in brackets at [start, end) of ``text``."""
    if word.lower() in _TITLES:
        return False
    bracketed = text[start - 1: start] == "(" and text[end: end + 1] == ")"
    return len(word) >= 2 and (bracketed or not re.search(r"[AEIOUY]", word.upper()))


def bracketed_acronyms(article: str) -> set[str]:
    """Words an article introduces in brackets, "(DIJIN)": acronyms wherever they appear in it."""
    return {m.group(1) for m in re.finditer(r"\(([^\W\d_]{2,6})\)", article)}


def name_words(entities, text: str) -> set[str]:
    """Words of the article's Person, Location and Nationality names of 3 letters or more, lower case:
    "NICARAGUAN" is capitalised in a sentence where the tagger did not find it when it found it elsewhere in
    the article."""
    words = set()
    for start, end in _names([e for e in entities if label_role(e.label) != "Organisation"], text):
        words |= {w.lower() for w in _WORD.findall(text[start:end]) if len(w) >= 3}
    return words - _SMALL - BARE_WORDS - GENERIC - PLACE_NOUNS


def _names(entities, text: str) -> list[tuple[int, int]]:
    names = []
    for e in entities:
        role = label_role(e.label)
        if role not in NAME_LABELS:
            continue
        words = _WORD.findall(text[e.start: e.end])
        if role == "Organisation" and words and words[-1].lower() in GENERIC \
                and not any(_acronym(w) for w in words):
            continue
        names.append((e.start, e.end))
    return names


def recase(text: str, entities, acronyms: set[str] = frozenset(), known: set[str] = frozenset(),
           vocabulary=None) -> str:
    """Sentence case for ``text`` (in capitals) keeping capitals on the names in ``entities`` (objects with
    ``label``, ``start``, ``end`` into ``text``, as the tagger gives them), on ``acronyms`` (see
    ``bracketed_acronyms``) and on the words in ``known`` (see ``name_words``). With ``vocabulary`` (the
    tokenizer's whole-word pieces), a word of 2-4 letters in an Organisation name that is not in it stays in
    capitals too ("ELN", "IFA"; "PACE" and "ARMY" are words). Inside a name, a place noun
    ("border", "outskirts") is capitalised only after a capitalised word ("Lima Residential District", but
    "the outskirts of Bogota"). The result has ``text``'s length."""
    names = _names(entities, text)
    organisations = [(e.start, e.end) for e in entities if label_role(e.label) == "Organisation"]
    out = list(_lower(text))
    previous_capital = False
    for m in _WORD.finditer(text):
        word, start, end = m.group(), m.start(), m.end()
        low = word.lower()
        inside = any(s <= start and end <= e for s, e in names)
        first_in_name = any(s == start or not _WORD.search(text[s:start]) for s, e in names if s <= start < e)
        after_capital, previous_capital = previous_capital and inside, False
        if low in PLACE_NOUNS and not after_capital:
            continue
        if low in _COUNTRY_CODES and any(e.start <= start and end <= e.end for e in entities):
            out[start:end] = list(word)  # "US" in "US GOVERNMENT", not the pronoun
            continue
        if low in BARE_WORDS and low != "i":  # "HE", "THEIR TWO": the tagger's pronouns are no names
            continue
        unknown = vocabulary is not None and 2 <= len(word) <= 4 and low not in vocabulary and low not in _SMALL \
            and any(s <= start and end <= e for s, e in organisations)
        if word in acronyms or unknown or _acronym(word, text, start, end) and (inside or low not in _SMALL):
            out[start:end] = list(word)
            previous_capital = True
        elif low in _ALWAYS and (low not in _VERBS or _dated(text, start, end)) or low == "i" \
                or inside and (low not in _SMALL or first_in_name and low != "the") \
                or re.split(r"['’]", low)[0] in known:
            hyphen_particle = low in _PARTICLES and text[end: end + 1] in "-‐"
            if not hyphen_particle:
                out[start] = _upper(word[0])
                previous_capital = True
    recased = "".join(out)
    # Sentence starts: the first letter of the text and of each sentence after it.
    return re.sub(r"(^[\"'“‘(]*|[.!?][\"'”’)]*\s+[\"'“‘(]*)([^\W\d_])",
                  lambda m: m.group(1) + _upper(m.group(2)), recased)
