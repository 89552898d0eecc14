"""Tagging words with a token classifier: windows of whole sentences over long texts, whole-word entities with
scores.

The text is split into words the way BERT's basic tokenizer splits it (runs of word characters or single
punctuation marks). Each word is labeled by its first subword. Windows hold whole sentences
(``sentence_windows``): consecutive sentences share one up to the budget, and a line that does not end in
sentence punctuation and holds a digit (a table row, a dateline) has one of its own (``shares_window``). A
sentence longer than the window is covered by overlapping windows and every word takes its prediction from the
window where it sits furthest from an edge, so nothing is truncated.
"""
from __future__ import annotations

import re
import unicodedata
from dataclasses import dataclass

import numpy as np
import torch

from conflictbrief.inference.clean import in_run_on, split_sentences
from conflictbrief.inference.heap import release_free_memory
from conflictbrief.model.labels import OUTSIDE, split_tag
from conflictbrief.model.loading import position_limit
from conflictbrief.training.readers import words_with_offsets


@dataclass(frozen=True)
class Window:
    """One model input: word ``start``..``end`` of a text, their subword ids and each word's first subword."""

    text_index: int
    start: int
    end: int
    input_ids: list[int]
    first_subword: list[int]  # position in input_ids (after [CLS]) of each word start..end-1
    token_types: list[int] | None = None  # the case feature of each input id (see case_types)


def case_types(words: list[str]) -> list[int]:
    """1 for a word that begins with a capital letter, else 0.

    The offline base is uncased, so the tokenizer throws capitals away: "Army" and "army" become one input.
    A tagger trained with ``case_feature`` gets this bit back through BERT's token-type embeddings (two rows,
    so the architecture and every loader stay as they are). A text whose capitals say nothing (ALL CAPS, Title
    Case: more than 60% of its 4+ words capitalised) gets all zeros, the input the model also learns from
    lower-case text and from case dropout in training."""
    bits = [1 if w[:1].isupper() else 0 for w in words]
    alpha = [b for w, b in zip(words, bits) if w[:1].isalpha()]
    if len(alpha) >= 4 and sum(alpha) > 0.6 * len(alpha):
        return [0] * len(words)
    return bits


def uses_case_feature(model) -> bool:
    return bool(getattr(model.config, "case_feature", False))


def subwords_per_word(tokenizer, words: list[str]) -> list[list[int]]:
    if not words:
        return []
    enc = tokenizer(words, is_split_into_words=True, add_special_tokens=False, verbose=False)
    pieces: list[list[int]] = [[] for _ in words]
    for tok, w in zip(enc["input_ids"], enc.word_ids()):
        if w is not None:
            pieces[w].append(tok)
    unk = tokenizer.unk_token_id
    return [p or [unk] for p in pieces]  # a word the tokenizer drops (control chars) still gets a slot


def word_windows(counts: list[int], budget: int, stride: int) -> list[tuple[int, int]]:
    """Cover words 0..n with windows of at most ``budget`` subwords overlapping by about ``stride``.

    A single word longer than the budget gets a window of its own (truncated to its first subwords) rather
    than being dropped.
    """
    n, windows, start = len(counts), [], 0
    while start < n:
        end, used = start, 0
        while end < n and (used + counts[end] <= budget or end == start):
            used += counts[end]
            end += 1
        windows.append((start, end))
        if end >= n:
            break
        back, overlap = end, 0
        while back - 1 > start and overlap + counts[back - 1] <= stride:
            back -= 1
            overlap += counts[back]
        start = back
    return windows


Segment = tuple[int, int, bool]
"""Words start..end of a text that make one sentence, and whether it may share a window (``shares_window``)."""

_SENTENCE_END = re.compile(r"[.!?\u2026][\"'\u201d\u2019)\]]*$")
_DIGIT = re.compile(r"\d")


def shares_window(text: str, start: int, end: int) -> bool:
    """Whether the sentence text[start:end] may share a tagger window with its neighbours: unless it is a line
    that does not end in sentence punctuation and holds a digit (a table row, a score line, a dateline). A
    piece of a run-on, more than 60 words without sentence punctuation that ``clean.split_sentences`` cut ("... on
    February 6 reports The Asian Age" | "Injured constables ..."), shares: it is prose that lost its full stops,
    and until 2026-12-07 each such piece with a date in it was read alone.

    On CoNLL-2003 test documents read as text (benchmarks/conll_documents.py) such rows, packed together, cost
    the model 10 F1 points on the 75 documents that are mostly tables. Every line without end punctuation alone
    did a little better there (0.877 against 0.845) and a little worse on the 156 prose documents (0.652
    against 0.654), and it left a line holding one name, a page's tag link ("Idlib"), without the article
    around it, which is where the tagger goes wrong (docs/measurements.md, "Short texts")."""
    return bool(_SENTENCE_END.search(text[max(start, end - 16):end])) or not _DIGIT.search(text, start, end) \
        or in_run_on(text, start, end)


