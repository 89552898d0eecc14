"""The `conflictbrief` command: a thin shell over the Python API (train, evaluate, tag, brief, serve)."""
from __future__ import annotations

import argparse
import json
import os
import re
import sys
from pathlib import Path


def _add_dtype(p):
    p.add_argument("--dtype", default="auto", choices=["auto", "float32", "float16", "bfloat16", "int8"],
                   help="auto (default) = bfloat16 on a CPU with AMX units (about 2x faster here, "
                        "docs/performance.md), float32 elsewhere; float32: full precision; int8 = dynamic "
                        "quantisation (CPU); float16 / bfloat16 (GPU)")


def _add_train(sub):
    p = sub.add_parser("train", help="fine-tune the tagger or the briefer; mlm: domain pre-training of an encoder")
    p.add_argument("kind", choices=["tagger", "briefer", "mlm"])
    p.add_argument("--config", help="YAML config (configs/tagger.yaml, configs/briefer.yaml, configs/mlm.yaml)")
    p.add_argument("--train", nargs="+", metavar="FILE", help="training files (replace the config's)")
    p.add_argument("--eval", metavar="FILE", nargs="+", help="evaluation file(s) (replace the config's; the "
                                                             "tagger takes one)")
    p.add_argument("--eval-fraction", metavar="F", type=_unit_interval,
                   help="instead of an eval file: hold out this share of the training data (0.1) and evaluate on it")
    p.add_argument("--mapping", metavar="NAME",
                   help="tagger: the label mapping (configs/labels.yaml: conll) of the --train and --eval files, for "
                        "data labelled in another schema (PER/ORG/LOC)")
    p.add_argument("--output", metavar="DIR", help="output directory")
    p.add_argument("--resume", action="store_true", help="continue from the last checkpoint (OUTPUT/checkpoint)")
    p.set_defaults(accepts_overrides=True)  # trailing key=value words override the config (epochs=1)


def _unit_interval(value: str) -> float:
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0.0 <= number <= 1.0:
        raise argparse.ArgumentTypeError(f"expected a number from 0 to 1, got {value!r}")
    return number


def _non_negative(value: str) -> float:
    """An argparse type: seconds, 0 or more (a finite number)."""
    try:
        number = float(value)
    except ValueError:
        number = -1.0
    if not 0.0 <= number < float("inf"):
        raise argparse.ArgumentTypeError(f"expected a number of seconds, 0 or more, got {value!r}")
    return number


def _field_name(value: str) -> str:
    """An argparse type: a record's field (--text-field, --id-field, --group-by); an empty one (an unset shell
    variable) was read as none given."""
    if not value.strip():
        raise argparse.ArgumentTypeError("expected the name of a field (a.b for a nested one), got an empty one")
    return value


def _at_least(least: int, most: int | None = None):
    """An argparse type: a whole number from ``least`` (to ``most``); --limit -1 took all but the last record,
    --batch-size 0 and --threads 0 were quietly ignored, --port 99999 was a traceback."""
    def parse(value: str) -> int:
        try:
            number = int(value)
        except ValueError:
            number = least - 1
        if number < least or most is not None and number > most:
            span = f"from {least} to {most}" if most is not None else f"of {least} or more"
            raise argparse.ArgumentTypeError(f"expected a whole number {span}, got {value!r}")
        return number
    return parse


