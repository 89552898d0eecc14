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


def restrict_tags(tags: list[str], keep: set[str]) -> list[str]:
    """Set tags of labels outside ``keep`` to O (evaluating a schema-wide tagger on CoNLL's three types)."""
    return [t if t == OUTSIDE or split_tag(t)[1] in keep else OUTSIDE for t in tags]


_SENT_SPLIT = re.compile(r"(?<=[.!?])\s+(?=[\"'A-Z0-9])")


def rouge_scores(predictions: list[str], references: list[str]) -> dict:
    """ROUGE-1/2/L/Lsum F-measure (0-1) with stemming; Lsum with one sentence per line."""
    from rouge_score import rouge_scorer

    scorer = rouge_scorer.RougeScorer(["rouge1", "rouge2", "rougeL", "rougeLsum"], use_stemmer=True)
    totals = {k: 0.0 for k in ("rouge1", "rouge2", "rougeL", "rougeLsum")}
    for pred, ref in zip(predictions, references):
        pred_l = "\n".join(_SENT_SPLIT.split(pred.strip()))
        ref_l = "\n".join(_SENT_SPLIT.split(ref.strip()))
        scores = scorer.score(ref_l, pred_l)
        for k in totals:
            totals[k] += scores[k].fmeasure
    n = max(len(predictions), 1)
    return {k: round(v / n, 4) for k, v in totals.items()}