def sentence_segments(text: str, offsets: list[tuple[int, int]]) -> list[Segment]:
    """The sentences of ``text`` (``clean.split_sentences``: line breaks end sentences too) as runs of its
    words, given each word's (start, end) character offsets in order, each with ``shares_window``. Every word is
    in one segment."""
    spans = split_sentences(text)
    segments: list[Segment] = []
    k = first = 0
    for i, (start, _) in enumerate(offsets):
        sentence = k
        while k + 1 < len(spans) and spans[k + 1][0] <= start:
            k += 1
        if i and k != sentence:  # word i begins a later sentence than word i - 1's
            segments.append((first, i, shares_window(text, offsets[first][0], offsets[i - 1][1])))
            first = i
    if offsets:
        segments.append((first, len(offsets), shares_window(text, offsets[first][0], offsets[-1][1])))
    return segments


def words_text(words: list[str]) -> tuple[str, list[tuple[int, int]]]:
    """Pre-split words as one text (joined by spaces) and their offsets in it."""
    offsets, at = [], 0
    for w in words:
        offsets.append((at, at + len(w)))
        at += len(w) + 1
    return " ".join(words), offsets


def word_list_segments(words: list[str], pieces: list[list[int]], budget: int) -> list[Segment] | None:
    """Sentences of pre-split words for windows of whole sentences, found in the words joined by spaces; None
    (one window, as before 2026-12-07) for words that fit ``budget`` subwords, as every sentence of an
    evaluation or training file does: words carry no line breaks, and tokenised text such as "Maj . Gen ."
    would be cut inside a sentence."""
    return sentence_segments(*words_text(words)) if sum(map(len, pieces)) > budget else None


def sentence_windows(counts: list[int], segments: list[Segment], budget: int, stride: int) -> list[tuple[int, int]]:
    """Windows of whole sentences: consecutive ``segments`` that may share a window (``shares_window``) do so
    while their subwords (``counts``) fit the ``budget``; one that may not (a table row) has a window of its
    own; one longer than the budget gets overlapping windows of its own (``word_windows``).

    The models are trained on single sentences. On CoNLL-2003 test joined into its 231 documents as text, the
    shipped tagger scores 0.703 F1 with 256-subword windows sliding over each document, 0.732 with these
    (0.735 sentence by sentence): table rows in one window mislead it (docs/measurements.md, "Windows")."""
    windows: list[tuple[int, int]] = []
    start = end = used = 0
    packable = False
    for first, last, shares in segments:
        n = sum(counts[first:last])
        if n > budget:
            if end > start:
                windows.append((start, end))
            windows += [(first + a, first + b) for a, b in word_windows(counts[first:last], budget, stride)]
            start = end = last
            packable = False
            continue
        if end > start and packable and shares and used + n <= budget:
            end, used = last, used + n
            continue
        if end > start:
            windows.append((start, end))
        start, end, used, packable = first, last, n, shares
    if end > start:
        windows.append((start, end))
    return windows


def encode_words(tokenizer, words: list[str], max_length: int, stride: int, text_index: int = 0,
                 pieces: list[list[int]] | None = None, case: bool = False,
                 drop_case: bool = False, segments: list[Segment] | None = None,
                 by_sentence: bool = False) -> list[Window]:
    """Windows of whole words; with ``case``, token types carry each word's case bit (all 0 if ``drop_case``).
    With ``segments`` (the words' sentences) the windows hold whole sentences (``sentence_windows``); with
    ``by_sentence``, words that do not fit one window are cut between the sentences found in them
    (``word_list_segments``); else the windows slide over the words (``word_windows``)."""
    budget = max_length - 2
    pieces = subwords_per_word(tokenizer, words) if pieces is None else pieces
    cases = ([0] * len(words) if drop_case else case_types(words)) if case else None
    if segments is None and by_sentence:
        segments = word_list_segments(words, pieces, budget)
    counts = [len(p) for p in pieces]
    windows = []
    spans = sentence_windows(counts, segments, budget, stride) if segments is not None \
        else word_windows(counts, budget, stride)
    for start, end in spans:
        ids, firsts, types = [tokenizer.cls_token_id], [], [0]
        for w in range(start, end):
            firsts.append(len(ids))
            ids.extend(pieces[w])
            if case:
                types.extend([cases[w]] * len(pieces[w]))
        ids = ids[: max_length - 1] + [tokenizer.sep_token_id]
        types = types[: max_length - 1] + [0] if case else None
        windows.append(Window(text_index, start, end, ids, firsts, types))
    return windows


_NO_ENTITY_START = {"of", "in", "on", "at", "to", "by", "for", "from", "with", "and", "or"}
"""Words that (almost) never begin an entity: 4 of the 2,000 re3d train+dev entities start with one."""
_COPULAS = {"is", "was", "are", "were"}
"""Nor do these, in lower case ("is Tocoa"; "IS" is the Islamic State, which begins 11 re3d entities)."""
_NO_ENTITY_END = {"of", "in", "on", "at", "to", "by", "for", "from", "with", "and", "or", "the", "a", "an", "per"}
"""Words that never end an entity in re3d train+dev ("imam of" is "imam"; "£2,000 a" month is "£2,000")."""