def _add_evaluate(sub):
    p = sub.add_parser("evaluate", help="score a model on labeled data; prints one JSON object")
    p.add_argument("kind", choices=["tagger", "briefer"])
    p.add_argument("--model", default="default", help="model directory or Hub name (default: shipped)")
    p.add_argument("--data", required=True, metavar="FILE")
    p.add_argument("--format", help="tagger data format (conll, spans, labelstudio, doccano); guessed if omitted")
    p.add_argument("--mapping", help="label mapping for data in another schema (e.g. conll)")
    p.add_argument("--labels", metavar="YAML", help="tagger: the label schema (and its mappings) of a model "
                                                   "trained with its own; default: the packaged one, or the "
                                                   "model's own labels where they differ")
    p.add_argument("--limit", type=_at_least(1), help="only the first N records")
    p.add_argument("--errors", metavar="OUT.jsonl",
                   help="tagger: write each sentence with a mistake (missed, spurious, wrong label, wrong span)")
    p.add_argument("--briefs", metavar="OUT.jsonl",
                   help="briefer: write each pair's brief beside its reference, with their ROUGE-L and lead-3's")
    p.add_argument("--mentions", choices=["all", "names"], default="all",
                   help="tagger: 'names' scores names only (pronoun/determiner mentions left out of gold and "
                        "predictions); default all")
    p.add_argument("--min-score", type=_unit_interval, default=0.0,
                   help="tagger: score only entities scored at least this (0-1)")
    p.add_argument("--model-labels", action="store_true",
                   help="tagger: score the label the model gave every entity (by default a surname on its own "
                        "takes the Person label of the full name in the same text, as in tag and brief)")
    p.add_argument("--device", default="auto")
    _add_dtype(p)


def _add_run(sub):
    for name, help_ in (("brief", "the main job: entities and a brief for every article of a dump"),
                        ("tag", "entities only, for every article of a dump")):
        p = sub.add_parser(name, help=help_)
        p.add_argument("inputs", nargs="+", metavar="INPUT",
                       help=".jsonl/.ndjson/.json/.csv/.tsv/.xlsx/.xls/.parquet/.txt/.html, dirs, .gz/.bz2/.xz/.zst of "
                            "them, .zip or .tar(.gz) archives of them; - for JSON Lines on standard input")
        p.add_argument("-o", "--output", required=True,
                       help="OUT.jsonl, OUT.parquet for Parquet, OUT.csv for spreadsheets, or - for JSON Lines on "
                            "standard output")
        p.add_argument("--format", dest="out_format", choices=["jsonl", "parquet", "csv", "labelstudio"],
                       default=None, help="default: by the output's name (.parquet: parquet; .csv: csv; else "
                                          "jsonl); labelstudio: tasks to import for correction (-o tasks.json)")
        p.add_argument("--text-field", type=_field_name, help="field holding the article, a.b for a nested one "
                                                               "(default: first of text, article, ...)")
        p.add_argument("--id-field", type=_field_name,
                       help="field holding the record id, a.b for a nested one (default: file:line)")
        p.add_argument("--resume", action="store_true", help="continue a killed job; nothing lost or repeated")
        p.add_argument("--overwrite", action="store_true", help="start again, replacing OUT")
        p.add_argument("--max-chars", type=_at_least(1), default=200_000, help="longer texts become error records")
        p.add_argument("--batch-size", type=_at_least(1), default=None,
                       help="articles per model batch (default: 32 in bfloat16, 16 in float32 or int8)")
        p.add_argument("--dedup", action="store_true", help="analyse identical articles once")
        p.add_argument("--group-by", metavar="FIELD", type=_field_name,
                       help="field naming the event a record reports on (a.b for a nested one): the records of "
                            "one event are analysed together as its reports, one output record per event")
        p.add_argument("--limit", type=_at_least(1), metavar="N", help="only the first N records (a trial run)")
        p.add_argument("--progress-every", type=_non_negative, default=60.0, metavar="SECONDS",
                       help="where stderr is not a terminal (nohup, a log file): a progress line every SECONDS "
                            "(default 60; 0: none)")
        p.add_argument("--time-limit", type=_non_negative, default=10.0, metavar="SECONDS",
                       help="an article that takes longer than this per 10,000 characters (this at least) becomes "
                            "an error record and the job goes on (default 10; 0: no limit; Linux/macOS)")
        p.add_argument("--encoding", default="auto",
                       help="of the input files' text. auto (default): UTF-8, UTF-16/32 by a byte-order mark, and "
                            "bytes that are not UTF-8 read as Windows-1252 with a warning in that record's result; "
                            "utf-8: such bytes make the record an error; or any Python codec (latin-1, cp1251)")
        p.add_argument("--quiet", action="store_true")
        p.add_argument("--tagger", default="default", help="tagger directory or Hub name")
        p.add_argument("--mentions", choices=["names", "all"], default="names",
                       help="names (default): leave out entities that are only a pronoun or determiner "
                            "('he', 'we'); all: every entity the tagger finds")
        p.add_argument("--min-score", type=_unit_interval, default=0.0,
                       help="leave out entities scored below this (0-1; 0.9: precision up, recall down; "
                            "docs/measurements.md)")
        p.add_argument("--model-labels", action="store_true",
                       help="every entity keeps the label the model gave it (by default a surname on its own "
                            "takes the Person label of the full name in the same text)")
        if name == "brief":
            p.add_argument("--briefer", default="default", help="briefer directory or Hub name")
            p.add_argument("--neutrality", help="loaded-term lexicon YAML (default: packaged)")
        p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
        _add_dtype(p)
        p.add_argument("--threads", type=_at_least(1), help="CPU threads for torch")


