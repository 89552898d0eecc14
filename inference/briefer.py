"""Writing a brief with a seq2seq model: salient-sentence input, generation, and re-surfacing the output.

* Input: when the article is longer than the encoder window, the most salient sentences (position, density
  of names and numbers, centrality) are kept in article order instead of cutting at the last token.
* Output: the base is uncased, so the decoded text is lower case with tokenizer spacing ("al - assad").
  ``resurface`` copies the article's own spelling for every run of words found in the article (casing,
  hyphens, "120,000") and capitalises sentence starts.
"""
from __future__ import annotations

import bisect
import re
import unicodedata
from collections import Counter
from contextlib import contextmanager, nullcontext
from functools import lru_cache
from pathlib import Path

import torch

from conflictbrief.inference.beam import beam_search, lean_settings
from conflictbrief.inference.clean import PREAMBLE_END, TERMINAL, CleanText, is_abbreviation, split_sentences
from conflictbrief.inference.heap import release_free_memory
from conflictbrief.training.readers import WORD_RE

_STOP = set("""a an the of to in on at for from by with and or but as is are was were be been has have had
it its this that these those he she they we you i his her their our not no said says will would can could
about after before into over than then there which who whom whose what when where while also more most""".split())


@lru_cache(maxsize=1 << 17)
def fold(word: str) -> str:
    """Lower case without accents: how an uncased BERT tokenizer sees a word. (Cached: salience and resurfacing
    fold every word of every article, about 5,000 calls per article.)"""
    lower = word.lower()
    if lower.isascii():
        return lower
    return "".join(c for c in unicodedata.normalize("NFD", lower) if not unicodedata.combining(c))


def content_words(text: str) -> list[str]:
    return [f for w in re.findall(r"\w+", text) if len(w) > 1 and (f := fold(w)) not in _STOP]


# Page furniture that scrapers keep: share buttons ("Facebook Twitter Linkedin Mail"), "Read more".
_FURNITURE = re.compile(r"(?:(?:facebook|twitter|linkedin|whatsapp|pinterest|reddit|telegram|e-?mail|mail|print|"
                        r"share|tweet|comments?|copy link|read more|advertisement|subscribe)\W*)+", re.I)


_TITLE_LOWER = {"the", "and", "for", "but", "nor", "via", "per", "off", "out", "from", "with", "into", "over", "upon",
                "than", "amid", "near"}


def is_title(sentence: str) -> bool:
    """A headline in Title Case ("US Adds Guatemalan Drug Queen to Blacklist."): at most 15 words, at least
    3 capitalised words of 4+ letters after the first, and no lower-case word of 3+ letters but those a title
    keeps small ("the", "from"...). "Obama and Cameron met." is no title. A text in capitals is no title."""
    words = [re.sub(r"^\W+|\W+$", "", w) for w in sentence.split()]
    if len(words) > 15 or sentence.isupper():
        return False
    later = [w for w in words[1:] if w and not w[:1].isdigit()]
    if any(w[:1].islower() and len(w) >= 3 and w.lower() not in _TITLE_LOWER for w in later):
        return False
    return sum(1 for w in later if len(w) >= 4 and w[:1].isupper()) >= 3


# What a wire story puts before its first sentence: an editor's note "(SUBS: REPEATS TO FIX SLUG)", a
# mixed-case byline with a photo mark "By Rob Woollard (PICTURE)", the end of a headline in capitals
# "ANTITRUST DISPUTE ENDS" (three words or more, or one of 8+ letters: "NATO Secretary", "UN OCHA Director
# said" stay), or an agency tag "(AFP)". Each capitals word matches one way only ("[A-Z]{2}[A-Z'&-]*"): with
# "[A-Z]{2,}[A-Z'&-]*" a headline in capitals that was not followed by a sentence took exponential time
# (a 14-word GLOCON wire headline: minutes, a hung batch job; 2026-12-05).
_LEAD_NOTE = re.compile(r"^(?:\((?=[^()]*[A-Z]{3})[^()a-z]{0,20}[^()]{0,60}\)\s+"
                        r"|By (?:[A-Z][a-z]+ ){1,3}\((?:PICTURE|PHOTO|PHOTOS|VIDEO)S?\)\s+"
                        r"|(?:[A-Z]{2}[A-Z'&-]* ){3,}(?=[A-Z][a-z]+ [a-z])|[A-Z]{8,} (?=[A-Z][a-z]* [a-z]))")


