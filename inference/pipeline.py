"""The one entry point for services: ``Pipeline.load()`` once, then ``analyze`` / ``analyze_batch``.

    from conflictbrief import Pipeline
    p = Pipeline.load(device="auto")
    result = p.analyze(text)            # an AnalysisResult; result.to_dict() is JSON-serialisable
    for r in p.analyze_batch(texts, batch_size=16): ...

A brief is built in four steps: the briefer writes (salient sentences in, article spelling out), the guards
drop sentences with unsupported numbers or names and neutralise loaded terms, salient article sentences
fill in (marked ``origin="extracted"``) when fewer than ``min_sentences`` survive, and every sentence gets the
indices of the article sentences that support it.
"""
from __future__ import annotations

import itertools
import logging
import threading
import time
from dataclasses import asdict, dataclass, field, replace
from typing import Iterable, Iterator

import torch

from conflictbrief import __version__
from conflictbrief.inference.briefer import LEAD_WORDS, SENTENCE_WORDS, Briefer, content_words, is_question, \
    report_leads, report_openings, salience, strip_lead_note
from conflictbrief.inference.clean import ENGLISH_MIN, CleanText, clean, english_share, split_sentences, text_chars
from conflictbrief.inference.deadline import CHARS, TimeLimitExceeded, budget, time_limit
from conflictbrief.inference.guards import Guard, GuardReport, Lexicon, loaded_terms, provenance, supported_values, \
    unsupported_numbers
from conflictbrief.inference.recase import bracketed_acronyms, is_upper_cased, name_words, recase
from conflictbrief.inference.tagger import Tagger
from conflictbrief.model.loading import default_batch_size, default_installed, parse_dtype, weights_fingerprint

logger = logging.getLogger(__name__)


class InputError(ValueError):
    """An article that cannot be analysed (names the record and the problem)."""


class TimeLimitError(InputError):
    """An article whose analysis ran past the time limit and was stopped (the HTTP service answers 504)."""


@dataclass(frozen=True)
class EntityResult:
    label: str
    text: str
    start: int  # offsets into the cleaned text
    end: int
    raw_start: int  # offsets into the input as given
    raw_end: int
    score: float
    report: int | None = None  # several reports of one event: which one (0-based, as given) it is in


@dataclass(frozen=True)
class BriefSentence:
    text: str
    sources: list[int]  # indices into AnalysisResult.sentences
    origin: str  # "generated" by the briefer, or "extracted" from the article when too few survived guards
    report: int | None = None  # several reports of one event: which one (0-based, as given) its first source is in


@dataclass(frozen=True)
class AnalysisResult:
    id: str | None
    text: str
    date: str | None
    sentences: list[tuple[int, int]]
    entities: list[EntityResult]
    brief: list[BriefSentence]
    headline: str | None
    guards: dict
    warnings: list[str]
    models: dict
    timings: dict = field(default_factory=dict)
    error: str | None = None
    reports: list[int] = field(default_factory=list)  # several reports of one event: where each starts in text

    @property
    def brief_text(self) -> str:
        return " ".join(s.text for s in self.brief)

    def to_dict(self) -> dict:
        return asdict(self)


def _fingerprint(model) -> str:
    source = getattr(model.config, "_name_or_path", "") or ""
    return weights_fingerprint(source) or source or "unknown"


def _guard_inputs(draft: dict) -> list[str]:
    """What the guards check in a draft: its headline, if any, then its sentences."""
    return ([draft["headline"]] if draft.get("headline") else []) + _sentences(draft)


def _sentences(draft: dict) -> list[str]:
    """The distinct sentences (3 words or more) of a generated brief."""
    generated, seen = [], set()
    for s, e in split_sentences(draft["text"]):
        sentence = draft["text"][s:e].strip()
        if len(sentence.split()) >= 3 and sentence.lower() not in seen:
            seen.add(sentence.lower())
            generated.append(sentence)
    return generated


REDUNDANT = 0.7
"""An extracted sentence is passed over when this share of its content words (or of the picked sentence's,
whichever has fewer) is in a sentence already picked."""


def _overlap(a: str, b: str) -> float:
    wa, wb = set(content_words(a)), set(content_words(b))
    return len(wa & wb) / min(len(wa), len(wb)) if wa and wb else 0.0