def _add_serve(sub):
    p = sub.add_parser("serve", help="HTTP service (POST /v1/analyze, GET /healthz, GET /v1/models; a Label "
                                     "Studio ML backend at /labelstudio)")
    p.add_argument("--host", default="127.0.0.1")
    p.add_argument("--api-key-file", metavar="FILE",
                   help="/v1/ requests need the key in FILE (its first line) as 'Authorization: Bearer KEY', "
                        "'X-API-Key: KEY' or HTTP Basic with the key as the password (Label Studio); or set "
                        "CONFLICTBRIEF_API_KEY. /healthz stays open")
    p.add_argument("--port", type=_at_least(1, 65535), default=8000)
    p.add_argument("--root-path", default="", metavar="PATH",
                   help="the path prefix a reverse proxy serves the service under (/conflictbrief), for /docs")
    p.add_argument("--tagger", default="default")
    p.add_argument("--briefer", default="default")
    p.add_argument("--mentions", choices=["names", "all"], default="names", help="as for brief")
    p.add_argument("--min-score", type=_unit_interval, default=0.0, help="as for brief")
    p.add_argument("--model-labels", action="store_true", help="as for brief")
    p.add_argument("--device", default="auto", choices=["auto", "cpu", "cuda"])
    _add_dtype(p)
    p.add_argument("--max-concurrency", type=_at_least(1), default=2, help="requests analysed at once")
    p.add_argument("--max-queue", type=_at_least(0), default=32, help="requests waiting beyond that get 503")
    p.add_argument("--time-limit", type=_non_negative, default=10.0, metavar="SECONDS",
                   help="a request whose analysis takes longer than this per 10,000 characters (this at least) gets "
                        "504 (default 10; 0: no limit)")
    p.add_argument("--workers", choices=["processes", "threads"], default="processes",
                   help="processes (default): --max-concurrency worker processes, each loading the models, where "
                        "a runaway analysis is stopped at its time limit; threads: one copy of the models, less "
                        "memory, but a runaway thread runs on (README, HTTP)")
    p.add_argument("--neutrality", help="loaded-term lexicon YAML (default: packaged)")
    p.add_argument("--max-chars", type=_at_least(1), default=200_000, help="longer texts get 422")
    p.add_argument("--threads", type=_at_least(1), help="CPU threads for torch")


def cmd_run(args) -> int:
    from conflictbrief.inference.batch import (check_encoding, check_output, check_stdin, output_format, output_path,
                                               run_batch)
    from conflictbrief.inference.pipeline import Pipeline

    check_encoding(args.encoding)  # before the models load, as are the next checks
    check_stdin(args.inputs)
    args.out_format = output_format(args.output, args.out_format)
    check_output(output_path(args.output, args.out_format), args.resume, args.overwrite, args.output)

    pipeline = Pipeline.load(tagger=args.tagger, briefer=getattr(args, "briefer", None), device=args.device,
                             dtype=args.dtype,
                             neutrality=getattr(args, "neutrality", None), threads=args.threads,
                             batch_size=args.batch_size, mentions=args.mentions, min_score=args.min_score,
                             consistent_names=not args.model_labels)
    try:
        summary = run_batch(pipeline, args.inputs, args.output, args.text_field, args.id_field, args.resume,
                            args.overwrite, args.batch_size, args.max_chars, args.dedup, args.quiet, args.out_format,
                            encoding=args.encoding, time_limit=args.time_limit, progress_every=args.progress_every,
                            limit=args.limit, brief=args.command == "brief", group_by=args.group_by)
    except BrokenPipeError:  # -o - into a reader that stopped early (| head): end quietly, as Unix tools do
        os.dup2(os.open(os.devnull, os.O_WRONLY), sys.stdout.fileno())  # (Python flushes stdout at exit)
        return 1
    return 1 if summary["failed_total"] else 0