def strip_lead_note(sentence: str) -> str:
    """``sentence`` without a wire story's leading note, byline or headline tail (``_LEAD_NOTE``)."""
    m = _LEAD_NOTE.match(sentence)
    return sentence[m.end():] if m and len(sentence[m.end():].split()) >= 4 else sentence


def report_openings(spans: list[tuple[int, int]], reports: tuple[int, ...]) -> list[int]:
    """Indices of the sentences (``spans`` of the clean text) that open each of several reports
    (``CleanText.reports``); [] for one article."""
    starts = [s for s, _ in spans]
    return sorted({k for k in (bisect.bisect_left(starts, offset) for offset in reports) if 0 < k < len(spans)})


def salience(sentences: list[str], openings: list[int] | tuple[int, ...] = ()) -> list[float]:
    """Score sentences by position, density of names/numbers, and centrality to the article. ``openings``:
    the sentences that open the second and later reports of several (``report_openings``); position counts
    from the start of each report, so that the leads of all of them come first."""
    doc = Counter(w for s in sentences for w in set(content_words(s)))
    in_capitals = sum(s.isupper() for s in sentences) > len(sentences) / 2
    ended = [s.rstrip().endswith(TERMINAL) for s in sentences]
    punctuated = sum(ended) > len(sentences) / 2
    scores, opened = [], 0
    openings = set(openings)
    for i, s in enumerate(sentences):
        opened = i if i in openings else opened
        words = s.split()
        if len(words) < 4 or _FURNITURE.fullmatch(s.strip()) or PREAMBLE_END.search(s) or is_title(s) \
                or (s.isupper() and not in_capitals) or (punctuated and len(words) <= 15 and not ended[i]):
            scores.append(-1.0)  # headings, titles, captions, bylines, wire datelines, share buttons
            continue
        names = sum(1 for w in words[1:] if w[:1].isupper()) + len(re.findall(r"\d", s)) / 3
        density = min(1.0, 3 * names / len(words))
        cw = content_words(s)
        centrality = sum(doc[w] for w in set(cw)) / (len(set(cw)) * len(sentences) + 1e-9) if cw else 0.0
        # Weights chosen on 400 SumLLM and 400 NeuS *training* articles (runs of extracted 3-sentence briefs,
        # ROUGE-L): news puts the facts first, so position dominates; density and centrality break ties.
        scores.append(1.0 / (1 + 0.5 * (i - opened)) + 0.1 * density + 0.1 * min(1.0, 3 * centrality))
    return scores


SENTENCE_WORDS = 60
"""The most words of an extracted brief sentence (longer ones are run-ons of text without punctuation as often
as not), but for a report's lead (``LEAD_WORDS``)."""
LEAD_WORDS = 90
"""The most words of a report's lead in an extracted brief: the lead carries the event ("A suicide bomber
detonated ..., killing at least nine persons, ... on July 21, reported Dawn.", 63 words), and South Asian
wire reports and Indian dailies often run their first sentence past 60 words."""
_QUESTION = re.compile(r"\?[\"'”’)\]]*\s*$")


def is_question(sentence: str) -> bool:
    """Whether a sentence asks rather than tells ("How do they manage to get away with it?"): a feature's hook or
    a rhetorical question states no fact for a brief. A quoted question that is reported ("'Why?' he asked.") is
    a statement."""
    return bool(_QUESTION.search(sentence))


def report_leads(scores: list[float], openings: list[int] | tuple[int, ...] = ()) -> set[int]:
    """The lead of each report: its first sentence that ``salience`` does not pass over (a title, a byline and
    a dateline come before it)."""
    bounds = [0, *openings, len(scores)]
    firsts = (next((k for k in range(a, b) if scores[k] >= 0), None) for a, b in zip(bounds, bounds[1:]))
    return {k for k in firsts if k is not None}


