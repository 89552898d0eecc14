"""Metrics computed with the metric libraries directly (no Hub downloads): seqeval and rouge-score."""
from __future__ import annotations

import re

from conflictbrief.model.labels import OUTSIDE, split_tag


def entity_scores(gold: list[list[str]], pred: list[list[str]]) -> dict:
    """Entity-level precision/recall/F1, micro and macro, per label (seqeval, strict IOB2)."""
    from seqeval.metrics import classification_report
    from seqeval.scheme import IOB2

    report = classification_report(gold, pred, mode="strict", scheme=IOB2, output_dict=True, zero_division=0)
    per_label = {
        label: {"precision": round(v["precision"], 4), "recall": round(v["recall"], 4),
                "f1": round(v["f1-score"], 4), "support": int(v["support"])}
        for label, v in report.items() if not label.endswith(" avg")
    }
    micro, macro = report.get("micro avg", {}), report.get("macro avg", {})
    return {
        "precision": round(micro.get("precision", 0.0), 4),
        "recall": round(micro.get("recall", 0.0), 4),
        "f1": round(micro.get("f1-score", 0.0), 4),
        "macro_f1": round(macro.get("f1-score", 0.0), 4),
        "per_label": per_label,
        "sentences": len(gold),
    }


def entity_errors(tokens: list[list[str]], gold: list[list[str]], pred: list[list[str]],
                  ids: list | None = None) -> tuple[dict, list[dict]]:
    """What the scores count against a model, sentence by sentence, on the entities seqeval scores (strict
    IOB2): a gold entity with no prediction of the same extent is ``wrong_label`` when one of that extent has
    another label, ``wrong_span`` when one of its label overlaps it with another extent, else ``missed``; a
    prediction left over is ``spurious``. Returns (counts of each kind, one record per sentence with a
    mistake: ``{"id", "text", "missed": [{"text", "label"}], "spurious": [...], "wrong_label": [{"text",
    "gold", "predicted"}], "wrong_span": [{"gold", "predicted", "label"}]}``)."""
    from seqeval.scheme import IOB2, Entities

    kinds = ("missed", "spurious", "wrong_label", "wrong_span")
    counts, records = dict.fromkeys(kinds, 0), []
    gold_entities, pred_entities = Entities(gold, IOB2).entities, Entities(pred, IOB2).entities
    for n, (words, ge, pe) in enumerate(zip(tokens, gold_entities, pred_entities)):
        g = {(e.start, e.end): e.tag for e in ge}
        p = {(e.start, e.end): e.tag for e in pe}
        found = {k: [] for k in kinds}
        text = lambda span: " ".join(words[span[0]:span[1]])  # noqa: E731
        for span in [k for k in g if k in p and p[k] != g[k]]:
            found["wrong_label"].append({"text": text(span), "gold": g.pop(span), "predicted": p.pop(span)})
        for span in [k for k in g if k in p]:  # right
            del g[span], p[span]
        for span, label in list(g.items()):
            other = next((q for q, ql in p.items() if ql == label and q[0] < span[1] and span[0] < q[1]), None)
            if other is not None:
                found["wrong_span"].append({"gold": text(span), "predicted": text(other), "label": label})
                del g[span], p[other]
        found["missed"] = [{"text": text(k), "label": v} for k, v in g.items()]
        found["spurious"] = [{"text": text(k), "label": v} for k, v in p.items()]
        if any(found.values()):
            for k in kinds:
                counts[k] += len(found[k])
            records.append({"id": ids[n] if ids else n, "text": " ".join(words), **found})
    return counts, records