def serve_api_key(path: str | None) -> str | None:
    """The service's API key: the first line of ``path``, else $CONFLICTBRIEF_API_KEY, else None (no key). Not a
    command-line value, which other users of the machine can read in the process list."""
    from conflictbrief.training.config import ConfigError

    if path is None:
        return os.environ.get("CONFLICTBRIEF_API_KEY", "").strip() or None
    try:
        lines = Path(path).read_text(encoding="utf-8-sig").splitlines()
    except (OSError, UnicodeDecodeError) as e:
        raise ConfigError(f"--api-key-file {path}: cannot read it ({e.__class__.__name__}: {e})") from None
    key = lines[0].strip() if lines else ""
    if not key:
        raise ConfigError(f"--api-key-file {path}: its first line is empty; the key goes there")
    return key


def cmd_serve(args) -> int:
    import uvicorn

    from conflictbrief.inference.pipeline import Pipeline
    from conflictbrief.inference.service import create_app
    from conflictbrief.training.config import ConfigError

    api_key = serve_api_key(args.api_key_file)  # before the models load
    if args.root_path and (not args.root_path.startswith("/") or args.root_path.endswith("/")):
        raise ConfigError(f"--root-path {args.root_path!r}: a path such as /conflictbrief (a leading slash, no "
                          "trailing one)")
    if api_key is None and args.host not in ("127.0.0.1", "localhost", "::1"):
        print(f"warning: serving on {args.host} without an API key: whoever reaches the port can use the service "
              "(--api-key-file or CONFLICTBRIEF_API_KEY)", file=sys.stderr, flush=True)
    load = dict(tagger=args.tagger, briefer=args.briefer, device=args.device, dtype=args.dtype,
                mentions=args.mentions, min_score=args.min_score, consistent_names=not args.model_labels,
                neutrality=args.neutrality, threads=args.threads,
                max_chars=args.max_chars)
    if args.workers == "processes":
        from conflictbrief.inference.workers import ProcessPipeline

        pipeline = ProcessPipeline(load, size=args.max_concurrency, time_limit=args.time_limit or None)
    else:
        pipeline = Pipeline.load(**load)
    try:
        uvicorn.run(create_app(pipeline, args.max_concurrency, args.max_queue, time_limit=args.time_limit,
                               api_key=api_key), host=args.host, port=args.port, root_path=args.root_path)
    finally:
        if hasattr(pipeline, "close"):
            pipeline.close()
    return 0


def _add_export(sub):
    p = sub.add_parser("export", help="store a trained model compactly (delta over the PyPI base, float16)")
    p.add_argument("kind", choices=["tagger", "briefer"])
    p.add_argument("--model", required=True, help="trained model directory (train's --output)")
    p.add_argument("--to", required=True, help="target directory, e.g. model/default/tagger")


def cmd_export(args) -> int:
    from conflictbrief.model.loading import export_compact

    print(json.dumps(export_compact(args.model, args.kind, args.to)))
    return 0


