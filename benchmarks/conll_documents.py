"""A tagger on whole CoNLL-2003 documents rather than single sentences: how its windows read long texts.

CoNLL-2003 test (-DOCSTART- lines between its 231 Reuters documents: stories, sports results, tables) is joined
back into documents, read two ways, and scored on the gold tokens with F1 on the mapped labels (PER/ORG/LOC),
over all documents, the "prose" ones (most sentences end in . ! ? or a quote) and the others:
- as text (``Tagger.tag``, what `tag`/`brief`/`serve` do): a sentence that ends in . ! ? or a quote goes on in
  the same paragraph and any other is a line of its own, as on a wire page; an entity tags the gold tokens it
  covers;
- as words (``Tagger.tag_words``, what `evaluate tagger` does with a CoNLL/BIO file of whole documents; a span
  file is read as its text since 2026-12-07).
Each with windows of whole sentences (the default since 2026-12-07) and with windows sliding over the whole
text (before); and sentence by sentence, the evaluation file as it is.

    python benchmarks/conll_documents.py ../shared/data/conll2003/test.txt [--model DIR] [--dtype float32]
        [--model-labels]

``--model-labels``: without ``person_consistent_tags`` (a surname on its own keeps the model's label), as before
2026-12-07.
"""
import argparse
from pathlib import Path

import conflictbrief.inference.tagger as tagging
from conflictbrief.model.labels import LabelSchema
from conflictbrief.training.metrics import entity_scores, restrict_tags
from conflictbrief.training.readers import read_tagger_file

ENDS = {".", "!", "?", '"'}


def documents(path: str, schema: LabelSchema) -> list[list[dict]]:
    """The file's sentences (mapping conll), grouped by -DOCSTART- line."""
    starts = [i for i, line in enumerate(Path(path).read_text(encoding="utf-8").split("\n"), 1)
              if line.startswith("-DOCSTART-")]
    docs: dict[int, list[dict]] = {}
    for e in read_tagger_file(path, schema, "conll", "conll"):
        line = int(e["id"].rsplit(":", 1)[1])
        docs.setdefault(max([0] + [s for s in starts if s < line]), []).append(e)
    return list(docs.values())


def as_text(doc: list[dict]) -> tuple[str, list[tuple[int, int]]]:
    text, offsets = "", []
    for e in doc:
        for token in e["tokens"]:
            if text and not text.endswith("\n"):
                text += " "
            offsets.append((len(text), len(text) + len(token)))
            text += token
        text += " " if e["tokens"][-1] in ENDS else "\n"
    return text, offsets


def text_tags(entities, offsets) -> list[str]:
    tags = ["O"] * len(offsets)
    for entity in entities:
        inside = [i for i, (a, b) in enumerate(offsets) if a < entity.end and b > entity.start]
        for j, i in enumerate(inside):
            tags[i] = ("B-" if j == 0 else "I-") + entity.label
    return tags


def main() -> None:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("data")
    ap.add_argument("--model", default="default")
    ap.add_argument("--dtype", default="float32")
    ap.add_argument("--model-labels", action="store_true")
    args = ap.parse_args()
    schema = LabelSchema.from_yaml(None)
    docs = documents(args.data, schema)
    keep = schema.annotated_labels("conll")
    prose = [sum(e["tokens"][-1] in ENDS for e in d) >= 0.6 * len(d) for d in docs]
    gold = [restrict_tags([t or "O" for e in d for t in e["tags"]], keep) for d in docs]
    tagger = tagging.Tagger.load(args.model, device="cpu", dtype=args.dtype, consistent_names=not args.model_labels)

    def report(name, pred):
        cells = []
        for subset in (lambda i: True, lambda i: prose[i], lambda i: not prose[i]):
            ids = [i for i in range(len(docs)) if subset(i)]
            cells.append(f"{entity_scores([gold[i] for i in ids], [pred[i] for i in ids])['f1']:.4f}")
        print(f"{name}: F1 {' / '.join(cells)} (all {len(docs)} / prose {sum(prose)} / other "
              f"{len(docs) - sum(prose)})", flush=True)

    sentences = [[restrict_tags(t, keep) for t in tagger.tag_words([e["tokens"] for e in d])] for d in docs]
    report("sentence by sentence", [[t for s in d for t in s] for d in sentences])
    texts = [as_text(d) for d in docs]
    words = [[t for e in d for t in e["tokens"]] for d in docs]
    segments = tagging.sentence_segments
    for windows in ("windows of whole sentences", "sliding windows"):
        if windows == "sliding windows":  # the windows of before 2026-12-07: no sentences, so word_windows over it all
            tagging.sentence_segments = lambda text, offsets: None
        tagged = tagger.tag([t for t, _ in texts])
        report(f"as text, {windows}",
               [restrict_tags(text_tags(e, o), keep) for e, (_, o) in zip(tagged, texts)])
        report(f"as words, {windows}", [restrict_tags(t, keep) for t in tagger.tag_words(words)])
    tagging.sentence_segments = segments


if __name__ == "__main__":
    main()
