"""Micro-benchmarks behind the tables of docs/performance.md: one lever at a time, same articles, same weights.

    python benchmarks/levers.py generate --briefer runs/briefer [--dtype int8] [--batch-sizes 1,4,16,32]
    python benchmarks/levers.py cache --briefer runs/briefer          # shared cross-attention cache on/off
    python benchmarks/levers.py group --briefer runs/briefer [--dtype bfloat16]  # grouped cross-attention on/off
    python benchmarks/levers.py lean --briefer runs/briefer [--dtype bfloat16]   # lean beam search vs generate
    python benchmarks/levers.py tag [--dtype int8]                   # our tagger vs the HF pipeline, windows
    python benchmarks/levers.py restrict --briefer runs/briefer [--dtype int8] [--limit 40]
                                             # output layer over the allowed tokens only: greedy and beam speed,
                                             # and beam ROUGE of the full pipeline on --limit pairs per val set

Articles: the first N of SumLLM gpt4 val + NeuS val (as benchmarks/bench.py). Prints one JSON line per figure.
"""
from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parent))
from bench import load_articles  # noqa: E402


def _timed(fn):
    started = time.perf_counter()
    out = fn()
    return out, round(time.perf_counter() - started, 2)


def _interleaved(b, sources, variants: dict) -> dict:
    """{name: [(outputs, seconds), (outputs, seconds)]}: ``b.generate_raw(sources)`` after each variant's setup,
    twice each, interleaved (this machine's speed drifts), after one warm-up call."""
    b.generate_raw(sources[:2])  # the first call of a process pays warm-up
    runs = {name: [] for name in variants}
    for name in list(variants) * 2:
        variants[name]()
        runs[name].append(_timed(lambda: b.generate_raw(sources)))
    return runs


def _briefer_and_sources(args, articles):
    """The briefer with the benchmark's generation settings, and its model input for each article."""
    from conflictbrief.inference.briefer import Briefer, source_for
    from conflictbrief.inference.clean import clean

    b = Briefer.load(args.briefer, device="cpu", dtype=args.dtype, num_beams=4, max_new_tokens=96,
                     no_repeat_ngram_size=3)
    return b, [source_for(clean(a), b.tokenizer, 256)[0] for a in articles]


def generate(args, articles):
    b, sources = _briefer_and_sources(args, articles)
    for size in [int(x) for x in args.batch_sizes.split(",")]:
        b.batch_size = size
        _, seconds = _timed(lambda: b.generate_raw(sources))
        print(json.dumps({"lever": "generation batch size", "dtype": args.dtype, "batch_size": size,
                          "articles": len(sources), "seconds": seconds,
                          "articles_per_s": round(len(sources) / seconds, 2)}), flush=True)


def cache(args, articles):
    b, sources = _briefer_and_sources(args, articles)
    b.batch_size = len(articles)
    shared, t_shared = _timed(lambda: b.generate_raw(sources))
    default, t_default = _timed(lambda: b.generate_raw(sources, cache=None))
    print(json.dumps({"lever": "shared cross-attention cache", "articles": len(sources),
                      "seconds_shared": t_shared, "seconds_transformers_default": t_default,
                      "identical_outputs": shared == default}))


def group(args, articles):
    """Beam search with an article's beams sharing one cross-attention row of its source, and without."""
    b, sources = _briefer_and_sources(args, articles)
    b.batch_size = 16
    runs = _interleaved(b, sources, {flag: lambda flag=flag: setattr(b, "group_beams", flag)
                                     for flag in (False, True)})
    rate = lambda flag: [round(len(sources) / seconds, 2) for _, seconds in runs[flag]]  # noqa: E731
    print(json.dumps({"lever": "grouped cross-attention", "dtype": args.dtype, "articles": len(sources),
                      "batch_size": b.batch_size, "articles_per_s_plain": rate(False),
                      "articles_per_s_grouped": rate(True),
                      "identical_outputs": sum(x == y for x, y in zip(runs[False][0][0], runs[True][0][0]))}))


def lean(args, articles):
    """transformers' generate against the lean beam search (inference/beam.py), without and with pruning of
    finished articles; 64 articles at batch 16, twice each, interleaved."""
    import functools

    from conflictbrief.inference import briefer as briefer_module

    b, sources = _briefer_and_sources(args, articles)
    b.batch_size = 16
    search = briefer_module.beam_search
    variants = {"generate": (False, search), "lean_no_pruning": (True, functools.partial(search, prune=False)),
                "lean": (True, search)}

    def use(name):
        b.lean_beams, briefer_module.beam_search = variants[name]

    try:
        runs = _interleaved(b, sources, {name: lambda name=name: use(name) for name in variants})
    finally:
        briefer_module.beam_search = search
    same = lambda name: sum(x == y for x, y in zip(runs["generate"][0][0], runs[name][0][0]))  # noqa: E731
    print(json.dumps({"lever": "lean beam search", "dtype": args.dtype, "articles": len(sources),
                      "batch_size": b.batch_size,
                      **{f"articles_per_s_{name}": [round(len(sources) / sec, 2) for _, sec in runs[name]]
                         for name in variants},
                      "identical_to_generate": {name: same(name) for name in variants if name != "generate"}}))