def _item(item) -> tuple:
    """(id, text) of an ``analyze_batch`` item; a dict's "reports" (a list of texts) stand for its text."""
    if isinstance(item, dict):
        return item.get("id"), item["reports"] if "reports" in item and "text" not in item else item.get("text")
    if isinstance(item, (tuple, list)):
        if len(item) != 2:
            raise InputError(f"an item is a text, an (id, text) pair or a dict with 'text' (and 'id'); got a "
                             f"{type(item).__name__} of {len(item)}")
        return item[0], item[1]
    return None, item


class Pipeline:
    def __init__(self, tagger: Tagger, briefer: Briefer | None, guard: Guard | None = None,
                 max_chars: int = 200_000, min_sentences: int = 2, max_sentences: int = 5,
                 models: dict | None = None, extractive: bool = False, batch_size: int = 16,
                 time_limit: float | None = None):
        self.tagger, self.briefer = tagger, briefer
        # seconds per 10,000 characters (that at least) that an article may take before it becomes an error
        # result; None: no limit. Only in the main thread on POSIX (conflictbrief.inference.deadline.budget)
        self.time_limit = time_limit
        self.batch_size = batch_size  # articles per model batch in analyze_batch unless the call names one
        self.extractive = extractive  # no briefer model: briefs are salient article sentences
        self.guard = guard or Guard(tagger=tagger)
        self.max_chars, self.min_sentences, self.max_sentences = max_chars, min_sentences, max_sentences
        self.models = models or {}
        self._lock = threading.Lock()  # the models are shared; callers on other threads queue here

    @classmethod
    def load(cls, tagger: str | None = "default", briefer: str | None = "default", device: str = "auto",
             dtype: torch.dtype | str | None = "auto", neutrality: str | None = None, threads: int | None = None,
             batch_size: int | None = None, mentions: str = "names", min_score: float = 0.0,
             consistent_names: bool = True, **kwargs) -> "Pipeline":
        """Load both models once. ``tagger``/``briefer``: 'default', a directory or a Hub name;
        ``briefer=None`` tags only. ``dtype``: 'auto' (the default) is bfloat16 on a CPU with AMX units and
        float32 elsewhere (``conflictbrief.model.loading.auto_dtype``); None or 'float32' for float32;
        float16/bfloat16 on GPU; bfloat16 (on a CPU with AMX) or 'int8' (dynamic quantisation) on CPU.
        ``mentions``: 'names' leaves out entities that are only a pronoun or determiner ("he", "we"), 'all'
        keeps every entity the tagger finds (see ``conflictbrief.inference.tagger.MENTIONS``). ``min_score``:
        entities scored lower are left out (precision and recall on re3d dev for a few values: docs/measurements.md,
        "Precision or recall").
        ``consistent_names``: a surname on its own takes the Person label of the full name in the same text
        (``conflictbrief.inference.tagger.person_consistent_tags``); False keeps the model's own labels."""
        lexicon = Lexicon.load(neutrality)  # a bad lexicon stops before any weights are loaded
        if threads:
            torch.set_num_threads(threads)
        dtype = parse_dtype(dtype, device)
        batch_size = batch_size or default_batch_size(dtype)
        t = Tagger.load(tagger, device=device, dtype=dtype, batch_size=batch_size * 2, mentions=mentions,
                        min_score=min_score, consistent_names=consistent_names)
        extractive = briefer == "default" and not default_installed("briefer")
        b = Briefer.load(briefer, device=device, dtype=dtype, batch_size=batch_size) if briefer and not extractive \
            else None
        models = {"conflictbrief": __version__,
                  "tagger": {"ref": tagger or "default", "weights": _fingerprint(t.model), "labels": t.labels,
                             "mentions": mentions, "min_score": min_score, "consistent_names": consistent_names},
                  "briefer": {"ref": briefer, "weights": _fingerprint(b.model), "source_tokens": b.max_source_length}
                  if b else None,
                  "device": str(next(t.model.parameters()).device),
                  "dtype": str(dtype).replace("torch.", "") if dtype is not None else "float32"}
        if extractive:
            models["briefer"] = {"ref": None, "note": "no default briefer installed: briefs are extracted sentences"}
        return cls(t, b, Guard(lexicon, tagger=t), models=models, extractive=extractive, batch_size=batch_size,
                   **kwargs)

    # ------------------------------------------------------------------------------------------ API
    def analyze(self, text: str | list[str], id: str | None = None, brief: bool = True) -> AnalysisResult:
        """Analyse one article, or a list of the reports of one event (one brief drawing on each; see
        ``clean``); raises InputError for text that cannot be analysed (or, with ``time_limit`` set, whose
        analysis runs past it). ``brief=False``: entities only (no brief, headline or guards)."""
        limit = budget(self.time_limit, text_chars(text))
        try:
            with time_limit(limit):
                article = self._check(text, id)
                return self._run([(id, article)], brief)[0]
        except TimeLimitExceeded:
            raise TimeLimitError(self._overran(id, text_chars(text), limit)) from None

    def analyze_batch(self, items: Iterable, batch_size: int | None = None, pool: int = 4,
                      brief: bool = True) -> Iterator[AnalysisResult]:
        """Stream results in input order. Items are texts, (id, text) pairs or {"id", "text"} dicts; a text
        may be a list of the reports of one event (in a pair, or a dict's "reports"; a bare list is a pair).
        ``batch_size * pool`` articles are read at a time and sorted by length into model batches (less
        padding); memory stays bounded by that. A bad item (not one of those, or a text that cannot be
        analysed) yields a result with ``error`` set instead of stopping the stream. ``brief=False``:
        entities only."""
        batch_size = batch_size or self.batch_size
        iterator = iter(items)
        counter = itertools.count()
        while True:
            chunk = list(itertools.islice(iterator, batch_size * max(1, pool)))
            if not chunk:
                return
            prepared, results = [], {}
            for item in chunk:
                n = next(counter)
                rid = None
                try:
                    rid, text = _item(item)
                    limit = budget(self.time_limit, text_chars(text))
                    with time_limit(limit):
                        prepared.append((n, rid, self._check(text, rid)))
                except InputError as e:
                    results[n] = self.error_result(rid, str(e))
                except TimeLimitExceeded:
                    results[n] = self.error_result(rid, self._overran(rid, text_chars(text), limit))
            for (n, _, _), result in zip(prepared, self._run_isolated([(rid, a) for _, rid, a in prepared], brief)):
                results[n] = result
            yield from (results[k] for k in sorted(results))

    def _run_isolated(self, batch: list[tuple[str | None, CleanText]], brief: bool = True) -> list[AnalysisResult]:
        """``_run``; where it fails on a batch, each article alone, so that an article the models cannot take
        (a bug of ours, or memory) becomes one error result naming it, and the others are analysed as usual.
        With ``time_limit`` set, a batch and an article alone are held to ``deadline.budget``."""
        limit = budget(self.time_limit, sum(len(a.text) for _, a in batch), len(batch))
        try:
            with time_limit(limit):
                return self._run(batch, brief)
        except TimeLimitExceeded:
            if len(batch) > 1:
                logger.warning("a batch of %d articles ran past its time limit of %g s: analysing them one at a "
                               "time", len(batch), limit)
                return [r for item in batch for r in self._run_isolated([item], brief)]
            rid, article = batch[0]
            return [self.error_result(rid, self._overran(rid, len(article.text), limit))]
        except Exception as e:  # noqa: BLE001 - reported per record below; KeyboardInterrupt still stops
            if len(batch) > 1:
                return [r for item in batch for r in self._run_isolated([item], brief)]
            rid = batch[0][0]
            logger.exception("analysis failed for record %r", rid)
            where = f"record {rid!r}: " if rid is not None else ""
            return [self.error_result(rid, f"{where}analysis failed ({type(e).__name__}: {str(e)[:200]}); "
                                           "please report it with the record")]

    def _overran(self, rid: str | None, chars: int, limit: float) -> str:
        where = f"record {rid!r}: " if rid is not None else ""
        return (f"{where}analysis ran past its time limit of {limit:g} s ({self.time_limit:g} s per {CHARS:,} "
                f"characters, that at least; this text has {chars:,}) and was stopped: please report it with the "
                "record; --time-limit sets the limit")

    def error_result(self, rid: str | None, message: str) -> AnalysisResult:
        return AnalysisResult(rid, "", None, [], [], [], None, {}, [], self.models, {}, message)

    # ------------------------------------------------------------------------------------ internals
    def _check(self, text, rid) -> CleanText:
        """The cleaned text; ``text`` is one article or a list of reports of one event (``clean``)."""
        where = f"record {rid!r}: " if rid is not None else ""
        if isinstance(text, (list, tuple)) and not text:
            raise InputError(f"{where}text is an empty list: give an article, or the reports of one event")
        if not isinstance(text, (str, list, tuple)):
            raise InputError(f"{where}text must be a string (or a list of the reports of one event), got "
                             f"{type(text).__name__}")
        if text_chars(text) > self.max_chars:
            raise InputError(f"{where}text has {text_chars(text)} characters, above the limit of {self.max_chars} "
                             f"(raise max_chars / --max-chars to allow it)")
        try:
            article = clean(text)
        except TypeError as e:  # a report that is not a string ("report 2 of 3 must be a string, got int")
            raise InputError(f"{where}{e}") from None
        if not article.text.strip():
            raise InputError(f"{where}text is empty after cleaning")
        return article

    def _run(self, batch: list[tuple[str | None, CleanText]], brief: bool = True) -> list[AnalysisResult]:
        """The analysis of a batch of cleaned articles; ``brief=False``: their entities only."""
        if not batch:
            return []
        articles = [a for _, a in batch]
        with self._lock:
            t0 = time.perf_counter()
            entities = self.tagger.tag([a.text for a in articles])
            t1 = time.perf_counter()
            drafts = self.briefer.brief(articles) if self.briefer and brief else [None] * len(articles)
            t2 = time.perf_counter()
            # Headline first, then the brief's sentences; one tagger pass over all of them for the whole
            # batch, not one per article.
            generated = [_guard_inputs(d) if d else [] for d in drafts]
            flat = self.guard.names([s for g in generated for s in g]) if any(generated) else []
            names, at = [], 0
            for g in generated:
                names.append(flat[at: at + len(g)])
                at += len(g)
            assembled = [list(self._assemble(a, d, g, n)) if brief else [[], None, {}, []]
                         for a, d, g, n in zip(articles, drafts, generated, names)]
            capitals = [k for k, a in enumerate(articles) if assembled[k][0] and is_upper_cased(a.text)]
            if capitals:
                self._recase([articles[k] for k in capitals], [entities[k] for k in capitals],
                             [assembled[k] for k in capitals])
            for article, item in zip(articles, assembled):
                share = english_share(article.text)
                if share is not None and share < ENGLISH_MIN:
                    item[3].insert(0, f"the text does not read as English prose ({share:.0%} English function "
                                      "words; English news has 13% or more, a third typically): a table, a "
                                      "listing or another language? The models are trained on English news")
            t3 = time.perf_counter()
        share = 1000 / len(batch)
        timings = {"tag_ms": round((t1 - t0) * share, 1), "brief_ms": round((t2 - t1) * share, 1),
                   "guard_ms": round((t3 - t2) * share, 1)}
        results = []
        for (rid, article), ents, (brief, headline, report, warnings) in zip(batch, entities, assembled):
            spans = split_sentences(article.text)
            if article.reports:  # which report each brief sentence draws on (its first source sentence's)
                brief = [replace(b, report=article.report_of(spans[b.sources[0]][0]) if b.sources else None)
                         for b in brief]
            out_entities = [EntityResult(e.label, e.text, e.start, e.end, *article.raw_span(e.start, e.end),
                                         e.score, article.report_of(e.start)) for e in ents]
            results.append(AnalysisResult(rid, article.text, article.date, spans,
                                          out_entities, brief, headline, report, warnings, self.models, timings,
                                          reports=list(article.reports)))
        return results

    def _assemble(self, article: CleanText, draft: dict | None, generated: list[str], names: list[list[str]]):
        """Brief, headline, guard report and warnings of one article. ``generated``: ``_guard_inputs(draft)``;
        ``names``: the names the tagger found in each of them."""
        spans = split_sentences(article.text)
        sources = [article.text[s:e] for s, e in spans]
        openings = report_openings(spans, article.reports)
        if draft is None and self.extractive:
            substituted: list[dict] = []
            brief = self._extract(sources, set(), self.min_sentences + 1, substituted, openings)
            source_terms = [t for t, _, _ in loaded_terms(article.text, self.guard.lexicon)]
            return brief, None, {"removed": [], "substituted": substituted, "loaded_terms_source": source_terms,
                                 "loaded_terms_brief": self._terms(brief)}, [
                "no briefer model installed: the brief is made of extracted article sentences", *self._short(brief)]
        if draft is None:
            return [], None, {}, ["no briefer loaded: entities only"]
        headline = None
        if draft.get("headline"):  # the same guards as a brief sentence; a failed headline is reported
            kept, head_report = self.guard.check(generated[:1], article.text, names[:1])
            headline = kept[0] if kept else None
            generated, names = generated[1:], names[1:]
        kept, report = self.guard.check(generated, article.text, names)
        if draft.get("headline"):
            report.removed[:0] = [{**r, "headline": True} for r in head_report.removed]
            report.substituted[:0] = head_report.substituted
        brief = [BriefSentence(s, provenance(s, sources), "generated") for s in kept[: self.max_sentences]]
        warnings = []
        if len(brief) < self.min_sentences:
            extracted = self._extract(sources, {i for b in brief for i in b.sources},
                                      self.min_sentences - len(brief), report.substituted, openings)
            if extracted:
                warnings.append(f"{len(extracted)} sentence(s) taken from the article: the briefer gave "
                                f"{len(brief)} that passed the guards")
            brief += extracted
        guards = {"removed": report.removed, "substituted": report.substituted,
                  "loaded_terms_source": report.loaded_terms_source,
                  "loaded_terms_brief": self._terms(brief),
                  "model_output": draft["raw"], "input_sentences": draft["used"]}
        return brief, headline, guards, warnings + self._short(brief)

    def _terms(self, brief: list[BriefSentence]) -> list[str]:
        """The loaded terms left in a brief (outside quotations)."""
        return [t for b in brief for t, _, _ in loaded_terms(b.text, self.guard.lexicon)]

    def _recase(self, articles: list[CleanText], entities: list[list], assembled: list[list]) -> None:
        """Sentence case, with capitals kept on names, for the brief and headline of articles written in
        capitals (``conflictbrief.inference.recase``); one tagger pass over all their sentences. ``assembled``
        items (brief, headline, guards, warnings) are updated in place."""
        texts = [[b.text for b in item[0]] + ([item[1]] if item[1] else []) for item in assembled]
        tagged = self.tagger.tag([t for ts in texts for t in ts])
        vocabulary = getattr(self.tagger.tokenizer, "vocab", None)
        at = 0
        for article, ents, item, ts in zip(articles, entities, assembled, texts):
            acronyms, known = bracketed_acronyms(article.text), name_words(ents, article.text)
            cased = [recase(t, e, acronyms, known, vocabulary) for t, e in zip(ts, tagged[at: at + len(ts)])]
            at += len(ts)
            item[0] = [replace(b, text=c) for b, c in zip(item[0], cased)]
            if item[1]:
                item[1] = cased[-1]
            item[3].append("the article is in capitals: the brief is in sentence case, with capitals on the "
                           "names the tagger found")

    def _short(self, brief: list[BriefSentence]) -> list[str]:
        if len(brief) >= self.min_sentences:
            return []
        return [f"short brief: {len(brief)} sentence(s); the article has no other sentence of 4-{SENTENCE_WORDS} "
                f"words (its lead up to {LEAD_WORDS}) free of loaded terms that cannot be neutralised"]

    def _extract(self, sources: list[str], used: set[int], n: int, substituted: list[dict] | None = None,
                 openings: list[int] = ()) -> list[BriefSentence]:
        """The ``n`` most salient sentences of 6-60 words (a report's lead up to 90: ``LEAD_WORDS``), in article
        order; in a short article, where too few are that long, sentences of 4 words or more fill in ("More
        than 300 fled."; shorter ones are headings, captions or bylines as often as not), and a question
        ("How do they get away with it?") only where no statement is left. Loaded terms are neutralised as in a
        generated brief (replaced, or a qualifier left out; the changes are appended to ``substituted``); a
        sentence with a term that allows neither is passed over. ``openings``: the sentences that open each of
        several reports (``briefer.report_openings``), whose leads then come first."""
        scores = salience(sources, openings)
        ranked = sorted(range(len(sources)), key=lambda k: -scores[k])
        leads = report_leads(scores, openings)
        picked: dict[int, str] = {}
        changes: list[dict] = []
        for shortest, questions in ((6, False), (4, False), (4, True)):
            for i in ranked:
                words = len(sources[i].split())
                if len(picked) == n:
                    break
                longest = LEAD_WORDS if i in leads else SENTENCE_WORDS
                if i in used or i in picked or scores[i] < 0 or not shortest <= words <= longest:
                    continue
                if is_question(sources[i]) and not questions:
                    continue
                if any(_overlap(sources[i], sources[k]) >= REDUNDANT for k in [*picked, *used]):
                    continue  # says again what a picked sentence says ("... a study has warned" / "... warns")
                report = GuardReport()
                text = self.guard.neutralise(strip_lead_note(sources[i]), report)
                if text is not None:  # a lower-cased article's sentence still starts with a capital
                    picked[i] = text[:1].upper() + text[1:]
                    changes += report.substituted
        if substituted is not None:
            substituted += changes
        return [BriefSentence(picked[i], [i], "extracted") for i in sorted(picked)]

    # --------------------------------------------------------------------------------- evaluation
    def evaluate_briefs(self, pairs: list[dict], batch_size: int | None = None,
                        briefs_to: list | None = None) -> dict:
        """ROUGE of the final briefs, lead-3, and the faithfulness/neutrality figures (briefer issue).
        ``briefs_to``, a list, gets a record per pair: its brief beside the reference, their ROUGE-L and
        lead-3's, the brief sentences' origins and what the guards removed (or the error). ``rougeL_vs_lead3``:
        brief minus lead-3 article by article, with a bootstrap interval (``training.metrics.rouge_with_lead3``)."""
        from conflictbrief.inference.briefer import lead_sentences
        from conflictbrief.training.metrics import rouge_with_lead3

        started = time.perf_counter()
        results = list(self.analyze_batch(((p["id"], p["text"]) for p in pairs), batch_size=batch_size))
        seconds = time.perf_counter() - started
        ok = [(p, r) for p, r in zip(pairs, results) if r.error is None]
        briefs = [r.brief_text for _, r in ok]
        refs = [p["brief"] for p, _ in ok]
        rouge, brief_l, lead_l = rouge_with_lead3(briefs, [lead_sentences(r.text) for _, r in ok], refs)
        unsupported = sum(1 for (_, r), b in zip(ok, briefs) if unsupported_numbers(b, supported_values(r.text)))
        brief_entities = self.tagger.tag(briefs)
        found = total = 0
        for (_, r), ents in zip(ok, brief_entities):
            article = r.text.lower()
            for e in ents:
                total += 1
                found += e.text.lower() in article
        if briefs_to is not None:
            scored = iter(zip(brief_l, lead_l))
            for p, r in zip(pairs, results):
                if r.error is not None:
                    briefs_to.append({"id": p["id"], "error": r.error})
                    continue
                mine, lead = next(scored)
                briefs_to.append({"id": p["id"], "brief": r.brief_text, "reference": p["brief"],
                                  "rougeL": round(mine, 4), "lead3_rougeL": round(lead, 4),
                                  "origins": [s.origin for s in r.brief], "removed": r.guards["removed"],
                                  "warnings": r.warnings})
        n = max(1, len(ok))
        return {
            **rouge,  # and rougeL_vs_lead3: is a difference from lead-3 more than the draw of the articles?
            "unsupported_number_rate": round(unsupported / n, 4),
            "entity_precision": round(found / total, 4) if total else None,
            "loaded_term_rate": round(sum(bool(loaded_terms(b, self.guard.lexicon)) for b in briefs) / n, 4),
            "loaded_term_rate_source": round(sum(bool(r.guards["loaded_terms_source"]) for _, r in ok) / n, 4),
            "extracted_sentence_share": round(sum(s.origin == "extracted" for _, r in ok for s in r.brief)
                                              / max(1, sum(len(r.brief) for _, r in ok)), 4),
            "removed_by_guards": sum(len(r.guards["removed"]) for _, r in ok),
            "n": len(ok),
            "errors": len(results) - len(ok),
            "seconds_per_article": round(seconds / max(1, len(results)), 3),
        }


_shared: Pipeline | None = None
_shared_lock = threading.Lock()


def default_pipeline() -> Pipeline:
    """The default pipeline (``Pipeline.load()``: the shipped models, ``device="auto"``, ``dtype="auto"``),
    loaded by the first call in the process (in whichever thread makes it; the others wait) and shared."""
    global _shared
    with _shared_lock:
        if _shared is None:
            _shared = Pipeline.load()
        return _shared


def analyze(text: str | list[str], id: str | None = None, brief: bool = True) -> AnalysisResult:
    """One function for other Python services: ``conflictbrief.analyze(text)`` analyses one article (or a
    list of the reports of one event) with the
    default pipeline (``default_pipeline``), loaded once, on the first call. Raises InputError as
    ``Pipeline.analyze`` does; ``brief=False``: entities only. Other models or options: ``Pipeline.load(...)``
    once, then its ``analyze``."""
    return default_pipeline().analyze(text, id, brief)