# An article on its own is never an entity: in re3d train 3 of 2,021 gold entities are a lone "a"/"an" (a
# Quantity: "a" = one), while the shipped tagger made 12 of them on re3d dev ("a" Weapon before "VBIED") and
# "the" entities before CoNLL names ("the" + "Central African Republic"). ``repair_bio`` sets them to O.
NOT_ALONE = frozenset({"a", "an", "the"})


def is_punctuation(word: str) -> bool:
    """Only punctuation marks; not "%" (a Quantity's), "@" or "#" (a handle's or a hashtag's), nor a hyphen,
    which may join the words of a name ("al - Qaeda"; ``decode_entities`` passes a spaced one as a dash); an
    entity still never begins with a hyphen.

    No re3d train entity begins with one but one "'" (and "$" / "£", which are symbols), and 2 of its 2,021
    end with one; the shipped tagger made "3rd Battalion ,", ", Mosul district" and "," entities, and on news
    "HSBC’" and "'Elizabeth". ``repair_bio`` takes them off an entity's ends."""
    return word not in ("%", "@", "#", *_HYPHENS) and all(unicodedata.category(c)[0] == "P" for c in word)


def transition_mask(tags: list[str]) -> tuple[np.ndarray, np.ndarray]:
    """IOB2 constraints as additive log-scores: (start [n_tags], transition [prev, cur]), 0 or -inf.

    I-X may only follow B-X or I-X, and may not begin a sentence."""
    n = len(tags)
    start, trans = np.zeros(n), np.zeros((n, n))
    for j, tag in enumerate(tags):
        prefix, label = split_tag(tag)
        if prefix != "I":
            continue
        start[j] = -np.inf
        for i, prev in enumerate(tags):
            if prev == OUTSIDE or split_tag(prev)[1] != label:
                trans[i, j] = -np.inf
    return start, trans


def viterbi_tags(probs: torch.Tensor, tags: list[str], masks=None) -> list[int]:
    """The tag sequence of highest total log-probability among valid IOB2 sequences (tag indices).

    Argmax per word followed by repair turns "B-Org I-Loc" into two entities; this keeps one consistent
    reading. On re3d dev it lifted micro F1 0.661 -> 0.680 and macro 0.481 -> 0.494 (shipped tagger)."""
    start, trans = masks if masks is not None else transition_mask(tags)
    logp = np.log(np.clip(probs.double().numpy(), 1e-12, None))
    score = logp[0] + start
    back = np.empty((len(logp), len(tags)), dtype=np.int64)
    for k in range(1, len(logp)):
        cand = score[:, None] + trans
        back[k] = cand.argmax(0)
        score = cand[back[k], np.arange(len(tags))] + logp[k]
    path = [int(score.argmax())]
    for k in range(len(logp) - 1, 0, -1):
        path.append(int(back[k][path[-1]]))
    return path[::-1]


def repair_bio(tags: list[str], words: list[str] | None = None) -> list[str]:
    """Make a tag sequence valid IOB2: an I-X that does not continue an X entity becomes B-X.

    With ``words``: an entity that would begin with a preposition or conjunction ("of the city of Idlib")
    begins at the next word instead, and so does one that would begin with the "s" of a possessive ("the
    country's military" split as "country ' s military" must not give "s military"); one that would begin
    with the "least" of "at least" begins at "at". An entity never ends with a preposition, conjunction or
    "the" ("the imam of" -> "the imam"), never begins or ends with a punctuation mark ("3rd Battalion ," ->
    "3rd Battalion"), and an article on its own ("a", "the") is no entity. Those last two rules moved re3d dev
    from 0.7104 / 0.5528 to 0.7169 / 0.5615 micro / macro F1 and CoNLL-2003 test from 0.7325 to 0.7350
    (shipped tagger, 2026-12-04)."""
    fixed = _repair_once(tags, words)
    for _ in range(3 if words is not None else 0):  # a rule may expose another ("'s party" -> "s party" -> "party")
        again = _repair_once(fixed, words)
        if again == fixed:
            break
        fixed = again
    return fixed