def cmd_train(args) -> int:
    from conflictbrief.training.config import BrieferConfig, ConfigError, MlmConfig, TaggerConfig, load_config

    extra = {"output_dir": args.output}
    if args.mapping is not None:
        if args.kind != "tagger":
            raise ConfigError(f"--mapping maps entity labels: train tagger takes it, not train {args.kind}")
        if not (args.train or args.eval):
            raise ConfigError("--mapping applies to the --train and --eval files; for the config's own files, set "
                              "'mapping: NAME' on each of them")

    def files(paths):  # the command line's data files, with --mapping on each
        return [{"path": p, "mapping": args.mapping} if args.mapping else p for p in paths]

    if args.train:
        extra["train"] = files(args.train)
    if args.eval_fraction is not None and args.kind != "mlm":
        if not 0 < args.eval_fraction < 1:  # 0 would drop the config's eval files and evaluate on nothing
            raise ConfigError(f"--eval-fraction: a share above 0 and below 1 (0.1 holds out a tenth), got "
                              f"{args.eval_fraction:g}")
        if args.eval:
            raise ConfigError("--eval and --eval-fraction: evaluate on the eval files or on a share of the "
                              "training data, not both")
        extra["eval_fraction"] = args.eval_fraction
        # the config's eval files are not used (an override, as extra's None means "not given"); the command
        # line's own overrides still come after it
        args.overrides = ["eval=null" if args.kind == "tagger" else "eval=[]", *args.overrides]
    if args.kind == "tagger":
        if args.eval and len(args.eval) > 1:
            raise ConfigError(f"train tagger takes one --eval file, got {len(args.eval)}; join them into one "
                              "(cat a.conll b.conll > dev.conll) or give one")
        if args.eval:
            extra["eval"] = files(args.eval)[0]
        config = load_config(TaggerConfig, args.config, args.overrides, extra)
        from conflictbrief.training.tagger import train_tagger

        report = train_tagger(config, resume=args.resume, log=lambda m: print(m, file=sys.stderr, flush=True))
    elif args.kind == "mlm":
        if args.eval:
            raise ConfigError("train mlm holds out part of its own text (eval_fraction); it takes no --eval")
        if args.eval_fraction is not None:
            extra["eval_fraction"] = args.eval_fraction
        config = load_config(MlmConfig, args.config, args.overrides, extra)
        from conflictbrief.training.mlm import train_mlm

        report = train_mlm(config, resume=args.resume, log=lambda m: print(m, file=sys.stderr, flush=True))
    else:
        if args.eval:
            extra["eval"] = args.eval
        config = load_config(BrieferConfig, args.config, args.overrides, extra)
        from conflictbrief.training.briefer import train_briefer

        report = train_briefer(config, resume=args.resume, log=lambda m: print(m, file=sys.stderr, flush=True))
    print(json.dumps(report["best"], indent=2))
    return 0


def _write_jsonl(path: str, records: list[dict]) -> str:
    with open(path, "w", encoding="utf-8") as f:
        f.writelines(json.dumps(r, ensure_ascii=False) + "\n" for r in records)
    return path


def cmd_evaluate(args) -> int:
    for flag, kind in (("errors", "tagger"), ("briefs", "briefer"), ("model_labels", "tagger")):
        if getattr(args, flag) and args.kind != kind:
            from conflictbrief.training.config import ConfigError

            raise ConfigError(f"--{flag.replace('_', '-')} is for evaluate {kind}")
    if args.kind == "tagger":
        from conflictbrief.inference.tagger import Tagger
        from conflictbrief.model.labels import LabelSchema, SchemaError
        from conflictbrief.training.readers import read_tagger_file
        from conflictbrief.training.tagger import evaluate_tagger

        tagger = Tagger.load(args.model, device=args.device, dtype=args.dtype, mentions=args.mentions,
                             min_score=args.min_score, consistent_names=not args.model_labels)
        schema = LabelSchema.from_yaml(args.labels)
        if set(schema.labels) != set(tagger.labels):
            if args.labels:
                raise SchemaError(f"{args.labels}: its labels {sorted(schema.labels)} are not the model's "
                                  f"{tagger.labels}")
            schema = LabelSchema.from_tags(list(tagger.id2label.values()))  # a model trained on its own labels
        examples = read_tagger_file(args.data, schema, args.format, args.mapping)[: args.limit]
        records = []
        result = evaluate_tagger(tagger, examples, schema, errors_to=records)
        if args.errors:
            result["errors_file"] = _write_jsonl(args.errors, records)
    else:
        from conflictbrief.training.briefer import evaluate_briefer_file

        records = []
        result = evaluate_briefer_file(args.model, args.data, limit=args.limit, device=args.device,
                                      dtype=args.dtype, briefs_to=records)
        if args.briefs:
            result["briefs_file"] = _write_jsonl(args.briefs, records)
    print(json.dumps(result, indent=2))
    return 0