def select_sentences(sentences: list[str], lengths: list[int], budget: int,
                     openings: list[int] | tuple[int, ...] = ()) -> list[int]:
    """Indices (in article order) of the sentences that best fill ``budget`` tokens (``openings``: as for
    ``salience``)."""
    if sum(lengths) <= budget:
        return [i for i, s in enumerate(sentences) if s.strip()]
    chosen, used = [], 0
    scores = salience(sentences, openings)
    for i in sorted(range(len(sentences)), key=lambda k: -scores[k]):
        if scores[i] < 0 and chosen:
            continue
        if used + lengths[i] <= budget:
            chosen.append(i)
            used += lengths[i]
    return sorted(chosen) or [0]


def source_for(clean_text: CleanText, tokenizer, max_source_length: int) -> tuple[str, list[int], list[str]]:
    """Model input for an article: (input text, indices of the sentences used, all sentences)."""
    spans = split_sentences(clean_text.text)
    sentences = [clean_text.text[s:e] for s, e in spans]
    if not sentences:
        return "", [], []
    lengths = [len(ids) for ids in tokenizer(sentences, add_special_tokens=False)["input_ids"]]
    used = select_sentences(sentences, lengths, max_source_length - 2, report_openings(spans, clean_text.reports))
    return " ".join(sentences[i] for i in used), used, sentences


MAX_SOURCE_WINDOW = 1024


def source_window(model, tokenizer, path: str) -> int:
    """Encoder input length in tokens for a loaded briefer: the ``max_source_length`` it was trained with here
    (its training_config.yaml, which exports copy), else the model's own limit, at most ``MAX_SOURCE_WINDOW``
    (a pretrained BART or T5 from the Hub). Until 2026-12-07 every briefer read 256 tokens, whatever it was
    trained with."""
    import yaml

    from conflictbrief.model.loading import ModelLoadError

    saved = Path(path) / "training_config.yaml"
    if saved.is_file():
        try:
            value = (yaml.safe_load(saved.read_text(encoding="utf-8")) or {}).get("max_source_length")
        except (yaml.YAMLError, UnicodeDecodeError, AttributeError) as e:
            raise ModelLoadError(f"{saved}: not a training config ({str(e).splitlines()[0]})") from e
        if value is not None:
            if isinstance(value, bool) or not isinstance(value, int) or value < 8:
                raise ModelLoadError(f"{saved}: max_source_length {value!r} is not a number of tokens (8 or more)")
            return value
    from conflictbrief.model.loading import seq2seq_position_limits

    limits = [seq2seq_position_limits(model.config)[0], tokenizer.model_max_length]
    return min([MAX_SOURCE_WINDOW] + [n for n in limits if isinstance(n, int) and n > 8])


_NO_SPACE_BEFORE = set(",.;:!?)]%'’”") | {"'s", "n't"}
_NO_SPACE_AFTER = set("([$£€‘“")
_CONTRACTION_ENDS = {"s", "t", "re", "ve", "ll", "d", "m"}  # "he' s" -> "he's", "don' t" -> "don't"


def resurface(generated: str, article: str) -> str:
    """Re-spell lower-case, tokenizer-spaced model output with the article's own words (see module doc)."""
    art = [(m.group(), m.start(), m.end()) for m in WORD_RE.finditer(article)]
    art_keys = [fold(w) for w, _, _ in art]
    index: dict[str, list[int]] = {}
    for i, k in enumerate(art_keys):
        index.setdefault(k, []).append(i)
    casing = _case_map(article)
    gen = [m.group() for m in WORD_RE.finditer(generated)]
    pieces: list[str] = []
    i = 0
    while i < len(gen):
        key = fold(gen[i])
        best_len, best_pos = 0, -1
        for pos in index.get(key, ()):
            n = 0
            while i + n < len(gen) and pos + n < len(art) and art_keys[pos + n] == fold(gen[i + n]):
                n += 1
            if n > best_len:
                best_len, best_pos = n, pos
        if best_len >= 2:
            span = article[art[best_pos][1]: art[best_pos + best_len - 1][2]]
            # A run copied from a sentence start keeps its capital only where the word has it inside
            # sentences too ("In the room" -> "in the room", "Trump said" stays); sentence starts are set below.
            first = casing.get(key, gen[i])
            head = span[:len(first)]
            if head != first and head.lower() == first.lower() and head == head.capitalize():  # not "WHO said"
                span = first + span[len(first):]
            pieces.append(span)
            i += best_len
        else:
            pieces.append(casing.get(key, gen[i]))
            i += 1
    text = _join(pieces)
    return re.sub(r"(^|[.!?][\"'”’]?\s+)([a-z])",
                  lambda m: m.group() if _after_abbreviation(text, m.start()) else m.group(1) + m.group(2).upper(),
                  text)


