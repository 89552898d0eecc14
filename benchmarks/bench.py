"""conflictbrief vs plain Hugging Face usage, same machine, same weights, same articles, same generation settings.

    python benchmarks/bench.py [--n 200] [--file articles.jsonl] [--tagger default] --briefer DIR

``--briefer`` names a trained seq2seq briefer (none is shipped yet, so the default fails with a clear error).

Prints one JSON object: articles/s of each side, the ratio, peak RSS of each (each side runs in its own
process), the settings, and whether both produced one output per article. Not run in CI.
"""
from __future__ import annotations

import argparse
import json
import resource
import subprocess
import sys
import time
from pathlib import Path

SHARED = Path(__file__).resolve().parents[1].parent / "shared" / "data"


def load_articles(n: int, file: str | None) -> list[str]:
    if file:
        rows = [json.loads(line) for line in Path(file).read_text(encoding="utf-8").splitlines() if line.strip()]
        return [r.get("text") or r.get("article") for r in rows][:n]
    from conflictbrief.inference.clean import joined
    from conflictbrief.training.readers import read_brief_file

    pairs = read_brief_file(SHARED / "sumllm_cnndm" / "gpt4" / "val.jsonl") + \
        read_brief_file(SHARED / "neus" / "val.source")
    # a NeuS record's reports, joined as the pipeline joins them: the baseline takes one string per article
    return [joined(p["text"]) for p in pairs][:n]


def baseline(articles, args) -> int:
    """What a user would write: the token-classification pipeline, then tokenizer + generate, one by one."""
    from transformers import pipeline

    from conflictbrief.model.loading import load_briefer, load_tagger

    tmodel, ttok = load_tagger(args.tagger, device="cpu")
    bmodel, btok = load_briefer(args.briefer, device="cpu")
    ner = pipeline("token-classification", model=tmodel, tokenizer=ttok, aggregation_strategy="simple",
                   stride=32, device="cpu")
    outputs = 0
    for text in articles:
        ner(text)
        enc = btok(text, max_length=args.max_source_length, truncation=True, return_tensors="pt")
        out = bmodel.generate(**enc, num_beams=args.num_beams, max_new_tokens=args.max_new_tokens,
                              no_repeat_ngram_size=3)
        btok.decode(out[0], skip_special_tokens=True)
        outputs += 1
    return outputs


def ours(articles, args) -> int:
    from conflictbrief import Pipeline

    p = Pipeline.load(tagger=args.tagger, briefer=args.briefer, device="cpu", batch_size=args.batch_size,
                      dtype=args.dtype)
    p.briefer.generate_kwargs.update(num_beams=args.num_beams, max_new_tokens=args.max_new_tokens)
    args.resolved_dtype, args.resolved_batch_size = p.models["dtype"], p.batch_size  # what the defaults chose
    return sum(1 for _ in p.analyze_batch(articles, batch_size=args.batch_size))


def side(args) -> None:
    import torch

    articles = load_articles(args.n, args.file)
    fn = baseline if args.side == "baseline" else ours
    started = time.perf_counter()
    with torch.inference_mode():
        count = fn(articles, args)
    seconds = time.perf_counter() - started
    print(json.dumps({"outputs": count, "articles": len(articles), "seconds": round(seconds, 2),
                      "articles_per_s": round(len(articles) / seconds, 3),
                      "peak_rss_mib": round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1),
                      "threads": torch.get_num_threads(),
                      "dtype": getattr(args, "resolved_dtype", "float32"),
                      "batch_size": getattr(args, "resolved_batch_size", 1)}))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__)
    parser.add_argument("--n", type=int, default=200)
    parser.add_argument("--file")
    parser.add_argument("--tagger", default="default")
    parser.add_argument("--briefer", default="default")
    parser.add_argument("--batch-size", type=int, default=None,
                        help="conflictbrief side only (default: its own, 32 in bfloat16 and 16 in float32)")
    parser.add_argument("--dtype", default="auto",
                        help="conflictbrief side only: auto (the default: bfloat16 on a CPU with AMX, "
                             "float32 elsewhere), float32, bfloat16 or int8")
    parser.add_argument("--num-beams", type=int, default=4)
    parser.add_argument("--max-new-tokens", type=int, default=96)
    parser.add_argument("--max-source-length", type=int, default=256)
    parser.add_argument("--side", choices=["baseline", "ours"], help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.side:
        return side(args)
    results = {}
    for name in ("baseline", "ours"):
        cmd = [sys.executable, __file__, "--side", name] + sys.argv[1:]
        done = subprocess.run(cmd, capture_output=True, text=True)
        if done.returncode != 0:  # e.g. no default briefer is shipped: name one with --briefer DIR
            last = (done.stderr.strip().splitlines() or ["(no output)"])[-1]
            sys.exit(f"bench.py: the {name} side failed: {last}")
        results[name] = json.loads(done.stdout.strip().splitlines()[-1])
    print(json.dumps({
        **results,
        "ratio": round(results["ours"]["articles_per_s"] / results["baseline"]["articles_per_s"], 2),
        "same_number_of_outputs": results["ours"]["outputs"] == results["baseline"]["outputs"],
        "settings": {"n": args.n, "num_beams": args.num_beams, "max_new_tokens": args.max_new_tokens,
                     "max_source_length": args.max_source_length, "batch_size_ours": args.batch_size or "default",
                     "dtype_ours": args.dtype,
                     "tagger_stride": 32, "no_repeat_ngram_size": 3},
    }, indent=2))


if __name__ == "__main__":
    main()