def label_errors(records: list[dict]) -> dict:
    """``entity_errors``' records summed by gold label (by predicted label for spurious entities), the kinds a
    label has: ``{label: {"missed", "spurious", "wrong_span", "labelled_as": {other label: n}}}``, so that a
    report says which labels are taken for which (a gold entity whose exact extent got another label)."""
    out: dict[str, dict] = {}

    def of(label: str) -> dict:
        return out.setdefault(label, {"missed": 0, "spurious": 0, "wrong_span": 0, "labelled_as": {}})

    for r in records:
        for kind in ("missed", "spurious"):
            for e in r[kind]:
                of(e["label"])[kind] += 1
        for e in r["wrong_span"]:
            of(e["label"])["wrong_span"] += 1
        for e in r["wrong_label"]:
            taken = of(e["gold"])["labelled_as"]
            taken[e["predicted"]] = taken.get(e["predicted"], 0) + 1
    for counts in out.values():
        counts["labelled_as"] = dict(sorted(counts["labelled_as"].items(), key=lambda kv: (-kv[1], kv[0])))
    return dict(sorted(out.items()))

def restrict_tags(tags: list[str], keep: set[str]) -> list[str]:
    """Set tags of labels outside ``keep`` to O (evaluating a schema-wide tagger on CoNLL's three types)."""
    return [t if t == OUTSIDE or split_tag(t)[1] in keep else OUTSIDE for t in tags]


_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[\"'A-Z0-9])")


_ROUGE_KEYS = ("rouge1", "rouge2", "rougeL", "rougeLsum")


def rouge_each(predictions: list[str], references: list[str]) -> list[dict]:
    """ROUGE-1/2/L/Lsum F-measure (0-1) with stemming of each prediction against its reference; Lsum with one
    sentence per line."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(list(_ROUGE_KEYS), use_stemmer=True)
    out = []
    for pred, ref in zip(predictions, references):
        pred_l = "\n".join(_SENT_SPLIT.split(pred.strip()))
        ref_l = "\n".join(_SENT_SPLIT.split(ref.strip()))
        scores = scorer.score(ref_l, pred_l)
        out.append({k: scores[k].fmeasure for k in _ROUGE_KEYS})
    return out


def _mean_rouge(each: list[dict]) -> dict:
    n = max(len(each), 1)
    return {k: round(sum(e[k] for e in each) / n, 4) for k in _ROUGE_KEYS}


def rouge_scores(predictions: list[str], references: list[str]) -> dict:
    """ROUGE-1/2/L/Lsum F-measure (0-1) with stemming, averaged over the pairs; Lsum with one sentence per line."""
    return _mean_rouge(rouge_each(predictions, references))


def paired_difference(a: list[float], b: list[float], resamples: int = 1000, seed: int = 0) -> dict:
    """Mean of ``a[i] - b[i]`` with a 95% percentile bootstrap interval (``resamples`` resamplings of the pairs,
    seeded, so the same scores give the same interval), and how many pairs are above, below or equal. An
    interval that holds 0 means the data cannot tell the two apart."""
    import random

    diffs = [x - y for x, y in zip(a, b)]
    if not diffs:
        return {"mean_difference": None, "ci95": None, "better": 0, "worse": 0, "same": 0}
    rng, n = random.Random(seed), len(diffs)
    means = sorted(sum(diffs[rng.randrange(n)] for _ in range(n)) / n for _ in range(resamples))
    return {"mean_difference": round(sum(diffs) / n, 4),
            "ci95": [round(means[int(0.025 * resamples)], 4), round(means[int(0.975 * resamples) - 1], 4)],
            "better": sum(d > 1e-9 for d in diffs), "worse": sum(d < -1e-9 for d in diffs),
            "same": sum(abs(d) <= 1e-9 for d in diffs)}


def rouge_with_lead3(briefs: list[str], leads: list[str], references: list[str]) -> tuple[dict, list, list]:
    """The ROUGE of ``briefs``, the same for ``leads`` (``lead3``) and brief minus lead-3 article by article
    (``rougeL_vs_lead3``); with each brief's and each lead's ROUGE-L."""
    brief_each, lead_each = rouge_each(briefs, references), rouge_each(leads, references)
    brief_l, lead_l = [e["rougeL"] for e in brief_each], [e["rougeL"] for e in lead_each]
    return {**_mean_rouge(brief_each), "lead3": _mean_rouge(lead_each),
            "rougeL_vs_lead3": paired_difference(brief_l, lead_l)}, brief_l, lead_l