def _after_abbreviation(text: str, stop: int) -> bool:
    """Whether the full stop at ``stop`` ends an abbreviation ("U.S.", "Sen."), after which a word is not a
    sentence start ("the U.S. economy", not "the U.S. Economy"), as ``split_sentences`` reads it."""
    word = re.search(r"([\w.]+)$", text[:stop])
    return bool(text[stop: stop + 1] == "." and word and is_abbreviation(word.group(1)))


def _case_map(article: str) -> dict[str, str]:
    """Most frequent spelling of each word, preferring occurrences that do not start a sentence."""
    counts: dict[str, Counter] = {}
    for m in re.finditer(r"(^|[.!?\"'\n]\s*)?(\w+)", article):
        word, initial = m.group(2), m.group(1) is not None
        counts.setdefault(fold(word), Counter())[word] += 0.1 if initial else 1.0
    # A function word seen only at sentence starts ("In", "He") is lower case inside a sentence; "I" and an
    # acronym ("WHO") are not.
    spelling = {k: c.most_common(1)[0][0] for k, c in counts.items()}
    return {k: k if k in _STOP and k != "i" and w == w.capitalize() else w for k, w in spelling.items()}


def _join(pieces: list[str]) -> str:
    out, quote_open = "", False
    for p in pieces:
        if not out:
            out = p
            quote_open = p == '"'
            continue
        if p == '"':
            out += p if quote_open else " " + p
            quote_open = not quote_open
        elif p in _NO_SPACE_BEFORE or p[0] in _NO_SPACE_BEFORE or p.startswith("'") or p == "-" \
                or out.endswith("-") \
                or out[-1] in "'’" and out[-2:-1].isalnum() and p.lower() in _CONTRACTION_ENDS \
                or out[-1] in _NO_SPACE_AFTER or (out.endswith('"') and quote_open):
            out += p
        else:
            out += " " + p
    return out


_PUNCTUATION = list(".,;:!?'\"()-%/$|")

HEADLINE_SEP = "|||"
"""Separates a headline from the brief in model targets and output: ``headline ||| brief``."""


def split_headline(text: str) -> tuple[str | None, str]:
    """(headline or None, brief) of a model output written as ``headline ||| brief``."""
    squeezed = re.sub(r"\|\s*\|\s*\|", HEADLINE_SEP, text)  # BERT decodes "|||" as "| | |"
    if HEADLINE_SEP not in squeezed:
        return None, text
    head, _, body = squeezed.partition(HEADLINE_SEP)
    body = body.replace(HEADLINE_SEP, " ").strip()
    return head.strip() or None, body


def common_token_ids(tokenizer) -> set[int]:
    """Tokens any brief may use whatever the article: special tokens, punctuation and function words."""
    words = sorted(_STOP) + _PUNCTUATION
    ids = set(tokenizer.all_special_ids)
    for form in (words, [" " + w for w in words]):  # BPE vocabularies spell a word-initial piece differently
        for piece in tokenizer(form, add_special_tokens=False)["input_ids"]:
            ids.update(piece)
    return ids