def _repair_once(tags: list[str], words: list[str] | None) -> list[str]:
    fixed, prev = [], OUTSIDE
    for i, tag in enumerate(tags):
        prefix, label = split_tag(tag)
        if prefix == "I" and (prev == OUTSIDE or split_tag(prev)[1] != label):
            tag = f"B-{label}"
            prefix = "B"
        if prefix == "B" and words is not None and (words[i].lower() in _NO_ENTITY_START or words[i] in _COPULAS) \
                and i + 1 < len(tags) and split_tag(tags[i + 1]) == ("I", label):
            tag = OUTSIDE  # the next word's I-X becomes B-X on the next turn
        elif prefix == "B" and words is not None and words[i] in ("s", "S") and i > 0 and words[i - 1] in "'’":
            tag = OUTSIDE  # likewise
        elif prefix == "B" and words is not None and words[i].lower() in ("least", "most") and i > 0 \
                and words[i - 1].lower() == "at" and fixed[-1] == OUTSIDE:
            fixed[-1], tag = tag, f"I-{label}"  # "at least 50,000", never "least 50,000"
        fixed.append(tag)
        prev = tag
    if words is not None:
        for start, end, label in mention_spans(fixed):
            first, last = start, end
            while first < last and (is_punctuation(words[first]) or words[first] in _HYPHENS):
                first += 1  # no entity begins with a punctuation mark or a hyphen
            while last > first and (is_punctuation(words[last - 1])
                                    or last - first > 1 and words[last - 1].lower() in _NO_ENTITY_END):
                last -= 1  # nor ends with one, a preposition, conjunction or article ("the imam of"); a hyphen
                # may end one, "al -" + "Numan" (snap_span joins the pieces of a hyphenated name)
            if last - first == 1 and words[first].lower() in NOT_ALONE:  # nor is an article on its own one
                first = last
            fixed[start:end] = [OUTSIDE] * (end - start)
            fixed[first:last] = [f"B-{label}"] + [f"I-{label}"] * (last - first - 1) if last > first else []
    return fixed


@dataclass(frozen=True)
class Entity:
    label: str
    text: str
    start: int  # character offsets into the text that was tagged
    end: int
    score: float