def version_text() -> str:
    """What ``conflictbrief --version`` prints: the versions a bug report needs, and the default models'
    weights by the fingerprint that every result carries in ``models``."""
    import platform
    from importlib.metadata import PackageNotFoundError, version

    from conflictbrief import __version__
    from conflictbrief.model.loading import default_installed, default_model_dir, weights_fingerprint

    def installed(name):
        try:
            return version(name)
        except PackageNotFoundError:
            return "not installed"

    lines = [f"conflictbrief {__version__} (Python {platform.python_version()}, torch {installed('torch')}, "
             f"transformers {installed('transformers')})"]
    for kind in ("tagger", "briefer"):
        if default_installed(kind):
            lines.append(f"default {kind}: {default_model_dir(kind)}, weights "
                         f"{weights_fingerprint(default_model_dir(kind))}")
        else:
            lines.append(f"default {kind}: none installed"
                         + (" (briefs are extracted article sentences)" if kind == "briefer" else ""))
    return "\n".join(lines)


class _Version(argparse.Action):
    def __init__(self, option_strings, dest, **kwargs):
        super().__init__(option_strings, dest, nargs=0, help="print the versions and default models, and exit")

    def __call__(self, parser, namespace, values, option_string=None):
        print(version_text())
        parser.exit()


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="conflictbrief", description=__doc__)
    parser.add_argument("--version", action=_Version)
    sub = parser.add_subparsers(dest="command", required=True)
    _add_train(sub)
    _add_evaluate(sub)
    _add_run(sub)
    _add_serve(sub)
    _add_export(sub)
    return parser


_OVERRIDE = re.compile(r"[A-Za-z_][\w.]*=")


def _overrides_out_of_file_lists(parser, args) -> list[str]:
    """The key=value words that argparse took into --train or --eval's list of files (``--eval dev.txt
    epochs=3``, which read "epochs=3" as a second eval file), taken back out as overrides; a word that names
    an existing file stays a file."""
    moved = []
    for name in ("train", "eval"):
        files = getattr(args, name, None) if getattr(args, "accepts_overrides", False) else None
        if not files:
            continue
        kept = []
        for f in files:
            (moved if _OVERRIDE.match(f) and not Path(f).exists() else kept).append(f)
        if not kept:
            parser.error(f"--{name}: expected at least one file, got only key=value overrides: {' '.join(files)}")
        setattr(args, name, kept)
    return moved


COMMANDS = {"train": cmd_train, "evaluate": cmd_evaluate, "brief": cmd_run, "tag": cmd_run, "serve": cmd_serve,
            "export": cmd_export}


def main(argv: list[str] | None = None) -> int:
    from conflictbrief.model.labels import SchemaError
    from conflictbrief.model.loading import ModelLoadError
    from conflictbrief.training.config import ConfigError
    from conflictbrief.inference.batch import BatchError
    from conflictbrief.inference.guards import LexiconError
    from conflictbrief.training.readers import DataError

    parser = build_parser()
    args, rest = parser.parse_known_args(argv)
    bad = [r for r in rest if "=" not in r or not getattr(args, "accepts_overrides", False)]
    if bad:
        parser.error(f"unrecognized arguments: {' '.join(bad)}")
    args.overrides = _overrides_out_of_file_lists(parser, args) + rest
    try:
        return COMMANDS[args.command](args)
    except (ConfigError, DataError, SchemaError, ModelLoadError, BatchError, LexiconError) as e:
        print(f"conflictbrief {args.command}: error: {e}", file=sys.stderr)
        return 2


if __name__ == "__main__":
    sys.exit(main())