class SourceVocabulary:
    """A logits processor for ``generate``: each article's brief may use only the tokens of that article's
    model input plus ``common_token_ids``. A model cannot spell a name or a number that is not in its input;
    the guards still check how pieces are combined ("120" and "000" from two different figures)."""

    def __init__(self, source_ids: torch.Tensor, attention_mask: torch.Tensor, common: set[int]):
        self.source_ids = source_ids.masked_fill(attention_mask == 0, next(iter(common)))
        self.common = torch.tensor(sorted(common), device=source_ids.device)
        self._mask: torch.Tensor | None = None

    def allowed(self, vocab_size: int) -> torch.Tensor:
        """Boolean article x vocabulary matrix of the tokens each article's brief may use."""
        allowed = torch.zeros((self.source_ids.shape[0], vocab_size), dtype=torch.bool, device=self.source_ids.device)
        allowed.scatter_(1, self.source_ids.clamp(max=vocab_size - 1), True)
        allowed[:, self.common[self.common < vocab_size]] = True
        return allowed

    def __call__(self, input_ids: torch.Tensor, scores: torch.Tensor) -> torch.Tensor:
        if self._mask is None or self._mask.shape != scores.shape:
            allowed = self.allowed(scores.shape[-1])
            self._mask = ~allowed.repeat_interleave(scores.shape[0] // allowed.shape[0], dim=0)  # beams row-major
        return scores.masked_fill(self._mask, float("-inf"))


class RestrictedOutput(torch.nn.Module):
    """The output layer evaluated only on ``allowed`` token ids; every other token gets a logit of -inf.

    With ``SourceVocabulary`` on, a token outside the article's vocabulary can never be chosen, yet the full
    output layer (hidden width x 30,522 for BERT: about as many multiply-adds per generated token as the six
    decoder layers) scores every one of them. This layer scores the union of the batch's allowed tokens;
    ``SourceVocabulary`` still masks each article to its own. Greedy output is the same as with the full
    layer. Beam scores are not: the softmax is normalised over the union instead of the whole vocabulary, so
    a beam is no longer charged for the probability it puts on tokens it may not use; ``Briefer`` therefore
    uses this layer for greedy decoding only (the training evaluation, or ``num_beams=1`` for speed).
    """

    def __init__(self, full: torch.nn.Module, allowed: torch.Tensor):
        super().__init__()
        if hasattr(full, "_packed_params"):  # a dynamically quantised Linear (--dtype int8)
            weight, bias = full.weight().dequantize(), full.bias()
        else:
            weight, bias = full.weight, full.bias
        self.vocab_size, self.allowed = weight.shape[0], allowed
        self.weight = weight.index_select(0, allowed)
        self.bias = bias.index_select(0, allowed) if bias is not None else None

    def forward(self, hidden: torch.Tensor) -> torch.Tensor:
        subset = torch.nn.functional.linear(hidden, self.weight.to(hidden.dtype),
                                            None if self.bias is None else self.bias.to(hidden.dtype))
        out = subset.new_full((*subset.shape[:-1], self.vocab_size), float("-inf"))
        out[..., self.allowed] = subset
        return out


@contextmanager
def restricted_output(model, vocabulary: SourceVocabulary):
    """Swap the model's output layer for ``RestrictedOutput`` for the duration of a ``with`` block."""
    full = model.get_output_embeddings()
    owner, name = next((m, n) for m in model.modules() for n, c in m.named_children() if c is full)
    allowed = vocabulary.allowed(full.out_features).any(0).nonzero().squeeze(1)
    setattr(owner, name, RestrictedOutput(full, allowed))
    try:
        yield
    finally:
        setattr(owner, name, full)


def shared_source_cache(model, group: int = 1):
    """A key/value cache for beam search that does not reorder the cross-attention keys and values.

    Every beam of an article attends to the same encoder output, so the cross-attention cache holds identical
    rows within each article's beam group, and beam search only ever picks beams of the same article: the
    reorder that transformers does at each step (an index_select of batch x beams x source length x width per
    layer, about a quarter of generation time on CPU) changes nothing. The self-attention cache is reordered.

    ``group`` > 1 (the number of beams, with ``grouped_cross_attention`` on): the cross-attention cache keeps
    one row per article instead of one per beam, and each article's beams attend to it together.
    """
    from transformers.cache_utils import DynamicCache, EncoderDecoderCache

    class SharedSourceCache(EncoderDecoderCache):
        def reorder_cache(self, beam_idx: torch.LongTensor):
            self.self_attention_cache.reorder_cache(beam_idx)

    class OneRowPerArticle(DynamicCache):
        beams = group  # the lean beam search (beam.py) passes one encoder row per article and sets this to 1

        def update(self, key_states, value_states, layer_idx, *args, **kwargs):
            # transformers expands the batch with repeat_interleave: an article's beams are consecutive rows
            if self.beams > 1:
                key_states = key_states[::self.beams].contiguous()
                value_states = value_states[::self.beams].contiguous()
            return super().update(key_states, value_states, layer_idx, *args, **kwargs)

    config = model.config.get_text_config(decoder=True)
    cross = OneRowPerArticle(config=config) if group > 1 else DynamicCache(config=config)
    return SharedSourceCache(DynamicCache(config=config), cross)


GROUPED_ATTENTION = "conflictbrief_grouped_sdpa"


def grouped_sdpa_attention(module, query, key, value, attention_mask, dropout: float = 0.0, scaling=None,
                           **kwargs):
    """Scaled dot-product attention where the keys and values may hold one row per article and the queries one
    row per beam (the cross-attention of ``shared_source_cache(model, group)``).

    The beams of an article then attend to its source in one call ([articles, heads, beams, d] queries)
    instead of each beam against its own copy of the source: the same multiply-adds, but each source's keys
    and values are stored and read once instead of once per beam (docs/performance.md: generation 30-35% faster). Same
    result as plain SDPA (tested); any other attention call goes to transformers' SDPA unchanged.
    """
    from transformers.integrations.sdpa_attention import sdpa_attention_forward

    rows, articles = query.shape[0], key.shape[0]
    if rows == articles or rows % articles:
        return sdpa_attention_forward(module, query, key, value, attention_mask, dropout=dropout, scaling=scaling,
                                      **kwargs)
    group = rows // articles
    _, heads, q_len, dim = query.shape
    q = query.reshape(articles, group, heads, q_len, dim).transpose(1, 2).reshape(articles, heads, group * q_len, dim)
    mask = attention_mask
    if mask is not None:
        mask = mask[::group] if mask.shape[0] == rows else mask
        mask = mask[:, :, :1]  # a source mask is the same for every query position
    out = torch.nn.functional.scaled_dot_product_attention(q, key, value, attn_mask=mask, dropout_p=dropout,
                                                           scale=scaling)
    out = out.reshape(articles, heads, group, q_len, dim).permute(0, 2, 3, 1, 4)
    return out.reshape(rows, q_len, heads, dim), None


@contextmanager
def grouped_cross_attention(model):
    """While active, the decoder of a transformers encoder-decoder that uses SDPA attention calls
    ``grouped_sdpa_attention``; yields whether it could (other models are left as they are)."""
    decoder = getattr(model, "decoder", None)
    config = getattr(decoder, "config", None)
    if config is None or getattr(config, "_attn_implementation", None) != "sdpa":
        yield False
        return
    from transformers import AttentionInterface
    from transformers.masking_utils import AttentionMaskInterface, sdpa_mask

    AttentionInterface.register(GROUPED_ATTENTION, grouped_sdpa_attention)
    AttentionMaskInterface.register(GROUPED_ATTENTION, sdpa_mask)
    config._attn_implementation = GROUPED_ATTENTION
    try:
        yield True
    finally:
        config._attn_implementation = "sdpa"


class Briefer:
    """A loaded seq2seq briefer: ``Briefer.load()`` once, then ``generate(clean_texts)``.

    ``constrain_to_source`` (default on): generation may only use tokens of the article (``SourceVocabulary``).
    ``restrict_output`` (default on; used with ``constrain_to_source`` in greedy decoding, where it gives the
    same output): the output layer scores only the tokens the batch's articles may use (``RestrictedOutput``).
    Beam search keeps the full layer: with the restricted one, ROUGE-L fell by 0.8-1.6 points (docs/performance.md).
    ``group_beams`` (default on): in beam search an article's beams share one cross-attention row of its
    source (``grouped_cross_attention``; the same beams, less work).
    """

    def __init__(self, model, tokenizer, max_source_length: int = 256, batch_size: int = 8,
                 constrain_to_source: bool = True, restrict_output: bool = True, group_beams: bool = True,
                 lean_beams: bool = True, **generate_kwargs):
        self.model, self.tokenizer = model, tokenizer
        self.max_source_length, self.batch_size = max_source_length, batch_size
        self.constrain_to_source, self.restrict_output = constrain_to_source, restrict_output
        self.group_beams, self.lean_beams = group_beams, lean_beams
        self._common: set[int] | None = None  # common_token_ids, computed on first constrained use
        self.generate_kwargs = generate_kwargs

    @classmethod
    def load(cls, ref: str | None = "default", device: str = "auto", dtype=None, max_source_length: int | None = None,
             **kwargs) -> "Briefer":
        """``max_source_length``: the encoder input in tokens; by default the one the model was trained with
        (``source_window``)."""
        from conflictbrief.model.loading import load_briefer, resolve_ref

        model, tokenizer = load_briefer(ref, device=device, dtype=dtype)
        window = max_source_length or source_window(model, tokenizer, resolve_ref(ref, "briefer"))
        return cls(model, tokenizer, max_source_length=window, **kwargs)

    def _greedy(self, kwargs: dict) -> bool:
        gen = self.model.generation_config
        return kwargs.get("num_beams", gen.num_beams or 1) == 1 and not kwargs.get("do_sample", gen.do_sample)

    @torch.inference_mode()
    def generate_raw(self, sources: list[str], **overrides) -> list[str]:
        """Decoded model output for prepared source strings, batched by length, in input order."""
        device = next(self.model.parameters()).device
        results: list[str] = [""] * len(sources)
        order = sorted(range(len(sources)), key=lambda k: len(sources[k]))
        kwargs = {**self.generate_kwargs, **overrides}
        # The same settings for every batch: decide once whether the lean search can run them (a caller's own
        # logits processor goes to generate).
        lean = lean_settings(self.model, {k: v for k, v in kwargs.items() if k != "cache"}) \
            if self.lean_beams and "logits_processor" not in kwargs else None
        for b in range(0, len(order), self.batch_size):
            idx = order[b: b + self.batch_size]
            enc = self.tokenizer([sources[k] for k in idx], max_length=self.max_source_length, truncation=True,
                                 padding=True, return_tensors="pt").to(device)
            output_layer = nullcontext()
            if self.constrain_to_source:
                from transformers import LogitsProcessorList

                if self._common is None:
                    self._common = common_token_ids(self.tokenizer)
                vocabulary = SourceVocabulary(enc["input_ids"], enc["attention_mask"], self._common)
                kwargs["logits_processor"] = LogitsProcessorList([vocabulary])
                if self.restrict_output and self._greedy(kwargs):
                    output_layer = restricted_output(self.model, vocabulary)
            use_cache = kwargs.get("use_cache", getattr(self.model.generation_config, "use_cache", True))
            shared = self.model.config.is_encoder_decoder and use_cache and "cache" not in overrides
            beams = kwargs.get("num_beams", self.model.generation_config.num_beams or 1)
            grouping = grouped_cross_attention(self.model) if shared and self.group_beams and beams > 1 \
                else nullcontext(False)
            with output_layer, grouping as grouped:
                if shared:
                    kwargs["cache"] = shared_source_cache(self.model, beams if grouped else 1)
                if lean is not None:
                    allowed = vocabulary.allowed(self.model.get_output_embeddings().out_features) \
                        if self.constrain_to_source else None
                    out = beam_search(self.model, enc["input_ids"], enc["attention_mask"], lean, allowed=allowed,
                                      cache=kwargs.get("cache"))
                else:
                    out = self.model.generate(input_ids=enc["input_ids"], attention_mask=enc["attention_mask"],
                                              **kwargs)
            for k, text in zip(idx, self.tokenizer.batch_decode(out, skip_special_tokens=True)):
                results[k] = text
            release_free_memory()  # the batch's caches, freed but fragmented: see inference/heap.py
        return results

    def brief(self, articles: list[CleanText], **overrides) -> list[dict]:
        """Per article: {'text': resurfaced brief, 'headline': resurfaced headline or None, 'raw': model
        output, 'used': sentence indices, 'sentences'}. A model trained with headlines writes
        ``headline ||| brief``; one trained without writes the brief only."""
        prepared = [source_for(a, self.tokenizer, self.max_source_length) for a in articles]
        raw = self.generate_raw([p[0] for p in prepared], **overrides)
        out = []
        for r, a, p in zip(raw, articles, prepared):
            headline, body = split_headline(r)
            out.append({"text": resurface(body, a.text), "headline": resurface(headline, a.text) if headline else None,
                        "raw": r, "used": p[1], "sentences": p[2]})
        return out


def lead_sentences(text: str, n: int = 3) -> str:
    spans = [s for s in split_sentences(text) if len(text[s[0]:s[1]].split()) >= 4] or split_sentences(text)
    return " ".join(text[s:e] for s, e in spans[:n])