def pad_batch(windows: list[Window], pad_id: int, device) -> dict[str, torch.Tensor]:
    """Model inputs: input_ids, attention_mask and, for windows with a case feature, token_type_ids."""
    width = max(len(w.input_ids) for w in windows)
    ids = torch.full((len(windows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(windows), width), dtype=torch.long)
    types = torch.zeros((len(windows), width), dtype=torch.long)
    for i, w in enumerate(windows):
        ids[i, : len(w.input_ids)] = torch.tensor(w.input_ids)
        mask[i, : len(w.input_ids)] = 1
        if w.token_types is not None:
            types[i, : len(w.token_types)] = torch.tensor(w.token_types)
    inputs = {"input_ids": ids, "attention_mask": mask}
    if windows[0].token_types is not None:
        inputs["token_type_ids"] = types
    return {k: v.to(device) for k, v in inputs.items()}


WINDOW = 256
"""Subwords in a window of ``Tagger`` (``tag``, ``brief``, ``serve``, ``evaluate tagger`` and the evaluations of
``train tagger``, whatever ``max_length`` a model was trained with): on CoNLL-2003 test documents 256 read better
than 128 and 512 (docs/measurements.md, "Windows")."""


@torch.inference_mode()
def predict_word_probs(model, tokenizer, word_lists: list[list[str]], max_length: int = WINDOW, stride: int = 32,
                       batch_size: int = 32, segments: list[list[Segment]] | None = None,
                       by_sentence: bool = False) -> list[torch.Tensor]:
    """Per text, a [n_words, n_tags] tensor of tag probabilities (first subword, best window). ``segments``:
    per text, its sentences, for windows of whole sentences (``sentence_windows``); ``by_sentence``: find
    them in word lists that do not fit one window (``encode_words``)."""
    case = uses_case_feature(model)
    segments = segments or [None] * len(word_lists)
    windows = [w for i, (words, segs) in enumerate(zip(word_lists, segments))
               for w in encode_words(tokenizer, words, max_length, stride, i, case=case, segments=segs,
                                     by_sentence=by_sentence)]
    n_tags = model.config.num_labels
    probs = [torch.zeros(len(words), n_tags) for words in word_lists]
    margin = [torch.full((len(words),), -1) for words in word_lists]
    device = next(model.parameters()).device
    order = sorted(range(len(windows)), key=lambda k: len(windows[k].input_ids))
    for b in range(0, len(order), batch_size):
        batch = [windows[k] for k in order[b: b + batch_size]]
        out = model(**pad_batch(batch, tokenizer.pad_token_id, device)).logits.float().softmax(-1).cpu()
        for row, w in enumerate(batch):
            # Each word keeps the prediction of the window where it sits farthest from an edge.
            pos = torch.tensor(w.first_subword, dtype=torch.long)
            k = torch.arange(len(pos))
            words = w.start + k
            edge = torch.minimum(k, (w.end - w.start - 1) - k)
            better = (pos < out.shape[1] - 1) & (edge > margin[w.text_index][words])
            words = words[better]
            margin[w.text_index][words] = edge[better]
            probs[w.text_index][words] = out[row, pos[better]]
    return probs


_HYPHENS = "-\u2010\u2011"


def _word_char(text: str, i: int) -> bool:
    return 0 <= i < len(text) and text[i].isalnum()


_PARTICLES = {"al", "el", "ad", "ar", "as", "ash", "at", "az", "an", "ibn", "bin", "abu", "abd", "bani"}
"""Lower-case name particles before a hyphen: "al-Assad", "ibn-Saud"."""


def snap_span(text: str, start: int, end: int, tagged: set[int] = frozenset()) -> tuple[int, int]:
    """Whole-token bounds for an entity found on punctuation-split words.

    The word split cuts "al-Assad" into "al", "-", "Assad", and the model may label the pieces apart. An
    entity grows across a hyphen that joins letters on both sides when the piece beyond it is a name too:
    capitalised, a particle such as "al", or itself tagged (``tagged``: start offsets of tagged words), so
    "Maarat al-" + "Numan" -> "Maarat al-Numan" and "Assad" -> "al-Assad", but "Russian" stays out of
    "Russian-backed". Punctuation marks at an entity's ends are gone already (``repair_bio``: "20 miles)" ->
    "20 miles"); a bracket left open inside takes in its partner when that stands right beside it ("Institute
    (RUSI" -> "Institute (RUSI)"). A possessive "'s" stays outside, as in the training data.
    """
    while True:
        if end < len(text) - 1 and text[end] in _HYPHENS and _word_char(text, end - 1) and _word_char(text, end + 1):
            if not (text[end + 1].isupper() or end + 1 in tagged):
                break
            end += 1  # "al" + "-Assad"
        elif not (end > start and text[end - 1] in _HYPHENS and _word_char(text, end)):  # "al-" + "Assad"
            break
        while _word_char(text, end):
            end += 1
    while start > 1 and text[start - 1] in _HYPHENS and _word_char(text, start - 2) and _word_char(text, start):
        back = start - 1
        while _word_char(text, back - 1):
            back -= 1
        prev = text[back: start - 1]
        if not (prev[0].isupper() or prev.lower() in _PARTICLES or back in tagged):
            break
        start = back
    for opening, closing in (("(", ")"), ("[", "]")):  # a bracket left open inside takes its partner beside it
        span = text[start:end]
        if span.count(opening) == span.count(closing) + 1 and text[end: end + 1] == closing:
            end += 1  # "the Royal United Services Institute (RUSI" + ")"
        elif span.count(closing) == span.count(opening) + 1 and start > 0 and text[start - 1] == opening:
            start -= 1  # "(" + "Special Forces) regiments"
    return start, end


def merge_overlaps(spans: list[list]) -> list[list]:
    """Entities ``[label, start, end, scores]``; ones that overlap after snapping become one, labeled by the
    piece that covered most characters. Sorted by start."""
    merged: list[list] = []
    for label, start, end, scores in sorted(spans, key=lambda x: (x[1], -x[2])):
        if merged and start < merged[-1][2]:
            last = merged[-1]
            last[4][label] = last[4].get(label, 0) + (end - start)
            last[2], last[3] = max(last[2], end), last[3] + scores
            continue
        merged.append([label, start, end, scores, {label: end - start}])
    return [[max(cover, key=cover.get), s, e, sc] for _, s, e, sc, cover in merged]


_PARAGRAPH = re.compile(r"\n[ \t\r\f\v]*\n")


def _dash_or_word(text: str, word: str, start: int, end: int) -> str:
    """A hyphen with a space beside it is a dash (punctuation: "7,000 -" is "7,000"); one inside a word is not."""
    if word in _HYPHENS and not (_word_char(text, start - 1) and _word_char(text, end)):
        return "\u2014"
    return word


def _currency(word: str) -> bool:
    return bool(word) and all(unicodedata.category(c) == "Sc" for c in word)


def join_glued(words: list[tuple[str, int, int]], tags: list[str]) -> list[str]:
    """One entity for what the word split cut out of one written token.

    "£5million" is split "£" + "5million", "£2,150" "£" + "2" + "," + "150", and in an article the tagger may
    tag the pieces as two entities ("£" and "5million", both Money: 16 of the 18 lone currency symbols in
    1,000 news articles) or leave the number out ("£" alone). A tagged word glued to the next one (no space
    between) takes it into its entity when that word begins another entity of the same label, or when it is
    the amount after a currency symbol or the digits after a "," or "." inside a number."""
    out = list(tags)
    for i in range(1, len(words)):
        if words[i - 1][2] != words[i][1] or out[i - 1] == OUTSIDE:
            continue
        label = split_tag(out[i - 1])[1]
        word, prev = words[i][0], words[i - 1][0]
        if out[i] == f"B-{label}":
            out[i] = f"I-{label}"
        elif out[i] == OUTSIDE and word[:1].isdigit() and (_currency(prev) or (prev in ",." and i > 1 and
                                                                             words[i - 2][0][-1:].isdigit())):
            out[i] = f"I-{label}"
        elif out[i] == OUTSIDE and word in ",." and prev[-1:].isdigit() and i + 1 < len(words) \
                and words[i][2] == words[i + 1][1] and words[i + 1][0][:1].isdigit() \
                and out[i + 1] in (OUTSIDE, f"B-{label}"):  # the digits after it come in too
            out[i] = f"I-{label}"
    return out


_NEW_PHRASE = frozenset({"The", "A", "An"})
"""A capitalised article does not go on a name: it begins a sentence whose full stop was lost, as where a page's
subheading ran into its text ("The Best Corner of America" + "The 323 kilometers extending ...")."""


def join_split_names(tags: list[str], words: list[str], sentence_starts: set[int] = frozenset()) -> list[str]:
    """One entity for a name the model cut in two at a space.

    The model sometimes begins a second entity of the same label right after the first: "President" +
    "Evo Morales" (Person), "El" + "Salvador", "Prensa" + "Libre" (337 such cuts between capitals in 651
    InSight Crime articles; docs/measurements.md, "Names cut in two"). Where the word before the cut and the word
    after it both begin with a capital, the B-X becomes I-X: re3d writes a title inside the name it goes with
    ("Maj. Gen. Gary J. Volesky", "President Bashar al-Assad"), and in its training data a new entity begins
    at only 9 of the 2,717 words that follow a word of the same label. A possessive keeps its two entities apart
    ("Lebanon 's" + "Hezbollah movement": the "s" is lower case), and so does the start of a sentence
    (``sentence_starts``: indices of the words that begin one; a line break ends a heading or a table row, and
    a run-on is cut before "Injured" in "... reports The Asian Age Injured constables ..."), and so does a
    capitalised article (``_NEW_PHRASE``)."""
    out = list(tags)
    for i in range(1, len(out)):
        prefix, label = split_tag(out[i])
        if prefix == "B" and out[i - 1] != OUTSIDE and split_tag(out[i - 1])[1] == label and i not in sentence_starts \
                and words[i - 1][:1].isupper() and words[i][:1].isupper() and words[i] not in _NEW_PHRASE:
            out[i] = f"I-{label}"
    return out


# A full name is evidence enough when the model gives it at least this score (the mean probability of its tags).
FULL_NAME_SCORE = 0.9
PERSON_LABELS = ("Person", "PER")
"""The label of people in the re3d schema and in CoNLL's; a model with neither gets no ``person_consistent_tags``."""
# Lower-case words that may stand inside a full name ("Bashar al Assad", "Paul de Jong").
NAME_PARTICLES = frozenset("al el bin ibn abu de da di du del della der den van von le la dos das ul ud".split())


def person_label(tag_list: list[str]) -> str | None:
    return next((label for label in PERSON_LABELS if f"B-{label}" in tag_list), None)


def _short_names(words: list[str]) -> list[str]:
    """The shorter forms of a full name, its words from the second or a later one to the last ("Suu Kyi",
    "Kyi" of "Aung San Suu Kyi"). A full name: two or more words, each with a capital or a particle, two of
    them beginning with one, the last in mixed case ("al-Assad", "McCain"; not "Janice Atkinson MEP")."""
    if len(words) < 2 or sum(w[:1].isupper() for w in words) < 2:
        return []
    if not all(any(c.isupper() for c in w) or w.lower() in NAME_PARTICLES for w in words):
        return []  # "Ian Bell of England"
    last = words[-1]
    if not (any(c.isupper() for c in last) and any(c.islower() for c in last)):
        return []
    return [" ".join(words[i:]) for i in range(1, len(words)) if words[i][:1].isupper() or i == len(words) - 1]


def person_consistent_tags(tags: list[str], words: list[str], span_text, scores: list[float],
                           person: str | None) -> list[str]:
    """IOB2 ``tags`` in which a surname on its own takes the person label of the full name in the same text.

    A full name is a ``person`` entity the model scores at least ``FULL_NAME_SCORE`` (``_short_names``:
    "President Bashar al-Assad", "Fawaz Bitar"). An entity of another label whose text (``span_text(start,
    end)``) is a shorter form of that name ("Bashar al-Assad", "al-Assad", "Bitar") becomes ``person``, unless
    a word with a capital follows it (the "Kemeys" of "Kemeys Folly", a house). In 607 news articles this
    relabels 140 mentions the shipped tagger gave another label ("Biden", "Netanyahu"; "al-Assad" twice an
    Organisation in the seed article), 2 of them wrongly; on CoNLL-2003 test read as documents, 24, all gold
    Person (docs/measurements.md, "One name, one label"). Nothing is added where the model tagged nothing, a full
    name is never relabelled (the model called "Hull KR" a Person once and an Organisation thrice), and in a
    text without capitals nothing is a full name. A surname that is also a place stays a risk ("George
    Washington" makes "Washington" a Person)."""
    if person is None:
        return tags
    spans = mention_spans(tags)
    short = set()
    for start, end, label in spans:
        if label == person and sum(scores[start:end]) / (end - start) >= FULL_NAME_SCORE:
            short.update(_short_names(span_text(start, end).split()))
    out = list(tags)
    for start, end, label in spans:
        if label != person and span_text(start, end) in short \
                and not (end < len(words) and words[end][:1].isupper()):
            out[start:end] = [f"B-{person}"] + [f"I-{person}"] * (end - start - 1)
    return out


def decode_entities(text: str, words: list[tuple[str, int, int]], probs: torch.Tensor,
                    id2label: dict[int, str], masks=None, person: str | None = None,
                    segments: list[Segment] | None = None) -> list[Entity]:
    """Entities of ``text`` from its words' tag probabilities. ``person``: the label whose full names a surname
    on its own takes (``person_consistent_tags``); None keeps the model's labels. ``segments``: the text's
    sentences as ``sentence_segments`` finds them (found here when not given)."""
    if not words:
        return []
    tag_list = [id2label[i] for i in range(len(id2label))]
    ids = torch.tensor(viterbi_tags(probs, tag_list, masks))
    scores = probs.gather(1, ids[:, None])[:, 0]
    tags = repair_bio([id2label[int(i)] for i in ids], [_dash_or_word(text, *w) for w in words])
    label2id = {v: k for k, v in id2label.items()}

    def rescored(before: list[str], joined: list[str]) -> list[str]:
        """``joined``, with each word whose tag it changed scored as the probability of the tag it now has."""
        changed = [i for i, (a, b) in enumerate(zip(before, joined)) if a != b and b in label2id]
        scores[changed] = probs[changed, [label2id[joined[i]] for i in changed]].to(scores.dtype)
        return joined

    tags = rescored(tags, join_glued(words, tags))
    if person:  # a relabelled mention keeps its score: the model's confidence in it, under the other label
        tags = person_consistent_tags(tags, [w for w, _, _ in words],
                                      lambda a, b: text[words[a][1]:words[b - 1][2]], scores.tolist(), person)
    if segments is None:
        segments = sentence_segments(text, [(a, b) for _, a, b in words])
    tags = rescored(tags, join_split_names(tags, [w for w, _, _ in words], {first for first, _, _ in segments}))
    # (after the relabelling: "Chong" and "Coronado", a Person and an Organisation, are both Person once
    # "Ernesto Chong Coronado" names him)
    entities, current = [], None
    for (_, start, end), tag, score in zip(words, tags, scores.tolist()):
        prefix, label = split_tag(tag)
        if prefix == "I" and current is not None and _PARAGRAPH.search(text, current[2], start):
            prefix = "B"  # a name never runs over a blank line ("... in the camp\n\nIdlib")
        if prefix == "I" and current is not None:
            current[2] = end
            current[3].append(score)
            continue
        if current is not None:
            entities.append(current)
            current = None
        if prefix == "B":
            current = [label, start, end, [score]]
    if current is not None:
        entities.append(current)
    tagged = {start for (_, start, _), tag in zip(words, tags) if tag != OUTSIDE}
    snapped = [[label, *snap_span(text, s, e, tagged), sc] for label, s, e, sc in entities]
    snapped = merge_overlaps([x for x in snapped if x[2] > x[1]])
    return [Entity(label, text[s:e], s, e, round(sum(sc) / len(sc), 4)) for label, s, e, sc in snapped]


# Words that on their own name nobody: pronouns, determiners and quantifiers. re3d annotates "he", "I" (Person)
# and "we", "they" (Organisation) as entities (90 of the 697 in re3d dev), so a model trained on it tags them
# too; without coreference they tell an analyst nothing.
BARE_WORDS = frozenset("""he she it its they them their theirs we us our ours i me my mine you your yours his her
hers him himself herself itself themselves ourselves who whom whose which that this these those the a an some any
all both each either neither many much most more few several other others another ones such there here than
""".split())  # not "one": a Quantity ("one person was killed") is a fact
MENTIONS = ("names", "all")
"""``names``: entities made only of ``BARE_WORDS`` ("he", "we", "the others", "more than") are left out;
``all``: every entity the model tags (what ``evaluate tagger`` scores by default)."""


def is_bare(words: list[str]) -> bool:
    return all(w.lower() in BARE_WORDS for w in words)


def mention_spans(tags: list[str]) -> list[tuple[int, int, str]]:
    """(start, end, label) of each entity in a fully annotated IOB2 tag list."""
    spans, start = [], None
    for i, tag in enumerate([*tags, OUTSIDE]):
        if start is not None and tag != f"I-{tags[start][2:]}":  # an I- of another label starts its own
            spans.append((start, i, tags[start][2:]))
            start = None
        if tag.startswith("B-") or (tag.startswith("I-") and start is None):
            start = i
    return spans


def drop_entities(tags: list[str], drop) -> list[str]:
    """IOB2 ``tags`` with every entity [start, end) for which ``drop(start, end)`` is true set to O."""
    out = list(tags)
    for start, end, _ in mention_spans(tags):
        if drop(start, end):
            out[start:end] = [OUTSIDE] * (end - start)
    return out


def drop_bare_tags(tags: list[str], words: list[str]) -> list[str]:
    """IOB2 ``tags`` with every entity made only of ``BARE_WORDS`` set to O."""
    return drop_entities(tags, lambda start, end: is_bare(words[start:end]))


def drop_low_score_tags(tags: list[str], scores: list[float], min_score: float) -> list[str]:
    """IOB2 ``tags`` with every entity whose mean word score is below ``min_score`` set to O."""
    return drop_entities(tags, lambda start, end: sum(scores[start:end]) / (end - start) < min_score)


class Tagger:
    """A loaded token classifier: ``Tagger.load()`` once, then ``tag(texts)`` many times.

    ``mentions``: ``"all"`` (default here: the model's own output) or ``"names"`` (bare pronoun and
    determiner mentions left out; the default of ``Pipeline`` and the command line). ``min_score``: entities
    whose score (the mean probability of their words' tags) is lower are left out; 0 keeps all.
    ``consistent_names``: a surname on its own takes the person label of the full name in the same text
    (``person_consistent_tags``); False keeps the label the model gave every entity."""

    def __init__(self, model, tokenizer, max_length: int = WINDOW, stride: int = 32, batch_size: int = 32,
                 mentions: str = "all", min_score: float = 0.0, consistent_names: bool = True):
        if mentions not in MENTIONS:
            raise ValueError(f"mentions must be one of {MENTIONS}, not {mentions!r}")
        if not 0.0 <= min_score <= 1.0:
            raise ValueError(f"min_score must be between 0 and 1, not {min_score!r}")
        self.model, self.tokenizer = model, tokenizer
        limit = position_limit(model.config)  # a model of fewer positions than a window's subwords
        max_length = min(max_length, limit) if limit else max_length
        self.max_length, self.stride, self.batch_size = max_length, stride, batch_size
        self.mentions, self.min_score, self.consistent_names = mentions, min_score, consistent_names
        self.id2label = {int(k): v for k, v in model.config.id2label.items()}
        self.tag_list = [self.id2label[i] for i in range(len(self.id2label))]
        self.person = person_label(self.tag_list)
        self.masks = transition_mask(self.tag_list)

    @classmethod
    def load(cls, ref: str | None = "default", device: str = "auto", dtype=None, **kwargs) -> "Tagger":
        from conflictbrief.model.loading import load_tagger

        model, tokenizer = load_tagger(ref, device=device, dtype=dtype)
        return cls(model, tokenizer, **kwargs)

    @property
    def labels(self) -> list[str]:
        return sorted({split_tag(t)[1] for t in self.id2label.values() if t != OUTSIDE})

    def tag_words(self, word_lists: list[list[str]], segments: list[list[Segment] | None] | None = None
                  ) -> list[list[str]]:
        """IOB2 tags for pre-split words (used for evaluation on CoNLL-style data). ``segments``: per list, its
        sentences where the text is known (``sentence_segments``: windowed as ``tag`` windows the text). Else
        words that fit one window are one window, and a longer list is windowed by the sentences found in it
        (``word_list_segments``)."""
        probs = predict_word_probs(self.model, self.tokenizer, word_lists, self.max_length, self.stride,
                                   self.batch_size, segments, by_sentence=True)
        person = self.person if self.consistent_names else None
        tags = []
        for k, (p, words) in enumerate(zip(probs, word_lists)):
            if not len(p):
                tags.append([])
                continue
            ids = viterbi_tags(p, self.tag_list, self.masks)
            seq = repair_bio([self.tag_list[i] for i in ids], words)
            scores = p[range(len(ids)), ids].tolist()  # as ``tag`` scores an entity: mean probability of its tags
            seq = person_consistent_tags(seq, words, lambda a, b: " ".join(words[a:b]), scores, person)
            starts = {first for first, _, _ in segments[k]} if segments and segments[k] else set()
            joined = join_split_names(seq, words, starts)  # not across sentences, where the text is known
            for i in (i for i, (a, b) in enumerate(zip(seq, joined)) if a != b):  # as ``decode_entities`` scores it
                scores[i] = float(p[i, self.tag_list.index(joined[i])])
            seq = joined
            if self.min_score > 0:
                seq = drop_low_score_tags(seq, scores, self.min_score)
            tags.append(seq)
        if self.mentions == "names":
            tags = [drop_bare_tags(t, words) for t, words in zip(tags, word_lists)]
        return tags

    def tag(self, texts: list[str]) -> list[list[Entity]]:
        """Entities of each text with character offsets into that text."""
        words = [words_with_offsets(t) for t in texts]
        segments = [sentence_segments(t, [(a, b) for _, a, b in ws]) for t, ws in zip(texts, words)]
        probs = predict_word_probs(self.model, self.tokenizer, [[w for w, _, _ in ws] for ws in words],
                                   self.max_length, self.stride, self.batch_size, segments)
        release_free_memory()  # the windows' activations, freed: see inference/heap.py
        person = self.person if self.consistent_names else None
        entities = [decode_entities(t, ws, p, self.id2label, self.masks, person, seg)
                    for t, ws, p, seg in zip(texts, words, probs, segments)]
        if self.min_score > 0:
            entities = [[e for e in ents if e.score >= self.min_score] for ents in entities]
        if self.mentions == "names":
            entities = [[e for e in ents if not is_bare([w for w, _, _ in words_with_offsets(e.text)])]
                        for ents in entities]
        return entities
