"""How a tagger reads place names it has never seen in short conflict sentences (a service caller's text):
each name of PROBES (one a line; benchmarks/geonames_mentions.py writes them) put into 12 one-sentence templates
("Syrian forces shelled {X} on Monday.", "{X} was shelled again on Sunday.", ...). Prints one JSON object: the
share of the name's occurrences tagged exactly as Location, the labels it got otherwise ("(other span)": an
entity that covers only part of the name or more than it; "(missed)": none), the same for a list of places in the
news, and the sentences' count.

    python benchmarks/place_probes.py runs/place_probes.txt [--model DIR] [--names 250]
"""
import argparse
import collections
import json
import random

TEMPLATES = [
    "Syrian forces shelled {X} on Monday.", "Russian jets struck {X}, killing 12 civilians.",
    "Fighting continued near {X} overnight.", "Thousands of people fled {X} after the attack.",
    "The army said it had retaken {X}.", "A car bomb exploded in {X} on Tuesday.",
    "Rebels withdrew from {X} late on Friday.", "Aid convoys reached {X} for the first time in months.",
    "Drones hit a fuel depot outside {X}.", "Clashes broke out in {X} between government troops and militants.",
    "{X} was shelled again on Sunday.", "Residents of {X} said the water supply had been cut."]
NEWS = ["Idlib", "Avdiivka", "Maarat al-Numan", "Bakhmut", "Marib", "El Fasher", "Khan Younis", "Rafah", "Kherson",
        "Mosul", "Raqqa", "Aleppo", "Hodeidah", "Goma", "Kidal", "Sittwe", "Lashkar Gah", "Timbuktu"]


def score(tagger, names: list[str]) -> dict:
    texts, spans = [], []
    for name in names:
        for template in TEMPLATES:
            text = template.replace("{X}", name)
            texts.append(text)
            spans.append((text.index(name), text.index(name) + len(name)))
    got = collections.Counter()
    for (start, end), entities in zip(spans, tagger.tag(texts)):
        exact = [e.label for e in entities if (e.start, e.end) == (start, end)]
        overlapping = any(e.start < end and start < e.end for e in entities)
        got[exact[0] if exact else "(other span)" if overlapping else "(missed)"] += 1
    return {"location": round(got["Location"] / len(texts), 4), "labels": dict(got.most_common()),
            "sentences": len(texts)}


def main() -> None:
    from conflictbrief.inference.tagger import Tagger

    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("probes")
    ap.add_argument("--model", default="default")
    ap.add_argument("--names", type=int, default=250, help="names drawn from PROBES (seed 1)")
    ap.add_argument("--dtype", default="float32")
    args = ap.parse_args()
    with open(args.probes, encoding="utf-8") as f:
        names = [line.strip() for line in f if line.strip()]
    tagger = Tagger.load(args.model, dtype=args.dtype)
    sample = random.Random(1).sample(names, min(args.names, len(names)))
    print(json.dumps({"model": args.model, "probes": score(tagger, sample), "news": score(tagger, NEWS)}))


if __name__ == "__main__":
    main()