def restrict(args, articles):
    """Greedy: speed with and without the restricted output layer (the outputs must be identical). Beam search,
    where Briefer does not use the layer: speed and full-pipeline ROUGE with it forced on, the measurement
    behind that choice."""
    from bench import SHARED

    from conflictbrief.inference.pipeline import Pipeline
    from conflictbrief.training.readers import read_brief_file

    b, sources = _briefer_and_sources(args, articles)
    b.batch_size = 16
    b._greedy = lambda kwargs: True  # noqa: E731 - force the layer on for beam search too
    for beams in (1, 4):
        outputs, seconds = {}, {}
        for flag in (True, False, True, False):  # twice each: the first call of a process pays warm-up
            b.restrict_output = flag
            outputs[flag], seconds[flag] = _timed(lambda: b.generate_raw(sources, num_beams=beams))
        print(json.dumps({"lever": "output layer over allowed tokens", "dtype": args.dtype, "num_beams": beams,
                          "articles": len(sources), "seconds_restricted": seconds[True], "seconds_full": seconds[False],
                          "identical_outputs": sum(x == y for x, y in zip(outputs[True], outputs[False]))}), flush=True)
    p = Pipeline.load(briefer=args.briefer, device="cpu", dtype=args.dtype)
    p.briefer._greedy = lambda kwargs: True  # noqa: E731
    for name, path in [("SumLLM gpt4 val", SHARED / "sumllm_cnndm" / "gpt4" / "val.jsonl"),
                       ("NeuS val", SHARED / "neus" / "val.source")]:
        pairs = read_brief_file(path)[: args.limit]
        row = {"lever": "output layer over allowed tokens", "dtype": args.dtype, "num_beams": 4, "data": name,
               "n": len(pairs)}
        for flag in (True, False):
            p.briefer.restrict_output = flag
            report = p.evaluate_briefs(pairs)
            row["restricted" if flag else "full"] = {k: report[k] for k in
                                                     ("rouge1", "rouge2", "rougeL", "rougeLsum", "entity_precision",
                                                      "unsupported_number_rate", "extracted_sentence_share")}
        print(json.dumps(row), flush=True)


def tag(args, articles):
    from transformers import pipeline

    from conflictbrief.inference.clean import clean
    from conflictbrief.inference.tagger import Tagger

    texts = [clean(a).text for a in articles]
    t = Tagger.load(args.tagger, device="cpu", dtype=args.dtype, batch_size=32)
    with torch.inference_mode():
        for width in (256, 128, 512):
            t.max_length = width
            _, seconds = _timed(lambda: t.tag(texts))
            print(json.dumps({"lever": "tagger window", "dtype": args.dtype, "max_length": width,
                              "articles": len(texts), "seconds": seconds}), flush=True)
        ner = pipeline("token-classification", model=t.model, tokenizer=t.tokenizer, aggregation_strategy="simple",
                       stride=32, device="cpu")
        _, seconds = _timed(lambda: [ner(x) for x in texts])
        print(json.dumps({"lever": "HF token-classification pipeline", "dtype": args.dtype,
                          "articles": len(texts), "seconds": seconds}))


def main():
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("what", choices=["generate", "cache", "group", "lean", "tag", "restrict"])
    parser.add_argument("--n", type=int, help="articles (default: 32; 16 for cache, 64 for lean)")
    parser.add_argument("--briefer", default="default")
    parser.add_argument("--tagger", default="default")
    parser.add_argument("--dtype", default=None, help="bfloat16 (CPU with AMX) or int8 (dynamic quantisation)")
    parser.add_argument("--batch-sizes", default="1,4,16,32")
    parser.add_argument("--limit", type=int, default=40, help="restrict: validation pairs per set")
    args = parser.parse_args()
    articles = load_articles(args.n or {"cache": 16, "lean": 64}.get(args.what, 32), None)
    {"generate": generate, "cache": cache, "group": group, "lean": lean, "tag": tag,
     "restrict": restrict}[args.what](args, articles)


if __name__ == "__main__":
    main()
